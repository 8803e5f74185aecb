//! `echo-bench churn`: connection churn and workers, measured as UNP chapter 30
//! does.
//!
//! * **Churn**: K client slots, each connects, sends one line, checks its echo,
//!   closes (normally, or with `SO_LINGER {1,0}`: a reset) and connects again. One
//!   nonblocking poll(2)-driven generator thread, on the CPU the server is not on.
//!   Servers: the C server in UNP's shape (one accept per select) and with a loop
//!   of accepts, mio, tokio, and ours with `accept_batch` 1, 4, 16, 64.
//! * **Burst**: K connects at once, each one line; the slowest connect-to-echo
//!   and the listen-queue overflows.
//! * **Workers**: ours with 1, 2, 4 workers, a shared listener or `SO_REUSEPORT`:
//!   the herd as voluntary context switches and as empty accepts, the spread of
//!   connections over workers, CPU per connection (churn) and per line
//!   (the pipelined load of [`crate::load`], 500 connections × depth 8).
//!
//! Every run starts a fresh server; runs rotate their order from round to round;
//! a run during which the load generator (or a single-threaded server) waited for
//! its CPU more than 10% of the window is run again.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use crate::cli::{self, Common};
use crate::load::{self, Shared};
use crate::orchestrate::{Cpus, Header, Session, Windows, MAX_WAIT};
use crate::report::WAITS;
use crate::tracing::{self, Calls, PerfStat, Strace};
use crate::workers::{self, Bins, Proc, Spec, WorkerCount};
use crate::{invalid, other_err, raise_nofile};

pub const USAGE: &str = "\
usage: echo-bench churn [OPTIONS]   connection churn, accept bursts and workers;
                                    rewrites the CHURN and WORKERS blocks of
                                    docs/benchmarks.md
  --quick            CI's smoke run (well under a minute): 1 round of 0.2 s, 50 slots,
                     normal close, 4 servers, 2 worker configurations; writes nothing
  --no-write         print only
  --rounds N         rounds (default 3)
  --secs S           measured seconds per run (default 0.6; perf counts 0.3 s after)
  --slots A,B,..     client slots of the churn (default 1,50,200)
  --batches A,B,..   accept_batch values of ours (default 1,4,16,64)
  --burst N          simultaneous connects of the burst (default 200)
  --no-workers       skip the workers part
  --no-churn         skip the churn and burst parts
  --profile SERVER   instead: perf record -g on one server (c, c-loop, mio, tokio,
                     ours-bN, ours-bN-wW-shared|reuseport) under 2 s of churn at the
                     first --slots value (normal close); prints the flat profile";

/// How a client closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Close {
    /// `close(2)`: FIN, the client keeps TIME_WAIT.
    Normal,
    /// `SO_LINGER {1,0}` then `close(2)`: RST.
    Reset,
}

impl Close {
    fn name(self) -> &'static str {
        match self {
            Close::Normal => "close",
            Close::Reset => "reset",
        }
    }
}

pub struct Opts {
    c: Common,
    slots: Vec<usize>,
    closes: Vec<Close>,
    batches: Vec<usize>,
    burst: usize,
    churn: bool,
    workers: bool,
    profile: Option<String>,
    worker_counts: Vec<usize>,
    worker_slots: usize,
    pipe_conns: usize,
    pipe_depth: usize,
    line: usize,
}

impl Opts {
    fn parse(args: &[String]) -> io::Result<Opts> {
        let full = Windows {
            ramp: 0.2,
            window: 0.6,
            perf_window: 0.3,
            strace_window: 0.4,
        };
        let quick = Windows {
            ramp: 0.1,
            window: 0.2,
            perf_window: 0.1,
            strace_window: 0.2,
        };
        let mut o = Opts {
            c: Common::new("churn", args, 3, 80, full, quick),
            slots: vec![1, 50, 200],
            closes: vec![Close::Normal, Close::Reset],
            batches: vec![1, 4, 16, 64],
            burst: 200,
            churn: true,
            workers: true,
            profile: None,
            worker_counts: vec![1, 2, 4],
            worker_slots: 50,
            pipe_conns: 500,
            pipe_depth: 8,
            line: 64,
        };
        o.c.parse(USAGE, |a, p| {
            match a {
                "--quick" => {
                    o.slots = vec![50];
                    o.closes = vec![Close::Normal];
                    o.batches = vec![1, 16];
                    o.worker_counts = vec![2];
                    o.pipe_conns = 100;
                }
                "--slots" => o.slots = p.list(a)?,
                "--batches" => o.batches = p.list(a)?,
                "--burst" => o.burst = p.number(a)?,
                "--no-workers" => o.workers = false,
                "--no-churn" => o.churn = false,
                "--profile" => o.profile = Some(p.value(a)?.to_string()),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if [&o.slots, &o.batches].iter().any(|v| v.contains(&0)) || o.burst == 0 {
            return Err(invalid("--slots, --batches, --burst: at least 1"));
        }
        Ok(o)
    }

    fn churn_specs(&self) -> Vec<Spec> {
        let mut v = vec![
            Spec::C { accept_loop: false },
            Spec::C { accept_loop: true },
        ];
        if !self.c.quick {
            v.extend([Spec::Mio, Spec::Tokio]);
        }
        v.extend(self.batches.iter().map(|&b| Spec::ours(b)));
        v
    }

    fn worker_specs(&self) -> Vec<Spec> {
        let mut v = Vec::new();
        for &n in &self.worker_counts {
            for reuseport in [false, true] {
                if n == 1 && reuseport {
                    continue; // one worker: one listener either way
                }
                v.push(Spec::Ours {
                    batch: 1,
                    workers: n,
                    reuseport,
                });
            }
        }
        v
    }
}

// ---------------------------------------------------------------------------
// The generator.

#[derive(Clone, Copy, PartialEq, Eq)]
enum St {
    Idle,
    Connecting,
    Waiting,
}

struct Slot {
    fd: RawFd,
    st: St,
    t0: Instant,
    seq: u64,
    got: usize,
    line: Vec<u8>,
    started: bool,
}

/// What the generator saw.
#[derive(Default)]
pub struct Gen {
    /// Connect-to-echo times (ns) of the connections completed in the window.
    pub latencies: Vec<u32>,
    /// Connections that failed (refused, reset, EOF before the echo), and the first
    /// such error.
    pub errors: u64,
    pub first_error: Option<String>,
    /// Connections still in flight when the generator gave up (after the stop).
    pub unfinished: u64,
    /// Connections of the whole run (window or not) that took 200 ms or more: a
    /// SYN or ACK the listen queue dropped costs about 1 s (retransmission).
    pub slow: u64,
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn sockaddr(addr: SocketAddr) -> io::Result<libc::sockaddr_in> {
    let SocketAddr::V4(a) = addr else {
        return Err(invalid("churn: IPv4 only"));
    };
    // SAFETY: an all-zero sockaddr_in is valid.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = a.port().to_be();
    sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
    Ok(sin)
}

fn close_fd(fd: RawFd, reset: bool) {
    if reset {
        let l = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: fd is ours; l lives across the call.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&l as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
    // SAFETY: fd is ours and closed once.
    unsafe { libc::close(fd) };
}

/// Runs the churn on `slots` slots until `shared.stop` (then at most 3 s for the
/// connections in flight), or with `once`, one connection per slot until all are
/// done or `until` passes. Records the connect-to-echo times of connections that
/// complete in `[from, until)`.
#[allow(clippy::too_many_arguments)]
pub fn drive(
    addr: SocketAddr,
    slots: usize,
    close: Close,
    line: usize,
    shared: &Shared,
    from: Instant,
    until: Instant,
    once: bool,
) -> io::Result<Gen> {
    let sin = sockaddr(addr)?;
    let mut s: Vec<Slot> = (0..slots)
        .map(|_| Slot {
            fd: -1,
            st: St::Idle,
            t0: Instant::now(),
            seq: 0,
            got: 0,
            line: vec![0; line],
            started: false,
        })
        .collect();
    let mut g = Gen {
        latencies: Vec::with_capacity(1 << 16),
        ..Gen::default()
    };
    let mut buf = vec![0u8; line];
    let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(slots);
    let mut idx: Vec<usize> = Vec::with_capacity(slots);
    let mut stop_at: Option<Instant> = None;
    let fail = |g: &mut Gen, what: String| {
        g.errors += 1;
        g.first_error.get_or_insert(what);
    };
    loop {
        let now = Instant::now();
        if stop_at.is_none() && (shared.stop.load(Ordering::Relaxed) || (once && now >= until)) {
            stop_at = Some(now);
        }
        let active = s.iter().filter(|x| x.st != St::Idle).count();
        if let Some(at) = stop_at {
            if active == 0 || at.elapsed() > Duration::from_secs(3) || once {
                for x in s.iter_mut().filter(|x| x.st != St::Idle) {
                    close_fd(x.fd, true);
                    g.unfinished += 1;
                }
                break;
            }
        }
        if once && active == 0 && s.iter().all(|x| x.started) {
            break;
        }
        if g.errors > 10_000 {
            return Err(other_err(format!(
                "{} failed connections, the first: {}",
                g.errors,
                g.first_error.unwrap_or_default()
            )));
        }
        // Start every idle slot.
        if stop_at.is_none() {
            for (i, x) in s.iter_mut().enumerate() {
                if x.st != St::Idle || (once && x.started) {
                    continue;
                }
                x.started = true;
                // SAFETY: plain socket(2).
                let fd = unsafe {
                    libc::socket(
                        libc::AF_INET,
                        libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        0,
                    )
                };
                if fd == -1 {
                    return Err(io::Error::last_os_error());
                }
                x.fd = fd;
                x.t0 = Instant::now();
                x.got = 0;
                load::make_line(&mut x.line, i as u32, x.seq);
                // SAFETY: sin is a valid sockaddr_in.
                let rc = unsafe {
                    libc::connect(
                        fd,
                        (&sin as *const libc::sockaddr_in).cast(),
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    )
                };
                if rc == 0 || errno() == libc::EINPROGRESS {
                    x.st = St::Connecting;
                } else {
                    let e = io::Error::last_os_error();
                    close_fd(fd, true);
                    x.st = St::Idle;
                    x.seq += 1;
                    fail(&mut g, format!("connect: {e}"));
                }
            }
        }
        pfds.clear();
        idx.clear();
        for (i, x) in s.iter().enumerate() {
            let events = match x.st {
                St::Idle => continue,
                St::Connecting => libc::POLLOUT,
                St::Waiting => libc::POLLIN,
            };
            pfds.push(libc::pollfd {
                fd: x.fd,
                events,
                revents: 0,
            });
            idx.push(i);
        }
        if pfds.is_empty() {
            thread::sleep(Duration::from_millis(1));
            continue;
        }
        // SAFETY: pfds is a valid array of pollfd.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 10) };
        if n == -1 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(io::Error::last_os_error());
        }
        for (p, &i) in pfds.iter().zip(&idx) {
            if p.revents == 0 {
                continue;
            }
            let x = &mut s[i];
            let mut done = false;
            let mut failed: Option<String> = None;
            match x.st {
                St::Connecting => {
                    let mut err: libc::c_int = 0;
                    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                    // SAFETY: err and len are valid for getsockopt.
                    unsafe {
                        libc::getsockopt(
                            x.fd,
                            libc::SOL_SOCKET,
                            libc::SO_ERROR,
                            (&mut err as *mut libc::c_int).cast(),
                            &mut len,
                        )
                    };
                    if err != 0 {
                        failed = Some(format!("connect: {}", io::Error::from_raw_os_error(err)));
                    } else {
                        // SAFETY: line is valid for its length.
                        let w = unsafe { libc::write(x.fd, x.line.as_ptr().cast(), x.line.len()) };
                        if w != x.line.len() as isize {
                            failed = Some(format!("write: {}", io::Error::last_os_error()));
                        } else {
                            x.st = St::Waiting;
                        }
                    }
                }
                St::Waiting => {
                    let want = line - x.got;
                    // SAFETY: buf holds at least `want` bytes.
                    let r = unsafe { libc::read(x.fd, buf.as_mut_ptr().cast(), want) };
                    if r == 0 {
                        failed = Some("EOF before the echo".into());
                    } else if r < 0 {
                        let e = errno();
                        if e != libc::EAGAIN && e != libc::EINTR {
                            failed = Some(format!("read: {}", io::Error::from_raw_os_error(e)));
                        }
                    } else {
                        let r = r as usize;
                        if buf[..r] != x.line[x.got..x.got + r] {
                            return Err(io::Error::new(
                                ErrorKind::InvalidData,
                                format!(
                                    "slot {i}: wrong echo of connection {}: {:?}",
                                    x.seq,
                                    String::from_utf8_lossy(&buf[..r])
                                ),
                            ));
                        }
                        x.got += r;
                        done = x.got == line;
                    }
                }
                St::Idle => {}
            }
            if done {
                let now = Instant::now();
                if now - x.t0 >= Duration::from_millis(200) {
                    g.slow += 1;
                }
                if once || (now >= from && now < until) {
                    let ns = (now - x.t0).as_nanos().min(u128::from(u32::MAX)) as u32;
                    g.latencies.push(ns);
                }
                close_fd(x.fd, close == Close::Reset);
                shared.live.fetch_add(1, Ordering::Relaxed);
                x.st = St::Idle;
                x.seq += 1;
            } else if let Some(what) = failed {
                close_fd(x.fd, true);
                x.st = St::Idle;
                x.seq += 1;
                fail(&mut g, what);
            }
        }
    }
    Ok(g)
}

// ---------------------------------------------------------------------------
// Runs.

fn sleep_until(t: Instant) {
    thread::sleep(t.saturating_duration_since(Instant::now()));
}

fn join<T>(h: thread::ScopedJoinHandle<'_, io::Result<T>>) -> io::Result<T> {
    h.join()
        .unwrap_or_else(|_| Err(other_err("the load thread panicked")))
}

/// What the harness reads around a window.
struct Probe {
    t: Instant,
    live: u64,
    cpu: f64,
    switches: (u64, u64),
    server_wait: Option<f64>,
    load_wait: Option<f64>,
    workers: Option<Vec<WorkerCount>>,
}

fn probe(p: &Proc, shared: &Shared) -> io::Result<Probe> {
    let workers = p.snapshot();
    Ok(Probe {
        t: Instant::now(),
        live: shared.live.load(Ordering::Relaxed),
        cpu: tracing::proc_cpu(p.pid).ok_or_else(|| other_err("no /proc/PID/stat"))?,
        switches: workers::ctxt_switches(p.pid),
        server_wait: tracing::wait_of(p.pid),
        load_wait: tracing::wait_of_self(),
        workers,
    })
}

/// One measured window: per unit (connection or line).
#[derive(Clone, Debug, Default)]
pub struct Window {
    pub per_sec: f64,
    pub units: u64,
    pub cpu_us: f64,
    pub vol_switches: f64,
    pub invol_switches: f64,
    /// Accepts that found the queue empty, per unit (ours only).
    pub empty: Option<f64>,
    /// Connections each worker accepted in the window (ours only).
    pub spread: Option<Vec<u64>>,
    pub server_wait: Option<f64>,
    pub load_wait: Option<f64>,
    /// perf stat over its window, and the units meanwhile.
    pub syscalls: Option<(Calls, u64)>,
}

impl Window {
    fn between(a: &Probe, b: &Probe, workers: usize) -> Window {
        let secs = (b.t - a.t).as_secs_f64();
        let units = b.live - a.live;
        let per = |x: f64| x / units.max(1) as f64;
        let share = |x: Option<f64>, y: Option<f64>| x.zip(y).map(|(x, y)| (y - x) / secs);
        let (empty, spread) = match (&a.workers, &b.workers) {
            (Some(x), Some(y)) if x.len() == y.len() => {
                let e: u64 = x.iter().zip(y).map(|(x, y)| y.empty - x.empty).sum();
                let s = x.iter().zip(y).map(|(x, y)| y.accepted - x.accepted);
                (Some(per(e as f64)), Some(s.collect()))
            }
            _ => (None, None),
        };
        Window {
            per_sec: units as f64 / secs,
            units,
            cpu_us: per((b.cpu - a.cpu) * 1e6),
            vol_switches: per((b.switches.0 - a.switches.0) as f64),
            invol_switches: per((b.switches.1 - a.switches.1) as f64),
            empty,
            spread,
            // Workers on one CPU wait for each other: only a lone thread's wait
            // says that another job took the CPU.
            server_wait: if workers == 1 {
                share(a.server_wait, b.server_wait)
            } else {
                None
            },
            load_wait: share(a.load_wait, b.load_wait),
            syscalls: None,
        }
    }

    fn disturbed(&self) -> bool {
        self.server_wait.is_some_and(|w| w > MAX_WAIT)
            || self.load_wait.is_some_and(|w| w > MAX_WAIT)
    }

    fn syscall(&self, names: &[&str]) -> Option<f64> {
        // perf counted nothing at all: its window failed, not the server.
        let (c, units) = self.syscalls.as_ref().filter(|(c, _)| c.total > 0)?;
        let n: u64 = c
            .by_name
            .iter()
            .filter(|(name, _, _)| names.contains(&name.as_str()))
            .map(|r| r.1)
            .sum();
        Some(n as f64 / (*units).max(1) as f64)
    }

    fn syscalls_total(&self) -> Option<f64> {
        let (c, units) = self.syscalls.as_ref().filter(|(c, _)| c.total > 0)?;
        Some(c.total as f64 / (*units).max(1) as f64)
    }
}

/// A churn run.
#[derive(Clone, Debug, Default)]
pub struct ChurnRun {
    pub w: Window,
    pub p99_us: f64,
    pub max_us: f64,
    pub overflows: u64,
    /// Connections of ours that took 200 ms or more, or never finished.
    pub slow: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

struct Ctx<'a> {
    o: &'a Opts,
    bins: &'a Bins,
    cpus: Cpus,
    perf: bool,
}

fn attach_perf(cx: &Ctx<'_>, pid: u32) -> Option<PerfStat> {
    if !cx.perf {
        return None;
    }
    // Let the workers start first: perf attaches to the threads it finds.
    thread::sleep(Duration::from_millis(50));
    PerfStat::attach(pid, cx.cpus.client).ok()
}

fn perf_window(p: Option<PerfStat>, shared: &Shared, secs: f64) -> Option<(Calls, u64)> {
    let mut p = p?;
    p.enable().ok()?;
    let l0 = shared.live.load(Ordering::Relaxed);
    thread::sleep(Duration::from_secs_f64(secs));
    p.disable().ok()?;
    let l1 = shared.live.load(Ordering::Relaxed);
    Some((p.finish().ok()?, l1 - l0))
}

/// The start and the end of a run's measured window: `from` and `until`.
fn window_of(cx: &Ctx<'_>) -> (Instant, Instant) {
    let w = &cx.o.c.windows;
    let from = Instant::now() + Duration::from_secs_f64(w.ramp);
    (from, from + Duration::from_secs_f64(w.window))
}

/// Measures `server` between `from` and `until` while a load runs, then counts
/// its syscalls with perf for the perf window.
fn measure_window(
    cx: &Ctx<'_>,
    server: &Proc,
    shared: &Shared,
    from: Instant,
    until: Instant,
) -> io::Result<Window> {
    let perf = attach_perf(cx, server.pid);
    sleep_until(from);
    let a = probe(server, shared)?;
    sleep_until(until);
    let b = probe(server, shared)?;
    let mut w = Window::between(&a, &b, server.spec.workers());
    w.syscalls = perf_window(perf, shared, cx.o.c.windows.perf_window);
    Ok(w)
}

fn churn_run(cx: &Ctx<'_>, spec: Spec, slots: usize, close: Close) -> io::Result<ChurnRun> {
    let o = cx.o;
    let ov0 = workers::tcp_ext("ListenOverflows").unwrap_or(0);
    let server = Proc::start(spec, false, cx.bins, cx.cpus.server)?;
    let shared = Shared::default();
    let (from, until) = window_of(cx);
    let (gen, measured) = thread::scope(|s| {
        let gen = s.spawn(|| {
            drive(
                server.addr,
                slots,
                close,
                o.line,
                &shared,
                from,
                until,
                false,
            )
        });
        let measured = measure_window(cx, &server, &shared, from, until);
        shared.stop.store(true, Ordering::Relaxed);
        (join(gen), measured)
    });
    drop(server);
    let ov1 = workers::tcp_ext("ListenOverflows").unwrap_or(0);
    let mut gen = gen?;
    let w = measured?;
    if w.units == 0 {
        return Err(other_err(format!(
            "no connection completed in the window ({} errors, first: {:?})",
            gen.errors, gen.first_error
        )));
    }
    Ok(ChurnRun {
        w,
        p99_us: load::quantile_us(&mut gen.latencies, 0.99),
        max_us: gen
            .latencies
            .iter()
            .max()
            .map_or(f64::NAN, |&m| f64::from(m) / 1e3),
        overflows: ov1 - ov0,
        slow: gen.slow + gen.unfinished,
        errors: gen.errors,
        first_error: gen.first_error,
    })
}

/// `strace -c -f` over a window of a churn run: calls, and connections meanwhile.
fn strace_churn(cx: &Ctx<'_>, spec: Spec, slots: usize, close: Close) -> io::Result<(Calls, u64)> {
    let o = cx.o;
    let server = Proc::start(spec, false, cx.bins, cx.cpus.server)?;
    let shared = Shared::default();
    let far = Instant::now() + Duration::from_secs(3600);
    let (gen, counted) = thread::scope(|s| {
        let gen = s.spawn(|| drive(server.addr, slots, close, o.line, &shared, far, far, false));
        let counted = (|| {
            thread::sleep(Duration::from_secs_f64(o.c.windows.ramp));
            let st = Strace::attach(server.pid, cx.cpus.client)?;
            let l0 = shared.live.load(Ordering::Relaxed);
            thread::sleep(Duration::from_secs_f64(o.c.windows.strace_window));
            let l1 = shared.live.load(Ordering::Relaxed);
            Ok::<_, io::Error>((st.finish()?, l1 - l0))
        })();
        shared.stop.store(true, Ordering::Relaxed);
        (join(gen), counted)
    });
    gen?;
    counted
}

/// The burst: `n` connects at once, one line each.
#[derive(Clone, Debug, Default)]
pub struct Burst {
    pub max_ms: f64,
    pub p99_ms: f64,
    pub overflows: u64,
    pub done: usize,
    pub errors: u64,
}

fn burst_run(cx: &Ctx<'_>, spec: Spec, n: usize) -> io::Result<Burst> {
    let server = Proc::start(spec, false, cx.bins, cx.cpus.server)?;
    thread::sleep(Duration::from_millis(50));
    let ov0 = workers::tcp_ext("ListenOverflows").unwrap_or(0);
    let shared = Shared::default();
    let now = Instant::now();
    let mut g = drive(
        server.addr,
        n,
        Close::Normal,
        cx.o.line,
        &shared,
        now,
        now + Duration::from_secs(5),
        true,
    )?;
    let ov1 = workers::tcp_ext("ListenOverflows").unwrap_or(0);
    drop(server);
    Ok(Burst {
        max_ms: g
            .latencies
            .iter()
            .max()
            .map_or(f64::NAN, |&m| f64::from(m) / 1e6),
        p99_ms: load::quantile_us(&mut g.latencies, 0.99) / 1e3,
        overflows: ov1 - ov0,
        done: g.latencies.len(),
        errors: g.errors + g.unfinished,
    })
}

/// The pipelined load (lines mode) on a workers configuration.
#[derive(Clone, Debug, Default)]
pub struct PipeRun {
    pub w: Window,
    /// Connections each worker accepted while the load connected.
    pub spread: Option<Vec<u64>>,
    pub empty_at_connect: Option<u64>,
}

fn pipe_run(cx: &Ctx<'_>, spec: Spec) -> io::Result<PipeRun> {
    let o = cx.o;
    let server = Proc::start(spec, true, cx.bins, cx.cpus.server)?;
    let mut conns = load::connect(server.addr, o.pipe_conns, o.line, o.pipe_depth)?;
    let at_connect = server.snapshot();
    let shared = Shared::default();
    let (from, until) = window_of(cx);
    let (tally, measured) = thread::scope(|s| {
        let l = s.spawn(|| load::drive(&mut conns, o.pipe_depth, &shared, from, until));
        let measured = measure_window(cx, &server, &shared, from, until);
        shared.stop.store(true, Ordering::Relaxed);
        (join(l), measured)
    });
    load::close_all(conns);
    drop(server);
    tally?;
    let w = measured?;
    Ok(PipeRun {
        w,
        spread: at_connect
            .as_ref()
            .map(|v| v.iter().map(|c| c.accepted).collect()),
        empty_at_connect: at_connect.map(|v| v.iter().map(|c| c.empty).sum()),
    })
}

/// Runs `f` again (at most twice, and within the budget) while it was disturbed.
fn retried<T>(
    what: &str,
    budget: &mut usize,
    repeats: &mut usize,
    mut f: impl FnMut() -> io::Result<T>,
    window: impl Fn(&T) -> &Window,
    show: impl Fn(&T) -> String,
) -> io::Result<T> {
    let mut tries = 0;
    loop {
        let r = f().map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))?;
        eprintln!("  {what:<44} {}", show(&r));
        if window(&r).disturbed() && tries < 2 && *budget > 0 {
            tries += 1;
            *budget -= 1;
            *repeats += 1;
            eprintln!("    (disturbed by other jobs: again)");
            continue;
        }
        return Ok(r);
    }
}

fn show_window(w: &Window, unit: &str) -> String {
    let mut s = format!(
        "{:>8.0} {unit}/s {:>6.2} µs CPU/{unit} {:>5.2}+{:.2} csw/{unit} (waited {:>2.0}%/{:>2.0}%)",
        w.per_sec,
        w.cpu_us,
        w.vol_switches,
        w.invol_switches,
        w.server_wait.unwrap_or(f64::NAN) * 100.0,
        w.load_wait.unwrap_or(f64::NAN) * 100.0
    );
    if let Some(e) = w.empty {
        let _ = write!(s, " empty {e:.3}");
    }
    if let Some(sp) = &w.spread {
        let _ = write!(s, " spread {sp:?}");
    }
    if let (Some(t), Some(sel)) = (w.syscalls_total(), w.syscall(WAITS)) {
        let _ = write!(s, " syscalls {t:.2} waits {sel:.2}");
    }
    s
}

// ---------------------------------------------------------------------------
// The whole benchmark.

type StraceResult = (usize, Spec, io::Result<(Calls, u64)>);

pub struct Results {
    head: Header,
    churn: BTreeMap<(usize, Close, Spec), Vec<ChurnRun>>,
    churn_specs: Vec<Spec>,
    strace: Vec<StraceResult>,
    burst: BTreeMap<Spec, Vec<Burst>>,
    wchurn: BTreeMap<Spec, Vec<ChurnRun>>,
    wpipe: BTreeMap<Spec, Vec<PipeRun>>,
    worker_specs: Vec<Spec>,
}

pub fn main(args: &[String], bench_dir: &Path, docs: &Path) -> io::Result<()> {
    if cli::help(args, USAGE) {
        return Ok(());
    }
    let o = Opts::parse(args)?;
    if let Some(name) = &o.profile {
        return profile(&o, name, bench_dir);
    }
    let r = run(&o, bench_dir)?;
    let (churn_md, workers_md) = (churn_markdown(&r, &o), workers_markdown(&r, &o));
    let mut blocks = Vec::new();
    if o.churn {
        blocks.push(("CHURN", churn_md.as_str()));
    }
    if o.workers {
        blocks.push(("WORKERS", workers_md.as_str()));
    }
    let md = format!("{churn_md}\n{workers_md}");
    o.c.publish(&md, docs, &blocks, r.head.elapsed)
}

/// The spec named `name` (as `Spec::name` prints it).
fn spec_named(name: &str) -> Option<Spec> {
    let mut all = vec![
        Spec::C { accept_loop: false },
        Spec::C { accept_loop: true },
        Spec::Mio,
        Spec::Tokio,
    ];
    for batch in [1, 2, 4, 8, 16, 32, 64, 128, 256] {
        for workers in [1, 2, 4, 8] {
            for reuseport in [false, true] {
                all.push(Spec::Ours {
                    batch,
                    workers,
                    reuseport,
                });
            }
        }
    }
    all.into_iter().find(|s| s.name() == name)
}

/// `churn --profile SERVER`: perf record -g on one server under churn.
fn profile(o: &Opts, name: &str, bench_dir: &Path) -> io::Result<()> {
    let spec = spec_named(name).ok_or_else(|| invalid(format!("--profile: no server {name}")))?;
    raise_nofile()?;
    let cpus = Cpus::pick().pin_client()?;
    let bins = workers::build(bench_dir)?;
    let slots = o.slots[0];
    let server = Proc::start(spec, false, &bins, cpus.server)?;
    let shared = Shared::default();
    let far = Instant::now() + Duration::from_secs(3600);
    let secs = 2.0;
    let (gen, prof) = thread::scope(|s| {
        let gen = s.spawn(|| {
            drive(
                server.addr,
                slots,
                Close::Normal,
                o.line,
                &shared,
                far,
                far,
                false,
            )
        });
        thread::sleep(Duration::from_secs_f64(o.c.windows.ramp));
        let (l0, c0) = (
            shared.live.load(Ordering::Relaxed),
            tracing::proc_cpu(server.pid),
        );
        let prof = tracing::profile(server.pid, secs, cpus.client);
        let (l1, c1) = (
            shared.live.load(Ordering::Relaxed),
            tracing::proc_cpu(server.pid),
        );
        shared.stop.store(true, Ordering::Relaxed);
        let cpu = c0.zip(c1).map_or(f64::NAN, |(a, b)| b - a);
        (join(gen), prof.map(|p| (p, l1 - l0, cpu)))
    });
    gen?;
    let (text, conns, cpu) = prof?;
    println!(
        "{}, churn {slots} slots, {secs} s under perf record -g: {conns} connections, {:.1} µs CPU/conn\n{text}",
        spec.label(),
        cpu * 1e6 / conns.max(1) as f64
    );
    Ok(())
}

fn run(o: &Opts, bench_dir: &Path) -> io::Result<Results> {
    let mut session = Session::begin(&o.c, "")?;
    let (cpus, perf, strace) = (session.cpus, session.perf, session.strace);
    let bins = workers::build(bench_dir)?;
    let mut notes = Vec::new();
    let cx = Ctx {
        o,
        bins: &bins,
        cpus,
        perf,
    };
    let (mut budget, mut repeats) = (o.c.retry_budget, 0usize);
    let mut churn: BTreeMap<(usize, Close, Spec), Vec<ChurnRun>> = BTreeMap::new();
    let mut strace_results = Vec::new();
    let mut burst: BTreeMap<Spec, Vec<Burst>> = BTreeMap::new();
    let specs = o.churn_specs();
    if o.churn {
        for &slots in &o.slots {
            for &close in &o.closes {
                for round in 0..o.c.rounds {
                    for j in 0..specs.len() {
                        let spec = specs[(j + round) % specs.len()];
                        let what = format!(
                            "{} {slots} slots {} round {}/{}",
                            spec.name(),
                            close.name(),
                            round + 1,
                            o.c.rounds
                        );
                        let r = retried(
                            &what,
                            &mut budget,
                            &mut repeats,
                            || churn_run(&cx, spec, slots, close),
                            |r| &r.w,
                            |r| {
                                format!(
                                    "{} p99 {:.0} µs max {:.0} µs ovf {} slow {} err {}",
                                    show_window(&r.w, "conn"),
                                    r.p99_us,
                                    r.max_us,
                                    r.overflows,
                                    r.slow,
                                    r.errors
                                )
                            },
                        )?;
                        if r.errors > 0 {
                            notes.push(format!(
                                "{what}: {} failed connections (first: {})",
                                r.errors,
                                r.first_error.clone().unwrap_or_default()
                            ));
                        }
                        churn.entry((slots, close, spec)).or_default().push(r);
                    }
                }
            }
        }
        if strace {
            for &slots in &o.slots {
                for &spec in &specs {
                    let r = strace_churn(&cx, spec, slots, Close::Normal);
                    match &r {
                        Ok((c, n)) => eprintln!(
                            "  strace {} {slots} slots: {:.2} syscalls/conn ({} calls, {n} conns)",
                            spec.name(),
                            c.total as f64 / (*n).max(1) as f64,
                            c.total
                        ),
                        Err(e) => eprintln!("  strace {}: {e}", spec.name()),
                    }
                    strace_results.push((slots, spec, r));
                }
            }
        }
        for round in 0..o.c.rounds {
            for j in 0..specs.len() {
                let spec = specs[(j + round) % specs.len()];
                let b = burst_run(&cx, spec, o.burst)
                    .map_err(|e| io::Error::new(e.kind(), format!("burst {}: {e}", spec.name())))?;
                eprintln!(
                    "  burst {} × {}: max {:.1} ms p99 {:.1} ms, {} done, {} overflows, {} failed",
                    spec.name(),
                    o.burst,
                    b.max_ms,
                    b.p99_ms,
                    b.done,
                    b.overflows,
                    b.errors
                );
                burst.entry(spec).or_default().push(b);
            }
        }
    }
    let mut wchurn: BTreeMap<Spec, Vec<ChurnRun>> = BTreeMap::new();
    let mut wpipe: BTreeMap<Spec, Vec<PipeRun>> = BTreeMap::new();
    let wspecs = o.worker_specs();
    if o.workers {
        for round in 0..o.c.rounds {
            for j in 0..wspecs.len() {
                let spec = wspecs[(j + round) % wspecs.len()];
                let what = format!("{} churn round {}/{}", spec.name(), round + 1, o.c.rounds);
                let r = retried(
                    &what,
                    &mut budget,
                    &mut repeats,
                    || churn_run(&cx, spec, o.worker_slots, Close::Normal),
                    |r| &r.w,
                    |r| show_window(&r.w, "conn"),
                )?;
                wchurn.entry(spec).or_default().push(r);
                let what = format!(
                    "{} {}×{} round {}/{}",
                    spec.name(),
                    o.pipe_conns,
                    o.pipe_depth,
                    round + 1,
                    o.c.rounds
                );
                let r = retried(
                    &what,
                    &mut budget,
                    &mut repeats,
                    || pipe_run(&cx, spec),
                    |r| &r.w,
                    |r| {
                        format!(
                            "{} at connect {:?}",
                            show_window(&r.w, "line"),
                            r.spread.clone().unwrap_or_default()
                        )
                    },
                )?;
                wpipe.entry(spec).or_default().push(r);
            }
        }
    }
    if repeats > 0 {
        notes.push(format!(
            "{repeats} run(s) were repeated because the load generator (or a one-thread \
             server) waited for its CPU more than {:.0}% of the window",
            MAX_WAIT * 100.0
        ));
    }
    session.notes.append(&mut notes);
    let w = &o.c.windows;
    let summary = format!(
        "{} round(s); per run {:.2} s ramp, {:.2} s measured, then {:.2} s of perf stat; \
         strace windows {:.2} s; {}-byte lines",
        o.c.rounds, w.ramp, w.window, w.perf_window, w.strace_window, o.line
    );
    Ok(Results {
        head: session.end(&o.c, summary),
        churn,
        churn_specs: specs,
        strace: strace_results,
        burst,
        wchurn,
        wpipe,
        worker_specs: wspecs,
    })
}

// ---------------------------------------------------------------------------
// Report.

/// `median (min–max)` of the values, with `prec` decimals; `–` if none.
fn range(v: impl IntoIterator<Item = f64>, prec: usize) -> String {
    let mut v: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return "–".into();
    }
    v.sort_by(f64::total_cmp);
    let med = v[v.len() / 2];
    let (lo, hi) = (v[0], v[v.len() - 1]);
    if v.len() == 1 || (hi - lo).abs() < 0.5 * 10f64.powi(-(prec as i32)) {
        format!("{med:.prec$}")
    } else {
        format!("{med:.prec$} ({lo:.prec$}–{hi:.prec$})")
    }
}

fn median(v: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn header(r: &Results, o: &Opts, what: &str) -> String {
    let (h, m) = (&r.head, &r.head.machine);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{what} measured on {} by `{}` ({:.0} s for the whole command).\n",
        m.date,
        h.command,
        h.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "Machine: `nproc` {}, {}, Linux `{}`, load average at start {}.",
        m.nproc,
        m.cpu,
        m.kernel.trim_start_matches("Linux "),
        m.load_start
    );
    let cpu = |c: Option<usize>| c.map_or("any".to_string(), |c| c.to_string());
    let _ = writeln!(
        s,
        "Server pinned to CPU {} (all its threads), generator and tracers on CPU {}; {}. \
         Cells are `median (min–max)` over the {} alternating rounds.{}\n",
        cpu(h.cpus.server),
        cpu(h.cpus.client),
        h.summary,
        o.c.rounds,
        if o.c.quick {
            " QUICK RUN: not for the docs."
        } else {
            ""
        }
    );
    s
}

fn churn_markdown(r: &Results, o: &Opts) -> String {
    let mut s = header(r, o, "Connection churn");
    if !o.churn {
        return s;
    }
    let _ = writeln!(
        s,
        "Per connection: connect, write one {}-byte line, read its echo, close. \
         `CPU µs/conn` is the server's user + system time (`/proc/PID/stat`) per \
         connection; `syscalls/conn` is every system call of the server \
         (`perf stat -e raw_syscalls:sys_enter`), `waits/conn` its select/poll/epoll_wait calls, \
         `accept4/conn` its accept calls (failed ones included); `p99`/`max` are connect-to-echo times \
         in the window; `ovf` is `ListenOverflows` (/proc/net/netstat, over the run) \
         — the whole network namespace counts, other jobs' listeners too — and `≥200 ms` the \
         connections of this run that took 200 ms or more or never finished: a SYN or \
         ACK dropped by a full queue of *this* server costs about 1 s, so `ovf` > 0 with \
         `≥200 ms` = 0 is someone else's overflow.\n",
        o.line
    );
    for &slots in &o.slots {
        for &close in &o.closes {
            let _ = writeln!(
                s,
                "**{slots} slot(s), {}**\n\n| server | conns/s | CPU µs/conn | syscalls/conn | waits/conn | accept4/conn | vol. switches/conn | p99 µs | max µs | ovf | ≥200 ms |\n|---|---|---|---|---|---|---|---|---|---|---|",
                if close == Close::Normal { "normal close" } else { "reset (`SO_LINGER {1,0}`)" }
            );
            for &spec in &r.churn_specs {
                let Some(runs) = r.churn.get(&(slots, close, spec)) else {
                    continue;
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    spec.label(),
                    range(runs.iter().map(|x| x.w.per_sec), 0),
                    range(runs.iter().map(|x| x.w.cpu_us), 2),
                    range(runs.iter().filter_map(|x| x.w.syscalls_total()), 2),
                    range(runs.iter().filter_map(|x| x.w.syscall(WAITS)), 2),
                    range(runs.iter().filter_map(|x| x.w.syscall(&["accept4"])), 2),
                    range(runs.iter().map(|x| x.w.vol_switches), 2),
                    range(runs.iter().map(|x| x.p99_us), 0),
                    range(runs.iter().map(|x| x.max_us), 0),
                    runs.iter().map(|x| x.overflows).sum::<u64>(),
                    runs.iter().map(|x| x.slow).sum::<u64>()
                );
            }
            s.push('\n');
        }
    }
    // Targets.
    let c = Spec::C { accept_loop: false };
    let ours: Vec<Spec> = r
        .churn_specs
        .iter()
        .copied()
        .filter(|x| x.is_ours())
        .collect();
    let _ = writeln!(
        s,
        "**Against the targets** (normal close; ratio of medians):\n"
    );
    for &slots in &o.slots {
        let Some(cr) = r.churn.get(&(slots, Close::Normal, c)) else {
            continue;
        };
        let crate_c = median(cr.iter().map(|x| x.w.per_sec));
        let c_sel = median(cr.iter().filter_map(|x| x.w.syscall(WAITS)));
        let mut parts = Vec::new();
        for &spec in &ours {
            let Some(runs) = r.churn.get(&(slots, Close::Normal, spec)) else {
                continue;
            };
            parts.push(format!(
                "{} {:.2}× the C server's conns/s, {:.2} selects/conn (C {:.2}), {:.2}× its CPU/conn",
                spec.name(),
                median(runs.iter().map(|x| x.w.per_sec)) / crate_c,
                median(runs.iter().filter_map(|x| x.w.syscall(WAITS))),
                c_sel,
                median(runs.iter().map(|x| x.w.cpu_us)) / median(cr.iter().map(|x| x.w.cpu_us)),
            ));
        }
        let _ = writeln!(s, "* {slots} slot(s): {}.", parts.join("; "));
    }
    s.push('\n');
    // strace.
    if !r.strace.is_empty() {
        let _ = writeln!(
            s,
            "**System calls per connection by name** (`strace -c -f`, a separate {:.1}-s \
             window per server, normal close; strace slows the server, so the loop \
             batches more than in the runs above; `accept4` errors are `EAGAIN`):\n",
            o.c.windows.strace_window
        );
        let _ = writeln!(
            s,
            "| slots | server | conns | wait | accept4 (failed) | read | write | close | other | total |\n|---|---|---|---|---|---|---|---|---|---|"
        );
        for (slots, spec, res) in &r.strace {
            match res {
                Ok((c, n)) => {
                    let per = |x: u64| x as f64 / (*n).max(1) as f64;
                    let sum = |names: &[&str]| -> (u64, u64) {
                        c.by_name
                            .iter()
                            .filter(|(nm, _, _)| names.contains(&nm.as_str()))
                            .fold((0, 0), |(a, b), r| (a + r.1, b + r.2))
                    };
                    let wait = sum(WAITS);
                    let acc = sum(&["accept4", "accept"]);
                    let rd = sum(&["read", "recvfrom", "recvmsg"]);
                    let wr = sum(&["write", "sendto", "sendmsg", "writev"]);
                    let cl = sum(&["close"]);
                    let other = c.total - wait.0 - acc.0 - rd.0 - wr.0 - cl.0;
                    let _ = writeln!(
                        s,
                        "| {slots} | {} | {n} | {:.2} | {:.2} ({:.2}) | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                        spec.label(),
                        per(wait.0),
                        per(acc.0),
                        per(acc.1),
                        per(rd.0),
                        per(wr.0),
                        per(cl.0),
                        per(other),
                        per(c.total)
                    );
                }
                Err(e) => {
                    let _ = writeln!(
                        s,
                        "| {slots} | {} | strace failed: {e} |||||||||",
                        spec.label()
                    );
                }
            }
        }
        s.push('\n');
    }
    // Burst.
    let _ = writeln!(
        s,
        "**Burst**: {} nonblocking connects issued at once, each one line; connect-to-echo \
         over the burst, `ListenOverflows` during it.\n\n| server | slowest ms | p99 ms | overflows | failed |\n|---|---|---|---|---|",
        o.burst
    );
    for &spec in &r.churn_specs {
        let Some(b) = r.burst.get(&spec) else {
            continue;
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            spec.label(),
            range(b.iter().map(|x| x.max_ms), 1),
            range(b.iter().map(|x| x.p99_ms), 1),
            b.iter().map(|x| x.overflows).sum::<u64>(),
            b.iter().map(|x| x.errors).sum::<u64>()
        );
    }
    s.push('\n');
    for n in &r.head.notes {
        let _ = writeln!(s, "* Note: {n}");
    }
    s
}

/// `a/b/c` shares (%) of connections per worker, and max/mean.
fn spread_text(v: &[u64]) -> String {
    let total: u64 = v.iter().sum();
    if v.len() < 2 || total == 0 {
        return "–".into();
    }
    let shares: Vec<String> = v
        .iter()
        .map(|&x| format!("{:.0}", x as f64 * 100.0 / total as f64))
        .collect();
    let max = *v.iter().max().unwrap_or(&0) as f64;
    format!(
        "{} % (max/mean {:.2})",
        shares.join("/"),
        max * v.len() as f64 / total as f64
    )
}

fn workers_markdown(r: &Results, o: &Opts) -> String {
    let mut s = header(r, o, "Workers");
    if !o.workers {
        return s;
    }
    let _ = writeln!(
        s,
        "Ours (`EchoServer::run`, select, accept_batch 1) with N workers, every worker \
         thread pinned to the same CPU: this machine has {} cores and the load \
         generator needs one, so **throughput here says nothing about scaling**; what \
         does not depend on it is the CPU per unit, the herd and the spread. \
         `vol. switches` are the voluntary context switches of all the server's \
         threads (`/proc/PID/task/*/status`), the herd as the kernel sees it; `empty \
         accepts` are the workers' accepts that found the queue empty (`Stats::empty_accepts`, \
         EAGAIN); `spread` is each worker's share of the connections it accepted \
         (`StatsHandle::per_worker`, printed by `serve --stats` on SIGUSR1).\n",
        r.head.machine.nproc
    );
    let _ = writeln!(
        s,
        "**Churn, {} slots, normal close**\n\n| workers | listener | conns/s | CPU µs/conn | vol. switches/conn | empty accepts/conn | selects/conn | spread of accepted |\n|---|---|---|---|---|---|---|---|",
        o.worker_slots
    );
    let listener = |spec: Spec| match spec {
        Spec::Ours { workers: 1, .. } => "–",
        Spec::Ours {
            reuseport: true, ..
        } => "SO_REUSEPORT",
        _ => "shared",
    };
    for &spec in &r.worker_specs {
        let Some(runs) = r.wchurn.get(&spec) else {
            continue;
        };
        let last = runs
            .last()
            .and_then(|x| x.w.spread.clone())
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            spec.workers(),
            listener(spec),
            range(runs.iter().map(|x| x.w.per_sec), 0),
            range(runs.iter().map(|x| x.w.cpu_us), 2),
            range(runs.iter().map(|x| x.w.vol_switches), 2),
            range(runs.iter().filter_map(|x| x.w.empty), 3),
            range(runs.iter().filter_map(|x| x.w.syscall(WAITS)), 2),
            spread_text(&last)
        );
    }
    let _ = writeln!(
        s,
        "\n**Pipelined, {} connections × depth {}, lines mode** (spread: the {} connections \
         over the workers as they connected, last round)\n\n| workers | listener | lines/s | CPU µs/line | vol. switches/line | selects/line | empty accepts while connecting | spread of connections |\n|---|---|---|---|---|---|---|---|",
        o.pipe_conns, o.pipe_depth, o.pipe_conns
    );
    for &spec in &r.worker_specs {
        let Some(runs) = r.wpipe.get(&spec) else {
            continue;
        };
        let last = runs
            .last()
            .and_then(|x| x.spread.clone())
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            spec.workers(),
            listener(spec),
            range(runs.iter().map(|x| x.w.per_sec), 0),
            range(runs.iter().map(|x| x.w.cpu_us), 3),
            range(runs.iter().map(|x| x.w.vol_switches), 3),
            range(runs.iter().filter_map(|x| x.w.syscall(WAITS)), 3),
            range(
                runs.iter()
                    .filter_map(|x| x.empty_at_connect.map(|e| e as f64)),
                0
            ),
            spread_text(&last)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(range([3.0, 1.0, 2.0], 1), "2.0 (1.0–3.0)");
        assert_eq!(range([2.0], 0), "2");
        assert_eq!(range(std::iter::empty(), 0), "–");
        assert_eq!(spread_text(&[50, 50]), "50/50 % (max/mean 1.00)");
    }

    #[test]
    fn churn_against_a_listener() {
        // A tiny echo server on a thread: 20 connections through 4 slots.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = thread::spawn(move || {
            for _ in 0..8 {
                use std::io::{Read, Write};
                let (mut c, _) = l.accept().unwrap();
                let mut b = [0u8; 64];
                c.read_exact(&mut b).unwrap();
                c.write_all(&b).unwrap();
            }
        });
        let shared = Shared::default();
        let now = Instant::now();
        let g = drive(
            addr,
            8,
            Close::Reset,
            64,
            &shared,
            now,
            now + Duration::from_secs(5),
            true,
        )
        .unwrap();
        t.join().unwrap();
        assert_eq!(g.latencies.len(), 8);
        assert_eq!(g.errors, 0);
    }
}
