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
