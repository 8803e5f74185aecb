//! A closed descriptor numbered above the process's descriptor table: select,
//! pselect and select over a large set say `EBADF`, and `Sources` reports it
//! invalid on every backend. A binary of its own: the tests need a table smaller
//! than `FD_SETSIZE`, and the threads of a shared test binary (and the fresh
//! processes they fork, whose table is sized by the highest descriptor open at the
//! fork) grow it.

mod common;

use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::fds::pipe;
use common::sources::{assert_quiet, backends, timed_wait, SOON};
use common::Watchdog;
use nix::sys::signal::SigSet;
use unp_select::select::{
    pselect, select, select_large, select_large_restarting, select_restarting, FdSet, LargeFdSet,
    FD_SETSIZE,
};
use unp_select::sources::{Backend, Interest, Readiness, Sources};

fn read_set(fds: &[RawFd]) -> FdSet {
    let mut set = FdSet::new();
    for &fd in fds {
        set.insert(fd).unwrap();
    }
    set
}

#[test]
fn closed_descriptor_above_the_table_is_reported_invalid() {
    let _w = Watchdog::new(
        "closed_descriptor_above_the_table_is_reported_invalid",
        Duration::from_secs(30),
    );
    {
        // Below FD_SETSIZE, so that Backend::Select takes it too.
        let high: RawFd = 1000;
        // SAFETY: F_GETFD only reads the descriptor's flags; on a closed one it fails.
        let rc = unsafe { libc::fcntl(high, libc::F_GETFD) };
        assert_eq!(rc, -1, "descriptor {high} is open");
        #[cfg(target_os = "linux")]
        assert!(
            common::fds::fd_table_size() <= high as usize,
            "{high} is inside the descriptor table ({} slots)",
            common::fds::fd_table_size()
        );
        for backend in backends() {
            let (idle, _idle_w) = pipe();
            let mut sources = Sources::new(backend);
            sources.register("idle", &idle, Interest::READ).unwrap();
            // SAFETY: a descriptor closed behind the Sources' back is what is
            // tested. The borrow is only given to `register` and `set_interest`,
            // which take its number: no I/O is done on it.
            let closed = unsafe { BorrowedFd::borrow_raw(high) };
            sources.register("closed", &closed, Interest::READ).unwrap();

            // poll says POLLNVAL at once (epoll and kqueue too: below). Linux's
            // select ignores the bits above
            // the table and sleeps until its timeout (or another source is
            // ready); the crate's select then sees the uncounted bit (EBADF) and
            // the key is reported. So with select a number above the table is
            // found when the wait ends, not before: with no timeout and nothing
            // else ready, never. (A descriptor registered while open is inside
            // the table, which never shrinks: this takes a number borrowed
            // while closed, as above.)
            let timeout = Duration::from_millis(300);
            let (ready, took) = timed_wait(&mut sources, Some(timeout));
            eprintln!("note: {backend:?}: closed {high} above the table found after {took:?}");
            assert_eq!(ready, [("closed", Readiness::INVALID)], "{backend:?}");
            // poll says POLLNVAL; epoll_ctl and kevent say EBADF when it is
            // registered, and the next wait reports it at once.
            match backend {
                Backend::Select | Backend::LargeSelect => {
                    assert!(took >= timeout, "{backend:?}: {took:?}")
                }
                _ => assert!(took < Duration::from_millis(200), "{backend:?}: {took:?}"),
            }
            assert_quiet(&mut sources, Duration::from_millis(50), "reported already");
            // Another source's readiness ends select's wait, and the closed
            // number is found by the same call.
            let (r, mut w) = pipe();
            sources.set_interest(&closed, Interest::READ).unwrap();
            sources.register("pipe", &r, Interest::READ).unwrap();
            w.write_all(b"x").unwrap();
            let (ready, took) = timed_wait(&mut sources, Some(SOON));
            assert!(took < Duration::from_secs(2), "{backend:?}: {took:?}");
            assert!(
                ready.contains(&("closed", Readiness::INVALID)),
                "{backend:?}: {ready:?}"
            );
        }
    }
}

// ---- closed descriptors above the descriptor table ---------------------------------------
//
// Linux clips `nfds` to the size of the descriptor table and leaves the bits above it
// as the caller set them, so without a check a closed descriptor numbered above the
// table came back "ready". The table never shrinks and other tests of this binary grow
// it (to 1024 slots and beyond), so these tests run in a binary of their own.

/// Checks that `fd` is closed and (on Linux) above the descriptor table, and returns it.
fn closed_above_the_table(fd: RawFd) -> RawFd {
    // SAFETY: F_GETFD takes and returns an int; on a closed descriptor it fails (EBADF).
    let rc = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    let err = io::Error::last_os_error();
    assert!(
        rc == -1 && err.raw_os_error() == Some(libc::EBADF),
        "fd {fd} is open"
    );
    #[cfg(target_os = "linux")]
    {
        let table = common::fds::fd_table_size();
        assert!(
            fd as usize >= table,
            "fd {fd} is inside the descriptor table ({table} slots)"
        );
    }
    fd
}

/// Whether `EBADF` for a descriptor above the table comes from the crate's check, which
/// clears the sets: measured on Linux. FreeBSD's kernel reports it itself (the sets are
/// then unspecified, as after any error); macOS is not verified.
const CLEARED_BY_THE_CHECK: bool = cfg!(target_os = "linux");

/// Asserts that `res` is `EBADF`.
fn assert_ebadf(res: io::Result<usize>, what: &str) {
    match res {
        Ok(n) => panic!("{what}: Ok({n}), expected EBADF"),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{what}: {e}"),
    }
}

#[test]
fn select_closed_fd_above_the_table_is_ebadf() {
    let _w = Watchdog::new(
        "select_closed_fd_above_the_table_is_ebadf",
        Duration::from_secs(30),
    );
    {
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        let high = closed_above_the_table(1000);

        // Alone: Linux returned 0 and left it in the set.
        let mut rset = read_set(&[high]);
        assert_ebadf(
            select(Some(&mut rset), None, None, Some(Duration::ZERO)),
            &format!("select read {high}"),
        );
        assert!(!CLEARED_BY_THE_CHECK || rset.is_empty(), "{rset:?}");

        // With a writable descriptor: Linux returned 1 and both stayed in the set.
        let mut wset = read_set(&[fd, high]);
        assert_ebadf(
            select(None, Some(&mut wset), None, Some(Duration::ZERO)),
            &format!("select write {fd}, {high}"),
        );
        assert!(!CLEARED_BY_THE_CHECK || wset.is_empty(), "{wset:?}");

        // In another set than the ready descriptor.
        let mut rset = read_set(&[high]);
        let mut wset = read_set(&[fd]);
        let mut eset = read_set(&[fd]);
        assert_ebadf(
            select(
                Some(&mut rset),
                Some(&mut wset),
                Some(&mut eset),
                Some(Duration::ZERO),
            ),
            &format!("select read {high}, write {fd}"),
        );
        let all_empty = rset.is_empty() && wset.is_empty() && eset.is_empty();
        assert!(
            !CLEARED_BY_THE_CHECK || all_empty,
            "{rset:?} {wset:?} {eset:?}"
        );

        let mut wset = read_set(&[fd, high]);
        assert_ebadf(
            select_restarting(None, Some(&mut wset), None, Some(Duration::from_millis(10))),
            "select_restarting",
        );
        assert!(!CLEARED_BY_THE_CHECK || wset.is_empty(), "{wset:?}");

        // The same sets without the closed descriptor work.
        let mut wset = read_set(&[fd]);
        assert_eq!(
            select(None, Some(&mut wset), None, Some(Duration::ZERO)).unwrap(),
            1
        );
        assert_eq!(wset, read_set(&[fd]));
    }
}

#[test]
fn pselect_closed_fd_above_the_table_is_ebadf() {
    let _w = Watchdog::new(
        "pselect_closed_fd_above_the_table_is_ebadf",
        Duration::from_secs(30),
    );
    {
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        let high = closed_above_the_table(1000);

        let mut rset = read_set(&[high]);
        assert_ebadf(
            pselect(Some(&mut rset), None, None, Some(Duration::ZERO), None),
            &format!("pselect read {high}"),
        );
        assert!(!CLEARED_BY_THE_CHECK || rset.is_empty(), "{rset:?}");

        let mut wset = read_set(&[fd, high]);
        let mask = SigSet::thread_get_mask().unwrap();
        assert_ebadf(
            pselect(
                None,
                Some(&mut wset),
                None,
                Some(Duration::ZERO),
                Some(&mask),
            ),
            &format!("pselect write {fd}, {high}"),
        );
        assert!(!CLEARED_BY_THE_CHECK || wset.is_empty(), "{wset:?}");

        let mut wset = read_set(&[fd]);
        assert_eq!(
            pselect(None, Some(&mut wset), None, Some(Duration::ZERO), None).unwrap(),
            1
        );
    }
}

#[test]
fn select_large_closed_fd_above_the_table_is_ebadf() {
    let _w = Watchdog::new(
        "select_large_closed_fd_above_the_table_is_ebadf",
        Duration::from_secs(30),
    );
    {
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        let large = |fds: &[RawFd]| {
            let mut set = LargeFdSet::new();
            for &fd in fds {
                set.insert(fd).unwrap();
            }
            set
        };
        // Above FD_SETSIZE, and in a word far beyond the table's last one.
        let high = closed_above_the_table(5000);

        let mut rset = large(&[high]);
        assert_ebadf(
            select_large(Some(&mut rset), None, None, Some(Duration::ZERO)),
            &format!("select_large read {high}"),
        );
        assert!(!CLEARED_BY_THE_CHECK || rset.is_empty(), "{rset:?}");

        let mut wset = large(&[fd, high]);
        assert_ebadf(
            select_large(None, Some(&mut wset), None, Some(Duration::ZERO)),
            &format!("select_large write {fd}, {high}"),
        );
        assert!(!CLEARED_BY_THE_CHECK || wset.is_empty(), "{wset:?}");

        let mut rset = large(&[high]);
        let mut wset = large(&[fd]);
        assert_ebadf(
            select_large_restarting(
                Some(&mut rset),
                Some(&mut wset),
                None,
                Some(Duration::from_millis(10)),
            ),
            &format!("select_large_restarting read {high}, write {fd}"),
        );
        let all_empty = rset.is_empty() && wset.is_empty();
        assert!(!CLEARED_BY_THE_CHECK || all_empty, "{rset:?} {wset:?}");

        // Just above FD_SETSIZE, also above the table.
        let just_above = closed_above_the_table(FD_SETSIZE as RawFd);
        let mut wset = large(&[fd, just_above]);
        assert_ebadf(
            select_large(None, Some(&mut wset), None, Some(Duration::ZERO)),
            &format!("select_large write {fd}, {just_above}"),
        );

        let mut wset = large(&[fd]);
        assert_eq!(
            select_large(None, Some(&mut wset), None, Some(Duration::ZERO)).unwrap(),
            1
        );
        assert_eq!(wset, large(&[fd]));
    }
}
