//! The ring's shared memory as this library reads and writes it: the SQ
//! (slots are prepared in place, as liburing and QEMU do) and the CQ
//! (completions are read where the kernel wrote them, and the head is
//! released once per batch).
//!
//! The io-uring crate keeps its pointers into the rings private, so the
//! rings are mapped a second time here (the same kernel pages, as any
//! process can mmap a ring fd more than once). The crate still does
//! set-up, `io_uring_enter` and registration; it reads the head and tail
//! words from the shared memory every time, so both views stay consistent.

use std::cell::Cell;
use std::io;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};

use io_uring::{IoUring, Parameters, cqueue, squeue};

const IORING_OFF_SQ_RING: libc::off_t = 0;
const IORING_OFF_CQ_RING: libc::off_t = 0x800_0000;
const IORING_OFF_SQES: libc::off_t = 0x1000_0000;
const IORING_FEAT_SINGLE_MMAP: u32 = 1 << 0;
const IORING_SETUP_NO_SQARRAY: u32 = 1 << 16;
/// `sq_flags` bits (the crate reads them too; `need_wait` reads them here).
pub(super) const IORING_SQ_CQ_OVERFLOW: u32 = 1 << 1;
pub(super) const IORING_SQ_TASKRUN: u32 = 1 << 2;

/// The kernel's `struct io_sqring_offsets`.
#[repr(C)]
struct SqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

/// The kernel's `struct io_cqring_offsets`.
#[repr(C)]
struct CqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

/// The kernel's `struct io_uring_params`: the crate's `Parameters` is a
/// documented `repr(transparent)` wrapper of it, without accessors for the
/// ring offsets.
#[repr(C)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqOffsets,
    cq_off: CqOffsets,
}

const _: () = assert!(std::mem::size_of::<Params>() == 120);
const _: () = assert!(std::mem::size_of::<Parameters>() == std::mem::size_of::<Params>());
const _: () = assert!(std::mem::align_of::<Parameters>() == std::mem::align_of::<Params>());
// Slots are used as the crate's entry types (repr(C) over the kernel's
// structs; see sqe.rs for the SQE checks).
const _: () = assert!(std::mem::size_of::<cqueue::Entry>() == 16);

/// One mmap of the ring fd, unmapped on drop.
struct Map {
    addr: NonNull<u8>,
    len: usize,
}

impl Map {
    fn new(fd: i32, offset: libc::off_t, len: usize) -> io::Result<Map> {
        // SAFETY: a fresh shared mapping of the ring fd; nothing aliases it
        // in Rust's sense (the kernel and the crate's own mapping share the
        // pages, which is what they are for).
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Map {
            addr: NonNull::new(p.cast()).expect("mmap returned NULL"),
            len,
        })
    }

    /// The address `off` bytes into the mapping.
    fn at<T>(&self, off: u32) -> *mut T {
        debug_assert!(off as usize + std::mem::size_of::<T>() <= self.len);
        // SAFETY: in bounds: the offsets come from the kernel's params for a
        // mapping of the size the kernel described.
        unsafe { self.addr.as_ptr().add(off as usize).cast() }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: our own mapping; no pointer into it outlives `Queues`.
        unsafe { libc::munmap(self.addr.as_ptr().cast(), self.len) };
    }
}

/// Pointers into the ring, and the SQ tail as handed out. Home thread only
/// (the Uring's rule), except that the kernel reads and writes its words.
pub(super) struct Queues {
    /// SQ head: written by the kernel as it consumes SQEs.
    sq_khead: *const AtomicU32,
    /// SQ tail: written here; the kernel reads it in io_uring_enter.
    sq_ktail: *const AtomicU32,
    sq_kflags: *const AtomicU32,
    sq_mask: u32,
    sq_entries: u32,
    sqes: *mut squeue::Entry,
    /// Next slot to hand out. Equal to the published tail except while a
    /// `prep_sqe` callback runs (see `preparing`).
    sq_tail: Cell<u32>,
    /// Last SQ head read from the kernel; re-read only when the SQ looks
    /// full (the kernel only moves it forward).
    sq_head: Cell<u32>,
    /// `aio_add_sqe` callbacks running now. While one runs, its slot is
    /// handed out but not yet filled, so the tail is not published: a
    /// nested request (prep_sqe calling aio_add_sqe) takes the next slot
    /// and the outermost call publishes both.
    preparing: Cell<u32>,
    /// CQ head: written here (once per batch), read by the kernel.
    cq_khead: *const AtomicU32,
    /// CQ tail: written by the kernel as it posts CQEs.
    cq_ktail: *const AtomicU32,
    cq_mask: u32,
    cqes: *const cqueue::Entry,
    _maps: [Option<Map>; 3],
}

impl Queues {
    /// Maps the rings of `ring` a second time.
    pub(super) fn new(ring: &IoUring) -> io::Result<Queues> {
        // SAFETY: Parameters is repr(transparent) over io_uring_params
        // (documented; size and alignment asserted above).
        let p = unsafe { &*(ring.params() as *const Parameters).cast::<Params>() };
        if p.flags & IORING_SETUP_NO_SQARRAY != 0 {
            // The crate fills the SQ array with the identity mapping, which
            // `reserve` relies on; we never ask for NO_SQARRAY.
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(ring);
        let sq_len = p.sq_off.array as usize + p.sq_entries as usize * 4;
        let cq_len =
            p.cq_off.cqes as usize + p.cq_entries as usize * std::mem::size_of::<cqueue::Entry>();
        let sqes = Map::new(
            fd,
            IORING_OFF_SQES,
            p.sq_entries as usize * std::mem::size_of::<squeue::Entry>(),
        )?;
        let (sq, cq) = if p.features & IORING_FEAT_SINGLE_MMAP != 0 {
            (Map::new(fd, IORING_OFF_SQ_RING, sq_len.max(cq_len))?, None)
        } else {
            (
                Map::new(fd, IORING_OFF_SQ_RING, sq_len)?,
                Some(Map::new(fd, IORING_OFF_CQ_RING, cq_len)?),
            )
        };
        let cqm = cq.as_ref().unwrap_or(&sq);
        // SAFETY: the ring_mask words are set by the kernel at set-up and
        // never change.
        let (sq_mask, cq_mask) = unsafe {
            (
                *sq.at::<u32>(p.sq_off.ring_mask),
                *cqm.at::<u32>(p.cq_off.ring_mask),
            )
        };
        let sq_khead = sq.at::<AtomicU32>(p.sq_off.head);
        let sq_ktail = sq.at::<AtomicU32>(p.sq_off.tail);
        let cq_khead = cqm.at::<AtomicU32>(p.cq_off.head);
        // SAFETY: valid words of the mapping; nothing is queued yet.
        let (head, tail) = unsafe {
            (
                (*sq_khead).load(Ordering::Acquire),
                (*sq_ktail).load(Ordering::Relaxed),
            )
        };
        Ok(Queues {
            sq_khead,
            sq_ktail,
            sq_kflags: sq.at::<AtomicU32>(p.sq_off.flags),
            sq_mask,
            sq_entries: p.sq_entries,
            sqes: sqes.at::<squeue::Entry>(0),
            sq_tail: Cell::new(tail),
            sq_head: Cell::new(head),
            preparing: Cell::new(0),
            cq_khead,
            cq_ktail: cqm.at::<AtomicU32>(p.cq_off.tail),
            cq_mask,
            cqes: cqm.at::<cqueue::Entry>(p.cq_off.cqes),
            _maps: [Some(sqes), Some(sq), cq],
        })
    }

    /// Hands out the next free SQ slot (not yet visible to the kernel), or
    /// None if the SQ is full.
    #[inline]
    pub(super) fn reserve(&self) -> Option<*mut squeue::Entry> {
        let tail = self.sq_tail.get();
        if tail.wrapping_sub(self.sq_head.get()) == self.sq_entries {
            // SAFETY: the kernel's SQ head word. Acquire pairs with the
            // kernel's release once it has read the slots it consumed, so
            // they may be reused.
            let head = unsafe { (*self.sq_khead).load(Ordering::Acquire) };
            self.sq_head.set(head);
            if tail.wrapping_sub(head) == self.sq_entries {
                return None;
            }
        }
        self.sq_tail.set(tail.wrapping_add(1));
        // SAFETY: the index is masked into the SQE array; the crate set the
        // SQ array to the identity mapping, so slot i is SQE i.
        Some(unsafe { self.sqes.add((tail & self.sq_mask) as usize) })
    }

    /// Makes the slots handed out so far visible to the next io_uring_enter,
    /// unless a `prep_sqe` callback is still filling one.
    #[inline]
    pub(super) fn publish(&self) {
        if self.preparing.get() == 0 {
            // SAFETY: the kernel's SQ tail word. Release: the slots' contents
            // are written before the kernel can see the new tail.
            unsafe { (*self.sq_ktail).store(self.sq_tail.get(), Ordering::Release) };
        }
    }

    /// Runs `f` with the tail held back (see `preparing`).
    #[inline]
    pub(super) fn preparing<R>(&self, f: impl FnOnce() -> R) -> R {
        self.preparing.set(self.preparing.get() + 1);
        let r = f();
        self.preparing.set(self.preparing.get() - 1);
        r
    }

    /// True if slots were handed out but are still being filled, so nothing
    /// more can be published now.
    pub(super) fn held_back(&self) -> bool {
        // SAFETY: our own tail word (only this thread writes it).
        self.sq_tail.get() != unsafe { (*self.sq_ktail).load(Ordering::Relaxed) }
    }

    /// True if no published SQE waits for the kernel.
    #[inline]
    pub(super) fn sq_is_empty(&self) -> bool {
        // SAFETY: the ring's head and tail words.
        unsafe {
            (*self.sq_ktail).load(Ordering::Relaxed) == (*self.sq_khead).load(Ordering::Acquire)
        }
    }

    /// SQEs published and not yet consumed by the kernel.
    #[inline]
    pub(super) fn sq_len(&self) -> u32 {
        // SAFETY: the ring's head and tail words (only this thread moves
        // the tail).
        unsafe {
            (*self.sq_ktail)
                .load(Ordering::Relaxed)
                .wrapping_sub((*self.sq_khead).load(Ordering::Acquire))
        }
    }

    /// The SQ flags word (IORING_SQ_*).
    #[inline]
    pub(super) fn sq_flags(&self) -> u32 {
        // SAFETY: the ring's flags word.
        unsafe { (*self.sq_kflags).load(Ordering::Acquire) }
    }

    /// The CQ's head (ours) and tail (the kernel's): entries in
    /// `head..tail` are completions to read.
    #[inline]
    pub(super) fn cq_bounds(&self) -> (u32, u32) {
        // SAFETY: the ring's CQ words. Only this thread writes the head.
        // Acquire on the tail pairs with the kernel's release after it wrote
        // the CQEs before it.
        unsafe {
            (
                (*self.cq_khead).load(Ordering::Relaxed),
                (*self.cq_ktail).load(Ordering::Acquire),
            )
        }
    }

    /// The CQE array, for reading the entries between the bounds.
    #[inline]
    pub(super) fn cq_view(&self) -> CqView<'_> {
        CqView {
            cqes: self.cqes,
            mask: self.cq_mask,
            _ring: std::marker::PhantomData,
        }
    }

    /// Gives the CQ slots before `head` back to the kernel.
    #[inline]
    pub(super) fn cq_release(&self, head: u32) {
        // SAFETY: the ring's CQ head word. Release: the entries were read
        // before the kernel may overwrite them.
        unsafe { (*self.cq_khead).store(head, Ordering::Release) };
    }

    /// True if the CQ holds no completion.
    #[inline]
    pub(super) fn cq_is_empty(&self) -> bool {
        let (head, tail) = self.cq_bounds();
        head == tail
    }

    /// Completions in the CQ.
    #[inline]
    pub(super) fn cq_len(&self) -> usize {
        let (head, tail) = self.cq_bounds();
        tail.wrapping_sub(head) as usize
    }
}

/// The CQE array, copied out of [`Queues`] so that a reaping loop keeps
/// its base and mask in registers (stores through the handlers it fills
/// could otherwise alias them).
#[derive(Clone, Copy)]
pub(super) struct CqView<'a> {
    cqes: *const cqueue::Entry,
    mask: u32,
    _ring: std::marker::PhantomData<&'a Queues>,
}

impl<'a> CqView<'a> {
    /// The CQE at ring position `i` (between the bounds).
    #[inline]
    pub(super) fn get(self, i: u32) -> &'a cqueue::Entry {
        // SAFETY: masked into the CQE array, which lives as long as the
        // queues borrowed for 'a; the kernel does not rewrite an entry
        // before the head has been released past it.
        unsafe { &*self.cqes.add((i & self.mask) as usize) }
    }
}
