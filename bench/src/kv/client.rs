//! The kv load: memcached text-protocol clients for [`crate::load::drive`], `depth`
//! requests in flight on each connection, every reply checked byte for byte.
//!
//! Keys are `key:%08x` over `keys` keys; request `seq` of connection `id` uses key
//! `(id * 7919 + seq) % keys`. `get` expects `VALUE key 0 LEN`, the value the
//! preload stored (`value_of(key, 0)`), `END`; `set` stores `value_of(key, seq + 1)`
//! and expects `STORED`.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::load::Client;
use crate::other_err;

/// What the requests do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    Get,
    Set,
}

impl Workload {
    pub const ALL: [Workload; 2] = [Workload::Get, Workload::Set];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Get => "get",
            Workload::Set => "set",
        }
    }

    pub fn from_name(s: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == s)
    }
}

/// The keys and values of a run.
#[derive(Clone, Copy, Debug)]
pub struct Data {
    pub keys: u64,
    pub value: usize,
}

fn key(out: &mut Vec<u8>, k: u64) {
    out.extend_from_slice(b"key:");
    for i in (0..8).rev() {
        out.push(b"0123456789abcdef"[((k >> (4 * i)) & 15) as usize]);
    }
}

/// The value of key `k` stored with `salt` (letters; the preload's salt is 0).
fn value_of(out: &mut Vec<u8>, k: u64, salt: u64, len: usize) {
    let s = k.wrapping_add(salt.wrapping_mul(7));
    out.extend((0..len as u64).map(|j| b'a' + (s.wrapping_add(j) % 26) as u8));
}

fn set_request(out: &mut Vec<u8>, k: u64, salt: u64, len: usize) {
    out.extend_from_slice(b"set ");
    key(out, k);
    let _ = write!(out, " 0 0 {len}\r\n");
    value_of(out, k, salt, len);
    out.extend_from_slice(b"\r\n");
}

const STORED: &[u8] = b"STORED\r\n";

/// One client connection.
pub struct KvConn {
    stream: TcpStream,
    id: u32,
    workload: Workload,
    data: Data,
    next_send: u64,
    next_recv: u64,
    /// The replies expected, concatenated; `expect[..pos]` arrived already.
    expect: Vec<u8>,
    pos: usize,
    /// Reply bytes checked since the start, and what of them `expect` starts at.
    checked: u64,
    base: u64,
    /// Per request in flight: where its reply ends (in reply bytes since the
    /// start), and when it was sent.
    pending: VecDeque<(u64, Instant)>,
    /// Where the reply of request `next_recv` starts (reply bytes since the start).
    reply_start: u64,
    /// Requests written but not yet taken by the kernel.
    out: Vec<u8>,
}

impl KvConn {
    fn new(stream: TcpStream, id: u32, workload: Workload, data: Data, depth: usize) -> KvConn {
        KvConn {
            stream,
            id,
            workload,
            data,
            next_send: 0,
            next_recv: 0,
            expect: Vec::with_capacity(depth * (data.value + 64)),
            pos: 0,
            checked: 0,
            base: 0,
            pending: VecDeque::with_capacity(depth),
            reply_start: 0,
            out: Vec::with_capacity(depth * (data.value + 64)),
        }
    }

    /// Appends request `seq` to `out` and its reply to `expect`.
    fn request(&mut self, seq: u64) {
        let k = (u64::from(self.id) * 7919 + seq) % self.data.keys;
        let len = self.data.value;
        match self.workload {
            Workload::Get => {
                self.out.extend_from_slice(b"get ");
                key(&mut self.out, k);
                self.out.extend_from_slice(b"\r\n");
                self.expect.extend_from_slice(b"VALUE ");
                key(&mut self.expect, k);
                let _ = write!(self.expect, " 0 {len}\r\n");
                value_of(&mut self.expect, k, 0, len);
                self.expect.extend_from_slice(b"\r\nEND\r\n");
            }
            Workload::Set => {
                set_request(&mut self.out, k, seq + 1, len);
                self.expect.extend_from_slice(STORED);
            }
        }
    }

    fn write_out(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            match (&self.stream).write(&self.out) {
                Ok(n) => drop(self.out.drain(..n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.named(e)),
            }
        }
        Ok(())
    }

    fn named(&self, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("connection {}: {e}", self.id))
    }
}

/// At most 200 bytes of `b`, readable.
fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned();
    format!("{s:?}{}", if b.len() > 200 { "…" } else { "" })
}

impl Client for KvConn {
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
        self.write_out()
    }

    fn send(&mut self, n: usize, now: Instant) -> io::Result<()> {
        for _ in 0..n {
            self.request(self.next_send);
            self.next_send += 1;
            let end = self.base + self.expect.len() as u64;
            self.pending.push_back((end, now));
        }
        self.write_out()
    }

    fn take(&mut self, data: &[u8], mut done: impl FnMut(Instant)) -> io::Result<usize> {
        let want = &self.expect[self.pos..];
        if data.len() > want.len() || data != &want[..data.len()] {
            let at = data
                .iter()
                .zip(want)
                .position(|(a, b)| a != b)
                .unwrap_or(want.len());
            // From the start of the reply of the request that went wrong (its
            // first bytes, if any, arrived before and were right).
            let from = (self.reply_start - self.base) as usize;
            let mut got = self.expect[from..self.pos].to_vec();
            got.extend_from_slice(data);
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                format!(
                    "connection {}: wrong reply to request {} ({} byte(s) in): expected {}, got {}",
                    self.id,
                    self.next_recv,
                    self.pos - from + at,
                    show(&self.expect[from..]),
                    show(&got)
                ),
            ));
        }
        self.pos += data.len();
        self.checked += data.len() as u64;
        let mut replies = 0;
        while let Some(&(end, sent)) = self.pending.front() {
            if end > self.checked {
                break;
            }
            self.pending.pop_front();
            self.reply_start = end;
            self.next_recv += 1;
            done(sent);
            replies += 1;
        }
        // Drop what was checked once it is most of the buffer.
        let keep = (self.reply_start - self.base) as usize;
        if keep >= 4096 && keep * 2 >= self.expect.len() {
            self.expect.drain(..keep);
            self.base += keep as u64;
            self.pos -= keep;
        }
        Ok(replies)
    }

    fn in_flight(&self) -> u64 {
        self.next_send - self.next_recv
    }

    fn err(&self, e: io::Error) -> io::Error {
        self.named(e)
    }
}

/// Stores `value_of(k, 0)` under every key, `batch` sets in flight on one
/// blocking connection, each `STORED` checked.
pub fn preload(addr: SocketAddr, data: Data) -> io::Result<()> {
    const BATCH: u64 = 200;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = Vec::new();
    let mut buf = vec![0u8; BATCH as usize * STORED.len()];
    let mut k = 0;
    while k < data.keys {
        let n = BATCH.min(data.keys - k);
        req.clear();
        for j in k..k + n {
            set_request(&mut req, j, 0, data.value);
        }
        s.write_all(&req)?;
        let want = n as usize * STORED.len();
        s.read_exact(&mut buf[..want])
            .map_err(|e| io::Error::new(e.kind(), format!("preload: {e}")))?;
        if buf[..want].chunks(STORED.len()).any(|r| r != STORED) {
            return Err(other_err(format!(
                "preload: expected STORED, got {}",
                show(&buf[..want])
            )));
        }
        k += n;
    }
    let _ = unp_select::abort(s);
    Ok(())
}

/// Opens `n` connections and runs one request on each (blocking, not timed), in
/// batches of 100. Returns them nonblocking.
pub fn connect(
    addr: SocketAddr,
    n: usize,
    workload: Workload,
    data: Data,
    depth: usize,
) -> io::Result<Vec<KvConn>> {
    const BATCH: usize = 100;
    let mut conns: Vec<KvConn> = Vec::with_capacity(n);
    let mut buf = vec![0u8; 4096];
    while conns.len() < n {
        let start = conns.len();
        for i in start..n.min(start + BATCH) {
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut c = KvConn::new(stream, i as u32, workload, data, depth);
            c.send(1, Instant::now())?;
            conns.push(c);
        }
        for c in &mut conns[start..] {
            while c.in_flight() > 0 {
                let n = (&c.stream)
                    .read(&mut buf)
                    .map_err(|e| c.named(io::Error::new(e.kind(), format!("warm-up: {e}"))))?;
                if n == 0 {
                    return Err(c.named(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "closed during warm-up",
                    )));
                }
                c.take(&buf[..n], |_| {})?;
            }
            c.stream.set_nonblocking(true)?;
        }
    }
    Ok(conns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies() {
        let mut out = Vec::new();
        set_request(&mut out, 0xab, 0, 5);
        assert_eq!(out, b"set key:000000ab 0 0 5\r\npqrst\r\n");
        let mut v = Vec::new();
        value_of(&mut v, 0xab, 1, 5);
        assert_ne!(v, b"pqrst");
    }
}
