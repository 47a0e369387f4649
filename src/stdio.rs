//! The `--stdin` edge: request lines in, one response line out for each, in order.
//!
//! Each input line is published, as it is, to the host's input topic; the host answers
//! every message (a malformed one with an error envelope) on its output topic, and each
//! response is written as one line. The host answers in order, so output line `n`
//! answers input line `n`. At the end of input, once every line is answered, the host
//! is told to stop. Memory stays bounded: the bus queues are bounded, and a line longer
//! than [`MAX_ENVELOPE_BYTES`] is cut, its rest skipped, and answered with an error.

use std::io;
use std::pin::pin;

use futures_lite::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures_lite::{StreamExt, future, stream};

use crate::bus::Subscription;
use crate::envelope::MAX_ENVELOPE_BYTES;
use crate::error::{ErrorKind, RuntimeHostError};
use crate::host::RuntimeHost;

/// Serves `host` from `reader` to `writer` until `reader` ends and every line is
/// answered; `inputs` is the subscription [`RuntimeHost::start`] returned. Returns the
/// number of lines answered.
pub async fn serve<R, W>(
    host: &RuntimeHost,
    inputs: Subscription,
    mut reader: R,
    mut writer: W,
) -> Result<u64, RuntimeHostError>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let responses = host.bus().subscribe(host.output_topic())?;
    let (total_tx, total_rx) = async_channel::bounded::<u64>(1);
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);

    let feed = async {
        let mut line = Vec::new();
        let mut sent = 0u64;
        while read_line(&mut reader, &mut line, MAX_ENVELOPE_BYTES + 1)
            .await
            .map_err(io("reading standard input"))?
        {
            host.bus()
                .publish(host.input_topic(), std::mem::take(&mut line))
                .await?;
            sent += 1;
        }
        // The receiver lives as long as `drain`; if it is gone, so is the need to tell it.
        let _ = total_tx.send(sent).await;
        Ok::<_, RuntimeHostError>(sent)
    };

    let drain = async {
        enum Event {
            Response(Vec<u8>),
            Total(u64),
        }
        let mut events = pin!(
            responses
                .map(Event::Response)
                .or(total_rx.map(Event::Total).chain(stream::pending()))
        );
        let (mut written, mut total) = (0u64, None);
        while total != Some(written) {
            // Flush only when nothing else is ready, so a burst costs one write.
            let event = match future::poll_once(events.next()).await {
                Some(event) => event,
                None => {
                    writer
                        .flush()
                        .await
                        .map_err(io("writing standard output"))?;
                    events.next().await
                }
            };
            match event {
                Some(Event::Response(mut bytes)) => {
                    bytes.push(b'\n');
                    writer
                        .write_all(&bytes)
                        .await
                        .map_err(io("writing standard output"))?;
                    written += 1;
                }
                Some(Event::Total(sent)) => total = Some(sent),
                None => break,
            }
        }
        writer
            .flush()
            .await
            .map_err(io("writing standard output"))?;
        drop(stop_tx);
        Ok(written)
    };

    let hosting = host.run(inputs, async {
        let _ = stop_rx.recv().await;
    });
    let (_, (written, _)) = future::try_zip(feed, future::try_zip(drain, hosting)).await?;
    Ok(written)
}

fn io(doing: &'static str) -> impl Fn(io::Error) -> RuntimeHostError {
    move |source| ErrorKind::Io { doing, source }.into()
}

/// Reads the next line, without its `\n` or `\r\n`, into `line`, keeping at most `keep`
/// bytes of it and skipping the rest. Returns `false` at the end of input.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    keep: usize,
) -> io::Result<bool> {
    line.clear();
    let limit = u64::try_from(keep).unwrap_or(u64::MAX);
    if (&mut *reader).take(limit).read_until(b'\n', line).await? == 0 {
        return Ok(false);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if line.len() == keep {
        // Cut at `keep` bytes: skip to the end of the line, a bounded chunk at a time.
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let read = (&mut *reader)
                .take(64 * 1024)
                .read_until(b'\n', &mut rest)
                .await?;
            if read == 0 || rest.last() == Some(&b'\n') {
                break;
            }
        }
    }
    Ok(true)
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
    }

    #[test]
    fn long_lines_are_cut_and_the_rest_skipped() {
        assert_eq!(
            lines(b"0123456789\nok\n", 4),
            vec![b"0123".to_vec(), b"ok".to_vec()]
        );
    }
}
