//! The connection's socket as tokio-postgres reads and writes it: a smol socket behind
//! tokio's I/O traits, reading in chunks sized to the replies.
//!
//! tokio's read API hands out memory that must be zeroed before safe code may read into
//! it. The general-purpose adapter (tokio-util's `compat`) zeroes all the spare room of
//! the connection's read buffer on every read; once a large result has grown that buffer,
//! every read zeroes all of it. Measured with callgrind on one-row queries, that zeroing
//! was 28% of the host's instructions. Here each read offers (and zeroes) one chunk: it
//! doubles while replies fill it and halves while they use a quarter of it, so small
//! replies cost a small chunk and large results still arrive in large reads.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_lite::io::{AsyncRead, AsyncWrite};
use tokio::io::ReadBuf;

/// The smallest and largest read offered.
const MIN_CHUNK: usize = 1024;
const MAX_CHUNK: usize = 256 * 1024;

/// A byte stream both ways (TCP or Unix).
pub(super) trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

/// A socket for tokio-postgres.
pub(super) struct Socket {
    inner: Box<dyn Duplex>,
    /// How much the next read offers.
    chunk: usize,
}

impl Socket {
    pub(super) fn new(inner: Box<dyn Duplex>) -> Socket {
        Socket {
            inner,
            chunk: MIN_CHUNK,
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
        let offered = buf.remaining().min(this.chunk);
        let read =
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf.initialize_unfilled_to(offered)))?;
        buf.advance(read);
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
        Pin::new(&mut self.get_mut().inner).poll_write(cx, bytes)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;
    use futures_lite::io::Cursor;
    use tokio::io::AsyncRead as _;

    /// Reads everything through `socket` with a buffer of `room` bytes, returning the
    /// bytes and the chunk size offered at the end.
    fn read_all(data: Vec<u8>, room: usize) -> (Vec<u8>, usize) {
        let mut socket = Socket::new(Box::new(Cursor::new(data)));
        let mut out = Vec::new();
        let mut storage = vec![0u8; room];
        future::block_on(future::poll_fn(|cx| {
            loop {
                let mut buf = ReadBuf::new(&mut storage);
                match Pin::new(&mut socket).poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(()),
                    Poll::Ready(Ok(())) => out.extend_from_slice(buf.filled()),
                    other => panic!("{other:?}"),
                }
            }
        }));
        (out, socket.chunk)
    }

    #[test]
    fn large_replies_grow_the_chunk_and_every_byte_arrives() {
        let data: Vec<u8> = (0..1_000_000u32).map(|n| n as u8).collect();
        let (out, chunk) = read_all(data.clone(), 1 << 20);
        assert_eq!(out, data);
        // The last reads were short (the end of the data), so it shrank a little.
        assert!(chunk > MIN_CHUNK, "{chunk}");
    }

    #[test]
    fn reads_never_offer_more_than_the_buffer_has_room_for() {
        let data = vec![7u8; 10_000];
        let (out, _) = read_all(data.clone(), 100);
        assert_eq!(out, data);
    }
}
