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
//
// `ready` arguments are the ready lists of the running loop iteration (see
// handlers.rs); the monitor functions only run inside such an iteration.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::cell::{Cell, UnsafeCell};
use std::ffi::{CStr, c_void};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::ptr;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};

use crossbeam_utils::CachePadded;
use io_uring::types::{CancelBuilder, Fd, Timespec};
use io_uring::{EnterFlags, IoUring, Probe, cqueue, opcode, squeue};

use crate::abi::{CqeHandler, io_uring_cqe, io_uring_sqe};
use crate::context::Context;
use crate::fdmon::{
    from_poll_bits, gsource_add_unix_fd, gsource_query_unix_fd, gsource_remove_unix_fd,
    to_poll_bits,
};
use crate::handlers::{self, AioHandler, AioHandlerList, G_IO_ERR, Registry};

/// SQ entries, as upstream; the CQ gets twice as many (the kernel default).
const SQ_ENTRIES: u32 = 128;
const CQ_ENTRIES: u32 = 2 * SQ_ENTRIES;

/// CQEs copied out of the ring at a time while reaping (on the stack).
const REAP_BATCH: usize = 64;

/// Low bit of the `user_data` of a handler's `POLL_ADD`.
const TAG_POLL: u64 = 1;

/// `UringNode::flags`: the node is on `submit_list`.
const PENDING: u32 = 1;
/// A `POLL_ADD` must be armed for the node.
const ADD: u32 = 2;
/// The node was removed: cancel its `POLL_ADD`, and hand it over for
/// freeing once none is in flight. Never cleared.
const REMOVE: u32 = 4;

const NS_PER_SEC: i64 = 1_000_000_000;

// `aio_add_sqe` lets C fill the crate's SQE type in place through our
// mirror of the kernel struct: `squeue::Entry` is a repr(C) wrapper of
// `io_uring_sqe` (a private field, hence these checks).
const _: () = assert!(std::mem::size_of::<squeue::Entry>() == 64);
const _: () = assert!(std::mem::align_of::<squeue::Entry>() == 8);
const _: () = assert!(std::mem::size_of::<io_uring_sqe>() == 64);
const _: () = assert!(std::mem::align_of::<io_uring_sqe>() == 8);
// The tag bit must be free in both kinds of user_data.
const _: () = assert!(std::mem::align_of::<CqeHandler>() >= 8);
const _: () = assert!(std::mem::align_of::<AioHandler>() >= 8);

/// Per-handler io_uring state (QEMU's `node_submitted`, `flags` and
/// `internal_cqe_handler`).
pub struct UringNode {
    /// PENDING | ADD | REMOVE: set by any thread (`enqueue`), cleared by the
    /// home thread (`fill_sq`).
    flags: AtomicU32,
    /// Link on `Uring::submit_list`, meaningful while PENDING is set.
    next: AtomicPtr<AioHandler>,
    /// A `POLL_ADD` of this node is in flight. Home thread only.
    armed: Cell<bool>,
    /// Not re-armed because it is busy-polled (poll mode is on and it has
    /// io_poll): re-armed when poll mode ends. Home thread only.
    parked: Cell<bool>,
}

impl Default for UringNode {
    fn default() -> Self {
        UringNode {
            flags: AtomicU32::new(0),
            next: AtomicPtr::new(ptr::null_mut()),
            armed: Cell::new(false),
            parked: Cell::new(false),
        }
    }
}

/// Set once a context got io_uring: from then on every context must.
static IN_USE: AtomicBool = AtomicBool::new(false);
/// Set when the automatic choice failed: later contexts do not retry, so
/// that all contexts agree on `aio_has_io_uring()`.
static AUTO_FAILED: AtomicBool = AtomicBool::new(false);
static WARN_ONCE: Once = Once::new();
static DROPPED_ONCE: Once = Once::new();

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
        Ok(Box::new(Uring {
            ring: UnsafeCell::new(ring),
            ring_fd,
            submit_list: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            cqe_first: Cell::new(ptr::null_mut()),
            cqe_last: Cell::new(ptr::null_mut()),
            stash: UnsafeCell::new(AioHandlerList::default()),
            tag: AtomicPtr::new(ptr::null_mut()),
            ctx: AtomicPtr::new(ptr::null_mut()),
            skip_cqe,
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
    fn enqueue(&self, node: *mut AioHandler, flag: u32) {
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
            u.next.store(head, Ordering::Relaxed);
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
    fn fill_sq(&self, ctx: &Context) {
        let mut node = self.submit_list.swap(ptr::null_mut(), Ordering::Acquire);
        while !node.is_null() {
            // SAFETY: queued nodes are not freed before they leave the list
            // (below); the home thread is the only one taking them off.
            let n = unsafe { &*node };
            // Read the link before clearing PENDING: from then on another
            // thread may queue the node again and overwrite it.
            let next = n.uring.next.load(Ordering::Relaxed);
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
        // SAFETY: the caller holds a queued (hence alive) node.
        let n = unsafe { &*node };
        let events = n.events();
        // A handler without events (userspace polling only) is not watched,
        // as on poll(2); a dead fd is not watched again.
        if n.uring.armed.get() || events == 0 || n.invalid.load(Ordering::Relaxed) {
            return;
        }
        let e = opcode::PollAdd::new(Fd(n.fd()), to_poll_bits(events))
            .build()
            .user_data(node as u64 | TAG_POLL);
        self.push_sqe(&e);
        n.uring.armed.set(true);
    }

    /// Puts an SQE on the ring, first handing a full SQ to the kernel
    /// (QEMU's `get_sqe`). Home thread.
    fn push_sqe(&self, e: &squeue::Entry) {
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
    fn submit_and_wait(&self, want: usize) {
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
    fn completions_waiting(&self) -> bool {
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
    fn process_cq(&self, ctx: &Context, ready: *mut AioHandlerList) -> i32 {
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
        let h = user_data as *mut CqeHandler;
        // SAFETY: the user keeps a CqeHandler valid until its callback ran;
        // its completion arrives once, so it is on no queue yet.
        unsafe {
            (*h).cqe = io_uring_cqe {
                user_data,
                res,
                flags,
            };
            (*h).next.sqe_next = ptr::null_mut();
            let last = self.cqe_last.get();
            if last.is_null() {
                self.cqe_first.set(h);
            } else {
                (*last).next.sqe_next = h;
            }
        }
        self.cqe_last.set(h);
        0
    }

    /// A handler's `POLL_ADD` completed with `res` (poll events or -errno).
    fn poll_completed(
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
                    self.enqueue(node, ADD);
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
    fn unstash(&self, ready: *mut AioHandlerList) -> i32 {
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

    /// Submits pending work and waits up to `timeout` ns (-1 forever, 0 not
    /// at all); ready handlers go on `ready`. Home thread, inside a visit.
    pub fn wait(&self, ctx: &Context, ready: *mut AioHandlerList, timeout: i64) -> i32 {
        self.fill_sq(ctx);
        // Completions already waiting: reap them rather than sleep (this also
        // keeps the count-1 TIMEOUT below from being armed after the CQE it
        // should count).
        let sleep = timeout != 0 && !self.completions_waiting();
        // Read by the kernel when it consumes the TIMEOUT SQE, at the latest
        // in submit_and_wait below: it must live in this frame until then.
        let ts = timespec_from_ns(timeout.max(0));
        if sleep && timeout > 0 {
            // Count 1: completes with the first other CQE, or at expiry.
            let e = opcode::Timeout::new(&ts).count(1).build().user_data(0);
            self.push_sqe(&e);
        }
        // Pushing may have had to reap (see flush_full_sq): check again.
        let want = usize::from(sleep && !self.completions_waiting());
        self.submit_and_wait(want);
        self.process_cq(ctx, ready) + self.unstash(ready)
    }

    /// Hands queued work to the kernel without waiting (only if any).
    pub fn flush(&self, ctx: &Context) {
        if self.submit_list.load(Ordering::Acquire).is_null()
            // SAFETY: home thread, no other ring reference alive.
            && unsafe { self.ring() }.submission().is_empty()
        {
            return;
        }
        self.fill_sq(ctx);
        self.submit_and_wait(0);
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

    /// True while the loop must call `wait` even with a zero timeout:
    /// something to submit, or completions in the CQ or held by the kernel
    /// (overflowed, or, with COOP_TASKRUN, waiting for a thread to enter the
    /// kernel). Busy polling stops for it but stays enabled. Home thread.
    pub fn need_wait(&self) -> bool {
        if !self.submit_list.load(Ordering::Acquire).is_null() || self.completions_waiting() {
            return true;
        }
        // SAFETY: home thread, no other ring reference alive.
        let sq = unsafe { self.ring() }.submission();
        !sq.is_empty() || sq.taskrun()
    }

    /// Runs the callbacks of completed user requests, oldest first
    /// (QEMU's `fdmon_io_uring_dispatch`). Each is unlinked before its
    /// callback runs, so a nested loop inside a callback continues with the
    /// next one and none runs twice. Home thread, inside a visit.
    pub fn dispatch(&self, _ctx: &Context) -> bool {
        let mut progress = false;
        loop {
            let h = self.cqe_first.get();
            if h.is_null() {
                break;
            }
            // SAFETY: queued handlers are valid until their callback ran
            // (the aio_add_sqe contract).
            let cb = unsafe {
                let next = (*h).next.sqe_next;
                self.cqe_first.set(next);
                if next.is_null() {
                    self.cqe_last.set(ptr::null_mut());
                }
                (*h).next.sqe_next = ptr::null_mut();
                (*h).cb
            };
            let Some(cb) = cb else {
                crate::abi::misuse(
                    "aio_add_sqe",
                    "cqe_handler->cb was NULL when the request completed (set it before aio_add_sqe)",
                );
            };
            // SAFETY: the user's callback with its own handler.
            unsafe { cb(h) };
            progress = true;
        }
        progress
    }

    /// glib is about to poll: submit what is queued (no timeout SQE, glib
    /// does the sleeping). Home thread.
    pub fn gsource_prepare(&self, ctx: &Context) {
        self.fill_sq(ctx);
        self.submit_and_wait(0);
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

    /// Adds a user request: `prep` fills a zeroed SQE, then `user_data`
    /// is set to the handler. Home thread. The SQE is submitted at the next
    /// wait (or glib prepare), or at once if the SQ is full.
    pub fn add_sqe(
        &self,
        prep: unsafe extern "C" fn(*mut io_uring_sqe, *mut c_void),
        opaque: *mut c_void,
        h: *mut CqeHandler,
    ) {
        if (h as usize) & (std::mem::align_of::<CqeHandler>() - 1) != 0 {
            crate::abi::misuse(
                "aio_add_sqe",
                "cqe_handler is not a properly aligned CqeHandler",
            );
        }
        let mut e = opcode::Nop::new().build();
        let sqe = &mut e as *mut squeue::Entry as *mut io_uring_sqe;
        // SAFETY: `e` is a repr(C) io_uring_sqe of the same size and
        // alignment as our mirror (asserted above); the C callback fills it
        // in place and does not keep the pointer.
        unsafe {
            ptr::write_bytes(sqe, 0, 1);
            prep(sqe, opaque);
        }
        e.set_user_data(h as u64);
        self.push_sqe(&e);
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
            node = u.next.swap(ptr::null_mut(), Ordering::Relaxed);
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

/// Hands a removed node whose `POLL_ADD` is no longer in flight to the
/// registry: the outermost loop iteration frees it.
fn park(ctx: &Context, node: *mut AioHandler) {
    let mut reg = ctx.handlers.lock();
    reg.defer_free(node);
    ctx.deleted_pending.store(true, Ordering::Release);
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

/// The message of an errno, as strerror(3) words it.
fn strerror(e: &io::Error) -> String {
    let Some(errno) = e.raw_os_error() else {
        return e.to_string();
    };
    let mut buf = [0u8; 128];
    // SAFETY: buf is writable for its length; the XSI strerror_r always
    // NUL-terminates what it writes.
    let r = unsafe { libc::strerror_r(errno, buf.as_mut_ptr().cast(), buf.len()) };
    match CStr::from_bytes_until_nul(&buf) {
        Ok(s) if r == 0 => s.to_string_lossy().into_owned(),
        _ => e.to_string(),
    }
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
    use crate::handlers::{G_IO_ERR, G_IO_HUP, G_IO_IN, G_IO_OUT};

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
        // POLLPRI and POLLRDNORM are not G_IO_* events a handler asks for.
        assert_eq!(
            from_poll_bits((libc::POLLIN | libc::POLLPRI | libc::POLLRDNORM) as u32),
            G_IO_IN
        );
    }

    #[test]
    fn negative_results_are_errors() {
        assert_eq!(classify(libc::POLLIN as i32), PollResult::Events(G_IO_IN));
        assert_eq!(classify(0), PollResult::Events(0));
        assert_eq!(classify(-libc::EBADF), PollResult::Dead);
        assert_eq!(classify(-libc::EINVAL), PollResult::Dead);
        assert_eq!(classify(libc::POLLNVAL as i32), PollResult::Dead);
        assert_eq!(classify(-libc::ENOMEM), PollResult::Transient);
    }

    #[test]
    fn timespec_splits_ns() {
        let ts = timespec_from_ns(2 * NS_PER_SEC + 5);
        // Timespec's fields are private; compare through its Debug output.
        let s = format!("{ts:?}");
        assert!(s.contains("tv_sec: 2") && s.contains("tv_nsec: 5"), "{s}");
    }

    #[test]
    fn tag_bit_is_free_in_handler_addresses() {
        let b = Box::new(std::mem::MaybeUninit::<CqeHandler>::uninit());
        assert_eq!(&*b as *const _ as u64 & TAG_POLL, 0);
    }
}
