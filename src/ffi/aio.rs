//! C API of `qemu/aio.h`: contexts, bottom halves, notification, fd
//! handlers, the loop and context timers.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use glib_sys::GSource;

use super::error::{Error, set_error};
use super::{guard, misuse};
use crate::abi::{
    AioContext, Coroutine, EventNotifier, LinuxAioState, MemReentrancyGuard, QEMUClockType,
    QEMUTimer, ThreadPoolAio,
};
use crate::bh::{BH_IDLE, BH_ONESHOT, BH_SCHEDULED, Bh};
use crate::context::{self, Context};
use crate::handlers;
use crate::{bh, coroutine, hooks, poll};
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

/// A bottom half: a callback scheduled from any thread and run by its
/// context's loop.
pub struct QEMUBH {
    _opaque: [u8; 0],
}

/// Turns a C context pointer into the context, aborting on NULL.
pub(crate) fn ctx_ref<'a>(func: &str, ctx: *mut AioContext) -> &'a Context {
    if ctx.is_null() {
        misuse(func, "ctx must not be NULL");
    }
    // SAFETY: non-NULL contexts passed by C were created by aio_context_new
    // and glib has not freed them (the caller's contract).
    let state = unsafe { Context::state(ctx as *mut GSource) };
    // The one check on the hot path: a context whose state is gone is being
    // finalized (called from a GSource destroy notify, say).
    if state.is_null() {
        misuse(
            func,
            "the AioContext is being finalized (its last reference was dropped)",
        );
    }
    // SAFETY: the state is alive until finalize clears the pointer.
    unsafe { &*state }
}

fn bh_ptr(func: &str, bh: *mut QEMUBH) -> *mut Bh {
    if bh.is_null() {
        misuse(func, "bh must not be NULL");
    }
    bh as *mut Bh
}

/// Creates a new AioContext with one reference. Any thread. The fd monitor
/// is io_uring where the kernel allows it, else poll(2) with a lazy switch
/// to epoll; the environment variable QAIO_FDMON=poll|epoll|io_uring forces
/// one. On failure (no file descriptors left, a forced monitor that cannot
/// start, an unknown QAIO_FDMON value) returns NULL and sets `errp`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_context_new(errp: *mut *mut Error) -> *mut AioContext {
    guard("aio_context_new", || {
        match context::new(&super::gsource::AIO_SOURCE_FUNCS, super::fdmon::tables()) {
            Ok(src) => src as *mut AioContext,
            Err(msg) => {
                // SAFETY: errp follows the Error ** convention.
                unsafe { set_error("aio_context_new", errp, msg) };
                ptr::null_mut()
            }
        }
    })
}

/// Aborts unless `ctx` is a context that was created and not yet finalized
/// (checked before its memory is touched, which may be freed).
fn live_ctx_ref<'a>(func: &str, ctx: *mut AioContext) -> &'a Context {
    if !ctx.is_null() && !context::is_live(ctx as *mut GSource) {
        misuse(
            func,
            "ctx was already finalized (more aio_context_unref calls than references)",
        );
    }
    ctx_ref(func, ctx)
}

/// Takes a reference to `ctx`. Any thread. Aborts if `ctx` was already
/// finalized (unless glib reused its address for a newer context).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_context_ref(ctx: *mut AioContext) {
    guard("aio_context_ref", || {
        live_ctx_ref("aio_context_ref", ctx);
        // SAFETY: ctx is a live GSource.
        unsafe { glib_sys::g_source_ref(ctx as *mut GSource) };
    })
}

/// Drops a reference to `ctx`. Any thread. The last one finalizes the
/// context in the calling thread: registered handlers are freed without
/// being called; a BH that was not deleted, or an armed timer, aborts
/// (QEMU asserts on both). Also aborts if the last reference would go while
/// the GSource is still attached to a GMainContext (glib would warn, then
/// free a source it still uses), and if `ctx` was already finalized (unless
/// glib reused its address for a newer context).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_context_unref(ctx: *mut AioContext) {
    const FUNC: &str = "aio_context_unref";
    guard(FUNC, || {
        live_ctx_ref(FUNC, ctx);
        let src = ctx as *mut GSource;
        // SAFETY: ctx is a live GSource. glib updates ref_count atomically;
        // `context` is written under the GMainContext's lock, so this read
        // can only race with an attach the caller makes in another thread
        // while dropping its last reference, itself a misuse.
        let (refs, attached) = unsafe {
            (
                AtomicU32::from_ptr(&raw mut (*src).ref_count).load(Ordering::Acquire),
                !AtomicPtr::from_ptr(&raw mut (*src).context)
                    .load(Ordering::Relaxed)
                    .is_null(),
            )
        };
        // The one reference left is the GMainContext's own.
        // SAFETY: ctx is a live GSource.
        if refs == 1 && attached && unsafe { glib_sys::g_source_is_destroyed(src) } == 0 {
            misuse(
                FUNC,
                "the last reference would be dropped while the context's GSource is still \
                 attached to a GMainContext (g_source_destroy it first)",
            );
        }
        // SAFETY: ctx is a live GSource holding at least this reference.
        unsafe { glib_sys::g_source_unref(src) };
    })
}

/// Returns the context's GSource with a new reference (release it with
/// g_source_unref). Attach it to a GMainContext to drive the context from
/// glib; it works with every fd monitor.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_get_g_source(ctx: *mut AioContext) -> *mut GSource {
    guard("aio_get_g_source", || {
        ctx_ref("aio_get_g_source", ctx);
        // SAFETY: ctx is a live GSource.
        unsafe { glib_sys::g_source_ref(ctx as *mut GSource) }
    })
}

/// The calling thread's current AioContext, or NULL if it never set one.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_get_current_aio_context() -> *mut AioContext {
    guard("qemu_get_current_aio_context", || {
        context::current_for_program() as *mut AioContext
    })
}

/// Makes `ctx` the calling thread's current AioContext and its home thread
/// (the thread where `aio_poll` may run). qaio extension: NULL clears it.
/// Setting a different context while one is set aborts, as in QEMU.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_set_current_aio_context(ctx: *mut AioContext) {
    guard("qemu_set_current_aio_context", || {
        let cur = context::current_raw();
        if !ctx.is_null() && !cur.is_null() && cur != ctx as *mut GSource {
            misuse(
                "qemu_set_current_aio_context",
                "the thread already has a current AioContext (clear it with qemu_set_current_aio_context(NULL) first)",
            );
        }
        if !ctx.is_null() {
            ctx_ref("qemu_set_current_aio_context", ctx).bind_home();
        }
        context::set_current_raw(ctx as *mut GSource);
    })
}

/// Sets adaptive userspace polling: poll up to `max_ns` per iteration
/// (0 disables polling), growing and shrinking each handler's poll time by
/// `grow` and `shrink` (0 = double / reset). Resets every handler's poll
/// time. `errp` is never set. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_context_set_poll_params(
    ctx: *mut AioContext,
    max_ns: i64,
    grow: i64,
    shrink: i64,
    errp: *mut *mut Error,
) {
    // Like QEMU, no validation happens here (errp is never set).
    let _ = errp;
    guard("aio_context_set_poll_params", || {
        ctx_ref("aio_context_set_poll_params", ctx).set_poll_params(max_ns, grow, shrink)
    })
}

/// Sets the maximum batch size of AIO engines using this context (0 = the
/// engine's default). Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_context_set_aio_params(ctx: *mut AioContext, max_batch: i64) {
    guard("aio_context_set_aio_params", || {
        ctx_ref("aio_context_set_aio_params", ctx).set_aio_params(max_batch)
    })
}

/// Sets the bounds of `ctx`'s thread pool (QEMU's iothread and main-loop
/// `thread-pool-min`/`thread-pool-max` properties) and, if the pool exists,
/// tells it. Bad values (`min > max`, `max <= 0`, `min < 0`, above INT_MAX)
/// set `errp` and change nothing. Home thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_context_set_thread_pool_params(
    ctx: *mut AioContext,
    min: i64,
    max: i64,
    errp: *mut *mut Error,
) {
    const FUNC: &str = "aio_context_set_thread_pool_params";
    guard(FUNC, || {
        let c = ctx_ref(FUNC, ctx);
        let int_max = i64::from(c_int::MAX);
        if min > max || max <= 0 || min < 0 || min > int_max || max > int_max {
            // SAFETY: errp follows the Error ** convention.
            unsafe {
                set_error(
                    FUNC,
                    errp,
                    "bad thread-pool-min/thread-pool-max values".into(),
                )
            };
            return;
        }
        // SAFETY: the public head of a live context; checked to fit in int.
        unsafe {
            (*ctx).thread_pool_min = min as c_int;
            (*ctx).thread_pool_max = max as c_int;
        }
        let pool = c.thread_pool.load(Ordering::Acquire);
        if let (false, Some(update)) = (pool.is_null(), hooks::thread_pool_update_params()) {
            // SAFETY: the program's pool of this context.
            unsafe { update(pool, ctx.cast()) };
        }
    })
}

/// The thread pool bound to `ctx` (QEMU's `ThreadPoolAio`), created by the
/// program's `thread_pool_new_aio` on first call and freed with the context.
/// Home thread. Aborts in a program without a thread pool.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_get_thread_pool(ctx: *mut AioContext) -> *mut ThreadPoolAio {
    const FUNC: &str = "aio_get_thread_pool";
    guard(FUNC, || {
        let c = ctx_ref(FUNC, ctx);
        let pool = c.thread_pool.load(Ordering::Acquire);
        if !pool.is_null() {
            return pool.cast();
        }
        let new = hooks::thread_pool_new_aio().unwrap_or_else(|| {
            misuse(
                FUNC,
                "no thread pool: the program does not define thread_pool_new_aio \
                 (link QEMU's util/thread-pool.c)",
            )
        });
        // SAFETY: the program's constructor, given a live context.
        let pool = unsafe { new(ctx.cast()) };
        c.thread_pool.store(pool, Ordering::Release);
        pool.cast()
    })
}

/// Sets up Linux AIO for `ctx` on first call (the program's `laio_init` and
/// `laio_attach_aio_context`) and returns its state; on failure returns NULL
/// with `errp` set by `laio_init`. Home thread. Aborts in a program without
/// Linux AIO.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_setup_linux_aio(
    ctx: *mut AioContext,
    errp: *mut *mut Error,
) -> *mut LinuxAioState {
    const FUNC: &str = "aio_setup_linux_aio";
    guard(FUNC, || {
        let c = ctx_ref(FUNC, ctx);
        let cur = c.linux_aio.load(Ordering::Acquire);
        if !cur.is_null() {
            return cur.cast();
        }
        let (Some(init), Some(attach)) = (hooks::laio_init(), hooks::laio_attach_aio_context())
        else {
            misuse(
                FUNC,
                "no Linux AIO: the program does not define laio_init and laio_attach_aio_context \
                 (link QEMU's block/linux-aio.c)",
            )
        };
        // SAFETY: the program's functions, called as QEMU's async.c does.
        let state = unsafe { init(errp.cast()) };
        if !state.is_null() {
            // SAFETY: as above.
            unsafe { attach(state, ctx.cast()) };
            c.linux_aio.store(state, Ordering::Release);
        }
        state.cast()
    })
}

/// The Linux AIO state of `ctx`; `aio_setup_linux_aio` must have succeeded
/// before (aborts otherwise, as QEMU asserts). Home thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_get_linux_aio(ctx: *mut AioContext) -> *mut LinuxAioState {
    const FUNC: &str = "aio_get_linux_aio";
    guard(FUNC, || {
        let state = ctx_ref(FUNC, ctx).linux_aio.load(Ordering::Acquire);
        if state.is_null() {
            misuse(
                FUNC,
                "Linux AIO is not set up (call aio_setup_linux_aio first)",
            );
        }
        state.cast()
    })
}

/// Enters `co` from `ctx`'s loop, soon: the coroutine joins the context's
/// list of scheduled coroutines, which a BH enters in scheduling order. Any
/// thread. Scheduling a coroutine that is already scheduled aborts with
/// "Co-routine was already scheduled in '<function>'". Needs the program's
/// coroutine runtime (QEMU's `qemu_aio_coroutine_enter`); aborts without it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_co_schedule(ctx: *mut AioContext, co: *mut Coroutine) {
    guard("aio_co_schedule", || {
        let c = ctx_ref("aio_co_schedule", ctx);
        // SAFETY: co is a live coroutine that is not running (contract).
        unsafe { coroutine::schedule(c, co_arg("aio_co_schedule", co)) }
    })
}

/// Moves the calling coroutine to `new_ctx`: it yields, and continues in
/// `new_ctx`'s thread. Nothing happens if `new_ctx` is already the current
/// context. Only inside a coroutine (`coroutine_fn`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_co_reschedule_self(new_ctx: *mut AioContext) {
    guard("aio_co_reschedule_self", || {
        ctx_ref("aio_co_reschedule_self", new_ctx);
        // SAFETY: a live context, called from a coroutine (contract).
        unsafe { coroutine::reschedule_self(new_ctx.cast()) }
    })
}

/// Restarts `co`, which yielded, in the AioContext it last ran in (see
/// `aio_co_enter`). Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_co_wake(co: *mut Coroutine) {
    guard("aio_co_wake", || {
        // SAFETY: co is a live coroutine that yielded (contract).
        unsafe { coroutine::wake(co_arg("aio_co_wake", co)) }
    })
}

/// Runs `co` in `ctx`: scheduled there (`aio_co_schedule`) when `ctx` is not
/// the calling thread's current context; queued to run when the calling
/// coroutine yields or ends, when called from a coroutine; entered at once
/// otherwise. Any thread. `ctx` may be NULL when the calling thread has no
/// current context either (a coroutine run outside any event loop).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_co_enter(ctx: *mut AioContext, co: *mut Coroutine) {
    guard("aio_co_enter", || {
        if !ctx.is_null() {
            ctx_ref("aio_co_enter", ctx);
        }
        // SAFETY: live context and coroutine (contract).
        unsafe { coroutine::enter(ctx.cast(), co_arg("aio_co_enter", co)) }
    })
}

fn co_arg(func: &str, co: *mut Coroutine) -> *mut Coroutine {
    if co.is_null() {
        misuse(func, "co must not be NULL");
    }
    co
}

/// qaio extension: the fd monitor `ctx` uses right now, "poll", "epoll" or
/// "io_uring" (a poll(2) context reports "epoll" after its lazy switch, and
/// an epoll context "poll" after falling back). The string is static.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qaio_context_fdmon_name(ctx: *mut AioContext) -> *const c_char {
    guard("qaio_context_fdmon_name", || {
        ctx_ref("qaio_context_fdmon_name", ctx)
            .fdmon_kind()
            .c_name()
            .as_ptr()
    })
}

/// Creates an unscheduled BH of `ctx` that runs `cb(opaque)`. `name` (used in
/// diagnostics) must outlive the BH. If `reentrancy_guard` is not NULL, its
/// `engaged_in_io` is set while the callback runs. Any thread. Free it with
/// `qemu_bh_delete`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_bh_new_full(
    ctx: *mut AioContext,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
    name: *const c_char,
    reentrancy_guard: *mut MemReentrancyGuard,
) -> *mut QEMUBH {
    guard("aio_bh_new_full", || {
        let c = ctx_ref("aio_bh_new_full", ctx);
        Bh::new(c, cb, opaque, name, reentrancy_guard, 0) as *mut QEMUBH
    })
}

/// Schedules a one-shot BH running `cb(opaque)` on `ctx`; it is freed after
/// it ran. Any thread; wakes the loop.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_bh_schedule_oneshot_full(
    ctx: *mut AioContext,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
    name: *const c_char,
) {
    guard("aio_bh_schedule_oneshot_full", || {
        let c = ctx_ref("aio_bh_schedule_oneshot_full", ctx);
        let bh = Bh::new(c, cb, opaque, name, ptr::null_mut(), 0);
        // SAFETY: a fresh BH, owned by the loop from now on.
        unsafe { Bh::enqueue(bh, BH_SCHEDULED | BH_ONESHOT) };
    })
}

/// Schedules `bh` to run once in its context's next `aio_bh_poll`. Wait-free;
/// any thread; wakes the loop. Scheduling a pending BH again does nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_bh_schedule(bh: *mut QEMUBH) {
    guard("qemu_bh_schedule", || {
        // SAFETY: bh is a live BH (the caller's contract).
        unsafe { Bh::enqueue(bh_ptr("qemu_bh_schedule", bh), BH_SCHEDULED) }
    })
}

/// Like `qemu_bh_schedule`, for an idle BH: its run is not progress and it
/// lets the loop sleep up to 10 ms before running it. (Inside QEMU,
/// declared by QEMU's qemu/main-loop.h instead.)
#[cfg(not(qaio_in_qemu))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_bh_schedule_idle(bh: *mut QEMUBH) {
    guard("qemu_bh_schedule_idle", || {
        // SAFETY: bh is a live BH (the caller's contract).
        unsafe { Bh::enqueue(bh_ptr("qemu_bh_schedule_idle", bh), BH_SCHEDULED | BH_IDLE) }
    })
}

/// Cancels a scheduled run of `bh`; it stays queued and is dropped without
/// running by the next `aio_bh_poll`. Any thread. Cancelling an unscheduled
/// BH does nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_bh_cancel(bh: *mut QEMUBH) {
    guard("qemu_bh_cancel", || {
        // SAFETY: bh is a live BH (the caller's contract).
        unsafe { &*bh_ptr("qemu_bh_cancel", bh) }.cancel()
    })
}

/// Deletes `bh`: it will not run again and is freed asynchronously by its
/// context's loop. Any thread, including from the BH's own callback. The
/// caller must not use `bh` afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_bh_delete(bh: *mut QEMUBH) {
    guard("qemu_bh_delete", || {
        // SAFETY: bh is a live BH (the caller's contract).
        unsafe { Bh::enqueue(bh_ptr("qemu_bh_delete", bh), crate::bh::BH_DELETED) }
    })
}

/// Runs `bh`'s callback now, with its reentrancy guard engaged. Home thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_bh_call(bh: *mut QEMUBH) {
    guard("aio_bh_call", || {
        // SAFETY: bh is a live BH (the caller's contract).
        unsafe { Bh::call(bh_ptr("aio_bh_call", bh)) }
    })
}

/// Runs the scheduled BHs of `ctx` (most recently scheduled first); BHs
/// scheduled meanwhile wait for the next call. Home thread. Returns 1 if a
/// non-idle BH ran, else 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_bh_poll(ctx: *mut AioContext) -> c_int {
    guard("aio_bh_poll", || {
        let c = ctx_ref("aio_bh_poll", ctx);
        c.check_home("aio_bh_poll");
        bh::poll(c) as c_int
    })
}

/// Forces the next (or the current, blocked) `aio_poll` or glib iteration of
/// `ctx` to return. Any thread. Cheap when nobody sleeps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_notify(ctx: *mut AioContext) {
    guard("aio_notify", || ctx_ref("aio_notify", ctx).notify())
}

/// Consumes a pending `aio_notify` (clears the `notified` flag; the eventfd
/// is drained by the context's own handler). Home thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_notify_accept(ctx: *mut AioContext) {
    guard("aio_notify_accept", || {
        ctx_ref("aio_notify_accept", ctx).notify_accept()
    })
}

/// Registers, replaces or (all callbacks NULL) removes the handler of `fd`.
/// `io_read` runs on G_IO_IN/HUP/ERR, `io_write` on G_IO_OUT/ERR (read
/// first); `io_poll` is a cheap userspace readiness check used by adaptive
/// polling, with `io_poll_ready` run when it succeeds (`io_poll` without
/// `io_poll_ready` is ignored). One handler per fd: a new registration
/// replaces every callback and `opaque`. Safe from any thread and from any
/// callback, including the handler's own; a removed handler's callbacks are
/// not called again. Wakes the loop.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_set_fd_handler(
    ctx: *mut AioContext,
    fd: c_int,
    io_read: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    io_write: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    io_poll: Option<unsafe extern "C" fn(opaque: *mut c_void) -> bool>,
    io_poll_ready: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) {
    guard("aio_set_fd_handler", || {
        let c = ctx_ref("aio_set_fd_handler", ctx);
        handlers::set_fd_handler(c, fd, io_read, io_write, io_poll, io_poll_ready, opaque)
    })
}

type NotifierFn = Option<unsafe extern "C" fn(e: *mut EventNotifier)>;

fn notifier_cb(f: NotifierFn) -> handlers::IoFn {
    // SAFETY: both are C function pointers taking one pointer argument; C
    // passes the EventNotifier as the opaque pointer.
    f.map(|f| unsafe {
        std::mem::transmute::<
            unsafe extern "C" fn(*mut EventNotifier),
            unsafe extern "C" fn(*mut c_void),
        >(f)
    })
}

/// `aio_set_fd_handler` for the read side of an EventNotifier: the
/// callbacks receive `notifier`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_set_event_notifier(
    ctx: *mut AioContext,
    notifier: *mut EventNotifier,
    io_read: Option<unsafe extern "C" fn(e: *mut EventNotifier)>,
    io_poll: Option<unsafe extern "C" fn(opaque: *mut c_void) -> bool>,
    io_poll_ready: Option<unsafe extern "C" fn(e: *mut EventNotifier)>,
) {
    guard("aio_set_event_notifier", || {
        let c = ctx_ref("aio_set_event_notifier", ctx);
        if notifier.is_null() {
            misuse("aio_set_event_notifier", "notifier must not be NULL");
        }
        // SAFETY: notifier is a valid EventNotifier.
        let fd = unsafe { (*notifier).rfd };
        handlers::set_fd_handler(
            c,
            fd,
            notifier_cb(io_read),
            None,
            io_poll,
            notifier_cb(io_poll_ready),
            notifier as *mut c_void,
        )
    })
}

/// Sets the callbacks run when `notifier`'s handler enters and leaves
/// userspace polling. Does nothing if the notifier has no handler. Must be
/// called again after re-registering the handler. Home thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_set_event_notifier_poll(
    ctx: *mut AioContext,
    notifier: *mut EventNotifier,
    io_poll_begin: Option<unsafe extern "C" fn(e: *mut EventNotifier)>,
    io_poll_end: Option<unsafe extern "C" fn(e: *mut EventNotifier)>,
) {
    guard("aio_set_event_notifier_poll", || {
        let c = ctx_ref("aio_set_event_notifier_poll", ctx);
        if notifier.is_null() {
            misuse("aio_set_event_notifier_poll", "notifier must not be NULL");
        }
        // SAFETY: notifier is a valid EventNotifier.
        let fd = unsafe { (*notifier).rfd };
        handlers::set_poll_callbacks(c, fd, notifier_cb(io_poll_begin), notifier_cb(io_poll_end))
    })
}

/// True while some registered handler has no `io_poll`, so userspace
/// polling alone cannot see all events. This is the `need_wait` of the
/// poll(2) and epoll monitors.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_poll_disabled(ctx: *mut AioContext) -> bool {
    guard("aio_poll_disabled", || {
        ctx_ref("aio_poll_disabled", ctx).poll_disabled()
    })
}

/// Runs one iteration of `ctx`'s loop: poll handlers from userspace if
/// adaptive polling allows it, wait for events (only if `blocking` or the
/// monitor has work), then run io_uring completion handlers, BHs, ready fd
/// handlers and expired timers, in that order. With `blocking`, waits until
/// something happens (an `aio_notify` alone makes it return false).
/// Returns true if any callback made progress (`aio_notify` wake-ups and the
/// context's own notifier do not count). Home thread only (the thread that
/// made `ctx` current, else the first thread that polled it); may be nested
/// from any callback. Calling it from another thread aborts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_poll(ctx: *mut AioContext, blocking: bool) -> bool {
    guard("aio_poll", || {
        poll::aio_poll(ctx_ref("aio_poll", ctx), blocking)
    })
}

/// GSource helper: leaves userspace polling and lets the monitor submit
/// queued work. Returns false.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_prepare(ctx: *mut AioContext) -> bool {
    guard("aio_prepare", || {
        // QEMU's contract: false. (qaio's own GSource prepare uses the
        // result to keep glib from sleeping with work queued.)
        poll::prepare(ctx_ref("aio_prepare", ctx));
        false
    })
}

/// GSource helper: true if a registered handler has events glib reported.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_pending(ctx: *mut AioContext) -> bool {
    guard("aio_pending", || poll::pending(ctx_ref("aio_pending", ctx)))
}

/// GSource helper: runs BHs, ready handlers, completion handlers and timers
/// after a glib poll.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_dispatch(ctx: *mut AioContext) {
    guard("aio_dispatch", || {
        poll::dispatch(ctx_ref("aio_dispatch", ctx))
    })
}

/// How long the loop of `ctx` may sleep, in ns: 0 if a BH is scheduled or a
/// timer expired, at most 10 ms with only idle BHs, -1 for no deadline.
/// Home thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_compute_timeout(ctx: *mut AioContext) -> i64 {
    guard("aio_compute_timeout", || {
        poll::compute_timeout(ctx_ref("aio_compute_timeout", ctx))
    })
}

/// Allocates a timer on `ctx` for clock `type` with `scale` ns per unit and
/// `attributes` (QEMU_TIMER_ATTR_*). Free it with `timer_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_timer_new_with_attrs(
    ctx: *mut AioContext,
    r#type: QEMUClockType,
    scale: c_int,
    attributes: c_int,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) -> *mut QEMUTimer {
    const FUNC: &str = "aio_timer_new_with_attrs";
    guard(FUNC, || {
        ctx_ref(FUNC, ctx);
        // SAFETY: `&ctx->tlg` is the live context's group (QEMU's
        // aio_timer_new_with_attrs is timer_new_full on it, too).
        unsafe {
            super::timer::new_full(
                FUNC,
                &raw mut (*ctx).tlg,
                r#type,
                scale,
                attributes,
                cb,
                opaque,
            )
        }
    })
}

/// `aio_timer_new_with_attrs` with no attributes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_timer_new(
    ctx: *mut AioContext,
    r#type: QEMUClockType,
    scale: c_int,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) -> *mut QEMUTimer {
    // SAFETY: forwarded with the same contract.
    unsafe { aio_timer_new_with_attrs(ctx, r#type, scale, 0, cb, opaque) }
}

/// Initialises the caller-allocated timer `ts` on `ctx` (see
/// `aio_timer_new_with_attrs`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_timer_init_with_attrs(
    ctx: *mut AioContext,
    ts: *mut QEMUTimer,
    r#type: QEMUClockType,
    scale: c_int,
    attributes: c_int,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) {
    const FUNC: &str = "aio_timer_init_with_attrs";
    guard(FUNC, || {
        ctx_ref(FUNC, ctx);
        // SAFETY: ts is caller-owned timer memory (NULL aborts); `&ctx->tlg`
        // is the live context's group.
        unsafe {
            super::timer::init_full(
                FUNC,
                ts,
                &raw mut (*ctx).tlg,
                r#type,
                scale,
                attributes,
                cb,
                opaque,
            )
        }
    })
}

/// `aio_timer_init_with_attrs` with no attributes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_timer_init(
    ctx: *mut AioContext,
    ts: *mut QEMUTimer,
    r#type: QEMUClockType,
    scale: c_int,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) {
    // SAFETY: forwarded with the same contract.
    unsafe { aio_timer_init_with_attrs(ctx, ts, r#type, scale, 0, cb, opaque) }
}
