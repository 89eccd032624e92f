//! Timers: the clocks, one sorted timer list per clock and AioContext, and
//! the deadlines `aio_poll` sleeps until. Corresponds to util/qemu-timer.c.
//!
//! The `QEMUTimer` structs belong to C; a list only links the pending ones
//! through their `next` field, under the list's mutex. Callbacks run with the
//! mutex released, so they may arm, delete or free any timer, including their
//! own, and may run a nested `aio_poll`.
//!
//! - `clock`: the process-wide clocks, enabling/disabling them.
//! - `list`: the [`Timer`] handle and the sorted list of one clock.
//! - `group`: a context's [`TimerListGroup`], one list per clock.
//! - here: timeout arithmetic shared with `aio_poll` and glib.

mod clock;
mod group;
mod list;
#[cfg(test)]
mod tests;

use std::sync::{Mutex, MutexGuard, PoisonError};

pub use crate::abi::timer::{
    QEMU_CLOCK_HOST, QEMU_CLOCK_MAX, QEMU_CLOCK_REALTIME, QEMU_CLOCK_VIRTUAL,
    QEMU_CLOCK_VIRTUAL_RT, QEMUClockType, QEMUTimer, QEMUTimerList, QEMUTimerListGroup,
};
pub use clock::{clock_enable, clock_get_ns, clock_index, clock_is_enabled};
pub use group::{TimerListGroup, timer_init};
pub use list::{StillPending, Timer, Unbound};

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

/// How long until `expire` as seen at `now`: never negative.
fn delta_ns(expire: i64, now: i64) -> i64 {
    expire.saturating_sub(now).max(0)
}

/// Locks `m`; a poisoned mutex is used as is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing protected by these mutexes is left inconsistent by a panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
