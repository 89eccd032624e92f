//! echo: the demo's workload (a loopback TCP echo server and its client on
//! one AioContext), written against qaio's safe Rust API with async tasks.
//! SPDX-License-Identifier: GPL-2.0-or-later
//!
//! An accept task spawns one echo task per connection; the client task
//! sends messages from a few bytes to 192 KiB (so sockets fill up and the
//! writers wait for writability), pacing every 16th one with a 2 ms sleep,
//! and checks every echo byte for byte. A deadline timer ends a run that
//! hangs. The workload runs with the monitor qaio picks, then with each
//! monitor forced (io_uring is skipped where the kernel refuses it), each
//! time driven by `Context::poll` and by a glib main context.
//!
//! cargo run --example echo [-- --messages N]
//! Exits 0 if every message came back intact, 1 otherwise.

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use qaio::api::{AsyncFd, Clock, Context, Fdmon, JoinHandle, MainContext};

const MAX_MESSAGE_LEN: usize = 192 * 1024;
const PACE_EVERY: usize = 16;
const PACE_DELAY: Duration = Duration::from_millis(2);
const DEADLINE: Duration = Duration::from_secs(10);

/// Message `i`: its length grows geometrically, its bytes depend on `i`.
fn message(i: usize) -> Vec<u8> {
    let len = (7usize << (i % 16)).min(MAX_MESSAGE_LEN) + i % 5;
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

/// Reads into `buf` once the fd is readable; 0 means EOF.
async fn read_some(afd: &AsyncFd, s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => afd.readable().await,
            r => return r,
        }
    }
}

/// Writes all of `data`, waiting for writability when the socket is full.
async fn write_all(afd: &AsyncFd, s: &mut TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match s.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => afd.writable().await,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Echoes one connection until EOF; returns the bytes echoed.
async fn serve(ctx: Context, mut s: TcpStream) -> std::io::Result<usize> {
    s.set_nonblocking(true)?;
    let afd = ctx.async_fd(&s).map_err(std::io::Error::other)?;
    let mut buf = vec![0; 64 * 1024];
    let mut total = 0;
    loop {
        let n = read_some(&afd, &mut s, &mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        write_all(&afd, &mut s, &buf[..n]).await?;
        total += n;
    }
}

/// Accepts connections until `conns` were served; returns the bytes echoed.
async fn accept(ctx: Context, l: TcpListener, conns: usize) -> std::io::Result<usize> {
    l.set_nonblocking(true)?;
    let afd = ctx.async_fd(&l).map_err(std::io::Error::other)?;
    let mut tasks: Vec<JoinHandle<std::io::Result<usize>>> = Vec::new();
    while tasks.len() < conns {
        match l.accept() {
            Ok((s, _)) => tasks.push(ctx.spawn(serve(ctx.clone(), s))),
            Err(e) if e.kind() == ErrorKind::WouldBlock => afd.readable().await,
            Err(e) => return Err(e),
        }
    }
    let mut total = 0;
    for t in tasks {
        total += t.await?;
    }
    Ok(total)
}

/// Sends every message and checks its echo; returns the bytes sent.
async fn client(ctx: Context, port: u16, messages: usize) -> std::io::Result<usize> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nonblocking(true)?;
    let afd = ctx.async_fd(&s).map_err(std::io::Error::other)?;
    let mut total = 0;
    let mut back = vec![0; MAX_MESSAGE_LEN + 8];
    for i in 0..messages {
        if i % PACE_EVERY == PACE_EVERY - 1 {
            ctx.sleep(PACE_DELAY).await;
        }
        let msg = message(i);
        // Send and receive concurrently: a big message does not fit in the
        // socket buffers, so the echo must be drained while sending.
        let mut sent = 0;
        let mut got = 0;
        while got < msg.len() {
            if sent < msg.len() {
                match s.write(&msg[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            match s.read(&mut back[got..msg.len()]) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if sent < msg.len() {
                        // Wake on either direction: poll both futures.
                        let mut r = std::pin::pin!(afd.readable());
                        let mut w = std::pin::pin!(afd.writable());
                        std::future::poll_fn(|cx| {
                            if r.as_mut().poll(cx).is_ready() || w.as_mut().poll(cx).is_ready() {
                                std::task::Poll::Ready(())
                            } else {
                                std::task::Poll::Pending
                            }
                        })
                        .await;
                    } else {
                        afd.readable().await;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if back[..msg.len()] != msg[..] {
            return Err(std::io::Error::other(format!(
                "message {i} came back corrupted"
            )));
        }
        total += msg.len();
    }
    s.shutdown(std::net::Shutdown::Write)?;
    Ok(total)
}

use std::future::Future;

/// One run of the workload on a fresh context; true on success.
fn run(fdmon: Option<Fdmon>, glib: bool, messages: usize) -> Result<bool, String> {
    let ctx = match fdmon {
        None => Context::new(),
        Some(m) => Context::with_fdmon(m),
    }
    .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let server = ctx.spawn(accept(ctx.clone(), listener, 1));
    let client = ctx.spawn(client(ctx.clone(), port, messages));

    let timed_out = Rc::new(Cell::new(false));
    let t = timed_out.clone();
    let deadline = ctx.timer(Clock::Realtime, move |_| t.set(true));
    deadline.arm_after(DEADLINE);

    let done = || (client.is_finished() && server.is_finished()) || timed_out.get();
    let driver = if glib {
        let main = MainContext::new();
        let src = ctx.gsource();
        src.attach(&main);
        while !done() {
            main.iteration(true);
        }
        "glib main context"
    } else {
        while !done() {
            ctx.poll(true);
        }
        "Context::poll loop"
    };
    let name = ctx.fdmon().name();
    if timed_out.get() {
        println!("echo: fdmon: {name}: {driver}: timed out after {DEADLINE:?}");
        return Ok(false);
    }
    deadline.cancel();
    let sent = ctx.block_on(client);
    let echoed = ctx.block_on(server);
    match (sent, echoed) {
        (Ok(sent), Ok(echoed)) if sent == echoed => {
            println!(
                "echo: fdmon: {name}: {driver}: {messages} messages, {sent} bytes echoed intact in {:?}",
                start.elapsed()
            );
            Ok(true)
        }
        (sent, echoed) => {
            println!("echo: fdmon: {name}: {driver}: failed: client {sent:?}, server {echoed:?}");
            Ok(false)
        }
    }
}

fn main() {
    let mut messages = 64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().and_then(|v| v.parse().ok())) {
            ("--messages", Some(n)) if n > 0 => messages = n,
            _ => {
                eprintln!("usage: echo [--messages N]");
                std::process::exit(2);
            }
        }
    }
    let mut ok = true;
    for fdmon in [
        None,
        Some(Fdmon::Poll),
        Some(Fdmon::Epoll),
        Some(Fdmon::IoUring),
    ] {
        for glib in [false, true] {
            match run(fdmon, glib, messages) {
                Ok(r) => ok &= r,
                Err(e) if fdmon == Some(Fdmon::IoUring) => {
                    println!("echo: fdmon: io_uring: skipped ({e})");
                    break;
                }
                Err(e) => {
                    println!("echo: {e}");
                    ok = false;
                }
            }
        }
    }
    std::process::exit(if ok { 0 } else { 1 });
}
