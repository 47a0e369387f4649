//! Standard input and output as the `--stdin` edge reads and writes them.
//!
//! A pipe (the usual case: another program feeds the host and reads its answers) is read
//! and written on the host's own reactor, and grown to 1 MiB if it holds less. Anything
//! else (a file, a terminal, a socket) goes through a helper thread (smol's `Unblock`),
//! because epoll cannot wait on files. The thread costs each line two hand-offs between
//! threads, which the reactor saves (docs/PERFORMANCE.md gives the round trips).
//!
//! Waiting on a pipe needs it non-blocking, and that flag belongs to the open file
//! description, which the host shares with whoever handed it the pipe (and with its own
//! stderr under `2>&1`). So the host opens the pipe anew through `/proc/self/fd`, which on
//! Linux gives a description of its own, and sets the flag only there. Without `/proc`
//! it falls back to the thread.
//!
//! Standard input's pipe is read until a read would block, and from then on only after
//! the reactor has said it holds data, which also uses up that word. Reading through
//! `Async` as it is, a host answering one line at a time made three reads per line that
//! could only answer "would block" (the one that finds the pipe empty, one more because
//! the reactor's word from the last wake-up was still unused, one when the waiting task
//! was polled again); this makes the first alone. A read after a short one is still
//! tried at once: while lines stream in, the pipe has usually been refilled, and waiting
//! for the reactor there made long runs slower.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_lite::io::{AsyncRead, AsyncWrite, BufWriter};
use smol::{Async, Unblock};

/// What the host grows a pipe it reads or writes to, if it holds less: Linux's default
/// of 64 KiB made the host and the program at the other end take turns, each waking
/// the other every 64 KiB (docs/PERFORMANCE.md). 1 MiB is what an unprivileged process
/// may ask for by default (`/proc/sys/fs/pipe-max-size`); kernel memory, taken only as
/// the pipe fills.
const PIPE_BYTES: usize = 1024 * 1024;

/// How far each helper thread may read or write ahead of the host (Unblock's default,
/// 8 MB, would read that far ahead into memory), and the size of the pipe's write buffer.
const AHEAD: usize = 64 * 1024;

/// Standard output as [`super::write`] takes it.
pub struct Output {
    /// Where the response lines go.
    pub writer: Box<dyn AsyncWrite + Send + Unpin>,
    /// Flush whenever no response is waiting: set for a pipe behind a buffer. A helper
    /// thread drains as it goes and is flushed only at the end (each flush stops it, and
    /// the next line starts another).
    pub flush_when_idle: bool,
}

/// Standard input: a pipe on the reactor, anything else through a helper thread.
pub fn input() -> Box<dyn AsyncRead + Send + Unpin> {
    match own_pipe(0, OpenOptions::new().read(true)) {
        Some(pipe) => Box::new(InputPipe {
            pipe,
            waiting: false,
        }),
        None => Box::new(Unblock::with_capacity(AHEAD, std::io::stdin())),
    }
}

/// Standard output: a pipe on the reactor behind a buffer, anything else through a
/// helper thread.
pub fn output() -> Output {
    match own_pipe(1, OpenOptions::new().write(true)) {
        Some(pipe) => Output {
            writer: Box::new(BufWriter::with_capacity(AHEAD, pipe)),
            flush_when_idle: true,
        },
        None => Output {
            writer: Box::new(Unblock::with_capacity(AHEAD, std::io::stdout())),
            flush_when_idle: false,
        },
    }
}

/// Standard input's pipe on the reactor, read until a read would block, then only once
/// the reactor has reported data.
struct InputPipe {
    pipe: Async<File>,
    /// The last read would have blocked.
    waiting: bool,
}

impl AsyncRead for InputPipe {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if this.waiting {
                ready!(this.pipe.poll_readable(cx))?;
            }
            match this.pipe.get_ref().read(buf) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => this.waiting = true,
                read => {
                    this.waiting = false;
                    return Poll::Ready(read);
                }
            }
        }
    }
}

/// A non-blocking description of its own for descriptor `fd`, on the reactor, if `fd` is
/// a pipe that can be reopened; otherwise `None` (the caller uses a thread instead).
fn own_pipe(fd: u32, options: &mut OpenOptions) -> Option<Async<File>> {
    let path = format!("/proc/self/fd/{fd}");
    if !std::fs::metadata(&path).ok()?.file_type().is_fifo() {
        return None;
    }
    // Non-blocking from the start: opening a pipe to read blocks until it has a writer,
    // and the writer may be gone already (its lines still wait in the pipe).
    let file = options.custom_flags(libc::O_NONBLOCK).open(&path).ok()?;
    // A pipe that cannot grow (a limit, an older kernel) works as it is.
    if rustix::pipe::fcntl_getpipe_size(&file).is_ok_and(|size| size < PIPE_BYTES) {
        let _ = rustix::pipe::fcntl_setpipe_size(&file, PIPE_BYTES);
    }
    Async::new(file).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{AsyncReadExt, future};
    use std::io::Write;

    #[test]
    fn reads_until_it_would_block_then_waits_for_the_reactor_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.unwrap().success());
        // The reading end first: opened non-blocking it does not wait for a writer.
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        let mut writer = OpenOptions::new().write(true).open(&path).unwrap();
        let mut input = InputPipe {
            pipe: Async::new(reader).unwrap(),
            waiting: false,
        };
        let mut buf = [0u8; 16];
        smol::block_on(async {
            writer.write_all(b"ab\n").unwrap();
            assert_eq!(input.read(&mut buf).await.unwrap(), 3);
            // Emptied: the next read would block, and the reader waits.
            assert!(future::poll_once(input.read(&mut buf)).await.is_none());
            assert!(input.waiting);
            writer.write_all(b"cd\n").unwrap();
            assert_eq!(input.read(&mut buf).await.unwrap(), 3);
            assert_eq!(&buf[..3], b"cd\n");
            assert!(!input.waiting);
            // A short read is followed by another at once: more may have come.
            writer.write_all(b"ef\n").unwrap();
            assert_eq!(input.read(&mut buf).await.unwrap(), 3);
            // The writer leaving while the reader waits is the end of input, not a hang.
            assert!(future::poll_once(input.read(&mut buf)).await.is_none());
            drop(writer);
            assert_eq!(input.read(&mut buf).await.unwrap(), 0);
        });
    }
}
