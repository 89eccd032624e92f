//! Every live timer list, per clock: what the clock-wide operations
//! (`qemu_clock_enable`'s wake-up, `qemu_clock_notify`,
//! `qemu_clock_deadline_ns_all`) walk. Corresponds to `QEMUClock::timerlists`
//! in util/qemu-timer.c.
//!
//! The lock is taken only when a list is created or freed and by those
//! clock-wide operations, never by `aio_poll`'s run and deadline paths. Lock
//! order: this registry, then a list's own lock.

use std::ptr::{self, NonNull};
use std::sync::Mutex;

use super::clock::{CLOCKS, now_ns};
use super::list::TimerList;
use super::{QEMU_CLOCK_MAX, delta_ns, lock, soonest_timeout};

/// A registered list.
struct ListPtr(NonNull<TimerList>);
// SAFETY: only dereferenced under REGISTRY's lock, while the list is alive
// (it unregisters before it is freed); TimerList is Sync.
unsafe impl Send for ListPtr {}

/// Indexed by clock.
static REGISTRY: Mutex<[Vec<ListPtr>; QEMU_CLOCK_MAX]> =
    Mutex::new([const { Vec::new() }; QEMU_CLOCK_MAX]);

/// Adds a list of clock `clock`.
pub(super) fn register(clock: usize, list: NonNull<TimerList>) {
    lock(&REGISTRY)[clock].push(ListPtr(list));
}

/// Removes a list; afterwards no clock-wide operation touches it.
pub(super) fn unregister(clock: usize, list: NonNull<TimerList>) {
    lock(&REGISTRY)[clock].retain(|l| !ptr::eq(l.0.as_ptr(), list.as_ptr()));
}

/// Calls `f` on every live list of `clock`, with the registry locked: `f`
/// (and any notify callback it calls) must not create or free a list.
fn for_each(clock: usize, mut f: impl FnMut(&TimerList)) {
    for list in lock(&REGISTRY)[clock].iter() {
        // SAFETY: a list stays registered, and so alive, until its free has
        // taken the registry lock, which we hold.
        f(unsafe { list.0.as_ref() });
    }
}

/// Calls the notify callback of every list of `clock`.
pub(super) fn notify_all(clock: usize) {
    for_each(clock, TimerList::notify);
}

/// Nanoseconds until the soonest timer of `clock`, over all its lists,
/// counting only timers whose attributes are within `attr_mask` (0 if one is
/// due); -1 if the clock is disabled or no timer qualifies.
pub(super) fn deadline_ns_all(clock: usize, attr_mask: i32) -> i64 {
    if !CLOCKS[clock]
        .enabled
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return -1;
    }
    let mut deadline = -1;
    for_each(clock, |list| {
        if let Some(expire) = list.first_expire_within(attr_mask) {
            deadline = soonest_timeout(deadline, delta_ns(expire, now_ns(clock)));
        }
    });
    deadline
}

/// Number of live lists of `clock` (for tests).
#[cfg(test)]
pub(super) fn count(clock: usize) -> usize {
    lock(&REGISTRY)[clock].len()
}
