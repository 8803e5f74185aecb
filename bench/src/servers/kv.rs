//! The servers of the kv comparison: the crate's `examples/kv_server` (built here
//! with `cargo build --release --example kv_server`, select or poll) and
//! `memcached -t 1`, each its own process pinned to one CPU.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{first_line, pin_command, Server};
use crate::other_err;

/// The servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KvKind {
    /// `kv_server` (select over `FdSet`, the default backend).
    Select,
    /// `kv_server --poll`.
    Poll,
    /// `memcached -t 1 -U 0`.
    Memcached,
}

impl KvKind {
    pub const ALL: [KvKind; 3] = [KvKind::Select, KvKind::Poll, KvKind::Memcached];
    pub const DEFAULT: [KvKind; 3] = KvKind::ALL;

    pub fn name(self) -> &'static str {
        match self {
            KvKind::Select => "kv",
            KvKind::Poll => "kv-poll",
            KvKind::Memcached => "memcached",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            KvKind::Select => "kv_server (select)",
            KvKind::Poll => "kv_server --poll",
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
    let crate_dir = bench_dir.join("..");
    let target = bench_dir.join("target/kv");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(&cargo)
        .args(["build", "--release", "--example", "kv_server", "--quiet"])
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
        return Err(other_err(
            "cargo build --release --example kv_server failed",
        ));
    }
    // The artifact message of the example names its executable.
    let text = String::from_utf8_lossy(&out.stdout);
    let exe = text
        .lines()
        .filter(|l| l.contains("\"compiler-artifact\"") && l.contains("\"name\":\"kv_server\""))
        .find_map(|l| {
            let at = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = l[at..].find('"')?;
            Some(PathBuf::from(&l[at..at + end]))
        })
        .unwrap_or_else(|| target.join("release/examples/kv_server"));
    if !exe.exists() {
        return Err(other_err(format!("no kv_server at {}", exe.display())));
    }
    Ok(exe)
}

/// A free port of 127.0.0.1 (bound and released: memcached takes a port number).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `kind` on 127.0.0.1, pinned to `cpu`, and returns once it accepts.
pub fn start(kind: KvKind, kv_bin: &Path, cpu: Option<usize>) -> io::Result<Server> {
    match kind {
        KvKind::Select | KvKind::Poll => {
            let mut cmd = Command::new(kv_bin);
            if kind == KvKind::Poll {
                cmd.arg("--poll");
            }
            cmd.arg("127.0.0.1:0")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            pin_command(&mut cmd, cpu);
            let mut child = cmd
                .spawn()
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", kv_bin.display())))?;
            // "kv_server: listening on 127.0.0.1:PORT (select)"
            let line = first_line(&mut child);
            let addr: Option<SocketAddr> = line
                .strip_prefix("kv_server: listening on ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|a| a.parse().ok());
            match addr {
                Some(addr) => Ok(Server::adopt(child, addr)),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    Err(other_err(format!(
                        "kv_server did not start (said {line:?})"
                    )))
                }
            }
        }
        KvKind::Memcached => {
            let port = free_port()?;
            let mut cmd = Command::new("memcached");
            cmd.args(["-t", "1", "-U", "0", "-l", "127.0.0.1", "-p"])
                .arg(port.to_string())
                .args(["-u", "root"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            pin_command(&mut cmd, cpu);
            let mut child = cmd
                .spawn()
                .map_err(|e| io::Error::new(e.kind(), format!("memcached: {e}")))?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let until = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = child.try_wait()? {
                    return Err(other_err(format!("memcached exited at start: {status}")));
                }
                if let Ok(s) = TcpStream::connect(addr) {
                    // Reset, not FIN: no TIME_WAIT.
                    let _ = unp_select::abort(s);
                    return Ok(Server::adopt(child, addr));
                }
                if Instant::now() > until {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(other_err("memcached did not listen within 10 s"));
                }
                thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
