//! What every load part shares: a [`Session`] (the descriptor limit raised, the
//! CPUs picked, the machine and the tools found), [`rounds`] of runs that
//! alternate between servers, one run's measurement ([`measure`]: rate, CPU,
//! waits, latencies, then `perf stat`), `strace -c` windows ([`strace_all`]) and
//! `perf record` under load ([`profile_load`]).

use std::collections::BTreeMap;
use std::io;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use crate::cli::Common;
use crate::load::{self, Client, Shared};
use crate::servers::{pin_to, Server};
use crate::tracing::{self, Calls, PerfStat, Strace};
use crate::{other_err, raise_nofile};

/// A run during which the server or the load generator waited for its CPU more
/// than this share of the window (other jobs had it) is run again, at most
/// `MAX_RETRIES` times (and `Common::retry_budget` in all).
pub const MAX_WAIT: f64 = 0.1;
const MAX_RETRIES: usize = 2;

/// Which CPU the server and the load run on (none: not pinned).
#[derive(Clone, Copy, Debug)]
pub struct Cpus {
    pub server: Option<usize>,
    pub client: Option<usize>,
}

impl Cpus {
    /// Pins this thread (and the threads and processes it starts afterwards) to
    /// the load's CPU, if there is one.
    pub fn pin_client(self) -> io::Result<Cpus> {
        if let Some(cpu) = self.client {
            pin_to(cpu)?;
        }
        Ok(self)
    }

    pub fn pick() -> Cpus {
        let n = thread::available_parallelism().map_or(1, |n| n.get());
        if n >= 2 {
            Cpus {
                server: Some(0),
                client: Some(1),
            }
        } else {
            Cpus {
                server: None,
                client: None,
            }
        }
    }
}

/// One measured run.
#[derive(Clone, Debug)]
pub struct Run {
    pub lines_per_sec: f64,
    /// Server CPU time per echoed line, µs.
    pub cpu_us_per_line: f64,
    /// Server CPU over the window, in cores.
    pub server_cores: f64,
    /// Share of the window the server, and the load generator, were runnable but
    /// waited for their CPU (other jobs on this shared machine took it).
    pub server_wait: Option<f64>,
    pub load_wait: Option<f64>,
    pub p50_us: f64,
    pub p99_us: f64,
    /// perf stat over its window, and the lines echoed meanwhile.
    pub syscalls: Option<(Calls, u64)>,
    /// Why perf stat counted nothing, if it failed.
    pub perf_error: Option<String>,
}

impl Run {
    pub fn disturbed(&self) -> bool {
        self.server_wait.is_some_and(|w| w > MAX_WAIT)
            || self.load_wait.is_some_and(|w| w > MAX_WAIT)
    }

    pub fn syscalls_per_line(&self) -> Option<f64> {
        self.syscalls
            .as_ref()
            .map(|(c, lines)| c.total as f64 / (*lines).max(1) as f64)
    }
}

/// RSS of a server before and with idle connections.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub before_kib: u64,
    pub with_kib: u64,
    pub conns: usize,
}

impl Memory {
    /// VmRSS of `server` before and after `open` opened `conns` idle connections
    /// (which it returns, open).
    pub fn of<T>(
        server: &Server,
        conns: usize,
        open: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<(Memory, T)> {
        let rss = || tracing::proc_rss_kib(server.pid).ok_or_else(|| other_err("no /proc RSS"));
        let before_kib = rss()?;
        let held = open()?;
        thread::sleep(Duration::from_millis(200));
        let with_kib = rss()?;
        let m = Memory {
            before_kib,
            with_kib,
            conns,
        };
        Ok((m, held))
    }

    pub fn bytes_per_conn(&self) -> f64 {
        (self.with_kib as f64 - self.before_kib as f64) * 1024.0 / self.conns.max(1) as f64
    }
}

pub struct Machine {
    pub date: String,
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub rustc: String,
    pub cc: String,
    pub perf: String,
    pub load_start: String,
    pub load_end: String,
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

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

pub fn date() -> String {
    sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
}

pub fn machine() -> Machine {
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
        date: date(),
        nproc: sh("nproc", &[]).parse().unwrap_or(0),
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
        perf: sh("perf", &["--version"]),
        load_start: loadavg(),
        load_end: String::new(),
    }
}

fn sleep_until(t: Instant) {
    thread::sleep(t.saturating_duration_since(Instant::now()));
}

/// How long the parts of a run last, seconds.
#[derive(Clone, Copy, Debug)]
pub struct Windows {
    /// Load before the measured window.
    pub ramp: f64,
    /// The measured window (rate, CPU, waits, latencies).
    pub window: f64,
    /// perf stat's window, after the measured one.
    pub perf_window: f64,
    /// strace's window, in the runs of their own.
    pub strace_window: f64,
}

/// `perf stat` on `pid` (if `perf`), or why not.
pub fn attach_perf(perf: bool, pid: u32, cpu: Option<usize>) -> (Option<PerfStat>, Option<String>) {
    if !perf {
        return (None, None);
    }
    match PerfStat::attach(pid, cpu) {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(format!("perf stat: {e}"))),
    }
}

/// Drives `conns` (connected to `server`, `depth` requests in flight on each)
/// and measures the server over `w.window` after `w.ramp`, then counts its
/// syscalls with `perf` for `w.perf_window`; stops the load and the server. A
/// "line" of the returned run is one request and its reply.
pub fn measure<C: Client + Send>(
    server: &Server,
    mut conns: Vec<C>,
    depth: usize,
    w: &Windows,
    mut perf: Option<PerfStat>,
    mut perf_error: Option<String>,
) -> io::Result<Run> {
    let shared = Shared::default();
    let start = Instant::now();
    let from = start + Duration::from_secs_f64(w.ramp);
    let until = from + Duration::from_secs_f64(w.window);
    let pid = server.pid;
    let cpu_now = || tracing::proc_cpu(pid).ok_or_else(|| other_err("no /proc/PID/stat"));
    let waits = || (tracing::wait_of(pid), tracing::wait_of_self());
    let (tally, measured, counted) = thread::scope(|s| {
        let load = s.spawn(|| load::drive(&mut conns, depth, &shared, from, until));
        let measured = (|| {
            sleep_until(from);
            let (w0, c0) = (waits(), cpu_now()?);
            let (l0, t0) = (shared.live.load(Ordering::Relaxed), Instant::now());
            sleep_until(until);
            let (w1, c1) = (waits(), cpu_now()?);
            let (l1, t1) = (shared.live.load(Ordering::Relaxed), Instant::now());
            let secs = (t1 - t0).as_secs_f64();
            let share = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (b - a) / secs);
            let waited = (share(w0.0, w1.0), share(w0.1, w1.1));
            Ok::<_, io::Error>((c1 - c0, waited, l1 - l0, secs))
        })();
        let counted = perf.as_mut().map(|p| {
            p.enable()?;
            let l0 = shared.live.load(Ordering::Relaxed);
            thread::sleep(Duration::from_secs_f64(w.perf_window));
            p.disable()?;
            Ok::<_, io::Error>(shared.live.load(Ordering::Relaxed) - l0)
        });
        shared.stop.store(true, Ordering::Relaxed);
        let tally = load
            .join()
            .unwrap_or_else(|_| Err(other_err("the load thread panicked")));
        (tally, measured, counted)
    });
    load::close_all(conns);
    let mut tally = tally?;
    let (cpu, (server_wait, load_wait), lines, secs) = measured?;
    let syscalls = match (perf, counted) {
        (Some(p), Some(lines)) => match lines.and_then(|l| Ok((p.finish()?, l))) {
            Ok(c) => Some(c),
            Err(e) => {
                perf_error = Some(format!("perf stat: {e}"));
                None
            }
        },
        _ => None,
    };
    if lines == 0 {
        return Err(io::Error::other(NoReply));
    }
    Ok(Run {
        lines_per_sec: lines as f64 / secs,
        // No tick of CPU time (10 ms) in a short window: not measured, not zero.
        cpu_us_per_line: if cpu > 0.0 {
            cpu * 1e6 / lines as f64
        } else {
            f64::NAN
        },
        server_cores: cpu / secs,
        server_wait,
        load_wait,
        p50_us: load::quantile_us(&mut tally.latencies, 0.50),
        p99_us: load::quantile_us(&mut tally.latencies, 0.99),
        syscalls,
        perf_error,
    })
}

/// Drives `conns` for `w.ramp` seconds, then counts the server's syscalls with
/// `strace -c -f` (pinned to `cpu`) for `w.strace_window` seconds; returns the
/// counts and the replies meanwhile.
pub fn strace_measure<C: Client + Send>(
    server: &Server,
    mut conns: Vec<C>,
    depth: usize,
    w: &Windows,
    cpu: Option<usize>,
) -> io::Result<(Calls, u64)> {
    let shared = Shared::default();
    let far = Instant::now() + Duration::from_secs(3600);
    let (tally, counted) = thread::scope(|s| {
        let load = s.spawn(|| load::drive(&mut conns, depth, &shared, far, far));
        let counted = (|| {
            thread::sleep(Duration::from_secs_f64(w.ramp));
            let strace = Strace::attach(server.pid, cpu)?;
            let l0 = shared.live.load(Ordering::Relaxed);
            thread::sleep(Duration::from_secs_f64(w.strace_window));
            let l1 = shared.live.load(Ordering::Relaxed);
            Ok::<_, io::Error>((strace.finish()?, l1 - l0))
        })();
        shared.stop.store(true, Ordering::Relaxed);
        let tally = load
            .join()
            .unwrap_or_else(|_| Err(other_err("the load thread panicked")));
        (tally, counted)
    });
    load::close_all(conns);
    tally?;
    counted
}

/// The runs of a comparison, by cell and server.
pub type Runs<C, K> = BTreeMap<(C, K), Vec<Run>>;

/// Runs every cell `c.rounds` times: each of its servers (`kinds_of`) once per
/// round, the order rotating by one server each round, so that none always runs
/// first or last. A run disturbed by other jobs ([`Run::disturbed`]) is run
/// again, at most twice, and `c.retry_budget` times in all; a run with no reply
/// in its window ([`NoReply`]) at most twice, whatever the budget. Prints each
/// run (`name` names it); notes what was repeated and the first perf failures.
pub fn rounds<C: Copy + Ord, K: Copy + Ord>(
    cells: &[C],
    kinds_of: impl Fn(C) -> Vec<K>,
    c: &Common,
    unit: &str,
    name: impl Fn(K, C) -> String,
    mut one: impl FnMut(K, C) -> io::Result<Run>,
    notes: &mut Vec<String>,
) -> io::Result<Runs<C, K>> {
    let (rounds, budget) = (c.rounds, c.retry_budget);
    let mut runs: Runs<C, K> = BTreeMap::new();
    let (mut retries, mut perf_errors, mut stalled) = (0usize, 0usize, 0usize);
    for &cell in cells {
        let kinds = kinds_of(cell);
        for round in 0..rounds {
            let n = kinds.len();
            for j in 0..n {
                let kind = kinds[(j + round) % n];
                let what = format!("{}, round {}/{rounds}", name(kind, cell), round + 1);
                let (mut tries, mut stalls) = (0, 0);
                let r = loop {
                    let r = match one(kind, cell) {
                        Err(e) if NoReply::is(&e) && stalls < MAX_RETRIES => {
                            stalls += 1;
                            eprintln!("  {what:<42} {e} (again)");
                            continue;
                        }
                        r => r.map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))?,
                    };
                    eprintln!("  {what:<42} {}", fmt_run(&r, unit));
                    if r.disturbed() && tries < MAX_RETRIES && retries < budget {
                        tries += 1;
                        retries += 1;
                        eprintln!("    (disturbed by other jobs: again)");
                        continue;
                    }
                    break r;
                };
                if let Some(e) = &r.perf_error {
                    perf_errors += 1;
                    if perf_errors <= 3 {
                        notes.push(format!("{what}: {e}"));
                    }
                }
                stalled += stalls;
                runs.entry((cell, kind)).or_default().push(r);
            }
        }
    }
    if stalled > 0 {
        notes.push(format!(
            "{stalled} run(s) got no reply in their measured window (a stall of the \
             machine, or of a server) and were run again (at most {MAX_RETRIES} times \
             per run, with or without the repeat budget)"
        ));
    }
    if retries > 0 {
        notes.push(format!(
            "{retries} run(s) were repeated because the server or the load generator \
             waited for its CPU more than {:.0}% of the window (at most {MAX_RETRIES} \
             repeats per run, {budget} in all)",
            MAX_WAIT * 100.0
        ));
    }
    if perf_errors > 3 {
        notes.push(format!("perf stat failed in {perf_errors} runs in all"));
    }
    Ok(runs)
}

/// One run on one line; a `unit` is a line echoed or a request answered.
pub fn fmt_run(r: &Run, unit: &str) -> String {
    format!(
        "{:>9.0} {unit}s/s {:>5.2} µs CPU/{unit} {:>4.0}% CPU (waited {:>2.0}%/{:>2.0}%) p99 {:>8.1} µs {}",
        r.lines_per_sec,
        r.cpu_us_per_line,
        r.server_cores * 100.0,
        r.server_wait.unwrap_or(f64::NAN) * 100.0,
        r.load_wait.unwrap_or(f64::NAN) * 100.0,
        r.p99_us,
        r.syscalls.as_ref().map_or(String::new(), |(c, n)| {
            let per = |x: u64| x as f64 / (*n).max(1) as f64;
            let names: Vec<String> = c
                .by_name
                .iter()
                .map(|(name, x, e)| match e {
                    0 => format!("{name} {:.3}", per(*x)),
                    e => format!("{name} {:.3} (EAGAIN {:.3})", per(*x), per(*e)),
                })
                .collect();
            format!("{:.3} syscalls/{unit}: {}", per(c.total), names.join(", "))
        })
    )
}

/// An `strace -c` run of a server on a cell: its counts and the units meanwhile.
pub type StraceRun<C, K> = (C, K, io::Result<(Calls, u64)>);

/// Runs `one` on every (cell, server) of `plan` once, printing each.
pub fn strace_all<C: Copy, K: Copy>(
    plan: &[(C, K)],
    unit: &str,
    name: impl Fn(K, C) -> String,
    mut one: impl FnMut(K, C) -> io::Result<(Calls, u64)>,
) -> Vec<StraceRun<C, K>> {
    let mut out = Vec::new();
    for &(cell, kind) in plan {
        let r = one(kind, cell);
        match &r {
            Ok((c, n)) => eprintln!(
                "  strace {}: {:.3} syscalls/{unit} ({} calls, {n} {unit}s)",
                name(kind, cell),
                c.total as f64 / (*n).max(1) as f64,
                c.total
            ),
            Err(e) => eprintln!("  strace {}: {e}", name(kind, cell)),
        }
        out.push((cell, kind, r));
    }
    out
}

/// Drives `conns` (`depth` in flight each) and runs `perf record -g` on `server`
/// for `secs` after 0.2 s; returns the flat profile, the units meanwhile and the
/// server's CPU seconds.
pub fn profile_load<C: Client + Send>(
    server: &Server,
    mut conns: Vec<C>,
    depth: usize,
    secs: f64,
    cpu: Option<usize>,
) -> io::Result<(String, u64, f64)> {
    let shared = Shared::default();
    let far = Instant::now() + Duration::from_secs(3600);
    let (tally, prof) = thread::scope(|s| {
        let load = s.spawn(|| load::drive(&mut conns, depth, &shared, far, far));
        thread::sleep(Duration::from_millis(200));
        let l0 = shared.live.load(Ordering::Relaxed);
        let c0 = tracing::proc_cpu(server.pid).unwrap_or(0.0);
        let prof = tracing::profile(server.pid, secs, cpu);
        let l1 = shared.live.load(Ordering::Relaxed);
        let c1 = tracing::proc_cpu(server.pid).unwrap_or(0.0);
        shared.stop.store(true, Ordering::Relaxed);
        let tally = load
            .join()
            .unwrap_or_else(|_| Err(other_err("the load thread panicked")));
        (tally, prof.map(|p| (p, l1 - l0, c1 - c0)))
    });
    load::close_all(conns);
    tally?;
    prof
}

/// The start of a part's run: the soft descriptor limit raised, the CPUs picked
/// (this process pinned to the load's), the machine described before that, and
/// the tools found (a missing one noted).
pub struct Session {
    pub began: Instant,
    /// The soft `RLIMIT_NOFILE` now.
    pub nofile: u64,
    pub cpus: Cpus,
    pub machine: Machine,
    pub notes: Vec<String>,
    /// perf stat, strace: asked for and installed.
    pub perf: bool,
    pub strace: bool,
}

impl Session {
    /// Begins `c`'s part; `about` (the reference programs' versions) goes into the
    /// line it prints.
    pub fn begin(c: &Common, about: &str) -> io::Result<Session> {
        let began = Instant::now();
        let nofile = raise_nofile()?;
        let cpus = Cpus::pick();
        // Before pinning: `nproc` counts the CPUs this process may use.
        let machine = machine();
        // The orchestrator and the load threads it spawns share the client's CPU.
        let cpus = cpus.pin_client()?;
        eprintln!(
            "echo-bench{}{}: {} cores, {}, {}, load average {}{about}; server on CPU {:?}, clients on CPU {:?}",
            if c.part.is_empty() { "" } else { " " },
            c.part,
            machine.nproc,
            machine.cpu,
            machine.kernel,
            machine.load_start,
            cpus.server,
            cpus.client
        );
        let mut notes = Vec::new();
        if cpus.server.is_none() {
            notes.push("fewer than 2 CPUs: servers and clients are not pinned".to_string());
        }
        let perf = c.perf && tracing::have("perf");
        if c.perf && !perf {
            notes.push(
                "perf is not installed: no syscall counts (apt-get install linux-perf)".into(),
            );
        }
        let strace = c.strace && tracing::have("strace");
        if c.strace && !strace {
            notes.push("strace is not installed: no strace -c runs".into());
        }
        Ok(Session {
            began,
            nofile,
            cpus,
            machine,
            notes,
            perf,
            strace,
        })
    }

    /// The head of the part's report, at its end: `summary` says how it ran.
    pub fn end(self, c: &Common, summary: String) -> Header {
        let mut machine = self.machine;
        machine.load_end = loadavg();
        Header {
            machine,
            command: c.command(),
            cpus: self.cpus,
            elapsed: self.began.elapsed(),
            notes: self.notes,
            summary,
        }
    }
}

/// The error of a run in which no reply came back in the whole measured window;
/// [`rounds`] runs it again. Seen on this shared machine with every server, mio
/// and memcached too, while other jobs held the CPUs.
#[derive(Debug)]
pub struct NoReply;

impl NoReply {
    fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<NoReply>())
    }
}

impl std::fmt::Display for NoReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no reply in the measured window")
    }
}

impl std::error::Error for NoReply {}

/// What opens every part's report.
pub struct Header {
    pub machine: Machine,
    pub command: String,
    pub cpus: Cpus,
    pub elapsed: Duration,
    pub notes: Vec<String>,
    /// How it ran: rounds, windows, sizes.
    pub summary: String,
}
