//! Bottom halves: callbacks scheduled from any thread and run by the
//! context's loop. Corresponds to the BH half of util/async.c.
//!
//! Scheduling pushes onto a lock-free LIFO list. `aio_bh_poll` detaches that
//! list as a "slice" and runs it; a nested `aio_bh_poll` (from a callback that
//! calls `aio_poll`) first finishes the slices of its parents, so every BH
//! scheduled before the nested call runs exactly once.

use std::cell::Cell;
use std::ffi::{CStr, c_char, c_void};
use std::ptr;

use crate::abi::MemReentrancyGuard;
use crate::context::Context;
use crate::sync::{AtomicPtr, AtomicU32, Ordering};

/// Linked on some BH list.
pub const BH_PENDING: u32 = 1;
/// Run the callback when dequeued.
pub const BH_SCHEDULED: u32 = 2;
/// Free without running when dequeued.
pub const BH_DELETED: u32 = 4;
/// Free after running.
pub const BH_ONESHOT: u32 = 8;
/// Idle BH: not progress, bounds the sleep to 10 ms instead of 0.
pub const BH_IDLE: u32 = 16;

/// How long an idle BH lets the loop sleep.
pub const IDLE_BH_TIMEOUT_NS: i64 = 10_000_000;

pub type BhFn = Option<unsafe extern "C" fn(opaque: *mut c_void)>;

/// One bottom half (`QEMUBH` in C).
pub struct Bh {
    ctx: *const Context,
    name: *const c_char,
    cb: BhFn,
    opaque: *mut c_void,
    next: AtomicPtr<Bh>,
    flags: AtomicU32,
    reentrancy_guard: *mut MemReentrancyGuard,
    /// The loom models check that every BH is freed.
    #[cfg(loom)]
    _track: loom::alloc::Track<()>,
}

impl Bh {
    /// Allocates an unscheduled BH of `ctx` (NULL only in the loom models,
    /// which never enqueue through the context).
    pub fn new(
        ctx: *const Context,
        cb: BhFn,
        opaque: *mut c_void,
        name: *const c_char,
        reentrancy_guard: *mut MemReentrancyGuard,
        flags: u32,
    ) -> *mut Bh {
        Box::into_raw(Box::new(Bh {
            ctx,
            name,
            cb,
            opaque,
            next: AtomicPtr::new(ptr::null_mut()),
            flags: AtomicU32::new(flags),
            reentrancy_guard,
            #[cfg(loom)]
            _track: loom::alloc::Track::new(()),
        }))
    }

    /// The BH's name for diagnostics (the stringified callback by default).
    pub fn name(&self) -> String {
        if self.name.is_null() {
            return "<unnamed>".into();
        }
        // SAFETY: BH names are NUL-terminated strings that outlive the BH.
        unsafe { CStr::from_ptr(self.name) }
            .to_string_lossy()
            .into_owned()
    }

    fn context(&self) -> &Context {
        // SAFETY: a BH never outlives its context: finalize frees or aborts
        // on every BH still queued.
        unsafe { &*self.ctx }
    }

    /// Sets `new_flags` and links the BH on its context's list unless it is
    /// already linked, then wakes the loop. Any thread.
    ///
    /// # Safety
    /// `bh` is a live BH; after `BH_DELETED` the caller must not touch it again.
    pub unsafe fn enqueue(bh: *mut Bh, new_flags: u32) {
        // SAFETY: the caller guarantees bh is live.
        let ctx = unsafe { &*bh }.context();
        // SAFETY: forwarded contract; a BH's list is its context's.
        unsafe { ctx.bh_list.push(bh, new_flags) };
        ctx.notify();
    }

    /// Clears `BH_SCHEDULED`; the BH stays linked and is dropped from its list
    /// without running. Any thread.
    pub fn cancel(&self) {
        self.flags.fetch_and(!BH_SCHEDULED, Ordering::AcqRel);
    }

    /// Runs the callback, engaging the reentrancy guard around it.
    ///
    /// # Safety
    /// `bh` is live; it may be freed by its own callback.
    pub unsafe fn call(bh: *mut Bh) {
        // SAFETY: bh is live until the callback runs; copy what we need first.
        let (cb, opaque, guard) = unsafe { ((*bh).cb, (*bh).opaque, (*bh).reentrancy_guard) };
        let saved = if guard.is_null() {
            false
        } else {
            // SAFETY: the guard is owned by the caller and outlives the BH.
            unsafe { std::mem::replace(&mut (*guard).engaged_in_io, true) }
        };
        if let Some(cb) = cb {
            // SAFETY: calling the user's callback with its own opaque pointer.
            unsafe { cb(opaque) };
        }
        if !guard.is_null() {
            // SAFETY: as above.
            unsafe { (*guard).engaged_in_io = saved };
        }
    }
}

/// The lock-free LIFO list that [`Bh::enqueue`] pushes onto (the context's
/// `bh_list`): any thread pushes, only the home thread takes.
pub struct BhList {
    head: AtomicPtr<Bh>,
}

impl BhList {
    pub fn new() -> Self {
        BhList {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// [`Bh::enqueue`] without the notify: sets `new_flags` and links the BH
    /// unless it is already linked. Any thread.
    ///
    /// # Safety
    /// `bh` is a live BH whose list is this one.
    #[inline]
    pub unsafe fn push(&self, bh: *mut Bh, new_flags: u32) {
        // SAFETY: the caller guarantees bh is live.
        let b = unsafe { &*bh };
        // The RMW orders this BH's flags before the list insertion below, and
        // the insertion (Release) publishes everything the scheduler wrote.
        let old = b.flags.fetch_or(BH_PENDING | new_flags, Ordering::AcqRel);
        if old & BH_PENDING == 0 {
            let mut head = self.head.load(Ordering::Relaxed);
            loop {
                b.next.store(head, Ordering::Relaxed);
                match self.head.compare_exchange_weak(
                    head,
                    bh,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(h) => head = h,
                }
            }
        }
    }

    /// Detaches the whole list (Acquire: pairs with the Release insertion).
    /// An empty list costs a load, not a swap: a BH pushed right after the
    /// load is the next poll's (its `aio_notify` keeps the loop from
    /// sleeping), and one that happens-before it is seen by coherence.
    fn take(&self) -> *mut Bh {
        if self.head.load(Ordering::Acquire).is_null() {
            return ptr::null_mut();
        }
        self.head.swap(ptr::null_mut(), Ordering::Acquire)
    }

    /// The most recently pushed BH.
    fn first(&self) -> *mut Bh {
        self.head.load(Ordering::Acquire)
    }
}

impl Default for BhList {
    fn default() -> Self {
        Self::new()
    }
}

/// The BHs taken off `bh_list` by one `aio_bh_poll` call. Lives on that
/// call's stack and is chained into the context's slice queue.
pub struct Slice {
    head: Cell<*mut Bh>,
    next: Cell<*const Slice>,
}

impl Slice {
    /// Unlinks the first BH and returns it with the flags it had, clearing
    /// PENDING/SCHEDULED/IDLE so a racing schedule re-links it for later.
    fn pop(&self) -> Option<(*mut Bh, u32)> {
        let bh = self.head.get();
        if bh.is_null() {
            return None;
        }
        // SAFETY: BHs on a slice are live and owned by the loop.
        let b = unsafe { &*bh };
        // Read the link before clearing PENDING: after that another thread
        // may re-link the BH and overwrite `next`.
        self.head.set(b.next.load(Ordering::Relaxed));
        let flags = b
            .flags
            .fetch_and(!(BH_PENDING | BH_SCHEDULED | BH_IDLE), Ordering::AcqRel);
        Some((bh, flags))
    }
}

/// FIFO of slices being worked on (home thread only).
#[derive(Default)]
pub struct SliceQueue {
    first: Cell<*const Slice>,
    last: Cell<*const Slice>,
}

impl SliceQueue {
    pub fn new() -> Self {
        SliceQueue {
            first: Cell::new(ptr::null()),
            last: Cell::new(ptr::null()),
        }
    }

    fn push_back(&self, s: &Slice) {
        s.next.set(ptr::null());
        let last = self.last.get();
        if last.is_null() {
            self.first.set(s);
        } else {
            // SAFETY: queued slices are alive: each belongs to a running
            // aio_bh_poll frame below us on this thread's stack.
            unsafe { (*last).next.set(s) };
        }
        self.last.set(s);
    }

    fn pop_front(&self) {
        let first = self.first.get();
        // SAFETY: as in push_back.
        let next = unsafe { (*first).next.get() };
        self.first.set(next);
        if next.is_null() {
            self.last.set(ptr::null());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.first.get().is_null()
    }

    fn iter(&self) -> impl Iterator<Item = &Slice> {
        let mut cur = self.first.get();
        std::iter::from_fn(move || {
            if cur.is_null() {
                return None;
            }
            // SAFETY: as in push_back.
            let s = unsafe { &*cur };
            cur = s.next.get();
            Some(s)
        })
    }
}

fn free(bh: *mut Bh) {
    // SAFETY: BHs are created by Box::into_raw in Bh::new and freed once, by
    // the loop, after being unlinked.
    drop(unsafe { Box::from_raw(bh) });
}

/// Runs every scheduled BH (`aio_bh_poll`). Home thread only. Returns true if
/// a non-idle BH ran.
#[inline]
pub fn poll(ctx: &Context) -> bool {
    poll_lists(&ctx.bh_list, &ctx.bh_slices)
}

/// [`poll`] on a given list and slice queue (the loom models' entry).
/// Inline, so that a loop iteration with no BH scheduled and no outer
/// `aio_bh_poll` to finish costs two loads and no call.
#[inline]
pub fn poll_lists(list: &BhList, slices: &SliceQueue) -> bool {
    if list.first().is_null() && slices.is_empty() {
        return false;
    }
    run_lists(list, slices)
}

/// [`poll_lists`] when there may be BHs to run.
#[inline(never)]
fn run_lists(list: &BhList, slices: &SliceQueue) -> bool {
    let slice = Slice {
        head: Cell::new(list.take()),
        next: Cell::new(ptr::null()),
    };
    slices.push_back(&slice);
    let mut progress = false;
    while !slices.is_empty() {
        // SAFETY: the first slice is alive (see SliceQueue::push_back).
        let first = unsafe { &*slices.first.get() };
        let Some((bh, flags)) = first.pop() else {
            slices.pop_front();
            continue;
        };
        if flags & (BH_SCHEDULED | BH_DELETED) == BH_SCHEDULED {
            if flags & BH_IDLE == 0 {
                progress = true;
            }
            // SAFETY: bh was just dequeued and is live.
            unsafe { Bh::call(bh) };
        }
        if flags & (BH_DELETED | BH_ONESHOT) != 0 {
            free(bh);
        }
    }
    progress
}

/// The BH part of `aio_compute_timeout`: 0 if a non-idle BH is scheduled,
/// at most 10 ms if only idle ones are, else `timeout` unchanged.
/// Home thread only.
pub fn timeout(ctx: &Context, timeout: i64) -> i64 {
    timeout_lists(&ctx.bh_list, &ctx.bh_slices, timeout)
}

/// [`timeout`] on a given list and slice queue (the loom models' entry).
#[inline]
pub fn timeout_lists(list: &BhList, slices: &SliceQueue, mut timeout: i64) -> i64 {
    let lists = std::iter::once(list.first()).chain(slices.iter().map(|s| s.head.get()));
    for mut bh in lists {
        while !bh.is_null() {
            // SAFETY: BHs linked on the context's lists are live; only this
            // thread unlinks or frees them.
            let b = unsafe { &*bh };
            let flags = b.flags.load(Ordering::Acquire);
            if flags & (BH_SCHEDULED | BH_DELETED) == BH_SCHEDULED {
                if flags & BH_IDLE == 0 {
                    return 0;
                }
                timeout = crate::timer::soonest_timeout(timeout, IDLE_BH_TIMEOUT_NS);
            }
            bh = b.next.load(Ordering::Relaxed);
        }
    }
    timeout
}

/// True if any BH (idle ones included) is scheduled and not deleted: the
/// GSource `check` condition.
pub fn any_scheduled(ctx: &Context) -> bool {
    let lists =
        std::iter::once(ctx.bh_list.first()).chain(ctx.bh_slices.iter().map(|s| s.head.get()));
    for mut bh in lists {
        while !bh.is_null() {
            // SAFETY: as in `timeout`.
            let b = unsafe { &*bh };
            if b.flags.load(Ordering::Acquire) & (BH_SCHEDULED | BH_DELETED) == BH_SCHEDULED {
                return true;
            }
            bh = b.next.load(Ordering::Relaxed);
        }
    }
    false
}

/// Frees the BHs left at finalize. A BH that was not deleted is a leak in
/// the caller, which QEMU treats as fatal.
pub fn finalize(ctx: &Context) {
    if !ctx.bh_slices.is_empty() {
        crate::abi::misuse(
            "aio_ctx_finalize",
            "context finalized while aio_bh_poll is running",
        );
    }
    let mut bh = ctx.bh_list.take();
    while !bh.is_null() {
        // SAFETY: nobody else can reach the context any more.
        let b = unsafe { &*bh };
        let next = b.next.load(Ordering::Relaxed);
        let flags = b.flags.load(Ordering::Acquire);
        if flags & BH_DELETED == 0 {
            crate::abi::misuse(
                "aio_ctx_finalize",
                &format!(
                    "BH '{}' leaked, aborting... (every BH must be deleted before the last unref)",
                    b.name()
                ),
            );
        }
        free(bh);
        bh = next;
    }
}
