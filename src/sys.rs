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
pub fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// An identifier of the calling thread, unique among live threads and never
/// 0: glibc's `pthread_self()`, read from the thread pointer. Unlike a
/// `thread_local!`, which a shared library reaches through `__tls_get_addr`,
/// it costs no lookup, and `aio_poll` asks for it on every call. A thread
/// that exits may see its value reused by a later thread.
pub fn thread_id() -> u64 {
    // SAFETY: pthread_self has no preconditions and cannot fail.
    unsafe { libc::pthread_self() as u64 }
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
}
