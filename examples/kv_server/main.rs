//! An in-memory cache speaking memcached's text protocol, on the crate's hardened
//! loop. The protocol is written without I/O: `parser.rs` (words and numbers),
//! `commands.rs` (a connection's session: the commands), `store.rs` (the items
//! under a memory limit, evicted least recently used first, on `lru.rs` and
//! `index.rs`). This file plugs it into the loop: a line or a data block in, the
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

use std::cell::Cell;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};

use commands::{Next, Session, MAX_LINE};
use store::{unix_now, Store, DEFAULT_LIMIT};
use unp_select::server::{Config, ConnId, Context, Frame, Protocol};

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
}

impl Clone for Kv {
    fn clone(&self) -> Kv {
        Kv {
            store: Arc::clone(&self.store),
            out: Vec::new(),
        }
    }
}

impl Kv {
    fn new(limit: u64) -> Kv {
        Kv {
            store: Arc::new(Mutex::new(Store::with_limit(limit, unix_now()))),
            out: Vec::new(),
        }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while the lock was held lost that connection only; the store's
        // items are whole (each command changes them at its end).
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Protocol for Kv {
    type Conn = Session;

    fn connect(&mut self, ctx: &mut Context<'_>) -> Session {
        self.store().connected();
        ctx.set_frame(Frame::Line);
        Session::new()
    }

    fn receive(&mut self, session: &mut Session, msg: &[u8], ctx: &mut Context<'_>) {
        let now = unix_now();
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let mut next = {
            let mut store = self.store();
            let mut next = match ctx.frame() {
                Frame::Exact(_) => session.on_data(&mut store, msg, now, &mut out),
                _ => session.on_line(&mut store, msg, now, &mut out),
            };
            // A Vec is never full: a multi-get is answered whole.
            while next == Next::Drain {
                next = session.resume(&mut store, now, &mut out);
            }
            next
        };
        ctx.send(&out);
        if out.capacity() <= KEEP_REPLY_BUFFER {
            self.out = out;
        }
        match std::mem::replace(&mut next, Next::Line) {
            Next::Line | Next::Drain => ctx.set_frame(Frame::Line),
            Next::Exact(n) => ctx.set_frame(Frame::Exact(n)),
            Next::Close => ctx.close(),
        }
    }

    fn disconnect(&mut self, session: Session, _: ConnId) {
        let mut store = self.store();
        store.disconnected();
        drop(session); // gives back a data block's reservation
    }
}

fn main() -> ExitCode {
    let usage = format!("{USAGE}\n\noptions:\n{OPTIONS}\n{}", serve::LOOP_OPTIONS);
    // Lines (commands) up to MAX_LINE; a longer one comes in pieces.
    let config = Config::default().with_max_line(MAX_LINE).with_nodelay(true); // as memcached: a reply goes out at once
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
        || Kv::new(limit.get()),
    )
}
