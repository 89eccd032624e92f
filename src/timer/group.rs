//! A context's timer lists, one per clock, and the registry of live groups
//! that enabling a clock notifies. Corresponds to `QEMUTimerListGroup` in
//! util/qemu-timer.c.

use std::cell::UnsafeCell;
use std::ffi::{c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::Mutex;

use super::list::{Timer, TimerList};
use super::{
    QEMU_CLOCK_MAX, QEMUClockType, QEMUTimer, QEMUTimerListGroup, clock_index, lock,
    soonest_timeout,
};
use crate::abi::misuse;

pub(super) struct GroupInner {
    pub(super) lists: [TimerList; QEMU_CLOCK_MAX],
    /// The C view, pointing at `lists`; written once, before anyone sees it.
    c_view: UnsafeCell<QEMUTimerListGroup>,
}

/// A registered group, for `clock_enable`'s notifications.
struct GroupPtr(*const GroupInner);
// SAFETY: only dereferenced under GROUPS' lock, while the group is alive;
// GroupInner is Sync.
unsafe impl Send for GroupPtr {}

/// Every live group. Taken only on group creation/destruction and on
/// `clock_enable(true)`.
static GROUPS: Mutex<Vec<GroupPtr>> = Mutex::new(Vec::new());

/// One timer list per clock, owned by an AioContext.
pub struct TimerListGroup {
    /// Heap-allocated so that the lists, which C timers point to, never move.
    /// A raw pointer rather than a Box, because those pointers alias it.
    inner: NonNull<GroupInner>,
}

// SAFETY: GroupInner is shared only through `&` and is Sync (TimerList is,
// and c_view is never written after construction).
unsafe impl Send for TimerListGroup {}
// SAFETY: as for Send.
unsafe impl Sync for TimerListGroup {}

impl TimerListGroup {
    /// `notify(opaque)` is called from any thread when a timer becomes the
    /// head of one of the lists, and when a disabled clock is enabled, until
    /// the group is dropped: it must be callable from any thread with this
    /// `opaque` for that long. It must not create or drop a group.
    pub fn new(notify: unsafe fn(*mut c_void), opaque: *mut c_void) -> TimerListGroup {
        let inner = Box::new(GroupInner {
            lists: std::array::from_fn(|clock| TimerList::new(clock, notify, opaque)),
            c_view: UnsafeCell::new(QEMUTimerListGroup {
                tl: [ptr::null_mut(); QEMU_CLOCK_MAX],
            }),
        });
        let inner = NonNull::from(Box::leak(inner));
        // SAFETY: just allocated and not shared yet.
        let inner_ref = unsafe { inner.as_ref() };
        let tl = std::array::from_fn(|clock| inner_ref.lists[clock].as_c());
        // SAFETY: not shared yet, so nobody reads c_view concurrently.
        unsafe { (*inner_ref.c_view.get()).tl = tl };
        lock(&GROUPS).push(GroupPtr(inner.as_ptr()));
        TimerListGroup { inner }
    }

    pub(super) fn inner(&self) -> &GroupInner {
        // SAFETY: allocated in new, freed only in drop.
        unsafe { self.inner.as_ref() }
    }

    /// Nanoseconds until the soonest timer of an enabled clock is due (0 if
    /// one is), or -1 if there is none.
    pub fn deadline_ns(&self) -> i64 {
        self.inner()
            .lists
            .iter()
            .fold(-1, |d, list| soonest_timeout(d, list.deadline_ns()))
    }

    /// Fires the due timers of every enabled clock; true if any callback ran.
    /// Each list reads its clock once per call.
    pub fn run_timers(&self) -> bool {
        let mut progress = false;
        for list in &self.inner().lists {
            progress |= list.run();
        }
        progress
    }

    /// True if any timer is pending, on any clock (enabled or not).
    pub fn has_pending_timers(&self) -> bool {
        self.inner().lists.iter().any(TimerList::has_timers)
    }

    /// The C view of the group (what `timer_init_full` takes): `tl[type]` is
    /// the list of that clock. Valid until the group is dropped; C must not
    /// write to it.
    pub fn as_c_group(&self) -> *mut QEMUTimerListGroup {
        self.inner().c_view.get()
    }
}

impl Drop for TimerListGroup {
    /// Unregisters the lists. Timers still pending (the owner should have
    /// checked [`TimerListGroup::has_pending_timers`]) are disarmed and
    /// unbound, so a later `timer_del` on them is harmless.
    fn drop(&mut self) {
        lock(&GROUPS).retain(|g| !ptr::eq(g.0, self.inner.as_ptr()));
        for list in &self.inner().lists {
            list.detach_all();
        }
        // SAFETY: allocated by Box in new; unregistered, so this was the last
        // user.
        drop(unsafe { Box::from_raw(self.inner.as_ptr()) });
    }
}

/// Wakes every live group's owner for `clock`, which was just enabled.
pub(super) fn notify_all(clock: usize) {
    for group in lock(&GROUPS).iter() {
        // SAFETY: a group stays registered, and so alive, until its Drop
        // has taken GROUPS' lock, which we hold.
        unsafe { (*group.0).lists[clock].notify() };
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
    unsafe {
        timer.init(
            group.inner().lists[clock].as_c(),
            scale,
            attributes,
            cb,
            opaque,
        )
    }
}
