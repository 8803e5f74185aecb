//! `accept::accept` on real loopback sockets: each outcome and its errno.

use crate::common;

use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::signals::{install_handler, signal_thread};
use common::Watchdog;
use nix::sys::signal::Signal;
use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
use unp_select::accept::{accept, accept_nonblocking, Accept, FdReserve};
use unp_select::poll::{poll, PollFd, PollFlags};

fn wait_readable(listener: &TcpListener) {
    let mut fds = [PollFd::new(listener.as_raw_fd(), PollFlags::POLLIN)];
    assert_eq!(poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
}

fn fd_flags(fd: i32) -> (i32, i32) {
    // SAFETY: F_GETFD/F_GETFL only read flags of a descriptor we own.
    unsafe {
        (
            libc::fcntl(fd, libc::F_GETFD),
            libc::fcntl(fd, libc::F_GETFL),
        )
    }
}

#[test]
fn empty_nonblocking_listener_is_not_now_with_eagain() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    match accept(&listener).unwrap() {
        Accept::NotNow(e) => {
            assert_eq!(e.raw_os_error(), Some(libc::EAGAIN));
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        }
        other => panic!("expected NotNow, got {other:?}"),
    }
}

#[test]
fn connection_is_cloexec_blocking_and_knows_its_peer() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    wait_readable(&listener);
    let Accept::Connection(stream, peer) = accept(&listener).unwrap() else {
        panic!("expected a connection");
    };
    assert_eq!(peer, Some(client.local_addr().unwrap()));
    assert_eq!(stream.peer_addr().unwrap(), client.local_addr().unwrap());
    let (fd_flags, fl_flags) = fd_flags(stream.as_raw_fd());
    assert_ne!(
        fd_flags & libc::FD_CLOEXEC,
        0,
        "accepted socket must be close-on-exec"
    );
    assert_eq!(
        fl_flags & libc::O_NONBLOCK,
        0,
        "accepted socket must be blocking"
    );
}

#[test]
fn works_over_ipv6_loopback() {
    let listener = TcpListener::bind("[::1]:0")
        .unwrap_or_else(|e| panic!("this test needs the IPv6 loopback [::1]: bind: {e}"));
    listener.set_nonblocking(true).unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    wait_readable(&listener);
    let Accept::Connection(_, peer) = accept(&listener).unwrap() else {
        panic!("expected a connection");
    };
    assert_eq!(peer, Some(client.local_addr().unwrap()));
}

/// Linux keeps a connection reset before accept in the queue (measured here): accept
/// returns it and the first read reports ECONNRESET, the next EOF.
#[cfg(target_os = "linux")]
#[test]
fn reset_before_accept_is_still_accepted_on_linux() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    wait_readable(&listener);
    unp_select::linger::abort(client).unwrap();
    thread::sleep(Duration::from_millis(50));
    let Accept::Connection(mut stream, _peer) = accept(&listener).unwrap() else {
        panic!("Linux returned no connection for the reset one");
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 16];
    let err = stream.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(stream.read(&mut buf).unwrap(), 0);
    assert_eq!(
        stream.peer_addr().unwrap_err().raw_os_error(),
        Some(libc::ENOTCONN)
    );
}

#[test]
fn a_socket_that_does_not_listen_is_fatal() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let connected = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let not_listening = TcpListener::from(OwnedFd::from(connected));
    let err = accept(&not_listening).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
}

#[test]
fn a_non_socket_is_fatal() {
    let file = std::fs::File::open("/dev/null").unwrap();
    let not_a_socket = TcpListener::from(OwnedFd::from(file));
    let err = accept(&not_a_socket).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
}

#[test]
fn a_signal_during_a_blocking_accept_is_not_now_with_eintr() {
    let _dog = Watchdog::new("accept EINTR", Duration::from_secs(20));
    // No SA_RESTART: accept must fail with EINTR.
    install_handler();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let blocked = thread::spawn(move || {
        let outcome = accept(&listener);
        flag.store(true, Ordering::SeqCst);
        outcome
    });
    while !done.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(20));
        signal_thread(&blocked, Signal::SIGUSR1);
    }
    match blocked.join().unwrap().unwrap() {
        Accept::NotNow(e) => assert_eq!(e.raw_os_error(), Some(libc::EINTR)),
        other => panic!("expected NotNow(EINTR), got {other:?}"),
    }
}

#[test]
fn reserve_sheds_with_a_reset_and_rearms() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut reserve = FdReserve::new().unwrap();
    assert!(!reserve.shed(&listener).unwrap(), "nothing to shed yet");
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    wait_readable(&listener);
    assert!(reserve.shed(&listener).unwrap());
    assert!(reserve.is_armed());
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let err = client.read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}

/// A Unix-domain listener (UNP chapter 15): the same sorting, a `UnixStream` back
/// with its flags set as for TCP, and the client's address, unnamed or bound.
#[test]
fn a_unix_listener_gives_a_unix_stream_and_its_peer() {
    let _dog = Watchdog::new("accept on a Unix listener", Duration::from_secs(20));
    let dir = std::env::temp_dir().join(format!("unp-select-accept-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("listener");
    let listener = UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    match accept(&listener).unwrap() {
        Accept::NotNow(e) => assert_eq!(e.raw_os_error(), Some(libc::EAGAIN)),
        other => panic!("expected NotNow(EAGAIN), got {other:?}"),
    }

    // Unnamed: the client did not bind. A nonblocking connection, whatever the
    // listener's O_NONBLOCK.
    let mut unnamed = UnixStream::connect(&path).unwrap();
    let Accept::Connection(mut stream, peer) = accept_nonblocking(&listener).unwrap() else {
        panic!("expected a connection");
    };
    assert!(peer.expect("the peer's address").is_unnamed());
    let (fd_flags, fl_flags) = fd_flags(stream.as_raw_fd());
    assert_ne!(fd_flags & libc::FD_CLOEXEC, 0, "must be close-on-exec");
    assert_ne!(fl_flags & libc::O_NONBLOCK, 0, "must be nonblocking");
    io::Write::write_all(&mut unnamed, b"unix").unwrap();
    let mut fds = [PollFd::from_fd(&stream, PollFlags::POLLIN)];
    assert_eq!(poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
    let mut buf = [0u8; 8];
    assert_eq!(stream.read(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"unix");

    // Bound to a path: accept reports it.
    let client_path = dir.join("client");
    let named = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::empty(), // no SOCK_CLOEXEC on Apple; this test spawns nothing
        None,
    )
    .unwrap();
    bind(named.as_raw_fd(), &UnixAddr::new(&client_path).unwrap()).unwrap();
    connect(named.as_raw_fd(), &UnixAddr::new(&path).unwrap()).unwrap();
    let Accept::Connection(stream, peer) = accept(&listener).unwrap() else {
        panic!("expected a connection");
    };
    let _: UnixStream = stream;
    assert_eq!(peer.unwrap().as_pathname(), Some(client_path.as_path()));
    std::fs::remove_dir_all(&dir).unwrap();
}
