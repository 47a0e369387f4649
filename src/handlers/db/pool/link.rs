//! One open connection: its statements, its prepared-statement cache, and driving its
//! socket while a statement is awaited.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use futures_lite::future;
use serde_json::Value;
use smol::Timer;
use tokio_postgres::{AsyncMessage, Client, Statement};

use super::super::{error, types};
use super::Op;
use super::connect::Connection;
use crate::envelope::Payload;
use crate::handler::HandlerError;

/// How long checking a connection may take.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long closing a connection politely may take at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

/// An open connection: the client half issues statements, the connection half owns the
/// socket and must be polled for either to make progress.
pub(super) struct Link {
    client: Client,
    connection: Connection,
    statements: HashMap<String, Statement>,
    /// The pool's count of lost connections when this one was last known good.
    pub(super) checked: u64,
    /// The socket failed or closed; the link must not be used again.
    pub(super) broken: bool,
}

/// Why awaiting a statement stopped short of its result: the connection ended.
pub(super) enum Broken {
    Failed(tokio_postgres::Error),
    Closed,
}

/// Awaits `work` while polling the socket, which `work` needs to make progress. The
/// outer error means the connection ended; the inner result is the statement's own.
///
/// Each pass polls `work` (queueing its request), then the socket (writing the request,
/// reading replies), then `work` again (taking a reply just read), so that neither half
/// has to wake the task for the other: a wake-up costs the reactor a round of syscalls.
pub(super) async fn drive<T>(
    connection: &mut Connection,
    work: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<Result<T, tokio_postgres::Error>, Broken> {
    let mut work = pin!(work);
    future::poll_fn(|cx| {
        if let Poll::Ready(done) = work.as_mut().poll(cx) {
            return Poll::Ready(Ok(done));
        }
        loop {
            match connection.poll_message(cx) {
                Poll::Ready(Some(Ok(AsyncMessage::Notice(notice)))) => {
                    log::info!(handler_type = "db"; "database notice: {}", notice.message());
                }
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(Broken::Failed(error))),
                Poll::Ready(None) => return Poll::Ready(Err(Broken::Closed)),
                Poll::Pending => break,
            }
        }
        work.as_mut().poll(cx).map(Ok)
    })
    .await
}

impl Link {
    /// A link over a connection just opened, known good at `checked`.
    pub(super) fn new(client: Client, connection: Connection, checked: u64) -> Link {
        Link {
            client,
            connection,
            statements: HashMap::new(),
            checked,
            broken: false,
        }
    }

    /// [`drive`] for a statement of this link; a connection that ended marks it broken.
    async fn drive<T>(
        connection: &mut Connection,
        broken: &mut bool,
        work: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, HandlerError> {
        match drive(connection, work).await {
            Ok(done) => done.map_err(error::db_error),
            Err(ended) => {
                *broken = true;
                Err(match ended {
                    Broken::Failed(error) => error::db_error(error),
                    Broken::Closed => {
                        HandlerError::execution("the connection to the database was lost")
                    }
                })
            }
        }
    }

    /// Whether the connection still answers.
    pub(super) async fn validate(&mut self) -> bool {
        if self.broken || self.client.is_closed() {
            return false;
        }
        let Link {
            client,
            connection,
            broken,
            ..
        } = self;
        let check = future::or(
            async { Some(Link::drive(connection, broken, client.simple_query("")).await) },
            async {
                Timer::after(VALIDATION_TIMEOUT).await;
                None
            },
        );
        matches!(check.await, Some(Ok(_)))
    }

    pub(super) async fn run(
        &mut self,
        op: Op,
        sql: &str,
        parameters: &[Value],
    ) -> Result<Payload, HandlerError> {
        if op == Op::Ping {
            let Link {
                client,
                connection,
                broken,
                ..
            } = self;
            Link::drive(connection, broken, client.simple_query("SELECT 1")).await?;
            return Ok(Payload::new());
        }
        let statement = self.prepare(sql).await?;
        let parameters = bind(parameters, statement.params())?;
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = parameters
            .iter()
            .map(|p| &**p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let Link {
            client,
            connection,
            broken,
            ..
        } = self;
        let mut payload = Payload::new();
        if op == Op::Execute {
            let count = Link::drive(connection, broken, client.execute(&statement, &refs)).await?;
            payload.insert("row_count".into(), count.into());
            return Ok(payload);
        }
        let rows = Link::drive(connection, broken, client.query(&statement, &refs)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut object = Payload::new();
            for (index, column) in row.columns().iter().enumerate() {
                let value = types::column(row, index).ok_or_else(|| {
                    HandlerError::execution(format!(
                        "column '{}' has type {}, which the db handler does not map; cast it in SQL, e.g. {}::text",
                        column.name(),
                        column.type_(),
                        column.name()
                    ))
                })?;
                object.insert(column.name().to_owned(), value.map_err(error::db_error)?);
            }
            out.push(Value::Object(object));
        }
        payload.insert("row_count".into(), out.len().into());
        payload.insert("rows".into(), Value::Array(out));
        Ok(payload)
    }

    async fn prepare(&mut self, sql: &str) -> Result<Statement, HandlerError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let Link {
            client,
            connection,
            broken,
            ..
        } = self;
        let statement = Link::drive(connection, broken, client.prepare(sql)).await?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Tells the server goodbye: dropping the client queues a Terminate message, which
    /// the connection writes before it ends.
    pub(super) async fn close(self) {
        let Link {
            client,
            mut connection,
            ..
        } = self;
        drop(client);
        let ended = future::poll_fn(|cx| {
            loop {
                match connection.poll_message(cx) {
                    Poll::Ready(Some(Ok(_))) => {}
                    Poll::Ready(_) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
        });
        future::or(ended, async {
            Timer::after(CLOSE_TIMEOUT).await;
        })
        .await;
    }
}

/// Converts the JSON parameters to the types the prepared statement expects.
fn bind(
    parameters: &[Value],
    types: &[tokio_postgres::types::Type],
) -> Result<Vec<types::Param>, HandlerError> {
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
