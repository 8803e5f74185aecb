//! The descriptor sets: [`FdSet`] (a C `fd_set`), [`LargeFdSet`] (the same bitmap,
//! growable), their iterator, and the sealed [`FdSetLike`] trait that lets code (the
//! select functions, the echo server's driver) run on either.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use crate::sys::{FdWord, FD_SET_WORDS};

/// The number of descriptors an [`FdSet`] can hold: descriptors `0..FD_SETSIZE`.
///
/// 1024 on Linux, macOS and FreeBSD.
///
/// # Examples
///
/// ```
/// use unp_select::select::{FdSet, FD_SETSIZE};
///
/// let mut set = FdSet::new();
/// assert!(set.insert(FD_SETSIZE as i32 - 1).is_ok());
/// assert!(set.insert(FD_SETSIZE as i32).is_err());
/// ```
///
/// # References
///
/// - POSIX [`<sys/select.h>`](https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/sys_select.h.html)
pub const FD_SETSIZE: usize = crate::sys::FD_SETSIZE;

pub(super) const WORD_BITS: usize = FdWord::BITS as usize;

fn invalid_input(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// The error for a negative `fd` given to a set's `insert`. No descriptor is negative:
/// −1 is what a failed `open`/`socket`/`accept` returns, or UNP's mark of a free
/// `client[]` slot, so the advice for large descriptors would mislead.
fn negative_fd(fd: RawFd) -> io::Error {
    invalid_input(format!("negative file descriptor {fd}"))
}

/// `LargeFdSet::insert`'s error, out of line (see [`fd_out_of_range`]).
#[cold]
#[inline(never)]
fn large_fd_out_of_range(fd: RawFd) -> io::Error {
    if fd < 0 {
        return negative_fd(fd);
    }
    invalid_input(format!(
        "fd {fd} is above LargeFdSet::MAX_FD ({}) (use poll)",
        LargeFdSet::MAX_FD
    ))
}

/// `FdSet::insert`'s error, out of line: the formatting code kept out of the hot path
/// lets the caller's loop compile as tightly as `FD_SET` (see benches/fdset.rs).
#[cold]
#[inline(never)]
fn fd_out_of_range(fd: RawFd) -> io::Error {
    if fd < 0 {
        return negative_fd(fd);
    }
    invalid_input(format!(
        "fd {fd} is not below FD_SETSIZE ({FD_SETSIZE}) and cannot be stored in an fd_set \
         (use LargeFdSet or poll)"
    ))
}

// ---- bit operations on a slice of fd_set words ----------------------------------------
//
// Descriptor `fd` is bit `fd % WORD_BITS` of word `fd / WORD_BITS` on every supported
// platform (see `sys::FdWord`). These never index out of bounds: callers check ranges,
// and the slice indexing would panic rather than corrupt memory if they did not.

pub(super) fn word_bit(fd: usize) -> (usize, FdWord) {
    (fd / WORD_BITS, 1 << (fd % WORD_BITS))
}

fn words_contains(words: &[FdWord], fd: RawFd) -> bool {
    match usize::try_from(fd) {
        Ok(fd) => {
            let (w, bit) = word_bit(fd);
            words.get(w).is_some_and(|word| word & bit != 0)
        }
        Err(_) => false,
    }
}

fn words_remove(words: &mut [FdWord], fd: RawFd) {
    if let Ok(fd) = usize::try_from(fd) {
        let (w, bit) = word_bit(fd);
        if let Some(word) = words.get_mut(w) {
            *word &= !bit;
        }
    }
}

fn words_highest(words: &[FdWord]) -> Option<RawFd> {
    let (i, word) = words.iter().enumerate().rev().find(|(_, w)| **w != 0)?;
    let fd = i * WORD_BITS + (WORD_BITS - 1 - word.leading_zeros() as usize);
    // Sets only ever hold descriptors that came in as a non-negative RawFd.
    RawFd::try_from(fd).ok()
}

pub(super) fn words_len(words: &[FdWord]) -> usize {
    words.iter().map(|w| w.count_ones() as usize).sum()
}

/// An iterator over the descriptors of an [`FdSet`] or a [`LargeFdSet`], in ascending
/// order.
///
/// Created by [`FdSet::iter`] and [`LargeFdSet::iter`].
///
/// # Examples
///
/// ```
/// use unp_select::select::FdSet;
///
/// let mut set = FdSet::new();
/// set.insert(9)?;
/// set.insert(3)?;
/// let fds: Vec<i32> = set.iter().collect();
/// assert_eq!(fds, [3, 9]);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    words: &'a [FdWord],
    /// Index of the word `current` came from.
    index: usize,
    /// The bits of word `index` not yet yielded.
    current: FdWord,
}

impl<'a> Iter<'a> {
    fn new(words: &'a [FdWord]) -> Iter<'a> {
        Iter {
            words,
            index: 0,
            current: words.first().copied().unwrap_or(0),
        }
    }
}

impl Iterator for Iter<'_> {
    type Item = RawFd;

    fn next(&mut self) -> Option<RawFd> {
        while self.current == 0 {
            self.index += 1;
            self.current = *self.words.get(self.index)?;
        }
        let bit = self.current.trailing_zeros() as usize;
        self.current &= self.current - 1; // clear the lowest set bit
        RawFd::try_from(self.index * WORD_BITS + bit).ok()
    }
}

impl std::iter::FusedIterator for Iter<'_> {}

// ---- FdSet ------------------------------------------------------------------------------

/// A set of descriptors `0..FD_SETSIZE`: a C `fd_set` with checked operations.
///
/// It replaces the C macros: [`new`](FdSet::new)/[`clear`](FdSet::clear) are `FD_ZERO`,
/// [`insert`](FdSet::insert) is `FD_SET`, [`remove`](FdSet::remove) is `FD_CLR` and
/// [`contains`](FdSet::contains) is `FD_ISSET`. Unlike the macros, no descriptor value
/// can touch memory outside the set: `insert` rejects descriptors outside
/// `0..FD_SETSIZE` with an error, `remove` and `contains` ignore them.
///
/// The set holds descriptor *numbers*; it does not own or borrow the descriptors. Take
/// them with [`AsRawFd::as_raw_fd`], or pass the descriptor itself to
/// [`insert_fd`](FdSet::insert_fd), [`remove_fd`](FdSet::remove_fd) and
/// [`contains_fd`](FdSet::contains_fd), which cannot be handed a number that is not an
/// open descriptor (see [I/O safety](mod@crate::select#io-safety)).
///
/// `FdSet` is plain data, 128 bytes with `FD_SETSIZE` = 1024, and `Copy` like the C
/// struct, so UNP's `rset = allset` is `let mut rset = allset;`. `Debug` prints the
/// descriptors as a set.
///
/// # Examples
///
/// ```
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use unp_select::select::FdSet;
///
/// let (a, _b) = UnixStream::pair()?;
/// let mut set = FdSet::new();
/// set.insert(a.as_raw_fd())?;
/// assert!(set.contains(a.as_raw_fd()));
/// assert_eq!(set.highest(), Some(a.as_raw_fd()));
/// assert!(set.insert(-1).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
///
/// - POSIX [`FD_SET`](https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/sys_select.h.html)
/// - Linux [FD_SET(3)](https://man7.org/linux/man-pages/man3/FD_SET.3.html)
#[derive(Clone, Copy)]
pub struct FdSet {
    raw: libc::fd_set,
}

impl FdSet {
    /// Returns an empty set (`FD_ZERO`).
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::FdSet;
    ///
    /// assert!(FdSet::new().is_empty());
    /// ```
    #[inline]
    pub fn new() -> FdSet {
        FdSet {
            raw: crate::sys::fd_set_empty(),
        }
    }

    /// The bitmap, word by word.
    #[inline]
    pub(super) fn words(&self) -> &[FdWord; FD_SET_WORDS] {
        crate::sys::fd_set_words(&self.raw)
    }

    #[inline]
    pub(super) fn words_mut(&mut self) -> &mut [FdWord; FD_SET_WORDS] {
        crate::sys::fd_set_words_mut(&mut self.raw)
    }

    /// Adds `fd` to the set (`FD_SET`).
    ///
    /// Adding a descriptor already in the set does nothing.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](io::ErrorKind::InvalidInput), and the set is
    /// unchanged, if `fd`:
    ///
    /// - is negative (message: `negative file descriptor -1`): no descriptor is, so
    ///   this is a caller's bug, such as a failed call's −1 or a free slot's marker;
    /// - is not below [`FD_SETSIZE`]: a real descriptor that an `fd_set` cannot hold;
    ///   the message says to use [`LargeFdSet`] or [`poll`](crate::poll::poll), which
    ///   take it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use unp_select::select::{FdSet, FD_SETSIZE};
    ///
    /// let mut set = FdSet::new();
    /// set.insert(4)?;
    /// assert!(set.contains(4));
    /// assert_eq!(set.insert(FD_SETSIZE as i32).unwrap_err().kind(), ErrorKind::InvalidInput);
    /// let err = set.insert(-1).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidInput);
    /// assert_eq!(err.to_string(), "negative file descriptor -1");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn insert(&mut self, fd: RawFd) -> io::Result<()> {
        match usize::try_from(fd) {
            Ok(i) if i < FD_SETSIZE => {
                let (w, bit) = word_bit(i);
                self.words_mut()[w] |= bit;
                Ok(())
            }
            _ => Err(fd_out_of_range(fd)),
        }
    }

    /// Removes `fd` from the set (`FD_CLR`). A descriptor not in the set, or outside
    /// `0..FD_SETSIZE`, is ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::FdSet;
    ///
    /// let mut set = FdSet::new();
    /// set.insert(4)?;
    /// set.remove(4);
    /// set.remove(-7); // no-op
    /// assert!(set.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn remove(&mut self, fd: RawFd) {
        words_remove(self.words_mut(), fd);
    }

    /// Returns whether `fd` is in the set (`FD_ISSET`); `false` for any descriptor
    /// outside `0..FD_SETSIZE`.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::FdSet;
    ///
    /// let mut set = FdSet::new();
    /// set.insert(0)?;
    /// assert!(set.contains(0));
    /// assert!(!set.contains(1));
    /// assert!(!set.contains(i32::MAX));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn contains(&self, fd: RawFd) -> bool {
        words_contains(self.words(), fd)
    }

    /// Adds the descriptor `fd` to the set: [`insert`](FdSet::insert) for a borrowed
    /// descriptor instead of a number.
    ///
    /// The borrow proves that `fd` is open **now**; the set keeps only its number, so
    /// remove it (or stop selecting on the set) before the descriptor is closed. See
    /// [I/O safety](mod@crate::select#io-safety).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](io::ErrorKind::InvalidInput) if the descriptor's
    /// number is not below [`FD_SETSIZE`]; the set is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use unp_select::select::FdSet;
    ///
    /// let (a, b) = UnixStream::pair()?;
    /// let mut set = FdSet::new();
    /// set.insert_fd(&a)?;
    /// assert!(set.contains_fd(&a));
    /// assert!(!set.contains_fd(&b));
    /// set.remove_fd(&a);
    /// assert!(set.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// Any descriptor behind a reference goes in: `&owned_fd`, `&borrowed_fd`, a
    /// `&dyn AsFd`. An owned one passed by value would be closed at the end of the
    /// call, leaving a dead number in the set: it does not compile.
    ///
    /// ```compile_fail,E0308
    /// use std::os::fd::OwnedFd;
    /// use std::os::unix::net::UnixStream;
    /// use unp_select::select::FdSet;
    ///
    /// let (a, _b) = UnixStream::pair()?;
    /// let mut set = FdSet::new();
    /// set.insert_fd(OwnedFd::from(a))?; // error[E0308]: expected `&_`, found `OwnedFd`
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// ```
    /// use std::os::fd::{AsFd, OwnedFd};
    /// use std::os::unix::net::UnixStream;
    /// use unp_select::select::FdSet;
    ///
    /// let (a, b) = UnixStream::pair()?;
    /// let (a, b): (OwnedFd, Box<dyn AsFd>) = (a.into(), Box::new(b));
    /// let mut set = FdSet::new();
    /// set.insert_fd(&a)?;
    /// set.insert_fd(&a.as_fd())?;
    /// set.insert_fd(&*b)?; // a `&dyn AsFd`
    /// assert_eq!(set.len(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn insert_fd(&mut self, fd: &(impl AsFd + ?Sized)) -> io::Result<()> {
        self.insert(fd.as_fd().as_raw_fd())
    }

    /// Removes the descriptor `fd` from the set: [`remove`](FdSet::remove) for a borrowed
    /// descriptor. Call it before closing the descriptor, while its number is still
    /// its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use unp_select::select::FdSet;
    ///
    /// let (a, _b) = UnixStream::pair()?;
    /// let mut set = FdSet::new();
    /// set.insert_fd(&a)?;
    /// set.remove_fd(&a);
    /// drop(a); // closed after leaving the set
    /// assert!(set.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn remove_fd(&mut self, fd: &(impl AsFd + ?Sized)) {
        self.remove(fd.as_fd().as_raw_fd());
    }

    /// Returns whether the descriptor `fd` is in the set: [`contains`](FdSet::contains)
    /// for a borrowed descriptor, e.g. after [`select`](super::select) to ask
    /// whether a socket became ready.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use unp_select::select::{select, FdSet};
    ///
    /// let (mut a, b) = UnixStream::pair()?;
    /// a.write_all(b"x")?;
    /// let mut rset = FdSet::new();
    /// rset.insert_fd(&b)?;
    /// select(Some(&mut rset), None, None, Some(Duration::from_secs(5)))?;
    /// assert!(rset.contains_fd(&b));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn contains_fd(&self, fd: &(impl AsFd + ?Sized)) -> bool {
        self.contains(fd.as_fd().as_raw_fd())
    }

    /// Removes every descriptor (`FD_ZERO`).
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::FdSet;
    ///
    /// let mut set = FdSet::new();
    /// set.insert(1)?;
    /// set.clear();
    /// assert!(set.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn clear(&mut self) {
        *self.words_mut() = [0; FD_SET_WORDS];
    }

    /// Returns the highest descriptor in the set, or `None` if it is empty.
    ///
    /// `highest() + 1` is the `nfds` argument of `select(2)` (UNP's `maxfd + 1`).
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::FdSet;
    ///
    /// let mut set = FdSet::new();
    /// assert_eq!(set.highest(), None);
    /// set.insert(3)?;
    /// set.insert(700)?;
    /// assert_eq!(set.highest(), Some(700));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn highest(&self) -> Option<RawFd> {
        words_highest(self.words())
    }

    /// Returns the number of descriptors in the set.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::FdSet;
    ///
    /// let mut set = FdSet::new();
    /// set.insert(3)?;
    /// set.insert(3)?;
    /// set.insert(5)?;
    /// assert_eq!(set.len(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        words_len(self.words())
    }

    /// Returns whether the set holds no descriptor.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::FdSet;
    ///
    /// assert!(FdSet::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.words().iter().all(|w| *w == 0)
    }

    /// Returns an iterator over the descriptors in the set, in ascending order.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::FdSet;
    ///
    /// let mut set = FdSet::new();
    /// for fd in [12, 0, 64] {
    ///     set.insert(fd)?;
    /// }
    /// assert_eq!(set.iter().collect::<Vec<_>>(), [0, 12, 64]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn iter(&self) -> Iter<'_> {
        Iter::new(self.words())
    }

    /// Returns the underlying C `fd_set`, for passing to C code.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::FdSet;
    ///
    /// let set = FdSet::new();
    /// let raw: *const libc::fd_set = set.as_raw();
    /// assert!(!raw.is_null());
    /// ```
    pub fn as_raw(&self) -> &libc::fd_set {
        &self.raw
    }

    /// Returns the underlying C `fd_set` mutably, for passing to C code (any bit
    /// pattern is a valid set).
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::FdSet;
    ///
    /// let mut a = FdSet::new();
    /// a.insert(5)?;
    /// let mut b = FdSet::new();
    /// *b.as_raw_mut() = *a.as_raw();
    /// assert_eq!(a, b);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn as_raw_mut(&mut self) -> &mut libc::fd_set {
        &mut self.raw
    }
}

impl Default for FdSet {
    /// The empty set, like [`FdSet::new`].
    fn default() -> FdSet {
        FdSet::new()
    }
}

impl PartialEq for FdSet {
    fn eq(&self, other: &FdSet) -> bool {
        self.words() == other.words()
    }
}

impl Eq for FdSet {}

impl std::hash::Hash for FdSet {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.words().hash(state);
    }
}

impl fmt::Debug for FdSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a FdSet {
    type Item = RawFd;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

// ---- LargeFdSet -------------------------------------------------------------------------

/// A growable descriptor set for descriptors at or above [`FD_SETSIZE`], used with
/// [`select_large`](super::select_large).
///
/// It stores the same bitmap as an `fd_set`, on the heap and as long as its highest
/// descriptor needs, which is what the `select` system call reads on Linux, FreeBSD and
/// macOS (see [`select_large`](super::select_large)). The operations match [`FdSet`]'s,
/// borrowed-descriptor ones included ([`insert_fd`](LargeFdSet::insert_fd) and so on).
///
/// Descriptors up to [`LargeFdSet::MAX_FD`] are accepted, so a bogus descriptor such as
/// `i32::MAX` is an error instead of a 256 MiB allocation.
///
/// # Examples
///
/// ```
/// use unp_select::select::LargeFdSet;
///
/// let mut set = LargeFdSet::new();
/// set.insert(5000)?;
/// set.insert(7)?;
/// assert_eq!(set.highest(), Some(5000));
/// assert_eq!(set.iter().collect::<Vec<_>>(), [7, 5000]);
/// assert!(set.insert(i32::MAX).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Default)]
pub struct LargeFdSet {
    /// Bit `fd % WORD_BITS` of word `fd / WORD_BITS`; may have trailing zero words.
    words: Vec<FdWord>,
}

/// `clone_from` reuses the bitmap's memory, so UNP's `rset = allset` before each
/// `select` allocates nothing once the set has reached its size.
impl Clone for LargeFdSet {
    fn clone(&self) -> LargeFdSet {
        LargeFdSet {
            words: self.words.clone(),
        }
    }

    fn clone_from(&mut self, source: &LargeFdSet) {
        self.words.clone_from(&source.words);
    }
}

impl LargeFdSet {
    /// The highest descriptor a `LargeFdSet` accepts: 2²⁴ − 1 (16,777,215), which
    /// bounds the bitmap at 2 MiB.
    ///
    /// This is far above the default per-process descriptor limits (Linux caps
    /// `RLIMIT_NOFILE` at `fs.nr_open`, 1,048,576 by default).
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::LargeFdSet;
    ///
    /// let mut set = LargeFdSet::new();
    /// assert!(set.insert(LargeFdSet::MAX_FD).is_ok());
    /// assert!(set.insert(LargeFdSet::MAX_FD + 1).is_err());
    /// ```
    pub const MAX_FD: RawFd = (1 << 24) - 1;

    /// Returns an empty set; it allocates nothing until a descriptor is inserted.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::LargeFdSet;
    ///
    /// assert!(LargeFdSet::new().is_empty());
    /// ```
    pub fn new() -> LargeFdSet {
        LargeFdSet { words: Vec::new() }
    }

    /// Adds `fd` to the set, growing the bitmap as needed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](io::ErrorKind::InvalidInput), and the set is
    /// unchanged, if `fd` is negative (message: `negative file descriptor -1`) or above
    /// [`LargeFdSet::MAX_FD`] (the message says to use [`poll`](crate::poll::poll)).
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::LargeFdSet;
    ///
    /// let mut set = LargeFdSet::new();
    /// set.insert(2000)?;
    /// assert!(set.contains(2000));
    /// assert!(set.insert(-1).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn insert(&mut self, fd: RawFd) -> io::Result<()> {
        if !(0..=LargeFdSet::MAX_FD).contains(&fd) {
            return Err(large_fd_out_of_range(fd));
        }
        let (w, bit) = word_bit(fd as usize);
        match self.words.get_mut(w) {
            Some(word) => *word |= bit,
            None => self.grow_and_insert(w, bit),
        }
        Ok(())
    }

    /// The rare path of `insert`, out of line so the common one stays small.
    #[cold]
    #[inline(never)]
    fn grow_and_insert(&mut self, w: usize, bit: FdWord) {
        self.words.resize(w + 1, 0);
        self.words[w] |= bit;
    }

    /// Removes `fd` from the set; a descriptor not in the set is ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::LargeFdSet;
    ///
    /// let mut set = LargeFdSet::new();
    /// set.insert(2000)?;
    /// set.remove(2000);
    /// set.remove(-1);
    /// assert!(set.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn remove(&mut self, fd: RawFd) {
        words_remove(&mut self.words, fd);
    }

    /// Returns whether `fd` is in the set; `false` for negative descriptors.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::LargeFdSet;
    ///
    /// let mut set = LargeFdSet::new();
    /// set.insert(1500)?;
    /// assert!(set.contains(1500));
    /// assert!(!set.contains(1501));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn contains(&self, fd: RawFd) -> bool {
        words_contains(&self.words, fd)
    }

    /// Adds the descriptor `fd` to the set: [`insert`](LargeFdSet::insert) for a borrowed
    /// descriptor instead of a number.
    ///
    /// The borrow proves that `fd` is open **now**; the set keeps only its number, so
    /// remove it (or stop selecting on the set) before the descriptor is closed. See
    /// [I/O safety](mod@crate::select#io-safety).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](io::ErrorKind::InvalidInput) if the descriptor's
    /// number is above [`LargeFdSet::MAX_FD`]; the set is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use unp_select::select::LargeFdSet;
    ///
    /// let (a, b) = UnixStream::pair()?;
    /// let mut set = LargeFdSet::new();
    /// set.insert_fd(&a)?;
    /// assert!(set.contains_fd(&a));
    /// assert!(!set.contains_fd(&b));
    /// set.remove_fd(&a);
    /// assert!(set.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn insert_fd(&mut self, fd: &(impl AsFd + ?Sized)) -> io::Result<()> {
        self.insert(fd.as_fd().as_raw_fd())
    }

    /// Removes the descriptor `fd` from the set: [`remove`](LargeFdSet::remove) for a borrowed
    /// descriptor, as [`FdSet::remove_fd`] (`FD_CLR`). Call it before closing the
    /// descriptor, while its number is still its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use unp_select::select::LargeFdSet;
    ///
    /// let (a, b) = UnixStream::pair()?;
    /// let mut set = LargeFdSet::new();
    /// set.insert_fd(&a)?;
    /// set.insert_fd(&b)?;
    /// set.remove_fd(&a);
    /// drop(a); // closed after leaving the set
    /// assert_eq!(set.len(), 1);
    /// assert!(set.contains_fd(&b));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn remove_fd(&mut self, fd: &(impl AsFd + ?Sized)) {
        self.remove(fd.as_fd().as_raw_fd());
    }

    /// Returns whether the descriptor `fd` is in the set: [`contains`](LargeFdSet::contains)
    /// for a borrowed descriptor (`FD_ISSET`), e.g. after
    /// [`select_large`](super::select_large) to ask whether a socket became ready, as
    /// [`FdSet::contains_fd`] after [`select`](super::select).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use unp_select::select::{select_large, LargeFdSet};
    ///
    /// let (mut a, b) = UnixStream::pair()?;
    /// let (_c, d) = UnixStream::pair()?;
    /// a.write_all(b"x")?;
    /// let mut rset = LargeFdSet::new();
    /// rset.insert_fd(&b)?;
    /// rset.insert_fd(&d)?;
    /// select_large(Some(&mut rset), None, None, Some(Duration::from_secs(5)))?;
    /// assert!(rset.contains_fd(&b)); // data waiting
    /// assert!(!rset.contains_fd(&d)); // nothing to read: cleared by select
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn contains_fd(&self, fd: &(impl AsFd + ?Sized)) -> bool {
        self.contains(fd.as_fd().as_raw_fd())
    }

    /// Removes every descriptor, keeping the allocation.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::LargeFdSet;
    ///
    /// let mut set = LargeFdSet::new();
    /// set.insert(1500)?;
    /// set.clear();
    /// assert!(set.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn clear(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }

    /// Returns the highest descriptor in the set, or `None` if it is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::LargeFdSet;
    ///
    /// let mut set = LargeFdSet::new();
    /// set.insert(1500)?;
    /// set.insert(3)?;
    /// assert_eq!(set.highest(), Some(1500));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn highest(&self) -> Option<RawFd> {
        words_highest(&self.words)
    }

    /// Returns the number of descriptors in the set.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::LargeFdSet;
    ///
    /// let mut set = LargeFdSet::new();
    /// set.insert(1500)?;
    /// set.insert(3)?;
    /// assert_eq!(set.len(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        words_len(&self.words)
    }

    /// Returns whether the set holds no descriptor.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::LargeFdSet;
    ///
    /// assert!(LargeFdSet::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// Returns an iterator over the descriptors in the set, in ascending order.
    ///
    /// # Examples
    ///
    /// ```
    /// use unp_select::select::LargeFdSet;
    ///
    /// let mut set = LargeFdSet::new();
    /// set.insert(4000)?;
    /// set.insert(1)?;
    /// assert_eq!(set.iter().collect::<Vec<_>>(), [1, 4000]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn iter(&self) -> Iter<'_> {
        Iter::new(&self.words)
    }

    /// Grows the bitmap to at least `words` words (the kernel reads that many).
    pub(super) fn pad_to(&mut self, words: usize) {
        if self.words.len() < words {
            self.words.resize(words, 0);
        }
    }
}

impl From<&FdSet> for LargeFdSet {
    /// Copies the descriptors of an [`FdSet`].
    ///
    /// ```
    /// use unp_select::select::{FdSet, LargeFdSet};
    ///
    /// let mut small = FdSet::new();
    /// small.insert(10)?;
    /// assert_eq!(LargeFdSet::from(&small).iter().collect::<Vec<_>>(), [10]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn from(set: &FdSet) -> LargeFdSet {
        let mut words = set.words().to_vec();
        while words.last() == Some(&0) {
            words.pop();
        }
        LargeFdSet { words }
    }
}

impl PartialEq for LargeFdSet {
    /// Two sets are equal when they hold the same descriptors, whatever their capacity.
    fn eq(&self, other: &LargeFdSet) -> bool {
        let (short, long) = if self.words.len() <= other.words.len() {
            (&self.words, &other.words)
        } else {
            (&other.words, &self.words)
        };
        long[..short.len()] == short[..] && long[short.len()..].iter().all(|w| *w == 0)
    }
}

impl Eq for LargeFdSet {}

impl fmt::Debug for LargeFdSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a LargeFdSet {
    type Item = RawFd;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

// ---- FdSetLike ------------------------------------------------------------------------

mod sealed {
    use crate::sys::FdWord;

    /// What the select functions need of a set beyond its public operations. Private,
    /// so [`FdSetLike`](super::FdSetLike) cannot be implemented outside this crate and
    /// may gain methods without a breaking change.
    pub trait Sealed {
        /// Whether the set may hold descriptors at or above `FD_SETSIZE`, so that its
        /// select call must lift that limit on `nfds` (`select$DARWIN_EXTSN` on Apple).
        const UNLIMITED: bool;

        /// The bitmap as the kernel reads and writes it, at least `words` words long
        /// (zero words are appended if needed; a fixed-size set is always long enough
        /// for the `nfds` it can produce).
        fn kernel_words(&mut self, words: usize) -> &mut [FdWord];
    }
}

/// The operations [`FdSet`] and [`LargeFdSet`] share, for code that runs on either:
/// a select loop written once, run on UNP's `fd_set` or on the growable set for
/// descriptors past [`FD_SETSIZE`] (the crate's [`EchoServer`](crate::EchoServer)
/// runs its one loop both ways, in `run` and `run_large`).
///
/// Each method is the type's inherent method of the same name, which has the details
/// and an example; [`FdSetLike::select`] is [`select`](super::select) for `FdSet` and
/// [`select_large`](super::select_large) for `LargeFdSet`.
///
/// The trait is sealed: only this crate's two set types implement it, so methods can be
/// added to it in minor releases.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use unp_select::select::{FdSet, FdSetLike, LargeFdSet};
///
/// /// Which of `fds` are readable within `timeout`.
/// fn readable<S: FdSetLike>(fds: &[i32], timeout: Duration) -> std::io::Result<Vec<i32>> {
///     let mut rset = S::default();
///     for &fd in fds {
///         rset.insert(fd)?;
///     }
///     S::select(Some(&mut rset), None, None, Some(timeout))?;
///     Ok(rset.iter().collect())
/// }
///
/// let (mut a, b) = UnixStream::pair()?;
/// let (_c, d) = UnixStream::pair()?;
/// a.write_all(b"x")?;
/// let fds = [b.as_raw_fd(), d.as_raw_fd()];
/// let ready = readable::<FdSet>(&fds, Duration::from_secs(5))?;
/// assert_eq!(ready, [b.as_raw_fd()]);
/// assert_eq!(readable::<LargeFdSet>(&fds, Duration::from_secs(5))?, ready);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait FdSetLike: sealed::Sealed + Clone + Default + Eq + fmt::Debug {
    /// Adds `fd` to the set ([`FdSet::insert`], [`LargeFdSet::insert`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](io::ErrorKind::InvalidInput) if the set cannot hold
    /// `fd`; the set is unchanged.
    fn insert(&mut self, fd: RawFd) -> io::Result<()>;

    /// Removes `fd` from the set, ignoring a descriptor that is not in it
    /// ([`FdSet::remove`], [`LargeFdSet::remove`]).
    fn remove(&mut self, fd: RawFd);

    /// Returns whether `fd` is in the set ([`FdSet::contains`], [`LargeFdSet::contains`]).
    fn contains(&self, fd: RawFd) -> bool;

    /// Removes every descriptor ([`FdSet::clear`], [`LargeFdSet::clear`]).
    fn clear(&mut self);

    /// Returns the highest descriptor in the set ([`FdSet::highest`],
    /// [`LargeFdSet::highest`]).
    fn highest(&self) -> Option<RawFd>;

    /// Returns the number of descriptors in the set ([`FdSet::len`], [`LargeFdSet::len`]).
    fn len(&self) -> usize;

    /// Returns whether the set holds no descriptor ([`FdSet::is_empty`],
    /// [`LargeFdSet::is_empty`]).
    fn is_empty(&self) -> bool;

    /// Returns an iterator over the descriptors in ascending order ([`FdSet::iter`],
    /// [`LargeFdSet::iter`]).
    fn iter(&self) -> Iter<'_>;

    /// Waits on sets of this type: [`select`](super::select) for `FdSet`,
    /// [`select_large`](super::select_large) for `LargeFdSet`.
    ///
    /// # Errors
    ///
    /// As [`select`](super::select).
    fn select(
        read: Option<&mut Self>,
        write: Option<&mut Self>,
        except: Option<&mut Self>,
        timeout: Option<Duration>,
    ) -> io::Result<usize>;
}

impl sealed::Sealed for FdSet {
    const UNLIMITED: bool = false;

    #[inline]
    fn kernel_words(&mut self, _words: usize) -> &mut [FdWord] {
        self.words_mut()
    }
}

/// The trait on a set: each method is the set's inherent method of the same name,
/// and `select` the set's own `select` (a trait impl on two types: a macro).
macro_rules! fd_set_like {
    ($set:ident, $select:path) => {
        impl FdSetLike for $set {
            #[inline]
            fn insert(&mut self, fd: RawFd) -> io::Result<()> {
                $set::insert(self, fd)
            }
            #[inline]
            fn remove(&mut self, fd: RawFd) {
                $set::remove(self, fd)
            }
            #[inline]
            fn contains(&self, fd: RawFd) -> bool {
                $set::contains(self, fd)
            }
            #[inline]
            fn clear(&mut self) {
                $set::clear(self)
            }
            fn highest(&self) -> Option<RawFd> {
                $set::highest(self)
            }
            fn len(&self) -> usize {
                $set::len(self)
            }
            fn is_empty(&self) -> bool {
                $set::is_empty(self)
            }
            fn iter(&self) -> Iter<'_> {
                $set::iter(self)
            }
            fn select(
                read: Option<&mut Self>,
                write: Option<&mut Self>,
                except: Option<&mut Self>,
                timeout: Option<Duration>,
            ) -> io::Result<usize> {
                $select(read, write, except, timeout)
            }
        }
    };
}

fd_set_like!(FdSet, super::select);

impl sealed::Sealed for LargeFdSet {
    const UNLIMITED: bool = true;

    fn kernel_words(&mut self, words: usize) -> &mut [FdWord] {
        self.pad_to(words);
        &mut self.words
    }
}

fd_set_like!(LargeFdSet, super::select_large);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_layout_matches_fd_set_size() {
        assert_eq!(FD_SET_WORDS * WORD_BITS, FD_SETSIZE);
        assert_eq!(std::mem::size_of::<FdSet>(), FD_SETSIZE / 8);
    }

    #[test]
    fn bits_land_where_the_c_macros_put_them() {
        // FD_SET(fd) sets bit fd % NFDBITS of word fd / NFDBITS.
        let mut set = FdSet::new();
        set.insert(0).unwrap();
        set.insert(WORD_BITS as RawFd + 1).unwrap();
        set.insert(FD_SETSIZE as RawFd - 1).unwrap();
        let words = set.words();
        assert_eq!(words[0], 1);
        assert_eq!(words[1], 2);
        assert_eq!(words[FD_SET_WORDS - 1], 1 << (WORD_BITS - 1));
    }

    #[test]
    fn large_set_equality_ignores_capacity() {
        let mut a = LargeFdSet::new();
        let mut b = LargeFdSet::new();
        a.insert(5).unwrap();
        b.insert(5).unwrap();
        b.pad_to(100);
        assert_eq!(a, b);
        b.insert(3000).unwrap();
        assert_ne!(a, b);
        assert_ne!(b, a);
    }

    #[test]
    fn kernel_words_are_long_enough() {
        use sealed::Sealed;
        let mut small = FdSet::new();
        assert_eq!(small.kernel_words(1).len(), FD_SET_WORDS);
        let mut large = LargeFdSet::new();
        assert_eq!(large.kernel_words(0).len(), 0);
        assert_eq!(large.kernel_words(3).len(), 3);
        large.insert(10 * WORD_BITS as RawFd).unwrap();
        assert_eq!(large.kernel_words(3).len(), 11);
        assert!(large.contains(10 * WORD_BITS as RawFd));
    }
}
