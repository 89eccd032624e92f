//! C-layout types of `qemu/aio.h` that the core uses; `MemReentrancyGuard`
//! is QEMU's include/hw/qdev-core.h one.

/// Re-entrancy guard of a device's MMIO/PIO dispatch; a BH created with
/// `aio_bh_new_guarded` sets `engaged_in_io` while its callback runs.
#[repr(C)]
pub struct MemReentrancyGuard {
    pub engaged_in_io: bool,
}

use std::ffi::c_int;

use glib_sys::GSource;

use super::timer::QEMUTimerListGroup;

/// QEMU's block-graph lock state of a context (block/graph-lock.c).
/// Opaque to qaio.
pub struct BdrvGraphRWlock {
    _private: [u8; 0],
}

/// An event loop: fd handlers, bottom halves, timers and a GSource so glib
/// can drive it. `(GSource *)ctx` and `&ctx->source` name the context's
/// GSource. The library allocates the object (`aio_context_new`); the
/// fields after `source` are the ones QEMU's own code outside the event loop
/// reads or writes directly, at their QEMU names; everything else is private.
#[repr(C)]
pub struct AioContext {
    pub source: GSource,
    /// Owned by QEMU's block-graph lock (`register_aiocontext` sets it);
    /// NULL in a program without one.
    pub bdrv_graph: *mut BdrvGraphRWlock,
    /// Bounds of the context's thread pool (QEMU's util/thread-pool.c reads
    /// them); set with `aio_context_set_thread_pool_params`.
    pub thread_pool_min: c_int,
    pub thread_pool_max: c_int,
    /// Maximum number of requests in a batch, 0 = the engine's default
    /// (QEMU's block/linux-aio.c reads it); set with
    /// `aio_context_set_aio_params`.
    pub aio_max_batch: i64,
    /// The context's timer lists, one per clock: pass `&ctx->tlg` to
    /// `timer_init_full`/`timer_new_full` (what `aio_timer_new` does).
    /// Read-only for C.
    pub tlg: QEMUTimerListGroup,
    /// The fd monitor in use now: `&fdmon_poll_ops`, `&fdmon_epoll_ops` or
    /// `&fdmon_io_uring_ops` (QEMU's tests compare it). Read-only for C.
    pub fdmon_ops: *const FdMonOpsRef,
}

/// `FDMonOps` as the context's public head points to it (the table itself
/// is defined with the C API). Excluded from the header, renamed to
/// `FDMonOps` where it is used.
pub struct FdMonOpsRef {
    _private: [u8; 0],
}

/// The three exported `FDMonOps` tables, in `fdmon::Kind` order (poll,
/// epoll, io_uring), handed to the core by the C layer.
#[derive(Clone, Copy)]
pub struct FdMonTables(pub [*const FdMonOpsRef; 3]);

// SAFETY: pointers to immutable statics.
unsafe impl Sync for FdMonTables {}
// SAFETY: as above.
unsafe impl Send for FdMonTables {}

/// The program's thread pool of a context (QEMU's util/thread-pool.c).
/// Opaque to qaio.
pub struct ThreadPoolAio {
    _private: [u8; 0],
}

/// The program's Linux AIO state of a context (QEMU's block/linux-aio.c).
/// Opaque to qaio.
pub struct LinuxAioState {
    _private: [u8; 0],
}
