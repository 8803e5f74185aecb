//! Clients nobody here wrote against the example `kv_server` (memcached's text
//! protocol), on all four loops (the default select(2), `--poll`, `--large`,
//! `--epoll`) and with two workers (one listener each, and one shared with
//! `--shared-listener`).
//!
//! * [`raw_protocol_on_every_loop`]: std sockets, no outside program: pipelined
//!   commands, binary values, a long multi-get, `quit`, the SIGTERM report.
//! * pymemcache (`tests/kv_pymemcache.py`), libmemcached's tools (`memccp`,
//!   `memccat`, `memcrm`, `memcslap`, `memccapable -a`) and the same Python script
//!   against a real memcached, to show that its expectations are memcached's. They
//!   need those programs, so they are `#[ignore]`d; `cargo test -- --ignored` runs
//!   them and fails if a program is missing.
//!
//! Everything runs on 127.0.0.1; every wait is bounded (socket timeouts, process
//! deadlines, a [`Watchdog`] on each test).

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::examples::example;
use common::Watchdog;

/// The four loops, and two workers (sharing the listener, or one each).
const LOOPS: [&[&str]; 7] = [
    &[],
    &["--poll"],
    &["--large"],
    &["--epoll"],
    &["--workers", "2", "--shared-listener"],
    &["--poll", "--workers", "2"],
    &["--epoll", "--workers", "2"],
];

/// How long an outside client may run before the test calls it a deadlock.
const TOOL_LIMIT: Duration = Duration::from_secs(60);

/// A running `kv_server ARGS 127.0.0.1:0`; killed when dropped if still running.
struct KvServer {
    child: Child,
    addr: SocketAddr,
    stdout: BufReader<ChildStdout>,
    name: String,
}

impl KvServer {
    fn start(args: &[&str]) -> KvServer {
        let mut child = example("kv_server")
            .args(args)
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn kv_server");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut first = String::new();
        stdout
            .read_line(&mut first)
            .expect("kv_server's first line");
        assert!(first.starts_with("kv_server: listening on "), "{first:?}");
        let addr = first
            .split_whitespace()
            .nth(3)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        let name = format!("kv_server {}", args.join(" "));
        KvServer {
            child,
            addr,
            stdout,
            name: name.trim_end().to_string(),
        }
    }

    fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// SIGTERM; the server must exit successfully, promptly, with its report.
    fn stop(mut self) -> String {
        let t = Instant::now();
        // SAFETY: kill only sends a signal to our own child process.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            // 100 ms is the promise; the margin is for a loaded 2-core machine.
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "{} still running {:?} after SIGTERM",
                self.name,
                t.elapsed()
            );
            thread::sleep(Duration::from_millis(2));
        };
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        assert!(status.success(), "{}: {status}\n{rest}", self.name);
        let mut lines = rest.lines();
        assert_eq!(
            lines.next(),
            Some("kv_server: stopped; counters:"),
            "{rest}"
        );
        let counters: Vec<&str> = lines.collect();
        assert!(!counters.is_empty(), "no counters: {rest}");
        for c in counters {
            let (name, value) = c.split_once(": ").unwrap_or_else(|| panic!("{c:?}"));
            assert!(!name.contains(' ') && value.parse::<u64>().is_ok(), "{c:?}");
        }
        rest
    }
}

impl Drop for KvServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends `request` in one write and reads until `expected.len()` bytes came (or the
/// server closed, or 10 s passed); then compares.
fn exchange(addr: SocketAddr, what: &str, request: &[u8], expected: &[u8]) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let request = request.to_vec();
    let writer = thread::spawn(move || w.write_all(&request));
    let mut got = Vec::new();
    let mut buf = vec![0; 65536];
    while got.len() < expected.len() {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{what}: after {} bytes: {e}", got.len()),
        }
    }
    writer
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("{what}: write: {e}"));
    assert!(
        got == expected,
        "{what}: got {} bytes {:?}, want {} bytes {:?}",
        got.len(),
        String::from_utf8_lossy(&got[..got.len().min(300)]),
        expected.len(),
        String::from_utf8_lossy(&expected[..expected.len().min(300)])
    );
}

/// No outside program: pipelining, binary data, a multi-get longer than a line,
/// quit, on each loop.
#[test]
fn raw_protocol_on_every_loop() {
    let _dog = Watchdog::new("raw_protocol_on_every_loop", Duration::from_secs(120));
    for args in LOOPS {
        let server = KvServer::start(args);
        let addr = server.addr;
        let name = server.name.clone();
        // 500 set+get pairs in one write.
        let mut request = Vec::new();
        let mut expected = Vec::new();
        for i in 0..500 {
            let v = format!("value {i}\r\nwith CRLF\0");
            request.extend(format!("set k{i} {i} 0 {}\r\n{v}\r\nget k{i}\r\n", v.len()).bytes());
            expected
                .extend(format!("STORED\r\nVALUE k{i} {i} {}\r\n{v}\r\nEND\r\n", v.len()).bytes());
        }
        exchange(addr, &format!("{name}: pipelined"), &request, &expected);
        // A multi-get of 20 KB: the loop hands it over in pieces.
        let keys: Vec<String> = (0..500)
            .map(|i| format!("k{i}-not-there-{i:030}"))
            .collect();
        let mut request = format!("get {} k7\r\n", keys.join(" ")).into_bytes();
        request.extend_from_slice(b"version\r\nquit\r\nget k1\r\n");
        let v = "value 7\r\nwith CRLF\0";
        let expected = format!(
            "VALUE k7 7 {}\r\n{v}\r\nEND\r\nVERSION 1.6.0-unp-select\r\n",
            v.len()
        );
        exchange(
            addr,
            &format!("{name}: long multi-get"),
            &request,
            expected.as_bytes(),
        );
        // 1 MiB of binary data, then more than 1 MiB (refused and skipped).
        let big: Vec<u8> = (0..1 << 20)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let mut request = format!("set big 1 0 {}\r\n", big.len()).into_bytes();
        request.extend_from_slice(&big);
        request.extend(format!("\r\nset big 0 0 {}\r\n", big.len() + 1).bytes());
        request.extend_from_slice(&big);
        request.extend_from_slice(b"x\r\nget big\r\n");
        exchange(
            addr,
            &format!("{name}: 1 MiB"),
            &request,
            b"STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n",
        );
        server.stop();
    }
}

use common::tools::require;

/// Runs `cmd`; it must exit successfully within `TOOL_LIMIT`. Returns (stdout,
/// stderr).
fn run_tool(what: &str, cmd: &mut Command) -> (Vec<u8>, String) {
    common::tools::run_tool(what, cmd, &[], TOOL_LIMIT)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kv_pymemcache.py")
}

fn require_pymemcache() {
    require(
        Command::new("python3").args(["-c", "import pymemcache"]),
        "install pymemcache (pip install pymemcache)",
    );
}

/// `tests/kv_pymemcache.py` on each loop.
#[test]
#[ignore = "needs pymemcache (pip install pymemcache); cargo test -- --ignored runs it"]
fn pymemcache_on_every_loop() {
    let _dog = Watchdog::new("pymemcache_on_every_loop", Duration::from_secs(240));
    require_pymemcache();
    for args in LOOPS {
        let server = KvServer::start(args);
        let what = format!("pymemcache vs {}", server.name);
        let (out, _) = run_tool(
            &what,
            Command::new("python3").arg(script()).arg(server.port()),
        );
        eprintln!("{what}: {}", String::from_utf8_lossy(&out).trim());
        let report = server.stop();
        eprintln!("{report}");
    }
}

/// The same script against memcached itself: its expectations are memcached's.
#[test]
#[ignore = "needs memcached (apt-get install memcached) and pymemcache (pip install pymemcache)"]
fn pymemcache_script_against_real_memcached() {
    let _dog = Watchdog::new(
        "pymemcache_script_against_real_memcached",
        Duration::from_secs(120),
    );
    require_pymemcache();
    let memcached = Memcached::start();
    let port = memcached.port;
    let (out, _) = run_tool(
        "pymemcache vs memcached",
        Command::new("python3").arg(script()).arg(port.to_string()),
    );
    eprintln!(
        "pymemcache vs memcached: {}",
        String::from_utf8_lossy(&out).trim()
    );
}

/// A real memcached on a free port of 127.0.0.1 (`-t 1`); killed when dropped.
struct Memcached {
    child: Child,
    port: u16,
}

impl Memcached {
    fn start() -> Memcached {
        require(
            Command::new("memcached").arg("-h"),
            "install memcached (apt-get install memcached)",
        );
        // A free port (the tiny race with another process taking it is acceptable).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new("memcached");
        cmd.args([
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
            "-t",
            "1",
        ]);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            cmd.args(["-u", "root"]); // memcached refuses to run as root without it
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn memcached");
        let mut memcached = Memcached { child, port }; // killed if this panics
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(s) = memcached.child.try_wait().unwrap() {
                panic!("memcached exited: {s}");
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "memcached does not listen on {port}"
            );
            thread::sleep(Duration::from_millis(20));
        }
        memcached
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// libmemcached's command-line tools on each loop: memccp a binary file in, memccat
/// it back byte for byte, memcrm it; memcslap set/get/mget load; memccapable's
/// ASCII protocol conformance tests.
#[test]
#[ignore = "needs libmemcached-tools (apt-get install libmemcached-tools); cargo test -- --ignored runs it"]
fn libmemcached_tools_on_every_loop() {
    let _dog = Watchdog::new("libmemcached_tools_on_every_loop", Duration::from_secs(300));
    for tool in ["memccp", "memccat", "memcrm", "memcslap"] {
        require(
            Command::new(tool).arg("--help"),
            "install libmemcached-tools (apt-get install libmemcached-tools)",
        );
    }
    // memccapable has no --help that exits 0; it must at least be there.
    if let Err(e) = Command::new("memccapable").arg("-h").output() {
        panic!("memccapable: {e}: install libmemcached-tools");
    }
    let dir = std::env::temp_dir().join(format!("kv_clients-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("kv-binary-file");
    let content: Vec<u8> = (0..300_000u32)
        .map(|i| match i % 97 {
            0 => b'\r',
            1 => b'\n',
            2 | 3 => 0,
            _ => (i.wrapping_mul(2_654_435_761) >> 24) as u8,
        })
        .collect();
    std::fs::write(&file, &content).unwrap();
    for args in LOOPS {
        let server = KvServer::start(args);
        let servers = format!("--servers=127.0.0.1:{}", server.addr.port());
        let name = server.name.clone();
        run_tool(
            &format!("memccp vs {name}"),
            Command::new("memccp").arg(&servers).arg(&file),
        );
        // To a file: on stdout memccat adds a newline after the value.
        let back = dir.join("back");
        let _ = std::fs::remove_file(&back);
        run_tool(
            &format!("memccat vs {name}"),
            Command::new("memccat")
                .arg(&servers)
                .arg(format!("--file={}", back.display()))
                .arg("kv-binary-file"),
        );
        let got = std::fs::read(&back).unwrap();
        assert!(
            got == content,
            "memccat vs {name}: {} bytes back of {}",
            got.len(),
            content.len()
        );
        run_tool(
            &format!("memcrm vs {name}"),
            Command::new("memcrm").arg(&servers).arg("kv-binary-file"),
        );
        exchange(
            server.addr,
            &format!("{name}: after memcrm"),
            b"get kv-binary-file\r\n",
            b"END\r\n",
        );
        for test in ["set", "get", "mget"] {
            let what = format!("memcslap --test={test} vs {name}");
            let (out, err) = run_tool(
                &what,
                Command::new("memcslap").arg(&servers).args([
                    "--concurrency=4",
                    "--execute-number=2000",
                    &format!("--test={test}"),
                ]),
            );
            let out = String::from_utf8_lossy(&out);
            // memcslap exits 0 even after errors: it prints them, and counts only
            // the keys that worked.
            assert!(
                !err.to_lowercase().contains("error") && !out.to_lowercase().contains("error"),
                "{what}: {out}{err}"
            );
            // "Time to get 8000 keys by 4 threads: ...": every operation worked.
            let done = out.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.len() > 7
                    && w[..3] == ["Time", "to", test]
                    && w[3..7] == ["8000", "keys", "by", "4"]
            });
            assert!(done, "{what}: not all 8000 operations done: {out}");
        }
        let what = format!("memccapable -a vs {name}");
        let (out, _) = run_tool(
            &what,
            Command::new("memccapable").args([
                "-h",
                "127.0.0.1",
                "-p",
                &server.port(),
                "-a",
                "-t",
                "10",
            ]),
        );
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.contains("All tests passed") && !out.contains("[fail]"),
            "{what}: {out}"
        );
        server.stop();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `VmRSS` of process `pid`, in bytes (Linux).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

const MIB: u64 = 1 << 20;

/// Sends `set`s with noreply on one connection, then waits for a `get` answered
/// after them: the server has stored (or evicted) every one.
fn fill(addr: SocketAddr, sets: impl Iterator<Item = (String, usize)>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut batch = Vec::new();
    for (key, len) in sets {
        batch.extend(format!("set {key} 0 0 {len} noreply\r\n").bytes());
        batch.resize(batch.len() + len, b'v');
        batch.extend_from_slice(b"\r\n");
        if batch.len() > 256 * 1024 {
            s.write_all(&batch).expect("write");
            batch.clear();
        }
    }
    batch.extend_from_slice(b"get fill-sync\r\n");
    s.write_all(&batch).expect("write");
    let mut got = [0; 5];
    s.read_exact(&mut got).expect("the sync get's answer");
    assert_eq!(&got, b"END\r\n");
}

/// A `stats` value.
fn stat(addr: SocketAddr, name: &str) -> u64 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"stats\r\n").unwrap();
    let mut out = Vec::new();
    let mut buf = [0; 4096];
    while !out.ends_with(b"END\r\n") {
        let n = s.read(&mut buf).expect("stats");
        assert!(n > 0, "closed during stats");
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(out).unwrap();
    let prefix = format!("STAT {name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// `-m 8`, filled with 20 times that much, small items and some up to 1 MiB: the
/// evictions keep the resident memory within 1.3 times the limit plus what the
/// empty server holds. (Counting key and value bytes only, as the store once
/// did, 8 MiB of small items cost about 40 MiB.)
#[test]
fn rss_stays_near_the_memory_limit() {
    let _dog = Watchdog::new("rss_stays_near_the_memory_limit", Duration::from_secs(180));
    let server = KvServer::start(&["-m", "8"]);
    let (addr, pid) = (server.addr, server.child.id());
    // The empty server's RSS after its code has run once (sets of every size,
    // an eviction, gets, flush_all): the code pages a fill touches are the
    // binary's, not the store's (a debug build's are megabytes).
    let warm = (0..2000).map(|i| {
        (
            format!("warm-{i}"),
            if i % 500 == 499 { 600 << 10 } else { i % 41 },
        )
    });
    fill(
        addr,
        warm.chain((0..20).map(|i| (format!("big-{i}"), 1 << 20))),
    );
    exchange(addr, "warm-up", b"get nothing\r\n", b"END\r\n");
    exchange(addr, "flush", b"flush_all\r\n", b"OK\r\n");
    let empty = rss(pid);
    // The target: 1.3 x (limit + empty). Measured here (debug build, 2
    // cores): peak 11.3 MiB, empty 5.3 MiB (0.85 x), every run. The store keeps
    // a value past 32 KiB as pieces of 32 KiB and its slab as segments of 32 KiB,
    // so memory freed by evictions is taken by the next items whatever their
    // sizes. With one allocation per value (up to 1 MiB) and one slab array, the
    // peak was 12.7-14.2 MiB over an empty 3.2 (1.13-1.41 x): glibc serves large
    // values from its heap once its mmap threshold has risen, and the holes they
    // leave no longer fit the next ones nor the slab, mapped anew beside them.
    // (The empty figure is larger now: glibc keeps up to twice its raised mmap
    // threshold free on top of its heap, which the items then take.) The
    // charge-only key and value bytes store reached 33 MiB (4 x).
    let bound = (8 * MIB + empty) * 13 / 10;
    let mut peak = 0;
    for round in 0..3u64 {
        // 100,000 items of 0 to 40 bytes, every 1000th of 64 KiB to 1 MiB in the
        // first rounds; the last round small ones only (300,000), which fill the
        // store with the most items.
        let (n, large) = if round < 2 {
            (100_000, 1000)
        } else {
            (300_000, u64::MAX)
        };
        let sets = (0..n).map(move |i| {
            let len = if i % large == large - 1 {
                (64 << 10) + (i * 7919 % 15) as usize * (64 << 10)
            } else {
                (i % 41) as usize
            };
            (format!("r{round}-key-{i}"), len)
        });
        fill(addr, sets);
        peak = peak.max(rss(pid));
    }
    let held = stat(addr, "curr_items");
    assert!(held > 10_000, "only {held} items held in 8 MiB");
    eprintln!(
        "kv_server -m 8: empty {:.1} MiB, peak {:.1} MiB, bound {:.1} MiB, {held} items",
        empty as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        bound as f64 / MIB as f64
    );
    assert!(
        peak <= bound,
        "RSS {peak} past 1.3 x (8 MiB + empty {empty}) = {bound}"
    );
    assert_eq!(stat(addr, "limit_maxbytes"), 8 * MIB);
    assert!(stat(addr, "evictions") > 400_000, "evicted too few");
    server.stop();
}

/// A multi-get of one 1 MiB value named 100 times, and one of 17 different 1 MiB
/// values: answered whole, each value sent from the store without a copy and
/// streamed as the client reads, so the server's memory stays bounded (it once
/// grew by 2 MiB per name, and cut a reply past 16 MiB).
#[test]
fn large_multigets_are_answered_whole_in_bounded_memory() {
    let _dog = Watchdog::new(
        "large_multigets_are_answered_whole_in_bounded_memory",
        Duration::from_secs(120),
    );
    let server = KvServer::start(&[]);
    let (addr, pid) = (server.addr, server.child.id());
    let value: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut request = Vec::new();
    for i in 0..17 {
        request.extend(format!("set big{i} {i} 0 {}\r\n", value.len()).bytes());
        request.extend_from_slice(&value);
        request.extend_from_slice(b"\r\n");
    }
    exchange(addr, "17 sets", &request, &b"STORED\r\n".repeat(17));
    let before = rss(pid);
    let mut expected = Vec::new();
    for i in 0..17 {
        expected.extend(format!("VALUE big{i} {i} {}\r\n", value.len()).bytes());
        expected.extend_from_slice(&value);
        expected.extend_from_slice(b"\r\n");
    }
    expected.extend_from_slice(b"END\r\n");
    let names: Vec<String> = (0..17).map(|i| format!("big{i}")).collect();
    let request = format!("get {}\r\n", names.join(" "));
    exchange(addr, "17 values", request.as_bytes(), &expected);

    // One name 100 times, read slowly at first: the server must not queue it all.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(format!("get {}\r\n", ["big3"; 100].join(" ")).as_bytes())
        .unwrap();
    thread::sleep(Duration::from_millis(300));
    let mut peak = rss(pid);
    let head = format!("VALUE big3 3 {}\r\n", value.len());
    let one = head.len() + value.len() + 2;
    let total = 100 * one + 5;
    let mut got = 0;
    let mut first = Vec::new();
    let mut buf = vec![0; 256 * 1024];
    let mut tail = Vec::new();
    while got < total {
        let n = s.read(&mut buf).expect("read the multi-get");
        assert!(n > 0, "closed after {got} of {total} bytes");
        if first.len() < one {
            let take = n.min(one - first.len());
            first.extend_from_slice(&buf[..take]);
        }
        tail.extend_from_slice(&buf[..n]);
        let keep = tail.len().saturating_sub(5);
        tail.drain(..keep);
        got += n;
        if got % (8 << 20) < n {
            peak = peak.max(rss(pid));
        }
    }
    assert_eq!(got, total);
    assert_eq!(&first[..head.len()], head.as_bytes());
    assert!(first[head.len()..head.len() + value.len()] == value[..]);
    assert_eq!(tail, b"END\r\n");
    let grew = peak.saturating_sub(before);
    eprintln!(
        "get big3 x100: {} MiB answered, RSS grew by {:.1} MiB",
        total >> 20,
        grew as f64 / MIB as f64
    );
    assert!(grew < 16 * MIB, "RSS grew by {grew} for a 100 MiB answer");
    server.stop();
}

/// 200 connections each stop one byte short of a 1 MiB `set` block, with `-m 8`:
/// the blocks the store can hold are held, the others answered `SERVER_ERROR out
/// of memory storing object` and swallowed in small pieces, so the server holds
/// about the limit (it once held every block whole: 200 MiB).
#[test]
fn stalled_data_blocks_are_bounded_by_the_memory_limit() {
    let _dog = Watchdog::new(
        "stalled_data_blocks_are_bounded_by_the_memory_limit",
        Duration::from_secs(180),
    );
    const CONNS: usize = 200;
    let server = KvServer::start(&["-m", "8"]);
    let (addr, pid) = (server.addr, server.child.id());
    exchange(addr, "warm-up", b"get nothing\r\n", b"END\r\n");
    let empty = rss(pid);
    let len = 1 << 20;
    let mut conns = Vec::new();
    for i in 0..CONNS {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut request = format!("set stalled{i} 0 0 {len}\r\n").into_bytes();
        request.resize(request.len() + len + 1, b'x'); // one byte short of its "\r\n"
        s.write_all(&request).expect("write the block");
        conns.push(s);
    }
    // The refused ones are told at once; the held ones wait for their last byte.
    let refusal = b"SERVER_ERROR out of memory storing object\r\n";
    let mut refused = 0;
    let mut peak = rss(pid);
    for s in &mut conns {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut got = vec![0; refusal.len()];
        match s.read_exact(&mut got) {
            Ok(()) => {
                assert_eq!(got, refusal);
                refused += 1;
            }
            Err(e) if common::is_timeout(&e) => {}
            Err(e) => panic!("read: {e}"),
        }
        peak = peak.max(rss(pid));
    }
    // Everything sent has been read by now (the refusals came after their lines,
    // the held blocks are whole but a byte): settled.
    thread::sleep(Duration::from_millis(500));
    peak = peak.max(rss(pid));
    let bound = (8 * MIB + empty) * 13 / 10 + CONNS as u64 * 32 * 1024;
    eprintln!(
        "{CONNS} stalled 1 MiB sets, -m 8: {refused} refused, empty {:.1} MiB, peak {:.1} MiB, bound {:.1} MiB",
        empty as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        bound as f64 / MIB as f64
    );
    assert!(peak <= bound, "RSS {peak} past {bound}");
    assert!(refused >= CONNS - 8, "only {refused} refused");
    // The held ones complete; then every connection goes, and the memory with it.
    for s in &mut conns {
        s.write_all(b"\n").unwrap();
    }
    drop(conns);
    fill(addr, (0..10).map(|i| (format!("after{i}"), 500_000)));
    let after = rss(pid);
    assert!(after <= bound, "RSS {after} after they closed");
    server.stop();
}

/// Requests where this server once answered otherwise than memcached 1.6, each
/// with memcached's answer (a `get` of a missing key closes each, to show the
/// connection goes on).
fn divergences() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let bad = "CLIENT_ERROR bad command line format\r\n";
    let mut cases: Vec<(&'static str, String, String)> = Vec::new();
    // A length past INT_MAX - 2: a bad command line, no data block follows (once:
    // SERVER_ERROR, then up to 2^64 bytes swallowed).
    for len in ["2147483646", "2147483648", "18446744073709551616"] {
        cases.push((
            "set with a length past INT_MAX",
            format!("set k 0 0 {len}\r\nget sync\r\n"),
            format!("{bad}END\r\n"),
        ));
    }
    // Lines over 2048 bytes that come whole are answered (once: the connection
    // was reset).
    let keys: Vec<String> = (0..600).map(|i| format!("key{i:04}")).collect();
    cases.push((
        "600-key gat",
        format!(
            "set key0007 3 0 1\r\nx\r\ngat 100 {}\r\nget sync\r\n",
            keys.join(" ")
        ),
        "STORED\r\nVALUE key0007 3 1\r\nx\r\nEND\r\nEND\r\n".into(),
    ));
    cases.push((
        "3000-byte key in a set",
        format!("set {} 0 0 1\r\nx\r\nget sync\r\n", "k".repeat(3000)),
        format!("{bad}ERROR\r\nEND\r\n"),
    ));
    cases.push((
        "3000 bytes of no command",
        format!("{}\r\nget sync\r\n", "x".repeat(3000)),
        "ERROR\r\nEND\r\n".into(),
    ));
    // noreply in an argument's place: silent (once: CLIENT_ERROR).
    cases.push((
        "noreply in an argument's place",
        "set n 0 0 1\r\n5\r\nincr n noreply\r\ndecr n noreply\r\ntouch n noreply\r\n\
         set k 0 0 noreply\r\nget n\r\n"
            .into(),
        "STORED\r\nVALUE n 0 1\r\n5\r\nEND\r\n".into(),
    ));
    cases
        .into_iter()
        .map(|(what, req, want)| (what, req.into_bytes(), want.into_bytes()))
        .collect()
}

/// [`divergences`] against this server, on each loop.
#[test]
fn answers_as_memcached_where_it_once_diverged() {
    let _dog = Watchdog::new(
        "answers_as_memcached_where_it_once_diverged",
        Duration::from_secs(60),
    );
    for args in LOOPS {
        let server = KvServer::start(args);
        for (what, request, expected) in divergences() {
            exchange(
                server.addr,
                &format!("{}: {what}", server.name),
                &request,
                &expected,
            );
        }
        server.stop();
    }
}

/// [`divergences`] against memcached itself: the expectations are memcached's.
#[test]
#[ignore = "needs memcached (apt-get install memcached)"]
fn divergences_against_real_memcached() {
    let _dog = Watchdog::new(
        "divergences_against_real_memcached",
        Duration::from_secs(60),
    );
    let memcached = Memcached::start();
    let addr = SocketAddr::from(([127, 0, 0, 1], memcached.port));
    for (what, request, expected) in divergences() {
        exchange(addr, &format!("memcached: {what}"), &request, &expected);
    }
}
