//! An in-memory store speaking memcached's text protocol, on the crate's hardened
//! loop. `kv.rs` is the protocol (commands, items, replies), written without I/O;
//! this file plugs it into the loop: a line or a data block in, the replies out.
//! Readiness, accept, buffering, back-pressure and time-outs are the library's.
//!
//! ```text
//! cargo run --example kv_server -- [--poll | --large] [ADDR]
//! ```

mod kv;

use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};

use kv::{Next, Session, Store};
use unp_select::server::{CloseReason, Config, ConnId, Context, Frame, Protocol};

#[path = "../common/cli.rs"]
mod cli;
#[path = "../common/serve.rs"]
mod serve;

const USAGE: &str = "\
usage: kv_server [OPTIONS] [ADDR]

An in-memory key-value store speaking memcached's text protocol on ADDR (default
127.0.0.1:11211): set, add, replace, append, prepend, cas, get, gets, delete, incr,
decr, touch, gat, gats, flush_all, version, verbosity, stats, quit. Values up to
1 MiB, 64 MiB in all. Stop it with Ctrl-C or SIGTERM; it then prints its counters.

try:  printf 'set k 0 0 5\\r\\nhello\\r\\nget k\\r\\n' | nc -q1 127.0.0.1 11211";

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
        let now = kv::unix_now();
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let next = {
            let mut store = self.store();
            match ctx.frame() {
                Frame::Exact(_) => session.on_data(&mut store, msg, now, &mut out),
                _ => session.on_line(&mut store, msg, now, &mut out),
            }
        };
        let _ = ctx.send(&out);
        self.out = out;
        match next {
            Next::Line => ctx.set_frame(Frame::Line),
            Next::Exact(n) => ctx.set_frame(Frame::Exact(n)),
            Next::Close => ctx.close(),
        }
    }

    fn disconnect(&mut self, _: Session, _: ConnId, _: CloseReason) {
        self.store().disconnected();
    }
}

fn main() -> ExitCode {
    let usage = format!("{USAGE}\n\noptions:\n{}", serve::LOOP_OPTIONS);
    // Lines (commands) up to memcached's 2048 bytes; a longer one comes in pieces.
    let config = Config::default()
        .with_max_line(kv::MAX_LINE)
        .with_nodelay(true); // as memcached: a reply goes out at once
    serve::main("kv_server", &usage, "127.0.0.1:11211", config, || Kv {
        store: Arc::new(Mutex::new(Store::new())),
        out: Vec::new(),
    })
}
