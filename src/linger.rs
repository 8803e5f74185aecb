//! `SO_LINGER`: choose between a graceful close (FIN) and an abortive one (RST).
//!
//! By default `close(2)` on a TCP socket returns at once; the kernel keeps sending any
//! unsent data in the background and ends the connection with a FIN (a *graceful*
//! close). `SO_LINGER` changes that (UNP section 7.5):
//!
//! | `l_onoff` | `l_linger` | `close(2)` |
//! |---|---|---|
//! | 0 | ignored | default: returns at once, data and FIN are sent in the background |
//! | 1 | 0 | *abortive close*: unsent data is discarded and an RST is sent; the peer's next `read` fails with `ECONNRESET` and the connection skips `TIME_WAIT` |
//! | 1 | *n* > 0 | *lingering close*: on a blocking socket `close` sleeps until the data and FIN are acknowledged or *n* seconds have passed |
//!
//! In this crate `None` means "off" and `Some(duration)` means "on, with this timeout";
//! [`abort`] is the `{1, 0}` case followed by the close, as in UNP section 16.6.
//!
//! A lingering close only tells you that the peer's *TCP* acknowledged the data, not
//! that the peer *application* read it (UNP section 7.5, figures 7.7 to 7.10); use an
//! application-level acknowledgment or `shutdown(SHUT_WR)` followed by reading until
//! EOF when that matters.
//!
//! # Platform-specific behavior
//!
//! * Linux (measured on 6.18): a lingering `close` blocks for up to the timeout even
//!   when the socket is in nonblocking mode, and still returns 0 when the timeout
//!   expires; the unsent data is *not* discarded: the kernel keeps sending it from the
//!   closed (orphaned) socket and the peer can read all of it and then EOF. BSD-derived
//!   kernels (the book's case) return at once from a nonblocking socket, and when the
//!   timeout expires they fail the `close` with `EWOULDBLOCK` and discard the data.
//!   With a zero timeout ([`abort`]) `close` blocks on none of them.
//! * Apple: the option that counts seconds is `SO_LINGER_SEC`; plain `SO_LINGER` counts
//!   clock ticks there. Every function of this module uses `SO_LINGER_SEC` on Apple
//!   platforms and `SO_LINGER` elsewhere, so the value is always in seconds.
//! * The kernel stores whole seconds in an `int`. [`set_linger`] rounds a fraction of a
//!   second **up** (so a short timeout never becomes 0, which would turn a graceful
//!   close into an RST), and rejects a value that does not fit. A negative value
//!   (which only a raw `setsockopt` can store; Linux then lingers without bound) is
//!   read by [`linger()`](fn@linger) as [`Duration::MAX`].
//!
//! # References
//!
//! * W. R. Stevens, B. Fenner, A. M. Rudoff, *Unix Network Programming, Volume 1*, 3rd
//!   ed., section 7.5 (`SO_LINGER`, figures 7.7 to 7.10) and section 16.6 (nonblocking
//!   `accept`, figure 16.21).
//! * POSIX [`setsockopt`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/setsockopt.html),
//!   [`getsockopt`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/getsockopt.html),
//!   [`close`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/close.html),
//!   [`<sys/socket.h>`](https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/sys_socket.h.html).
//! * Linux [`socket(7)`](https://man7.org/linux/man-pages/man7/socket.7.html),
//!   [`setsockopt(2)`](https://man7.org/linux/man-pages/man2/setsockopt.2.html),
//!   [`close(2)`](https://man7.org/linux/man-pages/man2/close.2.html),
//!   [`tcp(7)`](https://man7.org/linux/man-pages/man7/tcp.7.html).
//! * FreeBSD [`setsockopt(2)`](https://man.freebsd.org/cgi/man.cgi?query=setsockopt&sektion=2);
//!   Apple [`setsockopt(2)`](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/setsockopt.2.html).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::sys;

/// Converts a linger timeout to the kernel's whole seconds, rounding a fraction up.
fn to_kernel_seconds(d: Duration) -> io::Result<libc::c_int> {
    let secs = if d.subsec_nanos() > 0 {
        d.as_secs().checked_add(1)
    } else {
        Some(d.as_secs())
    };
    secs.and_then(|s| libc::c_int::try_from(s).ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "SO_LINGER timeout does not fit the kernel's int seconds",
            )
        })
}

/// Sets `SO_LINGER` on socket `fd`: `None` turns it off, `Some(timeout)` turns it on.
///
/// `Some(Duration::ZERO)` makes the next `close` abortive (RST, unsent data discarded;
/// [`abort`] does that and closes). A positive timeout makes `close` wait for the
/// unsent data to be acknowledged, for at most that long (see the
/// [module documentation](self)). The kernel counts whole seconds: a fraction of a
/// second is rounded **up** (1.5 s becomes 2 s, 1 ns becomes 1 s), so a short timeout
/// never turns into an abortive close. The option set is the one that counts seconds
/// (`SO_LINGER_SEC` on Apple: see the [module documentation](self#platform-specific-behavior)).
///
/// # Errors
///
/// * [`ErrorKind::InvalidInput`](io::ErrorKind::InvalidInput) if the timeout, rounded
///   up to whole seconds, does not fit a C `int` (more than about 68 years).
/// * `ENOTSOCK` if `fd` is not a socket, and any other error of `setsockopt(2)`, with
///   its errno kept.
///
/// # Examples
///
/// ```
/// use std::net::{TcpListener, TcpStream};
/// use std::time::Duration;
/// use unp_select::linger::{linger, set_linger};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let stream = TcpStream::connect(listener.local_addr()?)?;
/// set_linger(&stream, Some(Duration::from_millis(1500)))?;
/// assert_eq!(linger(&stream)?, Some(Duration::from_secs(2))); // rounded up
/// set_linger(&stream, None)?;
/// assert_eq!(linger(&stream)?, None);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// `fd` is borrowed (`&stream`, `&owned_fd`, a `&dyn AsFd`): the socket stays open,
/// and the option applies at its close. Passed by value, it would be closed at the
/// end of the call, so that does not compile ([`abort`] is the function that takes
/// the socket and closes it):
///
/// ```compile_fail,E0308
/// use std::net::{TcpListener, TcpStream};
/// use std::time::Duration;
/// use unp_select::linger::set_linger;
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let stream = TcpStream::connect(listener.local_addr()?)?;
/// set_linger(stream, Some(Duration::ZERO))?; // error[E0308]: expected `&_`, found `TcpStream`
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn set_linger(fd: &(impl AsFd + ?Sized), linger: Option<Duration>) -> io::Result<()> {
    let secs = linger.map(to_kernel_seconds).transpose()?;
    sys::set_linger(fd.as_fd(), secs)
}

/// Reads `SO_LINGER` of socket `fd`: `None` if it is off, else `Some(timeout)` in whole
/// seconds.
///
/// A fresh socket reports `None`. A negative timeout (which only a raw `setsockopt`
/// can store; Linux then lingers without bound) is reported as [`Duration::MAX`].
///
/// # Errors
///
/// `ENOTSOCK` if `fd` is not a socket, and any other error of `getsockopt(2)`, with its
/// errno kept.
///
/// # Examples
///
/// ```
/// use std::net::{TcpListener, TcpStream};
/// use std::time::Duration;
/// use unp_select::linger::{linger, set_linger};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let stream = TcpStream::connect(listener.local_addr()?)?;
/// assert_eq!(linger(&stream)?, None);
/// set_linger(&stream, Some(Duration::ZERO))?;
/// assert_eq!(linger(&stream)?, Some(Duration::ZERO));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn linger(fd: &(impl AsFd + ?Sized)) -> io::Result<Option<Duration>> {
    Ok(
        sys::linger(fd.as_fd())?.map(|secs| match u64::try_from(secs) {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => Duration::MAX,
        }),
    )
}

/// Closes socket `sock` abortively: sets `SO_LINGER` to `{on, 0}` and closes it, so the
/// peer receives an RST instead of a FIN.
///
/// Data still in the local send buffer is discarded, the connection skips `TIME_WAIT`,
/// and the peer's `read` fails with `ECONNRESET` ([`ErrorKind::ConnectionReset`])
/// instead of returning EOF. On Linux (measured) data that had already reached the
/// peer stays readable there; the reset is reported after it. A peer that had already
/// received a FIN (after `shutdown(SHUT_WR)`) keeps reading EOF, and its next write
/// fails (`EPIPE` on Linux). This is what the client of UNP section 16.6 (figure 16.21) does to
/// make the server's `accept` meet a connection that is already reset.
///
/// The socket is always consumed and its descriptor always closed, also when an error
/// is returned. `abort` is the one function of this crate that takes a descriptor by
/// value, `impl Into<OwnedFd>` (a `TcpStream`, a `UnixStream`, an `OwnedFd`), because
/// its job is to close it; every other function borrows it, `&(impl AsFd + ?Sized)`.
///
/// The reset goes out when the **last** descriptor of the socket closes: `abort` on
/// one of two descriptors of a socket (a `try_clone`, a `dup`, one inherited by a
/// child) sets the option and closes its own descriptor only, and the peer sees
/// nothing yet; the reset is sent when the other is dropped (then, since the
/// option is set on the shared socket, a reset rather than a FIN).
///
/// On a **listening** socket there is no peer; closing a listener always resets the
/// connections still waiting in its accept queue, and on Linux (measured) this happens
/// with or without the linger option: a client whose connection was queued but not
/// accepted gets `ECONNRESET` either way. `abort` on a listener therefore just closes
/// it and returns `Ok(())`.
///
/// [`ErrorKind::ConnectionReset`]: io::ErrorKind::ConnectionReset
///
/// # Errors
///
/// * `ENOTSOCK` (or another `setsockopt(2)` error) if the option cannot be set, for
///   instance because `sock` is a pipe or a file. The descriptor is closed anyway and
///   the setsockopt error is returned.
/// * An error of `close(2)`. The descriptor is released even then (Linux, FreeBSD and
///   Apple free the descriptor before they report a `close` error).
///
/// # Examples
///
/// ```
/// use std::io::{ErrorKind, Read};
/// use std::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let client = TcpStream::connect(listener.local_addr()?)?;
/// let (mut server_side, _) = listener.accept()?;
/// unp_select::linger::abort(client)?;
/// let err = server_side.read(&mut [0u8; 16]).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::ConnectionReset);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn abort(sock: impl Into<OwnedFd>) -> io::Result<()> {
    let sock = sock.into();
    let set = sys::set_linger(sock.as_fd(), Some(0));
    // Closed either way; an error of `close` is reported, which dropping would hide.
    let closed = sys::close(sock);
    set.and(closed)
}
