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

use crate::cli::{self, Common, Requests};
use crate::exchange::{self, Batched};
use crate::kv::client::{Data, Workload};
use crate::orchestrate::{self, attach_perf, Cpus, Header, Run, Runs, Session, StraceRun};
use crate::other_err;
use crate::servers::pin_command;
use crate::servers::resp::{self as resp_server, RespKind};
use crate::tracing::{self, Calls};
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
    pub c: Common,
    pub r: Requests,
    pub kinds: Vec<RespKind>,
    pub bench_n: usize,
}

impl RespOpts {
    pub fn parse(args: &[String]) -> io::Result<RespOpts> {
        let mut o = RespOpts {
            c: Common::new("resp", args, 5, 30, cli::FULL, cli::QUICK),
            r: Requests {
                conns: vec![1, 50],
                depths: vec![16],
                workloads: vec![Workload::Set, Workload::Get],
                data: Data {
                    keys: 10_000,
                    value: 3,
                },
            },
            kinds: RespKind::ALL.to_vec(),
            bench_n: 200_000,
        };
        o.r.parse(&mut o.c, USAGE, |a, p, r| {
            match a {
                "--quick" => {
                    r.conns = vec![50];
                    r.data.keys = 1000;
                    o.bench_n = 20_000;
                }
                "--servers" => o.kinds = p.names(a, RespKind::from_name)?,
                "--redis-benchmark" => o.bench_n = p.number(a)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(o)
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

/// Everything a RESP comparison measured.
pub struct RespResults {
    pub head: Header,
    pub redis: String,
    pub cells: Vec<RespCell>,
    pub kinds: Vec<RespKind>,
    pub runs: Runs<RespCell, RespKind>,
    pub strace: Vec<StraceRun<RespCell, RespKind>>,
    pub bench: Vec<(RespKind, io::Result<BenchRun>)>,
    pub bench_command: String,
}

/// `echo-bench resp ...`.
pub fn main(args: &[String], docs_dir: &Path) -> io::Result<()> {
    if cli::help(args, USAGE) {
        return Ok(());
    }
    let o = RespOpts::parse(args)?;
    let r = run(&o)?;
    let md = report::markdown(&r);
    o.c.publish(&md, docs_dir, &[("RESP", &md)], r.head.elapsed)
}

fn dialect(cell: RespCell, o: &RespOpts) -> Resp {
    Resp {
        workload: cell.workload,
        data: o.r.data,
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
    let (perf, perf_error) = attach_perf(perf, server.pid, cpus.client);
    let conns = Batched::wrap(
        exchange::connect(server.addr, cell.conns, &d, cell.depth)?,
        true,
    );
    orchestrate::measure(&server, conns, cell.depth, &o.c.windows, perf, perf_error)
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
    orchestrate::strace_measure(&server, conns, cell.depth, &o.c.windows, cpus.client)
}

/// `redis-benchmark` against `kind`: the command (with PORT for the port) and
/// what it measured.
fn bench_args(o: &RespOpts) -> Vec<String> {
    let depth = o.r.depths.iter().copied().max().unwrap_or(16);
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
        &o.r.data.value.to_string(),
        "-r",
        &o.r.data.keys.to_string(),
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
    let limit = Duration::from_secs(if o.c.quick { 30 } else { 120 });
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
    let redis = redis_version();
    let about = format!(
        "; {}",
        redis.as_deref().unwrap_or("redis-server not installed")
    );
    let mut s = Session::begin(&o.c, &about)?;
    let cpus = s.cpus;
    let mut kinds = o.kinds.clone();
    if redis.is_none() && kinds.contains(&RespKind::Redis) {
        kinds.retain(|&k| k != RespKind::Redis);
        s.notes.push(
            "redis-server is not installed (apt-get install redis-server redis-tools): ours only"
                .into(),
        );
    }
    let redis = redis.unwrap_or_else(|| "not installed".into());
    let mut cells = Vec::new();
    for &workload in &o.r.workloads {
        for &depth in &o.r.depths {
            for &conns in &o.r.conns {
                cells.push(RespCell {
                    workload,
                    depth,
                    conns,
                });
            }
        }
    }
    let name = |kind: RespKind, cell: RespCell| format!("{} {}", kind.name(), cell.name());
    let runs = orchestrate::rounds(
        &cells,
        |_| kinds.clone(),
        &o.c,
        "op",
        name,
        |kind, cell| one_run(kind, cell, o, cpus, s.perf),
        &mut s.notes,
    )?;
    let mut strace = Vec::new();
    if s.strace {
        let most = *o.r.conns.iter().max().unwrap_or(&1);
        let plan: Vec<(RespCell, RespKind)> = cells
            .iter()
            .copied()
            .filter(|c| c.conns == most)
            .take(if o.c.quick { 1 } else { usize::MAX })
            .flat_map(|c| kinds.iter().map(move |&k| (c, k)))
            .collect();
        strace = orchestrate::strace_all(&plan, "op", name, |kind, cell| {
            strace_run(kind, cell, o, cpus)
        });
    }
    let mut bench = Vec::new();
    let bench_rounds = if o.c.quick { 1 } else { 3 };
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
        s.notes
            .push("redis-benchmark is not installed (apt-get install redis-tools)".into());
    }
    let _ = std::fs::remove_dir_all(redis_dir()?);
    let summary = format!(
        "{}; {} keys preloaded, {}-byte values",
        o.c.summary(),
        o.r.data.keys,
        o.r.data.value
    );
    Ok(RespResults {
        head: s.end(&o.c, summary),
        redis,
        cells,
        kinds,
        runs,
        strace,
        bench,
        bench_command: format!(
            "redis-benchmark -h 127.0.0.1 -p PORT {}",
            bench_args(o).join(" ")
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
