//! The C layout of `EventNotifier` (include/qemu/event_notifier.h); its
//! operations are in [`crate::event_notifier`].

/// A wake-up object: signalled with `event_notifier_set`, consumed with
/// `event_notifier_test_and_clear`. `rfd` is polled; `wfd` is written (the
/// same fd for an eventfd).
#[repr(C)]
pub struct EventNotifier {
    pub rfd: libc::c_int,
    pub wfd: libc::c_int,
    pub initialized: bool,
}
