//! Connections the server opens (UNP 16.3's nonblocking `connect`) or adopts: how a
//! failed connect is sorted for the protocol.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::conn::{Ending, Stage};
use super::protocol::ConnId;
use super::table::Table;
use crate::sources::Interest;

impl Table {
    /// Starts a nonblocking connect to `addr` in a new entry of `client[]`; the loop
    /// watches it (see `dialed`) once the protocol's call returns.
    pub(super) fn dial(&mut self, addr: SocketAddr) -> Result<ConnId, ConnectError> {
        let (fd, at_once) = crate::sys::connect_nonblocking(&addr)?;
        crate::sys::prepare_nosigpipe(fd.as_raw_fd())?;
        let stage = if at_once {
            Stage::Made
        } else {
            Stage::Connecting
        };
        self.take_in(fd, stage, true).ok_or_else(full)
    }

    /// Takes in a connected stream made elsewhere, nonblocking from now on.
    pub(super) fn adopt(&mut self, fd: OwnedFd) -> io::Result<ConnId> {
        crate::sys::set_nonblocking(fd.as_fd(), true)?;
        crate::sys::prepare_nosigpipe(fd.as_raw_fd())?;
        self.take_in(fd, Stage::Made, false)
            .ok_or_else(|| io::Error::other("max_clients connections are open"))
    }

    /// Watches `fd` for `interest` for the protocol (see [`Stage::Watched`]): it
    /// takes no output and no input of the loop's.
    pub(super) fn watch(&mut self, fd: OwnedFd, interest: Interest) -> io::Result<ConnId> {
        let id = self
            .take_in(fd, Stage::Watched, false)
            .ok_or_else(|| io::Error::other("max_clients connections are open"))?;
        let conn = self.client[id.index()].as_mut().expect("just taken in");
        conn.interest = interest;
        conn.ending = Ending::ShutdownWrite; // no output: send_to and broadcast skip it
        conn.fin_sent = true;
        Ok(id)
    }

    fn take_in(&mut self, fd: OwnedFd, stage: Stage, outgoing: bool) -> Option<ConnId> {
        let (i, id) = self.insert(fd).ok()?;
        let conn = self.client[i].as_mut()?;
        conn.stage = stage;
        if outgoing {
            conn.link_mut().outgoing = true;
        }
        self.dialed.push(i);
        Some(id)
    }
}

/// No entry left: `max_clients` connections are open.
fn full() -> ConnectError {
    ConnectError::OutOfResources(io::Error::other("max_clients connections are open"))
}

/// Why a connection the protocol opened ([`Context::connect`](super::Context::connect))
/// was not established, sorted by what the caller can do about it, as
/// [`Accept`](crate::Accept) sorts `accept`'s errors. Each keeps the
/// [`io::Error`] with its errno ([`error`](Self::error)).
///
/// # Examples
/// ```
/// use std::io;
/// use unp_select::server::ConnectError;
/// let refused = ConnectError::from(io::Error::from_raw_os_error(libc::ECONNREFUSED));
/// assert!(matches!(refused, ConnectError::Refused(_)));
/// assert_eq!(refused.error().raw_os_error(), Some(libc::ECONNREFUSED));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// `ECONNREFUSED`: nothing listens at that address.
    Refused(io::Error),
    /// [`Config::connect_timeout`](super::Config::connect_timeout) passed (an error
    /// of kind `TimedOut` without an errno), or `ETIMEDOUT` from the kernel.
    TimedOut(io::Error),
    /// No way there: `ENETUNREACH`, `EHOSTUNREACH`, `ENETDOWN`, `EHOSTDOWN`.
    Unreachable(io::Error),
    /// The handshake was reset or aborted: `ECONNRESET`, `ECONNABORTED`.
    Reset(io::Error),
    /// Out of descriptors, memory, local ports or connection slots: `EMFILE`,
    /// `ENFILE`, `ENOBUFS`, `ENOMEM`, `EADDRNOTAVAIL`, `EAGAIN` (Linux: no local
    /// port left), or [`Config::max_clients`](super::Config::max_clients)
    /// connections open already (kind `Other`, no errno). Trying later may work.
    OutOfResources(io::Error),
    /// Anything else (`EACCES`, `EPERM`, `EAFNOSUPPORT`, `EINVAL`, …).
    Other(io::Error),
}

impl ConnectError {
    /// The error, with its errno where the kernel gave one.
    ///
    /// # Examples
    /// See [`ConnectError`]'s example, and
    /// [`Protocol::connect_failed`](super::Protocol::connect_failed)'s: the errno of
    /// a real connect refused.
    pub fn error(&self) -> &io::Error {
        match self {
            ConnectError::Refused(e)
            | ConnectError::TimedOut(e)
            | ConnectError::Unreachable(e)
            | ConnectError::Reset(e)
            | ConnectError::OutOfResources(e)
            | ConnectError::Other(e) => e,
        }
    }
}

impl From<io::Error> for ConnectError {
    /// Sorts an error of `connect(2)` or of the socket's `SO_ERROR` by its errno.
    fn from(e: io::Error) -> ConnectError {
        #[allow(unreachable_patterns)] // EAGAIN and EWOULDBLOCK are one on Linux
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED) => ConnectError::Refused(e),
            Some(libc::ETIMEDOUT) => ConnectError::TimedOut(e),
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENETDOWN | libc::EHOSTDOWN) => {
                ConnectError::Unreachable(e)
            }
            Some(libc::ECONNRESET | libc::ECONNABORTED) => ConnectError::Reset(e),
            Some(
                libc::EMFILE
                | libc::ENFILE
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::EADDRNOTAVAIL
                | libc::EAGAIN,
            ) => ConnectError::OutOfResources(e),
            None if e.kind() == io::ErrorKind::TimedOut => ConnectError::TimedOut(e),
            _ => ConnectError::Other(e),
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            ConnectError::Refused(_) => "connection refused",
            ConnectError::TimedOut(_) => "connect timed out",
            ConnectError::Unreachable(_) => "no route",
            ConnectError::Reset(_) => "reset during the handshake",
            ConnectError::OutOfResources(_) => "out of resources",
            ConnectError::Other(_) => "connect failed",
        };
        write!(f, "{what}: {}", self.error())
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_sorted_by_what_they_mean() {
        let sort = |errno| ConnectError::from(io::Error::from_raw_os_error(errno));
        assert!(matches!(sort(libc::ECONNREFUSED), ConnectError::Refused(_)));
        assert!(matches!(sort(libc::ETIMEDOUT), ConnectError::TimedOut(_)));
        assert!(matches!(
            sort(libc::EHOSTUNREACH),
            ConnectError::Unreachable(_)
        ));
        assert!(matches!(sort(libc::ECONNRESET), ConnectError::Reset(_)));
        assert!(matches!(
            sort(libc::EMFILE),
            ConnectError::OutOfResources(_)
        ));
        assert!(matches!(sort(libc::EACCES), ConnectError::Other(_)));
        let late = ConnectError::from(io::Error::new(io::ErrorKind::TimedOut, "late"));
        assert!(matches!(late, ConnectError::TimedOut(_)));
        assert!(sort(libc::ECONNREFUSED)
            .to_string()
            .starts_with("connection refused"));
    }
}
