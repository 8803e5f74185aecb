//! A chat server on the crate's hardened loop: every line a client sends goes,
//! verbatim, to every other connected client, in the order it was sent; the sender
//! gets nothing back. Only the protocol is here; readiness, accept, buffering,
//! back-pressure and time-outs are the library's.
//!
//! ```text
//! cargo run --example chat_server -- [--poll | --large] [ADDR]
//! ```

use std::process::ExitCode;

use unp_select::server::{Config, Context, Frame, Protocol};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/serve.rs"]
mod serve;

const USAGE: &str = "\
usage: chat_server [OPTIONS] [ADDR]

A chat server on ADDR (default 127.0.0.1:9878): each line a client sends goes to
every other connected client; the sender gets nothing back (a last line without a
newline is relayed with one). A client that does not read is closed after 10
seconds of unsent output; lines longer than 64 KiB close their sender. Ctrl-C or
SIGTERM drains it (a second one stops it at once); it then prints its counters.

try:  nc 127.0.0.1 9878   (in two terminals)";

/// The longest line relayed; a longer one closes its sender.
const MAX_LINE: usize = 64 * 1024;

/// The chat protocol. Each connection keeps the start of a line that came in
/// pieces (longer than the loop's `max_line`), so no line is relayed cut up.
#[derive(Clone)]
struct Chat;

impl Protocol for Chat {
    type Conn = Vec<u8>;

    fn connect(&mut self, ctx: &mut Context<'_>) -> Vec<u8> {
        ctx.set_frame(Frame::Line);
        Vec::new()
    }

    fn receive(&mut self, partial: &mut Vec<u8>, piece: &[u8], ctx: &mut Context<'_>) {
        let newline = piece.ends_with(b"\n");
        if partial.len() + piece.len() - usize::from(newline) > MAX_LINE {
            ctx.close(); // too long: nothing of it is relayed
        } else if !newline && ctx.input_closed() {
            // The unterminated last line, at end of file: relayed with a `\n`,
            // so it does not run into the receivers' next line.
            partial.extend_from_slice(piece);
            partial.push(b'\n');
            ctx.broadcast(partial);
            *partial = Vec::new();
        } else if !newline {
            // A piece of a long line: keep it.
            partial.extend_from_slice(piece);
        } else if partial.is_empty() {
            ctx.broadcast(piece); // the usual case: no copy before the queues
        } else {
            partial.extend_from_slice(piece);
            ctx.broadcast(partial);
            *partial = Vec::new();
        }
    }
}

fn main() -> ExitCode {
    let usage = format!("{USAGE}\n\noptions:\n{}", serve::LOOP_OPTIONS);
    serve::main(
        "chat_server",
        &usage,
        "127.0.0.1:9878",
        Config::default(),
        || Chat,
    )
}
