//! What a connection's buffers hold between turns: nothing once its input was
//! delivered and its output sent, whatever its earlier turns needed. The server
//! thread's live heap is measured with the binary's counting allocator, which counts
//! for the threads that ask only (`common::alloc`).

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::alloc::{count_live_bytes, live_bytes};
use common::Watchdog;
use unp_select::echo::{Echo, EchoServer};
use unp_select::server::Config;

/// Waits until the server thread's live heap stops changing; returns it.
fn settled_live() -> isize {
    let mut last = live_bytes();
    let start = Instant::now();
    loop {
        thread::sleep(Duration::from_millis(50));
        let now = live_bytes();
        if now == last || start.elapsed() > Duration::from_secs(3) {
            return now;
        }
        last = now;
    }
}

fn echo(c: &mut TcpStream, pieces: &[&[u8]]) {
    let mut want = 0;
    for piece in pieces {
        c.write_all(piece).unwrap();
        want += piece.len();
        thread::sleep(Duration::from_millis(5)); // each piece its own read
    }
    let mut got = vec![0; want];
    c.read_exact(&mut got).unwrap();
    assert_eq!(got, pieces.concat());
}

/// Issue: a client that once sent a line in two pieces kept 4095 bytes; one with a
/// 3000 + 1000-byte line kept 6000 (the buffer doubled past `max_line`).
#[test]
fn an_idle_connection_holds_no_buffer_after_a_line_in_pieces() {
    let _dog = Watchdog::new("idle buffers", Duration::from_secs(60));
    for (name, run) in [
        (
            "select",
            EchoServer::run as fn(EchoServer) -> std::io::Result<_>,
        ),
        ("large", EchoServer::run_large),
        ("poll", EchoServer::run_poll),
    ] {
        let server = EchoServer::bind("127.0.0.1:0", Echo::Lines, Config::book()).unwrap();
        let (addr, stop) = (server.local_addr().unwrap(), server.shutdown_handle());
        let thread = thread::spawn(move || {
            count_live_bytes(true);
            let stats = run(server);
            count_live_bytes(false);
            stats
        });
        const N: usize = 10;
        let mut clients: Vec<TcpStream> =
            (0..N).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for c in &mut clients {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            echo(c, &[b"warm up\n"]);
        }
        let base = settled_live();
        for c in &mut clients {
            echo(c, &[&[b'x'; 3000], &[b'y'; 999], b"\n"]);
            echo(c, &[b"half a ", b"line\n"]);
        }
        let after = settled_live();
        let per_client = (after - base) / N as isize;
        assert!(
            per_client < 64,
            "{name}: {per_client} bytes per idle client kept after lines in pieces \
             (base {base}, after {after})"
        );
        drop(clients);
        stop.shutdown();
        thread.join().unwrap().unwrap();
    }
}
