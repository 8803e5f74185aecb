//! Descriptor flags: close-on-exec and `O_NONBLOCK`, where `accept4` (or, for a
//! kqueue, `kqueue` itself) cannot set them, and on a stream made elsewhere that
//! the server adopts.

use std::io;
use std::os::fd::BorrowedFd;

#[cfg(not(any(target_os = "linux", target_os = "android")))]
use nix::fcntl::FdFlag;
use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// Sets close-on-exec on `fd`, keeping its other descriptor flags (Linux and
/// Android set it when they make a descriptor).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = FdFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFD)?);
    fcntl(fd, FcntlArg::F_SETFD(flags | FdFlag::FD_CLOEXEC))?;
    Ok(())
}

/// Sets or clears `O_NONBLOCK` on `fd` (`fcntl(2)`), keeping its other status
/// flags; makes no second call when the flag is already as asked.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn status(fd: BorrowedFd<'_>) -> OFlag {
        OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL).unwrap())
    }

    #[test]
    fn nonblocking_is_set_and_cleared_and_the_other_flags_kept() {
        let (a, _b) = UnixStream::pair().unwrap();
        let before = status(a.as_fd());
        set_nonblocking(a.as_fd(), true).unwrap();
        assert_eq!(status(a.as_fd()), before | OFlag::O_NONBLOCK);
        set_nonblocking(a.as_fd(), true).unwrap(); // already so
        assert_eq!(status(a.as_fd()), before | OFlag::O_NONBLOCK);
        set_nonblocking(a.as_fd(), false).unwrap();
        assert_eq!(status(a.as_fd()), before - OFlag::O_NONBLOCK);
    }

    #[test]
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn cloexec_is_set_and_the_other_flags_kept() {
        let (r, _w) = nix::unistd::pipe().unwrap(); // without close-on-exec
        let get = |fd| FdFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFD).unwrap());
        assert!(!get(r.as_fd()).contains(FdFlag::FD_CLOEXEC));
        set_cloexec(r.as_fd()).unwrap();
        assert!(get(r.as_fd()).contains(FdFlag::FD_CLOEXEC));
    }
}
