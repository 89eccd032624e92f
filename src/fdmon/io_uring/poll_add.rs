//! Watching handler fds on the ring: one one-shot `POLL_ADD` per handler,
//! re-armed after each completion; the atomic submit list through which any
//! thread queues a handler change; and deferred deletion once the kernel has
//! let go of a removed handler. Corresponds to the fd-monitoring half of
//! util/fdmon-io_uring.c (`fdmon_io_uring_update`, `fill_sq_ring`,
//! `add_poll_add_sqe`, `process_cqe` for handlers).

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicU8, Ordering};

use io_uring::opcode;
use io_uring::squeue;
use io_uring::types::Fd;

use super::{TAG_POLL, Uring};
use crate::context::Context;
use crate::fdmon::{from_poll_bits, to_poll_bits};
use crate::handlers::{self, AioHandler, AioHandlerList, G_IO_ERR};

/// `UringNode::flags`: the node is on `submit_list`.
const PENDING: u8 = 1;
/// A `POLL_ADD` must be armed for the node.
const ADD: u8 = 2;
/// The node was removed: cancel its `POLL_ADD`, and hand it over for
/// freeing once none is in flight. Never cleared.
const REMOVE: u8 = 4;

/// Per-handler io_uring state (QEMU's `node_submitted`, `flags` and
/// `internal_cqe_handler`).
pub struct UringNode {
    /// PENDING | ADD | REMOVE: set by any thread (`enqueue`), cleared by the
    /// home thread (`fill_sq`). One byte: with the handler's other flags it
    /// fits the word its pointers leave, keeping `AioHandler` at 136 bytes
    /// (a 144-byte malloc chunk; thousands of handlers are walked cold).
    pub(super) flags: AtomicU8,
    /// A `POLL_ADD` of this node is in flight. Home thread only.
    pub(super) armed: Cell<bool>,
    /// Not re-armed because it is busy-polled (poll mode is on and it has
    /// io_poll): re-armed when poll mode ends. Home thread only.
    pub(super) parked: Cell<bool>,
}

impl Default for UringNode {
    fn default() -> Self {
        UringNode {
            flags: AtomicU8::new(0),
            armed: Cell::new(false),
            parked: Cell::new(false),
        }
    }
}

impl Uring {
    /// A handler was added (`old` None), removed (`new` None) or replaced.
    /// Any thread, with the registry lock held: only queues the change.
    pub fn update(&self, old: Option<*mut AioHandler>, new: Option<*mut AioHandler>) {
        if let Some(n) = new {
            self.enqueue(n, ADD);
        }
        if let Some(o) = old {
            // SAFETY: alive while the registry lock is held.
            let h = unsafe { &*o };
            debug_assert!(!h.is_deleted(), "io_uring: handler removed twice");
            // Deleted from now on for everyone, but freed only once the kernel
            // has let go of it: set_fd_handler sees the mark and leaves the
            // node to us.
            h.mark_deleted();
            self.enqueue(o, REMOVE);
        }
    }

    /// Flags `node` and puts it on `submit_list` unless already there.
    fn enqueue(&self, node: *mut AioHandler, flag: u8) {
        // SAFETY: the node is alive: callers hold the registry lock, or run
        // in the home thread where a node with work queued is never freed.
        let u = unsafe { &(*node).uring };
        // AcqRel pairs with the fetch_and in fill_sq: whoever sets PENDING
        // first pushes, exactly once.
        let old = u.flags.fetch_or(PENDING | flag, Ordering::AcqRel);
        if old & PENDING != 0 {
            return;
        }
        let mut head = self.submit_list.load(Ordering::Relaxed);
        loop {
            // SAFETY: as above.
            unsafe { &(*node).uring_next }.store(head, Ordering::Relaxed);
            // Release: the node (and `next`) is visible to the home thread's
            // Acquire swap in fill_sq.
            match self.submit_list.compare_exchange_weak(
                head,
                node,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Turns `submit_list` into SQEs (QEMU's `fill_sq_ring`). Home thread.
    pub(super) fn fill_sq(&self, ctx: &Context) {
        // Usually empty (re-arming after a completion bypasses the list):
        // a load then, not a swap. A push racing with it is seen by the
        // next call; its pusher notifies the context, which wakes the wait.
        if self.submit_list.load(Ordering::Relaxed).is_null() {
            return;
        }
        let mut node = self.submit_list.swap(ptr::null_mut(), Ordering::Acquire);
        while !node.is_null() {
            // SAFETY: queued nodes are not freed before they leave the list
            // (below); the home thread is the only one taking them off.
            let n = unsafe { &*node };
            // Read the link before clearing PENDING: from then on another
            // thread may queue the node again and overwrite it.
            let next = n.uring_next.load(Ordering::Relaxed);
            let old = n.uring.flags.fetch_and(!(PENDING | ADD), Ordering::AcqRel);
            if old & REMOVE != 0 {
                if n.uring.armed.get() {
                    // Its completion (-ECANCELED, or an event that raced with
                    // us) lets poll_completed hand it over.
                    let target = node as u64 | TAG_POLL;
                    let mut e = opcode::PollRemove::new(target).build().user_data(0);
                    if self.skip_cqe {
                        e = e.flags(squeue::Flags::SKIP_SUCCESS);
                    }
                    self.push_sqe(&e);
                } else {
                    // Nothing in flight (never armed, or its POLL_ADD already
                    // completed): the kernel does not know it any more.
                    park(ctx, node);
                }
            } else if old & ADD != 0 {
                self.arm(node);
            }
            node = next;
        }
    }

    /// Queues a one-shot `POLL_ADD` for `node`. Home thread.
    fn arm(&self, node: *mut AioHandler) {
        if must_arm(node) {
            self.push_sqe(&poll_add(node));
            // SAFETY: the caller holds a queued (hence alive) node.
            unsafe { &*node }.uring.armed.set(true);
        }
    }

    /// Re-arms a handler whose `POLL_ADD` just completed, from the pass
    /// over the CQ (QEMU's `add_poll_add_sqe` in `process_cqe`): straight
    /// into the SQ, with no atomic operation (only this thread arms), if
    /// there is room; else through `submit_list`, so that the pass never
    /// submits. A removal racing with this (REMOVE set after
    /// `poll_completed` looked) sees `armed` and cancels the new request.
    fn rearm(&self, node: *mut AioHandler) {
        if !must_arm(node) {
            return;
        }
        if self.try_push_sqe(|| poll_add(node)) {
            // SAFETY: poll_completed's node, alive.
            unsafe { &*node }.uring.armed.set(true);
        } else {
            self.enqueue(node, ADD);
        }
    }

    /// A handler's `POLL_ADD` completed with `res` (poll events or -errno).
    /// Always inlined: it runs every iteration (see
    /// `poll::dispatch_ready_handlers`).
    #[inline(always)]
    pub(super) fn poll_completed(
        &self,
        ctx: &Context,
        ready: *mut AioHandlerList,
        node: *mut AioHandler,
        res: i32,
    ) -> i32 {
        // SAFETY: a node is never freed while its POLL_ADD is in flight.
        let n = unsafe { &*node };
        n.uring.armed.set(false);
        // Acquire pairs with the REMOVE set by another thread's update.
        let flags = n.uring.flags.load(Ordering::Acquire);
        if flags & REMOVE != 0 {
            // Removed, and the kernel is done with it. If it is still
            // queued, fill_sq hands it over when it takes it off the list.
            if flags & PENDING == 0 {
                park(ctx, node);
            }
            return 0;
        }
        if res == -libc::ECANCELED {
            // Not cancelled by us: the kernel drops a thread's requests when
            // that thread exits (a context can outlive the thread that last
            // ran it). Watch the fd again, from this thread.
            self.enqueue(node, ADD);
            return 0;
        }
        let revents = match classify(res) {
            PollResult::Events(ev) => {
                // One-shot: watch it again before anyone looks at the fd, so a
                // readiness that persists is seen again (level-triggered) --
                // unless userspace polling watches it: then it is re-armed
                // when poll mode ends, before any sleep (as poll/epoll do not
                // watch polled fds while polling either).
                if ctx.poll_started.get() && n.on_poll_list() && n.io_poll.is_some() {
                    n.uring.parked.set(true);
                } else {
                    self.rearm(node);
                }
                ev
            }
            PollResult::Transient => {
                self.enqueue(node, ADD);
                G_IO_ERR
            }
            PollResult::Dead => {
                // The fd was closed behind our back (or cannot be polled):
                // report an error once, and never arm it again, so a dead
                // fd can neither spin the loop nor produce garbage events.
                n.invalid.store(true, Ordering::Relaxed);
                G_IO_ERR
            }
        };
        // SAFETY: home thread inside a visit (or the stash); node alive.
        unsafe { handlers::add_ready(ready, node, revents) };
        1
    }

    /// Moves handlers off the stash onto `ready`.
    pub(super) fn unstash(&self, ready: *mut AioHandlerList) -> i32 {
        let mut n = 0;
        // SAFETY: home thread; stashed nodes are alive (they are not
        // handed over for freeing while ready, see poll_completed).
        while let Some(node) = unsafe { handlers::pop_ready(self.stash.get()) } {
            // SAFETY: as above.
            unsafe { handlers::add_ready(ready, node, (*node).revents()) };
            n += 1;
        }
        n
    }

    /// Re-arms a handler that was parked while busy-polled.
    pub fn unpark(&self, node: *mut AioHandler) {
        // SAFETY: home thread; node alive during the visit.
        let n = unsafe { &*node };
        // A deleted handler is never armed again (its removal is already
        // under way).
        if n.uring.parked.replace(false) && !n.is_deleted() {
            self.enqueue(node, ADD);
        }
    }
}

/// False if `node` must not get a `POLL_ADD`: already armed; no events
/// (userspace polling only, as on poll(2)); a dead fd, never watched again.
fn must_arm(node: *mut AioHandler) -> bool {
    // SAFETY: callers hold a live node (queued, or just completed).
    let n = unsafe { &*node };
    !n.uring.armed.get() && n.events() != 0 && !n.invalid.load(Ordering::Relaxed)
}

/// The `POLL_ADD` that watches `node`.
#[inline]
fn poll_add(node: *mut AioHandler) -> squeue::Entry {
    // SAFETY: as in must_arm.
    let n = unsafe { &*node };
    opcode::PollAdd::new(Fd(n.fd()), to_poll_bits(n.events()))
        .build()
        .user_data(node as u64 | TAG_POLL)
}

/// Hands a removed node whose `POLL_ADD` is no longer in flight to the
/// registry: the outermost loop iteration frees it.
fn park(ctx: &Context, node: *mut AioHandler) {
    let mut reg = ctx.handlers.lock();
    reg.defer_free(node);
    ctx.published.deleted_pending.store(true, Ordering::Release);
}

/// What a handler's `POLL_ADD` result means (-ECANCELED is handled by the
/// caller).
#[derive(Debug, PartialEq, Eq)]
enum PollResult {
    /// Poll events, as G_IO_* bits.
    Events(u16),
    /// A failure worth retrying (memory pressure): report an error, re-arm.
    Transient,
    /// The fd cannot be watched (closed: -EBADF; or -EINVAL and the like):
    /// report an error once and stop watching it.
    Dead,
}

fn classify(res: i32) -> PollResult {
    if res >= 0 {
        if res as u32 & libc::POLLNVAL as u32 != 0 {
            return PollResult::Dead;
        }
        return PollResult::Events(from_poll_bits(res as u32));
    }
    match -res {
        libc::ENOMEM | libc::EAGAIN | libc::EINTR | libc::EBUSY => PollResult::Transient,
        _ => PollResult::Dead,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::G_IO_IN;

    #[test]
    fn negative_results_are_errors() {
        assert_eq!(classify(libc::POLLIN as i32), PollResult::Events(G_IO_IN));
        assert_eq!(classify(0), PollResult::Events(0));
        assert_eq!(classify(-libc::EBADF), PollResult::Dead);
        assert_eq!(classify(-libc::EINVAL), PollResult::Dead);
        assert_eq!(classify(libc::POLLNVAL as i32), PollResult::Dead);
        assert_eq!(classify(-libc::ENOMEM), PollResult::Transient);
    }
}
