//! `aio_notify` and the `notify_me`/`notified` protocol that lets a context
//! skip the eventfd write when nobody sleeps. Corresponds to the notify part
//! of util/async.c (see docs/devel/... aio_notify_accept.promela upstream).

use std::sync::atomic::{Ordering, fence};

use crate::context::Context;

impl Context {
    /// Wakes the loop if it sleeps, and makes the next wait not sleep.
    /// Any thread.
    pub fn notify(&self) {
        // Release: the work item (BH link, timer, handler) is visible before
        // `notified`. The SeqCst fence pairs with the one in `begin_wait` /
        // GSource prepare: either the sleeper sees `notified`, or we see its
        // `notify_me` and write the eventfd. Never skip the write because
        // `notified` was already set: that loses wake-ups.
        self.notified.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        if self.notify_me.load(Ordering::Relaxed) != 0 {
            let _ = self.notifier.set();
        }
    }

    /// Clears `notified` after a wait. Does not drain the eventfd; the
    /// context's own fd handler does. Home thread.
    pub fn notify_accept(&self) {
        self.notified.store(false, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Announces that `aio_poll` is about to block; returns false if a
    /// notification already arrived (the wait must not sleep).
    pub(crate) fn begin_wait(&self) -> bool {
        // Only the home thread adds to notify_me in units of 2.
        let v = self.notify_me.load(Ordering::Relaxed);
        self.notify_me.store(v + 2, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        !self.notified.load(Ordering::Relaxed)
    }

    /// Ends the blocking phase announced by `begin_wait`.
    pub(crate) fn end_wait(&self) {
        let v = self.notify_me.load(Ordering::Relaxed);
        self.notify_me.store(v - 2, Ordering::Release);
    }

    /// GSource prepare: glib may sleep from now until check.
    pub(crate) fn begin_gsource_wait(&self) {
        self.notify_me.fetch_or(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// GSource check: glib's sleep is over.
    pub(crate) fn end_gsource_wait(&self) {
        self.notify_me.fetch_and(!1, Ordering::Release);
    }
}
