//! A C fd handler and Rust tasks on one context: the C side is driven
//! through the exported C ABI (`aio_set_fd_handler`, `aio_context_new`,
//! `aio_context_unref`), as a C program would, and both see QEMU's order
//! within an iteration: BHs (tasks are BHs) before fd handlers before
//! timers. Under each monitor.

use std::cell::RefCell;
use std::ffi::c_void;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use qaio::api::{Clock, Context, Fdmon};
use qaio::ffi::aio::{aio_context_new, aio_context_unref, aio_set_fd_handler};

/// What the C handler sees through its opaque pointer.
struct CSide {
    sock: UnixStream,
    log: Rc<RefCell<Vec<&'static str>>>,
    waker: RefCell<Option<Waker>>,
}

/// The C handler: drains the socket, logs, wakes the Rust task.
unsafe extern "C" fn c_read(opaque: *mut c_void) {
    // SAFETY: registered with a CSide that outlives the registration.
    let c = unsafe { &*(opaque as *const CSide) };
    let mut buf = [0; 16];
    let _ = (&c.sock).read(&mut buf);
    c.log.borrow_mut().push("c-fd");
    if let Some(w) = c.waker.borrow_mut().take() {
        w.wake();
    }
}

fn each_fdmon(f: impl Fn(&Context)) {
    for m in Fdmon::ALL {
        match Context::with_fdmon(m) {
            Ok(ctx) => f(&ctx),
            Err(e) if m == Fdmon::IoUring => eprintln!("io_uring skipped: {e}"),
            Err(e) => panic!("{}: {e}", m.name()),
        }
    }
}

#[test]
fn c_handler_and_rust_task_see_qemu_order() {
    each_fdmon(|ctx| {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let log = Rc::new(RefCell::new(Vec::new()));
        let c = Box::new(CSide {
            sock: a,
            log: log.clone(),
            waker: RefCell::new(None),
        });
        let opaque = &*c as *const CSide as *mut c_void;
        // SAFETY: a live context and a callback/opaque pair valid until the
        // handler is removed below.
        unsafe {
            aio_set_fd_handler(
                ctx.as_raw(),
                c.sock.as_raw_fd(),
                Some(c_read),
                None,
                None,
                None,
                opaque,
            )
        };
        // The task parks its waker where the C handler finds it, three times.
        let (l, cref) = (log.clone(), &*c as *const CSide);
        let task = ctx.spawn(std::future::poll_fn(move |cx| {
            l.borrow_mut().push("task");
            if l.borrow().iter().filter(|s| **s == "task").count() == 3 {
                return Poll::Ready(());
            }
            // SAFETY: the CSide outlives the task (it finishes first).
            *unsafe { &*cref }.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }));
        let l = log.clone();
        let timer = ctx.timer(Clock::Realtime, move |_| l.borrow_mut().push("timer"));
        // One iteration with all three ready: the task's BH, then the C fd
        // handler, then the expired timer.
        b.write_all(b"1").unwrap();
        timer.arm_at_ns(0);
        while log.borrow().len() < 3 {
            ctx.poll(true);
        }
        assert_eq!(
            *log.borrow(),
            ["task", "c-fd", "timer"],
            "{:?}",
            ctx.fdmon()
        );
        // The C handler woke the task: it runs in the next BH pass, before
        // the next fd event is dispatched.
        b.write_all(b"2").unwrap();
        while log.borrow().len() < 5 {
            ctx.poll(true);
        }
        assert_eq!(log.borrow()[3..], ["task", "c-fd"], "{:?}", ctx.fdmon());
        while !task.is_finished() {
            ctx.poll(true);
        }
        assert_eq!(log.borrow()[5..], ["task"]);
        // SAFETY: removes the C handler before `c` goes.
        unsafe {
            aio_set_fd_handler(
                ctx.as_raw(),
                c.sock.as_raw_fd(),
                None,
                None,
                None,
                None,
                std::ptr::null_mut(),
            )
        };
        assert!(!ctx.poll(false));
    });
}

#[test]
fn rust_tasks_on_a_context_created_by_c() {
    // SAFETY: NULL errp is allowed; the context is released below.
    let raw = unsafe { aio_context_new(std::ptr::null_mut()) };
    assert!(!raw.is_null());
    {
        // SAFETY: a live context, used from this thread only.
        let ctx = unsafe { Context::from_raw(raw) };
        let c = ctx.clone();
        let v = ctx.block_on(ctx.spawn(async move {
            c.sleep(Duration::from_millis(1)).await;
            7
        }));
        assert_eq!(v, 7);
    }
    // The wrappers dropped only their own references: C's is still there.
    // SAFETY: C's own reference, dropped once.
    unsafe { aio_context_unref(raw) };
}

#[test]
fn virtual_clock_timers() {
    // Its own process: enabling VIRTUAL cannot disturb other tests.
    Clock::Virtual.set_enabled(true);
    each_fdmon(|ctx| {
        let fired = Rc::new(RefCell::new(0));
        let f = fired.clone();
        let t = ctx.timer(Clock::Virtual, move |_| *f.borrow_mut() += 1);
        t.arm_after(Duration::from_millis(1));
        let c = ctx.clone();
        ctx.block_on(async move {
            c.sleep_until(Clock::Virtual, Clock::Virtual.now_ns() + 2_000_000)
                .await
        });
        while t.is_pending() {
            ctx.poll(true);
        }
        assert_eq!(*fired.borrow(), 1);
    });
}
