//! The ring's queues: putting SQEs on it, submitting them (EINTR, EBUSY and
//! a full SQ), and reaping the CQ, overflowed completions included. The
//! submission/completion plumbing of util/fdmon-io_uring.c (`get_sqe`,
//! `process_cq_ring`).

use std::io;
use std::mem::MaybeUninit;
use std::sync::Once;
use std::sync::atomic::Ordering;

use io_uring::{EnterFlags, cqueue, squeue};

use super::{TAG_POLL, Uring};
use crate::abi::CqeHandler;
use crate::context::Context;
use crate::handlers::{AioHandler, AioHandlerList};

/// CQEs copied out of the ring at a time while reaping (on the stack).
const REAP_BATCH: usize = 64;

static DROPPED_ONCE: Once = Once::new();

impl Uring {
    /// Puts an SQE on the ring, first handing a full SQ to the kernel
    /// (QEMU's `get_sqe`). Home thread.
    pub(super) fn push_sqe(&self, e: &squeue::Entry) {
        loop {
            // SAFETY: home thread; the entry's pointers (a wait timespec, a
            // user buffer) are valid until the kernel has consumed the SQE,
            // per the callers' contracts.
            if unsafe { self.ring().submission().push(e) }.is_ok() {
                return;
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
    pub(super) fn submit_and_wait(&self, want: usize) {
        loop {
            // SAFETY: home thread, no other ring reference alive.
            let ring = unsafe { self.ring() };
            if want == 0 && ring.submission().is_empty() {
                // Nothing to hand over; reaping brings in what the kernel holds.
                return;
            }
            match ring.submit_and_wait(want) {
                Ok(_) => {
                    if ring.completion().len() >= want {
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
                self.ring().submitter().enter::<libc::sigset_t>(
                    0,
                    0,
                    EnterFlags::GETEVENTS.bits(),
                    None,
                )
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
        // SAFETY: home thread, no other ring reference alive.
        let sq = unsafe { self.ring() }.submission();
        sq.cq_overflow() || sq.taskrun()
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
        // SAFETY: home thread, no other ring reference alive.
        let ring = unsafe { self.ring() };
        !ring.completion().is_empty() || ring.submission().cq_overflow()
    }

    /// Reaps the CQ (QEMU's `process_cq_ring`): ready handlers go on
    /// `ready`, user completions on the CqeHandler queue. Every completion
    /// the kernel holds is taken, overflowed ones included. Returns the
    /// number of ready handlers. Home thread.
    pub(super) fn process_cq(&self, ctx: &Context, ready: *mut AioHandlerList) -> i32 {
        let mut n = 0;
        let mut batch = [const { MaybeUninit::<cqueue::Entry>::uninit() }; REAP_BATCH];
        loop {
            let got = {
                // SAFETY: home thread, no other ring reference alive.
                let mut cq = unsafe { self.ring() }.completion();
                cq.fill(&mut batch).len()
                // Dropping `cq` gives the slots back to the kernel.
            };
            if got == 0 {
                if !self.kernel_has_cqes() {
                    break;
                }
                self.get_events();
                // SAFETY: home thread, no other ring reference alive.
                if unsafe { self.ring() }.completion().is_empty() {
                    break;
                }
                continue;
            }
            for e in &batch[..got] {
                // SAFETY: `fill` initialized the first `got` entries.
                let e = unsafe { e.assume_init_ref() };
                n += self.process_cqe(ctx, ready, e.user_data(), e.result(), e.flags());
            }
        }
        n
    }

    fn process_cqe(
        &self,
        ctx: &Context,
        ready: *mut AioHandlerList,
        user_data: u64,
        res: i32,
        flags: u32,
    ) -> i32 {
        if user_data == 0 {
            return 0;
        }
        if user_data & TAG_POLL != 0 {
            let node = (user_data & !TAG_POLL) as *mut AioHandler;
            return self.poll_completed(ctx, ready, node, res);
        }
        self.queue_completion(user_data as *mut CqeHandler, res, flags);
        0
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
