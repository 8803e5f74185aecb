//! What a wait found: [`Readiness`] per source, collected in [`Events`].

use std::fmt;

/// What the kernel said of one source. See the [module documentation](super) for
/// how the backends differ.
///
/// # Examples
/// Each constant is one flag, and each test asks for one; a wait reports the
/// flags that hold:
/// ```
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use unp_select::sources::{Backend, Events, Interest, Readiness, Sources};
///
/// let flags = [
///     (Readiness::READABLE, Readiness::is_readable as fn(Readiness) -> bool),
///     (Readiness::WRITABLE, Readiness::is_writable),
///     (Readiness::HANGUP, Readiness::is_hangup),
///     (Readiness::ERROR, Readiness::is_error),
///     (Readiness::INVALID, Readiness::is_invalid),
/// ];
/// for (i, (flag, is)) in flags.iter().enumerate() {
///     for (j, (other, _)) in flags.iter().enumerate() {
///         assert_eq!(is(*other), i == j); // one flag each
///     }
///     assert!(!flag.is_empty() && !is(Readiness::EMPTY));
/// }
/// assert!(Readiness::EMPTY.is_empty() && Readiness::default().is_empty());
/// let r = Readiness::READABLE | Readiness::HANGUP;
/// assert_eq!(format!("{r:?}"), "READABLE | HANGUP");
/// // What `read` should be tried on: readable, hung up or in error.
/// let read_closed = [Readiness::READABLE, Readiness::HANGUP, Readiness::ERROR];
/// assert!(read_closed.iter().all(|r| r.is_read_closed()));
/// assert!(!(Readiness::WRITABLE | Readiness::INVALID).is_read_closed());
///
/// // A socket with data and room, and one whose peer is gone.
/// let (mut a, b) = UnixStream::pair()?;
/// let (c, d) = UnixStream::pair()?;
/// a.write_all(b"x")?;
/// drop(d);
/// let mut sources = Sources::new(Backend::Poll);
/// sources.register('b', &b, Interest::BOTH)?;
/// sources.register('c', &c, Interest::READ)?;
/// let mut events = Events::new();
/// sources.wait(&mut events, Some(Duration::from_secs(5)))?;
/// for (key, r) in &events {
///     match key {
///         'b' => assert!(r.is_readable() && r.is_writable() && !r.is_hangup()),
///         _ => assert!(r.is_read_closed()), // read says 0: end of file
///     }
/// }
/// assert_eq!(events.len(), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Readiness(u8);

impl Readiness {
    /// Nothing.
    ///
    /// # Examples
    /// See [`Readiness`]'s example.
    pub const EMPTY: Readiness = Readiness(0);
    /// A read would not block (data, end of file, an error, a connection to accept):
    /// select's read set, poll's `POLLIN`.
    ///
    /// # Examples
    /// See [`Readiness`]'s example.
    pub const READABLE: Readiness = Readiness(1);
    /// A write would not block: select's write set, poll's `POLLOUT`.
    ///
    /// # Examples
    /// See [`Readiness`]'s example.
    pub const WRITABLE: Readiness = Readiness(2);
    /// The peer hung up (poll's `POLLHUP`, epoll's `EPOLLHUP`, kqueue's `EV_EOF`;
    /// select reports it as readable).
    ///
    /// # Examples
    /// See [`Readiness`]'s example.
    pub const HANGUP: Readiness = Readiness(4);
    /// An error is pending on the descriptor (poll's `POLLERR`, epoll's `EPOLLERR`,
    /// kqueue's `EV_EOF` with an error in `fflags`; select reports it as readable
    /// or writable).
    ///
    /// # Examples
    /// See [`Readiness`]'s example.
    pub const ERROR: Readiness = Readiness(8);
    /// The descriptor is not open (poll's `POLLNVAL`; select fails with `EBADF` and
    /// the descriptor is then found by asking each one; epoll and kqueue say
    /// `EBADF` when it is registered). With epoll also when the number was closed,
    /// or names another file, while a `dup` keeps the registered file open (see
    /// [closing a descriptor](super#closing-a-descriptor)). The source is no longer
    /// watched until its interest is set again.
    ///
    /// # Examples
    /// See [`Readiness`]'s example.
    pub const INVALID: Readiness = Readiness(16);

    /// Whether [`READABLE`](Self::READABLE) is set.
    ///
    /// # Examples
    /// See [`Readiness`]'s example.
    pub const fn is_readable(self) -> bool {
        self.0 & Self::READABLE.0 != 0
    }

    /// Whether [`WRITABLE`](Self::WRITABLE) is set.
    ///
    /// # Examples
    /// See [`Readiness`]'s example.
    pub const fn is_writable(self) -> bool {
        self.0 & Self::WRITABLE.0 != 0
    }

    /// Whether [`HANGUP`](Self::HANGUP) is set.
    ///
    /// # Examples
    /// See [`Readiness`]'s example.
    pub const fn is_hangup(self) -> bool {
        self.0 & Self::HANGUP.0 != 0
    }

    /// Whether [`ERROR`](Self::ERROR) is set.
    ///
    /// # Examples
    /// See [`Readiness`]'s example.
    pub const fn is_error(self) -> bool {
        self.0 & Self::ERROR.0 != 0
    }

    /// Whether [`INVALID`](Self::INVALID) is set.
    ///
    /// # Examples
    /// See [`Readiness`]'s example.
    pub const fn is_invalid(self) -> bool {
        self.0 & Self::INVALID.0 != 0
    }

    /// Whether a `read` should be tried: readable, hung up or in error. This is the
    /// test that means the same on every backend (a pipe whose writer closed is
    /// "readable" to select and "hung up" to poll; `read` returns 0 either way).
    ///
    /// # Examples
    /// See [`Readiness`]'s example.
    pub const fn is_read_closed(self) -> bool {
        self.0 & (Self::READABLE.0 | Self::HANGUP.0 | Self::ERROR.0) != 0
    }

    /// Whether nothing is set.
    ///
    /// # Examples
    /// See [`Readiness`]'s example.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Readiness {
    type Output = Readiness;
    fn bitor(self, rhs: Readiness) -> Readiness {
        Readiness(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Readiness {
    fn bitor_assign(&mut self, rhs: Readiness) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::READABLE, "READABLE"),
            (Self::WRITABLE, "WRITABLE"),
            (Self::HANGUP, "HANGUP"),
            (Self::ERROR, "ERROR"),
            (Self::INVALID, "INVALID"),
        ];
        let mut first = true;
        for (flag, name) in names {
            if self.0 & flag.0 != 0 {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("EMPTY")?;
        }
        Ok(())
    }
}

/// The ready sources of one [`wait`](super::Sources::wait): `(key, readiness)`
/// pairs. Keep one and pass it to every wait: it is cleared and refilled, and its
/// memory is reused, so a loop allocates nothing in steady state.
///
/// # Examples
/// One `Events` for every wait of a loop:
/// ```
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use unp_select::sources::{Backend, Events, Interest, Iter, Sources};
///
/// let (mut a, b) = UnixStream::pair()?;
/// let (mut c, d) = UnixStream::pair()?;
/// let mut sources = Sources::new(Backend::Select);
/// sources.register("b", &b, Interest::READ)?;
/// sources.register("d", &d, Interest::READ)?;
///
/// let mut events = Events::with_capacity(64); // or Events::new(), no memory yet
/// assert!(Events::<&str>::new().is_empty());
/// assert_eq!(sources.wait(&mut events, Some(Duration::ZERO))?, 0);
/// assert!(events.is_empty());
///
/// a.write_all(b"x")?;
/// c.write_all(b"y")?;
/// sources.wait(&mut events, Some(Duration::from_secs(5)))?; // cleared, refilled
/// assert_eq!(events.len(), 2);
/// let ready: Iter<'_, &str> = events.iter(); // an ExactSizeIterator
/// assert_eq!(ready.len(), 2);
/// let mut keys: Vec<&str> = ready.map(|(key, _)| *key).collect();
/// keys.sort();
/// assert_eq!(keys, ["b", "d"]);
/// assert!(events.iter().all(|(_, r)| r.is_readable()));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Events<K> {
    list: Vec<(K, Readiness)>,
}

impl<K> Events<K> {
    /// No events, no memory yet.
    ///
    /// # Examples
    /// See [`Events`]'s example.
    pub fn new() -> Events<K> {
        Events { list: Vec::new() }
    }

    /// Room for `n` events before the first wait has to grow it.
    ///
    /// # Examples
    /// See [`Events`]'s example.
    pub fn with_capacity(n: usize) -> Events<K> {
        Events {
            list: Vec::with_capacity(n),
        }
    }

    /// How many sources were ready.
    ///
    /// # Examples
    /// See [`Events`]'s example.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether none was.
    ///
    /// # Examples
    /// See [`Events`]'s example.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The ready sources' keys and readiness: with select in ascending descriptor
    /// order (read set first, then sources ready for writing only), with poll in
    /// registration order (changed by removals), with epoll and kqueue in the
    /// kernel's order (descriptors found closed at registration first).
    ///
    /// # Examples
    /// See [`Events`]'s example.
    pub fn iter(&self) -> Iter<'_, K> {
        Iter {
            inner: self.list.iter(),
        }
    }

    pub(super) fn clear(&mut self) {
        self.list.clear();
    }

    pub(super) fn push(&mut self, key: K, readiness: Readiness) {
        self.list.push((key, readiness));
    }

    /// Adds `readiness` to the event at `index` (kqueue reports reading and writing
    /// as two events: they become one, as on the other backends).
    pub(super) fn merge(&mut self, index: usize, readiness: Readiness) {
        if let Some((_, r)) = self.list.get_mut(index) {
            *r |= readiness;
        }
    }
}

impl<'a, K> IntoIterator for &'a Events<K> {
    type Item = (&'a K, Readiness);
    type IntoIter = Iter<'a, K>;
    fn into_iter(self) -> Iter<'a, K> {
        self.iter()
    }
}

/// Iterator over [`Events`]: `(&key, readiness)`.
///
/// # Examples
/// See [`Events`]'s example.
#[derive(Clone, Debug)]
pub struct Iter<'a, K> {
    inner: std::slice::Iter<'a, (K, Readiness)>,
}

impl<'a, K> Iterator for Iter<'a, K> {
    type Item = (&'a K, Readiness);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|(k, r)| (k, *r))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<K> ExactSizeIterator for Iter<'_, K> {}
