//! Every platform difference of the crate, in one place.
//!
//! The rest of the crate calls these items and never writes `cfg(target_os)` itself.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// `FD_SETSIZE` of the platform's C library: the number of bits in one `fd_set`.
#[allow(clippy::unnecessary_cast)]
pub(crate) const FD_SETSIZE: usize = libc::FD_SETSIZE as usize;

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

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD take and return plain ints; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets or clears `O_NONBLOCK` on `fd`.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub(crate) fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL take and return plain ints; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags == -1 {
        return Err(io::Error::last_os_error());
    }
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, new) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
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

// ---- select/poll additions -------------------------------------------------------------

/// One word of an `fd_set` bitmap, as the C library declares it (`__fd_mask`/`fd_mask`).
///
/// Every supported platform stores descriptor `fd` in word `fd / FdWord::BITS`, bit
/// `fd % FdWord::BITS`, so only the word **width** differs: it matters on big-endian
/// machines, where a byte view of the set would put the bits elsewhere.
/// glibc/musl/Android/FreeBSD: `unsigned long` (`long` in glibc; same width);
/// Apple: `__int32_t`; OpenBSD/NetBSD: `uint32_t`.
#[cfg(any(target_vendor = "apple", target_os = "openbsd", target_os = "netbsd"))]
pub(crate) type FdWord = u32;
/// One word of an `fd_set` bitmap (see the Apple/OpenBSD/NetBSD version).
#[cfg(not(any(target_vendor = "apple", target_os = "openbsd", target_os = "netbsd")))]
pub(crate) type FdWord = libc::c_ulong;

/// Number of [`FdWord`]s in one `fd_set`.
pub(crate) const FD_SET_WORDS: usize = FD_SETSIZE / FdWord::BITS as usize;

// The fd_set layout the select module relies on, checked at compile time: the struct is
// exactly FD_SETSIZE bits made of whole `FdWord`s and is at least as aligned as a word,
// so it may be viewed as `[FdWord; FD_SET_WORDS]`. A platform where this is false fails
// to compile instead of corrupting memory.
const _: () = {
    assert!(FD_SETSIZE % FdWord::BITS as usize == 0);
    assert!(std::mem::size_of::<libc::fd_set>() == FD_SET_WORDS * std::mem::size_of::<FdWord>());
    assert!(std::mem::align_of::<libc::fd_set>() >= std::mem::align_of::<FdWord>());
};

/// `select(2)` without a limit on `nfds`, for bitmaps longer than an `fd_set`.
///
/// Linux and FreeBSD read `ceil(nfds / FdWord::BITS)` words from each non-null set and
/// accept any `nfds`. Apple's default `select` symbol is the UNIX-conformant one, which
/// fails with `EINVAL` when `nfds > FD_SETSIZE`; the `select$DARWIN_EXTSN` variant
/// (what C gets with `_DARWIN_UNLIMITED_SELECT`) lifts the limit.
///
/// # Safety
///
/// Each non-null set pointer must point to at least `ceil(nfds / FdWord::BITS)` words
/// that are valid for reads and writes; `timeout` must be null or valid for reads and
/// writes.
pub(crate) unsafe fn select_unlimited(
    nfds: libc::c_int,
    read: *mut FdWord,
    write: *mut FdWord,
    except: *mut FdWord,
    timeout: *mut libc::timeval,
) -> libc::c_int {
    #[cfg(target_vendor = "apple")]
    {
        extern "C" {
            #[link_name = "select$DARWIN_EXTSN"]
            fn select_darwin_extsn(
                nfds: libc::c_int,
                read: *mut libc::fd_set,
                write: *mut libc::fd_set,
                except: *mut libc::fd_set,
                timeout: *mut libc::timeval,
            ) -> libc::c_int;
        }
        // SAFETY: forwarded from the caller's contract; the function only accesses the
        // first ceil(nfds / 32) words of each set.
        unsafe { select_darwin_extsn(nfds, read.cast(), write.cast(), except.cast(), timeout) }
    }
    #[cfg(not(target_vendor = "apple"))]
    // SAFETY: forwarded from the caller's contract; the kernel accesses only the first
    // ceil(nfds / FdWord::BITS) words of each set.
    unsafe {
        libc::select(nfds, read.cast(), write.cast(), except.cast(), timeout)
    }
}

// ---- writen: SIGPIPE of writes to non-sockets ------------------------------------------

/// Makes writes to the non-socket `fd` fail with `EPIPE` without raising `SIGPIPE`, where
/// the platform has a per-descriptor switch for it; returns whether it did.
///
/// Apple: `fcntl(F_SETNOSIGPIPE)`. XNU sends the `SIGPIPE` of a failed pipe write to the
/// *process* (`psignal` in `dofilewrite`), and a process-directed signal goes to any
/// thread that does not block it, so blocking it in the writing thread would not help.
/// The flag is kept by the open file description, so it stays set after the call and
/// every descriptor sharing that description (duplicates, other processes) sees it.
#[cfg(target_vendor = "apple")]
pub(crate) fn set_nosigpipe_nonsocket(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_SETNOSIGPIPE takes an int argument; no memory is passed. A bad `fd` is an
    // error (EBADF), not UB.
    if unsafe { libc::fcntl(fd, libc::F_SETNOSIGPIPE, 1) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(true)
}
/// See the Apple version: elsewhere there is no such switch, and this returns `false`.
#[cfg(not(target_vendor = "apple"))]
pub(crate) fn set_nosigpipe_nonsocket(_fd: RawFd) -> io::Result<bool> {
    Ok(false)
}

/// Whether a `SIGPIPE` sent to a thread that already has one pending is kept as a signal
/// of its own instead of merging into the pending one.
///
/// FreeBSD queues a `ksiginfo` for every signal sent, standard ones included
/// (`tdsendsignal` → `sigqueue_add`), and `sigtimedwait` takes one at a time. Linux keeps
/// at most one pending instance of a standard signal per pending set (`legacy_queue`),
/// which is what POSIX allows; other systems are assumed to do the same.
pub(crate) const SIGPIPE_QUEUES: bool = cfg!(target_os = "freebsd");

/// Whether `SIGPIPE` is in the calling thread's pending set (`sigpending(2)`: the
/// signals pending for the thread and for the process, together).
pub(crate) fn sigpipe_pending() -> io::Result<bool> {
    let mut pending = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigpending writes a full sigset_t to the pointer it is given.
    if unsafe { libc::sigpending(pending.as_mut_ptr()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sigpending succeeded, so `pending` is initialized; sigismember only reads it.
    Ok(unsafe { libc::sigismember(pending.as_ptr(), libc::SIGPIPE) } == 1)
}

/// Whether `SIGPIPE` is pending for the calling thread itself (sent to this thread, as
/// the kernel sends that of a failed write), apart from one pending for the process;
/// `None` when the platform cannot tell.
///
/// Linux and Android: bit `SIGPIPE - 1` of the `SigPnd` line of
/// `/proc/thread-self/status` (the process's set is `ShdPnd`; `sigpending(2)` returns
/// both together). `None` without `/proc`. Reads into a stack buffer.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn sigpipe_pending_for_thread() -> Option<bool> {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;

    // /proc/thread-self exists since Linux 3.17; older kernels have /proc/self/task/TID.
    let mut file = std::fs::File::open("/proc/thread-self/status")
        .or_else(|_| {
            // SAFETY: gettid takes no arguments and cannot fail.
            let tid = unsafe { libc::syscall(libc::SYS_gettid) };
            let mut path = [0u8; 64];
            let len = {
                let mut w = &mut path[..];
                std::io::Write::write_fmt(&mut w, format_args!("/proc/self/task/{tid}/status"))?;
                64 - w.len()
            };
            let path = std::ffi::OsStr::from_bytes(&path[..len]);
            std::fs::File::open(path)
        })
        .ok()?;
    let mut scan = StatusLine::new(b"SigPnd:");
    let mut buf = [0u8; 512];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        for &b in &buf[..n] {
            if let Some(mask) = scan.push(b) {
                return Some(mask? & (1 << (libc::SIGPIPE - 1)) != 0);
            }
        }
    }
}
/// See the Linux version: not implemented elsewhere (FreeBSD, the one other platform
/// that takes a pending `SIGPIPE`, needs no answer: see [`SIGPIPE_QUEUES`]).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn sigpipe_pending_for_thread() -> Option<bool> {
    None
}

/// Finds the line `KEY<blanks><hex>` in a `/proc` status file fed one byte at a time and
/// parses its hexadecimal value (the low 64 bits of a longer one).
#[cfg(any(target_os = "linux", target_os = "android", test))]
struct StatusLine {
    key: &'static [u8],
    /// Bytes of `key` matched at the start of the current line; `None` once it failed.
    matched: Option<usize>,
    value: u64,
    digits: usize,
}

#[cfg(any(target_os = "linux", target_os = "android", test))]
impl StatusLine {
    fn new(key: &'static [u8]) -> Self {
        StatusLine {
            key,
            matched: Some(0),
            value: 0,
            digits: 0,
        }
    }

    /// Feeds one byte; `Some` at the end of the key's line: its value, or `None` if the
    /// line is malformed.
    fn push(&mut self, b: u8) -> Option<Option<u64>> {
        let in_value = self.matched == Some(self.key.len());
        if b == b'\n' {
            if in_value {
                return Some((self.digits > 0).then_some(self.value));
            }
            self.matched = Some(0);
            return None;
        }
        match self.matched {
            Some(_) if in_value => match (b as char).to_digit(16) {
                // Shifting out the high digits keeps the low 64 bits.
                Some(d) => {
                    self.value = (self.value << 4) | u64::from(d);
                    self.digits += 1;
                }
                None if b == b' ' || b == b'\t' => {}
                None => return Some(None),
            },
            Some(i) if self.key[i] == b => self.matched = Some(i + 1),
            _ => self.matched = None,
        }
        None
    }
}

/// Takes one pending `SIGPIPE` of the calling thread (which blocks `SIGPIPE`) off its
/// pending set without waiting; returns whether there was one.
///
/// Linux, Android, FreeBSD: `sigtimedwait(2)` with a zero timeout, which takes a signal
/// pending for the thread before one pending for the process (Linux `dequeue_signal`,
/// FreeBSD `kern_sigtimedwait`).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub(crate) fn take_pending_sigpipe() -> io::Result<bool> {
    use nix::sys::signal::{SigSet, Signal};

    let set = SigSet::from(Signal::SIGPIPE);
    // SAFETY: timespec is plain integers (and padding on some targets); all zero is a
    // valid zero timeout.
    let zero: libc::timespec = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `set` is an initialized sigset_t and `zero` a live timespec; a null
        // siginfo pointer is allowed.
        let rc = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &zero) };
        if rc != -1 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) => return Ok(false),
            Some(libc::EINTR) => {}
            _ => return Err(e),
        }
    }
}
/// See the Linux version. Elsewhere (no `sigtimedwait` on Apple and OpenBSD):
/// `sigwait(2)`, called only when `sigpending(2)` shows `SIGPIPE`, so it returns at once;
/// which one it takes when one is pending for the thread and one for the process is not
/// known.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub(crate) fn take_pending_sigpipe() -> io::Result<bool> {
    use nix::sys::signal::{SigSet, Signal};

    if !sigpipe_pending()? {
        return Ok(false);
    }
    SigSet::from(Signal::SIGPIPE).wait()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::StatusLine;

    fn scan(text: &str, key: &'static [u8]) -> Option<Option<u64>> {
        let mut s = StatusLine::new(key);
        text.bytes().find_map(|b| s.push(b))
    }

    #[test]
    fn status_line_finds_the_key_line_only() {
        let text = "Name:\tx\nShdPnd:\t0000000000001000\nSigPnd:\t0000000000000800\nSigBlk:\t1\n";
        assert_eq!(scan(text, b"SigPnd:"), Some(Some(0x800)));
        assert_eq!(scan(text, b"ShdPnd:"), Some(Some(0x1000)));
        // A key that only starts a longer one, or sits inside a line, is no match.
        assert_eq!(scan("XSigPnd:\t1\nSigPndX:\t2\n", b"SigPnd:"), None);
        // 128-bit masks (MIPS): the low 64 bits.
        let wide = "SigPnd:\t00000000000000010000000000001000\n";
        assert_eq!(scan(wide, b"SigPnd:"), Some(Some(0x1000)));
        assert_eq!(scan("SigPnd:\tzz\n", b"SigPnd:"), Some(None));
        assert_eq!(scan("SigPnd:\t\n", b"SigPnd:"), Some(None));
        assert_eq!(scan("SigPnd:\t0", b"SigPnd:"), None);
    }
}
