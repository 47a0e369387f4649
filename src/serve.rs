//! Running a started host until its work is done: its edges (standard input, the HTTP
//! API), signals, and the drain.
//!
//! - `--stdin` alone: until the input ends and every line is answered.
//! - `--listen` (with or without `--stdin`): until SIGTERM or SIGINT.
//!
//! The first SIGTERM or SIGINT starts the drain: readiness goes 503, no new input is
//! taken, requests in flight (and messages already queued) are finished within the
//! grace period. When the grace runs out, or at a second signal, everything unfinished is
//! answered with a failure saying so. Nothing taken in is left unanswered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_signal::{Signal, Signals};
use futures_lite::io::BufReader;
use futures_lite::{StreamExt, future};
use smol::{Executor, Timer};

use crate::api::{self, Api};
use crate::error::HostError;
use crate::host::RuntimeHost;
use crate::latch::Latch;
use crate::stdio;

/// Where requests come from, and how long a drain may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edges {
    /// Answer request lines from standard input.
    pub stdin: bool,
    /// Serve the HTTP API on this address.
    pub listen: Option<SocketAddr>,
    /// How long requests in flight may take to finish once draining starts.
    pub grace: Duration,
    /// How long an API client may take to send a request.
    pub request_timeout: Duration,
}

/// Starts `host` and serves it on `edges` until done; the caller shuts the host down.
/// Returns how many requests the shutdown deadline cut short.
pub async fn serve(
    host: Arc<RuntimeHost>,
    edges: &Edges,
    executor: &Arc<Executor<'static>>,
) -> Result<u64, HostError> {
    let (draining, deadline) = (Latch::new(), Latch::new());
    watch_signals(executor, &draining, &deadline)?;
    let api = match edges.listen {
        // Bound before the handlers start, so that probes see the host starting.
        Some(addr) => Some(Api::start(
            api::bind(addr)?,
            Arc::clone(&host),
            (draining.clone(), deadline.clone()),
            edges.request_timeout,
            executor,
        )),
        None => None,
    };
    let drain = {
        let (host, draining, deadline, grace) = (
            Arc::clone(&host),
            draining.clone(),
            deadline.clone(),
            edges.grace,
        );
        async move {
            draining.wait().await;
            host.begin_drain();
            Timer::after(grace).await;
            deadline.set();
        }
    };
    executor.spawn(drain).detach();

    let inputs = host.start().await?;
    if edges.stdin {
        let responses = host.bus().subscribe(host.output_topic())?;
        let (total, announced) = async_channel::bounded(1);
        let stdin = BufReader::with_capacity(64 * 1024, stdio::ends::input());
        let feeding = stdio::feed(&host, stdin, &draining, total);
        let writing = stdio::write(responses, announced, stdio::ends::output());
        future::try_zip(
            feeding,
            future::try_zip(writing, host.consume(inputs, &deadline)),
        )
        .await?;
    } else {
        // Nothing publishes to the input topic here: close it when the drain starts.
        let closing = async {
            draining.wait().await;
            host.bus().close_topic(host.input_topic());
            Ok(())
        };
        future::try_zip(closing, host.consume(inputs, &deadline)).await?;
    }
    if let Some(api) = api {
        // Every request the API took in is answered, and its response written, before
        // the handlers shut down: in full, or as cut short once the deadline passes.
        draining.wait().await;
        api.finished(&deadline).await;
    }
    Ok(host.cut_short())
}

/// The first SIGTERM or SIGINT sets `draining`; a second sets `deadline`.
fn watch_signals(
    executor: &Executor<'static>,
    draining: &Latch,
    deadline: &Latch,
) -> Result<(), HostError> {
    let mut signals =
        Signals::new([Signal::Term, Signal::Int]).map_err(|source| HostError::Io {
            doing: "installing the SIGTERM and SIGINT handlers",
            source,
        })?;
    let (draining, deadline) = (draining.clone(), deadline.clone());
    let watching = async move {
        if let Some(Ok(signal)) = signals.next().await {
            log::info!("{signal:?} received: draining");
            draining.set();
        }
        if let Some(Ok(signal)) = signals.next().await {
            log::warn!("second signal ({signal:?}): answering everything unfinished now");
            deadline.set();
        }
    };
    executor.spawn(watching).detach();
    Ok(())
}
