//! One clock's pending timers on one list, sorted by expiry, and the
//! [`Timer`] handle through which a C `QEMUTimer` is armed and disarmed.
//! Corresponds to `QEMUTimerList`, the `timerlist_*` and the `timer_*`
//! functions of util/qemu-timer.c.

use std::ffi::{c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicI64, AtomicPtr, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::clock::{CLOCKS, ListRun, now_ns};
use super::{NotifyFn, QEMUClockType, QEMUTimer, QEMUTimerList, delta_ns, lock, registry};
use crate::abi::misuse;
use crate::hooks;

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
    /// `timer_list` is NULL or was set by [`Timer::init`] to a list (of
    /// [`TimerList::create`]) that is still alive. Only this API writes its
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
    /// live list, as required by [`Timer::from_raw`].
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

    pub(super) fn expire_time(&self) -> &AtomicI64 {
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
        // SAFETY: a non-NULL `timer_list` is a live list (from_raw).
        unsafe { TimerList::from_c(list) }
    }

    fn scale(self) -> i64 {
        // SAFETY: valid timer (from_raw); the field is only written by init.
        i64::from(unsafe { (*self.0.as_ptr()).scale })
    }

    /// The timer after this one in its list. `_locked` is the guard of the
    /// list's lock, which protects the `next` links.
    pub(super) fn next(self, _locked: &MutexGuard<'_, ()>) -> Option<Timer> {
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

/// The pending timers of one clock on one list, linked through
/// `QEMUTimer::next` in expiry order (FIFO among equal expiries). Lives on
/// the heap from [`TimerList::create`] to [`TimerList::free`], registered
/// with its clock all that time.
pub struct TimerList {
    clock: usize,
    /// First timer, NULL when empty. Written only with `lock` held; read
    /// without it only to skip empty lists (run and deadline run on every
    /// aio_poll iteration). A stale "empty" is harmless: whoever makes the
    /// list non-empty makes its timer the head, and so notifies the owner.
    head: AtomicPtr<QEMUTimer>,
    /// Guards `head` and the `next` links of the linked timers.
    lock: Mutex<()>,
    /// Called with `notify_opaque` and the clock; NULL means the program's
    /// `qemu_notify_event`.
    notify: Option<NotifyFn>,
    notify_opaque: *mut c_void,
}

// SAFETY: the raw pointers are the linked timers, which are only touched with
// `lock` held, and the owner's notify argument, which TimerList::create
// requires to be usable from any thread.
unsafe impl Send for TimerList {}
// SAFETY: as for Send; everything else is atomics and a mutex.
unsafe impl Sync for TimerList {}

impl TimerList {
    /// Creates an empty list of clock `clock` (an index already checked) and
    /// registers it with the clock. `notify(opaque, type)` is called, from
    /// any thread, when a timer becomes the list's head, when the clock is
    /// enabled and on `qemu_clock_notify`; it must accept `opaque` from any
    /// thread until the list is freed, and must not create or free a list.
    /// With no `notify`, the program's `qemu_notify_event` is called instead
    /// (if it has one).
    pub fn create(
        clock: usize,
        notify: Option<NotifyFn>,
        opaque: *mut c_void,
    ) -> NonNull<TimerList> {
        let list = NonNull::from(Box::leak(Box::new(TimerList {
            clock,
            head: AtomicPtr::new(ptr::null_mut()),
            lock: Mutex::new(()),
            notify,
            notify_opaque: opaque,
        })));
        registry::register(clock, list);
        list
    }

    /// Unregisters and frees a list. Timers still pending (the owner should
    /// have checked [`TimerList::has_timers`]) are disarmed and unbound, so a
    /// later `timer_del` on them is harmless.
    ///
    /// # Safety
    /// `list` came from [`TimerList::create`] and is freed once; nothing uses
    /// it afterwards (timers bound to it must be re-initialised before use).
    pub unsafe fn free(list: NonNull<TimerList>) {
        // SAFETY: alive until the Box is dropped below (contract).
        let clock = unsafe { list.as_ref() }.clock;
        // First: until it leaves the registry, a clock-wide operation in
        // another thread may still notify it.
        registry::unregister(clock, list);
        // SAFETY: as above.
        unsafe { list.as_ref() }.detach_all();
        // SAFETY: allocated by Box in create; unregistered, so this was the
        // last user.
        drop(unsafe { Box::from_raw(list.as_ptr()) });
    }

    /// The list behind a C handle; `None` for NULL.
    ///
    /// # Safety
    /// A non-NULL `list` must be a live list (from [`TimerList::create`],
    /// not freed) for the returned lifetime.
    pub unsafe fn from_c<'a>(list: *mut QEMUTimerList) -> Option<&'a TimerList> {
        // SAFETY: QEMUTimerList is the C name of TimerList (contract).
        NonNull::new(list).map(|l| unsafe { l.cast::<TimerList>().as_ref() })
    }

    /// The C handle of this list.
    pub fn as_c(&self) -> *mut QEMUTimerList {
        ptr::from_ref(self).cast_mut().cast()
    }

    /// Index of the list's clock.
    pub fn clock(&self) -> usize {
        self.clock
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, ()> {
        lock(&self.lock)
    }

    /// `timerlist_notify`: the list's callback, or else the program's
    /// `qemu_notify_event`, or else nothing.
    pub fn notify(&self) {
        match self.notify {
            // SAFETY: TimerList::create's contract: `notify` accepts its
            // opaque from any thread while the list lives.
            Some(notify) => unsafe { notify(self.notify_opaque, self.clock as QEMUClockType) },
            None => {
                if let Some(wake) = hooks::qemu_notify_event() {
                    // SAFETY: the program's main-loop wake-up, callable from
                    // any thread.
                    unsafe { wake() }
                }
            }
        }
    }

    /// True if a timer is pending on the list (enabled clock or not).
    #[inline]
    pub fn has_timers(&self) -> bool {
        !self.head.load(Ordering::Acquire).is_null()
    }

    /// The first linked timer, if any. Every linked timer is alive: C must
    /// not free or move a pending timer.
    pub(super) fn first(&self, _guard: &MutexGuard<'_, ()>) -> Option<Timer> {
        NonNull::new(self.head.load(Ordering::Relaxed)).map(Timer)
    }

    /// Publishes a new first timer (the lock is held by the caller).
    pub(super) fn set_head(&self, head: Option<Timer>) {
        self.head.store(
            head.map_or(ptr::null_mut(), Timer::as_ptr),
            Ordering::Release,
        );
    }

    /// Removes `timer` from the list if it is linked, and marks it idle.
    pub(super) fn unlink(&self, guard: &MutexGuard<'_, ()>, timer: Timer) {
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
    pub(super) fn insert(&self, guard: &MutexGuard<'_, ()>, timer: Timer, expire_ns: i64) -> bool {
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
    pub(super) fn head_expire(&self) -> Option<i64> {
        if !self.has_timers() {
            return None;
        }
        let guard = self.lock();
        self.first(&guard)
            .map(|t| t.expire_time().load(Ordering::Relaxed))
    }

    /// Expiry of the first timer none of whose attribute bits is outside
    /// `attr_mask`, if any.
    pub(super) fn first_expire_within(&self, attr_mask: c_int) -> Option<i64> {
        if !self.has_timers() {
            return None;
        }
        let guard = self.lock();
        let mut cur = self.first(&guard);
        while let Some(t) = cur {
            // SAFETY: a linked timer is alive; `attributes` is only written
            // by init, which C may not run on a linked timer.
            if unsafe { (*t.as_ptr()).attributes } & !attr_mask == 0 {
                return Some(t.expire_time().load(Ordering::Relaxed));
            }
            cur = t.next(&guard);
        }
        None
    }

    /// True if the first timer is due now (whether or not the clock is
    /// enabled); false for an empty list.
    pub fn expired(&self) -> bool {
        self.head_expire()
            .is_some_and(|expire| expire <= now_ns(self.clock))
    }

    /// Nanoseconds until the first timer is due (0 if it is), or -1 if the
    /// list is empty or its clock disabled.
    pub fn deadline_ns(&self) -> i64 {
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

    /// Fires the timers due now, if the clock is enabled; true if any
    /// callback ran. Reads the clock once.
    pub fn run(&self) -> bool {
        if !self.has_timers() || !CLOCKS[self.clock].enabled.load(Ordering::Relaxed) {
            return false;
        }
        self.run_until(now_ns(self.clock))
    }

    /// Fires, in order, every timer due at or before `now`, including those
    /// that callbacks arm for a time at or before `now` (so a callback that
    /// always re-arms itself in the past loops forever, as in QEMU).
    pub(super) fn run_until(&self, now: i64) -> bool {
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
    pub(super) fn detach_all(&self) {
        let guard = self.lock();
        while let Some(timer) = self.first(&guard) {
            self.unlink(&guard, timer);
            // SAFETY: the timer was linked, so alive; its list is going away
            // and nothing else may use the timer now.
            unsafe { (*timer.as_ptr()).timer_list = ptr::null_mut() };
        }
    }
}
