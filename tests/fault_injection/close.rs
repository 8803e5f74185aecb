//! Closing fails: `close` of a connection, std's debug-build `fcntl(F_GETFD)`
//! before it, and `setsockopt(SO_LINGER)` when a connection is refused with a reset.

use super::*;

/// close: `{close}` calls are the loader's and std's before the loop; the next ones
/// close clients after their EOF (the 1st and the 3rd get the fault).
pub(crate) const CLOSE_ROWS: &[Row] = &[
    row("close", "EBADF", CLOSE_WHEN, Expect::CloseIgnored),
    row("close", "EINTR", CLOSE_WHEN, Expect::CloseIgnored),
    row("close", "EIO", CLOSE_WHEN, Expect::CloseIgnored),
    row("close", "ENOSPC", CLOSE_WHEN, Expect::CloseIgnored),
    row("close", "EDQUOT", CLOSE_WHEN, Expect::CloseIgnored),
    row("close", "EINPROGRESS", CLOSE_WHEN, Expect::CloseIgnored),
];

pub(crate) const CLOSE_WHEN: &str = "{close+1}..{close+3}+2";

/// fcntl(F_GETFD): only in debug builds, std's check before each close.
pub(crate) const FCNTL_ROWS: &[Row] = &[
    row("fcntl", "EBADF", "1", Expect::Abort).matching("F_GETFD"),
    row("fcntl", "EINVAL", "1..3+2", Expect::Retry).matching("F_GETFD"),
];

/// setsockopt(SO_LINGER) when refusing (`--max-clients 2`: clients 2, 3, 4 are
/// refused; call 1 is SO_REUSEADDR at bind, call 2 client 2's linger).
pub(crate) const LINGER_ROWS: &[Row] = &[
    row("setsockopt", "EBADF", "2", Expect::LingerFin),
    row("setsockopt", "EFAULT", "2", Expect::LingerFin),
    row("setsockopt", "EINVAL", "2", Expect::LingerFin),
    row("setsockopt", "ENOPROTOOPT", "2", Expect::LingerFin),
    row("setsockopt", "ENOTSOCK", "2", Expect::LingerFin),
    row("setsockopt", "EDOM", "2", Expect::LingerFin),
    row("setsockopt", "EISCONN", "2", Expect::LingerFin),
    row("setsockopt", "ENOMEM", "2", Expect::LingerFin),
    row("setsockopt", "ENOBUFS", "2", Expect::LingerFin),
];

pub(crate) const LINGER_ARGS: &[&str] = &["--max-clients", "2"];

/// The relay's: clients 0 and 1 and their upstreams.
pub(crate) const RELAY_LINGER_ARGS: &[&str] = &["--max-clients", "4"];

#[test]
#[ignore = "needs strace (apt-get install strace); .ci/run installs it and runs cargo test -- --ignored"]
fn close_errors() {
    let _w = Watchdog::new("close_errors", LIMIT);
    // Each run waits 1.5 s for the EOFs the leaked descriptors never send: chat, kv
    // and the relay get each errno once, in one mode each.
    let mut cases = every(CLOSE_ROWS, &[ECHO]);
    cases.extend(spread(
        CLOSE_ROWS,
        &[Target::Chat, Target::Kv, Target::Relay],
    ));
    // Release builds make no fcntl(F_GETFD) before close: nothing to inject there.
    if cfg!(debug_assertions) {
        let targets = [ECHO, Target::Chat, Target::Kv, Target::Relay];
        cases.extend(every(FCNTL_ROWS, &targets));
    }
    run_table("close", &cases);
}

#[test]
#[ignore = "needs strace (apt-get install strace); .ci/run installs it and runs cargo test -- --ignored"]
fn linger_errors() {
    let _w = Watchdog::new("linger_errors", LIMIT);
    let rows = |args| -> Vec<Row> {
        let rows = LINGER_ROWS.iter();
        rows.map(|r| r.args(args).matching("SO_LINGER")).collect()
    };
    let rows_of_one = rows(LINGER_ARGS);
    // Each run probes five clients for 400 ms: chat, kv and the relay get four
    // errnos, one per mode.
    let mut cases = every(&rows_of_one, &[ECHO]);
    cases.extend(spread(&rows_of_one[..Mode::ALL.len()], &OTHERS));
    let relay_rows = rows(RELAY_LINGER_ARGS);
    cases.extend(spread(&relay_rows[..Mode::ALL.len()], &[Target::Relay]));
    run_table("setsockopt(SO_LINGER)", &cases);
}
