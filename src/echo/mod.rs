//! UNP's select-based TCP echo server (`tcpservselect01`, section 6.8) and its poll(2)
//! twin (`tcpservpoll01`, section 6.11), ported with the nonblocking-listener fix of
//! UNP 16.6.
//!
//! One loop, three readiness mechanisms: [`EchoServer::run`] (select over UNP's
//! fixed [`FdSet`]), [`EchoServer::run_large`] (select over a [`LargeFdSet`] that
//! grows past `FD_SETSIZE`) and [`EchoServer::run_poll`] (poll).
//!
//! The loop keeps the book's state and shape, so a reader can follow it step by step:
//!
//! | UNP (C) | here |
//! |---|---|
//! | `int client[FD_SETSIZE]`, `-1` = free | `client: Vec<Option<Client>>`, `None` = free |
//! | `int maxi` (highest used index, `-1` at start) | `maxi: Option<usize>` |
//! | `fd_set allset` / `rset = allset` | `allset` / `rset = allset.clone()` in [`select()`]'s driver |
//! | `int maxfd`, `select(maxfd + 1, …)` | derived: [`select()`] computes `nfds` from the sets |
//! | `nready = Select(…)`, `if (--nready <= 0) break;` | the same countdown |
//! | `struct pollfd client[OPEN_MAX]` (poll version) | the poll driver's `client: Vec<PollFd>` |
//! | `char buf[MAXLINE]`, `Read`/`Readline`, `Writen` | one read buffer for the whole loop, one `read` into it per client and turn, one `send` straight out of it |
//! | `Accept`, `Close` | [`accept_nonblocking`], `drop` |
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
//! 8. **Shutdown**: a self-pipe in `allset` lets [`ShutdownHandle::shutdown`] wake
//!    the loop; [`EchoServer::run`] then returns its [`Stats`].
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

mod client;
mod driver;
mod serve;
mod stats;

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[cfg(doc)]
use crate::accept::{accept_nonblocking, FdReserve};
use crate::select::FD_SETSIZE;
#[cfg(doc)]
use crate::select::{select, FdSet, LargeFdSet};
use crate::writen::try_writen;

use driver::{PollDriver, SelectDriver};
use serve::Loop;
pub use stats::{EmptyAccepts, Stats};

/// How many lines one client may have echoed in one turn of the loop (line mode)
/// before the others get theirs; the rest stay buffered and are served on the next
/// turn. In either mode a client gets at most one `read` and one `send` per turn.
pub const LINES_PER_TURN: usize = 16;

/// How long the listener stays out of the set after `accept` ran out of descriptors
/// and no connection could be shed, or ran out of kernel memory.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long the loop (after `select`/`poll` failed with `ENOMEM`) or one client
/// (after `recv`/`send` failed with `ENOMEM`/`ENOBUFS`) waits before trying again.
pub const RESOURCE_BACKOFF: Duration = Duration::from_millis(10);

/// UNP's `MAXLINE` (4096). `readline(fd, buf, MAXLINE)` returns at most
/// `MAXLINE - 1` bytes, the default [`Config::max_line`].
pub const MAXLINE: usize = 4096;

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
        }
    }
}

/// Chainable setters, one per field, for building a [`Config`] in one expression.
impl Config {
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
}

/// Wakes a running [`EchoServer`] and makes [`run`](EchoServer::run) return.
///
/// `Clone + Send + Sync`; writing one byte to a socket pair whose other end sits in
/// the server's read set (the self-pipe trick) is all [`shutdown`](Self::shutdown)
/// does, so it is cheap and can be called from any thread, and from a signal
/// handler.
///
/// A server asleep in a *blocking* `accept` (`nonblocking_listener: false`) does
/// not see the wake-up until `accept` returns: that is the book's bug. A signal
/// whose handler calls [`shutdown`](Self::shutdown), delivered to the server's
/// thread and installed without `SA_RESTART`, interrupts that `accept` (`EINTR`),
/// and the loop then stops; the example `echo_server` does this.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    requested: Arc<AtomicBool>,
    wake: Arc<UnixStream>,
}

impl ShutdownHandle {
    /// Asks the server to stop; it returns from `run` at the top of its next turn.
    /// Calling it again, or after the server ended, does nothing.
    ///
    /// It is async-signal-safe: it stores an atomic flag and calls `send(2)`
    /// once, without allocating or locking.
    ///
    /// # Examples
    /// ```
    /// use unp_select::echo::{Config, EchoServer};
    /// let server = EchoServer::bind("127.0.0.1:0", Config::default())?;
    /// let stop = server.shutdown_handle();
    /// stop.shutdown(); // before it runs: run returns at once
    /// let stats = server.run()?;
    /// assert_eq!(stats.accepted, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown(&self) {
        self.requested.store(true, Ordering::SeqCst);
        // The socket is nonblocking: if a wake-up byte is already waiting, the write
        // may fail with EAGAIN, and one byte is all it takes. If the server is gone
        // the write fails with EPIPE (never SIGPIPE: try_writen uses MSG_NOSIGNAL).
        let _ = try_writen(&*self.wake, b"x");
    }

    fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
}

/// UNP's select-based TCP echo server (`tcpservselect01`), or its poll twin.
///
/// See the [module documentation](self) for the loop and the deviations from the
/// book.
#[derive(Debug)]
pub struct EchoServer {
    listener: TcpListener,
    config: Config,
    wake: UnixStream,
    handle: ShutdownHandle,
}

impl EchoServer {
    /// Wraps a listening socket. Makes it nonblocking unless
    /// `config.nonblocking_listener` is false (then it makes it blocking).
    ///
    /// # Errors
    /// `InvalidInput` if `max_clients` or `max_line` is 0; the errors of `ioctl`
    /// (`FIONBIO`) and `socketpair` (for the shutdown self-pipe) otherwise.
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
        if config.max_clients == 0 || config.max_line == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "echo server: max_clients and max_line must be at least 1",
            ));
        }
        listener.set_nonblocking(config.nonblocking_listener)?;
        let (wake, wake_tx) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        let handle = ShutdownHandle {
            requested: Arc::new(AtomicBool::new(false)),
            wake: Arc::new(wake_tx),
        };
        Ok(EchoServer {
            listener,
            config,
            wake,
            handle,
        })
    }

    /// Binds a listener to `addr` (UNP's `SERV_PORT` is 9877) and wraps it.
    ///
    /// # Errors
    /// Those of [`TcpListener::bind`] and [`EchoServer::new`].
    ///
    /// # Examples
    /// ```
    /// use unp_select::echo::{Config, EchoServer};
    /// let server = EchoServer::bind("127.0.0.1:0", Config::default())?;
    /// assert_ne!(server.local_addr()?.port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<EchoServer> {
        EchoServer::new(TcpListener::bind(addr)?, config)
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
        self.listener.local_addr()
    }

    /// A handle that stops [`run`](Self::run) from another thread.
    ///
    /// # Examples
    /// See [`ShutdownHandle::shutdown`].
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
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
        Loop::new(self).run(SelectDriver::<crate::select::FdSet>::default())
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
        Loop::new(self).run(SelectDriver::<crate::select::LargeFdSet>::default())
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
        Loop::new(self).run(PollDriver::new())
    }
}
