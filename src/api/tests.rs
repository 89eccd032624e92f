//! Tests of the safe API, each run under every fd monitor (io_uring is
//! skipped where the kernel refuses it). Assertions run outside callbacks:
//! a panic inside one aborts by design.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::*;

/// Runs `f` with a fresh context of each monitor the kernel allows;
/// returns how many ran.
fn each_fdmon(f: impl Fn(&Context)) -> usize {
    let mut ran = 0;
    for m in Fdmon::ALL {
        match Context::with_fdmon(m) {
            Ok(ctx) => {
                assert_eq!(ctx.fdmon(), m);
                f(&ctx);
                ran += 1;
            }
            Err(e) if m == Fdmon::IoUring => eprintln!("io_uring skipped: {e}"),
            Err(e) => panic!("{}: {e}", m.name()),
        }
    }
    assert!(ran >= 2);
    ran
}

type Log = Rc<RefCell<Vec<&'static str>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(l: &Log, s: &'static str) {
    l.borrow_mut().push(s);
}

/// A safety net: a timer that makes a blocking poll return after `ms`.
fn guard_timer(ctx: &Context, ms: u64) -> Timer {
    let t = ctx.timer(Clock::Realtime, |_| {});
    t.arm_after(Duration::from_millis(ms));
    t
}

#[test]
fn bhs_run_once_newest_first() {
    each_fdmon(|ctx| {
        let l = log();
        let (a, b, c) = (l.clone(), l.clone(), l.clone());
        let ba = ctx.bh(move |_| push(&a, "a"));
        let bb = ctx.bh(move |_| push(&b, "b"));
        let bc = ctx.bh(move |_| push(&c, "c"));
        ba.schedule();
        bb.schedule();
        bc.schedule();
        ba.schedule();
        assert!(ctx.poll(false));
        assert_eq!(*l.borrow(), ["c", "b", "a"]);
        assert!(!ctx.poll(false));
        bb.schedule();
        bb.cancel();
        assert!(!ctx.poll(false));
        assert_eq!(l.borrow().len(), 3);
    });
}

#[test]
fn bh_deletes_itself_and_nests_a_poll() {
    each_fdmon(|ctx| {
        let l = log();
        let slot: Rc<RefCell<Option<Bh>>> = Rc::new(RefCell::new(None));
        let (l1, l2, s1) = (l.clone(), l.clone(), slot.clone());
        let inner = ctx.bh(move |_| push(&l2, "inner"));
        let inner = Rc::new(inner);
        let i1 = inner.clone();
        let bh = ctx.bh(move |ctx| {
            push(&l1, "outer-start");
            i1.schedule();
            assert!(ctx.poll(false));
            push(&l1, "outer-end");
            // Schedule ourselves, then delete ourselves: never runs again.
            s1.borrow().as_ref().unwrap().schedule();
            drop(s1.borrow_mut().take());
        });
        bh.schedule();
        *slot.borrow_mut() = Some(bh);
        assert!(ctx.poll(false));
        assert!(!ctx.poll(false));
        assert_eq!(*l.borrow(), ["outer-start", "inner", "outer-end"]);
        assert!(slot.borrow().is_none());
    });
}

#[test]
fn remote_schedules_from_other_threads() {
    each_fdmon(|ctx| {
        let n = Rc::new(Cell::new(0));
        let n2 = n.clone();
        let bh = ctx.bh(move |_| n2.set(n2.get() + 1));
        let r = bh.remote();
        let remote = ctx.remote();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            assert!(r.schedule());
            remote.schedule_oneshot(move |_| tx.send(5).unwrap());
        })
        .join()
        .unwrap();
        assert!(ctx.poll(true));
        assert_eq!(n.get(), 1);
        assert_eq!(rx.try_recv(), Ok(5));
        let r = bh.remote();
        drop(bh);
        assert!(!r.schedule());
        assert!(!ctx.poll(false));
    });
}

#[test]
fn idle_bh_is_not_progress() {
    each_fdmon(|ctx| {
        let n = Rc::new(Cell::new(0));
        let n2 = n.clone();
        let bh = ctx.bh(move |_| n2.set(n2.get() + 1));
        bh.schedule_idle();
        assert!(!ctx.poll(true));
        assert_eq!(n.get(), 1);
    });
}

#[test]
fn fd_handler_read_before_write_and_self_removal() {
    each_fdmon(|ctx| {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"x").unwrap();
        let l = log();
        let (l1, l2) = (l.clone(), l.clone());
        let h = ctx
            .fd_handler(&a)
            .on_read(move |_| push(&l1, "read"))
            .on_write(move |_| push(&l2, "write"))
            .register()
            .unwrap();
        assert!(ctx.poll(true));
        assert_eq!(*l.borrow(), ["read", "write"]);
        assert_eq!(
            ctx.fd_handler(&a).on_read(|_| {}).register().unwrap_err(),
            Error::FdInUse(h.fd())
        );
        h.set_interest(true, false);
        assert!(ctx.poll(true));
        assert_eq!(*l.borrow(), ["read", "write", "read"]);
        drop(h);
        assert!(!ctx.poll(false));

        // A handler that removes itself from its own callback.
        let slot: Rc<RefCell<Option<FdHandler>>> = Rc::new(RefCell::new(None));
        let (s1, n) = (slot.clone(), Rc::new(Cell::new(0)));
        let n1 = n.clone();
        let h = ctx
            .fd_handler(&a)
            .on_read(move |ctx| {
                n1.set(n1.get() + 1);
                drop(s1.borrow_mut().take());
                ctx.poll(false); // nested, with the handler gone
            })
            .register()
            .unwrap();
        *slot.borrow_mut() = Some(h);
        assert!(ctx.poll(true));
        assert!(!ctx.poll(false));
        assert_eq!(n.get(), 1);
    });
}

#[test]
fn io_poll_runs_io_poll_ready() {
    each_fdmon(|ctx| {
        let n = Arc::new(EventNotifier::new(false).unwrap());
        ctx.set_poll_params(10_000_000, 0, 0);
        let flag = Rc::new(Cell::new(false));
        let (reads, readies) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let (n1, r1, f1, f2, y1) = (
            n.clone(),
            reads.clone(),
            flag.clone(),
            flag.clone(),
            readies.clone(),
        );
        let _h = ctx
            .fd_handler(&*n)
            .on_read(move |_| {
                n1.test_and_clear();
                r1.set(r1.get() + 1);
            })
            .on_poll(
                move |_| f1.get(),
                move |_| {
                    f2.set(false);
                    y1.set(y1.get() + 1);
                },
            )
            .register()
            .unwrap();
        // Active once: the handler joins userspace polling.
        n.set().unwrap();
        while reads.get() == 0 {
            ctx.poll(true);
        }
        assert_eq!(reads.get(), 1, "{:?}", ctx.fdmon());
        flag.set(true);
        let _t = guard_timer(ctx, 2000);
        while readies.get() == 0 {
            ctx.poll(true);
        }
        assert_eq!(readies.get(), 1);
        assert!(!flag.get());
        ctx.set_poll_params(0, 0, 0);
    });
}

#[test]
fn event_notifier_handler() {
    each_fdmon(|ctx| {
        let n = Arc::new(EventNotifier::new(false).unwrap());
        let hits = Rc::new(Cell::new(0));
        let h1 = hits.clone();
        let h = ctx
            .event_notifier_handler(&n, move |_, n| {
                if n.test_and_clear() {
                    h1.set(h1.get() + 1)
                }
            })
            .unwrap();
        let n2 = n.clone();
        std::thread::spawn(move || n2.set().unwrap())
            .join()
            .unwrap();
        assert!(ctx.poll(true));
        assert!(!ctx.poll(false));
        assert_eq!(hits.get(), 1);
        drop(h);
        assert_eq!(Arc::strong_count(&n), 1);
    });
}

#[test]
fn timers_on_every_clock() {
    // VIRTUAL stays disabled here: the core's timer tests in this process
    // rely on that. tests/c_and_rust.rs enables it and covers it.
    each_fdmon(|ctx| {
        for clock in [Clock::Realtime, Clock::Host, Clock::VirtualRt] {
            let l = log();
            let (l1, l2) = (l.clone(), l.clone());
            let late = ctx.timer(clock, move |_| push(&l1, "late"));
            let early = ctx.timer(clock, move |_| push(&l2, "early"));
            let now = clock.now_ns();
            late.arm_at_ns(now + 2_000_000);
            early.arm_at_ns(now + 1_000_000);
            assert_eq!(early.expire_ns(), Some(now + 1_000_000));
            let cancelled = ctx.timer(clock, |_| panic!("cancelled timer ran"));
            cancelled.arm_at_ns(now);
            cancelled.cancel();
            assert!(!cancelled.is_pending());
            while late.is_pending() {
                ctx.poll(true);
            }
            assert_eq!(*l.borrow(), ["early", "late"], "{clock:?}");
        }
    });
}

#[test]
fn timer_rearms_and_frees_itself() {
    each_fdmon(|ctx| {
        let n = Rc::new(Cell::new(0));
        let slot: Rc<RefCell<Option<Timer>>> = Rc::new(RefCell::new(None));
        let (n1, s1) = (n.clone(), slot.clone());
        let t = ctx.timer(Clock::Realtime, move |_| {
            n1.set(n1.get() + 1);
            if n1.get() < 3 {
                s1.borrow().as_ref().unwrap().arm_after(Duration::ZERO);
            } else {
                drop(s1.borrow_mut().take());
            }
        });
        t.arm_after(Duration::ZERO);
        *slot.borrow_mut() = Some(t);
        while slot.borrow().is_some() {
            ctx.poll(true);
        }
        assert_eq!(n.get(), 3);
    });
}

#[test]
fn tasks_run_as_bhs_and_wake_without_allocating() {
    each_fdmon(|ctx| {
        let l = log();
        let (l1, l2) = (l.clone(), l.clone());
        let a = ctx.spawn(async move {
            push(&l1, "a");
            1
        });
        let b = ctx.spawn(async move {
            push(&l2, "b");
            2
        });
        assert!(ctx.poll(false));
        assert!(a.is_finished() && b.is_finished());
        // Newest first, as BHs.
        assert_eq!(*l.borrow(), ["b", "a"]);
        assert_eq!(ctx.block_on(async { a.await + b.await }), 3);

        // A waker woken from another thread, twice: the task runs once
        // per poll pass.
        let polls = Rc::new(Cell::new(0));
        let p = polls.clone();
        let (tx, rx) = std::sync::mpsc::channel::<std::task::Waker>();
        let h = ctx.spawn(std::future::poll_fn(move |cx| {
            p.set(p.get() + 1);
            if p.get() == 1 {
                tx.send(cx.waker().clone()).unwrap();
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        }));
        assert!(ctx.poll(false));
        let w = rx.recv().unwrap();
        std::thread::spawn(move || {
            w.wake_by_ref();
            w.wake();
        })
        .join()
        .unwrap();
        assert!(ctx.poll(true));
        assert!(h.is_finished());
        assert_eq!(polls.get(), 2);
        assert!(!ctx.poll(false));
    });
}

#[test]
fn nested_block_on_and_abort() {
    each_fdmon(|ctx| {
        let c = ctx.clone();
        let h = ctx.spawn(async move {
            // A nested loop inside a task.
            let inner = c.spawn(async { 10 });
            c.block_on(inner) + 1
        });
        assert_eq!(ctx.block_on(h), 11);

        let dropped = Rc::new(Cell::new(false));
        struct OnDrop(Rc<Cell<bool>>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.set(true)
            }
        }
        let guard = OnDrop(dropped.clone());
        let c = ctx.clone();
        let h = ctx.spawn(async move {
            let _g = guard;
            c.sleep(Duration::from_secs(3600)).await;
        });
        ctx.poll(false);
        assert!(!dropped.get());
        h.abort();
        ctx.poll(false);
        assert!(dropped.get());
    });
}

#[test]
fn sleep_and_async_fd_echo() {
    each_fdmon(|ctx| {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let c = ctx.clone();
        let server = ctx.spawn(async move {
            let afd = c.async_fd(&a).unwrap();
            let mut a = a;
            let mut total = 0;
            let mut buf = [0u8; 64];
            while total < 12 {
                afd.readable().await;
                match a.read(&mut buf) {
                    Ok(n) => {
                        afd.writable().await;
                        a.write_all(&buf[..n]).unwrap();
                        total += n;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
            total
        });
        let c = ctx.clone();
        let client = ctx.spawn(async move {
            let afd = c.async_fd(&b).unwrap();
            let mut b = b;
            let mut got = Vec::new();
            for msg in [b"ping", b"pong", b"pang"] {
                c.sleep(Duration::from_millis(1)).await;
                b.write_all(msg).unwrap();
                let mut buf = [0u8; 4];
                loop {
                    afd.readable().await;
                    if let Ok(4) = b.read(&mut buf) {
                        break;
                    }
                }
                got.extend_from_slice(&buf);
            }
            got
        });
        assert_eq!(ctx.block_on(client), b"pingpongpang");
        assert_eq!(ctx.block_on(server), 12);
        assert!(!ctx.poll(false));
    });
}

#[test]
fn sqe_requests_need_io_uring() {
    let ran = each_fdmon(|ctx| {
        if ctx.fdmon() != Fdmon::IoUring {
            assert_eq!(
                ctx.nop().unwrap_err(),
                Error::NotIoUring(ctx.fdmon()),
                "{:?}",
                ctx.fdmon()
            );
            return;
        }
        // Completions run before BHs in the same iteration.
        let l = log();
        let (l1, l2) = (l.clone(), l.clone());
        // SAFETY: a NOP points to nothing.
        unsafe {
            ctx.add_sqe(io_uring::opcode::Nop::new().build(), move |_, cqe| {
                assert_eq!(cqe.res, 0);
                push(&l1, "cqe");
            })
        }
        .unwrap();
        let mut done = false;
        let bh = ctx.bh(move |_| push(&l2, "bh"));
        while !done {
            bh.schedule();
            ctx.poll(true);
            done = l.borrow().contains(&"cqe");
        }
        let first_cqe = l.borrow().iter().position(|s| *s == "cqe").unwrap();
        assert_eq!(l.borrow()[first_cqe + 1..].first(), Some(&"bh"));

        let path = std::env::temp_dir().join(format!("qaio-api-sqe-{}", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let w = ctx.block_on(ctx.write_at(&f, b"hello ring".to_vec(), 0).unwrap());
        assert_eq!(w.res.unwrap(), 10);
        let r = ctx.block_on(ctx.read_at(&f, vec![0; 64], 6).unwrap());
        assert_eq!(r.res.unwrap(), 4);
        assert_eq!(r.buf, b"ring");
        std::fs::remove_file(&path).unwrap();
    });
    assert!(ran >= 2);
}

#[test]
fn glib_drives_the_context() {
    each_fdmon(|ctx| {
        let main = MainContext::new();
        let src = ctx.gsource();
        assert!(src.attach(&main) > 0);
        let (a, mut b) = UnixStream::pair().unwrap();
        let l = log();
        let (l1, l2, l3) = (l.clone(), l.clone(), l.clone());
        let _h = ctx
            .fd_handler(&a)
            .on_read(move |_| {
                let mut buf = [0; 1];
                (&a).read_exact(&mut buf).unwrap();
                push(&l1, "fd")
            })
            .register()
            .unwrap();
        let t = ctx.timer(Clock::Realtime, move |_| push(&l2, "timer"));
        t.arm_after(Duration::from_millis(1));
        ctx.schedule_oneshot(move |_| push(&l3, "bh"));
        b.write_all(b"x").unwrap();
        while l.borrow().len() < 3 {
            main.iteration(true);
        }
        assert_eq!(*l.borrow(), ["bh", "fd", "timer"]);
        drop(src);
    });
}

#[test]
fn raw_pointers_round_trip() {
    each_fdmon(|ctx| {
        let raw = ctx.as_raw();
        // SAFETY: a live context of this thread.
        let again = unsafe { Context::from_raw(raw) };
        assert_eq!(again.as_raw(), raw);
        drop(again);
        // Still alive: only the wrapper's own reference went.
        let n = Rc::new(Cell::new(0));
        let n1 = n.clone();
        ctx.schedule_oneshot(move |_| n1.set(1));
        assert!(ctx.poll(false));
        assert_eq!(n.get(), 1);
        ctx.make_current().unwrap();
        let other = Context::new().unwrap();
        assert_eq!(other.make_current().unwrap_err(), Error::OtherCurrent);
        Context::clear_current();
    });
}
