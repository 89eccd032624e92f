//! The fd monitors: how a context waits for its handlers' fds. Corresponds to
//! the `FDMonOps` users in util/aio-posix.c and util/fdmon-*.c.
//!
//! Internally the active monitor is an enum tag (`Kind`) and calls are
//! dispatched with a `match`; the C-visible `FDMonOps` tables in
//! `ffi/fdmon.rs` are thin shims over the same functions.

pub mod epoll;
pub mod io_uring;
pub mod poll;

use std::ffi::c_void;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::context::Context;
use crate::handlers::{AioHandler, AioHandlerList, Registry};
use crate::sys::strerror;

/// Which monitor a context uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Poll = 0,
    Epoll = 1,
    IoUring = 2,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Poll => "poll",
            Kind::Epoll => "epoll",
            Kind::IoUring => "io_uring",
        }
    }

    /// The NUL-terminated name, for C.
    pub fn c_name(self) -> &'static std::ffi::CStr {
        match self {
            Kind::Poll => c"poll",
            Kind::Epoll => c"epoll",
            Kind::IoUring => c"io_uring",
        }
    }

    /// Parses `QAIO_FDMON`.
    pub fn from_env() -> Result<Option<Kind>, String> {
        match std::env::var("QAIO_FDMON") {
            Err(_) => Ok(None),
            Ok(v) => match v.as_str() {
                "" => Ok(None),
                "poll" => Ok(Some(Kind::Poll)),
                "epoll" => Ok(Some(Kind::Epoll)),
                "io_uring" => Ok(Some(Kind::IoUring)),
                other => Err(format!(
                    "QAIO_FDMON={other}: unknown fd monitor (expected poll, epoll or io_uring)"
                )),
            },
        }
    }
}

/// A [`Kind`] that other threads read while the home thread changes it.
/// It holds nothing but a `Kind`'s discriminant, so reading it back needs
/// no conversion (a `match` from the byte costs instructions on every
/// `Monitor::kind`, and the loop asks several times per iteration).
struct AtomicKind(AtomicU8);

impl AtomicKind {
    fn new(k: Kind) -> AtomicKind {
        AtomicKind(AtomicU8::new(k as u8))
    }

    #[inline]
    fn load(&self) -> Kind {
        let v = self.0.load(Ordering::Acquire);
        // SAFETY: only `new` and `store` write the byte, each from a Kind,
        // and Kind is repr(u8): v is one of its discriminants.
        unsafe { std::mem::transmute::<u8, Kind>(v) }
    }

    fn store(&self, k: Kind) {
        self.0.store(k as u8, Ordering::Release);
    }
}

/// Per-context monitor state.
pub struct Monitor {
    kind: AtomicKind,
    /// The monitor forced through QAIO_FDMON, if any.
    pub forced: Option<Kind>,
    pub epoll: epoll::Epoll,
    pub uring: Option<Box<io_uring::Uring>>,
}

impl Monitor {
    /// Chooses and sets up the monitor: io_uring if it starts, else poll(2)
    /// with a lazy upgrade to epoll. A forced monitor that cannot start is an
    /// error.
    pub fn new(forced: Option<Kind>) -> Result<Monitor, String> {
        let mut m = Monitor {
            kind: AtomicKind::new(Kind::Poll),
            forced,
            epoll: epoll::Epoll::new(),
            uring: None,
        };
        match forced {
            Some(Kind::Poll) => {}
            Some(Kind::Epoll) => {
                m.epoll
                    .create()
                    .map_err(|e| format!("Failed to create epoll instance: {}", strerror(&e)))?;
                m.set_kind(Kind::Epoll);
            }
            Some(Kind::IoUring) => {
                m.uring = Some(io_uring::Uring::setup()?);
                m.set_kind(Kind::IoUring);
            }
            None => match io_uring::Uring::setup_auto() {
                Ok(Some(u)) => {
                    m.uring = Some(u);
                    m.set_kind(Kind::IoUring);
                }
                Ok(None) => {
                    if let Err(e) = m.epoll.create() {
                        eprintln!("qaio: Failed to create epoll instance: {}", strerror(&e));
                    }
                }
                Err(e) => return Err(e),
            },
        }
        Ok(m)
    }

    /// A monitor that owns nothing (what a finalized context keeps).
    pub fn placeholder() -> Monitor {
        Monitor {
            kind: AtomicKind::new(Kind::Poll),
            forced: None,
            epoll: epoll::Epoll::new(),
            uring: None,
        }
    }

    /// Registers the monitor's own fd (epoll fd, ring fd) with the context's
    /// GSource, once the context exists.
    pub fn attach_gsource(&self, ctx: &Context) {
        match self.kind() {
            Kind::Poll => {}
            Kind::Epoll => self.epoll.attach_gsource(ctx),
            Kind::IoUring => self.uring().attach_gsource(ctx),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind.load()
    }

    pub(crate) fn set_kind(&self, k: Kind) {
        self.kind.store(k);
    }

    /// The monitor can observe fd readiness from userspace while polling
    /// (QEMU's `fdmon_supports_polling`).
    pub fn supports_polling(&self) -> bool {
        self.kind() == Kind::IoUring
    }

    fn uring(&self) -> &io_uring::Uring {
        self.uring
            .as_deref()
            .expect("io_uring monitor without a ring")
    }

    /// A handler was added (`old` None), removed (`new` None) or replaced.
    /// Called with the registry lock held.
    pub fn update(
        &self,
        ctx: &Context,
        reg: &mut Registry,
        old: Option<*mut AioHandler>,
        new: Option<*mut AioHandler>,
    ) {
        match self.kind() {
            Kind::Poll => poll::update(ctx, old, new),
            Kind::Epoll => epoll::update(ctx, reg, old, new),
            Kind::IoUring => self.uring().update(old, new),
        }
    }

    /// Waits up to `timeout` ns (-1 forever, 0 not at all) and puts ready
    /// handlers on `ready`. Called inside a visit.
    #[inline]
    pub fn wait(&self, ctx: &Context, ready: *mut AioHandlerList, timeout: i64) -> i32 {
        match self.kind() {
            Kind::Poll => poll::wait(ctx, ready, timeout),
            Kind::Epoll => epoll::wait(ctx, ready, timeout),
            Kind::IoUring => self.uring().wait(ctx, ready, timeout),
        }
    }

    /// True when `wait` has work to do even with a zero timeout.
    pub fn need_wait(&self, ctx: &Context) -> bool {
        match self.kind() {
            Kind::Poll | Kind::Epoll => ctx.poll_disabled(),
            Kind::IoUring => self.uring().need_wait(),
        }
    }

    /// Submits queued work without waiting (io_uring).
    pub fn flush_submissions(&self, ctx: &Context) {
        if self.kind() == Kind::IoUring {
            self.uring().flush(ctx)
        }
    }

    /// Re-arms a handler that stopped being busy-polled (io_uring).
    pub fn unpark(&self, node: *mut AioHandler) {
        if self.kind() == Kind::IoUring {
            self.uring().unpark(node)
        }
    }

    /// Runs monitor-specific callbacks (io_uring CqeHandlers).
    pub fn dispatch(&self, ctx: &Context) -> bool {
        match self.kind() {
            Kind::IoUring => self.uring().dispatch(ctx),
            _ => false,
        }
    }

    /// glib is about to poll: submits queued work (io_uring). True if glib
    /// must not sleep (work is queued that its poll would not see).
    pub fn gsource_prepare(&self, ctx: &Context) -> bool {
        self.kind() == Kind::IoUring && self.uring().gsource_prepare(ctx)
    }

    pub fn gsource_check(&self, ctx: &Context) -> bool {
        match self.kind() {
            Kind::Poll => poll::gsource_check(ctx),
            Kind::Epoll => epoll::gsource_check(ctx),
            Kind::IoUring => self.uring().gsource_check(ctx),
        }
    }

    pub fn gsource_dispatch(&self, ctx: &Context, ready: *mut AioHandlerList) {
        match self.kind() {
            Kind::Poll => poll::gsource_dispatch(ctx, ready),
            Kind::Epoll => {
                epoll::wait(ctx, ready, 0);
            }
            Kind::IoUring => self.uring().gsource_dispatch(ctx, ready),
        }
    }

    /// Releases the monitor's kernel objects at finalize.
    pub fn destroy(&mut self, ctx: &Context, reg: &mut Registry) {
        if let Some(u) = self.uring.take() {
            u.destroy(ctx, reg);
        }
        self.epoll.close(ctx);
        self.set_kind(Kind::Poll);
    }
}

// epoll(7) and io_uring's POLL_ADD use poll(2)'s event bits.
const _: () = assert!(
    libc::EPOLLIN as u32 == libc::POLLIN as u32
        && libc::EPOLLOUT as u32 == libc::POLLOUT as u32
        && libc::EPOLLHUP as u32 == libc::POLLHUP as u32
        && libc::EPOLLERR as u32 == libc::POLLERR as u32
);

/// Each G_IO_* event and its poll(2)/epoll/POLL_ADD bit.
const POLL_BITS: [(u16, libc::c_short); 4] = {
    use crate::handlers::{G_IO_ERR, G_IO_HUP, G_IO_IN, G_IO_OUT};
    [
        (G_IO_IN, libc::POLLIN),
        (G_IO_OUT, libc::POLLOUT),
        (G_IO_HUP, libc::POLLHUP),
        (G_IO_ERR, libc::POLLERR),
    ]
};

/// Translates a handler's G_IO_* events into poll(2)/epoll/POLL_ADD bits.
pub(crate) fn to_poll_bits(events: u16) -> u32 {
    POLL_BITS
        .iter()
        .filter(|(g, _)| events & g != 0)
        .fold(0, |acc, (_, p)| acc | *p as u32)
}

/// Translates poll(2)/epoll/POLL_ADD result bits back into G_IO_* events.
pub(crate) fn from_poll_bits(bits: u32) -> u16 {
    POLL_BITS
        .iter()
        .filter(|(_, p)| bits & *p as u32 != 0)
        .fold(0, |acc, (g, _)| acc | g)
}

/// Registers `fd` with the context's GSource as a unix fd watched for
/// G_IO_IN; returns glib's tag.
pub(crate) fn gsource_add_unix_fd(ctx: &Context, fd: i32) -> *mut c_void {
    // SAFETY: the GSource is the context's own, alive while the context is.
    unsafe { glib_sys::g_source_add_unix_fd(ctx.gsource(), fd, glib_sys::G_IO_IN) }
}

/// Undoes [`gsource_add_unix_fd`], unless glib already tore the source down.
pub(crate) fn gsource_remove_unix_fd(ctx: &Context, tag: *mut c_void) {
    if tag.is_null() || !ctx.gsource_usable() {
        return;
    }
    // SAFETY: tag came from g_source_add_unix_fd on this source.
    unsafe { glib_sys::g_source_remove_unix_fd(ctx.gsource(), tag) }
}

/// True if glib saw the unix fd `tag` readable in its last poll.
pub(crate) fn gsource_query_unix_fd(ctx: &Context, tag: *mut c_void) -> bool {
    if tag.is_null() {
        return false;
    }
    // SAFETY: tag came from g_source_add_unix_fd on this source.
    unsafe { glib_sys::g_source_query_unix_fd(ctx.gsource(), tag) & glib_sys::G_IO_IN != 0 }
}

#[cfg(test)]
mod tests {
    use super::{from_poll_bits, to_poll_bits};
    use crate::handlers::{G_IO_ERR, G_IO_HUP, G_IO_IN, G_IO_OUT};

    /// The one translation serves poll(2), epoll and io_uring's POLL_ADD.
    #[test]
    fn event_mapping_round_trips() {
        for ev in [
            G_IO_IN,
            G_IO_OUT,
            G_IO_HUP,
            G_IO_ERR,
            G_IO_IN | G_IO_OUT | G_IO_HUP | G_IO_ERR,
        ] {
            assert_eq!(from_poll_bits(to_poll_bits(ev)), ev);
        }
        assert_eq!(
            to_poll_bits(G_IO_IN | G_IO_OUT),
            (libc::POLLIN | libc::POLLOUT) as u32
        );
        assert_eq!(
            to_poll_bits(G_IO_IN | G_IO_OUT),
            (libc::EPOLLIN | libc::EPOLLOUT) as u32
        );
        // POLLPRI and POLLRDNORM are not G_IO_* events a handler asks for.
        assert_eq!(
            from_poll_bits((libc::POLLIN | libc::POLLPRI | libc::POLLRDNORM) as u32),
            G_IO_IN
        );
    }
}
