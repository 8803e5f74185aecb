//! Integration tests for `unp_select::writen` on socketpairs, pipes, files and TCP.

use crate::common;

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::fds::tcp_pair;
use common::signals::{hits, install_handler, signal_thread};
use common::Watchdog;
use nix::sys::signal::{SigSet, Signal};
use unp_select::writen::{try_writen, writen};

/// Bytes whose value depends on their position, so reordering or duplication shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

/// Reads exactly `len` bytes in chunks of at most `chunk`, sleeping now and then.
fn slow_read<R: Read>(mut r: R, len: usize, chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut buf = vec![0u8; chunk];
    let mut reads = 0usize;
    while out.len() < len {
        let want = chunk.min(len - out.len());
        match r.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("slow_read: {e}"),
        }
        reads += 1;
        if reads % 256 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    out
}

#[test]
fn writes_several_mib_to_slow_reader_in_order() {
    let _w = Watchdog::new("writes_several_mib", Duration::from_secs(20));
    let data = pattern(6 << 20);
    let (a, b) = UnixStream::pair().unwrap();
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let len = data.len();
    let reader = thread::spawn(move || slow_read(b, len, 1000));
    writen(&a, &data).unwrap();
    drop(a);
    let got = reader.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "data differs");
}

#[test]
fn writes_several_mib_over_tcp() {
    let _w = Watchdog::new("writes_several_mib_over_tcp", Duration::from_secs(20));
    let data = pattern(4 << 20);
    let (client, server) = tcp_pair();
    let len = data.len();
    let reader = thread::spawn(move || slow_read(server, len, 777));
    writen(&client, &data).unwrap();
    let got = reader.join().unwrap();
    assert!(got == data, "data differs");
}

#[test]
fn writes_to_pipe_and_file() {
    let _w = Watchdog::new("writes_to_pipe_and_file", Duration::from_secs(10));
    let data = pattern(1 << 20);
    let (r, w) = common::fds::cloexec_pipe();
    let len = data.len();
    let reader = thread::spawn(move || slow_read(std::fs::File::from(r), len, 4096));
    writen(&w, &data).unwrap();
    assert_eq!(try_writen(&w, b"").unwrap(), 0);
    drop(w);
    assert!(reader.join().unwrap() == data);

    let path = std::env::temp_dir().join(format!("unp-select-writen-{}", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    writen(&file, &data).unwrap();
    assert_eq!(try_writen(&file, b"tail").unwrap(), 4);
    drop(file);
    let back = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(&back[..data.len()], &data[..]);
    assert_eq!(&back[data.len()..], b"tail");
}

#[test]
fn empty_buffer_makes_no_syscall() {
    // The read end of a pipe cannot be written (EBADF), so only a call that never
    // reaches the kernel can succeed on it.
    let (r, _w) = common::fds::cloexec_pipe();
    writen(&r, b"").unwrap();
    assert_eq!(try_writen(&r, b"").unwrap(), 0);
    assert_eq!(
        writen(&r, b"x").unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
}

#[test]
fn write_to_pipe_read_end_is_ebadf() {
    let (r, _w) = common::fds::cloexec_pipe();
    let err = writen(&r, b"data").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    let err = try_writen(&r, b"data").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
}

#[test]
fn write_to_read_only_file_is_ebadf() {
    let file = std::fs::File::open("/dev/null").unwrap();
    let err = writen(&file, b"data").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    let err = try_writen(&file.as_fd(), b"data").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
}

#[test]
fn unix_socket_peer_closed_is_broken_pipe_at_once() {
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    assert_eq!(writen(&a, b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    assert_eq!(
        try_writen(&a, b"x").unwrap_err().kind(),
        ErrorKind::BrokenPipe
    );
}

/// Writes one small message at a time until an error, pausing so the peer's answer
/// (an RST) can come back; returns the outcomes.
fn write_until_error(s: &TcpStream) -> Vec<Result<(), ErrorKind>> {
    let mut outcomes = Vec::new();
    for _ in 0..10 {
        let r = writen(s, b"are you there?").map_err(|e| e.kind());
        outcomes.push(r);
        if outcomes.iter().filter(|r| r.is_err()).count() >= 2 {
            break;
        }
        thread::sleep(Duration::from_millis(30));
    }
    outcomes
}

#[test]
fn tcp_peer_closed_first_write_succeeds_then_broken_pipe() {
    let _w = Watchdog::new("tcp_peer_closed", Duration::from_secs(10));
    let (client, server) = tcp_pair();
    drop(server);
    thread::sleep(Duration::from_millis(30));
    let outcomes = write_until_error(&client);
    eprintln!("after FIN: {outcomes:?}");
    assert_eq!(outcomes[0], Ok(()), "{outcomes:?}");
    let first_err = outcomes.iter().find_map(|r| r.err());
    if cfg!(target_os = "linux") {
        // Measured: the peer's RST makes the next write fail with EPIPE.
        assert_eq!(first_err, Some(ErrorKind::BrokenPipe), "{outcomes:?}");
    } else {
        assert!(first_err.is_some(), "{outcomes:?}");
    }
}

#[test]
fn tcp_peer_reset_first_write_is_connection_reset_then_broken_pipe() {
    let _w = Watchdog::new("tcp_peer_reset", Duration::from_secs(10));
    let (client, server) = tcp_pair();
    unp_select::linger::abort(server).unwrap();
    thread::sleep(Duration::from_millis(30));
    let outcomes = write_until_error(&client);
    eprintln!("after RST: {outcomes:?}");
    assert_eq!(
        outcomes,
        vec![Err(ErrorKind::ConnectionReset), Err(ErrorKind::BrokenPipe)]
    );
}

#[test]
fn writen_on_full_nonblocking_socket_is_would_block() {
    let (a, _b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let err = writen(&a, &vec![1u8; 8 << 20]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
}

fn wait_writable(fd: &impl AsRawFd, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `pfd` is one live pollfd and we pass a count of 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    rc == 1
}

#[test]
fn try_writen_returns_short_count_and_loses_nothing() {
    let _w = Watchdog::new("try_writen_short_count", Duration::from_secs(20));
    let data = pattern(4 << 20);
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

    let first = try_writen(&a, &data).unwrap();
    assert!(first > 0 && first < data.len(), "first = {first}");
    // Full: nothing more fits, and that is Ok(0), not an error.
    assert_eq!(try_writen(&a, &data[first..]).unwrap(), 0);

    let len = data.len();
    let reader = thread::spawn(move || slow_read(b, len, 1500));
    let mut sent = first;
    let mut calls = 1;
    let start = Instant::now();
    while sent < data.len() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "stalled at {sent}"
        );
        if !wait_writable(&a, 1000) {
            continue;
        }
        let n = try_writen(&a, &data[sent..]).unwrap();
        sent += n;
        calls += 1;
    }
    eprintln!("try_writen: first call wrote {first} bytes, {calls} calls in all");
    let got = reader.join().unwrap();
    assert!(got == data, "data differs");
}

#[test]
fn try_writen_on_blocking_socket_writes_everything() {
    let _w = Watchdog::new("try_writen_blocking", Duration::from_secs(10));
    let data = pattern(2 << 20);
    let (a, b) = UnixStream::pair().unwrap();
    let len = data.len();
    let reader = thread::spawn(move || slow_read(b, len, 4096));
    assert_eq!(try_writen(&a, &data).unwrap(), data.len());
    assert!(reader.join().unwrap() == data);
}

fn thread_sigpipe_state() -> (bool, bool) {
    // SAFETY: sigset_t is plain data; all-zero is a valid (empty) set.
    let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut pending: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both sets are live; a null new-mask pointer only queries the mask.
    unsafe {
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask),
            0
        );
        assert_eq!(libc::sigpending(&mut pending), 0);
        (
            libc::sigismember(&mask, libc::SIGPIPE) == 1,
            libc::sigismember(&pending, libc::SIGPIPE) == 1,
        )
    }
}

#[test]
fn broken_pipe_on_pipe_leaves_no_signal_and_restores_mask() {
    // The calling thread starts with SIGPIPE unblocked (and ignored by Rust's runtime).
    assert_eq!(thread_sigpipe_state(), (false, false));
    let (r, w) = common::fds::cloexec_pipe();
    drop(r);
    assert_eq!(writen(&w, b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    assert_eq!(
        try_writen(&w, b"x").unwrap_err().kind(),
        ErrorKind::BrokenPipe
    );
    assert_eq!(thread_sigpipe_state(), (false, false));

    // A caller that blocks SIGPIPE itself keeps it blocked, and the SIGPIPE raised by
    // our write does not stay pending.
    let mut set = SigSet::empty();
    set.add(Signal::SIGPIPE);
    set.thread_block().unwrap();
    assert_eq!(writen(&w, b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    assert_eq!(thread_sigpipe_state(), (true, false));

    // A SIGPIPE that was already pending is not ours: it stays pending.
    // SAFETY: sending a blocked signal to the current thread only makes it pending.
    let rc = unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGPIPE) };
    assert_eq!(rc, 0);
    assert_eq!(thread_sigpipe_state(), (true, true));
    assert_eq!(writen(&w, b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    assert_eq!(thread_sigpipe_state(), (true, true));
    assert_eq!(set.wait().unwrap(), Signal::SIGPIPE);
    assert_eq!(thread_sigpipe_state(), (true, false));
    set.thread_unblock().unwrap();
}

const CHILD_ENV: &str = "UNP_SELECT_WRITEN_CHILD";

/// The body of the child process of `no_sigpipe_with_default_disposition` and its
/// control. Run on its own (without the environment variable), it is that test: it
/// runs itself as a child in every mode.
///
/// Exit codes: 0 `writen` and `try_writen` reported `EPIPE` and no `SIGPIPE` is left
/// pending; 3 no `EPIPE` (or a raw write survived); 4 `try_writen` did not report
/// `EPIPE`; 5 a `SIGPIPE` is still pending; 10 unknown mode.
#[test]
fn sigpipe_child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return no_sigpipe_with_default_disposition();
    };
    // Undo Rust's startup `SIG_IGN`: now a SIGPIPE kills this process.
    // SAFETY: setting the default disposition installs no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let target: OwnedFd = match mode.split('-').next() {
        Some("tcp") => {
            let (client, server) = tcp_pair();
            drop(server);
            client.into()
        }
        Some("unix") => {
            let (a, b) = UnixStream::pair().unwrap();
            drop(b);
            a.into()
        }
        Some("pipe") => {
            let (r, w) = common::fds::cloexec_pipe();
            drop(r);
            w
        }
        _ => std::process::exit(10),
    };
    thread::sleep(Duration::from_millis(30));
    let raw = mode.ends_with("-raw");
    for _ in 0..20 {
        if raw {
            // SAFETY: writes 1 byte from a live buffer to a descriptor we own.
            unsafe { libc::write(target.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        } else if let Err(e) = writen(&target, b"x") {
            if e.kind() == ErrorKind::BrokenPipe {
                finish_after_broken_pipe(&target);
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    // writen never reported EPIPE, or a raw write survived: both are failures.
    std::process::exit(3);
}

/// The end of a `sigpipe_child` whose `writen` reported `EPIPE`: `try_writen` must
/// report it too, and neither may leave a `SIGPIPE` pending.
fn finish_after_broken_pipe(target: &OwnedFd) -> ! {
    match try_writen(target, b"x") {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {}
        _ => std::process::exit(4),
    }
    if thread_sigpipe_state().1 {
        std::process::exit(5);
    }
    std::process::exit(0);
}

fn run_child(mode: &str) -> std::process::ExitStatus {
    spawn_child("sigpipe_child", CHILD_ENV, mode, false)
}

/// Runs the test `test` of this module alone in a child process with `env=mode`; with
/// `block_sigpipe`, the child starts with `SIGPIPE` blocked, and so does every thread
/// it creates (threads inherit the mask). Fails if it runs longer than 10 s.
fn spawn_child(test: &str, env: &str, mode: &str, block_sigpipe: bool) -> std::process::ExitStatus {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    let test = common::fresh::test_in(module_path!(), test);
    cmd.args(["--exact", &test, "--nocapture", "--test-threads=1"])
        .env(env, mode)
        .stdout(std::process::Stdio::null());
    if block_sigpipe {
        // SAFETY: the closure runs in the forked child before exec (after std reset the
        // signal mask) and only calls pthread_sigmask, which is async-signal-safe and
        // allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                SigSet::from(Signal::SIGPIPE)
                    .thread_block()
                    .map_err(std::io::Error::from)
            })
        };
    }
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("child {mode} hung");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn no_sigpipe_with_default_disposition() {
    for mode in ["tcp", "unix", "pipe"] {
        let status = run_child(mode);
        assert_eq!(status.signal(), None, "{mode}: killed: {status:?}");
        assert_eq!(status.code(), Some(0), "{mode}: {status:?}");
    }
}

#[test]
fn raw_write_is_killed_by_sigpipe_control() {
    // The control for the test above: the same child with a plain write(2) dies.
    for mode in ["tcp-raw", "unix-raw", "pipe-raw"] {
        let status = run_child(mode);
        assert_eq!(status.signal(), Some(libc::SIGPIPE), "{mode}: {status:?}");
    }
}

const PENDING_ENV: &str = "UNP_SELECT_WRITEN_PENDING_CHILD";

/// Linux: whether `SIGPIPE` is pending for the calling thread (`SigPnd`) and for the
/// process (`ShdPnd`), from `/proc/thread-self/status`. `None` elsewhere.
fn proc_sigpipe_pending() -> Option<(bool, bool)> {
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        return None;
    }
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    let has_sigpipe = |key: &str| -> Option<bool> {
        let hex = status.lines().find_map(|l| l.strip_prefix(key))?.trim();
        let low = &hex[hex.len().saturating_sub(16)..];
        let mask = u64::from_str_radix(low, 16).ok()?;
        Some(mask & (1 << (libc::SIGPIPE - 1)) != 0)
    };
    Some((has_sigpipe("SigPnd:")?, has_sigpipe("ShdPnd:")?))
}

/// Linux: whether every thread of the process blocks `SIGPIPE` (`SigBlk` of each
/// `/proc/self/task/*/status`). `None` elsewhere.
fn every_thread_blocks_sigpipe() -> Option<bool> {
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        return None;
    }
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let status = std::fs::read_to_string(task.ok()?.path().join("status")).ok()?;
        let hex = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))?
            .trim();
        let mask = u64::from_str_radix(&hex[hex.len().saturating_sub(16)..], 16).ok()?;
        if mask & (1 << (libc::SIGPIPE - 1)) == 0 {
            return Some(false);
        }
    }
    Some(true)
}

/// Exits with `code` if the pending `SIGPIPE`s are not exactly `thread` (sent to this
/// thread) and `process` (sent to the process): `sigpending` shows their union; on
/// Linux `/proc` tells them apart (`code + 1`).
fn check_pending(thread: bool, process: bool, code: i32) {
    if thread_sigpipe_state().1 != (thread || process) {
        std::process::exit(code);
    }
    if let Some(got) = proc_sigpipe_pending() {
        if got != (thread, process) {
            eprintln!(
                "pending (thread, process): {got:?}, want {:?}",
                (thread, process)
            );
            std::process::exit(code + 1);
        }
    }
}

/// Not a test of its own: the body of the child processes of
/// `process_sigpipe_pending_before_writen_stays_pending` and
/// `caller_blocked_sigpipe_keeps_exactly_its_pending_signals`. Without the environment
/// variable it does nothing.
///
/// The child starts with `SIGPIPE` blocked in every thread (see [`spawn_child`]), so a
/// `SIGPIPE` sent to the process stays pending, and sets `SIG_DFL`. The mode says what
/// is pending before the writes: `none`, `thread` (`pthread_kill` of this thread),
/// `process` (`kill(getpid())`) or `both`. Then `writen` and `try_writen` each fail with
/// `EPIPE` on a pipe whose read end is closed, and after each exactly what was pending
/// before must still be pending. The child then takes those signals itself, unblocks
/// `SIGPIPE` (anything left would kill it now) and exits 0.
///
/// Exit codes: 10 unknown mode; 20 `SIGPIPE` not blocked or already pending at the
/// start; 21 some thread does not block `SIGPIPE`; 30/31 wrong pending set before the
/// writes (31: per `/proc`); 40/41 `writen`/`try_writen` did not report `EPIPE`; 50/51
/// wrong pending set after `writen`; 60/61 after `try_writen`; 70 fewer pending
/// signals than sent; 71 more.
#[test]
fn sigpipe_pending_child() {
    let Ok(mode) = std::env::var(PENDING_ENV) else {
        // Run on its own: check every mode, each in a child.
        for mode in ["none", "thread", "process", "both"] {
            run_pending_child(mode);
        }
        return;
    };
    let (thread, process) = match mode.as_str() {
        "none" => (false, false),
        "thread" => (true, false),
        "process" => (false, true),
        "both" => (true, true),
        _ => std::process::exit(10),
    };
    // SAFETY: setting the default disposition installs no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    if thread_sigpipe_state() != (true, false) {
        std::process::exit(20);
    }
    if every_thread_blocks_sigpipe() == Some(false) {
        std::process::exit(21);
    }
    let (r, w) = common::fds::cloexec_pipe();
    drop(r);
    if thread {
        // SAFETY: SIGPIPE is blocked, so this only makes it pending for this thread.
        let rc = unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGPIPE) };
        assert_eq!(rc, 0);
    }
    if process {
        nix::sys::signal::kill(nix::unistd::Pid::this(), Signal::SIGPIPE).unwrap();
    }
    check_pending(thread, process, 30);

    match writen(&w, b"x") {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {}
        _ => std::process::exit(40),
    }
    check_pending(thread, process, 50);
    match try_writen(&w, b"x") {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {}
        _ => std::process::exit(41),
    }
    check_pending(thread, process, 60);

    // Take the signals this child sent; sigwait returns at once for a pending one.
    let set = SigSet::from(Signal::SIGPIPE);
    for _ in 0..(usize::from(thread) + usize::from(process)) {
        if !thread_sigpipe_state().1 {
            std::process::exit(70);
        }
        assert_eq!(set.wait().unwrap(), Signal::SIGPIPE);
    }
    if thread_sigpipe_state().1 {
        std::process::exit(71);
    }
    // With SIG_DFL, a SIGPIPE still pending for this thread would kill it here.
    set.thread_unblock().unwrap();
    std::process::exit(0);
}

fn run_pending_child(mode: &str) {
    let status = spawn_child("sigpipe_pending_child", PENDING_ENV, mode, true);
    assert_eq!(status.signal(), None, "{mode}: killed: {status:?}");
    assert_eq!(
        status.code(),
        Some(0),
        "{mode}: {status:?} (codes: see sigpipe_pending_child)"
    );
}

/// The issue: every thread blocks `SIGPIPE` and one is pending for the process. The
/// `SIGPIPE` that `writen`'s own write raised must still be taken (it was left pending
/// for the thread and killed the process once it unblocked `SIGPIPE`), and the
/// process's one must be left alone.
#[test]
// writen needs to tell a SIGPIPE pending for the thread from one pending for the
// process: Linux through /proc; FreeBSD queues every SIGPIPE, and Apple raises none.
#[cfg_attr(
    not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_vendor = "apple"
    )),
    ignore = "this platform cannot tell a SIGPIPE pending for the thread from one pending for the process"
)]
fn process_sigpipe_pending_before_writen_stays_pending() {
    if cfg!(any(target_os = "linux", target_os = "android")) {
        assert!(
            proc_sigpipe_pending().is_some(),
            "this test reads SigPnd and ShdPnd from /proc/self/status: mount /proc"
        );
    }
    run_pending_child("process");
}

/// A caller that blocks `SIGPIPE` itself keeps exactly what was pending before the
/// call: nothing, a `SIGPIPE` for the thread (the write's one merges into it), or one
/// for the thread and one for the process.
#[test]
fn caller_blocked_sigpipe_keeps_exactly_its_pending_signals() {
    for mode in ["none", "thread", "both"] {
        run_pending_child(mode);
    }
}

#[test]
fn eintr_during_blocked_writen_loses_and_duplicates_nothing() {
    let _w = Watchdog::new("eintr_during_blocked_writen", Duration::from_secs(20));
    // No SA_RESTART: a blocked send fails with EINTR.
    install_handler();

    let data = Arc::new(pattern(4 << 20));
    let (a, b) = UnixStream::pair().unwrap();
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let data = Arc::clone(&data);
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let r = writen(&a, &data);
            done.store(true, Ordering::SeqCst);
            // The signals this thread handled (other tests signal their own threads).
            (r, hits())
        })
    };
    // The writer is blocked: nobody reads. Interrupt it repeatedly.
    for _ in 0..20 {
        // The thread is alive: it cannot finish before the reader drains.
        signal_thread(&writer, Signal::SIGUSR1);
        thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !done.load(Ordering::SeqCst),
        "writer finished without a reader"
    );
    let len = data.len();
    let reader = thread::spawn(move || {
        let got = slow_read(&b, len, 3000);
        // Everything is read; nothing extra may follow (duplicates would).
        let mut extra = [0u8; 1];
        let tail = (&b).read(&mut extra);
        (got, tail)
    });
    // Keep interrupting while the reader drains.
    while !done.load(Ordering::SeqCst) {
        signal_thread(&writer, Signal::SIGUSR1);
        thread::sleep(Duration::from_millis(2));
    }
    let (written, signals) = writer.join().unwrap();
    written.unwrap();
    let (got, tail) = reader.join().unwrap();
    eprintln!("writen survived {signals} signals");
    assert!(signals >= 10, "only {signals} signals delivered");
    assert!(got == *data, "data differs");
    assert_eq!(tail.unwrap(), 0, "bytes beyond the data");
}

#[test]
fn writen_borrows_every_kind_of_fd() {
    // `writen` and `try_writen` borrow: `&F` for any `F: AsFd`, unsized `dyn AsFd`
    // included. Every descriptor stays open after the calls (an owned one passed by
    // value would have been closed; that no longer compiles, see the doc tests): each
    // one is written to again after its first call.
    let (a, mut b) = UnixStream::pair().unwrap();
    let owned = OwnedFd::from(a.try_clone().unwrap());
    let dynamic: Box<dyn AsFd> = Box::new(a.try_clone().unwrap());
    writen(&a.as_fd(), b"one ").unwrap();
    writen(&a, b"two ").unwrap();
    writen(&owned, b"three ").unwrap();
    writen(&*dynamic, b"four ").unwrap();
    assert_eq!(try_writen(&a.as_fd(), b"five ").unwrap(), 5);
    assert_eq!(try_writen(&owned, b"six ").unwrap(), 4);
    assert_eq!(try_writen(&*dynamic, b"seven").unwrap(), 5);
    drop((a, owned, dynamic));
    let mut s = String::new();
    b.read_to_string(&mut s).unwrap();
    assert_eq!(s, "one two three four five six seven");
}
