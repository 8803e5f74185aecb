//! The echo server's behaviour, each test run against the three loops (select over
//! `FdSet`, select over `LargeFdSet`, poll), on 127.0.0.1, bounded by a watchdog.

use crate::common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{LineClient, Watchdog};
use unp_select::echo::{Echo, EchoServer, ShutdownHandle};
use unp_select::server::{Config, Stats};

struct Server {
    addr: SocketAddr,
    stop: ShutdownHandle,
    thread: JoinHandle<io::Result<Stats>>,
}

impl Server {
    fn start(echo: Echo, config: Config, mode: Mode) -> Server {
        let server = EchoServer::bind("127.0.0.1:0", echo, config).unwrap();
        let addr = server.local_addr().unwrap();
        let stop = server.shutdown_handle();
        let thread = thread::spawn(move || match mode {
            Mode::Select => server.run(),
            Mode::Large => server.run_large(),
            Mode::Poll => server.run_poll(),
        });
        Server { addr, stop, thread }
    }

    fn finish(self) -> Stats {
        self.stop.shutdown();
        self.thread.join().unwrap().unwrap()
    }
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Select,
    Large,
    Poll,
}

/// Runs `test` against each loop in both echo modes, each pair in a thread of its
/// own (named after it, for a panic's message), all at once: each has its own
/// server, and most of a run is waiting.
fn each_loop(name: &'static str, test: impl Fn(Mode, Echo) + Sync) {
    let _dog = Watchdog::new(name, Duration::from_secs(60));
    let test = &test;
    thread::scope(|scope| {
        for echo in [Echo::Bytes, Echo::Lines] {
            for mode in [Mode::Select, Mode::Large, Mode::Poll] {
                thread::Builder::new()
                    .name(format!("{name}: {mode:?}, {echo:?}"))
                    .spawn_scoped(scope, move || test(mode, echo))
                    .expect("spawn a thread");
            }
        }
    });
}

fn client(addr: SocketAddr) -> LineClient {
    LineClient::connect(addr, Duration::from_secs(5)).unwrap()
}

/// Reads until EOF (bounded by the stream's read timeout).
fn read_to_eof(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut all = Vec::new();
    stream.read_to_end(&mut all)?;
    Ok(all)
}

#[test]
fn many_clients_each_get_their_own_lines_back() {
    each_loop("many clients", |mode, echo| {
        let s = Server::start(echo, Config::book(), mode);
        let mut clients: Vec<LineClient> = (0..20).map(|_| client(s.addr)).collect();
        for round in 0..50 {
            for (i, c) in clients.iter_mut().enumerate() {
                c.send(&format!("client {i} line {round}\n")).unwrap();
            }
            for (i, c) in clients.iter_mut().enumerate() {
                assert_eq!(c.recv().unwrap(), format!("client {i} line {round}\n"));
            }
        }
        drop(clients);
        let stats = s.finish();
        assert_eq!(stats.accepted, 20);
        let sent: usize = (0..50)
            .flat_map(|r| (0..20).map(move |i| format!("client {i} line {r}\n").len()))
            .sum();
        assert_eq!(stats.bytes_sent, sent as u64, "{stats:?}");
        if echo == Echo::Lines {
            assert_eq!(stats.messages_sent, 1000);
        }
    });
}

#[test]
fn a_partial_line_does_not_block_other_clients() {
    each_loop("partial line", |mode, echo| {
        let s = Server::start(echo, Config::book(), mode);
        let mut slow = client(s.addr);
        slow.send("no newline yet").unwrap();
        let mut other = client(s.addr);
        let t = Instant::now();
        other
            .echo("served while the other line is incomplete\n")
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(2));
        slow.send(", now\n").unwrap();
        assert_eq!(slow.recv().unwrap(), "no newline yet, now\n");
        s.finish();
    });
}

#[test]
fn pipelined_lines_in_one_write_all_come_back() {
    each_loop("pipelined", |mode, echo| {
        let s = Server::start(echo, Config::book(), mode);
        let mut c = client(s.addr);
        let lines: String = (0..2000).map(|i| format!("pipelined {i}\n")).collect();
        let writer = {
            let mut stream = c.stream.try_clone().unwrap();
            let lines = lines.clone();
            thread::spawn(move || stream.write_all(lines.as_bytes()))
        };
        let mut got = String::new();
        for _ in 0..2000 {
            got.push_str(&c.recv().unwrap());
        }
        writer.join().unwrap().unwrap();
        assert_eq!(got, lines);
        drop(c);
        let stats = s.finish();
        assert_eq!(stats.bytes_sent, lines.len() as u64);
        if echo == Echo::Lines {
            assert_eq!(stats.messages_sent, 2000);
        }
    });
}

#[test]
fn a_line_longer_than_max_line_comes_back_whole_in_pieces() {
    each_loop("long line", |mode, echo| {
        let config = Config::book().with_max_line(16);
        let s = Server::start(echo, config, mode);
        let mut c = TcpStream::connect(s.addr).unwrap();
        let line: Vec<u8> = (0..100u8).map(|b| b'a' + b % 26).chain([b'\n']).collect();
        c.write_all(&line).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_eof(&mut c).unwrap(), line);
        let stats = s.finish();
        if echo == Echo::Lines {
            assert_eq!(
                stats.messages_sent, 7,
                "101 bytes in pieces of 16: {stats:?}"
            );
        }
        assert_eq!(stats.bytes_sent, 101);
    });
}

#[test]
fn half_close_gets_every_echo_then_eof() {
    each_loop("half close", |mode, echo| {
        let s = Server::start(echo, Config::book(), mode);
        let mut c = TcpStream::connect(s.addr).unwrap();
        let mut sent: Vec<u8> = (0..300)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        sent.extend_from_slice(b"unterminated tail");
        c.write_all(&sent).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_eof(&mut c).unwrap(), sent);
        let stats = s.finish();
        assert_eq!(stats.closed_eof, 1);
        if echo == Echo::Lines {
            assert_eq!(stats.messages_sent, 301);
        }
    });
}

#[test]
fn too_many_clients_refuses_one_connection_and_keeps_serving() {
    each_loop("too many clients", |mode, echo| {
        let config = Config::book().with_max_clients(2);
        let s = Server::start(echo, config, mode);
        let mut a = client(s.addr);
        let mut b = client(s.addr);
        a.echo("a\n").unwrap();
        b.echo("b\n").unwrap();
        let mut refused = TcpStream::connect(s.addr).unwrap();
        refused
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let err = refused.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        a.echo("a again\n").unwrap();
        // A freed slot is used again.
        drop(b);
        thread::sleep(Duration::from_millis(100));
        let mut c = client(s.addr);
        c.echo("c\n").unwrap();
        let stats = s.finish();
        assert_eq!(stats.refused, 1, "{stats:?}");
        assert_eq!(stats.accepted, 3, "{stats:?}");
    });
}

#[test]
fn a_client_that_resets_is_closed_and_counted() {
    each_loop("client reset", |mode, echo| {
        let s = Server::start(echo, Config::book(), mode);
        let mut c = client(s.addr);
        c.echo("before the reset\n").unwrap();
        c.abort().unwrap();
        let mut other = client(s.addr);
        other.echo("others are fine\n").unwrap();
        thread::sleep(Duration::from_millis(100));
        let stats = s.finish();
        assert_eq!(stats.closed_reset, 1, "{stats:?}");
        assert_eq!(
            (stats.closed_protocol, stats.closed_panic),
            (0, 0),
            "{stats:?}"
        );
    });
}

#[test]
fn a_client_that_never_reads_is_dropped_without_freezing_others() {
    each_loop("never reads", |mode, echo| {
        let config = Config::book().with_write_timeout(Duration::from_millis(500));
        let s = Server::start(echo, config, mode);
        let hog = TcpStream::connect(s.addr).unwrap();
        let mut other = client(s.addr);
        other.echo("hello\n").unwrap();
        // The hog writes lines and never reads. Once its receive buffer and the
        // server's send buffer are full, the server stops reading from it.
        hog.set_nonblocking(true).unwrap();
        let line = [b'x'; 1023]
            .iter()
            .copied()
            .chain([b'\n'])
            .collect::<Vec<u8>>();
        let started = Instant::now();
        let mut hog_w = &hog;
        let mut blocked_since = None;
        while started.elapsed() < Duration::from_secs(5) {
            match hog_w.write(&line) {
                Ok(_) => blocked_since = None,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let since = *blocked_since.get_or_insert_with(Instant::now);
                    // Others are served while the hog is stuck.
                    let t = Instant::now();
                    other.echo("still served\n").unwrap();
                    assert!(t.elapsed() < Duration::from_secs(1));
                    if since.elapsed() > Duration::from_millis(1500) {
                        break;
                    }
                    thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    // The server closed the hog already (reset after policy close).
                    assert!(matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                    ));
                    break;
                }
            }
        }
        other.echo("after the hog\n").unwrap();
        drop(hog);
        let stats = s.finish();
        assert_eq!(stats.closed_policy, 1, "{stats:?}");
    });
}

#[test]
fn shutdown_wakes_an_idle_server_promptly() {
    each_loop("shutdown", |mode, echo| {
        let s = Server::start(echo, Config::book(), mode);
        let _idle = client(s.addr);
        thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        let stats = s.finish();
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(stats.accepted, 1);
    });
}

/// Nobody takes a shutdown handle: the wake-up socket must stay open inside the
/// server (an EOF on it would keep it readable and make the loop spin without
/// serving). The server thread is left running, asleep in select, when the test ends.
#[test]
fn serves_when_nobody_holds_a_shutdown_handle() {
    let _dog = Watchdog::new("no handle", Duration::from_secs(30));
    for mode in [Mode::Select, Mode::Large, Mode::Poll] {
        let server = EchoServer::bind("127.0.0.1:0", Echo::Bytes, Config::book()).unwrap();
        let addr = server.local_addr().unwrap();
        thread::spawn(move || match mode {
            Mode::Select => server.run(),
            Mode::Large => server.run_large(),
            Mode::Poll => server.run_poll(),
        });
        let mut c = LineClient::connect(addr, Duration::from_secs(3)).unwrap();
        c.echo("no handle anywhere\n")
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
    }
}
