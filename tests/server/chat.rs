//! The `chat_server` example, run as a user runs it and driven with real sockets on
//! 127.0.0.1, under each of the loop's four waits (select over `FdSet`, `--poll`,
//! `--large`, `--epoll`): every line reaches every other client whole and in order, a client
//! that does not read neither slows the others nor stays, a reset loses nothing for
//! the others, running out of descriptors sheds the extra clients and no one else,
//! and the server stops at once on SIGTERM.
//!
//! The two that measure latencies take `common::timing`: no other latency is
//! measured meanwhile.

use crate::common;

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::examples::{example, ServerProcess};
use common::{is_timeout, LineClient, Watchdog};

/// The four loops: select over `FdSet` (the default), poll, select over
/// `LargeFdSet`, epoll.
const LOOPS: [&[&str]; 4] = [&[], &["--poll"], &["--large"], &["--epoll"]];

/// How long a client waits for a line that must come.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The server loop's `max_line` (UNP's `MAXLINE - 1`): a longer line reaches the
/// protocol in pieces of this size.
const MAX_PIECE: usize = 4095;

/// The chat's cap: a line longer than this closes its sender.
const CHAT_MAX_LINE: usize = 64 * 1024;

/// Builds and starts `chat_server MODE OPTIONS 127.0.0.1:0`.
fn start(mode: &[&str], options: &[&str]) -> ServerProcess {
    let args: Vec<&str> = mode.iter().chain(options).copied().collect();
    ServerProcess::start_example("chat_server", &args)
}

/// A loop's name for messages.
fn loop_name(mode: &[&str]) -> &'static str {
    match mode.first() {
        Some(&"--poll") => "poll",
        Some(&"--large") => "large select",
        Some(&"--epoll") => "epoll",
        _ => "select",
    }
}

/// What the server must have counted, built up as the test goes.
#[derive(Clone, Copy, Debug, Default)]
struct Expected {
    received: u64,
    sent: u64,
    bytes_received: u64,
    bytes_sent: u64,
}

impl Expected {
    /// A line of `len` bytes (with its `\n`) was relayed to `to` clients. A line
    /// longer than the loop's `max_line` reaches the protocol in pieces, each a
    /// message received; the chat relays it as one message.
    fn line(&mut self, len: usize, to: usize) {
        self.received += len.div_ceil(MAX_PIECE) as u64;
        self.sent += to as u64;
        self.bytes_received += len as u64;
        self.bytes_sent += (len * to) as u64;
    }
}

/// The counters the server printed after `chat_server: stopped; counters:`.
struct Counters {
    values: HashMap<String, u64>,
    text: String,
}

impl Counters {
    fn get(&self, name: &str) -> u64 {
        *self
            .values
            .get(name)
            .unwrap_or_else(|| panic!("no counter {name} in:\n{}", self.text))
    }

    /// The counters named in `want` have those values.
    fn assert(&self, label: &str, want: &[(&str, u64)]) {
        for &(name, value) in want {
            assert_eq!(self.get(name), value, "{label}: {name}; counters:\n{self}");
        }
    }

    /// `n` connections accepted, all closed by end of file, none refused: nothing
    /// else closed or open.
    fn assert_all_left(&self, label: &str, n: u64) {
        self.assert(
            label,
            &[
                ("accepted", n),
                ("refused", 0),
                ("closed_eof", n),
                ("closed_reset", 0),
                ("closed_policy", 0),
                ("closed_protocol", 0),
                ("closed_panic", 0),
                ("open", 0),
            ],
        );
    }

    /// The message and byte counters match `e` exactly.
    fn assert_traffic(&self, label: &str, e: &Expected) {
        self.assert(
            label,
            &[
                ("messages_received", e.received),
                ("messages_sent", e.sent),
                ("bytes_received", e.bytes_received),
                ("bytes_sent", e.bytes_sent),
            ],
        );
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// SIGTERM; the server must exit 0 and print its counters.
fn stop(server: ServerProcess) -> Counters {
    let (status, rest) = server.terminate();
    parse_counters(status.success(), &rest)
}

fn parse_counters(success: bool, rest: &str) -> Counters {
    assert!(success, "chat_server failed; stdout:\n{rest}");
    let (_, text) = rest
        .split_once("chat_server: stopped; counters:\n")
        .unwrap_or_else(|| panic!("no counters in:\n{rest}"));
    let values = text
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(": ")?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect();
    Counters {
        values,
        text: text.to_string(),
    }
}

/// Connects `n` clients, one after another. Each after the first says `join I`, and
/// the first client must read it before the next one connects: then the server has
/// accepted it (and every one before it), and a line sent later reaches it. Each
/// client has read the joins of those after it: every stream starts clean.
fn join(addr: SocketAddr, n: usize, expected: &mut Expected) -> Vec<LineClient> {
    let mut clients: Vec<LineClient> = Vec::with_capacity(n);
    for i in 0..n {
        let mut c = LineClient::connect(addr, READ_TIMEOUT).unwrap();
        if i > 0 {
            let line = format!("join {i}\n");
            c.send(&line).unwrap();
            expected.line(line.len(), i);
            let got = clients[0].recv().unwrap();
            assert_eq!(got, line, "client 0 on the join of client {i}");
        }
        clients.push(c);
    }
    for (j, c) in clients.iter_mut().enumerate().skip(1) {
        for i in j + 1..n {
            assert_eq!(c.recv().unwrap(), format!("join {i}\n"), "client {j}");
        }
    }
    clients
}

/// Every client half-closes, then must read end of file and nothing before it: the
/// server closed it (`closed_eof`) after sending it everything it had.
fn leave(clients: Vec<LineClient>) {
    for c in &clients {
        c.stream.shutdown(Shutdown::Write).unwrap();
    }
    for (i, mut c) in clients.into_iter().enumerate() {
        let got = c.recv().unwrap();
        assert!(
            got.is_empty(),
            "client {i}: {:?} after the end",
            short(&got)
        );
    }
}

/// Line `seq` of client `from`, `len` bytes with its `\n`: `n FROM SEQ ` and letters
/// that depend on the position, so a piece moved, lost or doubled shows.
fn numbered(from: usize, seq: usize, len: usize) -> String {
    let mut line = format!("n {from} {seq} ");
    assert!(
        len > line.len(),
        "a line of {len} bytes cannot hold {line:?}"
    );
    let fill = len - line.len() - 1;
    line.extend((0..fill).map(|i| (b'a' + ((i * 31 + from * 7 + seq) % 26) as u8) as char));
    line.push('\n');
    line
}

/// The sender and number of a line of [`numbered`] (or of [`stamped`]).
fn header(line: &str) -> Option<(usize, usize)> {
    let mut words = line.split(' ');
    words.next()?;
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

/// The start of a line, for messages.
fn short(line: &str) -> String {
    let start: String = line.chars().take(48).collect();
    format!("{start:?}… ({} bytes)", line.len())
}

/// Reads `count` lines of [`numbered`]: each exactly as its sender wrote it (of
/// length `len(from)`), each sender's in order from 0, none from `me`. Returns how
/// many came from each sender, and the senders in the order their lines came.
fn read_numbered(
    c: &mut LineClient,
    count: usize,
    me: usize,
    len: impl Fn(usize) -> usize,
) -> (HashMap<usize, usize>, Vec<usize>) {
    let mut next: HashMap<usize, usize> = HashMap::new();
    let mut order = Vec::with_capacity(count);
    for k in 0..count {
        let line = c
            .recv()
            .unwrap_or_else(|e| panic!("client {me}: line {k} of {count}: {e}"));
        let (from, seq) = header(&line)
            .unwrap_or_else(|| panic!("client {me}: line {k} of {count}: {}", short(&line)));
        assert_ne!(from, me, "client {me} got its own line {seq} back");
        let want = next.entry(from).or_default();
        assert_eq!(
            seq, *want,
            "client {me}: line {seq} of client {from} came when line {want} was due"
        );
        assert!(
            line == numbered(from, seq, len(from)),
            "client {me}: line {seq} of client {from} changed: {}",
            short(&line)
        );
        *want += 1;
        order.push(from);
    }
    (next, order)
}

/// 50 clients each send 20 numbered lines at once; each must get the 980 lines of
/// the others, each sender's in order, none of its own. The counters agree.
#[test]
fn every_line_reaches_every_other_client_in_order() {
    let _dog = Watchdog::new("chat: 50 clients", Duration::from_secs(120));
    const N: usize = 50;
    const K: usize = 20;
    const LEN: usize = 48;
    for mode in LOOPS {
        let label = loop_name(mode);
        let server = start(mode, &[]);
        let mut expected = Expected::default();
        let clients = join(server.addr, N, &mut expected);
        let go = Arc::new(Barrier::new(N));
        let threads: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(me, mut c)| {
                let go = go.clone();
                thread::spawn(move || {
                    go.wait();
                    for seq in 0..K {
                        c.send(&numbered(me, seq, LEN)).unwrap();
                    }
                    let (from, _) = read_numbered(&mut c, (N - 1) * K, me, |_| LEN);
                    assert_eq!(from.len(), N - 1, "client {me}: senders {from:?}");
                    assert!(from.values().all(|&n| n == K), "client {me}: {from:?}");
                    c
                })
            })
            .collect();
        let clients: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for _ in 0..N * K {
            expected.line(LEN, N - 1);
        }
        leave(clients);
        let counters = stop(server);
        counters.assert_all_left(label, N as u64);
        counters.assert_traffic(label, &expected);
        // The joins aside, the chat itself: 1000 lines in, 49 000 out.
        let joins = (N - 1) as u64;
        let join_copies = (N * (N - 1) / 2) as u64;
        assert_eq!(counters.get("messages_received") - joins, (N * K) as u64);
        assert_eq!(
            counters.get("messages_sent") - join_copies,
            (N * K * (N - 1)) as u64
        );
    }
}

/// The latency runs: `ACTIVE` clients each send a `STAMPED_LEN`-byte line every
/// `TICK` for `CHAT_FOR`: 4 MB/s to a slow reader, 12 MB in all, well past the
/// 4 MB or so that Linux's buffers (the server's send buffer grows to
/// `tcp_wmem`'s maximum, 4 MiB) take for a client that does not read.
const ACTIVE: usize = 4;
const STAMPED_LEN: usize = 2000;
const TICK: Duration = Duration::from_millis(2);
const CHAT_FOR: Duration = Duration::from_millis(2200);
/// The write timeout the slow-reader runs give the server.
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);

/// Line `seq` of client `from`, sent `stamp` microseconds after the run's start.
fn stamped(from: usize, seq: usize, stamp: u128) -> String {
    let mut line = format!("t {from} {seq} {stamp} ");
    line.extend(std::iter::repeat_n('s', STAMPED_LEN - line.len() - 1));
    line.push('\n');
    line
}

/// The stamp of a line of [`stamped`].
fn stamp_of(line: &str) -> Option<u128> {
    line.split(' ').nth(3)?.parse().ok()
}

/// The server's end of a TCP connection on 127.0.0.1, looked up by its four-tuple
/// with Linux's `sock_diag(7)` (`/proc/net/tcp` lists every socket of the host,
/// which on a busy machine takes a tenth of a second or more to read). The
/// server's side of a close shows here even while the client has read nothing
/// (its window is shut, so no FIN can reach it).
#[cfg(target_os = "linux")]
struct SockDiag(std::os::fd::OwnedFd);

#[cfg(target_os = "linux")]
impl SockDiag {
    fn new() -> SockDiag {
        use std::os::fd::FromRawFd;
        // SAFETY: socket(2) takes no pointers; it returns a new descriptor or -1.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        assert!(fd >= 0, "sock_diag: {}", io::Error::last_os_error());
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        SockDiag(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
    }

    /// The state (1 ESTABLISHED, 4 FIN_WAIT1, …) and the bytes in the send queue of
    /// the TCP socket bound to `local` and connected to `peer` (both IPv4);
    /// `None` if there is no such socket (any more).
    fn lookup(&self, local: SocketAddr, peer: SocketAddr) -> Option<(u8, u32)> {
        use std::os::fd::AsRawFd;
        let ip = |a: SocketAddr| match a.ip() {
            std::net::IpAddr::V4(v4) => v4.octets(),
            std::net::IpAddr::V6(_) => panic!("sock_diag lookup of an IPv6 address"),
        };
        // struct nlmsghdr, then struct inet_diag_req_v2 (linux/inet_diag.h).
        let mut req = Vec::with_capacity(72);
        req.extend(72u32.to_ne_bytes()); // nlmsg_len
        req.extend(20u16.to_ne_bytes()); // SOCK_DIAG_BY_FAMILY
        req.extend(1u16.to_ne_bytes()); // NLM_F_REQUEST: one socket, no dump
        req.extend(1u32.to_ne_bytes()); // seq
        req.extend(0u32.to_ne_bytes()); // pid
        req.extend([libc::AF_INET as u8, libc::IPPROTO_TCP as u8, 0, 0]);
        req.extend(u32::MAX.to_ne_bytes()); // every state
        req.extend(local.port().to_be_bytes()); // idiag_sport
        req.extend(peer.port().to_be_bytes()); // idiag_dport
        req.extend(ip(local));
        req.extend([0; 12]);
        req.extend(ip(peer));
        req.extend([0; 12]);
        req.extend(0u32.to_ne_bytes()); // idiag_if
        req.extend(u32::MAX.to_ne_bytes()); // INET_DIAG_NOCOOKIE
        req.extend(u32::MAX.to_ne_bytes());
        assert_eq!(req.len(), 72);
        let fd = self.0.as_raw_fd();
        // SAFETY: `req` is valid for its length; the kernel only reads it.
        let n = unsafe { libc::send(fd, req.as_ptr().cast(), req.len(), 0) };
        assert_eq!(n, 72, "sock_diag send: {}", io::Error::last_os_error());
        let mut reply = [0u8; 512];
        // SAFETY: `reply` is valid for writes of its length.
        let n = unsafe { libc::recv(fd, reply.as_mut_ptr().cast(), reply.len(), 0) };
        assert!(n >= 20, "sock_diag recv: {}", io::Error::last_os_error());
        let word = |at: usize| u32::from_ne_bytes(reply[at..at + 4].try_into().unwrap());
        match u16::from_ne_bytes([reply[4], reply[5]]) {
            // NLMSG_ERROR: -ENOENT when the socket is gone.
            2 => {
                let errno = -(word(16) as i32);
                assert_eq!(
                    errno,
                    libc::ENOENT,
                    "sock_diag: {}",
                    io::Error::from_raw_os_error(errno)
                );
                None
            }
            // struct inet_diag_msg: family, state, timer, retrans, the 48-byte id,
            // expires, rqueue, wqueue.
            20 => Some((reply[16 + 1], word(16 + 4 + 48 + 8))),
            other => panic!("sock_diag: reply of type {other}"),
        }
    }
}

/// What one latency run saw.
#[derive(Default)]
struct LatencyRun {
    /// Sender's write to another active client's read, each line; sorted.
    latencies: Vec<Duration>,
    /// When the server closed the slow reader, from the start of the chat.
    slow_closed_after: Option<Duration>,
    /// When the server's send queue to the slow reader last grew (its kernel
    /// buffers were full from then on, and output waited in the server: the write
    /// timeout's clock started about then), from the start of the chat.
    slow_full_after: Option<Duration>,
}

impl LatencyRun {
    fn percentile(&self, p: usize) -> Duration {
        let last = self.latencies.len().saturating_sub(1);
        let i = (self.latencies.len() * p / 100).min(last);
        self.latencies.get(i).copied().unwrap_or_default()
    }
}

/// `ACTIVE` clients chat for `CHAT_FOR`, each reading every line of the others and
/// timing it; with `slow`, one more client connected first reads nothing until the
/// end. Checks what every client got and what the server counted.
fn latency_run(mode: &[&str], slow: bool) -> LatencyRun {
    let label = format!(
        "{} ({})",
        loop_name(mode),
        if slow { "slow" } else { "no slow" }
    );
    let timeout = WRITE_TIMEOUT.as_millis().to_string();
    let server = start(mode, &["--write-timeout", &timeout]);
    let mut expected = Expected::default();
    let mut clients = join(server.addr, ACTIVE + usize::from(slow), &mut expected);
    // The slow reader joined last: it has no join to read, and never reads.
    let slow_client = if slow { clients.pop() } else { None };
    let lines = (CHAT_FOR.as_micros() / TICK.as_micros()) as usize;
    let go = Arc::new(Barrier::new(2 * ACTIVE + 1));
    let base = Instant::now();
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for (me, mut c) in clients.into_iter().enumerate() {
        let mut w = c.stream.try_clone().unwrap();
        let go2 = go.clone();
        writers.push(thread::spawn(move || {
            go2.wait();
            let start = Instant::now();
            for seq in 0..lines {
                let due = start + TICK * seq as u32;
                thread::sleep(due.saturating_duration_since(Instant::now())); // pace
                let line = stamped(me, seq, base.elapsed().as_micros());
                w.write_all(line.as_bytes()).unwrap();
            }
        }));
        let go2 = go.clone();
        readers.push(thread::spawn(move || {
            go2.wait();
            let mut next = [0usize; ACTIVE];
            let mut latencies = Vec::with_capacity((ACTIVE - 1) * lines);
            for k in 0..(ACTIVE - 1) * lines {
                let line = c
                    .recv()
                    .unwrap_or_else(|e| panic!("client {me}: line {k}: {e}"));
                let now = base.elapsed().as_micros();
                let (from, seq) = header(&line).unwrap_or_else(|| panic!("{}", short(&line)));
                let stamp = stamp_of(&line).unwrap_or_else(|| panic!("{}", short(&line)));
                assert_ne!(from, me, "client {me} got its own line");
                assert_eq!(seq, next[from], "client {me}: from {from} out of order");
                assert!(line == stamped(from, seq, stamp), "{}", short(&line));
                next[from] += 1;
                latencies.push(Duration::from_micros((now - stamp) as u64));
            }
            (c, latencies)
        }));
    }
    go.wait();
    #[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
    let started = Instant::now();

    // The slow reader: the server must close it once its output has waited the
    // write timeout, while the others go on.
    #[cfg_attr(not(target_os = "linux"), allow(unused_mut))]
    let (mut slow_closed_after, mut slow_full_after) = (None, None);
    #[cfg(target_os = "linux")]
    if let Some(s) = &slow_client {
        let me = s.stream.local_addr().unwrap();
        let diag = SockDiag::new();
        assert!(
            matches!(diag.lookup(server.addr, me), Some((1, _))),
            "{label}: the slow reader's connection is not established on the server"
        );
        let deadline = started + CHAT_FOR + Duration::from_secs(3);
        let mut queued = 0;
        while Instant::now() < deadline {
            match diag.lookup(server.addr, me) {
                Some((1, q)) if q > queued => {
                    queued = q;
                    slow_full_after = Some(started.elapsed());
                }
                Some((1, _)) => {}
                _ => {
                    slow_closed_after = Some(started.elapsed());
                    break;
                }
            }
            // Nothing the client could read would say so: watch the server's end.
            thread::sleep(Duration::from_millis(2));
        }
    }

    for w in writers {
        w.join().unwrap();
    }
    let mut latencies = Vec::new();
    let mut actives = Vec::new();
    for r in readers {
        let (c, l) = r.join().unwrap();
        actives.push(c);
        latencies.extend(l);
    }
    latencies.sort();
    for _ in 0..ACTIVE * lines {
        expected.line(STAMPED_LEN, ACTIVE - 1);
    }

    // The slow reader reads at last: what the kernel held for it, each sender's
    // lines in order from the first, then end of file (or a reset): it was closed,
    // with lines left unsent.
    let mut slow_lines = 0u64;
    let mut slow_bytes = 0u64;
    if let Some(s) = slow_client {
        let mut reader = BufReader::new(s.stream);
        let mut next = [0usize; ACTIVE];
        let end = loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break "end of file".to_string(),
                Ok(n) => {
                    slow_bytes += n as u64;
                    if !line.ends_with(b"\n") {
                        continue; // a last line cut by the close: then end of file
                    }
                    let line = String::from_utf8(line).unwrap();
                    let (from, seq) = header(&line).unwrap();
                    assert_eq!(seq, next[from], "{label}: slow reader, from {from}");
                    next[from] += 1;
                    slow_lines += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break e.to_string(),
                Err(e) => panic!(
                    "{label}: the slow reader was not closed: {e} after {slow_lines} lines \
                     ({slow_bytes} B); closed after {slow_closed_after:?}?"
                ),
            }
        };
        eprintln!(
            "{label}: the slow reader got {slow_lines} lines ({slow_bytes} B) of {}, then {end}",
            ACTIVE * lines
        );
        assert!(
            slow_lines < (ACTIVE * lines) as u64,
            "{label}: the slow reader got every line"
        );
    }
    leave(actives);
    let counters = stop(server);
    counters.assert(
        &label,
        &[
            ("accepted", (ACTIVE + usize::from(slow)) as u64),
            ("closed_eof", ACTIVE as u64),
            ("closed_reset", 0),
            ("closed_policy", u64::from(slow)),
            ("closed_protocol", 0),
            ("closed_panic", 0),
            ("open", 0),
        ],
    );
    // The slow reader's lines: those the kernel took before the close, every
    // byte of which it read (a cut last line is bytes, not a message).
    expected.sent += slow_lines;
    expected.bytes_sent += slow_bytes;
    counters.assert_traffic(&label, &expected);
    LatencyRun {
        latencies,
        slow_closed_after,
        slow_full_after,
    }
}

/// A client that never reads, while four others chat at 4 MB/s in all (16 MB/s
/// out of the server): their latencies stay low (p50 < 20 ms, p99 < 200 ms), and
/// the server closes the reader once its output has waited the write timeout (500
/// ms), not much later. A run without it for comparison.
///
/// What every client got and what the server counted is checked on every run.
/// The timings are judged on the run with the slow reader; on a machine shared
/// with other work a run can be starved, so a loop fails only if three runs out
/// of three miss.
#[test]
fn a_slow_reader_neither_slows_the_others_nor_stays() {
    let _timing = common::timing();
    let _dog = Watchdog::new("chat: slow reader", Duration::from_secs(300));
    // Every loop in the soak (UNP_SOAK=1); select alone by default, to keep
    // `cargo test` short (the back-pressure code is the same for all three, and
    // tests/server/reliability's never_reads scenario runs it on each).
    let soak = common::load::level() == common::load::Level::Soak;
    let loops = if soak { &LOOPS[..] } else { &LOOPS[..1] };
    for &mode in loops {
        let label = loop_name(mode);
        let mut misses = Vec::new();
        for attempt in 1..=3 {
            // The run without a slow reader is the baseline the summary prints:
            // only in the soak (UNP_SOAK=1), to keep `cargo test` short.
            let quiet = if common::load::level() == common::load::Level::Soak {
                latency_run(mode, false)
            } else {
                LatencyRun::default()
            };
            let slow = latency_run(mode, true);
            let summary = format!(
                "{label}, run {attempt}: latency without a slow reader p50 {:?} p99 {:?} \
                 max {:?}; with one p50 {:?} p99 {:?} max {:?}; the slow reader's buffers \
                 full after {:?}, closed after {:?}",
                quiet.percentile(50),
                quiet.percentile(99),
                quiet.percentile(100),
                slow.percentile(50),
                slow.percentile(99),
                slow.percentile(100),
                slow.slow_full_after,
                slow.slow_closed_after,
            );
            eprintln!("{summary}");
            match judge(&slow) {
                Ok(()) => break,
                Err(miss) => misses.push(format!("{miss}\n  ({summary})")),
            }
        }
        assert!(misses.len() < 3, "{label}:\n{}", misses.join("\n"));
    }
}

/// The timings of a run with a slow reader.
fn judge(slow: &LatencyRun) -> Result<(), String> {
    let (p50, p99) = (slow.percentile(50), slow.percentile(99));
    if p50 >= Duration::from_millis(20) || p99 >= Duration::from_millis(200) {
        return Err(format!("latency p50 {p50:?}, p99 {p99:?}"));
    }
    if cfg!(target_os = "linux") {
        let Some(closed) = slow.slow_closed_after else {
            return Err("the slow reader was never closed".to_string());
        };
        let full = slow.slow_full_after.unwrap_or_default();
        if closed < WRITE_TIMEOUT || closed >= full + WRITE_TIMEOUT + Duration::from_millis(500) {
            return Err(format!(
                "the slow reader's buffers were full {full:?} after the chat started, \
                 and it was closed after {closed:?}"
            ));
        }
    }
    Ok(())
}

/// A client resets its connection (SO_LINGER {1, 0}, close) while two others are
/// sending to it: the others get every line, in order; the server counts the reset
/// connection once, and nothing else.
#[test]
fn a_reset_in_the_middle_of_a_broadcast_loses_nothing_for_the_others() {
    let _dog = Watchdog::new("chat: reset", Duration::from_secs(120));
    const A_LINES: usize = 5000;
    const B_LINES: usize = 1000;
    const R_LINES: usize = 10;
    const LEN: usize = 100;
    const RESET_AFTER: usize = 200;
    for mode in LOOPS {
        let label = loop_name(mode);
        let server = start(mode, &[]);
        let mut expected = Expected::default();
        let mut clients = join(server.addr, 5, &mut expected);
        // 0 and 1 send; 2 and 3 only read; 4 says something, then resets.
        let mut r = clients.pop().unwrap();
        for seq in 0..R_LINES {
            r.send(&numbered(4, seq, LEN)).unwrap();
            expected.line(LEN, 4);
        }
        for (me, c) in clients.iter_mut().enumerate() {
            let (from, _) = read_numbered(c, R_LINES, me, |_| LEN);
            assert_eq!(from[&4], R_LINES, "{label}: client {me}");
        }
        let a_sent = Arc::new(AtomicUsize::new(0));
        let go = Arc::new(Barrier::new(7));
        let mut writers = Vec::new();
        for (me, count) in [(0, A_LINES), (1, B_LINES)] {
            let mut w = clients[me].stream.try_clone().unwrap();
            let (go, a_sent) = (go.clone(), a_sent.clone());
            writers.push(thread::spawn(move || {
                go.wait();
                for seq in 0..count {
                    w.write_all(numbered(me, seq, LEN).as_bytes()).unwrap();
                    if me == 0 {
                        a_sent.store(seq + 1, Ordering::SeqCst);
                    }
                    if seq % 50 == 49 {
                        thread::sleep(Duration::from_millis(1)); // a broadcast that lasts
                    }
                }
            }));
        }
        let readers: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(me, mut c)| {
                let go = go.clone();
                let count = match me {
                    0 => B_LINES,
                    1 => A_LINES,
                    _ => A_LINES + B_LINES,
                };
                thread::spawn(move || {
                    go.wait();
                    let (from, _) = read_numbered(&mut c, count, me, |_| LEN);
                    (c, from)
                })
            })
            .collect();
        go.wait();
        // The resetter reads part of the broadcast, then resets.
        let mut from_a = 0;
        let mut seen = 0;
        while from_a < RESET_AFTER {
            let line = r.recv().unwrap();
            seen += 1;
            if header(&line).map(|(from, _)| from) == Some(0) {
                from_a += 1;
            }
        }
        let a_at_reset = a_sent.load(Ordering::SeqCst);
        r.abort().unwrap();
        assert!(
            a_at_reset < A_LINES,
            "{label}: client 0 had sent all its lines before the reset: not mid-broadcast"
        );
        for w in writers {
            w.join().unwrap();
        }
        let mut survivors = Vec::new();
        for (me, t) in readers.into_iter().enumerate() {
            let (c, from) = t.join().unwrap();
            let want: HashMap<usize, usize> = match me {
                0 => [(1, B_LINES)].into(),
                1 => [(0, A_LINES)].into(),
                _ => [(0, A_LINES), (1, B_LINES)].into(),
            };
            assert_eq!(from, want, "{label}: client {me}");
            survivors.push(c);
        }
        eprintln!(
            "{label}: reset after reading {seen} lines, while client 0 had sent {a_at_reset} of {A_LINES}"
        );
        leave(survivors);
        let counters = stop(server);
        let (eof, reset) = (counters.get("closed_eof"), counters.get("closed_reset"));
        assert!(
            eof + reset == 5 && reset <= 1,
            "{label}: the reset client is closed once, the others on EOF:\n{counters}"
        );
        eprintln!(
            "{label}: the reset client counted as closed_reset {reset}, closed_eof {}",
            eof - 4
        );
        counters.assert(
            label,
            &[
                ("accepted", 5),
                ("closed_policy", 0),
                ("closed_protocol", 0),
                ("closed_panic", 0),
                ("open", 0),
            ],
        );
        // To the survivors, everything; to the reset client, what the kernel took
        // before the reset: at least what it read, at most every line.
        for _ in 0..A_LINES + B_LINES {
            expected.line(LEN, 3);
        }
        let to_r = counters.get("messages_sent") - expected.sent;
        assert!(
            to_r >= seen as u64 && to_r <= (A_LINES + B_LINES) as u64,
            "{label}: {to_r} lines counted sent to the reset client, which read {seen}:\n{counters}"
        );
        expected.sent += to_r;
        counters.assert(
            label,
            &[
                ("messages_received", expected.received),
                ("bytes_received", expected.bytes_received),
            ],
        );
    }
}

/// Starts `chat_server MODE` with `RLIMIT_NOFILE` lowered to `nofile` (soft limit)
/// in the child before it runs. The child starts with only its standard streams
/// below `nofile`: a descriptor another test thread opened without close-on-exec
/// while this one forked (a socket, a pipe) would take one of its few numbers, and
/// the server would hold one client fewer.
fn start_limited(mode: &[&str], nofile: libc::rlim_t) -> ServerProcess {
    let mut cmd = example("chat_server");
    cmd.args(mode);
    // SAFETY: between fork and exec the closure calls only fcntl, close, getrlimit
    // and setrlimit, which are async-signal-safe, and allocates nothing. It closes
    // only descriptors that exec would keep (no FD_CLOEXEC), none of which the
    // child is meant to have: std's own (its exec-error pipe) are close-on-exec.
    unsafe {
        cmd.pre_exec(move || {
            for fd in 3..nofile as libc::c_int {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                    libc::close(fd);
                }
            }
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            limit.rlim_cur = nofile;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    ServerProcess::spawn("chat_server", &mut cmd)
}

/// What became of a client that connected to a server out of descriptors.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    /// Accepted: its `join` reached the first client.
    Served,
    /// Reset by the server.
    Shed,
}

/// Connects client `id`, which says `join ID`: served if `first` reads that, shed if
/// it is reset itself. Reads with short timeouts, alternately, until one happens.
fn connect_and_see(addr: SocketAddr, first: &mut LineClient, id: usize) -> (LineClient, Fate) {
    let mut c = LineClient::connect(addr, Duration::from_millis(20)).unwrap();
    let line = format!("join {id}\n");
    // A shed client may be reset before it writes: then the write reports the
    // reset (and a read after it only end of file).
    match c.send(&line) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
            c.set_read_timeout(READ_TIMEOUT).unwrap();
            return (c, Fate::Shed);
        }
        Err(e) => panic!("client {id}: write: {e}"),
    }
    first.set_read_timeout(Duration::from_millis(20)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let fate = loop {
        assert!(
            Instant::now() < deadline,
            "client {id}: neither served nor shed after 5 s"
        );
        match c.recv() {
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break Fate::Shed,
            Err(e) if is_timeout(&e) => {}
            other => panic!("client {id}: expected nothing or a reset, got {other:?}"),
        }
        match first.recv() {
            Ok(got) if got == line => break Fate::Served,
            Err(e) if is_timeout(&e) => {}
            other => panic!("client 0 on the join of client {id}: {other:?}"),
        }
    };
    first.set_read_timeout(READ_TIMEOUT).unwrap();
    c.set_read_timeout(READ_TIMEOUT).unwrap();
    (c, fate)
}

/// Out of descriptors (RLIMIT_NOFILE 16): the clients the server cannot hold are
/// reset at once and counted (`shed`, `out_of_resources`), those it holds are
/// served as before, and after two leave, two more are served, then the next is
/// shed again.
#[test]
fn out_of_descriptors_sheds_the_extra_clients_and_serves_the_others() {
    let _dog = Watchdog::new("chat: EMFILE", Duration::from_secs(120));
    const NOFILE: libc::rlim_t = 16;
    const TRIES: usize = 20;
    for mode in LOOPS {
        let label = loop_name(mode);
        let server = start_limited(mode, NOFILE);
        let mut expected = Expected::default();
        let mut first = LineClient::connect(server.addr, READ_TIMEOUT).unwrap();
        // (id, client) of every client served but the first.
        let mut held: Vec<(usize, LineClient)> = Vec::new();
        let mut shed = 0;
        for id in 1..TRIES {
            let (c, fate) = connect_and_see(server.addr, &mut first, id);
            match fate {
                Fate::Served => {
                    assert_eq!(shed, 0, "{label}: client {id} served after one was shed");
                    expected.line(format!("join {id}\n").len(), held.len() + 1);
                    held.push((id, c));
                }
                Fate::Shed => shed += 1,
            }
        }
        eprintln!(
            "{label}: with RLIMIT_NOFILE {NOFILE}, {} clients served, {shed} shed",
            held.len() + 1
        );
        assert!(
            held.len() >= 2 && shed >= 3,
            "{label}: {} served, {shed} shed",
            held.len() + 1
        );
        // The joins of the later clients, then a line from the first to everyone.
        let ids: Vec<usize> = held.iter().map(|(id, _)| *id).collect();
        for (k, (me, c)) in held.iter_mut().enumerate() {
            for later in &ids[k + 1..] {
                assert_eq!(c.recv().unwrap(), format!("join {later}\n"), "client {me}");
            }
        }
        let hello = numbered(0, 0, 40);
        first.send(&hello).unwrap();
        expected.line(hello.len(), held.len());
        for (me, c) in &mut held {
            assert_eq!(c.recv().unwrap(), hello, "{label}: client {me}");
        }

        // Two leave: their descriptors are free again, and two newcomers are served.
        let gone: Vec<LineClient> = held.drain(held.len() - 2..).map(|(_, c)| c).collect();
        leave(gone);
        for id in TRIES..TRIES + 2 {
            let (c, fate) = connect_and_see(server.addr, &mut first, id);
            assert_eq!(fate, Fate::Served, "{label}: client {id} after two left");
            expected.line(format!("join {id}\n").len(), held.len() + 1);
            for (me, other) in &mut held {
                assert_eq!(other.recv().unwrap(), format!("join {id}\n"), "client {me}");
            }
            held.push((id, c));
        }
        // The table is full again: the next is shed.
        let (_, fate) = connect_and_see(server.addr, &mut first, TRIES + 2);
        assert_eq!(
            fate,
            Fate::Shed,
            "{label}: client {} when full again",
            TRIES + 2
        );
        shed += 1;

        // Still serving: the last newcomer says something, everyone hears it.
        let back = numbered(TRIES + 1, 0, 40);
        let (_, newest) = held.last_mut().unwrap();
        newest.send(&back).unwrap();
        expected.line(back.len(), held.len());
        assert_eq!(first.recv().unwrap(), back, "{label}: client 0");
        let n = held.len();
        for (me, c) in &mut held[..n - 1] {
            assert_eq!(c.recv().unwrap(), back, "{label}: client {me}");
        }

        let served = held.len() as u64 + 3; // with the first and the two who left
        let mut everyone = vec![first];
        everyone.extend(held.into_iter().map(|(_, c)| c));
        leave(everyone);
        let counters = stop(server);
        counters.assert_all_left(label, served);
        counters.assert(label, &[("shed", shed)]);
        counters.assert_traffic(label, &expected);
        assert!(
            counters.get("out_of_resources") >= shed,
            "{label}: out_of_resources below shed:\n{counters}"
        );
    }
}

/// `--help` prints the usage and exits 0; a bad option exits 2 with the usage on
/// stderr and nothing on stdout.
#[test]
fn help_and_usage_errors() {
    let _dog = Watchdog::new("chat: usage", Duration::from_secs(60));
    let out = example("chat_server")
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "--help: {}", out.status);
    assert!(
        text.starts_with("usage: chat_server") && text.contains("--write-timeout MS"),
        "{text}"
    );
    for (args, what) in [
        (&["--bogus"][..], "unknown option --bogus"),
        (
            &["--max-clients", "0"][..],
            "--max-clients must be at least 1",
        ),
        (&["--write-timeout"][..], "--write-timeout needs a number"),
        (
            &["--write-timeout", "soon"][..],
            "--write-timeout needs a number",
        ),
        (
            &["127.0.0.1:0", "127.0.0.1:1"][..],
            "unexpected argument 127.0.0.1:1",
        ),
    ] {
        let out = example("chat_server")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
        assert!(
            err.starts_with(&format!("chat_server: {what}")) && err.contains("\nusage: "),
            "{args:?}: {err}"
        );
    }
}

/// SIGTERM stops the server within 100 ms with ten clients connected, eight of them
/// with output queued that they do not read; it prints the counters (all ten still
/// open), and every client then reads end of file.
#[test]
fn sigterm_stops_it_within_100ms_with_clients_connected() {
    let _timing = common::timing();
    let _dog = Watchdog::new("chat: SIGTERM", Duration::from_secs(120));
    const N: usize = 10;
    const LINES: usize = 10_000;
    const LEN: usize = 100;
    for mode in LOOPS {
        let label = loop_name(mode);
        let server = start(mode, &[]);
        let mut expected = Expected::default();
        let mut clients = join(server.addr, N, &mut expected);
        // Client 1 sends 1 MB; client 0 reads it all (so the server has handled it),
        // clients 2.. read nothing: the server holds output for them.
        let mut w = clients[1].stream.try_clone().unwrap();
        let writer = thread::spawn(move || {
            let block: String = (0..LINES).map(|seq| numbered(1, seq, LEN)).collect();
            w.write_all(block.as_bytes()).unwrap();
        });
        let (from, _) = read_numbered(&mut clients[0], LINES, 0, |_| LEN);
        assert_eq!(from[&1], LINES);
        writer.join().unwrap();
        for _ in 0..LINES {
            expected.line(LEN, N - 1);
        }

        let t = Instant::now();
        let (status, rest) = server.terminate();
        let took = t.elapsed();
        let counters = parse_counters(status.success(), &rest);
        assert!(
            took < Duration::from_millis(100),
            "{label}: took {took:?} to stop on SIGTERM"
        );
        eprintln!("{label}: stopped {took:?} after SIGTERM");
        // Connections still open at the end are closed at shutdown, and counted so.
        counters.assert(
            label,
            &[
                ("accepted", N as u64),
                ("closed_shutdown", N as u64),
                ("open", 0),
                ("messages_received", expected.received),
                ("bytes_received", expected.bytes_received),
            ],
        );
        for (me, c) in clients.into_iter().enumerate() {
            // What the kernel had taken for it, then end of file (or a reset: the
            // server closed it with input unread).
            let mut stream = c.stream;
            let mut sink = Vec::new();
            match stream.read_to_end(&mut sink) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                Err(e) => panic!("{label}: client {me} after the server stopped: {e}"),
            }
        }
    }
}

/// A 50 000-byte line (twelve and a bit of the loop's 4095-byte pieces) reaches
/// every other client whole, three times, while another client sends 3000 short
/// lines at the same time; the long lines count 13 messages received each.
#[test]
fn a_long_line_arrives_whole_while_another_client_chats() {
    let _dog = Watchdog::new("chat: long line", Duration::from_secs(120));
    const LONG: usize = 50_000;
    const LONG_LINES: usize = 3;
    const SHORT: usize = 40;
    const SHORT_LINES: usize = 3000;
    let len = |from: usize| if from == 0 { LONG } else { SHORT };
    for mode in LOOPS {
        let label = loop_name(mode);
        let server = start(mode, &[]);
        let mut expected = Expected::default();
        let clients = join(server.addr, 4, &mut expected);
        // 0 sends long lines, 1000 bytes at a time; 1 sends short lines, ten a
        // millisecond; 2 and 3 only read.
        let go = Arc::new(Barrier::new(2 + 4));
        let mut threads = Vec::new();
        let mut writers = Vec::new();
        for (me, mut c) in clients.into_iter().enumerate() {
            if me < 2 {
                let mut w = c.stream.try_clone().unwrap();
                let go = go.clone();
                writers.push(thread::spawn(move || {
                    go.wait();
                    if me == 0 {
                        for seq in 0..LONG_LINES {
                            for chunk in numbered(0, seq, LONG).as_bytes().chunks(1000) {
                                w.write_all(chunk).unwrap();
                                thread::sleep(Duration::from_millis(1));
                            }
                        }
                    } else {
                        for seq in 0..SHORT_LINES {
                            w.write_all(numbered(1, seq, SHORT).as_bytes()).unwrap();
                            if seq % 10 == 9 {
                                thread::sleep(Duration::from_millis(1));
                            }
                        }
                    }
                }));
            }
            let count = match me {
                0 => SHORT_LINES,
                1 => LONG_LINES,
                _ => SHORT_LINES + LONG_LINES,
            };
            let go = go.clone();
            threads.push(thread::spawn(move || {
                go.wait();
                let (from, order) = read_numbered(&mut c, count, me, len);
                (c, from, order)
            }));
        }
        for w in writers {
            w.join().unwrap();
        }
        let mut clients = Vec::new();
        for (me, t) in threads.into_iter().enumerate() {
            let (c, from, order) = t.join().unwrap();
            let want: HashMap<usize, usize> = match me {
                0 => [(1, SHORT_LINES)].into(),
                1 => [(0, LONG_LINES)].into(),
                _ => [(0, LONG_LINES), (1, SHORT_LINES)].into(),
            };
            assert_eq!(from, want, "{label}: client {me}");
            if me >= 2 {
                // The lines crossed: short lines came before and after each long one.
                let firsts = order.iter().position(|&f| f == 0).unwrap();
                let last = order.iter().rposition(|&f| f == 0).unwrap();
                assert!(
                    firsts > 0 && last < order.len() - 1,
                    "{label}: client {me}: the long lines came at {firsts}..={last} of {}: \
                     not while the short ones did",
                    order.len()
                );
            }
            clients.push(c);
        }
        for _ in 0..LONG_LINES {
            expected.line(LONG, 3);
        }
        for _ in 0..SHORT_LINES {
            expected.line(SHORT, 3);
        }
        leave(clients);
        let counters = stop(server);
        counters.assert(
            label,
            &[
                ("accepted", 4),
                ("closed_eof", 4),
                ("closed_protocol", 0),
                ("open", 0),
            ],
        );
        counters.assert_traffic(label, &expected);
    }
}

/// Client 0 sends one line of `len` bytes (with its `\n`), over the chat's 64 KiB:
/// the server closes it (`closed_protocol`), and no piece of the line reaches the
/// others, who go on chatting.
fn a_line_over_the_cap_closes_its_sender(len: usize) {
    assert!(len - 1 > CHAT_MAX_LINE);
    for mode in LOOPS {
        let label = format!("{}, a line of {len} bytes", loop_name(mode));
        let server = start(mode, &[]);
        let mut expected = Expected::default();
        let mut clients = join(server.addr, 3, &mut expected);
        let mut w = clients[0].stream.try_clone().unwrap();
        let writer = thread::spawn(move || {
            // The server may close (and reset) before it has read everything.
            let _ = w.write_all(numbered(0, 0, len).as_bytes());
        });
        clients[0].set_read_timeout(Duration::from_secs(3)).unwrap();
        match clients[0].recv() {
            Ok(got) if got.is_empty() => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => {
                clients[2]
                    .set_read_timeout(Duration::from_millis(500))
                    .unwrap();
                let relayed = clients[2].recv().map(|l| short(&l));
                panic!(
                    "{label}: the sender was not closed ({other:?}); \
                     another client got: {relayed:?}"
                );
            }
        }
        writer.join().unwrap();
        // The others: the next line they get is client 1's, not a piece of 0's.
        let after = numbered(1, 0, SHORT_AFTER);
        clients[1].send(&after).unwrap();
        let got = clients[2].recv().unwrap();
        assert!(got == after, "{label}: client 2 got {}", short(&got));
        let rest: Vec<LineClient> = clients.drain(1..).collect();
        leave(rest);
        let counters = stop(server);
        counters.assert(
            &label,
            &[
                ("accepted", 3),
                ("closed_protocol", 1),
                ("closed_eof", 2),
                ("closed_reset", 0),
                ("open", 0),
            ],
        );
    }
}

const SHORT_AFTER: usize = 40;

#[test]
fn a_100k_line_closes_its_sender() {
    let _dog = Watchdog::new("chat: 100 KB line", Duration::from_secs(120));
    a_line_over_the_cap_closes_its_sender(100_000);
}

/// Lines of 64 KiB and one byte (65 537 bytes and a `\n`), of 66 000 bytes, and of
/// 69 615 bytes (sixteen 4095-byte pieces and a last one of 4095 with the `\n`)
/// are over the cap too, and must close their sender.
#[test]
fn a_line_just_over_64k_closes_its_sender() {
    let _dog = Watchdog::new("chat: line just over 64 KiB", Duration::from_secs(120));
    for len in [CHAT_MAX_LINE + 2, 66_000, 17 * MAX_PIECE] {
        a_line_over_the_cap_closes_its_sender(len);
    }
}

/// A line of exactly 64 KiB (and its `\n`), seventeen pieces for the loop, is
/// relayed whole.
#[test]
fn a_64k_line_is_relayed_whole() {
    let _dog = Watchdog::new("chat: 64 KiB line", Duration::from_secs(120));
    const LEN: usize = CHAT_MAX_LINE + 1;
    for mode in LOOPS {
        let label = loop_name(mode);
        let server = start(mode, &[]);
        let mut expected = Expected::default();
        let mut clients = join(server.addr, 3, &mut expected);
        clients[0].send(&numbered(0, 0, LEN)).unwrap();
        expected.line(LEN, 2);
        for (me, c) in clients.iter_mut().enumerate().skip(1) {
            let (from, _) = read_numbered(c, 1, me, |_| LEN);
            assert_eq!(from[&0], 1, "{label}: client {me}");
        }
        leave(clients);
        let counters = stop(server);
        counters.assert(
            label,
            &[("accepted", 3), ("closed_eof", 3), ("closed_protocol", 0)],
        );
        counters.assert_traffic(label, &expected);
    }
}
