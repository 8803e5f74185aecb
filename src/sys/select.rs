//! `select(2)`: the `fd_set` layout and the call for sets larger than `FD_SETSIZE`.

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

// The fd_set layout the select module relies on, checked at compile time: the struct is
// exactly FD_SETSIZE bits made of whole `FdWord`s and is at least as aligned as a word,
// so it may be viewed as `[FdWord; FD_SET_WORDS]`. A platform where this is false fails
// to compile instead of corrupting memory.
const _: () = {
    assert!(FD_SETSIZE % FdWord::BITS as usize == 0);
    assert!(std::mem::size_of::<libc::fd_set>() == FD_SET_WORDS * std::mem::size_of::<FdWord>());
    assert!(std::mem::align_of::<libc::fd_set>() >= std::mem::align_of::<FdWord>());
};

/// `select(2)` without a limit on `nfds`, for bitmaps longer than an `fd_set`.
///
/// Linux and FreeBSD read `ceil(nfds / FdWord::BITS)` words from each non-null set and
/// accept any `nfds`. Apple's default `select` symbol is the UNIX-conformant one, which
/// fails with `EINVAL` when `nfds > FD_SETSIZE`; the `select$DARWIN_EXTSN` variant
/// (what C gets with `_DARWIN_UNLIMITED_SELECT`) lifts the limit.
///
/// # Safety
///
/// Each non-null set pointer must point to at least `ceil(nfds / FdWord::BITS)` words
/// that are valid for reads and writes; `timeout` must be null or valid for reads and
/// writes.
pub(crate) unsafe fn select_unlimited(
    nfds: libc::c_int,
    read: *mut FdWord,
    write: *mut FdWord,
    except: *mut FdWord,
    timeout: *mut libc::timeval,
) -> libc::c_int {
    #[cfg(target_vendor = "apple")]
    {
        extern "C" {
            #[link_name = "select$DARWIN_EXTSN"]
            fn select_darwin_extsn(
                nfds: libc::c_int,
                read: *mut libc::fd_set,
                write: *mut libc::fd_set,
                except: *mut libc::fd_set,
                timeout: *mut libc::timeval,
            ) -> libc::c_int;
        }
        // SAFETY: forwarded from the caller's contract; the function only accesses the
        // first ceil(nfds / 32) words of each set.
        unsafe { select_darwin_extsn(nfds, read.cast(), write.cast(), except.cast(), timeout) }
    }
    #[cfg(not(target_vendor = "apple"))]
    // SAFETY: forwarded from the caller's contract; the kernel accesses only the first
    // ceil(nfds / FdWord::BITS) words of each set.
    unsafe {
        libc::select(nfds, read.cast(), write.cast(), except.cast(), timeout)
    }
}
