//! Descriptors for the integration tests: pipes, high-numbered duplicates, connected
//! TCP pairs on 127.0.0.1, the process's descriptor table (count, numbers, peak) and
//! its `RLIMIT_NOFILE`.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A pipe as `(read end, write end)`.
pub fn pipe() -> (File, File) {
    let (r, w) = cloexec_pipe();
    (File::from(r), File::from(w))
}

/// Writes a byte to `w` after `delay`, on a thread of its own, which gives `w` back.
pub fn write_later(mut w: File, delay: Duration) -> JoinHandle<File> {
    thread::spawn(move || {
        thread::sleep(delay);
        io::Write::write_all(&mut w, b"x").unwrap();
        w
    })
}

/// A close-on-exec pipe, so that a child process another test thread spawns does not
/// keep a read end open (a write then succeeds where the test expects `EPIPE`).
/// Apple has no `pipe2`: there a short window between `pipe` and `exec` remains.
pub fn cloexec_pipe() -> (OwnedFd, OwnedFd) {
    #[cfg(not(target_vendor = "apple"))]
    let pair = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC);
    #[cfg(target_vendor = "apple")]
    let pair = nix::unistd::pipe();
    pair.expect("pipe")
}

/// A close-on-exec duplicate of `fd` numbered `min` or higher (`F_DUPFD_CLOEXEC`).
///
/// Descriptors are allocated lowest free number first, so a test that owns a range of
/// high numbers is not disturbed by the other test threads of its binary.
pub fn dup_at_least(fd: &impl AsRawFd, min: RawFd) -> OwnedFd {
    try_dup_at_least(fd, min)
        .unwrap_or_else(|| panic!("F_DUPFD_CLOEXEC: {}", io::Error::last_os_error()))
}

/// [`dup_at_least`], or `None` if `fcntl` fails (`EINVAL` when `min` is not below
/// `RLIMIT_NOFILE`, `EMFILE`).
pub fn try_dup_at_least(fd: &impl AsRawFd, min: RawFd) -> Option<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an int and returns a new descriptor or -1; `fd`
    // stays open during the call.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if n < min {
        return None;
    }
    // SAFETY: `n` is a new descriptor that nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(n) })
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

// ---- the descriptor table and its limit -----------------------------------------

fn fd_dir() -> &'static str {
    if std::path::Path::new("/proc/self/fd").exists() {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    }
}

/// The descriptors this process has open (the directory handle used to list them is
/// not counted).
pub fn open_fds() -> usize {
    std::fs::read_dir(fd_dir())
        .map(|d| d.count().saturating_sub(1))
        .unwrap_or(0)
}

/// Number of slots in the descriptor table (the kernel's `max_fds`), from `FDSize`
/// in /proc/self/status. The table grows as higher numbers are used, never shrinks.
#[cfg(target_os = "linux")]
pub fn fd_table_size() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("FDSize:"))
        .expect("FDSize in /proc/self/status")
        .trim()
        .parse()
        .unwrap()
}

/// The descriptors a process has open, from `/proc/<pid>/fd` (Linux).
pub fn open_fds_of(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// The descriptor numbers process `pid` has open, from `/proc/<pid>/fd` (Linux).
pub fn fd_numbers_of(pid: u32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut v: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// Waits (bounded) until the process has `want` descriptors open: the server closes
/// a client only after it has seen its EOF or RST. Returns the last count.
pub fn settle_fds(want: usize, limit: Duration) -> usize {
    let start = Instant::now();
    loop {
        let n = open_fds();
        if n == want || start.elapsed() > limit {
            return n;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Samples the open descriptor count every few milliseconds and keeps the peak.
pub struct FdSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl FdSampler {
    pub fn start() -> FdSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicUsize::new(open_fds()));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                p.fetch_max(open_fds(), Ordering::SeqCst);
                thread::sleep(Duration::from_millis(5));
            }
        });
        FdSampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    pub fn peak(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::SeqCst)
    }
}

/// Raises the soft `RLIMIT_NOFILE` to at least `want` (up to the hard limit) and
/// returns the soft limit in force.
pub fn raise_nofile(want: libc::rlim_t) -> libc::rlim_t {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    if soft >= want {
        return soft;
    }
    let new = want.min(hard);
    match setrlimit(Resource::RLIMIT_NOFILE, new, hard) {
        Ok(()) => new,
        Err(_) => soft,
    }
}

/// The first descriptor number client sockets are moved to by [`move_high`].
pub const HIGH_FD: i32 = 4096;

/// Moves a client's socket to a descriptor number at or above [`HIGH_FD`], as if the
/// client lived in another process: then the server's own descriptors (accepted
/// connections) stay low, and the select server's `FD_SETSIZE` limit is reached only
/// where a scenario wants it. Falls back to the original descriptor when the limit is
/// too low for that.
pub fn move_high(stream: TcpStream) -> TcpStream {
    TcpStream::from(move_high_fd(OwnedFd::from(stream)))
}

/// Connects to `addr` with a socket moved to a descriptor number at or above
/// [`HIGH_FD`] before it connects (see [`move_high`]): the client never takes a low descriptor,
/// not even for a moment, so the server's accepted descriptors are predictable.
pub fn connect_high(addr: SocketAddr) -> io::Result<TcpStream> {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6};
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    // Close-on-exec from the start, so that a process another test thread starts
    // meanwhile (a fresh copy of the test binary) cannot inherit it. Apple has no
    // SOCK_CLOEXEC: there the copy made by `move_high_fd` is the first to have it.
    #[cfg(not(target_vendor = "apple"))]
    let flags = SockFlag::SOCK_CLOEXEC;
    #[cfg(target_vendor = "apple")]
    let flags = SockFlag::empty();
    let sock = socket::socket(family, SockType::Stream, flags, None)?;
    let sock = move_high_fd(sock);
    match addr {
        SocketAddr::V4(a) => socket::connect(sock.as_raw_fd(), &SockaddrIn::from(a))?,
        SocketAddr::V6(a) => socket::connect(sock.as_raw_fd(), &SockaddrIn6::from(a))?,
    }
    let s = TcpStream::from(sock);
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

fn move_high_fd(fd: OwnedFd) -> OwnedFd {
    try_dup_at_least(&fd, HIGH_FD).unwrap_or(fd)
}

/// The numbers of the descriptors this process has open.
pub fn fd_numbers() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir(fd_dir()) else {
        return Vec::new();
    };
    let mut v: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    // The last one opened is the directory handle itself; drop whichever entry no
    // longer exists.
    v.retain(|&fd| {
        // SAFETY: F_GETFD only queries the descriptor flags.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        flags != -1
    });
    v
}
