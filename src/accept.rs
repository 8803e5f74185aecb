//! `accept(2)` that sorts its errors for a select loop (UNP 5.11, 16.6).
//!
//! A select loop learns that the listening socket is readable, then calls `accept`.
//! Between the two the connection can go away: the client resets it (UNP 16.6, the
//! RST-before-accept race), or another thread or process sharing the listener takes
//! it. On a *blocking* listener `accept` then sleeps until some other client connects,
//! and every client the loop already serves starves. The fix is a nonblocking
//! listener and an `accept` whose errors say what to do next:
//!
//! | outcome | errno | what the caller does |
//! |---|---|---|
//! | [`Accept::Connection`] | — | serve it |
//! | [`Accept::NotNow`] | `EAGAIN`/`EWOULDBLOCK`, `ECONNABORTED`, `EPROTO`, `EINTR`, `ECONNRESET`, `ETIMEDOUT`, `EPERM`, and Linux's pending network errors (`ENETDOWN`, `ENOSR`, …) | go back to `select` |
//! | [`Accept::OutOfResources`] | `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM` | shed or back off ([`FdReserve`]); never retry at once, which spins |
//! | `Err(e)` | anything else (`EBADF`, `EINVAL`, `ENOTSOCK`, …) | fatal for this listener |
//!
//! [`accept`] takes a [`TcpListener`] or a [`UnixListener`] (UNP chapter 15), borrowed,
//! and gives a connection of the matching type: `TcpStream` and its
//! `std::net::SocketAddr`, or `UnixStream` and its `std::os::unix::net::SocketAddr`.
//! One function generic over the sealed [`StreamListener`] trait, rather than an
//! `accept_unix` beside it: the error sorting, the flags and the platform notes are
//! the same for both, and so is the [`Accept`] a loop matches on.
//!
//! # Platform-specific behavior
//! - `ECONNRESET` and `ETIMEDOUT` (a connection reset or timed out in the queue;
//!   Linux documents `ETIMEDOUT`, and Go's `net` and trio retry both) are
//!   [`Accept::NotNow`], and so are Linux's `ENOSR`, `ESOCKTNOSUPPORT` and
//!   `EPROTONOSUPPORT`, which its man page says various kernels return.
//! - Linux and FreeBSD use `accept4(SOCK_CLOEXEC)` (with `SOCK_NONBLOCK` for
//!   [`accept_nonblocking`]); elsewhere (Apple has no `accept4`) the flags are set
//!   with `fcntl` right after `accept`, which leaves a short window in which a
//!   `fork`+`exec` in another thread inherits the descriptor.
//! - BSD kernels let the new socket inherit `O_NONBLOCK` from the listener; these
//!   functions set or clear it, so the result is blocking (from [`accept`]) or
//!   nonblocking (from [`accept_nonblocking`]) everywhere, as on Linux.
//! - Linux passes pending network errors of the new connection up as errors from
//!   `accept` (`ENETDOWN`, `EPROTO`, `ENOPROTOOPT`, `EHOSTDOWN`, `ENONET`,
//!   `EHOSTUNREACH`, `EOPNOTSUPP`, `ENETUNREACH`) and may return `EPERM` when a
//!   firewall rule forbids the connection; the man page says to treat them like
//!   `EAGAIN`, so they are [`Accept::NotNow`] (except `EOPNOTSUPP`, which also means the
//!   socket type cannot accept, and is fatal).
//! - Linux keeps a connection reset before `accept` in the queue and returns it (its
//!   first `read` fails with `ECONNRESET`); Berkeley kernels drop it, so there a
//!   nonblocking `accept` gives `EAGAIN` or `ECONNABORTED`.
//! - Linux reserves the new descriptor before it looks at the queue, so at the
//!   descriptor limit `accept` says `EMFILE` even when the queue is empty (measured).
//! - A Unix-domain connection's address is read with `getpeername(2)` after the
//!   `accept`: the standard library cannot make a `std::os::unix::net::SocketAddr` of
//!   the bytes `accept(2)` wrote. It is unnamed unless the client bound its socket.
//!
//! # References
//! - W. Richard Stevens, Bill Fenner, Andrew M. Rudoff, *Unix Network Programming,
//!   Volume 1*, 3rd ed., section 5.11 (`accept` and `ECONNABORTED`), section 16.6
//!   (nonblocking `accept`), and the `Accept` wrapper of `lib/wrapsock.c`.
//! - [POSIX `accept`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/accept.html)
//! - [Linux `accept(2)`](https://man7.org/linux/man-pages/man2/accept.2.html)
//! - [FreeBSD `accept(2)`](https://man.freebsd.org/cgi/man.cgi?query=accept&sektion=2)
//! - [Apple `accept(2)`](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/accept.2.html)
//! - [Linux `unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html) (unnamed
//!   and pathname addresses)

use std::fmt;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{self as unix, UnixListener, UnixStream};

mod sealed {
    use std::os::fd::OwnedFd;

    use super::{Accept, StreamListener};

    /// What [`accept`](super::accept) needs of a listener beyond its types. Private,
    /// so [`StreamListener`] cannot be implemented outside this crate.
    pub trait Sealed {
        /// The connection made of the descriptor `accept(2)` returned, and the
        /// address it wrote (`None` for any family but IPv4 and IPv6).
        fn connection(fd: OwnedFd, peer: Option<std::net::SocketAddr>) -> Accept<Self>
        where
            Self: StreamListener + Sized;
    }
}

/// A listening stream socket that [`accept`] takes connections from:
/// [`TcpListener`] or [`UnixListener`]. It names the type of the connected socket
/// and of the peer's address that come with [`Accept::Connection`].
///
/// The trait is sealed: only this crate implements it.
///
/// # Examples
/// A function that serves either kind of listener:
/// ```
/// use std::os::unix::net::{UnixListener, UnixStream};
/// use unp_select::accept::{accept, Accept, StreamListener};
///
/// fn take_one<L: StreamListener>(listener: &L) -> std::io::Result<Option<L::Stream>> {
///     match accept(listener)? {
///         Accept::Connection(stream, _) => Ok(Some(stream)),
///         _ => Ok(None),
///     }
/// }
///
/// let path = std::env::temp_dir().join(format!("unp-select-doc-sl-{}", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// let listener = UnixListener::bind(&path)?;
/// let _client = UnixStream::connect(&path)?;
/// let stream: Option<UnixStream> = take_one(&listener)?;
/// assert!(stream.is_some());
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait StreamListener: AsFd + sealed::Sealed {
    /// The connected socket: [`TcpStream`] or [`UnixStream`].
    type Stream: AsFd + Into<OwnedFd> + fmt::Debug;
    /// The peer's address: [`std::net::SocketAddr`] or
    /// [`std::os::unix::net::SocketAddr`].
    type Addr: fmt::Debug;
}

impl sealed::Sealed for TcpListener {
    fn connection(fd: OwnedFd, peer: Option<SocketAddr>) -> Accept<TcpListener> {
        Accept::Connection(TcpStream::from(fd), peer)
    }
}

impl StreamListener for TcpListener {
    type Stream = TcpStream;
    type Addr = SocketAddr;
}

impl sealed::Sealed for UnixListener {
    fn connection(fd: OwnedFd, _: Option<SocketAddr>) -> Accept<UnixListener> {
        let stream = UnixStream::from(fd);
        // accept(2) wrote a sockaddr_un, which std cannot take: ask again.
        let peer = stream.peer_addr().ok();
        Accept::Connection(stream, peer)
    }
}

impl StreamListener for UnixListener {
    type Stream = UnixStream;
    type Addr = unix::SocketAddr;
}

/// What one [`accept`] call found: the outcome of UNP's `Accept`, with its errors
/// sorted by what a select loop does next (see the [module documentation](self)).
///
/// The enum is `#[non_exhaustive]`: a later version may sort some errors into an
/// outcome of their own, so a `match` outside this crate needs a wildcard arm. Going
/// back to `select` there, as for [`NotNow`](Accept::NotNow), is the safe default.
///
/// # Examples
///
/// ```
/// use std::net::TcpListener;
/// use unp_select::{accept, Accept};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// listener.set_nonblocking(true)?;
/// match accept(&listener)? {
///     Accept::Connection(stream, peer) => println!("{peer:?} connected: {stream:?}"),
///     Accept::NotNow(e) => println!("nothing to accept: {e}"), // here: EAGAIN
///     Accept::OutOfResources(e) => return Err(e), // a real server sheds or backs off
///     _ => {} // an outcome added later: back to select
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// The type parameter is the listener's type: `Accept` alone is `Accept<TcpListener>`,
/// whose connection is a `TcpStream`; [`accept`] on a [`UnixListener`] returns an
/// `Accept<UnixListener>`, whose connection is a `UnixStream`.
#[non_exhaustive]
pub enum Accept<L: StreamListener = TcpListener> {
    /// A new connection: a close-on-exec socket (blocking from [`accept`],
    /// nonblocking from [`accept_nonblocking`]), and the peer's address. For TCP the
    /// address is `None` only if the kernel returned an address family this crate
    /// does not know; Linux gives the address even for a connection that was reset
    /// before `accept` (measured; see the crate's `docs/rst-accept-race.md`). For a
    /// Unix-domain connection it is `None` if `getpeername(2)` failed (see the
    /// [module documentation](self#platform-specific-behavior)).
    Connection(L::Stream, Option<L::Addr>),
    /// Nothing to accept now; go back to `select`. The error says why (its errno is
    /// kept). Count it if you like; never treat it as fatal.
    NotNow(io::Error),
    /// The process or the system is out of descriptors or buffers. A pending
    /// connection stays in the queue, so the listener stays readable: retrying at
    /// once spins at 100% CPU. Shed the connection ([`FdReserve::shed`]) or stop
    /// watching the listener for a while. (Linux says `EMFILE` at the limit even when
    /// the queue is empty.)
    OutOfResources(io::Error),
}

impl<L: StreamListener> fmt::Debug for Accept<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Accept::Connection(stream, peer) => f
                .debug_tuple("Connection")
                .field(stream)
                .field(peer)
                .finish(),
            Accept::NotNow(e) => f.debug_tuple("NotNow").field(e).finish(),
            Accept::OutOfResources(e) => f.debug_tuple("OutOfResources").field(e).finish(),
        }
    }
}

/// Accepts one connection from `listener` and sorts the outcome; UNP's `Accept`
/// wrapper, done the way UNP 16.6 says a select loop must.
///
/// `listener` is a [`TcpListener`] or a [`UnixListener`], borrowed; the connection
/// is of the matching type ([`StreamListener`]). It is the one function of this
/// crate that borrows a descriptor and is not `&(impl AsFd + ?Sized)`: the
/// listener's type decides what it returns.
///
/// Make the listener nonblocking (`listener.set_nonblocking(true)`) when a select or
/// poll loop calls this: then it never sleeps, and a connection that vanished between
/// `select` and `accept` is [`Accept::NotNow`]. On a blocking listener it sleeps until
/// a connection arrives, as `accept(2)` does.
///
/// The new socket is close-on-exec and blocking on every platform
/// ([`accept_nonblocking`] gives a nonblocking one).
///
/// Which errno means what on which platform, `accept4` or `accept` then `fcntl`, and
/// what Linux and BSD kernels do with a connection reset in the queue: see the
/// [module documentation](self#platform-specific-behavior).
///
/// # Errors
/// Returns `Err` only for errors that will not go away by retrying: `EBADF`, `EINVAL`
/// (not listening), `ENOTSOCK`, `EOPNOTSUPP`, `EFAULT`. Transient errors are
/// [`Accept::NotNow`] and resource exhaustion is [`Accept::OutOfResources`].
///
/// # Platform-specific behavior
/// `accept4` or `accept` then `fcntl`, which errno is sorted where, and a Unix-domain
/// peer's address read with `getpeername(2)`: see the
/// [module documentation](self#platform-specific-behavior).
///
/// # References
/// - [POSIX `accept`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/accept.html),
///   [Linux `accept(2)`](https://man7.org/linux/man-pages/man2/accept.2.html),
///   [Linux `getpeername(2)`](https://man7.org/linux/man-pages/man2/getpeername.2.html)
/// - UNP sections 5.11 and 16.6; chapter 15 (Unix-domain sockets).
///
/// # Examples
/// ```
/// use std::net::{TcpListener, TcpStream};
/// use unp_select::accept::{accept, Accept};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// listener.set_nonblocking(true)?;
/// // Nothing has connected: a nonblocking accept says "not now" instead of sleeping.
/// assert!(matches!(accept(&listener)?, Accept::NotNow(_)));
///
/// let _client = TcpStream::connect(listener.local_addr()?)?;
/// // The handshake completes in the kernel; wait for it the way a select loop would.
/// let mut rset = unp_select::FdSet::new();
/// rset.insert(std::os::fd::AsRawFd::as_raw_fd(&listener))?;
/// unp_select::select(Some(&mut rset), None, None, None)?;
/// match accept(&listener)? {
///     Accept::Connection(stream, peer) => {
///         assert_eq!(peer, Some(_client.local_addr()?));
///         drop(stream);
///     }
///     other => panic!("expected a connection, got {other:?}"),
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// A Unix-domain listener gives a `UnixStream`:
/// ```
/// use std::os::unix::net::{UnixListener, UnixStream};
/// use unp_select::accept::{accept, Accept};
///
/// let path = std::env::temp_dir().join(format!("unp-select-doc-accept-{}", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// let listener = UnixListener::bind(&path)?;
/// let _client = UnixStream::connect(&path)?;
/// let Accept::Connection(stream, peer) = accept(&listener)? else {
///     panic!("expected a connection");
/// };
/// let stream: UnixStream = stream;
/// assert!(peer.is_some_and(|a| a.is_unnamed())); // the client did not bind
/// drop(stream);
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// The listener is borrowed: passed by value it would be closed when the call
/// returns, so that does not compile.
/// ```compile_fail,E0308
/// use std::net::TcpListener;
/// use unp_select::accept::accept;
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// accept(listener)?; // error[E0308]: expected `&_`, found `TcpListener`
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn accept<L: StreamListener>(listener: &L) -> io::Result<Accept<L>> {
    accept_with(listener, false)
}

/// [`accept`] whose new socket is nonblocking, set in the same system call where the
/// platform allows (`accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)` on Linux and FreeBSD;
/// `accept` then `fcntl` elsewhere): what an event loop wants for its clients.
///
/// # Errors
/// As [`accept`].
///
/// # Examples
/// ```
/// use std::io::{ErrorKind, Read};
/// use std::net::TcpStream;
/// use unp_select::accept::{accept_nonblocking, Accept};
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let _client = TcpStream::connect(listener.local_addr()?)?;
/// // The listener is blocking here, so this waits for the handshake.
/// let Accept::Connection(mut stream, _) = accept_nonblocking(&listener)? else {
///     panic!("expected a connection");
/// };
/// let err = stream.read(&mut [0; 8]).unwrap_err(); // nothing sent yet
/// assert_eq!(err.kind(), ErrorKind::WouldBlock);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn accept_nonblocking<L: StreamListener>(listener: &L) -> io::Result<Accept<L>> {
    accept_with(listener, true)
}

fn accept_with<L: StreamListener>(listener: &L, nonblocking: bool) -> io::Result<Accept<L>> {
    match crate::sys::accept_cloexec(listener.as_fd(), nonblocking) {
        Ok((fd, peer)) => Ok(L::connection(fd, peer)),
        Err(e) => sort(e),
    }
}

/// Sorts an error from `accept(2)` into "not now", "out of resources" or fatal.
pub(crate) fn classify(e: io::Error) -> io::Result<Accept> {
    sort(e)
}

/// [`classify`] for any listener type.
fn sort<L: StreamListener>(e: io::Error) -> io::Result<Accept<L>> {
    let Some(errno) = e.raw_os_error() else {
        return Err(e);
    };
    if is_not_now(errno) {
        Ok(Accept::NotNow(e))
    } else if matches!(
        errno,
        libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
    ) {
        Ok(Accept::OutOfResources(e))
    } else {
        Err(e)
    }
}

/// The errnos after which a select loop just goes back to `select`.
fn is_not_now(errno: i32) -> bool {
    // EWOULDBLOCK equals EAGAIN on the platforms we build for, but POSIX allows them
    // to differ, so both are named.
    #[allow(unreachable_patterns)]
    let transient = matches!(
        errno,
        libc::EAGAIN
            | libc::EWOULDBLOCK
            | libc::ECONNABORTED
            | libc::EPROTO
            | libc::EINTR
            | libc::ECONNRESET
            | libc::ETIMEDOUT
            | libc::EPERM
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
    );
    transient || crate::sys::is_accept_network_error(errno)
}

/// One descriptor held in reserve, so a server that hits `EMFILE` can still take the
/// pending connection off the queue and close it, instead of spinning on a listener
/// that stays readable.
///
/// This is the "reserve fd" trick (libuv's `uv__emfile_trick`, muduo's idle fd):
/// keep `/dev/null` open; when `accept` says `EMFILE`, close it, accept the
/// connection, reset it, and open `/dev/null` again. UNP does not handle `EMFILE` at
/// all: its `Accept` wrapper exits the server.
///
/// Linux reserves the new descriptor before it looks at the queue, so at the limit
/// `accept` says `EMFILE` even when the queue is empty (measured here); `shed` then
/// returns `Ok(false)`. After that, go back to `select`/`poll`: calling `accept`
/// again at once says `EMFILE` again, and a loop of `accept` and `shed` spins (libuv
/// had exactly that bug).
///
/// The trick helps only against the per-process limit (`EMFILE`) and only while no
/// other thread grabs the freed descriptor first; when the reserve cannot be
/// re-opened, [`shed`](FdReserve::shed) says so and the caller should back off
/// (stop watching the listener for a short while).
///
/// # Examples
/// ```
/// use unp_select::accept::FdReserve;
/// let reserve = FdReserve::new()?;
/// assert!(reserve.is_armed());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FdReserve {
    spare: Option<File>,
}

impl FdReserve {
    /// Opens the spare descriptor (`/dev/null`, read-only, close-on-exec).
    ///
    /// # Errors
    /// Whatever `open(2)` says, e.g. `EMFILE` if the process is already out of
    /// descriptors.
    ///
    /// # Examples
    /// The reserve sheds a pending connection: the client is reset, and the
    /// reserve is armed again for the next `EMFILE`.
    /// ```
    /// use std::io::{ErrorKind, Read};
    /// use std::net::{TcpListener, TcpStream};
    /// use std::time::Duration;
    /// use unp_select::accept::FdReserve;
    /// use unp_select::select::{select, FdSet};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// listener.set_nonblocking(true)?; // UNP 16.6
    /// let mut reserve = FdReserve::new()?;
    /// let mut client = TcpStream::connect(listener.local_addr()?)?;
    /// client.set_read_timeout(Some(Duration::from_secs(5)))?;
    ///
    /// let mut rset = FdSet::new();
    /// rset.insert_fd(&listener)?;
    /// select(Some(&mut rset), None, None, Some(Duration::from_secs(5)))?;
    /// assert!(rset.contains_fd(&listener)); // a connection to accept
    /// assert!(reserve.shed(&listener)?); // as a server out of descriptors would
    /// assert!(reserve.is_armed());
    /// let reset = client.read(&mut [0; 1]).unwrap_err();
    /// assert_eq!(reset.kind(), ErrorKind::ConnectionReset);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<FdReserve> {
        Ok(FdReserve {
            spare: Some(File::open("/dev/null")?),
        })
    }

    /// Whether the spare descriptor is held (it is not after a [`shed`](Self::shed)
    /// whose re-open failed).
    ///
    /// # Examples
    /// ```
    /// let reserve = unp_select::accept::FdReserve::new()?;
    /// assert!(reserve.is_armed());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_armed(&self) -> bool {
        self.spare.is_some()
    }

    /// Frees the spare descriptor, accepts one pending connection from `listener`,
    /// resets it (linger {on, 0} and close: the client sees `ECONNRESET`, not a clean
    /// EOF), and opens the spare again.
    ///
    /// Returns `Ok(true)` if a connection was shed, `Ok(false)` if there was none to
    /// shed (or it vanished).
    ///
    /// # Errors
    /// - `EMFILE` (or whatever `accept` said) if the reserve was not armed, or if even
    ///   with the spare freed the connection could not be accepted; the caller should
    ///   back off.
    ///
    /// If the spare cannot be re-opened afterwards, the result still says whether a
    /// connection was shed, and [`is_armed`](Self::is_armed) is false: back off and
    /// re-arm later with [`FdReserve::new`].
    ///
    /// # Examples
    /// ```
    /// use std::net::{TcpListener, TcpStream};
    /// use unp_select::accept::FdReserve;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// listener.set_nonblocking(true)?;
    /// let mut reserve = FdReserve::new()?;
    /// assert!(!reserve.shed(&listener)?); // nothing pending
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shed(&mut self, listener: &(impl AsFd + ?Sized)) -> io::Result<bool> {
        let Some(spare) = self.spare.take() else {
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        };
        drop(spare);
        let outcome = match crate::sys::accept_cloexec(listener.as_fd(), false) {
            Ok((fd, _)) => {
                // A reset tells the client at once that it was not served; if even
                // setting linger fails, the close inside `abort` still frees the fd.
                let _ = crate::linger::abort(fd);
                Ok(true)
            }
            Err(e) => match classify(e) {
                Ok(Accept::OutOfResources(e)) | Err(e) => Err(e),
                // NotNow; classify never returns a connection.
                Ok(_) => Ok(false),
            },
        };
        // Re-arm before reporting anything, so no outcome leaves the reserve empty
        // when the descriptor is there to be had. If it is not, `is_armed` says so;
        // the result still says what happened to the connection.
        self.spare = File::open("/dev/null").ok();
        outcome
    }
}
