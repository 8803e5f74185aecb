//! The echo comparison (`echo-bench` with no part): for every cell (mode,
//! pipeline depth, connections), rounds in which every server runs once, in an
//! order that rotates from round to round; then `strace -c` runs and the
//! idle-connection memory. [`report`] writes its block and chart.

pub mod report;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use crate::cli::{self, Common};
use crate::load;
use crate::orchestrate::{
    self, attach_perf, measure, strace_measure, Cpus, Header, Memory, Run, Runs, Session, StraceRun,
};
use crate::servers::{self, Kind, Mode, Server};
use crate::tracing::Calls;
use crate::{invalid, raise_nofile};

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
       echo-bench c10k [--quick] [...] 0 to 10,000 idle connections: kv_server on each
                                        backend against memcached -t 1, echo_server
                                        against mio (c10k --help)
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

/// The comparison's options.
pub struct Opts {
    pub c: Common,
    pub conns: Vec<usize>,
    pub depths: Vec<usize>,
    pub modes: Vec<Mode>,
    pub kinds: Vec<Kind>,
    pub line: usize,
    pub rss: bool,
    pub idle: usize,
}

impl Opts {
    pub fn parse(args: &[String]) -> io::Result<Opts> {
        let mut o = Opts {
            c: Common::new("", args, 3, 60, cli::FULL, cli::QUICK),
            conns: vec![1, 50, 500, 1000],
            depths: vec![1, 8, 32],
            modes: Mode::ALL.to_vec(),
            kinds: Kind::DEFAULT.to_vec(),
            line: 64,
            rss: true,
            idle: 1000,
        };
        o.c.parse(USAGE, |a, p| {
            match a {
                "--quick" => {
                    o.conns = vec![1, 1000];
                    o.depths = vec![1, 32];
                    o.idle = 100;
                }
                "--conns" => o.conns = p.list(a)?,
                "--depths" => o.depths = p.list(a)?,
                "--modes" => o.modes = p.names(a, Mode::from_name)?,
                "--servers" => o.kinds = p.names(a, Kind::from_name)?,
                "--line" => o.line = p.number(a)?,
                "--no-rss" => o.rss = false,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if o.line < load::MIN_LINE {
            return Err(invalid(format!("--line: at least {}", load::MIN_LINE)));
        }
        if o.depths.contains(&0) {
            return Err(invalid("--depths: at least 1"));
        }
        Ok(o)
    }
}

/// One cell of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cell {
    pub mode: Mode,
    pub depth: usize,
    pub conns: usize,
}

impl Cell {
    pub fn name(self) -> String {
        format!("{} depth {} × {}", self.mode.name(), self.depth, self.conns)
    }
}

/// Everything a comparison measured.
pub struct Results {
    pub head: Header,
    pub cells: Vec<Cell>,
    pub kinds: Vec<Kind>,
    pub runs: Runs<Cell, Kind>,
    pub strace: Vec<StraceRun<Cell, Kind>>,
    pub memory: BTreeMap<(Mode, Kind), Vec<Memory>>,
    pub idle: usize,
}

/// `echo-bench [OPTIONS]`: the comparison; rewrites the LOAD block and the chart.
pub fn main(args: &[String], bench_dir: &Path, docs_dir: &Path) -> io::Result<()> {
    let o = Opts::parse(args)?;
    let r = run(&o, bench_dir)?;
    let md = report::markdown(&r);
    if o.c.write_docs {
        std::fs::create_dir_all(docs_dir)?;
        std::fs::write(docs_dir.join("benchmarks.svg"), report::svg(&r))?;
    }
    o.c.publish(&md, docs_dir, &[("LOAD", &md)], r.head.elapsed)
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
    let (perf, perf_error) = attach_perf(perf, server.pid, cpus.client);
    let conns = load::connect(server.addr, cell.conns, o.line, cell.depth)?;
    measure(&server, conns, cell.depth, &o.c.windows, perf, perf_error)
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
    strace_measure(&server, conns, cell.depth, &o.c.windows, cpus.client)
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
    let (m, conns) = Memory::of(&server, o.idle, || {
        load::connect(server.addr, o.idle, o.line, 1)
    })?;
    load::close_all(conns);
    Ok(m)
}

pub fn run(o: &Opts, bench_dir: &Path) -> io::Result<Results> {
    let mut s = Session::begin(&o.c, "")?;
    let cpus = s.cpus;
    let c_bin = if o.kinds.contains(&Kind::C) {
        servers::build_c(bench_dir)?
    } else {
        PathBuf::new()
    };
    let mut cells = Vec::new();
    for &mode in &o.modes {
        for &depth in &o.depths {
            for &conns in &o.conns {
                if conns as u64 + 64 > s.nofile {
                    s.notes.push(format!(
                        "{conns} connections skipped: RLIMIT_NOFILE is {}",
                        s.nofile
                    ));
                    continue;
                }
                cells.push(Cell { mode, depth, conns });
            }
        }
    }
    // select(2) over FdSet: descriptors below FD_SETSIZE only.
    let fd_limited = |k: Kind| matches!(k, Kind::Ours | Kind::C);
    let runs = orchestrate::rounds(
        &cells,
        |cell| {
            o.kinds
                .iter()
                .copied()
                .filter(|&k| !fd_limited(k) || cell.conns + 16 <= unp_select::FD_SETSIZE)
                .collect()
        },
        &o.c,
        "line",
        |kind, cell| format!("{} {}", kind.name(), cell.name()),
        |kind, cell| one_run(kind, cell, o, &c_bin, cpus, s.perf),
        &mut s.notes,
    )?;

    let mut strace = Vec::new();
    if s.strace {
        let at50 = |mode, depth| Cell {
            mode,
            depth,
            conns: 50,
        };
        let cells: Vec<Cell> = if o.c.quick {
            vec![at50(Mode::Lines, 8)]
        } else {
            o.modes
                .iter()
                .flat_map(|&m| o.depths.iter().map(move |&d| at50(m, d)))
                .collect()
        };
        let plan: Vec<(Cell, Kind)> = cells
            .iter()
            .flat_map(|&c| o.kinds.iter().map(move |&k| (c, k)))
            .collect();
        strace = orchestrate::strace_all(
            &plan,
            "line",
            |kind, cell| format!("{} {}", kind.name(), cell.name()),
            |kind, cell| strace_run(kind, cell, o, &c_bin, cpus),
        );
    }

    let mut memory: BTreeMap<(Mode, Kind), Vec<Memory>> = BTreeMap::new();
    if o.rss {
        for round in 0..o.c.rounds {
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
    let summary = format!("{}; {}-byte lines", o.c.summary(), o.line);
    Ok(Results {
        head: s.end(&o.c, summary),
        cells,
        kinds: o.kinds.clone(),
        runs,
        strace,
        memory,
        idle: o.idle,
    })
}

/// `echo-bench profile`: `perf record -g` on one server under load.
pub fn profile_main(args: &[String], bench_dir: &Path) -> io::Result<()> {
    let o = cli::Profile::parse(
        args,
        USAGE,
        (Kind::Ours, Kind::from_name),
        ("--mode", Mode::Lines, Mode::from_name),
    )?;
    raise_nofile()?;
    let cpus = Cpus::pick().pin_client()?;
    let c_bin = if o.kind == Kind::C {
        servers::build_c(bench_dir)?
    } else {
        PathBuf::new()
    };
    let server = Server::start(o.kind, o.load, &c_bin, cpus.server)?;
    let cs = load::connect(server.addr, o.conns, 64, o.depth)?;
    let seen = orchestrate::profile_load(&server, cs, o.depth, o.secs, cpus.client)?;
    o.print(o.kind.label(), o.load.name(), "line", seen);
    Ok(())
}
