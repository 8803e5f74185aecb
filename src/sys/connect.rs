//! A nonblocking `connect(2)` (UNP 16.3) and what follows it: the pending error
//! (`SO_ERROR`), and the two addresses of a connected socket.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    connect, getpeername, getsockname, getsockopt, socket, sockopt, AddressFamily, SockFlag,
    SockType, SockaddrIn, SockaddrIn6, SockaddrLike, SockaddrStorage,
};

/// A TCP socket for `addr`'s family: close-on-exec and nonblocking (atomically
/// where the kernel can: Linux, Android, FreeBSD; with `fcntl` elsewhere).
fn tcp_socket(addr: &SocketAddr) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let fd = {
        let fd = socket(family, SockType::Stream, SockFlag::empty(), None)?;
        use std::os::fd::AsFd;
        super::fd::set_cloexec(fd.as_fd())?;
        super::fd::set_nonblocking(fd.as_fd(), true)?;
        fd
    };
    Ok(fd)
}

/// UNP 16.3's nonblocking `connect`: a new socket, and whether it is connected
/// already (the kernel may finish at once, on the same host) or the handshake goes
/// on (`EINPROGRESS`; `EINTR` too: the connect goes on asynchronously). Any other
/// error is the connect's.
pub(crate) fn connect_nonblocking(addr: &SocketAddr) -> io::Result<(OwnedFd, bool)> {
    let fd = tcp_socket(addr)?;
    let result = match addr {
        SocketAddr::V4(a) => connect(fd.as_raw_fd(), &SockaddrIn::from(*a)),
        SocketAddr::V6(a) => connect(fd.as_raw_fd(), &SockaddrIn6::from(*a)),
    };
    match result {
        Ok(()) => Ok((fd, true)),
        Err(Errno::EINPROGRESS | Errno::EINTR) => Ok((fd, false)),
        Err(e) => Err(e.into()),
    }
}

/// Takes the socket's pending error (`getsockopt(SO_ERROR)`, which clears it): how a
/// nonblocking connect ended once the socket is writable (UNP 16.3). `None`: it
/// connected.
pub(crate) fn take_socket_error(fd: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let errno = getsockopt(&fd, sockopt::SocketError)?;
    Ok((errno != 0).then(|| io::Error::from_raw_os_error(errno)))
}

/// The address a storage holds, if it is IPv4 or IPv6.
fn inet(storage: &SockaddrStorage) -> io::Result<SocketAddr> {
    if let Some(a) = storage.as_sockaddr_in() {
        return Ok(SocketAddr::V4(SocketAddrV4::from(*a)));
    }
    if let Some(a) = storage.as_sockaddr_in6() {
        return Ok(SocketAddr::V6(SocketAddrV6::from(*a)));
    }
    let family = storage.family();
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("not an internet socket (address family {family:?})"),
    ))
}

/// The peer's address (`getpeername(2)`).
pub(crate) fn peer_addr(fd: BorrowedFd<'_>) -> io::Result<SocketAddr> {
    inet(&getpeername::<SockaddrStorage>(fd.as_raw_fd())?)
}

/// The local address (`getsockname(2)`).
pub(crate) fn local_addr(fd: BorrowedFd<'_>) -> io::Result<SocketAddr> {
    inet(&getsockname::<SockaddrStorage>(fd.as_raw_fd())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::fd::AsFd;

    #[test]
    fn a_connect_to_a_listener_completes_and_knows_both_addresses() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (fd, _at_once) = connect_nonblocking(&l.local_addr().unwrap()).unwrap();
        let (_server_side, peer) = l.accept().unwrap();
        // Accepted: the handshake is over, SO_ERROR is clear.
        assert!(take_socket_error(fd.as_fd()).unwrap().is_none());
        assert_eq!(peer_addr(fd.as_fd()).unwrap(), l.local_addr().unwrap());
        assert_eq!(local_addr(fd.as_fd()).unwrap(), peer);
    }

    #[test]
    fn a_refused_connect_leaves_econnrefused_in_so_error() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        match connect_nonblocking(&addr) {
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED)),
            Ok((fd, _)) => {
                // In progress: the refusal comes once the socket is writable.
                let mut p = [nix::poll::PollFd::new(
                    fd.as_fd(),
                    nix::poll::PollFlags::POLLOUT,
                )];
                nix::poll::poll(&mut p, nix::poll::PollTimeout::from(1000u16)).unwrap();
                let e = take_socket_error(fd.as_fd()).unwrap().unwrap();
                assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED));
            }
        }
    }

    #[test]
    fn a_unix_socket_has_no_inet_address() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let e = peer_addr(a.as_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert_eq!(
            take_socket_error(a.as_fd()).unwrap().map(|e| e.kind()),
            None
        );
    }

    #[test]
    fn errors_keep_their_errno() {
        // Not connected: getpeername says ENOTCONN; the local address is known.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let e = peer_addr(l.as_fd()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTCONN));
        assert_eq!(local_addr(l.as_fd()).unwrap(), l.local_addr().unwrap());
        // Not a socket: every call says ENOTSOCK.
        let (r, _w) = nix::unistd::pipe().unwrap();
        let notsock = Some(libc::ENOTSOCK);
        assert_eq!(
            take_socket_error(r.as_fd()).unwrap_err().raw_os_error(),
            notsock
        );
        assert_eq!(peer_addr(r.as_fd()).unwrap_err().raw_os_error(), notsock);
        assert_eq!(local_addr(r.as_fd()).unwrap_err().raw_os_error(), notsock);
    }
}
