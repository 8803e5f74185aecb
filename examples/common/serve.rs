//! What the protocol examples share: a command line of `[--poll | --large] [ADDR]`,
//! shutdown on SIGINT/SIGTERM, and the counters printed at the end. No server code:
//! the loop is the library's.
#![allow(dead_code)] // each example uses what it needs

use std::process::ExitCode;
use std::time::Duration;

use nix::sys::signal::Signal;
use unp_select::server::{Protocol, Server, ShutdownHandle};
use unp_select::sources::Backend;

use super::cli::{errln, or_usage, outln};

/// What the command line said.
pub struct Options {
    /// ADDR, or the example's default.
    pub addr: String,
    /// `--poll`, `--large`, `--epoll`, `--kqueue`, or select(2) over `FdSet` (the
    /// default).
    pub backend: Backend,
    /// The operands after ADDR (the relay's UPSTREAM_ADDR).
    pub operands: Vec<String>,
}

/// Parses `[--poll | --large] [-h | --help] [ADDR]`; `extra` may take options of
/// the example's own (it gets the option and the argument iterator, and says
/// whether it knew the option). `Ok(None)` for `--help`.
pub fn parse(
    default_addr: &str,
    mut extra: impl FnMut(&str, &mut dyn Iterator<Item = String>) -> Result<bool, String>,
) -> Result<Option<Options>, String> {
    let mut options = Options {
        addr: default_addr.to_string(),
        backend: Backend::Select,
        operands: Vec::new(),
    };
    let mut addr_seen = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--poll" => options.backend = Backend::Poll,
            "--large" => options.backend = Backend::LargeSelect,
            "--epoll" => options.backend = Backend::Epoll,
            "--kqueue" => options.backend = Backend::Kqueue,
            s if s.starts_with('-') => {
                if !extra(s, &mut args)? {
                    return Err(format!("unknown option {s}"));
                }
            }
            s if !addr_seen => {
                options.addr = s.to_string();
                addr_seen = true;
            }
            s => options.operands.push(s.to_string()),
        }
    }
    Ok(Some(options))
}

/// SIGINT and SIGTERM stop the server `stop` belongs to: the first drains it
/// (`--drain-timeout`), a second stops it at once. The crate's handler, installed
/// without SA_RESTART, so a blocking `accept` or `select` fails with EINTR and the
/// loop sees the request at once.
pub fn stop_on_signals(stop: &ShutdownHandle) -> std::io::Result<()> {
    stop.on_signals(&[Signal::SIGINT, Signal::SIGTERM])
}

/// Says on stderr which signal stopped `name`.
pub fn stopped_note(name: &str, stop: &ShutdownHandle) {
    match stop.signal() {
        Some(signal) => errln(format_args!("{name}: {signal}, shutting down")),
        None => errln(format_args!("{name}: shutting down")),
    }
}

/// The name of what `--poll`/`--large`/`--epoll`/`--kqueue` choose, for the
/// listening line.
pub fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Poll => "poll",
        Backend::LargeSelect => "select over a large set",
        Backend::Epoll => "epoll",
        Backend::Kqueue => "kqueue",
        _ => "select",
    }
}

/// Runs `server` until SIGINT or SIGTERM: prints `NAME: listening on ADDR (…)`
/// first, `NAME: stopped; counters:` and the counters last.
pub fn run<P: Protocol + Clone + Send + 'static>(
    name: &str,
    server: Server<P>,
    backend: Backend,
) -> ExitCode {
    let stop = server.shutdown_handle();
    if let Err(e) = stop_on_signals(&stop) {
        errln(format_args!("{name}: sigaction: {e}"));
        return ExitCode::FAILURE;
    }
    match server.local_addr() {
        Ok(addr) => outln(format_args!(
            "{name}: listening on {addr} ({})",
            backend_name(backend)
        )),
        Err(e) => errln(format_args!("{name}: getsockname: {e}")),
    }
    let result = server.run_workers(backend);
    stopped_note(name, &stop);
    match result {
        Ok(stats) => {
            let counters = stats.to_string();
            outln(format_args!(
                "{name}: stopped; counters:\n{}",
                counters.trim_end()
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            errln(format_args!("{name}: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// A number of seconds (fractions allowed) for option `name`; zero only if
/// `zero_ok`.
fn seconds(name: &str, value: Option<String>, zero_ok: bool) -> Result<Duration, String> {
    let secs = value.as_deref().map(str::parse::<f64>);
    match secs.map(|s| s.map(Duration::try_from_secs_f64)) {
        Some(Ok(Ok(d))) if zero_ok || !d.is_zero() => Ok(d),
        Some(Ok(Ok(_))) => Err(format!("{name} must be more than 0")),
        _ => Err(format!("{name} needs a number of seconds")),
    }
}

/// A positive number for option `name`.
pub fn positive(name: &str, value: Option<String>) -> Result<u64, String> {
    match value.map(|v| v.parse::<u64>()) {
        Some(Ok(n)) if n > 0 => Ok(n),
        Some(Ok(_)) => Err(format!("{name} must be at least 1")),
        _ => Err(format!("{name} needs a number")),
    }
}

/// The loop options every protocol example takes, for its usage text.
pub const LOOP_OPTIONS: &str = "  --poll                use poll(2) instead of select(2)
  --large               use select(2) over a set that grows past FD_SETSIZE
  --epoll               use epoll(7) (Linux): a wait costs what is ready, not
                        what is connected
  --kqueue              use kqueue(2) (the BSDs, macOS), likewise
  --max-clients N       serve at most N clients at once (default FD_SETSIZE)
  --write-timeout MS    close a client whose output stays unsent this long
                        (default 10000)
  --workers N           run N worker threads, each with its own loop (default 1)
  --shared-listener     all workers watch one listener (the default, where the
                        kernel balances, is one each: SO_REUSEPORT on Linux,
                        SO_REUSEPORT_LB on FreeBSD; --reuseport says so)
  --accept-batch N      accept up to N connections per readiness of the
                        listener (default 1, the book's one accept per select)
  --idle-timeout SECS   close a client that sends no whole request and reads
                        nothing for SECS seconds (default: never)
  --drain-timeout SECS  on SIGINT/SIGTERM, stop accepting and reading, and
                        deliver queued replies for up to SECS seconds before
                        closing (default 5; 0 stops at once, as a second
                        signal does)
  --no-nodelay          leave Nagle's algorithm on (TCP_NODELAY is set by
                        default, as memcached and redis do)
  -h, --help            print this help";

/// The common `main` of a protocol example: parse, bind, run. A usage error exits
/// 2, naming the problem; `--help` prints `usage`.
pub fn main<P: Protocol + Clone + Send + 'static>(
    name: &str,
    usage: &str,
    default_addr: &str,
    config: unp_select::server::Config,
    protocol: impl FnOnce() -> P,
) -> ExitCode {
    main_with_options(
        name,
        usage,
        default_addr,
        config,
        |_, _| Ok(false),
        protocol,
    )
}

/// A protocol made from the operands after ADDR (`main_operands`): `make` builds
/// it, and any operand is a usage error.
fn no_operands<P>(make: impl FnOnce() -> P) -> impl FnOnce(&[String]) -> Result<P, String> {
    |operands: &[String]| match operands.first() {
        Some(op) => Err(format!("unexpected argument {op}")),
        None => Ok(make()),
    }
}

/// [`main`] for an example with options of its own: `options` gets each option
/// the loop does not know and the argument iterator, and says whether it knew it
/// (as [`parse`]'s `extra`); `protocol` runs after all of them.
pub fn main_with_options<P: Protocol + Clone + Send + 'static>(
    name: &str,
    usage: &str,
    default_addr: &str,
    config: unp_select::server::Config,
    options: impl FnMut(&str, &mut dyn Iterator<Item = String>) -> Result<bool, String>,
    protocol: impl FnOnce() -> P,
) -> ExitCode {
    let protocol = no_operands(protocol);
    main_operands(name, usage, default_addr, config, options, protocol)
}

/// As [`main_with_options`], with a protocol made from the operands after ADDR
/// (a usage error if it says so).
pub fn main_operands<P: Protocol + Clone + Send + 'static>(
    name: &str,
    usage: &str,
    default_addr: &str,
    mut config: unp_select::server::Config,
    mut options: impl FnMut(&str, &mut dyn Iterator<Item = String>) -> Result<bool, String>,
    protocol: impl FnOnce(&[String]) -> Result<P, String>,
) -> ExitCode {
    let parsed = parse(default_addr, |option, args| {
        match option {
            "--max-clients" => config.max_clients = positive(option, args.next())? as usize,
            "--write-timeout" => {
                let ms = positive(option, args.next())?;
                config.write_timeout = std::time::Duration::from_millis(ms);
            }
            "--workers" => config.workers = positive(option, args.next())? as usize,
            "--reuseport" => config.reuseport = true,
            "--shared-listener" => config.reuseport = false,
            "--accept-batch" => config.accept_batch = positive(option, args.next())? as usize,
            "--idle-timeout" => config.idle_timeout = Some(seconds(option, args.next(), false)?),
            "--drain-timeout" => config.drain_timeout = seconds(option, args.next(), true)?,
            "--no-nodelay" => config.nodelay = false,
            _ => return options(option, args),
        }
        Ok(true)
    });
    let options = match or_usage(name, usage, parsed) {
        Ok(options) => options,
        Err(status) => return status,
    };
    let protocol = match or_usage(name, usage, protocol(&options.operands).map(Some)) {
        Ok(protocol) => protocol,
        Err(status) => return status,
    };
    match Server::bind(&options.addr, protocol, config) {
        Ok(server) => run(name, server, options.backend),
        Err(e) => {
            errln(format_args!("{name}: {}: {e}", options.addr));
            ExitCode::FAILURE
        }
    }
}
