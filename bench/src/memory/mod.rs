//! `echo-bench memory`: what hostile clients make the servers hold, as resident
//! memory (VmRSS and its peak VmHWM, /proc/PID/status), the crate's examples
//! against memcached where it has a counterpart ([`loads`]):
//!
//! * **stall**: many connections each one byte short of the end of a 1 MB
//!   `set`: kv_server against `memcached -m 64`;
//! * **bigget**: one 805-byte `get big big ...` naming a 1 MiB item 200 times,
//!   its 200 MiB reply read slowly: kv_server against memcached;
//! * **chat**: chat_server with 30 receivers that never read and one sender
//!   flooding it: against the empty server's memory and the loop's configured
//!   output bounds.

mod loads;
mod report;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::Duration;

use crate::cli::{self, Common};
use crate::invalid;
use crate::orchestrate::{Cpus, Header, Session};
use crate::servers::kv::{self as kv_servers, KvKind};
use crate::servers::Server;
use loads::{BigGet, Flood, Stalled};

pub const USAGE: &str = "\
usage: echo-bench memory [OPTIONS]   resident memory under hostile clients: kv_server
                                     against memcached -m 64, chat_server against its
                                     bounds; rewrites the MEMORY block of
                                     docs/benchmarks.md

options:
  --quick            CI's smoke run (a few seconds): 1 round, 100 stalled connections,
                     0.5 s of slow reading, a 1 s flood; prints, writes nothing
  --no-write         print only, do not rewrite docs/
  --rounds N         rounds, the servers alternating (default 3)
  --parts A,B,..     stall, bigget, chat (default all three)
  --conns N          stalled connections (default 1000)
  --slow S           seconds the big reply is read slowly (default 2)
  --flood S          seconds of the chat flood (default 3)";

/// Which load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Stall,
    BigGet,
    Chat,
}

impl Part {
    const ALL: [Part; 3] = [Part::Stall, Part::BigGet, Part::Chat];

    fn name(self) -> &'static str {
        match self {
            Part::Stall => "stall",
            Part::BigGet => "bigget",
            Part::Chat => "chat",
        }
    }
}

pub struct MemOpts {
    pub c: Common,
    pub parts: Vec<Part>,
    pub conns: usize,
    /// The stalled `set`'s value, bytes.
    pub value: usize,
    pub names: usize,
    pub slow: f64,
    pub flood: f64,
    pub receivers: usize,
    pub limit: Duration,
}

impl MemOpts {
    pub fn parse(args: &[String]) -> io::Result<MemOpts> {
        let mut o = MemOpts {
            c: Common::new("memory", args, 3, 0, cli::FULL, cli::QUICK),
            parts: Part::ALL.to_vec(),
            conns: 1000,
            value: 1_000_000,
            names: 200,
            slow: 2.0,
            flood: 3.0,
            receivers: 30,
            limit: Duration::from_secs(120),
        };
        o.c.parse(USAGE, |a, p| {
            match a {
                "--quick" => {
                    o.conns = 100;
                    o.slow = 0.5;
                    o.flood = 1.0;
                    o.limit = Duration::from_secs(30);
                }
                "--conns" => o.conns = p.number(a)?.max(1),
                "--slow" => o.slow = p.secs(a)?,
                "--flood" => o.flood = p.secs(a)?,
                "--parts" => {
                    o.parts = p.names(a, |s| Part::ALL.into_iter().find(|p| p.name() == s))?;
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        // No syscall counts: the Session looks for no tools.
        o.c.perf = false;
        o.c.strace = false;
        Ok(o)
    }
}

/// The servers with a memcached counterpart.
const KINDS: [KvKind; 2] = [KvKind::Select, KvKind::Memcached];

/// memcached as it runs here: one worker, 64 MB of items, items up to 2 MB (a
/// 1 MiB value needs more than the default 1 MB), connections beyond 1000.
pub const MEMCACHED_ARGS: [&str; 6] = ["-m", "64", "-I", "2m", "-c", "4096"];

pub struct MemResults {
    pub head: Header,
    pub memcached: String,
    pub stalled: BTreeMap<KvKind, Vec<Stalled>>,
    pub big: BTreeMap<KvKind, Vec<BigGet>>,
    pub flood: Vec<Flood>,
    /// The loop's output bounds chat_server runs with.
    pub bounds: String,
    pub receivers: usize,
}

/// `echo-bench memory ...`.
pub fn main(args: &[String], bench_dir: &Path, docs_dir: &Path) -> io::Result<()> {
    if cli::help(args, USAGE) {
        return Ok(());
    }
    let o = MemOpts::parse(args)?;
    let r = run(&o, bench_dir)?;
    let md = report::markdown(&r);
    o.c.publish(&md, docs_dir, &[("MEMORY", &md)], r.head.elapsed)
}

fn start(kind: KvKind, kv_bin: &Path, cpus: Cpus) -> io::Result<Server> {
    match kind {
        KvKind::Memcached => kv_servers::start_memcached(&MEMCACHED_ARGS, cpus.server),
        _ => kv_servers::start(kind, kv_bin, cpus.server),
    }
}

/// `e`, saying what it happened in.
fn context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The output bounds of `Config::default()`, which chat_server runs with.
fn chat_bounds(receivers: usize) -> String {
    let c = unp_select::server::Config::default();
    let m = |b: usize| b as f64 / 1048576.0;
    format!(
        "`Config::default()`: max_output {:.0} MiB per connection (× {receivers} receivers: \
         {:.0} MiB), max_output_total {:.0} MiB for all connections, write_timeout {} s",
        m(c.max_output),
        m(c.max_output * receivers),
        m(c.max_output_total),
        c.write_timeout.as_secs_f64()
    )
}

pub fn run(o: &MemOpts, bench_dir: &Path) -> io::Result<MemResults> {
    let memcached = super::kv::memcached_version();
    let s = Session::begin(&o.c, &format!("; {memcached}"))?;
    let (cpus, nofile) = (s.cpus, s.nofile);
    if (o.conns as u64) + 64 > nofile {
        return Err(invalid(format!(
            "--conns {}: RLIMIT_NOFILE is {nofile}",
            o.conns
        )));
    }
    let want_kv = o.parts.iter().any(|&p| p != Part::Chat);
    let kv_bin = if want_kv {
        kv_servers::build_kv(bench_dir)?
    } else {
        Default::default()
    };
    let chat_bin = if o.parts.contains(&Part::Chat) {
        kv_servers::build_example(bench_dir, "chat_server")?
    } else {
        Default::default()
    };
    let (mut stalled, mut big) = (BTreeMap::new(), BTreeMap::new());
    let mut flood = Vec::new();
    let limit = o.limit;
    for round in 0..o.c.rounds {
        let r = format!("round {}/{}", round + 1, o.c.rounds);
        for j in 0..KINDS.len() {
            let kind = KINDS[(j + round) % KINDS.len()];
            if o.parts.contains(&Part::Stall) {
                let res = start(kind, &kv_bin, cpus)
                    .and_then(|s| loads::stalled_sets(&s, o.conns, o.value, limit));
                match res {
                    Ok(m) => {
                        eprintln!(
                            "  stall {} {r}: {:.1} MiB, with {} stalled sets {:.1} MiB, peak {:.1} MiB, after close {:.1} MiB ({:.0}% of {:.0} MB written in {:.1} s, {} closed, {} answered)",
                            kind.name(),
                            mib(m.before),
                            m.conns,
                            mib(m.loaded),
                            mib(m.peak),
                            mib(m.after),
                            m.sent as f64 * 100.0 / m.wanted.max(1) as f64,
                            m.wanted as f64 / 1e6,
                            m.secs,
                            m.closed,
                            m.answered
                        );
                        stalled.entry(kind).or_insert_with(Vec::new).push(m);
                    }
                    Err(e) => return Err(context(e, format!("stall {} {r}", kind.name()))),
                }
            }
            if o.parts.contains(&Part::BigGet) {
                let slow = Duration::from_secs_f64(o.slow);
                let res = start(kind, &kv_bin, cpus)
                    .and_then(|s| loads::big_get(&s, o.names, slow, limit));
                match res {
                    Ok(m) => {
                        eprintln!(
                            "  bigget {} {r}: {:.1} MiB, peak read slowly {:.1} MiB, peak {:.1} MiB, after {:.1} MiB; reply {} ({} of {} bytes, {} slowly)",
                            kind.name(),
                            mib(m.before),
                            mib(m.slow_peak),
                            mib(m.peak),
                            mib(m.after),
                            m.ended,
                            m.got,
                            m.wanted,
                            m.slow_bytes
                        );
                        big.entry(kind).or_insert_with(Vec::new).push(m);
                    }
                    Err(e) => return Err(context(e, format!("bigget {} {r}", kind.name()))),
                }
            }
        }
        if o.parts.contains(&Part::Chat) {
            let res = kv_servers::start_example(&chat_bin, "chat_server", &[], cpus.server)
                .and_then(|s| loads::chat_flood(&s, o.receivers, o.flood));
            match res {
                Ok(m) => {
                    eprintln!(
                        "  chat {r}: empty {:.1} MiB, peak {:.1} MiB, at the end {:.1} MiB, after close {:.1} MiB; {:.0} MB taken from the sender in {:.1} s; {} of {} connections closed{}",
                        mib(m.empty),
                        mib(m.peak),
                        mib(m.end),
                        mib(m.after),
                        m.sent as f64 / 1e6,
                        m.secs,
                        m.closed,
                        m.receivers + 1,
                        if m.sender_closed { ", the sender's writes failed" } else { "" }
                    );
                    flood.push(m);
                }
                Err(e) => return Err(context(e, format!("chat {r}"))),
            }
        }
    }
    let summary = format!(
        "{} round(s), the servers alternating; stall: {} connections, {}-byte values; bigget: {} names, read slowly for {} s (4 KiB every 10 ms, 16 KiB receive buffer); chat: {} receivers, {} s of flood",
        o.c.rounds, o.conns, o.value, o.names, o.slow, o.receivers, o.flood
    );
    Ok(MemResults {
        head: s.end(&o.c, summary),
        memcached,
        stalled,
        big,
        flood,
        bounds: chat_bounds(o.receivers),
        receivers: o.receivers,
    })
}
