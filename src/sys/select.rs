//! `select(2)` and `pselect(2)`: the `fd_set` layout, the C time structs the calls take,
//! and the calls themselves, including the one for sets larger than `FD_SETSIZE`.
//!
//! Every function here is safe: the sets come in as word slices whose length is checked
//! against `nfds` before the kernel sees them.

use std::io;
use std::os::fd::RawFd;

use super::cvt_count;
use nix::sys::signal::SigSet;

/// `FD_SETSIZE` of the platform's C library: the number of bits in one `fd_set`.
#[allow(clippy::unnecessary_cast)]
pub(crate) const FD_SETSIZE: usize = libc::FD_SETSIZE as usize;

/// One word of an `fd_set` bitmap, as the C library declares it (`__fd_mask`/`fd_mask`).
///
/// Every supported platform stores descriptor `fd` in word `fd / FdWord::BITS`, bit
/// `fd % FdWord::BITS`, so only the word **width** differs: it matters on big-endian
/// machines, where a byte view of the set would put the bits elsewhere.
/// glibc/musl/Android/FreeBSD: `unsigned long` (`long` in glibc; same width);
/// Apple: `__int32_t`; OpenBSD/NetBSD: `uint32_t`.
#[cfg(any(target_vendor = "apple", target_os = "openbsd", target_os = "netbsd"))]
pub(crate) type FdWord = u32;
/// One word of an `fd_set` bitmap (see the Apple/OpenBSD/NetBSD version).
#[cfg(not(any(target_vendor = "apple", target_os = "openbsd", target_os = "netbsd")))]
pub(crate) type FdWord = libc::c_ulong;

/// Number of [`FdWord`]s in one `fd_set`.
pub(crate) const FD_SET_WORDS: usize = FD_SETSIZE / FdWord::BITS as usize;

const WORD_BITS: usize = FdWord::BITS as usize;

// The fd_set layout the select module relies on, checked at compile time: the struct is
// exactly FD_SETSIZE bits made of whole `FdWord`s and is exactly as aligned as a word,
// so it may be viewed as `[FdWord; FD_SET_WORDS]` and a word slice that long may be
// passed where the C library expects an `fd_set`. A platform where this is false fails
// to compile instead of corrupting memory.
const _: () = {
    assert!(FD_SETSIZE % WORD_BITS == 0);
    assert!(std::mem::size_of::<libc::fd_set>() == FD_SET_WORDS * std::mem::size_of::<FdWord>());
    assert!(std::mem::align_of::<libc::fd_set>() == std::mem::align_of::<FdWord>());
};

/// An empty `fd_set` (what `FD_ZERO` produces).
#[inline]
pub(crate) fn fd_set_empty() -> libc::fd_set {
    // SAFETY: fd_set is a C struct holding only an array of integers, for which the
    // all-zero bit pattern is valid; it is the empty set.
    unsafe { std::mem::zeroed() }
}

/// The words of `set`.
#[inline]
pub(crate) fn fd_set_words(set: &libc::fd_set) -> &[FdWord; FD_SET_WORDS] {
    // SAFETY: the assertions above make fd_set the size and alignment of
    // `[FdWord; FD_SET_WORDS]`, and fd_set is a C struct made only of such integer words
    // (no padding, no invalid bit patterns), so the reference may be reinterpreted; the
    // returned borrow keeps `set` alive and shared.
    unsafe { &*(set as *const libc::fd_set).cast::<[FdWord; FD_SET_WORDS]>() }
}

/// The words of `set`, mutably; any bit pattern written is a valid `fd_set`.
#[inline]
pub(crate) fn fd_set_words_mut(set: &mut libc::fd_set) -> &mut [FdWord; FD_SET_WORDS] {
    // SAFETY: as in `fd_set_words`; the exclusive borrow of `set` makes this the only
    // reference to the memory, and every bit pattern of the words is a valid fd_set.
    unsafe { &mut *(set as *mut libc::fd_set).cast::<[FdWord; FD_SET_WORDS]>() }
}

/// A `timeval` of `secs` seconds and `micros` microseconds.
///
/// The caller keeps `secs` within `time_t` and `micros` below 10⁶ (the select module
/// clamps timeouts to 10⁸ s), so the casts are lossless on every target.
pub(crate) fn timeval(secs: u64, micros: u32) -> libc::timeval {
    // SAFETY: timeval is a C struct of integers (plus, on some targets, padding
    // integers); all-zero is a valid value.
    let mut tv: libc::timeval = unsafe { std::mem::zeroed() };
    tv.tv_sec = secs as _;
    tv.tv_usec = micros as _;
    tv
}

/// A `timespec` of `secs` seconds and `nanos` nanoseconds (casts as in [`timeval`]).
pub(crate) fn timespec(secs: u64, nanos: u32) -> libc::timespec {
    // SAFETY: timespec is a C struct of integers (plus, on some targets, padding
    // integers); all-zero is a valid value.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    ts.tv_sec = secs as _;
    ts.tv_nsec = nanos as _;
    ts
}

/// The three sets of one call, as the kernel reads and writes them.
pub(crate) type Sets<'a> = [Option<&'a mut [FdWord]>; 3];

/// `EINVAL` unless `0 <= nfds <= limit` and every set holds the
/// `ceil(nfds / FdWord::BITS)` words the kernel accesses: what makes the calls below
/// sound for any input.
fn check(nfds: libc::c_int, limit: usize, sets: &Sets<'_>) -> io::Result<()> {
    let ok = usize::try_from(nfds).is_ok_and(|n| {
        // n <= c_int::MAX: no overflow.
        let words = n.div_ceil(WORD_BITS);
        n <= limit && sets.iter().flatten().all(|set| set.len() >= words)
    });
    if ok {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::EINVAL))
    }
}

/// The sets' pointers for the C call: null for `None`. The memory stays borrowed by the
/// caller for `'a`, so the pointers stay valid for the call.
fn set_ptrs(sets: Sets<'_>) -> [*mut libc::fd_set; 3] {
    sets.map(|set| set.map_or(std::ptr::null_mut(), |words| words.as_mut_ptr().cast()))
}

/// `select(2)` on sets of at most `FD_SETSIZE` bits.
///
/// Returns the number of ready bits. Fails with `EINVAL` (without calling the kernel)
/// if `nfds` is negative or above `FD_SETSIZE`, or a set is shorter than
/// `ceil(nfds / FdWord::BITS)` words.
pub(crate) fn select(
    nfds: libc::c_int,
    sets: Sets<'_>,
    timeout: Option<&mut libc::timeval>,
) -> io::Result<usize> {
    check(nfds, FD_SETSIZE, &sets)?;
    let [r, w, e] = set_ptrs(sets);
    let tv = timeout.map_or(std::ptr::null_mut(), |tv| tv as *mut libc::timeval);
    // SAFETY: each set pointer is null or points to at least ceil(nfds / WORD_BITS)
    // words (checked above, nfds <= FD_SETSIZE) borrowed mutably for the call; the C
    // library and the kernel access only those words, with the layout asserted above.
    // `tv` is null or points to a live timeval that the call may overwrite.
    cvt_count(unsafe { libc::select(nfds, r, w, e, tv) })
}

/// `select(2)` without a limit on `nfds`, for bitmaps longer than an `fd_set`.
///
/// Linux and FreeBSD read `ceil(nfds / FdWord::BITS)` words from each non-null set and
/// accept any `nfds`. Apple's default `select` symbol is the UNIX-conformant one, which
/// fails with `EINVAL` when `nfds > FD_SETSIZE`; the `select$DARWIN_EXTSN` variant
/// (what C gets with `_DARWIN_UNLIMITED_SELECT`) lifts the limit.
///
/// Fails with `EINVAL` (without calling the kernel) if `nfds` is negative or a set is
/// shorter than `ceil(nfds / FdWord::BITS)` words.
pub(crate) fn select_unlimited(
    nfds: libc::c_int,
    sets: Sets<'_>,
    timeout: Option<&mut libc::timeval>,
) -> io::Result<usize> {
    check(nfds, usize::MAX, &sets)?;
    let [r, w, e] = set_ptrs(sets);
    let tv = timeout.map_or(std::ptr::null_mut(), |tv| tv as *mut libc::timeval);
    #[cfg(target_vendor = "apple")]
    {
        // SAFETY: this is select(2)'s prototype in <sys/select.h>, under the symbol
        // that header uses when _DARWIN_C_SOURCE is defined (descriptors past
        // FD_SETSIZE allowed).
        unsafe extern "C" {
            #[link_name = "select$DARWIN_EXTSN"]
            fn select_darwin_extsn(
                nfds: libc::c_int,
                read: *mut libc::fd_set,
                write: *mut libc::fd_set,
                except: *mut libc::fd_set,
                timeout: *mut libc::timeval,
            ) -> libc::c_int;
        }
        // SAFETY: each set pointer is null or points to at least ceil(nfds / 32) words
        // (checked above) borrowed mutably for the call, and the function accesses only
        // those; `tv` is null or points to a live timeval that it may overwrite.
        cvt_count(unsafe { select_darwin_extsn(nfds, r, w, e, tv) })
    }
    #[cfg(not(target_vendor = "apple"))]
    // SAFETY: as on Apple: the kernel accesses only the first ceil(nfds / WORD_BITS)
    // words of each non-null set, which exist (checked above); `tv` is null or live.
    cvt_count(unsafe { libc::select(nfds, r, w, e, tv) })
}

/// `pselect(2)` on sets of at most `FD_SETSIZE` bits, with the thread's signal mask
/// replaced by `sigmask` during the wait (`None`: kept).
///
/// Fails with `EINVAL` (without calling the kernel) as [`select`] does.
pub(crate) fn pselect(
    nfds: libc::c_int,
    sets: Sets<'_>,
    timeout: Option<&libc::timespec>,
    sigmask: Option<&SigSet>,
) -> io::Result<usize> {
    check(nfds, FD_SETSIZE, &sets)?;
    let [r, w, e] = set_ptrs(sets);
    let ts = timeout.map_or(std::ptr::null(), |ts| ts as *const libc::timespec);
    let mask = sigmask.map_or(std::ptr::null(), |m| m.as_ref() as *const libc::sigset_t);
    // SAFETY: the sets as in `select`; `ts` and `mask` are null or point to live values
    // that the call only reads.
    cvt_count(unsafe { libc::pselect(nfds, r, w, e, ts, mask) })
}

/// Whether `fd` is an open descriptor: `fcntl(fd, F_GETFD)` succeeds, or fails with
/// anything but `EBADF`. What a select loop asks of each of its descriptors after
/// `select` failed with `EBADF`, to find the one that was closed.
pub(crate) fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes no argument and only reads the descriptor's flags; any
    // integer is accepted (a bad one is EBADF).
    let rc = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    rc != -1 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EBADF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_sets_and_bad_nfds_are_einval_without_a_call() {
        let einval = |res: io::Result<usize>| {
            assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EINVAL));
        };
        let mut one = [0 as FdWord; 1];
        let bits = WORD_BITS as libc::c_int;
        einval(select(bits + 1, [Some(&mut one), None, None], None));
        einval(select_unlimited(
            bits + 1,
            [None, None, Some(&mut one)],
            None,
        ));
        einval(select(-1, [None, None, None], None));
        einval(select_unlimited(-1, [None, None, None], None));
        let mut big = vec![0 as FdWord; FD_SET_WORDS + 1];
        einval(select(
            FD_SETSIZE as libc::c_int + 1,
            [Some(&mut big), None, None],
            None,
        ));
        einval(pselect(bits + 1, [None, Some(&mut one), None], None, None));
        // Long enough: a zero-timeout poll of empty sets.
        let mut tv = timeval(0, 0);
        let zero = || [0 as FdWord; 1];
        let (mut a, mut b) = (zero(), zero());
        let n = select(bits, [Some(&mut a), Some(&mut b), None], Some(&mut tv)).unwrap();
        assert_eq!(n, 0);
        let n = select_unlimited(bits, [Some(&mut a), None, None], Some(&mut tv)).unwrap();
        assert_eq!(n, 0);
        let ts = timespec(0, 0);
        assert_eq!(pselect(0, [None, None, None], Some(&ts), None).unwrap(), 0);
    }

    #[test]
    fn fd_set_views_share_memory() {
        let mut set = fd_set_empty();
        assert!(fd_set_words(&set).iter().all(|w| *w == 0));
        fd_set_words_mut(&mut set)[1] = 5;
        assert_eq!(fd_set_words(&set)[1], 5);
    }
}
