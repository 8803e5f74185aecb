//! epoll's own calls fail (`--epoll` only): `epoll_create1` as the loop starts, and
//! `epoll_ctl` as it registers a descriptor (the listener, its wake-up socket, each
//! connection), changes what a connection is watched for, or removes one at its
//! close. `epoll_wait` is the readiness call of the `wait` rows.
//!
//! The workload's `epoll_ctl` calls, traced: 1 registers the listener, 2 the
//! wake-up socket, 3-7 clients 0-4 (accepted one after the other), 8-12 remove
//! them as they close (in the order their EOFs come), then the fresh client(s)
//! come and go; chat and kv remove the listener as they drain at SIGTERM. No
//! connection's interest changes in it: only a partial send does that (output
//! left: watched for writing too), which the `MOD` rows make with an `EAGAIN` from
//! `sendto` 3 (echo and kv: client 2's hello; chat: client 2's hello to client 1):
//! the change is call 6.

use super::*;

const fn ctl(errno: &'static str, when: &'static str, expect: Expect) -> Row {
    row("epoll_ctl", errno, when, expect)
}

/// A connection's registration (`EPOLL_CTL_ADD`) fails, for clients 1 and 3: the
/// loop refuses it (a reset), whatever the errno; `EBADF` says "not open" to
/// `Sources`, which reports the descriptor invalid at the next wait, and the loop
/// takes an invalid descriptor of its own for its state broken: it stops.
const ADD_ROWS: &[Row] = &[
    // epoll_ctl(2): "insufficient memory"; "the limit imposed by
    // /proc/sys/fs/epoll/max_user_watches was encountered".
    ctl("ENOMEM", "4..6+2", Expect::Refuse).matching("EPOLL_CTL_ADD"),
    ctl("ENOSPC", "4..6+2", Expect::Refuse).matching("EPOLL_CTL_ADD"),
    // "The target file fd does not support epoll" (a regular file).
    ctl("EPERM", "4..6+2", Expect::Refuse).matching("EPOLL_CTL_ADD"),
    // epfd is not an epoll descriptor, fd == epfd, an invalid flag: a bug, but the
    // next wait would say so; one connection is refused.
    ctl("EINVAL", "4..6+2", Expect::Refuse).matching("EPOLL_CTL_ADD"),
    // A cycle of epoll descriptors watching each other, or nested too deep.
    ctl("ELOOP", "4..6+2", Expect::Refuse).matching("EPOLL_CTL_ADD"),
    // Not listed for ADD: refused like the others.
    ctl("ENOENT", "4..6+2", Expect::Refuse).matching("EPOLL_CTL_ADD"),
    // "already registered": `Sources` takes the registration over with an
    // EPOLL_CTL_MOD, which the kernel fails (ENOENT: strace skipped the ADD), so
    // that client is refused; the MOD is call 5, so the 2nd fault is client 2's.
    ctl("EEXIST", "4..6+2", Expect::Refuse).matching("EPOLL_CTL_ADD"),
    ctl("EBADF", "4", Expect::Fatal).matching("EPOLL_CTL_ADD"),
];

/// A connection's change of interest (`EPOLL_CTL_MOD`, to reading and writing after
/// a partial send) fails: the interest stays as it was, and the connection is
/// parked (`backoffs`) and served again after 10 ms, when its output goes.
/// `EBADF` and `ENOENT` (closed, or renumbered: not this file) are answered at once
/// by registering it anew (an ADD, which finds it there: EEXIST, then a MOD).
const MOD_ROWS: &[Row] = &[
    ctl("ENOMEM", "6", Expect::Backoff),
    ctl("ENOSPC", "6", Expect::Backoff),
    ctl("EPERM", "6", Expect::Backoff),
    ctl("EINVAL", "6", Expect::Backoff),
    ctl("EEXIST", "6", Expect::Backoff),
    ctl("ELOOP", "6", Expect::Backoff),
    ctl("EBADF", "6", Expect::Retry),
    ctl("ENOENT", "6", Expect::Retry),
];

/// The `sendto` fault that makes a connection's interest change.
const PARTIAL_SEND: Also = Also {
    sys: "sendto",
    errno: "EAGAIN",
    when: "3",
    matching: None,
};

/// A connection's removal (`EPOLL_CTL_DEL`, just before its close) fails, for the
/// 1st and the 3rd to close: ignored, the descriptor is closed all the same and
/// the kernel drops the registration with the file.
const DEL_ROWS: &[Row] = &[
    ctl("ENOMEM", "8..10+2", Expect::Retry).matching("EPOLL_CTL_DEL"),
    ctl("EBADF", "8..10+2", Expect::Retry).matching("EPOLL_CTL_DEL"),
    ctl("ENOENT", "8..10+2", Expect::Retry).matching("EPOLL_CTL_DEL"),
    ctl("EINVAL", "8..10+2", Expect::Retry).matching("EPOLL_CTL_DEL"),
    ctl("EPERM", "8..10+2", Expect::Retry).matching("EPOLL_CTL_DEL"),
];

/// Setting up the loop: the epoll descriptor (`epoll_create1`, made at the first
/// registration, the listener's), the listener's and the wake-up socket's
/// registrations.
const START_ROWS: &[Row] = &[
    row("epoll_create1", "EMFILE", "1", Expect::NoLoop),
    row("epoll_create1", "ENFILE", "1", Expect::NoLoop),
    row("epoll_create1", "ENOMEM", "1", Expect::NoLoop),
    row("epoll_create1", "EINVAL", "1", Expect::NoLoop),
    ctl("ENOMEM", "1", Expect::NoLoop).matching("EPOLL_CTL_ADD, 3,"),
    ctl("ENOSPC", "1", Expect::NoLoop).matching("EPOLL_CTL_ADD, 3,"),
    ctl("EPERM", "1", Expect::NoLoop).matching("EPOLL_CTL_ADD, 3,"),
    // Reported invalid by the first wait: the loop stops there.
    ctl("EBADF", "1", Expect::NoLoop).matching("EPOLL_CTL_ADD, 3,"),
    // The wake-up socket: the kernel's error stops the loop, its errno kept (a
    // duplicate is watched only for a number too high for select).
    ctl("ENOMEM", "2", Expect::NoLoop).matching("EPOLL_CTL_ADD, 4,"),
];

/// After `accept` ran out of memory the listener rests 100 ms out of the set
/// (`EPOLL_CTL_DEL`); watching it again (`EPOLL_CTL_ADD`, call 5) fails too: the
/// loop rests again and then accepts, instead of never accepting again.
const REARM_ROWS: &[Row] = &[row("accept4", "ENOMEM", "2", Expect::Pause).also(Also {
    sys: "epoll_ctl",
    errno: "ENOMEM",
    when: "5",
    matching: Some("EPOLL_CTL_ADD, 3,"),
})];

/// The relay's upstream: its registration (for writing, while its connect goes on)
/// fails, for clients 1 and 3 (the relay's calls are counted in `relay`: client 1
/// is 6, its upstream 7, its client's removal at its close 8, so client 3's
/// upstream is 13): the connect is given up (`connect_failed`) and its client
/// closed, whatever the errno but EBADF, which stops the loop as for a client.
/// EEXIST's takeover (8) fails too, so client 3's upstream is 14.
const UPSTREAM_ADD_ROWS: &[Row] = &[
    ctl("ENOMEM", "7..13+6", Expect::NoUpstream),
    ctl("ENOSPC", "7..13+6", Expect::NoUpstream),
    ctl("EPERM", "7..13+6", Expect::NoUpstream),
    ctl("EINVAL", "7..13+6", Expect::NoUpstream),
    ctl("ELOOP", "7..13+6", Expect::NoUpstream),
    ctl("ENOENT", "7..13+6", Expect::NoUpstream),
    ctl("EEXIST", "7..14+7", Expect::NoUpstream),
    ctl("EBADF", "7", Expect::Fatal),
];

/// The relay's removals: a pair's client is taken out of the set when its EOF
/// comes (it is watched for nothing: call 18 is the workload's first such), its
/// upstream just before its close (the workload's last removal, 27, is one).
/// Taking a connection out of the set fails as a change of interest does (its
/// interest stays, it is parked: `backoffs`), but for EBADF and ENOENT, which say
/// it is out already; before a close, every error is ignored.
const RELAY_DEL_ROWS: &[Row] = &[
    ctl("ENOMEM", "18", Expect::Backoff),
    ctl("EINVAL", "18", Expect::Backoff),
    ctl("EPERM", "18", Expect::Backoff),
    ctl("EBADF", "18", Expect::Retry),
    ctl("ENOENT", "18", Expect::Retry),
    ctl("ENOMEM", "27", Expect::Retry),
    ctl("EINVAL", "27", Expect::Retry),
    ctl("EPERM", "27", Expect::Retry),
    ctl("EBADF", "27", Expect::Retry),
    ctl("ENOENT", "27", Expect::Retry),
];

/// `rows` against `targets`, in epoll mode only.
fn epoll_only_on(rows: &[Row], targets: &[Target]) -> Vec<Case> {
    let cases = every(rows, targets).into_iter();
    cases.filter(|c| c.mode == Mode::Epoll).collect()
}

/// `rows` against every server, in epoll mode only.
fn epoll_only(rows: &[Row]) -> Vec<Case> {
    let targets = [ECHO, ECHO_LINES, Target::Chat, Target::Kv, Target::Relay];
    epoll_only_on(rows, &targets)
}

#[test]
#[ignore = "needs strace (apt-get install strace); .ci/run installs it and runs cargo test -- --ignored"]
fn epoll_errors() {
    let _w = Watchdog::new("epoll_errors", LIMIT);
    let mods: Vec<Row> = MOD_ROWS
        .iter()
        .map(|r| r.matching("EPOLL_CTL_MOD").also(PARTIAL_SEND))
        .collect();
    let mut cases = epoll_only(ADD_ROWS);
    cases.extend(epoll_only(&mods));
    // The relay's removals are planned apart (its clients leave the set at EOF).
    cases.extend(epoll_only_on(
        DEL_ROWS,
        &[ECHO, ECHO_LINES, Target::Chat, Target::Kv],
    ));
    cases.extend(epoll_only(START_ROWS));
    cases.extend(epoll_only(REARM_ROWS));
    let relay = |rows: &[Row], m| -> Vec<Row> { rows.iter().map(|r| r.matching(m)).collect() };
    let relay_rows = [
        relay(UPSTREAM_ADD_ROWS, "EPOLL_CTL_ADD"),
        relay(RELAY_DEL_ROWS, "EPOLL_CTL_DEL"),
    ];
    cases.extend(epoll_only_on(&relay_rows.concat(), &[Target::Relay]));
    run_table("epoll_ctl, epoll_create1", &cases);
}
