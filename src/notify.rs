//! `aio_notify` and the `notify_me`/`notified` protocol that lets a context
//! skip the eventfd write when nobody sleeps. Corresponds to the notify part
//! of util/async.c (see docs/devel/... aio_notify_accept.promela upstream).
//!
//! The protocol lives in [`NotifyState`], which the context embeds; the
//! context adds the eventfd. The loom models run `NotifyState` as it is.

use crate::context::Context;
use crate::sync::{AtomicBool, AtomicU32, Ordering, fence};

/// The two words of the wake-up protocol. The eventfd is the owner's.
pub struct NotifyState {
    /// Bit 0: glib is between prepare and check. Bits 1..: 2 per `aio_poll`
    /// in its blocking phase.
    notify_me: AtomicU32,
    notified: AtomicBool,
}

impl NotifyState {
    pub fn new() -> Self {
        NotifyState {
            notify_me: AtomicU32::new(0),
            notified: AtomicBool::new(false),
        }
    }

    /// The producer side of `aio_notify`: returns true if the owner must
    /// write its eventfd (someone may sleep). Any thread.
    #[inline]
    pub fn notify(&self) -> bool {
        // Release: the work item (BH link, timer, handler) is visible before
        // `notified`. The SeqCst fence pairs with the one in `begin_wait` /
        // `begin_gsource_wait`: either the sleeper sees `notified`, or we see
        // its `notify_me` and write the eventfd. Never skip the write because
        // `notified` was already set: that loses wake-ups.
        self.notified.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        self.notify_me.load(Ordering::Relaxed) != 0
    }

    /// Clears `notified` after a wait. Home thread.
    #[inline]
    pub fn accept(&self) {
        self.notified.store(false, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Has a notification arrived since the last [`accept`](Self::accept)?
    /// (The context notifier's `io_poll`.)
    #[inline]
    pub fn notified(&self) -> bool {
        self.notified.load(Ordering::Relaxed)
    }

    /// Announces that `aio_poll` is about to block; returns false if a
    /// notification already arrived (the wait must not sleep).
    #[inline]
    pub fn begin_wait(&self) -> bool {
        // Only the home thread adds to notify_me in units of 2.
        let v = self.notify_me.load(Ordering::Relaxed);
        self.notify_me.store(v + 2, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        !self.notified.load(Ordering::Relaxed)
    }

    /// Ends the blocking phase announced by `begin_wait`.
    #[inline]
    pub fn end_wait(&self) {
        let v = self.notify_me.load(Ordering::Relaxed);
        self.notify_me.store(v - 2, Ordering::Release);
    }

    /// `aio_poll`'s blocking phase: when `timeout` is non-zero, announces the
    /// sleep (forcing the timeout to 0 if a notification already arrived),
    /// calls `wait` with the timeout, ends the announcement; then accepts the
    /// notification. Home thread.
    #[inline(always)]
    pub fn wait_phase<R>(&self, timeout: i64, wait: impl FnOnce(i64) -> R) -> R {
        let use_notify_me = timeout != 0;
        let timeout = if use_notify_me && !self.begin_wait() {
            0
        } else {
            timeout
        };
        let r = wait(timeout);
        if use_notify_me {
            self.end_wait();
        }
        self.accept();
        r
    }

    /// GSource prepare: glib may sleep from now until check.
    #[inline]
    pub fn begin_gsource_wait(&self) {
        self.notify_me.fetch_or(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// GSource check (or a prepare that found work): glib's sleep is over.
    #[inline]
    pub fn end_gsource_wait(&self) {
        self.notify_me.fetch_and(!1, Ordering::Release);
    }
}

impl Default for NotifyState {
    fn default() -> Self {
        Self::new()
    }
}

impl Context {
    /// Wakes the loop if it sleeps, and makes the next wait not sleep.
    /// Any thread.
    pub fn notify(&self) {
        if self.notify_state.notify() {
            let _ = self.notifier.set();
        }
    }

    /// Clears `notified` after a wait. Does not drain the eventfd; the
    /// context's own fd handler does. Home thread.
    pub fn notify_accept(&self) {
        self.notify_state.accept();
    }
}
