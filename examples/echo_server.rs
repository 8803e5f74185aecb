//! UNP's select-based TCP echo server (`tcpservselect01`), with the nonblocking
//! listener of UNP 16.6. Stops on SIGINT or SIGTERM and prints what it did.
//!
//! ```text
//! cargo run --example echo_server -- [--bytes | --lines] [--poll | --large] [--workers N [--shared-listener]] [ADDR]
//! ```

use std::process::ExitCode;
use std::time::Duration;

use unp_select::echo::{Echo, EchoServer};
use unp_select::server::Config;
use unp_select::sources::Backend;

#[path = "common/cli.rs"]
mod cli;
#[path = "common/serve.rs"]
mod serve;
use cli::{errln, outln};

const USAGE: &str = "\
usage: echo_server [OPTIONS] [ADDR]

UNP's select(2) TCP echo server (tcpservselect01) on ADDR (default 127.0.0.1:9877,
UNP's SERV_PORT). Stop it with Ctrl-C or SIGTERM; it then prints its counters.

By default it echoes bytes, as the book's tcpservselect01 does: whatever one read
returns goes straight back, so no client can wait on an echo the server holds.
--lines echoes whole lines only (a server built on UNP's readline); a line longer
than --max-line comes back in pieces of that size, and the default, 4095, is the
longest piece the book's str_cli sends before it waits for the echo.

options:
  --bytes                echo what each read returns (the default)
  --lines                echo whole lines (and pieces of --max-line bytes)
  --poll                 use the poll(2) loop (tcpservpoll01) instead of select(2)
  --large                use select(2) over a set that grows past FD_SETSIZE
  --epoll                use epoll(7) (Linux): a wait costs what is ready, not
                         what is connected
  --kqueue               use kqueue(2) (the BSDs, macOS), likewise
  --blocking-listener    keep the listener blocking: the book's bug (UNP 16.6)
  --accept-delay MS      sleep MS milliseconds between select and accept (UNP
                         16.6's sleep(5)), to open the race window
  --max-clients N        serve at most N clients at once (default FD_SETSIZE)
  --max-line N           bytes per read, or longest line piece (default 4095)
  --workers N            run N worker threads, each with its own loop (default 1)
  --shared-listener      all workers watch one listener (the default, where the
                         kernel balances, is one each: SO_REUSEPORT on Linux,
                         SO_REUSEPORT_LB on FreeBSD; --reuseport says so)
  --accept-batch N       accept up to N connections per readiness of the listener
                         (default 1, the book's one accept per select)
  --idle-timeout SECS    close a client that sends nothing whole and reads no
                         echo for SECS seconds (default: never, as the book)
  -h, --help             print this help

try:  nc 127.0.0.1 9877     or     cargo run --example echo_client";

struct Args {
    addr: String,
    backend: Backend,
    echo: Echo,
    config: Config,
}

/// A positive number for option `name`.
fn positive(name: &str, value: Option<String>) -> Result<u64, String> {
    match value.map(|v| v.parse::<u64>()) {
        Some(Ok(n)) if n > 0 => Ok(n),
        Some(Ok(_)) => Err(format!("{name} must be at least 1")),
        _ => Err(format!("{name} needs a number")),
    }
}

fn parse() -> Result<Option<Args>, String> {
    let mut args = Args {
        addr: "127.0.0.1:9877".to_string(),
        backend: Backend::Select,
        echo: Echo::Bytes,
        config: Config::book(),
    };
    let mut it = std::env::args().skip(1);
    let mut addr_seen = false;
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--bytes" => args.echo = Echo::Bytes,
            "--lines" => args.echo = Echo::Lines,
            "--poll" => args.backend = Backend::Poll,
            "--large" => args.backend = Backend::LargeSelect,
            "--epoll" => args.backend = Backend::Epoll,
            "--kqueue" => args.backend = Backend::Kqueue,
            "--blocking-listener" => args.config.nonblocking_listener = false,
            "--accept-delay" => {
                let ms = positive(&a, it.next())?;
                args.config.accept_delay = Some(Duration::from_millis(ms));
            }
            "--max-clients" => args.config.max_clients = positive(&a, it.next())? as usize,
            "--max-line" => args.config.max_line = positive(&a, it.next())? as usize,
            "--workers" => args.config.workers = positive(&a, it.next())? as usize,
            "--reuseport" => args.config.reuseport = true,
            "--shared-listener" => args.config.reuseport = false,
            "--accept-batch" => args.config.accept_batch = positive(&a, it.next())? as usize,
            "--idle-timeout" => {
                let secs = it.next().and_then(|v| v.parse::<f64>().ok());
                let timeout = secs.and_then(|s| Duration::try_from_secs_f64(s).ok());
                match timeout.filter(|t| !t.is_zero()) {
                    Some(t) => args.config.idle_timeout = Some(t),
                    None => return Err(format!("{a} needs a number of seconds above 0")),
                }
            }
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
            outln(format_args!("{USAGE}"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            errln(format_args!("echo_server: {e}\n\n{USAGE}"));
            return ExitCode::from(2);
        }
    };
    let server = match EchoServer::bind(&args.addr, args.echo, args.config.clone()) {
        Ok(s) => s,
        Err(e) => {
            errln(format_args!("echo_server: {}: {e}", args.addr));
            return ExitCode::FAILURE;
        }
    };
    let stop = server.shutdown_handle();
    if let Err(e) = serve::stop_on_signals(&stop) {
        errln(format_args!("echo_server: sigaction: {e}"));
        return ExitCode::FAILURE;
    }
    let mechanism = serve::backend_name(args.backend);
    match server.local_addr() {
        Ok(addr) => outln(format_args!(
            "echo_server: listening on {addr} ({mechanism}, {} echo, {} listener)",
            match args.echo {
                Echo::Bytes => "byte",
                Echo::Lines => "line",
            },
            if args.config.nonblocking_listener {
                "nonblocking"
            } else {
                "blocking"
            }
        )),
        Err(e) => errln(format_args!("echo_server: getsockname: {e}")),
    }
    let result = server.run_with(args.backend);
    serve::stopped_note("echo_server", &stop);
    match result {
        Ok(stats) => {
            outln(format_args!("echo_server: stopped; counters:\n{stats}"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            errln(format_args!("echo_server: {e}"));
            ExitCode::FAILURE
        }
    }
}
