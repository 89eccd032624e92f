//! `aio_notify` and the `notify_me`/`notified` protocol that lets a context
//! skip the eventfd write when nobody sleeps. Corresponds to the notify part
//! of util/async.c (QEMU models it in docs/spin/aio_notify*.promela, sequentially
//! consistent; see [`NotifyState`] for the weak-memory case they miss).
//!
//! The protocol lives in [`NotifyState`], which the context embeds; the
//! context adds the eventfd. The loom models run `NotifyState` as it is.

use crate::context::Context;
use crate::sync::{AtomicBool, AtomicU32, Ordering, fence, fence_after_rmw};

/// The two words of the wake-up protocol. The eventfd is the owner's.
///
/// # Why `notified` is only written by RMWs
///
/// QEMU (util/async.c) and qaio before this change wrote it with plain
/// stores: `aio_notify` is `work; notified = true (release); fence(SeqCst);
/// load notify_me`, `aio_notify_accept` is `notified = false; fence(SeqCst)`.
/// `aio_poll` computes its timeout (reads the BH list) *before* its
/// `notify_me += 2; fence(SeqCst); load notified`, so it relies on
/// `notified` to catch work it did not see. Under the C++20 model (Rust's)
/// that allows a lost wake-up, with one producer P and the home thread H:
///
/// ```text
/// P: W  work (BH push)               H: ...wait #1, woken...
///    Np notified = true  (release)      A  notified = false       (accept)
///    Fp fence(SeqCst)                   Fa fence(SeqCst)
///    Lp notify_me -> 0   (no kick)      Rw BH list -> empty         (bh poll,
///                                                     next timeout = -1)
///                                       Wm notify_me = 2
///                                       Fb fence(SeqCst)
///                                       Rn notified -> false   => sleeps
/// ```
///
/// with the SC order `Fa < Fp < Fb` and the modification order of
/// `notified` `Np < A`. Every constraint of [atomics.order]/4 holds:
/// `Rw` coherence-before `W` only forces `Fa < Fp`; `Lp` reading the 0 of
/// `end_wait` (not `Wm`) only forces `Fp < Fb`; `Fp < Fb` forces `Rn` to read
/// `Np` or later in modification order, and `A` *is* later. Nothing orders
/// `Np` before `A` the other way: rule 4.4 needs an SC fence *before* `Np`
/// in P (P has one only after it), and `A` never reads `Np`, so no
/// synchronisation either. This is the "R" shape (release on one side, full
/// fence on the other), which C++20 and POWER (R+lwsync+sync) allow, x86-TSO
/// and ARMv8 forbid. QEMU's promela models are sequentially consistent and
/// cannot see it.
///
/// With `notify` a release swap and `accept` an acquire swap, `A` reads
/// the value just before it in modification order; if `Np` precedes `A`,
/// that value lies in `Np`'s release sequence (all modifications are RMWs),
/// so `Np` synchronises with `A` and `Rw` sees `W`. If `A` precedes `Np`,
/// `Rn` reads `Np` (or a later clear that synchronised with P) whenever
/// `Fp < Fb`, and `Lp` reads `Wm` whenever `Fb < Fp`. A swap only in
/// `accept` is not enough: with two producers `Np1 < Np2 < A`, `A` reads
/// `Np2` and a plain `Np1` heads no release sequence reaching `A`.
/// `loom_notify_accept_litmus` and `loom_notify_accept_two_producers` check
/// both (loom does model release sequences and SC fences).
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
    ///
    /// Two pairings, see the [`NotifyState`] section "Why `notified` is only
    /// written by RMWs":
    ///
    /// - The SeqCst fence pairs with the one in `begin_wait` /
    ///   `begin_gsource_wait` (store-buffering / Dekker on `notified` and
    ///   `notify_me`): either the sleeper's load after its fence sees our
    ///   `notified` (or the loop's RMW that consumed it, which synchronised
    ///   with us), or our `notify_me` load sees its announcement and we write
    ///   the eventfd. The GSource path reads the work itself after its fence,
    ///   which this fence (after the work item) also covers.
    /// - The swap is a release RMW: with [`accept`](Self::accept) also an RMW,
    ///   every modification of `notified` is an RMW, so any `accept` that
    ///   comes after ours in `notified`'s modification order reads from our
    ///   release sequence and synchronises with us: the loop that clears our
    ///   `true` sees the work item (BH link, timer, handler) published before
    ///   it. A plain store here would let a clear overwrite it unseen.
    ///
    /// Never skip the write because `notified` was already set: that loses
    /// wake-ups (QEMU's docs/spin/aio_notify_bug.promela, BUG2).
    #[inline]
    pub fn notify(&self) -> bool {
        self.notified.swap(true, Ordering::Release);
        fence_after_rmw();
        self.notify_me.load(Ordering::Relaxed) != 0
    }

    /// Clears `notified` after a wait. Home thread.
    ///
    /// An acquire RMW: it reads the latest `notified` in modification order,
    /// so if it clears some producer's `true` it synchronises with that
    /// producer (release sequence, see [`notify`](Self::notify)) and the
    /// reads of BHs, timers and handlers that follow see its work. No fence
    /// after it: a producer whose `true` comes after this clear in `notified`'s
    /// modification order is caught by the next `begin_wait`/`check` Dekker
    /// pair instead (its fence reads that `true`, or the producer reads
    /// `notify_me`), and the GSource path reads the work after its own fence.
    ///
    /// With nothing to clear (the load reads `false`) there is no swap: a
    /// producer's `true` that the load missed stays in place, where the next
    /// `begin_wait` (or GSource check) reads it through the same Dekker pair,
    /// so the loop does not sleep on it; skipping a clear never hides a
    /// notification, it only leaves one for later. Most iterations are woken
    /// by an fd, not by `aio_notify`, and pay no locked instruction here.
    #[inline]
    pub fn accept(&self) {
        if self.notified.load(Ordering::Relaxed) {
            self.notified.swap(false, Ordering::Acquire);
        }
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
        fence_after_rmw();
    }

    /// GSource check (or a prepare that found work): glib's sleep is over.
    /// `home`: the caller is the context's home thread, the only writer of
    /// the other bits then (`begin_wait`/`end_wait` run on it, or on the BQL
    /// holder while the home thread waits for the BQL), so a plain store
    /// clears the bit; elsewhere an RMW.
    #[inline]
    pub fn end_gsource_wait(&self, home: bool) {
        if home {
            let v = self.notify_me.load(Ordering::Relaxed);
            self.notify_me.store(v & !1, Ordering::Release);
        } else {
            self.notify_me.fetch_and(!1, Ordering::Release);
        }
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
