//! The listener's `accept4` fails: not now, out of descriptors or memory, or
//! the listener itself is wrong.

use super::*;

/// accept4 (the listener's): faults at calls 2 and 4, i.e. on clients 1 and 2.
pub(crate) const ACCEPT_ROWS: &[Row] = &[
    row("accept4", "EAGAIN", "2..4+2", Expect::NotNow("would_block")),
    row(
        "accept4",
        "ECONNABORTED",
        "2..4+2",
        Expect::NotNow("aborted"),
    ),
    row("accept4", "EPROTO", "2..4+2", Expect::NotNow("protocol")),
    row("accept4", "EINTR", "2..4+2", Expect::NotNow("interrupted")),
    row("accept4", "ECONNRESET", "2..4+2", Expect::NotNow("other")),
    row("accept4", "ETIMEDOUT", "2..4+2", Expect::NotNow("other")),
    row("accept4", "EPERM", "2..4+2", Expect::NotNow("other")),
    row("accept4", "ENETDOWN", "2..4+2", Expect::NotNow("other")),
    row("accept4", "ENOPROTOOPT", "2..4+2", Expect::NotNow("other")),
    row("accept4", "EHOSTDOWN", "2..4+2", Expect::NotNow("other")),
    row("accept4", "EHOSTUNREACH", "2..4+2", Expect::NotNow("other")),
    row("accept4", "ENETUNREACH", "2..4+2", Expect::NotNow("other")),
    row("accept4", "ENONET", "2..4+2", Expect::NotNow("other")),
    row("accept4", "ENOSR", "2..4+2", Expect::NotNow("other")),
    row(
        "accept4",
        "ESOCKTNOSUPPORT",
        "2..4+2",
        Expect::NotNow("other"),
    ),
    row(
        "accept4",
        "EPROTONOSUPPORT",
        "2..4+2",
        Expect::NotNow("other"),
    ),
    row("accept4", "EMFILE", "2..4+2", Expect::Shed),
    row("accept4", "ENFILE", "2..4+2", Expect::Shed),
    // The loop's accept (#2) and the shed's accept (#3) both fail.
    row("accept4", "EMFILE", "2..3", Expect::ShedFails),
    row("accept4", "ENOBUFS", "2..4+2", Expect::Pause),
    row("accept4", "ENOMEM", "2..4+2", Expect::Pause),
    row("accept4", "EBADF", "2", Expect::Fatal),
    row("accept4", "EFAULT", "2", Expect::Fatal),
    row("accept4", "EINVAL", "2", Expect::Fatal),
    row("accept4", "ENOTSOCK", "2", Expect::Fatal),
    row("accept4", "EOPNOTSUPP", "2", Expect::Fatal),
    // The reserve descriptor (/dev/null) cannot be opened at start: EMFILE pauses
    // the listener instead of shedding.
    row("accept4", "EMFILE", "2", Expect::Pause).also(Also {
        sys: "openat",
        errno: "EMFILE",
        when: "{reserve}",
        matching: Some("/dev/null"),
    }),
];

/// recvfrom (std's `read` on a TcpStream): faults from the 3rd call (client 2's

#[test]
#[ignore = "needs strace (apt-get install strace); .ci/run installs it and runs cargo test -- --ignored"]
fn accept_errors() {
    let _w = Watchdog::new("accept_errors", LIMIT);
    let targets = [ECHO, Target::Chat, Target::Kv, Target::Relay];
    run_table("accept4", &every(ACCEPT_ROWS, &targets));
}
