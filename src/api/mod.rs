//! The safe Rust API: the event loop for Rust programs and for Rust code
//! inside a C program that uses qaio. The second consumer of the core, next
//! to the C ABI in [`crate::ffi`]; no `unsafe` is needed to use it (except
//! to adopt a C pointer with [`Context::from_raw`] and to submit a raw SQE
//! with [`Context::add_sqe`]).
//!
//! - [`Context`]: a loop, used in its home thread (not `Send`); [`Remote`]
//!   is what any thread may do with it (`Send + Sync`).
//! - Callbacks are closures, boxed once when registered: [`Bh`]
//!   ([`Context::bh`], [`Context::schedule_oneshot`]), [`FdHandler`]
//!   ([`Context::fd_handler`]), [`EventNotifier`], [`Timer`]
//!   ([`Context::timer`]), io_uring requests ([`Context::add_sqe`]).
//! - Async Rust: [`Context::spawn`], [`Context::block_on`], and futures for
//!   fd readiness ([`AsyncFd`]), time ([`Context::sleep`]) and io_uring
//!   completions ([`Context::nop`], [`Context::read_at`],
//!   [`Context::write_at`]). A task is a bottom half that polls its future,
//!   so tasks, BHs and fd handlers (Rust's or C's) interleave in QEMU's
//!   order: BHs (tasks included) before fd handlers before timers.
//! - [`AioSource`]/[`MainContext`]: the context's GSource, to let a glib
//!   main loop drive it.
//!
//! # Re-entrancy
//! Every callback receives the `&Context` it runs on and may do anything
//! with it: run a nested [`Context::poll`], schedule, register or drop any
//! handle, its own included (its closure is freed once it returns).
//! Callbacks are `Fn`, not `FnMut`: a nested poll may run the same callback
//! again while it is running, so keep state in `Cell`/`RefCell`.
//!
//! # Panics
//! The loop may have been entered from C, so a panic must not unwind out of
//! a callback: qaio catches it at the callback boundary, prints which kind
//! of callback panicked and aborts the process. Misuse that QEMU turns into
//! an assertion (polling a context outside its home thread, say) aborts
//! with a message naming the rule, as in the C API; everything else the
//! types prevent, or a method returns an [`Error`].
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use qaio::api::Context;
//!
//! let ctx = Context::new().unwrap();
//! let runs = Rc::new(Cell::new(0));
//! let r = runs.clone();
//! let bh = ctx.bh(move |_ctx| r.set(r.get() + 1));
//! bh.schedule();
//! assert!(ctx.poll(false));
//! assert_eq!(runs.get(), 1);
//! ```

mod bh;
mod context;
mod fd;
mod gsource;
mod sqe;
mod task;
mod timer;

use std::fmt;
use std::io::Write;

pub use bh::{Bh, BhRemote};
pub use context::{Context, Fdmon, Remote};
pub use fd::{AsyncFd, EventNotifier, FdHandler, FdHandlerBuilder, Readable, Writable};
pub use gsource::{AioSource, MainContext};
pub use sqe::{Cqe, SqeFuture, SqeIo};
pub use task::JoinHandle;
pub use timer::{Clock, Sleep, Timer};

/// What a method of this API can fail with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The context could not be created (no file descriptors left, a
    /// monitor the kernel refuses, a bad `QAIO_FDMON`): the C API's message.
    Create(String),
    /// io_uring requests need the io_uring monitor; the context runs this one.
    NotIoUring(Fdmon),
    /// The fd already has a handler on this context (QEMU would silently
    /// replace it; the Rust API refuses, so no handle removes another's).
    FdInUse(i32),
    /// The thread already has another current context.
    OtherCurrent,
    /// A syscall failed (creating an event notifier).
    Io(std::io::ErrorKind, String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Create(msg) => write!(f, "cannot create the AioContext: {msg}"),
            Error::NotIoUring(m) => write!(
                f,
                "io_uring requests need the io_uring fd monitor, the context runs {}",
                m.name()
            ),
            Error::FdInUse(fd) => write!(f, "fd {fd} already has a handler on this context"),
            Error::OtherCurrent => write!(f, "the thread already has another current AioContext"),
            Error::Io(_, msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.kind(), e.to_string())
    }
}

/// Runs user code at a callback boundary: a panic is reported, naming the
/// kind of callback, and aborts; it never unwinds into the loop (which may
/// be C's frames).
#[inline]
pub(crate) fn user<R>(what: &str, body: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(_) => {
            let _ = writeln!(
                std::io::stderr(),
                "qaio: a Rust {what} callback panicked; aborting (a panic must not unwind \
                 through the event loop)"
            );
            std::process::abort()
        }
    }
}

/// A boxed value whose memory the loop may still be using: callbacks run
/// through [`Shared::call`], and [`Shared::release`] from inside one of its
/// own callbacks defers the free to the moment that callback returns.
pub(crate) struct Shared<T> {
    busy: std::cell::Cell<u32>,
    released: std::cell::Cell<bool>,
    pub(crate) val: T,
}

impl<T> Shared<T> {
    pub(crate) fn new(val: T) -> *mut Shared<T> {
        Box::into_raw(Box::new(Shared {
            busy: std::cell::Cell::new(0),
            released: std::cell::Cell::new(false),
            val,
        }))
    }

    /// Runs `f` on the value; `None` if it was released (the core never
    /// calls a removed callback, so that is a second line of defence).
    ///
    /// # Safety
    /// `p` came from [`Shared::new`], the caller is the home thread, and it
    /// was not freed (not released, or released while busy).
    pub(crate) unsafe fn call<R>(p: *mut Shared<T>, f: impl FnOnce(&T) -> R) -> Option<R> {
        // SAFETY: alive per the contract; only the home thread touches it.
        let s = unsafe { &*p };
        if s.released.get() {
            return None;
        }
        s.busy.set(s.busy.get() + 1);
        let r = f(&s.val);
        s.busy.set(s.busy.get() - 1);
        if s.busy.get() == 0 && s.released.get() {
            // SAFETY: released while busy: the last running call frees it,
            // and no reference into it is left.
            drop(unsafe { Box::from_raw(p) });
        }
        Some(r)
    }

    /// Gives up the owner's claim: frees now, or when the running callback
    /// returns. The core must never call it again afterwards.
    ///
    /// # Safety
    /// As for [`Shared::call`]; called once.
    pub(crate) unsafe fn release(p: *mut Shared<T>) {
        // SAFETY: alive per the contract.
        let s = unsafe { &*p };
        if s.busy.get() == 0 {
            // SAFETY: nobody runs inside it and the owner gives it up.
            drop(unsafe { Box::from_raw(p) });
        } else {
            s.released.set(true);
        }
    }
}

#[cfg(test)]
mod tests;
