//! The `GSourceFuncs` through which glib drives a context: glib's
//! `extern "C"` callbacks `aio_ctx_prepare/check/dispatch/finalize`
//! (util/async.c), thin shims over [`crate::gsource`] and
//! [`crate::context::finalize`].

use std::ffi::c_int;

use glib_sys::{GSource, GSourceFunc, GSourceFuncs, gboolean, gpointer};

use super::aio::ctx_ref;
use super::{guard, misuse};
use crate::context;
use crate::gsource;

unsafe extern "C" fn prepare(source: *mut GSource, timeout: *mut c_int) -> gboolean {
    guard("aio_ctx_prepare", || {
        let ctx = ctx_ref("aio_ctx_prepare", source.cast());
        let t = gsource::prepare(ctx);
        // SAFETY: glib passes a valid out pointer.
        unsafe { *timeout = t };
        (t == 0) as gboolean
    })
}

unsafe extern "C" fn check(source: *mut GSource) -> gboolean {
    guard("aio_ctx_check", || {
        let ctx = ctx_ref("aio_ctx_check", source.cast());
        gsource::check(ctx) as gboolean
    })
}

unsafe extern "C" fn dispatch(
    source: *mut GSource,
    callback: GSourceFunc,
    _user_data: gpointer,
) -> gboolean {
    guard("aio_ctx_dispatch", || {
        if callback.is_some() {
            misuse(
                "aio_ctx_dispatch",
                "an AioContext GSource takes no callback (g_source_set_callback)",
            );
        }
        let ctx = ctx_ref("aio_ctx_dispatch", source.cast());
        gsource::dispatch(ctx);
        glib_sys::GTRUE
    })
}

unsafe extern "C" fn finalize(source: *mut GSource) {
    // SAFETY: glib finalizes our own source exactly once.
    guard("aio_ctx_finalize", || unsafe { context::finalize(source) })
}

/// The callbacks of every AioContext GSource, passed to
/// [`context::new`]. glib never writes to it.
pub static AIO_SOURCE_FUNCS: GSourceFuncs = GSourceFuncs {
    prepare: Some(prepare),
    check: Some(check),
    dispatch: Some(dispatch),
    finalize: Some(finalize),
    closure_callback: None,
    closure_marshal: None,
};
