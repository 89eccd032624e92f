//! What glib's callbacks do with a context: the bodies of
//! `aio_ctx_prepare/check/dispatch` in util/async.c. The `extern "C"`
//! `GSourceFuncs` that glib calls are in [`crate::ffi::gsource`].
//!
//! glib polls what the active monitor registered with the source: every
//! handler's GPollFD on poll(2), the epoll fd on epoll, the ring fd on
//! io_uring. Timeouts have ms precision (rounded up) and there is no
//! adaptive polling on this path.

use std::ffi::c_int;

use crate::bh;
use crate::context::Context;
use crate::poll;
use crate::timer::timeout_ns_to_ms;

/// glib's `prepare`: returns the poll timeout in ms (-1 = none, 0 = ready).
pub fn prepare(ctx: &Context) -> c_int {
    let home = ctx.is_home();
    // From here to check, aio_notify must write the eventfd.
    ctx.notify_state.begin_gsource_wait();
    let t = timeout_ns_to_ms(poll::compute_timeout(ctx));
    // True when the monitor holds work glib's poll would not see (io_uring
    // SQEs the kernel refused for now): sleeping on them would hang.
    let t = if poll::prepare(ctx) { 0 } else { t };
    if t == 0 {
        // Ready: glib polls without sleeping and skips check, so leave the
        // sleeping window now. Otherwise every aio_notify until the next
        // check (all of dispatch) writes the eventfd for nothing; QEMU does
        // that, one write per BH scheduled from a coroutine under glib.
        ctx.notify_state.end_gsource_wait(home);
    }
    t
}

/// glib's `check`, after it polled: true if [`dispatch`] has work.
pub fn check(ctx: &Context) -> bool {
    ctx.notify_state.end_gsource_wait(ctx.is_home());
    ctx.notify_accept();
    bh::any_scheduled(ctx) || poll::pending(ctx) || ctx.tlg.deadline_ns() == 0
}

/// glib's `dispatch`: runs BHs, ready handlers and expired timers.
pub fn dispatch(ctx: &Context) {
    poll::dispatch(ctx);
}
