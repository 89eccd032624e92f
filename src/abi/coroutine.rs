//! The layout of QEMU's `struct Coroutine` (include/qemu/coroutine_int.h of
//! QEMU 10.2), for the fields util/async.c's coroutine scheduling touches.
//! qaio does not run coroutines; the program's runtime creates and enters
//! them, and qaio links scheduled ones through `co_scheduled_next`, marks
//! them in `scheduled`, reads `ctx` and queues wake-ups on the running
//! coroutine's `co_queue_wakeup`, as QEMU's own event loop does.
//! `integration/qemu/run` checks these offsets against QEMU's header.

use std::ffi::{c_char, c_void};

/// QEMU's coroutine. Not in any generated header (C code sees QEMU's).
#[repr(C)]
pub struct Coroutine {
    pub entry: *mut c_void,
    pub entry_arg: *mut c_void,
    pub caller: *mut Coroutine,
    /// QSLIST_ENTRY: the runtime's pool of free coroutines.
    pub pool_next: *mut Coroutine,
    pub locks_held: usize,
    /// The context the coroutine last ran in (`AioContext *`).
    pub ctx: *mut c_void,
    /// Name of the function that scheduled it, NULL when not scheduled.
    pub scheduled: *const c_char,
    /// QSIMPLEQ_ENTRY: link in another coroutine's `co_queue_wakeup`.
    pub co_queue_next: *mut Coroutine,
    /// QSIMPLEQ_HEAD: coroutines to enter when this one yields or ends.
    pub co_queue_wakeup: CoQueue,
    /// QSLIST_ENTRY: link in a context's list of scheduled coroutines.
    pub co_scheduled_next: *mut Coroutine,
}

/// QEMU's QSIMPLEQ_HEAD: first element and the address of the last link.
#[repr(C)]
pub struct CoQueue {
    pub sqh_first: *mut Coroutine,
    pub sqh_last: *mut *mut Coroutine,
}
