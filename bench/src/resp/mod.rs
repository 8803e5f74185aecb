//! `echo-bench resp`: a RESP (Redis protocol) store on the crate's `Server<P>`
//! ([`crate::servers::resp`], `Config::default()`, every line a message) against
//! `redis-server`, both pinned to the server CPU, under the bench's own checked
//! load ([`client`], requests sent in batches as `redis-benchmark -P` sends them)
//! and, as a cross-check, under `redis-benchmark` itself.

pub mod client;
mod report;

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::exchange::{self, Batched};
use crate::kv::client::{Data, Workload};
use crate::orchestrate::{self, attach_perf, Cpus, Machine, Run, Runs, Windows};
use crate::servers::resp::{self as resp_server, RespKind};
use crate::servers::{pin_command, pin_to};
use crate::tracing::{self, Calls, KV_SYSCALLS};
use crate::{invalid, micro, other_err, raise_nofile};
use client::Resp;

pub const USAGE: &str = "\
usage: echo-bench resp [OPTIONS]   a RESP store on Server<P> (Config::default(), lines)
                                   against redis-server; rewrites the RESP block of
                                   docs/benchmarks.md

options:
  --quick               CI's smoke run (a few seconds): 1 round of 0.2 s at 50
                        connections, 1000 keys, one strace cell, a short
                        redis-benchmark; prints, writes nothing
  --no-write            print only, do not rewrite docs/
  --rounds N            rounds per cell (default 5)
  --secs S              measured seconds per run (default 1.0; perf counts 0.5 s after)
  --conns A,B,..        connection counts (default 1,50)
  --depths A,B,..       requests sent at once per connection, the next batch when all
                        replies came (default 16)
  --workloads A,B       set,get (default both)
  --servers A,B         resp (ours), redis (default both)
  --keys N              keys, preloaded before every run (default 10000)
  --value BYTES         value size (default 3, redis-benchmark's)
  --redis-benchmark N   requests per test of the redis-benchmark cross-check
                        (`-t set,get -P 16 -c 50`; default 200000, 0: none)
  --no-perf             no perf stat counts
  --no-strace           no strace -c runs";

pub struct RespOpts {
    pub quick: bool,
    pub write_docs: bool,
    pub rounds: usize,
    pub windows: Windows,
    pub conns: Vec<usize>,
    pub depths: Vec<usize>,
    pub workloads: Vec<Workload>,
    pub kinds: Vec<RespKind>,
    pub data: Data,
    pub bench_n: usize,
    pub perf: bool,
    pub strace: bool,
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

impl RespOpts {
    pub fn parse(args: &[String]) -> io::Result<RespOpts> {
        let mut o = RespOpts {
            quick: false,
            write_docs: true,
            rounds: 5,
            windows: Windows {
                ramp: 0.2,
                window: 1.0,
                perf_window: 0.5,
                strace_window: 0.5,
            },
            conns: vec![1, 50],
            depths: vec![16],
            workloads: vec![Workload::Set, Workload::Get],
            kinds: RespKind::ALL.to_vec(),
            data: Data {
                keys: 10_000,
                value: 3,
            },
            bench_n: 200_000,
            perf: true,
            strace: true,
            retry_budget: 30,
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
                    o.windows = Windows {
                        ramp: 0.05,
                        window: 0.2,
                        perf_window: 0.1,
                        strace_window: 0.2,
                    };
                    o.conns = vec![50];
                    o.data.keys = 1000;
                    o.bench_n = 20_000;
                    o.retry_budget = 0;
                }
                "--no-write" => o.write_docs = false,
                "--rounds" => o.rounds = list(val()?)?[0].max(1),
                "--secs" => {
                    o.windows.window = val()?.parse().map_err(|_| invalid("--secs: a number"))?;
                }
                "--conns" => o.conns = list(val()?)?,
                "--depths" => o.depths = list(val()?)?,
                "--workloads" => {
                    o.workloads = val()?
                        .split(',')
                        .map(|s| {
                            Workload::from_name(s).ok_or_else(|| invalid(format!("workload {s}?")))
                        })
                        .collect::<io::Result<_>>()?;
                }
                "--servers" => {
                    o.kinds = val()?
                        .split(',')
                        .map(|s| {
                            RespKind::from_name(s).ok_or_else(|| invalid(format!("server {s}?")))
                        })
                        .collect::<io::Result<_>>()?;
                }
                "--keys" => o.data.keys = list(val()?)?[0].max(1) as u64,
                "--value" => o.data.value = list(val()?)?[0],
                "--redis-benchmark" => o.bench_n = list(val()?)?[0],
                "--no-perf" => o.perf = false,
                "--no-strace" => o.strace = false,
                s => return Err(invalid(format!("unknown option {s}\n\n{USAGE}"))),
            }
        }
        if o.depths.contains(&0) || o.conns.contains(&0) {
            return Err(invalid("--depths, --conns: at least 1"));
        }
        Ok(o)
    }

    /// The command line that reproduces this run.
    pub fn command(&self) -> String {
        let mut c = "cargo run --release --manifest-path bench/Cargo.toml -- resp".to_string();
        for a in &self.args {
            c.push(' ');
            c.push_str(a);
        }
        c
    }
}

/// One cell: `depth` requests of `workload` at once on each of `conns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RespCell {
    pub workload: Workload,
    pub depth: usize,
    pub conns: usize,
}

impl RespCell {
    pub fn name(self) -> String {
        format!(
            "{} -P {} × {}",
            self.workload.name(),
            self.depth,
            self.conns
        )
    }
}

/// One `redis-benchmark` run: requests per second by test, and the server's CPU
/// per request over the whole run.
pub struct BenchRun {
    pub rps: Vec<(String, f64)>,
    pub cpu_us_per_op: f64,
}

/// An `strace -c` run: its counts and the ops meanwhile.
pub type StraceRun = (RespCell, RespKind, io::Result<(Calls, u64)>);

/// Everything a RESP comparison measured.
pub struct RespResults {
    pub machine: Machine,
    pub redis: String,
    pub command: String,
    pub cpus: Cpus,
    pub cells: Vec<RespCell>,
    pub kinds: Vec<RespKind>,
    pub runs: Runs<RespCell, RespKind>,
    pub strace: Vec<StraceRun>,
    pub bench: Vec<(RespKind, io::Result<BenchRun>)>,
    pub bench_command: String,
    pub elapsed: Duration,
    pub notes: Vec<String>,
    pub opts_summary: String,
}

/// `echo-bench resp ...`.
pub fn main(args: &[String], docs_dir: &Path) -> io::Result<()> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let o = RespOpts::parse(args)?;
    let results = run(&o)?;
    let md = report::markdown(&results);
    println!("{md}");
    if o.write_docs {
        let path = docs_dir.join("benchmarks.md");
        let old = std::fs::read_to_string(&path).unwrap_or_else(|_| micro::DOC_SKELETON.into());
        std::fs::write(&path, micro::replace_block(&old, "RESP", &md))?;
        eprintln!("echo-bench resp: wrote the RESP block of docs/benchmarks.md");
    }
    eprintln!(
        "echo-bench resp: done in {:.0} s",
        results.elapsed.as_secs_f64()
    );
    Ok(())
}

fn dialect(cell: RespCell, o: &RespOpts) -> Resp {
    Resp {
        workload: cell.workload,
        data: o.data,
    }
}

/// A directory for redis-server's files (none are written with persistence off).
fn redis_dir() -> io::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("echo-bench-redis-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn one_run(
    kind: RespKind,
    cell: RespCell,
    o: &RespOpts,
    cpus: Cpus,
    perf: bool,
) -> io::Result<Run> {
    let server = resp_server::start(kind, cpus.server, &redis_dir()?)?;
    let d = dialect(cell, o);
    exchange::preload(server.addr, &d)?;
    let (perf, perf_error) = attach_perf(perf, server.pid, cpus.client, &KV_SYSCALLS);
    let conns = Batched::wrap(
        exchange::connect(server.addr, cell.conns, &d, cell.depth)?,
        true,
    );
    orchestrate::measure(&server, conns, cell.depth, &o.windows, perf, perf_error)
}

fn strace_run(
    kind: RespKind,
    cell: RespCell,
    o: &RespOpts,
    cpus: Cpus,
) -> io::Result<(Calls, u64)> {
    let server = resp_server::start(kind, cpus.server, &redis_dir()?)?;
    let d = dialect(cell, o);
    exchange::preload(server.addr, &d)?;
    let conns = Batched::wrap(
        exchange::connect(server.addr, cell.conns, &d, cell.depth)?,
        true,
    );
    let w = &o.windows;
    orchestrate::strace_measure(
        &server,
        conns,
        cell.depth,
        w.ramp,
        w.strace_window,
        cpus.client,
    )
}

/// `redis-benchmark` against `kind`: the command (with PORT for the port) and
/// what it measured.
fn bench_args(o: &RespOpts) -> Vec<String> {
    let depth = o.depths.iter().copied().max().unwrap_or(16);
    [
        "-t",
        "set,get",
        "-P",
        &depth.to_string(),
        "-c",
        "50",
        "-q",
        "-n",
        &o.bench_n.to_string(),
        "-d",
        &o.data.value.to_string(),
        "-r",
        &o.data.keys.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn redis_benchmark(kind: RespKind, o: &RespOpts, cpus: Cpus) -> io::Result<BenchRun> {
    let server = resp_server::start(kind, cpus.server, &redis_dir()?)?;
    let port = server.addr.port().to_string();
    let mut cmd = Command::new("redis-benchmark");
    cmd.args(["-h", "127.0.0.1", "-p", &port])
        .args(bench_args(o))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    pin_command(&mut cmd, cpus.client);
    let c0 = tracing::proc_cpu(server.pid).unwrap_or(f64::NAN);
    let mut child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("redis-benchmark: {e}")))?;
    let limit = Duration::from_secs(if o.quick { 30 } else { 120 });
    let until = Instant::now() + limit;
    while child.try_wait()?.is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            return Err(other_err(format!(
                "redis-benchmark did not finish within {} s",
                limit.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let c1 = tracing::proc_cpu(server.pid).unwrap_or(f64::NAN);
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = parse_bench(&text);
    if rps.is_empty() {
        return Err(other_err(format!(
            "no result from redis-benchmark: {text:?}"
        )));
    }
    Ok(BenchRun {
        cpu_us_per_op: (c1 - c0) * 1e6 / (o.bench_n * rps.len()).max(1) as f64,
        rps,
    })
}

/// `SET: 123456.79 requests per second, p50=...` lines (after the last `\r` of
/// the progress output) as (test, requests per second).
fn parse_bench(text: &str) -> Vec<(String, f64)> {
    text.split(['\r', '\n'])
        .filter_map(|l| {
            let (name, rest) = l.split_once(": ")?;
            let n = rest
                .strip_suffix("requests per second")
                .or_else(|| rest.split_once(" requests per second").map(|(n, _)| n))?;
            Some((name.trim().to_string(), n.trim().parse().ok()?))
        })
        .collect()
}

fn redis_version() -> Option<String> {
    let o = Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (!s.is_empty()).then_some(s)
}

pub fn run(o: &RespOpts) -> io::Result<RespResults> {
    let began = Instant::now();
    raise_nofile()?;
    let cpus = Cpus::pick();
    let mut machine = orchestrate::machine();
    if let Some(cpu) = cpus.client {
        pin_to(cpu)?;
    }
    let mut notes = Vec::new();
    let mut kinds = o.kinds.clone();
    let redis = redis_version();
    if redis.is_none() && kinds.contains(&RespKind::Redis) {
        kinds.retain(|&k| k != RespKind::Redis);
        notes.push(
            "redis-server is not installed (apt-get install redis-server redis-tools): ours only"
                .into(),
        );
    }
    let redis = redis.unwrap_or_else(|| "not installed".into());
    eprintln!(
        "echo-bench resp: {} cores, {}, {}, load average {}; {redis}; server on CPU {:?}, clients on CPU {:?}",
        machine.nproc, machine.cpu, machine.kernel, machine.load_start, cpus.server, cpus.client
    );
    if cpus.server.is_none() {
        notes.push("fewer than 2 CPUs: servers and clients are not pinned".to_string());
    }
    let perf = o.perf && tracing::have("perf");
    if o.perf && !perf {
        notes.push("perf is not installed: no syscall counts".into());
    }
    let mut cells = Vec::new();
    for &workload in &o.workloads {
        for &depth in &o.depths {
            for &conns in &o.conns {
                cells.push(RespCell {
                    workload,
                    depth,
                    conns,
                });
            }
        }
    }
    let runs = orchestrate::rounds(
        &cells,
        |_| kinds.clone(),
        o.rounds,
        o.retry_budget,
        |kind, cell| format!("{} {}", kind.name(), cell.name()),
        |kind, cell| one_run(kind, cell, o, cpus, perf),
        &mut notes,
    )?;
    let mut strace = Vec::new();
    if o.strace && tracing::have("strace") {
        let most = *o.conns.iter().max().unwrap_or(&1);
        let plan: Vec<RespCell> = cells
            .iter()
            .copied()
            .filter(|c| c.conns == most)
            .take(if o.quick { 1 } else { usize::MAX })
            .collect();
        for cell in plan {
            for &kind in &kinds {
                let r = strace_run(kind, cell, o, cpus);
                match &r {
                    Ok((c, ops)) => eprintln!(
                        "  strace {} {}: {:.3} syscalls/op ({} calls, {ops} ops)",
                        kind.name(),
                        cell.name(),
                        c.total as f64 / (*ops).max(1) as f64,
                        c.total
                    ),
                    Err(e) => eprintln!("  strace {} {}: {e}", kind.name(), cell.name()),
                }
                strace.push((cell, kind, r));
            }
        }
    }
    let mut bench = Vec::new();
    let bench_rounds = if o.quick { 1 } else { 3 };
    if o.bench_n > 0 && tracing::have("redis-benchmark") {
        for round in 0..bench_rounds {
            for j in 0..kinds.len() {
                let kind = kinds[(j + round) % kinds.len()];
                let r = redis_benchmark(kind, o, cpus);
                match &r {
                    Ok(b) => eprintln!(
                        "  redis-benchmark {}: {} ({:.2} µs server CPU per request)",
                        kind.name(),
                        b.rps
                            .iter()
                            .map(|(t, n)| format!("{t} {n:.0}/s"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        b.cpu_us_per_op
                    ),
                    Err(e) => eprintln!("  redis-benchmark {}: {e}", kind.name()),
                }
                bench.push((kind, r));
            }
        }
    } else if o.bench_n > 0 {
        notes.push("redis-benchmark is not installed (apt-get install redis-tools)".into());
    }
    let _ = std::fs::remove_dir_all(redis_dir()?);
    machine.load_end = orchestrate::loadavg();
    Ok(RespResults {
        machine,
        redis,
        command: o.command(),
        cpus,
        cells,
        kinds,
        runs,
        strace,
        bench,
        bench_command: format!(
            "redis-benchmark -h 127.0.0.1 -p PORT {}",
            bench_args(o).join(" ")
        ),
        elapsed: began.elapsed(),
        notes,
        opts_summary: format!(
            "{} round(s) per cell; per run {:.2} s ramp, {:.2} s measured, then {:.2} s of perf stat; strace windows {:.2} s; {} keys preloaded, {}-byte values",
            o.rounds,
            o.windows.ramp,
            o.windows.window,
            o.windows.perf_window,
            o.windows.strace_window,
            o.data.keys,
            o.data.value
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_benchmark_quiet_output() {
        let text = "SET: rps=0.0 (overall: nan) avg_msec=nan (overall: nan)\r\
                    SET: 185185.19 requests per second, p50=0.175 msec\n\
                    GET: 200000.00 requests per second, p50=0.151 msec\n\n";
        assert_eq!(
            parse_bench(text),
            [
                ("SET".to_string(), 185185.19),
                ("GET".to_string(), 200000.0)
            ]
        );
    }
}
