//! io_uring requests on a context's ring: [`Context::add_sqe`] with a
//! closure, and futures of completions with owned buffers
//! ([`Context::read_at`], [`Context::write_at`], [`Context::nop`])
//! (`aio_add_sqe`, `CqeHandler`; util/fdmon-io_uring.c).

use std::cell::Cell;
use std::ffi::c_void;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

use glib_sys::GSource;
use io_uring::{opcode, squeue, types};

use super::{Context, Error, Fdmon, user};
use crate::abi::{CqeHandler, CqeHandlerLink, io_uring_cqe, io_uring_sqe};

/// A completion: the CQE's `res` (a byte count, or `-errno`) and `flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cqe {
    pub res: i32,
    pub flags: u32,
}

type CompletionFn = Box<dyn FnOnce(&Context, Cqe)>;

/// One request: the C `CqeHandler` first, so the core's pointer to it is a
/// pointer to the whole request.
#[repr(C)]
struct SqeOp {
    handler: CqeHandler,
    entry: squeue::Entry,
    src: *mut GSource,
    f: Option<CompletionFn>,
    /// Keeps the context alive while the request is in flight.
    _ctx: Context,
}

unsafe extern "C" fn prep(sqe: *mut io_uring_sqe, opaque: *mut c_void) {
    let op = opaque as *const SqeOp;
    // SAFETY: `squeue::Entry` is the kernel SQE (asserted in
    // fdmon/io_uring/sqe.rs); the core passes a writable SQE and our op.
    unsafe { std::ptr::copy_nonoverlapping(&raw const (*op).entry, sqe.cast(), 1) };
}

unsafe extern "C" fn complete(h: *mut CqeHandler) {
    // SAFETY: `h` is the first field of the SqeOp boxed by `add_sqe`; the
    // core calls this once, when the request completed.
    let mut op = unsafe { Box::from_raw(h.cast::<SqeOp>()) };
    let cqe = Cqe {
        res: op.handler.cqe.res,
        flags: op.handler.cqe.flags,
    };
    // SAFETY: the op holds a reference to the context.
    let ctx = unsafe { Context::borrowed(op.src) };
    if let Some(f) = op.f.take() {
        user("io_uring completion", || f(&ctx, cqe));
    }
}

impl Context {
    /// Queues `entry` on the context's ring (`aio_add_sqe`); `f` runs in the
    /// loop when it completes (after the wait, before BHs). The entry's
    /// `user_data` is qaio's. Fails with [`Error::NotIoUring`] unless the
    /// context runs the io_uring monitor. Home thread (aborts elsewhere).
    ///
    /// # Safety
    /// Whatever `entry` points to (buffers, iovecs, paths) must stay valid
    /// until `f` runs: capture its owner in `f`. The safe
    /// [`read_at`](Context::read_at) and [`write_at`](Context::write_at) do
    /// that.
    pub unsafe fn add_sqe(
        &self,
        entry: squeue::Entry,
        f: impl FnOnce(&Context, Cqe) + 'static,
    ) -> Result<(), Error> {
        let core = self.core();
        if self.fdmon() != Fdmon::IoUring {
            return Err(Error::NotIoUring(self.fdmon()));
        }
        core.check_home("aio_add_sqe");
        let op = Box::into_raw(Box::new(SqeOp {
            handler: CqeHandler {
                cb: Some(complete),
                next: CqeHandlerLink {
                    sqe_next: std::ptr::null_mut(),
                },
                cqe: io_uring_cqe::default(),
            },
            entry,
            src: self.src(),
            f: Some(Box::new(f)),
            _ctx: self.clone(),
        }));
        core.monitor
            .uring
            .as_deref()
            .expect("io_uring monitor without a ring")
            .add_sqe(prep, op.cast(), op.cast());
        Ok(())
    }

    /// A future of `entry`'s completion; [`add_sqe`](Context::add_sqe)'s
    /// contract applies.
    ///
    /// # Safety
    /// As for [`add_sqe`](Context::add_sqe), until the future resolves (or,
    /// if it is dropped first, until the request completes).
    pub unsafe fn submit(&self, entry: squeue::Entry) -> Result<SqeFuture<Cqe>, Error> {
        let (fut, state) = SqeFuture::new();
        // SAFETY: forwarded contract.
        unsafe { self.add_sqe(entry, move |_, cqe| state.finish(cqe))? };
        Ok(fut)
    }

    /// An io_uring NOP: resolves with its completion (res 0).
    ///
    /// ```
    /// use qaio::api::{Context, Fdmon};
    /// let Ok(ctx) = Context::with_fdmon(Fdmon::IoUring) else { return };
    /// let cqe = ctx.block_on(ctx.nop().unwrap());
    /// assert_eq!(cqe.res, 0);
    /// ```
    pub fn nop(&self) -> Result<SqeFuture<Cqe>, Error> {
        // SAFETY: a NOP points to nothing.
        unsafe { self.submit(opcode::Nop::new().build()) }
    }

    /// Reads up to `buf.len()` bytes of `fd` at `offset` (`u64::MAX`: the
    /// current position, for pipes and sockets) through the ring. Resolves
    /// with the buffer truncated to what was read. The buffer belongs to the
    /// request until it completes, even if the future is dropped.
    ///
    /// ```
    /// use qaio::api::{Context, Fdmon};
    /// let Ok(ctx) = Context::with_fdmon(Fdmon::IoUring) else { return };
    /// let f = std::fs::File::open("Cargo.toml").unwrap();
    /// let io = ctx.block_on(ctx.read_at(&f, vec![0; 9], 0).unwrap());
    /// assert_eq!(io.res.unwrap(), 9);
    /// assert_eq!(&io.buf, b"[package]");
    /// ```
    pub fn read_at(
        &self,
        fd: &impl AsRawFd,
        mut buf: Vec<u8>,
        offset: u64,
    ) -> Result<SqeFuture<SqeIo>, Error> {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let e = opcode::Read::new(types::Fd(fd.as_raw_fd()), buf.as_mut_ptr(), len)
            .offset(offset)
            .build();
        let (fut, state) = SqeFuture::new();
        // SAFETY: the buffer moves into the completion closure, so its heap
        // memory lives until the kernel is done with it.
        unsafe {
            self.add_sqe(e, move |_, cqe| {
                let res = io_result(cqe.res);
                if let Ok(n) = res {
                    buf.truncate(n);
                }
                state.finish(SqeIo { res, buf });
            })?
        };
        Ok(fut)
    }

    /// Writes `buf` to `fd` at `offset` (`u64::MAX`: the current position)
    /// through the ring; resolves with the byte count and the buffer.
    pub fn write_at(
        &self,
        fd: &impl AsRawFd,
        buf: Vec<u8>,
        offset: u64,
    ) -> Result<SqeFuture<SqeIo>, Error> {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let e = opcode::Write::new(types::Fd(fd.as_raw_fd()), buf.as_ptr(), len)
            .offset(offset)
            .build();
        let (fut, state) = SqeFuture::new();
        // SAFETY: as in read_at.
        unsafe {
            self.add_sqe(e, move |_, cqe| {
                state.finish(SqeIo {
                    res: io_result(cqe.res),
                    buf,
                })
            })?
        };
        Ok(fut)
    }
}

fn io_result(res: i32) -> std::io::Result<usize> {
    if res < 0 {
        Err(std::io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as usize)
    }
}

/// What [`Context::read_at`] and [`Context::write_at`] resolve with.
#[derive(Debug)]
pub struct SqeIo {
    /// The byte count, or the error.
    pub res: std::io::Result<usize>,
    /// The buffer, given back.
    pub buf: Vec<u8>,
}

struct OpState<T> {
    output: Cell<Option<T>>,
    waker: Cell<Option<Waker>>,
}

impl<T> OpState<T> {
    fn finish(&self, v: T) {
        self.output.set(Some(v));
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// The future of an io_uring request's completion.
#[must_use = "futures do nothing unless awaited"]
pub struct SqeFuture<T> {
    state: Rc<OpState<T>>,
}

impl<T> SqeFuture<T> {
    fn new() -> (SqeFuture<T>, Rc<OpState<T>>) {
        let state = Rc::new(OpState {
            output: Cell::new(None),
            waker: Cell::new(None),
        });
        (
            SqeFuture {
                state: state.clone(),
            },
            state,
        )
    }
}

impl<T> Future for SqeFuture<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<T> {
        match self.state.output.take() {
            Some(v) => Poll::Ready(v),
            None => {
                self.state.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}

impl<T> std::fmt::Debug for SqeFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqeFuture").finish_non_exhaustive()
    }
}
