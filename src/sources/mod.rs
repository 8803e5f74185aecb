//! Keyed readiness: register descriptors under keys of your own, wait, and iterate
//! the ready keys. One API over `select(2)` on UNP's fixed [`FdSet`], `select(2)` on
//! the growable [`LargeFdSet`], `poll(2)`, and the kernel-kept lists of Linux's
//! `epoll(7)` and the BSDs' `kqueue(2)`.
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
//! # Which backend
//! - [`Backend::Select`]: the book's. Descriptors below [`FD_SETSIZE`] only; each
//!   wait copies the sets and the kernel scans them up to the highest descriptor.
//! - [`Backend::LargeSelect`]: the same past [`FD_SETSIZE`]; the cost of a wait
//!   follows the highest descriptor number.
//! - [`Backend::Poll`]: any descriptor, on every system. Each wait hands the
//!   kernel every registered descriptor and the kernel asks each one: the cost
//!   grows with every descriptor, ready or not. Changing an interest costs
//!   nothing (an array entry).
//! - [`Backend::Epoll`] (Linux, Android) and [`Backend::Kqueue`] (Apple's
//!   systems, the BSDs): the kernel keeps the list, so a wait costs in proportion
//!   to the ready descriptors. For thousands of mostly idle connections. Each
//!   registration and each change of interest is a system call, so for a few
//!   descriptors whose interest changes every turn poll can be cheaper.
//!
//! # The same readiness on every backend
//! Each event carries a [`Readiness`]: readable, writable, hang-up, error, invalid.
//! `select` can only say "readable" and "writable", so the backends differ where the
//! kernel does:
//!
//! | what happened | select ([`Backend::Select`], [`Backend::LargeSelect`]) | poll ([`Backend::Poll`]) | epoll ([`Backend::Epoll`]) | kqueue ([`Backend::Kqueue`]) |
//! |---|---|---|---|---|
//! | data, or a listener with a connection | readable | readable | readable | readable |
//! | a socket's peer closed (EOF) | readable | readable (Linux adds `POLLRDHUP` only if asked) | readable (`EPOLLRDHUP` only if asked) | readable and hang-up (`EV_EOF`) |
//! | a pipe whose writer closed | readable | **hang-up without readable** (`POLLHUP`) | **hang-up without readable** (`EPOLLHUP`) | readable and hang-up (`EV_EOF`) |
//! | a socket reset (RST) | readable (and writable if asked) | readable, error and hang-up | readable, error and hang-up | readable, hang-up and error (`EV_EOF`, the error in `fflags`) |
//! | a descriptor closed before it is registered (or its interest set) | [`Readiness::is_invalid`], found after `EBADF` | [`Readiness::is_invalid`] (`POLLNVAL`) | [`Readiness::is_invalid`], at the next wait | [`Readiness::is_invalid`], at the next wait |
//! | a registered descriptor closed | [`Readiness::is_invalid`], found after `EBADF` | [`Readiness::is_invalid`] (`POLLNVAL`) | [`Readiness::is_invalid`] when its file is next ready, if a `dup` keeps it open; else nothing | nothing: the kernel forgets it |
//!
//! So a reader should treat hang-up and error like readable: `read` tells what
//! happened (0 for end of file, or the error). [`Readiness::is_read_closed`] does
//! that test. A descriptor reported invalid stops being watched (so a loop that does
//! not remove it does not spin) until [`Sources::set_interest`] or a new
//! registration. With select, a closed number above the descriptor table (one that
//! was never open: the table never shrinks) is found only when the wait ends, by
//! its timeout or another source's readiness, as [`select()`](crate::select()) says;
//! poll reports it at once. epoll and kqueue report hang-up and error even to a
//! source watched for writing only, as poll does; a source watched for
//! [`Interest::NONE`] gets nothing on every backend.
//!
//! # Closing a descriptor
//! [`unregister`](Sources::unregister) a descriptor **before** you close it, on
//! every backend: a source holds the descriptor's number, not a borrow of it. What
//! happens otherwise differs, because the kernels remember different things:
//!
//! - select and poll watch the number. A closed one is reported invalid; one
//!   reused by another `open` or `accept` reports that descriptor's readiness under
//!   the old key.
//! - kqueue watches the number too, but forgets it when it is closed: the key gets
//!   nothing more, and a reused number is not watched.
//! - epoll watches the *open file description*, which a `dup`, a descriptor passed
//!   over a Unix socket or a `fork` child may keep open after your close
//!   ([epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html), Q6). If none
//!   does, the kernel forgets it, as kqueue does. If one does, the kernel goes on
//!   reporting the file under the number: so every event is checked against the
//!   file (device and inode, one `fstat(2)`) the number named when it was
//!   registered, and if the number is closed or names another file now, the key
//!   gets [`Readiness::INVALID`], once, never the file's readiness; the kernel's
//!   list is then built anew without it (one `epoll_ctl(2)` per source), since
//!   `EPOLL_CTL_DEL` cannot reach a file through a closed number. A registration
//!   whose removal failed that way (`unregister` after the close) is dropped the
//!   same way, and each registration carries a generation, so its events never
//!   reach a later registration of the number.
//!
//! On every backend, [`register`](Sources::register) of a number still registered
//! under the old key fails with `AlreadyExists`: `unregister` it (which returns the
//! old key), then register the new descriptor. When the descriptor is gone (closed
//! by other code, or dropped with its object) and you have only the key left,
//! [`remove`](Sources::remove) takes the source out by its key.
//!
//! # Costs
//! From a ready descriptor to its key is one index into a table by descriptor
//! number: O(1). [`Sources::wait`] allocates nothing in steady state: the sets,
//! the `pollfd` array, epoll's and kqueue's event arrays and the [`Events`] you
//! pass in are reused. With select the ready descriptors are found by scanning the
//! returned sets' words (64 descriptors per word); with poll by scanning the
//! `pollfd` array, which holds only the registered descriptors; epoll and kqueue
//! return only the ready ones, up to 1024 per wait (the rest come with the next
//! one). Registering and unregistering are O(1) on every backend: with epoll and
//! kqueue, one system call. [`Sources::remove`], which finds a source by its key,
//! scans the table: O(highest registered descriptor number), for the rare case of
//! a descriptor lost before it was unregistered.
//!
//! # Platform-specific behavior
//! [`Backend::Select`] takes descriptors below [`FD_SETSIZE`] only (1024 on Linux
//! and FreeBSD); [`register`](Sources::register) refuses a larger one with
//! `InvalidInput`. The other backends take any. The platform notes of
//! [`select()`](crate::select()) and [`poll()`](crate::poll()) apply.
//! [`Backend::Epoll`] exists on Linux and Android, [`Backend::Kqueue`] on Apple's
//! systems and the BSDs; elsewhere they report `Unsupported`
//! ([`Backend::is_supported`]). After `fork(2)`, an epoll list is shared by parent
//! and child, a kqueue is not inherited: see each backend.
//!
//! # References
//! - W. Richard Stevens, Bill Fenner, Andrew M. Rudoff, *Unix Network Programming,
//!   Volume 1*, 3rd ed., sections 6.3 (select), 6.8 (`client[]` and `maxi`), 6.10
//!   and 6.11 (poll, `tcpservpoll01`).
//! - POSIX [`select`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/select.html),
//!   [`poll`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/poll.html)
//! - Linux [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html) (`POLLHUP` on
//!   a pipe), [select(2)](https://man7.org/linux/man-pages/man2/select.2.html),
//!   [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html),
//!   [epoll_ctl(2)](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html),
//!   [epoll_wait(2)](https://man7.org/linux/man-pages/man2/epoll_wait.2.html)
//! - FreeBSD [kqueue(2)](https://man.freebsd.org/cgi/man.cgi?query=kqueue&sektion=2)

mod backend;
mod events;
mod queue;
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

/// Which system call [`Sources`] waits with. The [module documentation](self#which-backend)
/// says which to pick.
///
/// # Examples
/// The same wait on every backend this platform has:
/// ```
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use unp_select::sources::{Backend, Events, Interest, Sources};
///
/// let all = [Backend::Select, Backend::LargeSelect, Backend::Poll, Backend::Epoll, Backend::Kqueue];
/// let (mut a, b) = UnixStream::pair()?;
/// a.write_all(b"x")?;
/// for backend in all.into_iter().filter(|b| b.is_supported()) {
///     let mut sources = Sources::try_new(backend)?;
///     assert_eq!(sources.backend(), backend);
///     sources.register((), &b, Interest::READ)?;
///     let mut events = Events::new();
///     assert_eq!(sources.wait(&mut events, Some(Duration::from_secs(5)))?, 1, "{backend:?}");
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// `select(2)` over UNP's fixed [`FdSet`]: descriptors below [`FD_SETSIZE`] only.
    Select,
    /// `select(2)` over [`LargeFdSet`], which grows past [`FD_SETSIZE`].
    LargeSelect,
    /// `poll(2)` over an array of `pollfd`s.
    Poll,
    /// `epoll(7)`: the kernel keeps the list of sources, so a wait costs in
    /// proportion to the ready ones, not to the registered ones. For thousands of
    /// mostly idle connections. Level-triggered, as the other backends: a source is
    /// reported at every wait while it is ready.
    ///
    /// [`register`](Sources::register), [`set_interest`](Sources::set_interest)
    /// and [`unregister`](Sources::unregister) make one `epoll_ctl(2)` each (none
    /// when the interest does not change; [`Interest::NONE`] takes the source out
    /// of the kernel's list, since `EPOLLHUP` and `EPOLLERR` would come unasked);
    /// registering, and watching again after `NONE`, also make one `fstat(2)`,
    /// which records the file the number names. A wait is one `epoll_wait(2)`
    /// that takes up to 1024 events (the others come with the next wait: the
    /// kernel hands ready sources out in turn), and one `fstat(2)` per event,
    /// which checks that the number still names that file (see
    /// [closing a descriptor](self#closing-a-descriptor)): the price of never
    /// reporting a closed or reused number, two to three times what
    /// `epoll_wait(2)` spends per event, though small beside the `read` and
    /// `write` a ready connection then gets.
    /// Timeouts are rounded up to whole milliseconds (1 ns waits 1 ms, never 0)
    /// and clamped to `c_int::MAX` milliseconds (about 24.8 days), as
    /// [`poll()`](crate::poll()) does.
    ///
    /// # Errors
    /// - `Unsupported` where the platform has no epoll: from
    ///   [`Sources::try_new`], or from the first [`register`](Sources::register)
    ///   or [`wait`](Sources::wait) of a [`Sources::new`].
    /// - Those of `epoll_create1(2)` (`EMFILE`, `ENFILE`, `ENOMEM`), at the same
    ///   places: the epoll descriptor is made when it is first needed.
    /// - From `register` (and from `set_interest` of a source watched for
    ///   nothing), those of `epoll_ctl(2)`: `ENOMEM`, `ENOSPC` (the per-user
    ///   limit `/proc/sys/fs/epoll/max_user_watches`), `EPERM` (a regular file or
    ///   a directory, which epoll cannot watch; poll says they are always ready).
    ///   Nothing is registered or changed then. A closed descriptor is no error:
    ///   the next wait reports it [invalid](Readiness::INVALID), as poll does.
    ///
    /// # Platform-specific behavior
    /// Linux and Android ([`is_supported`](Backend::is_supported)). The epoll
    /// descriptor is close-on-exec (`EPOLL_CLOEXEC`). A `fork(2)` child inherits
    /// it, and with it the same list: a source registered, changed or
    /// unregistered in one process is so in both, and both are woken by the same
    /// readiness. The child must not use the parent's [`Sources`]: drop it
    /// (closing the child's copy of the descriptor leaves the list alone) and make
    /// its own. A registration belongs to the open file description, not to the
    /// number: see [closing a descriptor](self#closing-a-descriptor).
    ///
    /// # References
    /// - Linux [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html)
    ///   (questions and answers 1, 6: a registration and a closed `dup`),
    ///   [epoll_create1(2)](https://man7.org/linux/man-pages/man2/epoll_create1.2.html),
    ///   [epoll_ctl(2)](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html),
    ///   [epoll_wait(2)](https://man7.org/linux/man-pages/man2/epoll_wait.2.html)
    ///
    /// # Examples
    /// A hundred idle sources and one busy one: the wait finds the busy one
    /// without looking at the others.
    /// ```
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use unp_select::sources::{Backend, Events, Interest, Sources};
    ///
    /// let backend = if Backend::Epoll.is_supported() { Backend::Epoll } else { Backend::Poll };
    /// let mut sources = Sources::try_new(backend)?;
    /// let mut idle = Vec::new();
    /// for i in 0..100 {
    ///     let (a, b) = UnixStream::pair()?;
    ///     sources.register(i, &a, Interest::READ)?;
    ///     idle.push((a, b));
    /// }
    /// let (busy, mut peer) = UnixStream::pair()?;
    /// sources.register(1000, &busy, Interest::READ)?;
    /// peer.write_all(b"x")?;
    /// let mut events = Events::new();
    /// sources.wait(&mut events, Some(Duration::from_secs(5)))?;
    /// assert_eq!(events.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [1000]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    Epoll,
    /// `kqueue(2)`: the kernel keeps the list of sources, as with
    /// [`Epoll`](Backend::Epoll), on Apple's systems and the BSDs. Level-triggered
    /// (no `EV_CLEAR`).
    ///
    /// Reading and writing are two filters (`EVFILT_READ`, `EVFILT_WRITE`): a
    /// change of interest is one `kevent(2)` with up to two changes, and a source
    /// ready both ways comes as two kernel events, merged into one here. `EV_EOF`
    /// (end of file, or a pipe whose other end is gone) is reported as
    /// [`Readiness::HANGUP`] beside readable or writable, with
    /// [`Readiness::ERROR`] when the socket has an error (in `fflags`); so
    /// [`Readiness::is_read_closed`] holds, as everywhere. Timeouts are a
    /// `timespec`: nanoseconds, clamped to [`MAX_TIMEOUT`](crate::select::MAX_TIMEOUT).
    ///
    /// # Errors
    /// - `Unsupported` where the platform has no kqueue, at the same places as
    ///   [`Epoll`](Backend::Epoll)'s.
    /// - Those of `kqueue(2)` (`EMFILE`, `ENFILE`, `ENOMEM`) and `fcntl(2)`, when
    ///   the descriptor is made.
    /// - From `register` (and `set_interest` of a source watched for nothing),
    ///   those of `kevent(2)`'s changes, `ENOMEM` among them. A closed
    ///   descriptor is no error: the next wait reports it invalid.
    ///
    /// # Platform-specific behavior
    /// macOS, iOS, FreeBSD, NetBSD, OpenBSD and DragonFly. The descriptor is set
    /// close-on-exec with `fcntl(2)` after `kqueue(2)` (which a fork cannot race:
    /// a kqueue is not inherited by a `fork(2)` child). In the child the parent's
    /// [`Sources`] is of no use (its waits fail): make a new one. Closing a
    /// descriptor drops its registrations in the kernel: see
    /// [closing a descriptor](self#closing-a-descriptor). This crate's test suite
    /// runs on Linux; on the BSDs it is compiled, and the readiness above follows
    /// the manual pages.
    ///
    /// # References
    /// - FreeBSD [kqueue(2)](https://man.freebsd.org/cgi/man.cgi?query=kqueue&sektion=2)
    /// - Apple [kqueue(2)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/kqueue.2.html)
    /// - NetBSD [kqueue(2)](https://man.netbsd.org/kqueue.2),
    ///   OpenBSD [kqueue(2)](https://man.openbsd.org/kqueue.2)
    ///
    /// # Examples
    /// Where the platform has no kqueue, it says so:
    /// ```
    /// use std::io::ErrorKind;
    /// use unp_select::sources::{Backend, Sources};
    ///
    /// match Sources::<u32>::try_new(Backend::Kqueue) {
    ///     Ok(sources) => assert_eq!(sources.backend(), Backend::Kqueue),
    ///     Err(e) => {
    ///         assert_eq!(e.kind(), ErrorKind::Unsupported);
    ///         assert!(!Backend::Kqueue.is_supported());
    ///     }
    /// }
    /// ```
    Kqueue,
}

impl Backend {
    /// Whether this platform has the backend: select and poll everywhere, epoll on
    /// Linux and Android, kqueue on Apple's systems and the BSDs.
    ///
    /// # Platform-specific behavior
    /// Decided when the crate is compiled, by the target's operating system.
    ///
    /// # Examples
    /// The backend that scales with idle connections, wherever there is one:
    /// ```
    /// use unp_select::sources::Backend;
    ///
    /// let scalable = [Backend::Epoll, Backend::Kqueue]
    ///     .into_iter()
    ///     .find(|b| b.is_supported())
    ///     .unwrap_or(Backend::Poll);
    /// assert!(scalable.is_supported());
    /// assert!(Backend::Select.is_supported() && Backend::Poll.is_supported());
    /// assert!(!(Backend::Epoll.is_supported() && Backend::Kqueue.is_supported()));
    /// ```
    pub const fn is_supported(self) -> bool {
        match self {
            Backend::Select | Backend::LargeSelect | Backend::Poll => true,
            Backend::Epoll => <crate::sys::Epoll as crate::sys::Queue>::SUPPORTED,
            Backend::Kqueue => <crate::sys::Kqueue as crate::sys::Queue>::SUPPORTED,
        }
    }
}

/// What a source is watched for: reading, writing, both, or nothing for now.
///
/// # Examples
/// ```
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use unp_select::sources::{Backend, Events, Interest, Sources};
///
/// assert_eq!(Interest::READ | Interest::WRITE, Interest::BOTH);
/// let asks = |i: Interest| (i.is_readable(), i.is_writable(), i.is_none());
/// assert_eq!(asks(Interest::NONE), (false, false, true));
/// assert_eq!(asks(Interest::READ), (true, false, false));
/// assert_eq!(asks(Interest::WRITE), (false, true, false));
/// assert_eq!(asks(Interest::BOTH), (true, true, false));
/// assert_eq!(Interest::default(), Interest::NONE);
///
/// // A fresh socket has room to write and nothing to read.
/// let (a, _b) = UnixStream::pair()?;
/// let mut sources = Sources::new(Backend::Poll);
/// let mut events = Events::new();
/// sources.register("a", &a, Interest::NONE)?; // registered, not watched
/// for (interest, ready) in [
///     (Interest::NONE, 0),
///     (Interest::READ, 0),
///     (Interest::WRITE, 1),
///     (Interest::BOTH, 1),
/// ] {
///     sources.set_interest(&a, interest)?;
///     assert_eq!(sources.wait(&mut events, Some(Duration::ZERO))?, ready, "{interest:?}");
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interest(u8);

impl Interest {
    /// Not watched for now; the source stays registered under its key. (A `pollfd`
    /// with `events = 0` would still report hang-up and errors; here nothing is
    /// reported at all, on every backend.)
    ///
    /// # Examples
    /// See [`Interest`]'s example.
    pub const NONE: Interest = Interest(0);
    /// Readable: data, end of file, an error, or (a listener) a connection to accept.
    ///
    /// # Examples
    /// See [`Interest`]'s example.
    pub const READ: Interest = Interest(1);
    /// Writable: room in the send buffer.
    ///
    /// # Examples
    /// See [`Interest`]'s example.
    pub const WRITE: Interest = Interest(2);
    /// Readable or writable.
    ///
    /// # Examples
    /// See [`Interest`]'s example.
    pub const BOTH: Interest = Interest(3);

    /// Whether reading is asked for.
    ///
    /// # Examples
    /// See [`Interest`]'s example.
    pub const fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }

    /// Whether writing is asked for.
    ///
    /// # Examples
    /// See [`Interest`]'s example.
    pub const fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }

    /// Whether nothing is asked for.
    ///
    /// # Examples
    /// See [`Interest`]'s example.
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
    /// The source's index in the poll backend's `pollfd` array, or in the epoll
    /// and kqueue backends' registrations (unused by select).
    slot: usize,
}

/// The entry registered under descriptor number `fd`, if any: one index.
fn lookup<K>(entries: &[Option<Entry<K>>], fd: RawFd) -> Option<&Entry<K>> {
    entries.get(usize::try_from(fd).ok()?)?.as_ref()
}

/// Descriptors registered under keys of the caller's choosing, waited on together.
///
/// `K` is anything `Clone`: an index, an enum of the loop's roles, a `Copy` handle.
/// [`wait`](Sources::wait) fills an [`Events`] with the `(key, readiness)` of every
/// ready source.
///
/// Sources are found by their descriptor: [`set_interest`](Sources::set_interest)
/// and [`unregister`](Sources::unregister) take it, as `FD_SET`/`FD_CLR` do
/// ([`remove`](Sources::remove) finds one by its key, for a descriptor lost). A
/// source holds the descriptor's number only, not a borrow of it, so remove it
/// before you close the descriptor: with select and poll a number closed and then
/// reused by another `open` or `accept` would report that descriptor's readiness
/// under the old key (the same holds for an `fd_set` or a `pollfd`; see
/// [I/O safety](mod@crate::select#io-safety)); epoll and kqueue keep state in the
/// kernel, and what they do is in [closing a descriptor](self#closing-a-descriptor).
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
/// let all = [Backend::Select, Backend::LargeSelect, Backend::Poll, Backend::Epoll, Backend::Kqueue];
/// for backend in all.into_iter().filter(|b| b.is_supported()) {
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
    /// No sources yet, waiting with `backend`. Asks nothing of the kernel, so it
    /// cannot fail: [`Backend::Epoll`] and [`Backend::Kqueue`] make their
    /// descriptor at the first [`register`](Self::register) or
    /// [`wait`](Self::wait), which return its errors. Use
    /// [`try_new`](Self::try_new) to have them now.
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

    /// [`new`](Self::new) that makes what the backend needs from the kernel now:
    /// the epoll or kqueue descriptor. (Select and poll need nothing: for them it
    /// is `new`.)
    ///
    /// # Errors
    /// - `Unsupported` if the platform has not got the backend (see
    ///   [`Backend::is_supported`]);
    /// - those of `epoll_create1(2)` or `kqueue(2)`: `EMFILE` (the process is out
    ///   of descriptors), `ENFILE`, `ENOMEM`.
    ///
    /// # Platform-specific behavior
    /// [`Backend::Epoll`] on Linux and Android, [`Backend::Kqueue`] on Apple's
    /// systems and the BSDs; elsewhere `Unsupported`.
    ///
    /// # References
    /// - Linux [epoll_create1(2)](https://man7.org/linux/man-pages/man2/epoll_create1.2.html)
    /// - FreeBSD [kqueue(2)](https://man.freebsd.org/cgi/man.cgi?query=kqueue&sektion=2)
    ///
    /// # Examples
    /// ```
    /// use std::io::ErrorKind;
    /// use unp_select::sources::{Backend, Sources};
    ///
    /// for backend in [Backend::Poll, Backend::Epoll, Backend::Kqueue] {
    ///     match Sources::<usize>::try_new(backend) {
    ///         Ok(sources) => assert!(backend.is_supported() && sources.is_empty()),
    ///         Err(e) => {
    ///             assert_eq!(e.kind(), ErrorKind::Unsupported, "{backend:?}");
    ///             assert!(!backend.is_supported());
    ///         }
    ///     }
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn try_new(backend: Backend) -> io::Result<Sources<K>> {
        let mut sources = Sources::new(backend);
        sources.imp.open()?;
        Ok(sources)
    }

    /// The system call this waits with.
    ///
    /// # Examples
    /// See [`Backend`]'s example and [`new`](Self::new)'s.
    pub fn backend(&self) -> Backend {
        self.imp.backend()
    }

    /// How many sources are registered.
    ///
    /// # Examples
    /// See [`unregister`](Self::unregister)'s example.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no source is registered.
    ///
    /// # Examples
    /// See [`unregister`](Self::unregister)'s example.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Watches `fd` for `interest`, reporting it under `key`. O(1): an entry in a
    /// table by descriptor number, and with epoll and kqueue one system call.
    ///
    /// `fd` is borrowed (`&stream`, `&owned_fd`, a `&dyn AsFd`), as by every
    /// function of this crate that does not close it: the source keeps its number,
    /// and the caller keeps the descriptor.
    ///
    /// # Errors
    /// - `AlreadyExists` if `fd`'s number is registered already, under this key or
    ///   another: use [`set_interest`](Self::set_interest) to change what it is
    ///   watched for. Also when the number was closed and reused without
    ///   [`unregister`](Self::unregister) (see
    ///   [closing a descriptor](self#closing-a-descriptor)): unregister it, or
    ///   [`remove`](Self::remove) the old key, first. The message names the number;
    ///   [`key`](Self::key) says which key holds it (keys need not be `Debug`, so
    ///   the message cannot show it);
    /// - `InvalidInput` if the backend cannot hold it: [`Backend::Select`] and a
    ///   descriptor `>= FD_SETSIZE`, or [`Backend::LargeSelect`] and one above
    ///   [`LargeFdSet::MAX_FD`]. The message names the backends that can;
    /// - [`Backend::Epoll`], [`Backend::Kqueue`]: `Unsupported` where the platform
    ///   has not got them; at the first registration of a [`Sources::new`], the
    ///   errors of making their descriptor (`EMFILE`, `ENFILE`, `ENOMEM`); those of
    ///   `epoll_ctl(2)` or `kevent(2)`: `ENOMEM`, `ENOSPC` (epoll's
    ///   `max_user_watches`), `EPERM` (epoll: a regular file or a directory).
    ///
    /// Nothing is registered when it fails. A descriptor that is not open is not
    /// an error: the next wait reports it invalid (select, poll at once, epoll and
    /// kqueue because `EBADF` said so at registration).
    ///
    /// # Platform-specific behavior
    /// See each [`Backend`].
    ///
    /// # References
    /// [epoll_ctl(2)](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html),
    /// [kqueue(2)](https://man.freebsd.org/cgi/man.cgi?query=kqueue&sektion=2)
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
    ///
    /// A descriptor passed by value would be closed at the end of the call, leaving
    /// a dead number registered: it does not compile.
    /// ```compile_fail,E0308
    /// use std::os::fd::OwnedFd;
    /// use std::os::unix::net::UnixStream;
    /// use unp_select::sources::{Backend, Interest, Sources};
    /// let (a, _b) = UnixStream::pair()?;
    /// let mut sources = Sources::new(Backend::Poll);
    /// sources.register("a", OwnedFd::from(a), Interest::READ)?; // error[E0308]: expected `&_`, found `OwnedFd`
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn register(
        &mut self,
        key: K,
        fd: &(impl AsFd + ?Sized),
        interest: Interest,
    ) -> io::Result<()> {
        self.add(key, fd.as_fd().as_raw_fd(), interest, true)
    }

    /// [`register`](Self::register) for a descriptor the crate owns and always
    /// unregisters before it closes it (the server loop's): epoll then skips the
    /// check of each event against the file the number named (an `fstat` per
    /// event), which only a caller that may close first needs.
    pub(crate) fn register_owned(
        &mut self,
        key: K,
        fd: &(impl AsFd + ?Sized),
        interest: Interest,
    ) -> io::Result<()> {
        self.add(key, fd.as_fd().as_raw_fd(), interest, false)
    }

    fn add(&mut self, key: K, fd: RawFd, interest: Interest, checked: bool) -> io::Result<()> {
        let index = Self::index(fd)?;
        if self.entries.get(index).is_some_and(Option::is_some) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "descriptor {fd} is registered already (Sources::key says under which \
                     key): use set_interest to change its interest; if it was closed and \
                     its number reused, unregister it or remove the old key first"
                ),
            ));
        }
        let slot = self.imp.add(fd, interest, checked)?;
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
    /// that was reported invalid. With epoll and kqueue it is one system call when
    /// the interest changes, none when it does not; a source set to
    /// [`Interest::NONE`] leaves the kernel's list, and comes back with its next
    /// interest (checked anew then: the descriptor number may name another file).
    ///
    /// # Errors
    /// - `NotFound` if `fd` is not registered.
    /// - [`Backend::Epoll`], [`Backend::Kqueue`]: when a source comes back from
    ///   [`Interest::NONE`], the errors [`register`](Self::register) lists for
    ///   `epoll_ctl(2)` and `kevent(2)` (`ENOMEM`, `ENOSPC`, `EPERM`). The interest
    ///   stays as it was then.
    ///
    /// # Platform-specific behavior
    /// See each [`Backend`].
    ///
    /// # References
    /// [epoll_ctl(2)](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html),
    /// [kqueue(2)](https://man.freebsd.org/cgi/man.cgi?query=kqueue&sektion=2)
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
    pub fn set_interest(
        &mut self,
        fd: &(impl AsFd + ?Sized),
        interest: Interest,
    ) -> io::Result<()> {
        let fd = fd.as_fd().as_raw_fd();
        let slot = self.entry_mut(fd)?.slot;
        self.imp.modify(fd, slot, interest)?;
        self.entry_mut(fd)?.interest = interest;
        Ok(())
    }

    /// Stops watching `fd` and returns its key (`None` if it was not registered).
    /// Call it before closing the descriptor; if the descriptor is gone already,
    /// [`remove`](Self::remove) finds the source by its key instead. O(1).
    ///
    /// With epoll and kqueue it takes the descriptor out of the kernel's list
    /// (`EPOLL_CTL_DEL`, `EV_DELETE`). Called after the close, that fails (the
    /// number is closed, or names another file), which is not reported: the key is
    /// returned all the same. kqueue dropped the registration at the close; an
    /// epoll registration that a `dup` kept alive is dropped at its next event
    /// (see [closing a descriptor](self#closing-a-descriptor)).
    ///
    /// # Examples
    /// ```
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use unp_select::sources::{Backend, Events, Interest, Sources};
    ///
    /// let (mut a, b) = UnixStream::pair()?;
    /// let mut sources = Sources::new(Backend::Poll);
    /// assert!(sources.is_empty());
    /// sources.register("b", &b, Interest::READ)?;
    /// assert_eq!((sources.len(), sources.is_empty()), (1, false));
    /// a.write_all(b"x")?; // b is readable, but no longer watched:
    /// assert_eq!(sources.unregister(&b), Some("b"));
    /// assert_eq!(sources.unregister(&b), None);
    /// assert!(sources.is_empty());
    /// let mut events = Events::new();
    /// assert_eq!(sources.wait(&mut events, Some(Duration::ZERO))?, 0);
    /// drop(b); // closed after it was unregistered
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn unregister(&mut self, fd: &(impl AsFd + ?Sized)) -> Option<K> {
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
    pub fn key(&self, fd: &(impl AsFd + ?Sized)) -> Option<&K> {
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
    /// limit on descriptors is exceeded. [`Backend::Epoll`] and
    /// [`Backend::Kqueue`]: `Unsupported` where the platform has not got them; at
    /// the first wait of a [`Sources::new`] with nothing registered, the errors of
    /// making their descriptor; `EMFILE` and `ENOMEM` when the epoll list is built
    /// anew after a descriptor was closed before it was unregistered; `EBADF` in a
    /// `fork` child's copy of a kqueue [`Sources`]. A closed descriptor is not an
    /// error: it is reported for its key ([`Readiness::is_invalid`]).
    ///
    /// # Platform-specific behavior
    /// The resolution of `timeout`: microseconds for select, milliseconds for poll
    /// and epoll (so 1 ns waits 1 ms), nanoseconds for kqueue. Timeouts longer
    /// than the call takes are clamped: 10⁸ s for select and kqueue
    /// ([`MAX_TIMEOUT`](crate::select::MAX_TIMEOUT)), `c_int::MAX` ms (about 24.8
    /// days) for poll and epoll.
    ///
    /// # References
    /// [select(2)](https://man7.org/linux/man-pages/man2/select.2.html),
    /// [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html),
    /// [epoll_wait(2)](https://man7.org/linux/man-pages/man2/epoll_wait.2.html),
    /// [kqueue(2)](https://man.freebsd.org/cgi/man.cgi?query=kqueue&sektion=2),
    /// [signal(7)](https://man7.org/linux/man-pages/man7/signal.7.html) (on
    /// Linux none of them is restarted after a signal handler, `SA_RESTART` or
    /// not)
    ///
    /// # Examples
    /// The timeout passes with nothing ready; data ends the next wait early:
    /// ```
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::{Duration, Instant};
    /// use unp_select::sources::{Backend, Events, Interest, Sources};
    ///
    /// let (mut a, b) = UnixStream::pair()?;
    /// let mut sources = Sources::new(Backend::Select);
    /// sources.register(7, &b, Interest::READ)?;
    /// let mut events = Events::new();
    /// let start = Instant::now();
    /// assert_eq!(sources.wait(&mut events, Some(Duration::from_millis(20)))?, 0);
    /// assert!(start.elapsed() >= Duration::from_millis(20));
    ///
    /// let writer = std::thread::spawn(move || a.write_all(b"x"));
    /// assert_eq!(sources.wait(&mut events, Some(Duration::from_secs(5)))?, 1);
    /// assert_eq!(events.iter().next().map(|(k, r)| (*k, r.is_readable())), Some((7, true)));
    /// writer.join().unwrap()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
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
        let waited = self
            .imp
            .wait(timeout, events, &self.entries, &mut self.invalid);
        // Invalid descriptors are reported once, then left out until the caller says.
        if !self.invalid.is_empty() {
            for &fd in &self.invalid {
                if let Some(Some(entry)) = self.entries.get_mut(fd as usize) {
                    entry.interest = Interest::NONE;
                    // Cannot fail: taking a source out of the kernel's list (epoll,
                    // kqueue) ignores that its number is closed.
                    let _ = self.imp.modify(fd, entry.slot, Interest::NONE);
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

impl<K: Clone + PartialEq> Sources<K> {
    /// Stops watching the source registered under `key` and returns the descriptor
    /// number it held (`None` if no source has that key): [`unregister`](Self::unregister)
    /// for when the descriptor is gone. A descriptor closed before it was
    /// unregistered (by other code, or dropped with its object) leaves its source
    /// behind, and its number, once reused, cannot be registered again
    /// (`AlreadyExists`); this takes the source out by the one thing left, its key.
    ///
    /// Keys need not be unique: if several sources have `key`, the one with the
    /// lowest descriptor number is removed; call again for the next.
    ///
    /// O(highest registered descriptor number): sources are kept by descriptor
    /// number, so the key is found by a scan of that table (one comparison per
    /// number, as `select` scans its sets). [`register`](Self::register) and
    /// [`unregister`](Self::unregister) stay O(1), and keys need only be
    /// `PartialEq` for this method: a map from keys, which would make it O(1), would
    /// need `K: Hash + Eq` of every `Sources` and a hash on every registration, for
    /// a call made only when a descriptor was lost.
    ///
    /// # Platform-specific behavior
    /// What the kernel is told is what [`unregister`](Self::unregister) after a
    /// close tells it (see [closing a descriptor](self#closing-a-descriptor)):
    /// select and poll clear the number; kqueue forgot the registration at the
    /// close (`EV_DELETE` fails, unreported); epoll's `EPOLL_CTL_DEL` fails too,
    /// and a registration that a `dup` keeps alive is dropped at its next event,
    /// never reported under another key.
    ///
    /// # References
    /// [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html) (Q6),
    /// [epoll_ctl(2)](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html),
    /// [kqueue(2)](https://man.freebsd.org/cgi/man.cgi?query=kqueue&sektion=2)
    ///
    /// # Examples
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use unp_select::sources::{Backend, Interest, Sources};
    ///
    /// let mut sources = Sources::new(Backend::Poll);
    /// let (a, _peer) = UnixStream::pair()?;
    /// sources.register("lost", &a, Interest::READ)?;
    /// drop(a); // closed, never unregistered
    /// let (b, _peer) = UnixStream::pair()?; // may take the same number
    /// assert!(sources.remove(&"lost").is_some());
    /// assert_eq!(sources.remove(&"lost"), None);
    /// sources.register("b", &b, Interest::READ)?;
    /// assert_eq!(sources.len(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn remove(&mut self, key: &K) -> Option<RawFd> {
        let index = self
            .entries
            .iter()
            .position(|entry| entry.as_ref().is_some_and(|e| e.key == *key))?;
        // Every index of the table came from a non-negative `RawFd`.
        let fd = RawFd::try_from(index).ok()?;
        self.unregister_raw(fd).map(|_| fd)
    }
}
