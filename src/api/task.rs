//! The executor: futures spawned onto a context run as bottom halves, and
//! their wakers schedule that BH (wait-free, no allocation per wake);
//! `block_on` polls a future while running the loop.

use std::cell::{Cell, UnsafeCell};
use std::ffi::c_void;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Poll, Wake, Waker};

use super::bh::BhShared;
use super::{Context, Remote, user};
use crate::bh::{BH_SCHEDULED, Bh as CoreBh};

/// What a task's waker holds: the task's BH. Waking schedules it.
struct TaskWaker(Arc<BhShared>);

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.0.schedule(BH_SCHEDULED);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.schedule(BH_SCHEDULED);
    }
}

/// The output slot shared by a task and its [`JoinHandle`].
struct JoinState<T> {
    output: Cell<Option<T>>,
    finished: Cell<bool>,
    aborted: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

/// A spawned future and what runs it. Owned by its BH: freed by the BH's
/// callback when the future finished or the task was aborted.
struct TaskCell<F: Future> {
    shared: Arc<BhShared>,
    waker: Waker,
    future: UnsafeCell<Option<F>>,
    join: Rc<JoinState<F::Output>>,
    /// A future that wakes itself while being polled (from a nested poll
    /// inside it) is polled again afterwards, never re-entrantly.
    running: Cell<bool>,
    rewake: Cell<bool>,
    /// Keeps the context alive while the task exists.
    _ctx: Context,
}

unsafe extern "C" fn task_trampoline<F: Future + 'static>(opaque: *mut c_void) {
    let cell_ptr = opaque as *mut TaskCell<F>;
    // SAFETY: the cell lives until this function frees it below, after which
    // the BH is deleted and never runs again; home thread.
    let cell = unsafe { &*cell_ptr };
    if cell.running.get() {
        cell.rewake.set(true);
        return;
    }
    let done = if cell.join.aborted.get() {
        true
    } else {
        cell.running.set(true);
        // SAFETY: only this function touches `future`, never re-entrantly
        // (`running`), and the future never moves: it lives in the boxed
        // cell until dropped in place.
        let fut = unsafe { Pin::new_unchecked((*cell.future.get()).as_mut().expect("live task")) };
        let mut cx = std::task::Context::from_waker(&cell.waker);
        let r = user("task", || fut.poll(&mut cx));
        cell.running.set(false);
        match r {
            Poll::Ready(v) => {
                cell.join.output.set(Some(v));
                true
            }
            Poll::Pending => {
                if cell.rewake.replace(false) {
                    cell.shared.schedule(BH_SCHEDULED);
                }
                false
            }
        }
    };
    if done {
        // SAFETY: not running; dropped in place, once.
        user("task drop", || unsafe { *cell.future.get() = None });
        cell.join.finished.set(true);
        if let Some(w) = cell.join.waker.take() {
            w.wake();
        }
        cell.shared.retire();
        // SAFETY: the BH is deleted, nobody else refers to the cell.
        drop(unsafe { Box::from_raw(cell_ptr) });
    }
}

impl Context {
    /// Spawns `future` onto this context: it is polled from a bottom half of
    /// the loop (in the home thread), first in the next BH pass and then
    /// whenever its waker is woken, from any thread. The task holds a
    /// reference to the context until it finishes or is aborted. Dropping
    /// the [`JoinHandle`] detaches it.
    ///
    /// ```
    /// let ctx = qaio::api::Context::new().unwrap();
    /// let h = ctx.spawn(async { 6 * 7 });
    /// assert_eq!(ctx.block_on(h), 42);
    /// ```
    pub fn spawn<F: Future + 'static>(&self, future: F) -> JoinHandle<F::Output> {
        let join = Rc::new(JoinState {
            output: Cell::new(None),
            finished: Cell::new(false),
            aborted: Cell::new(false),
            waker: Cell::new(None),
        });
        // The BH needs the cell's address and the cell the BH: fill the
        // cell's BH in after creating both.
        let cell = Box::into_raw(Box::new(TaskCell {
            shared: BhShared::new(std::ptr::null_mut()),
            waker: Waker::noop().clone(),
            future: UnsafeCell::new(Some(future)),
            join: join.clone(),
            running: Cell::new(false),
            rewake: Cell::new(false),
            _ctx: self.clone(),
        }));
        let raw = CoreBh::new(
            self.core(),
            Some(task_trampoline::<F>),
            cell.cast(),
            c"qaio::api::task".as_ptr(),
            std::ptr::null_mut(),
            0,
        );
        let shared = BhShared::new(raw);
        // SAFETY: the fresh cell; the BH is not scheduled yet.
        unsafe {
            (*cell).waker = Waker::from(Arc::new(TaskWaker(shared.clone())));
            (*cell).shared = shared.clone();
        }
        shared.schedule(BH_SCHEDULED);
        JoinHandle { join, shared }
    }

    /// Runs `future` to completion on this thread, running the loop
    /// (blocking [`poll`](Context::poll)s) while it is pending. May be called
    /// from a callback or a task (a nested poll).
    ///
    /// ```
    /// let ctx = qaio::api::Context::new().unwrap();
    /// assert_eq!(ctx.block_on(async { 1 + 1 }), 2);
    /// ```
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let flag = Arc::new(BlockOnWaker {
            woken: AtomicBool::new(true),
            remote: self.remote(),
        });
        let waker = Waker::from(flag.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        loop {
            if flag.woken.swap(false, Ordering::Acquire)
                && let Poll::Ready(v) = future.as_mut().poll(&mut cx)
            {
                return v;
            }
            if !flag.woken.load(Ordering::Acquire) {
                self.poll(true);
            }
        }
    }
}

/// The waker of [`Context::block_on`]: a flag, and a wake-up of the loop.
struct BlockOnWaker {
    woken: AtomicBool,
    remote: Remote,
}

impl Wake for BlockOnWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        // Release pairs with block_on's Acquire swap: what the waker's
        // caller wrote is visible to the next poll of the future.
        self.woken.store(true, Ordering::Release);
        self.remote.notify();
    }
}

/// The handle of a spawned task: a future of its output. Dropping it
/// detaches the task; [`abort`](JoinHandle::abort) cancels it.
pub struct JoinHandle<T> {
    join: Rc<JoinState<T>>,
    shared: Arc<BhShared>,
}

impl<T> JoinHandle<T> {
    /// True once the task's future returned (or it was aborted).
    pub fn is_finished(&self) -> bool {
        self.join.finished.get()
    }

    /// Cancels the task: its future is dropped in the loop's next BH pass
    /// (at once if it is not running; never from inside its own poll).
    ///
    /// ```
    /// use std::time::Duration;
    /// let ctx = qaio::api::Context::new().unwrap();
    /// let c = ctx.clone();
    /// let h = ctx.spawn(async move { c.sleep(Duration::from_secs(3600)).await });
    /// h.abort();
    /// ctx.poll(false);
    /// ```
    pub fn abort(self) {
        self.join.aborted.set(true);
        self.shared.schedule(BH_SCHEDULED);
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<T> {
        if let Some(v) = self.join.output.take() {
            return Poll::Ready(v);
        }
        if self.join.finished.get() {
            panic!("JoinHandle polled after its output was taken");
        }
        self.join.waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
