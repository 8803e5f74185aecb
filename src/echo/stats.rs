//! What the server counted. Every counter saturates at `u64::MAX` instead of
//! overflowing.

use std::fmt;
use std::io;

/// Accepts that found nothing to accept, by errno (see
/// [`Accept::NotNow`](crate::Accept::NotNow)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmptyAccepts {
    /// `EAGAIN`/`EWOULDBLOCK`: the queue was empty (someone else took the connection,
    /// or a Berkeley kernel dropped a reset one).
    pub would_block: u64,
    /// `ECONNABORTED`: the connection was aborted before `accept` (POSIX, BSD).
    pub aborted: u64,
    /// `EPROTO`: protocol error on the new connection (SVR4, Linux).
    pub protocol: u64,
    /// `EINTR`: a signal arrived during `accept`.
    pub interrupted: u64,
    /// Any other transient error: `ECONNRESET`, `ETIMEDOUT`, `EPERM` and the
    /// network errors Linux passes up from `accept` (`ENETDOWN`, `ENOSR`, …).
    pub other: u64,
}

impl EmptyAccepts {
    /// All empty accepts together (saturating at `u64::MAX`).
    ///
    /// # Examples
    /// ```
    /// let mut e = unp_select::echo::EmptyAccepts::default();
    /// (e.would_block, e.aborted) = (2, 1);
    /// assert_eq!(e.total(), 3);
    /// (e.would_block, e.other) = (u64::MAX, 1);
    /// assert_eq!(e.total(), u64::MAX);
    /// ```
    pub fn total(&self) -> u64 {
        [
            self.would_block,
            self.aborted,
            self.protocol,
            self.interrupted,
            self.other,
        ]
        .into_iter()
        .fold(0, u64::saturating_add)
    }

    pub(super) fn count(&mut self, e: &io::Error) {
        #[allow(unreachable_patterns)]
        let counter = match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EWOULDBLOCK) => &mut self.would_block,
            Some(libc::ECONNABORTED) => &mut self.aborted,
            Some(libc::EPROTO) => &mut self.protocol,
            Some(libc::EINTR) => &mut self.interrupted,
            _ => &mut self.other,
        };
        bump(counter);
    }
}

/// What a server did, returned by [`EchoServer::run`](super::EchoServer::run) after
/// shutdown. `Display` prints one `name: value` line per counter.
///
/// # Examples
/// ```
/// let mut stats = unp_select::echo::Stats::default();
/// stats.accepted = 2;
/// assert!(stats.to_string().lines().any(|l| l == "accepted: 2"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections accepted and served.
    pub accepted: u64,
    /// Connections accepted and refused at once (too many clients, or a descriptor
    /// that does not fit an `fd_set`).
    pub refused: u64,
    /// `accept` calls that found nothing to accept, by errno.
    pub empty_accepts: EmptyAccepts,
    /// `accept` calls that failed with `EMFILE`, `ENFILE`, `ENOBUFS` or `ENOMEM`.
    pub out_of_resources: u64,
    /// Connections taken off the queue and reset with the reserve descriptor after
    /// running out of descriptors.
    pub shed: u64,
    /// Times the loop or one client waited [`RESOURCE_BACKOFF`](super::RESOURCE_BACKOFF)
    /// because the kernel was out of memory (`select`/`poll` `ENOMEM`, `recv`/`send`
    /// `ENOMEM`/`ENOBUFS`); nothing is lost.
    pub backoffs: u64,
    /// Clients closed after they closed (EOF) and got every echo.
    pub closed_eof: u64,
    /// Clients closed after a read or write error (`ECONNRESET`, `EPIPE`, …).
    pub closed_reset: u64,
    /// Clients closed by the server's policy: echoes not read within
    /// [`Config::write_timeout`](super::Config::write_timeout).
    pub closed_policy: u64,
    /// Line mode: lines echoed, a piece of `max_line` bytes of a longer line or an
    /// unterminated last line counting as one. Byte mode: reads echoed.
    pub lines_echoed: u64,
    /// Bytes the kernel took for sending back to clients.
    pub bytes_echoed: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.empty_accepts;
        let rows: [(&str, u64); 16] = [
            ("accepted", self.accepted),
            ("refused", self.refused),
            ("empty_accepts", e.total()),
            ("empty_accepts.would_block", e.would_block),
            ("empty_accepts.aborted", e.aborted),
            ("empty_accepts.protocol", e.protocol),
            ("empty_accepts.interrupted", e.interrupted),
            ("empty_accepts.other", e.other),
            ("out_of_resources", self.out_of_resources),
            ("shed", self.shed),
            ("backoffs", self.backoffs),
            ("closed_eof", self.closed_eof),
            ("closed_reset", self.closed_reset),
            ("closed_policy", self.closed_policy),
            ("lines_echoed", self.lines_echoed),
            ("bytes_echoed", self.bytes_echoed),
        ];
        for (name, value) in rows {
            writeln!(f, "{name}: {value}")?;
        }
        Ok(())
    }
}

/// Adds one, saturating.
pub(super) fn bump(counter: &mut u64) {
    add(counter, 1);
}

/// Adds `n`, saturating.
pub(super) fn add(counter: &mut u64, n: u64) {
    *counter = counter.saturating_add(n);
}
