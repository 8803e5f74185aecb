//! The waits under [`Sources`](super::Sources): UNP's `allset`/`rset` for
//! select(2) over either set type, a dense `pollfd` array for poll(2), and the
//! kernel's own interest list for epoll(7) and kqueue(2) (in `queue`).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::queue::Queue;
use super::{lookup, Backend, Entry, Events, Interest, Readiness};
use crate::poll::{poll, PollFd, PollFlags};
use crate::select::{FdSet, FdSetLike, LargeFdSet};
use crate::sys;

// One `Sources` per loop, made once: four inline `fd_set`s (512 bytes) cost nothing,
// and keep the sets next to the rest of the loop's state instead of behind a pointer.
#[allow(clippy::large_enum_variant)]
pub(super) enum Imp {
    Select(SelectSets<FdSet>),
    LargeSelect(SelectSets<LargeFdSet>),
    Poll(PollArray),
    Epoll(Queue<sys::Epoll>),
    Kqueue(Queue<sys::Kqueue>),
}

impl Imp {
    pub(super) fn new(backend: Backend) -> Imp {
        match backend {
            Backend::Select => Imp::Select(SelectSets::default()),
            Backend::LargeSelect => Imp::LargeSelect(SelectSets::default()),
            Backend::Poll => Imp::Poll(PollArray::default()),
            Backend::Epoll => Imp::Epoll(Queue::new()),
            Backend::Kqueue => Imp::Kqueue(Queue::new()),
        }
    }

    /// Makes what the backend needs from the kernel now, not at the first
    /// registration (epoll and kqueue: their descriptor).
    pub(super) fn open(&mut self) -> io::Result<()> {
        match self {
            Imp::Select(_) | Imp::LargeSelect(_) | Imp::Poll(_) => Ok(()),
            Imp::Epoll(q) => q.open(),
            Imp::Kqueue(q) => q.open(),
        }
    }

    pub(super) fn backend(&self) -> Backend {
        match self {
            Imp::Select(_) => Backend::Select,
            Imp::LargeSelect(_) => Backend::LargeSelect,
            Imp::Poll(_) => Backend::Poll,
            Imp::Epoll(_) => Backend::Epoll,
            Imp::Kqueue(_) => Backend::Kqueue,
        }
    }

    /// Starts watching `fd`; returns its slot (poll: its index in the array; epoll
    /// and kqueue: in their registrations). `checked`: epoll checks each event
    /// against the file `fd` named (see `Queue`).
    pub(super) fn add(
        &mut self,
        fd: RawFd,
        interest: Interest,
        checked: bool,
    ) -> io::Result<usize> {
        match self {
            Imp::Select(s) => s
                .add(fd, interest)
                .map_err(|e| beyond(Backend::Select, fd, e)),
            Imp::LargeSelect(s) => s
                .add(fd, interest)
                .map_err(|e| beyond(Backend::LargeSelect, fd, e)),
            Imp::Poll(p) => Ok(p.add(fd, interest)),
            Imp::Epoll(q) => q.add(fd, interest, checked),
            Imp::Kqueue(q) => q.add(fd, interest, checked),
        }
    }

    /// Watches `fd` for `interest` instead. Only epoll and kqueue can fail (the
    /// kernel's memory or limits when a source watched for nothing is watched
    /// again).
    pub(super) fn modify(&mut self, fd: RawFd, slot: usize, interest: Interest) -> io::Result<()> {
        match self {
            Imp::Select(s) => s.modify(fd, interest),
            Imp::LargeSelect(s) => s.modify(fd, interest),
            Imp::Poll(p) => p.modify(fd, slot, interest),
            Imp::Epoll(q) => return q.modify(slot, interest),
            Imp::Kqueue(q) => return q.modify(slot, interest),
        }
        Ok(())
    }

    /// Stops watching `fd`. Poll, epoll and kqueue move their last entry into the
    /// hole: returns that entry's descriptor, whose slot is now `slot`.
    pub(super) fn remove(&mut self, fd: RawFd, slot: usize) -> Option<RawFd> {
        match self {
            Imp::Select(s) => {
                s.modify(fd, Interest::NONE);
                None
            }
            Imp::LargeSelect(s) => {
                s.modify(fd, Interest::NONE);
                None
            }
            Imp::Poll(p) => p.remove(slot),
            Imp::Epoll(q) => q.remove(slot),
            Imp::Kqueue(q) => q.remove(slot),
        }
    }

    /// One wait: ready sources go into `events` under the key their descriptor's
    /// entry holds; descriptors found invalid go into `invalid` as well.
    pub(super) fn wait<K: Clone>(
        &mut self,
        timeout: Option<Duration>,
        events: &mut Events<K>,
        entries: &[Option<Entry<K>>],
        invalid: &mut Vec<RawFd>,
    ) -> io::Result<()> {
        let key_of = |fd: RawFd| lookup(entries, fd).map(|e| e.key.clone());
        match self {
            Imp::Select(s) => s.wait(timeout, events, key_of, invalid),
            Imp::LargeSelect(s) => s.wait(timeout, events, key_of, invalid),
            Imp::Poll(p) => p.wait(timeout, events, key_of, invalid),
            Imp::Epoll(q) => q.wait(timeout, events, entries, invalid),
            Imp::Kqueue(q) => q.wait(timeout, events, entries, invalid),
        }
    }
}

/// The error for a descriptor a select backend's set cannot hold (`e`, from the
/// set's `insert`): the set's own message advises `LargeFdSet` or poll(), where a
/// caller of [`Sources`](super::Sources) wants the backends that take it.
#[cold]
fn beyond(backend: Backend, fd: RawFd, e: io::Error) -> io::Error {
    if e.kind() != io::ErrorKind::InvalidInput {
        return e;
    }
    let queue = if Backend::Epoll.is_supported() {
        Some("Backend::Epoll")
    } else if Backend::Kqueue.is_supported() {
        Some("Backend::Kqueue")
    } else {
        None
    };
    let (limit, mut can) = match backend {
        Backend::Select => (
            format!("is not below FD_SETSIZE ({})", crate::select::FD_SETSIZE),
            vec!["Backend::LargeSelect", "Backend::Poll"],
        ),
        _ => (
            format!("is above LargeFdSet::MAX_FD ({})", LargeFdSet::MAX_FD),
            vec!["Backend::Poll"],
        ),
    };
    can.extend(queue);
    let last = can.pop().unwrap_or("Backend::Poll");
    let can = if can.is_empty() {
        last.to_string()
    } else {
        format!("{} or {last}", can.join(", "))
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("descriptor {fd} {limit}, more than Backend::{backend:?} can watch: use {can}"),
    )
}

/// UNP's `allset` (and its write twin) and the `rset`/`wset` each select fills in.
#[derive(Default)]
pub(super) struct SelectSets<S> {
    allset: S,
    wallset: S,
    rset: S,
    wset: S,
}

impl<S: FdSetLike> SelectSets<S> {
    fn add(&mut self, fd: RawFd, interest: Interest) -> io::Result<usize> {
        // Whatever the interest, a descriptor the set cannot hold is refused now,
        // not at the first set_interest.
        self.allset.insert(fd)?;
        self.modify(fd, interest);
        Ok(0)
    }

    fn modify(&mut self, fd: RawFd, interest: Interest) {
        // Inserting cannot fail: `add` checked that the set holds `fd`.
        if interest.is_readable() {
            let _ = self.allset.insert(fd);
        } else {
            self.allset.remove(fd);
        }
        if interest.is_writable() {
            let _ = self.wallset.insert(fd);
        } else {
            self.wallset.remove(fd);
        }
    }

    fn wait<K>(
        &mut self,
        timeout: Option<Duration>,
        events: &mut Events<K>,
        key_of: impl Fn(RawFd) -> Option<K>,
        invalid: &mut Vec<RawFd>,
    ) -> io::Result<()> {
        // UNP: rset = allset; nready = Select(maxfd + 1, &rset, NULL, NULL, NULL);
        self.rset.clone_from(&self.allset);
        self.wset.clone_from(&self.wallset);
        let watching_writes = !self.wallset.is_empty();
        let wset = watching_writes.then_some(&mut self.wset);
        let mut nready = match S::select(Some(&mut self.rset), wset, None, timeout) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => {
                return self.find_invalid(e, events, key_of, invalid)
            }
            Err(e) => return Err(e),
        };
        // UNP: if (FD_ISSET(sockfd, &rset)) { … if (--nready <= 0) break; }
        // (Stopping right after the last ready descriptor matters: asking the
        // iterator for one more scans the rest of the set.)
        if nready > 0 {
            for fd in self.rset.iter() {
                nready -= 1;
                let mut readiness = Readiness::READABLE;
                if watching_writes && self.wset.contains(fd) {
                    self.wset.remove(fd); // reported here, not again below
                    nready = nready.saturating_sub(1);
                    readiness |= Readiness::WRITABLE;
                }
                if let Some(key) = key_of(fd) {
                    events.push(key, readiness);
                }
                if nready == 0 {
                    break;
                }
            }
        }
        if watching_writes && nready > 0 {
            for fd in self.wset.iter() {
                nready -= 1;
                if let Some(key) = key_of(fd) {
                    events.push(key, Readiness::WRITABLE);
                }
                if nready == 0 {
                    break;
                }
            }
        }
        Ok(())
    }

    /// select said `EBADF`: find the watched descriptors that are closed and report
    /// them (poll's `POLLNVAL`). If none is, the error was not about ours: return it.
    fn find_invalid<K>(
        &mut self,
        e: io::Error,
        events: &mut Events<K>,
        key_of: impl Fn(RawFd) -> Option<K>,
        invalid: &mut Vec<RawFd>,
    ) -> io::Result<()> {
        let watched = self.allset.iter().chain(self.wallset.iter());
        for fd in watched.filter(|&fd| !crate::sys::is_open(fd)) {
            if invalid.contains(&fd) {
                continue; // in both sets
            }
            invalid.push(fd);
            if let Some(key) = key_of(fd) {
                events.push(key, Readiness::INVALID);
            }
        }
        if invalid.is_empty() {
            Err(e)
        } else {
            Ok(())
        }
    }
}

/// UNP's `struct pollfd client[]`, kept dense: entry `slot` of a source is its
/// `pollfd`; a source watched for nothing has descriptor −1 there, which poll(2)
/// skips (with `events = 0` it would still report `POLLHUP` and `POLLERR`).
#[derive(Default)]
pub(super) struct PollArray {
    fds: Vec<PollFd>,
    /// The registered descriptor of each entry (an entry's own `fd` is −1 while it
    /// is watched for nothing).
    owners: Vec<RawFd>,
}

impl PollArray {
    fn entry(fd: RawFd, interest: Interest) -> PollFd {
        let mut events = PollFlags::empty();
        if interest.is_readable() {
            events |= PollFlags::POLLIN;
        }
        if interest.is_writable() {
            events |= PollFlags::POLLOUT;
        }
        PollFd::new(if interest.is_none() { -1 } else { fd }, events)
    }

    fn add(&mut self, fd: RawFd, interest: Interest) -> usize {
        self.fds.push(Self::entry(fd, interest));
        self.owners.push(fd);
        self.fds.len() - 1
    }

    fn modify(&mut self, fd: RawFd, slot: usize, interest: Interest) {
        if let Some(entry) = self.fds.get_mut(slot) {
            *entry = Self::entry(fd, interest);
        }
    }

    fn remove(&mut self, slot: usize) -> Option<RawFd> {
        if slot >= self.fds.len() {
            return None;
        }
        self.fds.swap_remove(slot);
        self.owners.swap_remove(slot);
        self.owners.get(slot).copied()
    }

    fn wait<K>(
        &mut self,
        timeout: Option<Duration>,
        events: &mut Events<K>,
        key_of: impl Fn(RawFd) -> Option<K>,
        invalid: &mut Vec<RawFd>,
    ) -> io::Result<()> {
        // UNP: nready = Poll(client, maxi + 1, INFTIM);
        let mut nready = poll(&mut self.fds, timeout)?;
        for (entry, &fd) in self.fds.iter().zip(&self.owners) {
            if nready == 0 {
                break;
            }
            let revents = entry.revents();
            if revents.is_empty() {
                continue;
            }
            nready -= 1;
            let readiness = Self::readiness(revents);
            if readiness.is_invalid() {
                invalid.push(fd);
            }
            if let Some(key) = key_of(fd) {
                events.push(key, readiness);
            }
        }
        Ok(())
    }

    fn readiness(revents: PollFlags) -> Readiness {
        let mut r = Readiness::EMPTY;
        let pairs = [
            (
                PollFlags::POLLIN | PollFlags::POLLRDNORM,
                Readiness::READABLE,
            ),
            (
                PollFlags::POLLOUT | PollFlags::POLLWRNORM,
                Readiness::WRITABLE,
            ),
            (PollFlags::POLLHUP, Readiness::HANGUP),
            (PollFlags::POLLERR, Readiness::ERROR),
            (PollFlags::POLLNVAL, Readiness::INVALID),
        ];
        for (flags, readiness) in pairs {
            if revents.intersects(flags) {
                r |= readiness;
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_for_select_names_the_backends_that_can() {
        let set_error = FdSet::new().insert(5000).unwrap_err();
        let e = beyond(Backend::Select, 5000, set_error);
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let msg = e.to_string();
        assert!(
            msg.starts_with("descriptor 5000 is not below FD_SETSIZE"),
            "{msg}"
        );
        assert!(msg.contains("Backend::LargeSelect, Backend::Poll"), "{msg}");
        assert!(!msg.contains("LargeFdSet or poll"), "{msg}");

        let fd = LargeFdSet::MAX_FD.saturating_add(1);
        let set_error = LargeFdSet::new().insert(fd).unwrap_err();
        let msg = beyond(Backend::LargeSelect, fd, set_error).to_string();
        assert!(msg.contains("LargeFdSet::MAX_FD"), "{msg}");
        assert!(msg.contains("use Backend::Poll"), "{msg}");
        assert!(!msg.contains("LargeSelect or"), "{msg}");
        if Backend::Epoll.is_supported() {
            assert!(
                msg.ends_with("use Backend::Poll or Backend::Epoll"),
                "{msg}"
            );
        }

        // Any other error passes through unchanged.
        let other = io::Error::from_raw_os_error(libc::ENOMEM);
        let e = beyond(Backend::Select, 3, other);
        assert_eq!(e.raw_os_error(), Some(libc::ENOMEM));
    }
}
