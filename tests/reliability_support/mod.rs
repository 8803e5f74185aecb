//! Helpers for the reliability suite (`tests/reliability.rs`, `tests/reliability_fds.rs`):
//! load levels, descriptor counting, a server thread that reports its CPU time,
//! well-behaved streaming clients that check every byte, and the measurement lines
//! that `docs/reliability.md` is built from.
#![allow(dead_code)]

use std::fmt::Display;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use unp_select::echo::{Config, EchoServer, ShutdownHandle, Stats};

// ---- load levels ------------------------------------------------------------------

/// How hard the suite pushes: `UNP_LOAD=light` (for valgrind), the default (CI), or
/// `UNP_SOAK=1` / `UNP_LOAD=soak` (the full numbers and longer runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Light,
    Default,
    Soak,
}

pub fn level() -> Level {
    if std::env::var("UNP_SOAK").is_ok_and(|v| v == "1") {
        return Level::Soak;
    }
    match std::env::var("UNP_LOAD").as_deref() {
        Ok("light") => Level::Light,
        Ok("soak") => Level::Soak,
        _ => Level::Default,
    }
}

/// Picks the number for the current level.
pub fn pick<T>(light: T, default: T, soak: T) -> T {
    match level() {
        Level::Light => light,
        Level::Default => default,
        Level::Soak => soak,
    }
}

/// How long a well-behaved client may wait for one echo before it counts as not
/// served promptly. Valgrind (light level) slows everything down many times.
pub fn prompt_limit() -> Duration {
    pick(
        Duration::from_secs(5),
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
}

// ---- serializing the scenarios --------------------------------------------------------

static SERIAL: Mutex<()> = Mutex::new(());

/// Tests of one binary run in parallel threads; descriptor counts are per process, so
/// every scenario holds this lock. A panic in another scenario does not poison it for
/// the rest.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- randomness ---------------------------------------------------------------------

/// xorshift64*: small, fast, reproducible. The seed comes from `UNP_SEED` (printed by
/// every scenario) or the clock.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A line of printable bytes (no `\n` inside) of 1..=max bytes, `\n` included.
    pub fn line(&mut self, max: usize, tag: &str) -> Vec<u8> {
        let len = 1 + self.below(max as u64) as usize;
        let mut v: Vec<u8> = tag.bytes().take(len.saturating_sub(1)).collect();
        while v.len() + 1 < len {
            v.push(b' ' + self.below(95) as u8);
        }
        v.push(b'\n');
        v
    }
}

pub fn seed() -> u64 {
    std::env::var("UNP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

// ---- descriptors --------------------------------------------------------------------------

fn fd_dir() -> &'static str {
    if std::path::Path::new("/proc/self/fd").exists() {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    }
}

/// The descriptors this process has open (the directory handle used to list them is
/// not counted).
pub fn open_fds() -> usize {
    std::fs::read_dir(fd_dir())
        .map(|d| d.count().saturating_sub(1))
        .unwrap_or(0)
}

/// The descriptors a process has open, from `/proc/<pid>/fd` (Linux).
pub fn open_fds_of(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// The descriptor numbers process `pid` has open, from `/proc/<pid>/fd` (Linux).
pub fn fd_numbers_of(pid: u32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut v: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// Waits (bounded) until the process has `want` descriptors open: the server closes
/// a client only after it has seen its EOF or RST. Returns the last count.
pub fn settle_fds(want: usize, limit: Duration) -> usize {
    let start = Instant::now();
    loop {
        let n = open_fds();
        if n == want || start.elapsed() > limit {
            return n;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Samples the open descriptor count every few milliseconds and keeps the peak.
pub struct FdSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl FdSampler {
    pub fn start() -> FdSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicUsize::new(open_fds()));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                p.fetch_max(open_fds(), Ordering::SeqCst);
                thread::sleep(Duration::from_millis(5));
            }
        });
        FdSampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    pub fn peak(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::SeqCst)
    }
}

/// Raises the soft `RLIMIT_NOFILE` to at least `want` (up to the hard limit) and
/// returns the soft limit in force.
pub fn raise_nofile(want: libc::rlim_t) -> libc::rlim_t {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    if soft >= want {
        return soft;
    }
    let new = want.min(hard);
    match setrlimit(Resource::RLIMIT_NOFILE, new, hard) {
        Ok(()) => new,
        Err(_) => soft,
    }
}

/// The first descriptor number client sockets are moved to by [`move_high`].
pub const HIGH_FD: i32 = 4096;

/// Moves a client's socket to a descriptor number at or above [`HIGH_FD`], as if the
/// client lived in another process: then the server's own descriptors (accepted
/// connections) stay low, and the select server's `FD_SETSIZE` limit is reached only
/// where a scenario wants it. Falls back to the original descriptor when the limit is
/// too low for that.
pub fn move_high(stream: TcpStream) -> TcpStream {
    TcpStream::from(move_high_fd(OwnedFd::from(stream)))
}

/// Connects to `addr` with a socket created directly at a descriptor number at or
/// above [`HIGH_FD`] (see [`move_high`]): the client never takes a low descriptor,
/// not even for a moment, so the server's accepted descriptors are predictable.
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6};
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let sock = socket::socket(family, SockType::Stream, SockFlag::empty(), None)?;
    let sock = move_high_fd(sock);
    match addr {
        SocketAddr::V4(a) => socket::connect(sock.as_raw_fd(), &SockaddrIn::from(a))?,
        SocketAddr::V6(a) => socket::connect(sock.as_raw_fd(), &SockaddrIn6::from(a))?,
    }
    let s = TcpStream::from(sock);
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

fn move_high_fd(fd: OwnedFd) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC takes an int and returns a new descriptor or -1; `fd`
    // stays open during the call.
    let high = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, HIGH_FD) };
    if high < 0 {
        return fd;
    }
    // SAFETY: fcntl returned a fresh descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(high) }
}

/// The numbers of the descriptors this process has open.
pub fn fd_numbers() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir(fd_dir()) else {
        return Vec::new();
    };
    let mut v: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    // The last one opened is the directory handle itself; drop whichever entry no
    // longer exists.
    v.retain(|&fd| {
        // SAFETY: F_GETFD only queries the descriptor flags.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        flags != -1
    });
    v
}

// ---- CPU time -----------------------------------------------------------------------

fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec the call writes to.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time used so far by the calling thread.
pub fn thread_cpu() -> Duration {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time (user + system) of process `pid` from `/proc/<pid>/stat` (Linux), in
/// clock ticks converted to a `Duration`.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields after it start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of the man page, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Some(Duration::from_micros((utime + stime) * 1_000_000 / hz))
}

/// `VmHWM` (peak resident set) of this process in KiB (Linux), for the report.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `VmRSS` of this process in KiB (Linux).
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---- the server ---------------------------------------------------------------------

/// Which loop runs: `EchoServer::run` (select over the fixed `FdSet`),
/// `EchoServer::run_poll`, or `EchoServer::run_large` (select over `LargeFdSet`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Select,
    Poll,
    Large,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Select => "select",
            Variant::Poll => "poll",
            Variant::Large => "select_large",
        }
    }

    pub const ALL: [Variant; 3] = [Variant::Select, Variant::Poll, Variant::Large];

    /// Runs `server` with this variant's loop.
    pub fn run(self, server: EchoServer) -> io::Result<Stats> {
        match self {
            Variant::Select => server.run(),
            Variant::Poll => server.run_poll(),
            Variant::Large => server.run_large(),
        }
    }
}

/// A server running in its own thread; `finish` stops it and returns its [`Stats`]
/// and the CPU time its thread used.
pub struct Server {
    pub addr: SocketAddr,
    pub stop: ShutdownHandle,
    pub thread: JoinHandle<(io::Result<Stats>, Duration)>,
}

impl Server {
    pub fn start(config: Config, variant: Variant) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        Server::on(listener, config, variant)
    }

    pub fn on(listener: TcpListener, config: Config, variant: Variant) -> Server {
        let server = EchoServer::new(listener, config).expect("EchoServer::new");
        let addr = server.local_addr().expect("local_addr");
        let stop = server.shutdown_handle();
        let thread = thread::spawn(move || {
            let stats = variant.run(server);
            (stats, thread_cpu())
        });
        Server { addr, stop, thread }
    }

    pub fn pthread(&self) -> libc::pthread_t {
        self.thread.as_pthread_t()
    }

    /// Stops the server; panics if `run` failed or panicked.
    pub fn finish(self) -> (Stats, Duration) {
        self.stop.shutdown();
        let (stats, cpu) = self.thread.join().expect("server thread panicked");
        (stats.expect("server run() failed"), cpu)
    }
}

// ---- well-behaved clients ---------------------------------------------------------

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
    let mut stream = match connect(addr) {
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
    let mut s = connect(addr)?;
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

// ---- reporting ---------------------------------------------------------------------

/// Prints one measurement line (`RELIABILITY scenario=... key=value ...`); run the
/// tests with `--nocapture` to see them. `docs/reliability.md` is built from these.
pub fn report(scenario: &str, variant: &str, fields: &[(&str, &dyn Display)]) {
    let mut line = format!(
        "RELIABILITY scenario={scenario} variant={variant} level={:?}",
        level()
    );
    for (k, v) in fields {
        line.push_str(&format!(" {k}={v}"));
    }
    println!("{line}");
}

/// Milliseconds, for reports.
pub fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}
