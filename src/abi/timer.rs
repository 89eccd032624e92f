//! The C layout of timers and clocks (include/qemu/timer.h): `QEMUTimer`,
//! the opaque `QEMUTimerList` and `QEMUFile`, `QEMUTimerListGroup` and the
//! clock numbers.
//! Their operations are in [`crate::timer`].

use libc::{c_int, c_uint, c_void};

/// A clock a timer runs on. C sees the `QEMUClockType` enum typedef of the
/// hand-written prelude (this alias is excluded from the generated header);
/// Rust takes the raw integer because C may pass any value.
pub type QEMUClockType = c_uint;
/// Monotonic host time (`CLOCK_MONOTONIC`); keeps running at all times.
pub const QEMU_CLOCK_REALTIME: QEMUClockType = 0;
/// Guest time. qaio has no guest: it reads `CLOCK_MONOTONIC`, and it starts
/// disabled, as in QEMU before a VM starts.
pub const QEMU_CLOCK_VIRTUAL: QEMUClockType = 1;
/// Wall-clock time (`CLOCK_REALTIME`); may jump when the host time is set.
pub const QEMU_CLOCK_HOST: QEMUClockType = 2;
/// Host time while the VM runs; `CLOCK_MONOTONIC` in qaio.
pub const QEMU_CLOCK_VIRTUAL_RT: QEMUClockType = 3;
/// Number of clocks, and the length of `QEMUTimerListGroup::tl`.
pub const QEMU_CLOCK_MAX: usize = 4;

/// A timer: fires `cb(opaque)` once the clock of its list reaches
/// `expire_time`. The caller owns the memory (embedded in a larger struct, or
/// from `aio_timer_new`); qaio links it into its list while it is pending, so
/// a pending timer must not be freed, moved or reinitialised: `timer_del` it
/// first. Fields are for reading only; change them through the functions.
#[repr(C)]
pub struct QEMUTimer {
    /// Expiry in nanoseconds of the timer's clock; -1 when not pending.
    pub expire_time: i64,
    /// The list the timer was bound to by `timer_init_full`.
    pub timer_list: *mut QEMUTimerList,
    /// Called, with `opaque`, in the thread that runs the list's AioContext.
    pub cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    pub opaque: *mut c_void,
    /// Next pending timer of the same list, in expiry order.
    pub next: *mut QEMUTimer,
    /// `QEMU_TIMER_ATTR_*` bits; stored, not interpreted by qaio.
    pub attributes: c_int,
    /// Nanoseconds per unit of `timer_mod` / `timer_mod_anticipate` /
    /// `timer_expired` (`SCALE_NS`, `SCALE_US` or `SCALE_MS`).
    pub scale: c_int,
}

/// The pending timers of one clock, sorted by expiry. Opaque. Created by
/// `timerlist_new` (or as part of a group: an AioContext's, the main loop's,
/// `timerlistgroup_init`'s) and registered with its clock until freed.
pub struct QEMUTimerList {
    _private: [u8; 0],
}

/// One timer list per clock, `tl[type]` being the list of clock `type`:
/// every AioContext has one, the main loop has `main_loop_tlg`, and
/// `timerlistgroup_init` fills any other. Pass it to `timer_init_full`.
#[repr(C)]
pub struct QEMUTimerListGroup {
    pub tl: [*mut QEMUTimerList; QEMU_CLOCK_MAX],
}

/// A migration stream of QEMU (migration/qemu-file.c); opaque to qaio, which
/// only hands it to the program's `qemu_get_be64` / `qemu_put_be64`. The
/// header's typedef is in the hand-written prelude.
pub struct QEMUFile {
    _private: [u8; 0],
}
