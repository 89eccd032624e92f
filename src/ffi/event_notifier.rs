//! C API of `qemu/event_notifier.h`.

use libc::c_int;

use super::guard;
use crate::abi::EventNotifier;

/// Initialises `e` with a fresh eventfd (a non-blocking pipe where eventfd is
/// unavailable); if `active` is non-zero the notifier starts signalled.
/// Returns 0, or -errno on failure.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_notifier_init(e: *mut EventNotifier, active: c_int) -> c_int {
    guard("event_notifier_init", || {
        // SAFETY: the caller passes a valid, writable EventNotifier.
        let e = unsafe { &mut *e };
        match e.init(active != 0) {
            Ok(()) => 0,
            Err(err) => -err.raw_os_error().unwrap_or(libc::EIO),
        }
    })
}

/// Makes `e` use the existing eventfd `fd` for reading and writing. The
/// notifier takes ownership: `event_notifier_cleanup` closes it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_notifier_init_fd(e: *mut EventNotifier, fd: c_int) {
    guard("event_notifier_init_fd", || {
        // SAFETY: the caller passes a valid, writable EventNotifier.
        unsafe { &mut *e }.init_fd(fd)
    })
}

/// Closes the notifier's file descriptors. Does nothing if `e` was never
/// initialised or was already cleaned up.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_notifier_cleanup(e: *mut EventNotifier) {
    guard("event_notifier_cleanup", || {
        // SAFETY: the caller passes a valid, writable EventNotifier.
        unsafe { &mut *e }.cleanup()
    })
}

/// Signals `e`. Thread-safe. Returns 0, -1 if `e` is not initialised, or
/// -errno if the write failed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_notifier_set(e: *mut EventNotifier) -> c_int {
    guard("event_notifier_set", || {
        // SAFETY: the caller passes a valid EventNotifier.
        let e = unsafe { &*e };
        if !e.initialized {
            return -1;
        }
        match e.set() {
            Ok(()) => 0,
            Err(err) => -err.raw_os_error().unwrap_or(libc::EIO),
        }
    })
}

/// Consumes the signal of `e`. Returns 1 if it was signalled, 0 otherwise
/// (also when `e` is not initialised).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_notifier_test_and_clear(e: *mut EventNotifier) -> c_int {
    guard("event_notifier_test_and_clear", || {
        // SAFETY: the caller passes a valid EventNotifier.
        unsafe { &*e }.test_and_clear() as c_int
    })
}

/// The file descriptor to poll for readability.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_notifier_get_fd(e: *const EventNotifier) -> c_int {
    // SAFETY: the caller passes a valid EventNotifier.
    guard("event_notifier_get_fd", || unsafe { (*e).rfd })
}

/// The file descriptor that `event_notifier_set` writes to.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_notifier_get_wfd(e: *const EventNotifier) -> c_int {
    // SAFETY: the caller passes a valid EventNotifier.
    guard("event_notifier_get_wfd", || unsafe { (*e).wfd })
}
