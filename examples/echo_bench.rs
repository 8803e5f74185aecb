//! The echo-server comparison: `EchoServer` (select, poll, `LargeFdSet`) against a C
//! select server (UNP's `tcpservselect01` structure, `benches/c/tcpservselect.c`), and
//! echo servers on mio, tokio (current-thread) and std threads, under the same load,
//! in one run.
//!
//! ```text
//! cargo run --release --example echo_bench                 # full run, prints tables
//! cargo run --release --example echo_bench -- --write-docs # also rewrites docs/benchmarks.{md,svg}
//! cargo run --release --example echo_bench -- --quick      # seconds: CI's smoke run
//! ```
//!
//! The same binary is the load generator and every Rust server: the orchestrator
//! starts each server as its own process (`echo_bench serve KIND ADDR`) so that CPU
//! time, RSS and `strace -c` are per server. `echo_bench load ADDR` runs the load
//! generator alone against any echo server.
//!
//! The load: N connections on 127.0.0.1, each in a closed loop: send one line (64
//! bytes by default), wait for its echo, check every byte, send the next. Connection
//! setup and a warm-up line per connection are not timed. One generator thread
//! multiplexes all connections with epoll (mio); its CPU share is reported.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: echo_bench [OPTIONS]            run the comparison (see docs/benchmarks.md)
       echo_bench serve KIND ADDR      run one server (KIND: select poll large mio tokio threads)
       echo_bench load ADDR [-n N] [--secs S] [--line BYTES]   load one server

options of the comparison:
  --quick            a few seconds: 1 round of 0.3 s at 1, 50 and 1100 connections,
                     RSS at 100 connections, no syscall counts (CI)
  --write-docs       rewrite the generated parts of docs/benchmarks.md and
                     docs/benchmarks.svg (also summarises target/criterion, if present)
  --rounds N         rounds of A B A B ... per connection count (default 5)
  --secs S           measured seconds per run (default 1.2)
  --counts A,B,...   connection counts (default 1,50,500,2000)
  --servers A,B,...  servers (default select,poll,large,c,mio,tokio,threads)
  --threads N        load generator threads (default 1)
  --line BYTES       line length, newline included (default 64, at least 28)
  --no-syscalls      skip the syscall counts (perf stat, strace)
  --no-rss           skip the memory measurement
  --micro-docs       only refresh the micro-benchmark table of docs/benchmarks.md
                     from target/criterion (run `cargo bench` first)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve::main(&args[1..]),
        Some("load") => load_main(&args[1..]),
        Some("-h") | Some("--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("--micro-docs") => micro_docs(),
        _ => Opts::parse(&args).and_then(|o| orchestrate(&o)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `io::Error::other` (Rust 1.74) for the crate's MSRV 1.70.
fn other_err(msg: impl Into<String>) -> io::Error {
    io::Error::new(ErrorKind::Other, msg.into())
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(ErrorKind::InvalidInput, msg.into())
}

/// `rlim_t` is unsigned on Linux and Apple, signed on FreeBSD.
fn to_u64<T: TryInto<u64>>(v: T) -> u64 {
    v.try_into().unwrap_or(0)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (at most 65536): 2000
/// connections need more than the usual 1024.
fn raise_nofile() -> io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let want = hard.min(65536);
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want, hard)?;
        return Ok(to_u64(want));
    }
    Ok(to_u64(soft))
}

/// The servers under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Select,
    Poll,
    Large,
    C,
    Mio,
    Tokio,
    Threads,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::Select,
        Kind::Poll,
        Kind::Large,
        Kind::C,
        Kind::Mio,
        Kind::Tokio,
        Kind::Threads,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Select => "select",
            Kind::Poll => "poll",
            Kind::Large => "large",
            Kind::C => "c",
            Kind::Mio => "mio",
            Kind::Tokio => "tokio",
            Kind::Threads => "threads",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Select => "EchoServer::run (select)",
            Kind::Poll => "EchoServer::run_poll (poll)",
            Kind::Large => "EchoServer::run_large (LargeFdSet)",
            Kind::C => "C tcpservselect (select, cc -O2)",
            Kind::Mio => "mio (epoll)",
            Kind::Tokio => "tokio current-thread",
            Kind::Threads => "std thread per connection",
        }
    }

    fn color(self) -> &'static str {
        match self {
            Kind::Select => "#d62728",
            Kind::Poll => "#ff7f0e",
            Kind::Large => "#8c564b",
            Kind::C => "#1f77b4",
            Kind::Mio => "#2ca02c",
            Kind::Tokio => "#9467bd",
            Kind::Threads => "#7f7f7f",
        }
    }

    fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Serves descriptors above `FD_SETSIZE` (the issue's list: poll, LargeFdSet,
    /// mio, tokio).
    fn beyond_fd_setsize(self) -> bool {
        matches!(self, Kind::Poll | Kind::Large | Kind::Mio | Kind::Tokio)
    }
}

// ---------------------------------------------------------------------------------
// The servers
// ---------------------------------------------------------------------------------

mod serve {
    use super::*;
    use unp_select::echo::{Config, EchoServer};
    use unp_select::select::FD_SETSIZE;

    /// `max_clients` of the loops that are not limited to `FD_SETSIZE`.
    const MAX_CLIENTS: usize = 4096;

    pub fn main(args: &[String]) -> io::Result<()> {
        let [kind, addr] = args else {
            return Err(invalid(format!("serve KIND ADDR\n\n{USAGE}")));
        };
        let kind = Kind::from_name(kind)
            .filter(|&k| k != Kind::C)
            .ok_or_else(|| invalid(format!("unknown server {kind}")))?;
        raise_nofile()?;
        match kind {
            Kind::Select | Kind::Poll | Kind::Large => echo_server(kind, addr),
            Kind::Mio => mio_server(addr),
            Kind::Tokio => tokio_server(addr),
            Kind::Threads => thread_server(addr),
            Kind::C => unreachable!("filtered above"),
        }
    }

    fn ready(addr: SocketAddr) {
        // stdout is line-buffered: the orchestrator sees this line at once. The pid
        // is ours even when a tracer (strace, perf) started us.
        println!("ready {addr} {}", std::process::id());
    }

    fn echo_server(kind: Kind, addr: &str) -> io::Result<()> {
        let config = Config::default().with_max_clients(if kind == Kind::Select {
            FD_SETSIZE
        } else {
            MAX_CLIENTS
        });
        let server = EchoServer::bind(addr, config)?;
        // Keep a handle: dropping the last one closes the write end of the server's
        // wake-up socket pair, which then reads as EOF in every turn and the loop
        // spins without serving (see the note in docs/benchmarks.md).
        let _wake_tx = server.shutdown_handle();
        ready(server.local_addr()?);
        let stats = match kind {
            Kind::Select => server.run()?,
            Kind::Poll => server.run_poll()?,
            _ => server.run_large()?,
        };
        eprintln!("{stats:?}");
        Ok(())
    }

    /// A single-threaded mio (epoll, edge-triggered) echo server: echoes what each
    /// read returns, keeps what the kernel does not take and waits for writability.
    fn mio_server(addr: &str) -> io::Result<()> {
        use mio::net::{TcpListener, TcpStream};
        use mio::{Events, Interest, Poll, Registry, Token};

        struct Conn {
            stream: TcpStream,
            pending: Vec<u8>,
        }

        /// One readiness event of a connection; `false` closes it.
        fn turn(c: &mut Conn, buf: &mut [u8], registry: &Registry, token: Token) -> bool {
            if !c.pending.is_empty() {
                match c.stream.write(&c.pending) {
                    Ok(n) => drop(c.pending.drain(..n)),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => return true,
                    Err(_) => return false,
                }
                if !c.pending.is_empty() {
                    return true;
                }
                if registry
                    .reregister(&mut c.stream, token, Interest::READABLE)
                    .is_err()
                {
                    return false;
                }
            }
            loop {
                match c.stream.read(buf) {
                    Ok(0) => return false,
                    Ok(n) => {
                        let mut off = 0;
                        while off < n {
                            match c.stream.write(&buf[off..n]) {
                                Ok(w) => off += w,
                                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                                Err(_) => return false,
                            }
                        }
                        if off < n {
                            c.pending.extend_from_slice(&buf[off..n]);
                            return registry
                                .reregister(&mut c.stream, token, Interest::WRITABLE)
                                .is_ok();
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
        }

        const LISTENER: Token = Token(usize::MAX);
        let addr: SocketAddr = addr.parse().map_err(|_| invalid("bad address"))?;
        let mut listener = TcpListener::bind(addr)?;
        let mut poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        ready(listener.local_addr()?);
        let mut conns: Vec<Option<Conn>> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; 4096];
        loop {
            if let Err(e) = poll.poll(&mut events, None) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in events.iter() {
                if ev.token() == LISTENER {
                    loop {
                        match listener.accept() {
                            Ok((mut stream, _)) => {
                                let i = free.pop().unwrap_or_else(|| {
                                    conns.push(None);
                                    conns.len() - 1
                                });
                                poll.registry().register(
                                    &mut stream,
                                    Token(i),
                                    Interest::READABLE,
                                )?;
                                conns[i] = Some(Conn {
                                    stream,
                                    pending: Vec::new(),
                                });
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                                ) => {}
                            Err(_) => break, // e.g. EMFILE: try again on the next event
                        }
                    }
                    continue;
                }
                let i = ev.token().0;
                let Some(c) = conns.get_mut(i).and_then(Option::as_mut) else {
                    continue;
                };
                if !turn(c, &mut buf, poll.registry(), Token(i)) {
                    if let Some(mut c) = conns[i].take() {
                        let _ = poll.registry().deregister(&mut c.stream);
                    }
                    free.push(i);
                }
            }
        }
    }

    /// tokio's current-thread runtime, a task per connection.
    fn tokio_server(addr: &str) -> io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            ready(listener.local_addr()?);
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        let n = match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        })
    }

    /// Blocking std sockets, one thread per connection (default stack size).
    fn thread_server(addr: &str) -> io::Result<()> {
        let listener = std::net::TcpListener::bind(addr)?;
        ready(listener.local_addr()?);
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = thread::Builder::new().spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// The load generator
// ---------------------------------------------------------------------------------

/// One client connection in the closed loop.
struct Conn {
    stream: TcpStream,
    id: u32,
    seq: u64,
    /// The line in flight (what the echo must be).
    line: Vec<u8>,
    /// Bytes of its echo received so far.
    got: usize,
    sent_at: Instant,
}

const MIN_LINE: usize = 28;

impl Conn {
    /// Writes the next line's content: `IIIIIIII:SSSSSSSSSSSSSSSS:` (connection id
    /// and sequence number in hex), letters, `\n`. Every line differs, so an echo
    /// sent to the wrong connection or replayed is caught.
    fn next_line(&mut self) {
        fn hex(out: &mut [u8], mut v: u64) {
            for b in out.iter_mut().rev() {
                *b = b"0123456789abcdef"[(v & 15) as usize];
                v >>= 4;
            }
        }
        self.seq += 1;
        let len = self.line.len();
        hex(&mut self.line[0..8], u64::from(self.id));
        self.line[8] = b':';
        hex(&mut self.line[9..25], self.seq);
        self.line[25] = b':';
        let salt = (self.seq as usize).wrapping_add(self.id as usize);
        for (j, b) in self.line[26..len - 1].iter_mut().enumerate() {
            *b = b'a' + (j.wrapping_add(salt) % 26) as u8;
        }
        self.line[len - 1] = b'\n';
        self.got = 0;
    }

    fn send(&mut self) -> io::Result<()> {
        self.next_line();
        self.sent_at = Instant::now();
        let n = (&self.stream).write(&self.line)?;
        if n != self.line.len() {
            return Err(other_err(format!(
                "short write of a {}-byte line: {n}",
                self.line.len()
            )));
        }
        Ok(())
    }

    /// Checks `data` against the expected echo; `Ok(true)` when the line is complete.
    fn take(&mut self, data: &[u8]) -> io::Result<bool> {
        let want = &self.line[self.got..];
        if data.len() > want.len() || data != &want[..data.len()] {
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                format!(
                    "connection {}: wrong echo of line {}: expected {:?}, got {:?}",
                    self.id,
                    self.seq,
                    String::from_utf8_lossy(want),
                    String::from_utf8_lossy(data)
                ),
            ));
        }
        self.got += data.len();
        Ok(self.got == self.line.len())
    }
}

/// Opens `n` connections to `addr` and echoes one line on each (not timed): in
/// batches, so that a server accepting one connection per turn never overflows its
/// listen queue. Returns them nonblocking.
fn connect(addr: SocketAddr, n: usize, line_len: usize, first_id: u32) -> io::Result<Vec<Conn>> {
    const BATCH: usize = 100;
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        let start = conns.len();
        for i in start..n.min(start + BATCH) {
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut c = Conn {
                stream,
                id: first_id + i as u32,
                seq: 0,
                line: vec![0; line_len],
                got: 0,
                sent_at: Instant::now(),
            };
            c.send()?;
            conns.push(c);
        }
        let mut buf = vec![0u8; line_len];
        for c in &mut conns[start..] {
            while c.got < line_len {
                let want = line_len - c.got;
                let n = (&c.stream).read(&mut buf[..want]).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("warm-up echo of connection {}: {e}", c.id),
                    )
                })?;
                if n == 0 {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        format!("server closed connection {} during warm-up", c.id),
                    ));
                }
                c.take(&buf[..n])?;
            }
            c.stream.set_nonblocking(true)?;
        }
    }
    Ok(conns)
}

/// Closes connections with a reset (SO_LINGER 0): no TIME_WAIT left behind to
/// exhaust ephemeral ports over many runs.
fn close_all(conns: Vec<Conn>) {
    for c in conns {
        let _ = unp_select::abort(c.stream);
    }
}

/// What one generator thread saw in the measured window.
#[derive(Default)]
struct Tally {
    lines: u64,
    /// Latency of each line echoed in the window, in nanoseconds.
    latencies: Vec<u32>,
}

/// Runs the closed loop on `conns` until `until`; counts lines whose echo completed
/// in `[from, until)`. Every completion bumps `live`.
fn drive(conns: &mut [Conn], from: Instant, until: Instant, live: &AtomicU64) -> io::Result<Tally> {
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    let mut poll = Poll::new()?;
    for (i, c) in conns.iter().enumerate() {
        poll.registry().register(
            &mut SourceFd(&c.stream.as_raw_fd()),
            Token(i),
            Interest::READABLE,
        )?;
    }
    for c in conns.iter_mut() {
        c.send()?;
    }
    let mut tally = Tally::default();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut outstanding = conns.len();
    let give_up = until + Duration::from_secs(10);
    while outstanding > 0 {
        let now = Instant::now();
        if now > give_up {
            return Err(io::Error::new(
                ErrorKind::TimedOut,
                format!("{outstanding} echoes still missing 10 s after the end"),
            ));
        }
        let wait = until
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        match poll.poll(&mut events, Some(wait.min(Duration::from_millis(100)))) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            loop {
                match (&c.stream).read(&mut buf) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            ErrorKind::UnexpectedEof,
                            format!("server closed connection {}", c.id),
                        ))
                    }
                    Ok(n) => {
                        if c.take(&buf[..n])? {
                            let done = Instant::now();
                            live.fetch_add(1, Ordering::Relaxed);
                            if done >= from && done < until {
                                tally.lines += 1;
                                let ns = (done - c.sent_at).as_nanos();
                                tally.latencies.push(ns.min(u32::MAX as u128) as u32);
                            }
                            if done < until {
                                c.send()?;
                            } else {
                                outstanding -= 1;
                            }
                            // The echo is complete and the server sends nothing
                            // unasked: no need to read until EAGAIN (epoll reports
                            // the next arrival anyway).
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("connection {}: {e}", c.id),
                        ))
                    }
                }
            }
        }
    }
    Ok(tally)
}

/// CPU seconds (user + system) of process `pid`, all threads, from /proc.
fn proc_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| (utime + stime) / hz as f64)
}

/// CPU seconds of this process (the load generator).
fn self_cpu() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => 0.0,
    }
}

/// Resident set size of `pid` in KiB (VmRSS), from /proc.
fn proc_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One measured run.
#[derive(Clone, Debug)]
struct Run {
    lines_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    /// Server CPU over the window, in cores (1.0 = one core busy).
    server_cpu: Option<f64>,
    /// Load generator CPU over the window, in cores.
    gen_cpu: f64,
    /// Every echo completed in the run, measured window or not.
    completed: u64,
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

/// Runs the closed loop on `conns` (split over `threads` threads): `ramp` unmeasured,
/// then `secs` measured; samples the server's CPU time (from /proc) over the window.
fn measure(
    conns: &mut [Conn],
    threads: usize,
    ramp: Duration,
    secs: Duration,
    server_pid: Option<u32>,
) -> io::Result<Run> {
    let live = AtomicU64::new(0);
    let start = Instant::now();
    let from = start + ramp;
    let until = from + secs;
    let threads = threads.max(1);
    let per = ((conns.len() + threads - 1) / threads).max(1);
    let (tallies, cpu) = thread::scope(|s| {
        let handles: Vec<_> = conns
            .chunks_mut(per)
            .map(|chunk| {
                let live = &live;
                s.spawn(move || drive(chunk, from, until, live))
            })
            .collect();
        thread::sleep(from.saturating_duration_since(Instant::now()));
        let cpu0 = (server_pid.and_then(proc_cpu), self_cpu(), Instant::now());
        thread::sleep(until.saturating_duration_since(Instant::now()));
        let cpu1 = (server_pid.and_then(proc_cpu), self_cpu(), Instant::now());
        let tallies: Vec<io::Result<Tally>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(other_err("generator panicked")))
            })
            .collect();
        (tallies, (cpu0, cpu1))
    });
    let mut lines = 0;
    let mut lat = Vec::new();
    for t in tallies {
        let t = t?;
        lines += t.lines;
        lat.extend(t.latencies);
    }
    lat.sort_unstable();
    let ((s0, g0, t0), (s1, g1, t1)) = cpu;
    let wall = (t1 - t0).as_secs_f64();
    Ok(Run {
        lines_per_sec: lines as f64 / secs.as_secs_f64(),
        p50_us: percentile(&lat, 0.50),
        p99_us: percentile(&lat, 0.99),
        server_cpu: s0.zip(s1).map(|(a, b)| (b - a) / wall),
        gen_cpu: (g1 - g0) / wall,
        completed: live.load(Ordering::Relaxed),
    })
}

fn load_main(args: &[String]) -> io::Result<()> {
    let mut addr = None;
    let (mut n, mut secs, mut line, mut threads) = (50usize, 5.0f64, 64usize, 1usize);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| invalid(format!("{a} needs a value")))
        };
        match a.as_str() {
            "-n" => n = val()?.parse().map_err(|_| invalid("-n: a number"))?,
            "--secs" => secs = val()?.parse().map_err(|_| invalid("--secs: a number"))?,
            "--line" => line = val()?.parse().map_err(|_| invalid("--line: a number"))?,
            "--threads" => threads = val()?.parse().map_err(|_| invalid("--threads: a number"))?,
            s if addr.is_none() => {
                addr = Some(
                    s.parse::<SocketAddr>()
                        .map_err(|_| invalid("ADDR: IP:PORT"))?,
                )
            }
            s => return Err(invalid(format!("unexpected {s}"))),
        }
    }
    let addr = addr.ok_or_else(|| invalid(format!("load needs ADDR\n\n{USAGE}")))?;
    if line < MIN_LINE {
        return Err(invalid(format!("--line must be at least {MIN_LINE}")));
    }
    raise_nofile()?;
    let mut conns = connect(addr, n, line, 0)?;
    let secs = Duration::from_secs_f64(secs);
    let r = measure(&mut conns, threads, Duration::from_millis(200), secs, None)?;
    close_all(conns);
    println!(
        "{n} connections, {line}-byte lines: {:.0} lines/s, p50 {:.1} µs, p99 {:.1} µs, generator CPU {:.0}%",
        r.lines_per_sec,
        r.p50_us,
        r.p99_us,
        r.gen_cpu * 100.0
    );
    Ok(())
}

// ---------------------------------------------------------------------------------
// The orchestrator
// ---------------------------------------------------------------------------------

struct Opts {
    quick: bool,
    write_docs: bool,
    rounds: usize,
    secs: f64,
    ramp: f64,
    counts: Vec<usize>,
    kinds: Vec<Kind>,
    threads: usize,
    line: usize,
    strace: bool,
    rss: bool,
    /// Connections held open for the memory measurement.
    idle: usize,
    args: Vec<String>,
}

impl Opts {
    fn parse(args: &[String]) -> io::Result<Opts> {
        let mut o = Opts {
            quick: false,
            write_docs: false,
            rounds: 5,
            secs: 1.2,
            ramp: 0.25,
            counts: vec![1, 50, 500, 2000],
            kinds: Kind::ALL.to_vec(),
            threads: 1,
            line: 64,
            strace: true,
            rss: true,
            idle: 1000,
            args: args.to_vec(),
        };
        let list = |v: &str| -> io::Result<Vec<usize>> {
            v.split(',')
                .map(|x| {
                    x.trim()
                        .parse()
                        .map_err(|_| invalid(format!("bad number {x}")))
                })
                .collect()
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || {
                it.next()
                    .ok_or_else(|| invalid(format!("{a} needs a value")))
            };
            match a.as_str() {
                "--quick" => {
                    o.quick = true;
                    o.rounds = 1;
                    o.secs = 0.3;
                    o.ramp = 0.05;
                    o.counts = vec![1, 50, 1100];
                    o.strace = false;
                    o.idle = 100;
                }
                "--write-docs" => o.write_docs = true,
                "--rounds" => o.rounds = list(val()?)?[0].max(1),
                "--secs" => {
                    o.secs = val()?.parse().map_err(|_| invalid("--secs: a number"))?;
                }
                "--counts" => o.counts = list(val()?)?,
                "--servers" => {
                    o.kinds = val()?
                        .split(',')
                        .map(|s| {
                            Kind::from_name(s).ok_or_else(|| invalid(format!("unknown server {s}")))
                        })
                        .collect::<io::Result<_>>()?;
                }
                "--threads" => o.threads = list(val()?)?[0].max(1),
                "--line" => o.line = list(val()?)?[0],
                "--no-syscalls" | "--no-strace" => o.strace = false,
                "--no-rss" => o.rss = false,
                s => return Err(invalid(format!("unknown option {s}\n\n{USAGE}"))),
            }
        }
        if o.line < MIN_LINE {
            return Err(invalid(format!("--line must be at least {MIN_LINE}")));
        }
        if o.write_docs && o.quick {
            return Err(invalid("--write-docs wants a full run, not --quick"));
        }
        Ok(o)
    }
}

/// A running server process (possibly started by a tracer).
struct Server {
    /// The process we spawned: the server, or strace/perf running it.
    child: Child,
    addr: SocketAddr,
    /// The server's own pid, from its "ready" line.
    pid: u32,
}

impl Server {
    fn start(kind: Kind, c_bin: &Path) -> io::Result<Server> {
        Server::start_wrapped(kind, c_bin, &[])
    }

    /// Starts the server on 127.0.0.1 (a free port) under the command `wrap` (e.g.
    /// `strace -c -f -o FILE`), and waits for its "ready ADDR PID" line.
    fn start_wrapped(kind: Kind, c_bin: &Path, wrap: &[String]) -> io::Result<Server> {
        let mut argv: Vec<std::ffi::OsString> = wrap.iter().map(Into::into).collect();
        if kind == Kind::C {
            argv.push(c_bin.into());
        } else {
            argv.push(std::env::current_exe()?.into());
            argv.push("serve".into());
            argv.push(kind.name().into());
        }
        argv.push("127.0.0.1:0".into());
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{:?}: {e}", argv[0])))?;
        let stdout = child.stdout.take().expect("stdout was piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let mut words = line.strip_prefix("ready ").unwrap_or("").split_whitespace();
        let addr = words.next().and_then(|a| a.parse().ok());
        let pid = words.next().and_then(|p| p.parse().ok());
        match (addr, pid) {
            (Some(addr), Some(pid)) => Ok(Server { child, addr, pid }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(other_err(format!(
                    "server {} did not start (said {line:?})",
                    kind.name()
                )))
            }
        }
    }

    fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills the server and waits for what we spawned (a tracer then writes its
    /// summary and exits).
    fn stop(mut self) -> io::Result<()> {
        self.kill_and_wait()
    }

    fn kill_and_wait(&mut self) -> io::Result<()> {
        use nix::sys::signal::{kill, Signal};
        let _ = kill(nix::unistd::Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        let waited = self.child.wait().map(drop);
        let _ = self.child.kill();
        waited
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.kill_and_wait();
    }
}

/// Compiles the C server with `cc -O2` (or `$CC`) into target/echo_bench/.
fn build_c_server(root: &Path) -> io::Result<PathBuf> {
    let src = root.join("benches/c/tcpservselect.c");
    let dir = root.join("target/echo_bench");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("tcpservselect");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args(["-O2", "-Wall", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .map_err(|e| io::Error::new(e.kind(), format!("{cc}: {e}")))?;
    if !status.success() {
        return Err(other_err(format!("{cc} -O2 {} failed", src.display())));
    }
    Ok(out)
}

fn one_run(kind: Kind, count: usize, o: &Opts, c_bin: &Path) -> io::Result<Run> {
    let server = Server::start(kind, c_bin)?;
    let mut conns = connect(server.addr, count, o.line, 0)?;
    let run = measure(
        &mut conns,
        o.threads,
        Duration::from_secs_f64(o.ramp),
        Duration::from_secs_f64(o.secs),
        Some(server.pid()),
    );
    close_all(conns);
    drop(server);
    run
}

/// Which tool counts the syscalls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tracer {
    /// `strace -c -f`: every syscall by name, with its errors; slows the server a lot.
    Strace,
    /// `perf stat` on syscall tracepoints: a few chosen syscalls, barely slower.
    Perf,
}

impl Tracer {
    fn name(self) -> &'static str {
        match self {
            Tracer::Strace => "strace -c -f",
            Tracer::Perf => "perf stat",
        }
    }
}

/// (syscall, calls, errors).
type CallCount = (String, u64, u64);

/// Syscalls a server made over a bounded run, and the lines it echoed meanwhile.
#[derive(Clone, Debug)]
struct Syscalls {
    lines: u64,
    /// (syscall, calls, errors), most calls first; "total" excluded.
    calls: Vec<CallCount>,
    total: u64,
}

fn parse_strace(text: &str) -> Option<(Vec<CallCount>, u64)> {
    let mut rows = Vec::new();
    let mut total = None;
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 5 || t[0].starts_with('%') || t[0].starts_with('-') {
            continue;
        }
        let Ok(calls) = t[3].parse::<u64>() else {
            continue;
        };
        let errors = if t.len() >= 6 {
            t[4].parse().unwrap_or(0)
        } else {
            0
        };
        let name = t[t.len() - 1].to_string();
        if name == "total" {
            total = Some(calls);
        } else {
            rows.push((name, calls, errors));
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    Some((rows, total?))
}

/// The syscalls `perf stat` counts: every entry, and the calls of an echo loop.
const PERF_SYSCALLS: [&str; 10] = [
    "pselect6",
    "poll",
    "ppoll",
    "epoll_wait",
    "read",
    "recvfrom",
    "write",
    "sendto",
    "accept4",
    "futex",
];

fn perf_args(out: &Path) -> Vec<String> {
    let mut a: Vec<String> = ["perf", "stat", "-x,", "-o"].map(String::from).to_vec();
    a.push(out.display().to_string());
    a.push("-e".into());
    a.push("raw_syscalls:sys_enter".into());
    for name in PERF_SYSCALLS {
        a.push("-e".into());
        a.push(format!("syscalls:sys_enter_{name}"));
    }
    // EAGAIN (-11) returns of the reads.
    for name in ["read", "recvfrom"] {
        a.push("-e".into());
        a.push(format!("syscalls:sys_exit_{name}"));
        a.push("--filter".into());
        a.push(format!("ret == -{}", libc::EAGAIN));
    }
    a.push("--".into());
    a
}

fn parse_perf(text: &str) -> Option<(Vec<CallCount>, u64)> {
    let mut total = None;
    let mut calls: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 3 {
            continue;
        }
        let n: u64 = f[0].parse().unwrap_or(0);
        if f[2] == "raw_syscalls:sys_enter" {
            total = Some(n);
        } else if let Some(name) = f[2].strip_prefix("syscalls:sys_enter_") {
            calls.entry(name.to_string()).or_default().0 = n;
        } else if let Some(name) = f[2].strip_prefix("syscalls:sys_exit_") {
            calls.entry(name.to_string()).or_default().1 = n;
        }
    }
    let mut rows: Vec<(String, u64, u64)> = calls
        .into_iter()
        .filter(|(_, (c, _))| *c > 0)
        .map(|(name, (c, e))| (name, c, e))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    Some((rows, total?))
}

/// Runs a server under `tracer` for the whole of a bounded run: start, `count`
/// connections with their warm-up line, `secs` of closed-loop load, close, kill.
/// The lines are all the echoes of the run (warm-up included), so startup and
/// connection setup are in the counts too: a few hundred syscalls against hundreds
/// of thousands of lines.
fn count_syscalls(
    tracer: Tracer,
    kind: Kind,
    count: usize,
    o: &Opts,
    c_bin: &Path,
) -> io::Result<Syscalls> {
    let out = std::env::temp_dir().join(format!(
        "echo_bench_{}_{}_{}",
        kind.name(),
        count,
        std::process::id()
    ));
    let wrap = match tracer {
        Tracer::Strace => {
            let mut a: Vec<String> = ["strace", "-c", "-f", "-o"].map(String::from).to_vec();
            a.push(out.display().to_string());
            a
        }
        Tracer::Perf => perf_args(&out),
    };
    let server = Server::start_wrapped(kind, c_bin, &wrap)?;
    let mut conns = connect(server.addr, count, o.line, 0)?;
    let run = measure(
        &mut conns,
        o.threads,
        Duration::from_millis(100),
        Duration::from_secs_f64(o.secs.clamp(0.5, 2.0)),
        None,
    );
    let lines_in_loop = run.as_ref().map_or(0, |r| r.completed);
    close_all(conns);
    // Let the server see the resets, then stop it: the tracer writes its summary.
    thread::sleep(Duration::from_millis(100));
    server.stop()?;
    run?;
    let text = std::fs::read_to_string(&out)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: no output: {e}", tracer.name())))?;
    let _ = std::fs::remove_file(&out);
    let parsed = match tracer {
        Tracer::Strace => parse_strace(&text),
        Tracer::Perf => parse_perf(&text),
    };
    let (calls, total) = parsed
        .ok_or_else(|| other_err(format!("cannot read {} output:\n{text}", tracer.name())))?;
    Ok(Syscalls {
        lines: lines_in_loop + count as u64,
        calls,
        total,
    })
}

/// RSS of a server: idle, then holding `idle` connections (each echoed one line).
#[derive(Clone, Copy, Debug)]
struct Memory {
    idle_kib: u64,
    loaded_kib: u64,
    conns: usize,
}

fn measure_memory(kind: Kind, o: &Opts, c_bin: &Path) -> io::Result<Memory> {
    let server = Server::start(kind, c_bin)?;
    thread::sleep(Duration::from_millis(100));
    let idle_kib = proc_rss_kib(server.pid()).ok_or_else(|| other_err("no /proc RSS"))?;
    let conns = connect(server.addr, o.idle, o.line, 0)?;
    thread::sleep(Duration::from_millis(200));
    let loaded_kib = proc_rss_kib(server.pid()).ok_or_else(|| other_err("no /proc RSS"))?;
    close_all(conns);
    Ok(Memory {
        idle_kib,
        loaded_kib,
        conns: o.idle,
    })
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

struct Machine {
    date: String,
    nproc: usize,
    cpu: String,
    kernel: String,
    rustc: String,
    cc: String,
    load_start: String,
    load_end: String,
    nofile: u64,
}

fn machine(nofile: u64) -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    Machine {
        date: sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        nproc: thread::available_parallelism().map_or(0, |n| n.get()),
        cpu,
        kernel: sh("uname", &["-sr"]),
        rustc: sh("rustc", &["--version"]),
        cc: sh(
            &std::env::var("CC").unwrap_or_else(|_| "cc".into()),
            &["--version"],
        )
        .lines()
        .next()
        .unwrap_or("unknown")
        .to_string(),
        load_start: loadavg(),
        load_end: String::new(),
        nofile,
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// "median (min–max)" when there is more than one value.
fn spread(v: &[f64], fmt: impl Fn(f64) -> String) -> String {
    let m = fmt(median(v));
    if v.len() < 2 {
        return m;
    }
    let (lo, hi) = min_max(v);
    format!("{m} ({}–{})", fmt(lo), fmt(hi))
}

fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn us(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

type Results = BTreeMap<(usize, Kind), Vec<Run>>;

struct Report {
    opts_line: String,
    machine: Machine,
    results: Results,
    counts: Vec<usize>,
    kinds: Vec<Kind>,
    syscalls: Vec<(Tracer, Kind, usize, io::Result<Syscalls>)>,
    memory: Vec<(Kind, io::Result<Memory>)>,
    elapsed: Duration,
    notes: Vec<String>,
}

fn orchestrate(o: &Opts) -> io::Result<()> {
    let began = Instant::now();
    let nofile = raise_nofile()?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut m = machine(nofile);
    eprintln!(
        "echo_bench: {} cores, {}, {}, load average {}",
        m.nproc, m.cpu, m.kernel, m.load_start
    );
    let c_bin = if o.kinds.contains(&Kind::C) {
        build_c_server(&root)?
    } else {
        PathBuf::new()
    };
    let mut notes = Vec::new();
    let fd_setsize = unp_select::FD_SETSIZE;
    let mut results: Results = BTreeMap::new();
    for &count in &o.counts {
        if count as u64 + 64 > nofile {
            notes.push(format!(
                "{count} connections skipped: RLIMIT_NOFILE is {nofile}"
            ));
            continue;
        }
        for round in 1..=o.rounds {
            for &kind in &o.kinds {
                if count >= fd_setsize - 16 && !kind.beyond_fd_setsize() {
                    continue;
                }
                let run = one_run(kind, count, o, &c_bin).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("{} at {count} connections: {e}", kind.name()),
                    )
                })?;
                eprintln!(
                    "  {count:>5} conns, round {round}/{}: {:<8} {:>9} lines/s  p50 {:>6} µs  p99 {:>6} µs  server CPU {:>4.0}%  generator CPU {:>4.0}%",
                    o.rounds,
                    kind.name(),
                    thousands(run.lines_per_sec),
                    us(run.p50_us),
                    us(run.p99_us),
                    run.server_cpu.unwrap_or(f64::NAN) * 100.0,
                    run.gen_cpu * 100.0
                );
                results.entry((count, kind)).or_default().push(run);
            }
        }
    }

    let mut syscalls = Vec::new();
    if o.strace {
        for tracer in [Tracer::Perf, Tracer::Strace] {
            let tool = if tracer == Tracer::Perf {
                "perf"
            } else {
                "strace"
            };
            let found = Command::new(tool)
                .arg(if tracer == Tracer::Perf {
                    "--version"
                } else {
                    "-V"
                })
                .output()
                .is_ok_and(|out| out.status.success());
            if !found {
                notes.push(format!("{tool} not found: its syscall count was not run"));
                continue;
            }
            let mut plan = vec![(Kind::Select, 1), (Kind::C, 1)];
            if tracer == Tracer::Perf {
                plan.extend(o.kinds.iter().map(|&k| (k, 50)));
            } else {
                plan.extend([(Kind::Select, 50), (Kind::C, 50)]);
            }
            for (kind, count) in plan {
                if !o.kinds.contains(&kind) {
                    continue;
                }
                let r = count_syscalls(tracer, kind, count, o, &c_bin);
                match &r {
                    Ok(s) => eprintln!(
                        "  {tool:<6} {:<8} {count:>3} conns: {:.2} syscalls per line ({} calls, {} lines)",
                        kind.name(),
                        s.total as f64 / s.lines.max(1) as f64,
                        s.total,
                        s.lines
                    ),
                    Err(e) => eprintln!("  {tool} {}: {e}", kind.name()),
                }
                syscalls.push((tracer, kind, count, r));
            }
        }
    }

    let mut memory = Vec::new();
    if o.rss {
        for &kind in &o.kinds {
            let r = measure_memory(kind, o, &c_bin);
            match &r {
                Ok(mem) => eprintln!(
                    "  RSS {:<8} idle {} KiB, with {} connections {} KiB",
                    kind.name(),
                    mem.idle_kib,
                    mem.conns,
                    mem.loaded_kib
                ),
                Err(e) => eprintln!("  RSS {}: {e}", kind.name()),
            }
            memory.push((kind, r));
        }
    }
    m.load_end = loadavg();
    let report = Report {
        opts_line: std::iter::once("cargo run --release --example echo_bench --".to_string())
            .chain(o.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        machine: m,
        results,
        counts: o.counts.clone(),
        kinds: o.kinds.clone(),
        syscalls,
        memory,
        elapsed: began.elapsed(),
        notes,
    };
    let text = report.markdown();
    println!("{text}");
    if o.write_docs {
        let docs = root.join("docs");
        std::fs::create_dir_all(&docs)?;
        std::fs::write(docs.join("benchmarks.svg"), report.svg())?;
        let path = docs.join("benchmarks.md");
        let old = std::fs::read_to_string(&path).unwrap_or_else(|_| DOC_SKELETON.to_string());
        let mut new = replace_block(&old, "LOAD", &text);
        if let Some(micro) = micro_table(&root.join("target/criterion")) {
            let text = format!(
                "Summarised on {} from `target/criterion`.\n\n{micro}",
                report.machine.date
            );
            new = replace_block(&new, "MICRO", &text);
        }
        std::fs::write(&path, new)?;
        eprintln!("echo_bench: wrote {} and benchmarks.svg", path.display());
    }
    // The run fails (for CI) only on errors above; goals are reported, not asserted.
    Ok(())
}

/// `--micro-docs`: rewrites the MICRO block of docs/benchmarks.md from criterion's files.
fn micro_docs() -> io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let table = micro_table(&root.join("target/criterion"))
        .ok_or_else(|| other_err("no results in target/criterion: run `cargo bench` first"))?;
    let path = root.join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| DOC_SKELETON.to_string());
    let date = sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let text = format!("Summarised on {date} by `cargo run --release --example echo_bench -- --micro-docs`.\n\n{table}");
    std::fs::write(&path, replace_block(&old, "MICRO", &text))?;
    println!("{text}");
    Ok(())
}

const DOC_SKELETON: &str = "# Benchmarks\n\n<!-- BEGIN LOAD -->\n<!-- END LOAD -->\n\n<!-- BEGIN MICRO -->\n<!-- END MICRO -->\n";

/// Replaces what lies between `<!-- BEGIN NAME -->` and `<!-- END NAME -->`, or
/// appends the block if it is missing.
fn replace_block(doc: &str, name: &str, content: &str) -> String {
    let begin = format!("<!-- BEGIN {name} -->");
    let end = format!("<!-- END {name} -->");
    match (doc.find(&begin), doc.find(&end)) {
        (Some(b), Some(e)) if b < e => format!(
            "{}{begin}\n{}\n{}",
            &doc[..b],
            content.trim_end(),
            &doc[e..]
        ),
        _ => format!(
            "{}\n{begin}\n{}\n{end}\n",
            doc.trim_end(),
            content.trim_end()
        ),
    }
}

impl Report {
    fn med(&self, count: usize, kind: Kind, f: impl Fn(&Run) -> f64) -> Option<f64> {
        let v: Vec<f64> = self.results.get(&(count, kind))?.iter().map(f).collect();
        Some(median(&v))
    }

    fn markdown(&self) -> String {
        let m = &self.machine;
        let mut s = String::new();
        let _ = writeln!(s, "Generated by `{}` on {}.\n", self.opts_line, m.date);
        let _ = writeln!(s, "| machine | |\n|---|---|");
        let _ = writeln!(s, "| CPU | {} × {} |", m.nproc, m.cpu);
        let _ = writeln!(s, "| kernel | {} |", m.kernel);
        let _ = writeln!(s, "| compilers | {}; {} |", m.rustc, m.cc);
        let _ = writeln!(
            s,
            "| load average (1, 5, 15 min) | {} at start, {} at end |",
            m.load_start, m.load_end
        );
        let _ = writeln!(s, "| RLIMIT_NOFILE | {} |", m.nofile);
        let rounds = self.results.values().map(Vec::len).max().unwrap_or(0);
        let _ = writeln!(
            s,
            "| whole run | {:.0} s, {} round(s) per connection count |\n",
            self.elapsed.as_secs_f64(),
            rounds
        );
        for n in &self.notes {
            let _ = writeln!(s, "Note: {n}\n");
        }

        let _ = writeln!(s, "### Throughput and latency\n");
        let _ = writeln!(
            s,
            "Median of the rounds, (min–max) where there are several. `× C`: ratio to the C \
             server's median (throughput: higher is better; p99: lower is better). CPU is \
             in cores over the measured window (1.00 = one core busy).\n"
        );
        for &count in &self.counts {
            if !self
                .kinds
                .iter()
                .any(|&k| self.results.contains_key(&(count, k)))
            {
                continue;
            }
            let _ = writeln!(
                s,
                "**{count} connection{}**\n",
                if count == 1 { "" } else { "s" }
            );
            let _ = writeln!(
                s,
                "| server | lines/s | × C | p50 µs | p99 µs | p99 × C | server CPU | generator CPU |"
            );
            let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|");
            let c_rate = self.med(count, Kind::C, |r| r.lines_per_sec);
            let c_p99 = self.med(count, Kind::C, |r| r.p99_us);
            for &kind in &self.kinds {
                let Some(runs) = self.results.get(&(count, kind)) else {
                    continue;
                };
                let col = |f: &dyn Fn(&Run) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
                let rate = col(&|r| r.lines_per_sec);
                let p99 = col(&|r| r.p99_us);
                let ratio = |a: f64, b: Option<f64>| {
                    b.filter(|b| *b > 0.0)
                        .map_or("–".to_string(), |b| format!("{:.2}", a / b))
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {:.2} |",
                    kind.label(),
                    spread(&rate, thousands),
                    ratio(median(&rate), c_rate),
                    us(median(&col(&|r| r.p50_us))),
                    spread(&p99, us),
                    ratio(median(&p99), c_p99),
                    runs.iter()
                        .map(|r| r.server_cpu)
                        .collect::<Option<Vec<f64>>>()
                        .map_or("–".to_string(), |v| format!("{:.2}", median(&v))),
                    median(&col(&|r| r.gen_cpu)),
                );
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s, "![lines/s against connections](benchmarks.svg)\n");

        let _ = writeln!(
            s,
            "### Goals: the select `EchoServer` against the C server\n"
        );
        let _ = writeln!(
            s,
            "A goal is reported missed only when the two servers' ranges over the rounds \
             (min–max) do not overlap; when they overlap, the difference is within this \
             machine's noise.\n"
        );
        let _ = writeln!(
            s,
            "| connections | throughput × C (goal ≥ 1.00) | p99 × C (goal ≤ 1.10) |"
        );
        let _ = writeln!(s, "|--:|--:|--:|");
        for &count in &self.counts {
            let (Some(sel), Some(c)) = (
                self.results.get(&(count, Kind::Select)),
                self.results.get(&(count, Kind::C)),
            ) else {
                continue;
            };
            let verdict = |f: &dyn Fn(&Run) -> f64, ok: &dyn Fn(f64) -> bool| {
                let a: Vec<f64> = sel.iter().map(f).collect();
                let b: Vec<f64> = c.iter().map(f).collect();
                let ratio = median(&a) / median(&b);
                let ((alo, ahi), (blo, bhi)) = (min_max(&a), min_max(&b));
                let overlap = alo <= bhi && blo <= ahi;
                let word = match (ok(ratio), overlap) {
                    (true, false) => "met",
                    (true, true) => "met (ranges overlap)",
                    (false, true) => "not met (ranges overlap)",
                    (false, false) => "**missed**",
                };
                format!("{ratio:.2} {word}")
            };
            let _ = writeln!(
                s,
                "| {count} | {} | {} |",
                verdict(&|r| r.lines_per_sec, &|x| x >= 1.0),
                verdict(&|r| r.p99_us, &|x| x <= 1.1)
            );
        }
        let _ = writeln!(s);

        if !self.syscalls.is_empty() {
            let _ = writeln!(s, "### Syscalls per echoed line\n");
            let _ = writeln!(
                s,
                "Each server ran under the tool for a whole bounded run (1 or 50 connections with \
                 a warm-up line each, then the closed loop); lines are every echo the load \
                 generator received. `perf stat` counts syscall tracepoints (every syscall, \
                 and the loop's own calls by name; \"EAGAIN\" counts reads that found nothing) \
                 and barely slows the server. `strace -c -f` names every syscall but makes \
                 each one slow, so more lines queue up per wake-up than without it: its \
                 select/poll counts per line are lower than in a normal run.\n"
            );
            let _ = writeln!(
                s,
                "| tool | server | connections | syscalls per line | lines | per line: calls (errors) |"
            );
            let _ = writeln!(s, "|---|---|--:|--:|--:|---|");
            for (tracer, kind, count, r) in &self.syscalls {
                match r {
                    Ok(t) => {
                        let per = |c: u64| c as f64 / t.lines.max(1) as f64;
                        let parts: Vec<String> = t
                            .calls
                            .iter()
                            .filter(|(_, c, _)| per(*c) >= 0.005)
                            .map(|(name, c, e)| {
                                let err = if *tracer == Tracer::Perf {
                                    "EAGAIN "
                                } else {
                                    ""
                                };
                                if *e > 0 {
                                    format!("{name} {:.2} ({err}{:.2})", per(*c), per(*e))
                                } else {
                                    format!("{name} {:.2}", per(*c))
                                }
                            })
                            .collect();
                        let _ = writeln!(
                            s,
                            "| {} | {} | {count} | {:.2} | {} | {} |",
                            tracer.name(),
                            kind.label(),
                            per(t.total),
                            thousands(t.lines as f64),
                            parts.join(", ")
                        );
                    }
                    Err(e) => {
                        let _ = writeln!(
                            s,
                            "| {} | {} | {count} | not measured: {e} | | |",
                            tracer.name(),
                            kind.label()
                        );
                    }
                }
            }
            let _ = writeln!(s);
        }

        if !self.memory.is_empty() {
            let idle = self
                .memory
                .iter()
                .find_map(|(_, r)| r.as_ref().ok().map(|m| m.conns))
                .unwrap_or(0);
            let _ = writeln!(s, "### Memory with {idle} idle connections\n");
            let _ = writeln!(
                s,
                "VmRSS of the server process, before any connection and after {idle} \
                 connections each echoed one line and went idle.\n"
            );
            let _ = writeln!(
                s,
                "| server | idle RSS KiB | RSS KiB with {idle} | per connection (bytes) | × C |"
            );
            let _ = writeln!(s, "|---|--:|--:|--:|--:|");
            let c = self
                .memory
                .iter()
                .find(|(k, _)| *k == Kind::C)
                .and_then(|(_, r)| r.as_ref().ok().copied());
            for (kind, r) in &self.memory {
                match r {
                    Ok(mem) => {
                        let per = |m: &Memory| {
                            (m.loaded_kib as f64 - m.idle_kib as f64) * 1024.0 / m.conns as f64
                        };
                        let ratio = c.map_or("–".into(), |c| {
                            format!("{:.2}", mem.loaded_kib as f64 / c.loaded_kib as f64)
                        });
                        let _ = writeln!(
                            s,
                            "| {} | {} | {} | {} | {ratio} |",
                            kind.label(),
                            thousands(mem.idle_kib as f64),
                            thousands(mem.loaded_kib as f64),
                            thousands(per(mem)),
                        );
                    }
                    Err(e) => {
                        let _ = writeln!(s, "| {} | not measured: {e} | | | |", kind.label());
                    }
                }
            }
            let _ = writeln!(s);
        }
        s
    }

    /// Lines/s (median) against connections, one line per server, log x axis.
    fn svg(&self) -> String {
        let (w, h) = (820.0, 440.0);
        let (left, right, top, bottom) = (80.0, 290.0, 40.0, 60.0);
        let counts: Vec<usize> = self
            .counts
            .iter()
            .copied()
            .filter(|&c| {
                self.kinds
                    .iter()
                    .any(|&k| self.results.contains_key(&(c, k)))
            })
            .collect();
        let ymax = self
            .results
            .keys()
            .filter_map(|&(c, k)| self.med(c, k, |r| r.lines_per_sec))
            .fold(1.0f64, f64::max);
        // A round top for the axis.
        let step = 10f64.powf((ymax / 5.0).log10().floor());
        let tick = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * step)
            .find(|t| ymax / t <= 6.0)
            .unwrap_or(step * 10.0);
        let ytop = (ymax / tick).ceil() * tick;
        let lx = |c: usize| (c.max(1) as f64).ln();
        let (xlo, xhi) = (
            counts.first().map_or(0.0, |&c| lx(c)),
            counts.last().map_or(1.0, |&c| lx(c)),
        );
        let px = |c: usize| {
            let span = (xhi - xlo).max(1e-9);
            left + (lx(c) - xlo) / span * (w - left - right)
        };
        let py = |v: f64| top + (1.0 - v / ytop) * (h - top - bottom);
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="14">Echo servers: lines/s against connections ({}, {})</text>"#,
            (w - right + left) / 2.0,
            self.machine.date,
            format_args!("{} cores", self.machine.nproc)
        );
        let mut v = 0.0;
        while v <= ytop + tick / 2.0 {
            let y = py(v);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                w - right,
                left - 6.0,
                y + 4.0,
                thousands(v)
            );
            v += tick;
        }
        for &c in &counts {
            let x = px(c);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{c}</text>"##,
                h - bottom,
                h - bottom + 18.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">connections (log scale)</text>"#,
            (w - right + left) / 2.0,
            h - 18.0
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">echoed lines per second (median)</text>"#,
            (h - bottom + top) / 2.0
        );
        for (i, &kind) in self.kinds.iter().enumerate() {
            let pts: Vec<(f64, f64)> = counts
                .iter()
                .filter_map(|&c| {
                    self.med(c, kind, |r| r.lines_per_sec)
                        .map(|v| (px(c), py(v)))
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let dash = if kind == Kind::C {
                r#" stroke-dasharray="6 3""#
            } else {
                ""
            };
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                path.join(" "),
                kind.color()
            );
            for (x, y) in &pts {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{}"/>"#,
                    kind.color()
                );
            }
            let ly = top + 10.0 + i as f64 * 22.0;
            let lx0 = w - right + 16.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx0}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
                lx0 + 22.0,
                kind.color(),
                lx0 + 28.0,
                ly + 4.0,
                kind.label().replace('&', "&amp;").replace('<', "&lt;")
            );
        }
        let _ = writeln!(s, "</svg>");
        s
    }
}

// ---------------------------------------------------------------------------------
// Micro-benchmark summary (from criterion's files)
// ---------------------------------------------------------------------------------

/// The string value of `"key":"..."` in a small JSON text.
fn json_str(text: &str, key: &str) -> Option<String> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = text[at..].trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// The number of `"key":N` in a small JSON text, searching from `from`.
fn json_num(text: &str, from: usize, key: &str) -> Option<f64> {
    let at = text[from..].find(&format!("\"{key}\":"))? + from + key.len() + 3;
    let rest = text[at..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// One criterion result: (group, parameter, function) → median and its 95% interval, ns.
fn criterion_results(dir: &Path) -> Vec<(String, String, String, f64, f64, f64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "new") {
                    let (Ok(b), Ok(est)) = (
                        std::fs::read_to_string(p.join("benchmark.json")),
                        std::fs::read_to_string(p.join("estimates.json")),
                    ) else {
                        continue;
                    };
                    let Some(at) = est.find("\"median\":") else {
                        continue;
                    };
                    let (Some(g), Some(f), Some(med), Some(lo), Some(hi)) = (
                        json_str(&b, "group_id"),
                        json_str(&b, "function_id"),
                        json_num(&est, at, "point_estimate"),
                        json_num(&est, at, "lower_bound"),
                        json_num(&est, at, "upper_bound"),
                    ) else {
                        continue;
                    };
                    let v = json_str(&b, "value_str").unwrap_or_default();
                    out.push((g, v, f, med, lo, hi));
                } else if p.file_name().is_some_and(|n| n != "base" && n != "report") {
                    stack.push(p);
                }
            }
        }
    }
    out
}

/// (function, median, lower bound, upper bound), ns.
type Estimate = (String, f64, f64, f64);

fn ns(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} ms", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.2} µs", x / 1e3)
    } else {
        format!("{x:.1} ns")
    }
}

/// A table of criterion's medians, each beside its baseline (the libc macros,
/// `BufReader::read_until`, `Write::write_all`).
fn micro_table(dir: &Path) -> Option<String> {
    let results = criterion_results(dir);
    if results.is_empty() {
        return None;
    }
    let is_base =
        |f: &str| f.starts_with("libc") || f.starts_with("BufReader") || f.starts_with("Write::");
    let mut groups: BTreeMap<(String, u64, String), Vec<Estimate>> = BTreeMap::new();
    for (g, v, f, med, lo, hi) in results {
        let order = v.parse::<u64>().unwrap_or(u64::MAX);
        groups
            .entry((g, order, v))
            .or_default()
            .push((f, med, lo, hi));
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Criterion medians with their 95% confidence interval, from `target/criterion` \
         (`cargo bench`). Ratio: time of the crate's function over the baseline's \
         (≤ 1.00 is at least as fast).\n"
    );
    let _ = writeln!(
        s,
        "| benchmark | n / size | baseline | baseline time | crate function | time | ratio |"
    );
    let _ = writeln!(s, "|---|--:|---|--:|---|--:|--:|");
    for ((g, _, v), funcs) in &groups {
        let Some(base) = funcs.iter().find(|f| is_base(&f.0)) else {
            continue;
        };
        for f in funcs.iter().filter(|f| !is_base(&f.0)) {
            let _ = writeln!(
                s,
                "| {g} | {v} | {} | {} [{}–{}] | {} | {} [{}–{}] | {:.2} |",
                base.0,
                ns(base.1),
                ns(base.2),
                ns(base.3),
                f.0,
                ns(f.1),
                ns(f.2),
                ns(f.3),
                f.1 / base.1
            );
        }
    }
    Some(s)
}
