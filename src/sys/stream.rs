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

/// `listen(2)` again on a listening socket: sets its backlog (Linux, the BSDs and
/// Apple all accept a second `listen` and take the new value; the kernel silently caps
/// it at `somaxconn` / `kern.ipc.soacceptqueue`).
pub(crate) fn listen(fd: BorrowedFd<'_>, backlog: libc::c_int) -> io::Result<()> {
    // SAFETY: listen takes no pointers; a bad `fd` is an error, not UB.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(())
}
