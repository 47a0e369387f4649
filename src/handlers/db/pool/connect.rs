//! Opening a connection: the socket on the host's reactor (smol), with the connection
//! string's TCP keepalive and user timeout, then tokio-postgres's handshake over it. Hosts
//! are tried in the order the connection string lists them (`hostaddr` before `host` where
//! both are given), like libpq does; `connect_timeout` bounds each.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
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

/// The server end a connection reached: where a cancel request for it must go.
#[derive(Clone, Debug)]
pub(super) enum Peer {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Where the server is, as log lines name it: `127.0.0.1:5432`, or the socket's path.
impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(address) => address.fmt(f),
            Peer::Unix(path) => path.display().fmt(f),
        }
    }
}

impl Peer {
    /// Connects a new socket to the same server.
    pub(super) async fn connect(&self) -> io::Result<Arc<dyn Duplex>> {
        Ok(match self {
            Peer::Tcp(address) => Arc::new(Async::<std::net::TcpStream>::connect(*address).await?),
            Peer::Unix(path) => {
                Arc::new(Async::<std::os::unix::net::UnixStream>::connect(path).await?)
            }
        })
    }
}

/// Why one attempt failed.
enum Failure {
    Io(io::Error),
    Postgres(tokio_postgres::Error),
    ReadOnly,
    TimedOut(Duration),
}

/// Opens a connection to the first host listed in `config` that accepts one.
/// An open connection: the client half, the socket half, where it goes, and the socket
/// itself (to see, before a statement, whether an idle connection was sent something).
pub(super) type Opened = (Client, Connection, Peer, Arc<dyn Duplex>);

/// Its logs name the binding `binding`.
pub(super) async fn open(config: &Config, binding: &str) -> Result<Opened, HandlerError> {
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
        let attempt = future::or(attempt(config, &host, port, binding), async {
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

async fn attempt(
    config: &Config,
    host: &Host,
    port: u16,
    binding: &str,
) -> Result<Opened, Failure> {
    let (socket, peer): (Arc<dyn Duplex>, Peer) = match host {
        Host::Tcp(name) => {
            let stream = TcpStream::connect((name.as_str(), port))
                .await
                .map_err(Failure::Io)?;
            // Statements are small writes answered at once: never wait to coalesce them.
            stream.set_nodelay(true).map_err(Failure::Io)?;
            let peer = Peer::Tcp(stream.peer_addr().map_err(Failure::Io)?);
            let stream = Arc::<Async<std::net::TcpStream>>::from(stream);
            tcp_options(config, stream.get_ref()).map_err(Failure::Io)?;
            (stream, peer)
        }
        Host::Unix(directory) => {
            let path = directory.join(format!(".s.PGSQL.{port}"));
            let stream = UnixStream::connect(&path).await.map_err(Failure::Io)?;
            let stream = Arc::<Async<std::os::unix::net::UnixStream>>::from(stream);
            (stream, Peer::Unix(path))
        }
    };
    let (client, mut connection) = config
        .connect_raw(Socket::new(Arc::clone(&socket)), NoTls)
        .await
        .map_err(Failure::Postgres)?;
    if config.get_target_session_attrs() == TargetSessionAttrs::ReadWrite {
        let rows = drive(
            &mut connection,
            client.simple_query("SHOW transaction_read_only"),
            binding,
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
    Ok((client, connection, peer, socket))
}

/// Applies the connection string's `keepalives*` and `tcp_user_timeout` to `stream`, as
/// libpq does: they are what notices a peer that vanished without closing (a host down,
/// a network cut) while nothing is being sent or while sent data stays unacknowledged.
fn tcp_options(config: &Config, stream: &std::net::TcpStream) -> io::Result<()> {
    let socket = socket2::SockRef::from(stream);
    if config.get_keepalives() {
        let mut keepalive = socket2::TcpKeepalive::new().with_time(config.get_keepalives_idle());
        if let Some(interval) = config.get_keepalives_interval() {
            keepalive = keepalive.with_interval(interval);
        }
        if let Some(retries) = config.get_keepalives_retries() {
            keepalive = keepalive.with_retries(retries);
        }
        socket.set_tcp_keepalive(&keepalive)?;
    }
    // libpq reads `tcp_user_timeout` in milliseconds; tokio-postgres's parser stores the
    // number as seconds, so the number is taken back out and read as libpq does.
    if let Some(timeout) = config.get_tcp_user_timeout() {
        socket.set_tcp_user_timeout(Some(Duration::from_millis(timeout.as_secs())))?;
    }
    Ok(())
}

/// Awaits `work` while polling the connection it needs, before the connection has a
/// task of its own (for the binding `binding`); the outer error means the connection
/// ended.
async fn drive<T>(
    connection: &mut Connection,
    work: impl Future<Output = Result<T, tokio_postgres::Error>>,
    binding: &str,
) -> Result<Result<T, tokio_postgres::Error>, Failure> {
    let mut work = pin!(work);
    future::poll_fn(|cx| {
        if let Poll::Ready(done) = work.as_mut().poll(cx) {
            return Poll::Ready(Ok(done));
        }
        match poll_connection(connection, cx, binding) {
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
/// the client half, notices to the log, naming the binding `binding`.
pub(super) fn poll_connection(
    connection: &mut Connection,
    cx: &mut Context<'_>,
    binding: &str,
) -> Poll<Result<(), tokio_postgres::Error>> {
    loop {
        match connection.poll_message(cx) {
            Poll::Ready(Some(Ok(AsyncMessage::Notice(notice)))) => {
                log::info!(handler_type = "db", binding; "database notice: {}", notice.message());
            }
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(error)),
            Poll::Ready(None) => return Poll::Ready(Ok(())),
            Poll::Pending => return Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn the_connection_strings_tcp_settings_reach_the_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let stream = std::net::TcpStream::connect(listener.local_addr().expect("an address"))
            .expect("connects");
        let config = Config::from_str(
            "host=127.0.0.1 keepalives_idle=7 keepalives_interval=3 keepalives_retries=4 tcp_user_timeout=1500",
        )
        .expect("a connection string");
        tcp_options(&config, &stream).expect("applies");
        let socket = socket2::SockRef::from(&stream);
        assert!(socket.keepalive().expect("reads"));
        assert_eq!(
            socket.tcp_keepalive_time().expect("reads"),
            Duration::from_secs(7)
        );
        assert_eq!(
            socket.tcp_keepalive_interval().expect("reads"),
            Duration::from_secs(3)
        );
        assert_eq!(socket.tcp_keepalive_retries().expect("reads"), 4);
        assert_eq!(
            socket.tcp_user_timeout().expect("reads"),
            Some(Duration::from_millis(1500))
        );

        let off = Config::from_str("host=127.0.0.1 keepalives=0").expect("a connection string");
        let other = std::net::TcpStream::connect(listener.local_addr().expect("an address"))
            .expect("connects");
        tcp_options(&off, &other).expect("applies");
        assert!(!socket2::SockRef::from(&other).keepalive().expect("reads"));
    }
}
