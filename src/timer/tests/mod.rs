//! Unit tests of the timer lists, groups, the registry of lists and the
//! clocks (util/qemu-timer.c semantics): ordering, re-arming from callbacks,
//! deadlines, attribute masks, notify callbacks, scale and clock enabling
//! across threads.

use std::cell::UnsafeCell;
use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::list::TimerList;
use super::*;

/// Counts notifications: the group's opaque is an `AtomicUsize`.
unsafe extern "C" fn count_notify(opaque: *mut c_void, _ty: QEMUClockType) {
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
            group: TimerListGroup::new(Some(count_notify), opaque),
            notified,
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn probe(&self, ty: QEMUClockType, id: u32) -> Box<Probe> {
        Probe::new(&self.group, ty, SCALE_NS as c_int, id, &self.log)
    }

    fn list(&self, ty: QEMUClockType) -> &TimerList {
        self.group.list(ty as usize)
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
        assert_eq!(tl, f.group.list(clock).as_c());
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

mod lists;
