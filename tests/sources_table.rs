//! A closed descriptor numbered above the process's descriptor table, on every
//! backend. A binary of its own: the test needs a table smaller than `FD_SETSIZE`,
//! and the threads of a shared test binary (and the fresh processes they fork,
//! whose table is sized by the highest descriptor open at the fork) grow it.

mod common;

use std::io::Write;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use common::fds::pipe;
use common::Watchdog;
use unp_select::sources::{Backend, Events, Interest, Readiness, Sources};

/// Every backend this platform has.
fn backends() -> Vec<Backend> {
    [
        Backend::Select,
        Backend::LargeSelect,
        Backend::Poll,
        Backend::Epoll,
        Backend::Kqueue,
    ]
    .into_iter()
    .filter(|b| b.is_supported())
    .collect()
}

/// A long enough timeout for something that is ready (or about to be).
const SOON: Duration = Duration::from_secs(5);

/// Waits once: what was ready, and how long the wait took.
fn timed_wait<K: Clone>(
    sources: &mut Sources<K>,
    timeout: Option<Duration>,
) -> (Vec<(K, Readiness)>, Duration) {
    let start = Instant::now();
    let mut events = Events::new();
    let n = sources
        .wait(&mut events, timeout)
        .unwrap_or_else(|e| panic!("wait on {:?}: {e}", sources.backend()));
    assert_eq!(n, events.len());
    let ready = events.iter().map(|(k, r)| (k.clone(), r)).collect();
    (ready, start.elapsed())
}

/// Nothing is reported within `t`, and the wait lasted `t`.
fn assert_quiet<K: Clone + std::fmt::Debug>(sources: &mut Sources<K>, t: Duration, what: &str) {
    let backend = sources.backend();
    let (ready, took) = timed_wait(sources, Some(t));
    assert!(ready.is_empty(), "{backend:?}, {what}: {ready:?}");
    assert!(took >= t, "{backend:?}, {what}: returned after {took:?}");
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
