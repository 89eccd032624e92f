//! Tests of standalone timer lists, their registry per clock, C groups, the
//! main loop's lists and `qemu_poll_ns` (the second half of the timer tests,
//! split for length).

use super::*;

/// What a standalone list's notify callback saw: calls and clock types.
#[derive(Default)]
struct NotifyLog {
    calls: Mutex<Vec<QEMUClockType>>,
}

unsafe extern "C" fn log_notify(opaque: *mut c_void, ty: QEMUClockType) {
    // SAFETY: the tests pass a NotifyLog that outlives the list.
    unsafe { &*opaque.cast::<NotifyLog>() }
        .calls
        .lock()
        .unwrap()
        .push(ty);
}

/// A standalone list of `ty` logging its notifications to `log`.
fn standalone(ty: QEMUClockType, log: &NotifyLog) -> std::ptr::NonNull<TimerList> {
    let opaque = ptr::from_ref(log).cast_mut().cast();
    TimerList::create(ty as usize, Some(log_notify), opaque)
}

/// A raw timer bound to `list`, boxed so that its address is stable.
fn raw_timer(list: &TimerList, attributes: c_int) -> Box<UnsafeCell<QEMUTimer>> {
    unsafe extern "C" fn nop(_: *mut c_void) {}
    let t = Box::new(UnsafeCell::new(unbound_timer()));
    // SAFETY: the box outlives the timer's use; the list is live.
    unsafe {
        Timer::from_raw(t.get()).unwrap().init(
            list.as_c(),
            1,
            attributes,
            Some(nop),
            ptr::null_mut(),
        )
    };
    t
}

fn handle(t: &UnsafeCell<QEMUTimer>) -> Timer {
    // SAFETY: the tests keep the box alive while using the handle.
    unsafe { Timer::from_raw(t.get()) }.unwrap()
}

#[test]
fn standalone_list_notifies_with_its_clock_and_registers_until_freed() {
    let _serial = lock(&SERIAL);
    let log = NotifyLog::default();
    let before = registry::count(QEMU_CLOCK_HOST as usize);
    let raw = standalone(QEMU_CLOCK_HOST, &log);
    assert_eq!(registry::count(QEMU_CLOCK_HOST as usize), before + 1);
    // SAFETY: live until freed below.
    let list = unsafe { raw.as_ref() };
    assert_eq!(list.clock(), QEMU_CLOCK_HOST as usize);
    assert!(!list.has_timers());
    assert!(!list.expired());
    assert_eq!(list.deadline_ns(), -1);

    let a = raw_timer(list, 0);
    let b = raw_timer(list, 0);
    handle(&a).modify_ns(0).unwrap();
    // b goes after a: not a new head, no notification.
    handle(&b).modify_ns(1).unwrap();
    assert_eq!(*log.calls.lock().unwrap(), vec![QEMU_CLOCK_HOST]);
    assert!(list.has_timers());
    assert!(list.expired());
    assert_eq!(list.deadline_ns(), 0);

    list.notify();
    clock_notify(QEMU_CLOCK_HOST);
    assert_eq!(*log.calls.lock().unwrap(), vec![QEMU_CLOCK_HOST; 3]);
    // Another clock's notification does not reach it.
    clock_notify(QEMU_CLOCK_REALTIME);
    assert_eq!(log.calls.lock().unwrap().len(), 3);

    assert!(list.run());
    assert!(!list.has_timers());
    assert!(!handle(&a).is_pending() && !handle(&b).is_pending());
    // SAFETY: created above, freed once.
    unsafe { TimerList::free(raw) };
    assert_eq!(registry::count(QEMU_CLOCK_HOST as usize), before);
    clock_notify(QEMU_CLOCK_HOST);
    assert_eq!(log.calls.lock().unwrap().len(), 3);
}

#[test]
fn list_without_callback_and_without_hook_notifies_nobody() {
    let _serial = lock(&SERIAL);
    let raw = TimerList::create(QEMU_CLOCK_REALTIME as usize, None, ptr::null_mut());
    // SAFETY: live until freed below.
    let list = unsafe { raw.as_ref() };
    let a = raw_timer(list, 0);
    // The test binary defines no qemu_notify_event: nothing to call.
    handle(&a).modify_ns(0).unwrap();
    list.notify();
    assert!(list.run());
    // SAFETY: created above, freed once.
    unsafe { TimerList::free(raw) };
}

#[test]
fn deadline_ns_all_spans_lists_and_skips_masked_attributes() {
    let _serial = lock(&SERIAL);
    let log = NotifyLog::default();
    let (ra, rb) = (
        standalone(QEMU_CLOCK_HOST, &log),
        standalone(QEMU_CLOCK_HOST, &log),
    );
    // SAFETY: live until freed below.
    let (la, lb) = unsafe { (ra.as_ref(), rb.as_ref()) };
    const EXTERNAL: c_int = 1;
    let far = i64::MAX / 2;
    // List a: an EXTERNAL timer already due, then a plain one far away.
    let ext = raw_timer(la, EXTERNAL);
    let plain = raw_timer(la, 0);
    handle(&ext).modify_ns(0).unwrap();
    handle(&plain).modify_ns(far).unwrap();
    assert_eq!(clock_deadline_ns_all(QEMU_CLOCK_HOST, -1), 0);
    assert_eq!(clock_deadline_ns_all(QEMU_CLOCK_HOST, EXTERNAL), 0);
    let d = clock_deadline_ns_all(QEMU_CLOCK_HOST, 0);
    assert!(
        d > far - clock_get_ns(QEMU_CLOCK_HOST) - 1 && d <= far,
        "{d}"
    );
    // List b: a plain timer sooner than a's plain one wins under mask 0.
    let soon = raw_timer(lb, 0);
    handle(&soon).modify_ns(0).unwrap();
    assert_eq!(clock_deadline_ns_all(QEMU_CLOCK_HOST, 0), 0);
    handle(&soon).delete();
    handle(&plain).delete();
    // Only the EXTERNAL timer is left: nothing qualifies under mask 0.
    assert_eq!(clock_deadline_ns_all(QEMU_CLOCK_HOST, 0), -1);
    assert_eq!(clock_deadline_ns_all(QEMU_CLOCK_HOST, -1), 0);
    handle(&ext).delete();
    assert_eq!(clock_deadline_ns_all(QEMU_CLOCK_HOST, -1), -1);
    // SAFETY: created above, freed once each.
    unsafe {
        TimerList::free(ra);
        TimerList::free(rb);
    }
}

#[test]
fn deadline_ns_all_is_minus_one_for_a_disabled_clock() {
    let _serial = lock(&SERIAL);
    let log = NotifyLog::default();
    let raw = standalone(QEMU_CLOCK_VIRTUAL_RT, &log);
    // SAFETY: live until freed below.
    let a = raw_timer(unsafe { raw.as_ref() }, 0);
    handle(&a).modify_ns(0).unwrap();
    assert_eq!(clock_deadline_ns_all(QEMU_CLOCK_VIRTUAL_RT, -1), 0);
    clock_enable(QEMU_CLOCK_VIRTUAL_RT, false);
    assert_eq!(clock_deadline_ns_all(QEMU_CLOCK_VIRTUAL_RT, -1), -1);
    clock_enable(QEMU_CLOCK_VIRTUAL_RT, true);
    // Enabling notified the list: its head notification, then this one.
    assert_eq!(*log.calls.lock().unwrap(), vec![QEMU_CLOCK_VIRTUAL_RT; 2]);
    handle(&a).delete();
    // SAFETY: created above, freed once.
    unsafe { TimerList::free(raw) };
}

#[test]
fn c_group_lists_run_and_deadline_and_use_every_clock() {
    let _serial = lock(&SERIAL);
    let log = NotifyLog::default();
    let lists = new_lists(Some(log_notify), ptr::from_ref(&log).cast_mut().cast());
    let before: Vec<usize> = (0..QEMU_CLOCK_MAX).map(registry::count).collect();
    // SAFETY: live until freed below.
    let each: Vec<&TimerList> = lists
        .iter()
        .map(|&l| unsafe { TimerList::from_c(l) }.unwrap())
        .collect();
    for (clock, list) in each.iter().enumerate() {
        assert_eq!(list.clock(), clock);
    }
    // SAFETY: the lists are live.
    assert_eq!(unsafe { deadline_lists("test", &lists) }, -1);
    let host = raw_timer(each[QEMU_CLOCK_HOST as usize], 0);
    let virt = raw_timer(each[QEMU_CLOCK_VIRTUAL as usize], 0);
    handle(&host).modify_ns(i64::MAX / 2).unwrap();
    handle(&virt).modify_ns(0).unwrap();
    assert_eq!(
        *log.calls.lock().unwrap(),
        vec![QEMU_CLOCK_HOST, QEMU_CLOCK_VIRTUAL]
    );
    // VIRTUAL starts disabled: its due timer neither counts nor fires.
    assert!(!clock_is_enabled(QEMU_CLOCK_VIRTUAL));
    // SAFETY: the lists are live.
    let d = unsafe { deadline_lists("test", &lists) };
    assert!(d > 0, "{d}");
    // SAFETY: the lists are live.
    assert!(!unsafe { run_lists("test", &lists) });
    assert!(handle(&virt).is_pending());
    handle(&host).modify_ns(0).unwrap();
    // SAFETY: the lists are live.
    assert_eq!(unsafe { deadline_lists("test", &lists) }, 0);
    // SAFETY: the lists are live.
    assert!(unsafe { run_lists("test", &lists) });
    assert!(!handle(&host).is_pending());
    handle(&virt).delete();
    for &l in &lists {
        // SAFETY: created by new_lists, freed once.
        unsafe { TimerList::free(std::ptr::NonNull::new(l.cast()).unwrap()) };
    }
    let after: Vec<usize> = (0..QEMU_CLOCK_MAX).map(registry::count).collect();
    assert_eq!(after, before.iter().map(|n| n - 1).collect::<Vec<_>>());
}

#[test]
fn main_loop_lists_are_created_once_and_run_by_clock() {
    let _serial = lock(&SERIAL);
    // The only test that initialises the main loop (a second call aborts).
    for clock in 0..QEMU_CLOCK_MAX {
        assert!(main_loop_list(clock).is_null());
    }
    let lists = init_main_loop("test", None);
    for (clock, &list) in lists.iter().enumerate() {
        assert_eq!(main_loop_list(clock), list);
        assert!(!list.is_null());
    }
    // SAFETY: the main loop's lists are never freed.
    let rt = unsafe { TimerList::from_c(lists[QEMU_CLOCK_REALTIME as usize]) }.unwrap();
    assert!(!clock_has_timers(QEMU_CLOCK_REALTIME));
    assert!(!clock_expired(QEMU_CLOCK_REALTIME));
    let a = raw_timer(rt, 0);
    handle(&a).modify_ns(0).unwrap();
    assert!(clock_has_timers(QEMU_CLOCK_REALTIME));
    assert!(clock_expired(QEMU_CLOCK_REALTIME));
    assert!(!clock_run_timers(QEMU_CLOCK_HOST));
    assert!(clock_run_timers(QEMU_CLOCK_REALTIME));
    assert!(!clock_has_timers(QEMU_CLOCK_REALTIME));
    handle(&a).modify_ns(0).unwrap();
    assert!(clock_run_all_timers());
    assert!(!clock_run_all_timers());
}

#[test]
fn use_for_deadline_without_icount_is_true_for_every_clock() {
    for ty in [
        QEMU_CLOCK_REALTIME,
        QEMU_CLOCK_VIRTUAL,
        QEMU_CLOCK_HOST,
        QEMU_CLOCK_VIRTUAL_RT,
    ] {
        assert!(clock_use_for_deadline(ty));
    }
}

#[test]
fn poll_ns_times_out_and_reports_a_ready_fd() {
    let mut fds = [0; 2];
    // SAFETY: a valid out-array of two fds.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let mut pfd = glib_sys::GPollFD {
        fd: fds[0],
        events: libc::POLLIN as u16,
        revents: 0,
    };
    // SAFETY: one valid GPollFD.
    assert_eq!(unsafe { poll_ns(&mut pfd, 1, 0) }, 0);
    // SAFETY: as above.
    assert_eq!(unsafe { poll_ns(&mut pfd, 1, 1_000_000) }, 0);
    assert_eq!(pfd.revents, 0);
    // SAFETY: writes one byte from a valid buffer to the pipe.
    assert_eq!(unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) }, 1);
    // SAFETY: as above; -1 waits forever, but the fd is ready.
    assert_eq!(unsafe { poll_ns(&mut pfd, 1, -1) }, 1);
    assert_eq!(pfd.revents, libc::POLLIN as u16);
    // SAFETY: our own fds.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}
