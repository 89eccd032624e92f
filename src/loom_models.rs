//! loom models of the cross-thread protocols, run on the production code
//! with loom's atomics and Mutex (src/sync.rs). Built only with
//! `RUSTFLAGS="--cfg loom"`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release --lib loom
//! ```
//!
//! `LOOM_MAX_PREEMPTIONS` bounds the search (default here: 3).
//!
//! What is real and what stands in: [`NotifyState`] (notify, accept, the
//! `aio_poll` blocking phase and the GSource prepare/check pair), the BH
//! list ([`BhList::push`], [`bh::poll_lists`], [`bh::timeout_lists`],
//! [`Bh::cancel`]) and the handler registry ([`handlers::change_handler`],
//! [`handlers::free_deleted_in`], [`LockCnt`]) are the production
//! functions. The eventfd and the fd monitor's wait are [`EventFd`], a
//! loom Mutex/Condvar flag: a wait with timeout -1 parks until the flag is
//! set, so a lost wake-up is a loom deadlock.

use std::ffi::c_void;
use std::ptr;

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use crate::bh::{self, BH_DELETED, BH_IDLE, BH_ONESHOT, BH_SCHEDULED, Bh, BhList, SliceQueue};
use crate::handlers::{self, AioHandler, Published, Registry};
use crate::lockcnt::LockCnt;
use crate::notify::NotifyState;
use crate::sync::{AtomicBool, AtomicU32, Ordering, fence};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    // Builder::new reads LOOM_MAX_PREEMPTIONS; bound it when unset.
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// The eventfd and the monitor's wait on it.
struct EventFd {
    set: Mutex<bool>,
    cv: Condvar,
}

impl EventFd {
    fn new() -> Self {
        EventFd {
            set: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    /// `event_notifier_set`.
    fn set(&self) {
        *self.set.lock().unwrap() = true;
        self.cv.notify_all();
    }

    /// The monitor's wait: -1 sleeps until the eventfd is set; any other
    /// timeout returns (no timers here, and a bounded sleep ends anyway).
    fn wait(&self, timeout: i64) {
        if timeout != -1 {
            return;
        }
        let mut set = self.set.lock().unwrap();
        while !*set {
            set = self.cv.wait(set).unwrap();
        }
    }

    /// The context notifier's read handler.
    fn test_and_clear(&self) {
        *self.set.lock().unwrap() = false;
    }
}

/// A context reduced to its wake-up protocol and BH queues.
struct Loop {
    notify: NotifyState,
    eventfd: EventFd,
    bh_list: BhList,
    /// Home thread only (the models' main thread).
    bh_slices: SliceQueue,
}

// SAFETY: `bh_slices` is touched by the model's home thread only.
unsafe impl Sync for Loop {}
// SAFETY: as above.
unsafe impl Send for Loop {}

impl Loop {
    fn new() -> Self {
        Loop {
            notify: NotifyState::new(),
            eventfd: EventFd::new(),
            bh_list: BhList::new(),
            bh_slices: SliceQueue::new(),
        }
    }

    /// `Context::notify`.
    fn notify(&self) {
        if self.notify.notify() {
            self.eventfd.set();
        }
    }

    /// `Bh::enqueue` on this loop.
    fn enqueue(&self, bh: *mut Bh, flags: u32) {
        // SAFETY: the models enqueue live BHs of this loop only.
        unsafe { self.bh_list.push(bh, flags) };
        self.notify();
    }

    /// One `aio_poll(ctx, blocking)`, reduced to what these models use.
    fn aio_poll(&self, blocking: bool) -> bool {
        let timeout = if blocking {
            bh::timeout_lists(&self.bh_list, &self.bh_slices, -1)
        } else {
            0
        };
        self.notify
            .wait_phase(timeout, |timeout| self.eventfd.wait(timeout));
        self.eventfd.test_and_clear();
        bh::poll_lists(&self.bh_list, &self.bh_slices)
    }

    /// One glib iteration (`g_main_context_iteration(may_block)`): prepare,
    /// poll, check, dispatch, as `gsource::prepare`/`check` do them.
    fn gsource_iteration(&self, may_block: bool) {
        // prepare
        self.notify.begin_gsource_wait();
        let timeout = bh::timeout_lists(&self.bh_list, &self.bh_slices, -1);
        if timeout == 0 {
            // Ready: glib will not sleep; leave the window now.
            self.notify.end_gsource_wait(true);
        }
        // poll: a non-blocking iteration polls with timeout 0.
        self.eventfd.wait(if may_block { timeout } else { 0 });
        // check (glib runs on the home thread here, as in QEMU)
        self.notify.end_gsource_wait(true);
        self.notify.accept();
        self.eventfd.test_and_clear();
        bh::poll_lists(&self.bh_list, &self.bh_slices);
    }
}

/// What a model BH's callback sees.
struct Probe {
    runs: AtomicU32,
    /// Set by the home thread once it no longer expects the callback.
    done: AtomicBool,
}

impl Probe {
    fn new() -> Arc<Probe> {
        Arc::new(Probe {
            runs: AtomicU32::new(0),
            done: AtomicBool::new(false),
        })
    }

    fn runs(&self) -> u32 {
        self.runs.load(Ordering::SeqCst)
    }
}

unsafe extern "C" fn count_run(opaque: *mut c_void) {
    // SAFETY: the opaque of a model BH is a Probe that outlives the BH.
    let p = unsafe { &*(opaque as *const Probe) };
    assert!(!p.done.load(Ordering::SeqCst), "BH ran after delete");
    p.runs.fetch_add(1, Ordering::SeqCst);
}

fn new_bh(p: &Arc<Probe>) -> *mut Bh {
    Bh::new(
        ptr::null(),
        Some(count_run),
        Arc::as_ptr(p) as *mut c_void,
        ptr::null(),
        ptr::null_mut(),
        0,
    )
}

/// Shares a raw BH pointer with a model thread.
#[derive(Clone, Copy)]
struct BhPtr(*mut Bh);
// SAFETY: BHs are scheduled from any thread by design.
unsafe impl Send for BhPtr {}

/// The notify protocol under the `aio_poll` driver: two threads schedule a
/// BH each while the home thread blocks in `aio_poll` until both ran. A
/// lost wake-up leaves the home thread parked with work pending: a loom
/// deadlock.
#[test]
fn loom_notify_aio_poll() {
    model(|| {
        let l = Arc::new(Loop::new());
        let (pa, pb) = (Probe::new(), Probe::new());
        let (a, b) = (BhPtr(new_bh(&pa)), BhPtr(new_bh(&pb)));
        let threads: Vec<_> = [a, b]
            .into_iter()
            .map(|bh| {
                let l = l.clone();
                thread::spawn(move || l.enqueue(bh.0, BH_SCHEDULED))
            })
            .collect();
        while pa.runs() + pb.runs() < 2 {
            l.aio_poll(true);
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!((pa.runs(), pb.runs()), (1, 1));
        l.enqueue(a.0, BH_DELETED);
        l.enqueue(b.0, BH_DELETED);
        assert!(!l.aio_poll(false));
    });
}

/// The notify protocol under glib's prepare/poll/check, and alternating
/// with `aio_poll` (the GSource bit and the `aio_poll` count share
/// `notify_me`).
#[test]
fn loom_notify_gsource() {
    model(|| {
        let l = Arc::new(Loop::new());
        let (pa, pb) = (Probe::new(), Probe::new());
        let (a, b) = (BhPtr(new_bh(&pa)), BhPtr(new_bh(&pb)));
        let threads: Vec<_> = [a, b]
            .into_iter()
            .map(|bh| {
                let l = l.clone();
                thread::spawn(move || l.enqueue(bh.0, BH_SCHEDULED))
            })
            .collect();
        let mut glib = true;
        while pa.runs() + pb.runs() < 2 {
            if glib {
                l.gsource_iteration(true);
            } else {
                l.aio_poll(true);
            }
            glib = !glib;
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!((pa.runs(), pb.runs()), (1, 1));
        l.enqueue(a.0, BH_DELETED);
        l.enqueue(b.0, BH_DELETED);
        // Non-blocking: deleted BHs are no work, a blocking glib iteration
        // would (rightly) sleep for ever here.
        l.gsource_iteration(false);
    });
}

/// schedule, schedule_idle and a one-shot from two threads while the home
/// thread polls: each runs exactly once; the one-shot and the deleted BHs
/// are freed (loom's Track in `Bh` fails the model on a leak).
#[test]
fn loom_bh_schedule_idle_oneshot() {
    model(|| {
        let l = Arc::new(Loop::new());
        let (px, py, po) = (Probe::new(), Probe::new(), Probe::new());
        let (x, y) = (BhPtr(new_bh(&px)), BhPtr(new_bh(&py)));
        let t1 = {
            let (l, po) = (l.clone(), po.clone());
            thread::spawn(move || {
                l.enqueue(x.0, BH_SCHEDULED);
                // aio_bh_schedule_oneshot
                l.enqueue(new_bh(&po), BH_SCHEDULED | BH_ONESHOT);
            })
        };
        let t2 = {
            let l = l.clone();
            thread::spawn(move || l.enqueue(y.0, BH_SCHEDULED | BH_IDLE))
        };
        while px.runs() + py.runs() + po.runs() < 3 {
            l.aio_poll(true);
        }
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!((px.runs(), py.runs(), po.runs()), (1, 1, 1));
        for p in [&px, &py, &po] {
            p.done.store(true, Ordering::SeqCst);
        }
        l.enqueue(x.0, BH_DELETED);
        l.enqueue(y.0, BH_DELETED);
        assert!(!l.aio_poll(false));
    });
}

/// cancel and delete from two threads while the home thread polls: a
/// cancelled BH runs at most once and stays allocated; a deleted BH never
/// runs after its delete and is freed exactly once.
#[test]
fn loom_bh_cancel_delete() {
    model(|| {
        let l = Arc::new(Loop::new());
        let (px, py) = (Probe::new(), Probe::new());
        let (x, y) = (BhPtr(new_bh(&px)), BhPtr(new_bh(&py)));
        let t1 = {
            let l = l.clone();
            thread::spawn(move || {
                l.enqueue(x.0, BH_SCHEDULED);
                // SAFETY: x is live until the home thread deletes it.
                unsafe { &*x.0 }.cancel();
            })
        };
        let t2 = {
            let l = l.clone();
            thread::spawn(move || {
                l.enqueue(y.0, BH_SCHEDULED);
                l.enqueue(y.0, BH_DELETED);
            })
        };
        l.aio_poll(false);
        t1.join().unwrap();
        t2.join().unwrap();
        // The delete is done and the pass that raced with it is over: y must
        // never run again (count_run asserts), and this pass frees it.
        py.done.store(true, Ordering::SeqCst);
        l.aio_poll(false);
        assert!(px.runs() <= 1, "cancelled BH ran {} times", px.runs());
        assert!(py.runs() <= 1, "deleted BH ran {} times", py.runs());
        // x is still allocated (cancelled, not deleted): run it once more.
        px.runs.store(0, Ordering::SeqCst);
        l.enqueue(x.0, BH_SCHEDULED);
        l.aio_poll(false);
        assert_eq!(px.runs(), 1);
        l.enqueue(x.0, BH_DELETED);
        assert!(!l.aio_poll(false));
    });
}

/// A handler registry reduced to the visitor count and the deferred frees.
struct Handlers {
    lockcnt: LockCnt<Registry>,
    published: Published,
}

impl Handlers {
    /// `aio_set_fd_handler`'s registry half and its free after unlocking.
    fn set(&self, fd: i32, read: bool) {
        let read = if read {
            Some(noop as unsafe extern "C" fn(*mut c_void))
        } else {
            None
        };
        let change = handlers::change_handler(
            &self.lockcnt,
            &self.published,
            fd,
            read,
            None,
            None,
            None,
            ptr::null_mut(),
            |_, _, _, _| {},
        );
        if let Some(Some(n)) = change {
            // SAFETY: change_handler unlinked it with no visitor.
            drop(unsafe { Box::from_raw(n) });
        }
    }

    fn new() -> Arc<Self> {
        Arc::new(Handlers {
            lockcnt: LockCnt::new(Registry::default()),
            published: Published::new(),
        })
    }

    /// An `aio_poll` of the home thread that only runs its free pass.
    fn owner_free_pass(&self) {
        let v = self.lockcnt.inc_owner();
        handlers::free_deleted_in(&self.lockcnt, &self.published);
        self.lockcnt.dec_visit(v);
    }

    /// Nothing registered, nothing parked, nobody visiting.
    fn assert_all_freed(&self) {
        let reg = self.lockcnt.lock();
        assert!(
            self.published.is_empty() && reg.deleted.is_empty(),
            "handler leaked"
        );
        assert_eq!(reg.visitors(), 0);
    }

    /// What a monitor's wait collects: the live handlers, used until the
    /// visit ends.
    fn snapshot(&self) -> Vec<(*mut AioHandler, Arc<AtomicBool>)> {
        // The published chain, walked without the lock as the poll(2)
        // monitor does (every caller here is inside a visit).
        // SAFETY: inside a visit, chain nodes stay allocated.
        unsafe { self.published.iter() }
            // SAFETY: as above.
            .filter(|&n| !unsafe { &*n }.is_deleted())
            // SAFETY: as above.
            .map(|n| (n, unsafe { &*n }.alive.clone()))
            .collect()
    }
}

unsafe extern "C" fn noop(_opaque: *mut c_void) {}

/// What dispatch does with collected handlers: each must still be allocated.
fn visit(seen: &[(*mut AioHandler, Arc<AtomicBool>)]) {
    for (n, alive) in seen {
        assert!(
            alive.load(Ordering::Acquire),
            "handler freed while a visitor holds it"
        );
        // SAFETY: checked just above that the node is not freed.
        let _ = unsafe { &**n }.is_deleted();
    }
}

/// Registration and removal from another thread while a nested visit
/// (`aio_poll` in a callback) walks the registry: a removed handler is freed
/// only once no visitor holds it, and the last visitor frees it.
#[test]
fn loom_handlers_visitors() {
    model(|| {
        let h = Handlers::new();
        // A handler present from the start, removed during the visit.
        h.set(3, true);
        let t = {
            let h = h.clone();
            thread::spawn(move || {
                h.set(5, true);
                h.set(3, false);
                h.set(5, false);
            })
        };
        // aio_poll on the home thread (owner visits): visit, nested
        // aio_poll, free pass, leave.
        let v_outer = h.lockcnt.inc_owner();
        let outer = h.snapshot();
        let v_inner = h.lockcnt.inc_owner();
        let inner = h.snapshot();
        visit(&outer);
        visit(&inner);
        handlers::free_deleted_in(&h.lockcnt, &h.published);
        h.lockcnt.dec_visit(v_inner);
        visit(&outer);
        handlers::free_deleted_in(&h.lockcnt, &h.published);
        h.lockcnt.dec_visit(v_outer);
        t.join().unwrap();
        // The next aio_poll's free pass frees what was left parked.
        h.owner_free_pass();
        h.assert_all_freed();
        for (_, alive) in outer.iter().chain(&inner) {
            assert!(!alive.load(Ordering::Acquire), "removed handler not freed");
        }
    });
}

/// A shared visitor on another thread (the GSource path, the BQL holder's
/// `aio_poll`) beside the home thread's owner visits: a handler removed
/// by the home thread outside its visits is freed only when neither
/// visitor holds it, by whichever free pass runs last.
#[test]
fn loom_handlers_owner_and_shared() {
    model(|| {
        let h = Handlers::new();
        h.set(3, true);
        let t = {
            let h = h.clone();
            thread::spawn(move || {
                h.lockcnt.inc();
                let seen = h.snapshot();
                visit(&seen);
                // The free pass ends the visit: what it frees, this visitor
                // no longer looks at.
                handlers::free_deleted_in(&h.lockcnt, &h.published);
                h.lockcnt.dec();
            })
        };
        let v = h.lockcnt.inc_owner();
        let seen = h.snapshot();
        h.lockcnt.dec_visit(v);
        h.set(3, false);
        h.owner_free_pass();
        t.join().unwrap();
        h.owner_free_pass();
        h.assert_all_freed();
        drop(seen);
    });
}

/// The home thread moves (another thread makes the context current and
/// polls it) while the old home thread, still the recorded owner, removes
/// a handler: the new owner's first visit must not see the handler freed
/// under it (the ownership fence, `lockcnt`'s module doc).
#[test]
fn loom_handlers_owner_moves() {
    model(|| {
        let h = Handlers::new();
        h.set(3, true);
        // The old home thread's last visit; spawning the new one happens
        // after it (as check_home's poll_depth handover does).
        let v = h.lockcnt.inc_owner();
        h.lockcnt.dec_visit(v);
        let t = {
            let h = h.clone();
            thread::spawn(move || {
                let v = h.lockcnt.inc_owner();
                let seen = h.snapshot();
                visit(&seen);
                handlers::free_deleted_in(&h.lockcnt, &h.published);
                h.lockcnt.dec_visit(v);
            })
        };
        h.set(3, false);
        t.join().unwrap();
        // A free pass from this thread, a shared visitor now: whatever the
        // remover had to park is freed.
        h.lockcnt.inc();
        handlers::free_deleted_in(&h.lockcnt, &h.published);
        h.lockcnt.dec();
        h.assert_all_freed();
    });
}

/// What the litmus models need of a wake-up protocol.
trait Protocol: Send + Sync + 'static {
    fn new() -> Self;
    /// The producer side; true if it writes the eventfd.
    fn notify(&self) -> bool;
    fn accept(&self);
    /// The sleeper's announcement; true if it may sleep.
    fn begin_wait(&self) -> bool;
}

impl Protocol for NotifyState {
    fn new() -> Self {
        NotifyState::new()
    }
    fn notify(&self) -> bool {
        NotifyState::notify(self)
    }
    fn accept(&self) {
        NotifyState::accept(self)
    }
    fn begin_wait(&self) -> bool {
        NotifyState::begin_wait(self)
    }
}

/// The protocol as QEMU's util/async.c has it (and qaio had it): plain
/// stores to `notified`. Kept to show that the litmus models detect its
/// lost wake-up (see `NotifyState`'s "Why `notified` is only written by
/// RMWs").
struct PlainStoreNotify {
    notify_me: AtomicU32,
    notified: AtomicBool,
}

impl Protocol for PlainStoreNotify {
    fn new() -> Self {
        PlainStoreNotify {
            notify_me: AtomicU32::new(0),
            notified: AtomicBool::new(false),
        }
    }
    fn notify(&self) -> bool {
        self.notified.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        self.notify_me.load(Ordering::Relaxed) != 0
    }
    fn accept(&self) {
        self.notified.store(false, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }
    fn begin_wait(&self) -> bool {
        let v = self.notify_me.load(Ordering::Relaxed);
        self.notify_me.store(v + 2, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        !self.notified.load(Ordering::Relaxed)
    }
}

/// The litmus form of the lost wake-up, with `producers` threads each
/// publishing a work item and notifying, and the home thread doing a
/// non-blocking `aio_poll` (accept, take the work) followed by the start of
/// a blocking one (read the work for the timeout, announce the sleep).
/// `notify_me` is raised only by that announcement, so a producer's
/// "write the eventfd" answer means it saw it. Forbidden: the loop sleeps,
/// no producer wrote the eventfd, and some work item was never seen.
///
/// Under the plain-store protocol this is the C++20-allowed execution
/// `Fa < Fp < Fb` in the SC order with `Np < A` in `notified`'s
/// modification order (see `NotifyState`).
fn notify_accept_litmus<P: Protocol>(producers: usize) {
    model(move || {
        let ns = Arc::new(P::new());
        let work: Arc<Vec<AtomicU32>> =
            Arc::new((0..producers).map(|_| AtomicU32::new(0)).collect());
        let threads: Vec<_> = (0..producers)
            .map(|i| {
                let (ns, work) = (ns.clone(), work.clone());
                thread::spawn(move || {
                    // The BH push: an RMW on the list, release.
                    work[i].fetch_add(1, Ordering::Release);
                    ns.notify()
                })
            })
            .collect();
        // aio_poll(false): accept, then take the work (aio_bh_poll's swap).
        ns.accept();
        let taken: Vec<u32> = work.iter().map(|w| w.swap(0, Ordering::Acquire)).collect();
        // aio_poll(true): compute the timeout, then announce the sleep.
        let pending: Vec<u32> = work.iter().map(|w| w.load(Ordering::Acquire)).collect();
        let sleeps = ns.begin_wait();
        let kicked = threads
            .into_iter()
            .fold(false, |k, t| t.join().unwrap() | k);
        let all_seen = taken.iter().zip(&pending).all(|(t, p)| t + p != 0);
        assert!(
            kicked || !sleeps || all_seen,
            "lost wake-up: work pending, no eventfd write, and the loop sleeps {:?} {:?}",
            taken,
            pending
        );
    });
}

/// One producer against `NotifyState`.
#[test]
fn loom_notify_accept_litmus() {
    notify_accept_litmus::<NotifyState>(1);
}

/// Two producers against `NotifyState`: the case that needs the producer's
/// swap too (with plain producer stores `Np1 < Np2 < A`, the clear reads
/// `Np2` and does not synchronise with the first producer).
#[test]
fn loom_notify_accept_two_producers() {
    notify_accept_litmus::<NotifyState>(2);
}

/// The plain-store protocol loses the wake-up: loom must find it.
#[test]
#[should_panic(expected = "lost wake-up")]
fn loom_notify_accept_litmus_plain_stores() {
    notify_accept_litmus::<PlainStoreNotify>(1);
}
