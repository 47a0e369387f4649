//! Reading a request body: within the size limit, within the time limit, and charged to
//! the host's memory budget as it arrives.
//!
//! Bodies are read as they come, concurrently, and each byte is charged before it is
//! kept, with what it will take once parsed ([`Weigher`]): so the API holds at most what
//! the budget allows, however many clients send at once. A charge that does not fit is
//! not waited for (a request holding part of the budget while waiting for more could wait
//! on one that waits for it): the request is refused with 503 and `Retry-After`.

use std::time::Duration;

use bytes::Bytes;
use futures_lite::future;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use smol::Timer;

use crate::budget::{Budget, Charge};
use crate::envelope::MAX_ENVELOPE_BYTES;
use crate::envelope::weight::{TEXT_COPIES, Weigher};

/// The most of a refused body read (and dropped as it arrives) so that the client, still
/// sending, reads the answer instead of a reset connection.
const DRAIN_LIMIT: u64 = 4 * MAX_ENVELOPE_BYTES as u64;

/// Why a body was not read whole.
#[derive(Debug)]
pub(super) enum Unread {
    /// Longer than [`MAX_ENVELOPE_BYTES`].
    TooLarge,
    /// The memory budget cannot hold it now.
    Busy,
    /// The memory budget could never hold it: it would take `0` bytes.
    TooHeavy(u64),
    /// Not all of it arrived within the time limit.
    TimedOut,
    /// The connection failed while reading it.
    Failed(hyper::Error),
}

/// A body read whole, and its charge (the bytes and what they take once parsed).
pub(super) struct Read {
    pub(super) bytes: Bytes,
    pub(super) charge: Charge,
}

/// Reads `body` whole within `timeout`, charging it to `budget` as it arrives.
pub(super) async fn read(
    body: &mut Incoming,
    budget: &std::sync::Arc<Budget>,
    timeout: Duration,
) -> Result<Read, Unread> {
    if body.size_hint().lower() > MAX_ENVELOPE_BYTES as u64 {
        return Err(Unread::TooLarge);
    }
    let length = body.size_hint().exact();
    let reading = async {
        let charge = budget.try_take(0).ok_or(Unread::Busy)?;
        let mut weigher = Weigher::default();
        let mut kept = Vec::new();
        if let Some(length) = length.filter(|&length| length > 0) {
            // A declared length is held at once, charged first with what its text takes
            // at least: a body kept in a growing buffer was copied at every doubling, and
            // a 1 MiB one held 2 MiB.
            let least = length * TEXT_COPIES;
            if least > budget.total() {
                return Err(Unread::TooHeavy(least));
            }
            if !charge.try_grow(least) {
                return Err(Unread::Busy);
            }
            kept.reserve_exact(usize::try_from(length).map_err(|_| Unread::TooLarge)?);
        }
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(Unread::Failed)?.into_data() else {
                continue;
            };
            if kept.len() + data.len() > MAX_ENVELOPE_BYTES {
                return Err(Unread::TooLarge);
            }
            weigher.feed(&data);
            let weight = weigher.weight();
            if weight > budget.total() {
                return Err(Unread::TooHeavy(weight));
            }
            if !charge.try_grow(weight.saturating_sub(charge.bytes())) {
                return Err(Unread::Busy);
            }
            kept.extend_from_slice(&data);
        }
        Ok(Read {
            bytes: Bytes::from(kept),
            charge,
        })
    };
    within(timeout, reading)
        .await
        .unwrap_or(Err(Unread::TimedOut))
}

/// Reads what is left of a refused body and drops it, for at most `timeout` and
/// [`DRAIN_LIMIT`] bytes: a client still sending then reads the answer.
pub(super) async fn drain(body: &mut Incoming, timeout: Duration) {
    let draining = async {
        let mut total = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            total += frame.data_ref().map_or(0, |data| data.len() as u64);
            if total > DRAIN_LIMIT {
                break;
            }
        }
    };
    let _ = within(timeout, draining).await;
}

/// `work`'s output, or `None` if it takes longer than `timeout`.
pub(super) async fn within<T>(timeout: Duration, work: impl Future<Output = T>) -> Option<T> {
    future::or(async { Some(work.await) }, async {
        Timer::after(timeout).await;
        None
    })
    .await
}
