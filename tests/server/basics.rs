//! The generic server loop (`unp_select::server`) with protocols written here, on
//! real loopback sockets: frames, output to other connections, closing and
//! half-closing, panics, Unix-domain listeners, live counters, the listen backlog,
//! and what the counters count.

use crate::common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::server::Running;
use common::Watchdog;
use unp_select::echo::{Echo, EchoServer};
use unp_select::server::{Config, ConnId, Context, Frame, Protocol, Server};
use unp_select::sources::Backend;

const BACKENDS: [Backend; 3] = [Backend::Select, Backend::LargeSelect, Backend::Poll];

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn read_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("read a line");
    line
}

/// A line protocol with commands: `all text` broadcasts, `body N` reads N bytes and answers their length,
/// `bye` closes, `half` half-closes, `panic` panics, anything else is echoed.
#[derive(Clone)]
struct Commands;

impl Protocol for Commands {
    type Conn = bool; // in a body

    fn connect(&mut self, ctx: &mut Context<'_>) -> bool {
        ctx.set_frame(Frame::Line);
        ctx.send(format!("you are {}\n", ctx.id().index()).as_bytes())
            .unwrap();
        false
    }

    fn receive(&mut self, in_body: &mut bool, msg: &[u8], ctx: &mut Context<'_>) {
        if *in_body {
            *in_body = false;
            ctx.set_frame(Frame::Line);
            ctx.send(format!("body of {}\n", msg.len()).as_bytes())
                .unwrap();
            return;
        }
        let text = String::from_utf8_lossy(msg);
        let mut words = text.trim_end().splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("all"), Some(first), rest) => {
                let line = format!(
                    "{first}{}\n",
                    rest.map(|r| format!(" {r}")).unwrap_or_default()
                );
                let n = ctx.broadcast(line.as_bytes());
                ctx.send(format!("to {n}\n").as_bytes()).unwrap();
            }
            (Some("body"), Some(n), None) => {
                *in_body = true;
                ctx.set_frame(Frame::Exact(n.parse().unwrap()));
            }
            (Some("bye"), None, None) => {
                ctx.send(b"bye\n").unwrap();
                ctx.close();
            }
            (Some("half"), None, None) => {
                ctx.send(b"half\n").unwrap();
                ctx.shutdown_write();
            }
            (Some("panic"), None, None) => panic!("a protocol bug (on purpose)"),
            _ => drop(ctx.send(msg)), // refused (Closing) after "half"
        }
    }
}

#[test]
fn frames_replies_and_exact_bodies() {
    let _dog = Watchdog::new("frames", Duration::from_secs(60));
    for backend in BACKENDS {
        let s = Running::start(Commands, Config::default(), backend);
        let c = connect(s.addr);
        let mut r = BufReader::new(c.try_clone().unwrap());
        let mut w = c;
        assert!(read_line(&mut r).starts_with("you are "));
        // A line, then a body with newlines inside, pipelined in one write.
        w.write_all(b"hello\nbody 7\na\nb\r\nc\nafter\n").unwrap();
        assert_eq!(read_line(&mut r), "hello\n");
        assert_eq!(read_line(&mut r), "body of 7\n"); // "a\nb\r\nc\n": data
        assert_eq!(read_line(&mut r), "after\n");
        // A body that arrives a byte at a time.
        w.write_all(b"body 5\n").unwrap();
        for b in b"12345" {
            w.write_all(&[*b]).unwrap();
            thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(read_line(&mut r), "body of 5\n");
        drop((w, r));
        s.wait_for("the client's EOF", |s| s.closed_eof == 1);
        let stats = s.finish();
        assert_eq!(stats.messages_received, 6, "{backend:?} {stats:?}");
    }
}

#[test]
fn close_and_half_close_after_the_reply() {
    let _dog = Watchdog::new("close", Duration::from_secs(60));
    for backend in BACKENDS {
        let s = Running::start(Commands, Config::default(), backend);
        let mut c = connect(s.addr);
        c.write_all(b"bye\nignored after bye\n").unwrap();
        let mut all = String::new();
        c.read_to_string(&mut all).unwrap();
        assert!(all.ends_with("bye\n"), "{all:?}");
        assert!(!all.contains("ignored"), "{all:?}");

        // Half-close: the reply, then EOF, and the server still reads.
        let mut h = connect(s.addr);
        h.write_all(b"half\n").unwrap();
        let mut got = String::new();
        h.read_to_string(&mut got).unwrap();
        assert!(got.ends_with("half\n"), "{got:?}");
        h.write_all(b"still read\n").unwrap(); // no reset: the server reads on
        h.shutdown(Shutdown::Write).unwrap();
        let stats = s.wait_for("half-closed peer closed", |s| s.closed_eof == 1);
        assert_eq!(stats.closed_protocol, 1, "{backend:?} {stats:?}");
        assert_eq!(stats.closed_reset, 0, "{backend:?} {stats:?}");
        s.finish();
    }
}

#[test]
fn a_panicking_protocol_loses_only_its_connection() {
    let _dog = Watchdog::new("panic", Duration::from_secs(60));
    for backend in BACKENDS {
        let s = Running::start(Commands, Config::default(), backend);
        let mut good = BufReader::new(connect(s.addr));
        read_line(&mut good);
        let mut bad = connect(s.addr);
        bad.write_all(b"panic\n").unwrap();
        let mut rest = Vec::new();
        let _ = bad.read_to_end(&mut rest); // closed: EOF or reset
        good.get_mut().write_all(b"still here\n").unwrap();
        assert_eq!(read_line(&mut good), "still here\n");
        let stats = s.finish();
        assert_eq!(stats.closed_panic, 1, "{backend:?} {stats:?}");
        assert_eq!(stats.accepted, 2);
    }
}

/// Remembers every connection's id; `N text` goes to the newest connection of
/// index N, `stale N text` to the oldest id that index ever had.
#[derive(Clone, Default)]
struct Relay {
    ids: Arc<Mutex<Vec<ConnId>>>,
}

impl Protocol for Relay {
    type Conn = ();

    fn connect(&mut self, ctx: &mut Context<'_>) {
        ctx.set_frame(Frame::Line);
        self.ids.lock().unwrap().push(ctx.id());
        ctx.send(format!("{}\n", ctx.id().index()).as_bytes())
            .unwrap();
    }

    fn receive(&mut self, _: &mut (), msg: &[u8], ctx: &mut Context<'_>) {
        let text = String::from_utf8_lossy(msg).into_owned();
        let (stale, text) = match text.strip_prefix("stale ") {
            Some(rest) => (true, rest.to_string()),
            None => (false, text),
        };
        let (n, rest) = text.split_once(' ').unwrap();
        let index: usize = n.parse().unwrap();
        let ids = self.ids.lock().unwrap().clone();
        let mut of_index = ids.iter().filter(|id| id.index() == index);
        let target = if stale {
            of_index.next()
        } else {
            of_index.next_back()
        };
        if !target.is_some_and(|&id| ctx.send_to(id, rest.as_bytes())) {
            ctx.send(b"gone\n").unwrap();
        }
    }
}

#[test]
fn send_to_reaches_one_connection_and_never_a_later_one_in_its_slot() {
    let _dog = Watchdog::new("send_to", Duration::from_secs(60));
    for backend in BACKENDS {
        let s = Running::start(Relay::default(), Config::default(), backend);
        let mut a = BufReader::new(connect(s.addr));
        let a_index: usize = read_line(&mut a).trim().parse().unwrap();
        let mut b = BufReader::new(connect(s.addr));
        let b_index: usize = read_line(&mut b).trim().parse().unwrap();
        a.get_mut()
            .write_all(format!("{b_index} from a\n").as_bytes())
            .unwrap();
        assert_eq!(read_line(&mut b), "from a\n");
        b.get_mut()
            .write_all(format!("{a_index} from b\n").as_bytes())
            .unwrap();
        assert_eq!(read_line(&mut a), "from b\n");
        // b leaves; a newcomer takes its slot; b's old id reaches nobody.
        drop(b);
        s.wait_for("b closed", |s| s.closed_eof == 1);
        let mut c = BufReader::new(connect(s.addr));
        let c_index: usize = read_line(&mut c).trim().parse().unwrap();
        assert_eq!(c_index, b_index, "the slot is reused");
        a.get_mut()
            .write_all(format!("stale {c_index} to old b\n").as_bytes())
            .unwrap();
        assert_eq!(read_line(&mut a), "gone\n");
        a.get_mut()
            .write_all(format!("{c_index} to c\n").as_bytes())
            .unwrap();
        assert_eq!(read_line(&mut c), "to c\n");
        s.finish();
    }
}

#[test]
fn a_unix_domain_listener_serves_the_same_loop() {
    let _dog = Watchdog::new("unix", Duration::from_secs(60));
    for backend in BACKENDS {
        let path = std::env::temp_dir().join(format!(
            "unp-select-test-{}-{backend:?}.sock",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let server = Server::bind_unix(&path, Commands, Config::default()).unwrap();
        assert_eq!(
            server.local_addr().unwrap_err().kind(),
            io::ErrorKind::Unsupported
        );
        let stop = server.shutdown_handle();
        let thread = thread::spawn(move || server.run_with(backend));
        let c = UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut r = BufReader::new(c.try_clone().unwrap());
        assert!(read_line(&mut r).starts_with("you are"));
        (&c).write_all(b"over unix\n").unwrap();
        assert_eq!(read_line(&mut r), "over unix\n");
        drop((c, r));
        stop.shutdown();
        let stats = thread.join().unwrap().unwrap();
        assert_eq!(stats.accepted, 1);
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn live_stats_follow_the_loop() {
    let _dog = Watchdog::new("live stats", Duration::from_secs(60));
    let s = Running::start(Commands, Config::default(), Backend::Poll);
    let mut conns: Vec<BufReader<TcpStream>> =
        (0..5).map(|_| BufReader::new(connect(s.addr))).collect();
    s.wait_for("5 accepted", |s| s.accepted == 5 && s.open() == 5);
    for c in &mut conns {
        read_line(c);
        c.get_mut().write_all(b"x\n").unwrap();
        assert_eq!(read_line(c), "x\n");
    }
    s.wait_for("5 echoes counted", |s| s.messages_sent == 10);
    conns.truncate(2);
    s.wait_for("3 closed", |s| s.closed_eof == 3 && s.open() == 2);
    drop(conns);
    let stats = s.finish();
    assert_eq!(stats.open(), 0);
}

/// How many of `n` nonblocking connects to `addr` complete within `within`, with
/// nobody accepting: what the listen backlog lets through (Linux: a full accept
/// queue drops the SYN, and the client sends it again a second later).
#[cfg(target_os = "linux")]
fn connects_completed(addr: SocketAddr, n: usize, within: Duration) -> usize {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4")
    };
    let target = SockaddrIn::from(v4);
    let socks: Vec<_> = (0..n)
        .map(|_| {
            let fd = socket(
                AddressFamily::Inet,
                SockType::Stream,
                SockFlag::SOCK_NONBLOCK,
                None,
            )
            .expect("socket");
            let _ = connect(fd.as_raw_fd(), &target); // EINPROGRESS
            fd
        })
        .collect();
    let deadline = Instant::now() + within;
    let mut done = vec![false; n];
    while Instant::now() < deadline && done.iter().any(|d| !d) {
        for (i, fd) in socks.iter().enumerate() {
            if done[i] {
                continue;
            }
            let mut p = [unp_select::PollFd::from_fd(
                fd,
                unp_select::PollFlags::POLLOUT,
            )];
            if unp_select::poll(&mut p, Some(Duration::ZERO)).unwrap() == 1 {
                let err = nix::sys::socket::getsockopt(fd, nix::sys::socket::sockopt::SocketError)
                    .unwrap();
                done[i] = err == 0;
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
    done.iter().filter(|d| **d).count()
}

#[cfg(target_os = "linux")]
#[test]
fn bind_listens_with_the_books_backlog() {
    let _dog = Watchdog::new("backlog", Duration::from_secs(60));
    // std's TcpListener::bind listens with 128: 200 simultaneous connects overflow
    // it, and the rest wait a second for the SYN to be sent again.
    let server = EchoServer::bind("127.0.0.1:0", Echo::Bytes, Config::book()).unwrap();
    let done = connects_completed(
        server.local_addr().unwrap(),
        200,
        Duration::from_millis(700),
    );
    assert_eq!(
        done, 200,
        "with LISTENQ = 1024 every connect completes at once"
    );
    // And Config::backlog is what bind uses.
    let small = Server::bind("127.0.0.1:0", Commands, Config::default().with_backlog(16)).unwrap();
    let done = connects_completed(small.local_addr().unwrap(), 100, Duration::from_millis(500));
    assert!(
        done <= 20,
        "a backlog of 16 lets about 17 through, not {done}"
    );
}

/// A client that sends lines and never reads, until the server closes it: the
/// counters count lines whose last byte the kernel took, not lines offered.
#[test]
fn lines_echoed_counts_only_what_the_kernel_took() {
    let _dog = Watchdog::new("lines counted", Duration::from_secs(60));
    const LINE: &[u8] = b"a line of exactly thirty-two b\r\n";
    assert_eq!(LINE.len(), 32);
    for run in [
        EchoServer::run as fn(EchoServer) -> io::Result<_>,
        EchoServer::run_poll,
    ] {
        let config = Config::book().with_write_timeout(Duration::from_millis(300));
        let server = EchoServer::bind("127.0.0.1:0", Echo::Lines, config).unwrap();
        let (addr, stop) = (server.local_addr().unwrap(), server.shutdown_handle());
        let thread = thread::spawn(move || run(server));
        let c = TcpStream::connect(addr).unwrap();
        // Odd sizes, so a partial send can split a line.
        c.set_nonblocking(true).unwrap();
        let (tx, rx) = mpsc::channel();
        let writer = {
            let mut c = c.try_clone().unwrap();
            thread::spawn(move || {
                let block = LINE.repeat(997);
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(3) {
                    match c.write(&block) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => break, // closed by the server
                    }
                }
                let _ = tx.send(());
            })
        };
        let _ = rx.recv_timeout(Duration::from_secs(10));
        writer.join().unwrap();
        stop.shutdown();
        let stats = thread.join().unwrap().unwrap();
        assert_eq!(stats.closed_policy, 1, "{stats:?}");
        // Every counted line went out whole; at most one line is partly sent.
        let whole = stats.bytes_sent / 32;
        assert!(
            stats.messages_sent == whole,
            "{} lines counted, {} bytes taken (= {whole} whole lines)",
            stats.messages_sent,
            stats.bytes_sent
        );
        drop(c);
    }
}

/// The socket of this process whose peer is `peer` (the server's side of a client's
/// connection, when the server runs in this process).
#[cfg(target_os = "linux")]
fn server_side_of(peer: SocketAddr) -> Option<std::os::fd::BorrowedFd<'static>> {
    use nix::sys::socket::{getpeername, SockaddrStorage};
    for entry in std::fs::read_dir("/proc/self/fd").ok()? {
        let fd: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let Ok(addr) = getpeername::<SockaddrStorage>(fd) else {
            continue;
        };
        let matches = match (addr.as_sockaddr_in(), peer) {
            (Some(a), SocketAddr::V4(p)) => a.ip() == *p.ip() && a.port() == p.port(),
            _ => false,
        };
        if matches {
            // SAFETY: the descriptor is open (we just asked it for its peer) and the
            // server keeps it open while the client is connected, which outlasts
            // every use in the test.
            return Some(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) });
        }
    }
    None
}

#[cfg(target_os = "linux")]
#[test]
fn nodelay_is_set_on_accepted_tcp_connections_when_asked() {
    use nix::sys::socket::{getsockopt, sockopt::TcpNoDelay};
    let _dog = Watchdog::new("nodelay", Duration::from_secs(30));
    for nodelay in [false, true] {
        let s = Running::start(
            Commands,
            Config::default().with_nodelay(nodelay),
            Backend::Poll,
        );
        let mut c = BufReader::new(connect(s.addr));
        read_line(&mut c); // accepted and greeted
        let local = c.get_ref().local_addr().unwrap();
        let server_fd = server_side_of(local).expect("the server's side of the connection");
        assert_eq!(getsockopt(&server_fd, TcpNoDelay).unwrap(), nodelay);
        drop(c);
        s.finish();
    }
}

/// Closes every connection at once, without a word.
#[derive(Clone)]
struct Closer;

impl Protocol for Closer {
    type Conn = ();
    fn connect(&mut self, ctx: &mut Context<'_>) {
        ctx.close();
    }
    fn receive(&mut self, _: &mut (), _: &[u8], _: &mut Context<'_>) {}
}

#[test]
fn a_close_in_connect_closes_at_once_without_input() {
    let _dog = Watchdog::new("close in connect", Duration::from_secs(30));
    for backend in BACKENDS {
        let s = Running::start(Closer, Config::default(), backend);
        let mut c = connect(s.addr);
        let t = std::time::Instant::now();
        let mut all = Vec::new();
        c.read_to_end(&mut all).unwrap(); // EOF, not the 5 s read timeout
        assert!(all.is_empty());
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{backend:?}: {:?}",
            t.elapsed()
        );
        let stats = s.finish();
        assert_eq!(stats.closed_protocol, 1, "{backend:?}: {stats:?}");
    }
}

/// Pipe lines to every connection: the pipe's read end is watched
/// ([`Context::watch`]) by the first connection's `connect`; the pipe's end of
/// file unwatches it.
#[derive(Clone)]
struct PipeToAll {
    pipe: Arc<Mutex<Option<std::os::fd::OwnedFd>>>,
    unwatched: Arc<Mutex<bool>>,
}

impl Protocol for PipeToAll {
    type Conn = ();
    fn connect(&mut self, ctx: &mut Context<'_>) {
        if let Some(pipe) = self.pipe.lock().unwrap().take() {
            ctx.watch(pipe, unp_select::sources::Interest::READ)
                .unwrap();
        }
        ctx.send(b"hi\n").unwrap();
    }
    fn receive(&mut self, _: &mut (), _: &[u8], _: &mut Context<'_>) {}
    fn ready(&mut self, readiness: unp_select::sources::Readiness, ctx: &mut Context<'_>) {
        assert!(readiness.is_readable() || readiness.is_hangup());
        // A watched descriptor takes no output of its own.
        assert!(ctx.send(b"x").is_err());
        let mut buf = [0; 256];
        match ctx.read_watched(&mut buf) {
            Ok(0) => {
                let id = ctx.id();
                assert!(ctx.unwatch(id));
                *self.unwatched.lock().unwrap() = true;
            }
            Ok(n) => {
                ctx.broadcast(&buf[..n]);
            }
            Err(e) => panic!("read_watched: {e}"),
        }
    }
}

#[test]
fn a_watched_pipe_reaches_the_protocol_until_its_end_of_file() {
    let _dog = Watchdog::new("watch", Duration::from_secs(60));
    for backend in [Backend::Select, Backend::Poll, Backend::Epoll] {
        let (rx, tx) = common::fds::cloexec_pipe();
        let mut tx = std::fs::File::from(tx);
        let protocol = PipeToAll {
            pipe: Arc::new(Mutex::new(Some(rx))),
            unwatched: Arc::new(Mutex::new(false)),
        };
        let unwatched = Arc::clone(&protocol.unwatched);
        let s = Running::start(protocol, Config::default(), backend);
        let mut c = BufReader::new(connect(s.addr));
        assert_eq!(read_line(&mut c), "hi\n");
        tx.write_all(b"from the pipe\n").unwrap();
        assert_eq!(read_line(&mut c), "from the pipe\n", "{backend:?}");
        drop(tx); // end of file: the protocol unwatches, the loop closes it
        let t = Instant::now();
        while !*unwatched.lock().unwrap() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{backend:?}: not unwatched"
            );
            thread::sleep(Duration::from_millis(5));
        }
        let stats = s.finish();
        // A watch is not a connection: only the client is counted.
        assert_eq!(
            (stats.accepted, stats.closed_shutdown),
            (1, 1),
            "{backend:?}"
        );
    }
}
