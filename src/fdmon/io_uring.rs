//! The io_uring(7) monitor. Corresponds to util/fdmon-io_uring.c.
//! (Being written: this placeholder only reports io_uring as unavailable.)

use crate::context::Context;
use crate::handlers::{AioHandler, AioHandlerList, Registry};

/// Per-handler io_uring state.
#[derive(Default)]
pub struct UringNode {}

/// Per-context ring.
pub struct Uring {}

impl Uring {
    pub fn setup() -> Result<Box<Uring>, String> {
        Err("Failed to initialize io_uring: not implemented yet".into())
    }
    pub fn setup_auto() -> Result<Option<Box<Uring>>, String> {
        Ok(None)
    }
    pub fn attach_gsource(&self, _ctx: &Context) {}
    pub fn update(&self, _old: Option<*mut AioHandler>, _new: Option<*mut AioHandler>) {}
    pub fn wait(&self, _ctx: &Context, _ready: *mut AioHandlerList, _timeout: i64) -> i32 {
        0
    }
    pub fn need_wait(&self) -> bool {
        false
    }
    pub fn dispatch(&self, _ctx: &Context) -> bool {
        false
    }
    pub fn gsource_prepare(&self, _ctx: &Context) {}
    pub fn gsource_check(&self, _ctx: &Context) -> bool {
        false
    }
    pub fn gsource_dispatch(&self, _ctx: &Context, _ready: *mut AioHandlerList) {}
    pub fn destroy(self: Box<Self>, _ctx: &Context, _reg: &mut Registry) {}
}

impl Uring {
    pub fn add_sqe(
        &self,
        _prep: unsafe extern "C" fn(*mut crate::ffi::fdmon::io_uring_sqe, *mut std::ffi::c_void),
        _opaque: *mut std::ffi::c_void,
        _h: *mut crate::ffi::fdmon::CqeHandler,
    ) {
    }
}
