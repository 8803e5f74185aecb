//! The seed's client (UNP 16.6): connect, set SO_LINGER {on, 0}, close, so the server
//! receives an RST instead of a FIN.
//!
//! ```text
//! cargo run --example rst_client -- [ADDR]      (default 127.0.0.1:9877)
//! ```

use std::net::TcpStream;
use std::process::ExitCode;

const USAGE: &str = "\
usage: rst_client [ADDR]

Connects to ADDR (default 127.0.0.1:9877, UNP's SERV_PORT), sets SO_LINGER {on, 0}
and closes at once: the server's TCP receives an RST instead of a FIN. This is the
client of UNP section 16.6 that opens the RST-before-accept race.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.len() > 1 {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let addr = args.first().map_or("127.0.0.1:9877", String::as_str);
    let result = TcpStream::connect(addr).and_then(|sock| {
        let local = sock.local_addr()?;
        unp_select::linger::abort(sock)?;
        Ok(local)
    });
    match result {
        Ok(local) => {
            println!("connected from {local} to {addr} and closed with RST (SO_LINGER {{on, 0}})");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rst_client: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}
