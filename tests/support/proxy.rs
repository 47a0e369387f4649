//! A loopback TCP proxy for fault injection: 127.0.0.1 only, std threads. It passes bytes
//! both ways, or blackholes them (stops forwarding and keeps every socket open, as a cut
//! network does), or resets every connection it holds (RST to both ends); and it can stop
//! taking new connections, refusing them (nothing listens) or ignoring them (nothing
//! answers a connect), while those it holds carry on. Stopped, its threads joined and its
//! sockets reset, when dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How often a pump looks at the proxy's mode.
const STEP: Duration = Duration::from_millis(10);

/// A running proxy in front of one upstream address.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    accepting: Option<JoinHandle<()>>,
    /// Set by [`Proxy::ignore_new_connections`]: a listener on the proxy's port whose
    /// accept queue the other socket fills.
    deaf: Option<(socket2::Socket, TcpStream)>,
}

struct Shared {
    upstream: SocketAddr,
    blackhole: AtomicBool,
    /// Bumped by a reset: connections from an earlier generation are reset.
    generation: AtomicU64,
    stopping: AtomicBool,
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

impl Proxy {
    /// A proxy on a free 127.0.0.1 port, forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let shared = Arc::new(Shared {
            upstream,
            blackhole: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            pumps: Mutex::new(Vec::new()),
        });
        let accepting = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept(&listener, &shared))
        };
        Proxy {
            port,
            shared,
            accepting: Some(accepting),
            deaf: None,
        }
    }

    /// Stops listening: a new connection is refused (RST), as by a server that is down.
    /// The connections open now carry on.
    pub fn refuse_new_connections(&mut self) {
        self.stop_accepting();
    }

    /// Stops answering new connections, as a server cut off from the network does: its
    /// port is taken over by a listener whose accept queue is full, so the kernel drops
    /// every new SYN and a connect waits (for minutes, retrying). The connections open
    /// now carry on.
    pub fn ignore_new_connections(&mut self) {
        self.stop_accepting();
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket");
        // The connections the proxy accepted still hold the port.
        socket.set_reuse_address(true).expect("SO_REUSEADDR");
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], self.port)).into())
            .expect("the proxy's port");
        // A backlog of 0 queues one connection, never accepted: this one.
        socket.listen(0).expect("listens");
        let filler = TcpStream::connect(("127.0.0.1", self.port)).expect("fills the queue");
        self.deaf = Some((socket, filler));
    }

    /// Ends the accepting thread, closing the listener.
    fn stop_accepting(&mut self) {
        let Some(accepting) = self.accepting.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the blocking accept.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        let _ = accepting.join();
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops forwarding (`true`) or forwards again (`false`); sockets stay open.
    pub fn blackhole(&self, on: bool) {
        self.shared.blackhole.store(on, Ordering::SeqCst);
    }

    /// Resets every connection open now (RST to both ends) and returns once they are gone.
    pub fn reset(&self) {
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        let pumps = std::mem::take(&mut *self.shared.pumps.lock().expect("the pumps"));
        for pump in pumps {
            pump.join().expect("a pump");
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop_accepting();
        self.reset();
    }
}

fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let generation = shared.generation.load(Ordering::SeqCst);
        // Blackholed: the client's connect succeeds, and nothing ever answers it.
        let server = if shared.blackhole.load(Ordering::SeqCst) {
            None
        } else {
            TcpStream::connect(shared.upstream).ok()
        };
        let Some(server) = server else {
            let shared_for_hold = Arc::clone(shared);
            let held = thread::spawn(move || hold(&client, &shared_for_hold, generation));
            shared.pumps.lock().expect("the pumps").push(held);
            continue;
        };
        for (from, to) in [
            (client.try_clone(), server.try_clone()),
            (server.try_clone(), client.try_clone()),
        ] {
            let (Ok(from), Ok(to)) = (from, to) else {
                continue;
            };
            let shared_for_pump = Arc::clone(shared);
            let pump = thread::spawn(move || pump(from, to, &shared_for_pump, generation));
            shared.pumps.lock().expect("the pumps").push(pump);
        }
    }
}

/// Copies `from` to `to` while passing; idles while blackholed (holding what it read, to
/// pass once it passes again); resets both at a reset.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared, generation: u64) {
    let _ = from.set_read_timeout(Some(STEP));
    let mut buffer = [0u8; 16 * 1024];
    loop {
        if shared.generation.load(Ordering::SeqCst) != generation {
            return reset(&from, &to);
        }
        if shared.blackhole.load(Ordering::SeqCst) {
            thread::sleep(STEP);
            continue;
        }
        match from.read(&mut buffer) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(read) => {
                // Blackholed while the read waited: the bytes wait too, so that nothing
                // passes once `blackhole(true)` has returned.
                while shared.blackhole.load(Ordering::SeqCst) {
                    if shared.generation.load(Ordering::SeqCst) != generation {
                        return reset(&from, &to);
                    }
                    thread::sleep(STEP);
                }
                if to.write_all(&buffer[..read]).is_err() {
                    return;
                }
            }
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// Holds a client accepted while blackholed, answering nothing, until a reset.
fn hold(client: &TcpStream, shared: &Shared, generation: u64) {
    while shared.generation.load(Ordering::SeqCst) == generation {
        thread::sleep(STEP);
    }
    reset(client, client);
}

/// Closes with SO_LINGER 0, so the kernel sends RST, not FIN (once every copy is dropped).
fn reset(a: &TcpStream, b: &TcpStream) {
    for stream in [a, b] {
        let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
    }
}
