//! Timers with closures ([`Timer`]) on each clock ([`Clock`]), and the
//! [`Sleep`] future (`aio_timer_new`, `timer_mod_ns`, `timer_del`,
//! `qemu_clock_get_ns`; util/qemu-timer.c).

use std::cell::Cell;
use std::ffi::c_void;
use std::future::Future;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use glib_sys::GSource;

use super::{Context, Shared, user};
use crate::abi::QEMUTimer;
use crate::timer::{self as core, QEMUClockType, Timer as CoreTimer};

/// The clocks timers run on (`QEMUClockType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Clock {
    /// Monotonic host time; always running.
    Realtime,
    /// Guest time; disabled (frozen: its timers do not fire) until
    /// [`Clock::set_enabled`], as in QEMU before a VM starts.
    Virtual,
    /// Wall-clock time; may jump.
    Host,
    /// Host time while the VM runs.
    VirtualRt,
}

impl Clock {
    /// All four.
    pub const ALL: [Clock; 4] = [
        Clock::Realtime,
        Clock::Virtual,
        Clock::Host,
        Clock::VirtualRt,
    ];

    fn ty(self) -> QEMUClockType {
        match self {
            Clock::Realtime => core::QEMU_CLOCK_REALTIME,
            Clock::Virtual => core::QEMU_CLOCK_VIRTUAL,
            Clock::Host => core::QEMU_CLOCK_HOST,
            Clock::VirtualRt => core::QEMU_CLOCK_VIRTUAL_RT,
        }
    }

    /// The clock's time in ns (`qemu_clock_get_ns`).
    ///
    /// ```
    /// use qaio::api::Clock;
    /// let a = Clock::Realtime.now_ns();
    /// assert!(Clock::Realtime.now_ns() >= a);
    /// ```
    pub fn now_ns(self) -> i64 {
        core::clock_get_ns(self.ty())
    }

    /// Enables or disables the clock process-wide (`qemu_clock_enable`).
    pub fn set_enabled(self, enabled: bool) {
        core::clock_enable(self.ty(), enabled)
    }

    /// Whether the clock is enabled.
    pub fn is_enabled(self) -> bool {
        core::clock_is_enabled(self.ty())
    }
}

struct TimerSlot {
    src: *mut GSource,
    f: Box<dyn Fn(&Context)>,
}

unsafe extern "C" fn timer_trampoline(opaque: *mut c_void) {
    let slot = opaque as *mut Shared<TimerSlot>;
    // SAFETY: a bound timer's slot lives until the Timer is dropped, which
    // deletes it first; timer callbacks run in the home thread.
    unsafe {
        Shared::call(slot, |s| {
            let ctx = Context::borrowed(s.src);
            user("timer", || (s.f)(&ctx))
        })
    };
}

/// A timer of a context: runs its closure once each time it is armed and
/// its clock reaches the expiry. Dropping it disarms and frees it (also from
/// inside its own callback).
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use qaio::api::Clock;
///
/// let ctx = qaio::api::Context::new().unwrap();
/// let fired = Rc::new(Cell::new(false));
/// let f = fired.clone();
/// let t = ctx.timer(Clock::Realtime, move |_| f.set(true));
/// t.arm_after(Duration::from_millis(1));
/// assert!(t.is_pending());
/// while !fired.get() {
///     ctx.poll(true);
/// }
/// assert!(!t.is_pending());
/// ```
pub struct Timer {
    ts: *mut QEMUTimer,
    slot: *mut Shared<TimerSlot>,
    clock: Clock,
    _ctx: Context,
}

impl Context {
    /// Creates an unarmed timer on `clock` running `f` (`aio_timer_new`
    /// with nanosecond scale).
    pub fn timer(&self, clock: Clock, f: impl Fn(&Context) + 'static) -> Timer {
        let slot = Shared::new(TimerSlot {
            src: self.src(),
            f: Box::new(f),
        });
        let ts = Box::into_raw(Box::<MaybeUninit<QEMUTimer>>::new_uninit()).cast::<QEMUTimer>();
        // SAFETY: fresh writable memory; the group is the live context's,
        // which the Timer keeps alive; freed only after timer_del.
        unsafe {
            core::timer_init(
                ts,
                &self.core().tlg,
                clock.ty(),
                core::SCALE_NS as i32,
                0,
                Some(timer_trampoline),
                slot.cast(),
            )
        };
        Timer {
            ts,
            slot,
            clock,
            _ctx: self.clone(),
        }
    }

    /// A future that resolves `after` from now on the realtime clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ctx = qaio::api::Context::new().unwrap();
    /// ctx.block_on(ctx.sleep(Duration::from_millis(1)));
    /// ```
    pub fn sleep(&self, after: Duration) -> Sleep {
        let deadline = Clock::Realtime.now_ns().saturating_add(duration_ns(after));
        self.sleep_until(Clock::Realtime, deadline)
    }

    /// A future that resolves once `clock` reaches `deadline_ns`.
    pub fn sleep_until(&self, clock: Clock, deadline_ns: i64) -> Sleep {
        let state = Rc::new(SleepState {
            fired: Cell::new(false),
            waker: Cell::new(None),
        });
        let s = state.clone();
        let timer = self.timer(clock, move |_| {
            s.fired.set(true);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        });
        timer.arm_at_ns(deadline_ns);
        Sleep {
            _timer: timer,
            state,
        }
    }
}

fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl Timer {
    fn core(&self) -> CoreTimer {
        // SAFETY: bound to the live context's list until Drop.
        unsafe { CoreTimer::from_raw(self.ts) }.expect("non-NULL")
    }

    /// The timer's clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Arms it for `expire_ns` on its clock, replacing an earlier expiry
    /// (`timer_mod_ns`).
    pub fn arm_at_ns(&self, expire_ns: i64) {
        self.core()
            .modify_ns(expire_ns)
            .expect("the timer is bound");
    }

    /// Arms it `after` from now on its clock.
    pub fn arm_after(&self, after: Duration) {
        self.arm_at_ns(self.clock.now_ns().saturating_add(duration_ns(after)));
    }

    /// Arms it for `expire_ns` unless it is pending at or before that
    /// (`timer_mod_anticipate_ns`).
    pub fn anticipate_ns(&self, expire_ns: i64) {
        self.core()
            .anticipate_ns(expire_ns)
            .expect("the timer is bound");
    }

    /// Disarms it (`timer_del`).
    pub fn cancel(&self) {
        self.core().delete();
    }

    /// True if armed (`timer_pending`).
    pub fn is_pending(&self) -> bool {
        self.core().is_pending()
    }

    /// The expiry in ns, if armed.
    pub fn expire_ns(&self) -> Option<i64> {
        let t = self.core().expire_time_ns();
        (t != u64::MAX).then_some(t as i64)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let t = self.core();
        t.delete();
        let _ = t.deinit();
        // SAFETY: disarmed and unbound: nothing refers to the memory, which
        // `Context::timer` allocated as a Box.
        drop(unsafe { Box::from_raw(self.ts.cast::<MaybeUninit<QEMUTimer>>()) });
        // SAFETY: the core cannot call it any more; our one release.
        unsafe { Shared::release(self.slot) };
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("clock", &self.clock)
            .field("expire_ns", &self.expire_ns())
            .finish()
    }
}

struct SleepState {
    fired: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

/// The future of [`Context::sleep`] and [`Context::sleep_until`]; its
/// timer is disarmed if it is dropped early.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    _timer: Timer,
    state: Rc<SleepState>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.state.fired.get() {
            return Poll::Ready(());
        }
        let old = self.state.waker.take();
        self.state.waker.set(Some(match old {
            Some(w) if w.will_wake(cx.waker()) => w,
            _ => cx.waker().clone(),
        }));
        Poll::Pending
    }
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("fired", &self.state.fired.get())
            .finish()
    }
}
