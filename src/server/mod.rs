//! The hardened server loop of UNP's `tcpservselect01` (section 6.8) and
//! `tcpservpoll01` (6.11), generic over the protocol: you write what to do with a
//! message, the loop does the rest.
//!
//! A [`Protocol`] keeps state per connection and gets each message, cut as it
//! chooses ([`Frame`]: bytes as they come, lines up to a maximum, or exactly N
//! bytes, changed between messages). It answers through a [`Context`]: to its own
//! connection, to any other by [`ConnId`] ([`Context::send_to`],
//! [`Context::broadcast`]), by closing or half-closing. Everything else is the
//! loop's, the same for every protocol:
//!
//! - **UNP 16.6**: a nonblocking listener, and `accept` errors sorted by what they
//!   mean ([`accept`](mod@crate::accept)): a connection that vanished between `select`
//!   and `accept` sends the loop back to `select` ([`Stats::empty_accepts`]).
//! - **Out of descriptors** (`EMFILE`): the pending connection is shed with a
//!   reserve descriptor ([`FdReserve`](crate::FdReserve)); if that fails, the
//!   listener rests for [`ACCEPT_BACKOFF`]. `max_clients` more are refused (reset).
//! - **Fair turns**: per turn, a connection gets at most one `read`, messages
//!   up to [`Config::input_per_turn`] bytes of its input (64 KiB: the requests
//!   one read brought, however many frames each is), and one `send` for all
//!   they produced (one `sendmsg` when the output is in several pieces), so
//!   pipelined requests are answered together, whatever Nagle's algorithm does.
//!   Messages left in its buffer are served next turn before the loop sleeps
//!   (UNP 6.8's `readlinebuf` check). Output from others never costs a
//!   connection its own readiness.
//! - **Back-pressure per message**: output the kernel does not take stays
//!   queued; after each message, while more than [`Config::max_unsent`] bytes
//!   wait, the connection's further messages wait in its buffer and it is not
//!   read. A reply is never cut: a [`Context::send`] past [`Config::max_output`]
//!   is refused with a reason ([`SendError`]), and a large reply is streamed
//!   piece by piece ([`Context::wait_drained`], [`Protocol::drained`]) in
//!   bounded memory. Output not all sent within [`Config::write_timeout`], or
//!   output from others past [`Config::max_output`], closes the connection: a
//!   slow reader never slows the others. All connections' unsent output together
//!   is bounded too ([`Config::max_output_total`]): past it, input waits.
//! - **Shared output**: a connection's queue holds copies of small writes and
//!   references to shared buffers ([`Context::send_shared`]; a
//!   [`Context::broadcast`] shares one copy among its receivers).
//! - **Timers**: an idle time-out ([`Config::idle_timeout`]) and a timer per
//!   connection for the protocol ([`Context::set_timer`], [`Protocol::timer`]),
//!   kept in a heap: a turn looks only at what is due.
//! - **Close reasons**: [`Protocol::disconnect`] learns why ([`CloseReason`]).
//! - **Kernel out of memory** (`ENOMEM`, `ENOBUFS`) in `select`, `poll`, `recv` or
//!   `send`: nothing is lost; the loop, or that connection, waits
//!   [`RESOURCE_BACKOFF`] and tries again.
//! - **Errors end a connection, not the server.** Only errors that mean the server
//!   itself is broken (`EBADF`, `EFAULT`, `EINVAL`, `ENOTSOCK`) end
//!   [`Server::run`]. A protocol that panics loses that connection
//!   ([`Stats::closed_panic`]).
//! - **Graceful shutdown** through a [`Waker`] ([`ShutdownHandle`]), from any
//!   thread or a signal handler: the loop stops accepting and reading, delivers
//!   what is queued for up to [`Config::drain_timeout`], then closes; a second
//!   request stops it at once. Live [`Stats`] through a [`StatsHandle`].
//! - **One loop, three waits**: [`Server::run`] (select over [`FdSet`]),
//!   [`Server::run_large`] (select over [`LargeFdSet`]), [`Server::run_poll`].
//! - **TCP or Unix-domain** listeners (UNP chapter 15): [`Listener`].
//! - **Past one core**: [`Config::workers`] loops on as many threads
//!   ([`Server::run_workers`]), over one shared nonblocking listener or one
//!   listener each with `SO_REUSEPORT` ([`Config::reuseport`]); a broadcast
//!   reaches the connections of every worker. [`Config::accept_batch`] accepts
//!   several connections per readiness of the listener.
//!
//! # Workers and UNP 16.6
//! With several workers on one listener, the race of UNP 16.6 is the normal case:
//! the kernel wakes every worker whose `select` watches the listener, one wins the
//! connection, and the others' `accept` finds the queue empty (`EAGAIN`, counted in
//! [`Stats::empty_accepts`]; on Linux most losers go back to sleep inside `select`
//! without returning, so the herd shows as context switches more than as empty
//! accepts). The nonblocking listener is what keeps a loser from sleeping in
//! `accept` while its connections starve. With `SO_REUSEPORT` each worker has its
//! own accept queue: there is no race and no herd, but a connection waits in the
//! queue of the worker the kernel's hash chose, busy or not.
//!
//! The loop keeps the book's shape:
//!
//! | UNP (C) | here |
//! |---|---|
//! | `int client[FD_SETSIZE]`, `-1` = free | `client: Vec<Option<Conn>>`, `None` = free, grown on demand up to `max_clients` |
//! | `fd_set allset` / `rset = allset`, `Select(maxfd + 1, …)` | [`Sources`](crate::sources::Sources), whose `wait` does exactly that |
//! | `if (FD_ISSET(listenfd, &rset))`, `for (i = 0; i <= maxi; i++) if (FD_ISSET(sockfd, &rset))` | the ready keys of the wait: the listener's, then each ready connection's |
//! | `char buf[MAXLINE]`, `Read` | one read buffer for the whole loop, one `read` into it per connection and turn |
//! | `Writen(sockfd, buf, n)` | one `send` per connection and turn; output that is part of the input read is sent straight out of the read buffer, with no copy |
//! | `Accept`, `Close` | `accept4` with sorted errors, `close` |
//!
//! # Examples
//! A protocol in a few lines: each line comes back upper-cased.
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use unp_select::server::{Config, Context, Frame, Protocol, Server};
//!
//! struct Shout;
//! impl Protocol for Shout {
//!     type Conn = ();
//!     fn connect(&mut self, ctx: &mut Context<'_>) {
//!         ctx.set_frame(Frame::Line);
//!     }
//!     fn receive(&mut self, _: &mut (), line: &[u8], ctx: &mut Context<'_>) {
//!         let _ = ctx.send(&line.to_ascii_uppercase());
//!     }
//! }
//!
//! let server = Server::bind("127.0.0.1:0", Shout, Config::default())?;
//! let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
//! let thread = std::thread::spawn(move || server.run_poll());
//!
//! let mut conn = TcpStream::connect(addr)?;
//! conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
//! conn.write_all(b"hello\n")?;
//! let mut reply = String::new();
//! BufReader::new(&conn).read_line(&mut reply)?;
//! assert_eq!(reply, "HELLO\n");
//!
//! stop.shutdown();
//! let stats = thread.join().unwrap()?;
//! assert_eq!((stats.accepted, stats.messages_sent), (1, 1));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Platform-specific behavior
//! [`Server::bind`] sets the listen backlog with a second `listen(2)`, which Linux,
//! the BSDs and Apple accept; each kernel caps the value silently (Linux:
//! `net.core.somaxconn`, 4096 since 5.4). Writes never raise `SIGPIPE`
//! (`MSG_NOSIGNAL`; Apple: `SO_NOSIGPIPE` on each connection).
//!
//! # References
//! - W. Richard Stevens, Bill Fenner, Andrew M. Rudoff, *Unix Network Programming,
//!   Volume 1*, 3rd ed.: 4.5 (`listen` and its backlog, `LISTENQ` 1024), 6.6
//!   (`shutdown`), 6.8 (`tcpservselect01`), 6.11 (`tcpservpoll01`), 15 (Unix-domain
//!   sockets), 16.6 (nonblocking `accept`).
//! - Linux [listen(2)](https://man7.org/linux/man-pages/man2/listen.2.html),
//!   [send(2)](https://man7.org/linux/man-pages/man2/send.2.html) (`MSG_NOSIGNAL`)

mod conn;
mod dial;
mod hub;
mod output;
mod protocol;
mod serve;
mod shutdown;
mod stats;
mod table;
mod timers;
mod totals;

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::select::FD_SETSIZE;
#[cfg(doc)]
use crate::select::{FdSet, LargeFdSet};
use crate::sources::Backend;
#[cfg(doc)]
use crate::sources::Waker;

pub use dial::ConnectError;
pub use protocol::{CloseReason, ConnId, Context, Frame, Protocol, SendError};
pub use shutdown::ShutdownHandle;
pub(crate) use shutdown::Stop;
pub use stats::{EmptyAccepts, Stats, StatsHandle};

/// How many messages one connection of the book's echo server may have handled in
/// one turn of the loop before the others get theirs: 16. The rest stay buffered
/// for the next turn ([`Config::book`]). [`Server`]'s default quota counts input
/// bytes instead ([`Config::input_per_turn`]).
///
/// # Examples
/// See [`Config`]'s example, which checks every one of these constants.
pub const MESSAGES_PER_TURN: usize = 16;

/// How much input one connection may have delivered in one turn: 64 KiB, the most
/// one `read` takes. The default [`Config::input_per_turn`].
///
/// # Examples
/// See [`Config`]'s example, which checks every one of these constants.
pub const INPUT_PER_TURN: usize = 64 * 1024;

/// How long the listener stays out of the wait after `accept` ran out of
/// descriptors and no connection could be shed, or ran out of kernel memory:
/// 100 ms.
///
/// # Examples
/// See [`Config`]'s example, which checks every one of these constants.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long the loop (after `select`/`poll` failed with `ENOMEM`) or one
/// connection (after `recv`/`send` failed with `ENOMEM`/`ENOBUFS`) waits before
/// trying again: 10 ms.
///
/// # Examples
/// See [`Config`]'s example, which checks every one of these constants.
pub const RESOURCE_BACKOFF: Duration = Duration::from_millis(10);

/// UNP's `MAXLINE`: 4096. `readline(fd, buf, MAXLINE)` returns at most
/// `MAXLINE - 1` bytes, the default [`Config::max_line`].
///
/// # Examples
/// See [`Config`]'s example, which checks every one of these constants.
pub const MAXLINE: usize = 4096;

/// UNP's `LISTENQ`: 1024, the default [`Config::backlog`].
///
/// # Examples
/// See [`Config`]'s example, which checks every one of these constants.
pub const LISTENQ: u32 = 1024;

/// How the loop behaves. The defaults are the book's where it has one.
///
/// It is `#[non_exhaustive]`: start from [`Config::default`] and change fields, or
/// chain the `with_` methods.
///
/// # Examples
/// The defaults come from the book's constants; every `with_` method sets its
/// field and nothing else:
/// ```
/// use std::time::Duration;
/// use unp_select::server::{
///     Config, ACCEPT_BACKOFF, INPUT_PER_TURN, LISTENQ, MAXLINE, MESSAGES_PER_TURN,
///     RESOURCE_BACKOFF,
/// };
///
/// let default = Config::default();
/// assert_eq!((default.max_line, MAXLINE), (4095, 4096)); // readline's MAXLINE - 1
/// assert_eq!((default.backlog, LISTENQ), (1024, 1024));
/// assert_eq!((default.input_per_turn, INPUT_PER_TURN), (64 * 1024, 64 * 1024));
/// assert_eq!(Config::book().messages_per_turn, MESSAGES_PER_TURN);
/// assert_eq!(MESSAGES_PER_TURN, 16);
/// assert_eq!(ACCEPT_BACKOFF, Duration::from_millis(100));
/// assert_eq!(RESOURCE_BACKOFF, Duration::from_millis(10));
///
/// let secs = Duration::from_secs;
/// let config = Config::default()
///     .with_nonblocking_listener(false)
///     .with_accept_delay(Some(secs(1)))
///     .with_max_clients(100)
///     .with_max_line(80)
///     .with_input_per_turn(1024)
///     .with_messages_per_turn(8)
///     .with_max_unsent(4096)
///     .with_max_output(1 << 20)
///     .with_max_output_total(1 << 24)
///     .with_idle_timeout(Some(secs(60)))
///     .with_drain_timeout(secs(2))
///     .with_connect_timeout(secs(3))
///     .with_write_timeout(secs(4))
///     .with_backlog(64)
///     .with_accept_batch(16)
///     .with_workers(2)
///     .with_reuseport(false)
///     .with_nodelay(false);
/// assert!(!config.nonblocking_listener);
/// assert_eq!(config.accept_delay, Some(secs(1)));
/// assert_eq!((config.max_clients, config.max_line), (100, 80));
/// assert_eq!((config.input_per_turn, config.messages_per_turn), (1024, 8));
/// assert_eq!((config.max_unsent, config.max_output), (4096, 1 << 20));
/// assert_eq!(config.max_output_total, 1 << 24);
/// assert_eq!(config.idle_timeout, Some(secs(60)));
/// assert_eq!((config.drain_timeout, config.connect_timeout), (secs(2), secs(3)));
/// assert_eq!(config.write_timeout, secs(4));
/// assert_eq!((config.backlog, config.accept_batch, config.workers), (64, 16, 2));
/// assert!(!config.reuseport && !config.nodelay);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Make the listener nonblocking (UNP 16.6's fix). Default `true`; `false`
    /// reproduces the book's hang: a blocking `accept` after the connection vanished.
    pub nonblocking_listener: bool,
    /// Wait this long between the listener being reported readable and `accept`
    /// (the `sleep(5)` of UNP 16.6), to open the race window on purpose. A shutdown
    /// ends the wait. Default `None`.
    pub accept_delay: Option<Duration>,
    /// Most connections served at once, counted across all workers (each
    /// worker's `client[]` grows on demand up to it); more are refused (reset).
    /// Default [`FD_SETSIZE`], as in the book. [`Server::run`] also refuses any
    /// descriptor `>= FD_SETSIZE`.
    pub max_clients: usize,
    /// The longest line ([`Frame::Line`]; a longer one comes in pieces of this
    /// size), and the most bytes one read delivers ([`Frame::Bytes`]). Default
    /// `MAXLINE - 1` (4095), the longest piece UNP's `readline` returns and
    /// `str_cli` sends.
    pub max_line: usize,
    /// The fairness quota: a connection's turn delivers messages until this much
    /// of its input has been delivered, then the others get theirs (what is left
    /// waits, and is served next turn before the loop sleeps). Default
    /// [`INPUT_PER_TURN`] (64 KiB, one `read`'s worth), so the requests one read
    /// brought are answered together, in one `send`, however many frames each is.
    pub input_per_turn: usize,
    /// At most this many messages per connection and turn, besides
    /// [`input_per_turn`](Self::input_per_turn). Default no limit (`usize::MAX`);
    /// the book's echo server uses [`MESSAGES_PER_TURN`] ([`Config::book`]).
    pub messages_per_turn: usize,
    /// Back-pressure, per message: after each message, while more than this many
    /// bytes of the connection's output are unsent, its further messages wait in
    /// its buffer and it is not read, until the output drains. Default 64 KiB; 0
    /// stops as soon as anything is unsent (the echo server's, [`Config::book`]). Half of it
    /// is the low-water mark of a streamed reply ([`Context::wait_drained`]).
    pub max_unsent: usize,
    /// The most unsent output one connection may hold. A
    /// [`Context::send`] past it is refused ([`SendError::MaxOutput`]; the
    /// connection goes on), and a connection that output from others
    /// ([`Context::send_to`], [`Context::broadcast`]) takes past it is closed
    /// ([`CloseReason::MaxOutput`], [`Stats::closed_policy`]): the memory a slow
    /// reader can hold. Default 16 MiB. Shared buffers count their full length.
    pub max_output: usize,
    /// The most unsent output of all connections together (all workers),
    /// including what waits in a worker's inbox for its connections (a
    /// [`Context::broadcast`] or [`Context::send_to`] from another worker). While
    /// it is passed, no connection's input is delivered or read (a limit slows
    /// input first; it never cuts a reader), until enough has been sent. Default
    /// 256 MiB.
    pub max_output_total: usize,
    /// Close a connection that for this long has neither delivered a whole
    /// message nor had any output taken by the kernel ([`CloseReason::IdleTimeout`],
    /// [`Stats::closed_idle`]): idle clients, and clients that trickle a message
    /// byte by byte, give back their slot. Default `None`: never (the book's).
    pub idle_timeout: Option<Duration>,
    /// After [`ShutdownHandle::shutdown`], how long the loop goes on delivering
    /// queued output (it no longer accepts or reads) before it closes what is
    /// left ([`Stats::undelivered`]). Default 5 s; zero stops at once, as a second
    /// `shutdown` does.
    pub drain_timeout: Duration,
    /// How long a connection the protocol opens ([`Context::connect`]) may take to
    /// be established before it fails with [`ConnectError::TimedOut`]. Default 10 s.
    pub connect_timeout: Duration,
    /// How long a connection may go without all its output sent, counted from when
    /// output first stayed unsent until none is left (a peer that reads, but never
    /// catches up, is closed too), before the connection is closed. For a paired
    /// connection ([`Context::pair`]) each byte the kernel takes starts it again:
    /// its queue is refilled from its partner as fast as it drains, so only a
    /// reader that stops is closed. Default 10
    /// seconds; a duration too long to add to an [`Instant`](std::time::Instant)
    /// (such as `Duration::MAX`) never expires.
    pub write_timeout: Duration,
    /// The listen backlog [`Server::bind`] asks for. Default [`LISTENQ`] (1024);
    /// the kernel caps it (Linux: `net.core.somaxconn`). [`Server::new`] leaves the
    /// listener it is given as it is.
    pub backlog: u32,
    /// The most connections one readiness of the listener may accept, until
    /// `accept` finds the queue empty (nginx's `multi_accept`, bounded). The batch
    /// adapts: one connection while they come one at a time (no `accept` is spent
    /// finding the queue empty), doubling while the listener stays readable turn
    /// after turn, up to this. The connections already served still get their turn
    /// in the same loop turn. Default 1, the book's shape: one `accept` per
    /// `select`; `docs/benchmarks.md` measured 16 as the best quota under
    /// connection churn (a third of the `select` calls per connection).
    pub accept_batch: usize,
    /// How many worker threads [`Server::run_workers`] runs, each with its own loop
    /// and its own connections. Default 1.
    pub workers: usize,
    /// With more than one worker: give each its own listener on the same address
    /// (`SO_REUSEPORT` on Linux, `SO_REUSEPORT_LB` on FreeBSD), and let the kernel
    /// spread connections over them, instead of every worker watching one listener
    /// and racing for each connection (the thundering herd of UNP 30.6). Default
    /// `true`: measured, it had no empty accepts, fewer context switches and
    /// `select` calls per connection, and the same spread (`docs/designs.md`).
    /// `false` shares one listener, which a worker busy in a long turn cannot
    /// hold connections back from. Where the kernel has no such balancing (Apple,
    /// NetBSD, OpenBSD), and with [`Server::new`] (one listener given), the
    /// workers share one listener whatever this says.
    pub reuseport: bool,
    /// Set `TCP_NODELAY` on each accepted TCP connection, so a reply goes out at
    /// once even while an earlier one waits for its ACK (Nagle's algorithm would
    /// hold it, up to the peer's delayed-ACK time, often 40 ms). What
    /// request/response protocols want (memcached and redis set it), and the
    /// default, `true`; the book's echo server leaves it off ([`Config::book`]). It costs one `setsockopt` per
    /// connection.
    pub nodelay: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            nonblocking_listener: true,
            accept_delay: None,
            max_clients: FD_SETSIZE,
            max_line: MAXLINE - 1,
            input_per_turn: INPUT_PER_TURN,
            messages_per_turn: usize::MAX,
            max_unsent: 64 * 1024,
            max_output: 16 * 1024 * 1024,
            max_output_total: 256 * 1024 * 1024,
            idle_timeout: None,
            drain_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            backlog: LISTENQ,
            accept_batch: 1,
            workers: 1,
            reuseport: true,
            nodelay: true,
        }
    }
}

impl Config {
    /// The book's echo server's loop ([`EchoServer`](crate::echo::EchoServer)):
    /// [`Config::default`] with four settings of `tcpservselect01`, which is
    /// built for echo, not for request/response:
    ///
    /// - [`messages_per_turn`](Self::messages_per_turn) = [`MESSAGES_PER_TURN`]
    ///   (16), not unlimited: a client that pipelines many short lines gets at
    ///   most 16 echoed per turn (UNP 6.8's `readlinebuf` fairness), however few
    ///   bytes they are.
    /// - [`max_unsent`](Self::max_unsent) = 0, not 64 KiB: the book's `Writen`
    ///   blocks until every echo is written, so a client is not read again until
    ///   its echoes are out. Here its reading stops as soon as anything is unsent
    ///   (back-pressure at once), without freezing the others: a client that
    ///   does not read its echoes is not read either.
    /// - [`nodelay`](Self::nodelay) = `false`, not `true`: the book never sets
    ///   `TCP_NODELAY`; an echo goes out as soon as it is read, and Nagle's
    ///   algorithm only merges echoes a client has not yet acknowledged.
    /// - [`drain_timeout`](Self::drain_timeout) = zero, not 5 s: the book's
    ///   server has no graceful stop; on shutdown the loop closes its clients at
    ///   once, echoes still unsent counted in [`Stats::undelivered`].
    ///
    /// Every other field is the default, which is the book's where it has one
    /// (`FD_SETSIZE` clients, `MAXLINE - 1` bytes per read or line piece,
    /// `LISTENQ` backlog, one `accept` per readiness, one worker).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use unp_select::server::{Config, MESSAGES_PER_TURN};
    ///
    /// let book = Config::book();
    /// assert_eq!(book.messages_per_turn, MESSAGES_PER_TURN);
    /// assert_eq!((book.max_unsent, book.nodelay), (0, false));
    /// assert!(book.drain_timeout.is_zero());
    /// // Those four are all that differs from the default.
    /// let back = book
    ///     .with_messages_per_turn(usize::MAX)
    ///     .with_max_unsent(64 * 1024)
    ///     .with_nodelay(true)
    ///     .with_drain_timeout(Duration::from_secs(5));
    /// assert_eq!(back, Config::default());
    /// ```
    pub fn book() -> Config {
        Config::default()
            .with_messages_per_turn(MESSAGES_PER_TURN)
            .with_max_unsent(0)
            .with_nodelay(false)
            .with_drain_timeout(Duration::ZERO)
    }
}

/// Chainable setters, one per field, for building a [`Config`] in one expression.
impl Config {
    /// Sets [`nonblocking_listener`](Self::nonblocking_listener).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_nonblocking_listener(mut self, nonblocking: bool) -> Config {
        self.nonblocking_listener = nonblocking;
        self
    }

    /// Sets [`accept_delay`](Self::accept_delay).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_accept_delay(mut self, delay: Option<Duration>) -> Config {
        self.accept_delay = delay;
        self
    }

    /// Sets [`max_clients`](Self::max_clients).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_max_clients(mut self, max_clients: usize) -> Config {
        self.max_clients = max_clients;
        self
    }

    /// Sets [`max_line`](Self::max_line).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_max_line(mut self, max_line: usize) -> Config {
        self.max_line = max_line;
        self
    }

    /// Sets [`messages_per_turn`](Self::messages_per_turn).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_messages_per_turn(mut self, n: usize) -> Config {
        self.messages_per_turn = n;
        self
    }

    /// Sets [`input_per_turn`](Self::input_per_turn).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_input_per_turn(mut self, bytes: usize) -> Config {
        self.input_per_turn = bytes;
        self
    }

    /// Sets [`max_output_total`](Self::max_output_total).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_max_output_total(mut self, bytes: usize) -> Config {
        self.max_output_total = bytes;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`drain_timeout`](Self::drain_timeout).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Config {
        self.drain_timeout = timeout;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Config {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`max_unsent`](Self::max_unsent).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_max_unsent(mut self, bytes: usize) -> Config {
        self.max_unsent = bytes;
        self
    }

    /// Sets [`max_output`](Self::max_output).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_max_output(mut self, bytes: usize) -> Config {
        self.max_output = bytes;
        self
    }

    /// Sets [`write_timeout`](Self::write_timeout).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_write_timeout(mut self, timeout: Duration) -> Config {
        self.write_timeout = timeout;
        self
    }

    /// Sets [`backlog`](Self::backlog).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_backlog(mut self, backlog: u32) -> Config {
        self.backlog = backlog;
        self
    }

    /// Sets [`accept_batch`](Self::accept_batch).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_accept_batch(mut self, n: usize) -> Config {
        self.accept_batch = n;
        self
    }

    /// Sets [`workers`](Self::workers).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_workers(mut self, n: usize) -> Config {
        self.workers = n;
        self
    }

    /// Sets [`reuseport`](Self::reuseport).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_reuseport(mut self, on: bool) -> Config {
        self.reuseport = on;
        self
    }

    /// Sets [`nodelay`](Self::nodelay).
    ///
    /// # Examples
    /// See [`Config`]'s example, which calls every `with_` method.
    #[must_use]
    pub fn with_nodelay(mut self, on: bool) -> Config {
        self.nodelay = on;
        self
    }

    fn check(&self) -> io::Result<()> {
        let ones = [
            ("max_clients", self.max_clients),
            ("max_line", self.max_line),
            ("input_per_turn", self.input_per_turn),
            ("messages_per_turn", self.messages_per_turn),
            ("accept_batch", self.accept_batch),
            ("workers", self.workers),
        ];
        if let Some((name, _)) = ones.iter().find(|(_, v)| *v == 0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("server: Config::{name} is 0; it must be at least 1"),
            ));
        }
        if self.workers > usize::from(u16::MAX) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "server: at most 65535 workers",
            ));
        }
        Ok(())
    }

    /// Whether the workers get one listener each.
    fn listener_per_worker(&self) -> bool {
        self.reuseport && self.workers > 1 && crate::sys::BALANCED_REUSEPORT
    }
}

/// The listening socket the loop accepts on: TCP, or Unix-domain (UNP chapter 15).
///
/// # Examples
/// ```
/// use unp_select::server::Listener;
/// let tcp: Listener = std::net::TcpListener::bind("127.0.0.1:0")?.into();
/// assert!(matches!(tcp, Listener::Tcp(_)));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A Unix-domain stream listener.
    Unix(UnixListener),
}

impl Listener {
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(on),
            Listener::Unix(l) => l.set_nonblocking(on),
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr(),
            Listener::Unix(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a Unix-domain listener has no TCP address",
            )),
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l) => l.as_fd(),
        }
    }
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Listener {
        Listener::Tcp(l)
    }
}

impl From<UnixListener> for Listener {
    fn from(l: UnixListener) -> Listener {
        Listener::Unix(l)
    }
}

/// A listener and a protocol, served by the hardened loop.
///
/// See the [module documentation](self) for what the loop does.
///
/// # Examples
/// At most two clients at once ([`Config::max_clients`]): a third is refused with
/// a reset, where UNP's `tcpservselect01` quits with "too many clients".
/// ```
/// use std::io::{ErrorKind, Read};
/// use std::net::TcpStream;
/// use std::time::Duration;
/// use unp_select::server::{Config, Context, Listener, Protocol, Server};
///
/// struct Greet;
/// impl Protocol for Greet {
///     type Conn = ();
///     fn connect(&mut self, ctx: &mut Context<'_>) {
///         let _ = ctx.send(b"hi\n");
///     }
///     fn receive(&mut self, _: &mut (), _: &[u8], _: &mut Context<'_>) {}
/// }
///
/// let server = Server::bind("127.0.0.1:0", Greet, Config::default().with_max_clients(2))?;
/// assert!(matches!(server.listener(), Listener::Tcp(_)));
/// assert_eq!(server.config().max_clients, 2);
/// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
/// let thread = std::thread::spawn(move || server.run_poll());
///
/// let mut served = Vec::new();
/// for _ in 0..2 {
///     let mut conn = TcpStream::connect(addr)?;
///     conn.set_read_timeout(Some(Duration::from_secs(5)))?;
///     let mut greeting = [0; 3];
///     conn.read_exact(&mut greeting)?;
///     assert_eq!(&greeting, b"hi\n");
///     served.push(conn);
/// }
/// let mut third = TcpStream::connect(addr)?;
/// third.set_read_timeout(Some(Duration::from_secs(5)))?;
/// let refused = third.read(&mut [0; 3]);
/// assert!(matches!(&refused, Err(e) if e.kind() == ErrorKind::ConnectionReset), "{refused:?}");
///
/// stop.shutdown();
/// let stats = thread.join().unwrap()?;
/// assert_eq!((stats.accepted, stats.refused), (2, 1));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server<P> {
    /// One listener, or one per worker (`SO_REUSEPORT`).
    listeners: Vec<Listener>,
    protocol: P,
    config: Config,
    shutdown: ShutdownHandle,
    stats: StatsHandle,
}

/// Shows the listeners and the configuration (the protocol need not be `Debug`).
impl<P> std::fmt::Debug for Server<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listeners", &self.listeners)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> Server<P> {
    /// Serves `protocol` on `listener`, which is made nonblocking unless
    /// `config.nonblocking_listener` is false (then blocking). Its backlog is left as
    /// it is.
    ///
    /// # Errors
    /// `InvalidInput`, naming the field, if `max_clients`, `max_line`,
    /// `input_per_turn`, `messages_per_turn`, `accept_batch` or `workers` is 0, or
    /// `workers` is over 65,535; the errors of `ioctl` (`FIONBIO`) and
    /// `socketpair` (for the wakers) otherwise.
    ///
    /// # Examples
    /// A Unix-domain server (UNP chapter 15):
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::{UnixListener, UnixStream};
    /// use unp_select::server::{Config, Context, Protocol, Server};
    ///
    /// struct Hello;
    /// impl Protocol for Hello {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         let _ = ctx.send(b"hello\n");
    ///         ctx.close();
    ///     }
    ///     fn receive(&mut self, _: &mut (), _: &[u8], _: &mut Context<'_>) {}
    /// }
    ///
    /// let path = std::env::temp_dir().join(format!("unp-select-doc-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let server = Server::new(UnixListener::bind(&path)?, Hello, Config::default())?;
    /// let stop = server.shutdown_handle();
    /// let thread = std::thread::spawn(move || server.run());
    /// let mut greeting = String::new();
    /// let mut conn = UnixStream::connect(&path)?;
    /// conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    /// conn.read_to_string(&mut greeting)?;
    /// assert_eq!(greeting, "hello\n");
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.closed_protocol, 1);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(
        listener: impl Into<Listener>,
        protocol: P,
        config: Config,
    ) -> io::Result<Server<P>> {
        config.check()?;
        // One listener given: the workers share it, whatever `reuseport` says.
        Server::with_listeners(vec![listener.into()], protocol, config)
    }

    fn with_listeners(
        listeners: Vec<Listener>,
        protocol: P,
        config: Config,
    ) -> io::Result<Server<P>> {
        for listener in &listeners {
            listener.set_nonblocking(config.nonblocking_listener)?;
        }
        Ok(Server {
            listeners,
            protocol,
            shutdown: ShutdownHandle::new(config.workers)?,
            config,
            stats: StatsHandle::default(),
        })
    }

    /// Binds a TCP listener to `addr`, sets its backlog to
    /// [`Config::backlog`] (UNP's `LISTENQ`, 1024, by default; `std` listens with
    /// 128, which a burst of connections overflows), and serves `protocol` on it.
    ///
    /// With one listener per worker ([`Config::reuseport`]), the address is first
    /// bound without `SO_REUSEPORT`, so a port another process serves is refused
    /// (`AddrInUse`) instead of shared, as a second memcached fails to start.
    ///
    /// # Errors
    /// Those of [`TcpListener::bind`] (`AddrInUse` if the address is taken, with or
    /// without `SO_REUSEPORT`), `listen(2)` and [`Server::new`].
    ///
    /// # Examples
    /// The address is the server's alone: a second server cannot bind it, with one
    /// worker or with one listener per worker.
    /// ```
    /// use std::io::ErrorKind;
    /// use unp_select::server::{Config, Context, Protocol, Server};
    ///
    /// struct Silent;
    /// impl Protocol for Silent {
    ///     type Conn = ();
    ///     fn connect(&mut self, _: &mut Context<'_>) {}
    ///     fn receive(&mut self, _: &mut (), _: &[u8], _: &mut Context<'_>) {}
    /// }
    ///
    /// let first = Server::bind("127.0.0.1:0", Silent, Config::default().with_backlog(64))?;
    /// let addr = first.local_addr()?;
    /// assert!(addr.ip().is_loopback() && addr.port() != 0);
    /// for workers in [1, 2] {
    ///     let config = Config::default().with_workers(workers);
    ///     let taken = Server::bind(addr, Silent, config).unwrap_err();
    ///     assert_eq!(taken.kind(), ErrorKind::AddrInUse);
    /// }
    /// let zero = Server::bind("127.0.0.1:0", Silent, Config::default().with_workers(0));
    /// assert_eq!(zero.unwrap_err().kind(), ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(addr: impl ToSocketAddrs, protocol: P, config: Config) -> io::Result<Server<P>> {
        config.check()?;
        let backlog = libc::c_int::try_from(config.backlog).unwrap_or(libc::c_int::MAX);
        let reuseport = config.listener_per_worker();
        // As std's bind: the first address that binds.
        let mut last = None;
        let mut first = None;
        for a in addr.to_socket_addrs()? {
            match crate::sys::bind_tcp(&a, backlog, false) {
                Ok(l) => {
                    first = Some(l);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(first) = first else {
            return Err(last.unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "no address to bind to")
            }));
        };
        let listeners = if reuseport {
            // One owner per port: `first` was bound without SO_REUSEPORT, so it
            // failed (EADDRINUSE) if any other socket listens on the address,
            // whatever that one set. Now the group takes the address it got (its
            // port, if 0 was asked). Between the two, another process could take
            // the port; the group's bind then fails the same way.
            let bound = first.local_addr()?;
            drop(first);
            (0..config.workers)
                .map(|_| crate::sys::bind_tcp(&bound, backlog, true).map(Listener::Tcp))
                .collect::<io::Result<Vec<_>>>()?
        } else {
            vec![Listener::Tcp(first)]
        };
        Server::with_listeners(listeners, protocol, config)
    }

    /// Binds a Unix-domain listener to `path` and serves `protocol` on it, with
    /// [`Config::backlog`]. The caller removes the socket file afterwards.
    ///
    /// # Platform-specific behavior
    /// std's `UnixListener::bind` listens with the largest backlog Linux allows
    /// (`-1`, read as `net.core.somaxconn`, 4096 since 5.4); the second `listen`
    /// here sets [`Config::backlog`] instead, so the default 1024 is lower there.
    ///
    /// # Errors
    /// Those of [`UnixListener::bind`], `listen(2)` and [`Server::new`].
    ///
    /// # Examples
    /// ```
    /// use std::io::{ErrorKind, Read};
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use unp_select::server::{Config, Context, Listener, Protocol, Server};
    ///
    /// struct Hello;
    /// impl Protocol for Hello {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         let _ = ctx.send(b"hello\n");
    ///         ctx.close();
    ///     }
    ///     fn receive(&mut self, _: &mut (), _: &[u8], _: &mut Context<'_>) {}
    /// }
    ///
    /// let path = std::env::temp_dir().join(format!("unp-select-unix-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let server = Server::bind_unix(&path, Hello, Config::default())?;
    /// assert!(matches!(server.listener(), Listener::Unix(_)));
    /// assert_eq!(server.local_addr().unwrap_err().kind(), ErrorKind::Unsupported);
    /// let stop = server.shutdown_handle();
    /// let thread = std::thread::spawn(move || server.run());
    ///
    /// let mut conn = UnixStream::connect(&path)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// let mut greeting = String::new();
    /// conn.read_to_string(&mut greeting)?;
    /// assert_eq!(greeting, "hello\n");
    ///
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.closed_protocol, 1);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind_unix(path: impl AsRef<Path>, protocol: P, config: Config) -> io::Result<Server<P>> {
        config.check()?;
        let listener = UnixListener::bind(path)?;
        let backlog = libc::c_int::try_from(config.backlog).unwrap_or(libc::c_int::MAX);
        crate::sys::listen(listener.as_fd(), backlog)?;
        // One listener: SO_REUSEPORT is for TCP.
        Server::with_listeners(vec![listener.into()], protocol, config)
    }

    /// The TCP address the listener is bound to.
    ///
    /// # Errors
    /// Those of `getsockname(2)`; `Unsupported` for a Unix-domain listener (see
    /// [`listener`](Self::listener)).
    ///
    /// # Examples
    /// See [`bind`](Self::bind)'s example (a TCP address) and
    /// [`bind_unix`](Self::bind_unix)'s (`Unsupported`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listeners[0].local_addr()
    }

    /// The listening socket (the first worker's, with `SO_REUSEPORT`).
    ///
    /// # Examples
    /// See [`Server`]'s example (TCP) and [`bind_unix`](Self::bind_unix)'s
    /// (Unix-domain).
    pub fn listener(&self) -> &Listener {
        &self.listeners[0]
    }

    /// The configuration.
    ///
    /// # Examples
    /// See [`Server`]'s example.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A handle that stops `run` from another thread or a signal handler.
    ///
    /// # Examples
    /// The clients still connected when the server stops are closed.
    /// ```
    /// use std::io::Read;
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    /// use unp_select::server::{Config, Context, Protocol, Server};
    ///
    /// struct Greet;
    /// impl Protocol for Greet {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         let _ = ctx.send(b"hi\n");
    ///     }
    ///     fn receive(&mut self, _: &mut (), _: &[u8], _: &mut Context<'_>) {}
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", Greet, Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// conn.read_exact(&mut [0; 3])?; // accepted and greeted
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.closed_shutdown, 1);
    /// assert_eq!(conn.read(&mut [0; 1])?, 0); // closed by the server
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// A handle that reads the counters while the server runs.
    ///
    /// # Examples
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::TcpStream;
    /// use std::time::{Duration, Instant};
    /// use unp_select::server::{Config, Context, Frame, Protocol, Server};
    ///
    /// struct Echo;
    /// impl Protocol for Echo {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.set_frame(Frame::Line);
    ///     }
    ///     fn receive(&mut self, _: &mut (), line: &[u8], ctx: &mut Context<'_>) {
    ///         let _ = ctx.send(line);
    ///     }
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", Echo, Config::default())?;
    /// let stats = server.stats_handle();
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// conn.write_all(b"a\nb\nc\n")?;
    /// conn.read_exact(&mut [0; 6])?;
    /// // Published at the end of the turn: at most one turn late.
    /// let deadline = Instant::now() + Duration::from_secs(5);
    /// let mut live = stats.snapshot();
    /// while (live.accepted, live.messages_received, live.messages_sent) != (1, 3, 3)
    ///     && Instant::now() < deadline
    /// {
    ///     std::thread::sleep(Duration::from_millis(1));
    ///     live = stats.snapshot();
    /// }
    /// assert_eq!((live.accepted, live.messages_received, live.messages_sent), (1, 3, 3));
    /// assert_eq!(live.open(), 1);
    ///
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.closed_shutdown, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stats_handle(&self) -> StatsHandle {
        self.stats.clone()
    }

    /// Runs the select(2) loop over UNP's [`FdSet`] (`tcpservselect01`, UNP 6.8)
    /// until shutdown, then returns what it did. Connections still open are closed when it returns.
    ///
    /// # Errors
    /// Only errors that mean the server itself is broken end the loop: `select`,
    /// `accept`, `recv`, `send`, or the `getsockopt(SO_ERROR)` that ends a
    /// [`Context::connect`], failing with `EBADF`, `EFAULT`, `EINVAL` or
    /// `ENOTSOCK`. `InvalidInput` at the start if the listener's descriptor is `>=
    /// FD_SETSIZE` (use [`run_large`](Self::run_large) or
    /// [`run_poll`](Self::run_poll)). Every other error ends one connection, or
    /// makes the loop wait and retry, and is counted in [`Stats`].
    ///
    /// # Examples
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    /// use unp_select::server::{Config, Context, Frame, Protocol, Server};
    ///
    /// struct Echo;
    /// impl Protocol for Echo {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.set_frame(Frame::Line);
    ///     }
    ///     fn receive(&mut self, _: &mut (), line: &[u8], ctx: &mut Context<'_>) {
    ///         let _ = ctx.send(line);
    ///     }
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", Echo, Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// conn.write_all(b"select\nagain\n")?;
    /// let mut echo = [0; 13];
    /// conn.read_exact(&mut echo)?;
    /// assert_eq!(&echo, b"select\nagain\n");
    ///
    /// stop.shutdown();
    /// let stats = thread.join().unwrap()?;
    /// assert_eq!((stats.messages_received, stats.closed_shutdown), (2, 1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run(self) -> io::Result<Stats> {
        self.run_with(Backend::Select)
    }

    /// Runs the same loop with select(2) over [`LargeFdSet`]s, which grow past
    /// `FD_SETSIZE`.
    ///
    /// # Errors
    /// As [`run`](Self::run), without the `FD_SETSIZE` limit.
    ///
    /// # Examples
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    /// use unp_select::server::{Config, Context, Frame, Protocol, Server};
    ///
    /// struct Echo;
    /// impl Protocol for Echo {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.set_frame(Frame::Line);
    ///     }
    ///     fn receive(&mut self, _: &mut (), line: &[u8], ctx: &mut Context<'_>) {
    ///         let _ = ctx.send(line);
    ///     }
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", Echo, Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_large());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// conn.write_all(b"large\nagain\n")?;
    /// let mut echo = [0; 12];
    /// conn.read_exact(&mut echo)?;
    /// assert_eq!(&echo, b"large\nagain\n");
    ///
    /// stop.shutdown();
    /// let stats = thread.join().unwrap()?;
    /// assert_eq!((stats.messages_received, stats.closed_shutdown), (2, 1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_large(self) -> io::Result<Stats> {
        self.run_with(Backend::LargeSelect)
    }

    /// Runs the same loop with poll(2) (`tcpservpoll01`).
    ///
    /// # Errors
    /// As [`run`](Self::run), with `poll` in place of `select`, and without the
    /// `FD_SETSIZE` limit.
    ///
    /// # Examples
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    /// use unp_select::server::{Config, Context, Frame, Protocol, Server};
    ///
    /// struct Echo;
    /// impl Protocol for Echo {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.set_frame(Frame::Line);
    ///     }
    ///     fn receive(&mut self, _: &mut (), line: &[u8], ctx: &mut Context<'_>) {
    ///         let _ = ctx.send(line);
    ///     }
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0", Echo, Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// conn.write_all(b"poll\nagain\n")?;
    /// let mut echo = [0; 11];
    /// conn.read_exact(&mut echo)?;
    /// assert_eq!(&echo, b"poll\nagain\n");
    ///
    /// stop.shutdown();
    /// let stats = thread.join().unwrap()?;
    /// assert_eq!((stats.messages_received, stats.closed_shutdown), (2, 1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_poll(self) -> io::Result<Stats> {
        self.run_with(Backend::Poll)
    }

    /// Runs the loop waiting with `backend`.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    ///
    /// # Examples
    /// The same protocol on every backend:
    /// ```
    /// use std::io::Read;
    /// use std::net::TcpStream;
    /// use unp_select::server::{Config, Context, Protocol, Server};
    /// use unp_select::sources::Backend;
    ///
    /// struct Greet;
    /// impl Protocol for Greet {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         let _ = ctx.send(b"hi\n");
    ///         ctx.close();
    ///     }
    ///     fn receive(&mut self, _: &mut (), _: &[u8], _: &mut Context<'_>) {}
    /// }
    ///
    /// for backend in [Backend::Select, Backend::LargeSelect, Backend::Poll] {
    ///     let server = Server::bind("127.0.0.1:0", Greet, Config::default())?;
    ///     let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    ///     let thread = std::thread::spawn(move || server.run_with(backend));
    ///     let mut greeting = String::new();
    ///     let mut conn = TcpStream::connect(addr)?;
    ///     conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    ///     conn.read_to_string(&mut greeting)?;
    ///     assert_eq!(greeting, "hi\n");
    ///     stop.shutdown();
    ///     assert_eq!(thread.join().unwrap()?.closed_protocol, 1);
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_with(self, backend: Backend) -> io::Result<Stats> {
        if self.config.workers > 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "server: more than one worker runs with run_workers (the protocol must be \
                 Clone + Send)",
            ));
        }
        let Server {
            mut listeners,
            protocol,
            config,
            shutdown,
            stats,
        } = self;
        let worker = serve::Worker {
            index: 0,
            listener: Arc::new(listeners.remove(0)),
            protocol,
            totals: Arc::new(totals::Totals::new(
                config.max_clients,
                config.max_output_total,
            )),
            config,
            shutdown,
            stats: stats.start(1).remove(0),
            hub: None,
        };
        serve::Loop::new(worker, backend)?.run()
    }
}

impl<P: Protocol + Clone + Send + 'static> Server<P> {
    /// Runs [`Config::workers`] loops, each on its own thread with its own
    /// connections and its own clone of the protocol, until shutdown; returns their
    /// counters added up ([`StatsHandle::per_worker`] has each one's). With one
    /// worker it is [`run_with`](Self::run_with) on the calling thread.
    ///
    /// The workers watch one listener and race for each connection (the loser's
    /// `accept` finds the queue empty, counted in [`Stats::empty_accepts`]), or,
    /// with [`Config::reuseport`], each watches its own listener and the kernel
    /// picks. Output to a connection of another worker
    /// ([`Context::broadcast`], [`Context::send_to`]) goes through that worker's
    /// inbox. State the workers share (a store) is the protocol's, behind an `Arc`.
    ///
    /// # Errors
    /// As [`run`](Self::run); the first worker that fails stops the others, and its
    /// error is returned. `Other` if a worker thread panicked (a bug in this crate:
    /// a protocol's panics are caught).
    ///
    /// # Examples
    /// ```
    /// use std::io::{BufRead, BufReader, Write};
    /// use std::net::TcpStream;
    /// use unp_select::server::{Config, Context, Frame, Protocol, Server};
    /// use unp_select::sources::Backend;
    ///
    /// #[derive(Clone)]
    /// struct Echo;
    /// impl Protocol for Echo {
    ///     type Conn = ();
    ///     fn connect(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.set_frame(Frame::Line);
    ///     }
    ///     fn receive(&mut self, _: &mut (), line: &[u8], ctx: &mut Context<'_>) {
    ///         let _ = ctx.send(line);
    ///     }
    /// }
    ///
    /// let config = Config::default().with_workers(2);
    /// let server = Server::bind("127.0.0.1:0", Echo, config)?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let stats = server.stats_handle();
    /// let thread = std::thread::spawn(move || server.run_workers(Backend::Poll));
    /// for i in 0..10 {
    ///     let mut conn = TcpStream::connect(addr)?;
    ///     conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    ///     conn.write_all(format!("{i}\n").as_bytes())?;
    ///     let mut echo = String::new();
    ///     BufReader::new(&conn).read_line(&mut echo)?;
    ///     assert_eq!(echo, format!("{i}\n"));
    /// }
    /// stop.shutdown();
    /// let total = thread.join().unwrap()?;
    /// assert_eq!(total.accepted, 10);
    /// assert_eq!(stats.per_worker().iter().map(|w| w.accepted).sum::<u64>(), 10);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_workers(self, backend: Backend) -> io::Result<Stats> {
        let n = self.config.workers;
        if n == 1 {
            return self.run_with(backend);
        }
        let Server {
            listeners,
            protocol,
            config,
            shutdown,
            stats,
        } = self;
        let totals = Arc::new(totals::Totals::new(
            config.max_clients,
            config.max_output_total,
        ));
        let hub = Arc::new(hub::Hub::new(n, Arc::clone(&totals))?);
        let slots = stats.start(n);
        let listeners: Vec<Arc<Listener>> = listeners.into_iter().map(Arc::new).collect();
        let mut threads = Vec::with_capacity(n);
        for (index, slot) in slots.into_iter().enumerate() {
            let worker = serve::Worker {
                index: index as u16, // at most u16::MAX workers (Config::check)
                listener: Arc::clone(&listeners[index % listeners.len()]),
                protocol: protocol.clone(),
                config: config.clone(),
                shutdown: shutdown.clone(),
                stats: slot,
                hub: Some(Arc::clone(&hub)),
                totals: Arc::clone(&totals),
            };
            let exit = WorkerExit {
                hub: Arc::clone(&hub),
                index,
                stop: shutdown.clone(),
                clean: false,
            };
            let spawned = thread::Builder::new()
                .name(format!("unp-select worker {index}"))
                .spawn(move || {
                    let mut exit = exit; // the whole guard moves in, not one field
                    let result = serve::Loop::new(worker, backend).and_then(serve::Loop::run);
                    exit.clean = result.is_ok();
                    result // `exit` runs here, or as a panic unwinds
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    shutdown.shutdown();
                    threads.into_iter().for_each(|t| drop(t.join()));
                    return Err(e);
                }
            }
        }
        let mut total = Stats::default();
        let mut first_error = None;
        for t in threads {
            match t.join() {
                Ok(Ok(s)) => total += s,
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(io::Error::other("a server worker panicked"));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }
}

/// How a worker's thread ends, whichever way it does (its loop returned, or the
/// thread panicked): its inbox takes no more posts and gives back what it counted
/// against `max_output_total`, and a worker that did not end cleanly (an error, a
/// panic) stops the others, which would otherwise wait on it.
struct WorkerExit {
    hub: Arc<hub::Hub>,
    index: usize,
    stop: ShutdownHandle,
    clean: bool,
}

impl Drop for WorkerExit {
    fn drop(&mut self) {
        self.hub.close(self.index);
        if !self.clean {
            self.stop.drain(); // one broken worker stops them all
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub::{Hub, Post};
    use shutdown::Stop;
    use totals::Totals;

    fn worker_1_over_its_total() -> (Arc<Hub>, Arc<Totals>, ShutdownHandle) {
        let totals = Arc::new(Totals::new(10, 100));
        let hub = Arc::new(Hub::new(2, Arc::clone(&totals)).unwrap());
        hub.post(1, Post::All(Arc::from(&[0u8; 101][..])));
        assert!(totals.over());
        (hub, totals, ShutdownHandle::new(2).unwrap())
    }

    #[test]
    fn a_worker_that_panics_gives_back_its_inbox_and_stops_the_others() {
        let (hub, totals, stop) = worker_1_over_its_total();
        let exit = WorkerExit {
            hub,
            index: 1,
            stop: stop.clone(),
            clean: false,
        };
        let panicked = thread::spawn(move || {
            let _exit = exit;
            panic!("a bug in the loop");
        })
        .join();
        assert!(panicked.is_err());
        assert!(!totals.over(), "its inbox is no longer counted");
        assert!(matches!(stop.stop(), Stop::Drain), "the others drain");
    }

    #[test]
    fn a_worker_that_ends_cleanly_gives_back_its_inbox_and_stops_no_one() {
        let (hub, totals, stop) = worker_1_over_its_total();
        drop(WorkerExit {
            hub,
            index: 1,
            stop: stop.clone(),
            clean: true,
        });
        assert!(!totals.over());
        assert!(matches!(stop.stop(), Stop::No));
    }
}
