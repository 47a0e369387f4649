//! Opening a connection: the socket on the host's reactor (smol), then tokio-postgres's
//! handshake over it. Hosts are tried in the order the connection string lists them
//! (`hostaddr` before `host` where both are given), like libpq does.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::future;
use smol::net::TcpStream;
use smol::net::unix::UnixStream;
use smol::{Async, Timer};
use tokio_postgres::config::{Host, TargetSessionAttrs};
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, SimpleQueryMessage};

use super::super::error::{endpoint, failure_reason};
use super::socket::{Duplex, Socket};
use crate::handler::HandlerError;

/// The half of a connection that owns the socket.
pub(super) type Connection = tokio_postgres::Connection<Socket, NoTlsStream>;

/// Why one attempt failed.
enum Failure {
    Io(io::Error),
    Postgres(tokio_postgres::Error),
    ReadOnly,
    TimedOut(Duration),
}

/// Opens a connection to the first host listed in `config` that accepts one.
pub(super) async fn open(config: &Config) -> Result<(Client, Connection), HandlerError> {
    let hosts = config.get_hosts();
    let addresses = config.get_hostaddrs();
    let count = hosts.len().max(addresses.len());
    // Bounds the socket and the handshake together (the handler always sets one).
    let timeout = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(Duration::MAX);
    let mut failure = None;
    for index in 0..count {
        let host = match (addresses.get(index), hosts.get(index)) {
            (Some(address), _) => Host::Tcp(address.to_string()),
            (None, Some(host)) => host.clone(),
            (None, None) => continue,
        };
        let port = config
            .get_ports()
            .get(index)
            .or(config.get_ports().first())
            .copied()
            .unwrap_or(5432);
        let attempt = future::or(attempt(config, &host, port), async {
            Timer::after(timeout).await;
            Err(Failure::TimedOut(timeout))
        });
        match attempt.await {
            Ok(pair) => return Ok(pair),
            Err(error) => failure = Some(error),
        }
    }
    let where_ = endpoint(config);
    Err(match failure {
        None => HandlerError::execution(
            "the database connection string names no host: add one, e.g. host=10.0.0.5 (an IP address works without /etc/hosts)",
        ),
        Some(Failure::Postgres(error)) => HandlerError::Execution {
            message: format!(
                "could not connect to the database at {where_}: {}",
                failure_reason(&error)
            ),
            source: Some(Box::new(error)),
        },
        Some(Failure::Io(error)) => HandlerError::Execution {
            message: format!("could not connect to the database at {where_}: {error}"),
            source: Some(Box::new(error)),
        },
        Some(Failure::ReadOnly) => HandlerError::execution(format!(
            "could not connect to the database at {where_}: it does not allow writes (target_session_attrs=read-write)"
        )),
        Some(Failure::TimedOut(after)) => HandlerError::execution(format!(
            "could not connect to the database at {where_}: no answer within {} s",
            after.as_secs_f64()
        )),
    })
}

async fn attempt(config: &Config, host: &Host, port: u16) -> Result<(Client, Connection), Failure> {
    let socket: Arc<dyn Duplex> = match host {
        Host::Tcp(name) => {
            let stream = TcpStream::connect((name.as_str(), port))
                .await
                .map_err(Failure::Io)?;
            // Statements are small writes answered at once: never wait to coalesce them.
            stream.set_nodelay(true).map_err(Failure::Io)?;
            Arc::<Async<std::net::TcpStream>>::from(stream)
        }
        Host::Unix(directory) => {
            let path = directory.join(format!(".s.PGSQL.{port}"));
            let stream = UnixStream::connect(path).await.map_err(Failure::Io)?;
            Arc::<Async<std::os::unix::net::UnixStream>>::from(stream)
        }
    };
    let (client, mut connection) = config
        .connect_raw(Socket::new(socket), NoTls)
        .await
        .map_err(Failure::Postgres)?;
    if config.get_target_session_attrs() == TargetSessionAttrs::ReadWrite {
        let rows = drive(
            &mut connection,
            client.simple_query("SHOW transaction_read_only"),
        )
        .await?
        .map_err(Failure::Postgres)?;
        let read_only = rows.iter().any(
            |message| matches!(message, SimpleQueryMessage::Row(row) if row.get(0) == Some("on")),
        );
        if read_only {
            return Err(Failure::ReadOnly);
        }
    }
    Ok((client, connection))
}

/// Awaits `work` while polling the connection it needs, before the connection has a
/// task of its own; the outer error means the connection ended.
async fn drive<T>(
    connection: &mut Connection,
    work: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<Result<T, tokio_postgres::Error>, Failure> {
    let mut work = pin!(work);
    future::poll_fn(|cx| {
        if let Poll::Ready(done) = work.as_mut().poll(cx) {
            return Poll::Ready(Ok(done));
        }
        match poll_connection(connection, cx) {
            Poll::Ready(Err(error)) => return Poll::Ready(Err(Failure::Postgres(error))),
            Poll::Ready(Ok(())) => {
                return Poll::Ready(Err(Failure::Io(io::ErrorKind::UnexpectedEof.into())));
            }
            Poll::Pending => {}
        }
        work.as_mut().poll(cx).map(Ok)
    })
    .await
}

/// Reads and writes `connection`'s socket until it would wait (`Pending`) or the
/// connection ends (`Ready`: closed, or failed): replies go to the statements waiting on
/// the client half, notices to the log.
pub(super) fn poll_connection(
    connection: &mut Connection,
    cx: &mut Context<'_>,
) -> Poll<Result<(), tokio_postgres::Error>> {
    loop {
        match connection.poll_message(cx) {
            Poll::Ready(Some(Ok(AsyncMessage::Notice(notice)))) => {
                log::info!(handler_type = "db"; "database notice: {}", notice.message());
            }
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(error)),
            Poll::Ready(None) => return Poll::Ready(Ok(())),
            Poll::Pending => return Poll::Pending,
        }
    }
}
