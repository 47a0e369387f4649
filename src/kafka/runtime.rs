//! rdkafka's async parts on smol: the consumer's wake-up task and the producer's waits
//! for room in its queue run on smol's global executor and timers; no tokio runtime.

use std::future::Future;
use std::time::Duration;

use futures_lite::future::Boxed;
use rdkafka::util::AsyncRuntime;
use smol::Timer;

/// smol, as rdkafka's [`AsyncRuntime`].
pub(super) struct SmolRuntime;

impl AsyncRuntime for SmolRuntime {
    type Delay = Boxed<()>;

    fn spawn<T>(task: T)
    where
        T: Future<Output = ()> + Send + 'static,
    {
        smol::spawn(task).detach();
    }

    fn delay_for(duration: Duration) -> Self::Delay {
        Box::pin(async move {
            Timer::after(duration).await;
        })
    }
}
