//! Time as the layers see it: what time it is, and waiting until a given instant.
//!
//! Injected, so that the layers' tests run on a [`ManualClock`] that moves only when
//! everything else waits for it: a backoff of seconds takes no time in a test, and
//! every test sees the same instants.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures_lite::future::Boxed;

/// The source of time for the layers.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;

    /// A future that completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> Boxed<()>;
}

/// The process's own clock, on smol's timers.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> Boxed<()> {
        Box::pin(async move {
            smol::Timer::at(deadline).await;
        })
    }
}

/// A clock that moves only when told to, or when [`ManualClock::run`] finds every
/// future waiting on it: for deterministic tests.
#[derive(Debug)]
pub struct ManualClock {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    now: Instant,
    sleepers: Vec<(Instant, Waker)>,
}

impl ManualClock {
    /// A clock standing at the present instant.
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            state: Arc::new(Mutex::new(State {
                now: Instant::now(),
                sleepers: Vec::new(),
            })),
        })
    }

    /// Moves the clock on by `by`, waking whatever sleeps until then.
    pub fn advance(&self, by: Duration) {
        let woken = {
            let mut state = self.state();
            state.now += by;
            let now = state.now;
            let (due, waiting) = state.sleepers.drain(..).partition(|(at, _)| *at <= now);
            state.sleepers = waiting;
            due
        };
        for (_, waker) in woken {
            waker.wake();
        }
    }

    /// Runs `future` to completion on this thread; whenever it waits and nothing but
    /// the clock can wake it, the clock jumps to the earliest sleeper.
    ///
    /// # Panics
    ///
    /// If the future waits on something other than this clock (a test's mistake).
    pub fn run<T>(&self, future: impl Future<Output = T>) -> T {
        let mut future = std::pin::pin!(future);
        let flag = Arc::new(Flag(Mutex::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        let mut context = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(value) = future.as_mut().poll(&mut context) {
                return value;
            }
            if std::mem::take(&mut *flag.0.lock().unwrap_or_else(|p| p.into_inner())) {
                continue;
            }
            let next = {
                let state = self.state();
                let next = state.sleepers.iter().map(|(at, _)| *at).min();
                next.map(|at| at.saturating_duration_since(state.now))
            };
            match next {
                Some(by) => self.advance(by),
                None => panic!("the future waits on something other than the clock"),
            }
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

struct Flag(Mutex<bool>);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.state().now
    }

    fn sleep_until(&self, deadline: Instant) -> Boxed<()> {
        Box::pin(Sleep {
            deadline,
            state: Arc::clone(&self.state),
        })
    }
}

/// Waiting on a [`ManualClock`] until `deadline`.
struct Sleep {
    deadline: Instant,
    state: Arc<Mutex<State>>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if state.now >= self.deadline {
            return Poll::Ready(());
        }
        state
            .sleepers
            .push((self.deadline, context.waker().clone()));
        Poll::Pending
    }
}
