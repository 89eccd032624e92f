//! `QemuLockCnt`: a mutex combined with a count of "visitors" that walk the
//! handler lists without holding it. Corresponds to util/lockcnt.c.
//!
//! Handler memory may be freed only by someone who holds the lock while the
//! count is zero, so a visitor (a running `aio_poll`, possibly nested) keeps
//! every handler it may still look at alive. Modifiers (`aio_set_fd_handler`,
//! monitor switches) take the lock; walking the registry itself also takes
//! the lock, briefly, because other threads may insert into it.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

/// A lock with a visitor count, guarding data of type `T`.
pub struct LockCnt<T> {
    count: AtomicU32,
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
        self.owner.count.load(Ordering::Acquire)
    }

    /// Releases the lock and becomes a visitor in one step.
    pub fn inc_and_unlock(self) {
        // While the lock is held with a zero count every `inc` is on its slow
        // path, waiting for the mutex, so the increment lands before any of
        // them and before the unlock.
        self.owner.count.fetch_add(1, Ordering::AcqRel);
    }
}

impl<T> LockCnt<T> {
    pub fn new(data: T) -> Self {
        LockCnt {
            count: AtomicU32::new(0),
            mutex: Mutex::new(()),
            data: UnsafeCell::new(data),
        }
    }

    /// Takes the lock. Must not be called by a thread that already holds it.
    pub fn lock(&self) -> LockGuard<'_, T> {
        let guard = self.mutex.lock().unwrap_or_else(|p| p.into_inner());
        LockGuard {
            owner: self,
            _guard: guard,
        }
    }

    /// Becomes a visitor. When nobody is visiting, waits for a lock holder
    /// (who may be freeing handlers) to finish first.
    pub fn inc(&self) {
        let mut cur = self.count.load(Ordering::Relaxed);
        while cur != 0 {
            match self.count.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(v) => cur = v,
            }
        }
        let _g = self.mutex.lock().unwrap_or_else(|p| p.into_inner());
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    /// Stops visiting.
    pub fn dec(&self) {
        let prev = self.count.fetch_sub(1, Ordering::Release);
        debug_assert!(prev > 0, "lockcnt underflow");
    }

    /// If the caller is the only visitor, atomically stops visiting and takes
    /// the lock; otherwise changes nothing and returns `None`.
    pub fn dec_if_lock(&self) -> Option<LockGuard<'_, T>> {
        if self.count.load(Ordering::Relaxed) != 1 {
            return None;
        }
        let guard = self.lock();
        // Holding the mutex keeps slow-path `inc`s out; the CAS rules out a
        // fast-path `inc` that raced in.
        match self
            .count
            .compare_exchange(1, 0, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => Some(guard),
            Err(_) => None,
        }
    }

    /// The number of visitors right now.
    pub fn visitors(&self) -> u32 {
        self.count.load(Ordering::Acquire)
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
