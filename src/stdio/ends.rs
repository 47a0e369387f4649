//! Standard input and output as the `--stdin` edge reads and writes them.
//!
//! A pipe (the usual case: another program feeds the host and reads its answers) is read
//! and written on the host's own reactor. Anything else (a file, a terminal, a socket)
//! goes through a helper thread (smol's `Unblock`), because epoll cannot wait on files.
//! The thread costs each line two hand-offs between threads; measured with the
//! benchmark's one-in-flight round trip (interleaved runs), the reactor took p50
//! 29–30 -> 19–25 µs and p99 42–43 -> 29–40 µs.
//!
//! Waiting on a pipe needs it non-blocking, and that flag belongs to the open file
//! description, which the host shares with whoever handed it the pipe (and with its own
//! stderr under `2>&1`). So the host opens the pipe anew through `/proc/self/fd`, which on
//! Linux gives a description of its own, and sets the flag only there. Without `/proc`
//! it falls back to the thread.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

use futures_lite::io::{AsyncRead, AsyncWrite, BufWriter};
use smol::{Async, Unblock};

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
        Some(pipe) => Box::new(pipe),
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
    Async::new(file).ok()
}
