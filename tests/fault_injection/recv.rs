//! A connection's `recvfrom` (std's `read` on a `TcpStream`) fails.

use super::*;

/// hello) on; the closing rows hit two clients (calls 4 and 8).
pub(crate) const RECV_ROWS: &[Row] = &[
    row("recvfrom", "EAGAIN", "3..23+4", Expect::Retry),
    row("recvfrom", "EINTR", "3..23+4", Expect::Retry),
    row("recvfrom", "ENOMEM", "3..23+4", Expect::Backoff),
    row("recvfrom", "ENOBUFS", "3..23+4", Expect::Backoff),
    row("recvfrom", "ECONNRESET", "4..8+4", Expect::CloseClient),
    row("recvfrom", "ECONNREFUSED", "4..8+4", Expect::CloseClient),
    row("recvfrom", "ENOTCONN", "4..8+4", Expect::CloseClient),
    row("recvfrom", "ETIMEDOUT", "4..8+4", Expect::CloseClient),
    row("recvfrom", "EOPNOTSUPP", "4..8+4", Expect::CloseClient),
    row("recvfrom", "EIO", "4..8+4", Expect::CloseClient),
    row("recvfrom", "EBADF", "3", Expect::Fatal),
    row("recvfrom", "EFAULT", "3", Expect::Fatal),
    row("recvfrom", "EINVAL", "3", Expect::Fatal),
    row("recvfrom", "ENOTSOCK", "3", Expect::Fatal),
];

#[test]
#[ignore = "needs strace (apt-get install strace); .ci/run installs it and runs cargo test -- --ignored"]
fn recv_errors() {
    let _w = Watchdog::new("recv_errors", LIMIT);
    let targets = [ECHO, ECHO_LINES, Target::Chat, Target::Kv, Target::Relay];
    run_table("recvfrom", &every(RECV_ROWS, &targets));
}
