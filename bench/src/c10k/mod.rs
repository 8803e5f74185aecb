//! `echo-bench c10k`: "Ten thousand connections". The crate's `kv_server` on each
//! backend against `memcached -t 1`, and `echo_server` (epoll, poll) against the
//! bench's mio echo server, with 0, 1,000, 5,000 and 10,000 idle connections held
//! open while a small closed-loop load runs on a few more: what each request costs
//! (CPU, syscalls) and what each idle connection costs (VmRSS), as ratios against
//! memcached (kv) and mio (echo) measured in the same rounds. [`callgrind`] counts
//! kv_server's user-space instructions per request at 0 and at the most idle
//! connections, which no timing noise moves.
//!
//! An idle connection is opened, sends one request, checks its reply and then
//! stays silent until the run ends; the load's connections are opened after
//! them, so they have the highest descriptors.

mod callgrind;
mod report;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use nix::sys::resource::{getrlimit, Resource};

use crate::cli::{self, Common};
use crate::exchange;
use crate::kv::client::{self as kv_client, Data, Memcache, Workload};
use crate::load;
use crate::load::Client;
use crate::orchestrate::{self, attach_perf, measure, Cpus, Header, Memory, Run, Runs, Session};
use crate::servers::kv::{self as kv_servers};
use crate::servers::{Kind, Mode, Server};
use crate::tracing::{Calls, PerfStat};
use crate::{invalid, other_err};
use callgrind::Count;

pub const USAGE: &str = "\
usage: echo-bench c10k [OPTIONS]   idle connections against the cost of a request:
                                   kv_server (select, poll, large, epoll) against
                                   memcached -t 1, echo_server (poll, epoll) against
                                   mio; rewrites the C10K block of docs/benchmarks.md,
                                   the C10K-CURVE block of docs/designs.md and
                                   docs/c10k.svg

options:
  --quick            CI's smoke run (well under a minute): 1 round of 0.2 s at 0 and
                     1000 idle connections, a short callgrind count; prints, writes
                     nothing
  --no-write         print only, do not rewrite docs/
  --rounds N         rounds, the servers alternating (default 3)
  --secs S           measured seconds per run (default 1.0; perf counts 0.5 s after)
  --idle A,B,..      idle connection counts (default 0,1000,5000,10000)
  --active N         connections of the load (default 4)
  --depth D          requests in flight on each (default 1)
  --servers A,B,..   kv, kv-poll, kv-large, kv-epoll, memcached, echo-poll,
                     echo-epoll, mio (default all; kv only below FD_SETSIZE)
  --keys N           keys, preloaded before every kv run (default 10000)
  --value BYTES      value size (default 100)
  --no-perf          no perf stat counts
  --no-callgrind     no instruction counts";

/// The servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Srv {
    KvSelect,
    KvPoll,
    KvLarge,
    KvEpoll,
    Memcached,
    EchoPoll,
    EchoEpoll,
    Mio,
}

/// Which comparison a server belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Kv,
    Echo,
}

impl Srv {
    pub const ALL: [Srv; 8] = [
        Srv::KvSelect,
        Srv::KvPoll,
        Srv::KvLarge,
        Srv::KvEpoll,
        Srv::Memcached,
        Srv::EchoPoll,
        Srv::EchoEpoll,
        Srv::Mio,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Srv::KvSelect => "kv",
            Srv::KvPoll => "kv-poll",
            Srv::KvLarge => "kv-large",
            Srv::KvEpoll => "kv-epoll",
            Srv::Memcached => "memcached",
            Srv::EchoPoll => "echo-poll",
            Srv::EchoEpoll => "echo-epoll",
            Srv::Mio => "mio",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Srv::KvSelect => "kv_server (select)",
            Srv::KvPoll => "kv_server --poll",
            Srv::KvLarge => "kv_server --large",
            Srv::KvEpoll => "kv_server --epoll",
            Srv::Memcached => "memcached -t 1",
            Srv::EchoPoll => "echo_server --poll",
            Srv::EchoEpoll => "echo_server --epoll",
            Srv::Mio => "mio echo (epoll)",
        }
    }

    /// The backend, for the cost curve (ours only).
    pub fn backend(self) -> Option<&'static str> {
        match self {
            Srv::KvSelect => Some("select (`FdSet`)"),
            Srv::KvLarge => Some("select (`LargeFdSet`)"),
            Srv::KvPoll | Srv::EchoPoll => Some("poll"),
            Srv::KvEpoll | Srv::EchoEpoll => Some("epoll"),
            Srv::Memcached | Srv::Mio => None,
        }
    }

    pub fn color(self) -> &'static str {
        match self {
            Srv::KvSelect => "#8c564b",
            Srv::KvPoll | Srv::EchoPoll => "#ff7f0e",
            Srv::KvLarge => "#bcbd22",
            Srv::KvEpoll | Srv::EchoEpoll => "#d62728",
            Srv::Memcached | Srv::Mio => "#1f77b4",
        }
    }

    pub fn group(self) -> Group {
        match self {
            Srv::EchoPoll | Srv::EchoEpoll | Srv::Mio => Group::Echo,
            _ => Group::Kv,
        }
    }

    /// What the group's servers are measured against.
    pub fn baseline(self) -> Srv {
        match self.group() {
            Group::Kv => Srv::Memcached,
            Group::Echo => Srv::Mio,
        }
    }

    /// The group's epoll and poll servers (the targets compare them).
    pub fn epoll_poll(group: Group) -> (Srv, Srv) {
        match group {
            Group::Kv => (Srv::KvEpoll, Srv::KvPoll),
            Group::Echo => (Srv::EchoEpoll, Srv::EchoPoll),
        }
    }

    pub fn from_name(s: &str) -> Option<Srv> {
        Srv::ALL.into_iter().find(|k| k.name() == s)
    }
}

pub struct Opts {
    pub c: Common,
    pub idle: Vec<usize>,
    pub active: usize,
    pub depth: usize,
    pub kinds: Vec<Srv>,
    pub data: Data,
    pub callgrind: bool,
    /// Requests of the two callgrind runs whose difference is counted.
    pub callgrind_requests: (u64, u64),
    /// Requests sent one at a time under perf stat after the load.
    pub one: u64,
}

impl Opts {
    pub fn parse(args: &[String]) -> io::Result<Opts> {
        let mut o = Opts {
            c: Common::new("c10k", args, 3, 30, cli::FULL, cli::QUICK),
            idle: vec![0, 1000, 5000, 10_000],
            active: 4,
            depth: 1,
            kinds: Srv::ALL.to_vec(),
            data: Data {
                keys: 10_000,
                value: 100,
            },
            callgrind: true,
            callgrind_requests: (2000, 12_000),
            one: 2000,
        };
        o.c.parse(USAGE, |a, p| {
            match a {
                "--quick" => {
                    o.idle = vec![0, 1000];
                    o.data.keys = 1000;
                    o.callgrind_requests = (500, 2500);
                    o.one = 500;
                }
                "--idle" => o.idle = p.list(a)?,
                "--active" => o.active = p.number(a)?,
                "--depth" => o.depth = p.number(a)?,
                "--servers" => o.kinds = p.names(a, Srv::from_name)?,
                "--keys" => o.data.keys = p.number(a)?.max(1) as u64,
                "--value" => o.data.value = p.number(a)?,
                "--no-callgrind" => o.callgrind = false,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if o.active == 0 || o.depth == 0 {
            return Err(invalid("--active, --depth: at least 1"));
        }
        // No strace runs here: perf's counts by name say where the calls go.
        o.c.strace = false;
        o.idle.sort_unstable();
        o.idle.dedup();
        Ok(o)
    }
}

/// What a run measured besides the load: VmRSS with the idle connections, and
/// the syscalls of requests sent one at a time (and how many).
#[derive(Clone, Debug)]
pub struct Extra {
    pub mem: Memory,
    pub one: Result<(Calls, u64), String>,
}

impl Extra {
    /// Syscalls per request one at a time.
    pub fn one_per_request(&self) -> Option<f64> {
        let (c, n) = self.one.as_ref().ok()?;
        Some(c.total as f64 / (*n).max(1) as f64)
    }
}

/// The extras by idle count and server.
pub type Extras = BTreeMap<(usize, Srv), Vec<Extra>>;

/// Everything a c10k run measured.
pub struct Results {
    pub head: Header,
    pub memcached: String,
    /// The idle counts measured, and the servers.
    pub idle: Vec<usize>,
    pub kinds: Vec<Srv>,
    /// A "line" of a run is one request and its reply.
    pub runs: Runs<usize, Srv>,
    pub extras: Extras,
    /// Requests of each one-at-a-time count.
    pub one: u64,
    /// kv_server --epoll's instructions per request by idle count.
    pub callgrind: Vec<(usize, io::Result<Count>)>,
    pub active: usize,
    pub depth: usize,
}

/// `echo-bench c10k ...`.
pub fn main(args: &[String], bench_dir: &Path, docs_dir: &Path) -> io::Result<()> {
    if cli::help(args, USAGE) {
        return Ok(());
    }
    let o = Opts::parse(args)?;
    let r = run(&o, bench_dir)?;
    let md = report::markdown(&r);
    if o.c.write_docs {
        std::fs::create_dir_all(docs_dir)?;
        std::fs::write(docs_dir.join("c10k.svg"), report::svg(&r))?;
        let path = docs_dir.join("designs.md");
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let curve = report::curve(&r);
        std::fs::write(
            &path,
            crate::micro::replace_block(&old, "C10K-CURVE", &curve),
        )?;
        eprintln!(
            "echo-bench c10k: wrote docs/c10k.svg and the C10K-CURVE block of docs/designs.md"
        );
    }
    o.c.publish(&md, docs_dir, &[("C10K", &md)], r.head.elapsed)
}

/// The crate's examples this part runs.
struct Bins {
    kv: PathBuf,
    echo: PathBuf,
}

/// The options that take every connection the run opens (the default is
/// FD_SETSIZE), accept them in batches (only the opening of the idle connections
/// is faster: none is accepted in a measured window) and choose the backend.
fn example_args(kind: Srv) -> Vec<&'static str> {
    let mut args = vec!["--max-clients", "19000", "--accept-batch", "64"];
    match kind {
        Srv::KvPoll | Srv::EchoPoll => args.push("--poll"),
        Srv::KvLarge => args.push("--large"),
        Srv::KvEpoll | Srv::EchoEpoll => args.push("--epoll"),
        _ => {}
    }
    args
}

/// memcached as it runs here: one worker, up to 19,000 connections.
const MEMCACHED_ARGS: [&str; 2] = ["-c", "19000"];

fn start(kind: Srv, bins: &Bins, cpus: Cpus) -> io::Result<Server> {
    let args = example_args(kind);
    match kind {
        Srv::Memcached => kv_servers::start_memcached(&MEMCACHED_ARGS, cpus.server),
        Srv::Mio => Server::start(Kind::Mio, Mode::Bytes, Path::new(""), cpus.server),
        Srv::EchoPoll | Srv::EchoEpoll => {
            kv_servers::start_example(&bins.echo, "echo_server", &args, cpus.server)
        }
        _ => kv_servers::start_example(&bins.kv, "kv_server", &args, cpus.server),
    }
}

/// Syscalls of `n` requests on `conn`, one at a time (after 10 not counted):
/// each is a wait, a read and a send, and whatever else the loop adds, with no
/// batching of requests that arrive together.
fn one_at_a_time<C: Client>(
    server: &Server,
    mut conn: C,
    n: u64,
    cpu: Option<usize>,
) -> io::Result<(Calls, u64)> {
    let mut p = PerfStat::attach(server.pid, cpu)?;
    load::one_by_one(&mut conn, 10)?;
    p.enable()?;
    let done = load::one_by_one(&mut conn, n);
    p.disable()?;
    load::close_all(vec![conn]);
    done?;
    Ok((p.finish()?, n))
}

/// One run of `kind` with `idle` idle connections: start it, preload (kv), open
/// the idle connections (VmRSS before and after), measure the load on
/// `o.active` more, then count the syscalls of requests one at a time; stop.
fn one_run(
    kind: Srv,
    idle: usize,
    o: &Opts,
    bins: &Bins,
    cpus: Cpus,
    perf: bool,
) -> io::Result<(Run, Extra)> {
    let server = start(kind, bins, cpus)?;
    match kind.group() {
        Group::Kv => {
            kv_client::preload(server.addr, o.data)?;
            let get = Memcache {
                workload: Workload::Get,
                data: o.data,
            };
            loaded(&server, idle, o, cpus, perf, |n, depth| {
                exchange::connect(server.addr, n, &get, depth)
            })
        }
        Group::Echo => loaded(&server, idle, o, cpus, perf, |n, depth| {
            load::connect(server.addr, n, 64, depth)
        }),
    }
}

/// [`one_run`] once the server runs: `connect(n, depth)` opens `n` connections
/// with `depth` requests in flight later.
fn loaded<C: Client + Send>(
    server: &Server,
    idle: usize,
    o: &Opts,
    cpus: Cpus,
    perf: bool,
    connect: impl Fn(usize, usize) -> io::Result<Vec<C>>,
) -> io::Result<(Run, Extra)> {
    thread::sleep(Duration::from_millis(100));
    let (mem, idle_conns) = Memory::of(server, idle, || connect(idle, 1))?;
    let (p, perf_error) = attach_perf(perf, server.pid, cpus.client);
    let conns = connect(o.active, o.depth)?;
    let run = measure(server, conns, o.depth, &o.c.windows, p, perf_error);
    let one = if perf && run.is_ok() {
        let conn = connect(1, 1)?
            .pop()
            .ok_or_else(|| other_err("no connection"))?;
        one_at_a_time(server, conn, o.one, cpus.client).map_err(|e| e.to_string())
    } else {
        Err("perf stat is off".into())
    };
    // Reset, also after a failed run: no TIME_WAIT left by thousands of them.
    load::close_all(idle_conns);
    Ok((run?, Extra { mem, one }))
}

pub fn run(o: &Opts, bench_dir: &Path) -> io::Result<Results> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let memcached = crate::kv::memcached_version();
    let mut s = Session::begin(&o.c, &format!("; {memcached}"))?;
    let cpus = s.cpus;
    s.notes.push(format!(
        "descriptors: {} idle connections need as many in the server and in this \
         client; the bench set its soft RLIMIT_NOFILE to the hard limit, {} (it was \
         {soft}; the hard limit is {hard}), and the servers it starts inherit it",
        o.idle.last().copied().unwrap_or(0),
        s.nofile
    ));
    eprintln!(
        "echo-bench c10k: soft RLIMIT_NOFILE set to {} (it was {soft}; hard {hard})",
        s.nofile
    );
    let want = |g: Group| o.kinds.iter().any(|k| k.group() == g);
    let bins = Bins {
        kv: if want(Group::Kv) {
            kv_servers::build_kv(bench_dir)?
        } else {
            PathBuf::new()
        },
        echo: if want(Group::Echo) {
            kv_servers::build_example(bench_dir, "echo_server")?
        } else {
            PathBuf::new()
        },
    };
    let mut idle = Vec::new();
    for &n in &o.idle {
        // The idle connections, the load's, and some to spare (perf, the listener).
        if (n + o.active + 64) as u64 > s.nofile {
            s.notes.push(format!(
                "{n} idle connections skipped: RLIMIT_NOFILE is {}",
                s.nofile
            ));
            continue;
        }
        idle.push(n);
    }
    let fits_fdset = |n: usize| n + o.active + 16 <= unp_select::FD_SETSIZE;
    let mut extras: Extras = BTreeMap::new();
    let runs = orchestrate::rounds(
        &idle,
        |n| {
            o.kinds
                .iter()
                .copied()
                .filter(|&k| k != Srv::KvSelect || fits_fdset(n))
                .collect()
        },
        &o.c,
        "req",
        |kind, n| format!("{} × {n} idle", kind.name()),
        |kind, n| {
            let (run, extra) = one_run(kind, n, o, &bins, cpus, s.perf)?;
            let m = &extra.mem;
            eprintln!(
                "    {} × {n} idle: RSS {} KiB, with the idle connections {} KiB ({:.0} bytes each); one at a time: {}",
                kind.name(),
                m.before_kib,
                m.with_kib,
                m.bytes_per_conn(),
                match (&extra.one, extra.one_per_request()) {
                    (Ok((c, _)), Some(per)) => format!(
                        "{per:.3} syscalls/req ({})",
                        c.by_name
                            .iter()
                            .map(|(name, x, _)| format!("{name} {x}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    (Err(e), _) => e.clone(),
                    _ => "–".into(),
                }
            );
            extras.entry((n, kind)).or_default().push(extra);
            Ok(run)
        },
        &mut s.notes,
    )?;
    // RSS does not depend on the CPU waits that repeat a run: every sample counts.
    let mut counts = Vec::new();
    if o.callgrind && o.kinds.contains(&Srv::KvEpoll) {
        if crate::tracing::have("valgrind") {
            let most = idle.iter().copied().max().unwrap_or(0);
            for n in [0, most] {
                let c = callgrind::count(&bins.kv, n, o.callgrind_requests, o.data, cpus);
                match &c {
                    Ok(c) => eprintln!(
                        "  callgrind kv-epoll × {n} idle: {:.0} instructions per request ({} and {} after {} and {} requests)",
                        c.per_request(),
                        c.instructions.0,
                        c.instructions.1,
                        c.requests.0,
                        c.requests.1
                    ),
                    Err(e) => eprintln!("  callgrind kv-epoll × {n} idle: {e}"),
                }
                counts.push((n, c));
            }
        } else {
            s.notes.push(
                "valgrind is not installed: no instruction counts (apt-get install valgrind)"
                    .into(),
            );
        }
    }
    let w = &o.c.windows;
    let summary = format!(
        "{} round(s) per idle count; per run {:.2} s ramp, {:.2} s measured, then {:.2} s of perf stat, then {} requests one at a time under perf stat; load: {} connections × {} request(s) in flight, `get` of {} preloaded keys, {}-byte values (kv), 64-byte lines (echo)",
        o.c.rounds,
        w.ramp,
        w.window,
        w.perf_window,
        o.one,
        o.active,
        o.depth,
        o.data.keys,
        o.data.value
    );
    Ok(Results {
        head: s.end(&o.c, summary),
        memcached,
        idle,
        kinds: o.kinds.clone(),
        runs,
        extras,
        one: o.one,
        callgrind: counts,
        active: o.active,
        depth: o.depth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_and_options() {
        for k in Srv::ALL {
            assert_eq!(Srv::from_name(k.name()), Some(k));
            assert_eq!(k.baseline().group(), k.group());
        }
        let args: Vec<String> = [
            "--quick",
            "--idle",
            "1000,0,1000",
            "--servers",
            "kv-epoll,memcached",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let o = Opts::parse(&args).unwrap();
        assert_eq!(o.idle, [0, 1000]);
        assert_eq!(o.kinds, [Srv::KvEpoll, Srv::Memcached]);
        assert!(o.c.quick && !o.c.strace);
        assert!(Opts::parse(&["--active".into(), "0".into()]).is_err());
    }

    #[test]
    fn instructions_per_request() {
        let c = Count {
            requests: (500, 2500),
            instructions: (1_000_000, 9_000_000),
        };
        assert_eq!(c.per_request(), 4000.0);
    }
}
