//! The ring's queues: putting SQEs on it, submitting them (EINTR, EBUSY and
//! a full SQ), and reaping the CQ, overflowed completions included. The
//! submission/completion plumbing of util/fdmon-io_uring.c (`get_sqe`,
//! `process_cq_ring`).

use std::io;
use std::sync::Once;
use std::sync::atomic::Ordering;

use io_uring::{EnterFlags, squeue};

use super::queues::{IORING_SQ_CQ_OVERFLOW, IORING_SQ_TASKRUN};
use super::{TAG_POLL, Uring};
use crate::context::Context;
use crate::handlers::{AioHandler, AioHandlerList};

static DROPPED_ONCE: Once = Once::new();

impl Uring {
    /// Puts an SQE on the ring, first handing a full SQ to the kernel
    /// (QEMU's `get_sqe`). The entry's pointers (a wait timespec) must stay
    /// valid until the kernel has consumed the SQE. Home thread.
    pub(super) fn push_sqe(&self, e: &squeue::Entry) {
        let slot = self.sq_slot();
        // SAFETY: a slot handed out to us alone (see Queues::reserve).
        unsafe { slot.write(e.clone()) };
        self.q.publish();
    }

    /// Puts an SQE on the ring if there is room, without ever submitting
    /// (so that a pass over the CQ cannot chase its own tail). Home thread.
    /// Takes a builder rather than an entry, so that the entry is built in
    /// the slot.
    #[inline]
    pub(super) fn try_push_sqe(&self, build: impl FnOnce() -> squeue::Entry) -> bool {
        let Some(slot) = self.q.reserve() else {
            return false;
        };
        // SAFETY: as in push_sqe.
        unsafe { slot.write(build()) };
        self.q.publish();
        true
    }

    /// A free SQ slot for the caller to fill and publish, handing a full SQ
    /// to the kernel first. Home thread.
    #[inline]
    pub(super) fn sq_slot(&self) -> *mut squeue::Entry {
        match self.q.reserve() {
            Some(slot) => slot,
            None => self.sq_slot_full(),
        }
    }

    /// `sq_slot` when the SQ is full: out of line, so that the fast path
    /// saves no registers for the submit-and-retry loop.
    #[cold]
    #[inline(never)]
    fn sq_slot_full(&self) -> *mut squeue::Entry {
        loop {
            if let Some(slot) = self.q.reserve() {
                return slot;
            }
            if self.q.sq_is_empty() {
                // Every slot was handed out to a prep_sqe callback that has
                // not returned: nothing can be submitted to make room.
                crate::abi::misuse(
                    "aio_add_sqe",
                    "the submission queue is full of requests whose prep_sqe has not returned \
                     (prep_sqe called aio_add_sqe recursively too deep)",
                );
            }
            self.flush_full_sq();
        }
    }

    /// Submits a full SQ so that more SQEs can be queued. Home thread.
    fn flush_full_sq(&self) {
        loop {
            // SAFETY: home thread, no other ring reference alive.
            match unsafe { self.ring() }.submit() {
                Ok(_) => return,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if is_busy(&e) => {
                    // The kernel wants completions reaped first. There is no
                    // ready list here (we may be inside aio_add_sqe), so
                    // handlers found ready wait on the stash for the next one.
                    let ctx = self.ctx.load(Ordering::Acquire);
                    let reaped = if ctx.is_null() {
                        0
                    } else {
                        // SAFETY: set by attach_gsource; the context outlives
                        // its monitor.
                        self.process_cq(unsafe { &*ctx }, self.stash.get())
                    };
                    if reaped == 0 {
                        std::thread::yield_now();
                    }
                }
                Err(e) => fatal("submitting a full submission queue", &e),
            }
        }
    }

    /// Submits what is queued and waits until at least `want` completions
    /// are in the CQ. Retries EINTR, and a return caused by a signal after
    /// the submission (which reports success with fewer CQEs than asked).
    /// Home thread.
    /// Always inlined: it runs every iteration (see
    /// `poll::dispatch_ready_handlers`).
    #[inline(always)]
    pub(super) fn submit_and_wait(&self, want: usize) {
        loop {
            let to_submit = self.q.sq_len();
            if want == 0 && to_submit == 0 {
                // Nothing to hand over; reaping brings in what the kernel holds.
                return;
            }
            // One io_uring_enter straight from our view of the SQ (the
            // crate's submit_and_wait re-reads the rings and its flags
            // first). GETEVENTS also when the CQ overflowed, so the kernel
            // flushes the overflow list while it is in there.
            let flags = if want > 0 || self.q.sq_flags() & IORING_SQ_CQ_OVERFLOW != 0 {
                EnterFlags::GETEVENTS.bits()
            } else {
                0
            };
            // SAFETY: our ring; the SQEs counted are published, and each
            // one's memory is kept valid by whoever queued it.
            let r =
                unsafe { crate::sys::io_uring_enter(self.ring_fd, to_submit, want as u32, flags) };
            match r {
                Ok(_) => {
                    if self.q.cq_len() >= want {
                        return;
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                // Completions must be reaped first; what was not submitted
                // stays queued and `need_wait` reports it.
                Err(e) if is_busy(&e) => return,
                Err(e) if e.raw_os_error() == Some(libc::EBADR) => report_dropped(),
                Err(e) => fatal("io_uring_enter", &e),
            }
        }
    }

    /// Asks the kernel for completions it holds back: overflowed CQEs (the
    /// CQ was full) and, with COOP_TASKRUN, completions waiting for this
    /// thread to enter the kernel. Home thread.
    fn get_events(&self) {
        loop {
            // SAFETY: home thread; GETEVENTS without submitting or waiting.
            let r = unsafe {
                crate::sys::io_uring_enter(self.ring_fd, 0, 0, EnterFlags::GETEVENTS.bits())
            };
            match r {
                Ok(_) => return,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBADR) => {
                    report_dropped();
                    return;
                }
                Err(e) if is_busy(&e) => return,
                Err(e) => fatal("io_uring_enter(GETEVENTS)", &e),
            }
        }
    }

    /// True if the kernel holds completions that are not in the CQ yet.
    fn kernel_has_cqes(&self) -> bool {
        self.q.sq_flags() & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN) != 0
    }

    /// True if completions wait for the loop: reaped ones, ones in the CQ,
    /// and overflowed ones (any GETEVENTS brings those in).
    ///
    /// Pending task work (TASKRUN) does not count here: it may belong to
    /// another thread (one that submitted requests before the context moved
    /// to this one), and only that thread can turn it into CQEs, so a
    /// blocking wait must not give up its sleep for it. Our own task work
    /// runs as soon as we enter the kernel anyway.
    pub(super) fn completions_waiting(&self) -> bool {
        if !self.cqe_first.get().is_null() {
            return true;
        }
        // SAFETY: home thread; the stash head is ours.
        if !unsafe { (*self.stash.get()).lh_first }.is_null() {
            return true;
        }
        !self.q.cq_is_empty() || self.q.sq_flags() & IORING_SQ_CQ_OVERFLOW != 0
    }

    /// Reaps the CQ (QEMU's `process_cq_ring`): ready handlers go on
    /// `ready`, user completions on the CqeHandler queue. Every completion
    /// the kernel holds is taken, overflowed ones included. Returns the
    /// number of ready handlers. Home thread.
    /// Always inlined: it runs every iteration (see
    /// `poll::dispatch_ready_handlers`).
    #[inline(always)]
    pub(super) fn process_cq(&self, ctx: &Context, ready: *mut AioHandlerList) -> i32 {
        let mut n = 0;
        loop {
            // The tail is read once per batch and the head released once:
            // the CQEs are read in place, and nothing the loop calls reaps
            // the CQ (it queues, and pushes SQEs only if there is room), so
            // no one else moves the head meanwhile.
            let (mut head, tail) = self.q.cq_bounds();
            if head == tail {
                if !self.kernel_has_cqes() {
                    break;
                }
                self.get_events();
                if self.q.cq_is_empty() {
                    break;
                }
                continue;
            }
            while head != tail {
                let e = self.q.cq_view().get(head);
                let user_data = e.user_data();
                if user_data & TAG_POLL != 0 {
                    let node = (user_data & !TAG_POLL) as *mut AioHandler;
                    n += self.poll_completed(ctx, ready, node, e.result());
                    head = head.wrapping_add(1);
                } else {
                    // User requests, and our TIMEOUTs (user_data 0), which
                    // queue_completions skips.
                    head = self.queue_completions(head, tail);
                }
            }
            self.q.cq_release(head);
        }
        n
    }
}

/// The kernel asks for completions to be reaped before it takes more.
fn is_busy(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EAGAIN))
}

/// The kernel had to drop completions (it could not allocate room for an
/// overflowed one). Nothing can bring them back; say so once.
fn report_dropped() {
    DROPPED_ONCE.call_once(|| {
        eprintln!("qaio: io_uring: the kernel dropped completions (out of memory)");
    });
}

#[cold]
fn fatal(what: &str, e: &io::Error) -> ! {
    eprintln!("qaio: io_uring: {what} failed: {e}; aborting");
    std::process::abort()
}
