//! `Sources::wait` allocates nothing in steady state (the module documentation's
//! claim): the sets, the `pollfd` array, epoll's and kqueue's event arrays and the
//! caller's `Events` are reused. The binary's allocator counts the allocations of
//! the calling thread (`common::alloc`).

use crate::common;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::alloc::allocations_in;
use common::fds::{dup_at_least, pipe, raise_nofile};
use common::Watchdog;
use unp_select::sources::{Backend, Events, Interest, Sources, Waker};
use unp_select::FD_SETSIZE;

#[test]
fn counter_sees_allocations() {
    // The counter itself works: a fresh Vec with capacity allocates once.
    let n = allocations_in(|| {
        let v: Vec<u8> = Vec::with_capacity(100);
        std::hint::black_box(v);
    });
    assert_eq!(n, 1);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Waker,
    Pipe,
    Writable,
    Both,
    Idle,
    Paused,
    High,
}

#[test]
fn wait_allocates_nothing_in_steady_state() {
    let _w = Watchdog::new(
        "wait_allocates_nothing_in_steady_state",
        Duration::from_secs(60),
    );
    // A descriptor above FD_SETSIZE for the backends that take one, so LargeSelect's
    // sets span more words than an fd_set (and are copied with `clone_from`).
    let high_ok = raise_nofile(4096) > 1200;
    let backends = [
        Backend::Select,
        Backend::LargeSelect,
        Backend::Poll,
        Backend::Epoll,
        Backend::Kqueue,
    ];
    for backend in backends.into_iter().filter(|b| b.is_supported()) {
        let waker = Waker::new().unwrap();
        let (r, mut w) = pipe();
        let (writable, _writable_peer) = UnixStream::pair().unwrap();
        let (both, mut both_peer) = UnixStream::pair().unwrap();
        let (idle, _idle_peer) = UnixStream::pair().unwrap();
        let (paused, _paused_peer) = UnixStream::pair().unwrap();
        let (high_src, mut high_peer) = UnixStream::pair().unwrap();
        let high = dup_at_least(&high_src, FD_SETSIZE as i32 + 76);
        w.write_all(b"data").unwrap();
        both_peer.write_all(b"data").unwrap();
        high_peer.write_all(b"data").unwrap();

        let mut sources = Sources::new(backend);
        sources
            .register(Key::Waker, &waker, Interest::READ)
            .unwrap();
        sources.register(Key::Pipe, &r, Interest::READ).unwrap();
        sources
            .register(Key::Writable, &writable, Interest::WRITE)
            .unwrap();
        sources.register(Key::Both, &both, Interest::BOTH).unwrap();
        sources.register(Key::Idle, &idle, Interest::READ).unwrap();
        sources
            .register(Key::Paused, &paused, Interest::NONE)
            .unwrap();
        let mut expected = 4; // waker, pipe, writable, both
        if backend != Backend::Select && high_ok {
            assert!(high.as_raw_fd() as usize >= FD_SETSIZE);
            sources.register(Key::High, &high, Interest::READ).unwrap();
            expected += 1;
        }

        let mut events = Events::new();
        // Warm-up: the first wait sizes `events` and whatever the backend keeps.
        waker.wake().unwrap();
        let n = sources
            .wait(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(n, expected, "{backend:?}: {events:?}");

        let mut seen = 0;
        let allocs = allocations_in(|| {
            for _ in 0..1000 {
                // A loop's round: wake, wait, walk the events, reset the waker.
                waker.wake().unwrap();
                let n = sources
                    .wait(&mut events, Some(Duration::from_secs(5)))
                    .unwrap();
                assert_eq!(n, expected);
                for (key, readiness) in &events {
                    if *key == Key::Waker {
                        waker.reset().unwrap();
                    }
                    assert!(!readiness.is_empty());
                    seen += 1;
                }
            }
        });
        assert_eq!(seen, 1000 * expected);
        assert_eq!(
            allocs, 0,
            "{backend:?}: {allocs} allocations in 1000 steady-state waits"
        );
    }
}
