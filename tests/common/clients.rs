//! Well-behaved clients for the reliability suite: they stream random lines, check
//! every byte of the echo, half-close and expect EOF.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::fds::{connect_high, open_fds};
use super::load::Rng;

/// What one well-behaved client saw.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub lines_sent: u64,
    pub bytes_sent: u64,
    /// Bytes received back that matched what was sent, in order.
    pub bytes_echoed: u64,
    pub lines_echoed: u64,
    /// The longest wait for one batch of echoes.
    pub max_wait: Duration,
    /// Set if anything was lost, reordered, or failed.
    pub error: Option<String>,
}

impl Outcome {
    pub fn add(&mut self, o: &Outcome) {
        self.lines_sent += o.lines_sent;
        self.bytes_sent += o.bytes_sent;
        self.bytes_echoed += o.bytes_echoed;
        self.lines_echoed += o.lines_echoed;
        self.max_wait = self.max_wait.max(o.max_wait);
        if self.error.is_none() {
            self.error.clone_from(&o.error);
        }
    }
}

/// A client that sends `batches` batches of `batch` random lines (each up to
/// `max_len` bytes), reads every batch back and compares it byte for byte, then
/// half-closes and expects EOF. `keep_going` (if given) makes it continue past
/// `batches` while the flag is set.
pub fn stream_client(
    addr: SocketAddr,
    id: usize,
    seed: u64,
    batches: usize,
    batch: usize,
    max_len: usize,
    keep_going: Option<Arc<AtomicBool>>,
) -> Outcome {
    let mut out = Outcome::default();
    let mut rng = Rng::new(seed ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut stream = match connect_high(addr) {
        Ok(s) => s,
        Err(e) => {
            out.error = Some(format!("client {id}: connect: {e}"));
            return out;
        }
    };
    let mut round = 0;
    loop {
        let more = keep_going
            .as_ref()
            .is_some_and(|k| k.load(Ordering::SeqCst));
        if round >= batches && !more {
            break;
        }
        let mut sent = Vec::new();
        for i in 0..batch {
            sent.extend(rng.line(max_len, &format!("c{id} r{round} l{i} ")));
        }
        let t = Instant::now();
        if let Err(e) = stream.write_all(&sent) {
            out.error = Some(format!("client {id} round {round}: write: {e}"));
            return out;
        }
        out.lines_sent += batch as u64;
        out.bytes_sent += sent.len() as u64;
        let mut got = vec![0u8; sent.len()];
        if let Err(e) = stream.read_exact(&mut got) {
            out.error = Some(format!("client {id} round {round}: read: {e}"));
            return out;
        }
        out.max_wait = out.max_wait.max(t.elapsed());
        if got != sent {
            out.error = Some(format!(
                "client {id} round {round}: echo differs: sent {:?}, got {:?}",
                String::from_utf8_lossy(&sent),
                String::from_utf8_lossy(&got)
            ));
            return out;
        }
        out.bytes_echoed += got.len() as u64;
        out.lines_echoed += batch as u64;
        round += 1;
    }
    if let Err(e) = expect_eof(&mut stream) {
        out.error = Some(format!("client {id}: at the end: {e}"));
    }
    out
}

/// Half-closes and reads until EOF; anything more than EOF is an error.
pub fn expect_eof(stream: &mut TcpStream) -> io::Result<()> {
    stream.shutdown(Shutdown::Write)?;
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest)?;
    if rest.is_empty() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} unexpected bytes before EOF", rest.len()),
        ))
    }
}

/// Starts `n` streaming clients, each in its own thread.
pub fn spawn_clients(
    addr: SocketAddr,
    n: usize,
    seed: u64,
    batches: usize,
    batch: usize,
    max_len: usize,
    keep_going: Option<Arc<AtomicBool>>,
) -> Vec<JoinHandle<Outcome>> {
    (0..n)
        .map(|id| {
            let k = keep_going.clone();
            thread::spawn(move || stream_client(addr, id, seed, batches, batch, max_len, k))
        })
        .collect()
}

/// Joins client threads and sums their outcomes; panics with the first error.
pub fn join_clients(handles: Vec<JoinHandle<Outcome>>) -> Outcome {
    let mut total = Outcome::default();
    for h in handles {
        let o = h.join().expect("client thread panicked");
        total.add(&o);
    }
    total
}

/// One echo round trip on a fresh connection: the server still serves.
pub fn probe(addr: SocketAddr) -> io::Result<Duration> {
    let t = Instant::now();
    let mut s = connect_high(addr)?;
    s.write_all(b"probe: still serving?\n")?;
    let mut got = [0u8; 22];
    s.read_exact(&mut got)?;
    if &got != b"probe: still serving?\n" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "probe echo differs",
        ));
    }
    expect_eof(&mut s)?;
    Ok(t.elapsed())
}

/// Descriptors of the process once the server is up and idle: its listener, the
/// shutdown socket pair and the reserve descriptor. A probe first makes sure `run`
/// has started (the reserve is opened there).
pub fn idle_fds(addr: SocketAddr) -> usize {
    probe(addr).expect("the fresh server serves");
    open_fds()
}

/// How [`read_until`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadEnd {
    Full,
    Eof,
    TimedOut,
}

/// Reads into `buf` until it holds `want` bytes, EOF, or `deadline` passes.
pub fn read_until(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    want: usize,
    deadline: Instant,
) -> ReadEnd {
    let mut chunk = [0u8; 256];
    while buf.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return ReadEnd::TimedOut;
        }
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("set_read_timeout");
        match stream.read(&mut chunk) {
            Ok(0) => return ReadEnd::Eof,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if super::is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    ReadEnd::Full
}

/// How one flood client fared.
pub enum Fate {
    /// Echoed: the client holds its connection (and the server one descriptor).
    Served(TcpStream),
    /// Reset by the server (shed with the reserve descriptor).
    Reset,
}

pub fn flood_client(addr: SocketAddr, id: usize) -> Result<Fate, String> {
    let mut c = match connect_high(addr) {
        Ok(c) => c,
        // Reset so soon after the handshake (accepted and shed) that connect, its
        // thread not yet scheduled again, returns the reset: a busy machine.
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(Fate::Reset),
        Err(e) => return Err(format!("flood {id}: connect: {e}")),
    };
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let line = format!("flood client {id}\n");
    match c.write_all(line.as_bytes()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(Fate::Reset),
        Err(e) => return Err(format!("flood {id}: write: {e}")),
    }
    let mut got = vec![0u8; line.len()];
    match c.read_exact(&mut got) {
        Ok(()) if got == line.as_bytes() => Ok(Fate::Served(c)),
        Ok(()) => Err(format!("flood {id}: echo differs")),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(Fate::Reset),
        Err(e) => Err(format!("flood {id}: read: {e}")),
    }
}
