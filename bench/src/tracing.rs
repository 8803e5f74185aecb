//! What the harness reads about a server process: CPU time and RSS from /proc, and
//! its system calls from `perf stat` (syscall tracepoints, cheap, switched on for a
//! window of a normal run) and `strace -c -f` (every syscall by name, but slow:
//! separate shorter runs); `perf record -g` profiles for `echo-bench profile`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use unp_select::poll::{poll, PollFd, PollFlags};

use crate::other_err;

/// CPU seconds (user + system, all threads) of process `pid`, from /proc/PID/stat.
pub fn proc_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (in parentheses, may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| (utime + stime) / hz as f64)
}

/// Seconds a task spent runnable but waiting for a CPU (the second field of a
/// schedstat file): time another task on its CPU took from it.
fn schedstat_wait(path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let ns: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// Run-queue wait of every thread of process `pid` (memcached has several; the
/// echo servers one).
pub fn wait_of(pid: u32) -> Option<f64> {
    wait_of_tasks(&format!("/proc/{pid}/task"))
}

/// Run-queue wait of every thread of this process (the load generator).
pub fn wait_of_self() -> Option<f64> {
    wait_of_tasks("/proc/self/task")
}

fn wait_of_tasks(dir: &str) -> Option<f64> {
    let mut sum = 0.0;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        sum += schedstat_wait(&format!("{}/schedstat", e.path().display())).unwrap_or(0.0);
    }
    Some(sum)
}

/// Resident set size of `pid` in KiB (VmRSS), from /proc/PID/status.
pub fn proc_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident set size and its peak (VmRSS, VmHWM) of `pid` in KiB, from
/// /proc/PID/status.
pub fn proc_mem_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Open descriptors of `pid` (the entries of /proc/PID/fd).
pub fn proc_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Whether `tool --version` (or `-V`) runs.
pub fn have(tool: &str) -> bool {
    let flag = if tool == "strace" { "-V" } else { "--version" };
    Command::new(tool)
        .arg(flag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A command pinned to `cpu` (util-linux `taskset`), or as is.
fn pinned(cpu: Option<usize>, prog: &str) -> Command {
    match cpu {
        Some(cpu) if have_taskset() => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string(), prog]);
            c
        }
        _ => Command::new(prog),
    }
}

fn have_taskset() -> bool {
    static HAVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAVE.get_or_init(|| {
        Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("echo-bench-{}-{name}", std::process::id()))
}

/// Sends SIGINT to `child` and waits for it, at most `limit`; then SIGKILL.
fn interrupt_and_wait(child: &mut Child, limit: Duration) -> io::Result<()> {
    use nix::sys::signal::{kill, Signal};
    let _ = kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGINT,
    );
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    child.wait()?;
    Err(other_err("tracer did not exit on SIGINT"))
}

/// (syscall, calls, errors).
pub type CallCount = (String, u64, u64);

/// System calls counted over a window.
#[derive(Clone, Debug, Default)]
pub struct Calls {
    /// Every system call.
    pub total: u64,
    /// By name, most first; errors are `EAGAIN` returns of read/recvfrom (perf) or
    /// every error (strace).
    pub by_name: Vec<CallCount>,
}

/// `perf stat` attached to a running process with its events off, switched on and
/// off through its control FIFO (`--control`, `-D -1`).
pub struct PerfStat {
    child: Child,
    ctl: File,
    ack: File,
    out: PathBuf,
    fifos: [PathBuf; 2],
}

/// The syscalls `perf stat` counts by name: those of the loops under test (select,
/// poll or epoll, recv, send; memcached's libevent: epoll_wait, read, sendmsg). The
/// waits for readiness come first (`report::WAITS`).
pub const SYSCALLS: [&str; 17] = [
    "pselect6",
    "poll",
    "ppoll",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_ctl",
    "read",
    "recvfrom",
    "recvmsg",
    "write",
    "writev",
    "sendto",
    "sendmsg",
    "accept4",
    "futex",
    "clock_gettime",
];

impl PerfStat {
    /// Attaches to `pid` (every thread), counting all syscalls and [`SYSCALLS`] by
    /// name.
    pub fn attach(pid: u32, cpu: Option<usize>) -> io::Result<PerfStat> {
        let out = temp(&format!("perf-{pid}.csv"));
        let fifos = [temp(&format!("ctl-{pid}")), temp(&format!("ack-{pid}"))];
        for f in &fifos {
            let _ = std::fs::remove_file(f);
            nix::unistd::mkfifo(f, nix::sys::stat::Mode::S_IRWXU)?;
        }
        // O_RDWR on a FIFO never blocks (Linux), and keeps both ends open for perf.
        let open = |p: &Path| OpenOptions::new().read(true).write(true).open(p);
        let (ctl, ack) = (open(&fifos[0])?, open(&fifos[1])?);
        let mut cmd = pinned(cpu, "perf");
        cmd.args(["stat", "-x,", "--no-big-num", "-D", "-1", "-o"])
            .arg(&out)
            .arg(format!(
                "--control=fifo:{},{}",
                fifos[0].display(),
                fifos[1].display()
            ))
            .args(["-e", "raw_syscalls:sys_enter"]);
        for name in SYSCALLS {
            cmd.args(["-e", &format!("syscalls:sys_enter_{name}")]);
        }
        // The reads that found nothing (EAGAIN).
        for name in ["read", "recvfrom"] {
            cmd.args(["-e", &format!("syscalls:sys_exit_{name}")])
                .args(["--filter", &format!("ret == -{}", libc::EAGAIN)]);
        }
        let child = cmd
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(PerfStat {
            child,
            ctl,
            ack,
            out,
            fifos,
        })
    }

    fn command(&mut self, what: &str) -> io::Result<()> {
        self.ctl.write_all(format!("{what}\n").as_bytes())?;
        let mut fds = [PollFd::new(self.ack.as_raw_fd(), PollFlags::POLLIN)];
        let n = poll(&mut fds, Some(Duration::from_secs(5)))?;
        if n == 0 {
            return Err(other_err(format!("perf stat: no ack for {what}")));
        }
        let mut buf = [0u8; 16];
        let _ = self.ack.read(&mut buf)?;
        Ok(())
    }

    pub fn enable(&mut self) -> io::Result<()> {
        self.command("enable")
    }

    pub fn disable(&mut self) -> io::Result<()> {
        self.command("disable")
    }

    /// Stops perf and returns what it counted while enabled.
    pub fn finish(mut self) -> io::Result<Calls> {
        interrupt_and_wait(&mut self.child, Duration::from_secs(5))?;
        let text = std::fs::read_to_string(&self.out)?;
        parse_perf(&text)
            .ok_or_else(|| other_err(format!("cannot read perf stat's output:\n{text}")))
    }
}

impl Drop for PerfStat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.out);
        for f in &self.fifos {
            let _ = std::fs::remove_file(f);
        }
    }
}

pub fn parse_perf(text: &str) -> Option<Calls> {
    let mut total = None;
    let mut calls: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 3 {
            continue;
        }
        // "<not counted>" (nothing happened) reads as 0.
        let n: u64 = f[0].parse().unwrap_or(0);
        if f[2] == "raw_syscalls:sys_enter" {
            total = Some(n);
        } else if let Some(name) = f[2].strip_prefix("syscalls:sys_enter_") {
            calls.entry(name.to_string()).or_default().0 = n;
        } else if let Some(name) = f[2].strip_prefix("syscalls:sys_exit_") {
            calls.entry(name.to_string()).or_default().1 = n;
        }
    }
    let mut by_name: Vec<CallCount> = calls
        .into_iter()
        .filter(|(_, (c, _))| *c > 0)
        .map(|(name, (c, e))| (name, c, e))
        .collect();
    by_name.sort_by_key(|r| std::cmp::Reverse(r.1));
    Some(Calls {
        total: total?,
        by_name,
    })
}

/// `strace -c -f -p PID` attached to a running process until `finish`.
pub struct Strace {
    child: Child,
    out: PathBuf,
}

impl Strace {
    /// Attaches and returns once strace says it has.
    pub fn attach(pid: u32, cpu: Option<usize>) -> io::Result<Strace> {
        let out = temp(&format!("strace-{pid}.txt"));
        let mut child = pinned(cpu, "strace")
            .args(["-c", "-f", "-o"])
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().expect("stderr was piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut said = String::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("attached") {
                    let _ = tx.send(Ok(()));
                } else {
                    said.push_str(&line);
                }
            }
            let _ = tx.send(Err(said));
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Strace { child, out }),
            Ok(Err(said)) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(other_err(format!("strace did not attach: {said}")))
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(other_err("strace did not attach within 5 s"))
            }
        }
    }

    pub fn finish(mut self) -> io::Result<Calls> {
        interrupt_and_wait(&mut self.child, Duration::from_secs(10))?;
        let text = std::fs::read_to_string(&self.out)?;
        let _ = std::fs::remove_file(&self.out);
        parse_strace(&text).ok_or_else(|| other_err(format!("cannot read strace -c:\n{text}")))
    }
}

impl Drop for Strace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn parse_strace(text: &str) -> Option<Calls> {
    let mut rows = Vec::new();
    let mut total = None;
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 5 || t[0].starts_with('%') || t[0].starts_with('-') {
            continue;
        }
        let Ok(calls) = t[3].parse::<u64>() else {
            continue;
        };
        let errors = if t.len() >= 6 {
            t[4].parse().unwrap_or(0)
        } else {
            0
        };
        let name = t[t.len() - 1].to_string();
        if name == "total" {
            total = Some(calls);
        } else {
            rows.push((name, calls, errors));
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    Some(Calls {
        total: total?,
        by_name: rows,
    })
}

/// `perf record -e cpu-clock -F 4999 -g -p PID` for `secs`, then the flat profile (self time by DSO and
/// symbol, at least 0.5%) from `perf report`.
pub fn profile(pid: u32, secs: f64, cpu: Option<usize>) -> io::Result<String> {
    let data = temp(&format!("perf-{pid}.data"));
    let mut child = pinned(cpu, "perf")
        .args(["record", "-e", "cpu-clock", "-F", "4999", "-g", "-q", "-o"])
        .arg(&data)
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    thread::sleep(Duration::from_secs_f64(secs));
    interrupt_and_wait(&mut child, Duration::from_secs(20))?;
    let report = |sort: &str, limit: &str| {
        Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--percent-limit",
                limit,
            ])
            .args(["--sort", sort, "-g", "none", "-i"])
            .arg(&data)
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let by_dso = report("dso", "0.1")?;
    let text = report("dso,symbol", "0.5")?;
    let _ = std::fs::remove_file(&data);
    let dsos: Vec<String> = by_dso
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let samples = text
        .lines()
        .find_map(|l| l.strip_prefix("# Samples: "))
        .unwrap_or("?")
        .to_string();
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.trim_end_matches(|c: char| c == '-' || c.is_whitespace()))
        .collect();
    Ok(format!(
        "samples: {samples}; by DSO: {}\n{}",
        dsos.join(", "),
        rows.join("\n")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_csv() {
        let text = "# started on x\n\n123,,raw_syscalls:sys_enter,100,100.00,,\n\
                    40,,syscalls:sys_enter_read,100,100.00,,\n\
                    <not counted>,,syscalls:sys_enter_poll,0,100.00,,\n\
                    7,,syscalls:sys_exit_read,100,100.00,,\n";
        let c = parse_perf(text).unwrap();
        assert_eq!(c.total, 123);
        assert_eq!(c.by_name, vec![("read".to_string(), 40, 7)]);
    }

    #[test]
    fn strace_summary() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
                    ------ ----------- ----------- --------- --------- ----------------\n \
                    50.00    0.010000           1     10000       120 read\n \
                    50.00    0.010000           1     10000           write\n\
                    ------ ----------- ----------- --------- --------- ----------------\n\
                    100.00    0.020000           1     20000       120 total\n";
        let c = parse_strace(text).unwrap();
        assert_eq!(c.total, 20000);
        assert_eq!(c.by_name[0], ("read".to_string(), 10000, 120));
    }
}
