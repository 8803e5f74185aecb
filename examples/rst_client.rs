//! The book's RST client (UNP 16.6): connect, set SO_LINGER {on, 0}, close, so the
//! server receives an RST instead of a FIN.
//!
//! ```text
//! cargo run --example rst_client -- [ADDR]      (default 127.0.0.1:9877)
//! ```

use std::net::TcpStream;
use std::process::ExitCode;

#[path = "common/cli.rs"]
mod cli;
use cli::{errln, or_usage, outln, parse_addr};

const USAGE: &str = "\
usage: rst_client [ADDR]

Connects to ADDR (default 127.0.0.1:9877, UNP's SERV_PORT), sets SO_LINGER {on, 0}
and closes at once: the server's TCP receives an RST instead of a FIN. This is the
client of UNP section 16.6 that opens the RST-before-accept race.

options:
  -h, --help   print this help

exit status: 0 once the RST is sent, 1 on a network error, 2 on a usage error.";

fn main() -> ExitCode {
    let parsed = parse_addr(std::env::args().skip(1));
    let (addr, addrs) = match or_usage("rst_client", USAGE, parsed) {
        Ok(target) => target,
        Err(status) => return status,
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
            outln(format_args!(
                "connected from {local} to {addr} and closed with RST (SO_LINGER {{on, 0}})"
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            errln(format_args!("rst_client: {addr}: {e}"));
            ExitCode::FAILURE
        }
    }
}
