//! [`Context`] and [`Remote`]: the safe handles of an AioContext
//! (`aio_context_new`, `aio_context_ref/unref`, `aio_poll`, `aio_notify`,
//! `qemu_set_current_aio_context`; util/async.c, util/aio-posix.c).

use std::marker::PhantomData;
use std::ptr::NonNull;

use glib_sys::GSource;

use super::Error;
use crate::abi::AioContext;
use crate::context::{self as core, Context as CoreContext};
use crate::fdmon::Kind;

/// An fd monitor: how a context waits for its file descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fdmon {
    /// poll(2); switches to epoll by itself once many fds are registered.
    Poll,
    /// epoll(7).
    Epoll,
    /// io_uring(7); the only monitor that takes [`Context::add_sqe`].
    IoUring,
}

impl Fdmon {
    /// All three, in the order the test suites run them.
    pub const ALL: [Fdmon; 3] = [Fdmon::Poll, Fdmon::Epoll, Fdmon::IoUring];

    /// `"poll"`, `"epoll"` or `"io_uring"` (the names of `QAIO_FDMON`).
    ///
    /// ```
    /// assert_eq!(qaio::api::Fdmon::IoUring.name(), "io_uring");
    /// ```
    pub fn name(self) -> &'static str {
        self.kind().name()
    }

    fn kind(self) -> Kind {
        match self {
            Fdmon::Poll => Kind::Poll,
            Fdmon::Epoll => Kind::Epoll,
            Fdmon::IoUring => Kind::IoUring,
        }
    }

    fn from_kind(k: Kind) -> Fdmon {
        match k {
            Kind::Poll => Fdmon::Poll,
            Kind::Epoll => Fdmon::Epoll,
            Kind::IoUring => Fdmon::IoUring,
        }
    }
}

/// A reference to an AioContext, for its home thread: the loop, and every
/// registration whose callbacks run there. Not `Send`: a context created
/// here has the creating thread as its home thread (use
/// [`Context::remote`] from other threads). Cloning takes another
/// reference; the last one dropped (C's references included) finalizes the
/// context. Every handle registered on it ([`Bh`](super::Bh),
/// [`Timer`](super::Timer), ...) holds a reference too, so the context
/// outlives them.
///
/// ```
/// use qaio::api::Context;
///
/// let ctx = Context::new().unwrap();
/// assert!(!ctx.poll(false)); // nothing to do
/// ```
pub struct Context {
    src: NonNull<GSource>,
    _home_thread: PhantomData<*mut ()>,
}

impl Context {
    /// Creates a context with the monitor qaio picks (io_uring where the
    /// kernel allows it, else poll(2)), or the one `QAIO_FDMON` forces. The
    /// calling thread becomes its home thread.
    pub fn new() -> Result<Context, Error> {
        let forced = Kind::from_env().map_err(Error::Create)?;
        Self::create(forced)
    }

    /// Creates a context with `fdmon` (regardless of `QAIO_FDMON`); fails if
    /// the kernel refuses it (io_uring in a sandbox, say).
    ///
    /// ```
    /// use qaio::api::{Context, Fdmon};
    ///
    /// let ctx = Context::with_fdmon(Fdmon::Epoll).unwrap();
    /// assert_eq!(ctx.fdmon(), Fdmon::Epoll);
    /// ```
    pub fn with_fdmon(fdmon: Fdmon) -> Result<Context, Error> {
        Self::create(Some(fdmon.kind()))
    }

    fn create(forced: Option<Kind>) -> Result<Context, Error> {
        // The C API's GSourceFuncs and fdmon tables: a context is the same C
        // object whoever creates it (C code compares ctx->fdmon_ops with
        // &fdmon_io_uring_ops, glib calls aio_ctx_*).
        let src = core::new_with_fdmon(
            &crate::ffi::gsource::AIO_SOURCE_FUNCS,
            crate::ffi::fdmon::tables(),
            forced,
        )
        .map_err(Error::Create)?;
        let ctx = Context {
            src: NonNull::new(src).expect("context::new returned NULL"),
            _home_thread: PhantomData,
        };
        ctx.core().bind_home();
        Ok(ctx)
    }

    /// Wraps a context created by C, taking a reference of its own
    /// (`aio_context_ref`): dropping the result drops only that one, never
    /// C's. The home thread is whatever C made it; polling from another
    /// thread aborts, as in C.
    ///
    /// # Safety
    /// `ctx` is a live `AioContext *` (from `aio_context_new`, not finalized)
    /// and the caller may use it in this thread.
    pub unsafe fn from_raw(ctx: *mut AioContext) -> Context {
        let src = ctx as *mut GSource;
        if src.is_null() || !core::is_live(src) {
            crate::abi::misuse(
                "qaio::api::Context::from_raw",
                "ctx is NULL or not a live AioContext",
            );
        }
        // SAFETY: a live GSource (contract, checked above).
        unsafe { glib_sys::g_source_ref(src) };
        Context {
            // SAFETY: checked non-NULL above.
            src: unsafe { NonNull::new_unchecked(src) },
            _home_thread: PhantomData,
        }
    }

    /// The `AioContext *` for C, borrowed: valid while this handle (or
    /// another reference) lives; C takes its own with `aio_context_ref`.
    ///
    /// ```
    /// let ctx = qaio::api::Context::new().unwrap();
    /// assert!(!ctx.as_raw().is_null());
    /// ```
    pub fn as_raw(&self) -> *mut AioContext {
        self.src.as_ptr().cast()
    }

    /// A view of a context for a callback, without a reference of its own.
    ///
    /// # Safety
    /// `src` is a live context for as long as the result is used, and the
    /// result is never dropped (hence `ManuallyDrop`).
    pub(crate) unsafe fn borrowed(src: *mut GSource) -> std::mem::ManuallyDrop<Context> {
        std::mem::ManuallyDrop::new(Context {
            // SAFETY: non-NULL per the contract.
            src: unsafe { NonNull::new_unchecked(src) },
            _home_thread: PhantomData,
        })
    }

    pub(crate) fn src(&self) -> *mut GSource {
        self.src.as_ptr()
    }

    pub(crate) fn core(&self) -> &CoreContext {
        // SAFETY: we hold a reference, so finalize has not run and the state
        // is alive.
        unsafe { CoreContext::from_source(self.src.as_ptr()) }
    }

    /// Runs one loop iteration (`aio_poll`): userspace polling if enabled,
    /// a wait (if `blocking`, until something happens), then io_uring
    /// completions, BHs (tasks included), ready fd handlers and expired
    /// timers, in that order. Returns true if a callback made progress. May
    /// be nested from any callback. Aborts outside the home thread.
    ///
    /// ```
    /// let ctx = qaio::api::Context::new().unwrap();
    /// ctx.schedule_oneshot(|_| println!("ran"));
    /// assert!(ctx.poll(true));
    /// ```
    pub fn poll(&self, blocking: bool) -> bool {
        crate::poll::aio_poll(self.core(), blocking)
    }

    /// Wakes the loop (`aio_notify`): the current or next blocking
    /// [`poll`](Context::poll) returns.
    pub fn notify(&self) {
        self.core().notify()
    }

    /// The monitor in use now (a poll(2) context reports epoll after its
    /// lazy switch).
    pub fn fdmon(&self) -> Fdmon {
        Fdmon::from_kind(self.core().fdmon_kind())
    }

    /// Adaptive userspace polling (`aio_context_set_poll_params`): poll up
    /// to `max_ns` per iteration (0 disables), growing and shrinking each
    /// handler's poll time by `grow` and `shrink` (0: double, reset).
    pub fn set_poll_params(&self, max_ns: i64, grow: i64, shrink: i64) {
        self.core().set_poll_params(max_ns, grow, shrink)
    }

    /// Makes this the calling thread's current context
    /// (`qemu_set_current_aio_context`), which C code finds with
    /// `qemu_get_current_aio_context`. Fails if another one is current.
    ///
    /// ```
    /// let ctx = qaio::api::Context::new().unwrap();
    /// ctx.make_current().unwrap();
    /// assert!(ctx.is_current());
    /// qaio::api::Context::clear_current();
    /// ```
    pub fn make_current(&self) -> Result<(), Error> {
        let cur = core::current_raw();
        if !cur.is_null() && cur != self.src() {
            return Err(Error::OtherCurrent);
        }
        self.core().bind_home();
        core::set_current_raw(self.src());
        Ok(())
    }

    /// True if this is the calling thread's current context.
    pub fn is_current(&self) -> bool {
        core::current_raw() == self.src()
    }

    /// Leaves the calling thread without a current context.
    pub fn clear_current() {
        core::set_current_raw(std::ptr::null_mut());
    }

    /// A handle for other threads.
    pub fn remote(&self) -> Remote {
        // SAFETY: a live GSource; the new reference belongs to the Remote.
        unsafe { glib_sys::g_source_ref(self.src()) };
        Remote { src: self.src }
    }
}

impl Clone for Context {
    fn clone(&self) -> Self {
        // SAFETY: a live GSource; the new reference belongs to the clone.
        unsafe { glib_sys::g_source_ref(self.src()) };
        Context {
            src: self.src,
            _home_thread: PhantomData,
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: drops this handle's own reference.
        unsafe { glib_sys::g_source_unref(self.src()) };
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("raw", &self.src)
            .field("fdmon", &self.fdmon())
            .finish()
    }
}

/// What any thread may do with a context: wake it, schedule one-shot work
/// on it (and, through a [`BhRemote`](super::BhRemote), schedule a BH).
/// Holds a reference to the context.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// let ctx = qaio::api::Context::new().unwrap();
/// let remote = ctx.remote();
/// let done = Arc::new(AtomicBool::new(false));
/// let d = done.clone();
/// std::thread::spawn(move || remote.schedule_oneshot(move |_ctx| d.store(true, Ordering::Relaxed)))
///     .join()
///     .unwrap();
/// while !done.load(Ordering::Relaxed) {
///     ctx.poll(true);
/// }
/// ```
pub struct Remote {
    src: NonNull<GSource>,
}

// SAFETY: only the any-thread operations (notify, BH scheduling, ref/unref)
// are reachable through a Remote.
unsafe impl Send for Remote {}
// SAFETY: as above.
unsafe impl Sync for Remote {}

impl Remote {
    pub(crate) fn core(&self) -> &CoreContext {
        // SAFETY: as in Context::core.
        unsafe { CoreContext::from_source(self.src.as_ptr()) }
    }

    pub(crate) fn src(&self) -> *mut GSource {
        self.src.as_ptr()
    }

    /// Wakes the loop (`aio_notify`). Wait-free.
    pub fn notify(&self) {
        self.core().notify()
    }

    /// Runs `f` once in the context's loop, in its home thread
    /// (`aio_bh_schedule_oneshot`). The closure holds a reference to the
    /// context until it ran.
    pub fn schedule_oneshot(&self, f: impl FnOnce(&Context) + Send + 'static) {
        super::bh::oneshot(self.core(), self.src(), Box::new(f));
    }
}

impl Clone for Remote {
    fn clone(&self) -> Self {
        // SAFETY: a live GSource; the new reference belongs to the clone.
        unsafe { glib_sys::g_source_ref(self.src()) };
        Remote { src: self.src }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // SAFETY: drops this handle's own reference; g_source_unref is
        // thread-safe.
        unsafe { glib_sys::g_source_unref(self.src()) };
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("raw", &self.src).finish()
    }
}
