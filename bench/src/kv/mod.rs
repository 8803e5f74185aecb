//! `echo-bench kv`: the crate's `examples/kv_server` against `memcached -t 1`, both
//! pinned to the server CPU, under the bench's own closed-loop memcached load
//! ([`client`]) on the other CPU: `get` and `set`, rounds alternating between the
//! servers, measured as the echo comparison measures ([`crate::orchestrate::measure`]).
//!
//! The pipelined rows send `--pipeline` requests (16) at once and the next ones
//! only when all their replies came (`redis-benchmark -P 16`'s shape, see
//! [`crate::exchange::Batched`]); a `set` is two messages to the server (its line
//! and its data block), so 16 sets are 32. They run kv_server with
//! `TCP_NODELAY` on (its default) and off (`--no-nodelay`) against memcached.

pub mod client;
mod report;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::exchange::Batched;
use crate::load::{self, Shared};
use crate::orchestrate::{self, attach_perf, Cpus, Machine, Run, Windows};
use crate::servers::kv::{self as kv_servers, KvKind};
use crate::servers::pin_to;
use crate::tracing::{self, Calls, KV_SYSCALLS};
use crate::{invalid, micro, other_err, raise_nofile};
use client::{Data, Workload};

pub const USAGE: &str = "\
usage: echo-bench kv [OPTIONS]         kv_server against memcached -t 1; rewrites the KV
                                       block of docs/benchmarks.md
       echo-bench kv profile [--server K] [--workload W] [--depth D] [--conns N] [--secs S]
                                       perf record -g on one server under the kv load;
                                       prints the flat profile (default: kv get 8 50 2)

options:
  --quick            CI's smoke run (about 20 s once kv_server is built): 1 round of
                     0.2 s, depth 8 and the pipelined rows, 1000 keys, one strace
                     cell; prints, writes nothing
  --no-write         print only, do not rewrite docs/
  --rounds N         rounds per cell (default 5)
  --secs S           measured seconds per run (default 1.0; perf counts 0.5 s after)
  --conns A,B,..     connection counts (default 1,50)
  --depths A,B,..    requests in flight per connection (default 1,8)
  --pipeline D       the pipelined rows: D requests sent at once, the next D when
                     all replies came (default 16; 0: none)
  --workloads A,B    get,set (default both)
  --servers A,B,..   kv (select), kv-poll, kv-nagle (kv_server --no-nodelay, in the
                     pipelined rows only), memcached (default all four)
  --keys N           keys, preloaded before every run (default 10000)
  --value BYTES      value size (default 100)
  --no-perf          no perf stat counts
  --no-strace        no strace -c runs";

pub struct KvOpts {
    pub quick: bool,
    pub write_docs: bool,
    pub rounds: usize,
    pub windows: Windows,
    pub conns: Vec<usize>,
    pub depths: Vec<usize>,
    pub pipeline: usize,
    pub workloads: Vec<Workload>,
    pub kinds: Vec<KvKind>,
    pub data: Data,
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

impl KvOpts {
    pub fn parse(args: &[String]) -> io::Result<KvOpts> {
        let mut o = KvOpts {
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
            depths: vec![1, 8],
            pipeline: 16,
            workloads: Workload::ALL.to_vec(),
            kinds: KvKind::DEFAULT.to_vec(),
            data: Data {
                keys: 10_000,
                value: 100,
            },
            perf: true,
            strace: true,
            retry_budget: 40,
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
                    o.depths = vec![8];
                    o.data.keys = 1000;
                    o.retry_budget = 0;
                }
                "--no-write" => o.write_docs = false,
                "--rounds" => o.rounds = list(val()?)?[0].max(1),
                "--secs" => {
                    o.windows.window = val()?.parse().map_err(|_| invalid("--secs: a number"))?;
                }
                "--conns" => o.conns = list(val()?)?,
                "--depths" => o.depths = list(val()?)?,
                "--pipeline" => o.pipeline = list(val()?)?[0],
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
                            KvKind::from_name(s).ok_or_else(|| invalid(format!("server {s}?")))
                        })
                        .collect::<io::Result<_>>()?;
                }
                "--keys" => o.data.keys = list(val()?)?[0].max(1) as u64,
                "--value" => o.data.value = list(val()?)?[0],
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
        let mut c = "cargo run --release --manifest-path bench/Cargo.toml -- kv".to_string();
        for a in &self.args {
            c.push(' ');
            c.push_str(a);
        }
        c
    }
}

/// One cell of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KvCell {
    pub workload: Workload,
    pub depth: usize,
    pub conns: usize,
    /// `depth` requests at once, the next `depth` when all replies came (the
    /// pipelined rows); otherwise a new request for each reply.
    pub batched: bool,
}

impl KvCell {
    pub fn name(self) -> String {
        format!(
            "{} depth {}{} × {}",
            self.workload.name(),
            self.depth,
            if self.batched { " in batches" } else { "" },
            self.conns
        )
    }

    /// The servers of `kinds` that run this cell: kv-nagle in the pipelined rows
    /// only, kv-poll outside them.
    pub fn kinds(self, kinds: &[KvKind]) -> Vec<KvKind> {
        kinds
            .iter()
            .copied()
            .filter(|&k| match k {
                KvKind::Nagle => self.batched,
                KvKind::Poll => !self.batched,
                _ => true,
            })
            .collect()
    }
}

/// An `strace -c` run: its counts and the ops meanwhile.
pub type StraceRun = (KvCell, KvKind, io::Result<(Calls, u64)>);

/// Everything a kv comparison measured.
pub struct KvResults {
    pub machine: Machine,
    pub memcached: String,
    pub command: String,
    pub cpus: Cpus,
    pub cells: Vec<KvCell>,
    pub kinds: Vec<KvKind>,
    /// A "line" of a run is one request and its reply.
    pub runs: BTreeMap<(KvCell, KvKind), Vec<Run>>,
    pub strace: Vec<StraceRun>,
    pub elapsed: Duration,
    pub notes: Vec<String>,
    pub opts_summary: String,
}

/// `echo-bench kv ...`.
pub fn main(args: &[String], bench_dir: &Path, docs_dir: &Path) -> io::Result<()> {
    match args.first().map(String::as_str) {
        Some("profile") => return profile_main(&args[1..], bench_dir),
        Some("-h") | Some("--help") => {
            println!("{USAGE}");
            return Ok(());
        }
        _ => {}
    }
    let o = KvOpts::parse(args)?;
    let results = run(&o, bench_dir)?;
    let md = report::markdown(&results);
    println!("{md}");
    if o.write_docs {
        let path = docs_dir.join("benchmarks.md");
        let old = std::fs::read_to_string(&path).unwrap_or_else(|_| micro::DOC_SKELETON.into());
        std::fs::write(&path, micro::replace_block(&old, "KV", &md))?;
        eprintln!("echo-bench kv: wrote the KV block of docs/benchmarks.md");
    }
    eprintln!(
        "echo-bench kv: done in {:.0} s",
        results.elapsed.as_secs_f64()
    );
    Ok(())
}

/// One run of `kind` on `cell`: start it, preload the keys, connect, load;
/// measure; stop.
fn one_run(
    kind: KvKind,
    cell: KvCell,
    o: &KvOpts,
    kv_bin: &Path,
    cpus: Cpus,
    perf: bool,
) -> io::Result<Run> {
    let server = kv_servers::start(kind, kv_bin, cpus.server)?;
    client::preload(server.addr, o.data)?;
    let (perf, perf_error) = attach_perf(perf, server.pid, cpus.client, &KV_SYSCALLS);
    let conns = client::connect(server.addr, cell.conns, cell.workload, o.data, cell.depth)?;
    let conns = Batched::wrap(conns, cell.batched);
    orchestrate::measure(&server, conns, cell.depth, &o.windows, perf, perf_error)
}

fn strace_run(
    kind: KvKind,
    cell: KvCell,
    o: &KvOpts,
    kv_bin: &Path,
    cpus: Cpus,
) -> io::Result<(Calls, u64)> {
    let server = kv_servers::start(kind, kv_bin, cpus.server)?;
    client::preload(server.addr, o.data)?;
    let conns = client::connect(server.addr, cell.conns, cell.workload, o.data, cell.depth)?;
    let conns = Batched::wrap(conns, cell.batched);
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

pub(crate) fn memcached_version() -> String {
    Command::new("memcached")
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "memcached (version unknown)".into())
}

pub fn run(o: &KvOpts, bench_dir: &Path) -> io::Result<KvResults> {
    let began = Instant::now();
    raise_nofile()?;
    let cpus = Cpus::pick();
    let mut machine = orchestrate::machine();
    if let Some(cpu) = cpus.client {
        pin_to(cpu)?;
    }
    let memcached = memcached_version();
    eprintln!(
        "echo-bench kv: {} cores, {}, {}, load average {}; {memcached}; server on CPU {:?}, clients on CPU {:?}",
        machine.nproc, machine.cpu, machine.kernel, machine.load_start, cpus.server, cpus.client
    );
    let kv_bin = if o.kinds.iter().any(|k| k.is_ours()) {
        kv_servers::build_kv(bench_dir)?
    } else {
        PathBuf::new()
    };
    let mut notes = Vec::new();
    if cpus.server.is_none() {
        notes.push("fewer than 2 CPUs: servers and clients are not pinned".to_string());
    }
    let mut kinds = o.kinds.clone();
    if kinds.contains(&KvKind::Nagle) && !kv_servers::has_option(&kv_bin, "--no-nodelay") {
        kinds.retain(|&k| k != KvKind::Nagle);
        notes.push("kv_server has no --no-nodelay option (yet): no kv-nagle rows".into());
    }
    let perf = o.perf && tracing::have("perf");
    if o.perf && !perf {
        notes.push("perf is not installed: no syscall counts".into());
    }
    let strace = o.strace && tracing::have("strace");
    let mut cells = Vec::new();
    for &workload in &o.workloads {
        for &depth in &o.depths {
            for &conns in &o.conns {
                cells.push(KvCell {
                    workload,
                    depth,
                    conns,
                    batched: false,
                });
            }
        }
    }
    if o.pipeline > 0 {
        // The smoke run: the pipelined rows at the most connections only.
        let most = o.conns.iter().copied().max().unwrap_or(1);
        for &workload in &o.workloads {
            for &conns in o.conns.iter().filter(|&&c| !o.quick || c == most) {
                cells.push(KvCell {
                    workload,
                    depth: o.pipeline,
                    conns,
                    batched: true,
                });
            }
        }
    }
    let runs = orchestrate::rounds(
        &cells,
        |cell| cell.kinds(&kinds),
        o.rounds,
        o.retry_budget,
        |kind, cell| format!("{} {}", kind.name(), cell.name()),
        |kind, cell| one_run(kind, cell, o, &kv_bin, cpus, perf),
        &mut notes,
    )?;

    let mut strace_results = Vec::new();
    if strace {
        let plan: Vec<KvCell> = if o.quick {
            vec![KvCell {
                workload: o.workloads[0],
                depth: *o.depths.iter().max().unwrap_or(&1),
                conns: *o.conns.iter().max().unwrap_or(&1),
                batched: false,
            }]
        } else {
            cells.iter().copied().filter(|c| c.conns > 1).collect()
        };
        for cell in plan {
            for kind in cell.kinds(&kinds) {
                let r = strace_run(kind, cell, o, &kv_bin, cpus);
                match &r {
                    Ok((c, ops)) => eprintln!(
                        "  strace {} {}: {:.3} syscalls/op ({} calls, {} ops)",
                        kind.name(),
                        cell.name(),
                        c.total as f64 / (*ops).max(1) as f64,
                        c.total,
                        ops
                    ),
                    Err(e) => eprintln!("  strace {} {}: {e}", kind.name(), cell.name()),
                }
                strace_results.push((cell, kind, r));
            }
        }
    }
    machine.load_end = orchestrate::loadavg();
    Ok(KvResults {
        machine,
        memcached,
        command: o.command(),
        cpus,
        cells,
        kinds,
        runs,
        strace: strace_results,
        elapsed: began.elapsed(),
        notes,
        opts_summary: format!(
            "{} round(s) per cell; per run {:.2} s ramp, {:.2} s measured, then {:.2} s of perf stat; strace windows {:.2} s; {} keys preloaded, {}-byte values; pipelined rows: {} requests at once",
            o.rounds,
            o.windows.ramp,
            o.windows.window,
            o.windows.perf_window,
            o.windows.strace_window,
            o.data.keys,
            o.data.value,
            o.pipeline
        ),
    })
}

/// `echo-bench kv profile`: `perf record -g` on one server under the kv load.
fn profile_main(args: &[String], bench_dir: &Path) -> io::Result<()> {
    let (mut kind, mut workload, mut depth, mut conns, mut secs) =
        (KvKind::Select, Workload::Get, 8, 50, 2.0);
    let data = Data {
        keys: 10_000,
        value: 100,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it
            .next()
            .ok_or_else(|| invalid(format!("{a} needs a value")))?;
        match a.as_str() {
            "--server" => kind = KvKind::from_name(v).ok_or_else(|| invalid("--server?"))?,
            "--workload" => {
                workload = Workload::from_name(v).ok_or_else(|| invalid("--workload?"))?;
            }
            "--depth" => depth = list(v)?[0].max(1),
            "--conns" => conns = list(v)?[0].max(1),
            "--secs" => secs = v.parse().map_err(|_| invalid("--secs: a number"))?,
            s => return Err(invalid(format!("unknown option {s}\n\n{USAGE}"))),
        }
    }
    raise_nofile()?;
    let cpus = Cpus::pick();
    if let Some(cpu) = cpus.client {
        pin_to(cpu)?;
    }
    let kv_bin = if kind.is_ours() {
        kv_servers::build_kv(bench_dir)?
    } else {
        PathBuf::new()
    };
    let server = kv_servers::start(kind, &kv_bin, cpus.server)?;
    client::preload(server.addr, data)?;
    let mut cs = client::connect(server.addr, conns, workload, data, depth)?;
    let shared = Shared::default();
    let far = Instant::now() + Duration::from_secs(3600);
    let (tally, prof) = thread::scope(|s| {
        let load = s.spawn(|| load::drive(&mut cs, depth, &shared, far, far));
        thread::sleep(Duration::from_millis(200));
        let l0 = shared.live.load(std::sync::atomic::Ordering::Relaxed);
        let c0 = tracing::proc_cpu(server.pid).unwrap_or(0.0);
        let prof = tracing::profile(server.pid, secs, cpus.client);
        let l1 = shared.live.load(std::sync::atomic::Ordering::Relaxed);
        let c1 = tracing::proc_cpu(server.pid).unwrap_or(0.0);
        shared
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let tally = load
            .join()
            .unwrap_or_else(|_| Err(other_err("the load thread panicked")));
        (tally, prof.map(|p| (p, l1 - l0, c1 - c0)))
    });
    load::close_all(cs);
    tally?;
    let (text, ops, cpu) = prof?;
    println!(
        "{} {} depth {depth} × {conns} connections, {secs} s under perf record -g: {ops} ops, {:.2} µs CPU/op\n{text}",
        kind.label(),
        workload.name(),
        cpu * 1e6 / ops.max(1) as f64
    );
    Ok(())
}
