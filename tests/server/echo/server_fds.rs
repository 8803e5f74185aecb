//! Descriptor numbers the loop did not choose: the waker's, made when the server
//! was, may be too high for select when `run` starts. It fills the descriptor table,
//! so it runs in a process of its own (`common::fresh`).

use crate::common;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use common::fds::raise_nofile;
use common::fresh::in_fresh_process;
use common::Watchdog;
use unp_select::echo::{Echo, EchoServer};
use unp_select::server::Config;
use unp_select::FD_SETSIZE;

/// Issue: `run()` failed with `InvalidInput` naming a descriptor the caller never
/// saw, when the server was made while low descriptors were busy.
#[test]
fn a_waker_made_above_fd_setsize_does_not_stop_select() {
    in_fresh_process(Duration::from_secs(90), waker_above_fd_setsize);
}

fn waker_above_fd_setsize() {
    let _dog = Watchdog::new("waker above FD_SETSIZE", Duration::from_secs(60));
    assert!(raise_nofile(4096) >= 2048, "needs RLIMIT_NOFILE >= 2048");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    assert!((listener.as_raw_fd() as usize) < FD_SETSIZE);
    // Busy low descriptors while the server (and its waker) is made.
    let mut fillers = Vec::new();
    while fillers.last().map_or(0, |f: &File| f.as_raw_fd() as usize) < FD_SETSIZE + 8 {
        fillers.push(File::open("/dev/null").unwrap());
    }
    let server = EchoServer::new(listener, Echo::Bytes, Config::book()).unwrap();
    let (addr, stop) = (server.local_addr().unwrap(), server.shutdown_handle());
    drop(fillers);
    let thread = std::thread::spawn(move || server.run());
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"low again\n").unwrap();
    let mut line = String::new();
    BufReader::new(&c).read_line(&mut line).unwrap();
    assert_eq!(line, "low again\n");
    stop.shutdown();
    let stats = thread.join().unwrap().expect("run with a high waker");
    assert_eq!(stats.accepted, 1);
}
