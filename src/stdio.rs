//! The `--stdin` edge: request lines in, one response line out for each.
//!
//! [`feed`] publishes each input line, as it is, to the host's input topic, until the
//! input ends or the host starts draining, then closes the topic; the host answers every
//! message (a malformed one with an error envelope) on its output topic, and [`write()`]
//! writes each response as one line until it has written one per line fed. With one
//! request in flight, output line `n` answers input line `n`; with more, responses come in
//! the order they finish, each naming its request in `causation_id`. Memory stays
//! bounded: bus queues are bounded, and a line longer than [`MAX_ENVELOPE_BYTES`] is cut,
//! its rest skipped, and answered with an error.

use std::io;
use std::pin::{Pin, pin};
use std::task::Poll;

use async_channel::{Receiver, Sender};
use futures_lite::io::{AsyncBufRead, AsyncWriteExt};
use futures_lite::{StreamExt, future, ready, stream};

use crate::bus::Subscription;
use crate::envelope::MAX_ENVELOPE_BYTES;
use crate::error::HostError;
use crate::host::RuntimeHost;
use crate::latch::Latch;

pub mod ends;

/// Publishes every line of `reader` to the host's input topic until the input ends or
/// `stop` is set (a line already read is still published), closes the topic, and sends
/// the number of lines published on `total`.
pub async fn feed<R: AsyncBufRead + Unpin>(
    host: &RuntimeHost,
    mut reader: R,
    stop: &Latch,
    total: Sender<u64>,
) -> Result<u64, HostError> {
    let mut line = Vec::new();
    let mut sent = 0u64;
    // One wait for the whole input, raced with each read: a wait per line would register
    // and remove a listener for every line.
    let mut stopped = pin!(stop.wait());
    let result = loop {
        let read = future::or(
            async { Some(read_line(&mut reader, &mut line, MAX_ENVELOPE_BYTES + 1).await) },
            async {
                stopped.as_mut().await;
                None
            },
        );
        match read.await {
            None | Some(Ok(false)) => break Ok(sent),
            Some(Err(error)) => {
                break Err(HostError::Io {
                    doing: "reading standard input",
                    source: error,
                });
            }
            Some(Ok(true)) => {}
        }
        if let Err(error) = host
            .bus()
            .publish(host.input_topic(), std::mem::take(&mut line))
            .await
        {
            break Err(error.into());
        }
        sent += 1;
    };
    host.bus().close_topic(host.input_topic());
    // The receiver lives as long as `write`; if it is gone, nobody needs the count.
    let _ = total.send(sent).await;
    result
}

/// Writes each response from `responses` as one line to `output`, until as many as
/// `total` announces have been written. Returns how many were written.
///
/// A burst of responses leaves in few large writes and a lone one at once: a buffered
/// pipe is flushed whenever no response is waiting; a helper thread writes whatever has
/// arrived by itself (see [`ends::Output`]).
pub async fn write(
    responses: Subscription,
    total: Receiver<u64>,
    output: ends::Output,
) -> Result<u64, HostError> {
    enum Event {
        Response(Vec<u8>),
        Total(u64),
    }
    let failed = |source| HostError::Io {
        doing: "writing standard output",
        source,
    };
    let ends::Output {
        mut writer,
        flush_when_idle,
    } = output;
    let mut events = pin!(
        responses
            .map(|delivery| Event::Response(delivery.message))
            .or(total.map(Event::Total).chain(stream::pending()))
    );
    let (mut written, mut expected) = (0u64, None);
    while expected != Some(written) {
        let next = match future::poll_once(events.next()).await {
            Some(next) => next,
            None => {
                if flush_when_idle {
                    writer.flush().await.map_err(failed)?;
                }
                events.next().await
            }
        };
        match next {
            Some(Event::Response(mut bytes)) => {
                bytes.push(b'\n');
                writer.write_all(&bytes).await.map_err(failed)?;
                written += 1;
            }
            Some(Event::Total(sent)) => expected = Some(sent),
            None => break,
        }
    }
    writer.flush().await.map_err(failed)?;
    Ok(written)
}

/// Reads the next line, without its `\n` or `\r\n`, into `line`, keeping at most `keep`
/// bytes of it and skipping the rest. Returns `false` at the end of input.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    keep: usize,
) -> io::Result<bool> {
    line.clear();
    let (mut read_any, mut ended) = (false, false);
    while !ended {
        // Each step copies what the buffer holds, up to the line's end, and consumes it
        // (in one poll: futures-lite's `fill_buf` polls twice and panics if the second
        // poll is not ready).
        let used = future::poll_fn(|cx| {
            let available = ready!(Pin::new(&mut *reader).poll_fill_buf(cx))?;
            let (chunk, used) = match memchr::memchr(b'\n', available) {
                Some(end) => {
                    ended = true;
                    (&available[..end], end + 1)
                }
                None => (available, available.len()),
            };
            // Beyond `keep` bytes the line is cut: the rest is read and dropped.
            let room = keep.saturating_sub(line.len());
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            Pin::new(&mut *reader).consume(used);
            Poll::Ready(Ok::<_, io::Error>(used))
        })
        .await?;
        if used == 0 {
            break;
        }
        read_any = true;
    }
    if ended && line.len() < keep && line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(read_any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::io::{BufReader, Cursor};

    fn lines(input: &[u8], keep: usize) -> Vec<Vec<u8>> {
        future::block_on(async {
            // A tiny buffer makes lines span several reads.
            let mut reader = BufReader::with_capacity(3, Cursor::new(input.to_vec()));
            let mut out = Vec::new();
            let mut line = Vec::new();
            while read_line(&mut reader, &mut line, keep).await.unwrap() {
                out.push(std::mem::take(&mut line));
            }
            out
        })
    }

    #[test]
    fn splits_lines_and_strips_line_endings() {
        assert_eq!(
            lines(b"ab\r\n\ncdefg\nlast", 100),
            vec![
                b"ab".to_vec(),
                b"".to_vec(),
                b"cdefg".to_vec(),
                b"last".to_vec()
            ]
        );
        assert_eq!(lines(b"", 100), Vec::<Vec<u8>>::new());
        // A carriage return ends a line only before a newline.
        assert_eq!(lines(b"a\rb\r", 100), vec![b"a\rb\r".to_vec()]);
    }

    #[test]
    fn long_lines_are_cut_and_the_rest_skipped() {
        assert_eq!(
            lines(b"0123456789\nok\n", 4),
            vec![b"0123".to_vec(), b"ok".to_vec()]
        );
        // The cut falls inside one buffer fill and the line ends several fills later.
        assert_eq!(
            lines(b"0123456789abcdef\r\nxy\r\n", 5),
            vec![b"01234".to_vec(), b"xy".to_vec()]
        );
    }
}
