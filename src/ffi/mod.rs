//! The C ABI. Every `extern "C"` function of the library lives below this
//! module, one file per header area; each is a thin shim over the logic
//! modules. The shims share two helpers: [`guard`], which keeps a Rust panic
//! from crossing into C, and [`misuse`], which reports a broken API rule the
//! way QEMU's assertions do.
//!
//! The doc comment of each exported function states its C contract (valid
//! pointers, which thread may call it); that is its safety contract, so the
//! `unsafe extern "C"` functions carry no separate `# Safety` section.
#![allow(clippy::missing_safety_doc)]

pub mod aio;
pub mod clock;
pub mod error;
pub mod event_notifier;
pub mod fdmon;
pub mod gsource;
pub mod timer;

use std::io::Write;

/// Runs the body of an exported function. A panic inside is a qaio bug: it is
/// reported with the function's name and the process aborts; it never unwinds
/// into C.
#[inline(always)]
pub(crate) fn guard<R>(func: &'static str, body: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(_) => {
            let _ = writeln!(
                std::io::stderr(),
                "qaio: {func}: internal error (Rust panic), aborting"
            );
            std::process::abort()
        }
    }
}

/// Reports a broken API rule and aborts; defined in the bottom layer so the
/// core can use it too.
pub use crate::abi::misuse;
