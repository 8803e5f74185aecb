//! Descriptor flags: close-on-exec and `O_NONBLOCK`, where `accept4` (or, for a
//! kqueue, `kqueue` itself) cannot set them.

use std::io;
use std::os::fd::BorrowedFd;

#[cfg(not(target_os = "freebsd"))]
use nix::fcntl::OFlag;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// Sets close-on-exec on `fd`, keeping its other descriptor flags.
pub(super) fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = FdFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFD)?);
    fcntl(fd, FcntlArg::F_SETFD(flags | FdFlag::FD_CLOEXEC))?;
    Ok(())
}

/// Sets or clears `O_NONBLOCK` on `fd`, keeping its other status flags; makes no
/// second call when the flag is already as asked.
#[cfg(not(target_os = "freebsd"))] // FreeBSD has accept4
pub(super) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    let new = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags & !OFlag::O_NONBLOCK
    };
    if new != flags {
        fcntl(fd, FcntlArg::F_SETFL(new))?;
    }
    Ok(())
}
