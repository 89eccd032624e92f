//! `aio_poll` and adaptive userspace polling. Corresponds to the loop half
//! of util/aio-posix.c.

use std::sync::atomic::Ordering;

use crate::bh;
use crate::context::Context;
use crate::handlers::{self, AioHandler, AioHandlerList};
use crate::timer::{clock_get_ns, soonest_timeout};

/// A handler that polled nothing for this long leaves userspace polling
/// (io_uring only).
pub const POLL_IDLE_INTERVAL_NS: i64 = 7_000_000_000;
/// The first adaptive poll time of a handler.
pub const POLL_INITIAL_NS: i64 = 4_000;

fn now() -> i64 {
    clock_get_ns(crate::timer::QEMU_CLOCK_REALTIME)
}

/// `aio_compute_timeout`: how long the loop may sleep, in ns (-1 forever).
/// Home thread.
pub fn compute_timeout(ctx: &Context) -> i64 {
    let timeout = bh::timeout(ctx, -1);
    if timeout == 0 {
        return 0;
    }
    let deadline = ctx.tlg.deadline_ns();
    if deadline == 0 {
        return 0;
    }
    soonest_timeout(timeout, deadline)
}

/// One loop iteration (`aio_poll`). Home thread; may nest. Returns true if
/// any user callback ran.
pub fn aio_poll(ctx: &Context, blocking: bool) -> bool {
    let home = ctx.check_home("aio_poll");
    // Only the home thread writes poll_depth: a plain store, no RMW. Release
    // pairs with check_home's Acquire load in a thread taking the context over.
    let depth = ctx.poll_depth.load(Ordering::Relaxed);
    ctx.poll_depth.store(depth + 1, Ordering::Release);
    // The ready list lives in this frame; handlers point into it while
    // linked, so it must not move (it is only used through `ready`).
    let mut ready_head = AioHandlerList::default();
    let ready: *mut AioHandlerList = &mut ready_head;

    // The home thread's visit is an owner visit (no locked RMW); the BQL
    // holder running the main context's loop makes a shared one.
    let visit = ctx.handlers.inc_visit(home);
    let polling = ctx.poll_max_ns.load(Ordering::Relaxed) != 0;
    let start = if polling { now() } else { 0 };

    let mut timeout = if blocking { compute_timeout(ctx) } else { 0 };
    let mut progress = try_poll_mode(ctx, ready, &mut timeout);
    debug_assert!(!(progress && timeout != 0));

    ctx.notify_state.wait_phase(timeout, |mut timeout| {
        if timeout != 0 || ctx.monitor.need_wait(ctx) {
            // Poll mode ends only right before a real sleep.
            if timeout != 0 && poll_set_started(ctx, ready, false) {
                timeout = 0;
                progress = true;
            }
            ctx.monitor.wait(ctx, ready, timeout);
        }
    });

    let block_ns = if polling { now() - start } else { 0 };

    progress |= ctx.monitor.dispatch(ctx);
    progress |= bh::poll(ctx);
    progress |= dispatch_ready_handlers(ctx, ready, block_ns);
    handlers::free_deleted(ctx);
    ctx.handlers.dec_visit(visit);

    progress |= ctx.tlg.run_timers();
    ctx.poll_depth.store(depth, Ordering::Release);
    progress
}

/// Dispatches every handler on `ready`, then adapts its poll time.
///
/// Always inlined, like the other steps every iteration takes
/// (`handlers::dispatch_handler`, and io_uring's `submit_and_wait`,
/// `process_cq` and `poll_completed`): a call costs the callee-saved
/// registers' pushes and pops, and inlining these five took 37 (epoll) and
/// 84 (io_uring) of the instructions of an fds-1 iteration.
#[inline(always)]
pub(crate) fn dispatch_ready_handlers(
    ctx: &Context,
    ready: *mut AioHandlerList,
    block_ns: i64,
) -> bool {
    let mut progress = false;
    // SAFETY: home thread inside a visit; nodes on the list are alive.
    while let Some(node) = unsafe { handlers::pop_ready(ready) } {
        // SAFETY: as above; the node is off every ready list now.
        progress |= unsafe { handlers::dispatch_handler(ctx, node) };
        // SAFETY: still alive: freeing waits for the end of the visit.
        let n = unsafe { &*node };
        if ctx.poll_max_ns.load(Ordering::Relaxed) != 0 && n.on_poll_list() {
            adjust_polling_time(ctx, n, block_ns);
        }
    }
    progress
}

/// Grows or shrinks a handler's poll time from how long the loop blocked.
pub(crate) fn adjust_polling_time(ctx: &Context, n: &AioHandler, block_ns: i64) {
    let max = ctx.poll_max_ns.load(Ordering::Relaxed);
    let ns = n.poll_ns.load(Ordering::Relaxed);
    let new = next_poll_ns(
        ns,
        block_ns,
        max,
        ctx.poll_grow.load(Ordering::Relaxed),
        ctx.poll_shrink.load(Ordering::Relaxed),
    );
    if new != ns {
        n.poll_ns.store(new, Ordering::Relaxed);
    }
}

/// The adaptive polling rule: keep when the block fit in the current poll
/// time, shrink when it exceeded the maximum, grow otherwise.
pub fn next_poll_ns(ns: i64, block_ns: i64, max_ns: i64, grow: i64, shrink: i64) -> i64 {
    if block_ns <= ns {
        ns
    } else if block_ns > max_ns {
        if shrink == 0 { 0 } else { ns / shrink }
    } else if ns < max_ns && block_ns < max_ns {
        let grow = if grow == 0 { 2 } else { grow };
        let grown = if ns == 0 {
            POLL_INITIAL_NS
        } else {
            ns.saturating_mul(grow)
        };
        grown.min(max_ns)
    } else {
        ns
    }
}

/// Busy-polls the polled handlers if the poll time allows it. Returns true
/// if one was found ready (then `timeout` is 0).
fn try_poll_mode(ctx: &Context, ready: *mut AioHandlerList, timeout: &mut i64) -> bool {
    let mut max_ns = 0;
    let mut any = false;
    // SAFETY: home thread inside a visit.
    for n in unsafe { handlers::poll_list_iter(ctx) } {
        any = true;
        // SAFETY: alive during the visit.
        max_ns = max_ns.max(unsafe { &*n }.poll_ns.load(Ordering::Relaxed));
    }
    if !any {
        return false;
    }
    let max_ns = soonest_timeout(*timeout, max_ns);
    if max_ns != 0 && ctx.monitor.supports_polling() {
        // Queued submissions (re-armed POLL_ADDs) must not keep us from
        // polling: hand them over now; only completions stop polling.
        ctx.monitor.flush_submissions(ctx);
    }
    if max_ns != 0 && !ctx.monitor.need_wait(ctx) {
        poll_set_started(ctx, ready, true);
        if run_poll_handlers(ctx, ready, max_ns, timeout) {
            return true;
        }
    }
    false
}

/// Calls every polled handler's `io_poll` once.
fn run_poll_handlers_once(
    ctx: &Context,
    ready: *mut AioHandlerList,
    now: i64,
    timeout: &mut i64,
) -> bool {
    let mut progress = false;
    // SAFETY: home thread inside a visit.
    for node in unsafe { handlers::poll_list_iter(ctx) } {
        // SAFETY: alive during the visit.
        let n = unsafe { &*node };
        if n.is_deleted() {
            continue;
        }
        let Some(io_poll) = n.io_poll else { continue };
        // SAFETY: user callback with its own opaque.
        if unsafe { io_poll(n.opaque) } {
            // SAFETY: home thread inside a visit.
            unsafe { handlers::add_poll_ready(ready, node) };
            n.poll_idle_timeout.set(now + POLL_IDLE_INTERVAL_NS);
            *timeout = 0;
            if !n.is_notifier(ctx) {
                progress = true;
            }
        }
    }
    progress
}

fn run_poll_handlers(
    ctx: &Context,
    ready: *mut AioHandlerList,
    mut max_ns: i64,
    timeout: &mut i64,
) -> bool {
    let start = now();
    let mut progress;
    let mut elapsed;
    loop {
        progress = run_poll_handlers_once(ctx, ready, start, timeout);
        elapsed = now() - start;
        max_ns = soonest_timeout(*timeout, max_ns);
        if ctx.monitor.need_wait(ctx) {
            if ctx.monitor.supports_polling() {
                // Stay in poll mode: the wait only has to submit.
                *timeout = 0;
            }
            break;
        }
        if elapsed >= max_ns {
            break;
        }
    }
    if remove_idle_poll_handlers(ctx, ready, start + elapsed) {
        *timeout = 0;
        progress = true;
    }
    if *timeout != -1 {
        *timeout -= (*timeout).min(elapsed);
    }
    progress
}

/// Retires handlers that polled nothing for `POLL_IDLE_INTERVAL_NS`, so their
/// fds are watched by the monitor again (io_uring only: elsewhere a polled
/// handler's fd is not watched at all while polling).
fn remove_idle_poll_handlers(ctx: &Context, ready: *mut AioHandlerList, now: i64) -> bool {
    if !ctx.monitor.supports_polling() {
        return false;
    }
    let mut progress = false;
    // SAFETY: home thread inside a visit.
    for node in unsafe { handlers::poll_list_iter(ctx) } {
        // SAFETY: alive during the visit.
        let n = unsafe { &*node };
        let idle = n.poll_idle_timeout.get();
        if idle == 0 {
            n.poll_idle_timeout.set(now + POLL_IDLE_INTERVAL_NS);
        } else if now >= idle {
            n.poll_idle_timeout.set(0);
            // SAFETY: home thread inside a visit.
            unsafe { handlers::poll_list_remove(node) };
            ctx.monitor.unpark(node);
            if ctx.poll_started.get()
                && let Some(end) = n.io_poll_end.get()
            {
                // SAFETY: user callbacks with their own opaque.
                unsafe { end(n.opaque) };
                // One last look, in case the event raced with io_poll_end.
                if let Some(io_poll) = n.io_poll
                    // SAFETY: user callback with its own opaque.
                    && unsafe { io_poll(n.opaque) }
                {
                    // SAFETY: home thread inside a visit.
                    unsafe { handlers::add_poll_ready(ready, node) };
                    progress = true;
                }
            }
        }
    }
    progress
}

/// Enters or leaves poll mode, calling `io_poll_begin`/`io_poll_end`. When
/// leaving, polls each handler once more, since an event may have raced
/// with `io_poll_end`; returns true if one was ready.
/// Inline, so that the common case (no change of mode) costs a load and no
/// call.
#[inline]
pub(crate) fn poll_set_started(ctx: &Context, ready: *mut AioHandlerList, started: bool) -> bool {
    if started == ctx.poll_started.get() {
        return false;
    }
    switch_poll_mode(ctx, ready, started)
}

/// [`poll_set_started`] when the mode changes.
#[inline(never)]
fn switch_poll_mode(ctx: &Context, ready: *mut AioHandlerList, started: bool) -> bool {
    ctx.poll_started.set(started);
    let mut progress = false;
    ctx.handlers.inc();
    // SAFETY: home thread inside a visit.
    for node in unsafe { handlers::poll_list_iter(ctx) } {
        // SAFETY: alive during the visit.
        let n = unsafe { &*node };
        if n.is_deleted() {
            continue;
        }
        if !started {
            ctx.monitor.unpark(node);
        }
        let cb = if started {
            n.io_poll_begin.get()
        } else {
            n.io_poll_end.get()
        };
        if let Some(cb) = cb {
            // SAFETY: user callback with its own opaque.
            unsafe { cb(n.opaque) };
        }
        if !started
            && let Some(io_poll) = n.io_poll
            // SAFETY: user callback with its own opaque.
            && unsafe { io_poll(n.opaque) }
        {
            // SAFETY: home thread inside a visit.
            unsafe { handlers::add_poll_ready(ready, node) };
            progress = true;
        }
    }
    ctx.handlers.dec();
    progress
}

/// `aio_prepare`: leaves poll mode before glib sleeps and lets the monitor
/// submit pending work. Upstream returns false; here true means glib must
/// not sleep: the monitor still holds work its poll would not see (io_uring
/// SQEs the kernel refused with EBUSY/EAGAIN, completions to dispatch).
pub fn prepare(ctx: &Context) -> bool {
    let mut ready_head = AioHandlerList::default();
    let ready: *mut AioHandlerList = &mut ready_head;
    let visit = ctx.visit_handlers();
    poll_set_started(ctx, ready, false);
    // Upstream drops this list on the floor; unlink the nodes so nothing
    // points into this frame. Their `poll_ready` stays set, as upstream.
    // SAFETY: home thread inside a visit.
    while unsafe { handlers::pop_ready(ready) }.is_some() {}
    ctx.handlers.dec_visit(visit);
    ctx.monitor.gsource_prepare(ctx)
}

/// `aio_pending`: does the GSource have handler work?
pub fn pending(ctx: &Context) -> bool {
    ctx.monitor.gsource_check(ctx)
}

/// `aio_dispatch`: the GSource dispatch body.
pub fn dispatch(ctx: &Context) {
    let mut ready_head = AioHandlerList::default();
    let ready: *mut AioHandlerList = &mut ready_head;
    let visit = ctx.visit_handlers();
    bh::poll(ctx);
    ctx.monitor.gsource_dispatch(ctx, ready);
    ctx.monitor.dispatch(ctx);
    dispatch_ready_handlers(ctx, ready, 0);
    handlers::free_deleted(ctx);
    ctx.handlers.dec_visit(visit);
    ctx.tlg.run_timers();
}

#[cfg(test)]
mod tests {
    use super::next_poll_ns;

    #[test]
    fn grows_from_zero_to_initial() {
        assert_eq!(next_poll_ns(0, 10_000, 32_768, 0, 0), 4_000);
        assert_eq!(next_poll_ns(4_000, 10_000, 32_768, 2, 2), 8_000);
        assert_eq!(next_poll_ns(16_000, 20_000, 32_768, 4, 2), 32_768);
    }

    #[test]
    fn keeps_when_block_fits() {
        assert_eq!(next_poll_ns(8_000, 8_000, 32_768, 2, 2), 8_000);
        assert_eq!(next_poll_ns(8_000, 100, 32_768, 2, 2), 8_000);
    }

    #[test]
    fn shrinks_when_block_exceeds_max() {
        assert_eq!(next_poll_ns(8_000, 40_000, 32_768, 2, 2), 4_000);
        assert_eq!(next_poll_ns(8_000, 40_000, 32_768, 2, 0), 0);
    }

    #[test]
    fn unchanged_at_exactly_max() {
        assert_eq!(next_poll_ns(8_000, 32_768, 32_768, 2, 2), 8_000);
    }
}
