//! Sockets: `accept4`, `send` without `SIGPIPE`, `SO_LINGER`'s unit.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
use super::fd::{set_cloexec, set_nonblocking};

/// The `SO_LINGER` option whose value counts **seconds**.
///
/// Apple's plain `SO_LINGER` counts clock ticks; `SO_LINGER_SEC` counts seconds.
#[cfg(target_vendor = "apple")]
pub(crate) const SO_LINGER_SECONDS: libc::c_int = libc::SO_LINGER_SEC;
/// The `SO_LINGER` option whose value counts **seconds**.
#[cfg(not(target_vendor = "apple"))]
pub(crate) const SO_LINGER_SECONDS: libc::c_int = libc::SO_LINGER;

/// `send(2)` flags that turn a write to a gone peer into `EPIPE` instead of `SIGPIPE`.
///
/// Apple has no `MSG_NOSIGNAL` that its man pages promise; it uses the
/// `SO_NOSIGPIPE` socket option instead (see [`prepare_nosigpipe`]).
#[cfg(not(target_vendor = "apple"))]
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
/// `send(2)` flags that turn a write to a gone peer into `EPIPE` instead of `SIGPIPE`.
#[cfg(target_vendor = "apple")]
pub(crate) const SEND_FLAGS: libc::c_int = 0;

/// Makes writes on socket `fd` return `EPIPE` instead of raising `SIGPIPE`, where the
/// platform needs a socket option for that (Apple: `SO_NOSIGPIPE`). A no-op elsewhere,
/// where [`SEND_FLAGS`] does the job per call.
#[cfg(target_vendor = "apple")]
pub(crate) fn prepare_nosigpipe(fd: RawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: `one` is a live c_int and the length passed is its size; the kernel only
    // reads it. A bad `fd` is reported as an error (EBADF/ENOTSOCK), not UB.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_NOSIGPIPE,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
/// See the Apple version: nothing to do where `MSG_NOSIGNAL` exists.
#[cfg(not(target_vendor = "apple"))]
pub(crate) fn prepare_nosigpipe(_fd: RawFd) -> io::Result<()> {
    Ok(())
}

/// One `send(2)` that never raises `SIGPIPE` (on Apple, after `prepare_nosigpipe`),
/// retried on `EINTR`: the echo server's write, which must not loop on a short
/// count (the rest would only meet `EAGAIN`).
pub(crate) fn send_nosignal(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a live slice of `buf.len()` readable bytes; the kernel only
        // reads them. A bad `fd` is an error (EBADF, ENOTSOCK), not UB.
        let rc = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), SEND_FLAGS) };
        match usize::try_from(rc) {
            Ok(n) => return Ok(n),
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// `accept(2)` that returns a close-on-exec, **blocking** descriptor on every platform.
///
/// Linux and FreeBSD set close-on-exec atomically with `accept4(SOCK_CLOEXEC)`. Apple has
/// no `accept4`: the flag is set right after `accept`, so a `fork`+`exec` in another
/// thread in between can leak the descriptor. BSD-derived kernels (Apple, FreeBSD) let
/// the new socket inherit `O_NONBLOCK` from the listener and Linux does not; this
/// function clears it so every platform behaves like Linux.
pub(crate) fn accept_cloexec(
    listener: RawFd,
    storage: &mut libc::sockaddr_storage,
    len: &mut libc::socklen_t,
    nonblocking: bool,
) -> io::Result<OwnedFd> {
    let addr = (storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr>();
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
        // kernel writes at most `*len` bytes there. A bad `listener` is an error.
        unsafe { libc::accept4(listener, addr, len, flags) }
    };
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    // SAFETY: as above, without flags.
    let fd = unsafe { libc::accept(listener, addr, len) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept returned a new descriptor that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        // Berkeley accept(2) copies O_NONBLOCK from the listener: set it either way.
        set_cloexec(fd)?;
        set_nonblocking(fd, nonblocking)?;
    }
    Ok(owned)
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
