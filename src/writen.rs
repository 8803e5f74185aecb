//! UNP's `writen`: write a whole buffer, never killed by `SIGPIPE`.
//!
//! `write(2)` and `send(2)` may write fewer bytes than asked (a *short write*: a signal
//! arrived after part of the data was queued, or a nonblocking descriptor ran out of
//! buffer space) and may fail with `EINTR`. [`writen`] loops until everything is written,
//! like UNP's `writen` (section 3.9, figure 3.15). [`try_writen`] is the variant for
//! nonblocking descriptors: it stops when the descriptor would block and says how much
//! it wrote, which is what an event loop needs to keep the rest in its own buffer.
//!
//! Writing to a socket or pipe whose reading side is gone fails with `EPIPE`, and the
//! kernel also sends `SIGPIPE`; its default action kills the process (UNP section 5.13).
//! Rust's `main` ignores `SIGPIPE` at startup, but a library may run in a host that
//! restored the default action. Both functions here return the error
//! ([`ErrorKind::BrokenPipe`](std::io::ErrorKind::BrokenPipe), or
//! [`ErrorKind::ConnectionReset`](std::io::ErrorKind::ConnectionReset) for the first
//! write after an RST) and never let a `SIGPIPE` through:
//!
//! * on a socket they call `send(2)` with `MSG_NOSIGNAL` (Apple: the socket option
//!   `SO_NOSIGPIPE`, set on the socket first), so no signal is generated;
//! * on anything else (`send` fails with `ENOTSOCK`: pipes, FIFOs, files, terminals)
//!   they fall back to `write(2)` with `SIGPIPE` blocked in the calling thread; if the
//!   write fails with `EPIPE`, the `SIGPIPE` that this write raised is taken off the
//!   pending set (`sigtimedwait(2)`, zero timeout) before the thread's signal mask is
//!   restored (Apple: no signal at all, see below).
//!
//! On Linux and FreeBSD only the write's own `SIGPIPE` is taken. The kernel sends it to
//! the writing thread, and `sigtimedwait` takes a signal pending for the thread before
//! one pending for the process, so a `SIGPIPE` pending for the process (sent with
//! `kill(2)` while every thread blocks it) stays pending. A `SIGPIPE` already pending for
//! the calling thread (possible only if the caller blocks `SIGPIPE`) is the caller's: on
//! Linux a standard signal does not queue, so the write's one merges into it and nothing
//! is taken; the caller sees one `SIGPIPE`, as without the call. A `SIGPIPE` that
//! someone sends to the calling thread itself (`pthread_kill`) while the call runs
//! cannot be told from the write's own and may be taken in its place.
//!
//! # Platform-specific behavior
//!
//! * Linux, FreeBSD: `send(2)` with `MSG_NOSIGNAL`.
//! * Apple: `SO_NOSIGPIPE` is set on the socket (it stays set after the call), then
//!   `send(2)` without flags. On other descriptors `fcntl(F_SETNOSIGPIPE)` is set (it
//!   stays set on the open file description, which duplicates and other processes may
//!   share), so `write(2)` raises no `SIGPIPE`: XNU sends that of a pipe to the process,
//!   which any thread not blocking it receives, so blocking it would not help.
//! * Pending signals, Linux (kernel source: `send_sig(SIGPIPE, current, 0)` in
//!   `pipe_write`, `dequeue_signal`): exactly as described above. Whether a `SIGPIPE`
//!   pending at the start is the thread's or the process's is read from
//!   `/proc/thread-self/status`; without `/proc` nothing is taken in that case, so the
//!   write's `SIGPIPE` stays pending too.
//! * Pending signals, FreeBSD (from its source, not tested): the write's `SIGPIPE` goes
//!   to the thread (`tdsignal`) and is queued as a signal of its own even if one is
//!   pending (`sigqueue_add`); one is taken, the thread's first (`kern_sigtimedwait`),
//!   so the call leaves the number of pending `SIGPIPE`s unchanged.
//! * Pending signals, other Unix systems (not verified): the write's `SIGPIPE` is taken
//!   (with `sigwait(2)`) only if no `SIGPIPE` was pending at the start.
//! * Measured on Linux (6.18), TCP on loopback: after the peer closed normally (FIN),
//!   the first write still succeeds (the peer's TCP answers it with an RST) and a later
//!   one fails with `EPIPE`; after the peer reset the connection, the first write fails
//!   with `ECONNRESET` and the next ones with `EPIPE`. On a Unix-domain socketpair the
//!   first write after the peer closed already fails with `EPIPE`.
//!
//! # References
//!
//! * W. R. Stevens, B. Fenner, A. M. Rudoff, *Unix Network Programming, Volume 1*, 3rd
//!   ed., section 3.9 (`readn`, `writen`, `readline`; figure 3.15), section 5.13
//!   (`SIGPIPE`) and section 16.2 (nonblocking reads and writes).
//! * POSIX [`send`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/send.html),
//!   [`write`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/write.html),
//!   [`pthread_sigmask`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pthread_sigmask.html),
//!   [`sigtimedwait`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigtimedwait.html),
//!   [`sigwait`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigwait.html).
//! * Linux [`send(2)`](https://man7.org/linux/man-pages/man2/send.2.html),
//!   [`write(2)`](https://man7.org/linux/man-pages/man2/write.2.html),
//!   [`signal(7)`](https://man7.org/linux/man-pages/man7/signal.7.html) (signals
//!   pending for a thread and for a process),
//!   [`proc(5)`](https://man7.org/linux/man-pages/man5/proc.5.html) (`SigPnd`,
//!   `ShdPnd`); kernel `fs/pipe.c` and `kernel/signal.c`.
//! * FreeBSD [`send(2)`](https://man.freebsd.org/cgi/man.cgi?query=send&sektion=2);
//!   kernel `sys/kern/sys_generic.c` (`dofilewrite`) and `sys/kern/kern_sig.c`.
//! * Apple [`setsockopt(2)`](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/setsockopt.2.html)
//!   (`SO_NOSIGPIPE`),
//!   [`fcntl(2)`](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/fcntl.2.html)
//!   (`F_SETNOSIGPIPE`); XNU `bsd/kern/sys_generic.c` (`dofilewrite`) and
//!   `bsd/kern/kern_sig.c` (`get_signalthread`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use crate::sys::{self, SigpipeBlock};

/// Largest count passed to one `send`/`write` call. Some kernels reject counts above
/// `INT_MAX`; a larger buffer is simply written in several calls.
const MAX_CHUNK: usize = 1 << 30;

/// Before the first `write(2)` to a non-socket: switches `SIGPIPE` off for the
/// descriptor where the platform can (Apple), else blocks it in the calling thread.
fn prepare_nonsocket(fd: BorrowedFd<'_>) -> io::Result<Option<SigpipeBlock>> {
    if sys::set_nosigpipe_nonsocket(fd.as_raw_fd())? {
        return Ok(None);
    }
    SigpipeBlock::new().map(Some)
}

/// Writes `buf` until done or until an error; returns the count written and the error
/// that stopped it, if any. `EINTR` is retried.
fn write_loop(fd: BorrowedFd<'_>, buf: &[u8]) -> (usize, Option<io::Error>) {
    let mut written = 0;
    let mut is_socket = true;
    if let Err(e) = sys::prepare_nosigpipe(fd.as_raw_fd()) {
        if e.raw_os_error() != Some(libc::ENOTSOCK) {
            return (0, Some(e));
        }
        is_socket = false;
    }
    let mut prepared = false;
    let mut block: Option<SigpipeBlock> = None;
    while written < buf.len() {
        let rest = &buf[written..buf.len().min(written + MAX_CHUNK)];
        let result = if is_socket {
            sys::send_nosignal(fd.as_raw_fd(), rest)
        } else {
            if !prepared {
                match prepare_nonsocket(fd) {
                    Ok(b) => block = b,
                    Err(e) => return (written, Some(e)),
                }
                prepared = true;
            }
            let r = sys::write(fd, rest);
            if let (Err(e), Some(b)) = (&r, block.as_mut()) {
                if e.raw_os_error() == Some(libc::EPIPE) {
                    b.saw_epipe();
                }
            }
            r
        };
        match result {
            Ok(0) => {
                return (
                    written,
                    Some(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "write returned 0 for a non-empty buffer",
                    )),
                )
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_socket && e.raw_os_error() == Some(libc::ENOTSOCK) => {
                is_socket = false;
            }
            Err(e) => return (written, Some(e)),
        }
    }
    (written, None)
}

/// Writes all of `buf` to `fd`, looping on short writes and `EINTR`: UNP's `writen`
/// (section 3.9).
///
/// On a socket it uses `send(2)` so that a gone peer is an error, never a `SIGPIPE`
/// (see the [module documentation](self)); on other descriptors (pipes, files) it uses
/// `write(2)` with `SIGPIPE` blocked, and takes the `SIGPIPE` that its own write raised,
/// no other (per platform: see the
/// [module documentation](self#platform-specific-behavior)). An empty `buf`
/// returns `Ok(())` at once, without a system call (so even a bad descriptor is not
/// noticed).
///
/// Meant for **blocking** descriptors. On a nonblocking one it fails with
/// [`ErrorKind::WouldBlock`](io::ErrorKind::WouldBlock) when the buffer is full, and
/// the caller cannot know how much was written before: use [`try_writen`] there.
///
/// `fd` is borrowed, never consumed, `&(impl AsFd + ?Sized)`: pass `&stream`,
/// `&owned_fd`, `&borrowed_fd` or a `&dyn AsFd`; the descriptor stays open after the
/// call. In this crate only [`abort`](crate::linger::abort), whose job is to close,
/// takes a descriptor by value (see [descriptors](crate#descriptors-borrowed-or-owned)).
///
/// # Errors
///
/// * `EPIPE` ([`ErrorKind::BrokenPipe`](io::ErrorKind::BrokenPipe)) when the reading
///   side is gone, `ECONNRESET`
///   ([`ErrorKind::ConnectionReset`](io::ErrorKind::ConnectionReset)) for the first
///   write after the peer reset a TCP connection.
/// * `EAGAIN` ([`ErrorKind::WouldBlock`](io::ErrorKind::WouldBlock)) on a full
///   nonblocking descriptor; the number of bytes already written is lost.
/// * `EBADF` if `fd` is not open for writing (for example the read end of a pipe), and
///   any other error of `send(2)`/`write(2)`, with its errno kept.
/// * [`ErrorKind::WriteZero`](io::ErrorKind::WriteZero) if the kernel reports writing
///   0 bytes of a non-empty buffer.
///
/// If an error happens after part of `buf` was written, that part stays written; on a
/// stream socket the connection is then unusable anyway.
///
/// # Examples
///
/// ```
/// use std::io::Read;
/// use std::os::unix::net::UnixStream;
/// use unp_select::writen::writen;
///
/// let (a, mut b) = UnixStream::pair()?;
/// let reader = std::thread::spawn(move || {
///     let mut all = Vec::new();
///     b.read_to_end(&mut all).map(|_| all)
/// });
/// let data = vec![42u8; 1 << 20]; // more than the socket buffer holds
/// writen(&a, &data)?;
/// drop(a);
/// assert_eq!(reader.join().unwrap()?, data);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// A peer that is gone is an error, not a signal:
///
/// ```
/// use std::io::ErrorKind;
/// use std::os::unix::net::UnixStream;
/// use unp_select::writen::writen;
///
/// let (a, b) = UnixStream::pair()?;
/// drop(b);
/// assert_eq!(writen(&a, b"hello").unwrap_err().kind(), ErrorKind::BrokenPipe);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// An owned descriptor is lent, not given: passing it by value (which would close it
/// when the call returns) does not compile:
///
/// ```compile_fail,E0308
/// use std::os::fd::OwnedFd;
/// use std::os::unix::net::UnixStream;
/// use unp_select::writen::writen;
///
/// let (a, _b) = UnixStream::pair()?;
/// let fd = OwnedFd::from(a);
/// writen(fd, b"x")?; // error[E0308]: expected `&_`, found `OwnedFd`
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Borrowed, it stays open for the next write:
///
/// ```
/// use std::io::Read;
/// use std::os::fd::OwnedFd;
/// use std::os::unix::net::UnixStream;
/// use unp_select::writen::writen;
///
/// let (a, mut b) = UnixStream::pair()?;
/// let fd = OwnedFd::from(a);
/// writen(&fd, b"one ")?;
/// writen(&fd, b"two")?;
/// drop(fd);
/// let mut got = String::new();
/// b.read_to_string(&mut got)?;
/// assert_eq!(got, "one two");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn writen(fd: &(impl AsFd + ?Sized), buf: &[u8]) -> io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    match write_loop(fd.as_fd(), buf) {
        (_, None) => Ok(()),
        (_, Some(e)) => Err(e),
    }
}

/// Writes as much of `buf` as `fd` accepts without blocking; returns the count written.
///
/// For **nonblocking** descriptors: it loops like [`writen`] until all of `buf` is
/// written or the descriptor would block (`EAGAIN`/`EWOULDBLOCK`), and returns the
/// number of bytes written: `buf.len()` when done, less when it would block, `Ok(0)` if
/// nothing could be written. An event loop keeps `buf[n..]` and calls again when
/// `select`/`poll` reports the descriptor writable. `EINTR` is retried. On a blocking
/// descriptor it behaves like [`writen`] and returns `buf.len()`. An empty `buf`
/// returns `Ok(0)` without a system call.
///
/// The same `SIGPIPE` protection as [`writen`] applies, and `fd` is borrowed in the same
/// way: an owned descriptor passed by value does not compile.
///
/// # Errors
///
/// Every error other than `EINTR` and `EAGAIN`/`EWOULDBLOCK` is returned, as for
/// [`writen`] (`EPIPE`, `ECONNRESET`, `EBADF`, ...). If part of `buf` was written before
/// such an error, the count is not reported: the error wins, because the connection is
/// broken and nothing more can be sent on it.
///
/// # Examples
///
/// ```
/// use std::io::Read;
/// use std::os::unix::net::UnixStream;
/// use unp_select::writen::try_writen;
///
/// let (a, mut b) = UnixStream::pair()?;
/// a.set_nonblocking(true)?;
/// let data = vec![7u8; 4 << 20]; // far more than the socket buffer holds
/// let n = try_writen(&a, &data)?;
/// assert!(0 < n && n < data.len()); // stopped when the buffer was full
/// assert_eq!(try_writen(&a, &data[n..])?, 0); // still full
///
/// let mut first = vec![0u8; n];
/// b.read_exact(&mut first)?; // the peer drains what was accepted
/// assert!(first.iter().all(|&x| x == 7));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// ```compile_fail,E0308
/// use std::os::fd::OwnedFd;
/// use std::os::unix::net::UnixStream;
/// use unp_select::writen::try_writen;
///
/// let (a, _b) = UnixStream::pair()?;
/// try_writen(OwnedFd::from(a), b"x")?; // error[E0308]: expected `&_`, found `OwnedFd`
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn try_writen(fd: &(impl AsFd + ?Sized), buf: &[u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    match write_loop(fd.as_fd(), buf) {
        (n, None) => Ok(n),
        (n, Some(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
        (_, Some(e)) => Err(e),
    }
}
