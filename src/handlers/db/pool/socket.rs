//! The connection's socket as tokio-postgres reads and writes it: a smol socket behind
//! tokio's I/O traits, reading in chunks sized to the replies, and asking the kernel for
//! more only once the reactor says some has arrived.
//!
//! tokio's read API hands out memory that must be zeroed before safe code may read into
//! it. The general-purpose adapter (tokio-util's `compat`) zeroes all the spare room of
//! the connection's read buffer on every read; once a large result has grown that buffer,
//! every read zeroes all of it, which dominated small queries' cost (docs/PERFORMANCE.md).
//! Here each read offers (and zeroes) one chunk: it
//! doubles while replies fill it and halves while they use a quarter of it, so small
//! replies cost a small chunk and large results still arrive in large reads.
//!
//! tokio-postgres reads until a read would block, and reads again before every write.
//! After a read that did not fill its chunk the socket has almost surely been emptied,
//! so the next read waits for the reactor's word instead: that saves the two reads per
//! statement that could only answer "would block". If bytes were left after all, the
//! reactor reports the socket readable at once (re-arming an epoll interest reports
//! what is already there), so nothing waits for them.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_lite::io::{AsyncRead, AsyncWrite};
use smol::Async;
use socket2::SockRef;
use tokio::io::ReadBuf;

/// The smallest and largest read offered.
const MIN_CHUNK: usize = 1024;
const MAX_CHUNK: usize = 256 * 1024;

/// A byte stream both ways on smol's reactor (TCP or Unix), shared by reference.
pub(super) trait Duplex: Send + Sync {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    fn poll_write(&self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>>;
    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn poll_close(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ready once the reactor has reported the socket readable since the last call that
    /// returned ready; pending (and registered for a wake-up) until then.
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Whether bytes (or the end of the stream) wait to be read now, asked of the kernel
    /// itself: the reactor may not have reported them yet.
    fn has_bytes_waiting(&self) -> bool;
}

impl<T: Send + Sync + AsFd> Duplex for Async<T>
where
    for<'a> &'a T: Read + Write,
{
    fn has_bytes_waiting(&self) -> bool {
        let mut byte = [MaybeUninit::<u8>::uninit()];
        // The socket is non-blocking: nothing waiting is `WouldBlock`; the end is Ok(0).
        SockRef::from(self.get_ref()).peek(&mut byte).is_ok()
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_read(cx, buf)
    }

    fn poll_write(&self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_write(cx, bytes)
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self).poll_flush(cx)
    }

    fn poll_close(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self).poll_close(cx)
    }

    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Async::poll_readable(self, cx)
    }
}

/// A socket for tokio-postgres.
pub(super) struct Socket {
    inner: Arc<dyn Duplex>,
    /// How much the next read offers.
    chunk: usize,
    /// The last read did not fill what it offered, or would have blocked: wait for
    /// readiness before the next.
    drained: bool,
}

impl Socket {
    pub(super) fn new(inner: Arc<dyn Duplex>) -> Socket {
        Socket {
            inner,
            chunk: MIN_CHUNK,
            drained: false,
        }
    }
}

impl tokio::io::AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.drained {
            ready!(this.inner.poll_readable(cx))?;
        }
        let offered = buf.remaining().min(this.chunk);
        // Still `drained` if this read would block: the next waits for readiness too.
        this.drained = true;
        let read = ready!(
            this.inner
                .poll_read(cx, buf.initialize_unfilled_to(offered))
        )?;
        buf.advance(read);
        this.drained = read < offered;
        if read == this.chunk {
            this.chunk = (this.chunk * 2).min(MAX_CHUNK);
        } else if read < this.chunk / 4 {
            this.chunk = (this.chunk / 2).max(MIN_CHUNK);
        }
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write(cx, bytes)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;
    use tokio::io::AsyncRead as _;

    /// A socket over one end of a Unix socket pair, and the other end.
    fn pair() -> (Socket, UnixStream) {
        let (ours, theirs) = Async::<UnixStream>::pair().expect("a socket pair");
        let theirs = theirs.into_inner().expect("the peer end");
        theirs.set_nonblocking(false).expect("a blocking peer");
        (Socket::new(Arc::new(ours)), theirs)
    }

    /// Reads once through `socket` into a buffer of `room` bytes; `None` if nothing
    /// arrives within five seconds.
    fn read_once(socket: &mut Socket, room: usize) -> Option<Vec<u8>> {
        let mut storage = vec![0u8; room];
        let read = future::poll_fn(|cx| {
            let mut buf = ReadBuf::new(&mut storage);
            Pin::new(&mut *socket)
                .poll_read(cx, &mut buf)
                .map_ok(|()| buf.filled().len())
        });
        let timeout = async {
            smol::Timer::after(Duration::from_secs(5)).await;
            None
        };
        let read = future::block_on(future::or(async { Some(read.await) }, timeout))?;
        let read = read.expect("a read");
        Some(storage[..read].to_vec())
    }

    /// Reads until the peer closes its end, returning the bytes and the chunk size
    /// offered at the end.
    fn read_all(socket: &mut Socket, room: usize) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        loop {
            let bytes = read_once(socket, room).expect("bytes or the end");
            if bytes.is_empty() {
                return (out, socket.chunk);
            }
            out.extend_from_slice(&bytes);
        }
    }

    #[test]
    fn large_replies_grow_the_chunk() {
        let (mut socket, mut peer) = pair();
        // Less than the socket buffer holds, and all of it there before the first read:
        // every read fills its chunk until the end of the data, whatever the timing.
        let data: Vec<u8> = (0..100_000u32).map(|n| n as u8).collect();
        peer.write_all(&data).expect("writes");
        drop(peer);
        let (out, chunk) = read_all(&mut socket, 1 << 20);
        assert_eq!(out, data);
        // 1, 2, … 64 KiB; the end of the data shrank it once.
        assert!(chunk > MIN_CHUNK, "{chunk}");
    }

    #[test]
    fn a_reply_larger_than_the_socket_buffer_arrives_whole() {
        let (mut socket, mut peer) = pair();
        let data: Vec<u8> = (0..1_000_000u32).map(|n| n as u8).collect();
        let sent = data.clone();
        let writer = std::thread::spawn(move || peer.write_all(&sent));
        let (out, _) = read_all(&mut socket, 1 << 20);
        writer.join().expect("the writer").expect("writes");
        assert_eq!(out, data);
    }

    #[test]
    fn reads_never_offer_more_than_the_buffer_has_room_for() {
        let (mut socket, mut peer) = pair();
        let data = vec![7u8; 10_000];
        peer.write_all(&data).expect("writes");
        drop(peer);
        let (out, _) = read_all(&mut socket, 100);
        assert_eq!(out, data);
    }

    #[test]
    fn after_a_short_read_bytes_arriving_later_or_already_there_are_read() {
        let (mut socket, mut peer) = pair();
        peer.write_all(b"abc").expect("writes");
        assert_eq!(read_once(&mut socket, 64).as_deref(), Some(&b"abc"[..]));
        assert!(socket.drained, "a short read marks the socket drained");
        // Bytes that arrived before the next read began: the reactor reports them.
        peer.write_all(b"def").expect("writes");
        assert_eq!(read_once(&mut socket, 64).as_deref(), Some(&b"def"[..]));
        // Bytes that arrive while the read waits wake it.
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            peer.write_all(b"ghi")
        });
        assert_eq!(read_once(&mut socket, 64).as_deref(), Some(&b"ghi"[..]));
        writer.join().expect("the writer").expect("writes");
    }
}
