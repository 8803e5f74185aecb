//! Timeouts of the waiting calls: `Duration` to the kernel's `timeval` (select),
//! `timespec` (pselect) and milliseconds (poll), and the deadline that the
//! `_restarting` functions count down across `EINTR`.
//!
//! Every conversion rounds **up** to the unit of the call, so a tiny timeout never
//! becomes a busy poll, and clamps instead of overflowing.

use std::time::{Duration, Instant};

/// The longest timeout the select functions pass to the kernel: 10⁸ seconds (about
/// 3.17 years). Longer timeouts are clamped to it.
///
/// POSIX lets a system cap the timeout (it must allow at least 31 days) and use the cap
/// instead. Apple's kernel rejects `select` timeouts above 10⁸ seconds with `EINVAL`
/// (xnu's `itimerfix`; not verified on a Mac here), so the crate clamps on every
/// platform for the same behaviour everywhere.
///
/// [`poll`](crate::poll::poll) has a shorter limit of its own: `c_int::MAX`
/// milliseconds (about 24.8 days).
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

/// `timeout` clamped to [`MAX_TIMEOUT`] as a `timeval`, rounded up to whole microseconds.
pub(crate) fn to_timeval(timeout: Duration) -> libc::timeval {
    let t = timeout.min(MAX_TIMEOUT);
    let mut secs = t.as_secs();
    let mut micros = t.subsec_nanos().div_ceil(1000);
    if micros == 1_000_000 {
        secs += 1;
        micros = 0;
    }
    // secs <= 10^8 + 1 fits every time_t, micros < 10^6 every suseconds_t.
    crate::sys::timeval(secs, micros)
}

/// `timeout` clamped to [`MAX_TIMEOUT`] as a `timespec`.
pub(crate) fn to_timespec(timeout: Duration) -> libc::timespec {
    let t = timeout.min(MAX_TIMEOUT);
    // secs <= 10^8 fits every time_t, nanos < 10^9 every tv_nsec type.
    crate::sys::timespec(t.as_secs(), t.subsec_nanos())
}

/// The `poll` timeout in milliseconds: −1 for `None`, otherwise rounded **up** to whole
/// milliseconds and clamped to `c_int::MAX`.
pub(crate) fn to_poll_millis(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_millis() + u128::from(t.subsec_nanos() % 1_000_000 != 0);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    }
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
    /// The deadline `timeout` from now (`None`: never).
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn poll_millis_round_up_and_clamp() {
        assert_eq!(to_poll_millis(None), -1);
        assert_eq!(to_poll_millis(Some(Duration::ZERO)), 0);
        assert_eq!(to_poll_millis(Some(Duration::from_nanos(1))), 1);
        assert_eq!(to_poll_millis(Some(Duration::from_micros(1))), 1);
        assert_eq!(to_poll_millis(Some(Duration::from_millis(7))), 7);
        assert_eq!(to_poll_millis(Some(Duration::from_micros(7001))), 8);
        assert_eq!(to_poll_millis(Some(Duration::from_secs(3))), 3000);
        assert_eq!(to_poll_millis(Some(Duration::MAX)), libc::c_int::MAX);
        let just_over = Duration::from_millis(libc::c_int::MAX as u64 + 1);
        assert_eq!(to_poll_millis(Some(just_over)), libc::c_int::MAX);
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
}
