//! Helpers shared by the integration tests: a watchdog and small socket utilities
//! here; descriptors (`fds`), signals (`signals`), the example binaries (`examples`),
//! a process to oneself (`fresh`), and for the reliability suite its load (`load`),
//! an echo server thread (`server`) and streaming clients (`clients`).
#![allow(dead_code)]

pub mod alloc;
pub mod clients;
pub mod examples;
pub mod fds;
pub mod fresh;
pub mod load;
pub mod server;
pub mod signals;
pub mod sources;
pub mod tools;

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The tests of a binary run side by side: most of their time is spent waiting on
/// sockets, timers and child processes. The few that measure a latency against a
/// bound (and most of them load the machine to do it) take [`timing`], so that no
/// two of them measure each other.
static TIMING: Mutex<()> = Mutex::new(());

/// Held by a test that measures latencies: no other such test runs meanwhile.
pub fn timing() -> MutexGuard<'static, ()> {
    TIMING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Aborts the whole test process if it is still alive after `limit`, so no test can
/// hang CI. Dropping the guard disarms it.
pub struct Watchdog {
    done: Arc<AtomicBool>,
}

impl Watchdog {
    pub fn new(name: &'static str, limit: Duration) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        std::thread::spawn(move || {
            let step = Duration::from_millis(50);
            let mut waited = Duration::ZERO;
            while waited < limit {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(step);
                waited += step;
            }
            eprintln!("watchdog: test `{name}` still running after {limit:?}; aborting");
            std::process::abort();
        });
        Watchdog { done }
    }

    /// [`Watchdog::new`] with a limit of `secs` seconds.
    pub fn secs(name: &'static str, secs: u64) -> Watchdog {
        Watchdog::new(name, Duration::from_secs(secs))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

/// A line-oriented client with a read timeout.
pub struct LineClient {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl LineClient {
    pub fn connect(addr: SocketAddr, read_timeout: Duration) -> io::Result<LineClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(read_timeout))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(LineClient { stream, reader })
    }

    pub fn send(&mut self, line: &str) -> io::Result<()> {
        self.stream.write_all(line.as_bytes())
    }

    /// Reads one line; `Err(WouldBlock/TimedOut)` when nothing came within the timeout.
    pub fn recv(&mut self) -> io::Result<String> {
        let mut s = String::new();
        self.reader.read_line(&mut s)?;
        Ok(s)
    }

    /// Closes with an RST (SO_LINGER {on, 0}); the reader's duplicate descriptor is
    /// closed first, or the socket would stay open.
    pub fn abort(self) -> io::Result<()> {
        drop(self.reader);
        unp_select::linger::abort(self.stream)
    }

    pub fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(t))
    }

    /// Sends `line` and expects it back.
    pub fn echo(&mut self, line: &str) -> io::Result<()> {
        self.send(line)?;
        let got = self.recv()?;
        if got != line {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("sent {line:?}, got {got:?}"),
            ));
        }
        Ok(())
    }
}

/// True for the errors a read timeout gives (`EAGAIN` on Linux).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
