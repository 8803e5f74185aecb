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

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::{self, Common, Requests};
use crate::exchange::Batched;
use crate::orchestrate::{self, attach_perf, Cpus, Header, Run, Runs, Session, StraceRun};
use crate::raise_nofile;
use crate::servers::kv::{self as kv_servers, KvKind};
use crate::tracing::Calls;
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
    pub c: Common,
    pub r: Requests,
    pub pipeline: usize,
    pub kinds: Vec<KvKind>,
}

impl KvOpts {
    pub fn parse(args: &[String]) -> io::Result<KvOpts> {
        let mut o = KvOpts {
            c: Common::new("kv", args, 5, 40, cli::FULL, cli::QUICK),
            r: Requests {
                conns: vec![1, 50],
                depths: vec![1, 8],
                workloads: Workload::ALL.to_vec(),
                data: Data {
                    keys: 10_000,
                    value: 100,
                },
            },
            pipeline: 16,
            kinds: KvKind::DEFAULT.to_vec(),
        };
        o.r.parse(&mut o.c, USAGE, |a, p, r| {
            match a {
                "--quick" => {
                    r.depths = vec![8];
                    r.data.keys = 1000;
                }
                "--pipeline" => o.pipeline = p.number(a)?,
                "--servers" => o.kinds = p.names(a, KvKind::from_name)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(o)
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

/// Everything a kv comparison measured.
pub struct KvResults {
    pub head: Header,
    pub memcached: String,
    pub cells: Vec<KvCell>,
    pub kinds: Vec<KvKind>,
    /// A "line" of a run is one request and its reply.
    pub runs: Runs<KvCell, KvKind>,
    pub strace: Vec<StraceRun<KvCell, KvKind>>,
}

/// `echo-bench kv ...`.
pub fn main(args: &[String], bench_dir: &Path, docs_dir: &Path) -> io::Result<()> {
    if args.first().is_some_and(|a| a == "profile") {
        return profile_main(&args[1..], bench_dir);
    }
    if cli::help(args, USAGE) {
        return Ok(());
    }
    let o = KvOpts::parse(args)?;
    let r = run(&o, bench_dir)?;
    let md = report::markdown(&r);
    o.c.publish(&md, docs_dir, &[("KV", &md)], r.head.elapsed)
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
    client::preload(server.addr, o.r.data)?;
    let (perf, perf_error) = attach_perf(perf, server.pid, cpus.client);
    let conns = client::connect(server.addr, cell.conns, cell.workload, o.r.data, cell.depth)?;
    let conns = Batched::wrap(conns, cell.batched);
    orchestrate::measure(&server, conns, cell.depth, &o.c.windows, perf, perf_error)
}

fn strace_run(
    kind: KvKind,
    cell: KvCell,
    o: &KvOpts,
    kv_bin: &Path,
    cpus: Cpus,
) -> io::Result<(Calls, u64)> {
    let server = kv_servers::start(kind, kv_bin, cpus.server)?;
    client::preload(server.addr, o.r.data)?;
    let conns = client::connect(server.addr, cell.conns, cell.workload, o.r.data, cell.depth)?;
    let conns = Batched::wrap(conns, cell.batched);
    orchestrate::strace_measure(&server, conns, cell.depth, &o.c.windows, cpus.client)
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
    let memcached = memcached_version();
    let mut s = Session::begin(&o.c, &format!("; {memcached}"))?;
    let cpus = s.cpus;
    let kv_bin = if o.kinds.iter().any(|k| k.is_ours()) {
        kv_servers::build_kv(bench_dir)?
    } else {
        PathBuf::new()
    };
    let mut kinds = o.kinds.clone();
    if kinds.contains(&KvKind::Nagle) && !kv_servers::has_option(&kv_bin, "--no-nodelay") {
        kinds.retain(|&k| k != KvKind::Nagle);
        s.notes
            .push("kv_server has no --no-nodelay option (yet): no kv-nagle rows".into());
    }
    let mut cells = Vec::new();
    for &workload in &o.r.workloads {
        for &depth in &o.r.depths {
            for &conns in &o.r.conns {
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
        let most = o.r.conns.iter().copied().max().unwrap_or(1);
        for &workload in &o.r.workloads {
            for &conns in o.r.conns.iter().filter(|&&c| !o.c.quick || c == most) {
                cells.push(KvCell {
                    workload,
                    depth: o.pipeline,
                    conns,
                    batched: true,
                });
            }
        }
    }
    let name = |kind: KvKind, cell: KvCell| format!("{} {}", kind.name(), cell.name());
    let runs = orchestrate::rounds(
        &cells,
        |cell| cell.kinds(&kinds),
        &o.c,
        "op",
        name,
        |kind, cell| one_run(kind, cell, o, &kv_bin, cpus, s.perf),
        &mut s.notes,
    )?;

    let mut strace = Vec::new();
    if s.strace {
        let plan: Vec<KvCell> = if o.c.quick {
            vec![KvCell {
                workload: o.r.workloads[0],
                depth: *o.r.depths.iter().max().unwrap_or(&1),
                conns: *o.r.conns.iter().max().unwrap_or(&1),
                batched: false,
            }]
        } else {
            cells.iter().copied().filter(|c| c.conns > 1).collect()
        };
        let plan: Vec<(KvCell, KvKind)> = plan
            .iter()
            .flat_map(|&c| c.kinds(&kinds).into_iter().map(move |k| (c, k)))
            .collect();
        strace = orchestrate::strace_all(&plan, "op", name, |kind, cell| {
            strace_run(kind, cell, o, &kv_bin, cpus)
        });
    }
    let summary = format!(
        "{}; {} keys preloaded, {}-byte values; pipelined rows: {} requests at once",
        o.c.summary(),
        o.r.data.keys,
        o.r.data.value,
        o.pipeline
    );
    Ok(KvResults {
        head: s.end(&o.c, summary),
        memcached,
        cells,
        kinds,
        runs,
        strace,
    })
}

/// `echo-bench kv profile`: `perf record -g` on one server under the kv load.
fn profile_main(args: &[String], bench_dir: &Path) -> io::Result<()> {
    let o = cli::Profile::parse(
        args,
        USAGE,
        (KvKind::Select, KvKind::from_name),
        ("--workload", Workload::Get, Workload::from_name),
    )?;
    let data = Data {
        keys: 10_000,
        value: 100,
    };
    raise_nofile()?;
    let cpus = Cpus::pick().pin_client()?;
    let kv_bin = if o.kind.is_ours() {
        kv_servers::build_kv(bench_dir)?
    } else {
        PathBuf::new()
    };
    let server = kv_servers::start(o.kind, &kv_bin, cpus.server)?;
    client::preload(server.addr, data)?;
    let cs = client::connect(server.addr, o.conns, o.load, data, o.depth)?;
    let seen = orchestrate::profile_load(&server, cs, o.depth, o.secs, cpus.client)?;
    o.print(o.kind.label(), o.load.name(), "op", seen);
    Ok(())
}
