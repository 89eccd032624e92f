//! `QemuLockCnt`: a mutex combined with a count of "visitors" that walk the
//! handler lists without holding it. Corresponds to util/lockcnt.c.
//!
//! Handler memory may be freed only by someone who holds the lock while the
//! count is zero, so a visitor (a running `aio_poll`, possibly nested) keeps
//! every handler it may still look at alive. Modifiers (`aio_set_fd_handler`,
//! monitor switches) take the lock; walking the registry itself also takes
//! the lock, briefly, because other threads may insert into it.

use std::cell::UnsafeCell;

use crate::sync::{AtomicU32, Mutex, MutexGuard, Ordering};

/// Bit 0 of [`LockCnt::state`]: the lock is held.
const LOCKED: u32 = 1;
/// One visitor, in [`LockCnt::state`]'s upper bits.
const VISITOR: u32 = 2;

/// A lock with a visitor count, guarding data of type `T`.
pub struct LockCnt<T> {
    /// The visitor count (times [`VISITOR`]) and [`LOCKED`] in one word, as
    /// in QEMU's futex-based lockcnt: becoming the first visitor of an
    /// unlocked object is a single compare-and-swap, with no mutex traffic.
    /// `LOCKED` is set only by the `mutex` holder, so a visitor that finds
    /// it set with no other visitor waits by taking `mutex`.
    state: AtomicU32,
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
    /// The current number of visitors (walkers) of the lists.
    pub fn visitors(&self) -> u32 {
        self.owner.visitors()
    }

    /// Releases the lock and becomes a visitor in one step.
    pub fn inc_and_unlock(self) {
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
            mutex: Mutex::new(()),
            data: UnsafeCell::new(data),
        }
    }

    /// Takes the lock. Must not be called by a thread that already holds it.
    pub fn lock(&self) -> LockGuard<'_, T> {
        let guard = self.mutex.lock().unwrap_or_else(|p| p.into_inner());
        // Acquire pairs with `dec`'s Release: what the last visitors did
        // with the data is visible to the holder.
        self.state.fetch_or(LOCKED, Ordering::Acquire);
        LockGuard {
            owner: self,
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

    /// Stops visiting.
    pub fn dec(&self) {
        let prev = self.state.fetch_sub(VISITOR, Ordering::Release);
        debug_assert!(prev >= VISITOR, "lockcnt underflow");
    }

    /// If the caller is the only visitor, atomically stops visiting and takes
    /// the lock; otherwise changes nothing and returns `None`.
    pub fn dec_if_lock(&self) -> Option<LockGuard<'_, T>> {
        if self.visitors() != 1 {
            return None;
        }
        let guard = self.lock();
        // Holding the mutex keeps slow-path `inc`s out; the CAS rules out a
        // fast-path `inc` that raced in.
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

    /// The number of visitors right now.
    pub fn visitors(&self) -> u32 {
        self.state.load(Ordering::Acquire) / VISITOR
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
}
