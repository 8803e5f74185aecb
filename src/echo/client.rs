//! One connected client and its turn: at most one `read` and one `send`.
//!
//! As in the book's `tcpservselect01`, every `read` goes into the loop's one
//! buffer (`char buf[MAXLINE]`) and the echo is sent straight out of it. What a
//! turn leaves behind (the start of a line still incomplete in line mode, or
//! echoes the kernel did not take) is kept in the client's own `pending` buffer
//! until the next turn. So a client whose echoes all went out holds no buffer at
//! all, and a read that brought whole lines costs no copy.

use std::io::{self, Read};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use super::stats::{add, Stats};
use super::{Echo, LINES_PER_TURN, MAXLINE, RESOURCE_BACKOFF};

/// The most bytes one `read` takes, whatever `max_line` says.
const READ_MAX: usize = 64 * 1024;
use crate::readline::find_newline;

/// One connected client: UNP's `client[i]`, plus what its last turn left.
pub(super) struct Client {
    stream: TcpStream,
    /// Bytes read and not echoed yet. The first `owed` are echoes already
    /// promised that the kernel has not taken (back-pressure); the rest (line
    /// mode) is the start of a line that is not complete yet.
    pending: Vec<u8>,
    owed: usize,
    /// `pending[owed..owed + scanned]` holds no `\n`, so a line that arrives a few
    /// bytes at a time is not searched again from its start.
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

/// What one [`Client::echo`] did.
struct Echoed {
    /// Bytes the kernel took.
    sent: usize,
    /// Echoable bytes are left for the next turn.
    again: bool,
    /// The kernel was out of memory.
    parked: bool,
}

/// The loop's one read buffer, UNP's `char buf[MAXLINE]`, shared by all clients.
pub(super) struct ReadBuf(Vec<u8>);

impl ReadBuf {
    /// An empty buffer; it grows to `max_line` bytes at the first read.
    pub(super) fn new() -> ReadBuf {
        ReadBuf(Vec::new())
    }
}

/// What to do after an error of `recv` or `send` on a client's socket.
fn sort(e: io::Error) -> Result<Next, Close> {
    match e.raw_os_error() {
        Some(libc::ENOMEM | libc::ENOBUFS) => Ok(Next::Park),
        Some(libc::EBADF | libc::EFAULT | libc::EINVAL | libc::ENOTSOCK) => Err(Close::Fatal(e)),
        // ECONNRESET, EPIPE, ETIMEDOUT, ENOTCONN, EHOSTUNREACH, ENETDOWN, EIO, …:
        // this connection is over, whatever the reason.
        _ => Err(Close::Reset),
    }
}

/// One `read(2)` (a `recvfrom` on Linux) into `buf`, retried on `EINTR`: the
/// count, or 0 for nothing now (`EAGAIN`); end of file sets `eof`.
fn read_into(stream: &TcpStream, eof: &mut bool, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match (&*stream).read(buf) {
            Ok(0) => {
                *eof = true;
                return Ok(0);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            other => return other,
        }
    }
}

impl Client {
    pub(super) fn new(stream: TcpStream) -> Client {
        Client {
            stream,
            pending: Vec::new(),
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
        self.stream.as_raw_fd()
    }

    /// One turn: UNP's `read` (if the socket is readable) and `writen`, neither of
    /// which may block here. Sends in one call either what is owed, or else what
    /// one read brought: (byte mode) all of it or (line mode) up to
    /// [`LINES_PER_TURN`] whole lines.
    pub(super) fn turn(
        &mut self,
        readable: bool,
        echo: Echo,
        max_line: usize,
        buf: &mut ReadBuf,
        stats: &mut Stats,
        now: Instant,
    ) -> Result<Next, Close> {
        self.parked_until = None;
        let readable = readable || std::mem::take(&mut self.retry_read);
        let read = readable && !self.eof && self.owed == 0 && self.pending.len() < max_line;
        let echoed = if read {
            // UNP: n = Read(sockfd, buf, MAXLINE). At most READ_MAX bytes, and never
            // more than max_line buffered for this client.
            let room = (max_line - self.pending.len()).min(READ_MAX);
            let from_buf = self.pending.is_empty();
            let n = if from_buf {
                // The usual case: straight into the loop's one buffer.
                if buf.0.len() < room {
                    buf.0.resize(room, 0);
                }
                read_into(&self.stream, &mut self.eof, &mut buf.0[..room])
            } else {
                // The start of a line is waiting: read after it, in its buffer.
                let kept = self.pending.len();
                if self.pending.try_reserve(room).is_err() {
                    self.retry_read = true;
                    return Ok(self.park(Next::Park, now, stats));
                }
                self.pending.resize(kept + room, 0);
                let n = read_into(&self.stream, &mut self.eof, &mut self.pending[kept..]);
                self.pending.truncate(kept + n.as_ref().map_or(0, |&n| n));
                n
            };
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    let next = sort(e)?;
                    self.retry_read = true;
                    return Ok(self.park(next, now, stats));
                }
            };
            if from_buf {
                let data = &buf.0[..n];
                let echoed = self.echo(data, echo, max_line, stats)?;
                // Keep what is left: the unsent echo, then the start of a line.
                self.pending.extend_from_slice(&data[echoed.sent..]);
                echoed
            } else {
                self.echo_pending(echo, max_line, stats)?
            }
        } else {
            self.echo_pending(echo, max_line, stats)?
        };
        if echoed.parked {
            return Ok(self.park(Next::Park, now, stats));
        }

        if self.owed > 0 {
            self.stalled_since.get_or_insert(now);
            return Ok(Next::Write);
        }
        self.stalled_since = None;
        if echoed.again {
            Ok(Next::Again)
        } else if self.eof {
            // Everything echoed (a line mode tail counts as echoable at EOF).
            Err(Close::Eof)
        } else {
            Ok(Next::Read)
        }
    }

    /// [`echo`](Self::echo) out of the client's own buffer.
    fn echo_pending(
        &mut self,
        echo: Echo,
        max_line: usize,
        stats: &mut Stats,
    ) -> Result<Echoed, Close> {
        let mut data = std::mem::take(&mut self.pending);
        let echoed = self.echo(&data, echo, max_line, stats);
        if let Ok(e) = &echoed {
            data.drain(..e.sent);
        }
        if data.is_empty() && data.capacity() > 2 * MAXLINE {
            data = Vec::new(); // a long line is gone: give its memory back
        }
        self.pending = data;
        echoed
    }

    /// UNP's `Writen(sockfd, buf, n)`, once and without blocking: sends what is
    /// owed, or else what is echoable, straight out of `data`.
    fn echo(
        &mut self,
        data: &[u8],
        echo: Echo,
        max_line: usize,
        stats: &mut Stats,
    ) -> Result<Echoed, Close> {
        // Owed echoes go first and alone, so no send carries more than one turn's
        // quota of lines; what is buffered behind them waits for the next turn.
        let (more, pieces, again) = if self.owed > 0 {
            (0, 0, data.len() > self.owed)
        } else {
            echoable(data, echo, max_line, self.eof, &mut self.scanned)
        };
        let len = self.owed + more;
        let mut echoed = Echoed {
            sent: 0,
            again,
            parked: false,
        };
        if len > 0 {
            match crate::sys::send_nosignal(self.fd(), &data[..len]) {
                Ok(n) => echoed.sent = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // Promised and kept: sent later, when memory is back.
                Err(e) => echoed.parked = matches!(sort(e)?, Next::Park),
            }
            add(&mut stats.bytes_echoed, echoed.sent as u64);
            add(&mut stats.lines_echoed, pieces);
        }
        self.owed = len - echoed.sent;
        Ok(echoed)
    }

    fn park(&mut self, next: Next, now: Instant, stats: &mut Stats) -> Next {
        if let Next::Park = next {
            self.parked_until = Some(now + RESOURCE_BACKOFF);
            add(&mut stats.backoffs, 1);
        }
        next
    }
}

/// How many bytes of `data` to echo this turn, how many lines (or reads) they
/// are, and whether echoable bytes are left for the next turn. `scanned` bytes
/// at the front are known to hold no `\n`; it is updated.
fn echoable(
    data: &[u8],
    echo: Echo,
    max_line: usize,
    eof: bool,
    scanned: &mut usize,
) -> (usize, u64, bool) {
    if data.is_empty() {
        return (0, 0, false);
    }
    if echo == Echo::Bytes {
        return (data.len(), 1, false);
    }
    let mut end = 0;
    let mut pieces = 0;
    while pieces < LINES_PER_TURN as u64 {
        let tail = &data[end..];
        let window = &tail[..tail.len().min(max_line)];
        let skip = if end == 0 {
            (*scanned).min(window.len())
        } else {
            0
        };
        if let Some(i) = find_newline(&window[skip..]) {
            end += skip + i + 1;
        } else if tail.len() >= max_line {
            end += max_line; // a piece of a long line (UNP's readline returns it whole)
        } else if eof && !tail.is_empty() {
            end += tail.len(); // the unterminated last line
        } else {
            // No whole line left: remember how far the search got.
            *scanned = if end == 0 { window.len() } else { 0 };
            return (end, pieces, false);
        }
        pieces += 1;
    }
    *scanned = 0;
    (end, pieces, end < data.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(data: &[u8], max_line: usize, eof: bool) -> (usize, u64, bool) {
        echoable(data, Echo::Lines, max_line, eof, &mut 0)
    }

    #[test]
    fn bytes_echo_everything_at_once() {
        assert_eq!(
            echoable(b"no newline", Echo::Bytes, 4, false, &mut 0),
            (10, 1, false)
        );
        assert_eq!(echoable(b"", Echo::Bytes, 4, false, &mut 0), (0, 0, false));
    }

    #[test]
    fn lines_stop_before_an_incomplete_line() {
        assert_eq!(lines(b"a\nbb\nccc", 4095, false), (5, 2, false));
        assert_eq!(lines(b"ccc", 4095, false), (0, 0, false));
    }

    #[test]
    fn an_incomplete_line_is_echoed_at_eof() {
        assert_eq!(lines(b"a\nccc", 4095, true), (5, 2, false));
    }

    #[test]
    fn a_long_line_goes_in_pieces_of_max_line() {
        // UNP's str_cli sends 4095-byte pieces and waits: each is echoed at once.
        assert_eq!(lines(&[b'x'; 4095], 4095, false), (4095, 1, false));
        assert_eq!(lines(&[b'x'; 4094], 4095, false), (0, 0, false));
        assert_eq!(lines(b"abcdefghij\n", 4, false), (11, 3, false));
    }

    #[test]
    fn at_most_lines_per_turn_lines_per_turn() {
        let data = b"l\n".repeat(LINES_PER_TURN + 4);
        assert_eq!(
            lines(&data, 4095, false),
            (2 * LINES_PER_TURN, LINES_PER_TURN as u64, true)
        );
    }

    #[test]
    fn a_slow_line_is_not_searched_again() {
        let mut scanned = 0;
        let e = echoable(b"abc", Echo::Lines, 4095, false, &mut scanned);
        assert_eq!((e, scanned), ((0, 0, false), 3));
        let e = echoable(b"abcde\nf", Echo::Lines, 4095, false, &mut scanned);
        assert_eq!((e, scanned), ((6, 1, false), 0));
    }

    #[test]
    fn errors_are_sorted_by_what_they_mean() {
        let os = io::Error::from_raw_os_error;
        assert!(matches!(sort(os(libc::ENOMEM)), Ok(Next::Park)));
        assert!(matches!(sort(os(libc::ENOBUFS)), Ok(Next::Park)));
        assert!(matches!(sort(os(libc::EBADF)), Err(Close::Fatal(_))));
        assert!(matches!(sort(os(libc::ECONNRESET)), Err(Close::Reset)));
        assert!(matches!(sort(os(libc::ETIMEDOUT)), Err(Close::Reset)));
        assert!(matches!(sort(os(libc::EPIPE)), Err(Close::Reset)));
    }
}
