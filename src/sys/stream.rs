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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn recv_reads_what_is_there_and_says_eagain_on_nothing() {
        let (mut a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 8];
        let e = recv(b.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        a.write_all(b"hi").unwrap();
        assert_eq!(recv(b.as_fd(), &mut buf).unwrap(), 2);
        drop(a);
        assert_eq!(recv(b.as_fd(), &mut buf).unwrap(), 0); // end of file
    }

    #[test]
    fn shutdown_write_sends_eof_and_keeps_reading() {
        let (a, b) = UnixStream::pair().unwrap();
        shutdown_write(a.as_fd()).unwrap();
        assert_eq!(recv(b.as_fd(), &mut [0u8; 4]).unwrap(), 0);
        (&b).write_all(b"x").unwrap();
        assert_eq!(recv(a.as_fd(), &mut [0u8; 4]).unwrap(), 1);
    }

    #[test]
    fn listen_and_nodelay_need_the_right_socket() {
        let (a, _b) = UnixStream::pair().unwrap();
        // A connected Unix stream cannot listen (EINVAL) and has no TCP_NODELAY.
        assert!(listen(a.as_fd(), 16).is_err());
        assert!(set_nodelay(a.as_fd()).is_err());
        let l = bind_tcp(&"127.0.0.1:0".parse().unwrap(), 16, false).unwrap();
        listen(l.as_fd(), 1024).unwrap(); // a second listen sets the backlog
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        set_nodelay(c.as_fd()).unwrap();
        assert!(c.nodelay().unwrap());
    }

    #[test]
    fn bind_tcp_with_reuseport_shares_the_address_where_the_kernel_balances() {
        let any = "127.0.0.1:0".parse().unwrap();
        if !BALANCED_REUSEPORT {
            let e = bind_tcp(&any, 16, true).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::Unsupported);
            return;
        }
        let first = bind_tcp(&any, 16, true).unwrap();
        let addr = first.local_addr().unwrap();
        let second = bind_tcp(&addr, 16, true).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
        // Without the option the address is taken.
        let e = bind_tcp(&addr, 16, false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}
