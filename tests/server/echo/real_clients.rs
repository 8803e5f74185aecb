//! Real clients against the echo server, byte for byte, on every loop (`run`,
//! `run_large`, `run_poll`, and epoll: `run_with(Backend::Epoll)`) and in both
//! echo modes.
//!
//! * [`str_cli`]: UNP's `str_cli` (tcpcli01, figure 5.5) with the book's buffer sizes:
//!   `fgets(sendline, MAXLINE, fp)` pieces, `Writen`, then `Readline(sockfd, recvline,
//!   MAXLINE)` before the next piece. A server that holds back part of a piece makes
//!   it wait forever; here every wait has a timeout, so that is a failure.
//! * [`strcliselect02`]: the book's pipelining client (section 6.7): `select` on
//!   "stdin" (a pipe fed by a thread) and the socket, `shutdown(SHUT_WR)` at the end
//!   of the input, then read until EOF.
//! * `nc -N`, `socat` and `python3` against the example binary `echo_server`. They
//!   need those programs, so they are `#[ignore]`d: `.ci/run` installs them and runs
//!   `cargo test --test server real_clients:: -- --ignored`.
//!
//! Everything runs on 127.0.0.1 and every wait is bounded (socket timeouts, process
//! deadlines, and a [`Watchdog`] on each test).

use crate::common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::examples::ServerProcess;
use common::{is_timeout, Watchdog};
use unp_select::echo::{Echo, EchoServer, ShutdownHandle, MAXLINE};
use unp_select::select::{select, FdSet};
use unp_select::server::{Config, Stats};
use unp_select::sources::Backend;
use unp_select::writen::writen;

/// How long one client waits for one echo (or one `select`) before it calls the run a
/// deadlock. Generous: the machine has 2 cores shared with other builds.
const WAIT: Duration = Duration::from_secs(10);

/// How long an external client may run before the test calls it a deadlock; longer
/// than the clients' own timeouts (10 s), so that those speak first.
const TOOL_LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------

/// `n` printable bytes, no newline, different for each `seed`.
fn text(n: usize, seed: usize) -> Vec<u8> {
    (0..n)
        .map(|i| b' ' + ((i * 7 + seed * 13) % 95) as u8)
        .collect()
}

/// A line of `n` bytes plus its newline.
fn line(n: usize) -> Vec<u8> {
    let mut l = text(n, n);
    l.push(b'\n');
    l
}

/// A small deterministic generator (xorshift), so failures can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `n` bytes of binary data: every byte value, a NUL in about one byte of eight,
/// newlines where they fall.
fn binary(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    (0..n)
        .map(|_| match rng.below(8) {
            0 => 0,
            _ => rng.below(256) as u8,
        })
        .collect()
}

/// About `n` bytes of mixed lines: mostly short, some exactly around `MAXLINE`, some
/// of several kilobytes, a few with NUL bytes, and a last line without a newline.
fn mixed(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(n + 20_000);
    while out.len() < n {
        let len = match rng.below(20) {
            0 => 4093 + rng.below(6), // 4093..=4098, around MAXLINE - 1
            1 => 4096 + rng.below(12_000),
            2 => 0,
            _ => rng.below(200),
        };
        if rng.below(10) == 0 {
            out.extend(binary(len, rng.next()).iter().map(|&b| match b {
                b'\n' => 0,
                b => b,
            }));
        } else {
            out.extend(text(len, rng.below(95)));
        }
        out.push(b'\n');
    }
    out.extend(text(777, 3)); // unterminated tail
    out
}

/// The inputs every client gets: lines of 0 (just "\n"), 1, 4094, 4095, 4096, 4097 and
/// 100 000 bytes, all of them in a row, a last line without a newline (short and
/// long), binary data with NUL bytes, and nothing at all.
fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = [0, 1, 4094, 4095, 4096, 4097, 100_000]
        .into_iter()
        .map(|n| (format!("line of {n} bytes"), line(n)))
        .collect();
    let all: Vec<u8> = v.iter().flat_map(|(_, b)| b.clone()).collect();
    v.push(("all those lines in a row".into(), all));
    let mut short_tail = line(10);
    short_tail.extend_from_slice(b"last line, no newline");
    v.push(("short last line without newline".into(), short_tail));
    let mut long_tail = line(3);
    long_tail.extend(text(9000, 5));
    v.push(("9000-byte last line without newline".into(), long_tail));
    v.push(("binary, 20 000 bytes with NULs".into(), binary(20_000, 42)));
    let mut nul_line = b"NUL\0in the middle\0\n".to_vec();
    nul_line.extend(line(4095));
    nul_line.extend_from_slice(b"\0\0\0\n");
    v.push(("lines with NUL bytes".into(), nul_line));
    v.push(("empty input".into(), Vec::new()));
    v
}

/// The first difference between what was sent and what came back, for messages.
fn diff(sent: &[u8], got: &[u8]) -> String {
    let at = sent
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(sent.len().min(got.len()));
    format!(
        "sent {} bytes, got {} back; first difference at byte {at} (sent {:?}, got {:?})",
        sent.len(),
        got.len(),
        String::from_utf8_lossy(&sent[at..sent.len().min(at + 16)]),
        String::from_utf8_lossy(&got[at..got.len().min(at + 16)]),
    )
}

fn assert_same(what: &str, sent: &[u8], got: &[u8]) {
    assert!(sent == got, "{what}: {}", diff(sent, got));
}

/// Wraps an error with what the client was doing, keeping its kind (timeouts stay
/// timeouts).
fn context(what: impl Into<String>) -> impl FnOnce(io::Error) -> io::Error {
    let what = what.into();
    move |e| {
        let why = if is_timeout(&e) {
            " (timed out: the server holds the bytes, or a deadlock)"
        } else {
            ""
        };
        io::Error::new(e.kind(), format!("{what}: {e}{why}"))
    }
}

// ---------------------------------------------------------------------------------
// The book's clients, in Rust
// ---------------------------------------------------------------------------------

/// The pieces `while (fgets(sendline, MAXLINE, fp) != NULL)` reads: each ends after a
/// newline or after `MAXLINE - 1` bytes, the last one possibly shorter, without one.
fn fgets_pieces(input: &[u8]) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let window = &rest[..rest.len().min(MAXLINE - 1)];
        let len = window
            .iter()
            .position(|&b| b == b'\n')
            .map_or(window.len(), |i| i + 1);
        pieces.push(&rest[..len]);
        rest = &rest[len..];
    }
    pieces
}

/// UNP's `readline` (figure 3.18): reads `MAXLINE` bytes at a time into its own
/// buffer and returns one line: up to and including a newline, or `maxlen - 1` bytes,
/// or what is left at EOF (empty: EOF).
struct Readline<'a> {
    stream: &'a TcpStream,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
}

impl<'a> Readline<'a> {
    fn new(stream: &'a TcpStream) -> Readline<'a> {
        Readline {
            stream,
            buf: vec![0; MAXLINE],
            pos: 0,
            end: 0,
        }
    }

    /// `my_read`: one byte, refilling the buffer with one `read` when it is empty.
    fn byte(&mut self) -> io::Result<Option<u8>> {
        if self.pos == self.end {
            let n = loop {
                match (&*self.stream).read(&mut self.buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r?,
                }
            };
            if n == 0 {
                return Ok(None);
            }
            (self.pos, self.end) = (0, n);
        }
        self.pos += 1;
        Ok(Some(self.buf[self.pos - 1]))
    }

    fn readline(&mut self, maxlen: usize) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        while line.len() < maxlen - 1 {
            match self.byte()? {
                Some(c) => {
                    line.push(c);
                    if c == b'\n' {
                        break;
                    }
                }
                None => break,
            }
        }
        Ok(line)
    }

    /// What is buffered, then the socket until EOF.
    fn read_to_end(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        out.extend_from_slice(&self.buf[self.pos..self.end]);
        self.pos = self.end;
        (&*self.stream).read_to_end(out).map(drop)
    }
}

/// UNP's `str_cli` (figure 5.5) over a fresh connection to `addr`: for each `fgets`
/// piece of `input`, `Writen` it and wait for its echo with `Readline` before sending
/// the next. Every read and write times out after `wait` (an error whose kind
/// [`is_timeout`]), so a server that holds a piece back fails the run.
///
/// Two differences from the book, both at the end of the input. The book's `str_cli`
/// waits for the echo of a last piece without a newline with `Readline`, which then
/// waits for a newline that never comes (tcpcli01 hangs on such input, whatever the
/// server); here that piece is sent and the client half-closes. And where the book
/// returns and exits, this client half-closes and reads until EOF, so that it also
/// checks that the server echoes the tail and then closes.
fn str_cli(addr: SocketAddr, input: &[u8], wait: Duration) -> io::Result<Vec<u8>> {
    let stream = TcpStream::connect(addr).map_err(context("connect"))?;
    stream.set_read_timeout(Some(wait))?;
    stream.set_write_timeout(Some(wait))?;
    let mut rl = Readline::new(&stream);
    let mut out = Vec::with_capacity(input.len());
    let pieces = fgets_pieces(input);
    for (k, piece) in pieces.iter().enumerate() {
        writen(&stream, piece).map_err(context(format!("Writen of piece {k}")))?;
        if !piece.ends_with(b"\n") && piece.len() < MAXLINE - 1 {
            assert_eq!(k + 1, pieces.len(), "only the last piece can be short");
            break; // the unterminated last line: its echo is read after the half-close
        }
        let echo = rl.readline(MAXLINE).map_err(context(format!(
            "Readline after piece {k} of {} ({} bytes, ends {:?})",
            pieces.len(),
            piece.len(),
            String::from_utf8_lossy(&piece[piece.len().saturating_sub(8)..]),
        )))?;
        if echo.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("str_cli: server terminated prematurely (after piece {k})"),
            ));
        }
        if echo != *piece {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("piece {k}: {}", diff(piece, &echo)),
            ));
        }
        out.extend_from_slice(&echo);
    }
    stream
        .shutdown(Shutdown::Write)
        .map_err(context("shutdown(SHUT_WR)"))?;
    rl.read_to_end(&mut out)
        .map_err(context("reading to EOF after the half-close"))?;
    Ok(out)
}

/// UNP's `strcliselect02` (figure 6.13), "stdin" being a pipe that a thread fills with
/// `input`: `select` on the pipe and the socket, `read` up to `MAXLINE` bytes from
/// whichever is readable, `Writen` to the socket or collect the echo; at the end of
/// the input `shutdown(SHUT_WR)`; done at EOF on the socket. A `select` that sees
/// nothing for `wait`, or a `Writen` blocked that long, fails the run.
fn strcliselect02(addr: SocketAddr, input: Vec<u8>, wait: Duration) -> io::Result<Vec<u8>> {
    let (stdin, mut feed) = common::fds::pipe();
    let feeder = thread::spawn(move || feed.write_all(&input));
    let sock = TcpStream::connect(addr).map_err(context("connect"))?;
    sock.set_write_timeout(Some(wait))?;
    let (stdinfd, sockfd) = (stdin.as_raw_fd(), sock.as_raw_fd());
    let mut stdineof = false;
    let mut buf = vec![0u8; MAXLINE];
    let mut out = Vec::new();
    loop {
        let mut rset = FdSet::new();
        if !stdineof {
            rset.insert(stdinfd)?;
        }
        rset.insert(sockfd)?;
        match select(Some(&mut rset), None, None, Some(wait)) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "select saw nothing for {wait:?} (stdin EOF: {stdineof}, {} bytes back)",
                        out.len()
                    ),
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if rset.contains(sockfd) {
            let n = (&sock).read(&mut buf).map_err(context("read(sockfd)"))?;
            if n == 0 {
                if stdineof {
                    break; // normal termination
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "str_cli: server terminated prematurely",
                ));
            }
            out.extend_from_slice(&buf[..n]);
        }
        if rset.contains(stdinfd) {
            let n = (&stdin).read(&mut buf).map_err(context("read(stdin)"))?;
            if n == 0 {
                stdineof = true;
                sock.shutdown(Shutdown::Write)
                    .map_err(context("shutdown(SHUT_WR)"))?;
                continue;
            }
            writen(&sock, &buf[..n]).map_err(context("Writen"))?;
        }
    }
    drop(stdin);
    feeder
        .join()
        .expect("feeder thread")
        .map_err(context("feeding stdin"))?;
    Ok(out)
}

// ---------------------------------------------------------------------------------
// The library server in a thread
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Loop {
    Select,
    Large,
    Poll,
    /// epoll(7): `run_with(Backend::Epoll)`.
    Epoll,
    /// Two workers on one listener (select).
    Workers,
    /// Two workers with a listener each (`SO_REUSEPORT`, poll).
    WorkersReuseport,
    /// Two workers on one listener, each with its own epoll descriptor.
    WorkersEpoll,
}

const MODES: [Echo; 2] = [Echo::Bytes, Echo::Lines];

struct Running {
    addr: SocketAddr,
    stop: ShutdownHandle,
    thread: JoinHandle<io::Result<Stats>>,
}

fn start(lp: Loop, echo: Echo, config: Config) -> Running {
    let config = match lp {
        Loop::Workers | Loop::WorkersEpoll => config.with_workers(2).with_reuseport(false),
        Loop::WorkersReuseport => config.with_workers(2).with_reuseport(true),
        _ => config,
    };
    let server = EchoServer::bind("127.0.0.1:0", echo, config).expect("bind");
    let addr = server.local_addr().unwrap();
    let stop = server.shutdown_handle();
    let thread = thread::spawn(move || match lp {
        Loop::Select | Loop::Workers => server.run(),
        Loop::Large => server.run_large(),
        Loop::Poll | Loop::WorkersReuseport => server.run_poll(),
        Loop::Epoll | Loop::WorkersEpoll => server.run_with(Backend::Epoll),
    });
    Running { addr, stop, thread }
}

impl Running {
    fn finish(self) -> Stats {
        self.stop.shutdown();
        self.thread
            .join()
            .expect("server thread panicked")
            .expect("server failed")
    }
}

/// Runs `client` over every input against one server per echo mode on loop `lp`, and
/// checks that every byte came back, every connection was closed at EOF, and the
/// server's counters agree.
fn every_input_every_mode(
    lp: Loop,
    inputs: &[(String, Vec<u8>)],
    client: fn(SocketAddr, &[u8]) -> io::Result<Vec<u8>>,
) {
    for echo in MODES {
        let server = start(lp, echo, Config::book());
        let mut sent = 0u64;
        for (name, input) in inputs {
            let t = Instant::now();
            let got = client(server.addr, input)
                .unwrap_or_else(|e| panic!("{lp:?}, {echo:?}, {name}: {e}"));
            assert_same(&format!("{lp:?}, {echo:?}, {name}"), input, &got);
            sent += input.len() as u64;
            eprintln!(
                "{lp:?} {echo:?} {name}: {} bytes in {:?}",
                input.len(),
                t.elapsed()
            );
        }
        let stats = server.finish();
        let n = inputs.len() as u64;
        assert_eq!(stats.accepted, n, "{lp:?}, {echo:?}: {stats:?}");
        assert_eq!(stats.closed_eof, n, "{lp:?}, {echo:?}: {stats:?}");
        assert_eq!(stats.bytes_sent, sent, "{lp:?}, {echo:?}: {stats:?}");
    }
}

fn str_cli_waiting(addr: SocketAddr, input: &[u8]) -> io::Result<Vec<u8>> {
    str_cli(addr, input, WAIT)
}

fn strcliselect02_waiting(addr: SocketAddr, input: &[u8]) -> io::Result<Vec<u8>> {
    strcliselect02(addr, input.to_vec(), WAIT)
}

#[test]
fn fgets_pieces_are_the_books() {
    let l = line(4095);
    let p = fgets_pieces(&l);
    assert_eq!(p.iter().map(|p| p.len()).collect::<Vec<_>>(), [4095, 1]);
    let l = line(100_000);
    let p = fgets_pieces(&l);
    assert_eq!(p.len(), 100_001 / 4095 + 1);
    assert!(p[..p.len() - 1].iter().all(|p| p.len() == 4095));
    assert_eq!(p.concat(), l);
    assert_eq!(fgets_pieces(b"a\n\nbc"), [&b"a\n"[..], b"\n", b"bc"]);
    assert!(fgets_pieces(b"").is_empty());
}

#[test]
fn str_cli_select() {
    let _dog = Watchdog::new("str_cli select", Duration::from_secs(120));
    every_input_every_mode(Loop::Select, &inputs(), str_cli_waiting);
}

#[test]
fn str_cli_large() {
    let _dog = Watchdog::new("str_cli large", Duration::from_secs(120));
    every_input_every_mode(Loop::Large, &inputs(), str_cli_waiting);
}

#[test]
fn str_cli_poll() {
    let _dog = Watchdog::new("str_cli poll", Duration::from_secs(120));
    every_input_every_mode(Loop::Poll, &inputs(), str_cli_waiting);
}

#[test]
fn str_cli_epoll() {
    let _dog = Watchdog::new("str_cli epoll", Duration::from_secs(120));
    every_input_every_mode(Loop::Epoll, &inputs(), str_cli_waiting);
}

/// The line server as it was before `max_line` defaulted to 4095: with room for 4096
/// bytes it holds the 4095-byte piece that `str_cli` sends for a 4095-byte line, and
/// `str_cli` waits for its echo forever (here: until its timeout). The piece is held,
/// not lost: it comes back at the half-close.
#[test]
fn str_cli_waits_forever_on_a_line_server_with_room_for_4096() {
    let _dog = Watchdog::new("str_cli max_line 4096", Duration::from_secs(60));
    let short = Duration::from_millis(300);
    for lp in [Loop::Select, Loop::Large, Loop::Poll, Loop::Epoll] {
        let server = start(lp, Echo::Lines, Config::book().with_max_line(MAXLINE));
        let input = line(4095);
        let err = str_cli(server.addr, &input, short).expect_err("str_cli should wait forever");
        assert!(is_timeout(&err), "{lp:?}: {err}");
        assert!(err.to_string().contains("Readline after piece 0"), "{err}");

        let mut conn = TcpStream::connect(server.addr).unwrap();
        conn.set_read_timeout(Some(short)).unwrap();
        conn.write_all(&input[..MAXLINE - 1]).unwrap();
        let e = conn.read(&mut [0u8; 64]).expect_err("nothing echoed");
        assert!(is_timeout(&e), "{lp:?}: {e}");
        conn.shutdown(Shutdown::Write).unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        let mut back = Vec::new();
        conn.read_to_end(&mut back).unwrap();
        assert_same(&format!("{lp:?}"), &input[..MAXLINE - 1], &back);
        drop(conn);
        server.finish();
    }
}

fn pipelined_inputs() -> Vec<(String, Vec<u8>)> {
    let mut v = vec![("1 MB of mixed lines".to_string(), mixed(1 << 20, 7))];
    v.extend(inputs());
    v
}

#[test]
fn strcliselect02_select() {
    let _dog = Watchdog::new("strcliselect02 select", Duration::from_secs(120));
    every_input_every_mode(Loop::Select, &pipelined_inputs(), strcliselect02_waiting);
}

#[test]
fn strcliselect02_large() {
    let _dog = Watchdog::new("strcliselect02 large", Duration::from_secs(120));
    every_input_every_mode(Loop::Large, &pipelined_inputs(), strcliselect02_waiting);
}

#[test]
fn strcliselect02_poll() {
    let _dog = Watchdog::new("strcliselect02 poll", Duration::from_secs(120));
    every_input_every_mode(Loop::Poll, &pipelined_inputs(), strcliselect02_waiting);
}

#[test]
fn strcliselect02_epoll() {
    let _dog = Watchdog::new("strcliselect02 epoll", Duration::from_secs(120));
    every_input_every_mode(Loop::Epoll, &pipelined_inputs(), strcliselect02_waiting);
}

#[test]
fn str_cli_and_strcliselect02_with_two_workers() {
    let _dog = Watchdog::new("two workers", Duration::from_secs(180));
    for lp in [Loop::Workers, Loop::WorkersReuseport, Loop::WorkersEpoll] {
        every_input_every_mode(lp, &inputs(), str_cli_waiting);
        every_input_every_mode(lp, &pipelined_inputs(), strcliselect02_waiting);
    }
}

// ---------------------------------------------------------------------------------
// External clients against the example binary
// ---------------------------------------------------------------------------------

/// SIGTERM to `server`; the counters it printed, as `name: value` lines.
fn stop(server: ServerProcess, what: &str) -> String {
    let (status, rest) = server.terminate();
    assert!(status.success(), "{what}: {status}\n{rest}");
    rest
}

/// The value of counter `name` in the server's final report.
fn counter(report: &str, name: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": ")?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

/// The eleven servers: four loops, two echo modes, and two workers (sharing one
/// listener, or one each with `SO_REUSEPORT`).
const SERVERS: [&[&str]; 11] = [
    &["--bytes"],
    &["--bytes", "--large"],
    &["--bytes", "--poll"],
    &["--bytes", "--epoll"],
    &["--lines"],
    &["--lines", "--large"],
    &["--lines", "--poll"],
    &["--lines", "--epoll"],
    &["--bytes", "--workers", "2", "--shared-listener"],
    &["--lines", "--poll", "--workers", "2"],
    &["--bytes", "--epoll", "--workers", "2"],
];

/// Panics with a clear message when `tool` cannot be run.
fn require(tool: &str, version_arg: &str, package: &str) {
    common::tools::require(
        Command::new(tool).arg(version_arg),
        &format!("install it (apt-get install {package})"),
    );
}

/// Runs `cmd` with `input` on its stdin and returns its stdout; the process must exit
/// successfully within `limit`, or it is killed and the test fails (a deadlock).
fn run_tool(what: &str, cmd: &mut Command, input: &[u8], limit: Duration) -> Vec<u8> {
    common::tools::run_tool(what, cmd, input, limit).0
}

/// Every input through `client` (a command for a port) against every server in
/// `SERVERS`.
fn tool_against_every_server(
    tool: &str,
    inputs: &[(String, Vec<u8>)],
    client: impl Fn(u16) -> Command,
) {
    for args in SERVERS {
        let server = ServerProcess::start(args);
        let server_name = format!("echo_server {}", args.join(" "));
        let mut sent = 0u64;
        for (name, input) in inputs {
            let what = format!("{tool} vs {server_name}, {name}");
            let t = Instant::now();
            let got = run_tool(&what, &mut client(server.addr.port()), input, TOOL_LIMIT);
            assert_same(&what, input, &got);
            sent += input.len() as u64;
            eprintln!("{what}: {} bytes in {:?}", input.len(), t.elapsed());
        }
        let what = server_name;
        let report = stop(server, &what);
        let n = inputs.len() as u64;
        assert_eq!(counter(&report, "accepted"), n, "{what}: {report}");
        assert_eq!(counter(&report, "closed_eof"), n, "{what}: {report}");
        assert_eq!(counter(&report, "bytes_sent"), sent, "{what}: {report}");
    }
}

/// OpenBSD netcat: `-N` shuts the socket down (SHUT_WR) after EOF on stdin, then nc
/// reads until the server closes.
#[test]
#[ignore = "needs nc (apt-get install netcat-openbsd); .ci/run installs it and runs cargo test --test server real_clients:: -- --ignored"]
fn nc_dash_n() {
    let _dog = Watchdog::new("nc -N", Duration::from_secs(240));
    require("nc", "-h", "netcat-openbsd");
    tool_against_every_server("nc -N", &pipelined_inputs(), |port| {
        let mut c = Command::new("nc");
        c.args(["-N", "127.0.0.1", &port.to_string()]);
        c
    });
}

/// socat half-closes the TCP side at EOF on stdin (`shut-down`, the default for
/// sockets, given explicitly) and then waits up to `-t` seconds for the server's EOF
/// (the default, 0.5 s, could cut a slow echo short).
#[test]
#[ignore = "needs socat (apt-get install socat); .ci/run installs it and runs cargo test --test server real_clients:: -- --ignored"]
fn socat_half_close() {
    let _dog = Watchdog::new("socat", Duration::from_secs(240));
    require("socat", "-V", "socat");
    tool_against_every_server("socat", &pipelined_inputs(), |port| {
        let mut c = Command::new("socat");
        c.args(["-t", "10", "-", &format!("TCP:127.0.0.1:{port},shut-down")]);
        c
    });
}

/// sendall, shutdown(SHUT_WR), recv until EOF.
const PY_HALF_CLOSE: &str = "\
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)
s.sendall(sys.stdin.buffer.read())
s.shutdown(socket.SHUT_WR)
out = bytearray()
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
sys.stdout.buffer.write(out)
";

/// sendall, then recv until as many bytes came back as were sent, before any
/// half-close: only works if the server echoes without waiting for more. Then
/// shutdown(SHUT_WR) and expect EOF with nothing more.
const PY_WAIT_FOR_ECHO: &str = "\
import socket, sys
d = sys.stdin.buffer.read()
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)
s.sendall(d)
got = b''
while len(got) < len(d):
    b = s.recv(65536)
    if not b:
        sys.exit('EOF after %d of %d bytes' % (len(got), len(d)))
    got += b
s.shutdown(socket.SHUT_WR)
extra = s.recv(65536)
if extra:
    sys.exit('%d bytes more than were sent' % len(extra))
sys.stdout.buffer.write(got)
";

/// Python's socket module: sendall, shutdown(SHUT_WR), read to EOF; and a client that
/// waits for the echo of 4095 bytes without a newline before it closes.
///
/// The half-close client sends everything before it reads anything, so its inputs stay
/// small enough (about 220 KB at most) for the socket buffers to hold the echoes.
#[test]
#[ignore = "needs python3; .ci/run runs cargo test --test server real_clients:: -- --ignored"]
fn python_sockets() {
    let _dog = Watchdog::new("python3", Duration::from_secs(240));
    require("python3", "--version", "python3");
    tool_against_every_server("python3 sendall+SHUT_WR", &inputs(), |port| {
        let mut c = Command::new("python3");
        c.args(["-c", PY_HALF_CLOSE, &port.to_string()]);
        c
    });
    let no_newline = vec![
        ("4095 bytes without newline".to_string(), text(4095, 1)),
        (
            "4095 bytes of binary without newline".to_string(),
            binary(4095, 9)
                .into_iter()
                .map(|b| if b == b'\n' { 0 } else { b })
                .collect(),
        ),
    ];
    tool_against_every_server("python3 wait for echo", &no_newline, |port| {
        let mut c = Command::new("python3");
        c.args(["-c", PY_WAIT_FOR_ECHO, &port.to_string()]);
        c
    });
}
