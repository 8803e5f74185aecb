//! Tests that need a process to themselves run in a fresh copy of their test binary.
//!
//! The tests of one binary are threads of one process: they share its descriptor
//! table (its size, its numbers, its count), its limits, its signal handlers and its
//! CPU time. A test that counts, fills or grows the table, lowers a limit or measures
//! the process's CPU time would disturb the others or be disturbed by them. Such a
//! test calls [`in_fresh_process`]: the binary is run again with `--exact` and the
//! test's name (libtest names each test's thread after the test), and the copy runs
//! the body. Several parts of one test (the variants of a scenario) can run side by
//! side, each in its own copy ([`in_fresh_processes`]).

use std::fmt::Debug;
use std::fs::File;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Set in a fresh copy: `<test name>#<part>`.
const ENV: &str = "UNP_TEST_FRESH_PROCESS";

/// Printed by a fresh copy once the body returned: a name that matched no test, or
/// a body that never ran, would pass as well otherwise.
const DONE: &str = "FRESH PROCESS DONE";

/// The name of the running test: libtest names the thread that runs a test after it
/// (`module::test_name`, without the crate).
pub fn test_name() -> String {
    let name = thread::current().name().map(str::to_owned);
    match name {
        Some(name) if name != "main" => name,
        _ => panic!("not in a test thread: cannot tell which test to run again"),
    }
}

/// The name libtest gives test `test` of the module at `module_path` (its
/// `module_path!()`, whose first part, the crate, libtest leaves out).
pub fn test_in(module_path: &str, test: &str) -> String {
    match module_path.split_once("::") {
        Some((_crate, module)) => format!("{module}::{test}"),
        None => test.to_string(),
    }
}

/// Runs `body` in a fresh copy of this test binary that runs only the calling test;
/// in that copy, runs `body`. Fails if the copy fails or runs longer than `limit`.
pub fn in_fresh_process(limit: Duration, body: impl FnOnce()) {
    in_fresh_processes(&[()], 1, limit, |()| body());
}

/// Runs `body(part)` for every one of `parts`, each in a fresh copy of this test
/// binary that runs only the calling test, `at_once` copies at a time; in a copy,
/// runs `body` with its part. Their output is printed (libtest shows it for a failed
/// test and with `--nocapture`). Fails if any copy fails, or if they take longer than
/// `limit` in all.
pub fn in_fresh_processes<T: Copy + Debug>(
    parts: &[T],
    at_once: usize,
    limit: Duration,
    body: impl FnOnce(T),
) {
    let name = test_name();
    if let Some(part) = my_part(&name) {
        body(parts[part]);
        println!("{DONE} {name}#{part}");
        return;
    }
    let started = Instant::now();
    let mut copies: Vec<(FreshCopy, Option<ExitStatus>)> = Vec::new();
    while started.elapsed() < limit {
        let running = copies.iter().filter(|(_, status)| status.is_none()).count();
        if running < at_once.max(1) && copies.len() < parts.len() {
            copies.push((FreshCopy::start(&name, copies.len()), None));
        } else if running == 0 {
            break;
        } else {
            thread::sleep(Duration::from_millis(5));
            for (copy, status) in copies.iter_mut().filter(|(_, s)| s.is_none()) {
                *status = copy.child.try_wait().expect("wait for a fresh copy");
            }
        }
    }
    let mut failed: Vec<String> = parts[copies.len()..]
        .iter()
        .map(|part| format!("{part:?} (not started within {limit:?})"))
        .collect();
    for (i, ((mut copy, status), part)) in copies.into_iter().zip(parts).enumerate() {
        let (exited_0, status) = match status {
            Some(status) => (status.success(), status.to_string()),
            None => {
                let _ = copy.child.kill();
                let _ = copy.child.wait();
                (false, format!("still running after {limit:?}, killed"))
            }
        };
        let out = copy.output(Duration::from_secs(5));
        let done = format!("{DONE} {name}#{i}");
        if exited_0 && out.lines().any(|l| l == done) {
            // What the test printed, without libtest's own lines.
            for line in out.lines().filter(|l| !is_libtest_line(l)) {
                println!("{line}");
            }
        } else {
            print!("{out}");
            failed.push(format!("{part:?} ({status})"));
        }
    }
    assert!(
        failed.is_empty(),
        "{name} failed in a fresh process: {failed:?}"
    );
}

/// A line libtest prints around the one test of a fresh copy (`-q`), or its end mark.
fn is_libtest_line(line: &str) -> bool {
    let line = line.trim();
    line.is_empty()
        || line == "."
        || line == "running 1 test"
        || line.starts_with("test result: ok. 1 passed")
        || line.starts_with(DONE)
}

/// In a fresh copy made for test `name`: the part to run.
fn my_part(name: &str) -> Option<usize> {
    let value = std::env::var(ENV).ok()?;
    let (test, part) = value.rsplit_once('#')?;
    (test == name).then(|| part.parse().expect("the part's index"))
}

/// A running fresh copy, and the thread that collects its output (standard output
/// and error through one pipe, in the order written).
struct FreshCopy {
    child: Child,
    output: JoinHandle<Vec<u8>>,
}

impl FreshCopy {
    fn start(name: &str, part: usize) -> FreshCopy {
        let (read, write) = super::fds::cloexec_pipe();
        let write2 = write.try_clone().expect("dup the pipe");
        let child = Command::new(std::env::current_exe().expect("the test binary's path"))
            .args([name, "--exact", "--include-ignored", "--nocapture"])
            .args(["--test-threads=1", "-q"])
            .env(ENV, format!("{name}#{part}"))
            .stdin(Stdio::null())
            .stdout(File::from(write))
            .stderr(File::from(write2))
            .spawn()
            .expect("run the test binary again");
        // The command (holding the write ends) is gone: EOF once the copy exits.
        let output = thread::spawn(move || {
            let mut out = Vec::new();
            let _ = File::from(read).read_to_end(&mut out);
            out
        });
        FreshCopy { child, output }
    }

    /// What the copy wrote, waiting at most `limit` for the pipe to close (a process
    /// the copy started might keep it open).
    fn output(self, limit: Duration) -> String {
        let t = Instant::now();
        while !self.output.is_finished() && t.elapsed() < limit {
            thread::sleep(Duration::from_millis(5));
        }
        if !self.output.is_finished() {
            return "(the output pipe stayed open)\n".to_string();
        }
        let out = self.output.join().expect("output reader");
        String::from_utf8_lossy(&out).into_owned()
    }
}
