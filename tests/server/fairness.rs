//! Fair turns: a client that floods the server with pipelined lines gets at most
//! one `read`, one `send` and `MESSAGES_PER_TURN` lines per turn of the loop, so a
//! second client's round trip stays short. Each loop (select over `FdSet`, select
//! over `LargeFdSet`, poll), both echo modes, on 127.0.0.1.

use crate::common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::examples::example;
use common::{LineClient, Watchdog};
use unp_select::echo::{Echo, EchoServer};
use unp_select::server::{Config, MESSAGES_PER_TURN};

/// 63 bytes and a newline: a flood line.
const LINE: &[u8; 64] = b"flood flood flood flood flood flood flood flood flood flood 123\n";

/// A client that writes pipelined lines as fast as the server takes them, up to
/// `limit` bytes, and reads its echoes in a second thread (so it never blocks the
/// server with back-pressure). Returns the stop flag and both threads.
fn flood(
    addr: SocketAddr,
    limit: u64,
) -> (
    Arc<AtomicBool>,
    thread::JoinHandle<u64>,
    thread::JoinHandle<u64>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut w = TcpStream::connect(addr).unwrap();
    let mut r = w.try_clone().unwrap();
    r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let block: Vec<u8> = LINE.iter().copied().cycle().take(64 * 256).collect();
    let writer = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::SeqCst) && sent < limit {
                if w.write_all(&block).is_err() {
                    break;
                }
                sent += block.len() as u64;
            }
            let _ = w.shutdown(std::net::Shutdown::Write);
            sent
        })
    };
    let reader = thread::spawn(move || {
        let mut got = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        got
    });
    (stop, writer, reader)
}

/// Round trips of a one-line probe while the flood runs; sorted.
fn probe(addr: SocketAddr, rounds: usize) -> Vec<Duration> {
    let mut c = LineClient::connect(addr, Duration::from_secs(5)).unwrap();
    let mut rtts: Vec<Duration> = (0..rounds)
        .map(|i| {
            let t = Instant::now();
            c.echo(&format!("probe {i}\n")).unwrap();
            t.elapsed()
        })
        .collect();
    rtts.sort();
    rtts
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Select,
    Large,
    Poll,
}

/// The probe's median round trip stays within a few milliseconds while another
/// client floods the same server. Before fair turns, `run` served a flooding
/// client twice per turn and let its share grow: 3.5–22 ms per probe round trip.
#[test]
fn a_flood_does_not_slow_another_client() {
    let _timing = common::timing();
    let _dog = Watchdog::new("fairness", Duration::from_secs(120));
    for echo in [Echo::Lines, Echo::Bytes] {
        for mode in [Mode::Select, Mode::Large, Mode::Poll] {
            let server = EchoServer::bind("127.0.0.1:0", echo, Config::book()).unwrap();
            let addr = server.local_addr().unwrap();
            let stop = server.shutdown_handle();
            let thread = thread::spawn(move || match mode {
                Mode::Select => server.run(),
                Mode::Large => server.run_large(),
                Mode::Poll => server.run_poll(),
            });
            let (stop_flood, writer, reader) = flood(addr, 64 << 20);
            thread::sleep(Duration::from_millis(200)); // let the flood build up
            let rtts = probe(addr, 200);
            stop_flood.store(true, Ordering::SeqCst);
            let sent = writer.join().unwrap();
            let got = reader.join().unwrap();
            stop.shutdown();
            let stats = thread.join().unwrap().unwrap();
            let median = rtts[rtts.len() / 2];
            let p90 = rtts[rtts.len() * 9 / 10];
            eprintln!(
                "{echo:?} {mode:?}: probe median {median:?}, p90 {p90:?}, max {:?}; flood sent {sent} B, echoed {got} B",
                rtts[rtts.len() - 1]
            );
            assert_eq!(got, sent, "{echo:?} {mode:?}: the flood lost bytes");
            assert!(
                sent > 1 << 20,
                "{echo:?} {mode:?}: the flood was not a flood"
            );
            assert!(
                median < Duration::from_millis(5),
                "{echo:?} {mode:?}: probe median {median:?} (p90 {p90:?}) {stats:?}"
            );
        }
    }
}

/// From a trace of the example server: between two `select`/`poll` calls, each
/// client descriptor gets at most one `recvfrom` and one `sendto`, and in line
/// mode a `sendto` carries at most `MESSAGES_PER_TURN` flood lines.
#[test]
#[ignore = "needs strace (apt-get install strace); .ci/run installs it and runs cargo test -- --ignored"]
fn at_most_one_read_one_send_and_16_lines_per_client_per_turn() {
    let _dog = Watchdog::new("fairness trace", Duration::from_secs(120));
    assert!(
        Command::new("strace").arg("-V").output().is_ok(),
        "strace is not installed (apt-get install strace)"
    );
    let server_bin = example("echo_server").get_program().to_owned();
    for (args, label) in [
        (&["--lines"][..], "select, lines"),
        (&["--lines", "--large"][..], "large, lines"),
        (&["--lines", "--poll"][..], "poll, lines"),
        (&["--bytes"][..], "select, bytes"),
        (&["--bytes", "--poll"][..], "poll, bytes"),
    ] {
        let trace = std::env::temp_dir().join(format!("unp-fair-{}.trace", std::process::id()));
        let mut child = Command::new("strace")
            .args(["-qq", "-o"])
            .arg(&trace)
            .args(["-e", "trace=select,pselect6,poll,ppoll,recvfrom,sendto"])
            .arg(&server_bin)
            .args(args)
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let addr = read_listening_addr(&mut out);
        let (stop_flood, writer, reader) = flood(addr, 2 << 20);
        thread::sleep(Duration::from_millis(300));
        let rtts = probe(addr, 50);
        stop_flood.store(true, Ordering::SeqCst);
        let sent = writer.join().unwrap();
        let got = reader.join().unwrap();
        // SIGTERM to the traced server (strace's child); strace then exits too.
        let children = format!("/proc/{0}/task/{0}/children", child.id());
        let server: i32 = std::fs::read_to_string(&children)
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .expect("the traced server's pid");
        // SAFETY: kill only sends a signal to the server this test started.
        unsafe { libc::kill(server, libc::SIGTERM) };
        let _ = child.wait();
        let text = std::fs::read_to_string(&trace).unwrap();
        let _ = std::fs::remove_file(&trace);
        assert_eq!(got, sent, "{label}: the flood lost bytes");
        let turns = check_turns(&text, args.contains(&"--lines"), label);
        eprintln!(
            "{label}: {turns} turns traced, probe median {:?}",
            rtts[rtts.len() / 2]
        );
        assert!(turns > 10, "{label}: only {turns} turns in the trace");
    }
}

/// Reads the example's first line and returns the address it listens on.
fn read_listening_addr(out: &mut impl Read) -> SocketAddr {
    let mut line = Vec::new();
    let mut byte = [0u8];
    while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let line = String::from_utf8(line).unwrap();
    line.split_whitespace()
        .nth(3)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// Walks the trace turn by turn; returns how many turns it saw.
fn check_turns(trace: &str, lines: bool, label: &str) -> usize {
    let mut turns = 0;
    let mut per_fd: HashMap<(&str, u32), u32> = HashMap::new();
    for row in trace.lines() {
        let (call, rest) = match row.split_once('(') {
            Some(x) => x,
            None => continue,
        };
        match call {
            "select" | "pselect6" | "poll" | "ppoll" => {
                turns += 1;
                per_fd.clear();
            }
            "recvfrom" | "sendto" => {
                let Some(fd) = rest.split(',').next().and_then(|f| f.parse::<u32>().ok()) else {
                    continue;
                };
                let count = per_fd.entry((call, fd)).or_default();
                *count += 1;
                assert!(
                    *count <= 1,
                    "{label}: {call} on fd {fd} {count} times in one turn:\n{row}"
                );
                if lines && call == "sendto" {
                    let ret: i64 = row
                        .rsplit("= ")
                        .next()
                        .and_then(|r| r.split_whitespace().next())
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(-1);
                    assert!(
                        ret <= (MESSAGES_PER_TURN * LINE.len()) as i64,
                        "{label}: one send of {ret} bytes carries more than {MESSAGES_PER_TURN} lines:\n{row}"
                    );
                }
            }
            _ => {}
        }
    }
    turns
}
