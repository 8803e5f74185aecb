//! Plain descriptor I/O (`write(2)`, `close(2)`), and the C library's `memchr`, which
//! line reading uses to find a newline.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

/// One `write(2)` of `buf` to `fd`; `EINTR` is returned, not retried.
pub(crate) fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    Ok(nix::unistd::write(fd, buf)?)
}

/// One `read(2)` into `buf`, retried on `EINTR`: for descriptors that are not
/// sockets (a pipe a protocol watches).
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::read(fd, buf) {
            Err(nix::errno::Errno::EINTR) => {}
            other => return Ok(other?),
        }
    }
}

/// Closes `fd` and reports the error of `close(2)`, which dropping an [`OwnedFd`]
/// ignores. The descriptor is released even when an error is returned (Linux, FreeBSD
/// and Apple free it before they report one), so it must not be closed again.
pub(crate) fn close(fd: OwnedFd) -> io::Result<()> {
    Ok(nix::unistd::close(fd)?)
}

/// Index of the first `byte` in `hay`, found by the C library's `memchr` (vectorized
/// in glibc).
#[inline]
pub(crate) fn memchr(byte: u8, hay: &[u8]) -> Option<usize> {
    // SAFETY: the pointer and length describe the live slice `hay`; memchr reads at
    // most `hay.len()` bytes from it and returns null or a pointer into it.
    let p = unsafe { libc::memchr(hay.as_ptr().cast(), libc::c_int::from(byte), hay.len()) };
    if p.is_null() {
        None
    } else {
        Some(p as usize - hay.as_ptr() as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn read_takes_what_a_pipe_holds_then_would_block_then_eof() {
        let (r, w) = nix::unistd::pipe().unwrap();
        super::super::set_nonblocking(r.as_fd(), true).unwrap(); // O_NONBLOCK on any fd
        let mut w = std::fs::File::from(w);
        w.write_all(b"abc").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(read(r.as_fd(), &mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        let e = read(r.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
        drop(w);
        assert_eq!(read(r.as_fd(), &mut buf).unwrap(), 0, "end of file");
    }

    #[test]
    fn read_on_a_write_end_keeps_its_errno() {
        let (_r, w) = nix::unistd::pipe().unwrap();
        let e = read(w.as_fd(), &mut [0u8; 1]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
    }
}
