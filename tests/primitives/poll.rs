//! Integration tests of `unp_select::poll` on real descriptors (pipes, socketpairs,
//! TCP on 127.0.0.1). Every blocking call has a timeout and every test a watchdog.
//! The timeouts (zero, none, huge) are tested on `select` and `poll` alike, in
//! select.rs.

use crate::common;

use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::fds::{dup_at_least, pipe, write_later};
use common::signals::{assert_keeps_the_deadline, under_signals};
use common::Watchdog;
use unp_select::poll::{poll, poll_restarting, PollFd, PollFlags};

// ---- helpers ------------------------------------------------------------------------------

const READ: PollFlags = PollFlags::POLLIN;

// ---- tests ------------------------------------------------------------------------------

#[test]
fn pipe_readable_only_after_write() {
    let _w = Watchdog::secs("pipe_readable_only_after_write", 10);
    let (r, mut w) = pipe();
    let mut fds = [PollFd::new(r.as_raw_fd(), READ | PollFlags::POLLRDNORM)];

    let start = Instant::now();
    assert_eq!(poll(&mut fds, Some(Duration::from_millis(100))).unwrap(), 0);
    let waited = start.elapsed();
    assert!(fds[0].revents().is_empty(), "{:?}", fds[0]);
    assert!(
        waited >= Duration::from_millis(95),
        "returned early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(2),
        "waited far too long: {waited:?}"
    );

    w.write_all(b"x").unwrap();
    assert_eq!(poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
    assert!(fds[0].revents().contains(READ), "{:?}", fds[0]);
    assert!(!fds[0]
        .revents()
        .intersects(PollFlags::POLLERR | PollFlags::POLLNVAL));
    eprintln!("note: readable pipe revents: {:?}", fds[0].revents());
    // events is left as it was.
    assert_eq!(fds[0].events(), READ | PollFlags::POLLRDNORM);
}

#[test]
fn hangup_on_pipe_when_writer_closes() {
    let _w = Watchdog::secs("hangup_on_pipe_when_writer_closes", 10);
    let (r, w) = pipe();
    drop(w);
    let mut fds = [PollFd::new(r.as_raw_fd(), READ)];
    assert_eq!(poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
    assert!(
        fds[0].revents().contains(PollFlags::POLLHUP),
        "{:?}",
        fds[0]
    );
}

#[test]
fn socketpair_writable() {
    let _w = Watchdog::secs("socketpair_writable", 10);
    let (a, _b) = UnixStream::pair().unwrap();
    let mut fds = [PollFd::new(a.as_raw_fd(), READ | PollFlags::POLLOUT)];
    assert_eq!(poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
    assert!(
        fds[0].revents().contains(PollFlags::POLLOUT),
        "{:?}",
        fds[0]
    );
    assert!(!fds[0].revents().contains(READ), "{:?}", fds[0]);
}

#[test]
fn tcp_listener_readable_when_client_connects() {
    let _w = Watchdog::secs("tcp_listener_readable_when_client_connects", 10);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut fds = [PollFd::new(listener.as_raw_fd(), PollFlags::POLLRDNORM)];
    assert_eq!(poll(&mut fds, Some(Duration::ZERO)).unwrap(), 0);

    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    assert_eq!(poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
    assert!(
        fds[0].revents().contains(PollFlags::POLLRDNORM),
        "{:?}",
        fds[0]
    );
    let (_conn, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
}

#[test]
fn negative_fd_is_ignored() {
    let _w = Watchdog::secs("negative_fd_is_ignored", 10);
    let (r, mut w) = pipe();
    w.write_all(b"x").unwrap();
    let mut fds = [
        PollFd::new(-1, READ),
        PollFd::new(r.as_raw_fd(), READ),
        PollFd::new(i32::MIN, READ | PollFlags::POLLOUT),
    ];
    assert_eq!(poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
    assert!(fds[0].revents().is_empty());
    assert!(fds[1].revents().contains(READ));
    assert!(fds[2].revents().is_empty());
}

#[test]
fn closed_fd_gives_pollnval() {
    let _w = Watchdog::secs("closed_fd_gives_pollnval", 10);
    let (r, _w) = pipe();
    // Keep one open above so the number is inside the descriptor table; 500..=599 is
    // used by no other test, so no other thread reuses the closed number.
    let _keep = dup_at_least(&r, 550);
    let closed = dup_at_least(&r, 500).as_raw_fd(); // dropped: closed at once
    let mut fds = [
        PollFd::new(closed, READ),
        PollFd::new(r.as_raw_fd(), READ),
        PollFd::new(i32::MAX, READ),
    ];
    assert_eq!(poll(&mut fds, Some(Duration::ZERO)).unwrap(), 2);
    assert_eq!(fds[0].revents(), PollFlags::POLLNVAL);
    assert!(fds[1].revents().is_empty());
    assert_eq!(fds[2].revents(), PollFlags::POLLNVAL);
}

#[test]
fn empty_array_just_sleeps() {
    let _w = Watchdog::secs("empty_array_just_sleeps", 10);
    let start = Instant::now();
    assert_eq!(poll(&mut [], Some(Duration::from_millis(50))).unwrap(), 0);
    assert!(
        start.elapsed() >= Duration::from_millis(45),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn tiny_timeout_is_rounded_up_not_down() {
    let _w = Watchdog::secs("tiny_timeout_is_rounded_up_not_down", 10);
    let (r, _w) = pipe();
    let mut fds = [PollFd::new(r.as_raw_fd(), READ)];
    let start = Instant::now();
    assert_eq!(poll(&mut fds, Some(Duration::from_micros(1))).unwrap(), 0);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_micros(900),
        "1 µs became a busy poll: {waited:?}"
    );
    assert!(waited < Duration::from_secs(1), "{waited:?}");
}

#[test]
fn signal_interrupts_poll_with_eintr() {
    let _w = Watchdog::secs("signal_interrupts_poll_with_eintr", 15);
    let (r, _w) = pipe();
    let fd = r.as_raw_fd();
    let s = under_signals(Duration::from_millis(20), move || {
        poll(&mut [PollFd::new(fd, READ)], Some(Duration::from_secs(5)))
    });
    let (res, waited, handled) = (s.out, s.took, s.handled);
    let err = res.expect_err("poll should be interrupted");
    assert_eq!(err.kind(), ErrorKind::Interrupted);
    assert_eq!(err.raw_os_error(), Some(libc::EINTR));
    assert!(handled >= 1);
    assert!(waited < Duration::from_secs(4), "{waited:?}");
}

#[test]
fn poll_restarting_keeps_the_deadline_across_signals() {
    let _w = Watchdog::secs("poll_restarting_keeps_the_deadline_across_signals", 15);
    let (r, _w) = pipe();
    let fd = r.as_raw_fd();
    assert_keeps_the_deadline(move |t| poll_restarting(&mut [PollFd::new(fd, READ)], Some(t)));
}

#[test]
fn poll_restarting_reports_readiness_after_signals() {
    let _w = Watchdog::secs("poll_restarting_reports_readiness_after_signals", 15);
    let (r, w) = pipe();
    let fd = r.as_raw_fd();
    let writer = write_later(w, Duration::from_millis(150));
    let s = under_signals(Duration::from_millis(10), move || {
        let mut fds = [PollFd::new(fd, READ)];
        let res = poll_restarting(&mut fds, Some(Duration::from_secs(5)));
        (res, fds[0].revents())
    });
    let ((res, revents), handled) = (s.out, s.handled);
    assert_eq!(res.unwrap(), 1);
    assert!(revents.contains(READ));
    assert!(handled >= 3, "only {handled} signals handled");
    drop(writer.join().unwrap());
}

#[test]
fn from_fd_takes_a_borrowed_descriptor() {
    let _w = Watchdog::secs("from_fd_takes_a_borrowed_descriptor", 10);
    let (r, mut w) = pipe();
    let mut fds = [
        PollFd::from_fd(&r, READ),
        PollFd::from_fd(&w as &dyn AsFd, PollFlags::POLLOUT),
    ];
    assert_eq!(fds[0], PollFd::new(r.as_raw_fd(), READ));
    assert_eq!(poll(&mut fds, Some(Duration::ZERO)).unwrap(), 1);
    assert!(fds[0].revents().is_empty());
    assert!(fds[1].revents().contains(PollFlags::POLLOUT));
    w.write_all(b"x").unwrap();
    assert_eq!(poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 2);
    assert!(fds[0].revents().contains(READ));
}

/// The I/O-safety section's last case: a number closed while still in the array, then
/// reused, answers for whatever has it now.
#[test]
fn a_reused_number_reports_the_new_descriptor() {
    let _w = Watchdog::secs("a_reused_number_reports_the_new_descriptor", 10);
    // 900..=949 is used by no other test, so the lowest free number there is reused.
    let (idle, _idle_w) = pipe();
    let old = dup_at_least(&idle, 900);
    let mut fds = [PollFd::from_fd(&old, READ)];
    let number = old.as_raw_fd();
    drop(old); // closed while still in the array: the caller's bug
    let (r, mut w) = pipe();
    w.write_all(b"x").unwrap();
    let new = dup_at_least(&r, 900);
    assert_eq!(new.as_raw_fd(), number, "the number was not reused");
    assert_eq!(poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
    assert!(
        fds[0].revents().contains(READ),
        "the new pipe, readable, answered"
    );
}

#[test]
fn poll_flags_are_nix_flags() {
    // Re-exported, not a look-alike: values pass between the two crates as they are.
    let ours: unp_select::PollFlags = unp_select::poll::PollFlags::POLLRDNORM;
    let theirs: nix::poll::PollFlags = ours;
    assert_eq!(theirs.bits(), libc::POLLRDNORM);
    let fd = PollFd::new(-1, nix::poll::PollFlags::POLLOUT);
    assert_eq!(fd.events(), PollFlags::POLLOUT);
}

/// The module docs' `PollFlags` section: on Linux `POLLRDNORM`/`POLLWRNORM` are not
/// `POLLIN`/`POLLOUT` ("equivalent" in nix's descriptions); the kernel reports them
/// together, but `revents` only holds the bits that were asked for.
#[test]
#[cfg(target_os = "linux")]
fn linux_reports_only_the_normal_flags_asked_for() {
    let _w = Watchdog::secs("linux_reports_only_the_normal_flags_asked_for", 10);
    let (mut peer, sock) = UnixStream::pair().unwrap();
    peer.write_all(b"x").unwrap(); // `sock` is readable and writable
    let fd = sock.as_raw_fd();
    let (rd, wr) = (PollFlags::POLLRDNORM, PollFlags::POLLWRNORM);
    for (events, want) in [
        (PollFlags::POLLIN, PollFlags::POLLIN),
        (rd, rd),
        (PollFlags::POLLIN | rd, PollFlags::POLLIN | rd),
        (PollFlags::POLLOUT, PollFlags::POLLOUT),
        (wr, wr),
        (PollFlags::POLLOUT | wr, PollFlags::POLLOUT | wr),
    ] {
        let mut fds = [PollFd::new(fd, events)];
        assert_eq!(poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
        assert_eq!(fds[0].revents(), want, "asked for {events:?}");
    }
}
