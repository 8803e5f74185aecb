//! An [`EchoServer`] in a thread of the test process, run with one of its three
//! loops, and the CPU and memory meters the reliability suite reports.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use unp_select::echo::{Echo, EchoServer, ShutdownHandle};
use unp_select::server::{Config, Stats};

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
    /// Binds 127.0.0.1:0 with `EchoServer::bind`, whose backlog is
    /// `Config::backlog` (`LISTENQ`, 1024) where std's is 128: hundreds of clients
    /// connecting one after the other then do not overflow the accept queue while
    /// the server is busy (a SYN dropped there costs its client a second).
    pub fn start(echo: Echo, config: Config, variant: Variant) -> Server {
        let server = EchoServer::bind("127.0.0.1:0", echo, config).expect("bind 127.0.0.1:0");
        Server::run(server, variant)
    }

    pub fn on(listener: TcpListener, echo: Echo, config: Config, variant: Variant) -> Server {
        Server::run(
            EchoServer::new(listener, echo, config).expect("EchoServer::new"),
            variant,
        )
    }

    fn run(server: EchoServer, variant: Variant) -> Server {
        let addr = server.local_addr().expect("local_addr");
        let stop = server.shutdown_handle();
        let thread = thread::spawn(move || {
            let stats = variant.run(server);
            (stats, thread_cpu())
        });
        Server { addr, stop, thread }
    }

    /// Stops the server; panics if `run` failed or panicked.
    pub fn finish(self) -> (Stats, Duration) {
        self.stop.shutdown();
        let (stats, cpu) = self.thread.join().expect("server thread panicked");
        (stats.expect("server run() failed"), cpu)
    }
}

/// A [`unp_select::server::Server`] with the test's protocol, in its own thread.
pub struct Running {
    pub addr: SocketAddr,
    pub stop: ShutdownHandle,
    pub stats: unp_select::server::StatsHandle,
    pub thread: JoinHandle<io::Result<unp_select::server::Stats>>,
}

impl Running {
    /// Binds 127.0.0.1:0 and runs `protocol` with `run_workers(backend)`.
    pub fn start<P>(
        protocol: P,
        config: unp_select::server::Config,
        backend: unp_select::sources::Backend,
    ) -> Running
    where
        P: unp_select::server::Protocol + Clone + Send + 'static,
    {
        let server =
            unp_select::server::Server::bind("127.0.0.1:0", protocol, config).expect("bind");
        let addr = server.local_addr().expect("local_addr");
        let (stop, stats) = (server.shutdown_handle(), server.stats_handle());
        let thread = thread::spawn(move || server.run_workers(backend));
        Running {
            addr,
            stop,
            stats,
            thread,
        }
    }

    /// Waits until the live counters satisfy `done` (at most 5 s).
    pub fn wait_for(
        &self,
        what: &str,
        done: impl Fn(&unp_select::server::Stats) -> bool,
    ) -> unp_select::server::Stats {
        let start = std::time::Instant::now();
        loop {
            let s = self.stats.snapshot();
            if done(&s) {
                return s;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "{what}: {s:?}");
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Stops the server: every worker must be done within 100 ms, and the workers'
    /// counters must add up to the total it returns.
    pub fn finish(self) -> unp_select::server::Stats {
        let t = std::time::Instant::now();
        self.stop.shutdown();
        while !self.thread.is_finished() {
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "workers still running"
            );
            thread::sleep(Duration::from_millis(1));
        }
        let took = t.elapsed();
        assert!(took < Duration::from_millis(100), "stopped after {took:?}");
        let total = self
            .thread
            .join()
            .expect("server panicked")
            .expect("run failed");
        let per: unp_select::server::Stats = self.stats.per_worker().into_iter().sum();
        assert_eq!(per, total, "the workers' counters add up to the total");
        total
    }
}
