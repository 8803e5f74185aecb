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
//! | `Accept`, `Readline`, `Writen`, `Close` | [`accept()`], [`LineReader`], [`try_writen`], `drop` |
//!
//! # Deviations from the book, each on purpose
//! 1. **The listener is nonblocking** (UNP 16.6) and `accept`'s errors are sorted by
//!    [`accept()`]: a connection that vanished between `select`
//!    and `accept` is counted in [`Stats::empty_accepts`] and the loop goes back to
//!    `select`, instead of sleeping in `accept` while every client starves.
//!    [`Config::nonblocking_listener`]` = false` restores the book's bug, for
//!    demonstrations and tests.
//! 2. **Out of descriptors** (`EMFILE`/`ENFILE`): UNP's `Accept` exits. Here the
//!    pending connection is shed with a reserve descriptor
//!    ([`FdReserve`]); if even that fails, the listener is
//!    left out of the set for [`ACCEPT_BACKOFF`], so the loop never spins on a
//!    listener that stays readable.
//! 3. **Too many clients**: the book calls `err_quit("too many clients")` and the
//!    server dies. Here that one connection is refused (reset) and counted in
//!    [`Stats::refused`]. [`EchoServer::run`] also refuses a connection whose
//!    descriptor is `>= FD_SETSIZE`: it cannot go into an `fd_set` (C would write
//!    past the set's end).
//! 4. **Write after EOF**: the seed text's loop lacks the `else` and calls `writen`
//!    on a descriptor it has just closed. Here EOF closes the client and nothing more
//!    is done with it.
//! 5. **A read or write error** (`ECONNRESET`, `EPIPE`) closes that client
//!    ([`Stats::closed_reset`]); in the book `Readline`'s `err_sys` kills the server.
//! 6. **Per-client line buffers**: UNP's `readline` keeps one static buffer for the
//!    whole process, so two clients' bytes can be mixed. Each client here owns a
//!    [`LineReader`]. Lines already buffered are served before the loop sleeps in
//!    `select` again (the `readlinebuf` check UNP 6.8 asks for); at most
//!    [`LINES_PER_TURN`] lines are echoed per client per turn, so one fast client
//!    cannot starve the others.
//! 7. **Clients that do not read their echoes**: connected sockets are nonblocking.
//!    An echo the kernel will not take is kept (at most one line, bounded by
//!    [`Config::max_line`]) and the client's descriptor moves from the read set to
//!    the write set: the server stops reading from that client until its echoes
//!    drain (back-pressure). If they have not drained within
//!    [`Config::write_timeout`], the client is closed ([`Stats::closed_policy`]).
//!    In the book, `Writen` blocks and one such client freezes the whole server.
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
//! assert_eq!(stats.lines_echoed, 1);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::accept::{accept, Accept, FdReserve};
use crate::poll::{poll, PollFd, PollFlags};
use crate::readline::LineReader;
use crate::select::{select, select_large, FdSet, LargeFdSet, FD_SETSIZE};
use crate::writen::try_writen;

/// How many lines one client may have echoed in one turn of the loop before the
/// others get theirs; the rest stay buffered and are served on the next turn.
pub const LINES_PER_TURN: usize = 16;

/// How long the listener stays out of the set after `accept` ran out of descriptors
/// and no connection could be shed.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// UNP's `MAXLINE`: the default [`Config::max_line`].
pub const MAXLINE: usize = 4096;

/// How the echo server behaves.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use unp_select::echo::Config;
///
/// // The seed text's server: blocking listener, five seconds between select and accept.
/// let book = Config {
///     nonblocking_listener: false,
///     accept_delay: Some(Duration::from_secs(5)),
///     ..Config::default()
/// };
/// assert_eq!(book.max_line, unp_select::echo::MAXLINE);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Make the listener nonblocking (UNP 16.6's fix). Default `true`; `false`
    /// reproduces the book's hang: a blocking `accept` after the connection vanished.
    pub nonblocking_listener: bool,
    /// Sleep this long between `select` reporting the listener readable and calling
    /// `accept` (the seed's `sleep(5)`), to open the race window on purpose.
    /// Default `None`.
    pub accept_delay: Option<Duration>,
    /// Most clients served at once (the length of `client[]`, which grows on demand
    /// up to it); more are refused. Default [`FD_SETSIZE`], as in the book.
    /// [`EchoServer::run`] also refuses any descriptor `>= FD_SETSIZE`, whatever
    /// this says.
    pub max_clients: usize,
    /// Longest line echoed in one piece; a longer line is echoed in pieces of this
    /// size. It bounds each client's memory: a line buffer that starts at
    /// `min(max_line, MAXLINE)` bytes and grows to at most `max_line`, plus at most
    /// one unsent echo of that size. Default [`MAXLINE`] (4096).
    pub max_line: usize,
    /// How long a client's echoes may stay unsent (the client does not read) before
    /// the client is closed. Default 10 seconds; a duration too long to add to an
    /// [`Instant`] (such as `Duration::MAX`) never expires.
    pub write_timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            nonblocking_listener: true,
            accept_delay: None,
            max_clients: FD_SETSIZE,
            max_line: MAXLINE,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Accepts that found nothing to accept, by errno (see [`Accept::NotNow`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    /// Any other transient network error Linux passes up from `accept`.
    pub other: u64,
}

impl EmptyAccepts {
    /// All empty accepts together.
    ///
    /// # Examples
    /// ```
    /// let e = unp_select::echo::EmptyAccepts { would_block: 2, aborted: 1, ..Default::default() };
    /// assert_eq!(e.total(), 3);
    /// ```
    pub fn total(&self) -> u64 {
        self.would_block + self.aborted + self.protocol + self.interrupted + self.other
    }

    fn count(&mut self, e: &io::Error) {
        #[allow(unreachable_patterns)]
        let counter = match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EWOULDBLOCK) => &mut self.would_block,
            Some(libc::ECONNABORTED) => &mut self.aborted,
            Some(libc::EPROTO) => &mut self.protocol,
            Some(libc::EINTR) => &mut self.interrupted,
            _ => &mut self.other,
        };
        *counter += 1;
    }
}

/// What a server did, returned by [`EchoServer::run`] after shutdown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted and served.
    pub accepted: u64,
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
    /// Clients closed after they closed (EOF).
    pub closed_eof: u64,
    /// Clients closed after a read or write error (`ECONNRESET`, `EPIPE`, …).
    pub closed_reset: u64,
    /// Clients closed by the server's policy: echoes not read within
    /// [`Config::write_timeout`].
    pub closed_policy: u64,
    /// Lines (or `max_line` pieces of longer lines) read and echoed.
    pub lines_echoed: u64,
    /// Bytes the kernel took for sending back to clients.
    pub bytes_echoed: u64,
}

/// Wakes a running [`EchoServer`] and makes [`run`](EchoServer::run) return.
///
/// `Clone + Send + Sync`; writing one byte to a socket pair whose other end sits in
/// the server's read set (the self-pipe trick) is all [`shutdown`](Self::shutdown)
/// does, so it is cheap and can be called from any thread.
///
/// A server stuck in a *blocking* `accept` (`nonblocking_listener: false`) does not
/// see the wake-up until `accept` returns: that is the book's bug.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    requested: Arc<AtomicBool>,
    wake: Arc<UnixStream>,
}

impl ShutdownHandle {
    /// Asks the server to stop; it returns from `run` at the top of its next turn.
    /// Calling it again, or after the server ended, does nothing.
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
    /// `InvalidInput` if `max_clients` or `max_line` is 0; the errors of `fcntl` and
    /// `socketpair` (for the shutdown self-pipe) otherwise.
    ///
    /// # Examples
    /// ```
    /// use std::net::TcpListener;
    /// use unp_select::echo::{Config, EchoServer};
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let server = EchoServer::new(listener, Config::default())?;
    /// assert!(server.local_addr()?.ip().is_loopback());
    /// let bad = Config { max_line: 0, ..Config::default() };
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
    /// Only errors that end the loop: `select` failing with anything but `EINTR`, or
    /// `accept` failing fatally (see [`accept()`]). Errors of one
    /// client close that client and are counted.
    ///
    /// # Examples
    /// See the [module documentation](self).
    pub fn run(self) -> io::Result<Stats> {
        Loop::new(self)?.run(SelectDriver::<FdSet>::default())
    }

    /// Runs the same select(2) loop over [`LargeFdSet`]s, which grow past
    /// `FD_SETSIZE`: a descriptor of any number can be served (up to
    /// [`Config::max_clients`] clients). Linux, FreeBSD and macOS accept such sets;
    /// see [`select_large`].
    ///
    /// # Errors
    /// As [`run`](Self::run).
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
    /// assert_eq!(thread.join().unwrap()?.lines_echoed, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_large(self) -> io::Result<Stats> {
        Loop::new(self)?.run(SelectDriver::<LargeFdSet>::default())
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
    /// use unp_select::echo::{Config, EchoServer};
    ///
    /// let server = EchoServer::bind("127.0.0.1:0", Config::default())?;
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
        Loop::new(self)?.run(PollDriver::new())
    }
}

/// Which entry of the loop's interest a descriptor is.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Listener,
    Wake,
    Client(usize),
}

/// The readiness mechanism under the shared loop: select(2) or poll(2).
trait Driver {
    /// Watches `fd` for reading or writing (or neither).
    fn watch(&mut self, slot: Slot, fd: RawFd, read: bool, write: bool) -> io::Result<()>;
    /// Stops watching `fd`.
    fn forget(&mut self, slot: Slot, fd: RawFd);
    /// Sleeps until something is ready; returns `nready`.
    fn wait(&mut self, maxi: Option<usize>, timeout: Option<Duration>) -> io::Result<usize>;
    /// Whether the last `wait` reported `fd` ready (for reading, writing or error).
    fn is_ready(&self, slot: Slot, fd: RawFd) -> bool;
}

/// The two set types the select driver runs on: UNP's fixed [`FdSet`] and the
/// growable [`LargeFdSet`].
trait SelectSet: Clone + Default {
    fn insert(&mut self, fd: RawFd) -> io::Result<()>;
    fn remove(&mut self, fd: RawFd);
    fn contains(&self, fd: RawFd) -> bool;
    fn is_empty(&self) -> bool;
    fn select(
        read: &mut Self,
        write: Option<&mut Self>,
        timeout: Option<Duration>,
    ) -> io::Result<usize>;
}

impl SelectSet for FdSet {
    fn insert(&mut self, fd: RawFd) -> io::Result<()> {
        FdSet::insert(self, fd)
    }
    fn remove(&mut self, fd: RawFd) {
        FdSet::remove(self, fd)
    }
    fn contains(&self, fd: RawFd) -> bool {
        FdSet::contains(self, fd)
    }
    fn is_empty(&self) -> bool {
        FdSet::is_empty(self)
    }
    fn select(
        read: &mut Self,
        write: Option<&mut Self>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        select(Some(read), write, None, timeout)
    }
}

impl SelectSet for LargeFdSet {
    fn insert(&mut self, fd: RawFd) -> io::Result<()> {
        LargeFdSet::insert(self, fd)
    }
    fn remove(&mut self, fd: RawFd) {
        LargeFdSet::remove(self, fd)
    }
    fn contains(&self, fd: RawFd) -> bool {
        LargeFdSet::contains(self, fd)
    }
    fn is_empty(&self) -> bool {
        LargeFdSet::is_empty(self)
    }
    fn select(
        read: &mut Self,
        write: Option<&mut Self>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        select_large(Some(read), write, None, timeout)
    }
}

/// UNP's `allset`/`rset` for select(2), plus the write sets that deviation 7 needs.
#[derive(Default)]
struct SelectDriver<S> {
    allset: S,
    wallset: S,
    rset: S,
    wset: S,
}

impl<S: SelectSet> Driver for SelectDriver<S> {
    fn watch(&mut self, _: Slot, fd: RawFd, read: bool, write: bool) -> io::Result<()> {
        for (set, on) in [(&mut self.allset, read), (&mut self.wallset, write)] {
            if on {
                set.insert(fd)?;
            } else {
                set.remove(fd);
            }
        }
        Ok(())
    }

    fn forget(&mut self, _: Slot, fd: RawFd) {
        self.allset.remove(fd);
        self.wallset.remove(fd);
    }

    fn wait(&mut self, _: Option<usize>, timeout: Option<Duration>) -> io::Result<usize> {
        // UNP: rset = allset; nready = Select(maxfd + 1, &rset, NULL, NULL, NULL);
        self.rset.clone_from(&self.allset);
        self.wset.clone_from(&self.wallset);
        let wset = (!self.wset.is_empty()).then_some(&mut self.wset);
        S::select(&mut self.rset, wset, timeout)
    }

    fn is_ready(&self, _: Slot, fd: RawFd) -> bool {
        self.rset.contains(fd) || self.wset.contains(fd)
    }
}

/// UNP's `struct pollfd client[OPEN_MAX]`: entry 0 is the listener, 1 the wake-up
/// socket, `2 + i` client `i`; a free entry has fd -1, which poll(2) ignores.
struct PollDriver {
    client: Vec<PollFd>,
}

impl PollDriver {
    const FIRST_CLIENT: usize = 2;

    const FREE: PollFd = PollFd::new(-1, PollFlags::empty());

    fn new() -> PollDriver {
        PollDriver {
            client: vec![Self::FREE; Self::FIRST_CLIENT],
        }
    }

    fn index(slot: Slot) -> usize {
        match slot {
            Slot::Listener => 0,
            Slot::Wake => 1,
            Slot::Client(i) => Self::FIRST_CLIENT + i,
        }
    }
}

impl Driver for PollDriver {
    fn watch(&mut self, slot: Slot, fd: RawFd, read: bool, write: bool) -> io::Result<()> {
        let mut events = PollFlags::empty();
        if read {
            events |= PollFlags::POLLRDNORM;
        }
        if write {
            events |= PollFlags::POLLOUT;
        }
        let i = Self::index(slot);
        if i >= self.client.len() {
            self.client.resize(i + 1, Self::FREE);
        }
        self.client[i] = PollFd::new(fd, events);
        Ok(())
    }

    fn forget(&mut self, slot: Slot, _: RawFd) {
        if let Some(entry) = self.client.get_mut(Self::index(slot)) {
            *entry = Self::FREE;
        }
    }

    fn wait(&mut self, maxi: Option<usize>, timeout: Option<Duration>) -> io::Result<usize> {
        // UNP: nready = Poll(client, maxi + 1, INFTIM);
        let used = maxi.map_or(0, |i| i + 1);
        let nfds = (Self::FIRST_CLIENT + used).min(self.client.len());
        poll(&mut self.client[..nfds], timeout)
    }

    fn is_ready(&self, slot: Slot, _: RawFd) -> bool {
        // UNP tests POLLRDNORM | POLLERR; POLLHUP and POLLOUT matter here too.
        let ready = PollFlags::POLLRDNORM
            | PollFlags::POLLIN
            | PollFlags::POLLOUT
            | PollFlags::POLLERR
            | PollFlags::POLLHUP
            | PollFlags::POLLNVAL;
        self.client
            .get(Self::index(slot))
            .is_some_and(|entry| entry.revents().intersects(ready))
    }
}

/// One connected client: its own line buffer (deviation 6) and the echoes the
/// kernel has not taken yet (deviation 7).
struct Client {
    reader: LineReader<TcpStream>,
    unsent: Vec<u8>,
    stalled_since: Option<Instant>,
}

/// Why a client was closed.
enum Close {
    Eof,
    Reset,
    Policy,
}

/// The loop's state, shared by the select and poll drivers.
struct Loop {
    listener: TcpListener,
    config: Config,
    wake: UnixStream,
    /// Kept so the wake-up socket's other end stays open even when nobody took a
    /// handle: otherwise `wake` would read EOF, stay readable, and the loop would spin.
    handle: ShutdownHandle,
    reserve: Option<FdReserve>,
    accept_paused_until: Option<Instant>,
    /// UNP's `client[]`, grown on demand up to `max_clients` entries.
    client: Vec<Option<Client>>,
    /// UNP's `maxi`: the highest index of `client` ever used (`None` = UNP's -1).
    maxi: Option<usize>,
    /// Clients with complete lines still in their buffers (UNP 6.8's `readlinebuf`).
    backlog: Vec<usize>,
    line: Vec<u8>,
    stats: Stats,
}

impl Loop {
    fn new(server: EchoServer) -> io::Result<Loop> {
        let EchoServer {
            listener,
            config,
            wake,
            handle,
        } = server;
        Ok(Loop {
            listener,
            line: Vec::with_capacity(config.max_line.min(MAXLINE)),
            config,
            wake,
            handle,
            // Without a spare descriptor the server still runs; it backs off instead.
            reserve: FdReserve::new().ok(),
            accept_paused_until: None,
            client: Vec::new(),
            maxi: None,
            backlog: Vec::new(),
            stats: Stats::default(),
        })
    }

    fn run<D: Driver>(mut self, mut driver: D) -> io::Result<Stats> {
        let listenfd = self.listener.as_raw_fd();
        let wakefd = self.wake.as_raw_fd();
        driver.watch(Slot::Listener, listenfd, true, false)?;
        driver.watch(Slot::Wake, wakefd, true, false)?;
        let mut deadline = None;
        while !self.handle.requested.load(Ordering::SeqCst) {
            let timeout = if self.backlog.is_empty() {
                deadline.map(|d: Instant| d.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO) // buffered lines: do not sleep
            };
            let mut nready = match driver.wait(self.maxi, timeout) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };

            if driver.is_ready(Slot::Wake, wakefd) {
                let _ = (&self.wake).read(&mut [0; 64]);
                continue; // the loop condition sees the request
            }

            if let Some(until) = self.accept_paused_until {
                if Instant::now() >= until {
                    self.accept_paused_until = None;
                    if !self.reserve.as_ref().is_some_and(FdReserve::is_armed) {
                        self.reserve = FdReserve::new().ok(); // re-arm if fds are back
                    }
                    driver.watch(Slot::Listener, listenfd, true, false)?;
                }
            }

            if driver.is_ready(Slot::Listener, listenfd) {
                nready = nready.saturating_sub(1);
                self.accept_one(&mut driver)?;
            }

            // UNP 6.8: serve lines already read into our buffers before sleeping.
            for i in std::mem::take(&mut self.backlog) {
                self.serve(i, &mut driver);
            }

            // UNP: for (i = 0; i <= maxi; i++) { ... if (--nready <= 0) break; }
            if nready > 0 {
                for i in 0..self.maxi.map_or(0, |m| m + 1) {
                    let Some(sockfd) = self.client[i].as_ref().map(Client::fd) else {
                        continue;
                    };
                    if driver.is_ready(Slot::Client(i), sockfd) {
                        self.serve(i, &mut driver);
                        nready = nready.saturating_sub(1);
                        if nready == 0 {
                            break;
                        }
                    }
                }
            }

            deadline = self.enforce_write_timeout(&mut driver);
            if let Some(until) = self.accept_paused_until {
                deadline = Some(deadline.map_or(until, |d: Instant| d.min(until)));
            }
        }
        Ok(self.stats)
    }

    /// The listener is readable: (optionally sleep, as the seed does, then) accept.
    fn accept_one<D: Driver>(&mut self, driver: &mut D) -> io::Result<()> {
        if let Some(delay) = self.config.accept_delay {
            thread::sleep(delay); // the seed's sleep(5): the race window
        }
        match accept(&self.listener)? {
            Accept::Connection(stream, _) => self.add_client(stream, driver),
            Accept::NotNow(e) => self.stats.empty_accepts.count(&e),
            Accept::OutOfResources(_) => {
                self.stats.out_of_resources += 1;
                let shed = match self.reserve.as_mut() {
                    Some(reserve) => reserve.shed(&self.listener),
                    None => Err(io::Error::from_raw_os_error(libc::EMFILE)),
                };
                match shed {
                    Ok(true) => self.stats.shed += 1,
                    Ok(false) => {}
                    Err(_) => {
                        // Could not even shed: stop watching the listener for a while
                        // rather than spin on it.
                        driver.forget(Slot::Listener, self.listener.as_raw_fd());
                        self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    }
                }
            }
        }
        Ok(())
    }

    /// UNP: find the first free `client[i]`, save the descriptor, add it to `allset`.
    fn add_client<D: Driver>(&mut self, stream: TcpStream, driver: &mut D) {
        let connfd = stream.as_raw_fd();
        let free = self.client.iter().position(Option::is_none);
        let Some(i) = free.or_else(|| {
            // client[] grows up to max_clients instead of being allocated whole.
            (self.client.len() < self.config.max_clients).then(|| {
                self.client.push(None);
                self.client.len() - 1
            })
        }) else {
            return self.refuse(stream); // UNP: err_quit("too many clients")
        };
        if stream.set_nonblocking(true).is_err()
            || driver.watch(Slot::Client(i), connfd, true, false).is_err()
        {
            return self.refuse(stream); // e.g. connfd >= FD_SETSIZE
        }
        // The buffer starts at UNP's MAXLINE at most and grows up to max_line.
        let mut reader = LineReader::with_capacity(self.config.max_line.min(MAXLINE), stream);
        if reader.set_max_line(self.config.max_line).is_err() {
            driver.forget(Slot::Client(i), connfd);
            return self.refuse(reader.into_inner());
        }
        self.client[i] = Some(Client {
            reader,
            unsent: Vec::new(),
            stalled_since: None,
        });
        self.maxi = Some(self.maxi.map_or(i, |m| m.max(i)));
        self.stats.accepted += 1;
    }

    fn refuse(&mut self, stream: TcpStream) {
        self.stats.refused += 1;
        // Reset, so the client learns at once; the descriptor is closed either way.
        let _ = crate::linger::abort(OwnedFd::from(stream));
    }

    /// UNP's `Readline` + `Writen` for one client, without blocking: flush unsent
    /// echoes, then echo up to [`LINES_PER_TURN`] lines.
    fn serve<D: Driver>(&mut self, i: usize, driver: &mut D) {
        let Some(client) = self.client[i].as_mut() else {
            return;
        };
        let outcome = client.turn(&mut self.line, &mut self.stats);
        let fd = client.fd();
        match outcome {
            Err(why) => self.close(i, why, driver),
            Ok(()) => {
                let blocked = !client.unsent.is_empty();
                if driver
                    .watch(Slot::Client(i), fd, !blocked, blocked)
                    .is_err()
                {
                    // Cannot happen: the fd was accepted into the same driver.
                    return self.close(i, Close::Reset, driver);
                }
                if !blocked && client.reader.has_line() {
                    self.backlog.push(i);
                }
            }
        }
    }

    /// UNP: `Close(sockfd); FD_CLR(sockfd, &allset); client[i] = -1;`
    fn close<D: Driver>(&mut self, i: usize, why: Close, driver: &mut D) {
        if let Some(client) = self.client[i].take() {
            driver.forget(Slot::Client(i), client.fd());
            *match why {
                Close::Eof => &mut self.stats.closed_eof,
                Close::Reset => &mut self.stats.closed_reset,
                Close::Policy => &mut self.stats.closed_policy,
            } += 1;
        }
    }

    /// Deviation 7: closes clients whose echoes stayed unsent too long; returns when
    /// the next one would time out.
    fn enforce_write_timeout<D: Driver>(&mut self, driver: &mut D) -> Option<Instant> {
        let now = Instant::now();
        let mut next = None;
        for i in 0..self.maxi.map_or(0, |m| m + 1) {
            let Some(since) = self.client[i].as_ref().and_then(|c| c.stalled_since) else {
                continue;
            };
            // A timeout too long to add to an Instant never expires.
            let Some(due) = since.checked_add(self.config.write_timeout) else {
                continue;
            };
            if now >= due {
                self.close(i, Close::Policy, driver);
            } else {
                next = Some(next.map_or(due, |n: Instant| n.min(due)));
            }
        }
        next
    }
}

impl Client {
    fn fd(&self) -> RawFd {
        self.reader.get_ref().as_raw_fd()
    }

    /// One turn: flush what is unsent, then echo lines until the socket has nothing
    /// more, the kernel stops taking echoes, or the turn's quota is used.
    fn turn(&mut self, line: &mut Vec<u8>, stats: &mut Stats) -> Result<(), Close> {
        if !self.unsent.is_empty() {
            let n = try_writen(self.reader.get_ref(), &self.unsent).map_err(|_| Close::Reset)?;
            self.unsent.drain(..n);
            stats.bytes_echoed += n as u64;
            if !self.unsent.is_empty() {
                return Ok(());
            }
            self.stalled_since = None;
        }
        for _ in 0..LINES_PER_TURN {
            line.clear();
            match self.reader.read_line(line) {
                Ok(0) => return Err(Close::Eof),
                Ok(n) => {
                    stats.lines_echoed += 1;
                    let written =
                        try_writen(self.reader.get_ref(), line).map_err(|_| Close::Reset)?;
                    stats.bytes_echoed += written as u64;
                    if written < n {
                        self.unsent.extend_from_slice(&line[written..]);
                        self.stalled_since = Some(Instant::now());
                        return Ok(());
                    }
                    if self.reader.buffered().is_empty() {
                        // Nothing left in our buffer: another read now would most
                        // likely say EAGAIN. select is level-triggered and reports
                        // the socket again when more has arrived.
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(_) => return Err(Close::Reset),
            }
        }
        Ok(())
    }
}
