//! A minimal `Error` API with QEMU's meaning (qapi/error.h): functions that
//! can fail take `Error **errp`; passing `&error_abort` aborts on failure,
//! `&error_fatal` prints and exits, NULL ignores the error.
//!
//! A program with its own `Error` (QEMU's util/error.c) overrides these
//! symbols, and qaio then reports errors through its `error_setg_internal`
//! (see [`set_error`]); the header leaves the declarations out where QEMU's
//! qemu/osdep.h came first. The `cfg(qaio_in_qemu)` on them is never set in
//! Rust: it tells cbindgen to wrap them in `#if !defined(QEMU_OSDEP_H)`.

use std::ffi::{CStr, CString, c_char};
use std::io::Write;

use super::guard;

/// An error report created by the library and owned by the caller, who
/// reads it with `error_get_pretty` and releases it with `error_free` or
/// `error_report_err`.
pub struct Error {
    msg: CString,
}

/// Pass `&error_abort` as `errp` to abort the program when the call fails.
#[cfg(not(qaio_in_qemu))]
#[unsafe(no_mangle)]
pub static mut error_abort: *mut Error = std::ptr::null_mut();

/// Pass `&error_fatal` as `errp` to print the error and exit(1) when the
/// call fails.
#[cfg(not(qaio_in_qemu))]
#[unsafe(no_mangle)]
pub static mut error_fatal: *mut Error = std::ptr::null_mut();

/// Reports `msg` through `errp` with QEMU's conventions.
///
/// # Safety
/// `errp` is NULL, `&error_abort`, `&error_fatal`, or points to a writable
/// `Error *` that is NULL.
pub unsafe fn set_error(func: &str, errp: *mut *mut Error, msg: String) {
    if errp.is_null() {
        return;
    }
    let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    if let Some(setg) = crate::hooks::error_setg_internal() {
        // A program with its own Error (QEMU's util/error.c) gets its own
        // kind of error; its error_abort and error_fatal are the only ones.
        let func = CString::new(func).unwrap_or_default();
        // SAFETY: QEMU's constructor, given its own errp and a "%s" format
        // with one string argument.
        unsafe {
            setg(
                errp.cast(),
                c"qaio".as_ptr(),
                0,
                func.as_ptr(),
                c"%s".as_ptr(),
                msg.as_ptr(),
            )
        };
        return;
    }
    let msg = msg.to_string_lossy().into_owned();
    if errp == &raw mut error_abort {
        let _ = writeln!(std::io::stderr(), "qaio: {func}: {msg} (error_abort)");
        std::process::abort();
    }
    if errp == &raw mut error_fatal {
        let _ = writeln!(std::io::stderr(), "qaio: {msg}");
        std::process::exit(1);
    }
    // SAFETY: per the contract errp points to a writable Error *.
    let slot = unsafe { &mut *errp };
    if !slot.is_null() {
        super::misuse(func, "errp already holds an error (*errp must be NULL)");
    }
    let msg = CString::new(msg).unwrap_or_default();
    *slot = Box::into_raw(Box::new(Error { msg }));
}

/// The human-readable message of `err`. Valid until `err` is freed.
#[cfg(not(qaio_in_qemu))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn error_get_pretty(err: *const Error) -> *const c_char {
    guard("error_get_pretty", || {
        if err.is_null() {
            super::misuse("error_get_pretty", "err must not be NULL");
        }
        // SAFETY: err was created by set_error and not yet freed.
        unsafe { (*err).msg.as_ptr() }
    })
}

/// Frees `err`; NULL is allowed and ignored.
#[cfg(not(qaio_in_qemu))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn error_free(err: *mut Error) {
    guard("error_free", || {
        if !err.is_null() {
            // SAFETY: err was created by Box::into_raw in set_error.
            drop(unsafe { Box::from_raw(err) });
        }
    })
}

/// Prints `err`'s message on stderr and frees it; NULL is ignored.
#[cfg(not(qaio_in_qemu))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn error_report_err(err: *mut Error) {
    guard("error_report_err", || {
        if err.is_null() {
            return;
        }
        // SAFETY: err was created by Box::into_raw in set_error.
        let err = unsafe { Box::from_raw(err) };
        let msg: &CStr = &err.msg;
        let _ = writeln!(std::io::stderr(), "{}", msg.to_string_lossy());
    })
}
