//! Generates the C headers with cbindgen, one header per C API area.
//!
//! The headers are written into OUT_DIR; `QAIO_BLESS_HEADERS=1` also copies
//! them over the committed ones in `include/`. A unit test compares the two
//! (see `src/lib.rs`), so a stale committed header fails `cargo test`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// One generated header.
struct Header {
    /// Path under `include/`.
    path: &'static str,
    /// Rust files whose `extern "C"` items and `repr(C)` types it declares:
    /// the header's `src/abi/` types and its `src/ffi/` shims. A type must be
    /// listed for one header only, or two headers would define it.
    sources: &'static [&'static str],
    include_guard: &'static str,
    /// Hand-written C placed after the includes: QEMU's function typedefs,
    /// macros and forward declarations that cbindgen cannot express.
    prelude: &'static str,
}

const HEADERS: &[Header] = &[
    Header {
        path: "qemu/event_notifier.h",
        sources: &["src/abi/event_notifier.rs", "src/ffi/event_notifier.rs"],
        include_guard: "QEMU_EVENT_NOTIFIER_H",
        prelude: "src/ffi/event_notifier.prelude.h",
    },
    Header {
        path: "qemu/timer.h",
        sources: &["src/abi/timer.rs", "src/ffi/timer.rs", "src/ffi/clock.rs"],
        include_guard: "QEMU_TIMER_H",
        prelude: "src/ffi/timer.prelude.h",
    },
    Header {
        path: "qemu/aio.h",
        sources: &[
            "src/ffi/error.rs",
            "src/ffi/aio.rs",
            "src/abi/aio.rs",
            "src/abi/fdmon.rs",
            "src/ffi/fdmon.rs",
        ],
        include_guard: "QEMU_AIO_H",
        prelude: "src/ffi/aio.prelude.h",
    },
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let bless = env::var_os("QAIO_BLESS_HEADERS").is_some_and(|v| v == "1");

    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=QAIO_BLESS_HEADERS");
    // Without an explicit SONAME a cargo cdylib has none; programs linked
    // with -lqaio then record the bare file name.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libqaio.so.0");

    let base =
        cbindgen::Config::from_file(manifest.join("cbindgen.toml")).expect("reading cbindgen.toml");
    for header in HEADERS {
        let mut config = base.clone();
        config.include_guard = Some(header.include_guard.to_string());
        let prelude = manifest.join(header.prelude);
        config.after_includes = Some(
            fs::read_to_string(&prelude)
                .unwrap_or_else(|e| panic!("reading {}: {e}", prelude.display())),
        );
        let mut builder = cbindgen::Builder::new().with_config(config);
        for src in header.sources {
            builder = builder.with_src(manifest.join(src));
        }
        let bindings = builder
            .generate()
            .unwrap_or_else(|e| panic!("cbindgen failed for {}: {e}", header.path));
        let generated = out.join("include").join(header.path);
        fs::create_dir_all(generated.parent().unwrap()).unwrap();
        bindings.write_to_file(&generated);
        if bless {
            copy_if_changed(&generated, &manifest.join("include").join(header.path));
        }
    }
    println!(
        "cargo:rustc-env=QAIO_GENERATED_INCLUDE={}",
        out.join("include").display()
    );
}

fn copy_if_changed(from: &Path, to: &Path) {
    let new = fs::read(from).unwrap();
    if fs::read(to).ok().as_deref() != Some(&new[..]) {
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::write(to, new).unwrap();
    }
}
