//! Reading strace's output: which calls were made and which were injected, per
//! thread; `when` plans and errno names.

use super::*;

/// One system call in strace's output.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    /// The thread that made it.
    pub(crate) tid: u32,
    pub(crate) name: String,
    /// Its number among this thread's calls of `name` (strace counts `when` per
    /// thread).
    pub(crate) nth: u32,
    /// On a connection (a descriptor accept4 returned, or, when `connect` is
    /// traced, one the server connected: the relay's upstreams; not closed since).
    pub(crate) conn: bool,
    /// On a client (a descriptor accept4 returned).
    pub(crate) client: bool,
    /// It returned (strace printed its result).
    pub(crate) done: bool,
    pub(crate) injected: bool,
    /// Its line (start and result, for calls printed in two parts).
    pub(crate) line: String,
}

/// Every call in strace's `-f` output, with each thread's calls numbered.
pub(crate) fn parse_calls(trace: &str) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    let mut nth: HashMap<(u32, String), u32> = HashMap::new();
    let mut pending: HashMap<u32, usize> = HashMap::new();
    let mut conns: std::collections::HashSet<i32> = std::collections::HashSet::new();
    let mut upstreams: std::collections::HashSet<i32> = std::collections::HashSet::new();
    let ret = |line: &str| -> Option<i64> {
        let (_, r) = line.rsplit_once(") = ")?;
        r.split_whitespace().next()?.parse().ok()
    };
    for line in trace.lines() {
        let line = line.trim_start();
        let digits = line.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
        let Ok(tid) = line[..digits].parse::<u32>() else {
            continue;
        };
        let rest = line[digits..].trim_start();
        let finished = |call: &mut Call, text: &str| {
            call.done = true;
            call.injected = text.ends_with("(INJECTED)");
        };
        if let Some(resumed) = rest.strip_prefix("<... ") {
            // "<... NAME resumed>...) = RESULT": the end of the thread's pending call.
            if let Some(i) = pending.remove(&tid) {
                calls[i].line.push_str(" ... ");
                calls[i].line.push_str(resumed);
                let text = calls[i].line.clone();
                finished(&mut calls[i], &text);
                if calls[i].name == "accept4" {
                    if let Some(fd) = ret(&text).filter(|&r| r >= 0) {
                        conns.insert(fd as i32);
                    }
                }
            }
            continue;
        }
        let Some(open) = rest.find('(') else {
            continue; // "--- SIGTERM ...", "+++ exited ..."
        };
        let name = rest[..open].to_string();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let args = &rest[open + 1..];
        let fd = args
            .split([',', ')', ' '])
            .next()
            .and_then(|a| a.parse::<i32>().ok());
        let client = fd.is_some_and(|fd| conns.contains(&fd));
        let conn = client || fd.is_some_and(|fd| upstreams.contains(&fd));
        match (name.as_str(), fd) {
            ("close", Some(fd)) => {
                conns.remove(&fd);
                upstreams.remove(&fd);
            }
            ("connect", Some(fd)) => {
                upstreams.insert(fd);
            }
            _ => {}
        }
        let n = nth.entry((tid, name.clone())).or_insert(0);
        *n += 1;
        let mut call = Call {
            tid,
            name,
            nth: *n,
            conn,
            client,
            done: false,
            injected: false,
            line: format!("{tid} {rest}"),
        };
        if rest.ends_with("<unfinished ...>") {
            pending.insert(tid, calls.len());
        } else {
            finished(&mut call, rest);
            if call.name == "accept4" {
                if let Some(fd) = ret(rest).filter(|&r| r >= 0) {
                    conns.insert(fd as i32);
                }
            }
        }
        calls.push(call);
    }
    calls
}

/// The injected calls by system call name, as `injected_lines` gives them.
pub(crate) fn injected_by_name(calls: &[Call]) -> HashMap<String, Vec<String>> {
    let mut by_sys: HashMap<String, Vec<String>> = HashMap::new();
    for c in calls.iter().filter(|c| c.injected) {
        by_sys
            .entry(c.name.clone())
            .or_default()
            .push(c.line.clone());
    }
    by_sys
}

/// Where the faults of a run with workers landed.
#[derive(Debug, Default)]
pub(crate) struct Landed {
    /// All faults of the row's system call.
    pub(crate) total: u64,
    /// Those on connections (recvfrom, sendto, close rows).
    pub(crate) on_conns: u64,
    /// Faults per thread, for the table: "3+2".
    pub(crate) per_thread: String,
}

/// With workers: strace numbers each thread's calls of `sys` on its own. The
/// faults must be exactly, in every thread, the calls whose number `when` names
/// (a call cut short by the exit, which never returned, excepted).
pub(crate) fn check_threads(calls: &[Call], sys: &str, when: &str) -> Result<Landed, String> {
    let plan = planned(when);
    let mut landed = Landed::default();
    let mut tids: Vec<u32> = Vec::new();
    for c in calls.iter().filter(|c| c.name == sys) {
        if !tids.contains(&c.tid) {
            tids.push(c.tid);
        }
        if !c.done {
            continue;
        }
        let meant = plan.contains(&c.nth);
        if meant != c.injected {
            return Err(format!(
                "thread {}'s call {} of {sys}: {} (when={when}): {}",
                c.tid,
                c.nth,
                if meant {
                    "planned, not injected"
                } else {
                    "injected, not planned"
                },
                c.line
            ));
        }
        if c.injected {
            landed.total += 1;
            landed.on_conns += u64::from(c.conn);
        }
    }
    landed.per_thread = tids
        .iter()
        .map(|t| {
            calls
                .iter()
                .filter(|c| c.name == sys && c.tid == *t && c.injected)
                .count()
                .to_string()
        })
        .filter(|n| n != "0")
        .collect::<Vec<_>>()
        .join("+");
    Ok(landed)
}

/// `when` as a list of call numbers: `first[..last][+[step]]`, bounded.
pub(crate) fn planned(when: &str) -> Vec<u32> {
    let (range, step) = match when.split_once('+') {
        Some((r, s)) => (r, Some(s.parse::<u32>().unwrap_or(1))),
        None => (when, None),
    };
    let (first, last) = match range.split_once("..") {
        Some((a, b)) => (a.parse::<u32>().unwrap(), b.parse::<u32>().unwrap()),
        None => {
            let a = range.parse::<u32>().unwrap();
            (a, if step.is_some() { u32::MAX } else { a })
        }
    };
    assert!(last != u32::MAX, "unbounded when={when}: a row must end");
    let step = step.unwrap_or(1).max(1);
    (first..=last).step_by(step as usize).collect()
}

pub(crate) fn errno_number(name: &str) -> i32 {
    match name {
        "EPERM" => libc::EPERM,
        "ENOENT" => libc::ENOENT,
        "EINTR" => libc::EINTR,
        "EIO" => libc::EIO,
        "EBADF" => libc::EBADF,
        "EAGAIN" => libc::EAGAIN,
        "ENOMEM" => libc::ENOMEM,
        "EACCES" => libc::EACCES,
        "EFAULT" => libc::EFAULT,
        "ENOTDIR" => libc::ENOTDIR,
        "EINVAL" => libc::EINVAL,
        "ENFILE" => libc::ENFILE,
        "EMFILE" => libc::EMFILE,
        "ENOTTY" => libc::ENOTTY,
        "ENOSPC" => libc::ENOSPC,
        "EPIPE" => libc::EPIPE,
        "EDOM" => libc::EDOM,
        "ENOSR" => libc::ENOSR,
        "ENONET" => libc::ENONET,
        "EPROTO" => libc::EPROTO,
        "ENOTSOCK" => libc::ENOTSOCK,
        "EDESTADDRREQ" => libc::EDESTADDRREQ,
        "EMSGSIZE" => libc::EMSGSIZE,
        "ENOPROTOOPT" => libc::ENOPROTOOPT,
        "EPROTONOSUPPORT" => libc::EPROTONOSUPPORT,
        "ESOCKTNOSUPPORT" => libc::ESOCKTNOSUPPORT,
        "EOPNOTSUPP" => libc::EOPNOTSUPP,
        "EADDRINUSE" => libc::EADDRINUSE,
        "EADDRNOTAVAIL" => libc::EADDRNOTAVAIL,
        "ENETDOWN" => libc::ENETDOWN,
        "ENETUNREACH" => libc::ENETUNREACH,
        "ECONNABORTED" => libc::ECONNABORTED,
        "ECONNRESET" => libc::ECONNRESET,
        "ENOBUFS" => libc::ENOBUFS,
        "EISCONN" => libc::EISCONN,
        "ENOTCONN" => libc::ENOTCONN,
        "ETIMEDOUT" => libc::ETIMEDOUT,
        "ECONNREFUSED" => libc::ECONNREFUSED,
        "EHOSTDOWN" => libc::EHOSTDOWN,
        "EHOSTUNREACH" => libc::EHOSTUNREACH,
        "EALREADY" => libc::EALREADY,
        "EINPROGRESS" => libc::EINPROGRESS,
        "EDQUOT" => libc::EDQUOT,
        "EEXIST" => libc::EEXIST,
        "ELOOP" => libc::ELOOP,
        other => panic!("errno {other} is not in the test's table"),
    }
}

/// The `(INJECTED)` lines of strace's output file, by system call name.
pub(crate) fn injected_lines(out: &str) -> HashMap<String, Vec<String>> {
    let mut by_sys: HashMap<String, Vec<String>> = HashMap::new();
    for line in out.lines().filter(|l| l.ends_with("(INJECTED)")) {
        // "PID  name(args) = -1 EXXX (text) (INJECTED)"
        let call = line
            .trim_start()
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        let name = call.split('(').next().unwrap_or("").to_string();
        by_sys.entry(name).or_default().push(line.to_string());
    }
    by_sys
}
