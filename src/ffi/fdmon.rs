//! C API of the fd monitors (`FDMonOps` and its three tables) and of
//! io_uring requests on a context's ring (`aio_add_sqe`; `CqeHandler` is in
//! [`crate::abi::fdmon`]).

use std::ffi::{c_int, c_void};

use super::aio::ctx_ref;
use super::{guard, misuse};
use crate::abi::{AioContext, FdMonTables};
use crate::abi::{CqeHandler, io_uring_sqe};
use crate::context::Context;
use crate::fdmon::{Kind, epoll, poll};
use crate::handlers::{AioHandler, AioHandlerList};

/// An fd monitor's operations, with QEMU's members, order and signatures.
/// The library exports its three monitors as `fdmon_poll_ops`,
/// `fdmon_epoll_ops` and `fdmon_io_uring_ops`; the functions are the real
/// implementations and may be called from C under the rules of each member.
#[repr(C)]
pub struct FDMonOps {
    /// Mirrors a handler change: `old_node` NULL = new fd, `new_node` NULL =
    /// removal, both = replacement. Takes the context's handler lock itself
    /// when called from C.
    pub update: Option<
        unsafe extern "C" fn(
            ctx: *mut AioContext,
            old_node: *mut AioHandler,
            new_node: *mut AioHandler,
        ),
    >,
    /// Waits up to `timeout` ns (-1 = forever, 0 = do not block) and puts the
    /// ready handlers on `ready_list`. Returns the number of ready fds or a
    /// negative value on error.
    pub wait: Option<
        unsafe extern "C" fn(
            ctx: *mut AioContext,
            ready_list: *mut AioHandlerList,
            timeout: i64,
        ) -> c_int,
    >,
    /// True when `wait` must be called even though userspace polling could
    /// otherwise continue.
    pub need_wait: Option<unsafe extern "C" fn(ctx: *mut AioContext) -> bool>,
    /// Runs monitor-specific callbacks (io_uring CqeHandlers); NULL if none.
    pub dispatch: Option<unsafe extern "C" fn(ctx: *mut AioContext) -> bool>,
    /// Called before glib polls the context's GSource.
    pub gsource_prepare: Option<unsafe extern "C" fn(ctx: *mut AioContext)>,
    /// Called after glib polled; true if dispatch is needed.
    pub gsource_check: Option<unsafe extern "C" fn(ctx: *mut AioContext) -> bool>,
    /// Puts the handlers glib found ready on `ready_list`.
    pub gsource_dispatch:
        Option<unsafe extern "C" fn(ctx: *mut AioContext, ready_list: *mut AioHandlerList)>,
    /// Adds a request to the ring (io_uring only; NULL for the others).
    pub add_sqe: Option<
        unsafe extern "C" fn(
            ctx: *mut AioContext,
            prep_sqe: Option<unsafe extern "C" fn(sqe: *mut io_uring_sqe, opaque: *mut c_void)>,
            opaque: *mut c_void,
            cqe_handler: *mut CqeHandler,
        ),
    >,
}

/// The three tables, for the contexts' public `fdmon_ops`.
pub(crate) fn tables() -> FdMonTables {
    FdMonTables([
        (&raw const fdmon_poll_ops).cast(),
        (&raw const fdmon_epoll_ops).cast(),
        (&raw const fdmon_io_uring_ops).cast(),
    ])
}

fn ctx_on<'a>(func: &str, ctx: *mut AioContext, kind: Kind) -> &'a Context {
    let c = ctx_ref(func, ctx);
    if c.fdmon_kind() != kind {
        wrong_monitor(func, c, kind);
    }
    c
}

/// Aborts: an fd monitor's table was called for a context running another
/// one. Out of line (it formats), so the callers' fast paths stay small.
#[cold]
#[inline(never)]
fn wrong_monitor(func: &str, c: &Context, kind: Kind) -> ! {
    misuse(
        func,
        &format!(
            "the context's active fd monitor is {}, not {}",
            c.fdmon_kind().name(),
            kind.name()
        ),
    )
}

/// Aborts: `aio_add_sqe` on a context without the io_uring monitor.
#[cold]
#[inline(never)]
fn not_io_uring(func: &str, c: &Context) -> ! {
    misuse(
        func,
        &format!(
            "requires aio_has_io_uring() (the context uses {})",
            c.fdmon_kind().name()
        ),
    )
}

fn opt_node(n: *mut AioHandler) -> Option<*mut AioHandler> {
    (!n.is_null()).then_some(n)
}

unsafe extern "C" fn poll_update(ctx: *mut AioContext, old: *mut AioHandler, new: *mut AioHandler) {
    guard("fdmon_poll_ops.update", || {
        poll::update(
            ctx_ref("fdmon_poll_ops.update", ctx),
            opt_node(old),
            opt_node(new),
        )
    })
}

unsafe extern "C" fn poll_wait(
    ctx: *mut AioContext,
    ready: *mut AioHandlerList,
    timeout: i64,
) -> c_int {
    guard("fdmon_poll_ops.wait", || {
        let c = ctx_ref("fdmon_poll_ops.wait", ctx);
        c.handlers.inc();
        let r = poll::wait(c, ready, timeout);
        c.handlers.dec();
        r
    })
}

unsafe extern "C" fn poll_gsource_prepare(_ctx: *mut AioContext) {}

unsafe extern "C" fn poll_gsource_check(ctx: *mut AioContext) -> bool {
    guard("fdmon_poll_ops.gsource_check", || {
        poll::gsource_check(ctx_ref("fdmon_poll_ops.gsource_check", ctx))
    })
}

unsafe extern "C" fn poll_gsource_dispatch(ctx: *mut AioContext, ready: *mut AioHandlerList) {
    guard("fdmon_poll_ops.gsource_dispatch", || {
        poll::gsource_dispatch(ctx_ref("fdmon_poll_ops.gsource_dispatch", ctx), ready)
    })
}

unsafe extern "C" fn epoll_update(
    ctx: *mut AioContext,
    old: *mut AioHandler,
    new: *mut AioHandler,
) {
    guard("fdmon_epoll_ops.update", || {
        let c = ctx_on("fdmon_epoll_ops.update", ctx, Kind::Epoll);
        let reg = c.handlers.lock();
        epoll::update(c, &reg, opt_node(old), opt_node(new))
    })
}

unsafe extern "C" fn epoll_wait(
    ctx: *mut AioContext,
    ready: *mut AioHandlerList,
    timeout: i64,
) -> c_int {
    guard("fdmon_epoll_ops.wait", || {
        let c = ctx_on("fdmon_epoll_ops.wait", ctx, Kind::Epoll);
        c.handlers.inc();
        let r = epoll::wait(c, ready, timeout);
        c.handlers.dec();
        r
    })
}

unsafe extern "C" fn epoll_gsource_check(ctx: *mut AioContext) -> bool {
    guard("fdmon_epoll_ops.gsource_check", || {
        epoll::gsource_check(ctx_on("fdmon_epoll_ops.gsource_check", ctx, Kind::Epoll))
    })
}

unsafe extern "C" fn epoll_gsource_dispatch(ctx: *mut AioContext, ready: *mut AioHandlerList) {
    guard("fdmon_epoll_ops.gsource_dispatch", || {
        let c = ctx_on("fdmon_epoll_ops.gsource_dispatch", ctx, Kind::Epoll);
        epoll::wait(c, ready, 0);
    })
}

unsafe extern "C" fn uring_update(
    ctx: *mut AioContext,
    old: *mut AioHandler,
    new: *mut AioHandler,
) {
    guard("fdmon_io_uring_ops.update", || {
        let c = ctx_on("fdmon_io_uring_ops.update", ctx, Kind::IoUring);
        let mut reg = c.handlers.lock();
        c.monitor.update(c, &mut reg, opt_node(old), opt_node(new))
    })
}

unsafe extern "C" fn uring_wait(
    ctx: *mut AioContext,
    ready: *mut AioHandlerList,
    timeout: i64,
) -> c_int {
    guard("fdmon_io_uring_ops.wait", || {
        let c = ctx_on("fdmon_io_uring_ops.wait", ctx, Kind::IoUring);
        c.handlers.inc();
        let r = c.monitor.wait(c, ready, timeout);
        c.handlers.dec();
        r
    })
}

unsafe extern "C" fn uring_need_wait(ctx: *mut AioContext) -> bool {
    guard("fdmon_io_uring_ops.need_wait", || {
        let c = ctx_on("fdmon_io_uring_ops.need_wait", ctx, Kind::IoUring);
        c.monitor.need_wait(c)
    })
}

unsafe extern "C" fn uring_dispatch(ctx: *mut AioContext) -> bool {
    guard("fdmon_io_uring_ops.dispatch", || {
        let c = ctx_on("fdmon_io_uring_ops.dispatch", ctx, Kind::IoUring);
        c.handlers.inc();
        let r = c.monitor.dispatch(c);
        c.handlers.dec();
        r
    })
}

unsafe extern "C" fn uring_gsource_prepare(ctx: *mut AioContext) {
    guard("fdmon_io_uring_ops.gsource_prepare", || {
        let c = ctx_on("fdmon_io_uring_ops.gsource_prepare", ctx, Kind::IoUring);
        // QEMU's hook returns nothing: its caller cannot shorten glib's
        // timeout (qaio's own GSource prepare does).
        c.monitor.gsource_prepare(c);
    })
}

unsafe extern "C" fn uring_gsource_check(ctx: *mut AioContext) -> bool {
    guard("fdmon_io_uring_ops.gsource_check", || {
        let c = ctx_on("fdmon_io_uring_ops.gsource_check", ctx, Kind::IoUring);
        c.monitor.gsource_check(c)
    })
}

unsafe extern "C" fn uring_gsource_dispatch(ctx: *mut AioContext, ready: *mut AioHandlerList) {
    guard("fdmon_io_uring_ops.gsource_dispatch", || {
        let c = ctx_on("fdmon_io_uring_ops.gsource_dispatch", ctx, Kind::IoUring);
        c.handlers.inc();
        c.monitor.gsource_dispatch(c, ready);
        c.handlers.dec();
    })
}

unsafe extern "C" fn uring_add_sqe(
    ctx: *mut AioContext,
    prep_sqe: Option<unsafe extern "C" fn(sqe: *mut io_uring_sqe, opaque: *mut c_void)>,
    opaque: *mut c_void,
    cqe_handler: *mut CqeHandler,
) {
    guard("fdmon_io_uring_ops.add_sqe", || {
        let c = ctx_on("fdmon_io_uring_ops.add_sqe", ctx, Kind::IoUring);
        add_sqe_checked(
            "fdmon_io_uring_ops.add_sqe",
            c,
            prep_sqe,
            opaque,
            cqe_handler,
        )
    })
}

fn add_sqe_checked(
    func: &str,
    c: &Context,
    prep_sqe: Option<unsafe extern "C" fn(sqe: *mut io_uring_sqe, opaque: *mut c_void)>,
    opaque: *mut c_void,
    cqe_handler: *mut CqeHandler,
) {
    let Some(prep) = prep_sqe else {
        misuse(func, "prep_sqe must not be NULL");
    };
    if cqe_handler.is_null() {
        misuse(func, "cqe_handler must not be NULL");
    }
    c.check_home(func);
    c.monitor
        .uring
        .as_deref()
        .expect("io_uring monitor without a ring")
        .add_sqe(prep, opaque, cqe_handler);
}

/// The poll(2) monitor. (Inside QEMU, declared by QEMU's util/aio-posix.h.)
#[cfg(not(qaio_in_qemu))]
#[unsafe(no_mangle)]
pub static fdmon_poll_ops: FDMonOps = FDMonOps {
    update: Some(poll_update),
    wait: Some(poll_wait),
    need_wait: Some(super::aio::aio_poll_disabled),
    dispatch: None,
    gsource_prepare: Some(poll_gsource_prepare),
    gsource_check: Some(poll_gsource_check),
    gsource_dispatch: Some(poll_gsource_dispatch),
    add_sqe: None,
};

/// The epoll(7) monitor. (Inside QEMU, declared by QEMU's util/aio-posix.h.)
#[cfg(not(qaio_in_qemu))]
#[unsafe(no_mangle)]
pub static fdmon_epoll_ops: FDMonOps = FDMonOps {
    update: Some(epoll_update),
    wait: Some(epoll_wait),
    need_wait: Some(super::aio::aio_poll_disabled),
    dispatch: None,
    gsource_prepare: Some(poll_gsource_prepare),
    gsource_check: Some(epoll_gsource_check),
    gsource_dispatch: Some(epoll_gsource_dispatch),
    add_sqe: None,
};

/// The io_uring(7) monitor. (Inside QEMU, declared by QEMU's util/aio-posix.h.)
#[cfg(not(qaio_in_qemu))]
#[unsafe(no_mangle)]
pub static fdmon_io_uring_ops: FDMonOps = FDMonOps {
    update: Some(uring_update),
    wait: Some(uring_wait),
    need_wait: Some(uring_need_wait),
    dispatch: Some(uring_dispatch),
    gsource_prepare: Some(uring_gsource_prepare),
    gsource_check: Some(uring_gsource_check),
    gsource_dispatch: Some(uring_gsource_dispatch),
    add_sqe: Some(uring_add_sqe),
};

/// True if the calling thread's current AioContext runs on io_uring, so
/// `aio_add_sqe` may be used. Contexts use io_uring all-or-nothing, so the
/// answer is the same for every context. Requires a current context
/// (`qemu_set_current_aio_context`); aborts without one.
#[unsafe(no_mangle)]
pub extern "C" fn aio_has_io_uring() -> bool {
    guard("aio_has_io_uring", || {
        let cur = crate::context::current_raw() as *mut AioContext;
        if cur.is_null() {
            misuse(
                "aio_has_io_uring",
                "the calling thread has no current AioContext",
            );
        }
        ctx_ref("aio_has_io_uring", cur).fdmon_kind() == Kind::IoUring
    })
}

/// Adds an io_uring request to the ring of the calling thread's current
/// AioContext. `prep_sqe(sqe, opaque)` runs synchronously and fills the
/// zeroed SQE in place (it must not set user_data: the library owns it).
/// The request is submitted at the loop's next wait (or at once if the ring
/// is full); on completion the CQE is copied into `cqe_handler->cqe` and
/// `cqe_handler->cb(cqe_handler)` runs exactly once, from the loop in the
/// home thread (before BHs in `aio_poll`, after them under glib). A request
/// still in flight when the context is finalized never calls back. Home
/// thread only; requires `aio_has_io_uring()`: otherwise, or with a NULL
/// `prep_sqe`/`cqe_handler`, aborts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aio_add_sqe(
    prep_sqe: Option<unsafe extern "C" fn(sqe: *mut io_uring_sqe, opaque: *mut c_void)>,
    opaque: *mut c_void,
    cqe_handler: *mut CqeHandler,
) {
    guard("aio_add_sqe", || {
        let cur = crate::context::current_raw() as *mut AioContext;
        if cur.is_null() {
            misuse(
                "aio_add_sqe",
                "the calling thread has no current AioContext",
            );
        }
        let c = ctx_ref("aio_add_sqe", cur);
        if c.fdmon_kind() != Kind::IoUring {
            not_io_uring("aio_add_sqe", c);
        }
        add_sqe_checked("aio_add_sqe", c, prep_sqe, opaque, cqe_handler)
    })
}
