//! The clocks timers run on: which host clock (or program hook) each reads,
//! enabling and disabling them process-wide, whether they count for
//! deadlines, and the count of list runs that `qemu_clock_enable(false)`
//! waits for. Corresponds to the `QEMUClock` part of util/qemu-timer.c.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use crossbeam_utils::CachePadded;

use super::{
    QEMU_CLOCK_HOST, QEMU_CLOCK_MAX, QEMU_CLOCK_VIRTUAL, QEMU_CLOCK_VIRTUAL_RT, QEMUClockType,
    lock, registry,
};
use crate::abi::misuse;
use crate::hooks;

/// Process-wide state of one clock.
pub(super) struct Clock {
    pub(super) enabled: AtomicBool,
    /// List runs, in any thread, that have found an expired timer and may
    /// still call callbacks. `clock_enable(false)` waits for it to drop.
    running: AtomicUsize,
    /// Threads in `clock_enable(false)` waiting for `running` to drop; lets a
    /// finishing run skip the condvar when nobody waits.
    waiters: AtomicUsize,
}

const fn clock_state(enabled: bool) -> CachePadded<Clock> {
    CachePadded::new(Clock {
        enabled: AtomicBool::new(enabled),
        running: AtomicUsize::new(0),
        waiters: AtomicUsize::new(0),
    })
}

/// Indexed by clock type. Padded: `running` is written by every thread that
/// fires timers of the clock.
pub(super) static CLOCKS: [CachePadded<Clock>; QEMU_CLOCK_MAX] = [
    clock_state(true),  // REALTIME
    clock_state(false), // VIRTUAL: disabled until the "VM" starts, as in QEMU
    clock_state(true),  // HOST
    clock_state(true),  // VIRTUAL_RT
];

/// Where `clock_enable(false)` sleeps until the clock's running count drops.
static DISABLE_LOCK: Mutex<()> = Mutex::new(());
static DISABLE_DONE: Condvar = Condvar::new();

thread_local! {
    /// Per clock, how many list runs of this thread are in progress (nested
    /// `aio_poll`s stack them). `clock_enable(false)` does not wait for
    /// these: they are its own callers.
    static RUNNING_HERE: Cell<[u32; QEMU_CLOCK_MAX]> = const { Cell::new([0; QEMU_CLOCK_MAX]) };
}

/// Checks a clock type from C and returns it as an index; aborts, naming
/// `func`, if it is out of range.
pub fn clock_index(func: &str, ty: QEMUClockType) -> usize {
    match usize::try_from(ty) {
        Ok(i) if i < QEMU_CLOCK_MAX => i,
        _ => misuse(
            func,
            &format!(
                "invalid clock type {ty} (expected QEMU_CLOCK_REALTIME, QEMU_CLOCK_VIRTUAL, \
                 QEMU_CLOCK_HOST or QEMU_CLOCK_VIRTUAL_RT)"
            ),
        ),
    }
}

/// Reads a host clock in nanoseconds.
fn host_ns(id: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the callers' clock ids always
    // exist, so the call cannot fail.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Reads the clock with index `clock` (already checked), in nanoseconds:
/// the program's guest clocks when it has them, else the host's.
pub(super) fn now_ns(clock: usize) -> i64 {
    let hook = match clock as QEMUClockType {
        QEMU_CLOCK_HOST => return host_ns(libc::CLOCK_REALTIME),
        QEMU_CLOCK_VIRTUAL => hooks::cpus_get_virtual_clock(),
        QEMU_CLOCK_VIRTUAL_RT => hooks::cpu_get_clock(),
        _ => None,
    };
    match hook {
        // SAFETY: the program's clock functions, callable from any thread.
        Some(read) => unsafe { read() },
        None => host_ns(libc::CLOCK_MONOTONIC),
    }
}

/// The current time of clock `ty` in nanoseconds: REALTIME reads
/// `CLOCK_MONOTONIC`, HOST `CLOCK_REALTIME`; VIRTUAL the program's
/// `cpus_get_virtual_clock` and VIRTUAL_RT its `cpu_get_clock` when it has
/// them, else `CLOCK_MONOTONIC`. Aborts on an invalid `ty`.
pub fn clock_get_ns(ty: QEMUClockType) -> i64 {
    now_ns(clock_index("qemu_clock_get_ns", ty))
}

/// Whether timers of clock `clock` bound a sleep: all but VIRTUAL when the
/// program counts instructions (icount), where the guest's own progress,
/// not a host sleep, moves that clock.
pub(super) fn use_for_deadline(clock: usize) -> bool {
    !(clock == QEMU_CLOCK_VIRTUAL as usize && hooks::icount_enabled())
}

/// [`use_for_deadline`] for a clock type from C; aborts on an invalid `ty`.
pub fn clock_use_for_deadline(ty: QEMUClockType) -> bool {
    use_for_deadline(clock_index("qemu_clock_use_for_deadline", ty))
}

/// True if clock `ty` is enabled. Aborts on an invalid `ty`.
pub fn clock_is_enabled(ty: QEMUClockType) -> bool {
    CLOCKS[clock_index("qemu_clock_is_enabled", ty)]
        .enabled
        .load(Ordering::SeqCst)
}

/// Enables or disables clock `ty` for every timer list. Enabling a disabled
/// clock notifies every list of the clock, so sleeping loops recompute their
/// deadline. Disabling an enabled clock returns once no callback of that
/// clock runs in another thread (callbacks of the calling thread, which may
/// be the caller itself, are not waited for). Aborts on an invalid `ty`.
pub fn clock_enable(ty: QEMUClockType, enabled: bool) {
    let clock = clock_index("qemu_clock_enable", ty);
    let state = &CLOCKS[clock];
    // SeqCst store then SeqCst load of `running`, against the runner's
    // SeqCst increment of `running` then load of `enabled` (ListRun::begin
    // and TimerList::run_until): one of the two sides sees the other, so a
    // run either stops before its next callback or is waited for here.
    let was = state.enabled.swap(enabled, Ordering::SeqCst);
    if enabled && !was {
        registry::notify_all(clock);
    } else if !enabled && was {
        let own = RUNNING_HERE.with(|r| r.get()[clock]) as usize;
        let mut guard = lock(&DISABLE_LOCK);
        // Incremented under DISABLE_LOCK: a run that misses this increment
        // decremented `running` before we read it; one that sees it takes
        // DISABLE_LOCK to notify, which it cannot do between our check and
        // our wait.
        state.waiters.fetch_add(1, Ordering::SeqCst);
        while state.running.load(Ordering::SeqCst) > own {
            guard = DISABLE_DONE
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A run of one list that may call callbacks, counted in its clock's
/// `running` for `clock_enable(false)`.
pub(super) struct ListRun {
    clock: usize,
}

impl ListRun {
    pub(super) fn begin(clock: usize) -> ListRun {
        RUNNING_HERE.with(|r| {
            let mut counts = r.get();
            counts[clock] += 1;
            r.set(counts);
        });
        CLOCKS[clock].running.fetch_add(1, Ordering::SeqCst);
        ListRun { clock }
    }
}

impl Drop for ListRun {
    fn drop(&mut self) {
        let state = &CLOCKS[self.clock];
        state.running.fetch_sub(1, Ordering::SeqCst);
        if state.waiters.load(Ordering::SeqCst) != 0 {
            let _guard = lock(&DISABLE_LOCK);
            DISABLE_DONE.notify_all();
        }
        RUNNING_HERE.with(|r| {
            let mut counts = r.get();
            counts[self.clock] -= 1;
            r.set(counts);
        });
    }
}
