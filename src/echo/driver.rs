//! The readiness mechanism under the loop: select(2) over either set type, or
//! poll(2). The loop says which descriptors interest it and asks which are ready;
//! the driver keeps UNP's `allset`/`rset` (select) or `client[]` of `pollfd`s (poll).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::poll::{poll, PollFd, PollFlags};
use crate::select::FdSetLike;

/// Which entry of the loop's interest a descriptor is.
#[derive(Clone, Copy, Debug)]
pub(super) enum Slot {
    Listener,
    Wake,
    Client(usize),
}

/// What the loop waits for on one descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Interest {
    /// Readable (or EOF, or an error): UNP's `FD_SET(fd, &allset)`.
    Read,
    /// Writable: echoes are waiting for room in the socket's send buffer.
    Write,
    /// Nothing for now (the client has buffered work, or waits out a back-off).
    Nothing,
}

/// The readiness mechanism under the shared loop: select(2) or poll(2).
pub(super) trait Driver {
    /// Sets what the loop waits for on `fd`.
    fn watch(&mut self, slot: Slot, fd: RawFd, interest: Interest) -> io::Result<()>;
    /// Stops watching `fd`: `watch(…, Interest::Nothing)`, which cannot fail (only
    /// adding a descriptor to a set can).
    fn forget(&mut self, slot: Slot, fd: RawFd) {
        let _ = self.watch(slot, fd, Interest::Nothing);
    }
    /// Sleeps until something is ready; returns `nready`.
    fn wait(&mut self, maxi: Option<usize>, timeout: Option<Duration>) -> io::Result<usize>;
    /// Whether the last `wait` reported `fd` ready (for reading, writing or error).
    fn is_ready(&self, slot: Slot, fd: RawFd) -> bool;
}

/// UNP's `allset`/`rset` for select(2), plus the write sets that back-pressure needs.
#[derive(Default)]
pub(super) struct SelectDriver<S> {
    allset: S,
    wallset: S,
    rset: S,
    wset: S,
}

impl<S: FdSetLike> Driver for SelectDriver<S> {
    fn watch(&mut self, _: Slot, fd: RawFd, interest: Interest) -> io::Result<()> {
        match interest {
            Interest::Read => {
                self.allset.insert(fd)?;
                self.wallset.remove(fd);
            }
            Interest::Write => {
                self.wallset.insert(fd)?;
                self.allset.remove(fd);
            }
            Interest::Nothing => {
                self.allset.remove(fd);
                self.wallset.remove(fd);
            }
        }
        Ok(())
    }

    fn wait(&mut self, _: Option<usize>, timeout: Option<Duration>) -> io::Result<usize> {
        // UNP: rset = allset; nready = Select(maxfd + 1, &rset, NULL, NULL, NULL);
        self.rset.clone_from(&self.allset);
        self.wset.clone_from(&self.wallset);
        let wset = (!self.wset.is_empty()).then_some(&mut self.wset);
        S::select(Some(&mut self.rset), wset, None, timeout)
    }

    fn is_ready(&self, _: Slot, fd: RawFd) -> bool {
        self.rset.contains(fd) || self.wset.contains(fd)
    }
}

/// UNP's `struct pollfd client[OPEN_MAX]`: entry 0 is the listener, 1 the wake-up
/// socket, `2 + i` client `i`; a free entry has fd -1, which poll(2) ignores.
pub(super) struct PollDriver {
    client: Vec<PollFd>,
}

impl PollDriver {
    const FIRST_CLIENT: usize = 2;

    const FREE: PollFd = PollFd::new(-1, PollFlags::empty());

    pub(super) fn new() -> PollDriver {
        PollDriver {
            client: vec![Self::FREE; Self::FIRST_CLIENT],
        }
    }

    fn index(slot: Slot) -> usize {
        match slot {
            Slot::Listener => 0,
            Slot::Wake => 1,
            Slot::Client(i) => Self::FIRST_CLIENT + i,
        }
    }
}

impl Driver for PollDriver {
    fn watch(&mut self, slot: Slot, fd: RawFd, interest: Interest) -> io::Result<()> {
        let i = Self::index(slot);
        if i >= self.client.len() {
            self.client.resize(i + 1, Self::FREE);
        }
        self.client[i] = match interest {
            Interest::Read => PollFd::new(fd, PollFlags::POLLRDNORM),
            Interest::Write => PollFd::new(fd, PollFlags::POLLOUT),
            // Not `events = 0`: poll(2) would still report POLLERR and POLLHUP for the
            // fd and end every wait at once. A negative fd is skipped entirely.
            Interest::Nothing => Self::FREE,
        };
        Ok(())
    }

    fn wait(&mut self, maxi: Option<usize>, timeout: Option<Duration>) -> io::Result<usize> {
        // UNP: nready = Poll(client, maxi + 1, INFTIM);
        let used = maxi.map_or(0, |i| i + 1);
        let nfds = (Self::FIRST_CLIENT + used).min(self.client.len());
        poll(&mut self.client[..nfds], timeout)
    }

    fn is_ready(&self, slot: Slot, _: RawFd) -> bool {
        // UNP tests POLLRDNORM | POLLERR; POLLHUP and POLLOUT matter here too.
        let ready = PollFlags::POLLRDNORM
            | PollFlags::POLLIN
            | PollFlags::POLLOUT
            | PollFlags::POLLERR
            | PollFlags::POLLHUP
            | PollFlags::POLLNVAL;
        self.client
            .get(Self::index(slot))
            .is_some_and(|entry| entry.revents().intersects(ready))
    }
}
