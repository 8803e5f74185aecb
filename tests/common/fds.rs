//! Descriptors for the integration tests: pipes, high-numbered duplicates and
//! connected TCP pairs on 127.0.0.1.

use std::fs::File;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A pipe as `(read end, write end)`.
pub fn pipe() -> (File, File) {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    (File::from(r), File::from(w))
}

/// A close-on-exec duplicate of `fd` numbered `min` or higher (`F_DUPFD_CLOEXEC`).
///
/// Descriptors are allocated lowest free number first, so a test that owns a range of
/// high numbers is not disturbed by the other test threads of its binary.
pub fn dup_at_least(fd: &impl AsRawFd, min: RawFd) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC takes an int and returns a new descriptor or -1.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    assert!(n >= min, "F_DUPFD_CLOEXEC: {}", io::Error::last_os_error());
    // SAFETY: `n` is a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(n) }
}

/// A connected pair on 127.0.0.1 as `(client, server side)`, and the listener that
/// accepted it. Reads on both streams time out after 5 s.
pub fn tcp_pair_with_listener() -> (TcpStream, TcpStream, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    for s in [&client, &server] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    (client, server, listener)
}

/// A connected pair on 127.0.0.1 as `(client, server side)`; the listener is closed.
/// Reads on both streams time out after 5 s.
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let (client, server, _listener) = tcp_pair_with_listener();
    (client, server)
}
