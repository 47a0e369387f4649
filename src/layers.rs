//! Cross-cutting behaviour around any handler, in the shape of tower's layers: each
//! wrapper implements [`Handler`] around an inner one, and the handlers never know.
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
//! refusals never reach the breaker, which counts only what the dependency did. The wiring wraps every handler: one without a
//! `config` gets the timeout layer alone, which then holds requests to their deadline
//! only. The verdict on a call (`verdict`) is the one place that reads a handler's
//! results for the layers.

/// The [`Handler`] methods a layer passes to its `inner` handler unchanged: its type,
/// name and lifecycle are the inner handler's. (Its description too, with the layer's
/// own settings added to `limits`: each layer writes that one itself.)
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

use std::sync::Arc;

use crate::contract::HandlerConfig;
use crate::handler::Handler;
pub use clock::{Clock, ManualClock, SystemClock};
pub use retry::Jitter;

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
    let mut handler: Box<dyn Handler> = Box::new(timeout::Timeout::new(
        handler,
        Some(config.timeout),
        Arc::clone(clock),
    ));
    handler = Box::new(breaker::Breaker::named(
        handler,
        config.circuit_breaker,
        Arc::clone(clock),
        named,
    ));
    if let Some(rate) = config.rate_limit_per_second {
        handler = Box::new(rate_limit::RateLimit::new(
            handler,
            rate,
            config.timeout,
            Arc::clone(clock),
        ));
    }
    if config.retry.max_retries > 0 {
        handler = Box::new(
            retry::Retry::new(
                handler,
                config.retry,
                Arc::clone(clock),
                Jitter::from_time(),
            )
            .for_binding(binding),
        );
    }
    handler
}
