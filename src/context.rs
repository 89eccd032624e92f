//! The AioContext object: creation, reference counting through its embedded
//! GSource, home-thread binding and finalization. Corresponds to the
//! context half of util/async.c and `aio_context_setup/destroy` in
//! util/aio-posix.c.
//!
//! Memory layout: glib allocates the object with `g_source_new`, so a
//! context *is* a GSource (its first member), and glib's last unref runs
//! [`finalize`]. The Rust state lives in its own allocation, pointed to from
//! the glib object: glib only guarantees 16-byte alignment, and the state
//! keeps cross-thread fields on separate cache lines (128-byte aligned).

use std::cell::{Cell, UnsafeCell};
use std::collections::BTreeSet;
use std::ffi::{c_int, c_void};
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, Ordering,
};

use crossbeam_utils::CachePadded;
use glib_sys::{GSource, GSourceFuncs};

use crate::abi::{AioContext, FdMonOpsRef, FdMonTables};
use crate::bh::{self, BhList, SliceQueue};
use crate::coroutine::{self, CoSchedule};
use crate::event_notifier::EventNotifier;
use crate::fdmon::{Kind, Monitor};
use crate::handlers::{self, AioHandlerList, Registry};
use crate::hooks;
use crate::lockcnt::{LockCnt, Visit};
use crate::notify::NotifyState;
use crate::timer::TimerListGroup;

/// QEMU's default upper bound of a context's thread pool.
pub const THREAD_POOL_MAX_THREADS_DEFAULT: c_int = 64;

/// The allocation glib makes for a context: the C view (its GSource and the
/// public fields) first, then ours.
#[repr(C)]
pub struct ContextObj {
    public: AioContext,
    /// NULL until the context is fully built; finalize does nothing before.
    ctx: *mut Context,
}

/// The state of one AioContext.
pub struct Context {
    // --- touched by any thread ---
    /// `notify_me` and `notified`: the wake-up protocol (see notify.rs).
    pub(crate) notify_state: CachePadded<NotifyState>,
    /// Newly scheduled BHs (lock-free LIFO push).
    pub(crate) bh_list: CachePadded<BhList>,
    /// The eventfd `aio_notify` writes to wake the loop.
    pub(crate) notifier: EventNotifier,
    pub(crate) handlers: LockCnt<Registry>,
    /// What visitors read of the registry without its lock: the handler
    /// chain, and the flag set while `handlers.deleted` is non-empty (which
    /// lets the loop skip the free pass, and its lock, in the common case).
    pub(crate) published: handlers::Published,
    /// Number of live handlers without `io_poll`.
    pub(crate) poll_disable_cnt: AtomicI32,
    pub(crate) poll_max_ns: AtomicI64,
    pub(crate) poll_grow: AtomicI64,
    pub(crate) poll_shrink: AtomicI64,
    /// Dropped by hand in finalize, before the notifier it pokes is closed.
    pub(crate) tlg: ManuallyDrop<TimerListGroup>,
    pub(crate) monitor: Monitor,
    /// Coroutines scheduled with `aio_co_schedule` and the BH entering them.
    pub(crate) co_schedule: CoSchedule,
    /// The program's thread pool (`aio_get_thread_pool`) and Linux AIO
    /// state (`aio_setup_linux_aio`), created on first use.
    pub(crate) thread_pool: AtomicPtr<c_void>,
    pub(crate) linux_aio: AtomicPtr<c_void>,
    /// The thread that runs this context's loop (0 = not bound yet).
    home: AtomicU64,
    /// Depth of `aio_poll` calls running now (nesting included).
    pub(crate) poll_depth: AtomicU32,
    /// True once glib has destroyed or started finalizing the source: glib
    /// poll records must not be touched any more.
    finalizing: AtomicBool,
    /// The glib object this state belongs to.
    source: *mut GSource,
    // --- home thread only ---
    pub(crate) bh_slices: SliceQueue,
    /// Handlers taking part in userspace polling.
    pub(crate) poll_list: UnsafeCell<AioHandlerList>,
    pub(crate) poll_started: Cell<bool>,
    /// What the public `fdmon_ops` points to for each monitor kind.
    fdmon_tables: FdMonTables,
}

// SAFETY: cross-thread fields are atomics or internally locked; the Cell
// fields are used by the home thread only (see the field comments).
unsafe impl Sync for Context {}
// SAFETY: as above.
unsafe impl Send for Context {}

impl Context {
    /// The context's GSource.
    pub fn gsource(&self) -> *mut GSource {
        self.source
    }

    /// False once glib may no longer be asked to change the source's poll
    /// records (destroyed, or being finalized).
    pub fn gsource_usable(&self) -> bool {
        if self.finalizing.load(Ordering::Acquire) {
            return false;
        }
        // SAFETY: the source is alive while the context is.
        unsafe { glib_sys::g_source_is_destroyed(self.gsource()) == glib_sys::GFALSE }
    }

    /// Returns the context behind a C pointer.
    ///
    /// # Safety
    /// `p` was returned by [`new`] and its last reference was not dropped.
    pub unsafe fn from_source<'a>(p: *mut GSource) -> &'a Context {
        // SAFETY: forwarded contract.
        let state = unsafe { Context::state(p) };
        debug_assert!(!state.is_null(), "AioContext used while being finalized");
        // SAFETY: per the contract the object is initialized.
        unsafe { &*state }
    }

    /// The state behind a C pointer: NULL before [`new`] finished and from
    /// [`finalize`] on, while glib still holds the object (its
    /// `g_source_set_callback` destroy notify runs after finalize). The C
    /// boundary checks it (`ffi::aio::ctx_ref`).
    ///
    /// # Safety
    /// `p` was returned by [`new`] and glib has not freed it.
    pub unsafe fn state(p: *mut GSource) -> *mut Context {
        // SAFETY: per the contract the glib object is allocated.
        unsafe { (*(p as *mut ContextObj)).ctx }
    }

    /// `aio_poll_disabled`: some live handler cannot be polled from
    /// userspace.
    pub fn poll_disabled(&self) -> bool {
        self.poll_disable_cnt.load(Ordering::Relaxed) != 0
    }

    /// The name of the fd monitor in use right now.
    pub fn fdmon_kind(&self) -> Kind {
        self.monitor.kind()
    }

    /// Checks that the caller runs in the context's home thread, binding the
    /// context to the calling thread on first use. Aborts otherwise. Returns
    /// false for the one other thread allowed in: the BQL holder running the
    /// main context's loop (it must not make owner visits of the handler
    /// lists, see `lockcnt`).
    #[inline]
    pub fn check_home(&self, func: &str) -> bool {
        if self.home.load(Ordering::Relaxed) == crate::sys::thread_id() {
            return true;
        }
        self.check_home_slow(func)
    }

    /// `check_home` for a thread that is not (yet) the home thread: out of
    /// line, so that callers' fast paths save no registers for it.
    #[cold]
    #[inline(never)]
    fn check_home_slow(&self, func: &str) -> bool {
        // Not `me`: `check_home` just saw another value, and only this
        // thread stores `me`.
        let me = crate::sys::thread_id();
        let home = self.home.load(Ordering::Relaxed);
        if home == 0
            && self
                .home
                .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return true;
        }
        // QEMU's rule: the BQL holder may run the main context's loop.
        if ptr::eq(main_context_if_bql_held(), self.gsource()) {
            return false;
        }
        // A thread that made this context current takes it over, provided
        // nobody is inside aio_poll on it nor in a GSource callback of the
        // old home thread (its owner visit of the handler lists).
        if ptr::eq(current_raw(), self.gsource())
            && self.poll_depth.load(Ordering::Acquire) == 0
            && self.handlers.owner_visits() == 0
        {
            self.home.store(me, Ordering::Release);
            return true;
        }
        crate::abi::misuse(
            func,
            "called outside the AioContext's home thread (the thread that made it current with \
             qemu_set_current_aio_context, or else the first thread that polled it)",
        );
    }

    /// True if the calling thread is the context's home thread (no binding,
    /// no abort: for choosing a cheaper path).
    #[inline]
    pub fn is_home(&self) -> bool {
        self.home.load(Ordering::Relaxed) == crate::sys::thread_id()
    }

    /// Starts a visit of the handler lists outside `aio_poll` (the GSource
    /// callbacks): an owner visit on the home thread, a shared one elsewhere.
    #[inline]
    pub(crate) fn visit_handlers(&self) -> Visit {
        self.handlers.inc_visit(self.is_home())
    }

    /// Binds the context to the calling thread (`qemu_set_current_aio_context`).
    pub(crate) fn bind_home(&self) {
        self.home.store(crate::sys::thread_id(), Ordering::Release);
    }

    /// Sets the adaptive polling parameters; resets every handler's poll
    /// time.
    pub fn set_poll_params(&self, max_ns: i64, grow: i64, shrink: i64) {
        self.handlers.inc();
        {
            let reg = self.handlers.lock();
            for n in self.published.nodes(&reg) {
                // SAFETY: alive while the lock is held.
                unsafe { &*n }.poll_ns.store(0, Ordering::Relaxed);
            }
        }
        self.poll_max_ns.store(max_ns, Ordering::Relaxed);
        self.poll_grow.store(grow, Ordering::Relaxed);
        self.poll_shrink.store(shrink, Ordering::Relaxed);
        self.handlers.dec();
        self.notify();
    }

    /// Points the public `fdmon_ops` at the table of the monitor in use;
    /// called whenever the monitor switches.
    pub(crate) fn publish_fdmon(&self) {
        let table = self.fdmon_tables.0[self.fdmon_kind() as usize];
        // SAFETY: the public head lives as long as the context; the store is
        // atomic because C may read it in the home thread meanwhile.
        unsafe {
            AtomicPtr::from_ptr((&raw mut (*self.public()).fdmon_ops).cast::<*mut FdMonOpsRef>())
        }
        .store(table.cast_mut(), Ordering::Release);
    }

    /// The fields C code reads directly.
    pub fn public(&self) -> *mut AioContext {
        self.source.cast()
    }

    pub fn set_aio_params(&self, max_batch: i64) {
        // SAFETY: the public head lives as long as the context; QEMU's code
        // reads it plainly in the home thread, as QEMU itself writes it.
        unsafe { (*self.public()).aio_max_batch = max_batch };
        self.notify();
    }
}

/// The GSource addresses of the contexts alive now, from the end of [`new`]
/// to the start of [`finalize`]. It lets `aio_context_ref/unref` refuse a
/// finalized context before touching its (maybe freed) memory: an address
/// found here is a live object. Taken only by new, finalize and the C
/// ref/unref, never on the `aio_poll` path. An address glib reused for a
/// newer context still looks live: that case stays undetectable.
static LIVE: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

fn live_set() -> std::sync::MutexGuard<'static, BTreeSet<usize>> {
    // Panics abort at the C boundary, so a poisoned set is still consistent.
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// True if `p` is the GSource of a context that was created and not yet
/// finalized.
pub fn is_live(p: *mut GSource) -> bool {
    live_set().contains(&(p as usize))
}

/// The calling thread's current context (as its GSource), or NULL.
pub fn current_raw() -> *mut GSource {
    crate::sys::current_slot::get().cast()
}

/// The main loop's context of a program with a big lock (QEMU's BQL), if
/// the calling thread holds that lock: such a thread may treat the main
/// context as its own, as in QEMU. NULL in a program without the hooks.
fn main_context_if_bql_held() -> *mut GSource {
    match (hooks::bql_locked(), hooks::qemu_get_aio_context()) {
        // SAFETY: the program's own functions, callable from any thread.
        (Some(locked), Some(main)) if unsafe { locked() } => unsafe { main() }.cast(),
        _ => ptr::null_mut(),
    }
}

/// `qemu_get_current_aio_context`: the calling thread's current context;
/// else the main loop's context if the thread holds the program's big lock;
/// else NULL.
pub fn current_for_program() -> *mut GSource {
    let cur = current_raw();
    if cur.is_null() {
        main_context_if_bql_held()
    } else {
        cur
    }
}

/// Makes `ctx` (a context's GSource, or NULL to clear) the calling thread's
/// current context.
pub fn set_current_raw(ctx: *mut GSource) {
    crate::sys::current_slot::set(ctx.cast());
}

/// The context's own notifier: drains the eventfd. Its activity is never
/// progress.
unsafe extern "C" fn notifier_read(opaque: *mut c_void) {
    // SAFETY: opaque is the context's EventNotifier.
    unsafe { &*(opaque as *const EventNotifier) }.test_and_clear();
}

/// Userspace poll of the context's notifier: has `aio_notify` run?
unsafe extern "C" fn notifier_poll(opaque: *mut c_void) -> bool {
    let offset = std::mem::offset_of!(Context, notifier);
    // SAFETY: opaque is the `notifier` field of a live Context.
    let ctx = unsafe { &*((opaque as *const u8).sub(offset) as *const Context) };
    ctx.notify_state.notified()
}

unsafe extern "C" fn notifier_poll_ready(_opaque: *mut c_void) {}

/// The notify callback of the context's timer lists (aio_timerlist_notify).
unsafe extern "C" fn timer_notify(opaque: *mut c_void, _type: crate::timer::QEMUClockType) {
    // SAFETY: opaque is the Context that owns the timer list group.
    unsafe { &*(opaque as *const Context) }.notify();
}

/// Creates a context (`aio_context_new`): refcount 1. `funcs` are the glib
/// callbacks of its GSource (the C layer's `aio_ctx_*` shims); glib's last
/// unref calls their `finalize`, which must call [`finalize`].
pub fn new(
    funcs: &'static GSourceFuncs,
    fdmon_tables: FdMonTables,
) -> Result<*mut GSource, String> {
    new_with_fdmon(funcs, fdmon_tables, Kind::from_env()?)
}

/// [`new`] with the fd monitor chosen by the caller (`None`: io_uring where
/// the kernel allows it, else poll(2)) instead of `QAIO_FDMON`.
pub fn new_with_fdmon(
    funcs: &'static GSourceFuncs,
    fdmon_tables: FdMonTables,
    forced: Option<Kind>,
) -> Result<*mut GSource, String> {
    let mut notifier = EventNotifier::uninit();
    notifier.init(false).map_err(|e| {
        format!(
            "Failed to initialize event notifier: {}",
            crate::sys::strerror(&e)
        )
    })?;
    let monitor = match Monitor::new(forced) {
        Ok(m) => m,
        Err(e) => {
            notifier.cleanup();
            return Err(e);
        }
    };
    // SAFETY: glib allocates a zeroed object of the given size whose first
    // member is the GSource; glib never writes to `funcs`.
    let src = unsafe {
        glib_sys::g_source_new(
            ptr::from_ref(funcs).cast_mut(),
            std::mem::size_of::<ContextObj>() as u32,
        )
    };
    let obj = src as *mut ContextObj;
    let state: Box<MaybeUninit<Context>> = Box::new_uninit();
    let state = Box::into_raw(state) as *mut Context;
    // SAFETY: `state` is a fresh allocation, written exactly once here
    // before anyone reads it; the timer lists keep its (final) address.
    let ctx: &Context = unsafe {
        state.write(Context {
            notify_state: CachePadded::new(NotifyState::new()),
            bh_list: CachePadded::new(BhList::new()),
            notifier,
            handlers: LockCnt::new(Registry::default()),
            published: handlers::Published::new(),
            poll_disable_cnt: AtomicI32::new(0),
            poll_max_ns: AtomicI64::new(0),
            poll_grow: AtomicI64::new(0),
            poll_shrink: AtomicI64::new(0),
            co_schedule: CoSchedule::new(),
            thread_pool: AtomicPtr::new(ptr::null_mut()),
            linux_aio: AtomicPtr::new(ptr::null_mut()),
            tlg: ManuallyDrop::new(TimerListGroup::new(
                Some(timer_notify),
                state as *mut c_void,
            )),
            monitor,
            home: AtomicU64::new(0),
            poll_depth: AtomicU32::new(0),
            finalizing: AtomicBool::new(false),
            bh_slices: SliceQueue::new(),
            poll_list: UnsafeCell::new(AioHandlerList::default()),
            poll_started: Cell::new(false),
            fdmon_tables,
            source: src,
        });
        &*state
    };
    // SAFETY: src is a valid GSource.
    unsafe { glib_sys::g_source_set_can_recurse(src, glib_sys::GTRUE) };
    ctx.monitor.attach_gsource(ctx);
    handlers::set_fd_handler(
        ctx,
        ctx.notifier.rfd,
        Some(notifier_read),
        None,
        Some(notifier_poll),
        Some(notifier_poll_ready),
        ptr::addr_of!(ctx.notifier) as *mut c_void,
    );
    coroutine::init(ctx);
    // SAFETY: obj is ours until returned; glib zeroed it.
    unsafe {
        (*obj).public.thread_pool_max = THREAD_POOL_MAX_THREADS_DEFAULT;
        (*obj).public.tlg.tl = (*ctx.tlg.as_c_group()).tl;
        (*obj).public.fdmon_ops = fdmon_tables.0[ctx.fdmon_kind() as usize];
        (*obj).ctx = state;
    }
    if let Some(register) = hooks::register_aiocontext() {
        // SAFETY: the program's graph-lock hook, given the finished context.
        unsafe { register(src.cast()) };
    }
    live_set().insert(src as usize);
    Ok(src)
}

/// The GSource finalize callback: runs when the last reference goes, in the
/// thread that dropped it.
///
/// # Safety
/// `src` is a context's GSource being finalized by glib.
pub unsafe fn finalize(src: *mut GSource) {
    let obj = src as *mut ContextObj;
    // SAFETY: glib passes our own object.
    let state = unsafe { (*obj).ctx };
    if state.is_null() {
        return;
    }
    live_set().remove(&(src as usize));
    // SAFETY: initialized, and nobody else holds a reference any more.
    let ctx = unsafe { &mut *state };
    // glib frees the source's poll records itself from here on.
    ctx.finalizing.store(true, Ordering::Release);
    let pool = ctx.thread_pool.swap(ptr::null_mut(), Ordering::AcqRel);
    if let (false, Some(free)) = (pool.is_null(), hooks::thread_pool_free_aio()) {
        // SAFETY: the pool the program's thread_pool_new_aio made for us.
        unsafe { free(pool) };
    }
    if let Some(laio) = ptr::NonNull::new(ctx.linux_aio.swap(ptr::null_mut(), Ordering::AcqRel)) {
        // SAFETY: the state the program's laio_init made; both hooks exist
        // since laio_init did.
        unsafe {
            if let Some(detach) = hooks::laio_detach_aio_context() {
                detach(laio.as_ptr(), src.cast());
            }
            if let Some(cleanup) = hooks::laio_cleanup() {
                cleanup(laio.as_ptr());
            }
        }
    }
    coroutine::finalize(ctx);
    bh::finalize(ctx);
    if ctx.tlg.has_pending_timers() {
        crate::abi::misuse(
            "aio_ctx_finalize",
            "a timer is still armed on the context (timer_del every timer before the last aio_context_unref)",
        );
    }
    // Handlers still registered are freed without being called.
    let mut reg = std::mem::take(ctx.handlers.get_mut());
    let mut monitor = std::mem::replace(&mut ctx.monitor, Monitor::placeholder());
    monitor.destroy(ctx, &mut reg);
    handlers::finalize(&mut reg, &ctx.published);
    // The timer lists go first: until they leave the clock registry, a
    // qemu_clock_enable in another thread may still notify this context.
    // SAFETY: dropped exactly once; nothing uses the lists afterwards.
    unsafe { ManuallyDrop::drop(&mut ctx.tlg) };
    if let Some(unregister) = hooks::unregister_aiocontext() {
        // SAFETY: the program's graph-lock hook; the object is still valid.
        unsafe { unregister(src.cast()) };
    }
    ctx.notifier.cleanup();
    drop(monitor);
    // SAFETY: the state is freed exactly once, here; glib frees `obj`.
    unsafe {
        (*obj).ctx = ptr::null_mut();
        drop(Box::from_raw(state));
    }
}
