//! Timer list groups, one list per clock: a context's [`TimerListGroup`],
//! and the operations on a C `QEMUTimerListGroup` (`timerlistgroup_*`).
//! Corresponds to `QEMUTimerListGroup` in util/qemu-timer.c.

use std::ffi::{c_int, c_void};
use std::ptr::NonNull;

use super::clock::use_for_deadline;
use super::list::{Timer, TimerList};
use super::{
    NotifyFn, QEMU_CLOCK_MAX, QEMUClockType, QEMUTimer, QEMUTimerList, QEMUTimerListGroup,
    clock_index, soonest_timeout,
};
use crate::abi::misuse;

/// The lists of a C group, one per clock, as `QEMUTimerListGroup::tl` holds
/// them.
pub type Lists = [*mut QEMUTimerList; QEMU_CLOCK_MAX];

/// Creates one list per clock, each with `notify(opaque, type)` (see
/// [`TimerList::create`]).
pub fn new_lists(notify: Option<NotifyFn>, opaque: *mut c_void) -> Lists {
    std::array::from_fn(|clock| TimerList::create(clock, notify, opaque).as_ptr().cast())
}

/// The lists of `lists`, aborting, naming `func`, if one is NULL.
///
/// # Safety
/// Every non-NULL entry is a live list for the returned lifetime.
unsafe fn each<'a>(func: &str, lists: &Lists) -> [&'a TimerList; QEMU_CLOCK_MAX] {
    std::array::from_fn(|clock| {
        // SAFETY: forwarded from this function's contract.
        unsafe { TimerList::from_c(lists[clock]) }.unwrap_or_else(|| {
            misuse(
                func,
                "the group has a NULL list (it was never initialised, or was deinitialised)",
            )
        })
    })
}

/// Fires the due timers of every enabled clock; true if any callback ran.
/// Each list reads its clock once per call.
///
/// # Safety
/// As for [`each`]: the entries are live lists (NULL aborts, naming `func`).
pub unsafe fn run_lists(func: &str, lists: &Lists) -> bool {
    let mut progress = false;
    // SAFETY: forwarded.
    for list in unsafe { each(func, lists) } {
        progress |= list.run();
    }
    progress
}

/// Nanoseconds until the soonest timer of an enabled clock that counts for
/// deadlines is due (0 if one is), or -1 if there is none.
///
/// # Safety
/// As for [`run_lists`].
pub unsafe fn deadline_lists(func: &str, lists: &Lists) -> i64 {
    // SAFETY: forwarded.
    unsafe { each(func, lists) }
        .iter()
        .filter(|list| use_for_deadline(list.clock()))
        .fold(-1, |d, list| soonest_timeout(d, list.deadline_ns()))
}

/// One timer list per clock, owned by an AioContext.
pub struct TimerListGroup {
    lists: [NonNull<TimerList>; QEMU_CLOCK_MAX],
    /// The C view of `lists`, boxed so that its address is stable.
    c_view: Box<QEMUTimerListGroup>,
}

// SAFETY: the lists are shared only through `&` and are Sync; c_view is
// never written after construction.
unsafe impl Send for TimerListGroup {}
// SAFETY: as for Send.
unsafe impl Sync for TimerListGroup {}

impl TimerListGroup {
    /// `notify(opaque, type)` is called from any thread when a timer becomes
    /// the head of one of the lists, when a disabled clock is enabled and on
    /// `qemu_clock_notify`, until the group is dropped: it must be callable
    /// from any thread with this `opaque` for that long. It must not create
    /// or free a timer list.
    pub fn new(notify: Option<NotifyFn>, opaque: *mut c_void) -> TimerListGroup {
        let tl = new_lists(notify, opaque);
        TimerListGroup {
            lists: tl.map(|l| NonNull::new(l.cast()).unwrap()),
            c_view: Box::new(QEMUTimerListGroup { tl }),
        }
    }

    /// The list of clock index `clock`.
    #[inline]
    pub(super) fn list(&self, clock: usize) -> &TimerList {
        // SAFETY: created in new, freed only in drop.
        unsafe { self.lists[clock].as_ref() }
    }

    /// Nanoseconds until the soonest timer of an enabled clock that counts
    /// for deadlines is due (0 if one is), or -1 if there is none.
    ///
    /// On every blocking `aio_poll`: the context's own lists are never NULL,
    /// and empty ones are skipped before any call.
    pub fn deadline_ns(&self) -> i64 {
        (0..QEMU_CLOCK_MAX)
            .map(|clock| self.list(clock))
            .filter(|list| list.has_timers() && use_for_deadline(list.clock()))
            .fold(-1, |d, list| soonest_timeout(d, list.deadline_ns()))
    }

    /// Fires the due timers of every enabled clock; true if any callback ran.
    /// Each list reads its clock once per call. On every `aio_poll`, so
    /// empty lists are skipped inline.
    pub fn run_timers(&self) -> bool {
        let mut progress = false;
        for clock in 0..QEMU_CLOCK_MAX {
            let list = self.list(clock);
            if list.has_timers() {
                progress |= list.run();
            }
        }
        progress
    }

    /// True if any timer is pending, on any clock (enabled or not).
    pub fn has_pending_timers(&self) -> bool {
        (0..QEMU_CLOCK_MAX).any(|clock| self.list(clock).has_timers())
    }

    /// The C view of the group (what `timer_init_full` takes): `tl[type]` is
    /// the list of that clock. Valid until the group is dropped; C must not
    /// write to it.
    pub fn as_c_group(&self) -> *mut QEMUTimerListGroup {
        std::ptr::from_ref::<QEMUTimerListGroup>(&self.c_view).cast_mut()
    }
}

impl Drop for TimerListGroup {
    /// Frees the lists. Timers still pending (the owner should have checked
    /// [`TimerListGroup::has_pending_timers`]) are disarmed and unbound, so a
    /// later `timer_del` on them is harmless.
    fn drop(&mut self) {
        for list in self.lists {
            // SAFETY: created in new, freed once, here.
            unsafe { TimerList::free(list) };
        }
    }
}

/// Initialises `ts`, bound to `group`'s list for clock `ty`, not pending
/// (the body of `aio_timer_init_with_attrs`). Aborts on an invalid `ty` or a
/// NULL `ts`.
///
/// # Safety
/// `ts` must be valid for writes and not pending, and must satisfy
/// [`Timer::from_raw`] afterwards: valid while bound, and `group` alive until
/// it is deinitialised or freed.
pub unsafe fn timer_init(
    ts: *mut QEMUTimer,
    group: &TimerListGroup,
    ty: QEMUClockType,
    scale: c_int,
    attributes: c_int,
    cb: Option<unsafe extern "C" fn(*mut c_void)>,
    opaque: *mut c_void,
) {
    let clock = clock_index("aio_timer_new/aio_timer_init", ty);
    // SAFETY: forwarded from this function's contract.
    let timer = unsafe { Timer::from_raw(ts) }
        .unwrap_or_else(|| misuse("aio_timer_init", "the timer is NULL"));
    // SAFETY: not pending (contract); the list belongs to the live `group`.
    unsafe { timer.init(group.list(clock).as_c(), scale, attributes, cb, opaque) }
}
