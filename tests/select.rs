//! Integration tests of `unp_select::select` on real descriptors (pipes, socketpairs,
//! TCP on 127.0.0.1). Every blocking call has a timeout and every test a watchdog.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::thread::JoinHandleExt;
use std::sync::{mpsc, Once};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use proptest::prelude::*;
use unp_select::select::{
    pselect, select, select_large, select_large_restarting, select_restarting, FdSet, LargeFdSet,
    FD_SETSIZE,
};

// ---- helpers ------------------------------------------------------------------------------

/// Aborts the whole test process if the guard is not dropped within `secs`.
struct Watchdog(#[allow(dead_code)] mpsc::Sender<()>);

fn watchdog(secs: u64, what: &'static str) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
            eprintln!("watchdog: {what} still running after {secs} s; aborting");
            std::process::abort();
        }
    });
    Watchdog(tx)
}

fn pipe() -> (File, File) {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    (File::from(r), File::from(w))
}

/// A duplicate of `fd` numbered `min` or higher.
fn dup_at_least(fd: &impl AsRawFd, min: RawFd) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC takes an int and returns a new descriptor or -1.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    assert!(n >= min, "F_DUPFD_CLOEXEC: {}", io::Error::last_os_error());
    // SAFETY: `n` is a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(n) }
}

fn read_set(fds: &[RawFd]) -> FdSet {
    let mut set = FdSet::new();
    for &fd in fds {
        set.insert(fd).unwrap();
    }
    set
}

thread_local! {
    // Const-initialised and Copy: touching it from a signal handler allocates nothing.
    static HITS: Cell<usize> = const { Cell::new(0) };
}

extern "C" fn on_sigusr1(_: libc::c_int) {
    HITS.with(|h| h.set(h.get() + 1));
}

/// Installs a SIGUSR1 handler that only counts, per thread, WITHOUT `SA_RESTART`.
fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let sa = SigAction::new(
            SigHandler::Handler(on_sigusr1),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only touches a const-initialised thread-local Cell.
        unsafe { sigaction(Signal::SIGUSR1, &sa) }.expect("sigaction");
    });
}

fn hits() -> usize {
    HITS.with(Cell::get)
}

/// Sends SIGUSR1 to the thread every `every` until it finishes (or for at most 5 s),
/// then joins it. Returns its result and the number of signals sent.
fn signal_until_finished<T>(handle: JoinHandle<T>, every: Duration) -> (T, usize) {
    let start = Instant::now();
    let mut sent = 0;
    while !handle.is_finished() && start.elapsed() < Duration::from_secs(5) {
        // SAFETY: the handle has not been joined, so its pthread_t is valid.
        let rc = unsafe { libc::pthread_kill(handle.as_pthread_t() as _, libc::SIGUSR1) };
        assert!(rc == 0 || rc == libc::ESRCH, "pthread_kill: {rc}");
        sent += 1;
        thread::sleep(every);
    }
    (handle.join().expect("thread panicked"), sent)
}

// ---- FdSet operations ----------------------------------------------------------------------

#[test]
fn out_of_range_fds_are_rejected_without_panic() {
    let mut set = FdSet::new();
    set.insert(3).unwrap();
    let before = set;
    for fd in [
        -1,
        -1000,
        i32::MIN,
        FD_SETSIZE as RawFd,
        FD_SETSIZE as RawFd + 1,
        i32::MAX,
    ] {
        let err = set.insert(fd).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "fd {fd}");
        assert!(err.to_string().contains(&fd.to_string()), "{err}");
        assert!(!set.contains(fd));
        set.remove(fd);
        assert_eq!(set, before, "fd {fd} changed the set");
    }
    set.insert(FD_SETSIZE as RawFd - 1).unwrap();
    assert_eq!(set.highest(), Some(FD_SETSIZE as RawFd - 1));
}

#[test]
fn large_set_bounds() {
    let mut set = LargeFdSet::new();
    for fd in [-1, i32::MIN, LargeFdSet::MAX_FD + 1, i32::MAX] {
        assert_eq!(set.insert(fd).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert!(!set.contains(fd));
        set.remove(fd);
    }
    assert!(set.is_empty());
    set.insert(LargeFdSet::MAX_FD).unwrap();
    assert_eq!(set.highest(), Some(LargeFdSet::MAX_FD));
    assert_eq!(set.len(), 1);
    set.clear();
    assert!(set.is_empty());
    assert_eq!(set, LargeFdSet::new());
}

#[test]
fn debug_prints_a_set() {
    let set = read_set(&[5, 1, 900]);
    assert_eq!(format!("{set:?}"), "{1, 5, 900}");
    let large = LargeFdSet::from(&set);
    assert_eq!(format!("{large:?}"), "{1, 5, 900}");
}

#[derive(Clone, Debug)]
enum Op {
    Insert(RawFd),
    Remove(RawFd),
    Contains(RawFd),
    Clear,
}

fn fd_strategy(max: RawFd) -> impl Strategy<Value = RawFd> {
    prop_oneof![
        8 => 0..max,
        1 => -5..0,
        1 => (max - 3)..(max + 3),
        1 => Just(i32::MAX),
        1 => Just(i32::MIN),
    ]
}

fn op_strategy(max: RawFd) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => fd_strategy(max).prop_map(Op::Insert),
        3 => fd_strategy(max).prop_map(Op::Remove),
        3 => fd_strategy(max).prop_map(Op::Contains),
        1 => Just(Op::Clear),
    ]
}

proptest! {
    #[test]
    fn fd_set_behaves_like_btreeset(ops in prop::collection::vec(op_strategy(FD_SETSIZE as RawFd), 0..200)) {
        let mut set = FdSet::new();
        let mut model = BTreeSet::new();
        let in_range = |fd: RawFd| (0..FD_SETSIZE as RawFd).contains(&fd);
        for op in ops {
            match op {
                Op::Insert(fd) => {
                    let r = set.insert(fd);
                    prop_assert_eq!(r.is_ok(), in_range(fd));
                    if let Err(e) = r {
                        prop_assert_eq!(e.kind(), ErrorKind::InvalidInput);
                    } else {
                        model.insert(fd);
                    }
                }
                Op::Remove(fd) => {
                    set.remove(fd);
                    model.remove(&fd);
                }
                Op::Contains(fd) => prop_assert_eq!(set.contains(fd), model.contains(&fd)),
                Op::Clear => {
                    set.clear();
                    model.clear();
                }
            }
            prop_assert_eq!(set.iter().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(set.len(), model.len());
            prop_assert_eq!(set.is_empty(), model.is_empty());
            prop_assert_eq!(set.highest(), model.last().copied());
            prop_assert_eq!(format!("{set:?}"), format!("{model:?}"));
        }
        let copy = set;
        prop_assert_eq!(copy, set);
    }

    #[test]
    fn large_fd_set_behaves_like_btreeset(ops in prop::collection::vec(op_strategy(5000), 0..200)) {
        let mut set = LargeFdSet::new();
        let mut model = BTreeSet::new();
        for op in ops {
            match op {
                Op::Insert(fd) => {
                    let r = set.insert(fd);
                    prop_assert_eq!(r.is_ok(), (0..=LargeFdSet::MAX_FD).contains(&fd));
                    if r.is_ok() {
                        model.insert(fd);
                    }
                }
                Op::Remove(fd) => {
                    set.remove(fd);
                    model.remove(&fd);
                }
                Op::Contains(fd) => prop_assert_eq!(set.contains(fd), model.contains(&fd)),
                Op::Clear => {
                    set.clear();
                    model.clear();
                }
            }
            prop_assert_eq!(set.iter().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(set.len(), model.len());
            prop_assert_eq!(set.highest(), model.last().copied());
        }
    }
}

// ---- select on real descriptors ------------------------------------------------------------

#[test]
fn pipe_readable_only_after_write() {
    let _w = watchdog(10, "pipe_readable_only_after_write");
    let (r, mut w) = pipe();
    let mut rset = read_set(&[r.as_raw_fd()]);

    let start = Instant::now();
    let n = select(
        Some(&mut rset),
        None,
        None,
        Some(Duration::from_millis(100)),
    )
    .unwrap();
    let waited = start.elapsed();
    assert_eq!(n, 0);
    assert!(rset.is_empty(), "a timeout empties the set: {rset:?}");
    assert!(
        waited >= Duration::from_millis(95),
        "returned early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(2),
        "waited far too long: {waited:?}"
    );

    w.write_all(b"x").unwrap();
    let mut rset = read_set(&[r.as_raw_fd()]);
    let n = select(Some(&mut rset), None, None, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(n, 1);
    assert_eq!(rset, read_set(&[r.as_raw_fd()]));
}

#[test]
fn zero_timeout_polls() {
    let _w = watchdog(10, "zero_timeout_polls");
    let (r, _w) = pipe();
    let start = Instant::now();
    for _ in 0..10 {
        let mut rset = read_set(&[r.as_raw_fd()]);
        assert_eq!(
            select(Some(&mut rset), None, None, Some(Duration::ZERO)).unwrap(),
            0
        );
    }
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn no_timeout_blocks_until_ready() {
    let _w = watchdog(10, "no_timeout_blocks_until_ready");
    let (r, mut w) = pipe();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        w.write_all(b"x").unwrap();
        w
    });
    let start = Instant::now();
    let mut rset = read_set(&[r.as_raw_fd()]);
    assert_eq!(select(Some(&mut rset), None, None, None).unwrap(), 1);
    assert!(
        start.elapsed() >= Duration::from_millis(90),
        "{:?}",
        start.elapsed()
    );
    assert!(rset.contains(r.as_raw_fd()));
    drop(writer.join().unwrap());
}

#[test]
fn huge_timeouts_do_not_overflow() {
    let _w = watchdog(10, "huge_timeouts_do_not_overflow");
    let (r, mut w) = pipe();
    w.write_all(b"x").unwrap();
    for t in [
        Duration::MAX,
        Duration::from_secs(u64::MAX / 2),
        Duration::new(1 << 40, 999_999_999),
    ] {
        let mut rset = read_set(&[r.as_raw_fd()]);
        assert_eq!(select(Some(&mut rset), None, None, Some(t)).unwrap(), 1);
        let mut rset = read_set(&[r.as_raw_fd()]);
        assert_eq!(
            pselect(Some(&mut rset), None, None, Some(t), None).unwrap(),
            1
        );
        let mut rset = read_set(&[r.as_raw_fd()]);
        assert_eq!(
            select_restarting(Some(&mut rset), None, None, Some(t)).unwrap(),
            1
        );
    }
}

#[test]
fn socketpair_writable_not_readable() {
    let _w = watchdog(10, "socketpair_writable_not_readable");
    let (a, _b) = UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let mut rset = read_set(&[fd]);
    let mut wset = read_set(&[fd]);
    let mut eset = read_set(&[fd]);
    let n = select(
        Some(&mut rset),
        Some(&mut wset),
        Some(&mut eset),
        Some(Duration::from_secs(5)),
    )
    .unwrap();
    assert_eq!(n, 1);
    assert!(rset.is_empty() && eset.is_empty());
    assert_eq!(wset.iter().collect::<Vec<_>>(), [fd]);
}

#[test]
fn counts_each_ready_set_once() {
    let _w = watchdog(10, "counts_each_ready_set_once");
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"x").unwrap();
    let mut rset = read_set(&[a.as_raw_fd(), b.as_raw_fd()]);
    let mut wset = read_set(&[a.as_raw_fd(), b.as_raw_fd()]);
    let n = select(
        Some(&mut rset),
        Some(&mut wset),
        None,
        Some(Duration::from_secs(5)),
    )
    .unwrap();
    // b readable; a and b writable.
    assert_eq!(n, 3);
    assert_eq!(rset, read_set(&[b.as_raw_fd()]));
    assert_eq!(wset.len(), 2);
}

#[test]
fn tcp_listener_readable_when_client_connects() {
    let _w = watchdog(10, "tcp_listener_readable_when_client_connects");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let fd = listener.as_raw_fd();

    let mut rset = read_set(&[fd]);
    assert_eq!(
        select(Some(&mut rset), None, None, Some(Duration::ZERO)).unwrap(),
        0
    );

    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let mut rset = read_set(&[fd]);
    assert_eq!(
        select(Some(&mut rset), None, None, Some(Duration::from_secs(5))).unwrap(),
        1
    );
    assert!(rset.contains(fd));
    let (server_side, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    drop(server_side);
}

#[test]
fn high_fd_below_setsize_is_reported() {
    // nfds must be computed from the highest descriptor: put one near FD_SETSIZE.
    let _w = watchdog(10, "high_fd_below_setsize_is_reported");
    let (r, mut w) = pipe();
    let high = dup_at_least(&r, FD_SETSIZE as RawFd - 24);
    assert!(
        (high.as_raw_fd() as usize) < FD_SETSIZE,
        "no free fd below FD_SETSIZE"
    );
    w.write_all(b"x").unwrap();
    let (idle, _idle_w) = pipe();
    let mut rset = read_set(&[idle.as_raw_fd(), high.as_raw_fd()]);
    assert_eq!(
        select(Some(&mut rset), None, None, Some(Duration::from_secs(5))).unwrap(),
        1
    );
    assert_eq!(rset.iter().collect::<Vec<_>>(), [high.as_raw_fd()]);
}

#[test]
fn closed_fd_inside_the_table_is_ebadf() {
    let _w = watchdog(10, "closed_fd_inside_the_table_is_ebadf");
    let (r, _w) = pipe();
    // Keep a descriptor open above the closed one so the table covers its number (Linux
    // silently ignores numbers beyond the table). 600..=700 is used by no other test.
    let keep = dup_at_least(&r, 700);
    let closed = dup_at_least(&r, 600).as_raw_fd(); // dropped: closed at once
    assert!(closed < keep.as_raw_fd());

    let mut rset = read_set(&[r.as_raw_fd(), closed]);
    let err = select(Some(&mut rset), None, None, Some(Duration::ZERO)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");

    let mut wset = read_set(&[closed]);
    let err = pselect(None, Some(&mut wset), None, Some(Duration::ZERO), None).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");

    let mut large = LargeFdSet::new();
    large.insert(closed).unwrap();
    let err = select_large(Some(&mut large), None, None, Some(Duration::ZERO)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");

    let mut rset = read_set(&[closed]);
    let err = select_restarting(Some(&mut rset), None, None, Some(Duration::ZERO)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
}

#[test]
fn empty_sets_just_sleep() {
    let _w = watchdog(10, "empty_sets_just_sleep");
    let start = Instant::now();
    assert_eq!(
        select(None, None, None, Some(Duration::from_millis(30))).unwrap(),
        0
    );
    let mut empty = FdSet::new();
    assert_eq!(
        select(
            Some(&mut empty),
            None,
            None,
            Some(Duration::from_millis(30))
        )
        .unwrap(),
        0
    );
    assert!(
        start.elapsed() >= Duration::from_millis(55),
        "{:?}",
        start.elapsed()
    );
}

// ---- signals ----------------------------------------------------------------------------

#[test]
fn signal_interrupts_select_with_eintr() {
    let _w = watchdog(15, "signal_interrupts_select_with_eintr");
    install_handler();
    let (r, _w) = pipe();
    let fd = r.as_raw_fd();
    let waiter = thread::spawn(move || {
        let mut rset = read_set(&[fd]);
        let start = Instant::now();
        let res = select(Some(&mut rset), None, None, Some(Duration::from_secs(5)));
        (res, start.elapsed(), hits(), rset)
    });
    let ((res, waited, handled, rset), _sent) =
        signal_until_finished(waiter, Duration::from_millis(20));
    let err = res.expect_err("select should be interrupted");
    assert_eq!(err.kind(), ErrorKind::Interrupted);
    assert_eq!(err.raw_os_error(), Some(libc::EINTR));
    assert!(handled >= 1, "the handler never ran in the waiting thread");
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    // Measured, not asserted (POSIX leaves it unspecified): what EINTR left in the set.
    eprintln!("note: read set after EINTR: {rset:?} (fd was {fd})");
}

#[test]
fn select_restarting_keeps_the_deadline_across_signals() {
    let _w = watchdog(15, "select_restarting_keeps_the_deadline_across_signals");
    install_handler();
    let (r, _w) = pipe();
    let fd = r.as_raw_fd();
    let waiter = thread::spawn(move || {
        let mut rset = read_set(&[fd]);
        let start = Instant::now();
        let res = select_restarting(
            Some(&mut rset),
            None,
            None,
            Some(Duration::from_millis(300)),
        );
        (res, start.elapsed(), hits())
    });
    let ((res, waited, handled), sent) = signal_until_finished(waiter, Duration::from_millis(15));
    assert_eq!(res.unwrap(), 0);
    assert!(sent >= 10, "only {sent} signals sent");
    assert!(handled >= 5, "only {handled} signals handled by the waiter");
    assert!(
        waited >= Duration::from_millis(295),
        "returned early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(900),
        "restarted from scratch? {waited:?}"
    );
}

#[test]
fn select_restarting_reports_readiness_after_signals() {
    let _w = watchdog(15, "select_restarting_reports_readiness_after_signals");
    install_handler();
    let (r, mut w) = pipe();
    let (idle, _idle_w) = pipe();
    let (fd, idle_fd) = (r.as_raw_fd(), idle.as_raw_fd());
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(150));
        w.write_all(b"x").unwrap();
        w
    });
    let waiter = thread::spawn(move || {
        let mut rset = read_set(&[fd, idle_fd]);
        let res = select_restarting(Some(&mut rset), None, None, Some(Duration::from_secs(5)));
        (res, rset, hits())
    });
    let ((res, rset, handled), _) = signal_until_finished(waiter, Duration::from_millis(10));
    assert_eq!(res.unwrap(), 1);
    assert_eq!(rset, read_set(&[fd]));
    assert!(handled >= 3, "only {handled} signals handled");
    drop(writer.join().unwrap());
}

#[test]
fn select_large_restarting_survives_signals() {
    let _w = watchdog(15, "select_large_restarting_survives_signals");
    install_handler();
    let (r, _w) = pipe();
    let fd = r.as_raw_fd();
    let waiter = thread::spawn(move || {
        let mut rset = LargeFdSet::new();
        rset.insert(fd).unwrap();
        let start = Instant::now();
        let res = select_large_restarting(
            Some(&mut rset),
            None,
            None,
            Some(Duration::from_millis(200)),
        );
        (res, start.elapsed(), hits())
    });
    let ((res, waited, handled), _) = signal_until_finished(waiter, Duration::from_millis(15));
    assert_eq!(res.unwrap(), 0);
    assert!(handled >= 3, "only {handled} signals handled");
    assert!(
        waited >= Duration::from_millis(195) && waited < Duration::from_millis(800),
        "{waited:?}"
    );
}

#[test]
fn pselect_mask_delivers_a_signal_that_arrived_before_the_wait() {
    let _w = watchdog(
        15,
        "pselect_mask_delivers_a_signal_that_arrived_before_the_wait",
    );
    install_handler();
    let (r, _w) = pipe();
    let fd = r.as_raw_fd();
    let t = thread::spawn(move || {
        let mut usr1 = SigSet::empty();
        usr1.add(Signal::SIGUSR1);
        usr1.thread_block().unwrap();
        // The signal arrives "too early", before the wait: it stays pending.
        // SAFETY: pthread_self is always a valid thread of this process.
        assert_eq!(
            unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR1) },
            0
        );
        assert_eq!(hits(), 0);

        // With the mask unchanged the signal stays blocked: the wait times out.
        let mut rset = read_set(&[fd]);
        let timed_out = pselect(
            Some(&mut rset),
            None,
            None,
            Some(Duration::from_millis(50)),
            None,
        );
        let hits_blocked = hits();

        // Unblocking it only inside pselect delivers it at once: EINTR, nothing lost.
        let mut wait_mask = SigSet::thread_get_mask().unwrap();
        wait_mask.remove(Signal::SIGUSR1);
        let mut rset = read_set(&[fd]);
        let start = Instant::now();
        let interrupted = pselect(
            Some(&mut rset),
            None,
            None,
            Some(Duration::from_secs(5)),
            Some(&wait_mask),
        );
        let waited = start.elapsed();
        // pselect restored the mask: SIGUSR1 is blocked again.
        let still_blocked = SigSet::thread_get_mask().unwrap().contains(Signal::SIGUSR1);
        (
            timed_out,
            hits_blocked,
            interrupted,
            waited,
            hits(),
            still_blocked,
        )
    });
    let (timed_out, hits_blocked, interrupted, waited, handled, still_blocked) = t.join().unwrap();
    assert_eq!(timed_out.unwrap(), 0);
    assert_eq!(hits_blocked, 0, "the blocked signal was delivered");
    let err = interrupted.expect_err("pselect should be interrupted");
    assert_eq!(err.kind(), ErrorKind::Interrupted);
    assert_eq!(handled, 1);
    assert!(waited < Duration::from_secs(1), "{waited:?}");
    assert!(still_blocked);
}

// ---- LargeFdSet beyond FD_SETSIZE ------------------------------------------------------------

/// Raises the soft RLIMIT_NOFILE to at least `want`; false if the hard limit is lower.
fn raise_nofile(want: libc::rlim_t) -> bool {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft >= want {
        return true;
    }
    if hard < want {
        return false;
    }
    setrlimit(Resource::RLIMIT_NOFILE, want, hard).expect("setrlimit");
    true
}

#[test]
fn select_large_sees_fds_beyond_fd_setsize() {
    let _w = watchdog(15, "select_large_sees_fds_beyond_fd_setsize");
    if !raise_nofile(4096) {
        eprintln!("skip: RLIMIT_NOFILE hard limit below 4096; cannot test fds > 1500");
        return;
    }
    // Open pipes until one end is numbered above 1500 (F_DUPFD puts a copy there
    // directly instead of opening ~750 pipes). 1600.. is used by no other test.
    let (low_r, _low_w) = pipe();
    let (r, mut w) = pipe();
    let high_r = dup_at_least(&r, 1600);
    let high_w = dup_at_least(&w, 1601);
    assert!(high_r.as_raw_fd() > 1500 && high_w.as_raw_fd() > 1500);
    let (hr, hw, lr) = (high_r.as_raw_fd(), high_w.as_raw_fd(), low_r.as_raw_fd());

    // An FdSet cannot hold it.
    assert_eq!(
        FdSet::new().insert(hr).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );

    let mut rset = LargeFdSet::new();
    rset.insert(lr).unwrap();
    rset.insert(hr).unwrap();
    assert_eq!(
        select_large(Some(&mut rset.clone()), None, None, Some(Duration::ZERO)).unwrap(),
        0
    );

    w.write_all(b"x").unwrap();
    let mut ready = rset.clone();
    assert_eq!(
        select_large(Some(&mut ready), None, None, Some(Duration::from_secs(5))).unwrap(),
        1
    );
    assert_eq!(ready.iter().collect::<Vec<_>>(), [hr]);
    assert!(!ready.contains(lr));

    // The short read set must be padded to the write set's length: the kernel reads
    // nfds bits from each.
    let mut rset = LargeFdSet::new();
    rset.insert(r.as_raw_fd()).unwrap();
    let mut wset = LargeFdSet::new();
    wset.insert(hw).unwrap();
    let n = select_large(
        Some(&mut rset),
        Some(&mut wset),
        None,
        Some(Duration::from_secs(5)),
    )
    .unwrap();
    assert_eq!(n, 2);
    assert_eq!(rset.iter().collect::<Vec<_>>(), [r.as_raw_fd()]);
    assert_eq!(wset.iter().collect::<Vec<_>>(), [hw]);
}
