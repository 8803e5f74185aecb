//! `poll(2)` over an array of [`PollFd`]s.
//!
//! Unlike `select`, `poll` has no `FD_SETSIZE` limit, does not overwrite what the caller
//! asked for (results go to a separate `revents` field), and reports invalid descriptors
//! per entry ([`PollFlags::POLLNVAL`]) instead of failing the whole call.
//!
//! UNP's `tcpservpoll01` (section 6.11) keeps one array `client[]` for the whole server:
//! entry 0 is the listening socket, a free slot has descriptor −1 (which `poll` ignores),
//! and every entry asks for `POLLRDNORM`. The same shape in Rust:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::os::fd::AsRawFd;
//! use std::os::unix::net::UnixStream;
//! use std::time::Duration;
//! use unp_select::poll::{poll, PollFd, PollFlags};
//!
//! let (mut peer, mut sock) = UnixStream::pair()?;
//! peer.write_all(b"hi")?;
//!
//! let mut client = [PollFd::new(-1, PollFlags::empty()); 4]; // all slots free
//! client[1] = PollFd::new(sock.as_raw_fd(), PollFlags::POLLRDNORM);
//!
//! let nready = poll(&mut client, Some(Duration::from_secs(5)))?;
//! assert_eq!(nready, 1);
//! for slot in &client {
//!     if slot.revents().intersects(PollFlags::POLLRDNORM | PollFlags::POLLERR) {
//!         let mut buf = [0; 8];
//!         let n = sock.read(&mut buf)?;
//!         assert_eq!(&buf[..n], b"hi");
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # References
//!
//! - POSIX [`poll`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/poll.html)
//! - Linux [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)
//! - FreeBSD [poll(2)](https://man.freebsd.org/cgi/man.cgi?query=poll&sektion=2)
//! - Apple [poll(2)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/poll.2.html)
//! - UNP section 6.10 (`poll`) and 6.11 (`tcpservpoll01`).

use std::fmt;
use std::io;
use std::ops;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::time::{to_poll_millis, Deadline};

/// Event bits of a [`PollFd`]: what to wait for (`events`) and what happened
/// (`revents`).
///
/// A thin `Copy` wrapper over the C `short`. The constants are the platform's values;
/// bits without a name here are kept by [`from_bits_retain`](PollFlags::from_bits_retain)
/// and shown in hex by `Debug`.
///
/// # Examples
///
/// ```
/// use unp_select::poll::PollFlags;
///
/// let wanted = PollFlags::POLLIN | PollFlags::POLLPRI;
/// assert!(wanted.contains(PollFlags::POLLIN));
/// assert!(!wanted.intersects(PollFlags::POLLOUT));
/// assert_eq!(format!("{:?}", wanted), "POLLIN | POLLPRI");
/// ```
///
/// # Platform-specific behavior
///
/// On Linux `POLLWRNORM` is a bit of its own; on macOS and FreeBSD it equals `POLLOUT`.
///
/// # References
///
/// - POSIX [`<poll.h>`](https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/poll.h.html)
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PollFlags(libc::c_short);

impl PollFlags {
    /// Data other than high-priority data may be read without blocking (also end of
    /// file and, on sockets, a pending connection).
    pub const POLLIN: PollFlags = PollFlags(libc::POLLIN);
    /// High-priority data (e.g. TCP urgent data) may be read without blocking.
    pub const POLLPRI: PollFlags = PollFlags(libc::POLLPRI);
    /// Normal data may be written without blocking.
    pub const POLLOUT: PollFlags = PollFlags(libc::POLLOUT);
    /// Normal data may be read without blocking (UNP's servers ask for this one).
    pub const POLLRDNORM: PollFlags = PollFlags(libc::POLLRDNORM);
    /// Priority-band data may be read without blocking.
    pub const POLLRDBAND: PollFlags = PollFlags(libc::POLLRDBAND);
    /// Normal data may be written without blocking.
    pub const POLLWRNORM: PollFlags = PollFlags(libc::POLLWRNORM);
    /// Priority-band data may be written without blocking.
    pub const POLLWRBAND: PollFlags = PollFlags(libc::POLLWRBAND);
    /// An error is pending on the descriptor (`revents` only; always reported).
    pub const POLLERR: PollFlags = PollFlags(libc::POLLERR);
    /// The peer hung up (`revents` only; always reported).
    pub const POLLHUP: PollFlags = PollFlags(libc::POLLHUP);
    /// The descriptor is not open (`revents` only; always reported).
    pub const POLLNVAL: PollFlags = PollFlags(libc::POLLNVAL);

    const NAMED: [(&'static str, PollFlags); 10] = [
        ("POLLIN", PollFlags::POLLIN),
        ("POLLPRI", PollFlags::POLLPRI),
        ("POLLOUT", PollFlags::POLLOUT),
        ("POLLERR", PollFlags::POLLERR),
        ("POLLHUP", PollFlags::POLLHUP),
        ("POLLNVAL", PollFlags::POLLNVAL),
        ("POLLRDNORM", PollFlags::POLLRDNORM),
        ("POLLRDBAND", PollFlags::POLLRDBAND),
        ("POLLWRNORM", PollFlags::POLLWRNORM),
        ("POLLWRBAND", PollFlags::POLLWRBAND),
    ];

    /// No flags.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::poll::PollFlags;
    ///
    /// assert!(PollFlags::empty().is_empty());
    /// ```
    pub const fn empty() -> PollFlags {
        PollFlags(0)
    }

    /// All named flags.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::poll::PollFlags;
    ///
    /// assert!(PollFlags::all().contains(PollFlags::POLLNVAL | PollFlags::POLLRDNORM));
    /// ```
    pub const fn all() -> PollFlags {
        let mut bits = 0;
        let mut i = 0;
        while i < PollFlags::NAMED.len() {
            bits |= PollFlags::NAMED[i].1 .0;
            i += 1;
        }
        PollFlags(bits)
    }

    /// The raw C value.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::poll::PollFlags;
    ///
    /// assert_eq!(PollFlags::POLLIN.bits(), libc::POLLIN);
    /// ```
    pub const fn bits(self) -> libc::c_short {
        self.0
    }

    /// Flags from a raw value, dropping bits that have no constant here.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::poll::PollFlags;
    ///
    /// let f = PollFlags::from_bits_truncate(libc::POLLIN | 0x4000);
    /// assert_eq!(f, PollFlags::POLLIN);
    /// ```
    pub const fn from_bits_truncate(bits: libc::c_short) -> PollFlags {
        PollFlags(bits & PollFlags::all().0)
    }

    /// Flags from a raw value, keeping every bit (e.g. Linux's `POLLRDHUP`).
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::poll::PollFlags;
    ///
    /// let f = PollFlags::from_bits_retain(0x4000);
    /// assert_eq!(f.bits(), 0x4000);
    /// assert_eq!(format!("{:?}", f), "0x4000");
    /// ```
    pub const fn from_bits_retain(bits: libc::c_short) -> PollFlags {
        PollFlags(bits)
    }

    /// Whether no bit is set.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::poll::PollFlags;
    ///
    /// assert!(PollFlags::empty().is_empty());
    /// assert!(!PollFlags::POLLIN.is_empty());
    /// ```
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every bit of `other` is set in `self`.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::poll::PollFlags;
    ///
    /// let f = PollFlags::POLLIN | PollFlags::POLLHUP;
    /// assert!(f.contains(PollFlags::POLLHUP));
    /// assert!(!f.contains(PollFlags::POLLHUP | PollFlags::POLLERR));
    /// ```
    pub const fn contains(self, other: PollFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `self` and `other` share a bit.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::poll::PollFlags;
    ///
    /// let f = PollFlags::POLLIN | PollFlags::POLLHUP;
    /// assert!(f.intersects(PollFlags::POLLHUP | PollFlags::POLLERR));
    /// assert!(!f.intersects(PollFlags::POLLOUT));
    /// ```
    pub const fn intersects(self, other: PollFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// Sets the bits of `other`.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::poll::PollFlags;
    ///
    /// let mut f = PollFlags::POLLIN;
    /// f.insert(PollFlags::POLLOUT);
    /// assert_eq!(f, PollFlags::POLLIN | PollFlags::POLLOUT);
    /// ```
    pub fn insert(&mut self, other: PollFlags) {
        self.0 |= other.0;
    }

    /// Clears the bits of `other`.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::poll::PollFlags;
    ///
    /// let mut f = PollFlags::POLLIN | PollFlags::POLLPRI;
    /// f.remove(PollFlags::POLLPRI);
    /// assert_eq!(f, PollFlags::POLLIN);
    /// ```
    pub fn remove(&mut self, other: PollFlags) {
        self.0 &= !other.0;
    }
}

impl ops::BitOr for PollFlags {
    type Output = PollFlags;
    fn bitor(self, rhs: PollFlags) -> PollFlags {
        PollFlags(self.0 | rhs.0)
    }
}

impl ops::BitOrAssign for PollFlags {
    fn bitor_assign(&mut self, rhs: PollFlags) {
        self.0 |= rhs.0;
    }
}

impl ops::BitAnd for PollFlags {
    type Output = PollFlags;
    fn bitand(self, rhs: PollFlags) -> PollFlags {
        PollFlags(self.0 & rhs.0)
    }
}

impl ops::BitAndAssign for PollFlags {
    fn bitand_assign(&mut self, rhs: PollFlags) {
        self.0 &= rhs.0;
    }
}

impl ops::Not for PollFlags {
    type Output = PollFlags;
    /// The named flags not in `self` (the complement within [`PollFlags::all`]).
    fn not(self) -> PollFlags {
        PollFlags(!self.0 & PollFlags::all().0)
    }
}

impl fmt::Debug for PollFlags {
    /// Prints the flag names joined by `|` (`POLLIN | POLLRDNORM`), unnamed bits in hex,
    /// and `(empty)` for no flags. A name whose bits were already printed (e.g.
    /// `POLLWRNORM`, an alias of `POLLOUT` on the BSDs) is skipped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(empty)");
        }
        let mut shown: libc::c_short = 0;
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { " | " };
            first = false;
            f.write_str(s)
        };
        for (name, flag) in PollFlags::NAMED {
            if self.contains(flag) && shown & flag.0 != flag.0 {
                sep(f)?;
                f.write_str(name)?;
                shown |= flag.0;
            }
        }
        let rest = self.0 & !shown;
        if rest != 0 {
            sep(f)?;
            write!(f, "{:#x}", rest)?;
        }
        Ok(())
    }
}

/// One entry of the array passed to [`poll`]: a descriptor, the events to wait for, and
/// the events that occurred. The same memory layout as the C `struct pollfd`.
///
/// A negative descriptor is allowed: `poll` ignores the entry and sets its `revents` to
/// empty. UNP's `tcpservpoll01` marks free `client[]` slots with −1 this way.
///
/// # Examples
///
/// ```
/// use unp_select::poll::{PollFd, PollFlags};
///
/// let mut pfd = PollFd::new(-1, PollFlags::POLLRDNORM); // a free slot
/// assert_eq!(pfd.fd(), -1);
/// pfd.set_fd(0);
/// assert_eq!(pfd.events(), PollFlags::POLLRDNORM);
/// assert!(pfd.revents().is_empty());
/// ```
///
/// # References
///
/// - POSIX [`<poll.h>`](https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/poll.h.html)
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct PollFd(libc::pollfd);

impl PollFd {
    /// An entry that waits for `events` on `fd`, with empty `revents`.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::poll::{PollFd, PollFlags};
    ///
    /// let pfd = PollFd::new(0, PollFlags::POLLIN);
    /// assert_eq!((pfd.fd(), pfd.events()), (0, PollFlags::POLLIN));
    /// ```
    pub const fn new(fd: RawFd, events: PollFlags) -> PollFd {
        PollFd(libc::pollfd {
            fd,
            events: events.0,
            revents: 0,
        })
    }

    /// The descriptor.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::poll::{PollFd, PollFlags};
    ///
    /// assert_eq!(PollFd::new(7, PollFlags::POLLIN).fd(), 7);
    /// ```
    pub const fn fd(&self) -> RawFd {
        self.0.fd
    }

    /// Replaces the descriptor; −1 (or any negative value) makes `poll` skip the entry.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::poll::{PollFd, PollFlags};
    ///
    /// let mut pfd = PollFd::new(7, PollFlags::POLLIN);
    /// pfd.set_fd(-1); // UNP: client[i].fd = -1 after close
    /// assert_eq!(pfd.fd(), -1);
    /// ```
    pub fn set_fd(&mut self, fd: RawFd) {
        self.0.fd = fd;
    }

    /// The events waited for.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::poll::{PollFd, PollFlags};
    ///
    /// assert_eq!(PollFd::new(7, PollFlags::POLLOUT).events(), PollFlags::POLLOUT);
    /// ```
    pub const fn events(&self) -> PollFlags {
        PollFlags(self.0.events)
    }

    /// Replaces the events to wait for.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::poll::{PollFd, PollFlags};
    ///
    /// let mut pfd = PollFd::new(7, PollFlags::POLLIN);
    /// pfd.set_events(PollFlags::POLLIN | PollFlags::POLLOUT);
    /// assert!(pfd.events().contains(PollFlags::POLLOUT));
    /// ```
    pub fn set_events(&mut self, events: PollFlags) {
        self.0.events = events.0;
    }

    /// The events that occurred, as set by the last [`poll`]. They may include
    /// `POLLERR`, `POLLHUP` and `POLLNVAL` even when not asked for.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use unp_select::poll::{poll, PollFd, PollFlags};
    ///
    /// let (mut a, b) = UnixStream::pair()?;
    /// a.write_all(b"x")?;
    /// let mut fds = [PollFd::new(b.as_raw_fd(), PollFlags::POLLIN)];
    /// poll(&mut fds, Some(Duration::from_secs(5)))?;
    /// assert!(fds[0].revents().contains(PollFlags::POLLIN));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub const fn revents(&self) -> PollFlags {
        PollFlags(self.0.revents)
    }
}

impl PartialEq for PollFd {
    fn eq(&self, other: &PollFd) -> bool {
        (self.0.fd, self.0.events, self.0.revents) == (other.0.fd, other.0.events, other.0.revents)
    }
}

impl Eq for PollFd {}

impl fmt::Debug for PollFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollFd")
            .field("fd", &self.fd())
            .field("events", &self.events())
            .field("revents", &self.revents())
            .finish()
    }
}

/// Waits until one of the `fds` entries has an event, or `timeout` passes.
///
/// Sets each entry's `revents` and returns the number of entries with a non-empty
/// `revents` (`0` after a timeout). `None` as `timeout` waits forever,
/// `Some(Duration::ZERO)` polls. Other timeouts are rounded **up** to whole milliseconds
/// (so 1 µs waits 1 ms instead of busy-polling) and clamped to `c_int::MAX` ms (about
/// 24.8 days).
///
/// Entries with a negative descriptor are ignored (`revents` empty). A descriptor that is
/// not open does not fail the call: its entry gets [`PollFlags::POLLNVAL`] and counts as
/// ready.
///
/// # Errors
///
/// - [`ErrorKind::Interrupted`](io::ErrorKind::Interrupted) (`EINTR`) when a signal
///   handler ran during the wait; see [`poll_restarting`].
/// - [`ErrorKind::InvalidInput`](io::ErrorKind::InvalidInput) if `fds.len()` does not fit
///   `nfds_t` (only possible where `nfds_t` is narrower than `usize`).
/// - `EINVAL` if `fds.len()` exceeds `RLIMIT_NOFILE` (Linux) or a system limit;
///   `ENOMEM`.
///
/// # Platform-specific behavior
///
/// Linux reports `POLLIN | POLLRDNORM` together for readable sockets and pipes; after a
/// connection reset it reports `POLLIN | POLLRDNORM | POLLERR | POLLHUP` (observed on
/// Linux 6.18). Which of `POLLRDNORM`/`POLLWRNORM` accompany `POLLIN`/`POLLOUT`
/// differs between systems: ask for the ones you test.
///
/// # Examples
///
/// ```
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use unp_select::poll::{poll, PollFd, PollFlags};
///
/// let (a, _b) = UnixStream::pair()?;
/// let mut fds = [PollFd::new(a.as_raw_fd(), PollFlags::POLLIN | PollFlags::POLLOUT)];
/// assert_eq!(poll(&mut fds, Some(Duration::ZERO))?, 1);
/// assert!(fds[0].revents().contains(PollFlags::POLLOUT));
/// assert!(!fds[0].revents().intersects(PollFlags::POLLIN)); // nothing to read yet
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
///
/// - POSIX [`poll`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/poll.html)
/// - Linux [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)
/// - FreeBSD [poll(2)](https://man.freebsd.org/cgi/man.cgi?query=poll&sektion=2)
/// - Apple [poll(2)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/poll.2.html)
pub fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
    crate::sys::poll(fds, to_poll_millis(timeout))
}

/// [`poll`] that restarts itself after `EINTR` with the remaining time.
///
/// The remaining time is measured with [`Instant`](std::time::Instant) from the first
/// call; once the deadline has passed the last attempt polls (timeout 0), so the function
/// returns instead of waiting again. With `None` it waits forever, ignoring
/// interruptions. This matches [`select_restarting`](crate::select::select_restarting).
///
/// # Errors
///
/// As [`poll`], except that `EINTR` is never returned.
///
/// # Examples
///
/// ```
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use unp_select::poll::{poll_restarting, PollFd, PollFlags};
///
/// let (a, _b) = UnixStream::pair()?;
/// let mut fds = [PollFd::new(a.as_raw_fd(), PollFlags::POLLIN)];
/// assert_eq!(poll_restarting(&mut fds, Some(Duration::from_millis(10)))?, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
///
/// - Linux [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)
/// - Linux [signal(7)](https://man7.org/linux/man-pages/man7/signal.7.html), section
///   "Interruption of system calls and library functions by signal handlers"
pub fn poll_restarting(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
    let deadline = Deadline::after(timeout);
    let mut remaining = timeout;
    loop {
        match poll(fds, remaining) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => remaining = deadline.remaining(),
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_debug_names() {
        assert_eq!(format!("{:?}", PollFlags::empty()), "(empty)");
        assert_eq!(
            format!("{:?}", PollFlags::POLLIN | PollFlags::POLLERR),
            "POLLIN | POLLERR"
        );
        let odd = PollFlags::POLLHUP | PollFlags::from_bits_retain(0x4000);
        assert_eq!(format!("{:?}", odd), "POLLHUP | 0x4000");
        // Every name appears for a flag that is its own bit.
        let all = format!("{:?}", PollFlags::all());
        for name in [
            "POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL",
        ] {
            assert!(all.contains(name), "{all}");
        }
    }

    #[test]
    fn flags_ops() {
        let mut f = PollFlags::POLLIN;
        f |= PollFlags::POLLOUT;
        assert_eq!(f & PollFlags::POLLOUT, PollFlags::POLLOUT);
        f &= PollFlags::POLLIN;
        assert_eq!(f, PollFlags::POLLIN);
        assert!(!(!f).contains(PollFlags::POLLIN));
        assert!((!f).contains(PollFlags::POLLNVAL));
        assert_eq!(!PollFlags::all(), PollFlags::empty());
        assert_eq!(
            PollFlags::from_bits_truncate(0x4000 | libc::POLLHUP),
            PollFlags::POLLHUP
        );
        let mut g = PollFlags::POLLIN | PollFlags::POLLPRI;
        g.remove(PollFlags::POLLIN);
        g.insert(PollFlags::POLLERR);
        assert_eq!(g, PollFlags::POLLPRI | PollFlags::POLLERR);
    }

    #[test]
    fn pollfd_is_layout_compatible() {
        assert_eq!(
            std::mem::size_of::<PollFd>(),
            std::mem::size_of::<libc::pollfd>()
        );
        let mut p = PollFd::new(3, PollFlags::POLLIN);
        p.set_events(PollFlags::POLLOUT);
        p.set_fd(-1);
        assert_eq!(p, PollFd::new(-1, PollFlags::POLLOUT));
        assert_eq!(
            format!("{p:?}"),
            "PollFd { fd: -1, events: POLLOUT, revents: (empty) }"
        );
    }
}
