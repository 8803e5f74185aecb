//! `poll(2)` over the crate's [`PollFd`] array.

use std::io;

use super::cvt_count;
use crate::poll::PollFd;

// `PollFd` is `#[repr(transparent)]` over `libc::pollfd`; checked again here, where the
// slice is handed to the C library as `pollfd`s.
const _: () = {
    assert!(std::mem::size_of::<PollFd>() == std::mem::size_of::<libc::pollfd>());
    assert!(std::mem::align_of::<PollFd>() == std::mem::align_of::<libc::pollfd>());
};

/// `poll(2)` on `fds` with a timeout in milliseconds (−1: none).
///
/// Fails with [`ErrorKind::InvalidInput`](io::ErrorKind::InvalidInput) if `fds.len()`
/// does not fit `nfds_t` (only possible where `nfds_t` is narrower than `usize`).
pub(crate) fn poll(fds: &mut [PollFd], timeout_ms: libc::c_int) -> io::Result<usize> {
    let nfds = libc::nfds_t::try_from(fds.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} poll entries do not fit in nfds_t", fds.len()),
        )
    })?;
    // SAFETY: PollFd is repr(transparent) over libc::pollfd (size and alignment asserted
    // above), so the slice is `nfds` valid pollfd structs, borrowed mutably for the
    // call; the kernel reads them and writes only their `revents` fields, and any value
    // there is a valid PollFd.
    cvt_count(unsafe { libc::poll(fds.as_mut_ptr().cast(), nfds, timeout_ms) })
}
