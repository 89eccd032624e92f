//! The poll(2) monitor. Corresponds to util/fdmon-poll.c.
//!
//! Every wait rebuilds a pollfd array from the registry. The arrays are
//! per-thread rather than per-context because the syscall runs without the
//! registry lock; they are used only around the syscall (never while
//! callbacks run), so nested loops can share them, and they keep their
//! capacity between calls: no allocation per iteration in steady state.
//
// `ready` arguments are the ready lists of the running loop iteration (see
// handlers.rs); the monitor functions only run inside such an iteration.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use crate::context::Context;
use crate::handlers::{self, AioHandler, AioHandlerList, G_IO_NVAL, READ_EVENTS, WRITE_EVENTS};

#[derive(Default)]
struct Scratch {
    pollfds: Vec<libc::pollfd>,
    nodes: Vec<*mut AioHandler>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        pollfds: Vec::with_capacity(8),
        nodes: Vec::with_capacity(8),
    });
}

/// Converts a ns timeout (-1 = forever) to a ppoll timespec.
pub(crate) fn timespec(timeout: i64) -> Option<libc::timespec> {
    (timeout >= 0).then(|| libc::timespec {
        tv_sec: (timeout / 1_000_000_000).min(i32::MAX as i64) as libc::time_t,
        tv_nsec: (timeout % 1_000_000_000) as libc::c_long,
    })
}

/// ppoll with a ns timeout; returns the raw result (-1 with errno on error).
pub(crate) fn ppoll_ns(fds: &mut [libc::pollfd], timeout: i64) -> i32 {
    let ts = timespec(timeout);
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: fds is a valid slice; tsp is NULL or points at a live timespec.
    unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            tsp,
            std::ptr::null(),
        )
    }
}

/// Waits with ppoll over every live handler.
pub fn wait(ctx: &Context, ready: *mut AioHandlerList, timeout: i64) -> i32 {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let Scratch { pollfds, nodes } = &mut *s;
        pollfds.clear();
        nodes.clear();
        // Newest first: the ready list is LIFO, so handlers are then
        // dispatched oldest first, in registration order. The chain is
        // walked without the registry lock: the caller is a visitor.
        // SAFETY: inside a visit, chain nodes stay allocated.
        for n in unsafe { ctx.published.iter() } {
            // SAFETY: as above.
            let h = unsafe { &*n };
            if !h.is_live() || h.invalid.load(Ordering::Relaxed) {
                continue;
            }
            pollfds.push(libc::pollfd {
                fd: h.fd(),
                events: h.events() as i16,
                revents: 0,
            });
            nodes.push(n);
        }
        if crate::fdmon::epoll::try_upgrade(ctx, pollfds.len()) {
            pollfds.clear();
            nodes.clear();
            drop(s);
            return crate::fdmon::epoll::wait(ctx, ready, timeout);
        }
        let ret = ppoll_ns(pollfds, timeout);
        if ret > 0 {
            for (pfd, &node) in pollfds.iter().zip(nodes.iter()) {
                let revents = pfd.revents as u16;
                if revents == 0 {
                    continue;
                }
                if revents & G_IO_NVAL != 0 {
                    // The fd was closed behind our back: never call back on
                    // it, and never poll it again (poll would spin on it).
                    // SAFETY: alive during our visit.
                    unsafe { &*node }.invalid.store(true, Ordering::Relaxed);
                    continue;
                }
                // SAFETY: home thread inside a visit; node alive.
                unsafe { handlers::add_ready(ready, node, revents) };
            }
        }
        pollfds.clear();
        nodes.clear();
        ret
    })
}

/// Keeps glib's view in step: every handler's GPollFD is registered with
/// the GSource so glib polls it itself.
pub fn update(ctx: &Context, old: Option<*mut AioHandler>, new: Option<*mut AioHandler>) {
    if !ctx.gsource_usable() {
        return;
    }
    if let Some(o) = old {
        // SAFETY: the GPollFD was added by a previous update; the node is alive.
        unsafe { glib_sys::g_source_remove_poll(ctx.gsource(), (*o).gpollfd()) };
    }
    if let Some(n) = new {
        // SAFETY: the node lives until after it is removed from the source.
        unsafe { glib_sys::g_source_add_poll(ctx.gsource(), (*n).gpollfd()) };
    }
}

/// GSource check: is any handler's glib-reported event one it listens for?
/// An invalid fd also answers true, so that dispatch can retire it.
pub fn gsource_check(ctx: &Context) -> bool {
    let visit = ctx.visit_handlers();
    // SAFETY: inside our visit, chain nodes stay allocated.
    let found = unsafe { ctx.published.iter() }.any(|n| {
        // SAFETY: as above.
        let h = unsafe { &*n };
        if h.is_deleted() {
            return false;
        }
        let revents = h.revents();
        let ev = revents & h.events();
        revents & G_IO_NVAL != 0
            || (ev & READ_EVENTS != 0 && h.io_read.is_some())
            || (ev & WRITE_EVENTS != 0 && h.io_write.is_some())
    });
    ctx.handlers.dec_visit(visit);
    found
}

/// GSource dispatch: every handler glib saw an event on becomes ready,
/// newest first (the ready list is LIFO). Inside a visit.
pub fn gsource_dispatch(ctx: &Context, ready: *mut AioHandlerList) {
    // SAFETY: the caller is a visitor; chain nodes stay allocated.
    for n in unsafe { ctx.published.iter() } {
        // SAFETY: as above.
        let h = unsafe { &*n };
        let revents = h.revents();
        if revents == 0 || h.is_deleted() {
            continue;
        }
        if revents & G_IO_NVAL != 0 {
            h.set_revents(0);
            if !h.invalid.swap(true, Ordering::Relaxed) && ctx.gsource_usable() {
                // Stop glib from spinning on a closed fd.
                // SAFETY: the GPollFD was added by update.
                unsafe { glib_sys::g_source_remove_poll(ctx.gsource(), h.gpollfd()) };
            }
            continue;
        }
        // SAFETY: home thread inside a visit; node alive.
        unsafe { handlers::add_ready(ready, n, revents) };
    }
}

/// Switches back to poll(2) (from epoll or io_uring): glib must poll every
/// live handler's GPollFD again, except `skip` (a handler being replaced).
/// Registry lock held.
pub fn downgrade(ctx: &Context, reg: &handlers::Registry, skip: Option<*mut AioHandler>) {
    ctx.monitor.set_kind(crate::fdmon::Kind::Poll);
    ctx.publish_fdmon();
    if !ctx.gsource_usable() {
        return;
    }
    for n in ctx.published.live(reg).filter(|&n| Some(n) != skip) {
        // SAFETY: alive while the lock is held.
        unsafe { glib_sys::g_source_add_poll(ctx.gsource(), (*n).gpollfd()) };
    }
}
