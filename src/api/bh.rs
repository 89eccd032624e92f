//! Bottom halves with closures: [`Bh`], [`BhRemote`] and one-shots
//! (`aio_bh_new`, `qemu_bh_schedule`, `aio_bh_schedule_oneshot`; the BH
//! half of util/async.c).

use std::ffi::{CStr, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use glib_sys::GSource;

use super::{Context, Shared, user};
use crate::bh::{BH_DELETED, BH_IDLE, BH_ONESHOT, BH_SCHEDULED, Bh as CoreBh};
use crate::context::Context as CoreContext;

/// The part of a BH that other threads (remotes, wakers) reach: the core BH
/// and a guard against scheduling it once it is deleted.
pub(crate) struct BhShared {
    raw: *mut CoreBh,
    /// Bit 0: retired (the core BH is deleted or about to be). Bits 1..:
    /// two per thread inside `schedule` now.
    state: AtomicUsize,
}

// SAFETY: `raw` is only used for `Bh::enqueue`, which is any-thread, and
// only while the state says the BH is not deleted.
unsafe impl Send for BhShared {}
// SAFETY: as above.
unsafe impl Sync for BhShared {}

impl BhShared {
    pub(crate) fn new(raw: *mut CoreBh) -> Arc<BhShared> {
        Arc::new(BhShared {
            raw,
            state: AtomicUsize::new(0),
        })
    }

    /// Schedules the BH unless it was retired; wait-free, allocation-free,
    /// any thread. Returns false if it was retired.
    pub(crate) fn schedule(&self, flags: u32) -> bool {
        // The RMWs on `state` are totally ordered: either `retire` sees our
        // count and waits for the Release below, or we see its bit.
        let s = self.state.fetch_add(2, Ordering::Acquire);
        let live = s & 1 == 0;
        if live {
            // SAFETY: not retired, and `retire` waits for us before the BH
            // is deleted, so it is alive.
            unsafe { CoreBh::enqueue(self.raw, flags) };
        }
        self.state.fetch_sub(2, Ordering::Release);
        live
    }

    /// Cancels a scheduled run unless retired. Any thread.
    fn cancel(&self) {
        let s = self.state.fetch_add(2, Ordering::Acquire);
        if s & 1 == 0 {
            // SAFETY: as in schedule.
            unsafe { &*self.raw }.cancel();
        }
        self.state.fetch_sub(2, Ordering::Release);
    }

    /// Stops `schedule` from touching the BH, waits for the ones in flight
    /// (each is one wait-free enqueue), then deletes it (`qemu_bh_delete`).
    /// Called once, by the owner.
    pub(crate) fn retire(&self) {
        self.state.fetch_or(1, Ordering::AcqRel);
        while self.state.load(Ordering::Acquire) > 1 {
            std::hint::spin_loop();
        }
        // SAFETY: the BH is alive (deleted only here) and nobody else can
        // reach it any more.
        unsafe { CoreBh::enqueue(self.raw, BH_DELETED) };
    }
}

struct BhSlot {
    src: *mut GSource,
    f: Box<dyn Fn(&Context)>,
}

unsafe extern "C" fn bh_trampoline(opaque: *mut c_void) {
    let slot = opaque as *mut Shared<BhSlot>;
    // SAFETY: the slot lives until the Bh is dropped, after which the core
    // never calls this BH again; home thread (bh::poll).
    unsafe {
        Shared::call(slot, |s| {
            let ctx = Context::borrowed(s.src);
            user("BH", || (s.f)(&ctx))
        })
    };
}

/// A bottom half: a closure the loop runs once per [`schedule`](Bh::schedule),
/// in its next BH pass (`QEMUBH`). Dropping the handle deletes it
/// (`qemu_bh_delete`), also from inside its own callback; it never runs
/// afterwards. Not `Send`: use [`Bh::remote`] to schedule it from other
/// threads.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let ctx = qaio::api::Context::new().unwrap();
/// let n = Rc::new(Cell::new(0));
/// let n2 = n.clone();
/// let bh = ctx.bh(move |_| n2.set(n2.get() + 1));
/// bh.schedule();
/// bh.schedule(); // already pending: runs once
/// ctx.poll(false);
/// assert_eq!(n.get(), 1);
/// ```
pub struct Bh {
    shared: Arc<BhShared>,
    slot: *mut Shared<BhSlot>,
    _ctx: Context,
}

impl Context {
    /// Creates an unscheduled BH running `f` (`aio_bh_new`).
    pub fn bh(&self, f: impl Fn(&Context) + 'static) -> Bh {
        self.bh_named(c"qaio::api::Bh", f)
    }

    /// [`Context::bh`] with a name for diagnostics (the C API's BH name).
    pub fn bh_named(&self, name: &'static CStr, f: impl Fn(&Context) + 'static) -> Bh {
        let slot = Shared::new(BhSlot {
            src: self.src(),
            f: Box::new(f),
        });
        let raw = CoreBh::new(
            self.core(),
            Some(bh_trampoline),
            slot.cast(),
            name.as_ptr(),
            std::ptr::null_mut(),
            0,
        );
        Bh {
            shared: BhShared::new(raw),
            slot,
            _ctx: self.clone(),
        }
    }

    /// Runs `f` once in this context's next BH pass, then frees it
    /// (`aio_bh_schedule_oneshot`). The closure holds a reference to the
    /// context until it ran.
    ///
    /// ```
    /// let ctx = qaio::api::Context::new().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// ctx.schedule_oneshot(move |_| tx.send(7).unwrap());
    /// ctx.poll(false);
    /// assert_eq!(rx.try_recv(), Ok(7));
    /// ```
    pub fn schedule_oneshot(&self, f: impl FnOnce(&Context) + 'static) {
        oneshot(self.core(), self.src(), Box::new(f));
    }
}

struct OneShot {
    src: *mut GSource,
    f: Box<dyn FnOnce(&Context)>,
}

unsafe extern "C" fn oneshot_trampoline(opaque: *mut c_void) {
    // SAFETY: the box made by `oneshot`; a one-shot BH runs exactly once.
    let OneShot { src, f } = *unsafe { Box::from_raw(opaque as *mut OneShot) };
    // SAFETY: the one-shot holds a reference, so the context is alive.
    let ctx = unsafe { Context::borrowed(src) };
    user("one-shot BH", || f(&ctx));
    // SAFETY: the reference taken in `oneshot`. Not the last one: whoever
    // runs this loop holds one too.
    unsafe { glib_sys::g_source_unref(src) };
}

/// Schedules a one-shot BH holding a reference to the context.
pub(crate) fn oneshot(core: &CoreContext, src: *mut GSource, f: Box<dyn FnOnce(&Context)>) {
    // SAFETY: a live GSource; the reference is dropped after the run.
    unsafe { glib_sys::g_source_ref(src) };
    let one = Box::into_raw(Box::new(OneShot { src, f }));
    let bh = CoreBh::new(
        core,
        Some(oneshot_trampoline),
        one.cast(),
        c"qaio::api::oneshot".as_ptr(),
        std::ptr::null_mut(),
        0,
    );
    // SAFETY: a fresh BH, owned by the loop from now on.
    unsafe { CoreBh::enqueue(bh, BH_SCHEDULED | BH_ONESHOT) };
}

impl Bh {
    /// Schedules one run in the next BH pass (`qemu_bh_schedule`); a
    /// pending BH is not queued twice. Wakes the loop.
    pub fn schedule(&self) {
        self.shared.schedule(BH_SCHEDULED);
    }

    /// Like [`schedule`](Bh::schedule) for an idle BH
    /// (`qemu_bh_schedule_idle`): its run is not progress, and the loop may
    /// sleep up to 10 ms before running it.
    pub fn schedule_idle(&self) {
        self.shared.schedule(BH_SCHEDULED | BH_IDLE);
    }

    /// Cancels a scheduled run (`qemu_bh_cancel`).
    pub fn cancel(&self) {
        self.shared.cancel();
    }

    /// A `Send + Sync` handle that schedules this BH from any thread.
    pub fn remote(&self) -> BhRemote {
        BhRemote {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Bh {
    fn drop(&mut self) {
        self.shared.retire();
        // SAFETY: the core will not call the trampoline again (deleted);
        // our one release of the slot.
        unsafe { Shared::release(self.slot) };
    }
}

impl std::fmt::Debug for Bh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bh").field("raw", &self.shared.raw).finish()
    }
}

/// Schedules a [`Bh`] from any thread. Once the `Bh` is dropped,
/// [`schedule`](BhRemote::schedule) does nothing and returns false.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let ctx = qaio::api::Context::new().unwrap();
/// let n = Rc::new(Cell::new(0));
/// let n2 = n.clone();
/// let bh = ctx.bh(move |_| n2.set(n2.get() + 1));
/// let remote = bh.remote();
/// std::thread::spawn(move || assert!(remote.schedule())).join().unwrap();
/// ctx.poll(false);
/// assert_eq!(n.get(), 1);
/// ```
#[derive(Clone)]
pub struct BhRemote {
    shared: Arc<BhShared>,
}

impl BhRemote {
    /// Schedules the BH (wait-free; wakes the loop). False if the BH was
    /// dropped.
    pub fn schedule(&self) -> bool {
        self.shared.schedule(BH_SCHEDULED)
    }

    /// Cancels a scheduled run.
    pub fn cancel(&self) {
        self.shared.cancel();
    }
}

impl std::fmt::Debug for BhRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BhRemote")
            .field("raw", &self.shared.raw)
            .finish()
    }
}
