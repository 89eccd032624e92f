//! `QemuLockCnt`: a mutex combined with a count of "visitors" that walk the
//! handler lists without holding it. Corresponds to util/lockcnt.c.
//!
//! Handler memory may be freed only by someone who holds the lock while the
//! count is zero, so a visitor (a running `aio_poll`, possibly nested) keeps
//! every handler it may still look at alive. Modifiers (`aio_set_fd_handler`,
//! monitor switches) take the lock. The handler chain
//! (`handlers::Published`) is walked by visitors with only the visit, and by
//! lock holders under the lock.
//!
//! # Owner visits
//!
//! The context's home thread visits on every `aio_poll`; a shared visit costs
//! two locked read-modify-writes (QEMU's `qemu_lockcnt_inc`/`dec` do the
//! same). [`LockCnt::inc_owner`] is a visit counted in a second word that only
//! one thread at a time writes (the *owner*: the home thread, in `aio_poll`
//! and in glib's callbacks), with plain stores and a compiler barrier
//! ([`light_fence`]). The cost moves
//! to the rare lock holder on another thread that must know there is no
//! visitor before freeing: it runs [`heavy_fence`] (membarrier(2)) before
//! reading the owner's count, which makes the owner's light fence a full one
//! (the store-buffering pair: the owner stores its count then reads
//! `LOCKED`, the holder sets `LOCKED` then reads the count; one of them sees
//! the other). A holder that cannot fence (no membarrier) counts the owner as
//! a visitor and defers the free to the owner's own free pass, which is
//! always safe. The owner itself, and a holder on the owner's thread, read
//! the count exactly.
//!
//! Ownership moves (another thread becomes home): the new owner publishes
//! itself with a SeqCst fence before its first visit, and a holder fences
//! after setting `LOCKED` before it reads who the owner is, so a holder that
//! still believes it is the owner is seen by the new owner's `LOCKED` check.

use std::cell::UnsafeCell;

use crate::sync::{
    AtomicU32, AtomicU64, Mutex, MutexGuard, Ordering, fence, fence_after_rmw, heavy_fence,
    light_fence, thread_id,
};

/// Bit 0 of [`LockCnt::state`]: the lock is held.
const LOCKED: u32 = 1;
/// One visitor, in [`LockCnt::state`]'s upper bits.
const VISITOR: u32 = 2;

/// Which count a visit went to; [`LockCnt::dec_visit`] takes it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Visit {
    /// [`LockCnt::inc_owner`]'s fast path.
    Owner,
    /// The shared count ([`LockCnt::inc`]).
    Shared,
}

/// A lock with a visitor count, guarding data of type `T`.
pub struct LockCnt<T> {
    /// The shared visitor count (times [`VISITOR`]) and [`LOCKED`] in one
    /// word, as in QEMU's futex-based lockcnt: becoming the first visitor of
    /// an unlocked object is a single compare-and-swap, with no mutex
    /// traffic. `LOCKED` is set only by the `mutex` holder, so a visitor that
    /// finds it set with no other visitor waits by taking `mutex`.
    state: AtomicU32,
    /// Visits of the owner thread ([`inc_owner`](Self::inc_owner)); written
    /// only by the owner, with plain stores.
    owner_visits: AtomicU32,
    /// The thread that made the latest owner visit ([`thread_id`]; 0: none).
    owner: AtomicU64,
    mutex: Mutex<()>,
    data: UnsafeCell<T>,
}

// SAFETY: `data` is only reached through a `LockGuard`, which holds `mutex`.
unsafe impl<T: Send> Sync for LockCnt<T> {}
// SAFETY: as above; moving the whole object moves the data with it.
unsafe impl<T: Send> Send for LockCnt<T> {}

/// Exclusive access to the guarded data.
pub struct LockGuard<'a, T> {
    owner: &'a LockCnt<T>,
    /// From [`LockCnt::dec_if_lock`] for the owner's visit, which stays
    /// counted while the guard lives (nobody else can look at it meanwhile).
    owner_visit_kept: bool,
    _guard: MutexGuard<'a, ()>,
}

impl<T> std::ops::Deref for LockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the mutex is held for the guard's lifetime.
        unsafe { &*self.owner.data.get() }
    }
}

impl<T> std::ops::DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the mutex is held for the guard's lifetime.
        unsafe { &mut *self.owner.data.get() }
    }
}

impl<T> LockGuard<'_, T> {
    /// The number of visitors (walkers) of the lists as the holder may rely
    /// on when deciding to free: never fewer than there are. Another
    /// thread's owner visit that cannot be ruled out counts as one.
    pub fn visitors(&self) -> u32 {
        let shared = self.owner.state.load(Ordering::Acquire) / VISITOR;
        shared + self.owner.owner_visits_locked().unwrap_or(1)
    }

    /// Releases the lock and becomes a visitor again in one step (after
    /// [`LockCnt::dec_if_lock`]).
    pub fn inc_and_unlock(self) {
        if self.owner_visit_kept {
            return;
        }
        // While the lock is held with no visitor every `inc` is on its slow
        // path, waiting for the mutex, so the increment lands before any of
        // them and before the unlock (the guard's drop).
        self.owner.state.fetch_add(VISITOR, Ordering::AcqRel);
    }
}

impl<T> Drop for LockGuard<'_, T> {
    /// Clears `LOCKED` before the mutex is released (the `_guard` field
    /// drops after this), so a waiting visitor that gets the mutex finds it
    /// clear.
    fn drop(&mut self) {
        self.owner.state.fetch_and(!LOCKED, Ordering::Release);
    }
}

impl<T> LockCnt<T> {
    pub fn new(data: T) -> Self {
        LockCnt {
            state: AtomicU32::new(0),
            owner_visits: AtomicU32::new(0),
            owner: AtomicU64::new(0),
            mutex: Mutex::new(()),
            data: UnsafeCell::new(data),
        }
    }

    /// Takes the lock. Must not be called by a thread that already holds it.
    pub fn lock(&self) -> LockGuard<'_, T> {
        let guard = self.mutex.lock().unwrap_or_else(|p| p.into_inner());
        // Acquire pairs with `dec`'s Release: what the last visitors did
        // with the data is visible to the holder. The fence orders `LOCKED`
        // before the holder's reads of the owner words (module doc).
        self.state.fetch_or(LOCKED, Ordering::Acquire);
        fence_after_rmw();
        LockGuard {
            owner: self,
            owner_visit_kept: false,
            _guard: guard,
        }
    }

    /// Becomes a visitor. When nobody is visiting, waits for a lock holder
    /// (who may be freeing handlers) to finish first.
    pub fn inc(&self) {
        let mut cur = self.state.load(Ordering::Relaxed);
        // Fast path: there are visitors already, or nobody holds the lock.
        // The CAS and the lock holder's fetch_or are RMWs of one word, so a
        // holder either sees this visitor or makes the CAS fail.
        while cur >= VISITOR || cur & LOCKED == 0 {
            match self.state.compare_exchange_weak(
                cur,
                cur + VISITOR,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(v) => cur = v,
            }
        }
        // Locked with no visitor: the holder may be freeing handlers. Wait
        // for it; with the mutex held nobody sets LOCKED.
        let _g = self.mutex.lock().unwrap_or_else(|p| p.into_inner());
        self.state.fetch_add(VISITOR, Ordering::AcqRel);
    }

    /// Stops a visit begun with [`inc`](Self::inc).
    pub fn dec(&self) {
        let prev = self.state.fetch_sub(VISITOR, Ordering::Release);
        debug_assert!(prev >= VISITOR, "lockcnt underflow");
    }

    /// Becomes a visitor: an owner visit ([`inc_owner`](Self::inc_owner)) if
    /// `owner` (the caller is the context's home thread), else a shared one.
    #[inline]
    pub fn inc_visit(&self, owner: bool) -> Visit {
        if owner {
            self.inc_owner()
        } else {
            self.inc();
            Visit::Shared
        }
    }

    /// Becomes a visitor as the owner: no read-modify-write unless a lock
    /// holder is active when the owner's count leaves zero, in which case
    /// this is a shared visit ([`inc`](Self::inc), which waits for it). Only
    /// one thread at a time may call this (the context's home thread; it
    /// changes only while it has no owner visit).
    #[inline]
    pub fn inc_owner(&self) -> Visit {
        let v = self.owner_visits.load(Ordering::Relaxed);
        if v != 0 {
            // Nested: no holder frees while the outer visit lasts.
            self.owner_visits.store(v + 1, Ordering::Relaxed);
            return Visit::Owner;
        }
        let me = thread_id();
        if self.owner.load(Ordering::Relaxed) != me {
            self.take_ownership(me);
        }
        self.owner_visits.store(1, Ordering::Relaxed);
        light_fence();
        // Acquire: a holder that freed before releasing `LOCKED` is seen.
        if self.state.load(Ordering::Acquire) & LOCKED != 0 {
            self.owner_visits.store(0, Ordering::Relaxed);
            self.inc();
            return Visit::Shared;
        }
        Visit::Owner
    }

    /// A new owner publishes itself before its first visit (module doc).
    #[cold]
    fn take_ownership(&self, me: u64) {
        self.owner.store(me, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Stops a visit begun with [`inc_owner`](Self::inc_owner) or
    /// [`inc`](Self::inc).
    #[inline]
    pub fn dec_visit(&self, visit: Visit) {
        match visit {
            Visit::Owner => {
                let v = self.owner_visits.load(Ordering::Relaxed);
                debug_assert!(v != 0, "lockcnt owner underflow");
                // Release: a holder that reads the new count after its heavy
                // fence sees everything this visit read.
                self.owner_visits.store(v - 1, Ordering::Release);
            }
            Visit::Shared => self.dec(),
        }
    }

    /// The owner's visits as a lock holder may rely on them: exact on the
    /// owner's thread; on another, read after a heavy fence; `None` when that
    /// fence is unavailable and the count reads zero (then it may be about
    /// to change unseen). Lock held.
    fn owner_visits_locked(&self) -> Option<u32> {
        let v = self.owner_visits.load(Ordering::Acquire);
        if v != 0 || self.owner.load(Ordering::Relaxed) == thread_id() {
            return Some(v);
        }
        if !heavy_fence() {
            return None;
        }
        Some(self.owner_visits.load(Ordering::Acquire))
    }

    /// If the caller is the only visitor, atomically stops visiting and takes
    /// the lock; otherwise changes nothing and returns `None`.
    pub fn dec_if_lock(&self) -> Option<LockGuard<'_, T>> {
        if self.visitors() != 1 {
            return None;
        }
        let mut guard = self.lock();
        // With LOCKED set and no shared visitor, every `inc` waits for the
        // mutex and the owner's `inc_owner` falls back to it: the counts
        // read below can only grow through a fast-path CAS (shared > 0).
        let state = self.state.load(Ordering::Acquire);
        if state == LOCKED {
            // No shared visitor, so the caller's visit is the owner's: its
            // own count, read exactly.
            let mine = self.owner.load(Ordering::Relaxed) == thread_id();
            if mine && self.owner_visits.load(Ordering::Relaxed) == 1 {
                guard.owner_visit_kept = true;
                return Some(guard);
            }
            return None;
        }
        if state != VISITOR | LOCKED || self.owner_visits_locked() != Some(0) {
            return None;
        }
        // The CAS rules out a fast-path `inc` that raced in.
        match self.state.compare_exchange(
            VISITOR | LOCKED,
            LOCKED,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => Some(guard),
            Err(_) => None,
        }
    }

    /// The owner's visits right now (a snapshot, as [`visitors`](Self::visitors)).
    pub fn owner_visits(&self) -> u32 {
        self.owner_visits.load(Ordering::Acquire)
    }

    /// The number of visitors right now (a snapshot: another thread's owner
    /// visit may be read late).
    pub fn visitors(&self) -> u32 {
        self.state.load(Ordering::Acquire) / VISITOR + self.owner_visits.load(Ordering::Acquire)
    }

    /// Direct access for the owner's destructor, when no other thread can
    /// reach the object any more.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dec_if_lock_only_for_sole_visitor() {
        let l = LockCnt::new(5u32);
        l.inc();
        l.inc();
        assert!(l.dec_if_lock().is_none());
        assert_eq!(l.visitors(), 2);
        l.dec();
        let g = l.dec_if_lock().expect("sole visitor");
        assert_eq!(*g, 5);
        assert_eq!(g.visitors(), 0);
        g.inc_and_unlock();
        assert_eq!(l.visitors(), 1);
        l.dec();
        assert_eq!(l.visitors(), 0);
    }

    #[test]
    fn inc_waits_for_lock_holder_when_idle() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let l = Arc::new(LockCnt::new(()));
        let entered = Arc::new(AtomicBool::new(false));
        let g = l.lock();
        let (l2, e2) = (l.clone(), entered.clone());
        let t = std::thread::spawn(move || {
            l2.inc();
            e2.store(true, Ordering::SeqCst);
            l2.dec();
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!entered.load(Ordering::SeqCst));
        drop(g);
        t.join().unwrap();
        assert!(entered.load(Ordering::SeqCst));
    }

    #[test]
    fn owner_visits_count_and_nest() {
        let l = LockCnt::new(());
        let outer = l.inc_owner();
        assert_eq!(outer, Visit::Owner);
        let inner = l.inc_owner();
        assert_eq!(l.visitors(), 2);
        // A holder on the owner's thread reads the count exactly.
        assert_eq!(l.lock().visitors(), 2);
        l.dec_visit(inner);
        // The sole visitor is the owner: the free pass gets the lock, and
        // its visit stays counted until the guard goes.
        let g = l.dec_if_lock().expect("owner is the sole visitor");
        g.inc_and_unlock();
        assert_eq!(l.visitors(), 1);
        l.dec_visit(outer);
        assert_eq!(l.visitors(), 0);
        assert_eq!(l.lock().visitors(), 0);
    }

    #[test]
    fn owner_visit_waits_for_lock_holder_when_idle() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let l = Arc::new(LockCnt::new(()));
        let entered = Arc::new(AtomicBool::new(false));
        let g = l.lock();
        let (l2, e2) = (l.clone(), entered.clone());
        let t = std::thread::spawn(move || {
            let v = l2.inc_owner();
            e2.store(true, Ordering::SeqCst);
            l2.dec_visit(v);
            v
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!entered.load(Ordering::SeqCst));
        drop(g);
        // It found the lock held, so it became a shared visitor.
        assert_eq!(t.join().unwrap(), Visit::Shared);
        assert_eq!(l.visitors(), 0);
    }

    #[test]
    fn other_threads_see_the_owner_visit() {
        use std::sync::{Arc, Barrier};
        let l = Arc::new(LockCnt::new(()));
        let (entered, probed) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let owner = {
            let (l, entered, probed) = (l.clone(), entered.clone(), probed.clone());
            std::thread::spawn(move || {
                let v = l.inc_owner();
                assert_eq!(v, Visit::Owner);
                entered.wait();
                probed.wait();
                l.dec_visit(v);
            })
        };
        entered.wait();
        // Not the owner: a holder counts the owner's visit, and a shared
        // visitor here is not the sole one.
        assert_eq!(l.lock().visitors(), 1);
        l.inc();
        assert!(l.dec_if_lock().is_none());
        l.dec();
        probed.wait();
        owner.join().unwrap();
        // After the visit: zero, when this thread can fence the owner's
        // thread; otherwise it must assume a visit it cannot rule out.
        let expect = if crate::sys::membarrier_register() {
            0
        } else {
            1
        };
        assert_eq!(l.lock().visitors(), expect);
        l.inc();
        assert_eq!(l.dec_if_lock().is_some(), expect == 0);
    }
}
