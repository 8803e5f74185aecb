//! Outside programs (nc, socat, python3, pymemcache, libmemcached's tools) run by
//! the ignored tests: required with a clear message, run with a time limit.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Panics with a clear message when `cmd` cannot be run successfully: `how` says
/// how to install what it needs.
pub fn require(cmd: &mut Command, how: &str) {
    let what = format!("{cmd:?}");
    match cmd.stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{what}: {s}: {how}, or leave this ignored test out"),
        Err(e) => panic!("{what}: {e}: {how}, or leave this ignored test out"),
    }
}

/// Runs `cmd` with `input` on its stdin; it must exit successfully within `limit`,
/// or it is killed and the test fails (a deadlock). Returns (stdout, stderr).
pub fn run_tool(what: &str, cmd: &mut Command, input: &[u8], limit: Duration) -> (Vec<u8>, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: spawn: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = thread::spawn(move || stdin.write_all(&input));
    let mut stdout = child.stdout.take().unwrap();
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).map(|_| v)
    });
    let mut stderr = child.stderr.take().unwrap();
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let t = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let out = out.join().unwrap().unwrap();
    let err = err.join().unwrap();
    let fed = feeder.join().unwrap();
    match status {
        None => panic!(
            "{what}: still running after {limit:?} (deadlock?); {} bytes of output so far; \
             stderr: {err}",
            out.len()
        ),
        Some(s) if !s.success() => panic!(
            "{what}: {s}; stdout: {}; stderr: {err}",
            String::from_utf8_lossy(&out)
        ),
        Some(_) => {}
    }
    // A tool may exit without reading all its input (memcslap reads none).
    let _ = fed;
    (out, err)
}
