//! The example programs, run as a user runs them: built binaries driven with real
//! sockets on 127.0.0.1, and (ignored unless `nc` is installed: `cargo test --
//! --ignored`) with netcat.

use crate::common;

use std::io::{Read, Write};
#[cfg(target_os = "linux")]
use std::net::SocketAddr;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::examples::{example, ServerProcess};
use common::{LineClient, Watchdog};

/// Runs a command to completion with a watchdog on the whole test.
fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

#[test]
fn every_example_has_help() {
    let _dog = Watchdog::new("help", Duration::from_secs(30));
    for name in [
        "accept_race",
        "echo_server",
        "echo_client",
        "rst_client",
        "chat_server",
        "kv_server",
    ] {
        let out = output(example(name).arg("--help"));
        assert!(out.status.success(), "{name} --help failed");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.starts_with("usage:"), "{name}: {text}");
    }
    for name in ["echo_server", "chat_server", "kv_server"] {
        let out = output(example(name).arg("--bogus"));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name}: a bad flag is a usage error"
        );
        let out = output(example(name).args(["--workers", "0"]));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name}: --workers 0 is a usage error"
        );
    }
}

/// Runs example `name` with `args` and standard input closed; returns its exit code,
/// standard output and standard error.
fn run(name: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = output(example(name).args(args));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts a usage error: exit status 2, nothing on stdout, and a message on stderr
/// that names `what` and is followed by the usage text.
fn assert_usage_error(name: &str, args: &[&str], what: &str) {
    let (code, out, err) = run(name, args);
    assert_eq!(code, Some(2), "{name} {args:?}: {err}");
    assert!(out.is_empty(), "{name} {args:?} printed {out:?}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("{name}: ")) && first.contains(what),
        "{name} {args:?}: the first line of stderr should name {what:?}: {err}"
    );
    assert!(
        err.contains("\nusage: "),
        "{name} {args:?}: no usage: {err}"
    );
}

#[test]
fn accept_race_rejects_bad_usage_with_status_2() {
    let _dog = Watchdog::new("accept_race usage", Duration::from_secs(60));
    let name = "accept_race";
    assert_usage_error(name, &["--bogus"], "unknown option --bogus");
    assert_usage_error(name, &["-x"], "unknown option -x");
    assert_usage_error(name, &["--delay"], "--delay needs a number");
    assert_usage_error(name, &["--delay", "soon"], "--delay soon");
    assert_usage_error(name, &["--wait", "0"], "--wait 0");
    assert_usage_error(
        name,
        &["--delay", "100", "extra"],
        "unexpected argument extra",
    );
}

#[test]
fn echo_client_and_rst_client_reject_bad_usage_with_status_2() {
    let _dog = Watchdog::new("client usage", Duration::from_secs(60));
    // A listener that must see no connection: an unknown flag is not an address, and
    // a usage error connects nowhere.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    for name in ["echo_client", "rst_client"] {
        assert_usage_error(name, &["--bogus"], "unknown option --bogus");
        assert_usage_error(name, &["--bogus", &addr], "unknown option --bogus");
        assert_usage_error(name, &[&addr, "-v"], "unknown option -v");
        assert_usage_error(name, &[&addr, &addr], "unexpected argument");
        assert_usage_error(name, &["127.0.0.1"], "ADDR 127.0.0.1");
        assert_usage_error(name, &["127.0.0.1:99999"], "ADDR 127.0.0.1:99999");
    }
    let err = listener.accept().unwrap_err();
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::WouldBlock,
        "a client connected"
    );
}

/// A socket whose writing side is shut down: every write to it fails with `EPIPE`,
/// whoever else holds its peer (a child that another test thread forks may inherit
/// any descriptor that is open at that moment, which would keep a pipe's read end
/// open).
fn closed_stdout() -> Stdio {
    let (stdout, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    stdout.shutdown(std::net::Shutdown::Write).unwrap();
    Stdio::from(std::os::fd::OwnedFd::from(stdout))
}

#[test]
fn help_on_a_closed_stdout_does_not_panic() {
    let _dog = Watchdog::new("help on closed stdout", Duration::from_secs(60));
    for name in ["accept_race", "echo_client", "rst_client"] {
        let out = example(name)
            .arg("--help")
            .stdin(Stdio::null())
            .stdout(closed_stdout())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name} --help: {}: {err}", out.status);
        assert!(!err.contains("panicked"), "{name} --help: {err}");
    }
}

#[test]
fn accept_race_reports_to_a_closed_stdout_without_panicking() {
    let _dog = Watchdog::new("accept_race closed stdout", Duration::from_secs(60));
    let out = example("accept_race")
        .args(["--delay", "200", "--wait", "1000"])
        .stdin(Stdio::null())
        .stdout(closed_stdout())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn rst_client_reports_a_refused_connection_with_status_1() {
    let _dog = Watchdog::new("rst_client refused", Duration::from_secs(30));
    // A port nothing listens on: bind, note it, close.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    for name in ["rst_client", "echo_client"] {
        let (code, out, err) = run(name, &[&addr]);
        assert_eq!(code, Some(1), "{name}: {err}");
        assert!(out.is_empty(), "{name}: {out}");
        assert!(
            err.starts_with(&format!("{name}: {addr}: ")) && err.contains("refused"),
            "{name}: {err}"
        );
    }
}

#[test]
fn echo_server_echoes_and_stops_on_sigterm_and_sigint() {
    let _dog = Watchdog::new("echo_server", Duration::from_secs(30));
    let runs = [
        (&[][..], libc::SIGTERM),
        (&["--poll"][..], libc::SIGINT),
        (&["--large"][..], libc::SIGTERM),
    ];
    for (mode, signal) in runs {
        let server = ServerProcess::start(mode);
        let mut c = LineClient::connect(server.addr, Duration::from_secs(5)).unwrap();
        c.echo("through the example binary\n").unwrap();
        drop(c);
        let (status, rest) = server.stop_with(signal);
        assert!(status.success(), "{mode:?}: {status}");
        assert!(
            rest.contains("stopped") && rest.contains("messages_sent: 1"),
            "{rest}"
        );
    }
}

#[test]
fn echo_client_sends_stdin_and_prints_every_echo() {
    let _dog = Watchdog::new("echo_client", Duration::from_secs(30));
    let server = ServerProcess::start(&[]);
    let input: String = (0..500).map(|i| format!("line {i} from stdin\n")).collect();
    let mut client = example("echo_client")
        .arg(server.addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let feed = input.clone();
    let writer = std::thread::spawn(move || stdin.write_all(feed.as_bytes()));
    let out = client.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), input);
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[test]
fn echo_client_reports_a_server_that_goes_away() {
    let _dog = Watchdog::new("echo_client premature", Duration::from_secs(30));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || drop(listener.accept().unwrap()));
    let mut client = example("echo_client")
        .arg(addr.to_string())
        .stdin(Stdio::piped()) // kept open: the client has not finished its input
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    server.join().unwrap();
    let status = client.wait().unwrap();
    let mut err = String::new();
    client
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert!(err.contains("server terminated prematurely"), "{err}");
}

#[test]
fn rst_client_resets_the_connection() {
    let _dog = Watchdog::new("rst_client", Duration::from_secs(30));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let out = output(example("rst_client").arg(listener.local_addr().unwrap().to_string()));
    assert!(out.status.success());
    // Linux keeps the reset connection in the queue; the first read says so.
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let err = conn.read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

#[test]
fn accept_race_shows_the_stall_and_the_fix() {
    let _dog = Watchdog::new("accept_race", Duration::from_secs(60));
    let out = output(example("accept_race").args(["--delay", "200", "--wait", "1000"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("the book's version stalled; the fixed version kept serving"),
        "{text}"
    );
}

#[test]
#[ignore = "needs nc (apt-get install netcat-openbsd); .ci/run installs it and runs cargo test -- --ignored"]
fn netcat_is_a_client_too() {
    let _dog = Watchdog::new("nc", Duration::from_secs(30));
    assert!(
        Command::new("nc").arg("-h").output().is_ok(),
        "nc is not installed: apt-get install netcat-openbsd"
    );
    let server = ServerProcess::start(&[]);
    // -N: shut down the socket after EOF on stdin (OpenBSD netcat), then wait for
    // the server to close.
    let mut nc = Command::new("nc")
        .args(["-N", "127.0.0.1", &server.addr.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    nc.stdin
        .take()
        .unwrap()
        .write_all(b"hello from netcat\nsecond line\n")
        .unwrap();
    let out = nc.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "hello from netcat\nsecond line\n"
    );
    let (status, rest) = server.terminate();
    assert!(status.success());
    assert!(rest.contains("closed_eof: 1"), "{rest}");
}

/// The server's listening socket, duplicated into this process with
/// `pidfd_getfd(2)` (Linux 5.6; root or ptrace rights over the child): then this
/// test can take the server's connections from under it, as the competing
/// accepter of UNP 16.6 does.
#[cfg(target_os = "linux")]
fn steal_listener(pid: u32, addr: SocketAddr) -> TcpListener {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    assert!(
        pidfd >= 0,
        "pidfd_open: {}",
        std::io::Error::last_os_error()
    );
    for target in 3..16 {
        // SAFETY: pidfd_getfd duplicates the child's descriptor `target` into this
        // process, or returns -1; it touches no memory of ours.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0) };
        if fd < 0 {
            continue;
        }
        // SAFETY: `fd` is a new descriptor that nothing else in this process owns.
        let listener = unsafe { TcpListener::from_raw_fd(fd as i32) };
        if listener.local_addr().ok() == Some(addr) {
            // SAFETY: pidfd is ours and closed once.
            unsafe { libc::close(pidfd as i32) };
            return listener;
        }
    }
    panic!("the server's listener was not among its descriptors 3..16");
}

/// The system call number the process is blocked in, from /proc/PID/syscall.
#[cfg(target_os = "linux")]
fn blocked_in(pid: u32) -> Option<libc::c_long> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// SIGINT and SIGTERM stop the server within 100 ms in every mode: asleep in
/// `select` or `poll`, and (the book's bug) asleep in a blocking `accept` after
/// another process took the connection `select` announced. Linux only: it finds
/// the server's listener with `pidfd_getfd(2)` and its state in `/proc`.
#[cfg(target_os = "linux")]
#[test]
fn echo_server_stops_within_100ms_even_asleep_in_accept() {
    let _timing = common::timing();
    let _dog = Watchdog::new("stop within 100 ms", Duration::from_secs(60));
    let runs: [(&[&str], libc::c_int); 4] = [
        (&[], libc::SIGINT),
        (&["--poll"], libc::SIGTERM),
        (&["--large", "--lines"], libc::SIGINT),
        (
            &["--blocking-listener", "--accept-delay", "300"],
            libc::SIGTERM,
        ),
    ];
    for (args, signal) in runs {
        let server = ServerProcess::start(args);
        let pid = server.child.id();
        if args.contains(&"--blocking-listener") {
            // The server's select sees our connection, sleeps 300 ms, and we
            // accept it first: it is then asleep in a blocking accept.
            let listener = steal_listener(pid, server.addr);
            let _client = std::net::TcpStream::connect(server.addr).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            let (_taken, _) = listener.accept().unwrap();
            let t = std::time::Instant::now();
            while blocked_in(pid) != Some(libc::SYS_accept4) && t.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(blocked_in(pid), Some(libc::SYS_accept4), "not in accept");
        } else {
            let mut c = LineClient::connect(server.addr, Duration::from_secs(5)).unwrap();
            c.echo("then idle\n").unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        let t = std::time::Instant::now();
        let (status, rest) = server.stop_with(signal);
        let took = t.elapsed();
        assert!(status.success(), "{args:?}: {status}\n{rest}");
        assert!(
            took < Duration::from_millis(100),
            "{args:?}: took {took:?} to stop on signal {signal}"
        );
        assert!(rest.contains("stopped"), "{rest}");
    }
}

/// Issue: a signal during `--accept-delay` waited the delay out (2.7 s measured
/// with 3000 ms): `thread::sleep` resumes after `EINTR`. The delay now waits on the
/// server's waker, which the signal handler wakes.
#[test]
fn echo_server_stops_within_100ms_during_the_accept_delay() {
    let _timing = common::timing();
    let _dog = Watchdog::new("stop during the accept delay", Duration::from_secs(60));
    for mode in [&[][..], &["--poll"], &["--large"]] {
        let mut args = mode.to_vec();
        args.extend(["--accept-delay", "3000"]);
        let server = ServerProcess::start(&args);
        let _client = std::net::TcpStream::connect(server.addr).unwrap();
        std::thread::sleep(Duration::from_millis(200)); // well inside the delay
        let t = std::time::Instant::now();
        let (status, rest) = server.stop_with(libc::SIGTERM);
        let took = t.elapsed();
        assert!(status.success(), "{args:?}: {status}\n{rest}");
        assert!(
            took < Duration::from_millis(100),
            "{args:?}: took {took:?} to stop during the accept delay"
        );
    }
}
