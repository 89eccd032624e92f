//! The atomics and locks of the cross-thread protocols (notify, BH list,
//! lockcnt): std's in the normal build, loom's in the model-checking build
//! (`RUSTFLAGS="--cfg loom"`, see the models in `src/loom_models.rs`). Plain
//! re-exports, so the normal build compiles to exactly the std code.
//!
//! loom's atomics are not `const`-constructible and have no `from_ptr`: code
//! that needs either keeps using `std::sync` directly and stays out of the
//! models.

#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, fence};
#[cfg(not(loom))]
pub use std::sync::{Mutex, MutexGuard};

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, fence};
#[cfg(loom)]
pub use loom::sync::{Mutex, MutexGuard};

pub use std::sync::atomic::Ordering;

/// A SeqCst fence placed right after a read-modify-write of the same thread
/// (`notify`'s swap, the GSource prepare's fetch_or). On x86-64 every locked
/// RMW is already a full barrier (x86-TSO; Linux's `smp_mb__after_atomic()`
/// is empty there, and crossbeam-epoch uses a SeqCst RMW as its fence for the
/// same reason), so only the compiler must be stopped from moving memory
/// accesses across it; elsewhere, and in the loom models, it is the fence.
#[inline(always)]
pub fn fence_after_rmw() {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    fence(Ordering::SeqCst);
}

/// The cheap side of an asymmetric fence (the owner's visit in `lockcnt`):
/// only the compiler is stopped. It orders this thread's accesses for any
/// thread that then runs [`heavy_fence`] and gets true, because that call
/// makes every running thread execute a full barrier (membarrier(2)), as
/// Linux's userspace RCU pairs `barrier()` with `sys_membarrier()`. In the
/// loom models both sides are SeqCst fences, the symmetric protocol the
/// pair stands for.
#[inline(always)]
pub fn light_fence() {
    #[cfg(not(loom))]
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}

/// The expensive side of the asymmetric fence paired with [`light_fence`]:
/// a SeqCst fence here and a full barrier in every other running thread.
/// False if the kernel could not issue it; the caller must then not rely on
/// the other threads' light fences. Microseconds: for rare paths only.
pub fn heavy_fence() -> bool {
    #[cfg(not(loom))]
    {
        fence(Ordering::SeqCst);
        let ok = crate::sys::membarrier_private();
        fence(Ordering::SeqCst);
        ok
    }
    #[cfg(loom)]
    {
        fence(Ordering::SeqCst);
        true
    }
}

/// The calling thread's identifier ([`crate::sys::thread_id`]; in the loom
/// models, where every modelled thread runs on one OS thread, a per-model-
/// thread number instead). Never 0.
#[inline(always)]
pub fn thread_id() -> u64 {
    #[cfg(not(loom))]
    {
        crate::sys::thread_id()
    }
    #[cfg(loom)]
    {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        loom::thread_local! {
            static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        ID.with(|id| *id)
    }
}
