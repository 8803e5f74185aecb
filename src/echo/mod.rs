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
//! # Configuration and counters
//! The server runs on the loop's own [`Config`]
//! ([`server::Config`](crate::server::Config)); start from [`Config::book`], the
//! book's echo loop: at most [`MESSAGES_PER_TURN`] lines per client and turn,
//! back-pressure as soon as an echo is unsent, no `TCP_NODELAY`, and a stop at
//! once. It returns the loop's [`Stats`] ([`server::Stats`](crate::server::Stats)):
//! [`Stats::messages_sent`] counts the lines (line mode) or reads (byte mode)
//! echoed, a line counting once the kernel took its last byte, and
//! [`Stats::bytes_sent`] the bytes echoed. Echo never closes a client on its own
//! and never panics, so [`Stats::closed_protocol`] and [`Stats::closed_panic`]
//! stay 0.
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
//!    read and is closed once every byte it sent has been echoed
//!    ([`Stats::closed_eof`]), so a client that half-closes (`shutdown(SHUT_WR)`,
//!    `nc -N`) gets all its echoes, then EOF.
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
//!    most one `read` and one `send`, echoing at most
//!    [`Config::messages_per_turn`] lines in line mode ([`MESSAGES_PER_TURN`] in
//!    [`Config::book`]). Lines left in its buffer are served on the next turn
//!    before the loop sleeps (the `readlinebuf` check UNP 6.8 asks for).
//! 7. **Clients that do not read their echoes**: connected sockets are nonblocking.
//!    Echoes the kernel will not take stay in the client's buffer and its
//!    descriptor moves from the read set to the write set: the server stops reading
//!    from that client until its echoes drain (back-pressure,
//!    [`Config::max_unsent`]` = 0` in [`Config::book`]). If they have not drained
//!    within [`Config::write_timeout`], the client is closed
//!    ([`Stats::closed_policy`]). In the book, `Writen` blocks and one such client
//!    freezes the whole server.
//! 8. **Shutdown**: a [`Waker`](crate::sources::Waker) (the self-pipe trick) in
//!    `allset` lets [`ShutdownHandle::shutdown`] wake the loop; [`EchoServer::run`]
//!    then closes the clients still connected ([`Stats::closed_shutdown`]; with
//!    [`Config::book`]'s zero [`Config::drain_timeout`], at once) and returns its
//!    [`Stats`].
//! 9. **Listen backlog**: [`EchoServer::bind`] listens with the book's `LISTENQ`
//!    (1024, [`Config::backlog`]), not `std`'s 128, so a burst of connections does
//!    not overflow the queue.
//!
//! # Examples
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use unp_select::echo::{Echo, EchoServer};
//! use unp_select::server::Config;
//!
//! let server = EchoServer::bind("127.0.0.1:0", Echo::Bytes, Config::book())?;
//! let addr = server.local_addr()?;
//! let stop = server.shutdown_handle();
//! let thread = std::thread::spawn(move || server.run());
//!
//! let mut conn = TcpStream::connect(addr)?;
//! conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
//! conn.write_all(b"hello, select\n")?;
//! let mut echo = String::new();
//! BufReader::new(&conn).read_line(&mut echo)?;
//! assert_eq!(echo, "hello, select\n");
//!
//! drop(conn);
//! stop.shutdown();
//! let stats = thread.join().unwrap()?;
//! assert_eq!(stats.accepted, 1);
//! assert_eq!(stats.bytes_sent, 14);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

#[cfg(doc)]
use crate::accept::{accept_nonblocking, FdReserve};
#[cfg(doc)]
use crate::select::{FdSet, LargeFdSet};
#[cfg(doc)]
use crate::server::MESSAGES_PER_TURN;
use crate::server::{Config, Context, Frame, Protocol, Server, Stats};
use crate::sources::Backend;

pub use crate::server::{
    ShutdownHandle, StatsHandle, ACCEPT_BACKOFF, LISTENQ, MAXLINE, RESOURCE_BACKOFF,
};

/// What the server echoes, and when.
///
/// # Examples
/// ```
/// use unp_select::echo::{Echo, EchoServer};
/// use unp_select::server::Config;
/// assert_eq!(Echo::default(), Echo::Bytes);
/// let lines = EchoServer::bind("127.0.0.1:0", Echo::Lines, Config::book())?;
/// assert_eq!(lines.config().max_line, 4095);
/// # Ok::<(), std::io::Error>(())
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

impl From<Echo> for EchoProtocol {
    fn from(echo: Echo) -> EchoProtocol {
        let frame = match echo {
            Echo::Bytes => Frame::Bytes,
            Echo::Lines => Frame::Line,
        };
        EchoProtocol { frame }
    }
}

/// UNP's select-based TCP echo server (`tcpservselect01`), or its poll twin.
///
/// See the [module documentation](self) for the loop and the deviations from the
/// book.
///
/// # Examples
/// Echoing lines: a client that half-closes (`shutdown(SHUT_WR)`, as `str_cli`
/// of UNP 6.7 does at end of file) gets every echo, its last line without a
/// newline included, then end of file (deviation 4).
/// ```
/// use std::io::{Read, Write};
/// use std::net::{Shutdown, TcpStream};
/// use std::time::Duration;
/// use unp_select::echo::{Echo, EchoServer};
/// use unp_select::server::Config;
///
/// let server = EchoServer::bind("127.0.0.1:0", Echo::Lines, Config::book())?;
/// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
/// let thread = std::thread::spawn(move || server.run());
///
/// let mut conn = TcpStream::connect(addr)?;
/// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
/// conn.write_all(b"one\ntwo\nno newline")?;
/// conn.shutdown(Shutdown::Write)?;
/// let mut echo = String::new();
/// conn.read_to_string(&mut echo)?; // to the server's close
/// assert_eq!(echo, "one\ntwo\nno newline");
///
/// stop.shutdown();
/// let stats = thread.join().unwrap()?;
/// assert_eq!((stats.messages_sent, stats.closed_eof), (3, 1));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct EchoServer {
    server: Server<EchoProtocol>,
}

impl EchoServer {
    /// Wraps a listening socket, to echo as `echo` says on the loop `config`
    /// describes ([`Config::book`] is the book's). Makes the listener nonblocking
    /// unless `config.nonblocking_listener` is false (then it makes it blocking).
    ///
    /// # Errors
    /// Those of [`Server::new`]: `InvalidInput` if `max_clients`, `max_line` or
    /// another count is 0; the errors of `ioctl` (`FIONBIO`) and `socketpair`
    /// (for the shutdown waker) otherwise.
    ///
    /// # Examples
    /// ```
    /// use std::net::TcpListener;
    /// use unp_select::echo::{Echo, EchoServer};
    /// use unp_select::server::Config;
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let server = EchoServer::new(listener, Echo::Bytes, Config::book())?;
    /// assert!(server.local_addr()?.ip().is_loopback());
    /// let bad = Config::book().with_max_line(0);
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let err = EchoServer::new(listener, Echo::Bytes, bad).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(listener: TcpListener, echo: Echo, config: Config) -> io::Result<EchoServer> {
        let server = Server::new(listener, EchoProtocol::from(echo), config)?;
        Ok(EchoServer { server })
    }

    /// Binds a listener to `addr` (UNP's `SERV_PORT` is 9877) with a backlog of
    /// [`Config::backlog`] (UNP's `LISTENQ`, 1024) and wraps it, as
    /// [`new`](Self::new) does.
    ///
    /// # Errors
    /// Those of [`Server::bind`].
    ///
    /// # Examples
    /// ```
    /// use unp_select::echo::{Echo, EchoServer};
    /// use unp_select::server::Config;
    /// let server = EchoServer::bind("127.0.0.1:0", Echo::Lines, Config::book())?;
    /// assert_ne!(server.local_addr()?.port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(addr: impl ToSocketAddrs, echo: Echo, config: Config) -> io::Result<EchoServer> {
        let server = Server::bind(addr, EchoProtocol::from(echo), config)?;
        Ok(EchoServer { server })
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    /// Those of `getsockname(2)`.
    ///
    /// # Examples
    /// ```
    /// use unp_select::echo::{Echo, EchoServer};
    /// use unp_select::server::Config;
    /// let server = EchoServer::bind("127.0.0.1:0", Echo::Bytes, Config::book())?;
    /// let addr = server.local_addr()?;
    /// assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.server.local_addr()
    }

    /// The loop's configuration.
    ///
    /// # Examples
    /// ```
    /// use unp_select::echo::{Echo, EchoServer};
    /// use unp_select::server::Config;
    /// let server = EchoServer::bind("127.0.0.1:0", Echo::Lines, Config::book())?;
    /// assert_eq!(server.config(), &Config::book());
    /// assert_eq!(server.config().messages_per_turn, 16); // lines per client and turn
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn config(&self) -> &Config {
        self.server.config()
    }

    /// A handle that stops [`run`](Self::run) from another thread.
    ///
    /// # Examples
    /// With [`Config::book`]'s zero drain, a stop closes the clients at once.
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    /// use unp_select::echo::{Echo, EchoServer};
    /// use unp_select::server::Config;
    ///
    /// let server = EchoServer::bind("127.0.0.1:0", Echo::Bytes, Config::book())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// conn.write_all(b"x")?;
    /// conn.read_exact(&mut [0; 1])?; // served
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.closed_shutdown, 1);
    /// assert_eq!(conn.read(&mut [0; 1])?, 0); // closed by the server
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.server.shutdown_handle()
    }

    /// A handle that reads the loop's counters while it runs (see
    /// [`StatsHandle`]; `messages_sent` are the lines, or reads, echoed).
    ///
    /// # Examples
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::TcpStream;
    /// use std::time::{Duration, Instant};
    /// use unp_select::echo::{Echo, EchoServer};
    /// use unp_select::server::Config;
    ///
    /// let server = EchoServer::bind("127.0.0.1:0", Echo::Lines, Config::book())?;
    /// let stats = server.stats_handle();
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run());
    ///
    /// let mut conn = TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// conn.write_all(b"a\nb\n")?;
    /// conn.read_exact(&mut [0; 4])?;
    /// // Published at the end of each turn of the loop.
    /// let deadline = Instant::now() + Duration::from_secs(5);
    /// while stats.snapshot().messages_sent < 2 && Instant::now() < deadline {
    ///     std::thread::sleep(Duration::from_millis(1));
    /// }
    /// assert_eq!(stats.snapshot().messages_sent, 2); // two lines echoed
    ///
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.bytes_sent, 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
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
    /// Two clients at once, each echoed in turn by one `select` loop:
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    /// use unp_select::echo::{Echo, EchoServer};
    /// use unp_select::server::Config;
    ///
    /// let server = EchoServer::bind("127.0.0.1:0", Echo::Bytes, Config::book())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run());
    ///
    /// let (mut a, mut b) = (TcpStream::connect(addr)?, TcpStream::connect(addr)?);
    /// for (conn, text) in [(&mut a, b"from a"), (&mut b, b"from b")] {
    ///     conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    ///     conn.write_all(text)?;
    ///     let mut echo = [0; 6];
    ///     conn.read_exact(&mut echo)?;
    ///     assert_eq!(&echo, text);
    /// }
    ///
    /// stop.shutdown();
    /// let stats = thread.join().unwrap()?;
    /// assert_eq!((stats.accepted, stats.bytes_sent, stats.closed_shutdown), (2, 12, 2));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run(self) -> io::Result<Stats> {
        self.run_with(Backend::Select)
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
    /// use unp_select::echo::{Echo, EchoServer};
    /// use unp_select::server::Config;
    ///
    /// let server = EchoServer::bind("127.0.0.1:0", Echo::Bytes, Config::book())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_large());
    /// let mut conn = std::net::TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    /// conn.write_all(b"large\n")?;
    /// let mut echo = String::new();
    /// BufReader::new(&conn).read_line(&mut echo)?;
    /// assert_eq!(echo, "large\n");
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.bytes_sent, 6);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_large(self) -> io::Result<Stats> {
        self.run_with(Backend::LargeSelect)
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
    /// use unp_select::echo::{Echo, EchoServer};
    /// use unp_select::server::Config;
    ///
    /// let server = EchoServer::bind("127.0.0.1:0", Echo::Lines, Config::book())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_poll());
    /// let mut conn = std::net::TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    /// conn.write_all(b"polled\n")?;
    /// let mut echo = String::new();
    /// BufReader::new(&conn).read_line(&mut echo)?;
    /// assert_eq!(echo, "polled\n");
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.messages_sent, 1); // lines echoed
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_poll(self) -> io::Result<Stats> {
        self.run_with(Backend::Poll)
    }

    /// Runs the same loop waiting with `backend`: [`Backend::Epoll`] (Linux) or
    /// [`Backend::Kqueue`] (the BSDs, macOS), whose cost per wait follows the
    /// ready descriptors, not the connected ones, besides the three above. With
    /// more than one [`Config::workers`], each worker runs its own loop on its own
    /// thread ([`Server::run_workers`]); so do [`run`](Self::run),
    /// [`run_large`](Self::run_large) and [`run_poll`](Self::run_poll).
    ///
    /// # Errors
    /// As [`run`](Self::run); `Unsupported` for a backend this platform lacks
    /// ([`Backend::is_supported`]).
    ///
    /// # Examples
    /// ```
    /// use std::io::{Read, Write};
    /// use unp_select::echo::{Echo, EchoServer};
    /// use unp_select::server::Config;
    /// use unp_select::sources::Backend;
    ///
    /// let backend = [Backend::Epoll, Backend::Kqueue, Backend::Poll]
    ///     .into_iter()
    ///     .find(|b| b.is_supported())
    ///     .unwrap();
    /// let server = EchoServer::bind("127.0.0.1:0", Echo::Bytes, Config::book())?;
    /// let (addr, stop) = (server.local_addr()?, server.shutdown_handle());
    /// let thread = std::thread::spawn(move || server.run_with(backend));
    /// let mut conn = std::net::TcpStream::connect(addr)?;
    /// conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    /// conn.write_all(b"ready")?;
    /// let mut echo = [0; 5];
    /// conn.read_exact(&mut echo)?;
    /// assert_eq!(&echo, b"ready");
    /// stop.shutdown();
    /// assert_eq!(thread.join().unwrap()?.bytes_sent, 5);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_with(self, backend: Backend) -> io::Result<Stats> {
        self.server.run_workers(backend)
    }
}
