//! UNP's select-based TCP echo server (`tcpservselect01`, section 6.8) and its poll(2)
//! twin (`tcpservpoll01`, section 6.11), ported with the nonblocking-listener fix of
//! UNP 16.6.
//!
//! One loop, three readiness mechanisms: [`EchoServer::run`] (select over UNP's
//! fixed [`FdSet`]), [`EchoServer::run_large`] (select over a [`LargeFdSet`] that
//! grows past `FD_SETSIZE`) and [`EchoServer::run_poll`] (poll).
//!
//! Echo is one short [`Protocol`] on the crate's hardened loop
//! ([`server`](mod@crate::server)), which keeps the book's state and shape (its module
//! documentation maps `tcpservselect01` line by line). The whole protocol is:
//!
//! ```text
//! connect:  frame = Line if Echo::Lines, else Bytes (what one read returns)
//! receive:  ctx.send(msg)
//! ```
//!
//! `ctx.send` of the message just read costs no copy: the loop sends it straight
//! out of its one read buffer (the book's `buf[MAXLINE]`), all the messages of one
//! read in one `send`.
//!
//! # Two echoes: bytes and lines
//! [`Echo::Bytes`] (the default) is `tcpservselect01` itself: whatever one `read`
//! returned is written back at once. No client can wait for an echo the server
//! holds, whatever it sends. [`Echo::Lines`] echoes only whole lines, as a server
//! built on UNP's `readline` does; a line longer than [`Config::max_line`] comes back
//! in pieces of that size, and the default, 4095 bytes, is the longest piece that
//! `readline(fd, buf, MAXLINE)` returns and that the book's `str_cli` sends
//! (`fgets(sendline, MAXLINE, fp)`) before it waits for the echo. So `str_cli`
//! never waits for bytes the server holds back, even on lines of any length. A
//! last line without a newline is echoed when the client closes or half-closes.
//!
//! # Deviations from the book, each on purpose
//! 1. **The listener is nonblocking** (UNP 16.6) and `accept`'s errors are sorted by
//!    [`accept_nonblocking`]: a connection that vanished between `select` and
//!    `accept` is counted in [`Stats::empty_accepts`] and the loop goes back to
//!    `select`, instead of sleeping in `accept` while every client starves.
//!    [`Config::nonblocking_listener`]` = false` restores the book's bug, for
//!    demonstrations and tests.
//! 2. **Out of descriptors** (`EMFILE`/`ENFILE`): UNP's `Accept` exits. Here the
//!    pending connection is shed with a reserve descriptor ([`FdReserve`]); if even
//!    that fails, the listener is left out of the set for [`ACCEPT_BACKOFF`], so the
//!    loop never spins on a listener that stays readable. Out of kernel memory
//!    (`ENOBUFS`/`ENOMEM`) nothing is shed: the listener rests for
//!    [`ACCEPT_BACKOFF`] and the connection waits in the queue.
//! 3. **Too many clients**: the book calls `err_quit("too many clients")` and the
//!    server dies. Here that one connection is refused (reset) and counted in
//!    [`Stats::refused`]. [`EchoServer::run`] also refuses a connection whose
//!    descriptor is `>= FD_SETSIZE`: it cannot go into an `fd_set` (C would write
//!    past the set's end).
//! 4. **End of file**: the book closes the socket at once, and the UNP 16.6 text's
//!    loop even calls `writen` on it after closing. Here the client stops being
//!    read and is closed once every byte it sent has been echoed, so a client that
//!    half-closes (`shutdown(SHUT_WR)`, `nc -N`) gets all its echoes, then EOF.
//! 5. **Errors end one client, not the server.** A read or write error
//!    (`ECONNRESET`, `EPIPE`, `ETIMEDOUT`, …) closes that client
//!    ([`Stats::closed_reset`]); in the book `err_sys` kills the server. The kernel
//!    running out of memory (`ENOMEM`, `ENOBUFS`) in `select`, `poll`, `recv` or
//!    `send` loses nothing: the loop, or that one client, waits
//!    [`RESOURCE_BACKOFF`] and tries again ([`Stats::backoffs`]). Only the errors
//!    that mean the server itself is broken (`EBADF`, `EFAULT`, `EINVAL`,
//!    `ENOTSOCK`) end [`run`](EchoServer::run) with an error. The crate's
//!    `docs/reliability.md` lists every errno of every system call the loop makes.
//! 6. **Fair turns**: each client owns its buffer (UNP's `readline` shares one static
//!    buffer between all descriptors), and in one turn of the loop a client gets at
//!    most one `read` and one `send`, echoing at most [`LINES_PER_TURN`] lines in
//!    line mode. Lines left in its buffer are served on the next turn before the
//!    loop sleeps (the `readlinebuf` check UNP 6.8 asks for).
//! 7. **Clients that do not read their echoes**: connected sockets are nonblocking.
//!    Echoes the kernel will not take stay in the client's buffer and its
//!    descriptor moves from the read set to the write set: the server stops reading
//!    from that client until its echoes drain (back-pressure). If they have not
//!    drained within [`Config::write_timeout`], the client is closed
//!    ([`Stats::closed_policy`]). In the book, `Writen` blocks and one such client
//!    freezes the whole server.
//! 8. **Shutdown**: a [`Waker`](crate::sources::Waker) (the self-pipe trick) in
//!    `allset` lets [`ShutdownHandle::shutdown`] wake the loop; [`EchoServer::run`]
//!    then returns its [`Stats`].
//! 9. **Listen backlog**: [`EchoServer::bind`] listens with the book's `LISTENQ`
//!    (1024, [`Config::backlog`]), not `std`'s 128, so a burst of connections does
//!    not overflow the queue.
//!
//! # Examples
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use unp_select::echo::{Config, EchoServer};
//!
//! let server = EchoServer::bind("127.0.0.1:0", Config::default())?;
//! let addr = server.local_addr()?;
//! let stop = server.shutdown_handle();
//! let thread = std::thread::spawn(move || server.run());
//!
//! let mut conn = TcpStream::connect(addr)?;
//! conn.write_all(b"hello, select\n")?;
//! let mut echo = String::new();
//! BufReader::new(&conn).read_line(&mut echo)?;
//! assert_eq!(echo, "hello, select\n");
//!
//! drop(conn);
//! stop.shutdown();
//! let stats = thread.join().unwrap()?;
//! assert_eq!(stats.accepted, 1);
//! assert_eq!(stats.bytes_echoed, 14);
//! # Ok::<(), std::io::Error>(())
//! ```

mod stats;

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::time::Duration;

#[cfg(doc)]
use crate::accept::{accept_nonblocking, FdReserve};
use crate::select::FD_SETSIZE;
#[cfg(doc)]
use crate::select::{FdSet, LargeFdSet};
use crate::server::{self, Context, Frame, Protocol, Server};
use crate::sources::Backend;

pub use crate::server::{
    EmptyAccepts, ShutdownHandle, StatsHandle, ACCEPT_BACKOFF, LISTENQ, MAXLINE, RESOURCE_BACKOFF,
};
pub use stats::Stats;

/// How many lines one client may have echoed in one turn of the loop (line mode)
/// before the others get theirs: 16 ([`server::MESSAGES_PER_TURN`]). The rest stay
/// buffered and are served on the next turn. In either mode a client gets at most
/// one `read` and one `send` per turn.
pub const LINES_PER_TURN: usize = server::MESSAGES_PER_TURN;

/// What the server echoes, and when.
///
/// # Examples
/// ```
/// use unp_select::echo::{Config, Echo};
/// assert_eq!(Config::default().echo, Echo::Bytes);
/// let lines = Config::default().with_echo(Echo::Lines);
/// assert_eq!(lines.max_line, 4095);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Echo {
    /// `tcpservselect01`: what one `read` returned (at most [`Config::max_line`]
    /// bytes) is sent back at once. No client can deadlock on it.
    #[default]
    Bytes,
    /// A server built on UNP's `readline`: whole lines are sent back, a longer line
    /// in pieces of [`Config::max_line`] bytes, and an unterminated last line when
    /// the client closes or half-closes. A client that waits for the echo of a
    /// shorter piece without a newline waits until it sends one.
    Lines,
}

/// How the echo server behaves.
///
/// It is `#[non_exhaustive]`, so fields can be added without breaking anyone:
/// start from [`Config::default`] and change fields, or chain the `with_`
/// methods.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use unp_select::echo::{Config, Echo};
///
/// // The server of UNP 16.6: blocking listener, five seconds between select and accept.
/// let book = Config::default()
///     .with_nonblocking_listener(false)
///     .with_accept_delay(Some(Duration::from_secs(5)));
/// assert_eq!(book.max_line, unp_select::echo::MAXLINE - 1);
///
/// let mut lines = Config::default();
/// lines.echo = Echo::Lines;
/// assert_eq!(lines, Config::default().with_echo(Echo::Lines));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Echo bytes as they come (default) or whole lines; see [`Echo`].
    pub echo: Echo,
    /// Make the listener nonblocking (UNP 16.6's fix). Default `true`; `false`
    /// reproduces the book's hang: a blocking `accept` after the connection vanished.
    pub nonblocking_listener: bool,
    /// Sleep this long between `select` reporting the listener readable and calling
    /// `accept` (the `sleep(5)` of UNP 16.6), to open the race window on purpose.
    /// Default `None`.
    pub accept_delay: Option<Duration>,
    /// Most clients served at once (the length of `client[]`, which grows on demand
    /// up to it); more are refused. Default [`FD_SETSIZE`], as in the book.
    /// [`EchoServer::run`] also refuses any descriptor `>= FD_SETSIZE`, whatever
    /// this says.
    pub max_clients: usize,
    /// The most bytes one `read` takes (byte mode), or the longest piece of a line
    /// echoed at once (line mode). It bounds memory: the loop reads every client
    /// into one buffer of this size (the book's `buf[MAXLINE]`), and a client keeps
    /// a buffer of its own, of at most this size, only while a turn leaves
    /// something behind (the start of a line, or echoes the kernel did not take).
    /// Default `MAXLINE - 1` (4095), the longest piece UNP's `readline` returns and
    /// `str_cli` sends; a larger value in line mode makes `str_cli` wait forever
    /// on lines longer than 4094 bytes.
    pub max_line: usize,
    /// How long a client's echoes may stay unsent (the client does not read) before
    /// the client is closed. Default 10 seconds; a duration too long to add to an
    /// [`Instant`](std::time::Instant) (such as `Duration::MAX`) never expires.
    pub write_timeout: Duration,
    /// Close a client that for this long sends no whole message and takes no
    /// echo; see [`server::Config::idle_timeout`]. Default `None`: never, as the
    /// book.
    pub idle_timeout: Option<Duration>,
    /// The listen backlog [`EchoServer::bind`] asks for. Default the book's
    /// `LISTENQ` (1024); the kernel caps it (Linux: `net.core.somaxconn`).
    /// [`EchoServer::new`] leaves the listener it is given as it is.
    pub backlog: u32,
    /// Connections accepted per readiness of the listener; see
    /// [`server::Config::accept_batch`]. Default 1, as the book.
    pub accept_batch: usize,
    /// Worker threads, each with its own loop; see [`server::Config::workers`].
    /// Default 1.
    pub workers: usize,
    /// One listener per worker with `SO_REUSEPORT`; see
    /// [`server::Config::reuseport`]. Default `true` (it matters only with more
    /// than one worker).
    pub reuseport: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            echo: Echo::Bytes,
            nonblocking_listener: true,
            accept_delay: None,
            max_clients: FD_SETSIZE,
            max_line: MAXLINE - 1,
            write_timeout: Duration::from_secs(10),
            idle_timeout: None,
            backlog: LISTENQ,
            accept_batch: 1,
            workers: 1,
            reuseport: true,
        }
    }
}

/// Chainable setters, one per field, for building a [`Config`] in one expression.
impl Config {
    /// Sets [`idle_timeout`](Self::idle_timeout).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`echo`](Self::echo).
    #[must_use]
    pub fn with_echo(mut self, echo: Echo) -> Config {
        self.echo = echo;
        self
    }

    /// Sets [`nonblocking_listener`](Self::nonblocking_listener).
    #[must_use]
    pub fn with_nonblocking_listener(mut self, nonblocking: bool) -> Config {
        self.nonblocking_listener = nonblocking;
        self
    }

    /// Sets [`accept_delay`](Self::accept_delay).
    #[must_use]
    pub fn with_accept_delay(mut self, delay: Option<Duration>) -> Config {
        self.accept_delay = delay;
        self
    }

    /// Sets [`max_clients`](Self::max_clients).
    #[must_use]
    pub fn with_max_clients(mut self, max_clients: usize) -> Config {
        self.max_clients = max_clients;
        self
    }

    /// Sets [`max_line`](Self::max_line).
    #[must_use]
    pub fn with_max_line(mut self, max_line: usize) -> Config {
        self.max_line = max_line;
        self
    }

    /// Sets [`write_timeout`](Self::write_timeout).
    #[must_use]
    pub fn with_write_timeout(mut self, timeout: Duration) -> Config {
        self.write_timeout = timeout;
        self
    }

    /// Sets [`backlog`](Self::backlog).
    #[must_use]
    pub fn with_backlog(mut self, backlog: u32) -> Config {
        self.backlog = backlog;
        self
    }

    /// Sets [`accept_batch`](Self::accept_batch).
    #[must_use]
    pub fn with_accept_batch(mut self, n: usize) -> Config {
        self.accept_batch = n;
        self
    }

    /// Sets [`workers`](Self::workers).
    #[must_use]
    pub fn with_workers(mut self, n: usize) -> Config {
        self.workers = n;
        self
    }

    /// Sets [`reuseport`](Self::reuseport).
    #[must_use]
    pub fn with_reuseport(mut self, on: bool) -> Config {
        self.reuseport = on;
        self
    }

    /// The loop's configuration for this echo: back-pressure as soon as anything
    /// is unsent, [`LINES_PER_TURN`] lines per turn, and the book's socket (no
    /// `TCP_NODELAY`) and stop (at once, no drain).
    fn server(&self) -> server::Config {
        server::Config::default()
            .with_nonblocking_listener(self.nonblocking_listener)
            .with_accept_delay(self.accept_delay)
            .with_max_clients(self.max_clients)
            .with_max_line(self.max_line)
            .with_messages_per_turn(LINES_PER_TURN)
            .with_max_unsent(0)
            .with_nodelay(false)
            .with_drain_timeout(std::time::Duration::ZERO)
            .with_write_timeout(self.write_timeout)
            .with_idle_timeout(self.idle_timeout)
            .with_backlog(self.backlog)
            .with_accept_batch(self.accept_batch)
            .with_workers(self.workers)
            .with_reuseport(self.reuseport)
    }
}

/// The echo protocol: every message straight back.
#[derive(Clone, Debug)]
struct EchoProtocol {
    frame: Frame,
}

impl Protocol for EchoProtocol {
    type Conn = ();

    fn connect(&mut self, ctx: &mut Context<'_>) {
        ctx.set_frame(self.frame);
    }

    fn receive(&mut self, _: &mut (), msg: &[u8], ctx: &mut Context<'_>) {
        let _ = ctx.send(msg); // UNP: Writen(sockfd, buf, n)
    }
}

/// UNP's select-based TCP echo server (`tcpservselect01`), or its poll twin.
///
/// See the [module documentation](self) for the loop and the deviations from the
/// book.
#[derive(Debug)]
pub struct EchoServer {
    server: Server<EchoProtocol>,
}

impl EchoServer {
    /// Wraps a listening socket. Makes it nonblocking unless
    /// `config.nonblocking_listener` is false (then it makes it blocking).
    ///
    /// # Errors
    /// `InvalidInput` if `max_clients` or `max_line` is 0; the errors of `ioctl`
    /// (`FIONBIO`) and `socketpair` (for the shutdown waker) otherwise.
    ///
    /// # Examples
    /// ```
    /// use std::net::TcpListener;
    /// use unp_select::echo::{Config, EchoServer};
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let server = EchoServer::new(listener, Config::default())?;
    /// assert!(server.local_addr()?.ip().is_loopback());
    /// let bad = Config::default().with_max_line(0);
    /// let err = EchoServer::new(TcpListener::bind("127.0.0.1:0")?, bad).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(listener: TcpListener, config: Config) -> io::Result<EchoServer> {
        let protocol = EchoProtocol::from(&config);
        let server = Server::new(listener, protocol, config.server())?;
        Ok(EchoServer { server })
    }

    /// Binds a listener to `addr` (UNP's `SERV_PORT` is 9877) with a backlog of
    /// [`Config::backlog`] (UNP's `LISTENQ`, 1024) and wraps it.
    ///
    /// # Errors
    /// Those of [`TcpListener::bind`], `listen(2)` and [`EchoServer::new`].
    ///
    /// # Examples
    /// ```
    /// use unp_select::echo::{Config, EchoServer};
    /// let server = EchoServer::bind("127.0.0.1:0", Config::default())?;
    /// assert_ne!(server.local_addr()?.port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<EchoServer> {
        let protocol = EchoProtocol::from(&config);
        let server = Server::bind(addr, protocol, config.server())?;
        Ok(EchoServer { server })
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    /// Those of `getsockname(2)`.
    ///
    /// # Examples
    /// ```
    /// use unp_select::echo::{Config, EchoServer};
    /// let server = EchoServer::bind("127.0.0.1:0", Config::default())?;
    /// let addr = server.local_addr()?;
    /// assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.server.local_addr()
    }

    /// A handle that stops [`run`](Self::run) from another thread.
    ///
    /// # Examples
    /// See [`ShutdownHandle::shutdown`].
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.server.shutdown_handle()
    }

    /// A handle that reads the loop's counters while it runs (see
    /// [`StatsHandle`]; in the loop's terms: `messages_sent` are the lines, or
    /// reads, echoed).
    pub fn stats_handle(&self) -> StatsHandle {
        self.server.stats_handle()
    }

    /// Runs the select(2) loop (`tcpservselect01`) until shutdown, then returns what
    /// it did. Connections still open are closed when it returns.
    ///
    /// # Errors
    /// Only errors that mean the server itself is broken end the loop: `select`,
    /// `accept`, `recv` or `send` failing with `EBADF`, `EFAULT`, `EINVAL` or
    /// `ENOTSOCK` (see [`accept_nonblocking`] for `accept`'s). `InvalidInput` at the
    /// start if the listener's descriptor is `>= FD_SETSIZE` and so cannot go into
    /// an `fd_set` (use [`run_large`](Self::run_large) or
    /// [`run_poll`](Self::run_poll)). Every other error closes one client, or makes
    /// the loop wait and retry, and is counted in [`Stats`].
    ///
    /// # Examples
    /// See the [module documentation](self).
    pub fn run(self) -> io::Result<Stats> {
        self.server.run_workers(Backend::Select).map(Stats::from)
    }

    /// Runs the same select(2) loop over [`LargeFdSet`]s, which grow past
    /// `FD_SETSIZE`: a descriptor of any number can be served (up to
    /// [`Config::max_clients`] clients). Linux, FreeBSD and macOS accept such sets;
    /// see [`select_large`](crate::select_large).
    ///
    /// # Errors
    /// As [`run`](Self::run), without the `FD_SETSIZE` limit.
    ///
    /// # Examples
    /// ```
    /// use std::io::{BufRead, BufReader, Write};
    /// use unp_select::echo::{Config, EchoServer};
    ///
    /// let server = EchoServer::bind("127.0.0.1:0", Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_large());
    /// let mut conn = std::net::TcpStream::connect(addr)?;
    /// conn.write_all(b"large\n")?;
    /// let mut echo = String::new();
    /// BufReader::new(&conn).read_line(&mut echo)?;
    /// assert_eq!(echo, "large\n");
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.bytes_echoed, 6);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_large(self) -> io::Result<Stats> {
        self.server
            .run_workers(Backend::LargeSelect)
            .map(Stats::from)
    }

    /// Runs the poll(2) loop (`tcpservpoll01`) until shutdown: the same loop as
    /// [`run`](Self::run) over an array of `pollfd`s, so it is not limited to
    /// descriptors below `FD_SETSIZE` (only by [`Config::max_clients`]).
    ///
    /// # Errors
    /// As [`run`](Self::run), with `poll` in place of `select`.
    ///
    /// # Examples
    /// ```
    /// use std::io::{BufRead, BufReader, Write};
    /// use unp_select::echo::{Config, Echo, EchoServer};
    ///
    /// let config = Config::default().with_echo(Echo::Lines);
    /// let server = EchoServer::bind("127.0.0.1:0", config)?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    /// let mut conn = std::net::TcpStream::connect(addr)?;
    /// conn.write_all(b"polled\n")?;
    /// let mut echo = String::new();
    /// BufReader::new(&conn).read_line(&mut echo)?;
    /// assert_eq!(echo, "polled\n");
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.lines_echoed, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_poll(self) -> io::Result<Stats> {
        self.run_with(Backend::Poll)
    }

    /// Runs the same loop waiting with `backend`: [`Backend::Epoll`] (Linux) or
    /// [`Backend::Kqueue`] (the BSDs, macOS), whose cost per wait follows the
    /// ready descriptors, not the connected ones, besides the three above.
    ///
    /// # Errors
    /// As [`run`](Self::run); `Unsupported` for a backend this platform lacks
    /// ([`Backend::is_supported`]).
    ///
    /// # Examples
    /// ```
    /// use std::io::{Read, Write};
    /// use unp_select::echo::{Config, EchoServer};
    /// use unp_select::sources::Backend;
    ///
    /// let backend = [Backend::Epoll, Backend::Kqueue, Backend::Poll]
    ///     .into_iter()
    ///     .find(|b| b.is_supported())
    ///     .unwrap();
    /// let server = EchoServer::bind("127.0.0.1:0", Config::default())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_with(backend));
    /// let mut conn = std::net::TcpStream::connect(addr)?;
    /// conn.write_all(b"ready")?;
    /// let mut echo = [0; 5];
    /// conn.read_exact(&mut echo)?;
    /// assert_eq!(&echo, b"ready");
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.bytes_echoed, 5);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_with(self, backend: Backend) -> io::Result<Stats> {
        self.server.run_workers(backend).map(Stats::from)
    }
}

impl From<&Config> for EchoProtocol {
    fn from(config: &Config) -> EchoProtocol {
        let frame = match config.echo {
            Echo::Bytes => Frame::Bytes,
            Echo::Lines => Frame::Line,
        };
        EchoProtocol { frame }
    }
}
