//! What a case must show: the exit, the faults that fired, the clients' view and
//! the server's counters, compared with what the row expects.

use super::*;

/// The counters after "NAME: stopped; counters:".
pub(crate) fn counters(stdout: &[String], target: Target) -> Option<HashMap<String, u64>> {
    let head = format!("{}: stopped; counters:", target.example());
    let start = stdout.iter().position(|l| l.starts_with(&head))?;
    let mut map = HashMap::new();
    for line in &stdout[start + 1..] {
        if let Some((k, v)) = line.split_once(": ") {
            if let Ok(v) = v.trim().parse::<u64>() {
                map.insert(k.to_string(), v);
            }
        }
    }
    Some(map)
}

/// Compares what happened with what the row expects.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check(
    case: Case,
    injects: &[(&str, &str, String, Option<String>)],
    injected: &HashMap<String, Vec<String>>,
    landed: Option<&Landed>,
    status: ExitStatus,
    stdout: &[String],
    stderr: &str,
    w: &Workload,
    notes: &mut Vec<String>,
) -> Result<String, String> {
    let Case {
        row,
        mode,
        target,
        workers,
    } = case;
    let count = |s: &str| injected.get(s).map_or(0, Vec::len);
    let sys = mode.syscall(row.sys);
    // Every injected line is where the row meant it to be.
    for (s, _, _, matching) in injects {
        if let Some(m) = matching {
            if let Some(bad) = injected
                .get(*s)
                .into_iter()
                .flatten()
                .find(|l| !l.contains(m.as_str()))
            {
                return Err(format!("fault landed on the wrong call (no {m:?}): {bad}"));
            }
        }
    }
    let errno = errno_number(row.errno);
    // io::Error says "(os error N)"; nix's Errno (sigaction) says "EINVAL: ...".
    let names_errno = stderr.contains(&format!("(os error {errno})"))
        || stderr.contains(&format!("{}: ", row.errno));
    match row.expect {
        Expect::Fatal | Expect::NoStart | Expect::NoLoop => {
            if status.code() != Some(1) {
                return Err(format!("expected exit 1, got {status}"));
            }
            if !names_errno {
                return Err(format!("stderr does not name errno {errno}: {stderr:?}"));
            }
            // With workers, each thread's call N: one fault, or one in each worker
            // when the second got there before the first one's stop reached it.
            let most = if landed.is_some() { 2 } else { 1 };
            if !(1..=most).contains(&count(sys)) {
                return Err(format!("expected 1 fault, {} injected", count(sys)));
            }
            if row.expect == Expect::NoStart && stdout.iter().any(|l| l.contains("listening")) {
                return Err("the server started".to_string());
            }
            if let Some(bad) = w.clients.iter().find_map(|c| c.failure.as_ref()) {
                return Err(format!("a client saw wrong data: {bad}"));
            }
            let listened = stdout.iter().any(|l| l.contains("listening"));
            let how = match row.expect {
                Expect::Fatal => "stops",
                Expect::NoLoop if listened => "stops before serving (address printed)",
                Expect::NoLoop => "stops before serving",
                _ => "does not start",
            };
            return Ok(format!("{how}: exit 1, stderr names {}", row.errno));
        }
        Expect::Abort => {
            if status.signal() != Some(libc::SIGABRT) {
                return Err(format!("expected SIGABRT, got {status}"));
            }
            if !stderr.contains("IO Safety violation") {
                return Err(format!("no IO-safety message: {stderr:?}"));
            }
            if count(sys) != 1 {
                return Err(format!("expected 1 fault, {} injected", count(sys)));
            }
            return Ok("aborts (SIGABRT, std's debug check)".to_string());
        }
        _ => {}
    }
    if !status.success() {
        return Err(format!("expected exit 0, got {status}"));
    }
    if row.expect == Expect::OutputLost {
        match counters(stdout, target) {
            Some(c) if c.is_empty() => {
                return Err("the counters' header was printed, with no counters".into())
            }
            Some(_) => return Err("the counters were printed".into()),
            None => {}
        }
        if let Some(bad) = w.clients.iter().find_map(|c| c.failure.as_ref()) {
            return Err(format!("a client failed: {bad}"));
        }
        if w.clients
            .iter()
            .any(|c| !c.hello_ok || c.closed.is_some() || !c.eof)
        {
            return Err(format!("a client was not served: {:?}", w.clients));
        }
        if !matches!(w.fresh, Some(Ok(_))) {
            return Err(format!("the fresh client was not served: {:?}", w.fresh));
        }
        if count(sys) != 1 {
            return Err(format!("expected 1 fault, {} injected", count(sys)));
        }
        return Ok("ignored: counters lost, exit 0".into());
    }
    let Some(c) = counters(stdout, target) else {
        return Err("no counters printed".to_string());
    };
    let get = |k: &str| c.get(k).copied().unwrap_or(u64::MAX);
    let echo = matches!(target, Target::Echo(_));
    let relay = target == Target::Relay;
    let nonzero = || {
        let common = [
            "accepted",
            "refused",
            "empty_accepts",
            "out_of_resources",
            "shed",
            "backoffs",
            "closed_eof",
            "closed_reset",
            "closed_policy",
        ];
        let own: &[&str] = if echo {
            &[
                "closed_protocol",
                "closed_panic",
                "closed_shutdown",
                "bytes_sent",
                "open",
            ]
        } else {
            &[
                "connected",
                "connect_failed",
                "closed_protocol",
                "closed_panic",
                "closed_shutdown",
                "messages_received",
                "messages_sent",
                "bytes_received",
                "bytes_sent",
                "open",
            ]
        };
        let mut v: Vec<String> = common
            .iter()
            .chain(own)
            .filter(|k| get(k) != 0)
            .map(|k| format!("{k}={}", get(k)))
            .collect();
        for k in ["would_block", "aborted", "protocol", "interrupted", "other"] {
            let v2 = get(&format!("empty_accepts.{k}"));
            if v2 != 0 {
                v.push(format!("empty_accepts.{k}={v2}"));
            }
        }
        v.join(" ")
    };
    let fail = |why: String| Err(format!("{why}; counters: {}", nonzero()));

    if row.expect == Expect::NoAddress {
        if stdout.iter().any(|l| l.contains("listening on")) {
            return fail("printed an address".into());
        }
        if !(stderr.contains("getsockname") && names_errno) {
            return fail(format!(
                "stderr does not name getsockname's errno: {stderr:?}"
            ));
        }
        if count(sys) != 1 {
            return fail(format!("expected 1 fault, {} injected", count(sys)));
        }
        return Ok(format!(
            "serves without printing its address; {}",
            nonzero()
        ));
    }

    if row.expect == Expect::NeverCalled && count(sys) != 0 {
        return fail(format!(
            "{} makes {sys} calls now ({} faults injected): give it the {sys} rows",
            target.name(),
            count(sys)
        ));
    }
    // Every planned fault fired.
    let faults = match landed {
        None => {
            for (s, _, when, _) in injects {
                let want = if row.expect == Expect::NeverCalled && *s == sys {
                    0
                } else {
                    planned(when).len()
                };
                if count(s) != want {
                    return fail(format!(
                        "{s}: {} faults injected, {want} planned (when={when})",
                        count(s)
                    ));
                }
            }
            count(sys) as u64
        }
        // With workers, each thread's planned calls (`check_threads`); the counters
        // are totals over the workers, so they are compared with what landed.
        Some(landed) => {
            notes.push(format!("faults per thread: {}", landed.per_thread));
            let on_conns = matches!(row.sys, "recvfrom" | "sendto" | "sendmsg" | "close");
            let faults = if on_conns {
                landed.on_conns
            } else {
                landed.total
            };
            if faults == 0 {
                return fail(format!(
                    "no fault landed{} (when={})",
                    if on_conns { " on a connection" } else { "" },
                    injects[0].2
                ));
            }
            if on_conns && landed.on_conns != landed.total {
                notes.push(format!(
                    "{} not on a connection",
                    landed.total - landed.on_conns
                ));
            }
            faults
        }
    };
    // Shared listener: the workers race for each connection, and the loser's
    // accept4 finds the queue empty (EAGAIN) a number of times no plan knows.
    let racing = workers == Workers::Shared;

    // The clients.
    if let Some(bad) = w.clients.iter().find_map(|c| c.failure.as_ref()) {
        return fail(format!("a client failed: {bad}"));
    }
    match &w.fresh {
        Some(Ok(_)) => {}
        Some(Err(e)) => return fail(format!("the fresh client was not served: {e}")),
        None => return fail("no fresh client".into()),
    }
    // Accepted by the server: served, or closed by it after the accept.
    let served: Vec<&ClientReport> = w
        .clients
        .iter()
        .filter(|c| c.hello_ok || c.closed.is_some())
        .collect();
    let turned_away: Vec<&ClientReport> = w
        .clients
        .iter()
        .filter(|c| c.turned_away.is_some())
        .collect();
    let closed: Vec<&&ClientReport> = served.iter().filter(|c| c.closed.is_some()).collect();
    let finished: Vec<&&ClientReport> = served.iter().filter(|c| c.closed.is_none()).collect();
    let no_eof = finished.iter().filter(|c| !c.eof).count() as u64
        + w.fresh
            .as_ref()
            .map_or(0, |f| f.as_ref().map_or(0, |t| t.no_eof));
    let n = |v: usize| v as u64;

    let fresh_clients = target.fresh_clients();
    let accepted = n(served.len()) + fresh_clients;
    // The relay's clients whose upstream never connected: closed, not reset.
    let no_upstream = if row.expect == Expect::NoUpstream {
        faults
    } else {
        0
    };
    let mut want: Vec<(&str, u64)> = vec![
        ("accepted", accepted),
        ("closed_eof", n(finished.len()) + fresh_clients),
        ("closed_reset", n(closed.len()).saturating_sub(no_upstream)),
        ("closed_policy", 0),
    ];
    if relay {
        // A pair ends as its upstream side reads EOF (`closed_eof`) or one side
        // fails (`closed_reset`); the other side follows (`closed_protocol`), as
        // does a client whose upstream never connected: one per client. A connect
        // given up once under way is counted; one whose `socket` or `connect`
        // failed, the protocol heard of at once.
        let under_way = !matches!(row.sys, "socket" | "connect");
        want.extend([
            ("closed_protocol", accepted),
            ("connected", accepted.saturating_sub(no_upstream)),
            ("connect_failed", if under_way { no_upstream } else { 0 }),
        ]);
    }
    // Nothing else closes a connection (no protocol here closes one on its own,
    // nor panics), and none is left at the end.
    for k in ["closed_protocol", "closed_panic", "closed_shutdown", "open"] {
        if !want.iter().any(|(w, _)| *w == k) {
            want.push((k, 0));
        }
    }
    let mut want_turned_away = 0;
    let mut want_closed = 0;
    let mut want_no_eof = 0;
    match row.expect {
        Expect::Retry | Expect::CloseIgnored | Expect::NeverCalled => {}
        Expect::Backoff => want.push(("backoffs", faults)),
        Expect::NotNow(bucket) => {
            let key = match bucket {
                "would_block" => "empty_accepts.would_block",
                "aborted" => "empty_accepts.aborted",
                "protocol" => "empty_accepts.protocol",
                "interrupted" => "empty_accepts.interrupted",
                _ => "empty_accepts.other",
            };
            if racing {
                // The races add to would_block: at least the faults there, exactly
                // the faults in any other bucket; the total is the buckets' sum.
                let lost = get("empty_accepts.would_block");
                if bucket == "would_block" && lost < faults {
                    return fail(format!("counter {key}: want at least {faults}, got {lost}"));
                }
                if bucket != "would_block" {
                    want.push((key, faults));
                }
                let races = if bucket == "would_block" {
                    lost - faults
                } else {
                    lost
                };
                want.push(("empty_accepts", faults + races));
                notes.push(format!("{races} accept races lost"));
            } else {
                want.push(("empty_accepts", faults));
                want.push((key, faults));
            }
        }
        Expect::Shed if racing => {
            // The shed's own accept4 may lose the race to the other worker, which
            // then serves that connection: at most one shed per fault, and exactly
            // the shed clients turned away.
            want.push(("out_of_resources", faults));
            let shed = get("shed");
            if shed > faults {
                return fail(format!("counter shed: want at most {faults}, got {shed}"));
            }
            want.push(("shed", shed));
            want_turned_away = shed;
            want.push(("empty_accepts", get("empty_accepts.would_block")));
        }
        Expect::Shed => {
            want.push(("out_of_resources", faults));
            want.push(("shed", faults));
            want_turned_away = faults;
        }
        Expect::ShedFails => {
            want.push(("out_of_resources", 1));
            want.push(("shed", 0));
        }
        Expect::Pause => {
            want.push(("out_of_resources", faults));
            want.push(("shed", 0));
        }
        Expect::ShedReopenFails => {
            want.push(("out_of_resources", faults));
            want.push(("shed", faults));
            want_turned_away = faults;
        }
        Expect::CloseClient | Expect::NoUpstream => want_closed = faults,
        Expect::LingerFin => {
            want.push(("refused", 3));
            want_turned_away = 3;
        }
        Expect::Refuse => {
            want.push(("refused", faults));
            want_turned_away = faults;
        }
        _ => unreachable!(),
    }
    if row.expect == Expect::CloseIgnored {
        want_no_eof = if relay {
            w.client_closes_failed
        } else {
            faults
        };
    }
    if racing && !want.iter().any(|(k, _)| *k == "empty_accepts") {
        want.push(("empty_accepts", get("empty_accepts.would_block")));
    }
    for k in [
        "backoffs",
        "empty_accepts",
        "out_of_resources",
        "shed",
        "refused",
    ] {
        if !want.iter().any(|(w, _)| *w == k) {
            want.push((k, 0));
        }
    }
    for (k, v) in &want {
        if get(k) != *v {
            return fail(format!("counter {k}: want {v}, got {}", get(k)));
        }
    }
    if n(turned_away.len()) + w.fresh_shed != want_turned_away {
        return fail(format!(
            "{} clients turned away (+{} fresh), want {want_turned_away}",
            turned_away.len(),
            w.fresh_shed
        ));
    }
    if w.fresh_shed > 0 {
        notes.push(format!("{} fresh client(s) shed", w.fresh_shed));
    }
    if n(closed.len()) != want_closed {
        return fail(format!(
            "{} clients closed early, want {want_closed}",
            closed.len()
        ));
    }
    if no_eof != want_no_eof {
        return fail(format!("{no_eof} clients saw no EOF, want {want_no_eof}"));
    }
    // Turned-away clients: a reset, except the one whose SO_LINGER failed (FIN).
    let fins = turned_away
        .iter()
        .filter(|c| c.turned_away == Some(Close::Eof))
        .count();
    let resets = turned_away
        .iter()
        .filter(|c| c.turned_away == Some(Close::Reset))
        .count();
    match row.expect {
        Expect::LingerFin => {
            if n(fins) != faults || n(resets) != 3 - faults {
                return fail(format!(
                    "refused: {fins} FIN, {resets} RST; want {faults} FIN"
                ));
            }
            notes.push(format!("refused: {fins} FIN + {resets} RST"));
        }
        _ if resets != turned_away.len() => {
            return fail(format!("turned-away clients saw no reset: {turned_away:?}"));
        }
        _ => {}
    }
    let fresh = match &w.fresh {
        Some(Ok(t)) => *t,
        _ => Traffic::default(),
    };
    let sum = |f: fn(&ClientReport) -> u64| served.iter().map(|c| f(c)).sum::<u64>();
    let sent = sum(|c| c.sent) + fresh.sent;
    let verified = sum(|c| c.verified) + fresh.verified;
    if relay {
        // Every byte twice: read from its client and sent upstream, read back from
        // the upstream and sent to the client; nothing lost (no client closed), or
        // at least what the clients checked.
        let (got_in, got_out) = (get("bytes_received"), get("bytes_sent"));
        let lost = if closed.is_empty() {
            got_in != 2 * sent || got_out != 2 * sent || verified != sent
        } else {
            got_in < 2 * verified || got_out < 2 * verified
        };
        if lost {
            return fail(format!(
                "bytes: sent {sent}, verified {verified}, relay received {got_in}, sent \
                 {got_out}"
            ));
        }
        if w.upstream_open != 0 {
            return fail(format!(
                "{} upstream connections still open after the fresh client",
                w.upstream_open
            ));
        }
        notes.push(format!("upstream: {} conns", w.upstream_accepted));
    } else if !echo {
        // Nothing lost: the server read every byte and message the clients sent
        // and sent every byte and message they checked, no more; with a client
        // closed, at least what the others checked.
        let msgs_in = sum(|c| c.msgs_in) + fresh.msgs_in;
        let msgs_out = sum(|c| c.msgs_out) + fresh.msgs_out;
        let exact = [
            ("bytes_received", sent),
            ("messages_received", msgs_in),
            ("bytes_sent", verified),
            ("messages_sent", msgs_out),
        ];
        for (k, v) in exact {
            let lost = if closed.is_empty() {
                get(k) != v
            } else {
                k.ends_with("_sent") && get(k) < v
            };
            if lost {
                let how = if closed.is_empty() { "" } else { "at least " };
                return fail(format!("counter {k}: want {how}{v}, got {}", get(k)));
            }
        }
    } else if closed.is_empty() {
        // Nothing lost: every byte sent by a client that was not closed was echoed.
        if get("bytes_sent") != sent || verified != sent {
            return fail(format!(
                "bytes: sent {sent}, verified {verified}, bytes_sent {}",
                get("bytes_sent")
            ));
        }
    } else if get("bytes_sent") < verified {
        return fail(format!(
            "bytes_sent {} < {verified} verified",
            get("bytes_sent")
        ));
    }
    if !closed.is_empty() {
        notes.push(format!(
            "closed: {}",
            closed
                .iter()
                .map(|c| format!("c{} ({:?})", c.id, c.closed.unwrap()))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    if no_eof > 0 {
        notes.push(format!(
            "{no_eof} clients got no EOF (fd leaked under strace)"
        ));
    }
    let what = match row.expect {
        Expect::Retry => "survives, nothing lost",
        Expect::Backoff => "backs off, nothing lost",
        Expect::NotNow(_) => "not now, then accepted",
        Expect::Shed => "sheds one connection per fault",
        Expect::ShedFails => "pauses the listener, then accepts",
        Expect::Pause => "pauses the listener, then accepts",
        Expect::ShedReopenFails => "sheds, pauses the listener",
        Expect::CloseClient => "closes that client only",
        Expect::CloseIgnored => "ignores the error",
        Expect::LingerFin => "refused with FIN",
        Expect::Refuse => "refuses that connection (RST)",
        Expect::NeverCalled => "never called, nothing lost",
        Expect::NoUpstream => "closes that client only (no upstream)",
        _ => "",
    };
    Ok(format!("{what}; {}", nonzero()))
}
