//! Timers: the clocks, one sorted timer list per clock and AioContext, and
//! the deadlines `aio_poll` sleeps until. Corresponds to util/qemu-timer.c.
//!
//! The `QEMUTimer` structs belong to C; a list only links the pending ones
//! through their `next` field, under the list's mutex. Callbacks run with the
//! mutex released, so they may arm, delete or free any timer, including their
//! own, and may run a nested `aio_poll`.

use std::cell::{Cell, UnsafeCell};
use std::ffi::{c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crossbeam_utils::CachePadded;

use crate::abi::misuse;
pub use crate::abi::timer::{
    QEMU_CLOCK_HOST, QEMU_CLOCK_MAX, QEMU_CLOCK_REALTIME, QEMU_CLOCK_VIRTUAL,
    QEMU_CLOCK_VIRTUAL_RT, QEMUClockType, QEMUTimer, QEMUTimerList, QEMUTimerListGroup,
};

/// Nanoseconds per unit of a timer with that scale.
pub const SCALE_NS: i64 = 1;
pub const SCALE_US: i64 = 1_000;
pub const SCALE_MS: i64 = 1_000_000;

// ---------------------------------------------------------------------------
// Clocks
// ---------------------------------------------------------------------------

/// Process-wide state of one clock.
struct Clock {
    enabled: AtomicBool,
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
static CLOCKS: [CachePadded<Clock>; QEMU_CLOCK_MAX] = [
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing protected by these mutexes is left inconsistent by a panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
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

/// Reads the clock with index `clock` (already checked), in nanoseconds.
fn now_ns(clock: usize) -> i64 {
    let id = if clock == QEMU_CLOCK_HOST as usize {
        libc::CLOCK_REALTIME
    } else {
        libc::CLOCK_MONOTONIC
    };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; these clock ids always exist, so
    // the call cannot fail.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// The current time of clock `ty` in nanoseconds. REALTIME, VIRTUAL and
/// VIRTUAL_RT read `CLOCK_MONOTONIC`; HOST reads `CLOCK_REALTIME`. Aborts on
/// an invalid `ty`.
pub fn clock_get_ns(ty: QEMUClockType) -> i64 {
    now_ns(clock_index("qemu_clock_get_ns", ty))
}

/// True if clock `ty` is enabled. Aborts on an invalid `ty`.
pub fn clock_is_enabled(ty: QEMUClockType) -> bool {
    CLOCKS[clock_index("qemu_clock_is_enabled", ty)]
        .enabled
        .load(Ordering::SeqCst)
}

/// Enables or disables clock `ty` in every timer list group. Enabling a
/// disabled clock notifies every group, so sleeping loops recompute their
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
        for group in lock(&GROUPS).iter() {
            // SAFETY: a group stays registered, and so alive, until its Drop
            // has taken GROUPS' lock, which we hold.
            unsafe { (*group.0).lists[clock].notify() };
        }
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
struct ListRun {
    clock: usize,
}

impl ListRun {
    fn begin(clock: usize) -> ListRun {
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

// ---------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Timers
// ---------------------------------------------------------------------------

// `expire_time` is accessed as an AtomicI64 (it is read without the list
// lock by timer_pending and friends, as in QEMU).
const _: () = assert!(
    std::mem::offset_of!(QEMUTimer, expire_time) == 0
        && std::mem::align_of::<QEMUTimer>() >= std::mem::align_of::<AtomicI64>()
);

/// A handle to a C-owned `QEMUTimer`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Timer(NonNull<QEMUTimer>);

// SAFETY: a timer may be armed and deleted from any thread (its list's lock
// serialises that); the rest of the from_raw contract is the caller's.
unsafe impl Send for Timer {}
// SAFETY: as for Send.
unsafe impl Sync for Timer {}

/// The timer was never bound to a list (or was deinitialised).
#[derive(Debug, PartialEq, Eq)]
pub struct Unbound;

/// `timer_deinit` on a pending timer.
#[derive(Debug, PartialEq, Eq)]
pub struct StillPending;

impl Timer {
    /// Wraps `ts`; `None` if it is NULL.
    ///
    /// # Safety
    /// A non-NULL `ts` must point to a `QEMUTimer` that stays valid (not
    /// freed or moved) while the handle and its copies are used, and whose
    /// `timer_list` is NULL or was set by [`Timer::init`] to a list of a
    /// [`TimerListGroup`] that is still alive. Only this API writes its
    /// fields while it is bound. Before [`Timer::init`], the memory need not
    /// hold a valid timer.
    pub unsafe fn from_raw(ts: *mut QEMUTimer) -> Option<Timer> {
        NonNull::new(ts).map(Timer)
    }

    pub fn as_ptr(self) -> *mut QEMUTimer {
        self.0.as_ptr()
    }

    /// (Re)initialises the timer, bound to `list`, not pending.
    ///
    /// # Safety
    /// The timer must not be pending (a pending timer is linked in its list),
    /// nor used by another thread during the call; `list` must be NULL or a
    /// list of a live [`TimerListGroup`], as required by [`Timer::from_raw`].
    pub unsafe fn init(
        self,
        list: *mut QEMUTimerList,
        scale: c_int,
        attributes: c_int,
        cb: Option<unsafe extern "C" fn(*mut c_void)>,
        opaque: *mut c_void,
    ) {
        let fresh = QEMUTimer {
            expire_time: -1,
            timer_list: list,
            cb,
            opaque,
            next: ptr::null_mut(),
            attributes,
            scale,
        };
        // SAFETY: the timer is valid and writable (from_raw) and nobody else
        // uses it now (this function's contract).
        unsafe { self.0.as_ptr().write(fresh) }
    }

    fn expire_time(&self) -> &AtomicI64 {
        // SAFETY: the field is valid while the handle is used (from_raw),
        // aligned for AtomicI64 (asserted above), and Rust only accesses it
        // atomically.
        unsafe { AtomicI64::from_ptr(&raw mut (*self.0.as_ptr()).expire_time) }
    }

    /// The timer's list, if it is bound to one.
    fn list(&self) -> Option<&TimerList> {
        // SAFETY: `timer_list` is only written by init/deinit, which the
        // caller does not run concurrently with other uses (from_raw).
        let list = unsafe { (*self.0.as_ptr()).timer_list };
        // SAFETY: a non-NULL `timer_list` is a list of a live group
        // (from_raw); QEMUTimerList is the C name of TimerList.
        NonNull::new(list).map(|l| unsafe { l.cast::<TimerList>().as_ref() })
    }

    fn scale(self) -> i64 {
        // SAFETY: valid timer (from_raw); the field is only written by init.
        i64::from(unsafe { (*self.0.as_ptr()).scale })
    }

    /// The timer after this one in its list. `_locked` is the guard of the
    /// list's lock, which protects the `next` links.
    fn next(self, _locked: &MutexGuard<'_, ()>) -> Option<Timer> {
        // SAFETY: valid timer (from_raw); `next` is only accessed by the
        // holder of the list lock, which the caller is.
        NonNull::new(unsafe { (*self.0.as_ptr()).next }).map(Timer)
    }

    /// Sets the link read by [`Timer::next`], under the same lock.
    fn set_next(self, next: Option<Timer>, _locked: &MutexGuard<'_, ()>) {
        let next = next.map_or(ptr::null_mut(), Timer::as_ptr);
        // SAFETY: as in `next`.
        unsafe { (*self.0.as_ptr()).next = next }
    }

    /// True if the timer was initialised and not deinitialised.
    pub fn is_bound(self) -> bool {
        self.list().is_some()
    }

    /// Arms the timer for `expire_ns` on its clock (negative means 0),
    /// replacing any earlier expiry. Notifies the list's owner if the timer
    /// became the earliest of its list. Thread-safe.
    pub fn modify_ns(self, expire_ns: i64) -> Result<(), Unbound> {
        let list = self.list().ok_or(Unbound)?;
        let became_head = {
            let guard = list.lock();
            list.unlink(&guard, self);
            list.insert(&guard, self, expire_ns)
        };
        if became_head {
            list.notify();
        }
        Ok(())
    }

    /// [`Timer::modify_ns`] with `expire` in the timer's unit (saturating).
    pub fn modify(self, expire: i64) -> Result<(), Unbound> {
        self.modify_ns(expire.saturating_mul(self.scale()))
    }

    /// Arms the timer for `expire_ns` unless it is already pending with an
    /// expiry at or before that. Thread-safe.
    pub fn anticipate_ns(self, expire_ns: i64) -> Result<(), Unbound> {
        let list = self.list().ok_or(Unbound)?;
        let became_head = {
            let guard = list.lock();
            let current = self.expire_time().load(Ordering::Relaxed);
            if current >= 0 && current <= expire_ns {
                false
            } else {
                list.unlink(&guard, self);
                list.insert(&guard, self, expire_ns)
            }
        };
        if became_head {
            list.notify();
        }
        Ok(())
    }

    /// [`Timer::anticipate_ns`] with `expire` in the timer's unit.
    pub fn anticipate(self, expire: i64) -> Result<(), Unbound> {
        self.anticipate_ns(expire.saturating_mul(self.scale()))
    }

    /// Disarms the timer. Idempotent; does nothing to an unbound timer.
    /// Thread-safe.
    pub fn delete(self) {
        if let Some(list) = self.list() {
            let guard = list.lock();
            list.unlink(&guard, self);
        }
    }

    /// Unbinds a timer that is not pending.
    pub fn deinit(self) -> Result<(), StillPending> {
        if self.is_pending() {
            return Err(StillPending);
        }
        // SAFETY: valid timer; not pending, hence on no list; the caller does
        // not use it concurrently (from_raw).
        unsafe { (*self.0.as_ptr()).timer_list = ptr::null_mut() };
        Ok(())
    }

    /// True if the timer is armed.
    pub fn is_pending(self) -> bool {
        self.expire_time().load(Ordering::Relaxed) >= 0
    }

    /// True if the expiry is at or before `now`, in the timer's unit; an idle
    /// timer (-1) counts as expired.
    pub fn has_expired(self, now: i64) -> bool {
        self.expire_time().load(Ordering::Relaxed) <= now.saturating_mul(self.scale())
    }

    /// The expiry in ns, or `u64::MAX` when not pending.
    pub fn expire_time_ns(self) -> u64 {
        let t = self.expire_time().load(Ordering::Relaxed);
        if t >= 0 { t as u64 } else { u64::MAX }
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

// ---------------------------------------------------------------------------
// Timer lists
// ---------------------------------------------------------------------------

/// The pending timers of one clock in one group, linked through
/// `QEMUTimer::next` in expiry order (FIFO among equal expiries).
struct TimerList {
    clock: usize,
    /// First timer, NULL when empty. Written only with `lock` held; read
    /// without it only to skip empty lists (run and deadline run on every
    /// aio_poll iteration). A stale "empty" is harmless: whoever makes the
    /// list non-empty makes its timer the head, and so notifies the owner.
    head: AtomicPtr<QEMUTimer>,
    /// Guards `head` and the `next` links of the linked timers.
    lock: Mutex<()>,
    notify: unsafe fn(*mut c_void),
    notify_opaque: *mut c_void,
}

// SAFETY: the raw pointers are the linked timers, which are only touched with
// `lock` held, and the owner's notify argument, which TimerListGroup::new
// requires to be usable from any thread.
unsafe impl Send for TimerList {}
// SAFETY: as for Send; everything else is atomics and a mutex.
unsafe impl Sync for TimerList {}

impl TimerList {
    fn new(clock: usize, notify: unsafe fn(*mut c_void), notify_opaque: *mut c_void) -> TimerList {
        TimerList {
            clock,
            head: AtomicPtr::new(ptr::null_mut()),
            lock: Mutex::new(()),
            notify,
            notify_opaque,
        }
    }

    /// The C handle of this list.
    fn as_c(&self) -> *mut QEMUTimerList {
        ptr::from_ref(self).cast_mut().cast()
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        lock(&self.lock)
    }

    fn notify(&self) {
        // SAFETY: TimerListGroup::new's contract: `notify` accepts its
        // opaque from any thread while the group lives.
        unsafe { (self.notify)(self.notify_opaque) }
    }

    fn has_timers(&self) -> bool {
        !self.head.load(Ordering::Acquire).is_null()
    }

    /// The first linked timer, if any. Every linked timer is alive: C must
    /// not free or move a pending timer.
    fn first(&self, _guard: &MutexGuard<'_, ()>) -> Option<Timer> {
        NonNull::new(self.head.load(Ordering::Relaxed)).map(Timer)
    }

    /// Publishes a new first timer (the lock is held by the caller).
    fn set_head(&self, head: Option<Timer>) {
        self.head.store(
            head.map_or(ptr::null_mut(), Timer::as_ptr),
            Ordering::Release,
        );
    }

    /// Removes `timer` from the list if it is linked, and marks it idle.
    fn unlink(&self, guard: &MutexGuard<'_, ()>, timer: Timer) {
        // Linked iff pending (expire_time >= 0): an idle timer needs no walk.
        if timer.expire_time().load(Ordering::Relaxed) < 0 {
            return;
        }
        timer.expire_time().store(-1, Ordering::Relaxed);
        let mut prev: Option<Timer> = None;
        let mut cur = self.first(guard);
        while let Some(t) = cur {
            let next = t.next(guard);
            if t == timer {
                match prev {
                    None => self.set_head(next),
                    Some(p) => p.set_next(next, guard),
                }
                timer.set_next(None, guard);
                return;
            }
            prev = cur;
            cur = next;
        }
    }

    /// Links an unlinked `timer` after every timer due at or before
    /// `expire_ns` and stores the expiry (negative becomes 0). Returns true
    /// if it became the head.
    fn insert(&self, guard: &MutexGuard<'_, ()>, timer: Timer, expire_ns: i64) -> bool {
        let mut prev: Option<Timer> = None;
        let mut cur = self.first(guard);
        while let Some(t) = cur {
            if t.expire_time().load(Ordering::Relaxed) > expire_ns {
                break;
            }
            prev = cur;
            cur = t.next(guard);
        }
        timer
            .expire_time()
            .store(expire_ns.max(0), Ordering::Relaxed);
        timer.set_next(cur, guard);
        match prev {
            None => {
                self.set_head(Some(timer));
                true
            }
            Some(p) => {
                p.set_next(Some(timer), guard);
                false
            }
        }
    }

    /// Expiry of the first timer, if any.
    fn head_expire(&self) -> Option<i64> {
        let guard = self.lock();
        self.first(&guard)
            .map(|t| t.expire_time().load(Ordering::Relaxed))
    }

    /// Nanoseconds until the first timer is due (0 if it is), or -1 if the
    /// list is empty or its clock disabled.
    fn deadline_ns(&self) -> i64 {
        if !self.has_timers() || !CLOCKS[self.clock].enabled.load(Ordering::Relaxed) {
            return -1;
        }
        // The head may change once the lock is dropped; whoever makes an
        // earlier timer the head notifies the owner, which then recomputes.
        match self.head_expire() {
            Some(expire) => delta_ns(expire, now_ns(self.clock)),
            None => -1,
        }
    }

    /// Fires the timers due now; true if any callback ran.
    fn run(&self) -> bool {
        if !self.has_timers() || !CLOCKS[self.clock].enabled.load(Ordering::Relaxed) {
            return false;
        }
        self.run_until(now_ns(self.clock))
    }

    /// Fires, in order, every timer due at or before `now`, including those
    /// that callbacks arm for a time at or before `now` (so a callback that
    /// always re-arms itself in the past loops forever, as in QEMU).
    fn run_until(&self, now: i64) -> bool {
        let mut progress = false;
        let mut run: Option<ListRun> = None;
        let mut guard = self.lock();
        while let Some(timer) = self.first(&guard) {
            if timer.expire_time().load(Ordering::Relaxed) > now {
                break;
            }
            if run.is_none() {
                run = Some(ListRun::begin(self.clock));
            }
            // Checked before every callback, after `running` was raised (see
            // clock_enable), so a disabled clock fires nothing more.
            if !CLOCKS[self.clock].enabled.load(Ordering::SeqCst) {
                break;
            }
            self.unlink(&guard, timer);
            // SAFETY: `timer` is alive (it was linked); `cb` and `opaque`
            // are only written by init, which C may not run on a linked timer.
            let (cb, opaque) = unsafe { ((*timer.as_ptr()).cb, (*timer.as_ptr()).opaque) };
            // Unlocked around the callback: it may use this list.
            drop(guard);
            match cb {
                // SAFETY: the callback and its argument come from C, which
                // asked for exactly this call.
                Some(cb) => unsafe { cb(opaque) },
                None => misuse(
                    "aio_poll",
                    "a timer fired whose callback is NULL (it was initialised with cb = NULL)",
                ),
            }
            progress = true;
            guard = self.lock();
        }
        drop(guard);
        drop(run);
        progress
    }

    /// Unlinks every timer and unbinds it from this list, which is going
    /// away (only if its owner leaked pending timers).
    fn detach_all(&self) {
        let guard = self.lock();
        while let Some(timer) = self.first(&guard) {
            self.unlink(&guard, timer);
            // SAFETY: the timer was linked, so alive; its list is going away
            // and nothing else may use the timer now.
            unsafe { (*timer.as_ptr()).timer_list = ptr::null_mut() };
        }
    }
}

// ---------------------------------------------------------------------------
// Timer list groups
// ---------------------------------------------------------------------------

struct GroupInner {
    lists: [TimerList; QEMU_CLOCK_MAX],
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

    fn inner(&self) -> &GroupInner {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    /// Counts notifications: the group's opaque is an `AtomicUsize`.
    unsafe fn count_notify(opaque: *mut c_void) {
        // SAFETY: the tests pass a pointer to an AtomicUsize that outlives
        // the group.
        unsafe { &*opaque.cast::<AtomicUsize>() }.fetch_add(1, Ordering::SeqCst);
    }

    /// A QEMUTimer as g_new0 returns it.
    fn unbound_timer() -> QEMUTimer {
        QEMUTimer {
            expire_time: 0,
            timer_list: ptr::null_mut(),
            cb: None,
            opaque: ptr::null_mut(),
            next: ptr::null_mut(),
            attributes: 0,
            scale: 0,
        }
    }

    /// What a test timer's callback does after logging its id.
    #[derive(Clone, Copy)]
    enum Then {
        Nothing,
        /// Re-arm itself `times` times at `at`, then once at `finally`.
        Rearm {
            at: i64,
            times: u32,
            finally: Option<i64>,
        },
        /// Delete another timer.
        Delete(usize),
        /// Disable the clock.
        DisableClock(QEMUClockType),
    }

    /// A test timer, boxed so that its address is stable.
    struct Probe {
        timer: UnsafeCell<QEMUTimer>,
        id: u32,
        fired: AtomicU32,
        log: Arc<Mutex<Vec<u32>>>,
        then: Mutex<Then>,
        others: Mutex<Vec<Timer>>,
    }

    unsafe extern "C" fn probe_cb(opaque: *mut c_void) {
        // SAFETY: the opaque of a test timer is its Probe, which outlives it.
        let p = unsafe { &*opaque.cast::<Probe>() };
        p.log.lock().unwrap().push(p.id);
        let n = p.fired.fetch_add(1, Ordering::SeqCst) + 1;
        let then = *p.then.lock().unwrap();
        match then {
            Then::Nothing => {}
            Then::Rearm { at, times, finally } => {
                if n <= times {
                    p.handle().modify_ns(at).unwrap();
                } else if let (true, Some(t)) = (n == times + 1, finally) {
                    p.handle().modify_ns(t).unwrap();
                }
            }
            Then::Delete(i) => p.others.lock().unwrap()[i].delete(),
            Then::DisableClock(ty) => clock_enable(ty, false),
        }
    }

    impl Probe {
        fn new(
            group: &TimerListGroup,
            ty: QEMUClockType,
            scale: c_int,
            id: u32,
            log: &Arc<Mutex<Vec<u32>>>,
        ) -> Box<Probe> {
            let p = Box::new(Probe {
                timer: UnsafeCell::new(unbound_timer()),
                id,
                fired: AtomicU32::new(0),
                log: log.clone(),
                then: Mutex::new(Then::Nothing),
                others: Mutex::new(Vec::new()),
            });
            let opaque = ptr::from_ref::<Probe>(&p).cast_mut().cast();
            // SAFETY: the Probe is boxed (stable) and outlives its use; the
            // tests drop probes only after the timers are idle or the group
            // is gone.
            unsafe { timer_init(p.timer.get(), group, ty, scale, 0, Some(probe_cb), opaque) };
            p
        }

        fn handle(&self) -> Timer {
            // SAFETY: see Probe::new.
            unsafe { Timer::from_raw(self.timer.get()) }.unwrap()
        }

        fn set_then(&self, then: Then) {
            *self.then.lock().unwrap() = then;
        }
    }

    struct Fixture {
        group: TimerListGroup,
        notified: Box<AtomicUsize>,
        log: Arc<Mutex<Vec<u32>>>,
        /// Enabling a clock notifies every group, so tests that count
        /// notifications or toggle clocks run one at a time.
        _serial: MutexGuard<'static, ()>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let notified = Box::new(AtomicUsize::new(0));
            let opaque = ptr::from_ref::<AtomicUsize>(&notified).cast_mut().cast();
            Fixture {
                _serial: lock(&SERIAL),
                group: TimerListGroup::new(count_notify, opaque),
                notified,
                log: Arc::new(Mutex::new(Vec::new())),
            }
        }

        fn probe(&self, ty: QEMUClockType, id: u32) -> Box<Probe> {
            Probe::new(&self.group, ty, SCALE_NS as c_int, id, &self.log)
        }

        fn list(&self, ty: QEMUClockType) -> &TimerList {
            &self.group.inner().lists[ty as usize]
        }

        /// Ids of the list's timers, in list order.
        fn order(&self, ty: QEMUClockType) -> Vec<i64> {
            let list = self.list(ty);
            let guard = list.lock();
            let mut out = Vec::new();
            let mut cur = list.first(&guard);
            while let Some(t) = cur {
                out.push(t.expire_time().load(Ordering::Relaxed));
                cur = t.next(&guard);
            }
            out
        }

        fn notified(&self) -> usize {
            self.notified.load(Ordering::SeqCst)
        }

        fn take_log(&self) -> Vec<u32> {
            std::mem::take(&mut *self.log.lock().unwrap())
        }
    }

    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn equal_expiries_fire_in_arming_order_after_earlier_ones() {
        let f = Fixture::new();
        let t1 = f.probe(QEMU_CLOCK_REALTIME, 1);
        let t2 = f.probe(QEMU_CLOCK_REALTIME, 2);
        let t3 = f.probe(QEMU_CLOCK_REALTIME, 3);
        let t0 = f.probe(QEMU_CLOCK_REALTIME, 0);
        t1.handle().modify_ns(100).unwrap();
        t2.handle().modify_ns(100).unwrap();
        t3.handle().modify_ns(100).unwrap();
        t0.handle().modify_ns(99).unwrap();
        assert_eq!(f.order(QEMU_CLOCK_REALTIME), vec![99, 100, 100, 100]);
        // Empty list → t1 head (1), t0 head (2); t2 and t3 did not notify.
        assert_eq!(f.notified(), 2);

        assert!(!f.list(QEMU_CLOCK_REALTIME).run_until(98));
        assert_eq!(f.take_log(), Vec::<u32>::new());
        assert!(f.list(QEMU_CLOCK_REALTIME).run_until(100));
        assert_eq!(f.take_log(), vec![0, 1, 2, 3]);
        for t in [&t0, &t1, &t2, &t3] {
            assert!(!t.handle().is_pending());
            assert_eq!(t.handle().expire_time_ns(), u64::MAX);
        }
        assert!(!f.group.has_pending_timers());
        assert!(!f.list(QEMU_CLOCK_REALTIME).run_until(1000));
    }

    #[test]
    fn modify_moves_a_pending_timer_and_notifies_only_for_a_new_head() {
        let f = Fixture::new();
        let a = f.probe(QEMU_CLOCK_REALTIME, 1);
        let b = f.probe(QEMU_CLOCK_REALTIME, 2);
        a.handle().modify_ns(100).unwrap();
        assert_eq!(f.notified(), 1);
        b.handle().modify_ns(200).unwrap();
        assert_eq!(f.notified(), 1);
        // Moving b before a makes it the head.
        b.handle().modify_ns(50).unwrap();
        assert_eq!(f.notified(), 2);
        assert_eq!(f.order(QEMU_CLOCK_REALTIME), vec![50, 100]);
        // Moving the head later keeps it linked once and does not notify.
        b.handle().modify_ns(300).unwrap();
        assert_eq!(f.notified(), 2);
        assert_eq!(f.order(QEMU_CLOCK_REALTIME), vec![100, 300]);
        assert_eq!(b.handle().expire_time_ns(), 300);
        // Re-arming the head for the same time re-inserts it (still the head).
        a.handle().modify_ns(100).unwrap();
        assert_eq!(f.notified(), 3);
        assert_eq!(f.order(QEMU_CLOCK_REALTIME), vec![100, 300]);
        a.handle().delete();
        b.handle().delete();
    }

    #[test]
    fn negative_expiry_is_stored_as_zero_and_goes_first() {
        let f = Fixture::new();
        let a = f.probe(QEMU_CLOCK_REALTIME, 1);
        let b = f.probe(QEMU_CLOCK_REALTIME, 2);
        a.handle().modify_ns(0).unwrap();
        b.handle().modify_ns(-5).unwrap();
        assert_eq!(b.handle().expire_time_ns(), 0);
        assert!(b.handle().is_pending());
        assert_eq!(f.order(QEMU_CLOCK_REALTIME), vec![0, 0]);
        assert!(f.list(QEMU_CLOCK_REALTIME).run_until(0));
        assert_eq!(f.take_log(), vec![2, 1]);
    }

    #[test]
    fn anticipate_only_moves_earlier_or_arms_an_idle_timer() {
        let f = Fixture::new();
        let a = f.probe(QEMU_CLOCK_REALTIME, 1);
        let b = f.probe(QEMU_CLOCK_REALTIME, 2);
        a.handle().anticipate_ns(100).unwrap();
        assert_eq!(a.handle().expire_time_ns(), 100);
        assert_eq!(f.notified(), 1);
        a.handle().anticipate_ns(200).unwrap();
        assert_eq!(a.handle().expire_time_ns(), 100);
        a.handle().anticipate_ns(100).unwrap();
        assert_eq!(a.handle().expire_time_ns(), 100);
        assert_eq!(f.notified(), 1);
        b.handle().modify_ns(80).unwrap();
        assert_eq!(f.notified(), 2);
        a.handle().anticipate_ns(90).unwrap();
        assert_eq!(f.order(QEMU_CLOCK_REALTIME), vec![80, 90]);
        assert_eq!(f.notified(), 2);
        a.handle().anticipate_ns(10).unwrap();
        assert_eq!(f.order(QEMU_CLOCK_REALTIME), vec![10, 80]);
        assert_eq!(f.notified(), 3);
        a.handle().delete();
        b.handle().delete();
        assert!(!f.group.has_pending_timers());
    }

    #[test]
    fn delete_is_idempotent_and_stops_firing() {
        let f = Fixture::new();
        let a = f.probe(QEMU_CLOCK_REALTIME, 1);
        let b = f.probe(QEMU_CLOCK_REALTIME, 2);
        a.handle().delete();
        assert_eq!(a.handle().expire_time_ns(), u64::MAX);
        a.handle().modify_ns(10).unwrap();
        b.handle().modify_ns(20).unwrap();
        a.handle().delete();
        a.handle().delete();
        assert!(!a.handle().is_pending());
        assert_eq!(f.order(QEMU_CLOCK_REALTIME), vec![20]);
        assert!(f.list(QEMU_CLOCK_REALTIME).run_until(100));
        assert_eq!(f.take_log(), vec![2]);
        assert_eq!(a.fired.load(Ordering::SeqCst), 0);

        // An unbound timer: delete does nothing, modify reports Unbound.
        let mut raw = unbound_timer();
        // SAFETY: `raw` outlives the handle.
        let t = unsafe { Timer::from_raw(&mut raw) }.unwrap();
        t.delete();
        assert_eq!(t.modify_ns(5), Err(Unbound));
        assert_eq!(t.anticipate_ns(5), Err(Unbound));
        assert!(!t.is_bound());
        // SAFETY: NULL is allowed.
        assert!(unsafe { Timer::from_raw(ptr::null_mut()) }.is_none());
    }

    #[test]
    fn timer_deleted_by_an_earlier_callback_does_not_fire() {
        let f = Fixture::new();
        let a = f.probe(QEMU_CLOCK_REALTIME, 1);
        let b = f.probe(QEMU_CLOCK_REALTIME, 2);
        a.others.lock().unwrap().push(b.handle());
        a.set_then(Then::Delete(0));
        a.handle().modify_ns(10).unwrap();
        b.handle().modify_ns(10).unwrap();
        assert!(f.list(QEMU_CLOCK_REALTIME).run_until(10));
        assert_eq!(f.take_log(), vec![1]);
        assert!(!b.handle().is_pending());
        assert!(!f.group.has_pending_timers());
    }

    #[test]
    fn rearming_at_or_before_the_reading_fires_again_in_the_same_run() {
        let f = Fixture::new();
        let a = f.probe(QEMU_CLOCK_REALTIME, 1);
        let b = f.probe(QEMU_CLOCK_REALTIME, 2);
        // a re-arms itself at 50 (= the reading) twice, then at 51.
        a.set_then(Then::Rearm {
            at: 50,
            times: 2,
            finally: Some(51),
        });
        a.handle().modify_ns(10).unwrap();
        b.handle().modify_ns(50).unwrap();
        assert!(f.list(QEMU_CLOCK_REALTIME).run_until(50));
        // a(10), b(50), then a re-armed at 50 goes after b: a, a.
        assert_eq!(f.take_log(), vec![1, 2, 1, 1]);
        assert_eq!(a.fired.load(Ordering::SeqCst), 3);
        assert_eq!(a.handle().expire_time_ns(), 51);
        assert!(!f.list(QEMU_CLOCK_REALTIME).run_until(50));
        assert!(f.list(QEMU_CLOCK_REALTIME).run_until(51));
        assert_eq!(f.take_log(), vec![1]);
        assert!(!a.handle().is_pending());
    }

    #[test]
    fn disabled_virtual_clock_has_no_deadline_and_does_not_run() {
        let f = Fixture::new();
        // VIRTUAL starts disabled, and no test enables it.
        assert!(!clock_is_enabled(QEMU_CLOCK_VIRTUAL));
        let v = f.probe(QEMU_CLOCK_VIRTUAL, 1);
        v.handle().modify_ns(0).unwrap();
        assert_eq!(f.notified(), 1);
        assert!(f.group.has_pending_timers());
        assert_eq!(f.list(QEMU_CLOCK_VIRTUAL).deadline_ns(), -1);
        assert_eq!(f.group.deadline_ns(), -1);
        assert!(!f.group.run_timers());
        assert!(!f.list(QEMU_CLOCK_VIRTUAL).run_until(i64::MAX));
        assert_eq!(f.take_log(), Vec::<u32>::new());
        assert!(v.handle().is_pending());

        // A REALTIME timer due now gives deadline 0 and runs.
        let r = f.probe(QEMU_CLOCK_REALTIME, 2);
        r.handle().modify_ns(0).unwrap();
        assert_eq!(f.group.deadline_ns(), 0);
        assert!(f.group.run_timers());
        assert_eq!(f.take_log(), vec![2]);
        assert_eq!(f.group.deadline_ns(), -1);
        v.handle().delete();
        assert!(!f.group.has_pending_timers());
    }

    #[test]
    fn deadline_is_time_left_and_never_negative() {
        assert_eq!(delta_ns(100, 40), 60);
        assert_eq!(delta_ns(100, 100), 0);
        assert_eq!(delta_ns(100, 250), 0);
        assert_eq!(delta_ns(i64::MAX, -5), i64::MAX);
        assert_eq!(delta_ns(0, i64::MAX), 0);

        let f = Fixture::new();
        let a = f.probe(QEMU_CLOCK_REALTIME, 1);
        let b = f.probe(QEMU_CLOCK_HOST, 2);
        let start = clock_get_ns(QEMU_CLOCK_REALTIME);
        a.handle().modify_ns(start + 3_600 * 1_000_000_000).unwrap();
        let d = f.group.deadline_ns();
        assert!(
            d > 3_599 * 1_000_000_000 && d <= 3_600 * 1_000_000_000,
            "deadline {d}"
        );
        assert_eq!(
            f.list(QEMU_CLOCK_REALTIME).head_expire(),
            Some(start + 3_600 * 1_000_000_000)
        );
        // The soonest list wins.
        b.handle()
            .modify_ns(clock_get_ns(QEMU_CLOCK_HOST) - 1)
            .unwrap();
        assert_eq!(f.group.deadline_ns(), 0);
        a.handle().delete();
        b.handle().delete();
        assert_eq!(f.group.deadline_ns(), -1);
    }

    #[test]
    fn soonest_timeout_treats_negative_as_infinite() {
        assert_eq!(soonest_timeout(-1, 5), 5);
        assert_eq!(soonest_timeout(5, -1), 5);
        assert_eq!(soonest_timeout(-1, -1), -1);
        assert_eq!(soonest_timeout(3, 7), 3);
        assert_eq!(soonest_timeout(7, 3), 3);
        assert_eq!(soonest_timeout(0, -1), 0);
        assert_eq!(soonest_timeout(i64::MAX, -1), i64::MAX);
    }

    #[test]
    fn timeout_ns_to_ms_rounds_up_and_caps() {
        assert_eq!(timeout_ns_to_ms(-1), -1);
        assert_eq!(timeout_ns_to_ms(i64::MIN), -1);
        assert_eq!(timeout_ns_to_ms(0), 0);
        assert_eq!(timeout_ns_to_ms(1), 1);
        assert_eq!(timeout_ns_to_ms(999_999), 1);
        assert_eq!(timeout_ns_to_ms(1_000_000), 1);
        assert_eq!(timeout_ns_to_ms(1_000_001), 2);
        assert_eq!(timeout_ns_to_ms(750_000_000), 750);
        assert_eq!(timeout_ns_to_ms(i64::from(i32::MAX) * 1_000_000), i32::MAX);
        assert_eq!(
            timeout_ns_to_ms(i64::from(i32::MAX) * 1_000_000 + 1),
            i32::MAX
        );
        assert_eq!(timeout_ns_to_ms(i64::MAX), i32::MAX);
    }

    #[test]
    fn scale_multiplies_and_saturates() {
        let f = Fixture::new();
        let log = f.log.clone();
        let ms = Probe::new(&f.group, QEMU_CLOCK_REALTIME, SCALE_MS as c_int, 1, &log);
        let us = Probe::new(&f.group, QEMU_CLOCK_REALTIME, SCALE_US as c_int, 2, &log);
        // Idle: -1 reads as expired at any time.
        assert!(ms.handle().has_expired(0));
        ms.handle().modify(3).unwrap();
        assert_eq!(ms.handle().expire_time_ns(), 3_000_000);
        assert!(!ms.handle().has_expired(2));
        assert!(ms.handle().has_expired(3));
        ms.handle().anticipate(2).unwrap();
        assert_eq!(ms.handle().expire_time_ns(), 2_000_000);
        ms.handle().anticipate(5).unwrap();
        assert_eq!(ms.handle().expire_time_ns(), 2_000_000);
        us.handle().modify(7).unwrap();
        assert_eq!(us.handle().expire_time_ns(), 7_000);
        assert!(!us.handle().has_expired(6));
        assert!(us.handle().has_expired(7));
        ms.handle().modify(i64::MAX).unwrap();
        assert_eq!(ms.handle().expire_time_ns(), i64::MAX as u64);
        ms.handle().modify(i64::MIN).unwrap();
        assert_eq!(ms.handle().expire_time_ns(), 0);
        assert!(f.list(QEMU_CLOCK_REALTIME).run_until(7_000));
        assert_eq!(f.take_log(), vec![1, 2]);
        assert_eq!(ms.handle().expire_time_ns(), u64::MAX);
        assert!(!ms.handle().is_pending());
    }

    #[test]
    fn c_group_view_holds_the_lists() {
        let f = Fixture::new();
        let view = f.group.as_c_group();
        for clock in 0..QEMU_CLOCK_MAX {
            // SAFETY: the view is valid while the group lives.
            let tl = unsafe { (*view).tl[clock] };
            assert_eq!(tl, f.group.inner().lists[clock].as_c());
        }
        let a = f.probe(QEMU_CLOCK_HOST, 1);
        // SAFETY: valid timer.
        let bound = unsafe { (*a.timer.get()).timer_list };
        // SAFETY: as above.
        assert_eq!(bound, unsafe { (*view).tl[QEMU_CLOCK_HOST as usize] });
        assert_eq!(a.handle().expire_time_ns(), u64::MAX);
    }

    #[test]
    fn deinit_refuses_a_pending_timer() {
        let f = Fixture::new();
        let a = f.probe(QEMU_CLOCK_REALTIME, 1);
        a.handle().modify_ns(5).unwrap();
        assert_eq!(a.handle().deinit(), Err(StillPending));
        assert!(a.handle().is_bound());
        a.handle().delete();
        assert_eq!(a.handle().deinit(), Ok(()));
        assert!(!a.handle().is_bound());
        a.handle().delete();
    }

    #[test]
    fn dropping_a_group_unbinds_leftover_timers() {
        let f = Fixture::new();
        let a = f.probe(QEMU_CLOCK_REALTIME, 1);
        let v = f.probe(QEMU_CLOCK_VIRTUAL, 2);
        a.handle().modify_ns(5).unwrap();
        v.handle().modify_ns(5).unwrap();
        drop(f);
        assert!(!a.handle().is_pending());
        assert!(!a.handle().is_bound());
        assert!(!v.handle().is_bound());
        a.handle().delete();
    }

    #[test]
    fn clocks_read_the_expected_host_clocks() {
        let m1 = clock_get_ns(QEMU_CLOCK_REALTIME);
        let m2 = clock_get_ns(QEMU_CLOCK_VIRTUAL_RT);
        let m3 = clock_get_ns(QEMU_CLOCK_VIRTUAL);
        assert!(m1 <= m2 && m2 <= m3);
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let host = clock_get_ns(QEMU_CLOCK_HOST);
        assert!((host - wall.as_nanos() as i64).abs() < 5_000_000_000);
    }

    #[test]
    fn enabling_a_clock_notifies_and_disabling_stops_firing() {
        let f = Fixture::new();
        let a = f.probe(QEMU_CLOCK_VIRTUAL_RT, 1);
        let b = f.probe(QEMU_CLOCK_VIRTUAL_RT, 2);
        a.handle().modify_ns(0).unwrap();
        b.handle().modify_ns(0).unwrap();
        assert_eq!(f.notified(), 1);

        // Enabling an enabled clock does nothing.
        clock_enable(QEMU_CLOCK_VIRTUAL_RT, true);
        assert_eq!(f.notified(), 1);

        // a's callback disables the clock: b is not fired in the same run.
        a.set_then(Then::DisableClock(QEMU_CLOCK_VIRTUAL_RT));
        assert!(f.group.run_timers());
        assert_eq!(f.take_log(), vec![1]);
        assert!(!clock_is_enabled(QEMU_CLOCK_VIRTUAL_RT));
        assert!(b.handle().is_pending());
        assert_eq!(f.group.deadline_ns(), -1);
        assert!(!f.group.run_timers());

        clock_enable(QEMU_CLOCK_VIRTUAL_RT, true);
        assert_eq!(f.notified(), 2);
        assert_eq!(f.group.deadline_ns(), 0);
        assert!(f.group.run_timers());
        assert_eq!(f.take_log(), vec![2]);
    }

    #[test]
    fn disabling_a_clock_waits_for_callbacks_in_other_threads() {
        static STARTED: AtomicBool = AtomicBool::new(false);
        static FINISHED: AtomicBool = AtomicBool::new(false);
        unsafe extern "C" fn slow_cb(_: *mut c_void) {
            STARTED.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(200));
            FINISHED.store(true, Ordering::SeqCst);
        }
        let f = Fixture::new();
        let raw = Box::new(UnsafeCell::new(unbound_timer()));
        // SAFETY: `raw` outlives the group's use of it (the thread is joined).
        unsafe {
            timer_init(
                raw.get(),
                &f.group,
                QEMU_CLOCK_VIRTUAL_RT,
                1,
                0,
                Some(slow_cb),
                ptr::null_mut(),
            )
        };
        // SAFETY: as above.
        unsafe { Timer::from_raw(raw.get()) }
            .unwrap()
            .modify_ns(0)
            .unwrap();
        std::thread::scope(|s| {
            let runner = s.spawn(|| f.group.run_timers());
            while !STARTED.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            clock_enable(QEMU_CLOCK_VIRTUAL_RT, false);
            assert!(FINISHED.load(Ordering::SeqCst));
            assert!(runner.join().unwrap());
        });
        clock_enable(QEMU_CLOCK_VIRTUAL_RT, true);
        assert!(clock_is_enabled(QEMU_CLOCK_VIRTUAL_RT));
    }

    #[test]
    fn cross_thread_modify_notifies_once_per_new_head() {
        let f = Fixture::new();
        let probes: Vec<Box<Probe>> = (0..8).map(|i| f.probe(QEMU_CLOCK_REALTIME, i)).collect();
        std::thread::scope(|s| {
            for p in &probes {
                let t = p.handle();
                s.spawn(move || {
                    for k in 0..1000 {
                        t.modify_ns(1_000_000 + k).unwrap();
                    }
                    t.delete();
                });
            }
        });
        assert!(!f.group.has_pending_timers());
        assert!(f.notified() >= 1);
        assert_eq!(f.order(QEMU_CLOCK_REALTIME), Vec::<i64>::new());
    }
}
