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
//! # I/O safety
//!
//! A [`PollFd`] holds a descriptor *number* and [`PollFd::new`] takes any integer,
//! safely, for the reason the [select module](mod@crate::select#io-safety) gives: `poll`
//! does no I/O on the descriptors. It does not read, write or close them; it only
//! reports whether an operation would block. Numbers are also what UNP's `client[]`
//! needs: a free slot holds −1, which `poll` skips and which no borrowed descriptor can
//! be.
//!
//! A number that is not the caller's descriptor does not fail the call:
//!
//! - not open: the entry comes back with [`PollFlags::POLLNVAL`] and counts as ready;
//! - closed and then reused (another `open`, `socket` or `accept`, in any thread, took
//!   the number): the entry reports the readiness of whatever has the number now, and
//!   nothing can tell. Free the slot (`set_fd(-1)`) before closing the descriptor, as
//!   UNP's `client[i].fd = -1` next to `Close(sockfd)` does.
//!
//! [`PollFd::from_fd`] takes a borrowed descriptor (`&fd`, as every function of this
//! crate that uses a descriptor without closing it does) instead of a number, so
//! nothing but an open descriptor gets in; like the sets, the entry then keeps only the
//! number. nix's
//! and rustix's `PollFd<'fd>` carry the borrow's lifetime and so keep the descriptor
//! open for as long as the entry exists. This crate does not: such an entry cannot be a
//! −1 slot, and an array of them borrows every descriptor in it for as long as the
//! array lives, so a server could not close a client while keeping its `client[]`.
//!
//! # `PollFlags`
//!
//! [`PollFlags`] is nix's type, re-exported, and its page shows nix's description of
//! each constant. Two of those descriptions are wrong on Linux, where the four
//! "normal"/"band" flags are bits of their own:
//!
//! | Flag | nix's description | Linux value | So on Linux |
//! |---|---|---|---|
//! | `POLLRDNORM` | "Equivalent to `POLLIN`" | `0x40` | **not** `POLLIN` (`0x1`) |
//! | `POLLWRNORM` | "Equivalent to `POLLOUT`" | `0x100` | **not** `POLLOUT` (`0x4`) |
//! | `POLLRDBAND` | priority band data can be read | `0x80` | as nix says |
//! | `POLLWRBAND` | priority data may be written | `0x200` | as nix says |
//!
//! What Linux makes equivalent is the meaning, not the bit: for sockets and pipes it
//! reports readable data as `POLLIN | POLLRDNORM` and room to write as
//! `POLLOUT | POLLWRNORM`. But `revents` only holds bits that `events` asked for (plus
//! `POLLERR`, `POLLHUP` and `POLLNVAL`), so an entry that asked for `POLLIN` alone never
//! reports `POLLRDNORM`, and the reverse. Test the flags you asked for; UNP asks for
//! `POLLRDNORM` throughout. The crate's tests check these values and this behavior on
//! Linux.
//!
//! The values above are those of Linux on x86, x86-64, ARM, AArch64, RISC-V, PowerPC,
//! s390x and LoongArch. On Linux MIPS and SPARC, and on macOS and the BSDs,
//! `POLLWRNORM` equals `POLLOUT` and `POLLWRBAND` is `0x100`; `POLLRDNORM` is `0x40`
//! everywhere, never equal to `POLLIN`.
//!
//! # Platform-specific behavior
//!
//! [`PollFlags`] has the platform's values (see [`PollFlags`](#pollflags) above).
//! Which of `POLLRDNORM`/`POLLWRNORM` accompany `POLLIN`/`POLLOUT` in `revents` differs
//! between systems (see [`poll`]).
//!
//! # References
//!
//! - POSIX [`poll`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/poll.html)
//! - Linux [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)
//! - FreeBSD [poll(2)](https://man.freebsd.org/cgi/man.cgi?query=poll&sektion=2)
//! - Apple [poll(2)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/poll.2.html)
//! - UNP section 6.10 (`poll`) and 6.11 (`tcpservpoll01`).
//! - I/O safety: Rust's [`std::os::fd`](https://doc.rust-lang.org/std/os/fd/index.html)
//!   docs; nix's [`PollFd`](https://docs.rs/nix/0.32.0/nix/poll/struct.PollFd.html) and
//!   rustix's [`PollFd`](https://docs.rs/rustix/latest/rustix/event/struct.PollFd.html)
//!   (lifetimes).

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use crate::time::{to_poll_millis, Deadline};

/// Event bits of a [`PollFd`]: what to wait for (`events`) and what happened
/// (`revents`).
///
/// This is [nix's type](nix::poll::PollFlags), re-exported, so the flags are the same
/// values whichever crate a caller names them from. **The constant descriptions below
/// are nix's, and two are wrong on Linux**: `POLLRDNORM` is not "equivalent to
/// `POLLIN`" (it is `0x40`, `POLLIN` is `0x1`) and `POLLWRNORM` is not "equivalent to
/// `POLLOUT`" (`0x100` against `0x4`); see [the module docs](mod@crate::poll#pollflags). Its constants are the platform's
/// C values (`POLLIN`, `POLLPRI`, `POLLOUT`, `POLLRDNORM`, `POLLRDBAND`, `POLLWRNORM`,
/// `POLLWRBAND`, `POLLERR`, `POLLHUP`, `POLLNVAL`); bits without a name are kept by
/// `from_bits_retain`, and [`PollFd::revents`] keeps every bit the kernel set.
///
/// ```
/// use unp_select::poll::PollFlags;
///
/// let wanted = PollFlags::POLLIN | PollFlags::POLLPRI;
/// assert!(wanted.contains(PollFlags::POLLIN));
/// assert!(!wanted.intersects(PollFlags::POLLOUT));
/// assert_eq!(PollFlags::from_bits_retain(0x4000).bits(), 0x4000);
/// ```
pub use nix::poll::PollFlags;

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
            events: events.bits(),
            revents: 0,
        })
    }

    /// An entry that waits for `events` on the borrowed descriptor `fd`, with empty
    /// `revents`: [`new`](PollFd::new) for callers who hold descriptors, not numbers.
    ///
    /// The borrow proves that `fd` is open **now**; the entry keeps only its number
    /// (it stays a C `struct pollfd`, with no lifetime), so free the slot
    /// (`set_fd(-1)`) before the descriptor is closed. `fd` is anything that
    /// [`AsFd`] borrows from, behind a reference: `&stream`, `&owned_fd`,
    /// `&borrowed_fd`, a `&dyn AsFd`. See [I/O safety](mod@crate::poll#io-safety).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::fd::{AsFd, AsRawFd};
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use unp_select::poll::{poll, PollFd, PollFlags};
    ///
    /// let (mut a, b) = UnixStream::pair()?;
    /// a.write_all(b"x")?;
    /// let mut fds = [
    ///     PollFd::from_fd(&b, PollFlags::POLLIN),
    ///     PollFd::from_fd(&b.as_fd(), PollFlags::POLLIN), // a BorrowedFd, by reference
    /// ];
    /// assert_eq!(fds[0].fd(), b.as_raw_fd());
    /// assert_eq!(poll(&mut fds, Some(Duration::from_secs(5)))?, 2);
    /// assert!(fds[0].revents().contains(PollFlags::POLLIN));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// An owned descriptor passed by value would be closed at the end of the call,
    /// leaving the entry with a dead number: it does not compile.
    ///
    /// ```compile_fail,E0308
    /// use std::os::fd::OwnedFd;
    /// use std::os::unix::net::UnixStream;
    /// use unp_select::poll::{PollFd, PollFlags};
    ///
    /// let (a, _b) = UnixStream::pair()?;
    /// let pfd = PollFd::from_fd(OwnedFd::from(a), PollFlags::POLLIN); // error[E0308]: expected `&_`, found `OwnedFd`
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_fd(fd: &(impl AsFd + ?Sized), events: PollFlags) -> PollFd {
        PollFd::new(fd.as_fd().as_raw_fd(), events)
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
        PollFlags::from_bits_retain(self.0.events)
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
        self.0.events = events.bits();
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
        PollFlags::from_bits_retain(self.0.revents)
    }
}

impl PartialEq for PollFd {
    fn eq(&self, other: &PollFd) -> bool {
        (self.0.fd, self.0.events, self.0.revents) == (other.0.fd, other.0.events, other.0.revents)
    }
}

impl Eq for PollFd {}

impl fmt::Debug for PollFd {
    /// `PollFd { fd: 3, events: POLLIN, revents: POLLIN | POLLRDNORM }`: the flags as
    /// names joined by `|`, bits without a name in hex, `(empty)` for none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollFd")
            .field("fd", &self.fd())
            .field("events", &FlagNames(self.events()))
            .field("revents", &FlagNames(self.revents()))
            .finish()
    }
}

/// `Debug` of flags as `POLLIN | POLLRDNORM`, for [`PollFd`]'s `Debug` (the flags' own
/// `Debug` wraps the same in `PollFlags(…)`).
struct FlagNames(PollFlags);

impl fmt::Debug for FlagNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(empty)");
        }
        let mut sep = "";
        // A name whose bits were already printed (`POLLWRNORM`, an alias of `POLLOUT`
        // on the BSDs) is skipped by `iter_names`.
        for (name, _) in self.0.iter_names() {
            write!(f, "{sep}{name}")?;
            sep = " | ";
        }
        let unnamed = self.0.bits() & !PollFlags::all().bits();
        if unnamed != 0 {
            write!(f, "{sep}{unnamed:#x}")?;
        }
        Ok(())
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

    /// The values the module docs' `PollFlags` table states for Linux, where nix's
    /// descriptions call `POLLRDNORM`/`POLLWRNORM` "equivalent to" `POLLIN`/`POLLOUT`.
    #[test]
    #[cfg(all(
        target_os = "linux",
        not(any(
            target_arch = "mips",
            target_arch = "mips32r6",
            target_arch = "mips64",
            target_arch = "mips64r6",
            target_arch = "sparc",
            target_arch = "sparc64"
        ))
    ))]
    fn linux_flag_values_match_the_module_docs() {
        assert_eq!(PollFlags::POLLIN.bits(), 0x1);
        assert_eq!(PollFlags::POLLOUT.bits(), 0x4);
        assert_eq!(PollFlags::POLLRDNORM.bits(), 0x40);
        assert_eq!(PollFlags::POLLRDBAND.bits(), 0x80);
        assert_eq!(PollFlags::POLLWRNORM.bits(), 0x100);
        assert_eq!(PollFlags::POLLWRBAND.bits(), 0x200);
        assert_ne!(PollFlags::POLLRDNORM, PollFlags::POLLIN);
        assert_ne!(PollFlags::POLLWRNORM, PollFlags::POLLOUT);
    }

    /// The exceptions the module docs name: Linux MIPS and SPARC, macOS and the BSDs.
    #[test]
    #[cfg(any(
        all(
            target_os = "linux",
            any(
                target_arch = "mips",
                target_arch = "mips32r6",
                target_arch = "mips64",
                target_arch = "mips64r6",
                target_arch = "sparc",
                target_arch = "sparc64"
            )
        ),
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    ))]
    fn other_flag_values_match_the_module_docs() {
        assert_eq!(PollFlags::POLLRDNORM.bits(), 0x40);
        assert_eq!(PollFlags::POLLWRNORM, PollFlags::POLLOUT);
        assert_eq!(PollFlags::POLLWRBAND.bits(), 0x100);
    }

    #[test]
    fn flags_are_the_c_values() {
        for (flag, bits) in [
            (PollFlags::POLLIN, libc::POLLIN),
            (PollFlags::POLLPRI, libc::POLLPRI),
            (PollFlags::POLLOUT, libc::POLLOUT),
            (PollFlags::POLLRDNORM, libc::POLLRDNORM),
            (PollFlags::POLLRDBAND, libc::POLLRDBAND),
            (PollFlags::POLLWRNORM, libc::POLLWRNORM),
            (PollFlags::POLLWRBAND, libc::POLLWRBAND),
            (PollFlags::POLLERR, libc::POLLERR),
            (PollFlags::POLLHUP, libc::POLLHUP),
            (PollFlags::POLLNVAL, libc::POLLNVAL),
        ] {
            assert_eq!(flag.bits(), bits);
            assert!(PollFlags::all().contains(flag));
        }
        // What the hand-written type did before nix's replaced it.
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
    fn pollfd_keeps_unnamed_bits() {
        let mut p = PollFd::new(3, PollFlags::from_bits_retain(0x4000));
        assert_eq!(p.events().bits(), 0x4000);
        p.0.revents = 0x4000 | libc::POLLHUP;
        assert_eq!(p.revents().bits(), 0x4000 | libc::POLLHUP);
    }

    #[test]
    fn pollfd_debug_names_the_flags() {
        let mut p = PollFd::new(3, PollFlags::POLLIN);
        p.set_events(PollFlags::POLLOUT);
        p.set_fd(-1);
        assert_eq!(p, PollFd::new(-1, PollFlags::POLLOUT));
        assert_eq!(
            format!("{p:?}"),
            "PollFd { fd: -1, events: POLLOUT, revents: (empty) }"
        );
        p.0.revents = libc::POLLHUP | 0x4000;
        p.set_events(PollFlags::POLLIN | PollFlags::POLLERR);
        assert_eq!(
            format!("{p:?}"),
            "PollFd { fd: -1, events: POLLIN | POLLERR, revents: POLLHUP | 0x4000 }"
        );
        // Every name appears for a flag that is its own bit.
        let all = format!("{:?}", FlagNames(PollFlags::all()));
        for name in [
            "POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL",
        ] {
            assert!(all.contains(name), "{all}");
        }
    }

    #[test]
    fn pollfd_is_layout_compatible() {
        assert_eq!(
            std::mem::size_of::<PollFd>(),
            std::mem::size_of::<libc::pollfd>()
        );
    }
}
