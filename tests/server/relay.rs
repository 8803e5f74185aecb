//! Connections the server opens itself (UNP 16.3's nonblocking `connect`), adopts
//! and pairs: first in-process, with small protocols on `Server<P>`; then
//! `examples/relay.rs`, the TCP relay built on them, run as a user runs it, with
//! the upstream played by the test. Loopback only; every test under a watchdog.
//!
//! Linux only: the time-out test counts on Linux dropping a SYN when the accept
//! queue is full, the memory test reads `/proc/PID/status`, and the loops include
//! epoll.
#![cfg(target_os = "linux")]

use crate::common;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::socket::{self as nixsock, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
use unp_select::server::{Config, ConnId, ConnectError, Context, Frame, Protocol};
use unp_select::sources::Backend;

use common::examples::{example, ServerProcess};
use common::server::Running;
use common::{is_timeout, Watchdog};

// ---------------------------------------------------------------------------
// Helpers: data, sockets, upstreams.

/// `len` bytes of a xorshift stream seeded with `seed`: nothing periodic in which a
/// lost, repeated or reordered piece could hide.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

const MIB: usize = 1024 * 1024;

/// 10 MiB up (client to upstream) and 10 MiB down, made once.
fn ten_mib(down: bool) -> &'static [u8] {
    static UP: OnceLock<Vec<u8>> = OnceLock::new();
    static DOWN: OnceLock<Vec<u8>> = OnceLock::new();
    let (cell, seed) = if down { (&DOWN, 2) } else { (&UP, 1) };
    cell.get_or_init(|| pattern(seed, 10 * MIB))
}

/// Reads `stream` to end of file; `Err` says where it first differed from
/// `expected`, or how much came.
fn expect_exactly(stream: &mut TcpStream, expected: &[u8], what: &str) -> Result<(), String> {
    expect_paced(stream, expected, what, 64 * 1024, Duration::ZERO)
}

/// Sends `up_data` from the client `c` and `down_data` from the upstream `up` at
/// once, each half-closing after, and checks that each side reads the other's data
/// byte for byte; `case` names the case in a failure. Returns both, open.
fn exchange_both_ways(
    mut c: TcpStream,
    up: TcpStream,
    up_data: &'static [u8],
    down_data: &'static [u8],
    case: &str,
) -> (TcpStream, TcpStream) {
    let writers = [
        (c.try_clone().unwrap(), up_data),
        (up.try_clone().unwrap(), down_data),
    ]
    .map(|(mut s, data)| {
        thread::spawn(move || {
            s.write_all(data).map_err(|e| e.to_string())?;
            s.shutdown(Shutdown::Write).map_err(|e| e.to_string())
        })
    });
    let upstream_read = thread::spawn(move || {
        let mut up = up;
        expect_exactly(&mut up, up_data, "upstream").map(|()| up)
    });
    let client_read = expect_exactly(&mut c, down_data, "client");
    for w in writers {
        w.join()
            .unwrap()
            .unwrap_or_else(|e| panic!("{case}: write: {e}"));
    }
    let up = upstream_read
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    client_read.unwrap_or_else(|e| panic!("{case}: {e}"));
    (c, up)
}

/// As [`expect_exactly`], reading at most `chunk` bytes at a time with `pause`
/// after each read: a reader slower than its sender, but steady.
fn expect_paced(
    stream: &mut TcpStream,
    expected: &[u8],
    what: &str,
    chunk: usize,
    pause: Duration,
) -> Result<(), String> {
    let mut buf = vec![0u8; chunk];
    let mut at = 0;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Err(format!("{what}: read after {at} bytes: {e}")),
        };
        if at + n > expected.len() {
            return Err(format!(
                "{what}: {} bytes, more than the {} sent",
                at + n,
                expected.len()
            ));
        }
        if buf[..n] != expected[at..at + n] {
            let i = (0..n).find(|&i| buf[i] != expected[at + i]).unwrap_or(0);
            return Err(format!("{what}: byte {} differs", at + i));
        }
        at += n;
        thread::sleep(pause);
    }
    match at == expected.len() {
        true => Ok(()),
        false => Err(format!(
            "{what}: {at} of {} bytes, then end of file",
            expected.len()
        )),
    }
}

/// Reads `n` bytes and returns them as text.
fn read_text(stream: &mut TcpStream, n: usize) -> String {
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf).expect("read");
    String::from_utf8_lossy(&buf).into_owned()
}

/// Whether the peer closed: a read gives end of file, or a reset (a socket closed
/// with unread input resets), within the stream's read time-out.
fn closed(stream: &mut TcpStream) -> Result<(), String> {
    match stream.read(&mut [0u8; 256]) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!("{n} bytes where end of file was expected")),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
        Err(e) if is_timeout(&e) => Err("still open after the read time-out".to_string()),
        Err(e) => Err(format!("read: {e}")),
    }
}

/// A TCP client of `addr`, reads and writes bounded by `timeout`.
fn client(addr: SocketAddr, timeout: Duration) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(timeout)).expect("SO_RCVTIMEO");
    s.set_write_timeout(Some(timeout)).expect("SO_SNDTIMEO");
    s
}

/// The next connection of `listener`, within `limit`; blocking, with read and
/// write time-outs of 10 s.
fn accept_within(listener: &TcpListener, limit: Duration) -> TcpStream {
    listener.set_nonblocking(true).expect("FIONBIO");
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).expect("FIONBIO");
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
                return s;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(
                    start.elapsed() < limit,
                    "nothing connected within {limit:?}"
                );
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A port on 127.0.0.1 where nothing listens, held by a socket bound to it (not
/// listening) so no other test takes it: a connect to it is refused (RST).
fn refusing() -> (OwnedFd, SocketAddr) {
    let fd = nixsock::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    nixsock::bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).expect("bind");
    let bound: SockaddrIn = nixsock::getsockname(fd.as_raw_fd()).expect("getsockname");
    let addr = SocketAddr::V4(SocketAddrV4::new(bound.ip(), bound.port()));
    (fd, addr)
}

/// A listener whose accept queue is full (backlog 0, one connection in it, never
/// accepted): Linux drops the next SYN, so a connect to it gets no answer until
/// the queue has room. Returns the listener and the connection filling it.
fn full_listener() -> (TcpListener, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    nixsock::listen(&listener, nixsock::Backlog::new(0).unwrap()).expect("listen(0)");
    let filler = TcpStream::connect(listener.local_addr().unwrap()).expect("filler");
    (listener, filler)
}

/// Writes `data` until done or until one write waited `stall` (the socket's write
/// time-out: the reader's window stays shut, or opens only by the odd probe);
/// returns how many bytes went.
fn write_until_stalled(stream: &mut TcpStream, data: &[u8], stall: Duration) -> usize {
    stream.set_write_timeout(Some(stall)).expect("SO_SNDTIMEO");
    let mut written = 0;
    while written < data.len() {
        let end = data.len().min(written + 64 * 1024);
        let start = Instant::now();
        match stream.write(&data[written..end]) {
            Ok(n) => written += n,
            // A time-out; or a reset, which the caller's checks then explain.
            Err(_) => break,
        }
        if start.elapsed() >= stall {
            break; // a part went, then the time-out
        }
    }
    written
}

fn set_buffers(fd: &impl AsFd, bytes: usize) {
    nixsock::setsockopt(fd, sockopt::RcvBuf, &bytes).expect("SO_RCVBUF");
    nixsock::setsockopt(fd, sockopt::SndBuf, &bytes).expect("SO_SNDBUF");
}

// ---------------------------------------------------------------------------
// In-process protocols.

/// How a failed connect was sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sort {
    Refused,
    TimedOut,
    Unreachable,
    Reset,
    OutOfResources,
    Other,
}

impl Sort {
    fn of(e: &ConnectError) -> Sort {
        match e {
            ConnectError::Refused(_) => Sort::Refused,
            ConnectError::TimedOut(_) => Sort::TimedOut,
            ConnectError::Unreachable(_) => Sort::Unreachable,
            ConnectError::Reset(_) => Sort::Reset,
            ConnectError::OutOfResources(_) => Sort::OutOfResources,
            _ => Sort::Other,
        }
    }
}

/// One connection as its protocol's `connect` saw it.
#[derive(Clone, Debug)]
struct Seen {
    id: ConnId,
    outgoing: bool,
    partner: Option<ConnId>,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
}

/// What the protocol saw, for the test to check.
#[derive(Default, Debug)]
struct Log {
    seen: Vec<Seen>,
    /// `Protocol::connect_failed`: the sort and the errno.
    failed: Vec<(Sort, Option<i32>)>,
    /// `Context::connect` or `adopt` failing at once.
    at_once: Vec<String>,
}

type Shared<T> = Arc<Mutex<T>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where a client's other side comes from.
#[derive(Clone)]
enum Upstream {
    /// `Context::connect` to this address.
    Dial(SocketAddr),
    /// `Context::adopt` of the stream the test left here.
    Adopt(Shared<Option<TcpStream>>),
}

/// Runs on the loop's thread right after the dial (the reset test holds the loop
/// there).
type Hook = Arc<dyn Fn() + Send + Sync>;

/// The relay in a few lines, as `examples/relay.rs`: each accepted client gets an
/// upstream, paired with it; bytes go both ways; a half-close is passed on.
#[derive(Clone)]
struct Pair {
    upstream: Upstream,
    log: Shared<Log>,
    after_dial: Option<Hook>,
}

impl Pair {
    fn new(upstream: Upstream) -> Pair {
        Pair {
            upstream,
            log: Arc::default(),
            after_dial: None,
        }
    }

    fn dial(addr: SocketAddr) -> Pair {
        Pair::new(Upstream::Dial(addr))
    }
}

impl Protocol for Pair {
    /// The other side.
    type Conn = Option<ConnId>;

    fn connect(&mut self, ctx: &mut Context<'_>) -> Option<ConnId> {
        lock(&self.log).seen.push(Seen {
            id: ctx.id(),
            outgoing: ctx.is_outgoing(),
            partner: ctx.partner(),
            peer: ctx.peer_addr().ok(),
            local: ctx.local_addr().ok(),
        });
        if ctx.partner().is_some() {
            return ctx.partner(); // the upstream side: its client paired it
        }
        let other = match &self.upstream {
            Upstream::Dial(addr) => ctx.connect(*addr).map_err(|e| e.to_string()),
            Upstream::Adopt(slot) => match lock(slot).take() {
                Some(stream) => ctx.adopt(stream).map_err(|e| e.to_string()),
                None => Err("no stream to adopt".to_string()),
            },
        };
        if let Some(hook) = &self.after_dial {
            hook();
        }
        match other {
            Ok(other) => {
                ctx.pair(other);
                Some(other)
            }
            Err(e) => {
                lock(&self.log).at_once.push(e);
                ctx.close();
                None
            }
        }
    }

    fn receive(&mut self, other: &mut Option<ConnId>, msg: &[u8], ctx: &mut Context<'_>) {
        if let Some(other) = *other {
            ctx.send_to(other, msg);
        }
    }

    fn end_of_input(&mut self, other: &mut Option<ConnId>, ctx: &mut Context<'_>) {
        match *other {
            Some(other) => {
                ctx.shutdown_write_other(other);
            }
            None => ctx.close(),
        }
    }

    fn connect_failed(&mut self, _: ConnId, error: ConnectError) {
        let errno = error.error().raw_os_error();
        lock(&self.log).failed.push((Sort::of(&error), errno));
    }
}

/// Bytes back as they come.
#[derive(Clone)]
struct Echo;

impl Protocol for Echo {
    type Conn = ();
    fn connect(&mut self, _: &mut Context<'_>) {}
    fn receive(&mut self, _: &mut (), msg: &[u8], ctx: &mut Context<'_>) {
        let _ = ctx.send(msg);
    }
}

const FAN: usize = 50;
const FAN_BYTES: usize = 16 * 1024;

/// UNP 16.5's shape: one accepted client makes the server open `FAN` connections
/// to `target` at once, each sent its own `FAN_BYTES` before it is established;
/// each that gets them all back, byte for byte, tells the client `ok K`.
#[derive(Clone)]
struct Fan {
    target: SocketAddr,
    /// Outgoing connection → its number and its client.
    dialed: HashMap<ConnId, (usize, ConnId)>,
    failed: Shared<Vec<String>>,
}

enum FanConn {
    Client,
    Out {
        k: usize,
        client: ConnId,
        got: Vec<u8>,
    },
}

impl Protocol for Fan {
    type Conn = FanConn;

    fn connect(&mut self, ctx: &mut Context<'_>) -> FanConn {
        if let Some((k, client)) = self.dialed.remove(&ctx.id()) {
            assert!(ctx.is_outgoing());
            return FanConn::Out {
                k,
                client,
                got: Vec::new(),
            };
        }
        for k in 0..FAN {
            match ctx.connect(self.target) {
                Ok(id) => {
                    self.dialed.insert(id, (k, ctx.id()));
                    // Still connecting: queued until it is established.
                    assert!(ctx.send_to(id, &pattern(k as u64 + 10, FAN_BYTES)));
                }
                Err(e) => lock(&self.failed).push(format!("{k} at once: {e}")),
            }
        }
        FanConn::Client
    }

    fn receive(&mut self, conn: &mut FanConn, msg: &[u8], ctx: &mut Context<'_>) {
        let FanConn::Out { k, client, got } = conn else {
            return;
        };
        got.extend_from_slice(msg);
        if got.len() >= FAN_BYTES {
            let ok = *got == pattern(*k as u64 + 10, FAN_BYTES);
            let verdict = if ok { "ok" } else { "bad" };
            ctx.send_to(*client, format!("{verdict} {k}\n").as_bytes());
            ctx.close();
        }
    }

    fn connect_failed(&mut self, id: ConnId, error: ConnectError) {
        lock(&self.failed).push(format!("{:?}: {error}", self.dialed.get(&id)));
    }
}

/// Lines back; `stop` is answered `bye` and stops the server.
#[derive(Clone)]
struct Stopper;

impl Protocol for Stopper {
    type Conn = ();
    fn connect(&mut self, ctx: &mut Context<'_>) {
        ctx.set_frame(Frame::Line);
    }
    fn receive(&mut self, _: &mut (), line: &[u8], ctx: &mut Context<'_>) {
        if line == b"stop\n" {
            let _ = ctx.send(b"bye\n");
            ctx.shutdown_server();
        } else {
            let _ = ctx.send(line);
        }
    }
}

/// `protocol` served on a listener of 127.0.0.1 whose sockets have 16 KiB
/// buffers (an accepted socket inherits them): the relay's side toward its
/// client takes little at a time, as on a slow network, so the relay's queue is
/// sent in many partial sends.
fn behind_small_buffers<P>(protocol: P, config: Config, backend: Backend) -> Running
where
    P: Protocol + Clone + Send + 'static,
{
    let front = TcpListener::bind("127.0.0.1:0").unwrap();
    set_buffers(&front, 16 * 1024);
    let server = unp_select::server::Server::new(front, protocol, config).unwrap();
    Running {
        addr: server.local_addr().unwrap(),
        stop: server.shutdown_handle(),
        stats: server.stats_handle(),
        thread: thread::spawn(move || server.run_workers(backend)),
    }
}

/// Waits until the server's thread is done (at most `limit`) and returns its
/// counters.
fn joined(server: Running, limit: Duration) -> unp_select::server::Stats {
    let start = Instant::now();
    while !server.thread.is_finished() {
        assert!(
            start.elapsed() < limit,
            "the server still runs after {limit:?}"
        );
        thread::sleep(Duration::from_millis(2));
    }
    server.thread.join().expect("server panicked").expect("run")
}

// ---------------------------------------------------------------------------
// 1. Outgoing connections, in-process.

/// Nothing listens: `connect_failed` hears `Refused` (ECONNREFUSED, from
/// `SO_ERROR` once the socket is writable), it is counted, and the paired client
/// is closed. On every loop.
#[test]
fn refused_connect_is_sorted_and_closes_the_client() {
    let _dog = Watchdog::new("refused", Duration::from_secs(30));
    let (_holder, dead) = refusing();
    for backend in [Backend::Select, Backend::Poll, Backend::Epoll] {
        let protocol = Pair::dial(dead);
        let log = protocol.log.clone();
        let server = Running::start(protocol, Config::default(), backend);
        let mut c = client(server.addr, Duration::from_secs(5));
        closed(&mut c).unwrap_or_else(|e| panic!("{backend:?}: the client: {e}"));
        let stats = server.wait_for("connect_failed", |s| s.connect_failed == 1);
        assert_eq!((stats.connected, stats.accepted), (0, 1), "{backend:?}");
        let log = lock(&log);
        assert_eq!(log.at_once, Vec::<String>::new(), "{backend:?}");
        assert_eq!(
            log.failed,
            [(Sort::Refused, Some(libc::ECONNREFUSED))],
            "{backend:?}"
        );
        drop(log);
        server.finish();
    }
}

/// A SYN that gets no answer (the listener's accept queue is full): after
/// `Config::connect_timeout` the connect fails with `TimedOut`, not before, and
/// the client is closed.
#[test]
fn unanswered_connect_times_out() {
    let _dog = Watchdog::new("connect time-out", Duration::from_secs(30));
    let (listener, _filler) = full_listener();
    let protocol = Pair::dial(listener.local_addr().unwrap());
    let log = protocol.log.clone();
    let timeout = Duration::from_millis(300);
    let config = Config::default().with_connect_timeout(timeout);
    let server = Running::start(protocol, config, Backend::Epoll);
    let start = Instant::now();
    let mut c = client(server.addr, Duration::from_secs(5));
    closed(&mut c).unwrap_or_else(|e| panic!("the client: {e}"));
    let took = start.elapsed();
    assert!(
        took >= timeout,
        "closed after {took:?}, before the time-out"
    );
    let stats = server.wait_for("connect_failed", |s| s.connect_failed == 1);
    assert_eq!(stats.connected, 0);
    assert_eq!(lock(&log).failed, [(Sort::TimedOut, None)]);
    server.finish();
}

/// A reset between the handshake and the loop's look at `SO_ERROR`: the upstream
/// accepts and aborts (SO_LINGER 0) while the loop is held right after its
/// `connect`, so the socket's pending error is ECONNRESET when the loop looks
/// (UNP 16.3), and the connect is sorted `Reset`. (A reset of the SYN itself is a
/// refusal, tested above; on loopback nothing else resets a handshake.)
#[test]
fn reset_before_the_connect_is_seen_is_sorted_as_reset() {
    let _dog = Watchdog::new("reset during connect", Duration::from_secs(30));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut protocol = Pair::dial(listener.local_addr().unwrap());
    let log = protocol.log.clone();
    let (aborted_tx, aborted_rx) = mpsc::channel::<()>();
    let aborted_rx = Mutex::new(aborted_rx);
    protocol.after_dial = Some(Arc::new(move || {
        // The loop waits here until the upstream has reset the connection.
        let _ = lock(&aborted_rx).recv_timeout(Duration::from_secs(5));
        thread::sleep(Duration::from_millis(20)); // the RST crosses loopback
    }));
    let upstream = thread::spawn(move || {
        let s = accept_within(&listener, Duration::from_secs(5));
        unp_select::linger::abort(s).expect("abort");
        aborted_tx.send(()).unwrap();
    });
    let server = Running::start(protocol, Config::default(), Backend::Poll);
    let mut c = client(server.addr, Duration::from_secs(5));
    closed(&mut c).unwrap_or_else(|e| panic!("the client: {e}"));
    upstream.join().unwrap();
    let stats = server.wait_for("connect_failed", |s| s.connect_failed == 1);
    assert_eq!(stats.connected, 0, "{:?}", lock(&log));
    assert_eq!(lock(&log).failed, [(Sort::Reset, Some(libc::ECONNRESET))]);
    server.finish();
}

/// UNP 16.5: one client starts 50 connects at once, on every loop; all are
/// established, each gets its own data back intact.
#[test]
fn fifty_connects_at_once_all_complete() {
    let _dog = Watchdog::new("fifty connects", Duration::from_secs(60));
    let echo = Running::start(Echo, Config::default(), Backend::Poll);
    for backend in [
        Backend::Select,
        Backend::LargeSelect,
        Backend::Poll,
        Backend::Epoll,
    ] {
        let failed = Arc::default();
        let fan = Fan {
            target: echo.addr,
            dialed: HashMap::new(),
            failed: Arc::clone(&failed),
        };
        let server = Running::start(fan, Config::default(), backend);
        let c = client(server.addr, Duration::from_secs(10));
        let mut lines = BufReader::new(c);
        let mut ok = [false; FAN];
        for _ in 0..FAN {
            let mut line = String::new();
            if let Err(e) = lines.read_line(&mut line) {
                panic!("{backend:?}: {e}; failures: {:?}", lock(&failed));
            }
            let k: usize = line
                .strip_prefix("ok ")
                .and_then(|k| k.trim().parse().ok())
                .unwrap_or_else(|| panic!("{backend:?}: {line:?}"));
            assert!(!ok[k], "{backend:?}: {k} twice");
            ok[k] = true;
        }
        let stats = server.finish();
        assert_eq!(
            (stats.connected, stats.connect_failed),
            (FAN as u64, 0),
            "{backend:?}"
        );
        assert_eq!(*lock(&failed), Vec::<String>::new());
    }
    echo.finish();
}

/// Output sent to a connection still connecting waits and is delivered once it is
/// established: the upstream's accept queue is full, so the SYN is dropped; the
/// client's bytes reach the relay meanwhile; then the queue is freed, the SYN is
/// sent again (after 1 s, Linux's first retransmission) and answered.
#[test]
fn output_waits_for_a_slow_connect() {
    let _dog = Watchdog::new("slow connect", Duration::from_secs(30));
    let (listener, filler) = full_listener();
    let protocol = Pair::dial(listener.local_addr().unwrap());
    let server = Running::start(protocol, Config::default(), Backend::Select);
    let data = pattern(7, 40 * 1024);
    let mut c = client(server.addr, Duration::from_secs(10));
    c.write_all(&data).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let stats = server.wait_for("the data delivered", |s| s.bytes_received == 40 * 1024);
    assert_eq!(stats.connected, 0, "the upstream is still connecting");
    // Room in the queue: the next SYN is answered.
    let _filler_accepted = accept_within(&listener, Duration::from_secs(1));
    drop(filler);
    let mut up = accept_within(&listener, Duration::from_secs(10));
    expect_exactly(&mut up, &data, "the upstream").unwrap();
    drop(up);
    closed(&mut c).unwrap();
    let stats = server.finish();
    assert_eq!((stats.connected, stats.connect_failed), (1, 0));
}

/// `adopt` serves a stream connected elsewhere: both ways, the half-close passed
/// on, its addresses, counted as connected.
#[test]
fn adopted_stream_is_served() {
    let _dog = Watchdog::new("adopt", Duration::from_secs(30));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let made = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let made_local = made.local_addr().unwrap();
    let made_dup = made.try_clone().unwrap(); // shares its file status flags
    let mut far = accept_within(&listener, Duration::from_secs(5));
    let slot = Arc::new(Mutex::new(Some(made)));
    let protocol = Pair::new(Upstream::Adopt(Arc::clone(&slot)));
    let log = protocol.log.clone();
    let server = Running::start(protocol, Config::default(), Backend::Epoll);
    let mut c = client(server.addr, Duration::from_secs(5));
    c.write_all(b"ping").unwrap();
    assert_eq!(read_text(&mut far, 4), "ping");
    far.write_all(b"pong").unwrap();
    assert_eq!(read_text(&mut c, 4), "pong");
    c.shutdown(Shutdown::Write).unwrap();
    closed(&mut far).unwrap(); // the client's FIN, passed on
    far.write_all(b"late").unwrap();
    assert_eq!(read_text(&mut c, 4), "late");
    drop(far);
    closed(&mut c).unwrap();
    assert!(lock(&slot).is_none(), "adopted");
    let flags = nix::fcntl::fcntl(&made_dup, nix::fcntl::FcntlArg::F_GETFL).unwrap();
    let flags = nix::fcntl::OFlag::from_bits_retain(flags);
    assert!(
        flags.contains(nix::fcntl::OFlag::O_NONBLOCK),
        "adopted, made nonblocking"
    );
    let stats = server.finish();
    assert_eq!((stats.accepted, stats.connected), (1, 1));
    let log = lock(&log);
    let [client_side, adopted] = &log.seen[..] else {
        panic!("{:?}", log.seen);
    };
    assert!(!adopted.outgoing, "adopted, not opened: {adopted:?}");
    assert_eq!(adopted.partner, Some(client_side.id));
    assert_eq!(adopted.peer, Some(listener.local_addr().unwrap()));
    assert_eq!(adopted.local, Some(made_local));
}

/// `peer_addr`, `local_addr`, `is_outgoing` and `partner` of an accepted and an
/// outgoing connection.
#[test]
fn addresses_and_sides_of_a_pair() {
    let _dog = Watchdog::new("addresses", Duration::from_secs(30));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let up_addr = listener.local_addr().unwrap();
    let protocol = Pair::dial(up_addr);
    let log = protocol.log.clone();
    let server = Running::start(protocol, Config::default(), Backend::Poll);
    let mut c = client(server.addr, Duration::from_secs(5));
    let mut up = accept_within(&listener, Duration::from_secs(5));
    c.write_all(b"x").unwrap();
    assert_eq!(read_text(&mut up, 1), "x");
    let log = lock(&log);
    let [accepted, outgoing] = &log.seen[..] else {
        panic!("{:?}", log.seen);
    };
    assert!(!accepted.outgoing);
    assert_eq!(accepted.partner, None, "paired after its connect");
    assert_eq!(accepted.peer, Some(c.local_addr().unwrap()));
    assert_eq!(accepted.local, Some(server.addr));
    assert!(outgoing.outgoing);
    assert_eq!(outgoing.partner, Some(accepted.id));
    assert_eq!(outgoing.peer, Some(up_addr));
    assert_eq!(outgoing.local, Some(up.peer_addr().unwrap()));
    drop(log);
    server.finish();
}

/// `Context::shutdown_server` stops the server: the reply queued with it is
/// delivered (the drain), every client sees end of file, `run` returns.
#[test]
fn protocol_stops_its_server() {
    let _dog = Watchdog::new("shutdown_server", Duration::from_secs(30));
    let server = Running::start(Stopper, Config::default(), Backend::Epoll);
    let mut idle = client(server.addr, Duration::from_secs(5));
    idle.write_all(b"hi\n").unwrap();
    assert_eq!(read_text(&mut idle, 3), "hi\n");
    let mut c = client(server.addr, Duration::from_secs(5));
    c.write_all(b"stop\n").unwrap();
    assert_eq!(read_text(&mut c, 4), "bye\n");
    closed(&mut c).unwrap();
    closed(&mut idle).unwrap();
    let stats = joined(server, Duration::from_secs(3));
    assert_eq!((stats.closed_shutdown, stats.undelivered), (2, 0));
}

/// `pair`'s back-pressure: the upstream reads nothing, so the relay stops reading
/// its client once the upstream's output passes `max_unsent`; what the relay
/// holds (bytes read, not yet sent on) stays within a few `max_unsent`, the
/// client's writes stall, and once the upstream reads, every byte arrives.
#[test]
fn pair_back_pressure_bounds_what_the_relay_holds() {
    let _dog = Watchdog::new("pair back-pressure", Duration::from_secs(60));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    set_buffers(&listener, 32 * 1024); // inherited by the accepted socket
    let protocol = Pair::dial(listener.local_addr().unwrap());
    let config = Config::default();
    let max_unsent = config.max_unsent;
    let server = Running::start(protocol, config, Backend::Poll);
    let mut c = client(server.addr, Duration::from_secs(10));
    set_buffers(&c, 32 * 1024);
    let mut up = accept_within(&listener, Duration::from_secs(5));
    // What the relay holds, sampled while the client writes.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, stats) = (Arc::clone(&stop), server.stats.clone());
        thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::SeqCst) {
                let s = stats.snapshot();
                peak = peak.max(s.bytes_received.saturating_sub(s.bytes_sent));
                thread::sleep(Duration::from_millis(1));
            }
            peak
        })
    };
    let data = pattern(3, 32 * MIB);
    let written = write_until_stalled(&mut c, &data, Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let peak = sampler.join().unwrap() as usize;
    let s = server.stats.snapshot();
    let held = (s.bytes_received - s.bytes_sent) as usize;
    assert!(
        written < data.len(),
        "the client's writes never stalled: the relay read all {written} bytes"
    );
    assert!(
        peak.max(held) <= 3 * max_unsent,
        "the relay held up to {peak} bytes (now {held}), over 3 × max_unsent; \
         the client wrote {written}"
    );
    // The upstream reads now: everything arrives, in order.
    c.shutdown(Shutdown::Write).unwrap();
    expect_exactly(&mut up, &data[..written], "the upstream").unwrap();
    drop(up);
    closed(&mut c).unwrap();
    let stats = server.finish();
    assert_eq!(stats.closed_policy, 0);
}

/// Bytes through a pair, 4 MiB each way at once, then a half-close each way, on
/// every loop: byte for byte, the relay's side toward the client taking 16 KiB
/// at a time (many partial sends of its queue).
#[test]
fn pair_relays_byte_exact_through_small_buffers_on_every_loop() {
    let _dog = Watchdog::new("pair byte-exact", Duration::from_secs(60));
    let (up_data, down_data) = (&ten_mib(false)[..4 * MIB], &ten_mib(true)[..4 * MIB]);
    for backend in [
        Backend::Select,
        Backend::LargeSelect,
        Backend::Poll,
        Backend::Epoll,
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let protocol = Pair::dial(listener.local_addr().unwrap());
        // Longer than the transfer can take even on a loaded machine: see
        // `paired_steady_reader_is_not_cut_by_write_timeout`.
        let config = Config::default().with_write_timeout(Duration::from_secs(60));
        let server = behind_small_buffers(protocol, config, backend);
        let c = client(server.addr, Duration::from_secs(10));
        let up = accept_within(&listener, Duration::from_secs(5));
        let _open = exchange_both_ways(c, up, up_data, down_data, &format!("{backend:?}"));
        let stats = server.finish();
        let both = 2 * 4 * MIB as u64;
        assert_eq!(
            (stats.bytes_received, stats.bytes_sent),
            (both, both),
            "{backend:?}"
        );
        assert_eq!(
            (stats.connected, stats.closed_reset, stats.closed_policy),
            (1, 0, 0)
        );
    }
}

/// The two directions of a pair are independent: an upstream that sends while it
/// reads nothing (an HTTP server answering early, before it has read a large
/// upload; a blocking echo whose write is stuck) must reach the client, though
/// the relay holds more than `max_unsent` for that upstream. Directly connected,
/// the client would get it all.
// Failed before: a paired connection was not read while its own output (the
// other direction's data) was over max_unsent: 0 bytes of 256 KiB arrived.
#[test]
fn pair_directions_are_independent() {
    let _dog = Watchdog::new("pair directions", Duration::from_secs(60));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let protocol = Pair::dial(listener.local_addr().unwrap());
    let server = Running::start(protocol, Config::default(), Backend::Poll);
    let mut c = client(server.addr, Duration::from_secs(3));
    let mut up = accept_within(&listener, Duration::from_secs(5));
    // The client uploads; the upstream reads none of it.
    let upload = pattern(11, 16 * MIB);
    let sent = write_until_stalled(&mut c, &upload, Duration::from_millis(300));
    let s = server.stats.snapshot();
    let held = s.bytes_received - s.bytes_sent;
    assert!(
        held as usize > Config::default().max_unsent,
        "the relay holds {held}"
    );
    // The upstream answers while it still reads nothing.
    let answer = pattern(12, 256 * 1024);
    let writer = {
        let (mut up, answer) = (up.try_clone().unwrap(), answer.clone());
        thread::spawn(move || up.write_all(&answer).map_err(|e| e.to_string()))
    };
    let mut got = vec![0u8; answer.len()];
    let mut at = 0;
    while at < got.len() {
        match c.read(&mut got[at..]) {
            Ok(0) => panic!("end of file after {at} bytes of the answer"),
            Ok(n) => at += n,
            Err(e) => panic!("{at} of {} bytes of the answer, then {e}", answer.len()),
        }
    }
    assert!(got == answer, "the answer differs");
    writer.join().unwrap().unwrap();
    // Then the upstream reads the upload.
    c.shutdown(Shutdown::Write).unwrap();
    up.shutdown(Shutdown::Write).unwrap();
    expect_exactly(&mut up, &upload[..sent], "the upload").unwrap();
    closed(&mut c).unwrap();
    server.finish();
}

/// A paired connection whose reader keeps reading, only slower than its upstream
/// sends, is not cut by `Config::write_timeout`: its output is bounded by the
/// pair's back-pressure, and it makes progress all along. The relay's socket
/// toward the client has a small send buffer (16 KiB, inherited from the
/// listener), as on a slow network: each time it is writable it takes less than
/// the relay holds, so the relay's queue never empties while the upstream is
/// faster.
// Failed before: the write timeout ran from when output first stayed unsent until
// none was left; the client got 5.5 of 12 MiB, then EOF at 1.01 s.
#[test]
fn paired_steady_reader_is_not_cut_by_write_timeout() {
    let _dog = Watchdog::new("steady reader", Duration::from_secs(60));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let write_timeout = Duration::from_secs(1);
    let config = Config::default().with_write_timeout(write_timeout);
    let protocol = Pair::dial(listener.local_addr().unwrap());
    let server = behind_small_buffers(protocol, config, Backend::Poll);
    let mut c = client(server.addr, Duration::from_secs(10));
    let mut up = accept_within(&listener, Duration::from_secs(5));
    // About 2 s at 32 KiB every 5 ms: twice the write time-out.
    let data = pattern(9, 12 * MIB);
    let writer = {
        let data = data.clone();
        thread::spawn(move || up.write_all(&data).map_err(|e| e.to_string()))
    };
    let start = Instant::now();
    let got = expect_paced(
        &mut c,
        &data,
        "the client",
        32 * 1024,
        Duration::from_millis(5),
    );
    let took = start.elapsed();
    let stats = server.stats.snapshot();
    got.unwrap_or_else(|e| {
        panic!(
            "{e} after {took:?} (write_timeout {write_timeout:?}); closed_policy: {}",
            stats.closed_policy
        )
    });
    writer.join().unwrap().unwrap();
    assert_eq!(server.finish().closed_policy, 0);
}

// ---------------------------------------------------------------------------
// 2. examples/relay.rs.

/// The relay's loops: select (the default), `--poll`, `--large`, `--epoll`, and
/// two workers.
const LOOPS: [&[&str]; 5] = [
    &[],
    &["--poll"],
    &["--large"],
    &["--epoll"],
    &["--workers", "2"],
];

fn start_relay(args: &[&str], upstream: SocketAddr) -> ServerProcess {
    let up = upstream.to_string();
    ServerProcess::spawn_with_operands("relay", example("relay").args(args), &[&up])
}

/// The value of counter `name` in the relay's last lines.
fn counter(out: &str, name: &str) -> u64 {
    let prefix = format!("{name}: ");
    out.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no counter {name} in {out:?}"))
}

/// SIGTERM; the relay exits 0 with its counters.
fn stop_relay(relay: ServerProcess) -> String {
    let (status, out) = relay.terminate();
    assert!(status.success(), "relay exited with {status}: {out}");
    assert!(out.contains("relay: stopped; counters:"), "{out}");
    out
}

/// `--help` prints the usage; a missing or extra operand is a usage error (exit 2).
#[test]
fn relay_usage() {
    let _dog = Watchdog::new("relay usage", Duration::from_secs(60));
    let run = |args: &[&str]| {
        let out = example("relay")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run relay");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = run(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(text.starts_with("usage: relay"), "{text}");
    assert_eq!(run(&["127.0.0.1:0"]).0, Some(2), "UPSTREAM_ADDR missing");
    assert_eq!(run(&["127.0.0.1:0", "127.0.0.1:1", "x"]).0, Some(2));
}

/// 10 MiB each way at once through the relay, byte for byte, then both sides
/// half-close; on every loop.
#[test]
fn relay_moves_10_mib_each_way_on_every_loop() {
    let _dog = Watchdog::new("relay 10 MiB", Duration::from_secs(120));
    let (up_data, down_data) = (ten_mib(false), ten_mib(true));
    for args in LOOPS {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let relay = start_relay(args, listener.local_addr().unwrap());
        let c = client(relay.addr, Duration::from_secs(10));
        let up = accept_within(&listener, Duration::from_secs(5));
        let _open = exchange_both_ways(c, up, up_data, down_data, &format!("{args:?}"));
        let out = stop_relay(relay);
        let both = 2 * 10 * MIB as u64;
        assert_eq!(counter(&out, "bytes_received"), both, "{args:?}");
        assert_eq!(counter(&out, "bytes_sent"), both, "{args:?}");
        for (name, n) in [("accepted", 1), ("connected", 1), ("closed_reset", 0)] {
            assert_eq!(counter(&out, name), n, "{args:?}: {name}");
        }
    }
}

/// A half-close passes on both ways: the client's FIN reaches the upstream, which
/// can still send; then the upstream's close reaches the client. And the other
/// way round.
#[test]
fn relay_passes_half_close_both_ways() {
    let _dog = Watchdog::new("relay half-close", Duration::from_secs(30));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay = start_relay(&["--epoll"], listener.local_addr().unwrap());

    // The client half-closes first.
    let mut c = client(relay.addr, Duration::from_secs(5));
    let mut up = accept_within(&listener, Duration::from_secs(5));
    c.write_all(b"up before FIN").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    up.read_to_string(&mut got)
        .expect("the upstream reads to end of file");
    assert_eq!(got, "up before FIN");
    up.write_all(b"down after the client's FIN").unwrap();
    assert_eq!(read_text(&mut c, 27), "down after the client's FIN");
    drop(up);
    closed(&mut c).expect("the upstream's close reaches the client");

    // The upstream half-closes first.
    let mut c = client(relay.addr, Duration::from_secs(5));
    let mut up = accept_within(&listener, Duration::from_secs(5));
    up.write_all(b"down before FIN").unwrap();
    up.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got)
        .expect("the client reads to end of file");
    assert_eq!(got, "down before FIN");
    c.write_all(b"up after the upstream's FIN").unwrap();
    assert_eq!(read_text(&mut up, 27), "up after the upstream's FIN");
    drop(c);
    closed(&mut up).expect("the client's close reaches the upstream");

    let out = stop_relay(relay);
    assert_eq!(counter(&out, "connected"), 2);
    assert_eq!(counter(&out, "closed_reset"), 0);
}

/// An upstream that refuses: the client is closed at once, and the relay counts
/// the failed connect.
#[test]
fn relay_closes_a_client_whose_upstream_refuses() {
    let _dog = Watchdog::new("relay refused", Duration::from_secs(30));
    let (_holder, dead) = refusing();
    let relay = start_relay(&["--poll"], dead);
    for _ in 0..3 {
        let mut c = client(relay.addr, Duration::from_secs(5));
        let _ = c.write_all(b"anyone there?");
        closed(&mut c).expect("the client is closed");
    }
    let out = stop_relay(relay);
    assert_eq!(counter(&out, "connect_failed"), 3);
    assert_eq!(counter(&out, "connected"), 0);
}

/// `VmHWM` (peak resident set) of process `pid`, in bytes.
fn vm_hwm(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM");
    kib * 1024
}

/// A reader that reads nothing, with up to 50 MiB sent its way: first the
/// client (the upstream sends), then the upstream (the client sends). The relay
/// stops reading the sender once it holds `max_unsent` for the reader, so its
/// peak memory grows by a few `max_unsent` at most, the sender stalls, and once
/// the reader reads, every byte arrives intact.
#[test]
fn relay_memory_stays_bounded_with_a_reader_that_reads_nothing() {
    let _dog = Watchdog::new("relay memory", Duration::from_secs(60));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    set_buffers(&listener, 64 * 1024);
    // The reader reads nothing for as long as the sender sends: on a loaded
    // machine that could pass the 10 s write time-out, which is not tested here.
    let relay = start_relay(
        &["--write-timeout", "60000"],
        listener.local_addr().unwrap(),
    );
    let pid = relay.child.id();
    let data = pattern(5, 50 * MIB);
    let mut baseline = None;
    for client_is_reader in [true, false] {
        let mut c = client(relay.addr, Duration::from_secs(10));
        set_buffers(&c, 64 * 1024);
        let mut up = accept_within(&listener, Duration::from_secs(5));
        let (sender, reader, what) = match client_is_reader {
            true => (&mut up, &mut c, "the client"),
            false => (&mut c, &mut up, "the upstream"),
        };
        if baseline.is_none() {
            // The relay's buffers for a pair in use, then its baseline.
            sender.write_all(&data[..MIB]).unwrap();
            let mut warm = vec![0u8; MIB];
            reader.read_exact(&mut warm).unwrap();
            assert!(warm == data[..MIB], "warm-up");
            baseline = Some(vm_hwm(pid));
        }
        let written = write_until_stalled(sender, &data, Duration::from_millis(300));
        let grew = vm_hwm(pid).saturating_sub(baseline.unwrap());
        assert!(written < data.len(), "{what}: the sender never stalled");
        // The relay holds at most max_unsent (64 KiB) and one read (64 KiB) for
        // the reader; an unbounded one would hold megabytes.
        let bound = 8 * 64 * 1024;
        assert!(
            grew <= bound,
            "{what} reads nothing: the relay's peak RSS grew by {grew} bytes (bound \
             {bound}) while {written} bytes were sent"
        );
        // Now the reader reads: everything arrives.
        sender.shutdown(Shutdown::Write).unwrap();
        expect_exactly(reader, &data[..written], what).unwrap_or_else(|e| panic!("{e}"));
    }
    let out = stop_relay(relay);
    assert_eq!(counter(&out, "closed_policy"), 0);
}

/// SIGTERM: the relay stops accepting, closes its idle pair once nothing is left
/// to send, exits 0 and prints its counters.
#[test]
fn relay_drains_on_sigterm() {
    let _dog = Watchdog::new("relay SIGTERM", Duration::from_secs(30));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay = start_relay(&["--epoll"], listener.local_addr().unwrap());
    let mut c = client(relay.addr, Duration::from_secs(5));
    let mut up = accept_within(&listener, Duration::from_secs(5));
    c.write_all(b"ping").unwrap();
    assert_eq!(read_text(&mut up, 4), "ping");
    up.write_all(b"pong").unwrap();
    assert_eq!(read_text(&mut c, 4), "pong");
    let start = Instant::now();
    let out = stop_relay(relay);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "the drain took {took:?}");
    closed(&mut c).unwrap();
    closed(&mut up).unwrap();
    for (name, n) in [
        ("accepted", 1),
        ("connected", 1),
        ("bytes_received", 8),
        ("bytes_sent", 8),
        ("undelivered", 0),
        ("open", 0),
    ] {
        assert_eq!(counter(&out, name), n, "{name}: {out}");
    }
    // One side is closed by the drain; its partner follows (the pair rule, counted
    // as closed by the protocol).
    assert_eq!(counter(&out, "closed_shutdown"), 1, "{out}");
    assert_eq!(counter(&out, "closed_protocol"), 1, "{out}");
}
