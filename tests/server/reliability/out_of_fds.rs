//! Scenario 5. Out of descriptors (server in a child process).
//!
//! The child server runs under a low `RLIMIT_NOFILE`, and more clients arrive than
//! it has descriptors. It must neither exit nor spin (its CPU time is read from
//! `/proc/<pid>/stat` during the flood: a spinning server burns a core, a busy machine only
//! lowers the share a waiting one uses) and must serve again once clients leave.
// The scenario reads /proc (Linux only); elsewhere its helpers are unused.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use super::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

const CHILD_ENV: &str = "UNP_RELIABILITY_CHILD";
const CHILD_NOFILE_ENV: &str = "UNP_RELIABILITY_CHILD_NOFILE";

/// The child's side. When re-executed with
/// `UNP_RELIABILITY_CHILD=<select|poll>-<reserve|noreserve>` it lowers
/// `RLIMIT_NOFILE`, prints `CHILD addr=...`, and runs the echo server until its
/// standard input closes; then it prints `CHILD stats ...`. A line `release` on
/// standard input closes the filler descriptors of the `noreserve` mode.
///
/// In a normal test run (no such variable) it checks that protocol from the parent's
/// side: a child starts, serves one client and reports it when its input closes.
#[test]
fn child_server_entry() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return child_protocol_works();
    };
    let _dog = Watchdog::new("child server", Duration::from_secs(120));
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let limit: libc::rlim_t = std::env::var(CHILD_NOFILE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, limit, hard).unwrap();

    let server = EchoServer::bind("127.0.0.1:0", Echo::Bytes, Config::book()).unwrap();
    println!("CHILD addr={}", server.local_addr().unwrap());
    io::stdout().flush().unwrap();
    let stop = server.shutdown_handle();

    // `noreserve`: fill the table before `run`, so the server cannot even open its
    // reserve descriptor and must fall back to backing off.
    let mut fillers = Vec::new();
    if mode.ends_with("-noreserve") {
        while let Ok(f) = std::fs::File::open("/dev/null") {
            fillers.push(f);
        }
    }
    println!("CHILD ready fillers={}", fillers.len());
    io::stdout().flush().unwrap();
    thread::spawn(move || {
        let mut fillers = fillers;
        for line in io::stdin().lock().lines() {
            match line.as_deref() {
                Ok("release") => fillers.clear(),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        stop.shutdown();
    });
    let variant = Variant::ALL
        .into_iter()
        .find(|v| mode.starts_with(&format!("{}-", v.name())))
        .expect("mode names a variant");
    let stats = variant.run(server).unwrap();
    println!(
        "CHILD stats accepted={} shed={} out_of_resources={} refused={} closed_eof={} \
         closed_reset={} lines_echoed={} empty_accepts={}",
        stats.accepted,
        stats.shed,
        stats.out_of_resources,
        stats.refused,
        stats.closed_eof,
        stats.closed_reset,
        stats.messages_sent,
        stats.empty_accepts.total()
    );
    io::stdout().flush().unwrap();
}

/// The parent's side of [`child_server_entry`], with no descriptor pressure. It
/// counts no descriptors of its own, so it needs no process of its own.
fn child_protocol_works() {
    let _dog = Watchdog::new("child protocol", Duration::from_secs(60));
    let child = ChildServer::start("select-reserve", 64);
    let mut c = connect_high(child.addr).unwrap();
    c.write_all(b"to the child\n").unwrap();
    let mut got = [0u8; 13];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"to the child\n");
    expect_eof(&mut c).unwrap();
    let stats = child.finish();
    assert_eq!(stat(&stats, "accepted"), 1, "{stats:?}");
    assert_eq!(stat(&stats, "closed_eof"), 1, "{stats:?}");
}

struct ChildServer {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: std::net::SocketAddr,
}

impl ChildServer {
    fn start(mode: &str, nofile: u64) -> ChildServer {
        // `--exact` wants the test's path in this binary.
        let child_test = common::fresh::test_in(module_path!(), "child_server_entry");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &child_test, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, mode)
            .env(CHILD_NOFILE_ENV, nofile.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("re-execute the test binary");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = ChildServer {
            child,
            lines,
            addr: "0.0.0.0:0".parse().unwrap(),
        };
        let addr = server.expect_line("CHILD addr=");
        server.addr = addr.parse().unwrap();
        server.expect_line("CHILD ready");
        server
    }

    fn expect_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    // libtest may print "test NAME ... " on the same line first.
                    if let Some(at) = line.find(prefix) {
                        return line[at + prefix.len()..].to_string();
                    }
                }
                Err(e) => {
                    let _ = self.child.kill();
                    panic!("child never printed {prefix:?}: {e}");
                }
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the child's stdin (it shuts the server down) and returns its stats.
    fn finish(mut self) -> Vec<(String, u64)> {
        drop(self.child.stdin.take());
        let stats = self.expect_line("CHILD stats ");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("child did not exit");
            }
            thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "child failed: {status}");
        stats
            .split_whitespace()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn stat(stats: &[(String, u64)], key: &str) -> u64 {
    stats
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {key} in {stats:?}"))
}

/// CPU time of the child over a stretch of wall time, as a fraction.
fn cpu_share(cpu: Duration, wall: Duration) -> f64 {
    cpu.as_secs_f64() / wall.as_secs_f64().max(1e-3)
}

/// Scenario 5 with the reserve descriptor: held clients use up the child's
/// descriptors; every further connection is shed (reset) at once.
fn out_of_fds_reserve(variant: Variant) {
    let _dog = Watchdog::new(
        "out of fds (reserve)",
        Duration::from_secs(pick(600, 120, 600)),
    );
    raise_nofile(16384);
    let nofile = 64;
    let n_flood = pick(100, 300, 3000);
    let threads = 6;
    let base = open_fds();
    let mut child = ChildServer::start(&format!("{}-reserve", variant.name()), nofile);
    let pid = child.pid();
    probe(child.addr).expect("the child serves");
    let fds_idle = open_fds_of(pid).unwrap_or(0);
    let cpu0 = process_cpu(pid).unwrap_or_default();

    // The flood, from several threads, paced so that it lasts `flood_for`: a server
    // that spins burns a whole core however slowly clients come; one that sheds
    // uses a little CPU per connection. The child's descriptors are sampled meanwhile.
    let flood_for = pick(
        Duration::from_millis(1500),
        Duration::from_millis(1500),
        Duration::from_secs(15),
    );
    let pause = flood_for * threads as u32 / n_flood as u32;
    let started = Instant::now();
    let addr = child.addr;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            thread::spawn(move || {
                (0..n_flood)
                    .filter(|i| i % threads == t)
                    .map(|i| {
                        let fate = flood_client(addr, i);
                        thread::sleep(pause);
                        fate
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut peak_child_fds = fds_idle;
    while handles.iter().any(|h| !h.is_finished()) {
        peak_child_fds = peak_child_fds.max(open_fds_of(pid).unwrap_or(0));
        thread::sleep(Duration::from_millis(5));
    }
    let mut held = Vec::new();
    let mut resets = 0;
    let mut errors = Vec::new();
    for h in handles {
        for fate in h.join().unwrap() {
            match fate {
                Ok(Fate::Served(c)) => held.push(c),
                Ok(Fate::Reset) => resets += 1,
                Err(e) => errors.push(e),
            }
        }
    }
    let flood_wall = started.elapsed();
    let cpu1 = process_cpu(pid).unwrap_or_default();
    let low_fds_at_peak = fd_numbers_of(pid)
        .into_iter()
        .filter(|&fd| (fd as u64) < nofile)
        .count();
    assert!(child.alive(), "the server exited during the flood");

    // Saturated: every descriptor in use; more clients keep arriving and are shed.
    let saturated_wall = Duration::from_secs(1);
    let t = Instant::now();
    let mut late_resets = 0;
    while t.elapsed() < saturated_wall {
        match flood_client(addr, 100_000 + late_resets) {
            Ok(Fate::Reset) => late_resets += 1,
            Ok(Fate::Served(_)) => panic!("served with every descriptor in use?"),
            Err(e) => panic!("{e}"),
        }
        thread::sleep(Duration::from_millis(100));
    }
    let saturated_wall = t.elapsed();
    let cpu2 = process_cpu(pid).unwrap_or_default();
    assert!(child.alive(), "the server exited while saturated");

    // Clients leave; the server serves again.
    let n_held = held.len();
    for mut c in held {
        expect_eof(&mut c).expect("held client: EOF after its echo");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut fds_after = open_fds_of(pid).unwrap_or(0);
    while fds_after != fds_idle && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        fds_after = open_fds_of(pid).unwrap_or(0);
    }
    let n_after = 20;
    for _ in 0..n_after {
        probe(addr).expect("serves again once clients left");
    }
    let stats = child.finish();
    let end = settle_fds(base, Duration::from_secs(5));

    let flood_cpu = cpu1.saturating_sub(cpu0);
    let saturated_cpu = cpu2.saturating_sub(cpu1);
    report(
        "out_of_fds_reserve",
        variant.name(),
        &[
            ("rlimit_nofile", &nofile),
            ("flood_clients", &n_flood),
            ("served_held", &n_held),
            ("reset_shed", &resets),
            ("errors", &errors.len()),
            ("late_clients_shed", &late_resets),
            ("served_after", &n_after),
            ("child_accepted", &stat(&stats, "accepted")),
            ("child_shed", &stat(&stats, "shed")),
            ("child_out_of_resources", &stat(&stats, "out_of_resources")),
            ("child_fds_idle", &fds_idle),
            ("child_fds_peak", &peak_child_fds),
            ("child_fds_below_limit_when_held", &low_fds_at_peak),
            ("child_fds_after", &fds_after),
            ("flood_wall", &ms(flood_wall)),
            ("flood_cpu", &ms(flood_cpu)),
            (
                "flood_cpu_share",
                &format!("{:.3}", cpu_share(flood_cpu, flood_wall)),
            ),
            ("saturated_wall", &ms(saturated_wall)),
            ("saturated_cpu", &ms(saturated_cpu)),
            (
                "saturated_cpu_share",
                &format!("{:.3}", cpu_share(saturated_cpu, saturated_wall)),
            ),
            ("fds_base", &base),
            ("fds_end", &end),
        ],
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert!(n_held > 0 && resets > 0, "held {n_held}, reset {resets}");
    // Every descriptor number below the limit was in use at the peak.
    assert!(low_fds_at_peak as u64 >= nofile - 1, "{low_fds_at_peak}");
    assert_eq!(fds_after, fds_idle, "the child leaked descriptors");
    assert_eq!(stat(&stats, "shed"), (resets + late_resets) as u64);
    assert!(stat(&stats, "out_of_resources") >= stat(&stats, "shed"));
    assert_eq!(
        stat(&stats, "accepted"),
        (1 + n_held + n_after) as u64,
        "{stats:?}"
    );
    assert_eq!(stat(&stats, "closed_eof"), stat(&stats, "accepted"));
    // Not spinning: a spinning loop burns a whole core (share 1.0).
    assert!(
        cpu_share(flood_cpu, flood_wall) < 0.5,
        "flood: {flood_cpu:?} CPU in {flood_wall:?}"
    );
    assert!(
        cpu_share(saturated_cpu, saturated_wall) < 0.2,
        "saturated: {saturated_cpu:?} CPU in {saturated_wall:?}"
    );
    assert_eq!(end, base, "descriptors leaked in the test process");
}

/// Scenario 5 without the reserve descriptor: the table is full before `run`, so the
/// server can accept nothing and must back off instead of spinning on a listener
/// that stays readable; once descriptors are released it serves the clients that
/// waited in the queue.
fn out_of_fds_backoff(variant: Variant) {
    let _dog = Watchdog::new(
        "out of fds (backoff)",
        Duration::from_secs(pick(600, 120, 600)),
    );
    raise_nofile(16384);
    let nofile = 64;
    // At most the child's free descriptors after the release (64 - 9 in use).
    let n_waiting = pick(20, 50, 50);
    let base = open_fds();
    let mut child = ChildServer::start(&format!("{}-noreserve", variant.name()), nofile);
    let pid = child.pid();
    let addr = child.addr;
    let fds_full = fd_numbers_of(pid)
        .into_iter()
        .filter(|&fd| (fd as u64) < nofile)
        .count();

    // Clients connect (the kernel completes the handshake) and send a line; the
    // server cannot accept them yet.
    let mut waiting = Vec::new();
    for i in 0..n_waiting {
        let mut c = connect_high(addr).unwrap();
        let line = format!("waiting client {i}\n");
        c.write_all(line.as_bytes()).unwrap();
        waiting.push((c, line));
    }
    let cpu0 = process_cpu(pid).unwrap_or_default();
    let wall = Duration::from_millis(pick(1500, 1500, 10_000));
    thread::sleep(wall);
    let cpu1 = process_cpu(pid).unwrap_or_default();
    assert!(child.alive(), "the server exited while out of descriptors");
    let stuck_cpu = cpu1.saturating_sub(cpu0);

    child.send("release");
    let t = Instant::now();
    for (c, line) in waiting.iter_mut() {
        let mut got = vec![0u8; line.len()];
        c.read_exact(&mut got).expect("served after the release");
        assert_eq!(got, line.as_bytes());
    }
    let recovery = t.elapsed();
    for (mut c, _) in waiting {
        expect_eof(&mut c).unwrap();
    }
    probe(addr).expect("serves new clients too");
    let stats = child.finish();
    let end = settle_fds(base, Duration::from_secs(5));
    report(
        "out_of_fds_backoff",
        variant.name(),
        &[
            ("rlimit_nofile", &nofile),
            ("child_fds_below_limit", &fds_full),
            ("waiting_clients", &n_waiting),
            ("stuck_wall", &ms(wall)),
            ("stuck_cpu", &ms(stuck_cpu)),
            ("recovery", &ms(recovery)),
            ("child_accepted", &stat(&stats, "accepted")),
            ("child_out_of_resources", &stat(&stats, "out_of_resources")),
            ("child_shed", &stat(&stats, "shed")),
            ("child_lines_echoed", &stat(&stats, "lines_echoed")),
            ("fds_base", &base),
            ("fds_end", &end),
        ],
    );
    assert_eq!(fds_full as u64, nofile, "the child's table was full");
    assert_eq!(stat(&stats, "shed"), 0, "no reserve, nothing shed");
    // ACCEPT_BACKOFF is 100 ms: about one failed accept per 100 ms, not thousands.
    let attempts = stat(&stats, "out_of_resources");
    let max_attempts = wall.as_millis() as u64 / 100 + 5;
    assert!(
        (1..=max_attempts).contains(&attempts),
        "{attempts} failed accepts in {wall:?}"
    );
    assert!(
        cpu_share(stuck_cpu, wall) < 0.1,
        "stuck: {stuck_cpu:?} CPU in {wall:?}"
    );
    assert_eq!(stat(&stats, "accepted"), n_waiting as u64 + 1);
    assert_eq!(stat(&stats, "closed_eof"), n_waiting as u64 + 1);
    assert!(recovery < Duration::from_secs(5));
    assert_eq!(end, base);
}

/// The CPU meter of scenario 5 works: a thread that spins until it has used 300 ms
/// of CPU time (its own clock, so a busy machine only makes it take longer) shows up
/// in `/proc/<pid>/stat` as at least 250 ms (the meter counts in clock ticks). A
/// server that spins would show up too.
#[cfg(target_os = "linux")]
#[test]
fn s5_cpu_meter_sees_a_spinning_thread() {
    in_own_process(cpu_meter_sees_a_spinning_thread);
}

fn cpu_meter_sees_a_spinning_thread() {
    let pid = std::process::id();
    let before = process_cpu(pid).expect("/proc/<pid>/stat");
    let spin = thread::spawn(|| {
        let t = Instant::now();
        let mut x = 0u64;
        while thread_cpu() < Duration::from_millis(300) && t.elapsed() < Duration::from_secs(30) {
            for _ in 0..1000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        (thread_cpu(), t.elapsed())
    });
    let (spun, wall) = spin.join().unwrap();
    let used = process_cpu(pid).unwrap().saturating_sub(before);
    report(
        "cpu_meter_check",
        "-",
        &[
            ("spin_cpu", &ms(spun)),
            ("spin_wall", &ms(wall)),
            ("cpu_seen", &ms(used)),
        ],
    );
    assert!(
        spun >= Duration::from_millis(300),
        "the spinner got {spun:?} in {wall:?}"
    );
    assert!(
        used >= Duration::from_millis(250),
        "{used:?} seen of {spun:?} spun"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn s5_out_of_fds_reserve_sheds_without_spinning() {
    run_scenario(&SELECT_AND_POLL, out_of_fds_reserve);
}

#[cfg(target_os = "linux")]
#[test]
fn s5_out_of_fds_without_reserve_backs_off() {
    run_scenario(&SELECT_AND_POLL, out_of_fds_backoff);
}
