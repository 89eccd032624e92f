//! User requests on a context's ring (`aio_add_sqe`): filling an SQE from
//! C, queueing the completed `CqeHandler`s and running their callbacks.
//! Corresponds to `fdmon_io_uring_add_sqe` and `fdmon_io_uring_dispatch` in
//! util/fdmon-io_uring.c.

use std::ffi::c_void;
use std::ptr;

use io_uring::squeue;

use super::{TAG_POLL, Uring};
use crate::abi::{CqeHandler, io_uring_cqe, io_uring_sqe};
use crate::context::Context;

// `aio_add_sqe` lets C fill the crate's SQE type in place through our
// mirror of the kernel struct: `squeue::Entry` is a repr(C) wrapper of
// `io_uring_sqe` (a private field, hence these checks).
const _: () = assert!(std::mem::size_of::<squeue::Entry>() == 64);
const _: () = assert!(std::mem::align_of::<squeue::Entry>() == 8);
const _: () = assert!(std::mem::size_of::<io_uring_sqe>() == 64);
const _: () = assert!(std::mem::align_of::<io_uring_sqe>() == 8);
// The tag bit of a handler's POLL_ADD must be free in a CqeHandler's address.
const _: () = assert!(std::mem::align_of::<CqeHandler>() >= 8);

impl Uring {
    /// Adds a user request (QEMU's `fdmon_io_uring_add_sqe`): `prep` fills
    /// a zeroed SQE, then `user_data` is set to the handler. Home thread.
    /// The SQE is submitted at the next wait (or glib prepare), or at once
    /// if the SQ is full.
    pub fn add_sqe(
        &self,
        prep: unsafe extern "C" fn(*mut io_uring_sqe, *mut c_void),
        opaque: *mut c_void,
        h: *mut CqeHandler,
    ) {
        if (h as usize) & (std::mem::align_of::<CqeHandler>() - 1) != 0 {
            crate::abi::misuse(
                "aio_add_sqe",
                "cqe_handler is not a properly aligned CqeHandler",
            );
        }
        // Prepared in place in the SQ slot, as QEMU and liburing do.
        let slot = self.sq_slot();
        let sqe = slot.cast::<io_uring_sqe>();
        // SAFETY: the slot is ours until published; it is a repr(C)
        // io_uring_sqe of the same size and alignment as our mirror
        // (asserted above). The C callback fills it in place and does not
        // keep the pointer; while it runs, the slot is not published (it
        // may call aio_add_sqe itself, which takes the next slot).
        unsafe {
            ptr::write_bytes(sqe, 0, 1);
            self.q.preparing(|| prep(sqe, opaque));
            (*slot).set_user_data(h as u64);
        }
        self.q.publish();
    }

    /// User requests completed: the run of CQEs from ring position `head`
    /// up to the next handler's `POLL_ADD` or `tail` is copied into their
    /// handlers, which join the queue that [`Uring::dispatch`] runs (CQEs
    /// with user_data 0, the loop's own TIMEOUTs, are skipped). Returns
    /// where the run ended. Out of line, so that reaping handlers'
    /// completions keeps its registers. Home thread.
    #[inline(never)]
    pub(super) fn queue_completions(&self, mut head: u32, tail: u32) -> u32 {
        let cq = self.q.cq_view();
        let mut last = self.cqe_last.get();
        while head != tail {
            let e = cq.get(head);
            let user_data = e.user_data();
            if user_data & TAG_POLL != 0 {
                break;
            }
            head = head.wrapping_add(1);
            if user_data == 0 {
                continue;
            }
            let h = user_data as *mut CqeHandler;
            // SAFETY: the user keeps a CqeHandler valid until its callback
            // ran; its completion arrives once, so it is on no queue yet.
            unsafe {
                (*h).cqe = io_uring_cqe {
                    user_data,
                    res: e.result(),
                    flags: e.flags(),
                };
                (*h).next.sqe_next = ptr::null_mut();
                if last.is_null() {
                    self.cqe_first.set(h);
                } else {
                    (*last).next.sqe_next = h;
                }
            }
            last = h;
        }
        self.cqe_last.set(last);
        head
    }

    /// Runs the callbacks of completed user requests, oldest first
    /// (QEMU's `fdmon_io_uring_dispatch`). Each is unlinked before its
    /// callback runs, so a nested loop inside a callback continues with the
    /// next one and none runs twice. Home thread, inside a visit.
    pub fn dispatch(&self, _ctx: &Context) -> bool {
        let mut progress = false;
        loop {
            let h = self.cqe_first.get();
            if h.is_null() {
                break;
            }
            // SAFETY: queued handlers are valid until their callback ran
            // (the aio_add_sqe contract).
            let cb = unsafe {
                let next = (*h).next.sqe_next;
                self.cqe_first.set(next);
                if next.is_null() {
                    self.cqe_last.set(ptr::null_mut());
                }
                (*h).next.sqe_next = ptr::null_mut();
                (*h).cb
            };
            let Some(cb) = cb else {
                crate::abi::misuse(
                    "aio_add_sqe",
                    "cqe_handler->cb was NULL when the request completed (set it before aio_add_sqe)",
                );
            };
            // SAFETY: the user's callback with its own handler.
            unsafe { cb(h) };
            progress = true;
        }
        progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_bit_is_free_in_handler_addresses() {
        let b = Box::new(std::mem::MaybeUninit::<CqeHandler>::uninit());
        assert_eq!(&*b as *const _ as u64 & TAG_POLL, 0);
    }
}
