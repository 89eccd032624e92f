//! Scheduling coroutines on a context: `aio_co_schedule`, `aio_co_wake`,
//! `aio_co_enter` and `aio_co_reschedule_self`. Corresponds to the coroutine
//! half of util/async.c.
//!
//! qaio runs no coroutines itself: the program's runtime (QEMU's
//! util/qemu-coroutine.c) creates, enters and yields them, reached through
//! [`crate::hooks`]. A program without that runtime links and runs; only a
//! call to these functions aborts.
//!
//! Scheduling from any thread pushes the coroutine onto the context's list
//! (lock-free, through the coroutine's `co_scheduled_next` link) and
//! schedules the context's coroutine BH, which enters the coroutines in the
//! order they were scheduled.

use std::ffi::{CStr, c_void};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::abi::{Coroutine, misuse};
use crate::bh::{BH_DELETED, BH_ONESHOT, BH_SCHEDULED, Bh};
use crate::context::{self, Context};
use crate::hooks;

/// A context's scheduled coroutines and the BH that enters them.
pub struct CoSchedule {
    /// Scheduled coroutines, most recent first, linked through
    /// `co_scheduled_next`.
    list: AtomicPtr<Coroutine>,
    /// Created with the context, deleted at finalize.
    bh: AtomicPtr<Bh>,
}

impl CoSchedule {
    pub const fn new() -> CoSchedule {
        CoSchedule {
            list: AtomicPtr::new(ptr::null_mut()),
            bh: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

impl Default for CoSchedule {
    fn default() -> Self {
        CoSchedule::new()
    }
}

/// Creates `ctx`'s coroutine BH (while the context is being built).
pub fn init(ctx: &Context) {
    let bh = Bh::new(
        ctx,
        Some(co_schedule_bh),
        ptr::from_ref(ctx).cast_mut().cast(),
        c"co_schedule_bh_cb".as_ptr(),
        ptr::null_mut(),
        0,
    );
    ctx.co_schedule.bh.store(bh, Ordering::Release);
}

/// Deletes the coroutine BH at finalize. A coroutine still scheduled would
/// never run: QEMU asserts, qaio aborts with a message.
pub fn finalize(ctx: &Context) {
    if !ctx.co_schedule.list.load(Ordering::Acquire).is_null() {
        misuse(
            "aio_ctx_finalize",
            "a coroutine is still scheduled on the context (aio_co_schedule) and would never run",
        );
    }
    let bh = ctx.co_schedule.bh.swap(ptr::null_mut(), Ordering::AcqRel);
    if !bh.is_null() {
        // SAFETY: the BH is live; nothing touches it after deletion.
        unsafe { Bh::enqueue(bh, BH_DELETED) };
    }
}

fn runtime_enter(func: &str) -> unsafe extern "C" fn(*mut c_void, *mut Coroutine) {
    hooks::qemu_aio_coroutine_enter().unwrap_or_else(|| {
        misuse(
            func,
            "no coroutine runtime: the program does not define qemu_aio_coroutine_enter \
             (link QEMU's util/qemu-coroutine.c)",
        )
    })
}

/// The coroutine link a lock-free push and the BH's pop use.
///
/// # Safety
/// `co` is a live coroutine.
unsafe fn scheduled_next<'a>(co: *mut Coroutine) -> &'a AtomicPtr<Coroutine> {
    // SAFETY: the field is pointer-sized and aligned; every access to it
    // while the coroutine is scheduled goes through this atomic view.
    unsafe { AtomicPtr::from_ptr(&raw mut (*co).co_scheduled_next) }
}

/// The coroutine's `scheduled` marker.
///
/// # Safety
/// `co` is a live coroutine.
unsafe fn scheduled_mark<'a>(co: *mut Coroutine) -> &'a AtomicPtr<i8> {
    // SAFETY: as for scheduled_next; QEMU's runtime also reads it atomically.
    unsafe { AtomicPtr::from_ptr((&raw mut (*co).scheduled).cast::<*mut i8>()) }
}

/// `aio_co_schedule`: enters `co` from `ctx`'s loop soon. Any thread. A
/// coroutine scheduled twice before it ran aborts, naming who scheduled it.
///
/// # Safety
/// `co` is a live coroutine of the program's runtime that is not running.
pub unsafe fn schedule(ctx: &Context, co: *mut Coroutine) {
    const FUNC: &CStr = c"aio_co_schedule";
    runtime_enter("aio_co_schedule");
    // SAFETY: co is live (contract).
    let mark = unsafe { scheduled_mark(co) };
    if let Err(prev) = mark.compare_exchange(
        ptr::null_mut(),
        FUNC.as_ptr().cast_mut(),
        Ordering::SeqCst,
        Ordering::SeqCst,
    ) {
        // SAFETY: a non-NULL mark is the static name of a scheduling function.
        let by = unsafe { CStr::from_ptr(prev) }.to_string_lossy();
        misuse(
            "aio_co_schedule",
            &format!("Co-routine was already scheduled in '{by}'"),
        );
    }
    // The coroutine may run, and drop the last reference to ctx, before we
    // have scheduled the BH: hold one meanwhile.
    // SAFETY: the context is alive (the caller holds it).
    unsafe { glib_sys::g_source_ref(ctx.gsource()) };
    // SAFETY: co is live and, being unscheduled, on no list.
    let next = unsafe { scheduled_next(co) };
    let mut head = ctx.co_schedule.list.load(Ordering::Relaxed);
    loop {
        next.store(head, Ordering::Relaxed);
        // Release: publishes the coroutine's state to the BH's Acquire swap.
        match ctx.co_schedule.list.compare_exchange_weak(
            head,
            co,
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(_) => break,
            Err(h) => head = h,
        }
    }
    // SAFETY: the BH lives as long as the context.
    unsafe { Bh::enqueue(ctx.co_schedule.bh.load(Ordering::Acquire), BH_SCHEDULED) };
    // SAFETY: the reference taken above.
    unsafe { glib_sys::g_source_unref(ctx.gsource()) };
}

/// The coroutine BH: enters every coroutine scheduled so far, oldest first.
unsafe extern "C" fn co_schedule_bh(opaque: *mut c_void) {
    // SAFETY: opaque is the context that owns this BH.
    let ctx = unsafe { &*(opaque as *const Context) };
    let enter = runtime_enter("aio_co_schedule");
    let mut reversed = ctx
        .co_schedule
        .list
        .swap(ptr::null_mut(), Ordering::Acquire);
    let mut straight: *mut Coroutine = ptr::null_mut();
    while !reversed.is_null() {
        // SAFETY: scheduled coroutines are live until entered.
        let next = unsafe { scheduled_next(reversed) };
        let after = next.load(Ordering::Relaxed);
        next.store(straight, Ordering::Relaxed);
        straight = reversed;
        reversed = after;
    }
    while !straight.is_null() {
        let co = straight;
        // SAFETY: as above.
        unsafe {
            straight = scheduled_next(co).swap(ptr::null_mut(), Ordering::Relaxed);
            // The runtime's enter orders this store before the coroutine runs.
            scheduled_mark(co).store(ptr::null_mut(), Ordering::Relaxed);
            enter(ctx.gsource().cast(), co);
        }
    }
}

/// `aio_co_enter`: runs `co` in `ctx`. From another thread than `ctx`'s it is
/// scheduled there; from inside a coroutine of `ctx` it runs when that one
/// yields or ends; otherwise it is entered right away.
///
/// # Safety
/// `ctx` is a live context's GSource (as C's `AioContext *`) or NULL (no
/// context, which must then be the calling thread's case), `co` a live
/// coroutine that is not running.
pub unsafe fn enter(ctx: *mut glib_sys::GSource, co: *mut Coroutine) {
    if ctx != context::current_for_program() {
        if ctx.is_null() {
            misuse(
                "aio_co_enter",
                "ctx is NULL, but the calling thread has a current AioContext",
            );
        }
        // SAFETY: forwarded contract.
        return unsafe { schedule(Context::from_source(ctx), co) };
    }
    let runtime = runtime_enter("aio_co_enter");
    // SAFETY: hooks of the program's runtime, called as QEMU calls them.
    let in_coroutine = hooks::qemu_in_coroutine().is_some_and(|f| unsafe { f() });
    if !in_coroutine {
        // SAFETY: as above.
        return unsafe { runtime(ctx.cast(), co) };
    }
    let me = hooks::qemu_coroutine_self()
        .unwrap_or_else(|| misuse("aio_co_enter", "the runtime has no qemu_coroutine_self"));
    // SAFETY: inside a coroutine, so self is the running coroutine.
    let me = unsafe { me() };
    if me == co {
        misuse("aio_co_enter", "a coroutine cannot wake itself");
    }
    // Queue `co` on the running coroutine's wake-up list (QSIMPLEQ tail
    // insertion): the runtime enters it when `me` yields or terminates.
    // SAFETY: `me` runs in this thread, so its queue is ours to change.
    unsafe {
        (*co).co_queue_next = ptr::null_mut();
        *(*me).co_queue_wakeup.sqh_last = co;
        (*me).co_queue_wakeup.sqh_last = &raw mut (*co).co_queue_next;
    }
}

/// `aio_co_wake`: enters `co` in the context it last ran in.
///
/// # Safety
/// `co` is a live coroutine that yielded.
pub unsafe fn wake(co: *mut Coroutine) {
    // Acquire pairs with the runtime's write barrier before it sets ctx.
    // ctx is NULL when the coroutine ran outside any context (QEMU's
    // coroutine tests do), and is then entered here if this thread has none.
    // SAFETY: co is live; ctx is a pointer-sized field.
    let ctx = unsafe { AtomicPtr::from_ptr(&raw mut (*co).ctx) }.load(Ordering::Acquire);
    // SAFETY: a coroutine's context outlives its pending wake-ups.
    unsafe { enter(ctx.cast(), co) };
}

struct Reschedule {
    co: *mut Coroutine,
    new_ctx: *mut glib_sys::GSource,
}

unsafe extern "C" fn reschedule_bh(opaque: *mut c_void) {
    // SAFETY: the Reschedule lives on the yielded coroutine's stack until
    // the coroutine is entered again, which this BH causes.
    let data = unsafe { &*(opaque as *const Reschedule) };
    // SAFETY: both pointers were valid when the coroutine yielded.
    unsafe { schedule(Context::from_source(data.new_ctx), data.co) };
}

/// `aio_co_reschedule_self`: moves the running coroutine to `new_ctx`. It
/// yields here and continues in `new_ctx`'s thread. Must run in a
/// coroutine.
///
/// # Safety
/// `new_ctx` is a live context's GSource.
pub unsafe fn reschedule_self(new_ctx: *mut glib_sys::GSource) {
    const FUNC: &str = "aio_co_reschedule_self";
    let old = context::current_for_program();
    if old == new_ctx {
        return;
    }
    if old.is_null() {
        misuse(FUNC, "the calling thread has no current AioContext");
    }
    let (me, yield_now) = match (hooks::qemu_coroutine_self(), hooks::qemu_coroutine_yield()) {
        (Some(s), Some(y)) => (s, y),
        _ => misuse(
            FUNC,
            "no coroutine runtime: the program does not define qemu_coroutine_self and \
             qemu_coroutine_yield",
        ),
    };
    // SAFETY: a runtime hook, called from inside a coroutine (contract).
    let co = unsafe { me() };
    let data = Reschedule { co, new_ctx };
    // Not scheduled directly: the other thread could enter the coroutine
    // before it has yielded here. The old loop schedules it once it yielded.
    // SAFETY: old is the live current context.
    let old_ctx = unsafe { Context::from_source(old) };
    let bh = Bh::new(
        old_ctx,
        Some(reschedule_bh),
        ptr::from_ref(&data).cast_mut().cast(),
        c"aio_co_reschedule_self_bh".as_ptr(),
        ptr::null_mut(),
        0,
    );
    // SAFETY: a fresh BH, owned by the loop from now on; `data` stays on
    // this coroutine's stack until it is entered again.
    unsafe {
        Bh::enqueue(bh, BH_SCHEDULED | BH_ONESHOT);
        yield_now();
    }
}
