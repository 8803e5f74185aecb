//! [`Waker`]: the self-pipe trick, as a source like any other.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

/// Wakes a [`Sources::wait`](super::Sources::wait) from another thread or from a
/// signal handler: the self-pipe trick (UNP 20.5 uses it for signals and `select`).
///
/// Register the waker for reading like any other source
/// (`sources.register(key, &waker, Interest::READ)`); [`wake`](Waker::wake) makes
/// it readable, and the loop calls [`reset`](Waker::reset) when it sees its key.
/// Share it between threads with an `Arc` (it is `Send + Sync`), or keep it in a
/// `static` (a `OnceLock`) for a signal handler.
///
/// It is a nonblocking, close-on-exec Unix socket pair: one byte is written per
/// `wake` until one is waiting, which is all a wait needs; more wakes before the
/// loop looks find the socket full enough and return at once.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use unp_select::sources::{Backend, Events, Interest, Sources, Waker};
///
/// let waker = Arc::new(Waker::new()?);
/// let mut sources = Sources::new(Backend::Select);
/// sources.register("waker", &*waker, Interest::READ)?;
///
/// let remote = Arc::clone(&waker);
/// let thread = std::thread::spawn(move || remote.wake());
/// let mut events = Events::new();
/// sources.wait(&mut events, None)?; // no timeout: only the wake ends it
/// assert_eq!(events.iter().next().map(|(k, _)| *k), Some("waker"));
/// waker.reset()?;
/// thread.join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Waker {
    rx: UnixStream,
    tx: UnixStream,
}

impl Waker {
    /// A new waker: a socket pair, both ends nonblocking and close-on-exec.
    ///
    /// # Errors
    /// Those of `socketpair(2)` (`EMFILE`, `ENFILE`, `ENOMEM`) and of setting
    /// `O_NONBLOCK`.
    ///
    /// # Examples
    /// See [`Waker`]'s example: a wake from another thread.
    pub fn new() -> io::Result<Waker> {
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        Ok(Waker { rx, tx })
    }

    /// Makes the waker readable, so a wait that watches it returns.
    ///
    /// Async-signal-safe: one `send(2)`, no allocation, no lock, and the caller's
    /// `errno` is restored before it returns, so a signal handler may call it.
    ///
    /// # Errors
    /// None in practice: a socket already full of wake-ups (`EAGAIN`) is a success,
    /// since the loop will wake anyway. Any other error of `send(2)` is returned
    /// (built without allocating).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use unp_select::sources::{Backend, Events, Interest, Sources, Waker};
    /// let waker = Waker::new()?;
    /// let mut sources = Sources::new(Backend::Poll);
    /// sources.register((), &waker, Interest::READ)?;
    /// for _ in 0..100_000 {
    ///     waker.wake()?; // never blocks, never fails when the socket is full
    /// }
    /// let mut events = Events::new();
    /// assert_eq!(sources.wait(&mut events, Some(Duration::ZERO))?, 1);
    /// waker.reset()?;
    /// assert_eq!(sources.wait(&mut events, Some(Duration::ZERO))?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wake(&self) -> io::Result<()> {
        #[allow(unreachable_patterns)]
        match crate::sys::wake(self.tx.as_fd()) {
            0 | libc::EAGAIN | libc::EWOULDBLOCK => Ok(()),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }

    /// [`wake`](Self::wake) that says whether its byte was written: `false` after
    /// `EAGAIN` too (a full socket is readable already, so a wait will return; but
    /// a caller that must be sure retries).
    pub(crate) fn wake_written(&self) -> bool {
        crate::sys::wake(self.tx.as_fd()) == 0
    }

    /// Reads every pending wake-up, so the waker is no longer readable. Call it when
    /// a wait reports the waker, before acting on what the wake-up was for.
    ///
    /// # Errors
    /// Those of `recv(2)` other than `EAGAIN` (which means "all read").
    ///
    /// # Examples
    /// See [`wake`](Self::wake)'s example: after 100,000 wakes, one `reset` and the
    /// waker is no longer readable.
    pub fn reset(&self) -> io::Result<()> {
        reset(&self.rx)
    }
}

/// Reads `rx` until it would block.
pub(crate) fn reset(mut rx: &UnixStream) -> io::Result<()> {
    let mut buf = [0u8; 64];
    loop {
        match rx.read(&mut buf) {
            Ok(0) => return Ok(()), // cannot happen: the waker holds the other end
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The end a wait watches.
impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }
}
