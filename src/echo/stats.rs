//! The echo server's counters, in echo's words. Every counter saturates at
//! `u64::MAX` instead of overflowing.

use std::fmt;

use super::EmptyAccepts;
use crate::server;

/// What the echo server did, returned by [`EchoServer::run`](super::EchoServer::run)
/// after shutdown: the loop's [`server::Stats`](crate::server::Stats) in echo's words. `Display` prints one `name: value` line per counter.
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
    /// Clients closed after [`Config::idle_timeout`](super::Config::idle_timeout)
    /// without a whole message or an echo taken.
    pub closed_idle: u64,
    /// Line mode: lines echoed, a piece of `max_line` bytes of a longer line or an
    /// unterminated last line counting as one. Byte mode: reads echoed. A line counts
    /// once the kernel took its last byte, so echoes a client never read are not
    /// counted.
    pub lines_echoed: u64,
    /// Bytes the kernel took for sending back to clients.
    pub bytes_echoed: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.empty_accepts;
        let rows: [(&str, u64); 17] = [
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
            ("closed_idle", self.closed_idle),
            ("lines_echoed", self.lines_echoed),
            ("bytes_echoed", self.bytes_echoed),
        ];
        for (name, value) in rows {
            writeln!(f, "{name}: {value}")?;
        }
        Ok(())
    }
}

impl From<server::Stats> for Stats {
    fn from(s: server::Stats) -> Stats {
        Stats {
            accepted: s.accepted,
            refused: s.refused,
            empty_accepts: s.empty_accepts,
            out_of_resources: s.out_of_resources,
            shed: s.shed,
            backoffs: s.backoffs,
            closed_eof: s.closed_eof,
            // Echo never closes on its own or panics; were it to, those are resets.
            closed_reset: s
                .closed_reset
                .saturating_add(s.closed_protocol)
                .saturating_add(s.closed_panic),
            closed_policy: s.closed_policy,
            closed_idle: s.closed_idle,
            lines_echoed: s.messages_sent,
            bytes_echoed: s.bytes_sent,
        }
    }
}
