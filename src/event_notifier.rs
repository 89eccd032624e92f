//! `EventNotifier`: a level-triggered wake-up object backed by an eventfd
//! (or, where eventfd is missing, a non-blocking pipe). Corresponds to
//! util/event_notifier-posix.c.

use std::io;

use crate::sys::{cvt, cvt_size};

pub use crate::abi::EventNotifier;

impl EventNotifier {
    /// A notifier that owns no file descriptor yet.
    pub const fn uninit() -> Self {
        EventNotifier {
            rfd: -1,
            wfd: -1,
            initialized: false,
        }
    }

    /// Creates the underlying eventfd (or a pipe if the kernel has no
    /// eventfd), optionally already signalled.
    pub fn init(&mut self, active: bool) -> io::Result<()> {
        // SAFETY: eventfd has no memory arguments.
        match cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) }) {
            Ok(fd) => {
                self.rfd = fd;
                self.wfd = fd;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                let mut fds = [0; 2];
                // SAFETY: fds is a valid array of two ints.
                cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
                self.rfd = fds[0];
                self.wfd = fds[1];
            }
            Err(e) => return Err(e),
        }
        self.initialized = true;
        if active {
            self.set()?;
        }
        Ok(())
    }

    /// Adopts an existing eventfd for both ends.
    pub fn init_fd(&mut self, fd: libc::c_int) {
        self.rfd = fd;
        self.wfd = fd;
        self.initialized = true;
    }

    /// Closes the file descriptors; a no-op on an uninitialised notifier.
    pub fn cleanup(&mut self) {
        if !self.initialized {
            return;
        }
        // SAFETY: the fds are owned by this notifier and closed once.
        unsafe {
            if self.rfd != self.wfd {
                libc::close(self.rfd);
            }
            libc::close(self.wfd);
        }
        self.rfd = -1;
        self.wfd = -1;
        self.initialized = false;
    }

    /// Signals the notifier. A full eventfd counter or pipe already means a
    /// read is pending, so EAGAIN counts as success.
    pub fn set(&self) -> io::Result<()> {
        if !self.initialized {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        let value: u64 = 1;
        loop {
            // SAFETY: writes 8 bytes from a live u64.
            let r = unsafe { libc::write(self.wfd, (&raw const value).cast(), 8) };
            match cvt_size(r) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Drains the notifier; true if it was signalled.
    pub fn test_and_clear(&self) -> bool {
        if !self.initialized {
            return false;
        }
        // Uninitialised: only read(2) writes it, and it is never read.
        let mut buf = std::mem::MaybeUninit::<[u8; 512]>::uninit();
        let mut any = false;
        loop {
            // SAFETY: reads into a live local buffer of the given size.
            let r = unsafe { libc::read(self.rfd, buf.as_mut_ptr().cast(), 512) };
            if r > 0 {
                any = true;
                // A pipe may hold more than one buffer's worth.
                if r as usize == 512 {
                    continue;
                }
                return any;
            }
            if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return any;
        }
    }
}
