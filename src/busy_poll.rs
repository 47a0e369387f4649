//! Busy polling (`--busy-poll`): when the host runs out of work, its thread keeps checking
//! for I/O for a while before it goes to sleep.
//!
//! A sleeping thread costs a wake-up to resume: a context switch on a machine whose idle
//! CPUs spin, but tens of microseconds on a virtual machine whose idle vCPUs halt (a round
//! trip with a client that sends one line at a time holds two; docs/PERFORMANCE.md
//! measures them). A thread that is still checking needs none.
//! This is the trade of Linux's `busy_poll` and of KVM's halt polling: CPU time for
//! latency, at most the window's worth each time the host falls idle. Off unless asked
//! for.
//!
//! How: the host's whole future runs under `block_on`, which sleeps in the reactor only
//! when the future is pending and nothing woke it meanwhile; when something did, it takes
//! a turn of the reactor without waiting (collecting whatever I/O is ready, which wakes
//! the tasks waiting on it) and polls again. [`BusyPoll`] wakes it itself until the window
//! since the host last had work closes. "Had work" means a wake-up from anything else,
//! which the waker it hands the host records. Between passes it yields the CPU to any
//! thread that waits for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// The longest window `--busy-poll` takes, in microseconds: a second of spinning is
/// already far past any wake-up it could save.
pub const MAX_WINDOW_MICROS: u64 = 1_000_000;

/// Runs `inner`; while it is pending, keeps its thread polling for up to `window` after
/// it last had work (never, for a zero window).
pub struct BusyPoll<F> {
    inner: Pin<Box<F>>,
    window: Duration,
    /// The waker `inner` gets: it records wake-ups and passes them on.
    activity: Arc<Activity>,
    waker: Waker,
    /// When `inner` last went idle after having work.
    idle_since: Option<Instant>,
    /// The time, injectable for tests.
    now: fn() -> Instant,
}

/// Wake-ups of the host: whether there was one since the last poll, and the waker of
/// whoever polls it (`block_on`).
struct Activity {
    woken: AtomicBool,
    outer: Mutex<Option<Waker>>,
}

impl Wake for Activity {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let outer = self.outer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(outer) = outer.as_ref() {
            outer.wake_by_ref();
        }
    }
}

impl<F: Future> BusyPoll<F> {
    /// `inner`, polled busily for `window` after it last had work.
    pub fn new(inner: F, window: Duration) -> Self {
        Self::with_clock(inner, window, Instant::now)
    }

    fn with_clock(inner: F, window: Duration, now: fn() -> Instant) -> Self {
        let activity = Arc::new(Activity {
            // The first poll is work.
            woken: AtomicBool::new(true),
            outer: Mutex::new(None),
        });
        BusyPoll {
            inner: Box::pin(inner),
            window,
            waker: Waker::from(Arc::clone(&activity)),
            activity,
            idle_since: None,
            now,
        }
    }
}

impl<F: Future> Future for BusyPoll<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        if this.window.is_zero() {
            return this.inner.as_mut().poll(cx);
        }
        {
            let mut outer = this
                .activity
                .outer
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !outer
                .as_ref()
                .is_some_and(|outer| outer.will_wake(cx.waker()))
            {
                *outer = Some(cx.waker().clone());
            }
        }
        let had_work = this.activity.woken.swap(false, Ordering::Acquire);
        let result = this
            .inner
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker));
        if result.is_ready() {
            return result;
        }
        let now = (this.now)();
        let idle_since = match this.idle_since {
            Some(since) if !had_work => since,
            _ => *this.idle_since.insert(now),
        };
        if now.saturating_duration_since(idle_since) < this.window {
            // First give way to any thread waiting for this CPU (isahc's, a server's):
            // polling must not delay the very reply it waits for.
            std::thread::yield_now();
            // Wake `block_on` itself, not through the record (this wake-up is not work):
            // it takes a turn of the reactor without waiting and polls again.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::mpsc;

    /// A future that is never woken by anything and finishes on its `polls`th poll.
    fn unwoken(polls: usize) -> impl Future<Output = usize> {
        let mut count = 0;
        std::future::poll_fn(move |_| {
            count += 1;
            if count == polls {
                Poll::Ready(count)
            } else {
                Poll::Pending
            }
        })
    }

    #[test]
    fn an_idle_host_is_polled_again_unwoken_while_the_window_is_open() {
        let busy = BusyPoll::new(unwoken(1_000), Duration::from_secs(3_600));
        assert_eq!(smol::block_on(busy), 1_000);
    }

    thread_local! {
        /// Microseconds of the fake clock, one more at every reading.
        static MICROS: Cell<u64> = const { Cell::new(0) };
    }

    fn ticking() -> Instant {
        thread_local! { static EPOCH: Instant = Instant::now(); }
        let micros = MICROS.with(|m| m.replace(m.get() + 1));
        EPOCH.with(|epoch| *epoch + Duration::from_micros(micros))
    }

    #[test]
    fn the_window_closes_without_work_and_opens_again_on_a_wake_up() {
        // The fake clock reads 1 µs later at each poll: a 5 µs window gives 5 idle polls
        // after the first, then the host sleeps until something wakes it.
        let (wakers, parked) = mpsc::channel::<Waker>();
        let (polled, polls) = mpsc::channel::<usize>();
        let mut count = 0;
        let host = std::future::poll_fn(move |cx| {
            count += 1;
            polled.send(count).unwrap();
            if count == 6 || count == 12 {
                wakers.send(cx.waker().clone()).unwrap();
            }
            if count == 13 {
                Poll::Ready(count)
            } else {
                Poll::Pending
            }
        });
        let busy = BusyPoll::with_clock(host, Duration::from_micros(5), ticking);
        let runner = std::thread::spawn(move || smol::block_on(busy));
        let timeout = Duration::from_secs(10);
        for expected in 1..=6 {
            assert_eq!(polls.recv_timeout(timeout).unwrap(), expected);
        }
        // Asleep: the sixth poll was the last until the host is woken.
        let waker = parked.recv_timeout(timeout).unwrap();
        assert!(polls.try_recv().is_err());
        waker.wake();
        // The wake-up was work: another full window of polls.
        for expected in 7..=12 {
            assert_eq!(polls.recv_timeout(timeout).unwrap(), expected);
        }
        parked.recv_timeout(timeout).unwrap().wake();
        assert_eq!(polls.recv_timeout(timeout).unwrap(), 13);
        assert_eq!(runner.join().unwrap(), 13);
    }
}
