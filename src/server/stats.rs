//! What the server counted. Every counter saturates at `u64::MAX` instead of
//! overflowing.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Accepts that found nothing to accept, by errno (see
/// [`Accept::NotNow`](crate::Accept::NotNow)): the connection that vanished
/// between `select` and `accept` of UNP 16.6, or the one another worker took.
///
/// # Examples
/// In [`Stats`], each errno on its own line and the total on one:
/// ```
/// use unp_select::server::{EmptyAccepts, Stats};
/// let mut stats = Stats::default();
/// assert_eq!(stats.empty_accepts, EmptyAccepts::default());
/// stats.empty_accepts.would_block = 2; // another worker was first
/// stats.empty_accepts.aborted = 1; // reset before accept (ECONNABORTED)
/// assert_eq!(stats.empty_accepts.total(), 3);
/// let shown = stats.to_string();
/// assert!(shown.contains("empty_accepts: 3\n"));
/// assert!(shown.contains("empty_accepts.would_block: 2\n"));
/// assert!(shown.contains("empty_accepts.aborted: 1\n"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmptyAccepts {
    /// `EAGAIN`/`EWOULDBLOCK`: the queue was empty (someone else took the connection,
    /// or a Berkeley kernel dropped a reset one).
    pub would_block: u64,
    /// `ECONNABORTED`: the connection was aborted before `accept` (POSIX, BSD).
    pub aborted: u64,
    /// `EPROTO`: protocol error on the new connection (SVR4, Linux).
    pub protocol: u64,
    /// `EINTR`: a signal arrived during `accept`.
    pub interrupted: u64,
    /// Any other transient error: `ECONNRESET`, `ETIMEDOUT`, `EPERM` and the
    /// network errors Linux passes up from `accept` (`ENETDOWN`, `ENOSR`, …).
    pub other: u64,
}

impl EmptyAccepts {
    /// All empty accepts together (saturating at `u64::MAX`).
    ///
    /// # Examples
    /// ```
    /// let mut e = unp_select::server::EmptyAccepts::default();
    /// (e.would_block, e.aborted) = (2, 1);
    /// assert_eq!(e.total(), 3);
    /// (e.would_block, e.other) = (u64::MAX, 1);
    /// assert_eq!(e.total(), u64::MAX);
    /// ```
    pub fn total(&self) -> u64 {
        [
            self.would_block,
            self.aborted,
            self.protocol,
            self.interrupted,
            self.other,
        ]
        .into_iter()
        .fold(0, u64::saturating_add)
    }

    pub(super) fn count(&mut self, e: &io::Error) {
        #[allow(unreachable_patterns)]
        let counter = match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EWOULDBLOCK) => &mut self.would_block,
            Some(libc::ECONNABORTED) => &mut self.aborted,
            Some(libc::EPROTO) => &mut self.protocol,
            Some(libc::EINTR) => &mut self.interrupted,
            _ => &mut self.other,
        };
        bump(counter);
    }
}

/// What a server did: returned by [`Server::run`](super::Server::run) after
/// shutdown, and readable while it runs through a [`StatsHandle`]. `Display` prints
/// one `name: value` line per counter.
///
/// Every connection that was served ends in exactly one `closed_*` counter.
///
/// # Examples
/// ```
/// let mut stats = unp_select::server::Stats::default();
/// stats.accepted = 2;
/// assert!(stats.to_string().lines().any(|l| l == "accepted: 2"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections accepted and served.
    pub accepted: u64,
    /// Connections the protocol opened ([`Context::connect`](super::Context::connect))
    /// or adopted ([`Context::adopt`](super::Context::adopt)) that were
    /// established; served as accepted ones from then on.
    pub connected: u64,
    /// Connections the protocol opened that were never established
    /// ([`Protocol::connect_failed`](super::Protocol::connect_failed)).
    pub connect_failed: u64,
    /// Connections accepted and refused at once (too many clients, or a descriptor
    /// that does not fit an `fd_set`).
    pub refused: u64,
    /// `accept` calls that found nothing to accept, by errno.
    pub empty_accepts: EmptyAccepts,
    /// `accept` calls that failed with `EMFILE`, `ENFILE`, `ENOBUFS` or `ENOMEM`.
    pub out_of_resources: u64,
    /// Connections taken off the queue and reset with the reserve descriptor after
    /// running out of descriptors.
    pub shed: u64,
    /// Times the loop or one connection waited [`RESOURCE_BACKOFF`](super::RESOURCE_BACKOFF)
    /// because the kernel was out of memory (`select`/`poll` `ENOMEM`, `recv`/`send`
    /// `ENOMEM`/`ENOBUFS`); nothing is lost.
    pub backoffs: u64,
    /// Connections closed after the peer closed (EOF) and got all their output.
    pub closed_eof: u64,
    /// Connections closed after a read or write error (`ECONNRESET`, `EPIPE`, …).
    pub closed_reset: u64,
    /// Connections closed by the server's policy: output not taken within
    /// [`Config::write_timeout`](super::Config::write_timeout), or output from
    /// others past [`Config::max_output`](super::Config::max_output).
    pub closed_policy: u64,
    /// Connections closed after [`Config::idle_timeout`](super::Config::idle_timeout)
    /// without a whole message or any output progress.
    pub closed_idle: u64,
    /// Connections the protocol closed ([`Context::close`](super::Context::close)).
    pub closed_protocol: u64,
    /// Connections closed because the protocol panicked while handling them.
    pub closed_panic: u64,
    /// Connections still open when the server stopped, closed then (after their
    /// output was delivered, or when the drain ended).
    pub closed_shutdown: u64,
    /// Of those, the ones that still had output unsent: the drain
    /// ([`Config::drain_timeout`](super::Config::drain_timeout)) ended first, or the
    /// stop was at once.
    pub undelivered: u64,
    /// [`Context::send`](super::Context::send) calls refused because the output
    /// would pass [`Config::max_output`](super::Config::max_output).
    pub sends_refused: u64,
    /// Messages delivered to the protocol.
    pub messages_received: u64,
    /// Messages sent: `send`/`send_shared`/`send_to` calls, and each receiver's copy
    /// (or reference) of a broadcast, whose last byte the kernel took.
    pub messages_sent: u64,
    /// Bytes read from connections.
    pub bytes_received: u64,
    /// Bytes the kernel took for sending to connections.
    pub bytes_sent: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.empty_accepts;
        let rows: [(&str, u64); 27] = [
            ("accepted", self.accepted),
            ("connected", self.connected),
            ("connect_failed", self.connect_failed),
            ("refused", self.refused),
            ("empty_accepts", e.total()),
            ("empty_accepts.would_block", e.would_block),
            ("empty_accepts.aborted", e.aborted),
            ("empty_accepts.protocol", e.protocol),
            ("empty_accepts.interrupted", e.interrupted),
            ("empty_accepts.other", e.other),
            ("out_of_resources", self.out_of_resources),
            ("shed", self.shed),
            ("backoffs", self.backoffs),
            ("closed_eof", self.closed_eof),
            ("closed_reset", self.closed_reset),
            ("closed_policy", self.closed_policy),
            ("closed_idle", self.closed_idle),
            ("closed_protocol", self.closed_protocol),
            ("closed_panic", self.closed_panic),
            ("closed_shutdown", self.closed_shutdown),
            ("undelivered", self.undelivered),
            ("sends_refused", self.sends_refused),
            ("messages_received", self.messages_received),
            ("messages_sent", self.messages_sent),
            ("bytes_received", self.bytes_received),
            ("bytes_sent", self.bytes_sent),
            ("open", self.open()),
        ];
        for (name, value) in rows {
            writeln!(f, "{name}: {value}")?;
        }
        Ok(())
    }
}

impl Stats {
    /// Connections open now: accepted or connected, and not yet closed.
    ///
    /// # Examples
    /// ```
    /// let mut stats = unp_select::server::Stats::default();
    /// (stats.accepted, stats.closed_eof) = (3, 1);
    /// assert_eq!(stats.open(), 2);
    /// ```
    pub fn open(&self) -> u64 {
        let closed = [
            self.closed_eof,
            self.closed_reset,
            self.closed_policy,
            self.closed_idle,
            self.closed_protocol,
            self.closed_panic,
            self.closed_shutdown,
        ]
        .into_iter()
        .fold(0, u64::saturating_add);
        self.accepted
            .saturating_add(self.connected)
            .saturating_sub(closed)
    }
}

impl std::ops::AddAssign for Stats {
    /// Adds every counter (saturating): the server's total from its workers'.
    fn add_assign(&mut self, other: Stats) {
        let mut sum = self.to_array();
        for (a, b) in sum.iter_mut().zip(other.to_array()) {
            add(a, b);
        }
        *self = Stats::from_array(sum);
    }
}

impl std::iter::Sum for Stats {
    fn sum<I: Iterator<Item = Stats>>(iter: I) -> Stats {
        iter.fold(Stats::default(), |mut total, s| {
            total += s;
            total
        })
    }
}

/// Reads a running server's [`Stats`] from any thread: the total, or each
/// worker's.
///
/// Each worker publishes its counters at the end of every turn, with relaxed
/// atomic stores (no lock: the loop never waits for a reader). So a snapshot is at
/// most one turn old; counters published in the same turn may be read from two
/// different turns (each counter is whole).
///
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
/// use unp_select::echo::{Echo, EchoServer};
/// use unp_select::server::Config;
/// let server = EchoServer::bind("127.0.0.1:0", Echo::Bytes, Config::book())?;
/// let stats = server.stats_handle();
/// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
/// let thread = std::thread::spawn(move || server.run());
/// let _conn = std::net::TcpStream::connect(addr)?;
/// let deadline = Instant::now() + Duration::from_secs(5);
/// while stats.snapshot().accepted == 0 && Instant::now() < deadline {
///     std::thread::sleep(Duration::from_millis(1));
/// }
/// assert_eq!(stats.snapshot().accepted, 1);
/// assert_eq!(stats.per_worker().len(), 1);
/// stop.shutdown();
/// assert_eq!(thread.join().unwrap()?.accepted, 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct StatsHandle {
    workers: Arc<Mutex<Vec<Arc<Published>>>>,
}

impl StatsHandle {
    /// The counters of every worker added up, as last published (zero before the
    /// server runs).
    ///
    /// # Examples
    /// See [`StatsHandle`]'s example, and
    /// [`Server::stats_handle`](super::Server::stats_handle)'s: the counters of a
    /// running server.
    pub fn snapshot(&self) -> Stats {
        self.per_worker().into_iter().sum()
    }

    /// Each worker's counters, by worker index (empty before the server runs).
    ///
    /// # Examples
    /// See [`Server::run_workers`](super::Server::run_workers)'s: two workers'
    /// accepts add up to the total.
    pub fn per_worker(&self) -> Vec<Stats> {
        let workers = match self.workers.lock() {
            Ok(w) => w.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        workers.iter().map(|w| w.load()).collect()
    }

    /// `n` fresh places for the workers to publish in.
    pub(super) fn start(&self, n: usize) -> Vec<Arc<Published>> {
        let slots: Vec<_> = (0..n).map(|_| Arc::new(Published::default())).collect();
        match self.workers.lock() {
            Ok(mut w) => *w = slots.clone(),
            Err(poisoned) => *poisoned.into_inner() = slots.clone(),
        }
        slots
    }
}

/// How many counters a [`Stats`] has.
const COUNTERS: usize = 25;

/// One worker's published counters, each an atomic.
#[derive(Debug, Default)]
pub(super) struct Published([AtomicU64; COUNTERS]);

impl Published {
    /// Publishes `stats` (relaxed stores: each counter is read whole, no order
    /// between them is promised).
    pub(super) fn store(&self, stats: &Stats) {
        for (slot, value) in self.0.iter().zip(stats.to_array()) {
            slot.store(value, Ordering::Relaxed);
        }
    }

    fn load(&self) -> Stats {
        Stats::from_array(std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)))
    }
}

impl Stats {
    fn to_array(self) -> [u64; COUNTERS] {
        let e = &self.empty_accepts;
        [
            self.accepted,
            self.refused,
            e.would_block,
            e.aborted,
            e.protocol,
            e.interrupted,
            e.other,
            self.out_of_resources,
            self.shed,
            self.backoffs,
            self.closed_eof,
            self.closed_reset,
            self.closed_policy,
            self.closed_protocol,
            self.closed_panic,
            self.closed_shutdown,
            self.messages_received,
            self.messages_sent,
            self.bytes_received,
            self.bytes_sent,
            self.closed_idle,
            self.undelivered,
            self.sends_refused,
            self.connected,
            self.connect_failed,
        ]
    }

    fn from_array(a: [u64; COUNTERS]) -> Stats {
        Stats {
            accepted: a[0],
            refused: a[1],
            empty_accepts: EmptyAccepts {
                would_block: a[2],
                aborted: a[3],
                protocol: a[4],
                interrupted: a[5],
                other: a[6],
            },
            out_of_resources: a[7],
            shed: a[8],
            backoffs: a[9],
            closed_eof: a[10],
            closed_reset: a[11],
            closed_policy: a[12],
            closed_protocol: a[13],
            closed_panic: a[14],
            closed_shutdown: a[15],
            messages_received: a[16],
            messages_sent: a[17],
            bytes_received: a[18],
            bytes_sent: a[19],
            closed_idle: a[20],
            undelivered: a[21],
            sends_refused: a[22],
            connected: a[23],
            connect_failed: a[24],
        }
    }
}

/// Adds one, saturating.
pub(super) fn bump(counter: &mut u64) {
    add(counter, 1);
}

/// Adds `n`, saturating.
pub(super) fn add(counter: &mut u64, n: u64) {
    *counter = counter.saturating_add(n);
}
