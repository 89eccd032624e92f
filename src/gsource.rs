//! The GSource through which glib drives a context. Corresponds to
//! `aio_ctx_prepare/check/dispatch/finalize` in util/async.c.
//!
//! glib polls what the active monitor registered with the source: every
//! handler's GPollFD on poll(2), the epoll fd on epoll, the ring fd on
//! io_uring. Timeouts have ms precision (rounded up) and there is no
//! adaptive polling on this path.

use std::ffi::c_int;

use glib_sys::{GSource, GSourceFunc, GSourceFuncs, gboolean, gpointer};

use crate::bh;
use crate::context::{self, Context};
use crate::poll;
use crate::timer::timeout_ns_to_ms;

unsafe extern "C" fn prepare(source: *mut GSource, timeout: *mut c_int) -> gboolean {
    crate::ffi::guard("aio_ctx_prepare", || {
        // SAFETY: glib passes our own source while it is alive.
        let ctx = unsafe { Context::from_source(source) };
        // From here to check, aio_notify must write the eventfd.
        ctx.begin_gsource_wait();
        let mut t = timeout_ns_to_ms(poll::compute_timeout(ctx));
        if poll::prepare(ctx) {
            t = 0;
        }
        // SAFETY: glib passes a valid out pointer.
        unsafe { *timeout = t };
        (t == 0) as gboolean
    })
}

unsafe extern "C" fn check(source: *mut GSource) -> gboolean {
    crate::ffi::guard("aio_ctx_check", || {
        // SAFETY: glib passes our own source while it is alive.
        let ctx = unsafe { Context::from_source(source) };
        ctx.end_gsource_wait();
        ctx.notify_accept();
        let ready = bh::any_scheduled(ctx) || poll::pending(ctx) || ctx.tlg.deadline_ns() == 0;
        ready as gboolean
    })
}

unsafe extern "C" fn dispatch(
    source: *mut GSource,
    callback: GSourceFunc,
    _user_data: gpointer,
) -> gboolean {
    crate::ffi::guard("aio_ctx_dispatch", || {
        if callback.is_some() {
            crate::ffi::misuse(
                "aio_ctx_dispatch",
                "an AioContext GSource takes no callback (g_source_set_callback)",
            );
        }
        // SAFETY: glib passes our own source while it is alive.
        let ctx = unsafe { Context::from_source(source) };
        poll::dispatch(ctx);
        glib_sys::GTRUE
    })
}

unsafe extern "C" fn finalize(source: *mut GSource) {
    // SAFETY: glib finalizes our own source exactly once.
    crate::ffi::guard("aio_ctx_finalize", || unsafe { context::finalize(source) })
}

/// The callbacks of every AioContext GSource. glib never writes to it.
pub static AIO_SOURCE_FUNCS: GSourceFuncs = GSourceFuncs {
    prepare: Some(prepare),
    check: Some(check),
    dispatch: Some(dispatch),
    finalize: Some(finalize),
    closure_callback: None,
    closure_marshal: None,
};
