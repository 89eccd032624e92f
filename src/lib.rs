//! qaio: QEMU's AioContext event loop (util/async.c, util/aio-posix.c,
//! util/fdmon-*.c, util/qemu-timer.c) rewritten in Rust and exported with
//! QEMU's C API (`qemu/aio.h`, `qemu/timer.h`, `qemu/event_notifier.h`).
//!
//! Module map, top to bottom. A module uses only modules of its own layer or
//! below; nothing outside [`ffi`] imports from it, except that [`api`]
//! creates contexts with the C ABI's `GSourceFuncs` and fdmon tables.
//!
//! 1. The two consumers of the core, side by side:
//!    - [`ffi`]: the C ABI, the only place with exported `extern "C"`
//!      functions (and glib's `GSourceFuncs`): thin shims that check
//!      pointers, guard against panics and call the core.
//!    - [`api`]: the safe Rust API (closures, handles, an async executor),
//!      mirroring the C shims' rule checks.
//! 2. The core:
//!    - [`context`]: the AioContext object, its lifecycle and reference counting.
//!    - [`poll`]: `aio_poll` and adaptive userspace polling.
//!    - [`bh`]: bottom halves and the slice-based `aio_bh_poll`.
//!    - [`handlers`]: the AioHandler registry, ready lists and deferred deletion.
//!    - [`timer`]: clocks, timer lists and deadlines.
//!    - [`gsource`]: what glib's callbacks do when glib drives a context.
//!    - [`notify`]: `aio_notify` and the `notify_me`/`notified` wake-up protocol.
//!    - [`coroutine`]: coroutine scheduling (`aio_co_schedule`, `aio_co_wake`,
//!      `aio_co_enter`, `aio_co_reschedule_self`) through the program's runtime.
//! 3. [`fdmon`]: the fd monitors (poll(2), epoll(7), io_uring(7)), called
//!    by the core. Of the core they use only what they operate on, the
//!    [`context::Context`] and the [`handlers`] registry and nodes (as
//!    util/fdmon-*.c include aio-posix.h): the one place where two layers
//!    still refer to each other.
//! 4. Building blocks used by the layers above: [`event_notifier`] (the
//!    eventfd behind `EventNotifier`) and [`lockcnt`] (the `QemuLockCnt`
//!    visitor counter guarding handler lifetime), and [`hooks`] (the
//!    program's own functions, QEMU's coroutine runtime, graph lock, thread
//!    pool, BQL, clocks and `Error`, reached through weak references; it uses
//!    only [`abi`]).
//! 5. [`abi`] (the C-layout types shared by the core and the C ABI, and the
//!    abort-with-message helper `misuse`), [`sys`] (syscall helpers) and
//!    [`sync`] (the atomics and locks of the cross-thread protocols: std's,
//!    or loom's in the model-checking build, and the asymmetric fence built
//!    on `sys`'s membarrier): they import nothing from the layers above.
//!
//! `loom_models` (built only with `RUSTFLAGS="--cfg loom"`) model-checks the
//! notify protocol, the BH list and the handler visitor count with loom.

pub mod abi;
pub mod api;
pub mod bh;
pub mod context;
pub mod coroutine;
pub mod event_notifier;
pub mod fdmon;
pub mod ffi;
pub mod gsource;
pub mod handlers;
pub mod hooks;
pub mod lockcnt;
pub mod notify;
pub mod poll;
pub mod sync;
pub mod sys;
pub mod timer;

#[cfg(all(test, loom))]
mod loom_models;

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

#[cfg(test)]
mod layering {
    use std::path::{Path, PathBuf};

    /// Every `.rs` file under `dir`, recursively.
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The code lines of `path` (comments dropped) that mention `needle`.
    fn uses(path: &Path, needle: &str) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// The module map's rules: only `ffi` uses `ffi`, and the bottom layer
    /// (`abi`, `sys`, `sync`) uses nothing of the crate above it.
    #[test]
    fn layers_import_only_downwards() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        for file in files {
            let rel = file.strip_prefix(&src).unwrap();
            // lib.rs declares the modules (and holds this test).
            if !rel.starts_with("ffi") && rel != Path::new("lib.rs") {
                let mut bad = uses(&file, "crate::ffi");
                // The one exception: a context the Rust API creates is the
                // same C object as one from aio_context_new.
                if rel == Path::new("api/context.rs") {
                    bad.retain(|l| {
                        !l.contains("crate::ffi::gsource::AIO_SOURCE_FUNCS")
                            && !l.contains("crate::ffi::fdmon::tables()")
                    });
                }
                assert!(
                    bad.is_empty(),
                    "src/{} imports from ffi: {bad:?}",
                    rel.display()
                );
            }
            if rel.starts_with("abi") || rel == Path::new("sys.rs") || rel == Path::new("sync.rs") {
                let mut bad = uses(&file, "crate::");
                // Within the layer is fine (sync's asymmetric fence and
                // thread id come from sys).
                bad.retain(|l| {
                    l.replace("crate::sys::", "")
                        .replace("crate::sync::", "")
                        .contains("crate::")
                });
                assert!(
                    bad.is_empty(),
                    "src/{} is in the bottom layer but uses {bad:?}",
                    rel.display()
                );
            }
        }
    }
}
