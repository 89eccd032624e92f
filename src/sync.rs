//! The atomics and locks of the cross-thread protocols (notify, BH list,
//! lockcnt): std's in the normal build, loom's in the model-checking build
//! (`RUSTFLAGS="--cfg loom"`, see the models in `src/loom_models.rs`). Plain
//! re-exports, so the normal build compiles to exactly the std code.
//!
//! loom's atomics are not `const`-constructible and have no `from_ptr`: code
//! that needs either keeps using `std::sync` directly and stays out of the
//! models.

#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, fence};
#[cfg(not(loom))]
pub use std::sync::{Mutex, MutexGuard};

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, fence};
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
