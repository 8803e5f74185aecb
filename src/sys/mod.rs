//! Every platform difference of the crate, and every call into the C library, in
//! one place: the rest of the crate calls these items and never writes
//! `cfg(target_os)` itself. One file per concept.

mod connect;
mod epoll;
mod fd;
mod io;
mod kqueue;
mod poll;
mod queue;
mod select;
mod signal;
mod socket;
mod stream;
mod waker;

pub(crate) use connect::*;
pub(crate) use epoll::*;
pub(crate) use fd::set_nonblocking;
pub(crate) use io::*;
pub(crate) use kqueue::*;
pub(crate) use poll::*;
pub(crate) use queue::*;
pub(crate) use select::*;
pub(crate) use signal::*;
pub(crate) use socket::*;
pub(crate) use stream::*;
pub(crate) use waker::*;

/// The C library's failure value: `-1`, with the cause in `errno`.
pub(crate) trait MinusOne: Copy + PartialEq {
    const MINUS_ONE: Self;
}

macro_rules! minus_one {
    ($($t:ty)*) => { $(impl MinusOne for $t { const MINUS_ONE: Self = -1; })* };
}
minus_one! { i32 i64 isize }

/// Turns a C return value into a `Result`: `-1` becomes the `errno` it left,
/// anything else is returned as is. The crate's one errno check.
pub(crate) fn cvt<T: MinusOne>(rc: T) -> std::io::Result<T> {
    if rc == T::MINUS_ONE {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// [`cvt`] for calls that return a count (`poll`, `select`): never negative on
/// success.
pub(crate) fn cvt_count(rc: libc::c_int) -> std::io::Result<usize> {
    cvt(rc).map(|n| usize::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::{cvt, cvt_count};

    #[test]
    fn minus_one_is_the_errno_anything_else_the_value() {
        // SAFETY: close(-1) touches no descriptor; it fails with EBADF.
        let rc = unsafe { libc::close(-1) };
        assert_eq!(cvt(rc).unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(cvt(0i32).unwrap(), 0);
        assert_eq!(cvt(7isize).unwrap(), 7);
        assert_eq!(cvt(-2i64).unwrap(), -2); // only -1 means failure
        assert_eq!(cvt_count(3).unwrap(), 3);
    }
}
