//! The io_uring(7) monitor, and user requests on the context's ring
//! (`aio_add_sqe`). Corresponds to util/fdmon-io_uring.c.
//!
//! Every handler with events has one one-shot `POLL_ADD` in flight, armed
//! again after each completion, which keeps readiness level-triggered
//! (multishot polls are edge-triggered and were rejected upstream).
//!
//! Threads: the rings are touched only by the thread running the loop (the
//! home thread), never by two threads at once. `aio_set_fd_handler` may run
//! in any thread; it only marks the handler and pushes it onto the atomic
//! `submit_list`, which the loop turns into `POLL_ADD`/`POLL_REMOVE` SQEs
//! right before it waits (under glib: in prepare). Re-arming after a
//! completion goes through the same list, so one pass over the CQ never
//! submits anything and cannot chase its own tail.
//!
//! Deletion: the kernel holds a handler's address as the `user_data` of its
//! `POLL_ADD` until that request completes, so a removed handler is only
//! marked deleted (the generic code then never calls it) and is handed to
//! the registry's deferred-free list once no `POLL_ADD` of it is in flight;
//! the outermost loop iteration frees it.
//!
//! `user_data` of the ring's requests:
//! - 0: internal requests whose completion carries no information (the wait
//!   timeout, `POLL_REMOVE`); ignored.
//! - handler address | `TAG_POLL`: a handler's `POLL_ADD`.
//! - a `CqeHandler` address (8-aligned, so the tag bit is clear): a user
//!   request from `aio_add_sqe`.
//!
//! The parts:
//! - `ring`: submitting SQEs and reaping the CQ (retries, overflow, EBUSY).
//! - `poll_add`: watching handler fds with one-shot `POLL_ADD`s, their
//!   submit list and deferred deletion.
//! - `sqe`: user requests from `aio_add_sqe` and their CqeHandler queue.
//! - here: the ring's set-up and teardown and the monitor interface
//!   (`wait`, `need_wait`, the glib hooks).
//
// `ready` arguments are the ready lists of the running loop iteration (see
// handlers.rs); the monitor functions only run inside such an iteration.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod poll_add;
mod queues;
mod ring;
mod sqe;

use std::cell::{Cell, UnsafeCell};
use std::ffi::c_void;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use crossbeam_utils::CachePadded;
use io_uring::types::{CancelBuilder, Timespec};
use io_uring::{IoUring, Probe, opcode};

pub use poll_add::UringNode;

use crate::abi::CqeHandler;
use crate::context::Context;
use crate::fdmon::{gsource_add_unix_fd, gsource_query_unix_fd, gsource_remove_unix_fd};
use crate::handlers::{self, AioHandler, AioHandlerList, Registry};
use crate::sys::strerror;

/// SQ entries, as upstream; the CQ gets twice as many (the kernel default).
const SQ_ENTRIES: u32 = 128;
const CQ_ENTRIES: u32 = 2 * SQ_ENTRIES;

/// Low bit of the `user_data` of a handler's `POLL_ADD`.
const TAG_POLL: u64 = 1;

const NS_PER_SEC: i64 = 1_000_000_000;

// The tag bit must be free in handler addresses (CqeHandler: see sqe.rs).
const _: () = assert!(std::mem::align_of::<AioHandler>() >= 8);

/// Set once a context got io_uring: from then on every context must.
static IN_USE: AtomicBool = AtomicBool::new(false);
/// Set when the automatic choice failed: later contexts do not retry, so
/// that all contexts agree on `aio_has_io_uring()`.
static AUTO_FAILED: AtomicBool = AtomicBool::new(false);
static WARN_ONCE: Once = Once::new();

/// Ring set-up variants, best first; the next one is tried when the kernel
/// rejects a flag (EINVAL).
/// - COOP_TASKRUN (5.19): completions no longer interrupt the loop thread
///   with an IPI while it runs in userspace; they are posted at its next
///   syscall, and a thread sleeping in poll(2) or io_uring_enter is still
///   woken. TASKRUN_FLAG then tells `need_wait` that such completions are
///   pending; without it a non-blocking `aio_poll` could miss them, so the
///   two go together.
/// - SUBMIT_ALL (5.18): one rejected user SQE does not hold back the rest of
///   the batch.
///
/// Deliberately absent: DEFER_TASKRUN (its completions do not make the ring
/// fd readable until the owner enters the kernel, and glib polls that fd),
/// SINGLE_ISSUER (contexts are created in one thread and run in another),
/// SQPOLL (a kernel thread burning CPU per context).
#[derive(Clone, Copy, Debug)]
struct SetupFlags {
    coop_taskrun: bool,
    submit_all: bool,
}

const SETUP_VARIANTS: [SetupFlags; 3] = [
    SetupFlags {
        coop_taskrun: true,
        submit_all: true,
    },
    SetupFlags {
        coop_taskrun: false,
        submit_all: true,
    },
    SetupFlags {
        coop_taskrun: false,
        submit_all: false,
    },
];

/// Per-context ring.
pub struct Uring {
    /// Home thread only (see the module comment); reached through `ring()`.
    ring: UnsafeCell<IoUring>,
    /// The SQ and CQ as this library fills and reaps them. Home thread.
    q: queues::Queues,
    ring_fd: i32,
    /// Handlers whose `POLL_ADD`/`POLL_REMOVE` must be queued (LIFO, pushed
    /// by any thread, taken whole by the home thread).
    submit_list: CachePadded<AtomicPtr<AioHandler>>,
    /// Completed user requests whose callback has not run yet, FIFO. Home
    /// thread only.
    cqe_first: Cell<*mut CqeHandler>,
    cqe_last: Cell<*mut CqeHandler>,
    /// Handlers found ready while no ready list was at hand (reaping forced
    /// by a full SQ inside `aio_add_sqe`); moved to the next ready list.
    /// Home thread only; its address is stable (the Uring is boxed).
    stash: UnsafeCell<AioHandlerList>,
    /// glib's tag for the ring fd on the context's GSource.
    tag: AtomicPtr<c_void>,
    /// The owning context, known once `attach_gsource` ran.
    ctx: AtomicPtr<Context>,
    /// POLL_REMOVE can skip its CQE on success (5.17).
    skip_cqe: bool,
    /// The timespec of `wait`'s TIMEOUT SQE. Home thread only. It lives here,
    /// not in `wait`'s frame, because the SQE can outlive the call: when
    /// io_uring_enter fails with EBUSY/EAGAIN the SQE stays queued and the
    /// kernel reads the timespec at whichever later io_uring_enter submits
    /// it. The address is stable (the Uring is boxed), and rewriting the
    /// value meanwhile is no race: without SQPOLL the kernel reads SQEs only
    /// inside io_uring_enter, called by this same thread.
    wait_ts: UnsafeCell<Timespec>,
}

// SAFETY: the ring, the CQE queue and the stash are used only by the thread
// that runs the context's loop, never by two threads at once (the same rule
// that makes `aio_poll` home-thread only); what other threads touch
// (`submit_list`, node flags, `tag`, `ctx`) is atomic.
unsafe impl Sync for Uring {}
// SAFETY: as above; the raw pointers are owned by the context.
unsafe impl Send for Uring {}

impl Uring {
    /// Sets up the ring for a context that asked for io_uring
    /// (QAIO_FDMON=io_uring): failure is an error naming io_uring.
    pub fn setup() -> Result<Box<Uring>, String> {
        let u = Self::create().map_err(|e| format!("Failed to initialize io_uring: {e}"))?;
        IN_USE.store(true, Ordering::Relaxed);
        Ok(u)
    }

    /// The default choice: io_uring if it works. Once a context has got it,
    /// every later one must (`aio_has_io_uring()` is the same everywhere);
    /// if the first attempt fails, no context uses it and a warning is
    /// printed once.
    pub fn setup_auto() -> Result<Option<Box<Uring>>, String> {
        if AUTO_FAILED.load(Ordering::Relaxed) && !IN_USE.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match Self::create() {
            Ok(u) => {
                IN_USE.store(true, Ordering::Relaxed);
                Ok(Some(u))
            }
            Err(e) => {
                let msg = format!("Failed to initialize io_uring: {e}");
                if IN_USE.load(Ordering::Relaxed) {
                    return Err(msg);
                }
                AUTO_FAILED.store(true, Ordering::Relaxed);
                WARN_ONCE.call_once(|| eprintln!("qaio: {msg}; using poll(2) and epoll instead"));
                Ok(None)
            }
        }
    }

    fn create() -> Result<Box<Uring>, String> {
        let ring = build_ring().map_err(|e| strerror(&e))?;
        let params = ring.params();
        // Without NODROP the kernel discards completions that do not fit in
        // the CQ, which would silently kill handlers and lose user requests.
        if !params.is_feature_nodrop() {
            return Err("the kernel lacks IORING_FEAT_NODROP (Linux 5.5)".into());
        }
        let mut probe = Probe::new();
        // Probing needs 5.6; an older kernel has these opcodes anyway.
        if ring.submitter().register_probe(&mut probe).is_ok() {
            for (code, name) in [
                (opcode::PollAdd::CODE, "POLL_ADD"),
                (opcode::PollRemove::CODE, "POLL_REMOVE"),
                (opcode::Timeout::CODE, "TIMEOUT"),
            ] {
                if !probe.is_supported(code) {
                    return Err(format!("the kernel does not support IORING_OP_{name}"));
                }
            }
        }
        let skip_cqe = params.is_feature_skip_cqe_on_success();
        let ring_fd = ring.as_raw_fd();
        let q = queues::Queues::new(&ring).map_err(|e| strerror(&e))?;
        Ok(Box::new(Uring {
            ring: UnsafeCell::new(ring),
            q,
            ring_fd,
            submit_list: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            cqe_first: Cell::new(ptr::null_mut()),
            cqe_last: Cell::new(ptr::null_mut()),
            stash: UnsafeCell::new(AioHandlerList::default()),
            tag: AtomicPtr::new(ptr::null_mut()),
            ctx: AtomicPtr::new(ptr::null_mut()),
            skip_cqe,
            wait_ts: UnsafeCell::new(Timespec::new()),
        }))
    }

    /// The ring.
    ///
    /// # Safety
    /// The caller is the thread running the context's loop, and no other
    /// reference returned by this function is alive.
    #[allow(clippy::mut_from_ref)]
    unsafe fn ring(&self) -> &mut IoUring {
        // SAFETY: per the contract, this is the only live reference.
        unsafe { &mut *self.ring.get() }
    }

    /// Registers the ring fd with the context's GSource: glib sees it
    /// readable when completions are waiting.
    pub fn attach_gsource(&self, ctx: &Context) {
        self.ctx
            .store(ctx as *const Context as *mut Context, Ordering::Release);
        if self.tag.load(Ordering::Acquire).is_null() {
            self.tag
                .store(gsource_add_unix_fd(ctx, self.ring_fd), Ordering::Release);
        }
    }

    /// Submits pending work and waits up to `timeout` ns (-1 forever, 0 not
    /// at all); ready handlers go on `ready`. Home thread, inside a visit.
    pub fn wait(&self, ctx: &Context, ready: *mut AioHandlerList, timeout: i64) -> i32 {
        self.fill_sq(ctx);
        // Completions already waiting: reap them rather than sleep (this also
        // keeps the count-1 TIMEOUT below from being armed after the CQE it
        // should count).
        // Nor while a prep_sqe callback runs this loop: the SQEs queued
        // behind its unfinished one cannot be submitted (see Queues).
        let mut sleep = timeout != 0 && !self.completions_waiting() && !self.q.held_back();
        if sleep && timeout > 0 {
            // Read by the kernel when it consumes the TIMEOUT SQE, which may
            // be after this call returns (see `wait_ts`). A stale TIMEOUT
            // submitted late is harmless: its CQE (user_data 0) is ignored.
            let ts = self.wait_ts.get();
            // SAFETY: home thread; the kernel is not inside io_uring_enter
            // for this ring now (see `wait_ts`).
            unsafe { ts.write(timespec_from_ns(timeout)) };
            // Count 1: completes with the first other CQE, or at expiry.
            let e = opcode::Timeout::new(ts.cast_const())
                .count(1)
                .build()
                .user_data(0);
            self.push_sqe(&e);
            // Pushing may have had to reap (see flush_full_sq): check again.
            sleep = !self.completions_waiting();
        }
        self.submit_and_wait(usize::from(sleep));
        self.process_cq(ctx, ready) + self.unstash(ready)
    }

    /// Hands queued work to the kernel without waiting (only if any).
    pub fn flush(&self, ctx: &Context) {
        if self.submit_list.load(Ordering::Acquire).is_null() && self.q.sq_is_empty() {
            return;
        }
        self.fill_sq(ctx);
        self.submit_and_wait(0);
    }

    /// True while the loop must call `wait` even with a zero timeout:
    /// something to submit, or completions in the CQ or held by the kernel
    /// (overflowed, or, with COOP_TASKRUN, waiting for a thread to enter the
    /// kernel). Busy polling stops for it but stays enabled. Home thread.
    pub fn need_wait(&self) -> bool {
        if !self.submit_list.load(Ordering::Acquire).is_null() || self.completions_waiting() {
            return true;
        }
        !self.q.sq_is_empty() || self.q.sq_flags() & queues::IORING_SQ_TASKRUN != 0
    }

    /// glib is about to poll: submit what is queued (no timeout SQE, glib
    /// does the sleeping). Returns true if glib must not sleep: the kernel
    /// refused the submission (EBUSY/EAGAIN) and SQEs are still queued, or
    /// completions already wait for dispatch. Nothing would make the ring fd
    /// readable for either. Not `need_wait`: pending task work may belong to
    /// another thread, and polling for it would spin. Home thread.
    pub fn gsource_prepare(&self, ctx: &Context) -> bool {
        self.fill_sq(ctx);
        self.submit_and_wait(0);
        !self.q.sq_is_empty() || self.completions_waiting()
    }

    /// glib polled: is there anything to reap? The ring fd may not have
    /// been readable when glib polled although completions arrived since.
    pub fn gsource_check(&self, ctx: &Context) -> bool {
        gsource_query_unix_fd(ctx, self.tag.load(Ordering::Acquire)) || self.completions_waiting()
    }

    /// Reaps the CQ for glib's dispatch. Home thread, inside a visit.
    pub fn gsource_dispatch(&self, ctx: &Context, ready: *mut AioHandlerList) {
        self.process_cq(ctx, ready);
        self.unstash(ready);
    }

    /// Tears the ring down at context finalize. The ring goes first: the
    /// kernel cancels what is in flight and no callback of a request still
    /// in flight ever runs.
    pub fn destroy(self: Box<Self>, ctx: &Context, _reg: &mut Registry) {
        // Stashed handlers point at the stash head inside this allocation:
        // unlink them before it moves.
        // SAFETY: the stash nodes are alive until handlers::finalize.
        while unsafe { handlers::pop_ready(self.stash.get()) }.is_some() {}
        let Uring {
            ring,
            submit_list,
            cqe_first,
            tag,
            ..
        } = *self;
        let ring = ring.into_inner();
        // Cancel what is in flight and wait (up to a second) for operations
        // already running in the kernel's workers, so that as far as the
        // kernel allows, no request touches its buffers once the context is
        // gone (Linux 6.0; best effort: errors are ignored). Closing the
        // ring then cancels whatever is left, asynchronously.
        let _ = ring
            .submitter()
            .register_sync_cancel(Some(Timespec::new().sec(1)), CancelBuilder::any());
        drop(ring);
        // Queued handler changes are moot; the handlers themselves are freed
        // with the registry, deleted ones included.
        let mut node = submit_list.swap(ptr::null_mut(), Ordering::Acquire);
        while !node.is_null() {
            // SAFETY: registry nodes are alive until handlers::finalize.
            let u = unsafe { &(*node).uring };
            // SAFETY: as above.
            node = unsafe { &(*node).uring_next }.swap(ptr::null_mut(), Ordering::Relaxed);
            u.flags.store(0, Ordering::Relaxed);
        }
        gsource_remove_unix_fd(ctx, tag.load(Ordering::Acquire));
        if !cqe_first.get().is_null() {
            crate::abi::misuse(
                "aio_ctx_finalize",
                "an aio_add_sqe request completed but its CqeHandler has not run yet \
                 (run aio_poll until every completed request is dispatched before the last \
                 aio_context_unref)",
            );
        }
    }
}

fn build_ring() -> io::Result<IoUring> {
    let mut last_err = None;
    for v in SETUP_VARIANTS {
        let mut b = IoUring::builder();
        b.setup_cqsize(CQ_ENTRIES);
        if v.submit_all {
            b.setup_submit_all();
        }
        if v.coop_taskrun {
            b.setup_coop_taskrun().setup_taskrun_flag();
        }
        match b.build(SQ_ENTRIES) {
            Ok(r) => return Ok(r),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)))
}

fn timespec_from_ns(ns: i64) -> Timespec {
    Timespec::new()
        .sec((ns / NS_PER_SEC) as u64)
        .nsec((ns % NS_PER_SEC) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespec_splits_ns() {
        let ts = timespec_from_ns(2 * NS_PER_SEC + 5);
        // Timespec's fields are private; compare through its Debug output.
        let s = format!("{ts:?}");
        assert!(s.contains("tv_sec: 2") && s.contains("tv_nsec: 5"), "{s}");
    }
}
