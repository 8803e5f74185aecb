//! Running a case: strace and the server process, the calibration of call numbers
//! that depend on the loader, and the table of results.

use super::*;

/// Runs every case, three at a time (the runs mostly wait: for replies, EOFs and
/// back-offs), prints the measured table and fails with every
/// case that did not pass.
pub(crate) fn run_table(title: &str, cases: &[Case]) {
    let strace = strace();
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<String, String>)>> = Mutex::new(Vec::new());
    thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&case) = cases.get(i) else {
                    return;
                };
                let outcome = run_case(&strace, case);
                results.lock().unwrap().push((i, outcome));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);

    println!(
        "\nFAULTS {title}: {} runs in {:.1?}",
        cases.len(),
        started.elapsed()
    );
    println!("| syscall | errno | when | mode | server | outcome | injected | counters |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut failures = Vec::new();
    for (i, outcome) in &results {
        let Case {
            row,
            mode,
            target,
            workers,
        } = cases[*i];
        let when = case_when(cases[*i]);
        let server = format!("{}{}", target.name(), workers.name());
        let line = match outcome {
            Ok(summary) => summary.clone(),
            Err(why) => {
                failures.push(format!(
                    "{} {} when={when} {} {server}: {why}",
                    mode.syscall(row.sys),
                    row.errno,
                    mode.name()
                ));
                format!("**FAIL** | | {}", why.lines().next().unwrap_or(""))
            }
        };
        println!(
            "| {} | {} | {when} | {} | {server} | {line} |",
            mode.syscall(row.sys),
            row.errno,
            mode.name()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} runs failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

// ---- strace and the server process -------------------------------------------------

/// strace's path; panics (never skips) when it is missing.
pub(crate) fn strace() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("strace"))
                .find(|p| p.is_file())
        });
        let Some(path) = found else {
            panic!(
                "strace is not installed: this suite injects faults with it. Install it \
                 (apt-get install strace; .ci/run does) and run \
                 `cargo test --test fault_injection -- --ignored`"
            );
        };
        let out = Command::new(&path).arg("-V").output();
        assert!(
            out.as_ref().is_ok_and(|o| o.status.success()),
            "`{} -V` failed: {out:?}",
            path.display()
        );
        path
    })
    .clone()
}

/// The example binary of `target`, built once by this test process.
pub(crate) fn server_exe(target: Target) -> OsString {
    common::examples::example(target.example())
        .get_program()
        .to_owned()
}

/// strace and its tracee, killed (both) when dropped.
pub(crate) struct Traced {
    pub(crate) strace: Option<Child>,
    /// Attach mode: the server, started by the test and traced with `strace -p`;
    /// its exit status is the run's (strace's is its own).
    pub(crate) direct: Option<Child>,
    pub(crate) server: Option<Pid>,
}

impl Traced {
    /// The server's exit status, once it has exited and strace has finished
    /// writing its output.
    fn try_status(&mut self) -> Option<ExitStatus> {
        match &mut self.direct {
            Some(direct) => {
                let status = direct.try_wait().ok().flatten()?;
                if let Some(strace) = &mut self.strace {
                    strace.try_wait().ok().flatten()?;
                }
                Some(status)
            }
            None => self.strace.as_mut()?.try_wait().ok().flatten(),
        }
    }

    /// Finds the server (unless attached, known already): strace's child once it
    /// runs `exe` (strace also forks short-lived children of its own at start, to
    /// probe ptrace's features). Gives up after 10 s, or once the run has ended.
    fn find_server(&mut self, exe: &OsString) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let strace_pid = self.strace.as_ref().map_or(0, Child::id);
        while self.server.is_none() && Instant::now() < deadline {
            self.server = children(strace_pid)
                .into_iter()
                .find(|&p| runs(p, exe))
                .map(Pid::from_raw);
            if self.server.is_none() {
                if self.try_status().is_some() {
                    break;
                }
                thread::sleep(Duration::from_millis(2));
            }
        }
    }

    /// Waits up to `limit` for the server's exit (through strace, which exits
    /// with the server's status, unless attached).
    fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM to the server (not to strace), repeated every 500 ms: a signal that
    /// lands outside select and whose wake-up `send` was itself a fault would
    /// otherwise leave the loop asleep.
    fn stop(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(pid) = self.server {
                let _ = kill(pid, Signal::SIGTERM);
            }
            if let Some(status) = self.wait(Duration::from_millis(500)) {
                return Some(status);
            }
        }
        None
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if let Some(mut direct) = self.direct.take() {
            // Our own child: killing it is safe until it is reaped.
            let _ = direct.kill();
            let _ = direct.wait();
        }
        let Some(strace) = self.strace.as_mut() else {
            return;
        };
        if let Ok(Some(_)) = strace.try_wait() {
            return;
        }
        if let Some(pid) = self.server {
            // Only while it is still strace's child (its pid cannot have been reused:
            // strace has not reaped it).
            if children(strace.id()).contains(&pid.as_raw()) {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        let _ = strace.kill();
        let _ = strace.wait();
    }
}

/// The children of process `pid` (`/proc/PID/task/*/children`).
pub(crate) fn children(pid: u32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    out
}

/// Call numbers that depend on the binary and the loader, counted once by a plain
/// trace of the server's start: how many `close` calls come before the loop, which
/// `openat` opens the reserve (`/dev/null`), which `rt_sigaction` is SIGINT's.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Calibration {
    pub(crate) close: u32,
    pub(crate) reserve: u32,
    pub(crate) sigint: u32,
}

pub(crate) fn calibration(target: Target) -> Calibration {
    static CAL: Mutex<Vec<(&str, Calibration)>> = Mutex::new(Vec::new());
    let mut known = CAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = target.example();
    if let Some(&(_, cal)) = known.iter().find(|(n, _)| *n == name) {
        return cal;
    }
    let exe = &server_exe(target);
    let cal = {
        let out_file = std::env::temp_dir().join(format!(
            "unp-fault-{}-calibration-{name}.strace",
            std::process::id()
        ));
        let mut child = Command::new(strace())
            .args(["-f", "-qq", "-o"])
            .arg(&out_file)
            .args(["-e", "trace=openat,close,rt_sigaction,write", "--"])
            .arg(exe)
            .arg("127.0.0.1:0")
            // The relay's upstream: no client comes, so it never connects there.
            .args((target == Target::Relay).then_some("127.0.0.1:9"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run strace");
        let stdout = child.stdout.take().unwrap();
        let mut traced = Traced {
            strace: Some(child),
            direct: None,
            server: None,
        };
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(10));
        assert!(
            line.as_ref().is_ok_and(|l| l.contains("listening on")),
            "calibration: no listening line: {line:?}"
        );
        traced.find_server(exe);
        let status = traced.stop(Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| s.success()),
            "calibration run: {status:?}"
        );
        drop(traced);
        let trace = std::fs::read_to_string(&out_file).expect("calibration trace");
        let _ = std::fs::remove_file(&out_file);
        let (mut close, mut openat, mut sigaction) = (0, 0, 0);
        let (mut reserve, mut sigint, mut listening) = (None, None, false);
        for line in trace.lines() {
            let call = line
                .trim_start()
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start();
            if call.starts_with(&format!("write(1, \"{name}: listening")) {
                listening = true;
            } else if call.starts_with("close(") && !listening {
                close += 1;
            } else if call.starts_with("openat(") {
                openat += 1;
                if reserve.is_none() && call.contains("\"/dev/null\"") {
                    reserve = Some(openat);
                }
            } else if call.starts_with("rt_sigaction(") {
                sigaction += 1;
                if sigint.is_none() && call.starts_with("rt_sigaction(SIGINT, {") {
                    sigint = Some(sigaction);
                }
            }
        }
        let cal = Calibration {
            close,
            reserve: reserve.expect("calibration: no openat of /dev/null"),
            sigint: sigint.expect("calibration: no rt_sigaction(SIGINT)"),
        };
        println!("FAULTS calibration of {name}: {cal:?}");
        cal
    };
    known.push((name, cal));
    cal
}

/// Replaces `{close}`, `{reserve+1}`, ... in a `when` with the calibrated numbers.
fn resolve(when: &str, target: Target) -> String {
    let mut out = String::new();
    let mut rest = when;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').expect("unclosed {") + open;
        let token = &rest[open + 1..close];
        let (name, add) = match token.split_once('+') {
            Some((n, k)) => (n, k.parse::<u32>().expect("{name+k}")),
            None => (token, 0),
        };
        let cal = calibration(target);
        let base = match name {
            "close" => cal.close,
            "reserve" => cal.reserve,
            "sigint" => cal.sigint,
            other => panic!("unknown call number {{{other}}}"),
        };
        out.push_str(&(base + add).to_string());
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// A case's `when`: the row's, re-tuned to the server (`PLANS`) and calibrated;
/// attached to a server with workers, the `close` rows' own.
fn case_when(case: Case) -> String {
    if case.workers.attach(&case.row) {
        // Counted from the attach: each worker's 1st and 3rd close (a connection's,
        // or the reserve's as the worker ends), and the main thread's at shutdown.
        return CLOSE_WHEN_ATTACHED.to_string();
    }
    let row = case.row;
    resolve(case.target.when(row.sys, row.errno, row.when), case.target)
}

const CLOSE_WHEN_ATTACHED: &str = "1..3+2";

/// Attach mode: once the server runs its workers, starts `strace -f -p` on it
/// and waits until strace has attached to every thread.
fn attach_strace(
    strace: &PathBuf,
    traced: &mut Traced,
    out_file: &PathBuf,
    strace_args: &[OsString],
) -> Result<(), String> {
    let pid = traced.server.ok_or("attach: no server pid")?;
    let threads =
        || std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.flatten().count());
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads() < 3 {
        if Instant::now() >= deadline {
            return Err(format!("attach: {} threads, want 3", threads()));
        }
        thread::sleep(Duration::from_millis(2));
    }
    let mut child = Command::new(strace)
        .args(["-f", "-o"])
        .arg(out_file)
        .args(strace_args)
        .arg("-p")
        .arg(pid.as_raw().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", strace.display()))?;
    let stderr = child.stderr.take().unwrap();
    traced.strace = Some(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // "strace: Process PID attached with 3 threads"
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("attached with 3 threads") => return Ok(()),
            Ok(line) if line.contains("attached") => {
                return Err(format!("attach: {line} (want 3 threads)"))
            }
            Ok(_) => {}
            Err(_) => return Err("attach: strace did not say it attached".into()),
        }
    }
}

/// Whether process `pid` runs `exe` (the first word of its command line).
fn runs(pid: i32, exe: &OsString) -> bool {
    use std::os::unix::ffi::OsStrExt;
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|&b| b == 0).next() == Some(exe.as_bytes()))
}

static RUN: AtomicUsize = AtomicUsize::new(0);

/// One run of one row against one server in one mode. `Ok(summary)` or `Err(what
/// went wrong)`.
fn run_case(strace: &PathBuf, case: Case) -> Result<String, String> {
    let Case {
        row,
        mode,
        target,
        workers,
    } = case;
    let exe = &server_exe(target);
    let name = target.example();
    // `{name}` in a `matching` is the example's name.
    let matching = |m: Option<&str>| m.map(|m| m.replace("{name}", name));
    let started = Instant::now();
    let sys = mode.syscall(row.sys);
    let out_file = std::env::temp_dir().join(format!(
        "unp-fault-{}-{}.strace",
        std::process::id(),
        RUN.fetch_add(1, Ordering::SeqCst)
    ));
    let attach = workers.attach(&row);
    let mut traced_set = vec![sys];
    let when = case_when(case);
    let mut injects = vec![(sys, row.errno, when, matching(row.matching))];
    if let Some(a) = row.also {
        traced_set.push(a.sys);
        let when = resolve(target.when(a.sys, a.errno, a.when), target);
        injects.push((a.sys, a.errno, when, matching(a.matching)));
    }
    // The relay's `close` rows: which closes were its clients' (the others' are
    // its upstream's, whose peer closed first: no client misses an EOF there).
    let clients_known = target == Target::Relay && row.sys == "close";
    if (workers != Workers::One || clients_known) && !traced_set.contains(&"accept4") {
        // Which descriptors are connections: those accept4 returned.
        traced_set.push("accept4");
    }
    if workers != Workers::One && target == Target::Relay && !traced_set.contains(&"connect") {
        // And the relay's upstreams: those it connected.
        traced_set.push("connect");
    }
    let mut strace_args: Vec<OsString> = Vec::new();
    if let Some(path) = row.path {
        strace_args.extend(["-P".into(), path.into()]);
    }
    strace_args.push("-e".into());
    strace_args.push(format!("trace={}", traced_set.join(",")).into());
    for (s, e, w, _) in &injects {
        strace_args.push("-e".into());
        strace_args.push(format!("inject={s}:error={e}:when={w}").into());
    }
    let mut server_args: Vec<&str> = Vec::new();
    server_args.extend(mode.flag());
    server_args.extend(target.args());
    server_args.extend(workers.args());
    server_args.extend(row.args);
    server_args.push("127.0.0.1:0");
    // The relay's upstream: an echo server of this run's own.
    let upstream = match target {
        Target::Relay => Some(Upstream::start().map_err(|e| format!("upstream: {e}"))?),
        _ => None,
    };
    let upstream_addr = upstream.as_ref().map(|u| u.addr.to_string());
    server_args.extend(upstream_addr.as_deref());

    let mut cmd = if attach {
        Command::new(exe)
    } else {
        let mut cmd = Command::new(strace);
        cmd.args(["-f", "-qq", "-o"]).arg(&out_file);
        cmd.args(&strace_args).arg("--").arg(exe);
        cmd
    };
    cmd.args(&server_args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let mut child = cmd
        .spawn()
        .map_err(|e| format!("spawn {:?}: {e}", cmd.get_program()))?;
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut traced = if attach {
        Traced {
            server: Some(Pid::from_raw(child.id() as i32)),
            strace: None,
            direct: Some(child),
        }
    } else {
        Traced {
            strace: Some(child),
            direct: None,
            server: None,
        }
    };

    let (tx, rx) = mpsc::channel::<String>();
    let out_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let out_reader = {
        let out_lines = out_lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                out_lines.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        })
    };
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut s);
        s
    });

    traced.find_server(exe);

    // Its address, from the first line.
    let listening = format!("{name}: listening on ");
    let mut addr: Option<SocketAddr> = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    let starts = !matches!(
        row.expect,
        Expect::NoStart | Expect::NoLoop | Expect::NoAddress
    );
    while starts && addr.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix(listening.as_str()) {
                    addr = rest.split_whitespace().next().and_then(|a| a.parse().ok());
                }
            }
            Err(_) => break, // stdout closed (the server exited) or timed out
        }
    }

    let mut notes = Vec::new();
    let mut report = Workload::default();
    let status = match (row.expect, addr) {
        (Expect::NoStart | Expect::NoLoop, _) => traced.wait(Duration::from_secs(10)),
        (Expect::NoAddress, _) => {
            // No address line: check it is alive and stops cleanly.
            thread::sleep(Duration::from_millis(300));
            if let Some(status) = traced.try_status() {
                return Err(format!("server exited without address: {status}"));
            }
            traced.stop(Duration::from_secs(10))
        }
        (_, None) => {
            drop(traced);
            let err = err_reader.join().unwrap_or_default();
            return Err(format!("no listening line; stderr: {err}"));
        }
        (expect, Some(addr)) => {
            if attach {
                if let Err(why) = attach_strace(strace, &mut traced, &out_file, &strace_args) {
                    drop(traced);
                    return Err(why);
                }
            }
            report = workload(target, addr, expect);
            let ends_itself = matches!(expect, Expect::Fatal | Expect::Abort);
            if ends_itself {
                traced.wait(Duration::from_secs(10))
            } else {
                let mut fresh = fresh_client(target, addr, expect);
                // With workers, a worker's planned accept4 may be the fresh client's
                // (the connections reached it in another order): that one is shed,
                // and counted; the next must be served.
                while workers != Workers::One
                    && expect == Expect::Shed
                    && target != Target::Chat
                    && report.fresh_shed < 2
                    && fresh.as_ref().is_err_and(|e| was_reset(e))
                {
                    report.fresh_shed += 1;
                    fresh = fresh_client(target, addr, expect);
                }
                report.fresh = Some(fresh);
                if let Some(up) = &upstream {
                    // Every pair is over by now: its upstream side closed too.
                    report.upstream_open = up.wait_closed(Duration::from_secs(2));
                    report.upstream_accepted = up.accepted();
                }
                traced.stop(Duration::from_secs(10))
            }
        }
    };
    let Some(status) = status else {
        drop(traced);
        return Err("the server did not exit within 10 s".to_string());
    };
    drop(traced);
    let _ = out_reader.join();
    let stderr = err_reader.join().unwrap_or_default();
    let stdout = out_lines.lock().unwrap().clone();
    let trace = std::fs::read_to_string(&out_file).unwrap_or_default();
    if clients_known {
        let calls = parse_calls(&trace);
        let on_clients = calls.iter().filter(|c| c.injected && c.client);
        report.client_closes_failed = on_clients.count() as u64;
    }
    let (injected, landed) = if workers == Workers::One {
        (injected_lines(&trace), None)
    } else {
        let calls = parse_calls(&trace);
        let landed = check_threads(&calls, sys, &injects[0].2);
        (injected_by_name(&calls), Some(landed))
    };

    let result = match &landed {
        Some(Err(why)) => Err(why.clone()),
        _ => check(
            case,
            &injects,
            &injected,
            landed.as_ref().and_then(|l| l.as_ref().ok()),
            status,
            &stdout,
            &stderr,
            &report,
            &mut notes,
        ),
    };
    match result {
        Ok(summary) => {
            let _ = std::fs::remove_file(&out_file);
            Ok(format!(
                "{summary} | {} | {} ({:.1?})",
                injects
                    .iter()
                    .map(|(s, ..)| format!("{s}×{}", injected.get(*s).map_or(0, Vec::len)))
                    .collect::<Vec<_>>()
                    .join(" "),
                notes.join(", "),
                started.elapsed()
            ))
        }
        Err(why) => Err(format!(
            "{why}\n  status: {status}\n  clients: {:?}\n  fresh: {:?}\n  stderr: {}\n  \
             injected: {:?}\n  stdout: {:?}\n  trace kept in {}",
            report.clients,
            report.fresh,
            stderr.trim(),
            injected,
            stdout,
            out_file.display()
        )),
    }
}
