//! C-layout types of `qemu/aio.h` that the core uses; `MemReentrancyGuard`
//! is QEMU's include/hw/qdev-core.h one.

/// Re-entrancy guard of a device's MMIO/PIO dispatch; a BH created with
/// `aio_bh_new_guarded` sets `engaged_in_io` while its callback runs.
#[repr(C)]
pub struct MemReentrancyGuard {
    pub engaged_in_io: bool,
}
