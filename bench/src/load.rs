//! The load: closed-loop clients that keep `depth` lines in flight on each
//! connection and check every echoed byte.
//!
//! Every line is `IIIIIIII:SSSSSSSSSSSSSSSS:` (connection id and sequence number in
//! hex), letters, `\n`: every line differs, so an echo that is lost, mixed with
//! another connection's, reordered or replayed stops the run with an error. One
//! thread multiplexes all connections with epoll (mio): when a read completes `c`
//! lines, their round trips are recorded and `c` new lines go out in one write.
//!
//! [`drive`] runs any [`Client`]: the echo lines here, the memcached requests of
//! the kv comparison (`crate::kv::client`).

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::other_err;

/// The shortest line: the header and a newline.
pub const MIN_LINE: usize = 27;

/// Writes line `seq` of connection `id` into `out` (its length is the line length).
pub(crate) fn make_line(out: &mut [u8], id: u32, seq: u64) {
    fn hex(out: &mut [u8], mut v: u64) {
        for b in out.iter_mut().rev() {
            *b = b"0123456789abcdef"[(v & 15) as usize];
            v >>= 4;
        }
    }
    let len = out.len();
    hex(&mut out[0..8], u64::from(id));
    out[8] = b':';
    hex(&mut out[9..25], seq);
    out[25] = b':';
    let salt = (seq as usize).wrapping_add(id as usize);
    for (j, b) in out[26..len - 1].iter_mut().enumerate() {
        *b = b'a' + (j.wrapping_add(salt) % 26) as u8;
    }
    out[len - 1] = b'\n';
}

/// One client connection.
pub struct Conn {
    stream: TcpStream,
    id: u32,
    /// Sequence number of the next line to send.
    next_send: u64,
    /// Sequence number of the line whose echo is arriving, and its bytes so far.
    next_recv: u64,
    got: usize,
    /// The echo expected for `next_recv`.
    expect: Vec<u8>,
    /// Send times of the lines in flight, oldest first.
    sent_at: VecDeque<Instant>,
    /// Lines written but not yet taken by the kernel.
    out: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream, id: u32, line: usize, depth: usize) -> Conn {
        let mut expect = vec![0; line];
        make_line(&mut expect, id, 0);
        Conn {
            stream,
            id,
            next_send: 0,
            next_recv: 0,
            got: 0,
            expect,
            sent_at: VecDeque::with_capacity(depth),
            out: Vec::with_capacity(line * depth),
        }
    }

    /// Queues `n` more lines and writes what the kernel takes.
    fn send(&mut self, n: usize, now: Instant) -> io::Result<()> {
        let len = self.expect.len();
        for _ in 0..n {
            let at = self.out.len();
            self.out.resize(at + len, 0);
            make_line(&mut self.out[at..], self.id, self.next_send);
            self.next_send += 1;
            self.sent_at.push_back(now);
        }
        self.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        write_some(&self.stream, &mut self.out).map_err(|e| self.err(e))
    }

    fn err(&self, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("connection {}: {e}", self.id))
    }

    /// Checks `data` against the expected echoes; returns the send times of the
    /// lines it completed (oldest first) through `done`.
    fn take(&mut self, mut data: &[u8], mut done: impl FnMut(Instant)) -> io::Result<usize> {
        let len = self.expect.len();
        let mut lines = 0;
        while !data.is_empty() {
            let want = &self.expect[self.got..];
            let n = want.len().min(data.len());
            if data[..n] != want[..n] {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    format!(
                        "connection {}: wrong echo of line {}: expected {:?}, got {:?}",
                        self.id,
                        self.next_recv,
                        String::from_utf8_lossy(want),
                        String::from_utf8_lossy(&data[..n])
                    ),
                ));
            }
            if self.next_recv >= self.next_send {
                return Err(other_err(format!(
                    "connection {}: echo of line {} that was never sent",
                    self.id, self.next_recv
                )));
            }
            self.got += n;
            data = &data[n..];
            if self.got == len {
                self.got = 0;
                self.next_recv += 1;
                make_line(&mut self.expect, self.id, self.next_recv);
                let sent = self.sent_at.pop_front().expect("a line in flight");
                done(sent);
                lines += 1;
            }
        }
        Ok(lines)
    }

    fn in_flight(&self) -> u64 {
        self.next_send - self.next_recv
    }
}

/// Opens `n` connections of `line`-byte lines, `depth` in flight later, and
/// echoes one line on each (see [`connect_with`]).
pub fn connect(addr: SocketAddr, n: usize, line: usize, depth: usize) -> io::Result<Vec<Conn>> {
    connect_with(addr, n, |stream, id| Conn::new(stream, id, line, depth))
}

/// Opens `n` connections (`make` turns each stream and its number into a
/// client) and runs one request on each (blocking, not timed), in batches of
/// 100 so that a server accepting one connection per turn never overflows its
/// listen queue. Returns them nonblocking.
pub fn connect_with<C: Client>(
    addr: SocketAddr,
    n: usize,
    mut make: impl FnMut(TcpStream, u32) -> C,
) -> io::Result<Vec<C>> {
    const BATCH: usize = 100;
    let mut conns: Vec<C> = Vec::with_capacity(n);
    let mut buf = vec![0u8; 4096];
    while conns.len() < n {
        let start = conns.len();
        for i in start..n.min(start + BATCH) {
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut c = make(stream, i as u32);
            c.send(1, Instant::now())?;
            conns.push(c);
        }
        for c in &mut conns[start..] {
            while c.in_flight() > 0 {
                let n = c
                    .stream()
                    .read(&mut buf)
                    .map_err(|e| c.err(io::Error::new(e.kind(), format!("warm-up: {e}"))))?;
                if n == 0 {
                    return Err(c.err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "closed during warm-up",
                    )));
                }
                c.take(&buf[..n], |_| {})?;
            }
            c.stream().set_nonblocking(true)?;
        }
    }
    Ok(conns)
}

/// Runs `n` requests on `c` one after another, blocking: the next one once the
/// reply to the last was checked.
pub fn one_by_one<C: Client>(c: &mut C, n: u64) -> io::Result<()> {
    c.stream().set_nonblocking(false)?;
    let mut buf = vec![0u8; 4096];
    for _ in 0..n {
        c.send(1, Instant::now())?;
        while c.in_flight() > 0 {
            let k = c.stream().read(&mut buf).map_err(|e| c.err(e))?;
            if k == 0 {
                return Err(c.err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
            c.take(&buf[..k], |_| {})?;
        }
    }
    Ok(())
}

/// Writes what the kernel takes of `out` to the nonblocking `stream`, and drops
/// that from `out`.
pub fn write_some(mut stream: &TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
    while !out.is_empty() {
        match stream.write(out) {
            Ok(n) => drop(out.drain(..n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Closes connections with a reset (SO_LINGER 0): no TIME_WAIT left behind to
/// exhaust ephemeral ports over many runs.
pub fn close_all<C: Client>(conns: Vec<C>) {
    for c in conns {
        let _ = unp_select::abort(c.into_stream());
    }
}

/// One connection of a closed-loop load: requests out, replies checked.
pub trait Client {
    fn stream(&self) -> &TcpStream;
    fn into_stream(self) -> TcpStream;
    /// Whether requests wait for the kernel to take them.
    fn has_output(&self) -> bool;
    /// Writes what the kernel takes of the queued requests.
    fn flush(&mut self) -> io::Result<()>;
    /// Queues `n` more requests (sent at `now`) and writes what the kernel takes.
    fn send(&mut self, n: usize, now: Instant) -> io::Result<()>;
    /// Checks `data` against the expected replies; calls `done` with the send time
    /// of every request it completed (oldest first) and returns how many.
    fn take(&mut self, data: &[u8], done: impl FnMut(Instant)) -> io::Result<usize>;
    fn in_flight(&self) -> u64;
    /// `e`, naming this connection.
    fn err(&self, e: io::Error) -> io::Error;
}

impl Client for Conn {
    fn stream(&self) -> &TcpStream {
        &self.stream
    }
    fn into_stream(self) -> TcpStream {
        self.stream
    }
    fn has_output(&self) -> bool {
        !self.out.is_empty()
    }
    fn flush(&mut self) -> io::Result<()> {
        Conn::flush(self)
    }
    fn send(&mut self, n: usize, now: Instant) -> io::Result<()> {
        Conn::send(self, n, now)
    }
    fn take(&mut self, data: &[u8], done: impl FnMut(Instant)) -> io::Result<usize> {
        Conn::take(self, data, done)
    }
    fn in_flight(&self) -> u64 {
        Conn::in_flight(self)
    }
    fn err(&self, e: io::Error) -> io::Error {
        Conn::err(self, e)
    }
}

/// Shared between the load thread and the orchestrator.
#[derive(Default)]
pub struct Shared {
    /// Lines whose echo completed, since the start.
    pub live: AtomicU64,
    /// Stop sending; finish when every line in flight came back.
    pub stop: AtomicBool,
}

/// What the load thread saw.
pub struct Tally {
    /// Round trips (ns) of the lines completed in `[from, until)`.
    pub latencies: Vec<u32>,
}

/// Runs the closed loop: `depth` lines in flight on every connection until
/// `shared.stop`, then waits (at most 10 s) for every echo still in flight.
pub fn drive<C: Client>(
    conns: &mut [C],
    depth: usize,
    shared: &Shared,
    from: Instant,
    until: Instant,
) -> io::Result<Tally> {
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    let mut poll = Poll::new()?;
    for (i, c) in conns.iter().enumerate() {
        poll.registry().register(
            &mut SourceFd(&c.stream().as_raw_fd()),
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
    }
    let now = Instant::now();
    for c in conns.iter_mut() {
        c.send(depth, now)?;
    }
    let mut latencies = Vec::with_capacity(1 << 20);
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    // Connections whose last read filled the buffer (edge-triggered: not drained).
    let mut again: Vec<usize> = Vec::new();
    let mut stop_at: Option<Instant> = None;
    let mut work: Vec<usize> = Vec::new();
    loop {
        if stop_at.is_none() && shared.stop.load(Ordering::Relaxed) {
            stop_at = Some(Instant::now());
        }
        if let Some(at) = stop_at {
            if conns.iter().all(|c| c.in_flight() == 0) {
                break;
            }
            if at.elapsed() > Duration::from_secs(10) {
                let missing: u64 = conns.iter().map(C::in_flight).sum();
                return Err(io::Error::new(
                    ErrorKind::TimedOut,
                    format!("{missing} echoes still missing 10 s after the load stopped"),
                ));
            }
        }
        let timeout = if again.is_empty() {
            Duration::from_millis(20)
        } else {
            Duration::ZERO
        };
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        work.clear();
        work.append(&mut again);
        for ev in events.iter() {
            let i = ev.token().0;
            if ev.is_writable() && conns[i].has_output() {
                conns[i].flush()?;
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                work.push(i);
            }
        }
        for &i in &work {
            let c = &mut conns[i];
            let n = match c.stream().read(&mut buf) {
                Ok(0) => {
                    return Err(c.err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    )))
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => {
                    again.push(i);
                    continue;
                }
                Err(e) => return Err(c.err(e)),
            };
            if n == buf.len() {
                again.push(i);
            }
            let now = Instant::now();
            let in_window = now >= from && now < until;
            let lines = c.take(&buf[..n], |sent| {
                if in_window {
                    let ns = (now - sent).as_nanos().min(u128::from(u32::MAX)) as u32;
                    latencies.push(ns);
                }
            })?;
            if lines > 0 {
                shared.live.fetch_add(lines as u64, Ordering::Relaxed);
                if stop_at.is_none() {
                    c.send(lines, now)?;
                }
            }
        }
        again.sort_unstable();
        again.dedup();
    }
    Ok(Tally { latencies })
}

/// The `q` quantile of `v` (which it reorders), in µs.
pub fn quantile_us(v: &mut [u32], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    let (_, x, _) = v.select_nth_unstable(i);
    f64::from(*x) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_differ_and_end_in_newline() {
        let mut a = vec![0; 64];
        let mut b = vec![0; 64];
        make_line(&mut a, 1, 2);
        make_line(&mut b, 1, 3);
        assert_ne!(a, b);
        assert_eq!(a[63], b'\n');
        assert_eq!(a.iter().filter(|&&x| x == b'\n').count(), 1);
        assert_eq!(&a[..26], b"00000001:0000000000000002:");
    }

    #[test]
    fn quantiles() {
        let mut v: Vec<u32> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(quantile_us(&mut v, 0.99), 99.0);
        assert_eq!(quantile_us(&mut v, 0.5), 50.0);
    }
}
