//! The bottom layer: the C-layout types that both the core and the C ABI
//! (`ffi`) use, and [`misuse`], the abort that reports a broken API
//! rule. Corresponds to the struct definitions of QEMU's include/block/aio.h,
//! include/qemu/timer.h and include/qemu/event_notifier.h.
//!
//! One file per generated header: build.rs hands each file to cbindgen
//! together with that header's `ffi` shims, so a type is defined in exactly
//! one header. Nothing here imports from the rest of the crate.

pub mod aio;
pub mod coroutine;
pub mod event_notifier;
pub mod fdmon;
pub mod timer;

use std::io::Write;

pub use aio::{
    AioContext, BdrvGraphRWlock, FdMonOpsRef, FdMonTables, LinuxAioState, MemReentrancyGuard,
    ThreadPoolAio,
};
pub use coroutine::Coroutine;
pub use event_notifier::EventNotifier;
pub use fdmon::{CqeHandler, CqeHandlerLink, io_uring_cqe, io_uring_sqe};
pub use timer::{
    QEMU_CLOCK_HOST, QEMU_CLOCK_MAX, QEMU_CLOCK_REALTIME, QEMU_CLOCK_VIRTUAL,
    QEMU_CLOCK_VIRTUAL_RT, QEMUClockType, QEMUFile, QEMUTimer, QEMUTimerList, QEMUTimerListGroup,
};

/// Aborts the process because the caller broke an API rule that QEMU enforces
/// with an assertion. The message names the function and the rule.
#[cold]
#[inline(never)]
pub fn misuse(func: &str, rule: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "qaio: {func}: {rule}");
    std::process::abort()
}
