//! The relay's own calls fail: its upstream's `socket`, `connect` and
//! `getsockopt(SO_ERROR)`; and the upstream the relay runs against, an echo server
//! the test runs on 127.0.0.1 for each case (every other family's rows run against
//! the relay too, with this upstream).

use super::*;

use std::net::TcpListener;

// ---- the relay's calls ----------------------------------------------------------

// The relay's workload, traced: client k's hello is `accept4` k+1, then
// `setsockopt(TCP_NODELAY)` 2k+2 on it, the upstream's `socket` k+2 and `connect`
// k+1 (EINPROGRESS), `getsockopt(SO_ERROR)` k+1 once it is writable,
// `setsockopt(TCP_NODELAY)` 2k+3 on it; `recvfrom` 2k+1 reads the hello from the
// client, `sendto` 2k+1 sends it upstream, `recvfrom` 2k+2 reads it back and
// `sendto` 2k+2 sends it to the client. (Call 1 of `socket` and `setsockopt` is
// the listener's.) With epoll, `epoll_ctl` 3k+3 registers the client, 3k+4 the
// upstream (for writing: the connect), 3k+5 changes that to reading; then each
// pair's two removals: the client's as its EOF comes (watched for nothing), the
// upstream's before its close (calls 18-27, the pairs' in the order they end).

/// The rows' `when`, re-tuned for the relay (see `PLANS`).
pub(crate) const RELAY_PLANS: &[Plan] = &[
    // The closing faults: client 2's hello read from the client, then the
    // exchange's first read (recvfrom 5, 10); client 1's hello sent to the
    // client, client 3's sent upstream (sendto 4, 7). Either way the pair goes.
    // With two workers the numbers are each worker's, and a worker whose clients
    // are gone serves the fresh one next: its pair makes four recvfrom calls (the
    // last its upstream's EOF) and two sendto, so the faults are 5 calls apart.
    (Target::Relay, "recvfrom", None, "4..8+4", "5..10+5"),
    (Target::Relay, "sendto", None, "4..8+4", "4..7+3"),
    // `--max-clients 4` (a pair takes two): client 2's SO_LINGER is call 6.
    (Target::Relay, "setsockopt", None, "2", "6"),
    // A client's registration: 6 is client 1's, refused (no upstream dialed for
    // it), so client 3's is 10; EEXIST's takeover (7) fails too, so 11.
    (
        Target::Relay,
        "epoll_ctl",
        Some("EEXIST"),
        "4..6+2",
        "6..11+5",
    ),
    (Target::Relay, "epoll_ctl", None, "4..6+2", "6..10+4"),
    (Target::Relay, "epoll_ctl", None, "4", "6"),
    // Client 1's upstream, reading and writing after a partial send (its hello:
    // `sendto` 3 fails EAGAIN), is call 8.
    (Target::Relay, "epoll_ctl", None, "6", "8"),
    // The listener's re-registration after accept's ENOMEM (client 1's accept):
    // the listener's removal is call 6, client 0's pair took 3-5.
    (Target::Relay, "epoll_ctl", None, "5", "7"),
];

/// The upstream's socket (`socket` 1 is the listener's): clients 1 and 3 get none.
/// The protocol hears it from `Context::connect` and closes its client.
const SOCKET_ROWS: &[Row] = &[
    row("socket", "EMFILE", "3..5+2", Expect::NoUpstream),
    row("socket", "ENFILE", "3..5+2", Expect::NoUpstream),
    row("socket", "ENOBUFS", "3..5+2", Expect::NoUpstream),
    row("socket", "ENOMEM", "3..5+2", Expect::NoUpstream),
    row("socket", "EACCES", "3..5+2", Expect::NoUpstream),
];

/// The upstream's nonblocking `connect`, for clients 1 and 3. Under strace the call
/// is skipped, so whatever the errno, no connection was begun.
const CONNECT_ROWS: &[Row] = &[
    // Out of something: the protocol hears it at once, and closes its client.
    row("connect", "EAGAIN", "2..4+2", Expect::NoUpstream),
    row("connect", "ENOBUFS", "2..4+2", Expect::NoUpstream),
    row("connect", "ENOMEM", "2..4+2", Expect::NoUpstream),
    row("connect", "EADDRNOTAVAIL", "2..4+2", Expect::NoUpstream),
    // No way there, or not allowed.
    row("connect", "ECONNREFUSED", "2..4+2", Expect::NoUpstream),
    row("connect", "ENETUNREACH", "2..4+2", Expect::NoUpstream),
    row("connect", "EHOSTUNREACH", "2..4+2", Expect::NoUpstream),
    row("connect", "ETIMEDOUT", "2..4+2", Expect::NoUpstream),
    row("connect", "ECONNRESET", "2..4+2", Expect::NoUpstream),
    row("connect", "EACCES", "2..4+2", Expect::NoUpstream),
    row("connect", "EPERM", "2..4+2", Expect::NoUpstream),
    row("connect", "EADDRINUSE", "2..4+2", Expect::NoUpstream),
    row("connect", "EALREADY", "2..4+2", Expect::NoUpstream),
    row("connect", "EISCONN", "2..4+2", Expect::NoUpstream),
    // The new socket itself is wrong: the protocol hears it as the others (made a
    // moment before, it says nothing of the descriptors the loop holds, whose
    // `getsockopt` below stops the loop).
    row("connect", "EBADF", "2..4+2", Expect::NoUpstream),
    row("connect", "ENOTSOCK", "2..4+2", Expect::NoUpstream),
    row("connect", "EFAULT", "2..4+2", Expect::NoUpstream),
    row("connect", "EINVAL", "2..4+2", Expect::NoUpstream),
    // POSIX: an interrupted connect goes on asynchronously, so the loop waits for
    // it as for EINPROGRESS. Under strace it never began: the socket, unconnected,
    // is writable with no pending error, taken for connected (counted), and the
    // first send fails (EPIPE): the pair is closed, `closed_reset`.
    row("connect", "EINTR", "2..4+2", Expect::CloseClient),
];

/// `getsockopt(SO_ERROR)` once the upstream is writable, for clients 1 and 3: the
/// connect is given up and its client closed; but the errors that say the
/// descriptor is not the socket the loop holds, or the call is wrong, stop the
/// loop (client 1's), as from `recv` (they closed that one client and went on:
/// fixed).
const SO_ERROR_ROWS: &[Row] = &[
    row("getsockopt", "ENOPROTOOPT", "2..4+2", Expect::NoUpstream),
    row("getsockopt", "EBADF", "2", Expect::Fatal),
    row("getsockopt", "ENOTSOCK", "2", Expect::Fatal),
    row("getsockopt", "EFAULT", "2", Expect::Fatal),
    row("getsockopt", "EINVAL", "2", Expect::Fatal),
];

/// `setsockopt(TCP_NODELAY)` on clients 0 and 1 and their upstreams: ignored
/// (Nagle's algorithm stays on).
const NODELAY_ROWS: &[Row] = &[
    row("setsockopt", "ENOPROTOOPT", "2..5", Expect::Retry),
    row("setsockopt", "EBADF", "2..5", Expect::Retry),
];

/// The relay's rows, in every mode.
fn relay_rows() -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    rows.extend(SOCKET_ROWS.iter().map(|r| r.matching("SOCK_NONBLOCK")));
    rows.extend(CONNECT_ROWS);
    rows.extend(SO_ERROR_ROWS.iter().map(|r| r.matching("SO_ERROR")));
    rows.extend(NODELAY_ROWS.iter().map(|r| r.matching("TCP_NODELAY")));
    rows
}

#[test]
#[ignore = "needs strace (apt-get install strace); .ci/run installs it and runs cargo test -- --ignored"]
fn relay_errors() {
    let _w = Watchdog::new("relay_errors", LIMIT);
    run_table(
        "relay: socket, connect, getsockopt, setsockopt(TCP_NODELAY)",
        &every(&relay_rows(), &[Target::Relay]),
    );
}

// ---- the upstream ----------------------------------------------------------------

/// The relay's upstream: an echo server on 127.0.0.1, a thread per connection.
/// Each echoes what it reads and closes once it reads end of file (the relay passes
/// its client's half-close on, and the close back) or an error, or after 10 s of
/// silence. Stopped (and its acceptor joined) when dropped.
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Connections accepted, and those still open.
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl Upstream {
    pub(crate) fn start() -> io::Result<Upstream> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let acceptor = {
            let (stop, accepted, open) = (stop.clone(), accepted.clone(), open.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else {
                        thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    open.fetch_add(1, Ordering::SeqCst);
                    let open = open.clone();
                    thread::spawn(move || {
                        echo(conn);
                        open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })
        };
        Ok(Upstream {
            addr,
            stop,
            accepted,
            open,
            acceptor: Some(acceptor),
        })
    }

    /// Connections the relay opened to it.
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst) as u64
    }

    /// Waits up to `limit` for every connection to it to be closed; how many are
    /// still open.
    pub(crate) fn wait_closed(&self, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        loop {
            let open = self.open.load(Ordering::SeqCst) as u64;
            if open == 0 || Instant::now() >= deadline {
                return open;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// One connection of the upstream: echo until end of file, an error, or 10 s of
/// nothing.
fn echo(mut conn: TcpStream) {
    let limit = Some(Duration::from_secs(10));
    if conn.set_read_timeout(limit).is_err() || conn.set_write_timeout(limit).is_err() {
        return;
    }
    let mut buf = [0u8; 16384];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor from its accept (if that fails, it is left behind).
        let woken = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let (Ok(_), Some(acceptor)) = (woken, self.acceptor.take()) {
            let _ = acceptor.join();
        }
    }
}
