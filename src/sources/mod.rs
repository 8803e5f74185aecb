//! Keyed readiness: register descriptors under keys of your own, wait, and iterate
//! the ready keys. One API over `select(2)` on UNP's fixed [`FdSet`], `select(2)` on
//! the growable [`LargeFdSet`], and `poll(2)`.
//!
//! UNP's loops keep the bookkeeping by hand: `client[i]` holds a descriptor,
//! `FD_ISSET(client[i], &rset)` is asked of every slot up to `maxi`, and a ready
//! descriptor is mapped back to its connection by its index. [`Sources`] keeps that
//! table for you, as popol's `Sources<K>`, polling's `usize` key and mio's `Token`
//! do: [`register`](Sources::register) a descriptor with a key and an [`Interest`],
//! [`wait`](Sources::wait), then walk the [`Events`]: `(key, readiness)` pairs.
//!
//! ```
//! use std::io::Write;
//! use std::os::unix::net::UnixStream;
//! use std::time::Duration;
//! use unp_select::sources::{Backend, Events, Interest, Sources};
//!
//! #[derive(Clone, Copy, Debug, PartialEq)]
//! enum Key { Pipe, Peer }
//!
//! let (mut a, b) = UnixStream::pair()?;
//! let (c, _d) = UnixStream::pair()?;
//! let mut sources = Sources::new(Backend::Poll);
//! sources.register(Key::Pipe, &b, Interest::READ)?;
//! sources.register(Key::Peer, &c, Interest::READ)?;
//!
//! a.write_all(b"x")?;
//! let mut events = Events::new();
//! sources.wait(&mut events, Some(Duration::from_secs(5)))?;
//! let ready: Vec<Key> = events.iter().map(|(key, _)| *key).collect();
//! assert_eq!(ready, [Key::Pipe]);
//! assert!(events.iter().all(|(_, r)| r.is_readable()));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # The same readiness on every backend
//! Each event carries a [`Readiness`]: readable, writable, hang-up, error, invalid.
//! `select` can only say "readable" and "writable", so the backends differ where the
//! kernel does:
//!
//! | what happened | select ([`Backend::Select`], [`Backend::LargeSelect`]) | poll ([`Backend::Poll`]) |
//! |---|---|---|
//! | data, or a listener with a connection | readable | readable |
//! | a socket's peer closed (EOF) | readable | readable (Linux adds `POLLRDHUP` only if asked) |
//! | a pipe whose writer closed | readable | **hang-up without readable** (`POLLHUP`) |
//! | a socket reset (RST) | readable (and writable if asked) | readable, error and hang-up |
//! | a descriptor that was closed | [`Readiness::is_invalid`], found after `EBADF` | [`Readiness::is_invalid`] (`POLLNVAL`) |
//!
//! So a reader should treat hang-up and error like readable: `read` tells what
//! happened (0 for end of file, or the error). [`Readiness::is_read_closed`] does
//! that test. A descriptor reported invalid stops being watched (so a loop that does
//! not remove it does not spin) until [`Sources::set_interest`] or a new
//! registration. With select, a closed number above the descriptor table (one that
//! was never open: the table never shrinks) is found only when the wait ends, by
//! its timeout or another source's readiness, as [`select()`](crate::select()) says;
//! poll reports it at once.
//!
//! # Costs
//! From a ready descriptor to its key is one index into a table by descriptor
//! number: O(1). [`Sources::wait`] allocates nothing in steady state: the sets,
//! the `pollfd` array and the [`Events`] you pass in are reused. With select the
//! ready descriptors are found by scanning the returned sets' words (64 descriptors
//! per word); with poll by scanning the `pollfd` array, which holds only the
//! registered descriptors.
//!
//! # Platform-specific behavior
//! [`Backend::Select`] takes descriptors below [`FD_SETSIZE`] only (1024 on Linux
//! and FreeBSD); [`register`](Sources::register) refuses a larger one with
//! `InvalidInput`. [`Backend::LargeSelect`] and [`Backend::Poll`] take any. The
//! platform notes of [`select()`](crate::select()) and [`poll()`](crate::poll())
//! apply.
//!
//! # References
//! - W. Richard Stevens, Bill Fenner, Andrew M. Rudoff, *Unix Network Programming,
//!   Volume 1*, 3rd ed., sections 6.3 (select), 6.8 (`client[]` and `maxi`), 6.10
//!   and 6.11 (poll, `tcpservpoll01`).
//! - POSIX [`select`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/select.html),
//!   [`poll`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/poll.html)
//! - Linux [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html) (`POLLHUP` on
//!   a pipe), [select(2)](https://man7.org/linux/man-pages/man2/select.2.html)

mod backend;
mod events;
mod waker;

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use crate::time::Deadline;
#[cfg(doc)]
use crate::{FdSet, LargeFdSet, FD_SETSIZE};

use backend::Imp;
pub use events::{Events, Iter, Readiness};
pub(crate) use waker::reset as waker_reset;
pub use waker::Waker;

/// Which system call [`Sources`] waits with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// `select(2)` over UNP's fixed [`FdSet`]: descriptors below [`FD_SETSIZE`] only.
    Select,
    /// `select(2)` over [`LargeFdSet`], which grows past [`FD_SETSIZE`].
    LargeSelect,
    /// `poll(2)` over an array of `pollfd`s.
    Poll,
}

/// What a source is watched for: reading, writing, both, or nothing for now.
///
/// # Examples
/// ```
/// use unp_select::sources::Interest;
/// assert_eq!(Interest::READ | Interest::WRITE, Interest::BOTH);
/// assert!(Interest::BOTH.is_readable() && Interest::BOTH.is_writable());
/// assert!(Interest::NONE.is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interest(u8);

impl Interest {
    /// Not watched for now; the source stays registered under its key. (A `pollfd`
    /// with `events = 0` would still report hang-up and errors; here nothing is
    /// reported at all, on every backend.)
    pub const NONE: Interest = Interest(0);
    /// Readable: data, end of file, an error, or (a listener) a connection to accept.
    pub const READ: Interest = Interest(1);
    /// Writable: room in the send buffer.
    pub const WRITE: Interest = Interest(2);
    /// Readable or writable.
    pub const BOTH: Interest = Interest(3);

    /// Whether reading is asked for.
    pub const fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }

    /// Whether writing is asked for.
    pub const fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }

    /// Whether nothing is asked for.
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        Interest(self.0 | rhs.0)
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            0 => "NONE",
            1 => "READ",
            2 => "WRITE",
            _ => "BOTH",
        })
    }
}

/// One registered source: the caller's key and what it is watched for.
#[derive(Clone, Debug)]
struct Entry<K> {
    key: K,
    interest: Interest,
    /// The source's index in the poll backend's `pollfd` array (unused by select).
    slot: usize,
}

/// Descriptors registered under keys of the caller's choosing, waited on together.
///
/// `K` is anything `Clone`: an index, an enum of the loop's roles, a `Copy` handle.
/// [`wait`](Sources::wait) fills an [`Events`] with the `(key, readiness)` of every
/// ready source.
///
/// Sources are found by their descriptor: [`set_interest`](Sources::set_interest)
/// and [`unregister`](Sources::unregister) take it, as `FD_SET`/`FD_CLR` do. A
/// source holds the descriptor's number only, not a borrow of it, so remove it
/// before you close the descriptor: a number closed and then reused by another
/// `open` or `accept` would report that descriptor's readiness under the old key
/// (the same holds for an `fd_set` or a `pollfd`; see
/// [I/O safety](mod@crate::select#io-safety)).
///
/// # Examples
/// A listener and its connections under one key type, on any backend:
/// ```
/// use std::net::{TcpListener, TcpStream};
/// use std::time::Duration;
/// use unp_select::sources::{Backend, Events, Interest, Sources};
///
/// #[derive(Clone, Copy, Debug, PartialEq)]
/// enum Key { Listener, Client(usize) }
///
/// for backend in [Backend::Select, Backend::LargeSelect, Backend::Poll] {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let mut sources = Sources::new(backend);
///     sources.register(Key::Listener, &listener, Interest::READ)?;
///     let _client = TcpStream::connect(listener.local_addr()?)?;
///
///     let mut events = Events::new();
///     sources.wait(&mut events, Some(Duration::from_secs(5)))?;
///     assert_eq!(events.iter().next().map(|(k, _)| *k), Some(Key::Listener));
///     let (conn, _) = listener.accept()?;
///     sources.register(Key::Client(0), &conn, Interest::WRITE)?;
///     sources.wait(&mut events, Some(Duration::from_secs(5)))?;
///     let (key, readiness) = events.iter().next().unwrap();
///     assert_eq!((*key, readiness.is_writable()), (Key::Client(0), true));
///     assert_eq!(sources.unregister(&conn), Some(Key::Client(0)));
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Sources<K> {
    imp: Imp,
    /// By descriptor number: the source registered under it, if any.
    entries: Vec<Option<Entry<K>>>,
    len: usize,
    /// Scratch for the descriptors a wait found invalid (kept to reuse its memory).
    invalid: Vec<RawFd>,
}

impl<K: fmt::Debug> fmt::Debug for Sources<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (fd, entry) in self.entries.iter().enumerate() {
            if let Some(e) = entry {
                map.entry(&fd, &(&e.key, e.interest));
            }
        }
        map.finish()
    }
}

impl<K: Clone> Sources<K> {
    /// No sources yet, waiting with `backend`.
    ///
    /// # Examples
    /// ```
    /// use unp_select::sources::{Backend, Sources};
    /// let sources: Sources<u32> = Sources::new(Backend::Select);
    /// assert!(sources.is_empty());
    /// assert_eq!(sources.backend(), Backend::Select);
    /// ```
    pub fn new(backend: Backend) -> Sources<K> {
        Sources {
            imp: Imp::new(backend),
            entries: Vec::new(),
            len: 0,
            invalid: Vec::new(),
        }
    }

    /// The system call this waits with.
    pub fn backend(&self) -> Backend {
        self.imp.backend()
    }

    /// How many sources are registered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no source is registered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Watches `fd` for `interest`, reporting it under `key`.
    ///
    /// # Errors
    /// - `AlreadyExists` if `fd` is registered already (use
    ///   [`set_interest`](Self::set_interest) to change what it is watched for);
    /// - `InvalidInput` if the backend cannot hold it: [`Backend::Select`] and a
    ///   descriptor `>= FD_SETSIZE`, or [`Backend::LargeSelect`] and one above
    ///   [`LargeFdSet::MAX_FD`].
    ///
    /// Nothing is registered when it fails.
    ///
    /// # Examples
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use unp_select::sources::{Backend, Interest, Sources};
    /// let (a, _b) = UnixStream::pair()?;
    /// let mut sources = Sources::new(Backend::Select);
    /// sources.register("a", &a, Interest::READ)?;
    /// let again = sources.register("a again", &a, Interest::READ).unwrap_err();
    /// assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
    /// assert_eq!(sources.len(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn register(&mut self, key: K, fd: &impl AsFd, interest: Interest) -> io::Result<()> {
        let fd = fd.as_fd().as_raw_fd();
        let index = Self::index(fd)?;
        if self.entries.get(index).is_some_and(Option::is_some) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("descriptor {fd} is registered already"),
            ));
        }
        let slot = self.imp.add(fd, interest)?;
        if self.entries.len() <= index {
            self.entries.resize_with(index + 1, || None);
        }
        self.entries[index] = Some(Entry {
            key,
            interest,
            slot,
        });
        self.len += 1;
        Ok(())
    }

    /// Changes what the source on `fd` is watched for. Also watches again a source
    /// that was reported invalid.
    ///
    /// # Errors
    /// `NotFound` if `fd` is not registered.
    ///
    /// # Examples
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use unp_select::sources::{Backend, Events, Interest, Sources};
    /// let (a, _b) = UnixStream::pair()?;
    /// let mut sources = Sources::new(Backend::LargeSelect);
    /// sources.register(1, &a, Interest::NONE)?;
    /// let mut events = Events::new();
    /// assert_eq!(sources.wait(&mut events, Some(Duration::ZERO))?, 0);
    /// sources.set_interest(&a, Interest::WRITE)?; // a socket pair has room
    /// assert_eq!(sources.wait(&mut events, Some(Duration::ZERO))?, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_interest(&mut self, fd: &impl AsFd, interest: Interest) -> io::Result<()> {
        let fd = fd.as_fd().as_raw_fd();
        let entry = self.entry_mut(fd)?;
        let slot = entry.slot;
        entry.interest = interest;
        self.imp.modify(fd, slot, interest);
        Ok(())
    }

    /// Stops watching `fd` and returns its key (`None` if it was not registered).
    /// Call it before closing the descriptor.
    ///
    /// # Examples
    /// See [`Sources`].
    pub fn unregister(&mut self, fd: &impl AsFd) -> Option<K> {
        self.unregister_raw(fd.as_fd().as_raw_fd())
    }

    fn unregister_raw(&mut self, fd: RawFd) -> Option<K> {
        let entry = self.entries.get_mut(usize::try_from(fd).ok()?)?.take()?;
        if let Some(moved) = self.imp.remove(fd, entry.slot) {
            // The poll backend filled the hole with its last entry: update its slot.
            if let Some(Some(e)) = self.entries.get_mut(moved as usize) {
                e.slot = entry.slot;
            }
        }
        self.len -= 1;
        Some(entry.key)
    }

    /// The key `fd` is registered under, if any.
    ///
    /// # Examples
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use unp_select::sources::{Backend, Interest, Sources};
    /// let (a, b) = UnixStream::pair()?;
    /// let mut sources = Sources::new(Backend::Poll);
    /// sources.register('a', &a, Interest::READ)?;
    /// assert_eq!(sources.key(&a), Some(&'a'));
    /// assert_eq!(sources.key(&b), None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn key(&self, fd: &impl AsFd) -> Option<&K> {
        let fd = usize::try_from(fd.as_fd().as_raw_fd()).ok()?;
        Some(&self.entries.get(fd)?.as_ref()?.key)
    }

    /// Waits until a source is ready or `timeout` passes (`None`: no limit; rounded
    /// up to the backend's resolution), and puts the ready sources' keys into
    /// `events` (cleared first). Returns how many there are.
    ///
    /// A signal that interrupts the wait (`EINTR`) does not end it: the wait goes on
    /// with the time left, as [`select_restarting`](crate::select_restarting) does.
    /// Use [`wait_interruptible`](Self::wait_interruptible) to see the interruption.
    ///
    /// # Errors
    /// `ENOMEM` (and poll's `EAGAIN`) from the kernel; `EINVAL` if the backend's
    /// limit on descriptors is exceeded. A closed descriptor is not an error: it is
    /// reported for its key ([`Readiness::is_invalid`]).
    ///
    /// # Examples
    /// See the [module documentation](self).
    pub fn wait(&mut self, events: &mut Events<K>, timeout: Option<Duration>) -> io::Result<usize> {
        let deadline = Deadline::after(timeout);
        let mut timeout = timeout;
        loop {
            match self.wait_interruptible(events, timeout) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => timeout = deadline.remaining(),
                other => return other,
            }
        }
    }

    /// [`wait`](Self::wait) that returns `Interrupted` when a signal handler ran
    /// during the wait, for loops whose handlers set a flag to look at.
    ///
    /// # Errors
    /// As [`wait`](Self::wait), plus `Interrupted` (`EINTR`).
    ///
    /// # Examples
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use unp_select::sources::{Backend, Events, Interest, Sources};
    /// let (_a, b) = UnixStream::pair()?;
    /// let mut sources = Sources::new(Backend::Poll);
    /// sources.register(0u8, &b, Interest::READ)?;
    /// let mut events = Events::new();
    /// let n = sources.wait_interruptible(&mut events, Some(Duration::from_millis(1)))?;
    /// assert_eq!((n, events.len()), (0, 0));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait_interruptible(
        &mut self,
        events: &mut Events<K>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        events.clear();
        let entries = &self.entries;
        let key_of = |fd: RawFd| {
            let entry = usize::try_from(fd)
                .ok()
                .and_then(|i| entries.get(i)?.as_ref());
            entry.map(|e| e.key.clone())
        };
        let waited = self.imp.wait(timeout, events, key_of, &mut self.invalid);
        // Invalid descriptors are reported once, then left out until the caller says.
        if !self.invalid.is_empty() {
            for &fd in &self.invalid {
                if let Some(Some(entry)) = self.entries.get_mut(fd as usize) {
                    entry.interest = Interest::NONE;
                    self.imp.modify(fd, entry.slot, Interest::NONE);
                }
            }
            self.invalid.clear();
        }
        waited?;
        Ok(events.len())
    }

    fn index(fd: RawFd) -> io::Result<usize> {
        usize::try_from(fd).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("negative file descriptor {fd}"),
            )
        })
    }

    fn entry_mut(&mut self, fd: RawFd) -> io::Result<&mut Entry<K>> {
        let entry = usize::try_from(fd)
            .ok()
            .and_then(|i| self.entries.get_mut(i)?.as_mut());
        entry.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("descriptor {fd} is not registered"),
            )
        })
    }
}
