//! The waker's one write: async-signal-safe, `errno` kept.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

/// Writes one byte to the waker's socket with `send(2)` (`MSG_NOSIGNAL` where it
/// exists: the socket's other end lives as long as the waker, so no `SIGPIPE` can
/// come anyway). Returns the errno of a failed send, 0 on success.
///
/// Async-signal-safe: `send(2)` is on POSIX's list of async-signal-safe functions, and
/// the caller's `errno` is saved before and restored after, so a signal handler that
/// calls this does not clobber the `errno` of the code it interrupted (POSIX 2.4.3).
pub(crate) fn wake(fd: BorrowedFd<'_>) -> i32 {
    let saved = Errno::last_raw();
    let byte = 1u8;
    // SAFETY: `byte` is a live u8 and the length passed is 1; the kernel only reads it.
    // A bad `fd` is an error (EBADF), not UB.
    let rc = unsafe {
        libc::send(
            fd.as_raw_fd(),
            (&byte as *const u8).cast(),
            1,
            super::socket::SEND_FLAGS,
        )
    };
    let result = if rc == -1 { Errno::last_raw() } else { 0 };
    Errno::set_raw(saved);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn wake_writes_a_byte_keeps_errno_and_reports_a_full_socket() {
        let (rx, tx) = UnixStream::pair().unwrap();
        tx.set_nonblocking(true).unwrap();
        Errno::set_raw(libc::EDOM);
        assert_eq!(wake(tx.as_fd()), 0);
        assert_eq!(Errno::last_raw(), libc::EDOM);
        while wake(tx.as_fd()) == 0 {}
        assert_eq!(wake(tx.as_fd()), libc::EAGAIN);
        assert_eq!(Errno::last_raw(), libc::EDOM);
        drop(rx);
    }

    #[test]
    fn wake_on_a_closed_peer_is_epipe_not_sigpipe() {
        let (rx, tx) = UnixStream::pair().unwrap();
        drop(rx);
        assert_eq!(wake(tx.as_fd()), libc::EPIPE);
    }
}
