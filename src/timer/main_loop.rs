//! The main loop's timer lists (QEMU's `main_loop_tlg`), created by
//! `qemu_init_clocks`, and the `qemu_clock_*` operations that act on them or
//! on every list of a clock. Corresponds to the clock-level functions of
//! util/qemu-timer.c.

use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, Ordering};

use super::clock::{now_ns, use_for_deadline};
use super::group::{Lists, new_lists};
use super::list::TimerList;
use super::{
    NotifyFn, QEMU_CLOCK_MAX, QEMU_CLOCK_VIRTUAL, QEMUClockType, QEMUTimerList, clock_index, lock,
    registry, soonest_timeout,
};
use crate::abi::{AioContext, misuse};
use crate::hooks;

/// The main loop's list per clock, NULL until `qemu_init_clocks`; written
/// once. Release on the store pairs with the Acquire loads, so a thread that
/// sees a list sees it initialised.
static MAIN_LOOP: [AtomicPtr<QEMUTimerList>; QEMU_CLOCK_MAX] =
    [const { AtomicPtr::new(ptr::null_mut()) }; QEMU_CLOCK_MAX];

/// Serialises `qemu_init_clocks` calls, so that a second one is detected.
static INIT: Mutex<()> = Mutex::new(());

/// `qemu_init_clocks`: creates the main loop's four lists, each notifying
/// through `notify(NULL, type)` (NULL: the program's `qemu_notify_event`).
/// Returns them, for the C view. Aborts, naming `func`, if they exist.
pub fn init_main_loop(func: &str, notify: Option<NotifyFn>) -> Lists {
    let _serial = lock(&INIT);
    if !MAIN_LOOP[0].load(Ordering::Acquire).is_null() {
        misuse(func, "the clocks are already initialised (called twice)");
    }
    let lists = new_lists(notify, ptr::null_mut());
    for (slot, list) in MAIN_LOOP.iter().zip(lists) {
        slot.store(list, Ordering::Release);
    }
    lists
}

/// The main loop's list of clock `clock`, or NULL before `qemu_init_clocks`.
pub fn main_loop_list(clock: usize) -> *mut QEMUTimerList {
    MAIN_LOOP[clock].load(Ordering::Acquire)
}

/// The main loop's list of clock type `ty`; aborts, naming `func`, on an
/// invalid `ty` or before `qemu_init_clocks`.
fn main_list(func: &str, ty: QEMUClockType) -> &'static TimerList {
    let list = main_loop_list(clock_index(func, ty));
    // SAFETY: the main loop's lists are never freed.
    unsafe { TimerList::from_c(list) }.unwrap_or_else(|| {
        misuse(
            func,
            "the main loop's timer lists do not exist: call qemu_init_clocks() first",
        )
    })
}

/// `qemu_clock_has_timers`: a timer is pending on the main loop's list.
pub fn clock_has_timers(ty: QEMUClockType) -> bool {
    main_list("qemu_clock_has_timers", ty).has_timers()
}

/// `qemu_clock_expired`: the main loop's list has a timer due now.
pub fn clock_expired(ty: QEMUClockType) -> bool {
    main_list("qemu_clock_expired", ty).expired()
}

/// `qemu_clock_run_timers`: fires the main loop's due timers of `ty`.
pub fn clock_run_timers(ty: QEMUClockType) -> bool {
    main_list("qemu_clock_run_timers", ty).run()
}

/// `qemu_clock_run_all_timers`: [`clock_run_timers`] for every clock that
/// counts for deadlines; true if any callback ran.
pub fn clock_run_all_timers() -> bool {
    let mut progress = false;
    for clock in 0..QEMU_CLOCK_MAX {
        if use_for_deadline(clock) {
            progress |= main_list("qemu_clock_run_all_timers", clock as QEMUClockType).run();
        }
    }
    progress
}

/// `qemu_clock_deadline_ns_all`: see [`registry::deadline_ns_all`].
pub fn clock_deadline_ns_all(ty: QEMUClockType, attr_mask: i32) -> i64 {
    registry::deadline_ns_all(clock_index("qemu_clock_deadline_ns_all", ty), attr_mask)
}

/// `qemu_clock_notify`: calls the notify callback of every list of `ty`.
pub fn clock_notify(ty: QEMUClockType) {
    registry::notify_all(clock_index("qemu_clock_notify", ty));
}

/// `qemu_clock_advance_virtual_time`: moves the program's virtual clock
/// forward to `dest`, stopping at every virtual deadline on the way to fire
/// the timers due there (the main loop's and the main AioContext's), then
/// notifies every virtual list. Returns the clock's final reading. Aborts
/// without the program's virtual-clock and main-context hooks.
pub fn advance_virtual_time(dest: i64) -> i64 {
    const FUNC: &str = "qemu_clock_advance_virtual_time";
    let (Some(set), Some(_), Some(main_ctx)) = (
        hooks::cpus_set_virtual_clock(),
        hooks::cpus_get_virtual_clock(),
        hooks::qemu_get_aio_context(),
    ) else {
        misuse(
            FUNC,
            "the program defines no cpus_get_virtual_clock, cpus_set_virtual_clock and \
             qemu_get_aio_context, so qaio cannot move the virtual clock",
        )
    };
    let virt = QEMU_CLOCK_VIRTUAL as usize;
    let main_list = main_list(FUNC, QEMU_CLOCK_VIRTUAL);
    // SAFETY: the program's function, returning its main AioContext, a qaio
    // context (or NULL before it has one).
    let ctx = unsafe { main_ctx() }.cast::<AioContext>();
    // SAFETY: a qaio context's public head is readable while the context
    // lives, and the main context lives as long as the program.
    let ctx_list = unsafe { ctx.as_ref().and_then(|c| TimerList::from_c(c.tlg.tl[virt])) };
    let mut clock = now_ns(virt);
    while clock < dest {
        let deadline = registry::deadline_ns_all(virt, -1);
        let warp = soonest_timeout(dest - clock, deadline);
        // SAFETY: the program's clock setter, callable where QEMU calls it.
        unsafe { set(now_ns(virt) + warp) };
        main_list.run();
        if let Some(list) = ctx_list {
            list.run();
        }
        clock = now_ns(virt);
    }
    registry::notify_all(virt);
    clock
}
