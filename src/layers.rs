//! Cross-cutting behaviour around any handler, in the shape of tower's layers: each
//! wrapper implements [`Handler`] around an inner one, and the handlers never know. As
//! tower's services do, each is generic over what it wraps ([`Layered`]), so that a call
//! through a whole stack costs one allocation, not one per layer.
//!
//! | layer | what it does |
//! | --- | --- |
//! | [`retry::Retry`] | calls again after a safe, transient failure, with jittered backoff |
//! | [`rate_limit::RateLimit`] | a token bucket: waits for a token within the request's time, else refuses |
//! | [`breaker::Breaker`] | stops calling a dependency after N failures in a row, tries one call after a pause |
//! | [`timeout::Timeout`] | no call outlives the binding's `timeout_ms` or the request's deadline |
//!
//! [`wrap`] stacks them, outermost first, in that order: a retry is a new call, so it
//! passes the limiter and the breaker again and is timed on its own; the limiter's
//! refusals never reach the breaker, which counts only what the dependency did. The
//! wiring wraps every handler: one without a `config` gets the timeout layer alone, which then holds requests to their deadline
//! only. The verdict on a call (`verdict`) is the one place that reads a handler's
//! results for the layers.

/// The [`Handler`] methods a layer passes to its `inner` handler unchanged: its type,
/// name, lifecycle and whether it has a dependency are the inner handler's. (Its
/// description too, with the layer's own settings added to `limits`: each layer writes
/// that one itself.)
macro_rules! forward_to_inner {
    () => {
        fn handler_type(&self) -> $crate::handler::HandlerType {
            self.inner.handler_type()
        }

        fn name(&self) -> &'static str {
            self.inner.name()
        }

        fn initialize(
            &self,
        ) -> futures_lite::future::Boxed<Result<(), $crate::handler::HandlerError>> {
            self.inner.initialize()
        }

        fn shutdown(&self) -> futures_lite::future::Boxed<()> {
            self.inner.shutdown()
        }

        fn has_dependency(&self) -> bool {
            self.inner.has_dependency()
        }
    };
}

pub mod breaker;
pub mod clock;
pub mod rate_limit;
pub mod retry;
pub mod timeout;
mod verdict;

#[cfg(test)]
mod script;

use std::future::Future;
use std::sync::Arc;

use futures_lite::future::Boxed;

use crate::contract::HandlerConfig;
use crate::envelope::Payload;
use crate::handler::{Handler, HandlerError, HandlerRequest};
pub use clock::{Clock, ManualClock, SystemClock};
pub use retry::Jitter;

/// What a call returns.
pub type Outcome = Result<Option<Payload>, HandlerError>;

/// What a layer wraps, in the shape of tower's `Service`: a call whose future has its
/// own type rather than a box, so that a stack of layers allocates once per call, at
/// its top, instead of once per layer.
pub trait Layered: Handler + 'static {
    /// The future of one call.
    type Call: Future<Output = Outcome> + Send + Unpin + 'static;

    /// Starts a call, as [`Handler::execute`] does without boxing it.
    fn call(&self, request: HandlerRequest) -> Self::Call;
}

/// A handler at the bottom of a stack: its calls come boxed.
impl Layered for Box<dyn Handler> {
    type Call = Boxed<Outcome>;

    fn call(&self, request: HandlerRequest) -> Self::Call {
        self.execute(request)
    }
}

/// `duration` in whole milliseconds, for a description's limits.
fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `handler`, the binding `binding`, wrapped in the layers `config` asks for (none: the
/// deadline alone), on `clock`; the layers' logs name the binding when it is named.
pub fn wrap(
    handler: Box<dyn Handler>,
    binding: &str,
    config: Option<&HandlerConfig>,
    clock: &Arc<dyn Clock>,
) -> Box<dyn Handler> {
    let named = Some(binding).filter(|name| *name != handler.handler_type().as_str());
    let Some(config) = config else {
        return Box::new(timeout::Timeout::new(handler, None, Arc::clone(clock)));
    };
    let timed = timeout::Timeout::new(handler, Some(config.timeout), Arc::clone(clock));
    let guarded = breaker::Breaker::named(timed, config.circuit_breaker, Arc::clone(clock), named);
    match config.rate_limit_per_second {
        Some(rate) => {
            let limited =
                rate_limit::RateLimit::new(guarded, rate, config.timeout, Arc::clone(clock));
            retried(limited, config, binding, clock)
        }
        None => retried(guarded, config, binding, clock),
    }
}

/// `inner`, boxed, in a retry layer if `config` retries at all. Each shape of stack is a
/// type of its own, so that no box comes between its layers.
fn retried<I: Layered>(
    inner: I,
    config: &HandlerConfig,
    binding: &str,
    clock: &Arc<dyn Clock>,
) -> Box<dyn Handler> {
    if config.retry.max_retries == 0 {
        return Box::new(inner);
    }
    let jitter = Jitter::from_time();
    Box::new(retry::Retry::new(inner, config.retry, Arc::clone(clock), jitter).for_binding(binding))
}
