//! What a wait found: [`Readiness`] per source, collected in [`Events`].

use std::fmt;

/// What the kernel said of one source. See the [module documentation](super) for
/// how the backends differ.
///
/// # Examples
/// ```
/// use unp_select::sources::Readiness;
/// let r = Readiness::READABLE | Readiness::HANGUP;
/// assert!(r.is_readable() && r.is_hangup() && !r.is_writable());
/// assert!(Readiness::HANGUP.is_read_closed());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Readiness(u8);

impl Readiness {
    /// Nothing.
    pub const EMPTY: Readiness = Readiness(0);
    /// A read would not block (data, end of file, an error, a connection to accept):
    /// select's read set, poll's `POLLIN`.
    pub const READABLE: Readiness = Readiness(1);
    /// A write would not block: select's write set, poll's `POLLOUT`.
    pub const WRITABLE: Readiness = Readiness(2);
    /// The peer hung up (poll's `POLLHUP`, epoll's `EPOLLHUP`, kqueue's `EV_EOF`;
    /// select reports it as readable).
    pub const HANGUP: Readiness = Readiness(4);
    /// An error is pending on the descriptor (poll's `POLLERR`, epoll's `EPOLLERR`,
    /// kqueue's `EV_EOF` with an error in `fflags`; select reports it as readable
    /// or writable).
    pub const ERROR: Readiness = Readiness(8);
    /// The descriptor is not open (poll's `POLLNVAL`; select fails with `EBADF` and
    /// the descriptor is then found by asking each one; epoll and kqueue say
    /// `EBADF` when it is registered). With epoll also when the number was closed,
    /// or names another file, while a `dup` keeps the registered file open (see
    /// [closing a descriptor](super#closing-a-descriptor)). The source is no longer
    /// watched until its interest is set again.
    pub const INVALID: Readiness = Readiness(16);

    /// Whether [`READABLE`](Self::READABLE) is set.
    pub const fn is_readable(self) -> bool {
        self.0 & Self::READABLE.0 != 0
    }

    /// Whether [`WRITABLE`](Self::WRITABLE) is set.
    pub const fn is_writable(self) -> bool {
        self.0 & Self::WRITABLE.0 != 0
    }

    /// Whether [`HANGUP`](Self::HANGUP) is set.
    pub const fn is_hangup(self) -> bool {
        self.0 & Self::HANGUP.0 != 0
    }

    /// Whether [`ERROR`](Self::ERROR) is set.
    pub const fn is_error(self) -> bool {
        self.0 & Self::ERROR.0 != 0
    }

    /// Whether [`INVALID`](Self::INVALID) is set.
    pub const fn is_invalid(self) -> bool {
        self.0 & Self::INVALID.0 != 0
    }

    /// Whether a `read` should be tried: readable, hung up or in error. This is the
    /// test that means the same on every backend (a pipe whose writer closed is
    /// "readable" to select and "hung up" to poll; `read` returns 0 either way).
    pub const fn is_read_closed(self) -> bool {
        self.0 & (Self::READABLE.0 | Self::HANGUP.0 | Self::ERROR.0) != 0
    }

    /// Whether nothing is set.
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
/// ```
/// use unp_select::sources::Events;
/// let events: Events<u64> = Events::with_capacity(64);
/// assert!(events.is_empty());
/// assert_eq!(events.iter().count(), 0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Events<K> {
    list: Vec<(K, Readiness)>,
}

impl<K> Events<K> {
    /// No events, no memory yet.
    pub fn new() -> Events<K> {
        Events { list: Vec::new() }
    }

    /// Room for `n` events before the first wait has to grow it.
    pub fn with_capacity(n: usize) -> Events<K> {
        Events {
            list: Vec::with_capacity(n),
        }
    }

    /// How many sources were ready.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The ready sources' keys and readiness: with select in ascending descriptor
    /// order (read set first, then sources ready for writing only), with poll in
    /// registration order (changed by removals), with epoll and kqueue in the
    /// kernel's order (descriptors found closed at registration first).
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
