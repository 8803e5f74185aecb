//! An in-memory cache speaking memcached's text protocol, on the crate's hardened
//! loop. The protocol is written without I/O: `parser.rs` (words and numbers),
//! `commands.rs` (a connection's session: the commands), `store.rs` (the items
//! under a memory limit, evicted least recently used first, on `lru.rs` and
//! `index.rs`; a long value is a chain of pieces, `value.rs`). This file plugs it into the loop: a line or a data block in, the
//! replies out. Readiness, accept, buffering, back-pressure and time-outs are the
//! library's.
//!
//! ```text
//! cargo run --example kv_server -- [-m MB] [--poll | --large] [ADDR]
//! ```

mod commands;
mod index;
mod lru;
mod parser;
mod store;
mod value;

use std::cell::Cell;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use commands::{Next, Reply, Session, MAX_LINE};
use store::{unix_now, Store, DEFAULT_LIMIT};
use unp_select::server::{CloseReason, Config, ConnId, Context, Frame, Protocol, SendError};
use value::Value;

#[path = "../common/cli.rs"]
mod cli;
#[path = "../common/serve.rs"]
mod serve;

const USAGE: &str = "\
usage: kv_server [-m MB] [OPTIONS] [ADDR]

An in-memory cache speaking memcached's text protocol on ADDR (default
127.0.0.1:11211): set, add, replace, append, prepend, cas, get, gets, delete, incr,
decr, touch, gat, gats, flush_all, version, verbosity, stats, quit. Values up to
1 MiB; past the memory limit the least recently used items are evicted. Stop it
with Ctrl-C or SIGTERM; it then prints its counters.

try:  printf 'set k 0 0 5\\r\\nhello\\r\\nget k\\r\\n' | nc -q1 127.0.0.1 11211";

const OPTIONS: &str = "\
  -m, --memory-limit MB memory for items, in MiB (default 64), as memcached's -m:
                        keys, values, their bookkeeping and the data blocks on
                        their way all count";

/// A reply buffer larger than this is freed after use, not kept for the next.
const KEEP_REPLY_BUFFER: usize = 64 * 1024;

/// The store, shared by every connection and every worker, and one reply buffer
/// per worker.
struct Kv {
    store: Arc<Mutex<Store>>,
    out: Vec<u8>,
    /// A multi-get waits for the output to drain once this much is unsent
    /// (`Config::max_unsent`).
    max_unsent: usize,
}

impl Clone for Kv {
    fn clone(&self) -> Kv {
        Kv {
            store: Arc::clone(&self.store),
            out: Vec::new(),
            max_unsent: self.max_unsent,
        }
    }
}

impl Kv {
    fn new(limit: u64, max_unsent: usize) -> Kv {
        Kv {
            store: Arc::new(Mutex::new(Store::with_limit(limit, unix_now()))),
            out: Vec::new(),
            max_unsent,
        }
    }

    /// Runs `step` on the store with a reply to `ctx`, sends what it put, and
    /// does what it answered.
    fn serve(
        &mut self,
        ctx: &mut Context<'_>,
        step: impl FnOnce(&mut Store, u64, &mut ToLoop<'_, '_>) -> Next,
    ) {
        let now = unix_now();
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let mut reply = ToLoop {
            ctx,
            buf: &mut out,
            full_at: self.max_unsent,
            refused: false,
        };
        let next = {
            // A panic while the lock was held lost that connection only; the
            // store's items are whole (each command changes them at its end).
            let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
            step(&mut store, now, &mut reply)
        };
        reply.flush();
        let refused = reply.refused;
        if out.capacity() <= KEEP_REPLY_BUFFER {
            self.out = out; // kept for the next reply, unless it grew large
        }
        if refused {
            // Part of a reply could not be queued (past max_output): the client
            // would misread what follows.
            ctx.close();
            return;
        }
        match next {
            Next::Line => ctx.set_frame(Frame::Line),
            Next::Exact(n) => ctx.set_frame(Frame::Exact(n)),
            Next::Drain => ctx.wait_drained(),
            Next::Close => ctx.close(),
        }
    }
}

/// A value this large or larger is sent from the store without a copy
/// (`send_shared`); a smaller one is copied into the reply.
const SHARE_FROM: usize = 4096;

/// A session's reply on its way to the loop: text and small values gathered in
/// the worker's buffer, large values shared with the store (no copy).
struct ToLoop<'a, 'c> {
    ctx: &'a mut Context<'c>,
    buf: &'a mut Vec<u8>,
    full_at: usize,
    /// The loop refused some output.
    refused: bool,
}

impl ToLoop<'_, '_> {
    fn flush(&mut self) {
        if !self.buf.is_empty() {
            let sent = self.ctx.send(self.buf);
            self.check(sent);
            self.buf.clear();
        }
    }

    fn check(&mut self, sent: Result<(), SendError>) {
        // A closing connection takes nothing more; that is no error here.
        if let Err(SendError::MaxOutput) = sent {
            self.refused = true;
        }
    }
}

impl Reply for ToLoop<'_, '_> {
    fn put(&mut self, bytes: &[u8]) {
        if !self.refused {
            self.buf.extend_from_slice(bytes);
        }
    }

    fn put_value(&mut self, value: &Value) {
        // One after the other; once the loop refused a piece, nothing more goes
        // (the connection closes after what was queued).
        for piece in value.pieces() {
            if self.refused {
                return;
            }
            if piece.len() < SHARE_FROM {
                // Copied: cheaper than a reference and a chunk of its own, and the
                // reply stays one message.
                self.buf.extend_from_slice(piece);
            } else {
                self.flush();
                let sent = self.ctx.send_shared(Arc::clone(piece));
                self.check(sent);
            }
        }
    }

    fn full(&self) -> bool {
        self.ctx.unsent() + self.buf.len() >= self.full_at
    }
}

impl Protocol for Kv {
    type Conn = Session;

    fn connect(&mut self, ctx: &mut Context<'_>) -> Session {
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .connected();
        ctx.set_frame(Frame::Line);
        Session::new()
    }

    fn receive(&mut self, session: &mut Session, msg: &[u8], ctx: &mut Context<'_>) {
        let data = matches!(ctx.frame(), Frame::Exact(_));
        self.serve(ctx, |store, now, reply| {
            if data {
                session.on_data(store, msg, now, reply)
            } else {
                session.on_line(store, msg, now, reply)
            }
        });
    }

    fn drained(&mut self, session: &mut Session, ctx: &mut Context<'_>) {
        self.serve(ctx, |store, now, reply| session.resume(store, now, reply));
    }

    fn disconnect(&mut self, session: Session, _: ConnId, _: CloseReason) {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        store.disconnected();
        drop(session); // gives back a data block's reservation
    }
}

fn main() -> ExitCode {
    let usage = format!("{USAGE}\n\noptions:\n{OPTIONS}\n{}", serve::LOOP_OPTIONS);
    // Lines (commands) up to MAX_LINE; a longer one comes in pieces. TCP_NODELAY
    // is on (the loop's default), as memcached sets it: a reply goes out at once.
    let config = Config::default().with_max_line(MAX_LINE);
    let max_unsent = config.max_unsent;
    let limit = Cell::new(DEFAULT_LIMIT);
    let options = |option: &str, args: &mut dyn Iterator<Item = String>| {
        match option {
            "-m" | "--memory-limit" => {
                let mb = serve::positive(option, args.next())?;
                let bytes = mb
                    .checked_mul(1 << 20)
                    .ok_or_else(|| format!("{option} {mb}: too large"))?;
                limit.set(bytes);
            }
            _ => return Ok(false),
        }
        Ok(true)
    };
    serve::main_with_options(
        "kv_server",
        &usage,
        "127.0.0.1:11211",
        config,
        options,
        || Kv::new(limit.get(), max_unsent),
    )
}
