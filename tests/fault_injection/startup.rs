//! Start-up fails: one row per system call before the loop.

use super::*;

/// Start-up: one row per system call.
pub(crate) const START_ROWS: &[Row] = &[
    row("socket", "EMFILE", "1", Expect::NoStart).matching("AF_INET"),
    row("setsockopt", "ENOPROTOOPT", "1", Expect::NoStart).matching("SO_REUSEADDR"),
    row("bind", "EADDRINUSE", "1", Expect::NoStart),
    row("listen", "EADDRINUSE", "1", Expect::NoStart),
    row("ioctl", "ENOTTY", "1", Expect::NoStart).matching("FIONBIO"),
    row("socketpair", "EMFILE", "1", Expect::NoStart),
    // The first rt_sigaction calls are std's (SIGPIPE, SIGSEGV, SIGBUS).
    row("rt_sigaction", "EINVAL", "{sigint}", Expect::NoStart).matching("SIGINT"),
    row("getsockname", "ENOBUFS", "1", Expect::NoAddress),
    row("openat", "EMFILE", "1", Expect::Retry).path("/dev/null"),
    // write 1 is the listening line, 2 the "SIGTERM, shutting down" note on stderr,
    // 3 the first line of the counters (`{name}`: the example's name).
    row("write", "EIO", "3", Expect::OutputLost).matching("write(1, \"{name}: stopped"),
];

#[test]
#[ignore = "needs strace (apt-get install strace); .ci/run installs it and runs cargo test -- --ignored"]
fn startup_errors() {
    let _w = Watchdog::new("startup_errors", LIMIT);
    run_table(
        "start-up",
        &every(START_ROWS, &[ECHO, Target::Chat, Target::Kv, Target::Relay]),
    );
}
