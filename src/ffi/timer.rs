//! C API of `qemu/timer.h`, first half: the main loop's group and the
//! timer operations (init, new, mod, del), as thin shims over
//! [`crate::timer`]. Clocks, timer lists, groups and migration are in
//! [`super::clock`]. The structs (`QEMUTimer`, `QEMUTimerListGroup`) are in
//! [`crate::abi::timer`].

use libc::{c_int, c_void};

use super::{guard, misuse};
use crate::abi::{QEMUClockType, QEMUTimer, QEMUTimerListGroup};
use crate::timer::{self, Timer};

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
pub(super) unsafe fn timer_arg(func: &'static str, ts: *mut QEMUTimer) -> Timer {
    // SAFETY: forwarded from this function's contract.
    unsafe { Timer::from_raw(ts) }.unwrap_or_else(|| misuse(func, "the timer is NULL"))
}

/// Aborts because `func` was given a timer that was never initialised.
pub(super) fn unbound(func: &str) -> ! {
    misuse(
        func,
        "the timer was never initialised with timer_init_full (or was deinitialised)",
    )
}

/// `ty`, after aborting (naming `func`) if it is not a clock.
pub(super) fn valid(func: &str, ty: QEMUClockType) -> QEMUClockType {
    timer::clock_index(func, ty);
    ty
}

/// The body of `timer_init_full` and the `timer_init*` / `timer_new*`
/// family, aborting with `func`'s name.
///
/// # Safety
/// As for `timer_init_full`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn init_full(
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
pub(super) unsafe fn new_full(
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
