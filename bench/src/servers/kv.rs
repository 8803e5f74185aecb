//! The servers of the kv comparison: the crate's `examples/kv_server` (built here
//! with `cargo build --release --example kv_server`, select or poll, `TCP_NODELAY`
//! on or off) and `memcached -t 1`, each its own process pinned to one CPU.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{pin_command, spawn_ready, Server};
use crate::other_err;

/// The servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KvKind {
    /// `kv_server` (select over `FdSet`, the default backend).
    Select,
    /// `kv_server --poll`.
    Poll,
    /// `kv_server --no-nodelay`: Nagle's algorithm on its replies.
    Nagle,
    /// `memcached -t 1 -U 0`.
    Memcached,
}

impl KvKind {
    pub const ALL: [KvKind; 4] = [
        KvKind::Select,
        KvKind::Poll,
        KvKind::Nagle,
        KvKind::Memcached,
    ];
    pub const DEFAULT: [KvKind; 4] = KvKind::ALL;

    pub fn name(self) -> &'static str {
        match self {
            KvKind::Select => "kv",
            KvKind::Poll => "kv-poll",
            KvKind::Nagle => "kv-nagle",
            KvKind::Memcached => "memcached",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            KvKind::Select => "kv_server (select)",
            KvKind::Poll => "kv_server --poll",
            KvKind::Nagle => "kv_server --no-nodelay",
            KvKind::Memcached => "memcached -t 1",
        }
    }

    pub fn is_ours(self) -> bool {
        self != KvKind::Memcached
    }

    pub fn from_name(s: &str) -> Option<KvKind> {
        KvKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// Builds `kv_server` in release mode (with line tables, for `perf record`) into
/// bench/target/kv, the crate's build kept apart from the bench's; returns the
/// executable.
pub fn build_kv(bench_dir: &Path) -> io::Result<PathBuf> {
    build_example(bench_dir, "kv_server")
}

/// Builds the crate's example `name` as [`build_kv`] builds kv_server.
pub fn build_example(bench_dir: &Path, name: &str) -> io::Result<PathBuf> {
    let crate_dir = bench_dir.join("..");
    let target = bench_dir.join("target/kv");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(&cargo)
        .args(["build", "--release", "--example", name, "--quiet"])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("{cargo}: {e}")))?;
    if !out.status.success() {
        return Err(other_err(format!(
            "cargo build --release --example {name} failed"
        )));
    }
    // The artifact message of the example names its executable.
    let text = String::from_utf8_lossy(&out.stdout);
    let exe = text
        .lines()
        .filter(|l| {
            l.contains("\"compiler-artifact\"") && l.contains(&format!("\"name\":\"{name}\""))
        })
        .find_map(|l| {
            let at = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = l[at..].find('"')?;
            Some(PathBuf::from(&l[at..at + end]))
        })
        .unwrap_or_else(|| target.join("release/examples").join(name));
    if !exe.exists() {
        return Err(other_err(format!("no {name} at {}", exe.display())));
    }
    Ok(exe)
}

/// Whether `exe --help` names `option`.
pub fn has_option(exe: &Path, option: &str) -> bool {
    Command::new(exe)
        .arg("--help")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(option))
}

/// A free port of 127.0.0.1 (bound and released: memcached takes a port number).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `kind` on 127.0.0.1, pinned to `cpu`, and returns once it accepts.
pub fn start(kind: KvKind, kv_bin: &Path, cpu: Option<usize>) -> io::Result<Server> {
    match kind {
        KvKind::Select | KvKind::Poll | KvKind::Nagle => {
            let args: &[&str] = match kind {
                KvKind::Poll => &["--poll"],
                KvKind::Nagle => &["--no-nodelay"],
                _ => &[],
            };
            start_example(kv_bin, "kv_server", args, cpu)
        }
        KvKind::Memcached => start_memcached(&[], cpu),
    }
}

/// Starts the crate's example `exe` (named `name`) with `args` on 127.0.0.1:0,
/// pinned to `cpu`; its address is read from its `NAME: listening on ADDR` line.
pub fn start_example(
    exe: &Path,
    name: &str,
    args: &[&str],
    cpu: Option<usize>,
) -> io::Result<Server> {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .arg("127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // "kv_server: listening on 127.0.0.1:PORT (select)"
    spawn_ready(cmd, name, &format!("{name}: listening on "), cpu)
}

/// Starts `memcached -t 1 -U 0` with `extra` options on a free port of 127.0.0.1,
/// pinned to `cpu`, and returns once it accepts.
pub fn start_memcached(extra: &[&str], cpu: Option<usize>) -> io::Result<Server> {
    let port = free_port()?;
    let mut cmd = Command::new("memcached");
    cmd.args(["-t", "1", "-U", "0", "-l", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["-u", "root"])
        .args(extra);
    spawn_listening(cmd, "memcached", port, cpu)
}

/// Starts `cmd`, a reference server `name` told to listen on 127.0.0.1:`port`,
/// pinned to `cpu`, with no stdin and its output dropped; waits (at most 10 s)
/// until it accepts.
pub fn spawn_listening(
    mut cmd: Command,
    name: &str,
    port: u16,
    cpu: Option<usize>,
) -> io::Result<Server> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    pin_command(&mut cmd, cpu);
    let mut child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(other_err(format!("{name} exited at start: {status}")));
        }
        if let Ok(s) = TcpStream::connect(addr) {
            // Reset, not FIN: no TIME_WAIT.
            let _ = unp_select::abort(s);
            return Ok(Server::adopt(child, addr));
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            return Err(other_err(format!("{name} did not listen within 10 s")));
        }
        thread::sleep(Duration::from_millis(5));
    }
}
