//! C API of `qemu/timer.h`: clocks, timer lists and groups, the main loop's
//! group and timer operations, as thin shims over [`crate::timer`]. The
//! structs (`QEMUTimer`, `QEMUTimerListGroup`) are in [`crate::abi::timer`].

use glib_sys::{GPollFD, guint};
use libc::{c_int, c_void};

use super::{guard, misuse};
use crate::abi::{QEMUClockType, QEMUFile, QEMUTimer, QEMUTimerList, QEMUTimerListGroup};
use crate::hooks;
use crate::timer::{self, Timer, TimerList};

/// The main loop's timer lists, one per clock (QEMU's `main_loop_tlg`): all
/// NULL until `qemu_init_clocks` creates them. Timers bound to it are those
/// of `timer_new*` / `timer_init*` and of `timer_init_full` with a NULL
/// group; `qemu_clock_run_timers` and friends run them. Read-only for C.
#[unsafe(no_mangle)]
pub static mut main_loop_tlg: QEMUTimerListGroup = QEMUTimerListGroup {
    tl: [std::ptr::null_mut(); crate::abi::QEMU_CLOCK_MAX],
};

/// The timer behind `ts`, aborting on NULL.
///
/// # Safety
/// A non-NULL `ts` must satisfy [`Timer::from_raw`].
unsafe fn timer_arg(func: &'static str, ts: *mut QEMUTimer) -> Timer {
    // SAFETY: forwarded from this function's contract.
    unsafe { Timer::from_raw(ts) }.unwrap_or_else(|| misuse(func, "the timer is NULL"))
}

/// Aborts because `func` was given a timer that was never initialised.
fn unbound(func: &str) -> ! {
    misuse(
        func,
        "the timer was never initialised with timer_init_full (or was deinitialised)",
    )
}

/// `ty`, after aborting (naming `func`) if it is not a clock.
fn valid(func: &str, ty: QEMUClockType) -> QEMUClockType {
    timer::clock_index(func, ty);
    ty
}

/// The body of `timer_init_full` and the `timer_init*` / `timer_new*`
/// family, aborting with `func`'s name.
///
/// # Safety
/// As for `timer_init_full`.
#[allow(clippy::too_many_arguments)]
unsafe fn init_full(
    func: &'static str,
    ts: *mut QEMUTimer,
    timer_list_group: *mut QEMUTimerListGroup,
    ty: QEMUClockType,
    scale: c_int,
    attributes: c_int,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) {
    let index = timer::clock_index(func, ty);
    // SAFETY: the caller passes a writable QEMUTimer that is not pending.
    let timer = unsafe { timer_arg(func, ts) };
    let list = if timer_list_group.is_null() {
        let list = timer::main_loop_list(index);
        if list.is_null() {
            misuse(
                func,
                "a NULL group means the main loop's, and qemu_init_clocks() was never called",
            );
        }
        list
    } else {
        // SAFETY: a non-NULL group is readable (caller's contract).
        let list = unsafe { (*timer_list_group).tl[index] };
        if list.is_null() {
            misuse(func, "timer_list_group has no list for this clock");
        }
        list
    };
    // SAFETY: the lists of a live group stay valid until it is
    // deinitialised, which the caller must not do while using its timers.
    unsafe { timer.init(list, scale, attributes, cb, opaque) }
}

/// Initialises `ts` and binds it to the `type` list of `timer_list_group`,
/// not pending (`expire_time` = -1). `scale` is the number of nanoseconds in
/// one unit of `timer_mod`; `attributes` is a mask of `QEMU_TIMER_ATTR_*`;
/// `cb(opaque)` is called when the timer fires, by whoever runs that list
/// (`aio_poll` for an AioContext's group, `qemu_clock_run_timers` for the
/// main loop's).
///
/// `timer_list_group` is an AioContext's group (usually reached through
/// `aio_timer_init`), one set up by `timerlistgroup_init`, or NULL for
/// `main_loop_tlg`. A NULL group before `qemu_init_clocks`, a group without
/// a list for `type`, an invalid `type` and a NULL `ts` abort. `ts` must not
/// be pending.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_init_full(
    ts: *mut QEMUTimer,
    timer_list_group: *mut QEMUTimerListGroup,
    r#type: QEMUClockType,
    scale: c_int,
    attributes: c_int,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) {
    guard("timer_init_full", || {
        // SAFETY: forwarded from the caller.
        unsafe {
            init_full(
                "timer_init_full",
                ts,
                timer_list_group,
                r#type,
                scale,
                attributes,
                cb,
                opaque,
            )
        }
    })
}

/// `timer_init_full(ts, NULL, type, scale, 0, cb, opaque)`: binds `ts` to
/// the main loop's list of `type`. Aborts before `qemu_init_clocks`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_init(
    ts: *mut QEMUTimer,
    r#type: QEMUClockType,
    scale: c_int,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) {
    guard("timer_init", || {
        // SAFETY: forwarded from the caller.
        unsafe {
            init_full(
                "timer_init",
                ts,
                std::ptr::null_mut(),
                r#type,
                scale,
                0,
                cb,
                opaque,
            )
        }
    })
}

/// `timer_init(ts, type, SCALE_NS, cb, opaque)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_init_ns(
    ts: *mut QEMUTimer,
    r#type: QEMUClockType,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) {
    guard("timer_init_ns", || {
        // SAFETY: forwarded from the caller.
        unsafe { init_scaled("timer_init_ns", ts, r#type, timer::SCALE_NS, cb, opaque) }
    })
}

/// `timer_init(ts, type, SCALE_US, cb, opaque)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_init_us(
    ts: *mut QEMUTimer,
    r#type: QEMUClockType,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) {
    guard("timer_init_us", || {
        // SAFETY: forwarded from the caller.
        unsafe { init_scaled("timer_init_us", ts, r#type, timer::SCALE_US, cb, opaque) }
    })
}

/// `timer_init(ts, type, SCALE_MS, cb, opaque)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_init_ms(
    ts: *mut QEMUTimer,
    r#type: QEMUClockType,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) {
    guard("timer_init_ms", || {
        // SAFETY: forwarded from the caller.
        unsafe { init_scaled("timer_init_ms", ts, r#type, timer::SCALE_MS, cb, opaque) }
    })
}

/// `timer_init*` on the main loop's group with a given scale.
///
/// # Safety
/// As for `timer_init_full`.
unsafe fn init_scaled(
    func: &'static str,
    ts: *mut QEMUTimer,
    ty: QEMUClockType,
    scale: i64,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) {
    // SAFETY: forwarded.
    unsafe {
        init_full(
            func,
            ts,
            std::ptr::null_mut(),
            ty,
            scale as c_int,
            0,
            cb,
            opaque,
        )
    }
}

/// A zero-filled timer from glib's allocator (what `timer_free` releases),
/// initialised by [`init_full`].
///
/// # Safety
/// As for `timer_new_full`.
#[allow(clippy::too_many_arguments)]
unsafe fn new_full(
    func: &'static str,
    timer_list_group: *mut QEMUTimerListGroup,
    ty: QEMUClockType,
    scale: c_int,
    attributes: c_int,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) -> *mut QEMUTimer {
    // SAFETY: g_malloc0 aborts rather than return NULL.
    let ts = unsafe { glib_sys::g_malloc0(std::mem::size_of::<QEMUTimer>()) }.cast::<QEMUTimer>();
    // SAFETY: `ts` is fresh, zeroed and writable; the group is the caller's.
    unsafe {
        init_full(
            func,
            ts,
            timer_list_group,
            ty,
            scale,
            attributes,
            cb,
            opaque,
        )
    };
    ts
}

/// Allocates a timer with `g_new0` and initialises it as `timer_init_full`
/// does (a NULL `timer_list_group` means `main_loop_tlg`). Release it with
/// `timer_free`. Aborts as `timer_init_full` does.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_new_full(
    timer_list_group: *mut QEMUTimerListGroup,
    r#type: QEMUClockType,
    scale: c_int,
    attributes: c_int,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) -> *mut QEMUTimer {
    guard("timer_new_full", || {
        // SAFETY: forwarded from the caller.
        unsafe {
            new_full(
                "timer_new_full",
                timer_list_group,
                r#type,
                scale,
                attributes,
                cb,
                opaque,
            )
        }
    })
}

/// `timer_new_full(NULL, type, scale, 0, cb, opaque)`: a timer of the main
/// loop's group. Aborts before `qemu_init_clocks`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_new(
    r#type: QEMUClockType,
    scale: c_int,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) -> *mut QEMUTimer {
    guard("timer_new", || {
        // SAFETY: forwarded from the caller.
        unsafe {
            new_full(
                "timer_new",
                std::ptr::null_mut(),
                r#type,
                scale,
                0,
                cb,
                opaque,
            )
        }
    })
}

/// `timer_new(type, SCALE_NS, cb, opaque)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_new_ns(
    r#type: QEMUClockType,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) -> *mut QEMUTimer {
    guard("timer_new_ns", || {
        // SAFETY: forwarded from the caller.
        unsafe { new_scaled("timer_new_ns", r#type, timer::SCALE_NS, cb, opaque) }
    })
}

/// `timer_new(type, SCALE_US, cb, opaque)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_new_us(
    r#type: QEMUClockType,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) -> *mut QEMUTimer {
    guard("timer_new_us", || {
        // SAFETY: forwarded from the caller.
        unsafe { new_scaled("timer_new_us", r#type, timer::SCALE_US, cb, opaque) }
    })
}

/// `timer_new(type, SCALE_MS, cb, opaque)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_new_ms(
    r#type: QEMUClockType,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) -> *mut QEMUTimer {
    guard("timer_new_ms", || {
        // SAFETY: forwarded from the caller.
        unsafe { new_scaled("timer_new_ms", r#type, timer::SCALE_MS, cb, opaque) }
    })
}

/// `timer_new*` on the main loop's group with a given scale.
///
/// # Safety
/// As for `timer_new_full`.
unsafe fn new_scaled(
    func: &'static str,
    ty: QEMUClockType,
    scale: i64,
    cb: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    opaque: *mut c_void,
) -> *mut QEMUTimer {
    // SAFETY: forwarded.
    unsafe {
        new_full(
            func,
            std::ptr::null_mut(),
            ty,
            scale as c_int,
            0,
            cb,
            opaque,
        )
    }
}

/// Arms `ts` to fire when its clock reaches `expire_time` nanoseconds,
/// replacing any earlier expiry. Negative times are stored as 0 (fire at the
/// next run). Among timers with the same expiry the one armed last fires
/// last. If `ts` becomes the earliest timer of its list, the AioContext is
/// notified so a sleeping `aio_poll` recomputes its deadline.
///
/// `ts` must point to a timer initialised on an AioContext that is still
/// alive. Thread-safe. Aborts if `ts` is NULL or not initialised.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_mod_ns(ts: *mut QEMUTimer, expire_time: i64) {
    guard("timer_mod_ns", || {
        // SAFETY: the caller passes an initialised QEMUTimer.
        unsafe { timer_arg("timer_mod_ns", ts) }
            .modify_ns(expire_time)
            .unwrap_or_else(|_| unbound("timer_mod_ns"))
    })
}

/// `timer_mod_ns(ts, expire_time * ts->scale)`: `expire_time` is in the
/// timer's unit. A product beyond the range of int64_t saturates.
///
/// `ts` must point to a timer initialised on an AioContext that is still
/// alive. Thread-safe. Aborts if `ts` is NULL or not initialised.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_mod(ts: *mut QEMUTimer, expire_time: i64) {
    guard("timer_mod", || {
        // SAFETY: the caller passes an initialised QEMUTimer.
        unsafe { timer_arg("timer_mod", ts) }
            .modify(expire_time)
            .unwrap_or_else(|_| unbound("timer_mod"))
    })
}

/// Like `timer_mod_ns`, but only ever moves the expiry earlier: a pending
/// timer due at or before `expire_time` is left alone; an idle one is armed.
///
/// `ts` must point to a timer initialised on an AioContext that is still
/// alive. Thread-safe. Aborts if `ts` is NULL or not initialised.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_mod_anticipate_ns(ts: *mut QEMUTimer, expire_time: i64) {
    guard("timer_mod_anticipate_ns", || {
        // SAFETY: the caller passes an initialised QEMUTimer.
        unsafe { timer_arg("timer_mod_anticipate_ns", ts) }
            .anticipate_ns(expire_time)
            .unwrap_or_else(|_| unbound("timer_mod_anticipate_ns"))
    })
}

/// `timer_mod_anticipate_ns(ts, expire_time * ts->scale)`.
///
/// `ts` must point to a timer initialised on an AioContext that is still
/// alive. Thread-safe. Aborts if `ts` is NULL or not initialised.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_mod_anticipate(ts: *mut QEMUTimer, expire_time: i64) {
    guard("timer_mod_anticipate", || {
        // SAFETY: the caller passes an initialised QEMUTimer.
        unsafe { timer_arg("timer_mod_anticipate", ts) }
            .anticipate(expire_time)
            .unwrap_or_else(|_| unbound("timer_mod_anticipate"))
    })
}

/// Disarms `ts`: it will not fire and `expire_time` becomes -1. Does nothing
/// if it is not pending, or was deinitialised (or is zero-filled). An
/// initialised `ts` must belong to an AioContext that is still alive.
///
/// Thread-safe; once it returns the callback will not start (it may still be
/// running in the AioContext's thread if it had started). Aborts if `ts` is
/// NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_del(ts: *mut QEMUTimer) {
    guard("timer_del", || {
        // SAFETY: the caller passes a valid QEMUTimer.
        unsafe { timer_arg("timer_del", ts) }.delete()
    })
}

/// `timer_del(ts)`, then `g_free(ts)`: for timers from `aio_timer_new` (or
/// any `g_malloc`ed timer). NULL is ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_free(ts: *mut QEMUTimer) {
    guard("timer_free", || {
        // SAFETY: the caller passes NULL or a valid, g_malloc'ed QEMUTimer.
        let Some(timer) = (unsafe { Timer::from_raw(ts) }) else {
            return;
        };
        timer.delete();
        // SAFETY: `ts` came from glib's allocator (caller's contract) and is
        // no longer linked anywhere.
        unsafe { glib_sys::g_free(ts.cast()) }
    })
}

/// Unbinds `ts` from its list, so it can be freed or reinitialised. The
/// timer must not be pending: `timer_del` it first (a pending timer aborts).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_deinit(ts: *mut QEMUTimer) {
    guard("timer_deinit", || {
        // SAFETY: the caller passes a valid QEMUTimer.
        let timer = unsafe { timer_arg("timer_deinit", ts) };
        if timer.deinit().is_err() {
            misuse(
                "timer_deinit",
                "the timer is still pending; call timer_del first",
            );
        }
    })
}

/// True if `ts` is armed (`expire_time >= 0`). A timer is no longer pending
/// when its callback starts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_pending(ts: *const QEMUTimer) -> bool {
    guard("timer_pending", || {
        // SAFETY: the caller passes a valid QEMUTimer; only read.
        unsafe { timer_arg("timer_pending", ts.cast_mut()) }.is_pending()
    })
}

/// True if `timer_head` is due at `current_time`, given in the timer's
/// unit: `expire_time <= current_time * scale`. A timer that is not pending
/// (-1) therefore reads as expired. False for NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_expired(timer_head: *const QEMUTimer, current_time: i64) -> bool {
    guard("timer_expired", || {
        // SAFETY: the caller passes NULL or a valid QEMUTimer; only read.
        unsafe { Timer::from_raw(timer_head.cast_mut()) }
            .is_some_and(|t| t.has_expired(current_time))
    })
}

/// The expiry of `ts` in nanoseconds, or `(uint64_t)-1` if it is not
/// pending.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_expire_time_ns(ts: *const QEMUTimer) -> u64 {
    guard("timer_expire_time_ns", || {
        // SAFETY: the caller passes a valid QEMUTimer; only read.
        unsafe { timer_arg("timer_expire_time_ns", ts.cast_mut()) }.expire_time_ns()
    })
}

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
