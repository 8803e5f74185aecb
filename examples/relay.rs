//! A TCP relay on the crate's loop: each client accepted on LISTEN_ADDR gets its own
//! connection to UPSTREAM_ADDR, opened with a nonblocking `connect` (UNP 16.3), and
//! the loop copies bytes both ways. A half-close passes on; a refused, reset or
//! timed-out upstream closes its client; a slow side stops reading the other (the
//! two are paired), so memory stays within a few `max_unsent` whatever the peers do.
//! Only the protocol is here; readiness, connects, buffering and back-pressure are
//! the library's.
//!
//! ```text
//! cargo run --example relay -- [OPTIONS] LISTEN_ADDR UPSTREAM_ADDR
//! ```

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use unp_select::server::{Config, ConnId, Context, Protocol};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/serve.rs"]
mod serve;

const USAGE: &str = "\
usage: relay [OPTIONS] LISTEN_ADDR UPSTREAM_ADDR

A TCP relay: each client that connects to LISTEN_ADDR is connected to
UPSTREAM_ADDR, and bytes go both ways until both sides are done. A half-close is
passed on; an upstream that refuses, resets or does not answer within 10 s
closes its client. Ctrl-C or SIGTERM drains it (a second one stops it at once);
it then prints its counters.

try:  cargo run --example relay -- 127.0.0.1:9000 127.0.0.1:9877";

/// The relay's protocol: each connection knows the other side of its pair.
#[derive(Clone)]
struct Relay {
    upstream: SocketAddr,
}

impl Protocol for Relay {
    /// The other side of the pair (none once it failed).
    type Conn = Option<ConnId>;

    fn connect(&mut self, ctx: &mut Context<'_>) -> Option<ConnId> {
        if ctx.is_outgoing() {
            return ctx.partner(); // the upstream side: its client paired it
        }
        match ctx.connect(self.upstream) {
            Ok(upstream) => {
                ctx.pair(upstream); // back-pressure both ways; one closes, both close
                Some(upstream)
            }
            Err(_) => {
                ctx.close(); // no socket or no slot for the upstream
                None
            }
        }
    }

    fn receive(&mut self, other: &mut Option<ConnId>, bytes: &[u8], ctx: &mut Context<'_>) {
        if let Some(other) = *other {
            ctx.send_to(other, bytes);
        }
    }

    fn end_of_input(&mut self, other: &mut Option<ConnId>, ctx: &mut Context<'_>) {
        // UNP 6.6: this side sent FIN; pass it on once what it sent is out.
        match *other {
            Some(other) => {
                ctx.shutdown_write_other(other);
            }
            None => ctx.close(),
        }
    }
}

fn main() -> ExitCode {
    let usage = format!("{USAGE}\n\noptions:\n{}", serve::LOOP_OPTIONS);
    // One read takes up to 64 KiB whatever the frame (bytes as they come).
    let config = Config::default().with_max_line(64 * 1024);
    serve::main_operands(
        "relay",
        &usage,
        "127.0.0.1:9000",
        config,
        |_, _| Ok(false),
        |operands| match operands {
            [upstream] => upstream
                .to_socket_addrs()
                .map_err(|e| format!("{upstream}: {e}"))?
                .next()
                .map(|upstream| Relay { upstream })
                .ok_or_else(|| format!("{upstream}: no address")),
            [] => Err("UPSTREAM_ADDR is missing".to_string()),
            [_, extra, ..] => Err(format!("unexpected argument {extra}")),
        },
    )
}
