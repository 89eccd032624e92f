//! C API of `qemu/timer.h`, second half: clocks, timer lists and groups,
//! the main loop's clocks, `qemu_poll_ns` and migration of timers, as thin
//! shims over [`crate::timer`]. (Split from [`super::timer`] only for length;
//! build.rs hands both to cbindgen in this order, so the header keeps the
//! declarations in one sequence.)

use glib_sys::{GPollFD, guint};
use libc::{c_int, c_void};

use super::timer::{main_loop_tlg, timer_arg, unbound, valid};
use super::{guard, misuse};
use crate::abi::{QEMUClockType, QEMUFile, QEMUTimer, QEMUTimerList, QEMUTimerListGroup};
use crate::hooks;
use crate::timer::{self, TimerList};

/// The current time of clock `type` in nanoseconds. REALTIME reads
/// `CLOCK_MONOTONIC` and HOST `CLOCK_REALTIME`; VIRTUAL reads the program's
/// `cpus_get_virtual_clock()` and VIRTUAL_RT its `cpu_get_clock()` when the
/// program defines them, else `CLOCK_MONOTONIC`. Record/replay is not
/// supported: HOST and VIRTUAL_RT are never recorded or replayed. No
/// initialisation call is needed. Any thread. An invalid `type` aborts.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_clock_get_ns(r#type: QEMUClockType) -> i64 {
    guard("qemu_clock_get_ns", || timer::clock_get_ns(r#type))
}

/// `qemu_clock_get_ns(type) / SCALE_US`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_clock_get_us(r#type: QEMUClockType) -> i64 {
    guard("qemu_clock_get_us", || {
        timer::clock_get_ns(valid("qemu_clock_get_us", r#type)) / timer::SCALE_US
    })
}

/// `qemu_clock_get_ns(type) / SCALE_MS`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_clock_get_ms(r#type: QEMUClockType) -> i64 {
    guard("qemu_clock_get_ms", || {
        timer::clock_get_ns(valid("qemu_clock_get_ms", r#type)) / timer::SCALE_MS
    })
}

/// Enables or disables clock `type` for every timer list. Timers of a
/// disabled clock stay armed but do not fire and do not shorten `aio_poll`'s
/// sleep. All clocks start enabled except QEMU_CLOCK_VIRTUAL.
///
/// Enabling a disabled clock calls the notify callback of every list of the
/// clock (so every AioContext recomputes its deadline). Disabling an enabled clock waits until the timer callbacks of
/// that clock running in other threads have returned; called from inside
/// such a callback it does not wait for the caller's own. Any thread. An
/// invalid `type` aborts.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_clock_enable(r#type: QEMUClockType, enabled: bool) {
    guard("qemu_clock_enable", || timer::clock_enable(r#type, enabled))
}

/// True if clock `type` is enabled (see `qemu_clock_enable`). An invalid
/// `type` aborts.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_clock_is_enabled(r#type: QEMUClockType) -> bool {
    guard("qemu_clock_is_enabled", || timer::clock_is_enabled(r#type))
}

/// The sooner of two timeouts in nanoseconds, where -1 (any negative value)
/// means infinite: the values are compared as unsigned.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_soonest_timeout(timeout1: i64, timeout2: i64) -> i64 {
    timer::soonest_timeout(timeout1, timeout2)
}

/// Converts a timeout in nanoseconds to milliseconds for poll-style APIs:
/// -1 for a negative (infinite) timeout, 0 for 0, otherwise rounded up (so a
/// short timeout never becomes a busy loop) and capped at INT32_MAX.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_timeout_ns_to_ms(ns: i64) -> c_int {
    timer::timeout_ns_to_ms(ns)
}

/// The list behind `timer_list`, aborting, naming `func`, on NULL.
///
/// # Safety
/// A non-NULL `timer_list` is a live list.
unsafe fn list_arg<'a>(func: &str, timer_list: *mut QEMUTimerList) -> &'a TimerList {
    // SAFETY: forwarded from this function's contract.
    unsafe { TimerList::from_c(timer_list) }
        .unwrap_or_else(|| misuse(func, "the timer list is NULL"))
}

/// The lists of the C group `tlg`, aborting, naming `func`, on NULL.
///
/// # Safety
/// A non-NULL `tlg` is readable.
unsafe fn group_arg(func: &str, tlg: *mut QEMUTimerListGroup) -> timer::Lists {
    if tlg.is_null() {
        misuse(func, "the timer list group is NULL");
    }
    // SAFETY: readable (contract).
    unsafe { (*tlg).tl }
}

/// Creates an empty timer list of clock `type`, registered with the clock
/// until `timerlist_free`. `cb(opaque, type)` is called, from any thread,
/// when a timer becomes the list's first (so whoever sleeps on the list
/// should recompute its deadline), when the clock is enabled and on
/// `qemu_clock_notify`; it must not create or free a timer list. A NULL `cb`
/// calls the program's `qemu_notify_event()` instead, or nothing if the
/// program has none. Nothing runs the list by itself: call
/// `timerlist_run_timers`. Any thread. An invalid `type` aborts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timerlist_new(
    r#type: QEMUClockType,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void, r#type: QEMUClockType)>,
    opaque: *mut c_void,
) -> *mut QEMUTimerList {
    guard("timerlist_new", || {
        let clock = timer::clock_index("timerlist_new", r#type);
        TimerList::create(clock, cb, opaque).as_ptr().cast()
    })
}

/// Unregisters and frees `timer_list`. No timer may be pending on it (that
/// aborts); timers bound to it must be initialised again before any use.
/// Any thread, while no other thread uses the list. NULL aborts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timerlist_free(timer_list: *mut QEMUTimerList) {
    guard("timerlist_free", || {
        const FUNC: &str = "timerlist_free";
        // SAFETY: the caller passes a live list.
        let list = unsafe { list_arg(FUNC, timer_list) };
        if list.has_timers() {
            misuse(
                FUNC,
                "a timer is still pending on the list (timer_del it first)",
            );
        }
        // SAFETY: live, from TimerList::create; the caller does not use it
        // again.
        unsafe { TimerList::free(std::ptr::NonNull::from(list)) }
    })
}

/// True if a timer is pending on `timer_list` (whether or not its clock is
/// enabled). Any thread. NULL aborts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timerlist_has_timers(timer_list: *mut QEMUTimerList) -> bool {
    guard("timerlist_has_timers", || {
        // SAFETY: the caller passes a live list.
        unsafe { list_arg("timerlist_has_timers", timer_list) }.has_timers()
    })
}

/// True if the first timer of `timer_list` is due at the clock's current
/// reading (whether or not the clock is enabled); false for an empty list.
/// Any thread. NULL aborts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timerlist_expired(timer_list: *mut QEMUTimerList) -> bool {
    guard("timerlist_expired", || {
        // SAFETY: the caller passes a live list.
        unsafe { list_arg("timerlist_expired", timer_list) }.expired()
    })
}

/// Nanoseconds until the first timer of `timer_list` is due: 0 if it is
/// due, -1 if the list is empty or its clock disabled. Any thread. NULL
/// aborts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timerlist_deadline_ns(timer_list: *mut QEMUTimerList) -> i64 {
    guard("timerlist_deadline_ns", || {
        // SAFETY: the caller passes a live list.
        unsafe { list_arg("timerlist_deadline_ns", timer_list) }.deadline_ns()
    })
}

/// Fires, in expiry order, the timers of `timer_list` due at the clock's
/// reading taken once at the start (including those their callbacks arm for
/// that time or before); nothing if the clock is disabled. Each timer is no
/// longer pending when its callback starts; callbacks may use any timer API,
/// on this list too. Returns true if a callback ran. Call it from one thread
/// at a time per list. NULL aborts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timerlist_run_timers(timer_list: *mut QEMUTimerList) -> bool {
    guard("timerlist_run_timers", || {
        // SAFETY: the caller passes a live list.
        unsafe { list_arg("timerlist_run_timers", timer_list) }.run()
    })
}

/// Calls the notify callback of `timer_list` with its opaque and clock type
/// (or, for a list made with a NULL callback, the program's
/// `qemu_notify_event()` if it has one). Any thread. NULL aborts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timerlist_notify(timer_list: *mut QEMUTimerList) {
    guard("timerlist_notify", || {
        // SAFETY: the caller passes a live list.
        unsafe { list_arg("timerlist_notify", timer_list) }.notify()
    })
}

/// Fills `tlg->tl[type]`, for every clock, with a new list made by
/// `timerlist_new(type, cb, opaque)`. Whatever `tlg` held is overwritten.
/// Any thread. NULL aborts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timerlistgroup_init(
    tlg: *mut QEMUTimerListGroup,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void, r#type: QEMUClockType)>,
    opaque: *mut c_void,
) {
    guard("timerlistgroup_init", || {
        if tlg.is_null() {
            misuse("timerlistgroup_init", "the timer list group is NULL");
        }
        let tl = timer::new_lists(cb, opaque);
        // SAFETY: writable (caller's contract).
        unsafe { (*tlg).tl = tl };
    })
}

/// `timerlist_free` on each list of `tlg` (so a pending timer aborts), then
/// sets the entries to NULL. NULL `tlg`, or a NULL entry, aborts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timerlistgroup_deinit(tlg: *mut QEMUTimerListGroup) {
    guard("timerlistgroup_deinit", || {
        const FUNC: &str = "timerlistgroup_deinit";
        // SAFETY: the caller passes a readable group.
        let lists = unsafe { group_arg(FUNC, tlg) };
        // SAFETY: the entries are live lists (or NULL, which aborts).
        let each = lists.map(|l| unsafe { list_arg(FUNC, l) });
        if each.iter().any(|l| l.has_timers()) {
            misuse(
                FUNC,
                "a timer is still pending on the group (timer_del it first)",
            );
        }
        for list in each {
            // SAFETY: live, from TimerList::create; freed once.
            unsafe { TimerList::free(std::ptr::NonNull::from(list)) }
        }
        // SAFETY: writable (caller's contract).
        unsafe { (*tlg).tl = [std::ptr::null_mut(); crate::abi::QEMU_CLOCK_MAX] };
    })
}

/// `timerlist_run_timers` on every list of `tlg`, in clock order; true if
/// any callback ran. NULL `tlg`, or a NULL entry, aborts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timerlistgroup_run_timers(tlg: *mut QEMUTimerListGroup) -> bool {
    guard("timerlistgroup_run_timers", || {
        const FUNC: &str = "timerlistgroup_run_timers";
        // SAFETY: the caller passes a group of live lists.
        unsafe { timer::run_lists(FUNC, &group_arg(FUNC, tlg)) }
    })
}

/// The soonest `timerlist_deadline_ns` over the lists of `tlg` whose clock
/// counts for deadlines (`qemu_clock_use_for_deadline`): -1 if none has a
/// timer. NULL `tlg`, or a NULL entry, aborts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timerlistgroup_deadline_ns(tlg: *mut QEMUTimerListGroup) -> i64 {
    guard("timerlistgroup_deadline_ns", || {
        const FUNC: &str = "timerlistgroup_deadline_ns";
        // SAFETY: the caller passes a group of live lists.
        unsafe { timer::deadline_lists(FUNC, &group_arg(FUNC, tlg)) }
    })
}

/// Creates the main loop's four timer lists in `main_loop_tlg`, each with
/// `notify_cb` and a NULL opaque (a NULL `notify_cb` means the program's
/// `qemu_notify_event()`). Call it once, before any main-loop timer is
/// made; a second call aborts. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_init_clocks(
    notify_cb: Option<unsafe extern "C" fn(opaque: *mut c_void, r#type: QEMUClockType)>,
) {
    guard("qemu_init_clocks", || {
        let lists = timer::init_main_loop("qemu_init_clocks", notify_cb);
        // SAFETY: written once, here, under init_main_loop's exclusion; C
        // only reads it.
        unsafe { (&raw mut main_loop_tlg).write(QEMUTimerListGroup { tl: lists }) };
    })
}

/// True if a timer is pending on the main loop's list of `type`. Aborts on
/// an invalid `type` or before `qemu_init_clocks`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_clock_has_timers(r#type: QEMUClockType) -> bool {
    guard("qemu_clock_has_timers", || timer::clock_has_timers(r#type))
}

/// `timerlist_expired` on the main loop's list of `type`. Aborts on an
/// invalid `type` or before `qemu_init_clocks`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_clock_expired(r#type: QEMUClockType) -> bool {
    guard("qemu_clock_expired", || timer::clock_expired(r#type))
}

/// `timerlist_run_timers` on the main loop's list of `type`. Run it from
/// the main loop's thread. Aborts on an invalid `type` or before
/// `qemu_init_clocks`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_clock_run_timers(r#type: QEMUClockType) -> bool {
    guard("qemu_clock_run_timers", || timer::clock_run_timers(r#type))
}

/// `qemu_clock_run_timers` for every clock for which
/// `qemu_clock_use_for_deadline` is true; true if any callback ran. Aborts
/// before `qemu_init_clocks`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_clock_run_all_timers() -> bool {
    guard("qemu_clock_run_all_timers", timer::clock_run_all_timers)
}

/// True if timers of clock `type` should bound how long a loop sleeps: false
/// only for QEMU_CLOCK_VIRTUAL while the program counts instructions (its
/// `use_icount` is non-zero). Any thread. An invalid `type` aborts.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_clock_use_for_deadline(r#type: QEMUClockType) -> bool {
    guard("qemu_clock_use_for_deadline", || {
        timer::clock_use_for_deadline(r#type)
    })
}

/// Nanoseconds until the soonest timer of clock `type` over every list of
/// the clock (every AioContext's, the main loop's, standalone ones), counting
/// only timers whose attributes have no bit outside `attr_mask` (pass
/// `QEMU_TIMER_ATTR_ALL` for all): 0 if one is due, -1 if the clock is
/// disabled or no timer qualifies. Ignores `qemu_clock_use_for_deadline`.
/// Any thread. An invalid `type` aborts.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_clock_deadline_ns_all(r#type: QEMUClockType, attr_mask: c_int) -> i64 {
    guard("qemu_clock_deadline_ns_all", || {
        timer::clock_deadline_ns_all(r#type, attr_mask)
    })
}

/// Calls the notify callback of every list of clock `type` (see
/// `timerlist_notify`). Any thread. An invalid `type` aborts.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_clock_notify(r#type: QEMUClockType) {
    guard("qemu_clock_notify", || timer::clock_notify(r#type))
}

/// Moves QEMU_CLOCK_VIRTUAL forward to `target_ns` through the program's
/// `cpus_set_virtual_clock()`, in steps that stop at each virtual deadline
/// (`qemu_clock_deadline_ns_all`) on the way; after each step it runs the
/// virtual timers of the main loop and of the main AioContext
/// (`qemu_get_aio_context()`). Then notifies every virtual list. Returns the
/// virtual clock's final reading (unchanged if it was already at or past
/// `target_ns`). For qtest-style programs, from the main loop's thread.
/// Aborts if the program lacks `cpus_get_virtual_clock`,
/// `cpus_set_virtual_clock` or `qemu_get_aio_context`, or before
/// `qemu_init_clocks`.
#[unsafe(no_mangle)]
pub extern "C" fn qemu_clock_advance_virtual_time(target_ns: i64) -> i64 {
    guard("qemu_clock_advance_virtual_time", || {
        timer::advance_virtual_time(target_ns)
    })
}

/// ppoll(2) with a timeout in nanoseconds: otherwise like `g_poll`.
/// `timeout` < 0 waits forever; 0 returns at once. Returns the number of
/// ready entries (their `revents` filled), 0 on timeout, or -1 with errno
/// set (EINTR when a signal interrupted the wait). Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_poll_ns(fds: *mut GPollFD, nfds: guint, timeout: i64) -> c_int {
    // SAFETY: the caller passes `nfds` GPollFDs.
    guard("qemu_poll_ns", || unsafe {
        timer::poll_ns(fds, nfds, timeout)
    })
}

/// Writes the state of `ts` to the migration stream `f`: its expiry in
/// nanoseconds, or -1 if it is not pending, through the program's
/// `qemu_put_be64()`. Aborts if the program has no `qemu_put_be64`, or if
/// `ts` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_put(f: *mut QEMUFile, ts: *mut QEMUTimer) {
    guard("timer_put", || {
        const FUNC: &str = "timer_put";
        let put = hooks::qemu_put_be64().unwrap_or_else(|| {
            misuse(
                FUNC,
                "the program defines no qemu_put_be64 (QEMU's migration streams)",
            )
        });
        // SAFETY: the caller passes a valid QEMUTimer.
        let expire = unsafe { timer_arg(FUNC, ts) }.expire_time_ns();
        // SAFETY: the program's stream function, given its own stream.
        unsafe { put(f.cast(), expire) }
    })
}

/// Reads a timer state written by `timer_put` from the migration stream `f`
/// through the program's `qemu_get_be64()`: -1 deletes `ts`, any other value
/// arms it for that expiry (`timer_mod_ns`). Aborts if the program has no
/// `qemu_get_be64`, or if `ts` is NULL or not initialised.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_get(f: *mut QEMUFile, ts: *mut QEMUTimer) {
    guard("timer_get", || {
        const FUNC: &str = "timer_get";
        let get = hooks::qemu_get_be64().unwrap_or_else(|| {
            misuse(
                FUNC,
                "the program defines no qemu_get_be64 (QEMU's migration streams)",
            )
        });
        // SAFETY: the caller passes a valid QEMUTimer.
        let timer = unsafe { timer_arg(FUNC, ts) };
        // SAFETY: the program's stream function, given its own stream.
        let expire = unsafe { get(f.cast()) };
        if expire == u64::MAX {
            timer.delete();
        } else {
            timer
                .modify_ns(expire as i64)
                .unwrap_or_else(|_| unbound(FUNC));
        }
    })
}
