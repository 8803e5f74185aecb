//! The readiness call fails: `pselect6` (glibc's `select`), `poll`.

use super::*;

/// select/pselect6 and poll: `#1` of poll is std's start-up check of fds 0-2, so the
/// faults start at the 4th call, inside the loop (after client 1's accept).
pub(crate) const WAIT_ROWS: &[Row] = &[
    row(WAIT, "EINTR", "4..16+3", Expect::Retry),
    row(WAIT, "ENOMEM", "4..16+3", Expect::Backoff),
    row(WAIT, "EAGAIN", "4..16+3", Expect::Backoff),
    row(WAIT, "EBADF", "4", Expect::Fatal),
    row(WAIT, "EINVAL", "4", Expect::Fatal),
    row(WAIT, "EFAULT", "4", Expect::Fatal),
];

#[test]
#[ignore = "needs strace (apt-get install strace); .ci/run installs it and runs cargo test -- --ignored"]
fn select_and_poll_errors() {
    let _w = Watchdog::new("select_and_poll_errors", LIMIT);
    let targets = [ECHO, ECHO_LINES, Target::Chat, Target::Kv, Target::Relay];
    run_table("pselect6/poll/epoll_wait", &every(WAIT_ROWS, &targets));
}
