//! Scenario 9. Bad input to the API.

use super::*;

/// A descriptor number that is certainly closed and inside the descriptor table.
fn closed_fd() -> RawFd {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    drop(a);
    fd
}

#[test]
fn s9_bad_input_fd_sets_and_select() {
    use unp_select::select::{select, select_large, FdSet, LargeFdSet, FD_SETSIZE};
    in_own_process(|| {
        let _dog = watchdog("bad input select");
        let base = open_fds();
        let mut set = FdSet::new();
        for fd in [
            -1,
            -2,
            i32::MIN,
            FD_SETSIZE as RawFd,
            FD_SETSIZE as RawFd + 1,
            i32::MAX,
        ] {
            let err = set.insert(fd).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "insert({fd})");
            assert!(!set.contains(fd), "contains({fd})");
            set.remove(fd); // no panic, no effect
        }
        assert!(set.is_empty());
        assert_eq!(set.highest(), None);

        let mut large = LargeFdSet::new();
        for fd in [-1, i32::MIN, i32::MAX] {
            let err = large.insert(fd).unwrap_err();
            assert_eq!(
                err.kind(),
                io::ErrorKind::InvalidInput,
                "large insert({fd})"
            );
            assert!(!large.contains(fd));
            large.remove(fd);
        }
        assert!(large.is_empty());

        // A closed descriptor inside the table: EBADF, from both select flavours.
        let closed = closed_fd();
        let mut rset = FdSet::new();
        rset.insert(closed).unwrap();
        let err = select(Some(&mut rset), None, None, Some(Duration::ZERO)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        let mut lrset = LargeFdSet::new();
        lrset.insert(closed).unwrap();
        let err = select_large(Some(&mut lrset), None, None, Some(Duration::ZERO)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));

        // Absurd timeouts: Duration::MAX with a ready descriptor returns at once.
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        (&a).write_all(b"x").unwrap();
        let mut rset = FdSet::new();
        rset.insert(b.as_raw_fd()).unwrap();
        let t = Instant::now();
        assert_eq!(
            select(Some(&mut rset), None, None, Some(Duration::MAX)).unwrap(),
            1
        );
        let mut lrset = LargeFdSet::new();
        lrset.insert(b.as_raw_fd()).unwrap();
        assert_eq!(
            select_large(Some(&mut lrset), None, None, Some(Duration::MAX)).unwrap(),
            1
        );
        assert!(t.elapsed() < Duration::from_secs(1));
        // Nothing to wait for and a tiny timeout: returns 0 without blocking.
        assert_eq!(
            select(None, None, None, Some(Duration::from_nanos(1))).unwrap(),
            0
        );
        drop((a, b));
        assert_eq!(open_fds(), base, "descriptors leaked");
    });
}

#[test]
fn s9_bad_input_poll() {
    use unp_select::poll::{poll, PollFd, PollFlags};
    in_own_process(|| {
        let _dog = watchdog("bad input poll");
        let base = open_fds();
        // Negative descriptors are ignored; closed and huge ones give POLLNVAL.
        let closed = closed_fd();
        let mut fds = [
            PollFd::new(-1, PollFlags::POLLIN),
            PollFd::new(i32::MIN, PollFlags::POLLIN),
            PollFd::new(closed, PollFlags::POLLIN),
            PollFd::new(i32::MAX, PollFlags::POLLIN),
        ];
        assert_eq!(poll(&mut fds, Some(Duration::ZERO)).unwrap(), 2);
        assert!(fds[0].revents().is_empty());
        assert!(fds[1].revents().is_empty());
        assert!(fds[2].revents().contains(PollFlags::POLLNVAL));
        assert!(fds[3].revents().contains(PollFlags::POLLNVAL));
        // Duration::MAX is clamped, not an error, and returns at once when ready.
        let t = Instant::now();
        assert_eq!(poll(&mut fds, Some(Duration::MAX)).unwrap(), 2);
        assert!(t.elapsed() < Duration::from_secs(1));
        // An empty array with a tiny timeout sleeps (rounded up to 1 ms) and returns 0.
        assert_eq!(poll(&mut [], Some(Duration::from_nanos(1))).unwrap(), 0);
        assert_eq!(open_fds(), base, "descriptors leaked");
    });
}

#[test]
fn s9_bad_input_buffers_and_sockets() {
    use unp_select::{readline::LineReader, readn::readn, writen::try_writen, writen::writen};
    in_own_process(|| {
        let _dog = watchdog("bad input buffers");
        let base = open_fds();
        let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        // Zero-length buffers: readn refuses (a 0 result would look like EOF, as its
        // docs say); the writers do nothing and succeed. Nothing is lost either way.
        let err = readn(&mut b, &mut []).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        writen(&a, &[]).unwrap();
        assert_eq!(try_writen(&a, &[]).unwrap(), 0);
        a.write_all(b"kept\n").unwrap();
        let mut r = LineReader::with_capacity(0, &mut b);
        // A max_line of 0 is refused and the limit stays what it was.
        let before = r.max_line();
        assert_eq!(
            r.set_max_line(0).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(r.max_line(), before);
        let mut line = Vec::new();
        assert_eq!(r.readline(&mut line).unwrap(), 5);
        assert_eq!(line, b"kept\n");
        drop(r);

        // SO_LINGER that does not fit the kernel's int seconds.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let err = unp_select::linger::set_linger(&c, Some(Duration::MAX)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(unp_select::linger::linger(&c).unwrap(), None, "unchanged");
        // Not a socket: ENOTSOCK, and abort still closes the descriptor.
        let file = std::fs::File::open("/dev/null").unwrap();
        let err = unp_select::linger::linger(&file).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
        let err = unp_select::linger::abort(file).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
        // accept on a socket that is not listening: a fatal error, not a panic.
        let (accepted, _) = listener.accept().unwrap();
        let not_listening = TcpListener::from(std::os::fd::OwnedFd::from(accepted));
        let err = unp_select::accept::accept(&not_listening).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        drop((a, b, c, listener, not_listening));
        assert_eq!(open_fds(), base, "descriptors leaked");
    });
}

#[test]
fn s9_bad_config_is_invalid_input() {
    in_own_process(|| {
        let _dog = watchdog("bad config");
        let base = open_fds();
        for bad in [
            Config::book().with_max_line(0),
            Config::book().with_max_clients(0),
        ] {
            let err = EchoServer::bind("127.0.0.1:0", Echo::Bytes, bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        // A write_timeout of zero is accepted: an echo the kernel does not take at once
        // closes the client (documented policy); others are unaffected.
        for variant in Variant::ALL {
            let s = Server::start(
                Echo::Bytes,
                Config::book()
                    .with_write_timeout(Duration::ZERO)
                    .with_max_clients(1)
                    .with_max_line(1),
                variant,
            );
            // max_line 1: every byte is echoed as its own piece.
            probe(s.addr).expect("serves with max_line 1");
            let (stats, _) = s.finish();
            assert_eq!(stats.messages_sent, 22, "{stats:?}");
        }
        assert_eq!(settle_fds(base, Duration::from_secs(5)), base);
    });
}

/// Runs `config` on `variant`'s loop and checks that the server either refuses it up
/// front with `InvalidInput` or runs and serves without panicking (also once a
/// client stalls).
fn absurd_config_is_handled(config: Config, stall_a_client: bool, variant: Variant) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = match EchoServer::new(listener, Echo::Bytes, config.clone()) {
        Err(e) => {
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
            return;
        }
        Ok(server) => server,
    };
    let addr = server.local_addr().unwrap();
    let stop = server.shutdown_handle();
    let thread = thread::spawn(move || variant.run(server));
    let mut hog = None;
    if stall_a_client {
        // Make the server's echoes to this client block (it never reads).
        let h = connect_high(addr).unwrap();
        h.set_nonblocking(true).unwrap();
        let chunk = [b'z'; 65536];
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(500) {
            let _ = (&h).write(&chunk);
        }
        hog = Some(h);
    }
    let served = probe(addr);
    stop.shutdown();
    let joined = thread.join();
    drop(hog);
    assert!(
        joined.is_ok(),
        "{}: the server thread panicked with {config:?}",
        variant.name()
    );
    served.expect("still serving");
    joined.unwrap().expect("run returns Ok");
}

#[test]
fn s9_write_timeout_duration_max_does_not_panic() {
    run_scenario(&Variant::ALL, |variant| {
        let _dog = watchdog("write_timeout MAX");
        let config = Config::book().with_write_timeout(Duration::MAX);
        absurd_config_is_handled(config, true, variant);
    });
}

#[test]
fn s9_max_clients_usize_max_does_not_panic() {
    run_scenario(&Variant::ALL, |variant| {
        let _dog = watchdog("max_clients MAX");
        let config = Config::book().with_max_clients(usize::MAX);
        absurd_config_is_handled(config, false, variant);
    });
}

#[test]
fn s9_max_line_usize_max_does_not_panic() {
    run_scenario(&Variant::ALL, |variant| {
        let _dog = watchdog("max_line MAX");
        let config = Config::book().with_max_line(usize::MAX);
        absurd_config_is_handled(config, false, variant);
    });
}
