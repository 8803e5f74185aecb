//! Clients nobody here wrote against the example `kv_server` (memcached's text
//! protocol), on all three loops (the default select(2), `--poll`, `--large`) and
//! with two workers (one listener each, and one shared with `--shared-listener`).
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

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::examples::example;
use common::Watchdog;

/// The three loops.
const LOOPS: [&[&str]; 5] = [
    &[],
    &["--poll"],
    &["--large"],
    &["--workers", "2", "--shared-listener"],
    &["--poll", "--workers", "2"],
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
        "{what}: got {:?}, want {:?}",
        String::from_utf8_lossy(&got[..got.len().min(300)]),
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
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut memcached = Kill(child);
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(s) = memcached.0.try_wait().unwrap() {
            panic!("memcached exited: {s}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "memcached does not listen on {port}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let (out, _) = run_tool(
        "pymemcache vs memcached",
        Command::new("python3").arg(script()).arg(port.to_string()),
    );
    eprintln!(
        "pymemcache vs memcached: {}",
        String::from_utf8_lossy(&out).trim()
    );
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
