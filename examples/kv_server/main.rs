//! THROWAWAY test harness for the `kv` engine, to be replaced by the real
//! `kv_server` on the select(2)/poll(2) loop. It serves the same command line,
//! `kv_server [--poll | --large] [ADDR]` (the options are accepted and ignored:
//! here every client gets a blocking std thread), prints the same first line and
//! stops on SIGTERM/SIGINT with the same report, so `tests/kv_clients.rs` runs now.

mod kv;

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kv::{Next, Session, Store, MAX_LINE};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst); // async-signal-safe: one atomic store
}

/// Fills `reader`'s buffer, first sending `out` if the buffer is empty (a read may
/// then block, and the client may be waiting for those answers). Empty: EOF.
fn fill<'a>(
    reader: &'a mut BufReader<TcpStream>,
    w: &mut TcpStream,
    out: &mut Vec<u8>,
) -> io::Result<&'a [u8]> {
    if reader.buffer().is_empty() && !out.is_empty() {
        w.write_all(out)?;
        out.clear();
    }
    reader.fill_buf()
}

/// What the real loop does for a connection: lines of at most MAX_LINE bytes (longer
/// ones in pieces), exact data blocks, answers sent when the input runs dry.
fn serve(stream: TcpStream, store: &Mutex<Store>) -> io::Result<()> {
    let mut w = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let (mut session, mut out, mut buf) = (Session::new(), Vec::new(), Vec::new());
    let mut next = Next::Line;
    loop {
        buf.clear();
        let want = match next {
            Next::Close => return w.write_all(&out),
            Next::Line => MAX_LINE,
            Next::Exact(n) => n,
        };
        while buf.len() < want {
            let avail = fill(&mut reader, &mut w, &mut out)?;
            if avail.is_empty() {
                return w.write_all(&out); // EOF
            }
            let window = &avail[..avail.len().min(want - buf.len())];
            let take = match (next, window.iter().position(|&b| b == b'\n')) {
                (Next::Line, Some(i)) => i + 1,
                _ => window.len(),
            };
            buf.extend_from_slice(&window[..take]);
            reader.consume(take);
            if buf.ends_with(b"\n") && next == Next::Line {
                break;
            }
        }
        let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
        next = match next {
            Next::Line => session.on_line(&mut store, &buf, kv::unix_now(), &mut out),
            _ => session.on_data(&mut store, &buf, kv::unix_now(), &mut out),
        };
    }
}

fn main() {
    let mut addr = "127.0.0.1:11211".to_string();
    let mut mechanism = "select";
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--poll" => mechanism = "poll",
            "--large" => mechanism = "select over a large set",
            s if s.starts_with('-') => {
                eprintln!("usage: kv_server [--poll | --large] [ADDR]");
                std::process::exit(2);
            }
            s => addr = s.to_string(),
        }
    }
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: on_signal only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(signal, &action) }.expect("sigaction");
    }
    let listener = TcpListener::bind(&addr).unwrap_or_else(|e| {
        eprintln!("kv_server: {addr}: {e}");
        std::process::exit(1);
    });
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let local = listener.local_addr().expect("local address");
    println!(
        "kv_server: listening on {local} ({mechanism}, THROWAWAY thread-per-connection harness)"
    );
    let _ = io::stdout().flush();
    let store = Arc::new(Mutex::new(Store::new()));
    let accepted = Arc::new(AtomicU64::new(0));
    while !STOP.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                accepted.fetch_add(1, Ordering::SeqCst);
                let store = store.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_nodelay(true);
                    store.lock().unwrap_or_else(|e| e.into_inner()).connected();
                    let _ = serve(stream, &store);
                    store
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .disconnected();
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => eprintln!("kv_server: accept: {e}"),
        }
    }
    let store = store.lock().unwrap_or_else(|e| e.into_inner());
    let mut report = String::from("kv_server: stopped; counters:\n");
    report += &format!("accepted: {}\n", accepted.load(Ordering::SeqCst));
    for (name, value) in store.counters() {
        report += &format!("{name}: {value}\n");
    }
    print!("{report}");
    let _ = io::stdout().flush();
}
