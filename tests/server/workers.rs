//! Several workers over one listener, or one listener each (`SO_REUSEPORT`): they
//! share the load, stop together, survive a competing accepter, pass output to
//! each other's connections, and lose only the connection whose protocol panics.

use crate::common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::thread;
use std::time::{Duration, Instant};

use common::server::Running;
use common::Watchdog;
use unp_select::server::{Config, Context, Frame, Protocol, Server};
use unp_select::sources::Backend;

/// Lines back (`echo`), to every other client of every worker (`all ...`), or a
/// panic (`panic`).
#[derive(Clone)]
struct Lines;

impl Protocol for Lines {
    type Conn = ();

    fn connect(&mut self, ctx: &mut Context<'_>) {
        ctx.set_frame(Frame::Line);
    }

    fn receive(&mut self, _: &mut (), line: &[u8], ctx: &mut Context<'_>) {
        if let Some(rest) = line.strip_prefix(b"all ") {
            ctx.broadcast(rest);
        } else if line == b"panic\n" {
            panic!("a protocol bug (on purpose)");
        } else if line == b"where\n" {
            ctx.send(format!("{}\n", ctx.id().worker()).as_bytes())
                .unwrap();
        } else {
            ctx.send(line).unwrap();
        }
    }
}

fn client(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    BufReader::new(s)
}

fn roundtrip(c: &mut BufReader<TcpStream>, line: &str) -> String {
    c.get_mut().write_all(line.as_bytes()).unwrap();
    let mut got = String::new();
    c.read_line(&mut got).unwrap();
    got
}

const CONFIGS: [(&str, bool); 2] = [("shared listener", false), ("SO_REUSEPORT", true)];

#[test]
fn workers_share_the_load_and_stop_together() {
    let _dog = Watchdog::new("workers share", Duration::from_secs(120));
    for (name, reuseport) in CONFIGS {
        for backend in [Backend::Select, Backend::Poll] {
            let config = Config::default().with_workers(2).with_reuseport(reuseport);
            let s = Running::start(Lines, config, backend);
            // 40 clients at once, then 160 more one after the other.
            let mut held: Vec<_> = (0..40).map(|_| client(s.addr)).collect();
            for (i, c) in held.iter_mut().enumerate() {
                assert_eq!(roundtrip(c, &format!("held {i}\n")), format!("held {i}\n"));
            }
            for i in 0..160 {
                let mut c = client(s.addr);
                assert_eq!(roundtrip(&mut c, &format!("{i}\n")), format!("{i}\n"));
            }
            let per = s.stats.per_worker();
            assert_eq!(per.len(), 2);
            let accepted: Vec<u64> = per.iter().map(|w| w.accepted).collect();
            if reuseport && cfg!(target_os = "linux") {
                // The kernel hashes each connection to a listener: both get some.
                assert!(accepted.iter().all(|&a| a > 0), "{name}: {accepted:?}");
            }
            drop(held);
            let total = s.finish();
            assert_eq!(total.accepted, 200, "{name} {backend:?}: {total:?}");
            eprintln!(
                "{name} {backend:?}: accepted per worker {accepted:?}, empty accepts {}",
                total.empty_accepts.total()
            );
        }
    }
}

#[test]
fn a_broadcast_reaches_the_clients_of_every_worker() {
    let _dog = Watchdog::new("broadcast across workers", Duration::from_secs(60));
    for (name, reuseport) in CONFIGS {
        let config = Config::default().with_workers(2).with_reuseport(reuseport);
        let s = Running::start(Lines, config, Backend::Poll);
        let mut clients: Vec<_> = (0..12).map(|_| client(s.addr)).collect();
        let mut workers = Vec::new();
        for c in &mut clients {
            workers.push(roundtrip(c, "where\n"));
        }
        // Each client says one line to all; each gets the other 11, each sender's
        // in order.
        for (i, c) in clients.iter_mut().enumerate() {
            for k in 0..3 {
                c.get_mut()
                    .write_all(format!("all {i}.{k}\n").as_bytes())
                    .unwrap();
            }
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let mut got = Vec::new();
            for _ in 0..33 {
                let mut line = String::new();
                c.read_line(&mut line).unwrap();
                got.push(line);
            }
            for j in (0..12).filter(|&j| j != i) {
                let from_j: Vec<&String> = got
                    .iter()
                    .filter(|l| l.starts_with(&format!("{j}.")))
                    .collect();
                let want: Vec<String> = (0..3).map(|k| format!("{j}.{k}\n")).collect();
                assert_eq!(
                    from_j,
                    want.iter().collect::<Vec<_>>(),
                    "{name}: client {i}"
                );
            }
            assert!(
                !got.iter().any(|l| l.starts_with(&format!("{i}."))),
                "{name}: own line"
            );
        }
        drop(clients);
        let total = s.finish();
        assert_eq!(total.accepted, 12);
        eprintln!("{name}: clients on workers {workers:?}");
    }
}

#[test]
fn a_competing_accepter_never_stalls_a_worker() {
    let _dog = Watchdog::new("competing accepter", Duration::from_secs(60));
    for backend in [Backend::Select, Backend::Poll] {
        let config = Config::default().with_workers(2);
        let server = Server::bind("127.0.0.1:0", Lines, config).unwrap();
        let addr = server.local_addr().unwrap();
        // Another accepter on the same listener (as another process would be):
        // it takes connections the workers' select announced.
        let theirs =
            std::net::TcpListener::from(server.listener().as_fd().try_clone_to_owned().unwrap());
        let (stop, stats) = (server.shutdown_handle(), server.stats_handle());
        let thread = thread::spawn(move || server.run_workers(backend));
        let competitor = thread::spawn(move || {
            let mut stolen = 0;
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(1500) {
                match theirs.accept() {
                    Ok((mut c, _)) => {
                        stolen += 1;
                        let _ = c.write_all(b"stolen\n");
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_micros(200))
                    }
                    Err(e) => panic!("competitor: {e}"),
                }
            }
            stolen
        });
        // Connections keep coming; every one is answered, by a worker or by the
        // competitor, and a worker's own clients keep their round trips short.
        let mut slowest = Duration::ZERO;
        let t = Instant::now();
        let mut served = 0;
        while t.elapsed() < Duration::from_millis(1200) {
            let mut c = client(addr);
            let start = Instant::now();
            let got = roundtrip(&mut c, "hello\n");
            slowest = slowest.max(start.elapsed());
            assert!(got == "hello\n" || got == "stolen\n", "{got:?}");
            served += usize::from(got == "hello\n");
        }
        let stolen = competitor.join().unwrap();
        stop.shutdown();
        let total = thread.join().unwrap().unwrap();
        assert!(
            slowest < Duration::from_millis(500),
            "{backend:?}: a round trip took {slowest:?}"
        );
        assert_eq!(total.accepted as usize, served, "{backend:?}: {total:?}");
        eprintln!(
            "{backend:?}: {served} served, {stolen} stolen, {} empty accepts, slowest {slowest:?}",
            total.empty_accepts.total()
        );
        drop(stats);
    }
}

#[test]
fn a_panic_loses_one_connection_not_its_worker() {
    let _dog = Watchdog::new("panic with workers", Duration::from_secs(60));
    let config = Config::default().with_workers(2).with_reuseport(true);
    let s = Running::start(Lines, config, Backend::Select);
    let mut good: Vec<_> = (0..8).map(|_| client(s.addr)).collect();
    let mut bad = client(s.addr);
    bad.get_mut().write_all(b"panic\n").unwrap();
    let mut rest = Vec::new();
    let _ = bad.read_to_end(&mut rest);
    for (i, c) in good.iter_mut().enumerate() {
        assert_eq!(
            roundtrip(c, &format!("after {i}\n")),
            format!("after {i}\n")
        );
    }
    drop(good);
    let total = s.finish();
    assert_eq!(total.closed_panic, 1, "{total:?}");
}

#[test]
fn more_workers_than_one_need_run_workers_and_new_shares_its_listener() {
    let _dog = Watchdog::new("run_with and new", Duration::from_secs(30));
    let config = Config::default().with_workers(2);
    let server = Server::bind("127.0.0.1:0", Lines, config.clone()).unwrap();
    let err = server.run_with(Backend::Poll).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    // Server::new has the one listener it is given: two workers share it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(listener, Lines, config.with_reuseport(true)).unwrap();
    let (stop, stats) = (server.shutdown_handle(), server.stats_handle());
    let thread = thread::spawn(move || server.run_workers(Backend::Select));
    let mut c = client(addr);
    assert_eq!(roundtrip(&mut c, "shared\n"), "shared\n");
    drop(c);
    stop.shutdown();
    assert_eq!(thread.join().unwrap().unwrap().accepted, 1);
    assert_eq!(stats.per_worker().len(), 2);
    let zero = Config::default().with_workers(0);
    let err = Server::bind("127.0.0.1:0", Lines, zero).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn accept_batch_takes_a_burst_in_fewer_turns() {
    let _dog = Watchdog::new("accept batch", Duration::from_secs(60));
    for batch in [1, 16] {
        let config = Config::default().with_accept_batch(batch);
        let server = Server::bind("127.0.0.1:0", Lines, config).unwrap();
        let addr = server.local_addr().unwrap();
        // 50 connections wait in the queue before the loop starts.
        let mut clients: Vec<_> = (0..50).map(|_| client(addr)).collect();
        thread::sleep(Duration::from_millis(50));
        let (stop, stats) = (server.shutdown_handle(), server.stats_handle());
        let thread = thread::spawn(move || server.run_with(Backend::Select));
        for c in &mut clients {
            assert_eq!(roundtrip(c, "x\n"), "x\n");
        }
        let accepted = stats.snapshot().accepted;
        drop(clients);
        stop.shutdown();
        let total = thread.join().unwrap().unwrap();
        assert_eq!(accepted, 50);
        // A batch ends on an empty queue, which is not an empty accept.
        assert_eq!(total.empty_accepts.total(), 0, "batch {batch}: {total:?}");
    }
}
