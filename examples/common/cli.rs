//! What the examples share: the command-line manners of a Unix tool. Usage errors
//! exit 2 and name the problem; output to a closed stdout or stderr is dropped, not
//! a panic (`println!` and `eprintln!` panic on a failed write).
#![allow(dead_code)] // each example uses what it needs

use std::fmt;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

/// ADDR as given and what it resolves to (a name that does not resolve is a runtime
/// error, not a usage error).
pub type Target = (String, io::Result<Vec<SocketAddr>>);

/// `[--help] [--] [ADDR]`, ADDR defaulting to UNP's `127.0.0.1:9877`: `Ok(None)` for
/// `--help`; an unknown option, a second operand or a malformed ADDR is a usage
/// error.
pub fn parse_addr(args: impl IntoIterator<Item = String>) -> Result<Option<Target>, String> {
    let mut addr = None;
    let mut only_operands = false;
    for a in args {
        match a.as_str() {
            "-h" | "--help" if !only_operands => return Ok(None),
            "--" if !only_operands => only_operands = true,
            s if s.starts_with('-') && !only_operands => return Err(format!("unknown option {s}")),
            _ if addr.is_none() => addr = Some(a),
            s => return Err(format!("unexpected argument {s} (only one ADDR)")),
        }
    }
    let addr = addr.unwrap_or_else(|| "127.0.0.1:9877".to_string());
    match addr.to_socket_addrs() {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            Err(format!("ADDR {addr}: {e} (expected HOST:PORT)"))
        }
        resolved => Ok(Some((addr, resolved.map(Iterator::collect)))),
    }
}

/// What a command line parsed to, or the status to exit with: `--help` (`Ok(None)`)
/// prints `usage` and exits 0; a usage error prints `name: ERROR` and `usage` to
/// stderr and exits 2.
pub fn or_usage<T>(
    name: &str,
    usage: &str,
    parsed: Result<Option<T>, String>,
) -> Result<T, ExitCode> {
    match parsed {
        Ok(Some(v)) => Ok(v),
        Ok(None) => {
            outln(format_args!("{usage}"));
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            errln(format_args!("{name}: {e}\n\n{usage}"));
            Err(ExitCode::from(2))
        }
    }
}

/// A line to stdout, flushed.
///
/// The text is formatted first and written with one `write_all`: if that write
/// fails, all of it is dropped. (Formatting straight into stdout's line buffer would
/// leave a failed line's start buffered, for std to write again at exit without the
/// rest.)
pub fn outln(line: fmt::Arguments<'_>) {
    let text = format!("{line}\n");
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// A line to stderr, in one `write(2)`, so lines from two sources never interleave.
pub fn errln(line: fmt::Arguments<'_>) {
    let _ = io::stderr().write_all(format!("{line}\n").as_bytes());
}
