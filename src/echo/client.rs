//! One connected client and its turn: at most one `read` and one `send`.
//!
//! The echo of a byte is the byte itself, so a client needs only one buffer: what
//! was read and not yet echoed. The first `owed` bytes of it are echoes already
//! promised (the kernel did not take them yet); the rest waits to become a whole
//! line (line mode). Echoes are sent straight out of that buffer, never copied.

use std::io::{self, BufRead};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use super::stats::{add, Stats};
use super::{Echo, LINES_PER_TURN, RESOURCE_BACKOFF};
use crate::readline::{find_newline, LineReader};

/// One connected client: UNP's `client[i]`, with its own buffer.
pub(super) struct Client {
    reader: LineReader<TcpStream>,
    /// `buffered()[..owed]` is echo the kernel has not taken yet.
    owed: usize,
    /// `buffered()[owed..owed + scanned]` holds no `\n` (line mode), so a line that
    /// arrives a few bytes at a time is not searched again from its start.
    scanned: usize,
    /// The client sent EOF (closed or half-closed): no more reads.
    eof: bool,
    /// A `recv` failed for want of kernel memory: try it again at the next turn.
    retry_read: bool,
    /// When the kernel first refused to take this client's echoes (back-pressure).
    pub(super) stalled_since: Option<Instant>,
    /// Out of kernel memory: serve again at this instant.
    pub(super) parked_until: Option<Instant>,
    /// The loop's turn in which this client was last served.
    pub(super) served_in: u64,
}

/// What the client waits for after its turn.
#[derive(Debug)]
pub(super) enum Next {
    /// Its socket to become readable.
    Read,
    /// Room in its socket's send buffer for echoes the kernel did not take.
    Write,
    /// Nothing: it has buffered work; serve it next turn without sleeping.
    Again,
    /// The kernel ran out of memory: serve it again after the back-off.
    Park,
}

/// Why a client's turn ended it.
#[derive(Debug)]
pub(super) enum Close {
    /// It sent EOF and got every echo.
    Eof,
    /// A read or write error: the connection is gone.
    Reset,
    /// The server's policy: echoes not read within the write timeout.
    Policy,
    /// An error that means the server itself is broken (`EBADF`, …): stop.
    Fatal(io::Error),
}

/// What to do after an error of `recv` or `send` on a client's socket.
fn sort(e: io::Error) -> Result<Next, Close> {
    if e.kind() == io::ErrorKind::OutOfMemory {
        return Ok(Next::Park); // the buffer could not grow
    }
    match e.raw_os_error() {
        Some(libc::ENOMEM | libc::ENOBUFS) => Ok(Next::Park),
        Some(libc::EBADF | libc::EFAULT | libc::EINVAL | libc::ENOTSOCK) => Err(Close::Fatal(e)),
        // ECONNRESET, EPIPE, ETIMEDOUT, ENOTCONN, EHOSTUNREACH, ENETDOWN, EIO, …:
        // this connection is over, whatever the reason.
        _ => Err(Close::Reset),
    }
}

impl Client {
    pub(super) fn new(reader: LineReader<TcpStream>) -> Client {
        Client {
            reader,
            owed: 0,
            scanned: 0,
            eof: false,
            retry_read: false,
            stalled_since: None,
            parked_until: None,
            served_in: 0,
        }
    }

    pub(super) fn fd(&self) -> RawFd {
        self.reader.get_ref().as_raw_fd()
    }

    /// One turn: UNP's `read` (if the socket is readable) and `writen`, neither of
    /// which may block here. Sends in one call either what is owed, or else what
    /// one read brought: (byte mode) all of it or (line mode) up to
    /// [`LINES_PER_TURN`] whole lines.
    pub(super) fn turn(
        &mut self,
        readable: bool,
        echo: Echo,
        stats: &mut Stats,
        now: Instant,
    ) -> Result<Next, Close> {
        self.parked_until = None;
        let readable = readable || std::mem::take(&mut self.retry_read);
        let room = self.reader.buffered().len() < self.reader.max_line();
        if readable && !self.eof && self.owed == 0 && room {
            match self.reader.fill_more() {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    let next = sort(e)?;
                    self.retry_read = true;
                    return Ok(self.park(next, now, stats));
                }
            }
        }

        // Owed echoes go first and alone, so no send carries more than one turn's
        // quota of lines; what is buffered behind them waits for the next turn.
        let (more, pieces, again) = if self.owed > 0 {
            (0, 0, self.reader.buffered().len() > self.owed)
        } else {
            self.echoable(echo)
        };
        let len = self.owed + more;
        if len > 0 {
            match crate::sys::send_nosignal(self.fd(), &self.reader.buffered()[..len]) {
                Ok(n) => {
                    self.reader.consume(n);
                    self.owed = len - n;
                    add(&mut stats.bytes_echoed, n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.owed = len,
                Err(e) => {
                    self.owed = len; // promised; sent later, when memory is back
                    let next = sort(e)?;
                    add(&mut stats.lines_echoed, pieces);
                    return Ok(self.park(next, now, stats));
                }
            }
            add(&mut stats.lines_echoed, pieces);
        }
        if self.owed > 0 {
            self.stalled_since.get_or_insert(now);
            return Ok(Next::Write);
        }
        self.stalled_since = None;
        if again {
            Ok(Next::Again)
        } else if self.eof {
            // Everything echoed (a line mode tail counts as echoable at EOF).
            Err(Close::Eof)
        } else {
            Ok(Next::Read)
        }
    }

    fn park(&mut self, next: Next, now: Instant, stats: &mut Stats) -> Next {
        if let Next::Park = next {
            self.parked_until = Some(now + RESOURCE_BACKOFF);
            add(&mut stats.backoffs, 1);
        }
        next
    }

    /// The bytes after `owed` to echo this turn, how many lines (or reads) they are,
    /// and whether echoable bytes are left for the next turn.
    fn echoable(&mut self, echo: Echo) -> (usize, u64, bool) {
        let rest = &self.reader.buffered()[self.owed..];
        if rest.is_empty() {
            return (0, 0, false);
        }
        if echo == Echo::Bytes {
            return (rest.len(), 1, false);
        }
        let max = self.reader.max_line();
        let mut end = 0;
        let mut pieces = 0;
        while pieces < LINES_PER_TURN as u64 {
            let tail = &rest[end..];
            let window = &tail[..tail.len().min(max)];
            let skip = if end == 0 {
                self.scanned.min(window.len())
            } else {
                0
            };
            if let Some(i) = find_newline(&window[skip..]) {
                end += skip + i + 1;
            } else if tail.len() >= max {
                end += max; // a piece of a long line (UNP's readline returns it whole)
            } else if self.eof && !tail.is_empty() {
                end += tail.len(); // the unterminated last line
            } else {
                // No whole line left: remember how far the search got.
                self.scanned = if end == 0 { window.len() } else { 0 };
                return (end, pieces, false);
            }
            pieces += 1;
        }
        self.scanned = 0;
        (end, pieces, end < rest.len())
    }
}
