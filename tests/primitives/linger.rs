//! Integration tests for `unp_select::linger` on loopback TCP.

use crate::common;

use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::thread;
use std::time::{Duration, Instant};

use common::fds::{dup_at_least, tcp_pair_with_listener};
use common::Watchdog;
use unp_select::linger::{abort, linger, set_linger};

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().expect("an OS error")
}

/// Moves `fd` to a descriptor number >= `at_least` (400..=499 is this module's), which
/// ordinary allocations (lowest free number first) in the other test threads will not
/// reach, so a check that the number is closed cannot be fooled by another thread
/// reusing it. Each test takes its own part of the range, for the same reason.
fn to_high_fd(fd: OwnedFd, at_least: RawFd) -> OwnedFd {
    dup_at_least(&fd, at_least)
}

fn is_closed(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on any number is harmless; it only reads the descriptor flags.
    let rc = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    rc == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
}

#[test]
fn fresh_socket_has_linger_off() {
    let (client, server, listener) = tcp_pair_with_listener();
    assert_eq!(linger(&client).unwrap(), None);
    assert_eq!(linger(&server).unwrap(), None);
    assert_eq!(linger(&listener).unwrap(), None);
}

#[test]
fn round_trip_and_rounding_up() {
    let (client, _server, _l) = tcp_pair_with_listener();
    let cases = [
        (Duration::from_millis(1500), Duration::from_secs(2)),
        (Duration::from_nanos(1), Duration::from_secs(1)),
        (Duration::from_millis(500), Duration::from_secs(1)),
        (Duration::ZERO, Duration::ZERO),
        (Duration::from_secs(7), Duration::from_secs(7)),
        (
            Duration::from_secs(i32::MAX as u64),
            Duration::from_secs(i32::MAX as u64),
        ),
        (
            Duration::from_secs(i32::MAX as u64 - 1) + Duration::from_nanos(1),
            Duration::from_secs(i32::MAX as u64),
        ),
    ];
    for (set, expected) in cases {
        set_linger(&client, Some(set)).unwrap();
        assert_eq!(linger(&client).unwrap(), Some(expected), "set {set:?}");
    }
    set_linger(&client, None).unwrap();
    assert_eq!(linger(&client).unwrap(), None);
}

#[test]
fn too_large_is_invalid_input_and_keeps_old_value() {
    let (client, _server, _l) = tcp_pair_with_listener();
    set_linger(&client, Some(Duration::from_secs(3))).unwrap();
    for bad in [
        Duration::from_secs(i32::MAX as u64 + 1),
        Duration::from_secs(i32::MAX as u64) + Duration::from_nanos(1),
        Duration::MAX,
    ] {
        let err = set_linger(&client, Some(bad)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        assert_eq!(err.raw_os_error(), None);
    }
    assert_eq!(linger(&client).unwrap(), Some(Duration::from_secs(3)));
}

#[test]
fn not_a_socket_is_enotsock() {
    // A BorrowedFd to a closed descriptor cannot be made safely, so the error path of
    // the syscalls is exercised with a descriptor that is open but not a socket.
    let file = File::open("/dev/null").unwrap();
    let err = set_linger(&file, Some(Duration::ZERO)).unwrap_err();
    assert_eq!(errno_of(&err), libc::ENOTSOCK);
    let err = linger(&file).unwrap_err();
    assert_eq!(errno_of(&err), libc::ENOTSOCK);
}

#[test]
fn abort_makes_peer_read_fail_with_reset() {
    let _w = Watchdog::new(
        "abort_makes_peer_read_fail_with_reset",
        Duration::from_secs(10),
    );
    let (mut client, mut server, _l) = tcp_pair_with_listener();
    client.write_all(b"hello").unwrap();
    let mut buf = [0u8; 16];
    server.read_exact(&mut buf[..5]).unwrap();
    abort(client).unwrap();
    let err = server.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    // After the reset has been reported, the connection reads as EOF.
    assert_eq!(server.read(&mut buf).unwrap(), 0);
}

#[test]
fn abort_keeps_already_received_data_readable_on_linux() {
    let _w = Watchdog::new(
        "abort_keeps_already_received_data_readable",
        Duration::from_secs(10),
    );
    let (client, mut server, _l) = tcp_pair_with_listener();
    (&client).write_all(&[7u8; 1000]).unwrap();
    thread::sleep(Duration::from_millis(50));
    abort(client).unwrap();
    thread::sleep(Duration::from_millis(50));
    // Measured on Linux: the RST does not purge the peer's receive queue; data that had
    // already arrived is read first, then the reset is reported.
    let mut buf = [0u8; 2000];
    let first = server.read(&mut buf);
    let second = server.read(&mut buf);
    eprintln!("after abort with 1000 bytes in flight: {first:?}, then {second:?}");
    if cfg!(target_os = "linux") {
        assert_eq!(first.unwrap(), 1000);
        assert_eq!(second.unwrap_err().kind(), ErrorKind::ConnectionReset);
    } else {
        assert!(first.is_err() || second.is_err());
    }
}

#[test]
fn normal_close_gives_eof() {
    let _w = Watchdog::new("normal_close_gives_eof", Duration::from_secs(10));
    let (client, mut server, _l) = tcp_pair_with_listener();
    drop(client);
    let mut buf = [0u8; 16];
    assert_eq!(server.read(&mut buf).unwrap(), 0);
}

#[test]
fn linger_none_then_close_gives_eof() {
    let _w = Watchdog::new("linger_none_then_close_gives_eof", Duration::from_secs(10));
    let (client, mut server, _l) = tcp_pair_with_listener();
    set_linger(&client, Some(Duration::ZERO)).unwrap();
    set_linger(&client, None).unwrap();
    drop(client);
    let mut buf = [0u8; 16];
    assert_eq!(server.read(&mut buf).unwrap(), 0);
}

#[test]
fn abort_on_non_socket_closes_fd_and_returns_error() {
    for (name, fd) in [
        ("file", OwnedFd::from(File::open("/dev/null").unwrap())),
        ("pipe", {
            let (r, _w) = common::fds::cloexec_pipe();
            r
        }),
    ] {
        let fd = to_high_fd(fd, 400);
        let raw = fd.as_raw_fd();
        assert!(!is_closed(raw));
        let err = abort(fd).unwrap_err();
        assert_eq!(errno_of(&err), libc::ENOTSOCK, "{name}");
        assert!(is_closed(raw), "{name}: abort leaked descriptor {raw}");
    }
}

#[test]
fn abort_closes_socket_fd() {
    let (client, _server, _l) = tcp_pair_with_listener();
    let fd = to_high_fd(OwnedFd::from(client), 450);
    let raw = fd.as_raw_fd();
    abort(fd).unwrap();
    assert!(is_closed(raw));
}

/// Closes a listener that has one queued, never-accepted connection, either with
/// `abort` or with a plain close, and returns what the client's read gives.
fn close_listener_with_pending(use_abort: bool) -> io::Result<usize> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    // The handshake is complete: the connection sits in the accept queue.
    thread::sleep(Duration::from_millis(20));
    if use_abort {
        abort(listener).unwrap();
    } else {
        drop(listener);
    }
    client.read(&mut [0u8; 16])
}

#[test]
fn closing_listener_resets_queued_connections_with_or_without_linger() {
    let _w = Watchdog::new(
        "closing_listener_resets_queued_connections",
        Duration::from_secs(15),
    );
    // Measured on Linux: a queued connection is reset when its listener is closed,
    // whether or not SO_LINGER {1, 0} was set first.
    let with_abort = close_listener_with_pending(true);
    let plain = close_listener_with_pending(false);
    eprintln!("listener abort: {with_abort:?}; listener plain close: {plain:?}");
    assert_eq!(with_abort.unwrap_err().kind(), ErrorKind::ConnectionReset);
    assert_eq!(plain.unwrap_err().kind(), ErrorKind::ConnectionReset);
}

#[test]
fn abort_on_listener_does_not_touch_accepted_connections() {
    let _w = Watchdog::new(
        "abort_on_listener_does_not_touch_accepted",
        Duration::from_secs(10),
    );
    let (mut client, mut server, listener) = tcp_pair_with_listener();
    abort(listener).unwrap();
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    drop(server);
    assert_eq!(client.read(&mut buf).unwrap(), 0);
}

fn set_int_opt(fd: RawFd, level: i32, opt: i32, value: i32) {
    // SAFETY: `value` is a live int and its size is passed; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", io::Error::last_os_error());
}

/// A connection whose `sender` has unsent data queued because the peer does not read:
/// both buffers are small and full. Returns (sender, receiver, bytes queued).
fn stuffed_pair() -> (TcpStream, TcpStream, usize) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let receiver = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    // Small buffers set before accept are inherited by the accepted socket's sizes only
    // in part, so set them on both sockets after the connection is made.
    let (sender, _) = listener.accept().unwrap();
    set_int_opt(
        receiver.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_RCVBUF,
        4096,
    );
    set_int_opt(sender.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, 4096);
    sender.set_nonblocking(true).unwrap();
    let chunk = [0x5au8; 4096];
    let mut queued = 0usize;
    let start = Instant::now();
    // Fill until the sender would block, and stays so for a moment.
    let mut idle_since = None;
    loop {
        match (&sender).write(&chunk) {
            Ok(n) => {
                queued += n;
                idle_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(100) {
                    break;
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("filling: {e}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "buffers never filled"
        );
    }
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    (sender, receiver, queued)
}

/// Reads until EOF or an error; returns the byte count and how it ended.
fn drain(mut s: &TcpStream) -> (usize, io::Result<()>) {
    let mut total = 0;
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (total, Ok(())),
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (total, Err(e)),
        }
    }
}

/// Closes `sender` in another thread with a raw `close(2)`; returns how long it took
/// and what it returned.
fn timed_close(sender: TcpStream) -> (Duration, io::Result<()>) {
    let fd = sender.into_raw_fd();
    let t = thread::spawn(move || {
        let start = Instant::now();
        // SAFETY: `fd` came from `into_raw_fd`, so we own it and close it exactly once.
        let rc = unsafe { libc::close(fd) };
        let result = if rc == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        };
        (start.elapsed(), result)
    });
    t.join().unwrap()
}

#[test]
fn lingering_close_blocks_until_timeout_on_blocking_socket() {
    let _w = Watchdog::new("lingering_close_blocks", Duration::from_secs(15));
    let (sender, receiver, queued) = stuffed_pair();
    sender.set_nonblocking(false).unwrap();
    set_linger(&sender, Some(Duration::from_secs(1))).unwrap();
    let (took, closed) = timed_close(sender);
    let (got, end) = drain(&receiver);
    eprintln!(
        "blocking lingering close took {took:?} and gave {closed:?}; queued {queued}, peer read {got} then {end:?}"
    );
    if cfg!(target_os = "linux") {
        // Measured: Linux reports success when the linger timeout expires (BSD kernels
        // fail with EWOULDBLOCK and drop the data).
        closed.unwrap();
    }
    assert!(took >= Duration::from_millis(900), "close took {took:?}");
    assert!(took < Duration::from_secs(5), "close took {took:?}");
    // Measured on Linux: the data is not discarded when the timeout expires; the
    // orphaned socket delivers it and a FIN once the peer reads.
    assert_eq!(got, queued);
    assert!(end.is_ok(), "{end:?}");
}

#[test]
fn lingering_close_blocks_on_nonblocking_socket_too_on_linux() {
    let _w = Watchdog::new("lingering_close_nonblocking", Duration::from_secs(15));
    let (sender, receiver, queued) = stuffed_pair();
    assert!(queued > 0);
    set_linger(&sender, Some(Duration::from_secs(1))).unwrap();
    let (took, closed) = timed_close(sender);
    let (got, end) = drain(&receiver);
    eprintln!(
        "nonblocking lingering close took {took:?} and gave {closed:?}; queued {queued}, peer read {got} then {end:?}"
    );
    if cfg!(target_os = "linux") {
        assert!(took >= Duration::from_millis(900), "close took {took:?}");
    }
    assert!(took < Duration::from_secs(5), "close took {took:?}");
}

#[test]
fn lingering_close_returns_early_when_data_is_acknowledged() {
    let _w = Watchdog::new("lingering_close_returns_early", Duration::from_secs(15));
    let (sender, receiver, queued) = stuffed_pair();
    sender.set_nonblocking(false).unwrap();
    set_linger(&sender, Some(Duration::from_secs(6))).unwrap();
    let reader = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        drain(&receiver)
    });
    let (took, closed) = timed_close(sender);
    closed.unwrap();
    let (got, end) = reader.join().unwrap();
    eprintln!("lingering close with reading peer took {took:?}; peer read {got} then {end:?}");
    assert!(took >= Duration::from_millis(250), "close took {took:?}");
    assert!(took < Duration::from_secs(5), "close took {took:?}");
    assert_eq!(got, queued);
    assert!(end.is_ok());
}

#[test]
fn abort_with_unsent_data_is_immediate_and_resets() {
    let _w = Watchdog::new("abort_with_unsent_data", Duration::from_secs(15));
    let (sender, receiver, queued) = stuffed_pair();
    sender.set_nonblocking(false).unwrap();
    let start = Instant::now();
    abort(sender).unwrap();
    let took = start.elapsed();
    let (got, end) = drain(&receiver);
    eprintln!("abort took {took:?}; queued {queued}, peer read {got} then {end:?}");
    assert!(took < Duration::from_millis(500), "abort took {took:?}");
    assert_eq!(end.unwrap_err().kind(), ErrorKind::ConnectionReset);
    assert!(got < queued);
}

#[test]
fn abort_after_shutdown_still_resets() {
    let _w = Watchdog::new("abort_after_shutdown_still_resets", Duration::from_secs(10));
    let (client, mut server, _l) = tcp_pair_with_listener();
    client.shutdown(Shutdown::Write).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(server.read(&mut buf).unwrap(), 0);
    // Half-closed: the server may still write to the client.
    server.write_all(b"still open").unwrap();
    abort(client).unwrap();
    thread::sleep(Duration::from_millis(50));
    // The RST reaches a peer that already saw the FIN: reads keep returning EOF, but
    // its very first write now fails (Linux reports EPIPE for a reset in CLOSE_WAIT;
    // after a plain close the first write would succeed and only provoke the RST).
    assert_eq!(server.read(&mut buf).unwrap(), 0);
    let err = server.write(b"x").unwrap_err();
    eprintln!("write after FIN then RST: {err:?}");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
        ),
        "{err:?}"
    );
}

#[test]
fn plain_close_after_shutdown_lets_first_write_succeed() {
    let _w = Watchdog::new("plain_close_after_shutdown", Duration::from_secs(10));
    let (client, mut server, _l) = tcp_pair_with_listener();
    client.shutdown(Shutdown::Write).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(server.read(&mut buf).unwrap(), 0);
    drop(client);
    thread::sleep(Duration::from_millis(50));
    // The control for the test above: without the RST the first write is accepted.
    assert_eq!(server.write(b"x").unwrap(), 1);
}

#[test]
fn negative_kernel_value_is_reported_without_panic() {
    let (client, _server, _l) = tcp_pair_with_listener();
    let raw = libc::linger {
        l_onoff: 1,
        l_linger: -1,
    };
    // SAFETY: `raw` is a live struct linger and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    let got = linger(&client).unwrap();
    eprintln!("l_linger -1 reads back as {got:?}");
    if cfg!(target_os = "linux") {
        // Measured: Linux hands the negative value back unchanged.
        assert_eq!(got, Some(Duration::MAX));
    } else {
        assert!(got.is_some());
    }
    // Reset before the close so the test does not linger.
    set_linger(&client, None).unwrap();
}
