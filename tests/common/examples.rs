//! The example programs, built before a test runs them: a test never relies on an
//! earlier command having built them, nor runs a stale binary.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Mutex;

/// Names already built by this test process.
static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Builds example `name` with the test's own profile (`cargo build --example`,
/// which does nothing if it is up to date) and returns a command that runs it.
pub fn example(name: &str) -> Command {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "--example", name])
            .arg("--manifest-path")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        if !cfg!(debug_assertions) {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("run cargo to build the example");
        assert!(status.success(), "cargo build --example {name} failed");
        built.push(name.to_string());
    }
    Command::new(path(name))
}

/// `target/<profile>/examples/<name>`, next to the test binary's `deps/`.
fn path(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("the test binary's path");
    dir.pop(); // the test binary
    dir.pop(); // deps/
    dir.join("examples").join(name)
}

/// A running server example (`echo_server`, `chat_server`) on 127.0.0.1 and the
/// address it printed; killed when dropped, if it is still running (a failed test
/// leaves no server behind).
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    name: String,
    stdout: BufReader<ChildStdout>,
}

impl ServerProcess {
    /// Builds and starts `echo_server ARGS 127.0.0.1:0`, and reads its first line:
    /// "echo_server: listening on 127.0.0.1:PORT (…)".
    pub fn start(args: &[&str]) -> ServerProcess {
        ServerProcess::start_example("echo_server", args)
    }

    /// Builds and starts example `name` with `ARGS 127.0.0.1:0`, and reads its
    /// first line: "NAME: listening on 127.0.0.1:PORT (…)".
    pub fn start_example(name: &str, args: &[&str]) -> ServerProcess {
        ServerProcess::spawn(name, example(name).args(args))
    }

    /// Starts `cmd`, a command for example `name` (from [`example`], with its
    /// options and whatever else the caller set, such as a `pre_exec`), with
    /// `127.0.0.1:0` as its last argument, and reads its first line.
    pub fn spawn(name: &str, cmd: &mut Command) -> ServerProcess {
        ServerProcess::spawn_with_operands(name, cmd, &[])
    }

    /// As [`spawn`](Self::spawn), with `operands` after the address (the relay's
    /// `UPSTREAM_ADDR`).
    pub fn spawn_with_operands(name: &str, cmd: &mut Command, operands: &[&str]) -> ServerProcess {
        let mut child = cmd
            .arg("127.0.0.1:0")
            .args(operands)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut first = String::new();
        stdout
            .read_line(&mut first)
            .unwrap_or_else(|e| panic!("{name}'s first line: {e}"));
        let addr = first
            .split_whitespace()
            .nth(3)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        ServerProcess {
            child,
            addr,
            name: name.to_string(),
            stdout,
        }
    }

    /// SIGTERM, then the exit status and the rest of stdout (the counters).
    pub fn terminate(self) -> (ExitStatus, String) {
        self.stop_with(libc::SIGTERM)
    }

    /// Sends `signal`, then returns the exit status and the rest of stdout.
    pub fn stop_with(self, signal: libc::c_int) -> (ExitStatus, String) {
        self.signal(signal);
        self.finish()
    }

    /// Sends `signal` and returns at once.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill only sends a signal to our own child process.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits for the exit; returns its status and the rest of stdout.
    pub fn finish(mut self) -> (ExitStatus, String) {
        let status = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("wait for {}: {e}", self.name));
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        (status, rest)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
