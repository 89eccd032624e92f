//! The AioHandler registry: one handler per (context, fd), replaced rather
//! than mutated, with deferred deletion so a callback may remove any
//! handler, its own included. Corresponds to the handler half of
//! util/aio-posix.c.
//!
//! Lifetime rule: a handler is freed only by someone holding the registry
//! lock while no visitor (running `aio_poll`/`aio_dispatch`) exists. Removal
//! during a walk marks the node deleted and parks it on `deleted`; the
//! outermost visitor frees it when it leaves.
//!
//! Besides the registry proper (behind the lock), every handler not yet
//! freed is on a singly-linked chain, newest first ([`Published`]), that a
//! visitor walks without the lock, as QEMU walks its RCU list: nodes are
//! linked in at the head under the lock (a walk in progress sees them or
//! not) and unlinked only when freed, which needs no visitor.

use std::cell::{Cell, UnsafeCell};
use std::collections::HashMap;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU16, Ordering};

use glib_sys::GPollFD;

use crate::context::Context;
use crate::fdmon::io_uring::UringNode;
use crate::lockcnt::LockCnt;

pub const G_IO_IN: u16 = glib_sys::G_IO_IN as u16;
pub const G_IO_OUT: u16 = glib_sys::G_IO_OUT as u16;
pub const G_IO_HUP: u16 = glib_sys::G_IO_HUP as u16;
pub const G_IO_ERR: u16 = glib_sys::G_IO_ERR as u16;
pub const G_IO_NVAL: u16 = glib_sys::G_IO_NVAL as u16;

/// Events that run `io_read`.
pub const READ_EVENTS: u16 = G_IO_IN | G_IO_HUP | G_IO_ERR;
/// Events that run `io_write`.
pub const WRITE_EVENTS: u16 = G_IO_OUT | G_IO_ERR;

pub type IoFn = Option<unsafe extern "C" fn(opaque: *mut c_void)>;
pub type PollFn = Option<unsafe extern "C" fn(opaque: *mut c_void) -> bool>;

/// An intrusive doubly-linked list entry (QEMU's QLIST_ENTRY): `prev` points
/// at the previous node's `next` cell or at the list head, so a node can be
/// unlinked without knowing which list it is on.
#[derive(Default)]
pub struct Link {
    next: Cell<*mut AioHandler>,
    prev: Cell<*mut *mut AioHandler>,
}

impl Default for AioHandlerList {
    fn default() -> Self {
        AioHandlerList {
            lh_first: ptr::null_mut(),
        }
    }
}

/// Head of a list of handlers (QEMU's `AioHandlerList`). Ready lists live on
/// the stack of the loop iteration that fills them and must not move while
/// non-empty.
#[repr(C)]
pub struct AioHandlerList {
    pub lh_first: *mut AioHandler,
}

/// One registered fd handler. Opaque to C.
pub struct AioHandler {
    /// fd, requested events and glib-reported events. glib keeps a pointer
    /// to it while the handler is registered with the GSource (poll(2)
    /// monitor), so a handler never moves.
    pub(crate) pfd: UnsafeCell<GPollFD>,
    pub(crate) io_read: IoFn,
    pub(crate) io_write: IoFn,
    pub(crate) io_poll: PollFn,
    pub(crate) io_poll_ready: IoFn,
    pub(crate) io_poll_begin: Cell<IoFn>,
    pub(crate) io_poll_end: Cell<IoFn>,
    pub(crate) opaque: *mut c_void,
    /// Logically removed: no callback may run, lookups skip it.
    deleted: AtomicBool,
    /// poll(2) said the fd is invalid: never waited on again.
    pub(crate) invalid: AtomicBool,
    /// Marked by the free pass.
    freeing: Cell<bool>,
    ready: Link,
    poll: Link,
    /// Set when userspace polling found the handler ready.
    pub(crate) poll_ready: AtomicBool,
    /// When an unproductive polled handler is retired (io_uring only).
    pub(crate) poll_idle_timeout: Cell<i64>,
    /// This handler's adaptive polling time in ns.
    pub(crate) poll_ns: AtomicI64,
    /// io_uring monitor state.
    pub(crate) uring: UringNode,
    /// io_uring: the link on `Uring::submit_list`, meaningful while the
    /// node's PENDING flag is set (outside `UringNode`, whose bytes then
    /// pack with the flags here).
    pub(crate) uring_next: std::sync::atomic::AtomicPtr<AioHandler>,
    /// The next older handler on the [`Published`] chain.
    older: crate::sync::AtomicPtr<AioHandler>,
    /// The loom models' use-after-free probe: false once the node is freed.
    #[cfg(loom)]
    pub(crate) alive: loom::sync::Arc<crate::sync::AtomicBool>,
}

#[cfg(loom)]
impl Drop for AioHandler {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Release);
    }
}

// Thousands of handlers are walked cold: keep the node in a 144-byte malloc
// chunk (136 bytes of struct).
#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<AioHandler>() <= 136);

// SAFETY: the Cell fields are touched only by the context's home thread
// during a visit, or by a lock holder while no visitor exists (see the
// module comment); the cross-thread fields are atomics.
unsafe impl Sync for AioHandler {}
// SAFETY: as above.
unsafe impl Send for AioHandler {}

impl AioHandler {
    pub fn fd(&self) -> i32 {
        // SAFETY: fd is written only at creation.
        unsafe { (*self.pfd.get()).fd }
    }

    fn events_atomic(&self) -> &AtomicU16 {
        // SAFETY: GPollFD.events is a properly aligned u16 inside the node;
        // every access to it goes through this atomic view.
        unsafe { AtomicU16::from_ptr(&raw mut (*self.pfd.get()).events) }
    }

    fn revents_atomic(&self) -> &AtomicU16 {
        // SAFETY: as in events_atomic; glib writes revents from the thread
        // that iterates the GMainContext, which is the thread that reads it.
        unsafe { AtomicU16::from_ptr(&raw mut (*self.pfd.get()).revents) }
    }

    /// The requested events (0 once removed).
    pub fn events(&self) -> u16 {
        self.events_atomic().load(Ordering::Relaxed)
    }

    pub fn revents(&self) -> u16 {
        self.revents_atomic().load(Ordering::Relaxed)
    }

    pub fn set_revents(&self, revents: u16) {
        self.revents_atomic().store(revents, Ordering::Relaxed)
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Not deleted and waiting for some event: what a monitor waits on.
    pub fn is_live(&self) -> bool {
        !self.is_deleted() && self.events() != 0
    }

    /// Marks the node deleted without parking it anywhere (the io_uring
    /// monitor parks it later, once the kernel has let go of it).
    pub fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }

    /// The GPollFD glib polls for this handler.
    pub fn gpollfd(&self) -> *mut GPollFD {
        self.pfd.get()
    }

    /// True if `opaque` is the context's own notifier (its activity is never
    /// progress).
    pub fn is_notifier(&self, ctx: &Context) -> bool {
        ptr::eq(self.opaque as *const _, &ctx.notifier)
    }

    pub fn on_poll_list(&self) -> bool {
        !self.poll.prev.get().is_null()
    }
}

fn ready_link(n: &AioHandler) -> &Link {
    &n.ready
}

fn poll_link(n: &AioHandler) -> &Link {
    &n.poll
}

/// Inserts `node` at the head of `head` using the link chosen by `link`.
///
/// # Safety
/// `head` and `node` are valid, `node` is not on a list through that link,
/// and `head` does not move while `node` is on it.
unsafe fn insert_head(
    head: *mut AioHandlerList,
    node: *mut AioHandler,
    link: fn(&AioHandler) -> &Link,
) {
    // SAFETY: per the contract.
    unsafe {
        let l = link(&*node);
        let first = (*head).lh_first;
        l.next.set(first);
        if !first.is_null() {
            link(&*first).prev.set(l.next.as_ptr());
        }
        (*head).lh_first = node;
        l.prev.set(&raw mut (*head).lh_first);
    }
}

/// Unlinks `node` from whichever list its `link` is on; a no-op if none.
///
/// # Safety
/// `node` is valid, and the list it is on (head and neighbours) is alive.
unsafe fn remove(node: *mut AioHandler, link: fn(&AioHandler) -> &Link) {
    // SAFETY: per the contract.
    unsafe {
        let l = link(&*node);
        let prev = l.prev.get();
        if prev.is_null() {
            return;
        }
        let next = l.next.get();
        if !next.is_null() {
            link(&*next).prev.set(prev);
        }
        *prev = next;
        l.next.set(ptr::null_mut());
        l.prev.set(ptr::null_mut());
    }
}

/// Puts `node` on `list` with `revents` (QEMU's `aio_add_ready_handler`),
/// first taking it off any other ready list: a nested loop steals a node
/// from its parent's list.
///
/// # Safety
/// `list` and `node` are valid and stay alive while linked; the caller is
/// the context's home thread inside a visit.
pub unsafe fn add_ready(list: *mut AioHandlerList, node: *mut AioHandler, revents: u16) {
    // SAFETY: per the contract.
    unsafe {
        remove(node, ready_link);
        (*node).set_revents(revents);
        insert_head(list, node, ready_link);
    }
}

/// Like [`add_ready`] for a handler found ready by userspace polling.
///
/// # Safety
/// As for [`add_ready`].
pub unsafe fn add_poll_ready(list: *mut AioHandlerList, node: *mut AioHandler) {
    // SAFETY: per the contract.
    unsafe {
        remove(node, ready_link);
        (*node).poll_ready.store(true, Ordering::Relaxed);
        insert_head(list, node, ready_link);
    }
}

/// Removes and returns the first node of a ready list.
///
/// # Safety
/// `list` is a valid ready list whose nodes are alive.
pub unsafe fn pop_ready(list: *mut AioHandlerList) -> Option<*mut AioHandler> {
    // SAFETY: per the contract.
    unsafe {
        let first = (*list).lh_first;
        if first.is_null() {
            return None;
        }
        remove(first, ready_link);
        Some(first)
    }
}

/// Adds `node` to the context's userspace-polling list.
///
/// # Safety
/// Home thread inside a visit (or lock held with no visitors); node alive.
pub unsafe fn poll_list_insert(ctx: &Context, node: *mut AioHandler) {
    // SAFETY: per the contract; the context's list head never moves.
    unsafe { insert_head(ctx.poll_list.get(), node, poll_link) }
}

/// Removes `node` from the userspace-polling list if it is on it.
///
/// # Safety
/// As for [`poll_list_insert`].
pub unsafe fn poll_list_remove(node: *mut AioHandler) {
    // SAFETY: per the contract.
    unsafe { remove(node, poll_link) }
}

/// Iterates the userspace-polling list; the next node is read before the
/// current one is yielded, so the current one may be unlinked meanwhile.
///
/// # Safety
/// As for [`poll_list_insert`], for as long as the iterator is used.
pub unsafe fn poll_list_iter(ctx: &Context) -> impl Iterator<Item = *mut AioHandler> + '_ {
    // SAFETY: the head is inside the context, which outlives the iterator.
    let mut cur = unsafe { (*ctx.poll_list.get()).lh_first };
    std::iter::from_fn(move || {
        if cur.is_null() {
            return None;
        }
        let node = cur;
        // SAFETY: nodes on the poll list are alive during a visit.
        cur = unsafe { (*node).poll.next.get() };
        Some(node)
    })
}

/// The registry proper, guarded by the context's `LockCnt`.
#[derive(Default)]
pub struct Registry {
    /// The live (not deleted) handler of each fd, so that registering N fds
    /// costs O(N), not the O(N^2) of a list walk per registration.
    by_fd: HashMap<i32, *mut AioHandler>,
    /// Deleted handlers waiting for the last visitor to leave.
    pub deleted: Vec<*mut AioHandler>,
}

// SAFETY: the raw pointers are owned handler allocations; access is
// serialised by the LockCnt that wraps the registry.
unsafe impl Send for Registry {}

impl Registry {
    /// The live (not deleted) handler of `fd`.
    pub fn find(&self, fd: i32) -> Option<*mut AioHandler> {
        self.by_fd.get(&fd).copied()
    }

    /// Parks a deleted node until the last visitor leaves.
    pub fn defer_free(&mut self, node: *mut AioHandler) {
        self.deleted.push(node);
    }
}

/// The parts of a context's handler registry that are read without its
/// lock: the chain of every handler not yet freed (newest first), walked by
/// visitors, and whether deleted handlers wait for a free pass.
pub struct Published {
    /// Deleted handlers are parked on `Registry::deleted`.
    pub deleted_pending: crate::sync::AtomicBool,
    newest: crate::sync::AtomicPtr<AioHandler>,
}

impl Default for Published {
    fn default() -> Self {
        Self::new()
    }
}

impl Published {
    pub fn new() -> Self {
        Published {
            deleted_pending: crate::sync::AtomicBool::new(false),
            newest: crate::sync::AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Links a new node in as the newest. Registry lock held.
    fn link(&self, node: *mut AioHandler) {
        // SAFETY: a fresh node, alive.
        let n = unsafe { &*node };
        n.older
            .store(self.newest.load(Ordering::Relaxed), Ordering::Relaxed);
        // Release: a visitor that reads the head reads the node's fields
        // and link as written here.
        self.newest.store(node, Ordering::Release);
    }

    /// Unlinks the nodes `gone` says are going away. Registry lock held and
    /// no visitor: no walk is in progress.
    fn unlink_where(&self, mut gone: impl FnMut(*mut AioHandler) -> bool) {
        let mut link = &self.newest;
        loop {
            let cur = link.load(Ordering::Relaxed);
            if cur.is_null() {
                return;
            }
            // SAFETY: chain nodes are alive until unlinked (by us, now).
            let next = unsafe { &(*cur).older };
            if gone(cur) {
                link.store(next.load(Ordering::Relaxed), Ordering::Relaxed);
            } else {
                link = next;
            }
        }
    }

    /// Every handler not yet freed (deleted ones included), newest first.
    ///
    /// # Safety
    /// The caller is a visitor (or holds the registry lock) for as long as
    /// it uses what this yields: the nodes stay allocated until then.
    pub unsafe fn iter(&self) -> impl Iterator<Item = *mut AioHandler> + '_ {
        let mut cur = self.newest.load(Ordering::Acquire);
        std::iter::from_fn(move || {
            if cur.is_null() {
                return None;
            }
            let node = cur;
            // SAFETY: per the contract, linked nodes are alive.
            cur = unsafe { (*node).older.load(Ordering::Acquire) };
            Some(node)
        })
    }

    /// Every handler not yet freed (deleted ones included), newest first.
    /// The registry borrow stands for the lock: no free pass runs while it
    /// is held.
    pub fn nodes<'a>(
        &'a self,
        _locked: &'a Registry,
    ) -> impl Iterator<Item = *mut AioHandler> + 'a {
        // SAFETY: a node leaves the chain only under the lock (or at
        // finalize, which owns the registry) before it is freed, and the
        // caller's registry borrow excludes both.
        unsafe { self.iter() }
    }

    /// The live handlers (not deleted, with requested events), newest
    /// first, as QEMU walks its handler list. Registry lock held.
    pub fn live<'a>(&'a self, locked: &'a Registry) -> impl Iterator<Item = *mut AioHandler> + 'a {
        self.nodes(locked).filter(|&n| {
            // SAFETY: as in nodes.
            unsafe { &*n }.is_live()
        })
    }

    /// True if no handler is left, deleted ones included.
    pub fn is_empty(&self) -> bool {
        self.newest.load(Ordering::Relaxed).is_null()
    }
}

/// Registers, replaces or removes the handler of `fd` (`aio_set_fd_handler`).
/// Any thread.
#[allow(clippy::too_many_arguments)]
pub fn set_fd_handler(
    ctx: &Context,
    fd: i32,
    io_read: IoFn,
    io_write: IoFn,
    io_poll: PollFn,
    io_poll_ready: IoFn,
    opaque: *mut c_void,
) {
    let Some(free_now) = change_handler(
        &ctx.handlers,
        &ctx.published,
        fd,
        io_read,
        io_write,
        io_poll,
        io_poll_ready,
        opaque,
        |reg, old, new, delta| {
            ctx.poll_disable_cnt.fetch_add(delta, Ordering::Relaxed);
            ctx.monitor.update(ctx, reg, old, new);
        },
    ) else {
        return;
    };
    ctx.notify();
    if let Some(n) = free_now {
        // SAFETY: unlinked from every list under the lock with no visitors.
        drop(unsafe { Box::from_raw(n) });
    }
}

/// The registry half of [`set_fd_handler`] (the loom models' entry): under
/// the lock, replaces or removes the handler of `fd`, lets `update` tell the
/// monitor (registry, old node, new node, change of the number of handlers
/// without `io_poll`), and retires the old node: parked on `deleted` while
/// visitors exist, else unlinked. Returns None if nothing changed (removing
/// a handler that does not exist), else the node the caller must free once
/// it has notified the context.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn change_handler(
    handlers: &LockCnt<Registry>,
    published: &Published,
    fd: i32,
    io_read: IoFn,
    io_write: IoFn,
    io_poll: PollFn,
    io_poll_ready: IoFn,
    opaque: *mut c_void,
    update: impl FnOnce(&mut Registry, Option<*mut AioHandler>, Option<*mut AioHandler>, i32),
) -> Option<Option<*mut AioHandler>> {
    // Polling without a ready callback is meaningless.
    let io_poll = if io_poll_ready.is_none() {
        None
    } else {
        io_poll
    };
    let removing = io_read.is_none() && io_write.is_none() && io_poll.is_none();

    let mut reg = handlers.lock();
    let old = reg.find(fd);
    // SAFETY: old is alive while we hold the lock.
    let old_ref = old.map(|n| unsafe { &*n });
    let mut new: Option<*mut AioHandler> = None;
    let delta;
    if removing {
        let o = old_ref?;
        o.events_atomic().store(0, Ordering::Relaxed);
        delta = if o.io_poll.is_none() { -1 } else { 0 };
    } else {
        delta = io_poll.is_none() as i32 - old_ref.is_some_and(|o| o.io_poll.is_none()) as i32;
        let events = if io_read.is_some() { READ_EVENTS } else { 0 }
            | if io_write.is_some() { WRITE_EVENTS } else { 0 };
        let node = Box::into_raw(Box::new(AioHandler {
            pfd: UnsafeCell::new(GPollFD {
                fd,
                events,
                revents: 0,
            }),
            io_read,
            io_write,
            io_poll,
            io_poll_ready,
            io_poll_begin: Cell::new(None),
            io_poll_end: Cell::new(None),
            opaque,
            deleted: AtomicBool::new(false),
            invalid: AtomicBool::new(false),
            freeing: Cell::new(false),
            ready: Link::default(),
            poll: Link::default(),
            poll_ready: AtomicBool::new(false),
            poll_idle_timeout: Cell::new(0),
            poll_ns: AtomicI64::new(0),
            uring: UringNode::default(),
            uring_next: std::sync::atomic::AtomicPtr::new(ptr::null_mut()),
            older: crate::sync::AtomicPtr::new(ptr::null_mut()),
            #[cfg(loom)]
            alive: loom::sync::Arc::new(crate::sync::AtomicBool::new(true)),
        }));
        published.link(node);
        new = Some(node);
    }
    update(&mut reg, old, new, delta);
    // `old`, if any, is superseded: deleted now or by the monitor.
    match new {
        Some(n) => reg.by_fd.insert(fd, n),
        None => reg.by_fd.remove(&fd),
    };

    let mut free_now = None;
    if let (Some(o), Some(optr)) = (old_ref, old) {
        o.set_revents(0);
        o.poll_ready.store(false, Ordering::Relaxed);
        if o.is_deleted() {
            // The monitor took over its deletion (io_uring).
        } else if reg.visitors() != 0 {
            o.mark_deleted();
            reg.defer_free(optr);
        } else {
            o.mark_deleted();
            // SAFETY: no visitor exists and we hold the lock.
            unsafe { poll_list_remove(optr) };
            published.unlink_where(|n| n == optr);
            free_now = Some(optr);
        }
    }
    if !reg.deleted.is_empty() {
        published.deleted_pending.store(true, Ordering::Release);
    }
    Some(free_now)
}

/// Sets the poll begin/end callbacks of the live handler of `fd`
/// (`aio_set_event_notifier_poll`). Home thread.
pub fn set_poll_callbacks(ctx: &Context, fd: i32, begin: IoFn, end: IoFn) {
    let reg = ctx.handlers.lock();
    if let Some(n) = reg.find(fd) {
        // SAFETY: alive while the lock is held.
        let n = unsafe { &*n };
        n.io_poll_begin.set(begin);
        n.io_poll_end.set(end);
    }
}

/// The `opaque` of the live handler of `fd`, if there is one: lets the Rust
/// API tell its own registration from someone else's. Any thread.
pub fn live_opaque(ctx: &Context, fd: i32) -> Option<*mut c_void> {
    let reg = ctx.handlers.lock();
    // SAFETY: alive while the lock is held.
    reg.find(fd).map(|n| unsafe { &*n }.opaque)
}

/// Frees deleted handlers if the caller is the only visitor
/// (`aio_free_deleted_handlers`). Home thread, inside a visit.
#[inline]
pub fn free_deleted(ctx: &Context) {
    free_deleted_in(&ctx.handlers, &ctx.published);
}

/// [`free_deleted`] on a given registry (the loom models' entry). Inline,
/// so that the common case (nothing deleted) costs a load and no call.
#[inline(always)]
pub fn free_deleted_in(handlers: &LockCnt<Registry>, published: &Published) {
    if published.deleted_pending.load(Ordering::Acquire) {
        free_pass(handlers, published);
    }
}

/// [`free_deleted_in`] when handlers wait to be freed.
#[inline(never)]
fn free_pass(handlers: &LockCnt<Registry>, published: &Published) {
    let Some(mut reg) = handlers.dec_if_lock() else {
        return;
    };
    // Taken out and put back so that the vector keeps its capacity.
    let mut doomed = std::mem::take(&mut reg.deleted);
    doomed.retain(|&n| {
        // SAFETY: parked nodes are alive; we hold the lock with no visitors.
        // A node parked twice is freed once.
        unsafe {
            if (*n).freeing.get() {
                return false;
            }
            poll_list_remove(n);
            (*n).freeing.set(true);
        }
        true
    });
    // SAFETY: as above.
    published.unlink_where(|n| unsafe { (*n).freeing.get() });
    for n in doomed.drain(..) {
        // SAFETY: unlinked from every list; nobody can reach it.
        drop(unsafe { Box::from_raw(n) });
    }
    reg.deleted = doomed;
    published.deleted_pending.store(false, Ordering::Release);
    reg.inc_and_unlock();
}

/// Frees every handler at finalize; none of their callbacks runs.
pub fn finalize(reg: &mut Registry, published: &Published) {
    reg.deleted.clear();
    reg.by_fd.clear();
    let mut cur = published.newest.swap(ptr::null_mut(), Ordering::Relaxed);
    while !cur.is_null() {
        // SAFETY: the context is being finalized; nobody can reach the
        // chain, whose nodes are alive until freed here, each once.
        let older = unsafe { (*cur).older.load(Ordering::Relaxed) };
        // SAFETY: as above; the link was read first.
        drop(unsafe { Box::from_raw(cur) });
        cur = older;
    }
}

/// Runs the callbacks of one ready handler (`aio_dispatch_handler`).
/// Returns true if a user callback ran.
///
/// Always inlined: it runs every iteration (see
/// `poll::dispatch_ready_handlers`).
///
/// # Safety
/// Home thread inside a visit; `node` is alive and off every ready list.
#[inline(always)]
pub unsafe fn dispatch_handler(ctx: &Context, node: *mut AioHandler) -> bool {
    // SAFETY: per the contract.
    let n = unsafe { &*node };
    let revents = n.revents() & n.events();
    n.set_revents(0);
    // Only this thread sets poll_ready (others only clear it, under the
    // lock): a load and a store where needed, no swap.
    let poll_ready = n.poll_ready.load(Ordering::Relaxed);
    if poll_ready {
        n.poll_ready.store(false, Ordering::Relaxed);
    }
    let notifier = n.is_notifier(ctx);

    // A handler joins userspace polling once it has been active.
    if !n.is_deleted() && !n.on_poll_list() && n.io_poll.is_some() {
        if ctx.poll_started.get()
            && let Some(begin) = n.io_poll_begin.get()
        {
            // SAFETY: user callback with its own opaque.
            unsafe { begin(n.opaque) };
        }
        // SAFETY: home thread inside a visit.
        unsafe { poll_list_insert(ctx, node) };
    }
    if !n.is_deleted()
        && poll_ready
        && revents == 0
        && let Some(ready) = n.io_poll_ready
    {
        // Off the poll list while the callback runs, so a nested aio_poll
        // cannot poll this handler again before it has cleared its condition.
        // SAFETY: home thread inside a visit.
        unsafe { poll_list_remove(node) };
        // SAFETY: user callback with its own opaque.
        unsafe { ready(n.opaque) };
        if !n.on_poll_list() {
            // SAFETY: as above.
            unsafe { poll_list_insert(ctx, node) };
        }
        return !notifier;
    }
    let mut progress = false;
    if !n.is_deleted()
        && revents & READ_EVENTS != 0
        && let Some(read) = n.io_read
    {
        // SAFETY: user callback with its own opaque.
        unsafe { read(n.opaque) };
        progress |= !notifier;
    }
    if !n.is_deleted()
        && revents & WRITE_EVENTS != 0
        && let Some(write) = n.io_write
    {
        // SAFETY: user callback with its own opaque.
        unsafe { write(n.opaque) };
        progress = true;
    }
    progress
}
