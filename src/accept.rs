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
//!
//! # References
//! - W. Richard Stevens, Bill Fenner, Andrew M. Rudoff, *Unix Network Programming,
//!   Volume 1*, 3rd ed., section 5.11 (`accept` and `ECONNABORTED`), section 16.6
//!   (nonblocking `accept`), and the `Accept` wrapper of `lib/wrapsock.c`.
//! - [POSIX `accept`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/accept.html)
//! - [Linux `accept(2)`](https://man7.org/linux/man-pages/man2/accept.2.html)
//! - [FreeBSD `accept(2)`](https://man.freebsd.org/cgi/man.cgi?query=accept&sektion=2)
//! - [Apple `accept(2)`](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/accept.2.html)

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;

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
#[derive(Debug)]
#[non_exhaustive]
pub enum Accept {
    /// A new connection: a close-on-exec socket (blocking from [`accept`],
    /// nonblocking from [`accept_nonblocking`]), and the peer's address. The address
    /// is `None` only if the kernel returned an address family this crate does not
    /// know; Linux gives the address even for a connection that was reset before
    /// `accept` (measured; see the crate's `docs/rst-accept-race.md`).
    Connection(TcpStream, Option<SocketAddr>),
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

/// Accepts one connection from `listener` and sorts the outcome; UNP's `Accept`
/// wrapper, done the way UNP 16.6 says a select loop must.
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
pub fn accept(listener: &TcpListener) -> io::Result<Accept> {
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
pub fn accept_nonblocking(listener: &TcpListener) -> io::Result<Accept> {
    accept_with(listener, true)
}

fn accept_with(listener: &TcpListener, nonblocking: bool) -> io::Result<Accept> {
    match crate::sys::accept_cloexec(listener.as_fd(), nonblocking) {
        Ok((fd, peer)) => Ok(Accept::Connection(TcpStream::from(fd), peer)),
        Err(e) => classify(e),
    }
}

/// Sorts an error from `accept(2)` into "not now", "out of resources" or fatal.
pub(crate) fn classify(e: io::Error) -> io::Result<Accept> {
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
    pub fn shed(&mut self, listener: &impl AsFd) -> io::Result<bool> {
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
