//! The epoll(7) monitor. Corresponds to util/fdmon-epoll.c.
//!
//! A context starts on poll(2) and switches to epoll lazily once a wait
//! covers `UPGRADE_THRESHOLD` fds (at once when QAIO_FDMON=epoll). Any
//! `epoll_ctl` failure (regular files cannot be watched) switches back to
//! poll(2) for good.
//
// `ready` arguments are the ready lists of the running loop iteration (see
// handlers.rs); the monitor functions only run inside such an iteration.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::cell::Cell;
use std::ffi::c_void;
use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::context::Context;
use crate::fdmon::{
    Kind, from_poll_bits, gsource_add_unix_fd, gsource_query_unix_fd, gsource_remove_unix_fd, poll,
    to_poll_bits,
};
use crate::handlers::{self, AioHandler, AioHandlerList, Registry};
use crate::sys::cvt;

/// Number of fds at which a poll(2) context moves to epoll.
pub const UPGRADE_THRESHOLD: usize = 64;
/// Events taken per epoll_wait.
const MAX_EVENTS: usize = 128;

/// Per-context epoll state.
pub struct Epoll {
    /// -1 when epoll is unavailable or was given up.
    fd: AtomicI32,
    /// glib's tag for the epoll fd on the context's GSource.
    tag: Cell<*mut c_void>,
}

// SAFETY: `tag` is written only with the registry lock held (enable,
// disable) and read by the thread that drives the context.
unsafe impl Sync for Epoll {}

impl Epoll {
    pub fn new() -> Self {
        Epoll {
            fd: AtomicI32::new(-1),
            tag: Cell::new(std::ptr::null_mut()),
        }
    }

    /// Creates the epoll instance.
    pub fn create(&self) -> io::Result<()> {
        // SAFETY: plain syscall.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        self.fd.store(fd, Ordering::Release);
        Ok(())
    }

    pub fn fd(&self) -> i32 {
        self.fd.load(Ordering::Acquire)
    }

    /// Registers the epoll fd with the context's GSource (glib then polls
    /// just this one fd for the whole context).
    pub fn attach_gsource(&self, ctx: &Context) {
        let fd = self.fd();
        if fd >= 0 && self.tag.get().is_null() {
            self.tag.set(gsource_add_unix_fd(ctx, fd));
        }
    }

    /// Closes the epoll fd and forgets the GSource tag. Registry lock held.
    pub fn close(&self, ctx: &Context) {
        let fd = self.fd.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            // SAFETY: we own the fd.
            unsafe { libc::close(fd) };
        }
        gsource_remove_unix_fd(ctx, self.tag.replace(std::ptr::null_mut()));
    }
}

impl Default for Epoll {
    fn default() -> Self {
        Self::new()
    }
}

fn ctl(epfd: i32, op: i32, node: *mut AioHandler) -> io::Result<()> {
    // SAFETY: node is alive (caller holds the registry lock).
    let h = unsafe { &*node };
    let mut ev = libc::epoll_event {
        events: to_poll_bits(h.events()),
        u64: node as u64,
    };
    // SAFETY: ev is a valid epoll_event.
    cvt(unsafe { libc::epoll_ctl(epfd, op, h.fd(), &mut ev) }).map(|_| ())
}

/// Gives up on epoll for good and returns to poll(2). `skip` is a handler
/// being replaced, which glib must not poll again. Registry lock held.
pub fn disable(ctx: &Context, reg: &Registry, skip: Option<*mut AioHandler>) {
    ctx.monitor.epoll.close(ctx);
    poll::downgrade(ctx, reg, skip);
}

/// Mirrors a handler change into the epoll set. Registry lock held.
pub fn update(
    ctx: &Context,
    reg: &Registry,
    old: Option<*mut AioHandler>,
    new: Option<*mut AioHandler>,
) {
    let epfd = ctx.monitor.epoll.fd();
    let r = match (old, new) {
        (Some(o), None) => {
            // SAFETY: alive under the lock.
            let fd = unsafe { (*o).fd() };
            // SAFETY: plain syscall; the event argument may be NULL for DEL.
            cvt(unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) })
                .map(|_| ())
        }
        (None, Some(n)) => ctl(epfd, libc::EPOLL_CTL_ADD, n),
        (Some(_), Some(n)) => ctl(epfd, libc::EPOLL_CTL_MOD, n),
        (None, None) => Ok(()),
    };
    if r.is_err() {
        // `new` is already in the registry and `old` is on its way out.
        disable(ctx, reg, old);
    }
}

/// Tries the switch from poll(2) to epoll; only the sole visitor may do it.
pub fn try_upgrade(ctx: &Context, npfd: usize) -> bool {
    let m = &ctx.monitor;
    if m.forced == Some(Kind::Poll) || m.epoll.fd() < 0 || npfd < UPGRADE_THRESHOLD {
        return false;
    }
    let Some(reg) = ctx.handlers.dec_if_lock() else {
        return false;
    };
    let ok = enable(ctx, &reg);
    if !ok {
        disable(ctx, &reg, None);
    }
    reg.inc_and_unlock();
    ok
}

/// Adds every live handler to the epoll set and takes over from poll(2).
/// Registry lock held.
pub fn enable(ctx: &Context, reg: &Registry) -> bool {
    let epfd = ctx.monitor.epoll.fd();
    for n in ctx.published.live(reg) {
        if ctl(epfd, libc::EPOLL_CTL_ADD, n).is_err() {
            return false;
        }
    }
    ctx.monitor.set_kind(Kind::Epoll);
    ctx.publish_fdmon();
    if ctx.gsource_usable() {
        for n in ctx.published.live(reg) {
            // SAFETY: these GPollFDs were added while on poll(2).
            unsafe { glib_sys::g_source_remove_poll(ctx.gsource(), (*n).gpollfd()) };
        }
    }
    ctx.monitor.epoll.attach_gsource(ctx);
    true
}

/// Waits on the epoll set.
pub fn wait(ctx: &Context, ready: *mut AioHandlerList, mut timeout: i64) -> i32 {
    let epfd = ctx.monitor.epoll.fd();
    if timeout > 0 {
        // epoll_wait has ms resolution: sleep with ppoll on the epoll fd for
        // ns precision, then collect without blocking.
        let mut pfd = [libc::pollfd {
            fd: epfd,
            events: libc::POLLIN,
            revents: 0,
        }];
        let r = poll::ppoll_ns(&mut pfd, timeout);
        if r <= 0 {
            return r;
        }
        timeout = 0;
    }
    // Uninitialised: the kernel writes the first `r` entries.
    let mut events = std::mem::MaybeUninit::<[libc::epoll_event; MAX_EVENTS]>::uninit();
    // SAFETY: events is a valid buffer of MAX_EVENTS entries.
    let r = unsafe {
        libc::epoll_wait(
            epfd,
            events.as_mut_ptr().cast(),
            MAX_EVENTS as i32,
            timeout.clamp(-1, 0) as i32,
        )
    };
    // SAFETY: epoll_wait initialised the first r entries.
    let events: &[libc::epoll_event] =
        unsafe { std::slice::from_raw_parts(events.as_ptr().cast(), r.max(0) as usize) };
    for ev in events {
        let node = ev.u64 as *mut AioHandler;
        // SAFETY: epoll data holds a registered node, alive during the visit
        // (deleted nodes are removed from epoll before being freed).
        unsafe { handlers::add_ready(ready, node, from_poll_bits(ev.events)) };
    }
    r
}

/// GSource check: glib saw the epoll fd readable.
pub fn gsource_check(ctx: &Context) -> bool {
    gsource_query_unix_fd(ctx, ctx.monitor.epoll.tag.get())
}
