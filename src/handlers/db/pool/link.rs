//! One open connection as statements see it: the client half, its prepared-statement
//! cache, how busy it is, and whether it is stalled or retired. The socket half runs as a
//! task of the pool's ([`super::watch::drive_socket`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;
use tokio_postgres::{CancelToken, Client, Statement};

use super::super::{error, rows, types};
use super::Op;
use super::connect::Peer;
use super::socket::Duplex;
use crate::budget::Charge;
use crate::envelope::Payload;
use crate::handler::HandlerError;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

/// An open connection, shared by the statements running on it.
pub(super) struct Link {
    client: Client,
    statements: Mutex<HashMap<String, Statement>>,
    /// Statements sent and not yet answered (or about to be sent).
    in_flight: AtomicUsize,
    /// When (µs on the pool's clock) a statement last finished here, or the link last
    /// went from idle to busy.
    progress: AtomicU64,
    /// When (µs on the pool's clock) a statement (not a check) was last answered here.
    answered: AtomicU64,
    /// How long (µs) the last statement to finish here took, queueing included;
    /// [`UNPROVEN`] until one has.
    last_took: AtomicU64,
    /// The pool's count of lost connections when this one was last known good.
    checked: AtomicU64,
    /// Its statements went unanswered past the deadline: its socket task ended it.
    stalled: AtomicBool,
    /// Never chosen again: a statement on it was abandoned.
    retired: AtomicBool,
    /// Closed (or closing) by the pool: its socket task is gone.
    closed: AtomicBool,
    /// A transaction waits for its statements to end: new ones go elsewhere.
    draining: AtomicBool,
    /// Where the server is, for a cancel request.
    peer: Peer,
    /// The socket, to ask the kernel whether the server sent an idle connection anything.
    socket: Arc<dyn Duplex>,
}

/// A statement counted in flight on its link until dropped (also when cancelled).
pub(super) struct Busy<'a> {
    link: &'a Link,
    epoch: Instant,
    started: u64,
    /// The server answered it: that is progress. One left unanswered is not.
    pub(super) answered: bool,
    /// A statement's (not a check's): how long it took says how promptly the link answers.
    measured: bool,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if self.answered {
            let now = micros_since(self.epoch);
            self.link.progress.store(now, Ordering::Relaxed);
            if self.measured {
                self.link.answered.store(now, Ordering::Relaxed);
                self.link
                    .last_took
                    .store(now.saturating_sub(self.started), Ordering::Relaxed);
            }
        }
        self.link.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// [`Link::last_took`] of a connection that has answered no statement yet: how promptly
/// it answers is unknown, so it takes another only once idle.
const UNPROVEN: u64 = u64::MAX;

/// Microseconds from `epoch` (the pool's start) to now.
pub(super) fn micros_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

impl Link {
    /// A link over a connection to `peer` just opened on `socket`, known good at `checked`.
    pub(super) fn new(client: Client, peer: Peer, socket: Arc<dyn Duplex>, checked: u64) -> Link {
        Link {
            client,
            peer,
            socket,
            stalled: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            statements: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            progress: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            last_took: AtomicU64::new(UNPROVEN),
            checked: AtomicU64::new(checked),
        }
    }

    /// Counts a statement in flight here, from `now`, until the guard drops; `epoch`
    /// starts the pool's clock. Only a `measured` one (a statement, not a check) says how
    /// promptly the link answers statements.
    pub(super) fn enter(&self, epoch: Instant, now: Instant, measured: bool) -> Busy<'_> {
        let started =
            u64::try_from(now.saturating_duration_since(epoch).as_micros()).unwrap_or(u64::MAX);
        if self.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            self.progress.store(started, Ordering::Relaxed);
        }
        Busy {
            link: self,
            epoch,
            started,
            answered: false,
            measured,
        }
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether a statement sent now would be answered promptly at `now`: the link is
    /// idle, or has fewer than `depth` in flight, answered its last statement within
    /// `prompt` µs, and answered one within the last `prompt` µs. A link that has
    /// answered nothing yet takes more only once idle.
    pub(super) fn takes_more(&self, now: u64, depth: usize, prompt: u64) -> bool {
        let in_flight = self.in_flight();
        in_flight == 0
            || (in_flight < depth
                && self.last_took.load(Ordering::Relaxed) <= prompt
                && now.saturating_sub(self.answered.load(Ordering::Relaxed)) <= prompt)
    }

    /// Until when (µs) it is not yet known whether the link answers promptly: it went
    /// from idle to busy less than `prompt` µs before `now`, has answered nothing since,
    /// and takes more than it has in flight; `None` once that is known, or when it is
    /// idle, full, or answering promptly.
    pub(super) fn unknown_until(&self, now: u64, depth: usize, prompt: u64) -> Option<u64> {
        let in_flight = self.in_flight();
        let busy_since = self.progress.load(Ordering::Relaxed);
        let unanswered = busy_since > self.answered.load(Ordering::Relaxed);
        (in_flight > 0
            && in_flight < depth
            && unanswered
            && !self.takes_more(now, depth, prompt)
            && now.saturating_sub(busy_since) < prompt)
            .then(|| busy_since.saturating_add(prompt))
    }

    /// Whether the link has answered a statement (so [`Link::takes_more`] knows how
    /// promptly it answers).
    pub(super) fn is_proven(&self) -> bool {
        self.last_took.load(Ordering::Relaxed) != UNPROVEN
    }

    /// The connection ended: the link must not be chosen again.
    pub(super) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Whether the server sent this connection something not yet read (while idle that
    /// is its farewell, most likely: it ended the session), asking the kernel, not the
    /// reactor, which may not have reported it yet.
    pub(super) fn was_sent_something(&self) -> bool {
        self.socket.has_bytes_waiting()
    }

    /// When (µs on the pool's clock) a statement last finished here, or the link last
    /// went from idle to busy.
    pub(super) fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Marks the link stalled (its socket task is ending it).
    pub(super) fn stall(&self) {
        self.stalled.store(true, Ordering::Release);
    }

    pub(super) fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    /// Marks the link never to be chosen again; whether it was not already.
    pub(super) fn retire(&self) -> bool {
        !self.retired.swap(true, Ordering::AcqRel)
    }

    pub(super) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Marks (or unmarks) the link as awaited by a transaction: statements take it last.
    pub(super) fn drain(&self, on: bool) {
        self.draining.store(on, Ordering::Relaxed);
    }

    pub(super) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Marks the link closed; whether it was not already (so it is closed once).
    pub(super) fn close(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }

    /// What a cancel request for this connection needs: where, and its backend's key.
    pub(super) fn cancel_key(&self) -> (Peer, CancelToken) {
        (self.peer.clone(), self.client.cancel_token())
    }

    pub(super) fn checked(&self) -> u64 {
        self.checked.load(Ordering::Acquire)
    }

    pub(super) fn mark_checked(&self, lost: u64) {
        self.checked.fetch_max(lost, Ordering::AcqRel);
    }

    /// Whether the connection still answers (the caller bounds the wait).
    pub(super) async fn validate(&self) -> Result<(), HandlerError> {
        if self.is_closed() {
            return Err(HandlerError::execution(
                "the connection to the database was lost",
            ));
        }
        self.client
            .simple_query("")
            .await
            .map(drop)
            .map_err(error::db_error)
    }

    /// Runs `command` (`BEGIN`, `COMMIT`, `ROLLBACK`) in the simple protocol.
    pub(super) async fn command(&self, command: &str) -> Result<(), HandlerError> {
        self.client
            .batch_execute(command)
            .await
            .map_err(error::db_error)
    }

    /// Runs one statement; the rows of a query are charged to `charge` as they arrive.
    pub(super) async fn run(
        &self,
        op: Op,
        sql: &str,
        parameters: &[Value],
        charge: &Charge,
    ) -> Result<Payload, HandlerError> {
        if op == Op::Ping {
            self.client
                .simple_query("SELECT 1")
                .await
                .map_err(error::db_error)?;
            return Ok(Payload::new());
        }
        let statement = self.prepare(sql).await?;
        let sending = Sending::charge(charge, parameters)?;
        let parameters = bind(parameters, statement.params())?;
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = parameters
            .iter()
            .map(|p| &**p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let mut payload = Payload::new();
        if op == Op::Execute || (op == Op::Any && statement.columns().is_empty()) {
            let count = self
                .client
                .execute(&statement, &refs)
                .await
                .map_err(error::db_error)?;
            payload.insert("row_count".into(), count.into());
            return Ok(payload);
        }
        let rows = self
            .client
            .query_raw(&statement, refs.iter().copied())
            .await
            .map_err(error::db_error)?;
        drop(sending);
        let out = rows::collect(rows, charge).await?;
        payload.insert("row_count".into(), out.len().into());
        payload.insert("rows".into(), Value::Array(out));
        Ok(payload)
    }

    async fn prepare(&self, sql: &str) -> Result<Statement, HandlerError> {
        if let Some(statement) = self.cache().get(sql) {
            return Ok(statement.clone());
        }
        // Two statements preparing the same new SQL at once both prepare it; the cache
        // keeps one.
        let statement = self.client.prepare(sql).await.map_err(error::db_error)?;
        let mut cache = self.cache();
        if cache.len() >= STATEMENT_CACHE {
            cache.clear();
        }
        cache.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Statement>> {
        self.statements
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// A statement's parameters charged to its request while the driver holds them: encoded
/// in the bind message, and copied again into the connection's write buffer. The charge
/// is given back once the server has begun to answer (the driver has written them out by
/// then; rows are charged as they arrive) or the statement has failed.
struct Sending<'a> {
    charge: &'a Charge,
    bytes: u64,
}

impl<'a> Sending<'a> {
    fn charge(charge: &'a Charge, parameters: &[Value]) -> Result<Self, HandlerError> {
        let bytes = 2 * parameters.iter().map(encoded).sum::<u64>();
        if !charge.try_grow(bytes) {
            return Err(HandlerError::execution(
                "the statement's parameters are larger than the host can hold now (its memory budget is spent): send less, or retry",
            ));
        }
        Ok(Sending { charge, bytes })
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.charge
            .shrink_to(self.charge.bytes().saturating_sub(self.bytes));
    }
}

/// About how many bytes `value` takes encoded as a parameter: its text, or 8 for a
/// number, a boolean or null.
fn encoded(value: &Value) -> u64 {
    match value {
        Value::String(text) => text.len() as u64,
        Value::Array(items) => items.iter().map(encoded).sum(),
        Value::Object(entries) => entries
            .iter()
            .map(|(key, value)| key.len() as u64 + encoded(value))
            .sum(),
        Value::Number(_) | Value::Bool(_) | Value::Null => 8,
    }
}

/// Converts the JSON parameters to the types the prepared statement expects.
fn bind<'a>(
    parameters: &'a [Value],
    types: &[tokio_postgres::types::Type],
) -> Result<Vec<types::Param<'a>>, HandlerError> {
    parameters
        .iter()
        .zip(types)
        .enumerate()
        .map(|(index, (value, ty))| {
            let position = index + 1;
            match types::param(value, ty) {
                Some(Ok(param)) => Ok(param),
                Some(Err(())) => Err(HandlerError::InvalidPayload(format!(
                    "parameter ${position} is {ty}: expected {}",
                    types::expected(ty)
                ))),
                None => Err(HandlerError::InvalidPayload(format!(
                    "parameter ${position} is {ty}, which the db handler does not map; cast it in SQL, e.g. ${position}::text"
                ))),
            }
        })
        .collect()
}
