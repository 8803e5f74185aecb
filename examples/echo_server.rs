//! UNP's select-based TCP echo server (`tcpservselect01`), with the nonblocking
//! listener of UNP 16.6. Stops cleanly on SIGINT or SIGTERM and prints what it did.
//!
//! ```text
//! cargo run --example echo_server -- [--poll | --large] [--blocking-listener] [--accept-delay MS] [ADDR]
//! ```

use std::process::ExitCode;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use unp_select::echo::{Config, EchoServer};

const USAGE: &str = "\
usage: echo_server [OPTIONS] [ADDR]

UNP's select(2) TCP echo server (tcpservselect01) on ADDR (default 127.0.0.1:9877,
UNP's SERV_PORT). Each line a client sends comes back to it. Stop it with Ctrl-C or
SIGTERM; it then prints its counters.

options:
  --poll                 use the poll(2) loop (tcpservpoll01) instead of select(2)
  --large                use select(2) over a set that grows past FD_SETSIZE
  --blocking-listener    keep the listener blocking: the book's bug (UNP 16.6)
  --accept-delay MS      sleep MS milliseconds between select and accept (the
                         seed's sleep(5)), to open the race window
  --max-clients N        serve at most N clients at once (default FD_SETSIZE)
  --max-line N           longest line echoed in one piece (default 4096)
  -h, --help             print this help

try:  nc 127.0.0.1 9877     or     cargo run --example echo_client";

struct Args {
    addr: String,
    mechanism: &'static str,
    config: Config,
}

fn parse() -> Result<Option<Args>, String> {
    let mut args = Args {
        addr: "127.0.0.1:9877".to_string(),
        mechanism: "select",
        config: Config::default(),
    };
    let mut it = std::env::args().skip(1);
    let mut addr_seen = false;
    while let Some(a) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--poll" => args.mechanism = "poll",
            "--large" => args.mechanism = "select over a large set",
            "--blocking-listener" => args.config.nonblocking_listener = false,
            "--accept-delay" => args.config.accept_delay = Some(Duration::from_millis(number(&a)?)),
            "--max-clients" => args.config.max_clients = number(&a)? as usize,
            "--max-line" => args.config.max_line = number(&a)? as usize,
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s if !addr_seen => {
                args.addr = s.to_string();
                addr_seen = true;
            }
            s => return Err(format!("unexpected argument {s}")),
        }
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("echo_server: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Block SIGINT and SIGTERM in every thread (the mask is inherited), and let one
    // thread take them with sigwait: no handler, no async-signal-safety concerns.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    if let Err(e) = signals.thread_block() {
        eprintln!("echo_server: blocking signals: {e}");
        return ExitCode::FAILURE;
    }
    let server = match EchoServer::bind(&args.addr, args.config.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("echo_server: {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let stop = server.shutdown_handle();
    std::thread::spawn(move || {
        if let Ok(sig) = signals.wait() {
            eprintln!("echo_server: {sig}, shutting down");
        }
        stop.shutdown();
    });
    match server.local_addr() {
        Ok(addr) => println!(
            "echo_server: listening on {addr} ({}, {} listener)",
            args.mechanism,
            if args.config.nonblocking_listener {
                "nonblocking"
            } else {
                "blocking"
            }
        ),
        Err(e) => eprintln!("echo_server: getsockname: {e}"),
    }
    let result = match args.mechanism {
        "poll" => server.run_poll(),
        "select" => server.run(),
        _ => server.run_large(),
    };
    match result {
        Ok(stats) => {
            println!("echo_server: stopped: {stats:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo_server: {e}");
            ExitCode::FAILURE
        }
    }
}
