//! The hostile loads of `echo-bench memory`, each against one freshly started
//! server, with its memory read from /proc/PID/status (VmRSS, and VmHWM, the
//! peak the kernel kept since the server started):
//!
//! * [`stalled_sets`]: connections that each send a `set` of a large value and
//!   stop one byte short of its end;
//! * [`big_get`]: one `get` naming a 1 MiB item many times, read slowly;
//! * [`chat_flood`]: chat receivers that never read, one sender writing as fast
//!   as the server takes it.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::thread;
use std::time::{Duration, Instant};

use unp_select::poll::{poll, PollFd, PollFlags};

use crate::exchange::show;
use crate::other_err;
use crate::servers::Server;
use crate::tracing::{proc_fds, proc_mem_kib};

/// (VmRSS, VmHWM) of `server`, KiB.
fn mem(server: &Server) -> io::Result<(u64, u64)> {
    proc_mem_kib(server.pid).ok_or_else(|| other_err("no /proc/PID/status: the server exited"))
}

/// VmRSS once it stops changing: three samples 100 ms apart within 256 KiB of
/// each other, or what it is after `limit`.
fn settle(server: &Server, limit: Duration) -> io::Result<u64> {
    let until = Instant::now() + limit;
    let mut last: Vec<u64> = Vec::new();
    loop {
        let (rss, _) = mem(server)?;
        last.push(rss);
        if last.len() >= 3 {
            let w = &last[last.len() - 3..];
            let (lo, hi) = (w.iter().min(), w.iter().max());
            if let (Some(lo), Some(hi)) = (lo, hi) {
                if hi - lo <= 256 {
                    return Ok(rss);
                }
            }
        }
        if Instant::now() >= until {
            return Ok(rss);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Open descriptors of `server`: the connections it closed are the drop between
/// two counts. (A closed connection's FIN can wait behind data its client has not
/// read, so the client side cannot tell.)
fn fds(server: &Server) -> io::Result<usize> {
    proc_fds(server.pid).ok_or_else(|| other_err("no /proc/PID/fd: the server exited"))
}

/// Opens `n` connections to `addr` (blocking; the listen queue holds them until
/// the server accepts).
fn open(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpStream>> {
    let mut socks = Vec::with_capacity(n);
    for _ in 0..n {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| io::Error::new(e.kind(), format!("connect {}: {e}", socks.len())))?;
        s.set_nodelay(true)?;
        socks.push(s);
    }
    Ok(socks)
}

/// Waits (at most 10 s) until `server` has at least `n` descriptors and their
/// count stopped growing (it accepted the connections just opened); returns it.
fn wait_fds(server: &Server, n: usize) -> io::Result<usize> {
    let until = Instant::now() + Duration::from_secs(10);
    let mut last = fds(server)?;
    loop {
        thread::sleep(Duration::from_millis(50));
        let now = fds(server)?;
        if (now == last && now >= n) || Instant::now() > until {
            return Ok(now);
        }
        last = now;
    }
}

fn abort_all(socks: Vec<TcpStream>) {
    for s in socks {
        let _ = unp_select::abort(s);
    }
}

/// What [`stalled_sets`] saw. Memory in KiB.
#[derive(Clone, Debug)]
pub struct Stalled {
    pub conns: usize,
    pub value: usize,
    /// VmRSS before any connection.
    pub before: u64,
    /// VmRSS with every connection stalled (settled).
    pub loaded: u64,
    /// VmHWM then: the peak since the server started.
    pub peak: u64,
    /// VmRSS once every connection was reset (settled).
    pub after: u64,
    /// Bytes written of the `wanted` (into the server or its socket buffers).
    pub sent: u64,
    pub wanted: u64,
    /// Connections the server closed (its descriptors), and that got a reply
    /// before their last byte.
    pub closed: usize,
    pub answered: usize,
    /// Seconds the writes took.
    pub secs: f64,
}

/// `conns` connections each send `set stall:N 0 0 VALUE\r\n` and all of the value
/// but its last byte, and stop; the server's memory then, and after they reset.
pub fn stalled_sets(
    server: &Server,
    conns: usize,
    value: usize,
    limit: Duration,
) -> io::Result<Stalled> {
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    thread::sleep(Duration::from_millis(100));
    let before = settle(server, Duration::from_secs(2))?;
    let socks = open(server.addr, conns)?;
    let accepted = wait_fds(server, conns)?;
    let body = vec![b'x'; value];
    let headers: Vec<Vec<u8>> = (0..conns)
        .map(|i| format!("set stall:{i:06} 0 0 {value}\r\n").into_bytes())
        .collect();
    let total: Vec<usize> = headers.iter().map(|h| h.len() + value - 1).collect();
    let mut off = vec![0usize; conns];
    let mut dead = vec![false; conns];
    let mut poller = Poll::new()?;
    for (i, s) in socks.iter().enumerate() {
        s.set_nonblocking(true)?;
        poller
            .registry()
            .register(&mut SourceFd(&s.as_raw_fd()), Token(i), Interest::WRITABLE)?;
    }
    // Writes what connection i's socket takes; whether it is done (or dead).
    let write_some = |i: usize, off: &mut [usize], dead: &mut [bool]| {
        while off[i] < total[i] && !dead[i] {
            let h = headers[i].len();
            let chunk = if off[i] < h {
                &headers[i][off[i]..]
            } else {
                &body[off[i] - h..total[i] - h]
            };
            match (&socks[i]).write(chunk) {
                Ok(n) => off[i] += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => dead[i] = true,
            }
        }
    };
    let start = Instant::now();
    for i in 0..conns {
        write_some(i, &mut off, &mut dead);
    }
    let mut events = Events::with_capacity(1024);
    let busy = |off: &[usize], dead: &[bool]| (0..conns).any(|i| off[i] < total[i] && !dead[i]);
    while busy(&off, &dead) && start.elapsed() < limit {
        poller.poll(&mut events, Some(Duration::from_millis(100)))?;
        for ev in events.iter() {
            write_some(ev.token().0, &mut off, &mut dead);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let loaded = settle(server, Duration::from_secs(5))?;
    let (_, peak) = mem(server)?;
    let closed = accepted.saturating_sub(fds(server)?);
    let mut answered = 0;
    let mut buf = [0u8; 256];
    for s in &socks {
        if matches!((&*s).read(&mut buf), Ok(n) if n > 0) {
            answered += 1;
        }
    }
    let sent: u64 = off.iter().map(|&o| o as u64).sum();
    let wanted: u64 = total.iter().map(|&t| t as u64).sum();
    abort_all(socks);
    let after = settle(server, Duration::from_secs(3))?;
    Ok(Stalled {
        conns,
        value,
        before,
        loaded,
        peak,
        after,
        sent,
        wanted,
        closed,
        answered,
        secs,
    })
}

/// The item [`big_get`] stores and names.
pub const BIG: usize = 1 << 20;

/// What [`big_get`] saw. Memory in KiB.
#[derive(Clone, Debug)]
pub struct BigGet {
    pub names: usize,
    pub request: usize,
    /// VmRSS with the item stored.
    pub before: u64,
    /// VmHWM at the end of the slow reading, and at the end.
    pub slow_peak: u64,
    pub peak: u64,
    /// VmRSS once the reply was read (or the connection ended), settled.
    pub after: u64,
    /// Reply bytes read slowly, in all, and wanted.
    pub slow_bytes: u64,
    pub got: u64,
    pub wanted: u64,
    /// "complete", or how the reply ended.
    pub ended: String,
    pub slow_secs: f64,
}

/// Byte `pos` of the reply to `get big big ...` (`names` times) with `big`'s
/// value `a`..`z` repeated.
fn reply_byte(pos: u64, names: usize) -> u8 {
    const HEAD: &[u8] = b"VALUE big 0 1048576\r\n";
    let item = (HEAD.len() + BIG + 2) as u64;
    if pos >= item * names as u64 {
        return b"END\r\n"[(pos - item * names as u64) as usize];
    }
    let j = (pos % item) as usize;
    if j < HEAD.len() {
        HEAD[j]
    } else if j < HEAD.len() + BIG {
        b'a' + ((j - HEAD.len()) % 26) as u8
    } else {
        b"\r\n"[j - HEAD.len() - BIG]
    }
}

fn reply_len(names: usize) -> u64 {
    (b"VALUE big 0 1048576\r\n".len() + BIG + 2) as u64 * names as u64 + 5
}

/// A connection to `addr` whose receive buffer is `rcvbuf` bytes (set before
/// `connect`, so the window is small from the start).
fn small_window(addr: SocketAddr, rcvbuf: usize) -> io::Result<TcpStream> {
    use nix::sys::socket::{connect, setsockopt, socket, sockopt, AddressFamily};
    use nix::sys::socket::{SockFlag, SockType, SockaddrIn};
    let SocketAddr::V4(v4) = addr else {
        return Err(other_err("IPv4 only"));
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::RcvBuf, &rcvbuf)?;
    connect(fd.as_fd().as_raw_fd(), &SockaddrIn::from(v4))?;
    Ok(TcpStream::from(fd))
}

/// Stores a 1 MiB item `big`, then sends one `get big big ...` naming it
/// `names` times on a connection with a 16 KiB receive buffer, reads the reply
/// 4 KiB every 10 ms for `slow`, then as fast as it comes (at most `limit`),
/// every byte checked.
pub fn big_get(
    server: &Server,
    names: usize,
    slow: Duration,
    limit: Duration,
) -> io::Result<BigGet> {
    {
        let mut s = TcpStream::connect_timeout(&server.addr, Duration::from_secs(10))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut req = format!("set big 0 0 {BIG}\r\n").into_bytes();
        req.extend((0..BIG).map(|j| b'a' + (j % 26) as u8));
        req.extend_from_slice(b"\r\n");
        s.write_all(&req)?;
        let mut reply = [0u8; 8];
        s.read_exact(&mut reply)?;
        if &reply != b"STORED\r\n" {
            return Err(other_err(format!("set big: {}", show(&reply))));
        }
        let _ = unp_select::abort(s);
    }
    thread::sleep(Duration::from_millis(100));
    let before = settle(server, Duration::from_secs(2))?;
    let mut req = b"get".to_vec();
    for _ in 0..names {
        req.extend_from_slice(b" big");
    }
    req.extend_from_slice(b"\r\n");
    let mut s = small_window(server.addr, 16 * 1024)?;
    s.write_all(&req)?;
    s.set_nonblocking(true)?;
    let wanted = reply_len(names);
    let mut got = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut ended: Option<String> = None;
    // Checks what came; says how the reply ended, if it did.
    let take = |data: &[u8], got: &mut u64| -> Option<String> {
        for &b in data {
            if *got >= wanted {
                return Some(format!("{} byte(s) past the reply", data.len()));
            }
            let want = reply_byte(*got, names);
            if b != want {
                return Some(format!(
                    "wrong byte at {}: {:?}, expected {:?}",
                    *got, b as char, want as char
                ));
            }
            *got += 1;
        }
        (*got == wanted).then(|| "complete".to_string())
    };
    let slow_start = Instant::now();
    while ended.is_none() && slow_start.elapsed() < slow {
        thread::sleep(Duration::from_millis(10));
        match s.read(&mut buf[..4096]) {
            Ok(0) => ended = Some(format!("closed by the server after {got} bytes")),
            Ok(n) => ended = take(&buf[..n], &mut got),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => ended = Some(format!("{e} after {got} bytes")),
        }
    }
    let slow_secs = slow_start.elapsed().as_secs_f64();
    let slow_bytes = got;
    let (_, slow_peak) = mem(server)?;
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let until = Instant::now() + limit;
    while ended.is_none() {
        if Instant::now() > until {
            ended = Some(format!("not read in time: {got} bytes"));
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => ended = Some(format!("closed by the server after {got} bytes")),
            Ok(n) => ended = take(&buf[..n], &mut got),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                ended = Some(format!(
                    "no byte for 3 s after {got} bytes (connection open)"
                ));
            }
            Err(e) => ended = Some(format!("{e} after {got} bytes")),
        }
    }
    let (_, peak) = mem(server)?;
    let _ = unp_select::abort(s);
    let after = settle(server, Duration::from_secs(3))?;
    Ok(BigGet {
        names,
        request: req.len(),
        before,
        slow_peak,
        peak,
        after,
        slow_bytes,
        got,
        wanted,
        ended: ended.unwrap_or_default(),
        slow_secs,
    })
}

/// What [`chat_flood`] saw. Memory in KiB.
#[derive(Clone, Debug)]
pub struct Flood {
    pub receivers: usize,
    /// VmRSS of the server with no connection.
    pub empty: u64,
    /// VmHWM at the end of the flood (the peak), and VmRSS then.
    pub peak: u64,
    pub end: u64,
    /// VmRSS once every connection was reset, settled.
    pub after: u64,
    /// Bytes the server took from the sender.
    pub sent: u64,
    pub secs: f64,
    /// Connections the server closed by the end of the flood, and whether the
    /// sender's writes failed.
    pub closed: usize,
    pub sender_closed: bool,
}

/// The receive buffer of a chat receiver that does not read.
pub const RECEIVER_RCVBUF: usize = 16 * 1024;

/// `receivers` chat clients (16 KiB receive buffers) that read one line and then
/// nothing, and one sender writing 128-byte lines as fast as the server takes
/// them for `secs`.
pub fn chat_flood(server: &Server, receivers: usize, secs: f64) -> io::Result<Flood> {
    thread::sleep(Duration::from_millis(100));
    let empty = settle(server, Duration::from_secs(2))?;
    // Small receive buffers: what a receiver does not read waits in the server,
    // not in the kernel's buffers for it (several MB each on loopback).
    let rx = (0..receivers)
        .map(|_| small_window(server.addr, RECEIVER_RCVBUF))
        .collect::<io::Result<Vec<_>>>()?;
    let mut tx = TcpStream::connect_timeout(&server.addr, Duration::from_secs(10))?;
    // Every receiver is served once the hello reaches it.
    tx.write_all(b"hello\n")?;
    for (i, r) in rx.iter().enumerate() {
        r.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut hello = [0u8; 6];
        (&*r)
            .read_exact(&mut hello)
            .map_err(|e| io::Error::new(e.kind(), format!("receiver {i}: hello: {e}")))?;
        if &hello != b"hello\n" {
            return Err(other_err(format!("receiver {i} got {}", show(&hello))));
        }
    }
    let mut lines = Vec::with_capacity(64 * 1024);
    for n in 0..512u32 {
        let mut line = format!("flood {n:08} ").into_bytes();
        line.resize(127, b'y');
        line.push(b'\n');
        lines.extend_from_slice(&line);
    }
    let served = fds(server)?;
    tx.set_nonblocking(true)?;
    let (mut off, mut sent, mut sender_closed) = (0usize, 0u64, false);
    let start = Instant::now();
    let end = Duration::from_secs_f64(secs);
    while start.elapsed() < end && !sender_closed {
        match tx.write(&lines[off..]) {
            Ok(n) => {
                sent += n as u64;
                off = (off + n) % lines.len();
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let mut fds = [PollFd::new(tx.as_raw_fd(), PollFlags::POLLOUT)];
                poll(&mut fds, Some(Duration::from_millis(10)))?;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => sender_closed = true,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let (end_rss, peak) = mem(server)?;
    let closed = served.saturating_sub(fds(server)?);
    abort_all(rx);
    let _ = unp_select::abort(tx);
    let after = settle(server, Duration::from_secs(3))?;
    Ok(Flood {
        receivers,
        empty,
        peak,
        end: end_rss,
        after,
        sent,
        secs,
        closed,
        sender_closed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_big_reply() {
        let names = 2;
        let text: Vec<u8> = (0..reply_len(names))
            .map(|p| reply_byte(p, names))
            .collect();
        assert!(text.starts_with(b"VALUE big 0 1048576\r\nabc"));
        assert!(text.ends_with(b"\r\nEND\r\n"));
        let second = b"VALUE big 0 1048576\r\n".len() + BIG + 2;
        assert!(text[second..].starts_with(b"VALUE big 0 1048576\r\nabc"));
        // "get" and " big" 200 times and "\r\n": the 805-byte request.
        assert_eq!(3 + 4 * 200 + 2, 805);
    }
}
