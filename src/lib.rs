//! qaio: QEMU's AioContext event loop (util/async.c, util/aio-posix.c,
//! util/fdmon-*.c, util/qemu-timer.c) rewritten in Rust and exported with
//! QEMU's C API (`qemu/aio.h`, `qemu/timer.h`, `qemu/event_notifier.h`).
//!
//! Module map:
//! - [`context`]: the AioContext object, its lifecycle and reference counting.
//! - [`bh`]: bottom halves and the slice-based `aio_bh_poll`.
//! - [`notify`]: `aio_notify` and the `notify_me`/`notified` wake-up protocol.
//! - [`event_notifier`]: eventfd-backed `EventNotifier`.
//! - [`lockcnt`]: the `QemuLockCnt` visitor counter guarding handler lifetime.
//! - [`handlers`]: the AioHandler registry, ready lists and deferred deletion.
//! - [`poll`]: `aio_poll` and adaptive userspace polling.
//! - [`timer`]: clocks, timer lists and deadlines.
//! - [`gsource`]: the GSource that lets glib drive a context.
//! - [`fdmon`]: the fd monitors (poll(2), epoll(7), io_uring(7)).
//! - [`ffi`]: the C ABI; the only place with `extern "C"` functions.

pub mod abi;
pub mod bh;
pub mod context;
pub mod event_notifier;
pub mod fdmon;
pub mod ffi;
pub mod gsource;
pub mod handlers;
pub mod lockcnt;
pub mod notify;
pub mod poll;
pub mod sys;
pub mod timer;

#[cfg(test)]
mod header_sync {
    /// The committed headers must equal what cbindgen generates from the
    /// current sources.
    #[test]
    fn committed_headers_match_generated() {
        let generated = std::path::Path::new(env!("QAIO_GENERATED_INCLUDE"));
        let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
        for header in ["qemu/aio.h", "qemu/timer.h", "qemu/event_notifier.h"] {
            let want = std::fs::read_to_string(generated.join(header)).unwrap();
            let have = std::fs::read_to_string(committed.join(header)).unwrap_or_default();
            assert!(
                want == have,
                "include/{header} is stale: refresh it with `QAIO_BLESS_HEADERS=1 cargo build`"
            );
        }
    }
}
