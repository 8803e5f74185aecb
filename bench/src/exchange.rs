//! A closed-loop connection of a request/reply protocol for [`crate::load::drive`]:
//! a [`Dialect`] makes each request and the exact reply it must get; every reply
//! byte is checked against it. The kv load (memcached's text protocol) and the
//! RESP load are dialects of it.
//!
//! [`Batched`] turns any [`Client`] into one that sends in batches, as
//! `redis-benchmark -P N` does: the next `depth` requests only once every reply
//! of the last batch arrived.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::load::{self, Client};
use crate::other_err;

/// What the requests of a load are.
pub trait Dialect {
    /// Appends request `seq` of connection `id` to `out`, and the reply it must get
    /// to `expect`.
    fn request(&self, id: u32, seq: u64, out: &mut Vec<u8>, expect: &mut Vec<u8>);
    /// Appends the request that stores key `k` before a run, and its reply.
    fn preload(&self, k: u64, out: &mut Vec<u8>, expect: &mut Vec<u8>);
    /// How many keys the preload stores.
    fn keys(&self) -> u64;
}

/// One client connection.
pub struct Exchange<D> {
    stream: TcpStream,
    id: u32,
    dialect: D,
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

impl<D: Dialect> Exchange<D> {
    fn new(stream: TcpStream, id: u32, dialect: D, depth: usize) -> Exchange<D> {
        Exchange {
            stream,
            id,
            dialect,
            next_send: 0,
            next_recv: 0,
            expect: Vec::with_capacity(depth * 256),
            pos: 0,
            checked: 0,
            base: 0,
            pending: VecDeque::with_capacity(depth),
            reply_start: 0,
            out: Vec::with_capacity(depth * 256),
        }
    }

    fn write_out(&mut self) -> io::Result<()> {
        load::write_some(&self.stream, &mut self.out).map_err(|e| self.named(e))
    }

    fn named(&self, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("connection {}: {e}", self.id))
    }
}

/// At most 200 bytes of `b`, readable.
pub fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned();
    format!("{s:?}{}", if b.len() > 200 { "…" } else { "" })
}

impl<D: Dialect> Client for Exchange<D> {
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
            self.dialect
                .request(self.id, self.next_send, &mut self.out, &mut self.expect);
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

/// Stores every key of `dialect` (its `preload` requests), 200 in flight on one
/// blocking connection, each reply checked.
pub fn preload<D: Dialect>(addr: SocketAddr, dialect: &D) -> io::Result<()> {
    const BATCH: u64 = 200;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let (mut req, mut want, mut buf) = (Vec::new(), Vec::new(), Vec::new());
    let mut k = 0;
    let keys = dialect.keys();
    while k < keys {
        let n = BATCH.min(keys - k);
        req.clear();
        want.clear();
        for j in k..k + n {
            dialect.preload(j, &mut req, &mut want);
        }
        s.write_all(&req)?;
        buf.resize(want.len(), 0);
        s.read_exact(&mut buf)
            .map_err(|e| io::Error::new(e.kind(), format!("preload: {e}")))?;
        if buf != want {
            return Err(other_err(format!(
                "preload: expected {}, got {}",
                show(&want),
                show(&buf)
            )));
        }
        k += n;
    }
    let _ = unp_select::abort(s);
    Ok(())
}

/// Opens `n` connections of `dialect` and runs one request on each
/// ([`load::connect_with`]). Returns them nonblocking.
pub fn connect<D: Dialect + Clone>(
    addr: SocketAddr,
    n: usize,
    dialect: &D,
    depth: usize,
) -> io::Result<Vec<Exchange<D>>> {
    load::connect_with(addr, n, |stream, id| {
        Exchange::new(stream, id, dialect.clone(), depth)
    })
}

/// A client that, when `on`, sends `depth` requests at once and the next `depth`
/// only when every reply of those arrived (`redis-benchmark -P depth`, memtier's
/// `--pipeline`), instead of a new request for each reply; when not `on`, the
/// client as it is.
pub struct Batched<C> {
    inner: C,
    on: bool,
    /// Requests the driver asked for that wait for the batch to complete.
    owed: usize,
}

impl<C: Client> Batched<C> {
    pub fn wrap(conns: Vec<C>, on: bool) -> Vec<Batched<C>> {
        conns
            .into_iter()
            .map(|inner| Batched { inner, on, owed: 0 })
            .collect()
    }
}

impl<C: Client> Client for Batched<C> {
    fn stream(&self) -> &TcpStream {
        self.inner.stream()
    }
    fn into_stream(self) -> TcpStream {
        self.inner.into_stream()
    }
    fn has_output(&self) -> bool {
        self.inner.has_output()
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
    fn send(&mut self, n: usize, now: Instant) -> io::Result<()> {
        if !self.on {
            return self.inner.send(n, now);
        }
        self.owed += n;
        if self.inner.in_flight() > 0 {
            return Ok(());
        }
        let n = std::mem::take(&mut self.owed);
        self.inner.send(n, now)
    }
    fn take(&mut self, data: &[u8], done: impl FnMut(Instant)) -> io::Result<usize> {
        self.inner.take(data, done)
    }
    fn in_flight(&self) -> u64 {
        self.inner.in_flight()
    }
    fn err(&self, e: io::Error) -> io::Error {
        self.inner.err(e)
    }
}
