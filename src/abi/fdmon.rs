//! C-layout types of io_uring requests on a context's ring: the kernel's
//! SQE/CQE layouts and `CqeHandler` (include/block/aio.h, util/fdmon-io_uring.c).

/// The kernel's `struct io_uring_sqe` (from <linux/io_uring.h>), opaque here.
/// cbindgen:no-export
#[repr(C, align(8))]
pub struct io_uring_sqe {
    _bytes: [u8; 64],
}

/// The kernel's `struct io_uring_cqe` without big-CQE payload.
/// cbindgen:no-export
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct io_uring_cqe {
    pub user_data: u64,
    pub res: i32,
    pub flags: u32,
}

/// Link of a `CqeHandler` in the context's queue of completed requests
/// (QEMU's QSIMPLEQ_ENTRY). Private to the library.
#[repr(C)]
pub struct CqeHandlerLink {
    pub sqe_next: *mut CqeHandler,
}

/// One io_uring request added with `aio_add_sqe`. The caller owns it, sets
/// `cb` before submitting, and keeps it valid until `cb` runs. `next` is
/// private; `cqe` is filled in (user_data, res, flags) right before `cb`
/// runs, from the loop of the context in its home thread.
#[repr(C)]
pub struct CqeHandler {
    pub cb: Option<unsafe extern "C" fn(handler: *mut CqeHandler)>,
    pub next: CqeHandlerLink,
    pub cqe: io_uring_cqe,
}

// The io_uring monitor's completion queue entry layout must match the C one.
const _: () = assert!(std::mem::size_of::<io_uring_cqe>() == 16);
const _: () = assert!(std::mem::size_of::<io_uring_sqe>() == 64);
const _: () = assert!(std::mem::size_of::<CqeHandler>() == 32);
