//! The program's own functions that qaio calls when the program defines
//! them: QEMU's coroutine runtime, block-graph lock, thread pool, Linux AIO,
//! big lock, clocks and `Error` constructor. These are the calls
//! util/async.c, util/aio-posix.c and util/qemu-timer.c make into the rest of
//! QEMU; a standalone program defines none of them and qaio keeps its own
//! behaviour.
//!
//! Each hook is a weak reference, resolved by the dynamic linker when the
//! program loads: to the program's definition (a linker exports from an
//! executable every symbol that a shared library it links refers to), or to
//! NULL. Stable Rust has no weak imports, so each one is a pointer-sized slot
//! that the assembler fills with the weak symbol's address; the slot is
//! read-only after relocation, and hidden, so it is not part of the ABI.

use std::ffi::{c_char, c_int, c_void};
use std::ptr::NonNull;

use crate::abi::Coroutine;

/// `void *` stand-ins for QEMU's own types (`AioContext *` as the program
/// sees it, `ThreadPoolAio *`, `LinuxAioState *`, `QEMUFile *`, `Error **`).
pub type CtxPtr = *mut c_void;
pub type Opaque = *mut c_void;

macro_rules! hooks {
    ($( $(#[$doc:meta])* $name:ident: $ty:ty; )*) => {
        core::arch::global_asm!(
            $(
                concat!(".weak ", stringify!($name)),
                ".pushsection .data.rel.ro.qaio_hooks,\"aw\"",
                ".balign 8",
                concat!(".globl qaio_hook_", stringify!($name)),
                concat!(".hidden qaio_hook_", stringify!($name)),
                concat!("qaio_hook_", stringify!($name), ":"),
                concat!(".quad ", stringify!($name)),
                ".popsection",
            )*
        );

        mod slot {
            #[allow(unused_imports)]
            use super::*;
            unsafe extern "C" {
                $(
                    #[link_name = concat!("qaio_hook_", stringify!($name))]
                    pub static $name: Option<$ty>;
                )*
            }
        }

        $(
            $(#[$doc])*
            #[inline]
            pub fn $name() -> Option<$ty> {
                // SAFETY: the slot is a pointer-sized word written by the
                // dynamic linker before any code runs and never again; NULL
                // and a function of this type are both valid values.
                unsafe { slot::$name }
            }
        )*
    };
}

hooks! {
    // --- coroutines (QEMU's util/qemu-coroutine.c) ---
    /// The running coroutine (never NULL inside one).
    qemu_coroutine_self: unsafe extern "C" fn() -> *mut Coroutine;
    /// True inside a coroutine.
    qemu_in_coroutine: unsafe extern "C" fn() -> bool;
    /// Enters `co` in `ctx`, from outside any coroutine of this thread.
    qemu_aio_coroutine_enter: unsafe extern "C" fn(ctx: CtxPtr, co: *mut Coroutine);
    /// Yields the running coroutine.
    qemu_coroutine_yield: unsafe extern "C" fn();

    // --- per-context hooks of aio_context_new / finalize ---
    /// Block-graph lock: registers a new context (sets `ctx->bdrv_graph`).
    register_aiocontext: unsafe extern "C" fn(ctx: CtxPtr);
    unregister_aiocontext: unsafe extern "C" fn(ctx: CtxPtr);
    /// The context's thread pool, created on first `aio_get_thread_pool`.
    thread_pool_new_aio: unsafe extern "C" fn(ctx: CtxPtr) -> Opaque;
    thread_pool_free_aio: unsafe extern "C" fn(pool: Opaque);
    thread_pool_update_params: unsafe extern "C" fn(pool: Opaque, ctx: CtxPtr);
    /// Linux AIO (block/linux-aio.c).
    laio_init: unsafe extern "C" fn(errp: *mut Opaque) -> Opaque;
    laio_attach_aio_context: unsafe extern "C" fn(s: Opaque, ctx: CtxPtr);
    laio_detach_aio_context: unsafe extern "C" fn(s: Opaque, ctx: CtxPtr);
    laio_cleanup: unsafe extern "C" fn(s: Opaque);

    // --- the main loop and its big lock (QEMU's util/main-loop.c) ---
    /// True if the calling thread holds the BQL.
    bql_locked: unsafe extern "C" fn() -> bool;
    /// The main loop's context.
    qemu_get_aio_context: unsafe extern "C" fn() -> CtxPtr;
    /// Wakes the main loop (timer lists without a notify callback).
    qemu_notify_event: unsafe extern "C" fn();

    // --- clocks (QEMU's cpus.c / stubs) ---
    /// Guest time, behind QEMU_CLOCK_VIRTUAL.
    cpus_get_virtual_clock: unsafe extern "C" fn() -> i64;
    cpus_set_virtual_clock: unsafe extern "C" fn(ns: i64);
    /// Host time while the VM runs, behind QEMU_CLOCK_VIRTUAL_RT.
    cpu_get_clock: unsafe extern "C" fn() -> i64;

    // --- migration streams (QEMU's migration/qemu-file.c) ---
    qemu_get_be64: unsafe extern "C" fn(f: Opaque) -> u64;
    qemu_put_be64: unsafe extern "C" fn(f: Opaque, v: u64);

    // --- errors (QEMU's util/error.c) ---
    /// Sets `*errp` (or aborts / exits for `&error_abort` / `&error_fatal`)
    /// with a printf-style message.
    error_setg_internal: unsafe extern "C" fn(
        errp: *mut Opaque,
        src: *const c_char,
        line: c_int,
        func: *const c_char,
        fmt: *const c_char,
        ...
    );

    // --- variables ---
    /// QEMU's `use_icount` (instruction counting), a variable: non-zero
    /// means QEMU_CLOCK_VIRTUAL advances with the guest's instructions.
    use_icount: NonNull<c_int>;
}

/// QEMU's `icount_enabled()`.
pub fn icount_enabled() -> bool {
    // SAFETY: the program's variable, read like QEMU reads it (plainly).
    use_icount().is_some_and(|v| unsafe { v.as_ptr().read_volatile() } != 0)
}
