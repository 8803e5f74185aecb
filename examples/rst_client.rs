//! The book's RST client (UNP 16.6): connect, set SO_LINGER {on, 0}, close, so the
//! server receives an RST instead of a FIN.
//!
//! ```text
//! cargo run --example rst_client -- [ADDR]      (default 127.0.0.1:9877)
//! ```

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;

const USAGE: &str = "\
usage: rst_client [ADDR]

Connects to ADDR (default 127.0.0.1:9877, UNP's SERV_PORT), sets SO_LINGER {on, 0}
and closes at once: the server's TCP receives an RST instead of a FIN. This is the
client of UNP section 16.6 that opens the RST-before-accept race.

options:
  -h, --help   print this help

exit status: 0 once the RST is sent, 1 on a network error, 2 on a usage error.";

/// ADDR as given and what it resolves to (a name that does not resolve is a runtime
/// error, not a usage error).
type Target = (String, io::Result<Vec<SocketAddr>>);

/// The command line: `Ok(None)` for `--help`. A malformed ADDR is a usage error.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Target>, String> {
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

/// Writes `text` and a newline to stdout; a closed stdout is no reason to panic.
fn outln(text: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

fn main() -> ExitCode {
    let (addr, addrs) = match parse(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            outln(USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("rst_client: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = addrs
        .and_then(|addrs| TcpStream::connect(&addrs[..]))
        .and_then(|sock| {
            let local = sock.local_addr()?;
            unp_select::linger::abort(sock)?;
            Ok(local)
        });
    match result {
        Ok(local) => {
            outln(&format!(
                "connected from {local} to {addr} and closed with RST (SO_LINGER {{on, 0}})"
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rst_client: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}
