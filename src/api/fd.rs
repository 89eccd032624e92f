//! fd handlers with closures ([`FdHandler`]), event notifiers
//! ([`EventNotifier`]) and fd readiness futures ([`AsyncFd`])
//! (`aio_set_fd_handler`, `aio_set_event_notifier`; util/aio-posix.c,
//! util/event_notifier-posix.c).

use std::cell::Cell;
use std::ffi::c_void;
use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, Waker};

use glib_sys::GSource;

use super::{Context, Error, Shared, user};
use crate::event_notifier::EventNotifier as CoreNotifier;
use crate::handlers::{self, IoFn, PollFn};

type Cb = Box<dyn Fn(&Context)>;
type PollCb = Box<dyn Fn(&Context) -> bool>;

struct FdSlot {
    src: *mut GSource,
    read: Option<Cb>,
    write: Option<Cb>,
    io_poll: Option<PollCb>,
    io_poll_ready: Option<Cb>,
}

/// Runs one of the slot's callbacks.
///
/// # Safety
/// `opaque` is the live slot of a registered handler; home thread.
unsafe fn run_slot<R: Default>(
    opaque: *mut c_void,
    what: &str,
    f: impl FnOnce(&FdSlot, &Context) -> R,
) -> R {
    let slot = opaque as *mut Shared<FdSlot>;
    // SAFETY: per the contract: the core calls only registered handlers,
    // whose slot the FdHandler keeps alive.
    unsafe {
        Shared::call(slot, |s| {
            let ctx = Context::borrowed(s.src);
            user(what, || f(s, &ctx))
        })
    }
    .unwrap_or_default()
}

unsafe extern "C" fn fd_read(opaque: *mut c_void) {
    // SAFETY: registered with this slot as opaque.
    unsafe {
        run_slot(opaque, "fd read", |s, c| {
            if let Some(f) = &s.read {
                f(c)
            }
        })
    }
}

unsafe extern "C" fn fd_write(opaque: *mut c_void) {
    // SAFETY: as in fd_read.
    unsafe {
        run_slot(opaque, "fd write", |s, c| {
            if let Some(f) = &s.write {
                f(c)
            }
        })
    }
}

unsafe extern "C" fn fd_poll(opaque: *mut c_void) -> bool {
    // SAFETY: as in fd_read.
    unsafe {
        run_slot(opaque, "io_poll", |s, c| {
            s.io_poll.as_ref().is_some_and(|f| f(c))
        })
    }
}

unsafe extern "C" fn fd_poll_ready(opaque: *mut c_void) {
    // SAFETY: as in fd_read.
    unsafe {
        run_slot(opaque, "io_poll_ready", |s, c| {
            if let Some(f) = &s.io_poll_ready {
                f(c)
            }
        })
    }
}

/// Fails if `fd` already has a live handler on `ctx` other than `ours`.
fn check_free(ctx: &Context, fd: RawFd, ours: *mut c_void) -> Result<(), Error> {
    match handlers::live_opaque(ctx.core(), fd) {
        Some(o) if o != ours => Err(Error::FdInUse(fd)),
        _ => Ok(()),
    }
}

/// Removes the handler of `fd` if it is still the one with `ours`.
fn remove_if_ours(ctx: &Context, fd: RawFd, ours: *mut c_void) {
    if handlers::live_opaque(ctx.core(), fd) == Some(ours) {
        handlers::set_fd_handler(ctx.core(), fd, None, None, None, None, ours);
    }
}

/// Builds an [`FdHandler`]: see [`Context::fd_handler`].
#[must_use = "call register() to register the handler"]
pub struct FdHandlerBuilder<'a> {
    ctx: &'a Context,
    fd: RawFd,
    read: Option<Cb>,
    write: Option<Cb>,
    io_poll: Option<PollCb>,
    io_poll_ready: Option<Cb>,
}

impl FdHandlerBuilder<'_> {
    /// Runs `f` when the fd is readable (G_IO_IN, HUP or ERR).
    pub fn on_read(mut self, f: impl Fn(&Context) + 'static) -> Self {
        self.read = Some(Box::new(f));
        self
    }

    /// Runs `f` when the fd is writable (G_IO_OUT or ERR), after `on_read`.
    pub fn on_write(mut self, f: impl Fn(&Context) + 'static) -> Self {
        self.write = Some(Box::new(f));
        self
    }

    /// Userspace polling: `io_poll` is a cheap readiness check the loop calls
    /// while busy-polling ([`Context::set_poll_params`]); `io_poll_ready`
    /// runs when it returned true.
    pub fn on_poll(
        mut self,
        io_poll: impl Fn(&Context) -> bool + 'static,
        io_poll_ready: impl Fn(&Context) + 'static,
    ) -> Self {
        self.io_poll = Some(Box::new(io_poll));
        self.io_poll_ready = Some(Box::new(io_poll_ready));
        self
    }

    /// Registers the handler (`aio_set_fd_handler`). Fails with
    /// [`Error::FdInUse`] if the fd already has one on this context.
    pub fn register(self) -> Result<FdHandler, Error> {
        check_free(self.ctx, self.fd, std::ptr::null_mut())?;
        let slot = Shared::new(FdSlot {
            src: self.ctx.src(),
            read: self.read,
            write: self.write,
            io_poll: self.io_poll,
            io_poll_ready: self.io_poll_ready,
        });
        let h = FdHandler {
            fd: self.fd,
            slot,
            read_on: Cell::new(true),
            write_on: Cell::new(true),
            ctx: self.ctx.clone(),
        };
        h.apply();
        Ok(h)
    }
}

/// A registered fd handler: closures the loop runs when the fd is ready.
/// Dropping it removes the handler (also from inside one of its own
/// callbacks: none of them runs again). The fd must stay open while the
/// handler is registered.
///
/// ```
/// use std::cell::Cell;
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
/// use std::rc::Rc;
///
/// let ctx = qaio::api::Context::new().unwrap();
/// let (a, mut b) = UnixStream::pair().unwrap();
/// let reads = Rc::new(Cell::new(0));
/// let r = reads.clone();
/// let h = ctx.fd_handler(&a).on_read(move |_| r.set(r.get() + 1)).register().unwrap();
/// b.write_all(b"x").unwrap();
/// assert!(ctx.poll(true));
/// assert_eq!(reads.get(), 1);
/// drop(h);
/// ```
pub struct FdHandler {
    fd: RawFd,
    slot: *mut Shared<FdSlot>,
    read_on: Cell<bool>,
    write_on: Cell<bool>,
    ctx: Context,
}

impl Context {
    /// Starts building a handler for `fd`.
    pub fn fd_handler(&self, fd: &impl AsRawFd) -> FdHandlerBuilder<'_> {
        self.fd_handler_raw(fd.as_raw_fd())
    }

    /// [`Context::fd_handler`] for a raw fd number.
    pub fn fd_handler_raw(&self, fd: RawFd) -> FdHandlerBuilder<'_> {
        FdHandlerBuilder {
            ctx: self,
            fd,
            read: None,
            write: None,
            io_poll: None,
            io_poll_ready: None,
        }
    }

    /// Runs `f` whenever `notifier` is signalled (`aio_set_event_notifier`).
    /// `f` should call [`EventNotifier::test_and_clear`]; the handler holds
    /// the notifier.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use qaio::api::EventNotifier;
    ///
    /// let ctx = qaio::api::Context::new().unwrap();
    /// let n = Arc::new(EventNotifier::new(false).unwrap());
    /// let _h = ctx.event_notifier_handler(&n, |_, n| assert!(n.test_and_clear())).unwrap();
    /// n.set().unwrap();
    /// assert!(ctx.poll(true));
    /// ```
    pub fn event_notifier_handler(
        &self,
        notifier: &Arc<EventNotifier>,
        f: impl Fn(&Context, &EventNotifier) + 'static,
    ) -> Result<FdHandler, Error> {
        let n = notifier.clone();
        self.fd_handler_raw(notifier.fd())
            .on_read(move |ctx| f(ctx, &n))
            .register()
    }
}

impl FdHandler {
    /// The fd.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Turns the read and write callbacks on or off (re-registering the
    /// handler, as QEMU code does): a writer enables `write` only while it
    /// has data queued. Userspace polling callbacks stay on.
    pub fn set_interest(&self, read: bool, write: bool) {
        if (read, write) != (self.read_on.get(), self.write_on.get()) {
            self.read_on.set(read);
            self.write_on.set(write);
            self.apply();
        }
    }

    fn apply(&self) {
        // SAFETY: the slot is alive while the handler is.
        let s = unsafe { &(*self.slot).val };
        let read: IoFn = (self.read_on.get() && s.read.is_some()).then_some(fd_read);
        let write: IoFn = (self.write_on.get() && s.write.is_some()).then_some(fd_write);
        let io_poll: PollFn = s.io_poll.is_some().then_some(fd_poll);
        let ready: IoFn = s.io_poll_ready.is_some().then_some(fd_poll_ready);
        if read.is_none() && write.is_none() && io_poll.is_none() {
            remove_if_ours(&self.ctx, self.fd, self.slot.cast());
        } else {
            handlers::set_fd_handler(
                self.ctx.core(),
                self.fd,
                read,
                write,
                io_poll,
                ready,
                self.slot.cast(),
            );
        }
    }
}

impl Drop for FdHandler {
    fn drop(&mut self) {
        remove_if_ours(&self.ctx, self.fd, self.slot.cast());
        // SAFETY: removed, so the core never calls it again; our one release.
        unsafe { Shared::release(self.slot) };
    }
}

impl std::fmt::Debug for FdHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FdHandler").field("fd", &self.fd).finish()
    }
}

/// A level-triggered wake-up object over an eventfd (`EventNotifier`):
/// [`set`](EventNotifier::set) from any thread, consumed with
/// [`test_and_clear`](EventNotifier::test_and_clear).
///
/// ```
/// let n = qaio::api::EventNotifier::new(true).unwrap();
/// assert!(n.test_and_clear());
/// assert!(!n.test_and_clear());
/// ```
pub struct EventNotifier {
    inner: CoreNotifier,
}

impl EventNotifier {
    /// Creates the notifier, signalled already if `active`.
    pub fn new(active: bool) -> Result<EventNotifier, Error> {
        let mut inner = CoreNotifier::uninit();
        inner.init(active)?;
        Ok(EventNotifier { inner })
    }

    /// Signals it. Any thread.
    pub fn set(&self) -> std::io::Result<()> {
        self.inner.set()
    }

    /// Consumes the signal; true if it was signalled.
    pub fn test_and_clear(&self) -> bool {
        self.inner.test_and_clear()
    }

    /// The fd to poll.
    pub fn fd(&self) -> RawFd {
        self.inner.rfd
    }
}

impl AsRawFd for EventNotifier {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

impl Drop for EventNotifier {
    fn drop(&mut self) {
        self.inner.cleanup();
    }
}

impl std::fmt::Debug for EventNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventNotifier")
            .field("fd", &self.fd())
            .finish()
    }
}

/// Readiness state of an [`AsyncFd`], shared with its fd handler.
struct FdState {
    fd: RawFd,
    src: *mut GSource,
    ready: [Cell<bool>; 2],
    wakers: [Cell<Option<Waker>>; 2],
    /// What the fd handler is registered for now.
    interest: [Cell<bool>; 2],
}

const READ: usize = 0;
const WRITE: usize = 1;

impl FdState {
    /// Registers the fd handler for the current interest (or removes it).
    fn apply(&self, slot: *mut Shared<FdState>) {
        // SAFETY: the context is alive: the AsyncFd holds a reference.
        let ctx = unsafe { Context::borrowed(self.src) };
        let read: IoFn = self.interest[READ].get().then_some(afd_read);
        let write: IoFn = self.interest[WRITE].get().then_some(afd_write);
        if read.is_none() && write.is_none() {
            remove_if_ours(&ctx, self.fd, slot.cast());
        } else {
            handlers::set_fd_handler(ctx.core(), self.fd, read, write, None, None, slot.cast());
        }
    }

    /// The fd is ready for `dir`: wakes the waiter, or, if nobody waits,
    /// stops watching that direction (a level-triggered fd nobody reads
    /// would wake the loop on every iteration).
    fn event(&self, slot: *mut Shared<FdState>, dir: usize) {
        self.ready[dir].set(true);
        match self.wakers[dir].take() {
            Some(w) => w.wake(),
            None => {
                self.interest[dir].set(false);
                self.apply(slot);
            }
        }
    }
}

unsafe extern "C" fn afd_read(opaque: *mut c_void) {
    let slot = opaque as *mut Shared<FdState>;
    // SAFETY: registered with the AsyncFd's live slot as opaque.
    unsafe { Shared::call(slot, |s| user("AsyncFd waker", || s.event(slot, READ))) };
}

unsafe extern "C" fn afd_write(opaque: *mut c_void) {
    let slot = opaque as *mut Shared<FdState>;
    // SAFETY: as in afd_read.
    unsafe { Shared::call(slot, |s| user("AsyncFd waker", || s.event(slot, WRITE))) };
}

/// An fd whose readiness tasks await: [`readable`](AsyncFd::readable) and
/// [`writable`](AsyncFd::writable) resolve once the loop saw the fd ready
/// (readiness may be spurious: use a non-blocking fd and retry on
/// `WouldBlock`). The fd handler is registered only while a task waits, so
/// an fd nobody awaits costs the loop nothing. The fd must stay open while
/// the `AsyncFd` lives.
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
///
/// let ctx = qaio::api::Context::new().unwrap();
/// let (mut a, mut b) = UnixStream::pair().unwrap();
/// a.set_nonblocking(true).unwrap();
/// let afd = ctx.async_fd(&a).unwrap();
/// b.write_all(b"hi").unwrap();
/// let got = ctx.block_on(async {
///     afd.readable().await;
///     let mut buf = [0; 2];
///     a.read_exact(&mut buf).unwrap();
///     buf
/// });
/// assert_eq!(&got, b"hi");
/// ```
pub struct AsyncFd {
    slot: *mut Shared<FdState>,
    ctx: Context,
}

impl Context {
    /// Wraps `fd` for awaiting its readiness. Fails with
    /// [`Error::FdInUse`] if the fd has a handler on this context.
    pub fn async_fd(&self, fd: &impl AsRawFd) -> Result<AsyncFd, Error> {
        let fd = fd.as_raw_fd();
        check_free(self, fd, std::ptr::null_mut())?;
        let slot = Shared::new(FdState {
            fd,
            src: self.src(),
            ready: [Cell::new(false), Cell::new(false)],
            wakers: [Cell::new(None), Cell::new(None)],
            interest: [Cell::new(false), Cell::new(false)],
        });
        Ok(AsyncFd {
            slot,
            ctx: self.clone(),
        })
    }
}

impl AsyncFd {
    /// The fd.
    pub fn fd(&self) -> RawFd {
        self.state().fd
    }

    fn state(&self) -> &FdState {
        // SAFETY: the slot is alive while the AsyncFd is.
        unsafe { &(*self.slot).val }
    }

    /// Resolves when the fd is readable (G_IO_IN, HUP or ERR).
    pub fn readable(&self) -> Readable<'_> {
        Readable(Wait {
            fd: self,
            dir: READ,
        })
    }

    /// Resolves when the fd is writable (G_IO_OUT or ERR).
    pub fn writable(&self) -> Writable<'_> {
        Writable(Wait {
            fd: self,
            dir: WRITE,
        })
    }

    fn poll_dir(&self, dir: usize, waker: &Waker) -> Poll<()> {
        let s = self.state();
        if s.ready[dir].replace(false) {
            return Poll::Ready(());
        }
        let old = s.wakers[dir].take();
        s.wakers[dir].set(Some(match old {
            Some(w) if w.will_wake(waker) => w,
            _ => waker.clone(),
        }));
        if !s.interest[dir].get() {
            s.interest[dir].set(true);
            s.apply(self.slot);
        }
        Poll::Pending
    }
}

impl Drop for AsyncFd {
    fn drop(&mut self) {
        remove_if_ours(&self.ctx, self.fd(), self.slot.cast());
        // SAFETY: removed; our one release.
        unsafe { Shared::release(self.slot) };
    }
}

impl std::fmt::Debug for AsyncFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncFd").field("fd", &self.fd()).finish()
    }
}

struct Wait<'a> {
    fd: &'a AsyncFd,
    dir: usize,
}

/// The future of [`AsyncFd::readable`].
#[must_use = "futures do nothing unless awaited"]
pub struct Readable<'a>(Wait<'a>);

/// The future of [`AsyncFd::writable`].
#[must_use = "futures do nothing unless awaited"]
pub struct Writable<'a>(Wait<'a>);

impl Future for Readable<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        self.0.fd.poll_dir(self.0.dir, cx.waker())
    }
}

impl Future for Writable<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        self.0.fd.poll_dir(self.0.dir, cx.waker())
    }
}
