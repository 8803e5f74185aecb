//! Integration tests of `unp_select::sources` (keyed readiness and the waker) on real
//! descriptors: pipes, socket pairs and TCP on 127.0.0.1. Every test runs on every
//! backend unless it is about one backend's limits, every wait has a timeout (or a
//! waker that ends it) and every test a watchdog.
//!
//! Descriptor numbers it reserves (see `main.rs`): 700..=799 (closed descriptors
//! inside the table), 800..=899 (closed and reused descriptors on epoll and kqueue),
//! 2000.. (descriptors above `FD_SETSIZE`). Signals: `SIGUSR1` is the counting
//! handler of `common::signals` (EINTR tests), `SIGUSR2` the handler that calls
//! [`Waker::wake`] (the two would replace each other if they shared a signal).

use crate::common;

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::fds::{dup_at_least, pipe, raise_nofile, tcp_pair, write_later};
use common::fresh::in_fresh_process;
use common::signals::{signal_thread, under_signals};
use common::sources::{assert_quiet, assert_ready, backends, timed_wait, wait, SOON};
use common::Watchdog;
use nix::errno::Errno;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use unp_select::sources::{Backend, Events, Interest, Readiness, Sources, Waker};
use unp_select::FD_SETSIZE;

// ---- helpers ----------------------------------------------------------------------------

/// A copy of `fd` numbered exactly `at`: a number just closed, taken again.
fn dup_at(fd: &impl AsRawFd, at: RawFd) -> OwnedFd {
    let again = dup_at_least(fd, at);
    assert_eq!(again.as_raw_fd(), at, "the number was taken meanwhile");
    again
}

/// The start of the epoll tests of a closed number: a watchdog, and `"old"`, a copy
/// of a socket numbered from `at_least` up, registered on epoll and closed while the
/// socket keeps the file open. Returns (watchdog, sources, socket, its peer, number).
fn epoll_with_closed_old(
    name: &'static str,
    at_least: RawFd,
) -> (
    Watchdog,
    Sources<&'static str>,
    UnixStream,
    UnixStream,
    RawFd,
) {
    let w = Watchdog::new(name, Duration::from_secs(30));
    assert!(Backend::Epoll.is_supported(), "{NEEDS_EPOLL}");
    raise_nofile(4096);
    let (a, a_peer) = UnixStream::pair().unwrap();
    let old = dup_at_least(&a, at_least);
    let fd = old.as_raw_fd();
    let mut sources = Sources::new(Backend::Epoll);
    sources.register("old", &old, Interest::READ).unwrap();
    drop(old);
    (w, sources, a, a_peer, fd)
}

/// The backends whose kernel keeps the list of sources: epoll or kqueue.
fn queue_backends() -> Vec<Backend> {
    [Backend::Epoll, Backend::Kqueue]
        .into_iter()
        .filter(|b| b.is_supported())
        .collect()
}

// ---- keys, interests, registration ----------------------------------------------------------

#[test]
fn readable_and_writable_under_the_right_key() {
    let _w = Watchdog::new(
        "readable_and_writable_under_the_right_key",
        Duration::from_secs(20),
    );
    for backend in backends() {
        let (a, mut a_peer) = UnixStream::pair().unwrap();
        let (b, _b_peer) = UnixStream::pair().unwrap();
        let (r, mut w) = pipe();
        let mut sources = Sources::new(backend);
        sources.register("a", &a, Interest::READ).unwrap();
        sources.register("b", &b, Interest::READ).unwrap();
        sources.register("pipe", &r, Interest::READ).unwrap();
        assert_eq!(sources.len(), 3);
        assert_quiet(&mut sources, Duration::from_millis(20), "nothing written");

        a_peer.write_all(b"x").unwrap();
        assert_ready(&mut sources, &[("a", Readiness::READABLE)]);
        w.write_all(b"y").unwrap();
        assert_ready(
            &mut sources,
            &[("a", Readiness::READABLE), ("pipe", Readiness::READABLE)],
        );

        // A socket pair always has room: writable, under its own key only.
        sources.set_interest(&b, Interest::WRITE).unwrap();
        assert_ready(
            &mut sources,
            &[
                ("a", Readiness::READABLE),
                ("b", Readiness::WRITABLE),
                ("pipe", Readiness::READABLE),
            ],
        );
        assert_eq!(sources.key(&a), Some(&"a"));
        assert_eq!(sources.key(&b), Some(&"b"));
        assert_eq!(sources.key(&w), None);
    }
}

#[test]
fn interest_none_write_and_both() {
    let _w = Watchdog::new("interest_none_write_and_both", Duration::from_secs(20));
    for backend in backends() {
        let (a, mut peer) = UnixStream::pair().unwrap();
        peer.write_all(b"pending").unwrap(); // `a` is readable, and writable
        let mut sources = Sources::new(backend);
        sources.register(7u32, &a, Interest::NONE).unwrap();
        assert_quiet(&mut sources, Duration::from_millis(20), "NONE");

        sources.set_interest(&a, Interest::WRITE).unwrap();
        assert_eq!(
            wait(&mut sources, Some(SOON)),
            [(7, Readiness::WRITABLE)],
            "{backend:?}: WRITE must not report the pending data"
        );

        sources.set_interest(&a, Interest::READ).unwrap();
        assert_ready(&mut sources, &[(7, Readiness::READABLE)]);

        // BOTH: one event with both flags, select included (it is in two sets there),
        // and a write-only source numbered above it is still reported.
        sources.set_interest(&a, Interest::BOTH).unwrap();
        let (c, _c_peer) = UnixStream::pair().unwrap();
        // Numbered above `a` even if another test thread closed a lower number.
        let c = dup_at_least(&c, a.as_raw_fd() + 1);
        assert!(c.as_raw_fd() > a.as_raw_fd());
        sources.register(9, &c, Interest::WRITE).unwrap();
        assert_ready(
            &mut sources,
            &[
                (7, Readiness::READABLE | Readiness::WRITABLE),
                (9, Readiness::WRITABLE),
            ],
        );
        assert_eq!(sources.unregister(&c), Some(9));

        // NONE again: nothing, not even the hang-up of a closed peer (a pollfd with
        // events = 0 would still get POLLHUP).
        sources.set_interest(&a, Interest::NONE).unwrap();
        drop(peer);
        assert_quiet(&mut sources, Duration::from_millis(20), "NONE, peer closed");

        // The same with a pipe whose writer closed: poll's POLLHUP is never asked for.
        let (r, w) = pipe();
        sources.register(8, &r, Interest::NONE).unwrap();
        drop(w);
        assert_quiet(
            &mut sources,
            Duration::from_millis(20),
            "NONE, pipe hung up",
        );
        // …and it is there as soon as it is asked for.
        sources.set_interest(&r, Interest::READ).unwrap();
        let ready = wait(&mut sources, Some(SOON));
        assert_eq!(ready.len(), 1, "{backend:?}: {ready:?}");
        assert_eq!(ready[0].0, 8);
        assert!(ready[0].1.is_read_closed(), "{backend:?}: {ready:?}");
    }
}

#[test]
fn unregister_returns_the_key_and_stops_reporting() {
    let _w = Watchdog::new(
        "unregister_returns_the_key_and_stops_reporting",
        Duration::from_secs(20),
    );
    for backend in backends() {
        // Four writable sockets; removing the first moves the last into its slot on
        // poll: the moved one must keep its key and its interest changes.
        let pairs: Vec<_> = (0..4).map(|_| UnixStream::pair().unwrap()).collect();
        let mut sources = Sources::new(backend);
        for (i, (s, _)) in pairs.iter().enumerate() {
            sources.register(i, s, Interest::WRITE).unwrap();
        }
        let w = Readiness::WRITABLE;
        assert_ready(&mut sources, &[(0, w), (1, w), (2, w), (3, w)]);

        assert_eq!(sources.unregister(&pairs[0].0), Some(0), "{backend:?}");
        assert_eq!(sources.len(), 3);
        assert_eq!(sources.key(&pairs[0].0), None);
        assert_eq!(sources.unregister(&pairs[0].0), None, "{backend:?}: twice");
        assert_ready(&mut sources, &[(1, w), (2, w), (3, w)]);

        // The moved source (3 on poll) is still found by its descriptor.
        sources.set_interest(&pairs[3].0, Interest::NONE).unwrap();
        assert_ready(&mut sources, &[(1, w), (2, w)]);
        assert_eq!(sources.unregister(&pairs[3].0), Some(3), "{backend:?}");
        assert_eq!(sources.unregister(&pairs[1].0), Some(1), "{backend:?}");
        assert_ready(&mut sources, &[(2, w)]);
        assert_eq!(sources.unregister(&pairs[2].0), Some(2), "{backend:?}");
        assert!(sources.is_empty());
        assert_quiet(&mut sources, Duration::from_millis(20), "all unregistered");

        // A removed descriptor can be registered again, under a new key.
        sources.register(10, &pairs[0].0, Interest::WRITE).unwrap();
        assert_ready(&mut sources, &[(10, w)]);
    }
}

#[test]
fn double_register_and_unknown_descriptors_are_errors() {
    let _w = Watchdog::new(
        "double_register_and_unknown_descriptors_are_errors",
        Duration::from_secs(20),
    );
    for backend in backends() {
        let (a, mut peer) = UnixStream::pair().unwrap();
        let (unknown, _) = UnixStream::pair().unwrap();
        peer.write_all(b"x").unwrap();
        let mut sources = Sources::new(backend);
        sources.register("first", &a, Interest::READ).unwrap();

        let err = sources.register("second", &a, Interest::WRITE).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{backend:?}: {err}");
        // Nothing changed: same key, same interest (READ, not WRITE).
        assert_eq!(sources.len(), 1);
        assert_eq!(sources.key(&a), Some(&"first"));
        assert_ready(&mut sources, &[("first", Readiness::READABLE)]);

        let err = sources.set_interest(&unknown, Interest::READ).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{backend:?}: {err}");
        assert_eq!(sources.unregister(&unknown), None);
        assert_eq!(sources.key(&unknown), None);
        assert_eq!(sources.len(), 1);
        assert_ready(&mut sources, &[("first", Readiness::READABLE)]);
    }
}

// ---- closed descriptors ---------------------------------------------------------------------

#[test]
fn closed_descriptor_is_reported_invalid_once() {
    let _w = Watchdog::new(
        "closed_descriptor_is_reported_invalid_once",
        Duration::from_secs(30),
    );
    let (r, mut w) = pipe();
    // Held open above the victims, so their numbers stay inside the descriptor table
    // (700..=799 is this module's; other tests take the lowest free numbers).
    let keep = dup_at_least(&r, 760);
    // epoll and kqueue cannot see a close: closed_descriptor_on_epoll_and_kqueue.
    let backends = [Backend::Select, Backend::LargeSelect, Backend::Poll];
    for (i, backend) in backends.into_iter().enumerate() {
        let (idle, _idle_w) = pipe();
        let victim = dup_at_least(&r, 700 + 10 * i as RawFd);
        let fd = victim.as_raw_fd();
        assert!(fd < keep.as_raw_fd());
        let mut sources = Sources::new(backend);
        sources.register("idle", &idle, Interest::READ).unwrap();
        // In select's read and write sets: reported once all the same.
        sources.register("victim", &victim, Interest::BOTH).unwrap();
        drop(victim); // closed behind the Sources' back

        let (ready, took) = timed_wait(&mut sources, Some(SOON));
        assert_eq!(ready, [("victim", Readiness::INVALID)], "{backend:?}");
        assert!(ready[0].1.is_invalid());
        assert!(took < Duration::from_secs(2), "{backend:?}: {took:?}");

        // Not again: the next wait sleeps its whole timeout and returns 0.
        assert_quiet(&mut sources, Duration::from_millis(50), "reported already");
        assert_eq!(sources.len(), 2, "{backend:?}: still registered");

        // The number opened again (another pipe read end, with data): still not
        // watched until its interest is set again…
        let again = dup_at(&r, fd);
        w.write_all(b"x").unwrap();
        assert_eq!(sources.key(&again), Some(&"victim"));
        assert_quiet(
            &mut sources,
            Duration::from_millis(50),
            "before set_interest",
        );
        // …then it is.
        sources.set_interest(&again, Interest::READ).unwrap();
        assert_ready(&mut sources, &[("victim", Readiness::READABLE)]);
        let mut byte = [0u8; 1];
        (&r).read_exact(&mut byte).unwrap();

        // Closed a second time: found again.
        drop(again);
        assert_ready(&mut sources, &[("victim", Readiness::INVALID)]);
        assert_quiet(&mut sources, Duration::from_millis(20), "reported already");
    }
}

// ---- hang-up and reset ----------------------------------------------------------------------

#[test]
fn pipe_hangup_is_read_closed_on_every_backend() {
    let _w = Watchdog::new(
        "pipe_hangup_is_read_closed_on_every_backend",
        Duration::from_secs(20),
    );
    for backend in backends() {
        let (r, w) = pipe();
        let mut sources = Sources::new(backend);
        sources.register((), &r, Interest::READ).unwrap();
        drop(w);
        let ready = wait(&mut sources, Some(SOON));
        assert_eq!(ready.len(), 1, "{backend:?}: {ready:?}");
        let readiness = ready[0].1;
        eprintln!("note: {backend:?}, pipe writer closed: {readiness:?}");
        // What each backend reports (the module's table):
        match backend {
            // select: the read set, nothing else to say.
            Backend::Select | Backend::LargeSelect => {
                assert_eq!(readiness, Readiness::READABLE, "{backend:?}")
            }
            // poll on Linux: POLLHUP alone, no POLLIN (there is no data).
            _ if cfg!(target_os = "linux") => {
                assert_eq!(readiness, Readiness::HANGUP, "{backend:?}")
            }
            _ => assert!(readiness.is_hangup(), "{backend:?}: {readiness:?}"),
        }
        // The test that means the same everywhere.
        assert!(readiness.is_read_closed(), "{backend:?}: {readiness:?}");
        assert_eq!((&r).read(&mut [0u8; 1]).unwrap(), 0, "end of file");
    }
}

#[test]
fn socket_eof_is_readable_on_every_backend() {
    let _w = Watchdog::new(
        "socket_eof_is_readable_on_every_backend",
        Duration::from_secs(20),
    );
    for backend in backends() {
        let (client, server) = tcp_pair();
        let mut sources = Sources::new(backend);
        sources.register(1, &server, Interest::READ).unwrap();
        drop(client); // FIN
        let ready = wait(&mut sources, Some(SOON));
        assert_eq!(ready.len(), 1, "{backend:?}: {ready:?}");
        let readiness = ready[0].1;
        eprintln!("note: {backend:?}, TCP peer closed: {readiness:?}");
        assert!(readiness.is_readable(), "{backend:?}: {readiness:?}");
        assert!(readiness.is_read_closed());
        assert_eq!((&server).read(&mut [0u8; 1]).unwrap(), 0, "end of file");
    }
}

#[test]
fn tcp_reset_is_read_closed_on_every_backend() {
    let _w = Watchdog::new(
        "tcp_reset_is_read_closed_on_every_backend",
        Duration::from_secs(20),
    );
    for backend in backends() {
        let (client, server) = tcp_pair();
        let mut sources = Sources::new(backend);
        sources.register(1, &server, Interest::READ).unwrap();
        assert_quiet(&mut sources, Duration::from_millis(10), "before the reset");
        unp_select::linger::abort(client).unwrap(); // SO_LINGER {on, 0}: RST
        let ready = wait(&mut sources, Some(SOON));
        assert_eq!(ready.len(), 1, "{backend:?}: {ready:?}");
        let readiness = ready[0].1;
        eprintln!("note: {backend:?}, TCP peer reset: {readiness:?}");
        match backend {
            // select: readable (the read returns the error).
            Backend::Select | Backend::LargeSelect => {
                assert_eq!(readiness, Readiness::READABLE, "{backend:?}")
            }
            // poll: POLLERR and/or POLLHUP (Linux: POLLIN | POLLERR | POLLHUP).
            _ => assert!(
                readiness.is_error() || readiness.is_hangup(),
                "{backend:?}: {readiness:?}"
            ),
        }
        assert!(readiness.is_read_closed(), "{backend:?}: {readiness:?}");
        // It really was a reset.
        let err = (&server).read(&mut [0u8; 1]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{backend:?}: {err}");
    }
}

// ---- descriptors >= FD_SETSIZE --------------------------------------------------------------

#[test]
fn descriptors_above_fd_setsize() {
    let _w = Watchdog::new("descriptors_above_fd_setsize", Duration::from_secs(20));
    let limit = raise_nofile(4096);
    assert!(
        limit > 2100,
        "this test needs descriptors above 2000: raise the RLIMIT_NOFILE hard limit to \
         4096 or more (ulimit -Hn); the soft limit is {limit}"
    );
    let (r, mut w) = pipe();
    let (idle, _idle_w) = pipe();
    let high = dup_at_least(&r, 2000);
    let high_sock = UnixStream::pair().unwrap();
    let high_writable = dup_at_least(&high_sock.0, 2001);
    assert!(high.as_raw_fd() as usize >= FD_SETSIZE);
    w.write_all(b"x").unwrap();

    // UNP's fd_set cannot hold it: refused, whatever the interest, and nothing kept.
    let mut sources = Sources::new(Backend::Select);
    for interest in [Interest::READ, Interest::WRITE, Interest::NONE] {
        let err = sources.register("high", &high, interest).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{interest:?}: {err}");
        assert!(
            err.to_string().contains("use Backend::LargeSelect"),
            "{err}"
        );
        assert!(sources.is_empty());
        assert_eq!(sources.key(&high), None);
    }
    let err = sources.set_interest(&high, Interest::READ).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    sources.register("idle", &idle, Interest::READ).unwrap();
    assert_quiet(&mut sources, Duration::from_millis(20), "high refused");

    for backend in backends().into_iter().filter(|&b| b != Backend::Select) {
        let mut sources = Sources::new(backend);
        sources.register("idle", &idle, Interest::READ).unwrap();
        sources.register("high", &high, Interest::READ).unwrap();
        sources
            .register("high writable", &high_writable, Interest::WRITE)
            .unwrap();
        assert_ready(
            &mut sources,
            &[
                ("high", Readiness::READABLE),
                ("high writable", Readiness::WRITABLE),
            ],
        );
        assert_eq!(sources.unregister(&high), Some("high"));
        assert_ready(&mut sources, &[("high writable", Readiness::WRITABLE)]);
    }
}

// ---- the waker --------------------------------------------------------------------------------

#[test]
fn waker_from_another_thread_ends_a_wait_without_timeout() {
    let _w = Watchdog::new(
        "waker_from_another_thread_ends_a_wait_without_timeout",
        Duration::from_secs(20),
    );
    for backend in backends() {
        let waker = Arc::new(Waker::new().unwrap());
        let (idle, _idle_w) = pipe();
        let mut sources = Sources::new(backend);
        sources.register("idle", &idle, Interest::READ).unwrap();
        sources.register("waker", &*waker, Interest::READ).unwrap();
        assert_eq!(sources.key(&*waker), Some(&"waker"));

        let remote = Arc::clone(&waker);
        let delay = Duration::from_millis(100);
        // Timed from before the thread starts: on a busy machine the wait itself may
        // start after the wake.
        let start = Instant::now();
        let thread = thread::spawn(move || {
            thread::sleep(delay);
            remote.wake()
        });
        let ready = wait(&mut sources, None);
        let took = start.elapsed();
        thread.join().unwrap().unwrap();
        assert_eq!(ready, [("waker", Readiness::READABLE)], "{backend:?}");
        assert!(
            took >= delay,
            "{backend:?}: woke after {took:?}, before the wake"
        );

        waker.reset().unwrap();
        assert_quiet(&mut sources, Duration::from_millis(20), "after reset");
    }
}

#[test]
fn many_wakes_do_not_block_and_one_reset_clears_them() {
    let _w = Watchdog::new(
        "many_wakes_do_not_block_and_one_reset_clears_them",
        Duration::from_secs(20),
    );
    for backend in backends() {
        let waker = Waker::new().unwrap();
        let mut sources = Sources::new(backend);
        sources.register(0u8, &waker, Interest::READ).unwrap();
        // Far more than the socket holds: the later ones find it full (EAGAIN).
        for _ in 0..100_000 {
            waker.wake().unwrap();
        }
        for _ in 0..3 {
            // Still readable until it is reset: not consumed by a wait.
            assert_eq!(
                wait(&mut sources, Some(Duration::ZERO)),
                [(0, Readiness::READABLE)],
                "{backend:?}"
            );
        }
        waker.reset().unwrap();
        assert_quiet(&mut sources, Duration::from_millis(20), "after one reset");
        // And it wakes again after the reset.
        waker.wake().unwrap();
        assert_ready(&mut sources, &[(0, Readiness::READABLE)]);
        waker.reset().unwrap();
    }
}

/// The waker the `SIGUSR2` handler wakes.
static WAKER: OnceLock<Waker> = OnceLock::new();
/// Runs of the `SIGUSR2` handler.
static WAKER_HANDLED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn wake_from_handler(_: libc::c_int) {
    WAKER_HANDLED.fetch_add(1, Ordering::SeqCst);
    if let Some(waker) = WAKER.get() {
        let _ = waker.wake();
    }
}

#[test]
fn waker_from_a_signal_handler() {
    let _w = Watchdog::new("waker_from_a_signal_handler", Duration::from_secs(30));
    let waker = WAKER.get_or_init(|| Waker::new().unwrap());
    let sa = SigAction::new(
        SigHandler::Handler(wake_from_handler),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler touches an atomic and an initialised OnceLock (an atomic
    // load), and calls Waker::wake, which is async-signal-safe (one send(2)).
    unsafe { sigaction(Signal::SIGUSR2, &sa) }.expect("sigaction");

    for backend in backends() {
        // A wait with no timeout in another thread, ended by the handler only: the
        // EINTR it also gets is restarted by `wait`.
        let (ready_tx, ready_rx) = mpsc::channel();
        let waiter = thread::spawn(move || {
            let (idle, _idle_w) = pipe();
            let mut sources = Sources::new(backend);
            sources.register("idle", &idle, Interest::READ).unwrap();
            sources.register("waker", waker, Interest::READ).unwrap();
            ready_tx.send(()).unwrap();
            wait(&mut sources, None)
        });
        ready_rx.recv().unwrap();
        thread::sleep(Duration::from_millis(50)); // most likely inside the wait by now
        let before = WAKER_HANDLED.load(Ordering::SeqCst);
        assert_eq!(signal_thread(&waiter, Signal::SIGUSR2), 0);
        let ready = waiter.join().unwrap();
        assert_eq!(ready, [("waker", Readiness::READABLE)], "{backend:?}");
        assert!(WAKER_HANDLED.load(Ordering::SeqCst) > before);
        waker.reset().unwrap();
    }

    // errno survives the handler. The socket is filled first, so that the handler's
    // send(2) fails with EAGAIN (setting errno) and `wake` has to restore it.
    for _ in 0..100_000 {
        waker.wake().unwrap();
    }
    let before = WAKER_HANDLED.load(Ordering::SeqCst);
    Errno::set_raw(libc::EDOM);
    // SAFETY: raise(3) with a valid signal number; the handler runs on this thread
    // before raise returns.
    let rc = unsafe { libc::raise(libc::SIGUSR2) };
    let errno = Errno::last_raw();
    assert_eq!(rc, 0);
    assert_eq!(
        WAKER_HANDLED.load(Ordering::SeqCst),
        before + 1,
        "handler ran"
    );
    assert_eq!(
        errno,
        libc::EDOM,
        "errno changed by the handler: {}",
        Errno::from_raw(errno)
    );
    waker.reset().unwrap();
}

// ---- timeouts -------------------------------------------------------------------------------

#[test]
fn timeouts_round_up_and_never_spin() {
    let _w = Watchdog::new("timeouts_round_up_and_never_spin", Duration::from_secs(30));
    for backend in backends() {
        let (idle, _idle_w) = pipe();
        let (writable, _peer) = UnixStream::pair().unwrap();
        let mut sources = Sources::new(backend);
        sources.register("idle", &idle, Interest::READ).unwrap();
        // poll's and epoll's unit is the millisecond, select's the microsecond,
        // kqueue's (a timespec) the nanosecond.
        let unit = match backend {
            Backend::Poll | Backend::Epoll => Duration::from_millis(1),
            Backend::Kqueue => Duration::from_nanos(1),
            _ => Duration::from_micros(1),
        };

        // Zero polls: returns at once, with or without something ready.
        let (ready, took) = timed_wait(&mut sources, Some(Duration::ZERO));
        assert!(
            ready.is_empty() && took < Duration::from_millis(500),
            "{took:?}"
        );

        // Timeouts below the unit are rounded up to it, never down to a zero poll.
        for tiny in [Duration::from_nanos(1), Duration::from_micros(1)] {
            let start = Instant::now();
            for _ in 0..100 {
                let (ready, took) = timed_wait(&mut sources, Some(tiny));
                assert!(ready.is_empty(), "{backend:?}");
                assert!(took >= unit, "{backend:?}: {tiny:?} took {took:?}");
            }
            let total = start.elapsed();
            assert!(
                total >= unit * 100,
                "{backend:?}: 100 × {tiny:?} took {total:?}"
            );
            eprintln!("note: {backend:?}: 100 waits of {tiny:?} took {total:?}");
        }

        // 1.5 ms: at least that (poll: 2 ms), and not far more.
        let t = Duration::from_micros(1500);
        let (ready, took) = timed_wait(&mut sources, Some(t));
        assert!(ready.is_empty());
        let at_least = match backend {
            Backend::Poll | Backend::Epoll => Duration::from_millis(2),
            _ => t,
        };
        assert!(took >= at_least, "{backend:?}: {took:?}");
        assert!(took < Duration::from_secs(1), "{backend:?}: {took:?}");

        // Zero with a ready source reports it.
        sources
            .register("writable", &writable, Interest::WRITE)
            .unwrap();
        assert_eq!(
            wait(&mut sources, Some(Duration::ZERO)),
            [("writable", Readiness::WRITABLE)],
            "{backend:?}"
        );
        // A timeout too large for the call is clamped, not an error (EINVAL) nor
        // a wrapped-around short one: with a ready source it returns at once.
        for huge in [
            Duration::MAX,
            Duration::from_secs(u64::from(u32::MAX) * 1000),
        ] {
            let (ready, took) = timed_wait(&mut sources, Some(huge));
            assert_eq!(ready, [("writable", Readiness::WRITABLE)], "{backend:?}");
            assert!(took < Duration::from_secs(2), "{backend:?}: {took:?}");
        }
        // …and with nothing ready it waits (a wake from a thread ends it).
        sources.set_interest(&writable, Interest::NONE).unwrap();
        let waker = Arc::new(Waker::new().unwrap());
        sources.register("waker", &*waker, Interest::READ).unwrap();
        let remote = Arc::clone(&waker);
        let delay = Duration::from_millis(50);
        // Timed from before the thread starts: on a busy machine the wait itself may
        // start after the wake.
        let start = Instant::now();
        let thread = thread::spawn(move || {
            thread::sleep(delay);
            remote.wake()
        });
        let ready = wait(&mut sources, Some(Duration::MAX));
        let took = start.elapsed();
        thread.join().unwrap().unwrap();
        assert_eq!(ready, [("waker", Readiness::READABLE)], "{backend:?}");
        assert!(
            took >= delay,
            "{backend:?}: Duration::MAX returned after {took:?}"
        );
    }
}

// ---- EINTR ------------------------------------------------------------------------------------

#[test]
fn wait_resumes_after_signals_with_the_time_left() {
    let _w = Watchdog::new(
        "wait_resumes_after_signals_with_the_time_left",
        Duration::from_secs(30),
    );
    for backend in backends() {
        let timeout = Duration::from_millis(300);
        let s = under_signals(Duration::from_millis(15), move || {
            let (idle, _idle_w) = pipe();
            let mut sources = Sources::new(backend);
            sources.register((), &idle, Interest::READ).unwrap();
            timed_wait(&mut sources, Some(timeout))
        });
        let ((ready, took), handled, sent) = (s.out, s.handled, s.sent);
        assert!(ready.is_empty(), "{backend:?}: {ready:?}");
        assert!(sent >= 10, "{backend:?}: only {sent} signals sent");
        assert!(handled >= 5, "{backend:?}: only {handled} signals handled");
        assert!(took >= timeout, "{backend:?}: returned early: {took:?}");
        assert!(
            took < Duration::from_millis(900),
            "{backend:?}: restarted with the full timeout? {took:?}"
        );
    }
}

#[test]
fn wait_reports_readiness_after_signals() {
    let _w = Watchdog::new(
        "wait_reports_readiness_after_signals",
        Duration::from_secs(30),
    );
    for backend in backends() {
        let (r, w) = pipe();
        let writer = write_later(w, Duration::from_millis(150));
        let s = under_signals(Duration::from_millis(15), move || {
            let mut sources = Sources::new(backend);
            sources.register("pipe", &r, Interest::READ).unwrap();
            wait(&mut sources, Some(SOON))
        });
        let (ready, handled) = (s.out, s.handled);
        let _w = writer.join().unwrap();
        assert_eq!(ready, [("pipe", Readiness::READABLE)], "{backend:?}");
        assert!(handled >= 2, "{backend:?}: only {handled} signals handled");
    }
}

#[test]
fn wait_interruptible_returns_interrupted() {
    let _w = Watchdog::new(
        "wait_interruptible_returns_interrupted",
        Duration::from_secs(30),
    );
    for backend in backends() {
        let s = under_signals(Duration::from_millis(20), move || {
            let (idle, _idle_w) = pipe();
            let mut sources = Sources::new(backend);
            sources.register((), &idle, Interest::READ).unwrap();
            let mut events = Events::new();
            let start = Instant::now();
            let res = sources.wait_interruptible(&mut events, Some(SOON));
            (res, start.elapsed(), events.len())
        });
        let ((res, took, events), handled) = (s.out, s.handled);
        let err = res.expect_err("the signal should interrupt the wait");
        assert_eq!(err.kind(), ErrorKind::Interrupted, "{backend:?}: {err}");
        assert!(
            handled >= 1,
            "{backend:?}: the handler never ran in the waiter"
        );
        assert!(took < Duration::from_secs(4), "{backend:?}: {took:?}");
        assert_eq!(events, 0);
    }
}

#[test]
fn sources_and_readiness_debug() {
    // The Debug output names keys by descriptor and flags by name.
    let (a, _b) = UnixStream::pair().unwrap();
    let mut sources = Sources::new(Backend::Poll);
    sources.register("a", &a, Interest::BOTH).unwrap();
    let shown = format!("{sources:?}");
    assert!(
        shown.contains(&a.as_fd().as_raw_fd().to_string()) && shown.contains("BOTH"),
        "{shown}"
    );
    assert_eq!(
        format!("{:?}", Readiness::READABLE | Readiness::HANGUP),
        "READABLE | HANGUP"
    );
    assert_eq!(format!("{:?}", Readiness::EMPTY), "EMPTY");
}

// ---- epoll and kqueue: the kernel keeps the list ------------------------------------------

/// Where epoll is Linux's and Android's only.
const NEEDS_EPOLL: &str = "epoll is Linux's and Android's";

#[test]
fn unsupported_backends_say_so() {
    let _w = Watchdog::new("unsupported_backends_say_so", Duration::from_secs(20));
    let missing: Vec<Backend> = [Backend::Epoll, Backend::Kqueue]
        .into_iter()
        .filter(|b| !b.is_supported())
        .collect();
    // Never both, never neither on the platforms the crate targets with a queue.
    assert_eq!(missing.len(), 1, "{missing:?}");
    for backend in missing {
        let err = Sources::<u8>::try_new(backend).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{backend:?}: {err}");
        // `new` cannot fail: the first register and wait say it, and keep nothing.
        let (a, _b) = UnixStream::pair().unwrap();
        let mut sources = Sources::new(backend);
        assert_eq!(sources.backend(), backend);
        let err = sources.register(1u8, &a, Interest::READ).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{backend:?}: {err}");
        assert!(sources.is_empty());
        assert_eq!(sources.key(&a), None);
        let mut events = Events::new();
        let err = sources.wait(&mut events, Some(SOON)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{backend:?}: {err}");
    }
}

#[test]
fn closed_descriptor_on_epoll_and_kqueue() {
    let _w = Watchdog::new(
        "closed_descriptor_on_epoll_and_kqueue",
        Duration::from_secs(30),
    );
    raise_nofile(4096);
    for backend in queue_backends() {
        // The registered number is a dup of `a`, which stays open: epoll's
        // registration belongs to the open file description, which outlives the
        // close (epoll(7), Q6).
        let (a, mut a_peer) = UnixStream::pair().unwrap();
        let victim = dup_at_least(&a, 800);
        let fd = victim.as_raw_fd();
        let mut sources = Sources::new(backend);
        sources.register("victim", &victim, Interest::READ).unwrap();
        drop(victim); // closed behind the Sources' back

        // Neither kernel says anything of a close by itself.
        assert_quiet(&mut sources, Duration::from_millis(50), "closed, file idle");
        a_peer.write_all(b"x").unwrap(); // the file is readable through `a`
        match backend {
            // epoll reports the file; the number is closed: invalid, not readable.
            Backend::Epoll => {
                assert_ready(&mut sources, &[("victim", Readiness::INVALID)]);
                // Once: the file is still readable, but no longer watched.
                assert_quiet(&mut sources, Duration::from_millis(50), "reported already");
            }
            // kqueue dropped the registration with the close.
            _ => assert_quiet(&mut sources, Duration::from_millis(50), "kqueue forgot it"),
        }
        assert_eq!(sources.len(), 1, "{backend:?}: still registered");

        // The number opened again on the same file: watched again once asked.
        let again = dup_at(&a, fd);
        assert_eq!(sources.key(&again), Some(&"victim"));
        sources.set_interest(&again, Interest::NONE).unwrap();
        assert_quiet(&mut sources, Duration::from_millis(20), "NONE");
        sources.set_interest(&again, Interest::READ).unwrap();
        assert_ready(&mut sources, &[("victim", Readiness::READABLE)]);
        assert_eq!(sources.unregister(&again), Some("victim"));
        assert!(sources.is_empty());
        assert_quiet(&mut sources, Duration::from_millis(20), "unregistered");
    }
}

#[test]
fn number_reused_without_unregister_is_already_registered() {
    let _w = Watchdog::new(
        "number_reused_without_unregister_is_already_registered",
        Duration::from_secs(30),
    );
    raise_nofile(4096);
    for backend in backends() {
        // No other descriptor holds the old file: every kernel forgets it.
        let (old_src, mut old_peer) = UnixStream::pair().unwrap();
        let old = dup_at_least(&old_src, 820);
        let fd = old.as_raw_fd();
        drop(old_src);
        let mut sources = Sources::new(backend);
        sources.register("old", &old, Interest::READ).unwrap();
        drop(old);
        let _ = old_peer.write_all(b"to nobody"); // EPIPE, or into a closed socket

        let (new_src, mut new_peer) = UnixStream::pair().unwrap();
        let new = dup_at(&new_src, fd);
        drop(new_src);
        new_peer.write_all(b"y").unwrap();
        // As on every backend: the number is taken until unregistered.
        let err = sources.register("new", &new, Interest::READ).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{backend:?}: {err}");
        assert_eq!(sources.key(&new), Some(&"old"));
        let ready = wait(&mut sources, Some(Duration::from_millis(50)));
        match backend {
            // select and poll watch a number: the new descriptor's readiness comes
            // under the old key (the documented hazard of closing first).
            Backend::Select | Backend::LargeSelect | Backend::Poll => {
                assert_eq!(ready, [("old", Readiness::READABLE)], "{backend:?}")
            }
            // epoll and kqueue forgot the old file and were never told of the new.
            _ => assert!(ready.is_empty(), "{backend:?}: {ready:?}"),
        }
        assert_eq!(sources.unregister(&new), Some("old"));
        sources.register("new", &new, Interest::READ).unwrap();
        assert_ready(&mut sources, &[("new", Readiness::READABLE)]);
    }
}

/// A descriptor closed without `unregister` while a `dup` keeps its file open and
/// readable, its number reused: `remove` takes the source out by its key, and the
/// number can be registered again without the old file's readiness reaching anyone.
#[test]
fn remove_by_key_after_the_descriptor_is_lost() {
    let _w = Watchdog::new(
        "remove_by_key_after_the_descriptor_is_lost",
        Duration::from_secs(30),
    );
    raise_nofile(4096);
    for backend in backends() {
        let (old_file, mut old_peer) = UnixStream::pair().unwrap();
        let old = dup_at_least(&old_file, 880);
        let fd = old.as_raw_fd();
        let (other, mut other_peer) = UnixStream::pair().unwrap();
        let mut sources = Sources::new(backend);
        sources.register("old", &old, Interest::READ).unwrap();
        sources.register("other", &other, Interest::READ).unwrap();
        drop(old); // lost: closed, never unregistered
        old_peer.write_all(b"old").unwrap(); // the file lives on, readable

        let (new_src, mut new_peer) = UnixStream::pair().unwrap();
        let new = dup_at(&new_src, fd);
        drop(new_src);
        let err = sources.register("new", &new, Interest::READ).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{backend:?}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("descriptor {fd} ")) && msg.contains("remove the old key"),
            "{backend:?}: {msg}"
        );

        assert_eq!(sources.remove(&"missing"), None);
        assert_eq!(sources.remove(&"old"), Some(fd), "{backend:?}");
        assert_eq!(sources.remove(&"old"), None, "{backend:?}");
        assert_eq!((sources.len(), sources.key(&new)), (1, None));
        sources.register("new", &new, Interest::READ).unwrap();
        new_peer.write_all(b"new").unwrap();
        other_peer.write_all(b"other").unwrap();
        assert_ready(
            &mut sources,
            &[("new", Readiness::READABLE), ("other", Readiness::READABLE)],
        );
        // On a descriptor still open, remove is unregister by key.
        assert_eq!(sources.remove(&"other"), Some(other.as_raw_fd()));
        assert_ready(&mut sources, &[("new", Readiness::READABLE)]);
        drop(old_file);
    }
}

#[test]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    ignore = "epoll is Linux's and Android's"
)]
fn epoll_number_reused_while_the_old_file_lives() {
    // The old file stays open through `a` and is readable; its number is taken by
    // another socket, readable too. epoll still reports the old file under the
    // number: that must not reach the key as the new socket's readiness.
    let (_w, mut sources, a, mut a_peer, fd) =
        epoll_with_closed_old("epoll_number_reused_while_the_old_file_lives", 840);
    let (b, mut b_peer) = UnixStream::pair().unwrap();
    let reused = dup_at(&b, fd);
    a_peer.write_all(b"old").unwrap();
    b_peer.write_all(b"new").unwrap();

    assert_eq!(
        wait(&mut sources, Some(SOON)),
        [("old", Readiness::INVALID)],
        "another file under the number: invalid"
    );
    assert_quiet(&mut sources, Duration::from_millis(50), "reported already");
    let err = sources
        .register("new", &reused, Interest::READ)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(sources.unregister(&reused), Some("old"));
    sources.register("new", &reused, Interest::READ).unwrap();
    // The old file is still readable (through `a`) and is not reported.
    assert_ready(&mut sources, &[("new", Readiness::READABLE)]);
    drop(a);
}

#[test]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    ignore = "epoll is Linux's and Android's"
)]
fn epoll_unregister_after_close_while_the_file_lives() {
    // Closed first, unregistered after: EPOLL_CTL_DEL cannot reach the file through
    // a closed number, so the kernel keeps the registration (a dup lives). Its
    // events must reach no key (not the next registration of the number either)
    // and must not make the wait spin.
    let (_w, mut sources, a, mut a_peer, fd) =
        epoll_with_closed_old("epoll_unregister_after_close_while_the_file_lives", 860);
    // SAFETY: the number is closed; the borrow only hands it to `unregister`,
    // which does no I/O on it.
    let closed = unsafe { BorrowedFd::borrow_raw(fd) };
    assert_eq!(sources.unregister(&closed), Some("old"));

    let (b, mut b_peer) = UnixStream::pair().unwrap();
    let reused = dup_at(&b, fd);
    sources.register("new", &reused, Interest::READ).unwrap();
    a_peer.write_all(b"old").unwrap(); // the lingering registration fires
    let mut events = Events::new();
    let start = Instant::now();
    let n = sources
        .wait_interruptible(&mut events, Some(Duration::from_millis(100)))
        .unwrap();
    let took = start.elapsed();
    assert_eq!(n, 0, "{events:?}");
    assert!(
        took >= Duration::from_millis(100),
        "returned early: {took:?}"
    );
    assert_quiet(&mut sources, Duration::from_millis(50), "old file readable");

    b_peer.write_all(b"new").unwrap();
    assert_ready(&mut sources, &[("new", Readiness::READABLE)]);
    drop(a);
}

#[test]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    ignore = "epoll is Linux's and Android's"
)]
fn epoll_ctl_errors_come_back_and_change_nothing() {
    let _w = Watchdog::new(
        "epoll_ctl_errors_come_back_and_change_nothing",
        Duration::from_secs(20),
    );
    assert!(Backend::Epoll.is_supported(), "{NEEDS_EPOLL}");
    // epoll cannot watch a regular file: EPERM from epoll_ctl(2). ENOMEM and
    // ENOSPC (max_user_watches) come back the same way.
    let path = std::env::temp_dir().join(format!("unp-select-epoll-{}", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let (a, mut peer) = UnixStream::pair().unwrap();
    peer.write_all(b"x").unwrap();
    let mut sources = Sources::new(Backend::Epoll);
    sources.register("socket", &a, Interest::READ).unwrap();

    let err = sources.register("file", &file, Interest::READ).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    assert_eq!(sources.len(), 1);
    assert_eq!(sources.key(&file), None);

    // Registered for nothing, it is not in the kernel's list: the error comes when
    // it is watched, and the interest stays as it was.
    sources.register("file", &file, Interest::NONE).unwrap();
    let err = sources.set_interest(&file, Interest::READ).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    assert!(
        format!("{sources:?}").contains("(\"file\", NONE)"),
        "{sources:?}"
    );
    assert_ready(&mut sources, &[("socket", Readiness::READABLE)]);
    assert_eq!(sources.unregister(&file), Some("file"));
}

#[test]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    ignore = "epoll is Linux's and Android's"
)]
fn epoll_out_of_descriptors_at_the_first_register() {
    let _w = Watchdog::new(
        "epoll_out_of_descriptors_at_the_first_register",
        Duration::from_secs(30),
    );
    assert!(Backend::Epoll.is_supported(), "{NEEDS_EPOLL}");
    // The descriptor limit is the process's: lowered in a fresh copy of this binary.
    in_fresh_process(Duration::from_secs(25), || {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let (a, mut peer) = UnixStream::pair().unwrap();
        peer.write_all(b"x").unwrap();
        // Every number below the lowest free one is taken: a limit there is EMFILE.
        let lowest_free = a.try_clone().unwrap();
        let limit = lowest_free.as_raw_fd() as libc::rlim_t;
        drop(lowest_free);
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, limit, hard).unwrap();

        let err = Sources::<u8>::try_new(Backend::Epoll).unwrap_err();
        let mut sources = Sources::new(Backend::Epoll);
        let at_register = sources.register(1u8, &a, Interest::READ).unwrap_err();
        let mut events = Events::new();
        let at_wait = sources.wait(&mut events, Some(SOON)).unwrap_err();
        setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();

        for e in [&err, &at_register, &at_wait] {
            assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
        }
        assert!(sources.is_empty(), "nothing kept");
        // With a descriptor to spare, the same Sources works.
        sources.register(1u8, &a, Interest::READ).unwrap();
        assert_ready(&mut sources, &[(1, Readiness::READABLE)]);
    });
}

#[test]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    ignore = "epoll is Linux's and Android's"
)]
fn epoll_list_is_shared_with_a_fork_child() {
    let _w = Watchdog::new(
        "epoll_list_is_shared_with_a_fork_child",
        Duration::from_secs(30),
    );
    assert!(Backend::Epoll.is_supported(), "{NEEDS_EPOLL}");
    let (r, mut w) = pipe();
    let mut sources = Sources::new(Backend::Epoll);
    sources.register("pipe", &r, Interest::READ).unwrap();
    w.write_all(b"x").unwrap();

    /// Runs `child` in a forked child, which then exits; waits for it.
    fn in_child(sources: &mut Sources<&str>, child: impl FnOnce(&mut Sources<&str>)) {
        // SAFETY: the child only calls `child` (below: nothing, or
        // Sources::unregister, which makes one epoll_ctl(2) and allocates nothing)
        // and _exit(2): async-signal-safe, as a fork of a threaded process needs.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            child(sources);
            // SAFETY: ends the child at once, running no destructor or handler.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a live int.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(rc, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }

    // A child that exits closes its copy of the epoll descriptor: nothing changes.
    in_child(&mut sources, |_| {});
    assert_ready(&mut sources, &[("pipe", Readiness::READABLE)]);
    // A child that unregisters changes the list of both processes: one list.
    in_child(&mut sources, |sources| {
        let _ = sources.unregister(&r);
    });
    assert_quiet(
        &mut sources,
        Duration::from_millis(50),
        "unregistered by the child",
    );
    assert_eq!(
        sources.key(&r),
        Some(&"pipe"),
        "the parent's table is its own"
    );
    // Taken out and put in again, the parent watches it again.
    sources.set_interest(&r, Interest::NONE).unwrap();
    sources.set_interest(&r, Interest::READ).unwrap();
    assert_ready(&mut sources, &[("pipe", Readiness::READABLE)]);
}

#[test]
fn more_ready_sources_than_one_wait_takes() {
    let _w = Watchdog::new(
        "more_ready_sources_than_one_wait_takes",
        Duration::from_secs(60),
    );
    // 2200 descriptors would take the numbers other tests of this binary reserve.
    in_fresh_process(Duration::from_secs(55), || {
        let limit = raise_nofile(4096);
        assert!(
            limit > 2400,
            "this test needs 2400 descriptors: raise the RLIMIT_NOFILE hard limit to 4096 \
             or more (ulimit -Hn); the soft limit is {limit}"
        );
        // 1100 ready sources: more than epoll's and kqueue's 1024 events per wait. The
        // rest come with the next wait (the kernel hands ready ones out in turn).
        let pairs: Vec<_> = (0..1100).map(|_| UnixStream::pair().unwrap()).collect();
        for backend in backends().into_iter().filter(|&b| b != Backend::Select) {
            let mut sources = Sources::new(backend);
            for (i, (a, _)) in pairs.iter().enumerate() {
                sources.register(i, a, Interest::WRITE).unwrap();
            }
            let mut seen = vec![0u32; pairs.len()];
            let mut events = Events::new();
            for _ in 0..2 {
                sources.wait(&mut events, Some(SOON)).unwrap();
                assert!(events.len() <= pairs.len());
                for (&i, r) in &events {
                    assert_eq!(r, Readiness::WRITABLE, "{backend:?}");
                    seen[i] += 1;
                }
            }
            let missed = seen.iter().filter(|&&n| n == 0).count();
            assert_eq!(
                missed, 0,
                "{backend:?}: {missed} never reported in two waits"
            );
            assert!(
                seen.iter().all(|&n| n <= 2),
                "{backend:?}: one reported twice in a wait"
            );
        }
    });
}
