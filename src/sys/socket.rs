//! Sockets: `accept4` with the peer's address, `send` without `SIGPIPE`, `SO_LINGER` in
//! seconds.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{getsockopt, setsockopt};

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
use super::fd::{set_cloexec, set_nonblocking};

use super::cvt;
/// The `SO_LINGER` option whose value counts **seconds** (see the Apple version).
#[cfg(not(target_vendor = "apple"))]
use nix::sys::socket::sockopt::Linger as LingerSeconds;
/// The `SO_LINGER` option whose value counts **seconds**: Apple's plain `SO_LINGER`
/// counts clock ticks, its `SO_LINGER_SEC` seconds.
#[cfg(target_vendor = "apple")]
use nix::sys::socket::sockopt::LingerSec as LingerSeconds;

/// Sets `SO_LINGER`, counted in seconds on every platform: `None` turns it off,
/// `Some(secs)` on with that timeout (`Some(0)`: the next `close` sends an RST).
pub(crate) fn set_linger(fd: BorrowedFd<'_>, secs: Option<libc::c_int>) -> io::Result<()> {
    let value = libc::linger {
        l_onoff: libc::c_int::from(secs.is_some()),
        l_linger: secs.unwrap_or(0),
    };
    setsockopt(&fd, LingerSeconds, &value)?;
    Ok(())
}

/// Reads `SO_LINGER` in seconds: `None` if it is off, else `Some(l_linger)` as the
/// kernel holds it (negative only if a raw `setsockopt` stored that).
pub(crate) fn linger(fd: BorrowedFd<'_>) -> io::Result<Option<libc::c_int>> {
    let value = getsockopt(&fd, LingerSeconds)?;
    Ok((value.l_onoff != 0).then_some(value.l_linger))
}

/// `send(2)` flags that turn a write to a gone peer into `EPIPE` instead of `SIGPIPE`.
///
/// Apple has no `MSG_NOSIGNAL` that its man pages promise; it uses the
/// `SO_NOSIGPIPE` socket option instead (see [`prepare_nosigpipe`]).
#[cfg(not(target_vendor = "apple"))]
pub(super) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
/// `send(2)` flags that turn a write to a gone peer into `EPIPE` instead of `SIGPIPE`.
#[cfg(target_vendor = "apple")]
pub(super) const SEND_FLAGS: libc::c_int = 0;

/// Makes writes on socket `fd` return `EPIPE` instead of raising `SIGPIPE`, where the
/// platform needs a socket option for that (Apple: `SO_NOSIGPIPE`). A no-op elsewhere,
/// where `MSG_NOSIGNAL` does the job per [`send_nosignal`] call.
#[cfg(target_vendor = "apple")]
pub(crate) fn prepare_nosigpipe(fd: RawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: `one` is a live c_int and the length passed is its size; the kernel only
    // reads it. A bad `fd` is reported as an error (EBADF/ENOTSOCK), not UB.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_NOSIGPIPE,
            (&one as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}
/// See the Apple version: nothing to do where `MSG_NOSIGNAL` exists.
#[cfg(not(target_vendor = "apple"))]
pub(crate) fn prepare_nosigpipe(_fd: RawFd) -> io::Result<()> {
    Ok(())
}

/// One `send(2)` that never raises `SIGPIPE` (on Apple, after [`prepare_nosigpipe`]),
/// retried on `EINTR`: the echo server's write, which must not loop on a short count
/// (the rest would only meet `EAGAIN`), and each step of `writen`'s loop.
pub(crate) fn send_nosignal(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a live slice of `buf.len()` readable bytes; the kernel only
        // reads them. A bad `fd` is an error (EBADF, ENOTSOCK), not UB.
        match cvt(unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), SEND_FLAGS) }) {
            // Not -1, and send returns at most `buf.len()`: the cast is exact.
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The most buffers one [`send_vectored_nosignal`] passes (POSIX guarantees
/// `IOV_MAX` of at least 16; Linux and the BSDs allow 1024).
pub(crate) const MAX_IOVECS: usize = 64;

/// One `sendmsg(2)` of several buffers that never raises `SIGPIPE` (as
/// [`send_nosignal`]), retried on `EINTR`: a connection's queued output, in one
/// system call whatever pieces it is made of. At most [`MAX_IOVECS`] buffers are
/// passed; the rest wait for the next call.
pub(crate) fn send_vectored_nosignal(
    fd: BorrowedFd<'_>,
    bufs: &[std::io::IoSlice<'_>],
) -> io::Result<usize> {
    let bufs = &bufs[..bufs.len().min(MAX_IOVECS)];
    // SAFETY: an all-zero msghdr is valid (no name, no control data, no iovecs).
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    // `IoSlice` is guaranteed ABI-compatible with `struct iovec` on Unix; the kernel
    // only reads through these pointers. The count fits every platform's type.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len() as _;
    loop {
        // SAFETY: `msg` points at `bufs.len()` live iovecs, each naming a live, readable
        // slice; nothing else in `msg` is set. A bad `fd` is an error, not UB.
        match cvt(unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, SEND_FLAGS) }) {
            // Not -1, and sendmsg returns at most the total length: the cast is exact.
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `accept(2)` that returns a close-on-exec descriptor, blocking unless `nonblocking`,
/// on every platform, and the peer's address (`None` if the kernel gave none or a
/// family other than IPv4/IPv6).
///
/// Linux and FreeBSD set the flags atomically with `accept4`. Apple and NetBSD get
/// plain `accept` and then `fcntl`, so a `fork`+`exec` in another thread in between
/// can leak the descriptor. BSD-derived kernels let the new socket inherit
/// `O_NONBLOCK` from the listener and Linux does not; this function sets or clears it
/// so every platform behaves like Linux.
pub(crate) fn accept_cloexec(
    listener: BorrowedFd<'_>,
    nonblocking: bool,
) -> io::Result<(OwnedFd, Option<SocketAddr>)> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value (family
    // AF_UNSPEC, which reads as "no address" if the kernel writes none).
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let addr = (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr>();
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let fd = {
        // accept4 sets both flags atomically, and its result never inherits the
        // listener's O_NONBLOCK (Linux never does; FreeBSD's accept4(2) says so).
        let flags = if nonblocking {
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK
        } else {
            libc::SOCK_CLOEXEC
        };
        // SAFETY: `addr`/`len` point to a live sockaddr_storage and its size; the
        // kernel writes at most `len` bytes there. A bad `listener` is an error.
        cvt(unsafe { libc::accept4(listener.as_raw_fd(), addr, &mut len, flags) })?
    };
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    // SAFETY: as above, without flags.
    let fd = cvt(unsafe { libc::accept(listener.as_raw_fd(), addr, &mut len) })?;
    // SAFETY: accept returned a new descriptor that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        use std::os::fd::AsFd;
        // Berkeley accept(2) copies O_NONBLOCK from the listener: set it either way.
        set_cloexec(owned.as_fd())?;
        set_nonblocking(owned.as_fd(), nonblocking)?;
    }
    Ok((owned, to_socket_addr(&storage, len)))
}

/// Converts the first `len` bytes of `storage`, as `accept` or `getpeername` filled
/// them in, to a [`SocketAddr`]; `None` if they hold less than a whole address or a
/// family other than IPv4/IPv6.
fn to_socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, `len` says the
            // kernel wrote all of it, and sockaddr_storage is aligned for every
            // sockaddr type.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Errors that Linux's `accept(2)` passes up from the new connection and that its man
/// page says to treat like `EAGAIN`, beyond those every platform has (`ENONET` exists
/// only on Linux).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn is_accept_network_error(errno: i32) -> bool {
    // accept(2): "Various Linux kernels can return other errors such as ENOSR,
    // ESOCKTNOSUPPORT, EPROTONOSUPPORT, ETIMEDOUT."
    matches!(
        errno,
        libc::ENONET | libc::ENOSR | libc::ESOCKTNOSUPPORT | libc::EPROTONOSUPPORT
    )
}
/// See the Linux version; other kernels report no such errors from `accept`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn is_accept_network_error(_errno: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{IoSlice, Read};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn sendmsg_sends_the_buffers_in_order() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let bufs = [
            IoSlice::new(b"one "),
            IoSlice::new(b""),
            IoSlice::new(b"two"),
        ];
        assert_eq!(send_vectored_nosignal(a.as_fd(), &bufs).unwrap(), 7);
        let mut got = [0u8; 7];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"one two");
    }

    #[test]
    fn sendmsg_passes_at_most_max_iovecs() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let byte = [b'x'];
        let bufs = vec![IoSlice::new(&byte); MAX_IOVECS + 10];
        assert_eq!(
            send_vectored_nosignal(a.as_fd(), &bufs).unwrap(),
            MAX_IOVECS
        );
        let mut got = vec![0u8; MAX_IOVECS];
        b.read_exact(&mut got).unwrap();
    }

    #[test]
    fn sendmsg_to_a_full_socket_is_would_block_and_to_a_gone_peer_epipe() {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        let e = loop {
            match send_vectored_nosignal(a.as_fd(), &[IoSlice::new(&chunk)]) {
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
        drop(b);
        // No SIGPIPE (it would end the test binary): EPIPE.
        let e = send_vectored_nosignal(a.as_fd(), &[IoSlice::new(b"x")]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE), "{e}");
    }

    #[test]
    fn sendmsg_on_a_pipe_is_enotsock() {
        let (_r, w) = nix::unistd::pipe().unwrap();
        let e = send_vectored_nosignal(w.as_fd(), &[IoSlice::new(b"x")]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTSOCK), "{e}");
    }
}
