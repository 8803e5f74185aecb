//! The comparison: for every cell (mode, pipeline depth, connections), rounds in
//! which every server runs once, in an order that rotates from round to round;
//! then `strace -c` runs and the idle-connection memory.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use crate::load::{self, Client, Shared};
use crate::servers::{self, Kind, Mode, Server};
use crate::tracing::{self, Calls, PerfStat, Strace};
use crate::{invalid, other_err, raise_nofile};

pub const USAGE: &str = "\
usage: echo-bench [OPTIONS]             the comparison; writes docs/benchmarks.{md,svg}
       echo-bench serve KIND MODE ADDR  run one Rust server (KIND: ours poll large mio tokio;
                                        MODE: lines bytes)
       echo-bench profile [--server K] [--mode M] [--depth D] [--conns N] [--secs S]
                                        perf record -g on one server under load; prints the
                                        flat profile (default: ours lines 8 50 2)
       echo-bench kv [--quick] [...]    kv_server against memcached -t 1 (kv --help)
       echo-bench resp [--quick] [...]  a RESP store on Server<P> against redis-server
                                        (resp --help)
       echo-bench memory [--quick] [...]
                                        memory under hostile clients: kv_server against
                                        memcached, chat_server flooded (memory --help)
       echo-bench micro-docs            rewrite the micro-benchmark table of
                                        docs/benchmarks.md from bench/target/criterion

options of the comparison:
  --quick            CI's smoke run (well under a minute): 1 round of 0.2 s, depths 1
                     and 32, 1 and 1000 connections, RSS at 100 connections, one
                     strace cell; prints, writes nothing
  --no-write         print only, do not rewrite docs/
  --rounds N         rounds per cell (default 3)
  --secs S           measured seconds per run (default 1.0; perf counts 0.5 s after)
  --conns A,B,..     connection counts (default 1,50,500,1000)
  --depths A,B,..    lines in flight per connection (default 1,8,32)
  --modes A,B        lines,bytes (default both)
  --servers A,B,..   servers (default ours,c,mio,tokio; also poll, large)
  --line BYTES       line length, newline included (default 64)
  --no-perf          no perf stat counts
  --no-strace        no strace -c runs
  --no-rss           no idle-connection memory";

pub struct Opts {
    pub quick: bool,
    pub write_docs: bool,
    pub rounds: usize,
    pub ramp: f64,
    pub window: f64,
    pub perf_window: f64,
    pub strace_window: f64,
    pub conns: Vec<usize>,
    pub depths: Vec<usize>,
    pub modes: Vec<Mode>,
    pub kinds: Vec<Kind>,
    pub line: usize,
    pub perf: bool,
    pub strace: bool,
    pub rss: bool,
    pub idle: usize,
    /// Repeats of disturbed runs allowed in the whole comparison.
    pub retry_budget: usize,
    pub args: Vec<String>,
}

fn list(v: &str) -> io::Result<Vec<usize>> {
    v.split(',')
        .map(|x| {
            x.trim()
                .parse()
                .map_err(|_| invalid(format!("bad number {x}")))
        })
        .collect()
}

impl Opts {
    pub fn parse(args: &[String]) -> io::Result<Opts> {
        let mut o = Opts {
            quick: false,
            write_docs: true,
            rounds: 3,
            ramp: 0.2,
            window: 1.0,
            perf_window: 0.5,
            strace_window: 0.5,
            conns: vec![1, 50, 500, 1000],
            depths: vec![1, 8, 32],
            modes: Mode::ALL.to_vec(),
            kinds: Kind::DEFAULT.to_vec(),
            line: 64,
            perf: true,
            strace: true,
            rss: true,
            idle: 1000,
            retry_budget: 60,
            args: args.to_vec(),
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
                    o.write_docs = false;
                    o.rounds = 1;
                    o.ramp = 0.05;
                    o.window = 0.2;
                    o.perf_window = 0.1;
                    o.strace_window = 0.2;
                    o.conns = vec![1, 1000];
                    o.depths = vec![1, 32];
                    o.idle = 100;
                    o.retry_budget = 0;
                }
                "--no-write" => o.write_docs = false,
                "--rounds" => o.rounds = list(val()?)?[0].max(1),
                "--secs" => {
                    o.window = val()?.parse().map_err(|_| invalid("--secs: a number"))?;
                }
                "--conns" => o.conns = list(val()?)?,
                "--depths" => o.depths = list(val()?)?,
                "--modes" => {
                    o.modes = val()?
                        .split(',')
                        .map(|s| Mode::from_name(s).ok_or_else(|| invalid(format!("mode {s}?"))))
                        .collect::<io::Result<_>>()?;
                }
                "--servers" => {
                    o.kinds = val()?
                        .split(',')
                        .map(|s| Kind::from_name(s).ok_or_else(|| invalid(format!("server {s}?"))))
                        .collect::<io::Result<_>>()?;
                }
                "--line" => o.line = list(val()?)?[0],
                "--no-perf" => o.perf = false,
                "--no-strace" => o.strace = false,
                "--no-rss" => o.rss = false,
                s => return Err(invalid(format!("unknown option {s}\n\n{USAGE}"))),
            }
        }
        if o.line < load::MIN_LINE {
            return Err(invalid(format!("--line: at least {}", load::MIN_LINE)));
        }
        if o.depths.contains(&0) {
            return Err(invalid("--depths: at least 1"));
        }
        Ok(o)
    }

    /// The command line that reproduces this run.
    pub fn command(&self) -> String {
        let mut c = "cargo run --release --manifest-path bench/Cargo.toml".to_string();
        if !self.args.is_empty() {
            c.push_str(" -- ");
            c.push_str(&self.args.join(" "));
        }
        c
    }
}

/// A run during which the server or the load generator waited for its CPU more
/// than this share of the window (other jobs had it) is run again, at most
/// `MAX_RETRIES` times (and `Opts::retry_budget` in all).
pub const MAX_WAIT: f64 = 0.1;
const MAX_RETRIES: usize = 2;

/// Which CPU the server and the load run on (none: not pinned).
#[derive(Clone, Copy, Debug)]
pub struct Cpus {
    pub server: Option<usize>,
    pub client: Option<usize>,
}

impl Cpus {
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

/// One cell of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cell {
    pub mode: Mode,
    pub depth: usize,
    pub conns: usize,
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
    pub fn bytes_per_conn(&self) -> f64 {
        (self.with_kib as f64 - self.before_kib as f64) * 1024.0 / self.conns as f64
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

/// An `strace -c` run: its counts and the lines echoed meanwhile.
pub type StraceRun = (Cell, Kind, io::Result<(Calls, u64)>);

/// Everything a comparison measured.
pub struct Results {
    pub machine: Machine,
    pub command: String,
    pub cpus: Cpus,
    pub cells: Vec<Cell>,
    pub kinds: Vec<Kind>,
    pub runs: BTreeMap<(Cell, Kind), Vec<Run>>,
    pub strace: Vec<StraceRun>,
    pub memory: BTreeMap<(Mode, Kind), Vec<Memory>>,
    pub idle: usize,
    pub elapsed: Duration,
    pub notes: Vec<String>,
    pub opts_summary: String,
}

fn sleep_until(t: Instant) {
    thread::sleep(t.saturating_duration_since(Instant::now()));
}

/// One run of `kind` on `cell`: start it, connect, load; measure over the window;
/// then count its syscalls with perf for `perf_window`; stop.
fn one_run(
    kind: Kind,
    cell: Cell,
    o: &Opts,
    c_bin: &Path,
    cpus: Cpus,
    perf: bool,
) -> io::Result<Run> {
    let server = Server::start(kind, cell.mode, c_bin, cpus.server)?;
    let (perf, perf_error) = attach_perf(perf, server.pid, cpus.client, &tracing::PERF_SYSCALLS);
    let conns = load::connect(server.addr, cell.conns, o.line, cell.depth)?;
    let w = Windows {
        ramp: o.ramp,
        window: o.window,
        perf_window: o.perf_window,
        strace_window: o.strace_window,
    };
    measure(&server, conns, cell.depth, &w, perf, perf_error)
}

/// How long the parts of a run last, seconds.
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

/// `perf stat` on `pid` counting `names` by name (if `perf`), or why not.
pub fn attach_perf(
    perf: bool,
    pid: u32,
    cpu: Option<usize>,
    names: &[&str],
) -> (Option<PerfStat>, Option<String>) {
    if !perf {
        return (None, None);
    }
    match PerfStat::attach(pid, cpu, names) {
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
        return Err(other_err("no reply in the measured window"));
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

/// `strace -c -f -p PID` over a short window of a run.
fn strace_run(
    kind: Kind,
    cell: Cell,
    o: &Opts,
    c_bin: &Path,
    cpus: Cpus,
) -> io::Result<(Calls, u64)> {
    let server = Server::start(kind, cell.mode, c_bin, cpus.server)?;
    let conns = load::connect(server.addr, cell.conns, o.line, cell.depth)?;
    strace_measure(
        &server,
        conns,
        cell.depth,
        o.ramp,
        o.strace_window,
        cpus.client,
    )
}

/// Drives `conns` for `ramp` seconds, then counts the server's syscalls with
/// `strace -c -f` (pinned to `cpu`) for `window` seconds; returns the counts and
/// the replies meanwhile.
pub fn strace_measure<C: Client + Send>(
    server: &Server,
    mut conns: Vec<C>,
    depth: usize,
    ramp: f64,
    window: f64,
    cpu: Option<usize>,
) -> io::Result<(Calls, u64)> {
    let shared = Shared::default();
    let far = Instant::now() + Duration::from_secs(3600);
    let (tally, counted) = thread::scope(|s| {
        let load = s.spawn(|| load::drive(&mut conns, depth, &shared, far, far));
        let counted = (|| {
            thread::sleep(Duration::from_secs_f64(ramp));
            let strace = Strace::attach(server.pid, cpu)?;
            let l0 = shared.live.load(Ordering::Relaxed);
            thread::sleep(Duration::from_secs_f64(window));
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

fn measure_memory(
    kind: Kind,
    mode: Mode,
    o: &Opts,
    c_bin: &Path,
    cpus: Cpus,
) -> io::Result<Memory> {
    let server = Server::start(kind, mode, c_bin, cpus.server)?;
    thread::sleep(Duration::from_millis(100));
    let rss = || tracing::proc_rss_kib(server.pid).ok_or_else(|| other_err("no /proc RSS"));
    let before_kib = rss()?;
    let conns = load::connect(server.addr, o.idle, o.line, 1)?;
    thread::sleep(Duration::from_millis(200));
    let with_kib = rss()?;
    load::close_all(conns);
    Ok(Memory {
        before_kib,
        with_kib,
        conns: o.idle,
    })
}

fn fmt_run(r: &Run) -> String {
    format!(
        "{:>9.0} lines/s {:>5.2} µs CPU/line {:>4.0}% CPU (waited {:>2.0}%/{:>2.0}%) p99 {:>8.1} µs {}",
        r.lines_per_sec,
        r.cpu_us_per_line,
        r.server_cores * 100.0,
        r.server_wait.unwrap_or(f64::NAN) * 100.0,
        r.load_wait.unwrap_or(f64::NAN) * 100.0,
        r.p99_us,
        r.syscalls
            .as_ref()
            .map_or("".to_string(), |(c, lines)| {
                let per = |n: u64| n as f64 / (*lines).max(1) as f64;
                let names: Vec<String> = c
                    .by_name
                    .iter()
                    .map(|(name, n, e)| match e {
                        0 => format!("{name} {:.3}", per(*n)),
                        e => format!("{name} {:.3} (EAGAIN {:.3})", per(*n), per(*e)),
                    })
                    .collect();
                format!("{:.3} syscalls/line: {}", per(c.total), names.join(", "))
            })
    )
}

pub fn run(o: &Opts, bench_dir: &Path) -> io::Result<Results> {
    let began = Instant::now();
    let nofile = raise_nofile()?;
    let cpus = Cpus::pick();
    // Before pinning: `nproc` counts the CPUs this process may use.
    let mut machine = machine();
    if let Some(cpu) = cpus.client {
        // The orchestrator and the load thread it spawns share the client's CPU.
        servers::pin_to(cpu)?;
    }
    eprintln!(
        "echo-bench: {} cores, {}, {}, load average {}; server on CPU {:?}, clients on CPU {:?}",
        machine.nproc, machine.cpu, machine.kernel, machine.load_start, cpus.server, cpus.client
    );
    let c_bin = if o.kinds.contains(&Kind::C) {
        servers::build_c(bench_dir)?
    } else {
        PathBuf::new()
    };
    let mut notes = Vec::new();
    if cpus.server.is_none() {
        notes.push("fewer than 2 CPUs: server and clients are not pinned".to_string());
    }
    let perf = o.perf && tracing::have("perf");
    if o.perf && !perf {
        notes.push("perf is not installed: no syscall counts (apt-get install linux-perf)".into());
    }
    let strace = o.strace && tracing::have("strace");
    if o.strace && !strace {
        notes.push("strace is not installed: no strace -c runs".into());
    }
    let mut cells = Vec::new();
    for &mode in &o.modes {
        for &depth in &o.depths {
            for &conns in &o.conns {
                if conns as u64 + 64 > nofile {
                    notes.push(format!(
                        "{conns} connections skipped: RLIMIT_NOFILE is {nofile}"
                    ));
                    continue;
                }
                cells.push(Cell { mode, depth, conns });
            }
        }
    }
    let fd_limited = |k: Kind| matches!(k, Kind::Ours | Kind::C);
    let mut runs: BTreeMap<(Cell, Kind), Vec<Run>> = BTreeMap::new();
    let (mut retries, mut perf_errors) = (0usize, 0usize);
    for &cell in &cells {
        for round in 0..o.rounds {
            // Rotate the order so that no server always runs first or last.
            let n = o.kinds.len();
            for j in 0..n {
                let kind = o.kinds[(j + round) % n];
                if fd_limited(kind) && cell.conns + 16 > unp_select::FD_SETSIZE {
                    continue;
                }
                let what = format!(
                    "{} {} depth {} × {} conns, round {}/{}",
                    kind.name(),
                    cell.mode.name(),
                    cell.depth,
                    cell.conns,
                    round + 1,
                    o.rounds
                );
                let mut tries = 0;
                let r = loop {
                    let r = one_run(kind, cell, o, &c_bin, cpus, perf)
                        .map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))?;
                    eprintln!("  {what:<42} {}", fmt_run(&r));
                    // Another job took a good part of the server's CPU: this run
                    // measured the machine, not the server. Run it again.
                    let disturbed = r.disturbed();
                    if disturbed && tries < MAX_RETRIES && retries < o.retry_budget {
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
                runs.entry((cell, kind)).or_default().push(r);
            }
        }
    }

    let mut strace_results = Vec::new();
    if strace {
        let plan: Vec<Cell> = if o.quick {
            vec![Cell {
                mode: Mode::Lines,
                depth: 8,
                conns: 50,
            }]
        } else {
            o.modes
                .iter()
                .flat_map(|&mode| {
                    o.depths.iter().map(move |&depth| Cell {
                        mode,
                        depth,
                        conns: 50,
                    })
                })
                .collect()
        };
        for cell in plan {
            for &kind in &o.kinds {
                let r = strace_run(kind, cell, o, &c_bin, cpus);
                match &r {
                    Ok((c, lines)) => eprintln!(
                        "  strace {} {} depth {} × {}: {:.3} syscalls/line ({} calls, {} lines)",
                        kind.name(),
                        cell.mode.name(),
                        cell.depth,
                        cell.conns,
                        c.total as f64 / (*lines).max(1) as f64,
                        c.total,
                        lines
                    ),
                    Err(e) => eprintln!("  strace {}: {e}", kind.name()),
                }
                strace_results.push((cell, kind, r));
            }
        }
    }

    let mut memory: BTreeMap<(Mode, Kind), Vec<Memory>> = BTreeMap::new();
    if o.rss {
        for round in 0..o.rounds {
            for &mode in &o.modes {
                let n = o.kinds.len();
                for j in 0..n {
                    let kind = o.kinds[(j + round) % n];
                    let m = measure_memory(kind, mode, o, &c_bin, cpus).map_err(|e| {
                        io::Error::new(e.kind(), format!("RSS of {}: {e}", kind.name()))
                    })?;
                    eprintln!(
                        "  RSS {} {}: {} KiB, with {} idle connections {} KiB ({:.0} bytes each)",
                        kind.name(),
                        mode.name(),
                        m.before_kib,
                        m.conns,
                        m.with_kib,
                        m.bytes_per_conn()
                    );
                    memory.entry((mode, kind)).or_default().push(m);
                }
            }
        }
    }
    if retries > 0 {
        notes.push(format!(
            "{retries} run(s) were repeated because the server or the load generator \
             waited for its CPU more than {:.0}% of the window (at most {MAX_RETRIES} \
             repeats per run, {} in all)",
            MAX_WAIT * 100.0,
            o.retry_budget
        ));
    }
    if perf_errors > 3 {
        notes.push(format!("perf stat failed in {perf_errors} runs in all"));
    }
    machine.load_end = loadavg();
    Ok(Results {
        machine,
        command: o.command(),
        cpus,
        cells,
        kinds: o.kinds.clone(),
        runs,
        strace: strace_results,
        memory,
        idle: o.idle,
        elapsed: began.elapsed(),
        notes,
        opts_summary: format!(
            "{} round(s) per cell; per run {:.2} s ramp, {:.2} s measured, then {:.2} s of perf stat; strace windows {:.2} s; {}-byte lines",
            o.rounds, o.ramp, o.window, o.perf_window, o.strace_window, o.line
        ),
    })
}

/// `echo-bench profile`: `perf record -g` on one server under load.
pub fn profile_main(args: &[String], bench_dir: &Path) -> io::Result<()> {
    let (mut kind, mut mode, mut depth, mut conns, mut secs) =
        (Kind::Ours, Mode::Lines, 8, 50, 2.0);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it
            .next()
            .ok_or_else(|| invalid(format!("{a} needs a value")))?;
        match a.as_str() {
            "--server" => kind = Kind::from_name(v).ok_or_else(|| invalid("--server?"))?,
            "--mode" => mode = Mode::from_name(v).ok_or_else(|| invalid("--mode?"))?,
            "--depth" => depth = list(v)?[0].max(1),
            "--conns" => conns = list(v)?[0].max(1),
            "--secs" => secs = v.parse().map_err(|_| invalid("--secs: a number"))?,
            s => return Err(invalid(format!("unknown option {s}\n\n{USAGE}"))),
        }
    }
    raise_nofile()?;
    let cpus = Cpus::pick();
    if let Some(cpu) = cpus.client {
        servers::pin_to(cpu)?;
    }
    let c_bin = if kind == Kind::C {
        servers::build_c(bench_dir)?
    } else {
        PathBuf::new()
    };
    let server = Server::start(kind, mode, &c_bin, cpus.server)?;
    let mut cs = load::connect(server.addr, conns, 64, depth)?;
    let shared = Shared::default();
    let far = Instant::now() + Duration::from_secs(3600);
    let (tally, prof) = thread::scope(|s| {
        let load = s.spawn(|| load::drive(&mut cs, depth, &shared, far, far));
        thread::sleep(Duration::from_millis(200));
        let l0 = shared.live.load(Ordering::Relaxed);
        let c0 = tracing::proc_cpu(server.pid).unwrap_or(0.0);
        let prof = tracing::profile(server.pid, secs, cpus.client);
        let l1 = shared.live.load(Ordering::Relaxed);
        let c1 = tracing::proc_cpu(server.pid).unwrap_or(0.0);
        shared.stop.store(true, Ordering::Relaxed);
        let tally = load
            .join()
            .unwrap_or_else(|_| Err(other_err("the load thread panicked")));
        (tally, prof.map(|p| (p, l1 - l0, c1 - c0)))
    });
    load::close_all(cs);
    tally?;
    let (text, lines, cpu) = prof?;
    println!(
        "{} {} depth {depth} × {conns} connections, {secs} s under perf record -g: {lines} lines, {:.2} µs CPU/line\n{text}",
        kind.label(),
        mode.name(),
        cpu * 1e6 / lines.max(1) as f64
    );
    Ok(())
}

/// The runs of a comparison, by cell and server.
pub type Runs<C, K> = BTreeMap<(C, K), Vec<Run>>;

/// Runs every cell `rounds` times: each of its servers (`kinds_of`) once per
/// round, the order rotating by one server each round, so that none always runs
/// first or last. A run disturbed by other jobs ([`Run::disturbed`]) is run
/// again, at most twice, and `budget` times in all. Prints each run (`name`
/// names it); notes what was repeated and the first perf failures.
pub fn rounds<C: Copy + Ord, K: Copy + Ord>(
    cells: &[C],
    kinds_of: impl Fn(C) -> Vec<K>,
    rounds: usize,
    budget: usize,
    name: impl Fn(K, C) -> String,
    mut one: impl FnMut(K, C) -> io::Result<Run>,
    notes: &mut Vec<String>,
) -> io::Result<Runs<C, K>> {
    let mut runs: Runs<C, K> = BTreeMap::new();
    let (mut retries, mut perf_errors) = (0usize, 0usize);
    for &cell in cells {
        let kinds = kinds_of(cell);
        for round in 0..rounds {
            let n = kinds.len();
            for j in 0..n {
                let kind = kinds[(j + round) % n];
                let what = format!("{}, round {}/{rounds}", name(kind, cell), round + 1);
                let mut tries = 0;
                let r = loop {
                    let r = one(kind, cell)
                        .map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))?;
                    eprintln!("  {what:<36} {}", fmt_ops(&r));
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
                runs.entry((cell, kind)).or_default().push(r);
            }
        }
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

/// One run of a request/reply load, on one line.
pub fn fmt_ops(r: &Run) -> String {
    format!(
        "{:>8.0} ops/s {:>5.2} µs CPU/op {:>4.0}% CPU (waited {:>2.0}%/{:>2.0}%) p99 {:>8.1} µs {}",
        r.lines_per_sec,
        r.cpu_us_per_line,
        r.server_cores * 100.0,
        r.server_wait.unwrap_or(f64::NAN) * 100.0,
        r.load_wait.unwrap_or(f64::NAN) * 100.0,
        r.p99_us,
        r.syscalls.as_ref().map_or(String::new(), |(c, ops)| {
            let per = |n: u64| n as f64 / (*ops).max(1) as f64;
            let names: Vec<String> = c
                .by_name
                .iter()
                .map(|(name, n, _)| format!("{name} {:.3}", per(*n)))
                .collect();
            format!("{:.3} syscalls/op: {}", per(c.total), names.join(", "))
        })
    )
}
