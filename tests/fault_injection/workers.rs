//! The rows again with `--workers 2`: two loops, one shared listener or one each.

use super::accept::ACCEPT_ROWS;
use super::close::CLOSE_ROWS;
use super::recv::RECV_ROWS;
use super::send::SEND_ROWS;
use super::wait::WAIT_ROWS;
use super::*;

/// The rows run with `--workers 2`: the transient rows of every class and a fatal
/// one each. The `when`s are echo's single-worker ones, now counted in each
/// worker thread (`check_threads`); `close` attaches to the running server.
pub(crate) fn worker_rows() -> Vec<Row> {
    let pick = |rows: &[Row], errnos: &[&str]| -> Vec<Row> {
        errnos
            .iter()
            .map(|e| {
                *rows
                    .iter()
                    .find(|r| r.errno == *e && r.also.is_none() && r.expect != Expect::ShedFails)
                    .unwrap_or_else(|| panic!("no row for {e}"))
            })
            .collect()
    };
    let mut rows = pick(WAIT_ROWS, &["EINTR", "ENOMEM", "EAGAIN", "EBADF"]);
    rows.extend(pick(
        ACCEPT_ROWS,
        &[
            "EAGAIN",
            "ECONNABORTED",
            "EPROTO",
            "EINTR",
            "EPERM",
            "EMFILE",
            "ENOMEM",
            "EBADF",
        ],
    ));
    rows.extend(pick(
        RECV_ROWS,
        &[
            "EAGAIN",
            "EINTR",
            "ENOMEM",
            "ENOBUFS",
            "ECONNRESET",
            "EIO",
            "EBADF",
        ],
    ));
    rows.extend(pick(
        SEND_ROWS,
        &[
            "EAGAIN",
            "EINTR",
            "ENOMEM",
            "ENOBUFS",
            "EPIPE",
            "ECONNRESET",
            "EBADF",
        ],
    ));
    rows.extend(pick(CLOSE_ROWS, &["EBADF", "EIO"]));
    // No sendmsg rows: of the servers run here (echo, kv) none makes that call
    // (`sendmsg_errors` checks it), and chat is left out (`worker_cases`).
    rows
}

/// Rows × (server, mode, workers) with `--workers 2`: echo (bytes and lines) in
/// select and poll over the shared listener, echo in large select with
/// `--reuseport`, kv in poll over the shared listener and in epoll with
/// `--reuseport` (an epoll descriptor per worker).
pub(crate) fn worker_cases() -> Vec<Case> {
    let rows = worker_rows();
    let mut cases = Vec::new();
    let mut add = |target: Target, mode: Mode, workers: Workers, only: &[&str]| {
        for &row in &rows {
            if only.is_empty() || only.contains(&row.sys) {
                cases.push(Case {
                    row,
                    mode,
                    target,
                    workers,
                });
            }
        }
    };
    for mode in [Mode::Select, Mode::Poll] {
        add(ECHO, mode, Workers::Shared, &[]);
        add(
            ECHO_LINES,
            mode,
            Workers::Shared,
            &[WAIT, "recvfrom", "sendto"],
        );
    }
    add(ECHO, Mode::Large, Workers::Reuseport, &[]);
    add(Target::Kv, Mode::Poll, Workers::Shared, &[]);
    add(Target::Kv, Mode::Epoll, Workers::Reuseport, &[]);
    // Each worker dials the upstreams of the clients it accepted.
    add(Target::Relay, Mode::Poll, Workers::Shared, &[]);
    add(Target::Relay, Mode::Epoll, Workers::Reuseport, &[]);
    // Not chat: its workload knows a client is in once another client got its
    // hello, which needs the connections accepted in the order they connected.
    // Two workers take them from two queues (or race for one), so a client still
    // waiting in one worker's queue can miss a hello another worker relays
    // (tests/server/workers.rs checks broadcasts across workers with every client
    // accepted first).
    cases
}

#[test]
#[ignore = "needs strace (apt-get install strace); .ci/run installs it and runs cargo test -- --ignored"]
/// The same faults with two worker threads: whichever worker a fault lands in,
/// nothing is lost, the counters (totals over the workers) say what the faults
/// were, and a fatal one stops both workers (exit 1, stderr names the errno).
fn worker_errors() {
    let _w = Watchdog::new("worker_errors", LIMIT);
    run_table("--workers 2", &worker_cases());
}
