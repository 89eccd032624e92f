//! C API of `qemu/timer.h`: clocks and timer operations, as thin shims over
//! [`crate::timer`]. The structs (`QEMUTimer`, `QEMUTimerListGroup`) are in
//! [`crate::abi::timer`].

use libc::{c_int, c_void};

use super::{guard, misuse};
use crate::abi::{QEMUClockType, QEMUTimer, QEMUTimerListGroup};
use crate::timer::{self, Timer};

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

/// Initialises `ts` and binds it to the `type` list of `timer_list_group`,
/// not pending (`expire_time` = -1). `scale` is the number of nanoseconds in
/// one unit of `timer_mod`; `attributes` is a mask of `QEMU_TIMER_ATTR_*`;
/// `cb(opaque)` is called when the timer fires, in the thread running the
/// group's AioContext.
///
/// `timer_list_group` must be an AioContext's group (usually reached through
/// `aio_timer_init`). NULL, which in QEMU means the main loop's group, aborts:
/// qaio has no main loop. An invalid `type` aborts. `ts` must not be pending.
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
        const FUNC: &str = "timer_init_full";
        let index = timer::clock_index(FUNC, r#type);
        if timer_list_group.is_null() {
            misuse(
                FUNC,
                "timer_list_group is NULL, which means QEMU's main-loop group: qaio has none; \
                 use aio_timer_init() to bind the timer to an AioContext",
            );
        }
        // SAFETY: the caller passes a writable QEMUTimer that is not pending.
        let timer = unsafe { timer_arg(FUNC, ts) };
        // SAFETY: a non-NULL group is an AioContext's group, readable.
        let list = unsafe { (*timer_list_group).tl[index] };
        if list.is_null() {
            misuse(FUNC, "timer_list_group has no list for this clock");
        }
        // SAFETY: the lists of a live group are valid until the AioContext
        // is destroyed, which the caller must not do while using its timers.
        unsafe { timer.init(list, scale, attributes, cb, opaque) }
    })
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
pub unsafe extern "C" fn timer_pending(ts: *mut QEMUTimer) -> bool {
    guard("timer_pending", || {
        // SAFETY: the caller passes a valid QEMUTimer.
        unsafe { timer_arg("timer_pending", ts) }.is_pending()
    })
}

/// True if `timer_head` is due at `current_time`, given in the timer's
/// unit: `expire_time <= current_time * scale`. A timer that is not pending
/// (-1) therefore reads as expired. False for NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_expired(timer_head: *mut QEMUTimer, current_time: i64) -> bool {
    guard("timer_expired", || {
        // SAFETY: the caller passes NULL or a valid QEMUTimer.
        unsafe { Timer::from_raw(timer_head) }.is_some_and(|t| t.has_expired(current_time))
    })
}

/// The expiry of `ts` in nanoseconds, or `(uint64_t)-1` if it is not
/// pending.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_expire_time_ns(ts: *mut QEMUTimer) -> u64 {
    guard("timer_expire_time_ns", || {
        // SAFETY: the caller passes a valid QEMUTimer.
        unsafe { timer_arg("timer_expire_time_ns", ts) }.expire_time_ns()
    })
}

/// The current time of clock `type` in nanoseconds. REALTIME, VIRTUAL and
/// VIRTUAL_RT read `CLOCK_MONOTONIC`, HOST reads `CLOCK_REALTIME`; no
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

/// Enables or disables clock `type` for every AioContext. Timers of a
/// disabled clock stay armed but do not fire and do not shorten `aio_poll`'s
/// sleep. All clocks start enabled except QEMU_CLOCK_VIRTUAL.
///
/// Enabling a disabled clock wakes every AioContext so it recomputes its
/// deadline. Disabling an enabled clock waits until the timer callbacks of
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
