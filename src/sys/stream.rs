//! A connected socket's `recv(2)` and `shutdown(2)`, and `listen(2)` to set a
//! listening socket's backlog.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::cvt;

/// One `recv(2)` into `buf` (flags 0: `read(2)` on a socket), retried on `EINTR`.
/// A `recvfrom` system call on Linux, as `std`'s `TcpStream::read`.
pub(crate) fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a live, writable slice of `buf.len()` bytes; the kernel
        // writes at most that many. A bad `fd` is an error (EBADF, ENOTSOCK), not UB.
        match cvt(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) }) {
            // Not -1, and recv returns at most `buf.len()`: the cast is exact.
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `shutdown(fd, SHUT_WR)`: send FIN after what is queued; reading goes on.
pub(crate) fn shutdown_write(fd: BorrowedFd<'_>) -> io::Result<()> {
    nix::sys::socket::shutdown(fd.as_raw_fd(), nix::sys::socket::Shutdown::Write)?;
    Ok(())
}

/// `setsockopt(TCP_NODELAY, 1)`: small writes go out at once instead of waiting
/// for the peer's ACK of earlier ones (Nagle's algorithm, RFC 896).
pub(crate) fn set_nodelay(fd: BorrowedFd<'_>) -> io::Result<()> {
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::TcpNoDelay, &true)?;
    Ok(())
}

/// `listen(2)` again on a listening socket: sets its backlog (Linux, the BSDs and
/// Apple all accept a second `listen` and take the new value; the kernel silently caps
/// it at `somaxconn` / `kern.ipc.soacceptqueue`).
pub(crate) fn listen(fd: BorrowedFd<'_>, backlog: libc::c_int) -> io::Result<()> {
    // SAFETY: listen takes no pointers; a bad `fd` is an error, not UB.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(())
}

/// Whether this platform has a listen option that lets several sockets bind one
/// address *and* spreads incoming connections over them: `SO_REUSEPORT` on Linux
/// (3.9+), `SO_REUSEPORT_LB` on FreeBSD (12+). Apple's and NetBSD's
/// `SO_REUSEPORT` let sockets share an address but give every connection to one
/// of them, so it is not used there.
pub(crate) const BALANCED_REUSEPORT: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd"
));

/// A TCP listener on `addr` with `backlog`: `socket`, `SO_REUSEADDR` (as `std`
/// sets it), with `reuseport` the balancing option of [`BALANCED_REUSEPORT`]
/// (`Unsupported` where there is none), `bind`, `listen`. Close-on-exec.
pub(crate) fn bind_tcp(
    addr: &std::net::SocketAddr,
    backlog: libc::c_int,
    reuseport: bool,
) -> io::Result<std::net::TcpListener> {
    use nix::sys::socket::{bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType};
    use nix::sys::socket::{SockaddrIn, SockaddrIn6};
    use std::net::SocketAddr;
    use std::os::fd::AsFd;

    if reuseport && !BALANCED_REUSEPORT {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no SO_REUSEPORT that balances connections on this platform",
        ));
    }
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let fd = {
        let fd = socket(family, SockType::Stream, SockFlag::empty(), None)?;
        super::fd::set_cloexec(fd.as_fd())?;
        fd
    };
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if reuseport {
        setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    #[cfg(target_os = "freebsd")]
    if reuseport {
        setsockopt(&fd, sockopt::ReusePortLb, &true)?;
    }
    match addr {
        SocketAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(*a))?,
        SocketAddr::V6(a) => bind(fd.as_raw_fd(), &SockaddrIn6::from(*a))?,
    }
    listen(fd.as_fd(), backlog)?;
    Ok(std::net::TcpListener::from(fd))
}
