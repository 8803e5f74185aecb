//! The servers under test, each run as its own process pinned to one CPU: ours
//! (`EchoServer`), the C server (`bench/c/tcpservselect.c`, built with `cc -O2`),
//! and echo servers on mio and tokio. The Rust ones are this binary's
//! `serve KIND MODE ADDR`; the RESP store of `echo-bench resp` is its
//! `serve resp ADDR`.

mod echobuf;
pub mod kv;
mod mio_echo;
pub mod resp;
mod tokio_echo;

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use unp_select::echo::{Echo, EchoServer};
use unp_select::select::FD_SETSIZE;
use unp_select::server::Config;

use crate::{invalid, other_err, raise_nofile};

/// What the servers echo: whole lines (every complete line one read brought, at
/// most 16 per send) or what one read returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    Lines,
    Bytes,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Lines, Mode::Bytes];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Lines => "lines",
            Mode::Bytes => "bytes",
        }
    }

    pub fn from_name(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// The servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `EchoServer::run` (select over `FdSet`).
    Ours,
    /// `EchoServer::run_poll`.
    Poll,
    /// `EchoServer::run_large` (select over `LargeFdSet`).
    Large,
    C,
    Mio,
    Tokio,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Ours,
        Kind::Poll,
        Kind::Large,
        Kind::C,
        Kind::Mio,
        Kind::Tokio,
    ];
    /// The servers of a default run.
    pub const DEFAULT: [Kind; 4] = [Kind::Ours, Kind::C, Kind::Mio, Kind::Tokio];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Poll => "poll",
            Kind::Large => "large",
            Kind::C => "c",
            Kind::Mio => "mio",
            Kind::Tokio => "tokio",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Ours => "ours (EchoServer::run, select)",
            Kind::Poll => "ours (EchoServer::run_poll)",
            Kind::Large => "ours (EchoServer::run_large)",
            Kind::C => "C tcpservselect (select, -O2)",
            Kind::Mio => "mio (epoll)",
            Kind::Tokio => "tokio current-thread",
        }
    }

    pub fn color(self) -> &'static str {
        match self {
            Kind::Ours => "#d62728",
            Kind::Poll => "#ff7f0e",
            Kind::Large => "#8c564b",
            Kind::C => "#1f77b4",
            Kind::Mio => "#2ca02c",
            Kind::Tokio => "#9467bd",
        }
    }

    pub fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// `echo-bench serve KIND MODE ADDR [--workers N] [--reuseport] [--accept-batch N]
/// [--stats]`: runs one Rust server until killed (the options are for ours, poll and
/// large; see `crate::workers::ServeOpts`).
pub fn serve_main(args: &[String]) -> io::Result<()> {
    if args.first().is_some_and(|a| a == "resp") {
        raise_nofile()?;
        return resp::serve(&args[1..]);
    }
    let (args, extra) = args.split_at(args.len().min(3));
    let [kind, mode, addr] = args else {
        return Err(invalid("serve KIND MODE ADDR [OPTIONS]"));
    };
    let mut extra = crate::workers::ServeOpts::parse(extra)?;
    let kind = Kind::from_name(kind)
        .filter(|&k| k != Kind::C)
        .ok_or_else(|| invalid(format!("unknown Rust server {kind}")))?;
    let mode = Mode::from_name(mode).ok_or_else(|| invalid(format!("unknown mode {mode}")))?;
    raise_nofile()?;
    // stdout is line-buffered: the orchestrator reads this at once.
    let ready = |a: SocketAddr| println!("ready {a} {}", std::process::id());
    match kind {
        Kind::Ours | Kind::Poll | Kind::Large => {
            let echo = match mode {
                Mode::Lines => Echo::Lines,
                Mode::Bytes => Echo::Bytes,
            };
            let config =
                Config::book().with_max_clients(if kind == Kind::Ours { FD_SETSIZE } else { 4096 });
            let server = EchoServer::bind(addr.as_str(), echo, extra.apply(config))?;
            extra.watch(&server)?;
            ready(server.local_addr()?);
            let stats = match kind {
                Kind::Ours => server.run()?,
                Kind::Poll => server.run_poll()?,
                _ => server.run_large()?,
            };
            eprintln!("{stats:?}");
            extra.finish();
            Ok(())
        }
        Kind::Mio => mio_echo::run(addr, mode, ready),
        Kind::Tokio => tokio_echo::run(addr, mode, ready),
        Kind::C => unreachable!("filtered above"),
    }
}

/// Compiles the C server with `cc -O2` (or `$CC`) into the bench package's target
/// directory.
pub fn build_c(bench_dir: &Path) -> io::Result<PathBuf> {
    let src = bench_dir.join("c/tcpservselect.c");
    let dir = bench_dir.join("target/c");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("tcpservselect");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args(["-O2", "-Wall", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .map_err(|e| io::Error::new(e.kind(), format!("{cc}: {e}")))?;
    if !status.success() {
        return Err(other_err(format!("{cc} -O2 {} failed", src.display())));
    }
    Ok(out)
}

/// Pins the calling thread (and what it spawns afterwards) to `cpu`.
pub fn pin_to(cpu: usize) -> io::Result<()> {
    use nix::sched::{sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    set.set(cpu)?;
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(())
}

/// A running server process.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
}

impl Server {
    /// Starts `kind` in `mode` on a free port of 127.0.0.1, pinned to `cpu` (as
    /// `taskset -c CPU` would), and waits for its "ready ADDR PID" line.
    pub fn start(kind: Kind, mode: Mode, c_bin: &Path, cpu: Option<usize>) -> io::Result<Server> {
        let mut cmd = if kind == Kind::C {
            let mut c = Command::new(c_bin);
            if mode == Mode::Lines {
                c.arg("-l");
            }
            c
        } else {
            let mut c = Command::new(std::env::current_exe()?);
            c.args(["serve", kind.name(), mode.name()]);
            c
        };
        cmd.arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        spawn_ready(cmd, kind.name(), "ready ", cpu)
    }
}

/// Spawns `cmd` (its stdout piped) pinned to `cpu`, and waits for its first line,
/// `PREFIX ADDR ...`: the server `name` listening on ADDR, or why not.
pub fn spawn_ready(
    mut cmd: Command,
    name: &str,
    prefix: &str,
    cpu: Option<usize>,
) -> io::Result<Server> {
    pin_command(&mut cmd, cpu);
    let mut child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
    let line = first_line(&mut child);
    let addr: Option<SocketAddr> = line
        .strip_prefix(prefix)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok());
    match addr {
        Some(addr) => Ok(Server::adopt(child, addr)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(other_err(format!("{name} did not start (said {line:?})")))
        }
    }
}

/// Has `cmd`'s process pinned to `cpu` (as `taskset -c CPU` would); its threads
/// inherit the mask.
pub fn pin_command(cmd: &mut Command, cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        // SAFETY: the closure only calls sched_setaffinity (a system call, async-
        // signal-safe) on stack data, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// The first line `child` writes to its (piped) stdout, waiting at most 10 s;
/// empty if none came. The rest of its stdout is drained and dropped.
pub fn first_line(child: &mut Child) -> String {
    let Some(stdout) = child.stdout.take() else {
        return String::new();
    };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        let _ = tx.send(line);
        let _ = io::copy(&mut r, &mut io::sink());
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default()
}

impl Server {
    /// A server started elsewhere (the kv comparison's), listening on `addr`;
    /// killed when dropped.
    pub fn adopt(child: Child, addr: SocketAddr) -> Server {
        let pid = child.id();
        Server { child, addr, pid }
    }
}

impl Server {
    /// Sends SIGTERM and waits, at most `limit`, for the server to exit (then
    /// kills it): a server run under a tool that writes its report at the exit.
    pub fn stop(mut self, limit: Duration) -> io::Result<()> {
        use nix::sys::signal::{kill, Signal};
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let until = std::time::Instant::now() + limit;
        while self.child.try_wait()?.is_none() {
            if std::time::Instant::now() > until {
                return Err(other_err(format!(
                    "no exit within {} s of SIGTERM",
                    limit.as_secs()
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
