//! The servers of the churn and workers benchmarks ([`crate::churn`]), started
//! with more options than [`crate::servers::Server`] takes: ours with
//! `accept_batch`, `workers` and `SO_REUSEPORT`, whose per-worker counters the
//! harness reads through `SIGUSR1` (`serve ... --stats`); the C server in UNP's
//! shape and with a loop of accepts (`-DACCEPT_LOOP`); mio and tokio. And what
//! `/proc` says about them: context switches and run-queue waits of every thread,
//! the listen-queue overflows of the network namespace.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use unp_select::echo::EchoServer;
use unp_select::server::{Config, ShutdownHandle, StatsHandle};

use crate::{invalid, other_err};

/// The extra options of `echo-bench serve` for our servers.
#[derive(Default)]
pub struct ServeOpts {
    workers: Option<usize>,
    reuseport: bool,
    accept_batch: Option<usize>,
    /// Print every worker's counters on `SIGUSR1`, shut down on `SIGTERM`.
    stats: bool,
    watched: Option<(StatsHandle, thread::JoinHandle<()>)>,
}

impl ServeOpts {
    pub fn parse(args: &[String]) -> io::Result<ServeOpts> {
        let mut o = ServeOpts::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut num = || -> io::Result<usize> {
                it.next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n: &usize| n > 0)
                    .ok_or_else(|| invalid(format!("{a} needs a number > 0")))
            };
            match a.as_str() {
                "--workers" => o.workers = Some(num()?),
                "--accept-batch" => o.accept_batch = Some(num()?),
                "--reuseport" => o.reuseport = true,
                "--stats" => o.stats = true,
                s => return Err(invalid(format!("serve: unknown option {s}"))),
            }
        }
        Ok(o)
    }

    pub fn apply(&self, mut config: Config) -> Config {
        if let Some(n) = self.workers {
            config = config.with_workers(n);
        }
        if let Some(n) = self.accept_batch {
            config = config.with_accept_batch(n);
        }
        config.with_reuseport(self.reuseport)
    }

    /// With `--stats`: blocks `SIGUSR1` and `SIGTERM` in this thread (the workers
    /// it starts inherit the mask) and answers them on a thread of their own.
    pub fn watch(&mut self, server: &EchoServer) -> io::Result<()> {
        if !self.stats {
            return Ok(());
        }
        let mut set = SigSet::empty();
        set.add(Signal::SIGUSR1);
        set.add(Signal::SIGTERM);
        set.thread_block()?;
        let (stats, stop): (StatsHandle, ShutdownHandle) =
            (server.stats_handle(), server.shutdown_handle());
        let seen = stats.clone();
        let t = thread::spawn(move || loop {
            match set.wait() {
                Ok(Signal::SIGUSR1) => print_stats(&seen),
                Ok(_) => {
                    stop.shutdown();
                    return;
                }
                Err(_) => return,
            }
        });
        self.watched = Some((stats, t));
        Ok(())
    }

    /// After the loop returned: the final counters.
    pub fn finish(self) {
        if let Some((stats, _)) = self.watched {
            print_stats(&stats);
        }
    }
}

/// `stats A/E A/E ...`: accepted and empty accepts (EAGAIN) of each worker.
fn print_stats(stats: &StatsHandle) {
    let words: Vec<String> = stats
        .per_worker()
        .iter()
        .map(|w| format!("{}/{}", w.accepted, w.empty_accepts.would_block))
        .collect();
    println!("stats {}", words.join(" "));
}

/// A server of the churn and workers benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Spec {
    /// `tcpservselect.c`: one accept per select (UNP), or a loop of accepts.
    C {
        accept_loop: bool,
    },
    Mio,
    Tokio,
    /// `EchoServer::run` (select).
    Ours {
        batch: usize,
        workers: usize,
        reuseport: bool,
    },
}

impl Spec {
    pub fn ours(batch: usize) -> Spec {
        Spec::Ours {
            batch,
            workers: 1,
            reuseport: false,
        }
    }

    pub fn name(self) -> String {
        match self {
            Spec::C { accept_loop: false } => "c".into(),
            Spec::C { accept_loop: true } => "c-loop".into(),
            Spec::Mio => "mio".into(),
            Spec::Tokio => "tokio".into(),
            Spec::Ours {
                batch, workers: 1, ..
            } => format!("ours-b{batch}"),
            Spec::Ours {
                batch,
                workers,
                reuseport,
            } => format!(
                "ours-b{batch}-w{workers}-{}",
                if reuseport { "reuseport" } else { "shared" }
            ),
        }
    }

    pub fn label(self) -> String {
        match self {
            Spec::C { accept_loop: false } => "C tcpservselect, 1 accept per select".into(),
            Spec::C { accept_loop: true } => "C tcpservselect -DACCEPT_LOOP".into(),
            Spec::Mio => "mio (epoll, accepts until EAGAIN)".into(),
            Spec::Tokio => "tokio current-thread".into(),
            Spec::Ours {
                batch, workers: 1, ..
            } => format!("ours, accept_batch {batch}"),
            Spec::Ours {
                batch,
                workers,
                reuseport,
            } => format!(
                "ours, {workers} workers, {}, accept_batch {batch}",
                if reuseport {
                    "SO_REUSEPORT"
                } else {
                    "shared listener"
                }
            ),
        }
    }

    pub fn is_ours(self) -> bool {
        matches!(self, Spec::Ours { .. })
    }

    pub fn workers(self) -> usize {
        match self {
            Spec::Ours { workers, .. } => workers,
            _ => 1,
        }
    }
}

/// The two C binaries: UNP's shape and `-DACCEPT_LOOP`.
pub struct Bins {
    pub c: PathBuf,
    pub c_loop: PathBuf,
}

pub fn build(bench_dir: &Path) -> io::Result<Bins> {
    let c = crate::servers::build_c(bench_dir)?;
    let c_loop = c.with_file_name("tcpservselect-accept-loop");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args(["-O2", "-Wall", "-DACCEPT_LOOP", "-o"])
        .arg(&c_loop)
        .arg(bench_dir.join("c/tcpservselect.c"))
        .status()?;
    if !status.success() {
        return Err(other_err(format!("{cc} -DACCEPT_LOOP failed")));
    }
    Ok(Bins { c, c_loop })
}

/// A running server process, its stdout read line by line.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub addr: SocketAddr,
    pub pid: u32,
    pub spec: Spec,
}

/// Accepted connections and empty accepts (EAGAIN) of one worker.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerCount {
    pub accepted: u64,
    pub empty: u64,
}

impl Proc {
    /// Starts `spec` (byte or line echo) on a free port of 127.0.0.1, every thread
    /// pinned to `cpu`.
    pub fn start(spec: Spec, lines: bool, bins: &Bins, cpu: Option<usize>) -> io::Result<Proc> {
        let mode = if lines { "lines" } else { "bytes" };
        let mut cmd = match spec {
            Spec::C { accept_loop } => {
                let mut c = Command::new(if accept_loop { &bins.c_loop } else { &bins.c });
                if lines {
                    c.arg("-l");
                }
                c.arg("127.0.0.1:0");
                c
            }
            Spec::Mio | Spec::Tokio => {
                let mut c = Command::new(std::env::current_exe()?);
                let kind = if spec == Spec::Mio { "mio" } else { "tokio" };
                c.args(["serve", kind, mode, "127.0.0.1:0"]);
                c
            }
            Spec::Ours {
                batch,
                workers,
                reuseport,
            } => {
                let mut c = Command::new(std::env::current_exe()?);
                c.args(["serve", "ours", mode, "127.0.0.1:0", "--stats"])
                    .args(["--accept-batch", &batch.to_string()])
                    .args(["--workers", &workers.to_string()]);
                if reuseport {
                    c.arg("--reuseport");
                }
                c
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        crate::servers::pin_command(&mut cmd, cpu);
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().expect("stdout was piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let mut words = line.strip_prefix("ready ").unwrap_or("").split_whitespace();
        let addr = words.next().and_then(|a| a.parse().ok());
        let pid = words.next().and_then(|p| p.parse().ok());
        match (addr, pid) {
            (Some(addr), Some(pid)) => Ok(Proc {
                child,
                lines: rx,
                addr,
                pid,
                spec,
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(other_err(format!(
                    "server {} did not start (said {line:?})",
                    spec.name()
                )))
            }
        }
    }

    /// Every worker's counters now (ours only; others: `None`).
    pub fn snapshot(&self) -> Option<Vec<WorkerCount>> {
        if !self.spec.is_ours() {
            return None;
        }
        use nix::sys::signal::kill;
        kill(nix::unistd::Pid::from_raw(self.pid as i32), Signal::SIGUSR1).ok()?;
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            if let Some(rest) = line.strip_prefix("stats") {
                return rest
                    .split_whitespace()
                    .map(|w| {
                        let (a, e) = w.split_once('/')?;
                        Some(WorkerCount {
                            accepted: a.parse().ok()?,
                            empty: e.parse().ok()?,
                        })
                    })
                    .collect();
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every thread of `pid`: /proc/PID/task/TID.
fn tasks(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Voluntary and involuntary context switches of every thread of `pid`, added up.
pub fn ctxt_switches(pid: u32) -> (u64, u64) {
    let (mut vol, mut invol) = (0, 0);
    for t in tasks(pid) {
        let Ok(status) = std::fs::read_to_string(t.join("status")) else {
            continue;
        };
        for l in status.lines() {
            let value = |l: &str| l.split_whitespace().nth(1).and_then(|v| v.parse().ok());
            if l.starts_with("voluntary_ctxt_switches:") {
                vol += value(l).unwrap_or(0);
            } else if l.starts_with("nonvoluntary_ctxt_switches:") {
                invol += value(l).unwrap_or(0);
            }
        }
    }
    (vol, invol)
}

/// A `TcpExt` counter of /proc/net/netstat (`ListenOverflows`, `ListenDrops`).
pub fn tcp_ext(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let names = lines.next()?;
    let values = lines.next()?;
    let i = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(i)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_options() {
        let args: Vec<String> = ["--workers", "4", "--reuseport", "--accept-batch", "16"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = ServeOpts::parse(&args).unwrap();
        let c = o.apply(Config::book());
        assert_eq!((c.workers, c.reuseport, c.accept_batch), (4, true, 16));
        assert!(ServeOpts::parse(&["--workers".to_string()]).is_err());
    }

    #[test]
    fn netstat_counter() {
        assert!(tcp_ext("ListenOverflows").is_some());
    }
}
