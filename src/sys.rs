//! Small syscall helpers: `-1/errno` results turned into `io::Result`.

use std::io;

/// Converts a libc return value into `io::Result`, reading errno on -1.
pub fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`cvt`] for calls returning `ssize_t`.
#[inline]
pub fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// An identifier of the calling thread, unique among live threads and never
/// 0: the thread pointer, which is glibc's `pthread_self()`. Unlike a
/// `thread_local!`, which a shared library reaches through `__tls_get_addr`,
/// it costs no lookup, and `aio_poll` and `aio_add_sqe` ask for it on every
/// call. A thread that exits may see its value reused by a later thread.
#[inline(always)]
pub fn thread_id() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let tp: u64;
        // SAFETY: the x86-64 psABI (TLS variant II) makes the word at
        // %fs:0 the thread pointer itself; reading it touches no other
        // memory. glibc's pthread_self() returns the same value.
        unsafe {
            core::arch::asm!(
                "mov {tp}, qword ptr fs:[0]",
                tp = out(reg) tp,
                options(nostack, readonly, preserves_flags, pure),
            );
        }
        tp
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: pthread_self has no preconditions and cannot fail.
        unsafe { libc::pthread_self() as u64 }
    }
}

/// `membarrier(2)` commands (linux/membarrier.h).
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// Registers the process for [`membarrier_private`] (once; later calls
/// return the first answer). False where the kernel or a seccomp filter
/// refuses it.
pub fn membarrier_register() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        // SAFETY: membarrier takes two integers and touches no memory of ours.
        let r = unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
                0 as libc::c_long,
            )
        };
        r == 0
    })
}

/// A full memory barrier executed, before this returns, by every thread of
/// the process that is running at the time (`MEMBARRIER_CMD_PRIVATE_EXPEDITED`):
/// the expensive side of an asymmetric fence whose cheap side is a compiler
/// barrier. False if it could not be issued (not registered, or refused);
/// the caller must then act as if the other side had not fenced.
pub fn membarrier_private() -> bool {
    if !membarrier_register() {
        return false;
    }
    // SAFETY: as in membarrier_register.
    let r = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_PRIVATE_EXPEDITED,
            0 as libc::c_long,
        )
    };
    r == 0
}

/// `io_uring_enter(2)` with no argument struct: hands `to_submit` SQEs to
/// the kernel and, with `IORING_ENTER_GETEVENTS` in `flags`, waits until
/// `min_complete` completions are in the CQ. Returns how many SQEs were
/// consumed. On x86-64 the `syscall` instruction itself, as liburing
/// issues it: glibc's `syscall(3)` moves all six arguments and writes errno
/// on every loop iteration, and the crate's `Submitter::enter` adds an
/// out-of-line wrapper on top.
///
/// # Safety
/// `fd` is an io_uring; every SQE the call may submit is complete and the
/// memory it points to stays valid until its completion.
#[inline]
pub unsafe fn io_uring_enter(
    fd: i32,
    to_submit: u32,
    min_complete: u32,
    flags: u32,
) -> io::Result<u32> {
    #[cfg(target_arch = "x86_64")]
    {
        let ret: isize;
        // SAFETY: the kernel's x86-64 system call convention: number in
        // rax, arguments in rdi, rsi, rdx, r10, r8, r9, result in rax; the
        // instruction overwrites rcx and r11. No signal mask or argument
        // struct is passed (r8, r9 = 0). The asm may read and write memory
        // (the kernel reads the SQ ring and writes the CQ ring), so the
        // compiler orders ring accesses around it. The rest per the
        // contract.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") libc::SYS_io_uring_enter as isize => ret,
                in("rdi") fd as isize,
                in("rsi") to_submit as usize,
                in("rdx") min_complete as usize,
                in("r10") flags as usize,
                in("r8") 0usize,
                in("r9") 0usize,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        // The kernel returns -errno in [-4095, -1].
        if ret < 0 {
            Err(io::Error::from_raw_os_error(-ret as i32))
        } else {
            Ok(ret as u32)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: per the contract; no signal mask or argument struct is
        // passed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                fd as libc::c_long,
                to_submit as libc::c_long,
                min_complete as libc::c_long,
                flags as libc::c_long,
                std::ptr::null::<libc::sigset_t>(),
                0 as libc::c_long,
            )
        };
        cvt_size(r as libc::ssize_t).map(|n| n as u32)
    }
}

/// The message of an OS error as strerror(3) words it, without the
/// " (os error N)" of `io::Error`'s Display (QEMU's error texts).
pub fn strerror(e: &io::Error) -> String {
    let Some(errno) = e.raw_os_error() else {
        return e.to_string();
    };
    let mut buf = [0u8; 128];
    // SAFETY: buf is writable for its length; the XSI strerror_r always
    // NUL-terminates what it writes.
    let r = unsafe { libc::strerror_r(errno, buf.as_mut_ptr().cast(), buf.len()) };
    match std::ffi::CStr::from_bytes_until_nul(&buf) {
        Ok(s) if r == 0 => s.to_string_lossy().into_owned(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_has_no_os_error_suffix() {
        let e = io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(strerror(&e), "Too many open files");
    }

    #[test]
    fn thread_id_is_pthread_self_and_per_thread() {
        // SAFETY: no preconditions.
        let me = unsafe { libc::pthread_self() } as u64;
        assert_eq!(thread_id(), me);
        let other = std::thread::spawn(|| {
            // SAFETY: no preconditions.
            (thread_id(), unsafe { libc::pthread_self() } as u64)
        })
        .join()
        .unwrap();
        assert_eq!(other.0, other.1);
        assert_ne!(other.0, me);
        assert_ne!(me, 0);
    }
}

/// A pointer-sized thread-local slot of the library (the calling thread's
/// current AioContext), read and written in two instructions.
///
/// A `thread_local!` in a shared library uses the general-dynamic TLS model:
/// every access calls `__tls_get_addr`, and QEMU asks for its current
/// context several times per request. On x86-64 the slot is instead defined
/// in assembly and reached with the initial-exec model (an offset from the
/// thread pointer, found through the GOT), as C code built with
/// `-ftls-model=initial-exec` would; glibc reserves static TLS room for
/// such libraries. Other targets keep a `thread_local!`.
pub mod current_slot {
    #[cfg(target_arch = "x86_64")]
    core::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".balign 8",
        ".globl qaio_current_slot",
        ".hidden qaio_current_slot",
        ".type qaio_current_slot, @object",
        ".size qaio_current_slot, 8",
        "qaio_current_slot:",
        ".zero 8",
        ".popsection",
    );

    /// The slot's value in the calling thread (NULL until first set).
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub fn get() -> *mut libc::c_void {
        let v: *mut libc::c_void;
        // SAFETY: reads this thread's 8-byte slot at its thread-pointer
        // offset, which the dynamic linker put in the GOT; no other memory
        // is touched.
        unsafe {
            core::arch::asm!(
                "mov {off}, qword ptr [rip + qaio_current_slot@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{off}]",
                off = out(reg) _,
                v = out(reg) v,
                options(nostack, readonly, preserves_flags),
            )
        };
        v
    }

    /// Sets the slot in the calling thread.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub fn set(v: *mut libc::c_void) {
        // SAFETY: writes this thread's slot, as in `get`.
        unsafe {
            core::arch::asm!(
                "mov {off}, qword ptr [rip + qaio_current_slot@GOTTPOFF]",
                "mov qword ptr fs:[{off}], {v}",
                off = out(reg) _,
                v = in(reg) v,
                options(nostack, preserves_flags),
            )
        };
    }

    #[cfg(not(target_arch = "x86_64"))]
    thread_local! {
        static SLOT: std::cell::Cell<*mut libc::c_void> =
            const { std::cell::Cell::new(std::ptr::null_mut()) };
    }

    /// The slot's value in the calling thread (NULL until first set).
    #[cfg(not(target_arch = "x86_64"))]
    #[inline]
    pub fn get() -> *mut libc::c_void {
        SLOT.with(|s| s.get())
    }

    /// Sets the slot in the calling thread.
    #[cfg(not(target_arch = "x86_64"))]
    #[inline]
    pub fn set(v: *mut libc::c_void) {
        SLOT.with(|s| s.set(v));
    }
}
