//! A connection's `sendto` (`send(MSG_NOSIGNAL)`) or `sendmsg` (several buffers)
//! fails.

use super::*;

/// sendto (`send(MSG_NOSIGNAL)`): as recvfrom.
pub(crate) const SEND_ROWS: &[Row] = &[
    row("sendto", "EAGAIN", "3..23+4", Expect::Retry),
    row("sendto", "EINTR", "3..23+4", Expect::Retry),
    row("sendto", "ENOMEM", "3..23+4", Expect::Backoff),
    row("sendto", "ENOBUFS", "3..23+4", Expect::Backoff),
    row("sendto", "EPIPE", "4..8+4", Expect::CloseClient),
    row("sendto", "ECONNRESET", "4..8+4", Expect::CloseClient),
    row("sendto", "EACCES", "4..8+4", Expect::CloseClient),
    row("sendto", "EALREADY", "4..8+4", Expect::CloseClient),
    row("sendto", "EDESTADDRREQ", "4..8+4", Expect::CloseClient),
    row("sendto", "EISCONN", "4..8+4", Expect::CloseClient),
    row("sendto", "EMSGSIZE", "4..8+4", Expect::CloseClient),
    row("sendto", "ENOTCONN", "4..8+4", Expect::CloseClient),
    row("sendto", "EOPNOTSUPP", "4..8+4", Expect::CloseClient),
    row("sendto", "EIO", "4..8+4", Expect::CloseClient),
    row("sendto", "ENETDOWN", "4..8+4", Expect::CloseClient),
    row("sendto", "ENETUNREACH", "4..8+4", Expect::CloseClient),
    row("sendto", "EHOSTUNREACH", "4..8+4", Expect::CloseClient),
    row("sendto", "ETIMEDOUT", "4..8+4", Expect::CloseClient),
    row("sendto", "EBADF", "3", Expect::Fatal),
    row("sendto", "EFAULT", "3", Expect::Fatal),
    row("sendto", "EINVAL", "3", Expect::Fatal),
    row("sendto", "ENOTSOCK", "3", Expect::Fatal),
];

/// sendmsg (`MSG_NOSIGNAL`, several buffers): the generic loop's send when a
/// connection's output is more than one chunk (copied bytes and a shared
/// `Arc<[u8]>`; `send` when it is one). The same errnos, expectations and calls as
/// sendto: chat's sendmsg 1-20 are its opening round's pairs of lines (see
/// `PLANS`), and a transient fault's retry is a sendmsg again (what was queued
/// stays queued), so the faults at 3-23 all land before the fresh clients.
pub(crate) fn sendmsg_rows() -> Vec<Row> {
    SEND_ROWS
        .iter()
        .map(|r| Row {
            sys: "sendmsg",
            ..*r
        })
        .collect()
}

/// The servers that make sendmsg calls: chat's broadcasts of lines of 64 bytes or
/// more are shared, so a receiver's output is often a copy and a shared chunk.
/// Echo (its own loop) never makes one; kv does not yet (each reply is one copy),
/// nor does the relay (what it passes on is copied into one buffer):
/// `sendmsg_errors` checks all three.
pub(crate) const SENDMSG_TARGETS: [Target; 1] = [Target::Chat];

#[test]
#[ignore = "needs strace (apt-get install strace); .ci/run installs it and runs cargo test -- --ignored"]
fn send_errors() {
    let _w = Watchdog::new("send_errors", LIMIT);
    let targets = [ECHO, ECHO_LINES, Target::Chat, Target::Kv, Target::Relay];
    run_table("sendto", &every(SEND_ROWS, &targets));
}

#[test]
#[ignore = "needs strace (apt-get install strace); .ci/run installs it and runs cargo test -- --ignored"]
fn sendmsg_errors() {
    let _w = Watchdog::new("sendmsg_errors", LIMIT);
    let mut cases = every(&sendmsg_rows(), &SENDMSG_TARGETS);
    // The others make no sendmsg: a fault planned there must never fire.
    let unused = [row("sendmsg", "EAGAIN", "1..3", Expect::NeverCalled)];
    cases.extend(every(
        &unused,
        &[ECHO, ECHO_LINES, Target::Kv, Target::Relay],
    ));
    run_table("sendmsg", &cases);
}
