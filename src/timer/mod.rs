//! Timers: the clocks, sorted timer lists (standalone, in groups of one per
//! clock for every AioContext, and the main loop's), and the deadlines
//! `aio_poll` sleeps until. Corresponds to util/qemu-timer.c.
//!
//! The `QEMUTimer` structs belong to C; a list only links the pending ones
//! through their `next` field, under the list's mutex. Callbacks run with the
//! mutex released, so they may arm, delete or free any timer, including their
//! own, and may run a nested `aio_poll`.
//!
//! - `clock`: the process-wide clocks, enabling/disabling them.
//! - `list`: the [`Timer`] handle and the sorted [`TimerList`] of one clock.
//! - `registry`: every live list per clock, for the clock-wide operations.
//! - `group`: one list per clock: a context's [`TimerListGroup`] and C groups.
//! - `main_loop`: the main loop's lists and the `qemu_clock_*` operations.
//! - here: timeout arithmetic shared with `aio_poll` and glib, and
//!   `qemu_poll_ns`.

mod clock;
mod group;
mod list;
mod main_loop;
mod registry;
#[cfg(test)]
mod tests;

use std::ffi::{c_int, c_uint, c_void};
use std::sync::{Mutex, MutexGuard, PoisonError};

pub use crate::abi::timer::{
    QEMU_CLOCK_HOST, QEMU_CLOCK_MAX, QEMU_CLOCK_REALTIME, QEMU_CLOCK_VIRTUAL,
    QEMU_CLOCK_VIRTUAL_RT, QEMUClockType, QEMUTimer, QEMUTimerList, QEMUTimerListGroup,
};
pub use clock::{
    clock_enable, clock_get_ns, clock_index, clock_is_enabled, clock_use_for_deadline,
};
pub use group::{Lists, TimerListGroup, deadline_lists, new_lists, run_lists, timer_init};
pub use list::{StillPending, Timer, TimerList, Unbound};
pub use main_loop::{
    advance_virtual_time, clock_deadline_ns_all, clock_expired, clock_has_timers, clock_notify,
    clock_run_all_timers, clock_run_timers, init_main_loop, main_loop_list,
};

/// A timer list's notify callback: `(opaque, clock type)`, as QEMU's
/// `QEMUTimerListNotifyCB`.
pub type NotifyFn = unsafe extern "C" fn(opaque: *mut c_void, ty: QEMUClockType);

/// Nanoseconds per unit of a timer with that scale.
pub const SCALE_NS: i64 = 1;
pub const SCALE_US: i64 = 1_000;
pub const SCALE_MS: i64 = 1_000_000;

/// The sooner of two timeouts in ns, where a negative value (-1) means
/// infinite: compared as unsigned, so -1 loses to everything.
pub fn soonest_timeout(a: i64, b: i64) -> i64 {
    if (a as u64) < (b as u64) { a } else { b }
}

/// A timeout in ns as poll(2) milliseconds: -1 for negative, 0 for 0, else
/// rounded up (a short wait must not become a busy loop), capped at
/// `i32::MAX`.
pub fn timeout_ns_to_ms(ns: i64) -> i32 {
    if ns < 0 {
        return -1;
    }
    let ms = ns / SCALE_MS + i64::from(ns % SCALE_MS != 0);
    i32::try_from(ms).unwrap_or(i32::MAX)
}

/// ppoll(2) on `fds` with a timeout in nanoseconds (negative: infinite;
/// seconds beyond `i32::MAX` are capped). Returns ppoll's result: the number
/// of ready fds, 0 on timeout, -1 with errno set (EINTR included).
///
/// # Safety
/// `fds` must point to `nfds` writable `GPollFD`s (NULL if `nfds` is 0).
pub unsafe fn poll_ns(fds: *mut glib_sys::GPollFD, nfds: c_uint, timeout: i64) -> c_int {
    // GPollFD is struct pollfd on Linux: int fd, short events, short revents.
    const _: () =
        assert!(std::mem::size_of::<glib_sys::GPollFD>() == std::mem::size_of::<libc::pollfd>());
    let ts;
    let tsp = if timeout < 0 {
        std::ptr::null()
    } else {
        ts = libc::timespec {
            tv_sec: (timeout / 1_000_000_000).min(i64::from(i32::MAX)),
            tv_nsec: timeout % 1_000_000_000,
        };
        &raw const ts
    };
    // SAFETY: `fds` holds `nfds` pollfd-layout records (contract); `tsp` is
    // NULL or points to `ts`, alive for the call.
    unsafe { libc::ppoll(fds.cast(), libc::nfds_t::from(nfds), tsp, std::ptr::null()) }
}

/// How long until `expire` as seen at `now`: never negative.
fn delta_ns(expire: i64, now: i64) -> i64 {
    expire.saturating_sub(now).max(0)
}

/// Locks `m`; a poisoned mutex is used as is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing protected by these mutexes is left inconsistent by a panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
