//! `select(2)` and `pselect(2)` over safe descriptor sets.
//!
//! [`FdSet`] is a C `fd_set` with bounds-checked operations: it replaces the
//! `FD_ZERO`/`FD_SET`/`FD_CLR`/`FD_ISSET` macros, which write out of bounds (or abort
//! under `_FORTIFY_SOURCE`) for a descriptor at or above [`FD_SETSIZE`]. [`select`]
//! computes `nfds` itself from the highest descriptor in the sets, like UNP's `Select`
//! wrapper (section 6.3) but without the `maxfd + 1` bookkeeping.
//!
//! `select` **overwrites** its sets with the ready descriptors, so a loop keeps a master
//! set and passes a copy each time (UNP's `rset = allset`):
//!
//! ```
//! use std::io::{Read, Write};
//! use std::os::fd::AsRawFd;
//! use std::os::unix::net::UnixStream;
//! use std::time::Duration;
//! use unp_select::select::{select, FdSet};
//!
//! let (mut peer, mut sock) = UnixStream::pair()?;
//! peer.write_all(b"hello")?;
//!
//! let mut allset = FdSet::new();
//! allset.insert(sock.as_raw_fd())?;
//! loop {
//!     let mut rset = allset.clone();
//!     let nready = select(Some(&mut rset), None, None, Some(Duration::from_secs(5)))?;
//!     if nready == 0 {
//!         break; // timed out
//!     }
//!     for fd in &rset {
//!         assert_eq!(fd, sock.as_raw_fd());
//!         let mut buf = [0; 16];
//!         let n = sock.read(&mut buf)?;
//!         assert_eq!(&buf[..n], b"hello");
//!         allset.remove(fd); // done with it
//!     }
//!     if allset.is_empty() {
//!         break;
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Descriptors at or above `FD_SETSIZE` need [`LargeFdSet`] and [`select_large`], or
//! [`poll`](crate::poll::poll), which has no such limit.
//!
//! # Timeouts
//!
//! `None` blocks until a descriptor is ready; `Some(Duration::ZERO)` polls. Timeouts are
//! rounded **up** to the clock resolution of the call (microseconds for `select`,
//! nanoseconds for `pselect`) so that a tiny timeout never turns into a busy poll, and
//! timeouts above [`MAX_TIMEOUT`] (10⁸ seconds, about 3 years) are clamped to it.
//!
//! When a signal interrupts the wait, the call fails with
//! [`ErrorKind::Interrupted`](io::ErrorKind::Interrupted). [`select_restarting`] retries
//! with the *remaining* time, without relying on the kernel writing it back into the
//! `timeval` (Linux does, the BSDs and musl do not).
//!
//! # Closed descriptors
//!
//! POSIX has `select` fail with `EBADF` when a set holds a descriptor that is not open.
//! The kernel checks only the descriptors numbered below the size of the process's
//! descriptor table, which grows, never shrinking, to cover every descriptor opened
//! (on 64-bit Linux it starts at 64 slots). A number above the table is not open
//! either, but Linux clips `nfds` to the table size and leaves the bits above it as the
//! caller set them, so such a descriptor would come back "ready" without being counted.
//!
//! So every select function here compares the returned count with the descriptors left
//! in the sets (the kernel counts bits, so one descriptor ready for reading and writing
//! counts twice). If the sets hold more, the call fails with `EBADF` as well, and the
//! sets are cleared. The check costs one popcount per word below `nfds`.
//!
//! The check runs only after the kernel returns. If nothing else in the sets becomes
//! ready, the call waits out its timeout first, and with `None` it waits forever.
//!
//! # Platform-specific behavior
//!
//! - Linux clips `nfds` to the table size (`max_fds` in `fs/select.c`, a multiple of the
//!   word size). Measured: without the check, read set {1000} gave `Ok(0)` with 1000
//!   still in the set.
//! - FreeBSD clips `nfds` too, but its current source checks the bits above the table
//!   and fails with `EBADF` itself (`select_check_badfd` in `sys_generic.c`), leaving
//!   the sets unspecified as after any kernel error. Not run here.
//! - macOS: not verified here. xnu's source clips `nfds` like Linux, so the check should
//!   apply. One exception: a descriptor in the same 32-bit word as the end of the table
//!   would come back cleared (not ready) instead of set, and the check cannot see it.
//!
//! # References
//!
//! - POSIX [`select`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/select.html),
//!   [`pselect`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pselect.html),
//!   [`FD_SET`](https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/sys_select.h.html)
//! - Linux [select(2)](https://man7.org/linux/man-pages/man2/select.2.html),
//!   [select_tut(2)](https://man7.org/linux/man-pages/man2/select_tut.2.html)
//! - FreeBSD [select(2)](https://man.freebsd.org/cgi/man.cgi?query=select&sektion=2)
//! - Apple [select(2)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/select.2.html)
//! - UNP sections 6.3 (`select`), 6.9 (`pselect`) and 6.8 (the select-based echo server).

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::ptr;
use std::time::{Duration, Instant};

use nix::sys::signal::SigSet;

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

/// The longest timeout the select functions pass to the kernel: 10⁸ seconds (about
/// 3.17 years). Longer timeouts are clamped to it.
///
/// POSIX lets a system cap the timeout (it must allow at least 31 days) and use the cap
/// instead. Apple's kernel rejects `select` timeouts above 10⁸ seconds with `EINVAL`
/// (xnu's `itimerfix`; not verified on a Mac here), so the crate clamps on every
/// platform for the same behaviour everywhere.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use unp_select::select::MAX_TIMEOUT;
///
/// assert_eq!(MAX_TIMEOUT, Duration::from_secs(100_000_000));
/// ```
pub const MAX_TIMEOUT: Duration = Duration::from_secs(100_000_000);

const WORD_BITS: usize = FdWord::BITS as usize;

fn invalid_input(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `LargeFdSet::insert`'s error, out of line (see [`fd_out_of_range`]).
#[cold]
#[inline(never)]
fn large_fd_out_of_range(fd: RawFd) -> io::Error {
    invalid_input(format!(
        "fd {fd} is outside 0..={} accepted by LargeFdSet",
        LargeFdSet::MAX_FD
    ))
}

/// `FdSet::insert`'s error, out of line: the formatting code kept out of the hot path
/// lets the caller's loop compile as tightly as `FD_SET` (see benches/fdset.rs).
#[cold]
#[inline(never)]
fn fd_out_of_range(fd: RawFd) -> io::Error {
    invalid_input(format!(
        "fd {fd} is outside 0..{FD_SETSIZE} and cannot be stored in an fd_set \
         (use LargeFdSet or poll)"
    ))
}

// ---- bit operations on a slice of fd_set words ----------------------------------------
//
// Descriptor `fd` is bit `fd % WORD_BITS` of word `fd / WORD_BITS` on every supported
// platform (see `sys::FdWord`). These never index out of bounds: callers check ranges,
// and the slice indexing would panic rather than corrupt memory if they did not.

fn word_bit(fd: usize) -> (usize, FdWord) {
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

fn words_len(words: &[FdWord]) -> usize {
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
/// The set holds descriptor *numbers*; it does not own or borrow the descriptors, so
/// take them with [`AsRawFd::as_raw_fd`](std::os::fd::AsRawFd::as_raw_fd).
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
    pub fn new() -> FdSet {
        // SAFETY: fd_set is a C struct holding only an array of integers, for which the
        // all-zero bit pattern is valid; it is the empty set (what FD_ZERO produces).
        FdSet {
            raw: unsafe { std::mem::zeroed() },
        }
    }

    fn words(&self) -> &[FdWord; FD_SET_WORDS] {
        // SAFETY: `sys` asserts at compile time that fd_set has the size of
        // `[FdWord; FD_SET_WORDS]` and at least its alignment. fd_set is a C struct
        // made only of such integer words (no padding, no invalid bit patterns), so the
        // reference may be reinterpreted; the borrow keeps `self` alive and shared.
        unsafe { &*(&self.raw as *const libc::fd_set).cast::<[FdWord; FD_SET_WORDS]>() }
    }

    fn words_mut(&mut self) -> &mut [FdWord; FD_SET_WORDS] {
        // SAFETY: as in `words`; the exclusive borrow of `self` makes this the only
        // reference to the memory, and any bit pattern written is a valid fd_set.
        unsafe { &mut *(&mut self.raw as *mut libc::fd_set).cast::<[FdWord; FD_SET_WORDS]>() }
    }

    /// The words of an optional set, for `select_result`.
    fn words_of(set: Option<&mut FdSet>) -> Option<&mut [FdWord]> {
        set.map(|set| &mut set.words_mut()[..])
    }

    /// Adds `fd` to the set (`FD_SET`).
    ///
    /// Adding a descriptor already in the set does nothing.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](io::ErrorKind::InvalidInput) if `fd` is negative or
    /// not below [`FD_SETSIZE`]; the set is unchanged. Use [`LargeFdSet`] or
    /// [`poll`](crate::poll::poll) for such descriptors.
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
    /// assert_eq!(set.insert(-1).unwrap_err().kind(), ErrorKind::InvalidInput);
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
/// [`select_large`].
///
/// It stores the same bitmap as an `fd_set`, on the heap and as long as its highest
/// descriptor needs, which is what the `select` system call reads on Linux, FreeBSD and
/// macOS (see [`select_large`]). The operations match [`FdSet`]'s.
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
#[derive(Clone, Default)]
pub struct LargeFdSet {
    /// Bit `fd % WORD_BITS` of word `fd / WORD_BITS`; may have trailing zero words.
    words: Vec<FdWord>,
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
    /// [`ErrorKind::InvalidInput`](io::ErrorKind::InvalidInput) if `fd` is negative or
    /// above [`LargeFdSet::MAX_FD`]; the set is unchanged.
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

    /// The words of an optional set, for `select_result`.
    fn words_of(set: Option<&mut LargeFdSet>) -> Option<&mut [FdWord]> {
        set.map(|set| &mut set.words[..])
    }

    /// Grows the bitmap to at least `words` words (the kernel reads that many).
    fn pad_to(&mut self, words: usize) {
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

// ---- timeouts -------------------------------------------------------------------------

/// `timeout` clamped to [`MAX_TIMEOUT`] as a `timeval`, rounded up to whole microseconds.
fn to_timeval(timeout: Duration) -> libc::timeval {
    let t = timeout.min(MAX_TIMEOUT);
    let mut secs = t.as_secs();
    let mut micros = (t.subsec_nanos() + 999) / 1000;
    if micros == 1_000_000 {
        secs += 1;
        micros = 0;
    }
    // SAFETY: timeval is a C struct of integers (plus, on some targets, padding
    // integers); all-zero is a valid value.
    let mut tv: libc::timeval = unsafe { std::mem::zeroed() };
    // Lossless: secs <= 10^8 + 1 fits every time_t, micros < 10^6 every suseconds_t.
    tv.tv_sec = secs as libc::time_t;
    tv.tv_usec = micros as _;
    tv
}

/// `timeout` clamped to [`MAX_TIMEOUT`] as a `timespec`.
fn to_timespec(timeout: Duration) -> libc::timespec {
    let t = timeout.min(MAX_TIMEOUT);
    // SAFETY: timespec is a C struct of integers (plus, on some targets, padding
    // integers); all-zero is a valid value.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // Lossless: secs <= 10^8 fits every time_t, nanos < 10^9 every tv_nsec type.
    ts.tv_sec = t.as_secs() as libc::time_t;
    ts.tv_nsec = t.subsec_nanos() as _;
    ts
}

/// The end of a wait, for restarting a call after `EINTR` with the remaining time.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    /// No timeout: wait forever.
    Never,
    /// Wait until this instant.
    At(Instant),
    /// The deadline is not representable as an `Instant` (e.g. `Duration::MAX`): pass
    /// the timeout itself each time; the call clamps it anyway.
    Unrepresentable(Duration),
}

impl Deadline {
    pub(crate) fn after(timeout: Option<Duration>) -> Deadline {
        match timeout {
            None => Deadline::Never,
            Some(t) => match Instant::now().checked_add(t) {
                Some(at) => Deadline::At(at),
                None => Deadline::Unrepresentable(t),
            },
        }
    }

    /// The timeout for the next attempt: `None` for no deadline, zero once it passed.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        match *self {
            Deadline::Never => None,
            Deadline::At(at) => Some(at.saturating_duration_since(Instant::now())),
            Deadline::Unrepresentable(t) => Some(t),
        }
    }
}

/// Calls `call` until it does not fail with `EINTR`, restoring the three sets to their
/// original contents and passing the remaining time before each retry.
fn restarting<S: Clone>(
    mut read: Option<&mut S>,
    mut write: Option<&mut S>,
    mut except: Option<&mut S>,
    timeout: Option<Duration>,
    mut call: impl FnMut(
        Option<&mut S>,
        Option<&mut S>,
        Option<&mut S>,
        Option<Duration>,
    ) -> io::Result<usize>,
) -> io::Result<usize> {
    let saved = [
        read.as_deref().cloned(),
        write.as_deref().cloned(),
        except.as_deref().cloned(),
    ];
    let deadline = Deadline::after(timeout);
    let mut remaining = timeout;
    loop {
        match call(
            read.as_deref_mut(),
            write.as_deref_mut(),
            except.as_deref_mut(),
            remaining,
        ) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                for (set, orig) in [
                    read.as_deref_mut(),
                    write.as_deref_mut(),
                    except.as_deref_mut(),
                ]
                .into_iter()
                .zip(&saved)
                {
                    if let (Some(set), Some(orig)) = (set, orig) {
                        set.clone_from(orig);
                    }
                }
                remaining = deadline.remaining();
            }
            result => return result,
        }
    }
}

fn nfds_of(sets: impl IntoIterator<Item = Option<RawFd>>) -> libc::c_int {
    sets.into_iter()
        .flatten()
        .max()
        .map_or(0, |fd| fd.saturating_add(1))
}

fn fd_set_ptr(set: Option<&mut FdSet>) -> *mut libc::fd_set {
    set.map_or(ptr::null_mut(), |s| &mut s.raw as *mut libc::fd_set)
}

/// Number of bitmap words that hold descriptors `0..nfds`.
fn words_for(nfds: libc::c_int) -> usize {
    // `usize::div_ceil` needs Rust 1.73; nfds <= LargeFdSet::MAX_FD + 1 cannot overflow.
    usize::try_from(nfds).map_or(0, |n| (n + WORD_BITS - 1) / WORD_BITS)
}

/// The outcome of a select call that returned `rc` for `nfds` and left `sets` (the
/// read, write and except bitmaps, as passed): every entry point ends here.
///
/// On success the kernel returns the number of bits it set, over all three sets, and
/// clears every other bit it examined. A bit it did not examine stays set, so the sets
/// then hold more descriptors than `rc`: Linux (and, by its source, macOS) clips `nfds`
/// to the size of the descriptor table, and a descriptor above the table is not open.
/// That is `EBADF`, as POSIX specifies for a descriptor that is not open; the sets are
/// cleared.
///
/// Fewer members than `rc` would mean a bit counted twice, which POSIX's count rules
/// out (the sets are distinct `&mut` borrows, never the same memory); the kernel's
/// count is returned unchanged rather than turned into an error.
fn select_result(
    rc: libc::c_int,
    nfds: libc::c_int,
    sets: [Option<&mut [FdWord]>; 3],
) -> io::Result<usize> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let ready = rc as usize;
    let words = words_for(nfds);
    let members: usize = sets
        .iter()
        .flatten()
        .map(|set| words_len(&set[..words.min(set.len())]))
        .sum();
    if members > ready {
        for set in sets.into_iter().flatten() {
            set.fill(0);
        }
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    Ok(ready)
}

// ---- select / pselect -----------------------------------------------------------------

/// Waits until a descriptor in `read` is readable, one in `write` writable, one in
/// `except` has an exceptional condition (TCP out-of-band data), or `timeout` passes.
///
/// On success the sets are **overwritten** with the ready descriptors and the total
/// number of ready descriptors (counted once per set) is returned; `0` means the
/// timeout expired and all sets are empty. `nfds` is computed from the highest
/// descriptor in the sets. `None` as `timeout` waits forever; `Some(Duration::ZERO)`
/// polls. See [the module docs](self) for rounding and clamping of timeouts.
///
/// A descriptor is "ready" when an operation on it would not block, which includes
/// end-of-file and pending errors (UNP section 6.3 lists the conditions).
///
/// This is UNP's `Select` wrapper (section 6.3).
///
/// # Errors
///
/// - [`ErrorKind::Interrupted`](io::ErrorKind::Interrupted) (`EINTR`) when a signal
///   handler ran during the wait; see [`select_restarting`].
/// - `EBADF` when a set holds a descriptor that is not open. The kernel reports one
///   numbered below the size of the descriptor table. For one above the table, this
///   function reports it once the kernel returns, and clears all three sets. See
///   [Closed descriptors](self#closed-descriptors).
/// - `EINVAL`, `ENOMEM` from the kernel.
///
/// After any other error POSIX leaves the contents of the sets unspecified;
/// reinitialise them before reusing them.
///
/// # Platform-specific behavior
///
/// Linux, FreeBSD and macOS treat descriptors above the descriptor table differently;
/// see [the module docs](self#platform-specific-behavior). On failure (including
/// `EINTR`) Linux leaves the sets as they were (observed on Linux 6.18). glibc writes
/// the unslept time back into its `timeval` (this function does not expose it).
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use unp_select::select::{select, FdSet};
///
/// let (mut a, b) = UnixStream::pair()?;
/// let mut rset = FdSet::new();
/// rset.insert(b.as_raw_fd())?;
/// // Nothing to read yet: polling returns 0 and empties the set.
/// assert_eq!(select(Some(&mut rset.clone()), None, None, Some(Duration::ZERO))?, 0);
///
/// a.write_all(b"x")?;
/// let mut wset = FdSet::new();
/// wset.insert(a.as_raw_fd())?;
/// let n = select(Some(&mut rset), Some(&mut wset), None, Some(Duration::from_secs(5)))?;
/// assert_eq!(n, 2);
/// assert!(rset.contains(b.as_raw_fd()) && wset.contains(a.as_raw_fd()));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
///
/// - POSIX [`select`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/select.html)
/// - Linux [select(2)](https://man7.org/linux/man-pages/man2/select.2.html)
/// - FreeBSD [select(2)](https://man.freebsd.org/cgi/man.cgi?query=select&sektion=2)
/// - Apple [select(2)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/select.2.html)
pub fn select(
    mut read: Option<&mut FdSet>,
    mut write: Option<&mut FdSet>,
    mut except: Option<&mut FdSet>,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let nfds = nfds_of([
        read.as_deref().and_then(FdSet::highest),
        write.as_deref().and_then(FdSet::highest),
        except.as_deref().and_then(FdSet::highest),
    ]);
    let mut tv = timeout.map(to_timeval);
    let tv_ptr = tv
        .as_mut()
        .map_or(ptr::null_mut(), |tv| tv as *mut libc::timeval);
    // SAFETY: each set pointer is null or points to a live fd_set borrowed mutably for
    // the call; nfds <= FD_SETSIZE, so the kernel accesses only bits inside them.
    // `tv_ptr` is null or points to a live timeval that the call may overwrite.
    let rc = unsafe {
        libc::select(
            nfds,
            fd_set_ptr(read.as_deref_mut()),
            fd_set_ptr(write.as_deref_mut()),
            fd_set_ptr(except.as_deref_mut()),
            tv_ptr,
        )
    };
    select_result(rc, nfds, [read, write, except].map(FdSet::words_of))
}

/// [`select`] that restarts itself after `EINTR` with the remaining time.
///
/// Before each retry the sets are restored to what they were on entry, and the timeout
/// becomes what is left until `timeout` after the first call (measured with
/// [`Instant`], not taken from the kernel's `timeval`, which only Linux updates). Once
/// the deadline has passed, the last attempt polls, so the function returns `0` (or
/// descriptors that became ready) instead of waiting again. With `None` it waits
/// forever, ignoring interruptions.
///
/// Use it when signal handlers only record something for later; use [`select`] (and
/// handle `Interrupted`) or [`pselect`] when a signal must wake the loop.
///
/// # Errors
///
/// As [`select`], except that `EINTR` is never returned. A closed descriptor gives
/// `EBADF`: from the kernel at once if its number is below the descriptor table; if
/// above it, once the call returns, with the sets cleared. With `timeout` = `None` and
/// nothing else ready, that call never returns.
///
/// # Examples
///
/// ```
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use unp_select::select::{select_restarting, FdSet};
///
/// let (_a, b) = UnixStream::pair()?;
/// let mut rset = FdSet::new();
/// rset.insert(b.as_raw_fd())?;
/// let n = select_restarting(Some(&mut rset), None, None, Some(Duration::from_millis(20)))?;
/// assert_eq!(n, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
///
/// - POSIX [`select`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/select.html)
///   ("may modify the object pointed to by the timeout argument")
/// - Linux [select(2)](https://man7.org/linux/man-pages/man2/select.2.html), section
///   "The timeout"
pub fn select_restarting(
    read: Option<&mut FdSet>,
    write: Option<&mut FdSet>,
    except: Option<&mut FdSet>,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    restarting(read, write, except, timeout, select)
}

/// [`select`] that also replaces the thread's signal mask during the wait, atomically.
///
/// With `sigmask` = `Some(mask)` the thread's signal mask is `mask` while waiting and is
/// restored on return. The race-free pattern (UNP section 6.9): keep a signal blocked,
/// and unblock it only inside `pselect`. A signal that arrived before the call stays
/// pending and interrupts `pselect` at once (`Interrupted`), instead of being handled
/// between a check of a flag and a blocking `select`, which would then sleep.
/// `None` keeps the current mask (plain `select` with a `timespec` timeout).
///
/// The timeout has nanosecond resolution and is not modified by the call.
///
/// # Errors
///
/// As [`select`]. `Interrupted` is the expected outcome when a signal unblocked by
/// `sigmask` is delivered. A closed descriptor gives `EBADF`: from the kernel if its
/// number is below the descriptor table; if above it, from this function once the call
/// returns, with the sets cleared. After other errors the sets' contents are
/// unspecified.
///
/// # Platform-specific behavior
///
/// Linux (glibc, musl) and FreeBSD implement `pselect` as one system call, so the mask
/// change and the wait are atomic (tested here on Linux). Older macOS releases emulated
/// `pselect` in user space with `sigprocmask` + `select`, which reopens the race; whether
/// a given macOS release does so is not verified here.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use nix::sys::signal::SigSet;
/// use unp_select::select::{pselect, FdSet};
///
/// // Sleep 10 ms with every signal blocked.
/// let n = pselect(None, None, None, Some(Duration::from_millis(10)), Some(&SigSet::all()))?;
/// assert_eq!(n, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
///
/// - POSIX [`pselect`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pselect.html)
/// - Linux [pselect(2)](https://man7.org/linux/man-pages/man2/pselect.2.html)
/// - FreeBSD [pselect(2)](https://man.freebsd.org/cgi/man.cgi?query=pselect&sektion=2)
/// - Apple [pselect(2)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/pselect.2.html)
pub fn pselect(
    mut read: Option<&mut FdSet>,
    mut write: Option<&mut FdSet>,
    mut except: Option<&mut FdSet>,
    timeout: Option<Duration>,
    sigmask: Option<&SigSet>,
) -> io::Result<usize> {
    let nfds = nfds_of([
        read.as_deref().and_then(FdSet::highest),
        write.as_deref().and_then(FdSet::highest),
        except.as_deref().and_then(FdSet::highest),
    ]);
    let ts = timeout.map(to_timespec);
    let ts_ptr = ts
        .as_ref()
        .map_or(ptr::null(), |ts| ts as *const libc::timespec);
    let mask_ptr = sigmask.map_or(ptr::null(), |m| m.as_ref() as *const libc::sigset_t);
    // SAFETY: as in `select` for the sets (nfds <= FD_SETSIZE); `ts_ptr` and `mask_ptr`
    // are null or point to live values that the call only reads.
    let rc = unsafe {
        libc::pselect(
            nfds,
            fd_set_ptr(read.as_deref_mut()),
            fd_set_ptr(write.as_deref_mut()),
            fd_set_ptr(except.as_deref_mut()),
            ts_ptr,
            mask_ptr,
        )
    };
    select_result(rc, nfds, [read, write, except].map(FdSet::words_of))
}

/// [`select`] for [`LargeFdSet`]s, which may hold descriptors at or above
/// [`FD_SETSIZE`].
///
/// The bitmaps are passed to the same `select` system call with `nfds` = highest
/// descriptor + 1; shorter sets are first padded with zero words so that the kernel
/// reads `nfds` bits from each. On success the sets hold the ready descriptors.
///
/// For many descriptors [`poll`](crate::poll::poll) is usually the better tool: its cost
/// depends on the number of descriptors, not on the highest one.
///
/// # Errors
///
/// As [`select`]. A closed descriptor gives `EBADF`: from the kernel if its number is
/// below the descriptor table; if above it (say 5000 in a process that never had that
/// many descriptors), from this function once the call returns, with the sets cleared.
/// After other errors the sets' contents are unspecified.
///
/// # Platform-specific behavior
///
/// - Linux and FreeBSD: the kernel accepts any `nfds` and reads
///   `ceil(nfds / bits per word)` words from each set; Linux clips `nfds` to the size of
///   the descriptor table (see [the module docs](self#platform-specific-behavior)).
///   Verified on Linux with a descriptor above 1500, and `EBADF` for a closed one at
///   5000.
/// - macOS: the default (UNIX-conformant) `select` fails with `EINVAL` when
///   `nfds > FD_SETSIZE`; this function calls `select$DARWIN_EXTSN`, the variant C
///   programs get with `_DARWIN_UNLIMITED_SELECT`, which has no such limit. This is
///   checked to compile, not run on a Mac.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use unp_select::select::{select_large, LargeFdSet};
///
/// let (mut a, b) = UnixStream::pair()?;
/// a.write_all(b"x")?;
/// let mut rset = LargeFdSet::new();
/// rset.insert(b.as_raw_fd())?;
/// assert_eq!(select_large(Some(&mut rset), None, None, Some(Duration::from_secs(5)))?, 1);
/// assert!(rset.contains(b.as_raw_fd()));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
///
/// - Linux [select(2)](https://man7.org/linux/man-pages/man2/select.2.html), section
///   "BUGS" (on `fd_set`s larger than `FD_SETSIZE`)
/// - Apple [select(2)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/select.2.html)
///   (`_DARWIN_UNLIMITED_SELECT`)
pub fn select_large(
    mut read: Option<&mut LargeFdSet>,
    mut write: Option<&mut LargeFdSet>,
    mut except: Option<&mut LargeFdSet>,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let nfds = nfds_of([
        read.as_deref().and_then(LargeFdSet::highest),
        write.as_deref().and_then(LargeFdSet::highest),
        except.as_deref().and_then(LargeFdSet::highest),
    ]);
    // At least one word so that no passed pointer is dangling.
    let words = words_for(nfds).max(1);
    let ptr_of = |set: &mut Option<&mut LargeFdSet>| match set {
        Some(set) => {
            set.pad_to(words);
            set.words.as_mut_ptr()
        }
        None => ptr::null_mut(),
    };
    let (r, w, e) = (ptr_of(&mut read), ptr_of(&mut write), ptr_of(&mut except));
    let mut tv = timeout.map(to_timeval);
    let tv_ptr = tv
        .as_mut()
        .map_or(ptr::null_mut(), |tv| tv as *mut libc::timeval);
    // SAFETY: every non-null set pointer points to a Vec of at least
    // ceil(nfds / WORD_BITS) words (padded above), borrowed mutably for the call and
    // not touched until it returns; `tv_ptr` is null or a live timeval.
    let rc = unsafe { crate::sys::select_unlimited(nfds, r, w, e, tv_ptr) };
    select_result(rc, nfds, [read, write, except].map(LargeFdSet::words_of))
}

/// [`select_large`] that restarts after `EINTR` with the remaining time, restoring the
/// sets first; see [`select_restarting`].
///
/// # Errors
///
/// As [`select_large`], except that `EINTR` is never returned. A closed descriptor
/// gives `EBADF`: from the kernel at once if its number is below the descriptor table;
/// if above it, once the call returns, with the sets cleared. With `timeout` = `None`
/// and nothing else ready, that call never returns.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use unp_select::select::{select_large_restarting, LargeFdSet};
///
/// let mut rset = LargeFdSet::new();
/// assert_eq!(select_large_restarting(Some(&mut rset), None, None, Some(Duration::ZERO))?, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
///
/// - Linux [select(2)](https://man7.org/linux/man-pages/man2/select.2.html)
pub fn select_large_restarting(
    read: Option<&mut LargeFdSet>,
    write: Option<&mut LargeFdSet>,
    except: Option<&mut LargeFdSet>,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    restarting(read, write, except, timeout, select_large)
}

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
    fn timeval_rounds_up_and_clamps() {
        let check = |d: Duration, secs: u64, micros: u32| {
            let tv = to_timeval(d);
            assert_eq!(tv.tv_sec as u64, secs, "{d:?}");
            assert_eq!(tv.tv_usec as u32, micros, "{d:?}");
        };
        check(Duration::from_nanos(1), 0, 1);
        check(Duration::new(1, 999_999_001), 2, 0);
        check(Duration::new(1, 999_999_000), 1, 999_999);
        check(Duration::ZERO, 0, 0);
        check(Duration::MAX, MAX_TIMEOUT.as_secs(), 0);
        let ts = to_timespec(Duration::MAX);
        assert_eq!(ts.tv_sec as u64, MAX_TIMEOUT.as_secs());
        assert_eq!(ts.tv_nsec, 0);
        let ts = to_timespec(Duration::new(3, 7));
        assert_eq!(ts.tv_sec, 3);
        assert_eq!(ts.tv_nsec, 7);
    }

    #[test]
    fn deadline_counts_down_and_saturates() {
        assert_eq!(Deadline::after(None).remaining(), None);
        assert_eq!(
            Deadline::after(Some(Duration::MAX)).remaining(),
            Some(Duration::MAX)
        );
        let d = Deadline::after(Some(Duration::from_millis(30)));
        let first = d.remaining().unwrap();
        assert!(first <= Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(d.remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn restarting_restores_sets_and_shrinks_timeout() {
        let mut read = FdSet::new();
        read.insert(3).unwrap();
        let mut except = FdSet::new();
        except.insert(9).unwrap();
        let (orig_read, orig_except) = (read, except);
        let mut timeouts = Vec::new();
        let mut calls = 0;
        let n = restarting(
            Some(&mut read),
            None,
            Some(&mut except),
            Some(Duration::from_millis(50)),
            |r, w, e, t| {
                calls += 1;
                timeouts.push(t);
                let (r, e) = (r.unwrap(), e.unwrap());
                assert!(w.is_none());
                // Every attempt sees the original sets.
                assert_eq!((*r, *e), (orig_read, orig_except));
                if calls < 4 {
                    // Clobber them like a kernel might, then fail with EINTR.
                    r.clear();
                    e.insert(100).unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                    Err(io::Error::from_raw_os_error(libc::EINTR))
                } else {
                    Ok(7)
                }
            },
        )
        .unwrap();
        assert_eq!((n, calls), (7, 4));
        assert_eq!(timeouts[0], Some(Duration::from_millis(50)));
        for pair in timeouts.windows(2) {
            assert!(pair[1].unwrap() < pair[0].unwrap(), "{timeouts:?}");
        }
    }

    #[test]
    fn restarting_passes_other_errors_through() {
        let err = restarting::<FdSet>(None, None, None, None, |_, _, _, t| {
            assert_eq!(t, None);
            Err(io::Error::from_raw_os_error(libc::EBADF))
        })
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }

    /// Eight words with the given descriptors.
    fn bitmap(fds: &[usize]) -> Vec<FdWord> {
        let mut words = vec![0; 8];
        for &fd in fds {
            let (w, bit) = word_bit(fd);
            words[w] |= bit;
        }
        words
    }

    #[test]
    fn words_for_rounds_up() {
        assert_eq!(words_for(-1), 0);
        assert_eq!(words_for(0), 0);
        assert_eq!(words_for(1), 1);
        assert_eq!(words_for(WORD_BITS as libc::c_int), 1);
        assert_eq!(words_for(WORD_BITS as libc::c_int + 1), 2);
    }

    #[test]
    fn select_result_accepts_a_count_that_matches_the_sets() {
        // Descriptor 3 ready for reading and writing counts twice.
        let (hi, nfds) = (WORD_BITS + 6, WORD_BITS as libc::c_int + 7);
        let (mut r, mut w) = (bitmap(&[3]), bitmap(&[3, hi]));
        let n = select_result(3, nfds, [Some(&mut r), Some(&mut w), None]).unwrap();
        assert_eq!(n, 3);
        assert_eq!((r, w), (bitmap(&[3]), bitmap(&[3, hi])));
        assert_eq!(select_result(0, 0, [None, None, None]).unwrap(), 0);
        let mut e = bitmap(&[]);
        assert_eq!(select_result(0, 1, [None, None, Some(&mut e)]).unwrap(), 0);
    }

    #[test]
    fn select_result_is_ebadf_when_a_bit_was_not_counted() {
        for (rc, read, write) in [
            (0, &[200][..], &[][..]), // alone, the kernel returned 0
            (1, &[][..], &[3, 200][..]),
            (1, &[200][..], &[3][..]),
            (2, &[3, 200][..], &[3][..]),
        ] {
            let (mut r, mut w, mut e) = (bitmap(read), bitmap(write), bitmap(&[]));
            let err =
                select_result(rc, 201, [Some(&mut r), Some(&mut w), Some(&mut e)]).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{read:?} {write:?}");
            assert_eq!((&r, &w, &e), (&bitmap(&[]), &bitmap(&[]), &bitmap(&[])));
        }
    }

    #[test]
    fn select_result_keeps_the_kernels_count_when_it_is_higher() {
        // Cannot happen with distinct sets; the kernel's count is not second-guessed.
        let mut r = bitmap(&[3]);
        assert_eq!(select_result(2, 4, [Some(&mut r), None, None]).unwrap(), 2);
        assert_eq!(r, bitmap(&[3]));
    }

    #[test]
    fn select_result_counts_only_the_words_below_nfds() {
        // The kernel reads and writes ceil(nfds / WORD_BITS) words; nothing after them
        // is counted (the select functions never leave bits there), and a shorter slice
        // is not indexed past its end.
        let mut r = bitmap(&[3, 200]);
        assert_eq!(select_result(1, 4, [Some(&mut r), None, None]).unwrap(), 1);
        let mut short = vec![0 as FdWord; 1];
        short[0] = 1 << 3;
        assert_eq!(
            select_result(1, 201, [Some(&mut short), None, None]).unwrap(),
            1
        );
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
}
