//! `accept` when the process is out of descriptors. Lowering `RLIMIT_NOFILE` affects
//! the whole process, so the test runs in a process of its own (`common::fresh`).

use std::fs::File;
use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::common::fresh::in_fresh_process;
use crate::common::Watchdog;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use unp_select::accept::{accept, Accept, FdReserve};
use unp_select::poll::{poll, PollFd, PollFlags};

#[test]
fn emfile_is_out_of_resources_and_the_reserve_sheds_it() {
    in_fresh_process(Duration::from_secs(60), emfile_in_this_process);
}

fn emfile_in_this_process() {
    let _dog = Watchdog::new("accept EMFILE", Duration::from_secs(30));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let mut fds = [PollFd::new(listener.as_raw_fd(), PollFlags::POLLIN)];
    assert_eq!(poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
    let mut reserve = FdReserve::new().unwrap();

    // Fill the descriptor table up to a low soft limit.
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let lowest_free = lowest_free_fd();
    setrlimit(Resource::RLIMIT_NOFILE, lowest_free + 16, hard).unwrap();
    let mut fillers = Vec::new();
    let exhausted = loop {
        match File::open("/dev/null") {
            Ok(f) => fillers.push(f),
            Err(e) => break e,
        }
        assert!(fillers.len() < 10_000, "never ran out of descriptors");
    };
    assert_eq!(exhausted.raw_os_error(), Some(libc::EMFILE));

    // accept now says "out of resources", not fatal, and the connection stays queued.
    for _ in 0..2 {
        match accept(&listener).unwrap() {
            Accept::OutOfResources(e) => assert_eq!(e.raw_os_error(), Some(libc::EMFILE)),
            other => panic!("expected OutOfResources, got {other:?}"),
        }
    }
    // The reserve descriptor makes room for exactly this connection and resets it.
    assert!(reserve.shed(&listener).unwrap());
    assert!(reserve.is_armed(), "the spare was re-opened");

    // The queue is empty now, yet Linux still says EMFILE, not EAGAIN: it takes a
    // descriptor number before it looks at the queue. Shedding then finds nothing.
    if cfg!(target_os = "linux") {
        match accept(&listener).unwrap() {
            Accept::OutOfResources(e) => assert_eq!(e.raw_os_error(), Some(libc::EMFILE)),
            other => panic!("expected OutOfResources on an empty queue, got {other:?}"),
        }
        assert!(!reserve.shed(&listener).unwrap(), "nothing left to shed");
        assert!(reserve.is_armed());
    }

    drop(fillers);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let err = client.read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}

/// The lowest free descriptor number (what the next open gets).
fn lowest_free_fd() -> libc::rlim_t {
    let probe = File::open("/dev/null").unwrap();
    probe.as_raw_fd() as libc::rlim_t
}
