//! Stopping a server: a request counted in an atomic and a wake-up per worker, from
//! any thread, a signal handler, or the handlers [`ShutdownHandle::on_signals`]
//! installs.

use std::io;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;

use nix::sys::signal::Signal;

#[cfg(doc)]
use super::{Config, Server, Stats};
use crate::sources::Waker;

/// Stops a running [`Server`]: drains it, then makes `run` return.
///
/// `Clone + Send + Sync`. [`shutdown`](Self::shutdown) counts a request and wakes
/// every worker through its [`Waker`], so it can be called from any thread and
/// from a signal handler. The first request drains: the loop stops accepting and
/// reading, delivers the output already queued for up to
/// [`Config::drain_timeout`], then closes what is left. A second request (or
/// [`shutdown_now`](Self::shutdown_now)) stops at once.
///
/// A server asleep in a *blocking* `accept` (`nonblocking_listener: false`) does
/// not see the wake-up until `accept` returns: that is the book's bug. A signal
/// whose handler calls [`shutdown`](Self::shutdown), delivered to the server's
/// thread and installed without `SA_RESTART`, interrupts that `accept` (`EINTR`),
/// and the loop then stops; the example `echo_server` does this.
///
/// # Examples
/// The drain: a reply queued when the stop comes is delivered whole, then the
/// connection is closed.
/// ```
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
/// use std::time::Duration;
/// use unp_select::server::{Config, Context, Protocol, Server};
///
/// const REPLY: usize = 8 << 20; // more than the socket buffers hold
/// struct Big;
/// impl Protocol for Big {
///     type Conn = ();
///     fn connect(&mut self, _: &mut Context<'_>) {}
///     fn receive(&mut self, _: &mut (), _: &[u8], ctx: &mut Context<'_>) {
///         let _ = ctx.send(&vec![b'x'; REPLY]);
///     }
/// }
///
/// let server = Server::bind("127.0.0.1:0", Big, Config::default())?;
/// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
/// let thread = std::thread::spawn(move || server.run_poll());
///
/// let mut conn = TcpStream::connect(addr)?;
/// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
/// conn.write_all(b"?")?;
/// let mut first = [0; 1];
/// conn.read_exact(&mut first)?; // the reply is on its way, most of it queued
/// let remote = stop.clone(); // Clone + Send: any thread may stop the server
/// std::thread::spawn(move || remote.shutdown()).join().unwrap();
/// let mut rest = Vec::new();
/// conn.read_to_end(&mut rest)?; // the drain sends it all, then closes
/// assert_eq!(1 + rest.len(), REPLY);
///
/// let stats = thread.join().unwrap()?;
/// assert_eq!((stats.closed_shutdown, stats.undelivered), (1, 0));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    /// How many times a stop was asked for (a stop at once counts two).
    requests: Arc<AtomicUsize>,
    /// The last signal that asked, through [`on_signals`](Self::on_signals) (0: none).
    signal: Arc<AtomicI32>,
    /// One per worker: each reads its own.
    wakers: Arc<[Waker]>,
}

/// What a [`ShutdownHandle`] asks of the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Nothing: go on.
    No,
    /// Drain, then stop.
    Drain,
    /// Stop at once.
    Now,
}

impl ShutdownHandle {
    pub(super) fn new(workers: usize) -> io::Result<ShutdownHandle> {
        let wakers = (0..workers.max(1))
            .map(|_| Waker::new())
            .collect::<io::Result<Vec<_>>>()?;
        Ok(ShutdownHandle {
            requests: Arc::new(AtomicUsize::new(0)),
            signal: Arc::new(AtomicI32::new(0)),
            wakers: wakers.into(),
        })
    }

    /// Asks the server to stop: the first call drains it (see above), a second
    /// one stops it at once. Calling it after the server ended does nothing.
    ///
    /// It is async-signal-safe: it adds to an atomic counter and calls
    /// [`Waker::wake`] for each worker, which sends one byte, allocates nothing,
    /// takes no lock and keeps `errno`.
    ///
    /// # Examples
    /// ```
    /// use unp_select::echo::{Echo, EchoServer};
    /// use unp_select::server::Config;
    /// let server = EchoServer::bind("127.0.0.1:0", Echo::Bytes, Config::book())?;
    /// let stop = server.shutdown_handle();
    /// stop.shutdown(); // before it runs: run returns at once
    /// let stats = server.run()?;
    /// assert_eq!(stats.accepted, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown(&self) {
        self.request(1);
    }

    /// Asks the server to stop at once, without draining: connections with output
    /// still queued are closed ([`Stats::undelivered`]). Async-signal-safe, as
    /// [`shutdown`](Self::shutdown).
    ///
    /// # Examples
    /// ```
    /// use unp_select::echo::{Echo, EchoServer};
    /// use unp_select::server::Config;
    /// let server = EchoServer::bind("127.0.0.1:0", Echo::Bytes, Config::book())?;
    /// server.shutdown_handle().shutdown_now();
    /// assert_eq!(server.run()?.accepted, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown_now(&self) {
        self.request(2);
    }

    /// Makes each of `signals` (typically `SIGINT` and `SIGTERM`) call
    /// [`shutdown`](Self::shutdown): the first drains the server, a second stops it
    /// at once. No `unsafe` for the caller: the handler is this crate's, and does
    /// only what a signal handler may (an atomic add and one `send(2)` per worker,
    /// with `errno` kept).
    ///
    /// The handler is installed without `SA_RESTART`, so a blocking `accept` or
    /// `select` in the thread that takes the signal fails with `EINTR` and the loop
    /// sees the request at once. It replaces any handler installed before for those
    /// signals. The handle (its counter and wakers) is kept for the life of the
    /// process; each call keeps one more. [`signal`](Self::signal) tells which
    /// signal asked last.
    ///
    /// # Errors
    /// `InvalidInput` for a signal that cannot be caught (`SIGKILL`, `SIGSTOP`);
    /// `OutOfMemory` once 16 handles are kept; the errors of `sigaction(2)`.
    ///
    /// # Platform-specific behavior
    /// A process-directed signal goes to any thread that does not block it; a
    /// server thread asleep in a blocking `accept` (`nonblocking_listener: false`)
    /// is woken only if the signal reaches that thread.
    ///
    /// # Examples
    /// ```
    /// use unp_select::echo::{Echo, EchoServer};
    /// use unp_select::server::Config;
    /// use unp_select::nix::sys::signal::{raise, Signal};
    ///
    /// let server = EchoServer::bind("127.0.0.1:0", Echo::Bytes, Config::book())?;
    /// let stop = server.shutdown_handle();
    /// stop.on_signals(&[Signal::SIGUSR1])?;
    /// let thread = std::thread::spawn(move || server.run());
    /// raise(Signal::SIGUSR1)?; // as `kill -USR1 <pid>` would
    /// assert_eq!(thread.join().unwrap()?.accepted, 0);
    /// assert_eq!(stop.signal(), Some(Signal::SIGUSR1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # References
    /// - [sigaction(2)](https://man7.org/linux/man-pages/man2/sigaction.2.html),
    ///   [signal-safety(7)](https://man7.org/linux/man-pages/man7/signal-safety.7.html)
    pub fn on_signals(&self, signals: &[Signal]) -> io::Result<()> {
        let handle = self.clone();
        crate::sys::on_signals(
            signals,
            Box::new(move |signo| {
                handle.signal.store(signo, Ordering::SeqCst);
                handle.request(1);
            }),
        )
    }

    /// The last signal whose handler ([`on_signals`](Self::on_signals)) asked for a
    /// stop, if any.
    ///
    /// # Examples
    /// See [`on_signals`](Self::on_signals)'s: `SIGUSR1` is named after it stopped
    /// the server.
    pub fn signal(&self) -> Option<Signal> {
        Signal::try_from(self.signal.load(Ordering::SeqCst)).ok()
    }

    /// Asks for a drain, unless a stop was asked already: what a protocol's
    /// [`Context::shutdown_server`](super::Context::shutdown_server) and a failing
    /// worker ask, however often.
    pub(crate) fn drain(&self) {
        let _ = self
            .requests
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst);
        self.wake_all();
    }

    fn request(&self, n: usize) {
        self.requests.fetch_add(n, Ordering::SeqCst);
        self.wake_all();
    }

    fn wake_all(&self) {
        for waker in self.wakers.iter() {
            // A full socket (EAGAIN) is a success; nothing else can fail while the
            // waker's two ends live, and there is nothing to do about it in a
            // handler.
            let _ = waker.wake();
        }
    }

    /// What has been asked.
    pub(crate) fn stop(&self) -> Stop {
        match self.requests.load(Ordering::SeqCst) {
            0 => Stop::No,
            1 => Stop::Drain,
            _ => Stop::Now,
        }
    }

    /// Worker `worker`'s waker.
    pub(crate) fn waker(&self, worker: usize) -> &Waker {
        &self.wakers[worker % self.wakers.len()]
    }
}
