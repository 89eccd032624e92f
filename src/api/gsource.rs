//! Driving a context from a glib main loop: the context's GSource
//! ([`AioSource`], `aio_get_g_source`) and a minimal [`MainContext`]
//! (util/async.c's `aio_ctx_*` GSourceFuncs do the work).

use std::marker::PhantomData;
use std::ptr::NonNull;

use glib_sys::{GMainContext, GSource};

use super::Context;

/// A glib `GMainContext` (the thread's default one, or a new one), enough
/// to iterate it without unsafe code. Programs using the `glib` crate pass
/// its pointer to [`AioSource::attach_raw`] instead.
pub struct MainContext {
    raw: NonNull<GMainContext>,
    _not_send: PhantomData<*mut ()>,
}

impl MainContext {
    /// A new main context (`g_main_context_new`).
    pub fn new() -> MainContext {
        // SAFETY: returns a new context with one reference, ours.
        let raw = unsafe { glib_sys::g_main_context_new() };
        MainContext {
            raw: NonNull::new(raw).expect("g_main_context_new returned NULL"),
            _not_send: PhantomData,
        }
    }

    /// The global default main context (`g_main_context_default`).
    pub fn default_context() -> MainContext {
        // SAFETY: the default context is never freed; we take a reference
        // for our Drop.
        let raw = unsafe { glib_sys::g_main_context_ref(glib_sys::g_main_context_default()) };
        MainContext {
            raw: NonNull::new(raw).expect("no default main context"),
            _not_send: PhantomData,
        }
    }

    /// One iteration (`g_main_context_iteration`); true if a source was
    /// dispatched.
    pub fn iteration(&self, may_block: bool) -> bool {
        // SAFETY: a live main context; glib acquires it for the iteration.
        unsafe { glib_sys::g_main_context_iteration(self.raw.as_ptr(), may_block.into()) != 0 }
    }

    /// The `GMainContext *`.
    pub fn as_raw(&self) -> *mut GMainContext {
        self.raw.as_ptr()
    }
}

impl Default for MainContext {
    fn default() -> Self {
        MainContext::new()
    }
}

impl Drop for MainContext {
    fn drop(&mut self) {
        // SAFETY: our reference.
        unsafe { glib_sys::g_main_context_unref(self.raw.as_ptr()) };
    }
}

/// A context's GSource (`aio_get_g_source`): attach it to a glib main
/// context and that loop runs the context's BHs, handlers and timers, with
/// every fd monitor. Dropping the handle destroys the source (detaching it)
/// and drops its reference.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use qaio::api::{Context, MainContext};
///
/// let ctx = Context::new().unwrap();
/// let main = MainContext::new();
/// let src = ctx.gsource();
/// src.attach(&main);
/// let ran = Rc::new(Cell::new(false));
/// let r = ran.clone();
/// ctx.schedule_oneshot(move |_| r.set(true));
/// while !ran.get() {
///     main.iteration(true);
/// }
/// ```
pub struct AioSource {
    raw: NonNull<GSource>,
    _not_send: PhantomData<*mut ()>,
}

impl Context {
    /// The context's GSource, with a reference of its own.
    pub fn gsource(&self) -> AioSource {
        // SAFETY: a live GSource; the new reference is the AioSource's.
        unsafe { glib_sys::g_source_ref(self.src()) };
        AioSource {
            raw: NonNull::new(self.src()).expect("non-NULL"),
            _not_send: PhantomData,
        }
    }
}

impl AioSource {
    /// Attaches it to `main` (`g_source_attach`); returns the source id.
    pub fn attach(&self, main: &MainContext) -> u32 {
        // SAFETY: both are alive.
        unsafe { glib_sys::g_source_attach(self.raw.as_ptr(), main.as_raw()) }
    }

    /// Attaches it to a `GMainContext *` from elsewhere (the `glib` crate,
    /// C); NULL means the default context.
    ///
    /// # Safety
    /// `main` is NULL or a live `GMainContext`.
    pub unsafe fn attach_raw(&self, main: *mut GMainContext) -> u32 {
        // SAFETY: per the contract.
        unsafe { glib_sys::g_source_attach(self.raw.as_ptr(), main) }
    }

    /// The `GSource *`.
    pub fn as_raw(&self) -> *mut GSource {
        self.raw.as_ptr()
    }
}

impl Drop for AioSource {
    fn drop(&mut self) {
        // SAFETY: our reference; destroying an unattached or destroyed
        // source is harmless.
        unsafe {
            glib_sys::g_source_destroy(self.raw.as_ptr());
            glib_sys::g_source_unref(self.raw.as_ptr());
        }
    }
}

impl std::fmt::Debug for AioSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AioSource").field("raw", &self.raw).finish()
    }
}

impl std::fmt::Debug for MainContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MainContext")
            .field("raw", &self.raw)
            .finish()
    }
}
