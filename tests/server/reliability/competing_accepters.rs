//! Scenario 2. Competing accepters.

use super::*;

/// Several servers run the loop on one shared listener (UNP's preforked servers,
/// here threads). Each server sleeps `ACCEPT_WINDOW` between its wait and its
/// `accept`, so every new connection wakes them all and only one gets it.
fn competing(variant: Variant, nonblocking: bool) {
    const ACCEPT_WINDOW: Duration = Duration::from_millis(20);
    let _dog = watchdog("competing accepters");
    raise_nofile(16384);
    let n_servers = 3;
    let n_clients = pick(6, 12, 48);
    // A normal echo takes milliseconds; no echo within this is a stall.
    let limit = pick(
        Duration::from_secs(2),
        Duration::from_millis(500),
        Duration::from_millis(500),
    );
    let base = open_fds();
    let started = Instant::now();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config::book()
        .with_nonblocking_listener(nonblocking)
        .with_accept_delay(Some(ACCEPT_WINDOW));
    let servers: Vec<Server> = (0..n_servers)
        .map(|_| {
            Server::on(
                listener.try_clone().unwrap(),
                Echo::Bytes,
                config.clone(),
                variant,
            )
        })
        .collect();
    drop(listener);
    let sampler = FdSampler::start();

    // Clients connect one by one; every connection wakes every server, one accepts
    // it, and with a blocking listener the others sleep in accept. After each new
    // connection, every client sends a line and waits for its echo: a client whose
    // server sleeps in accept gets nothing back within `limit` (a stall). Stalled
    // clients are then rescued (bounded) by extra connections, which wake a stuck
    // accept. Last, every client half-closes and expects EOF (also a round).
    // A blocking run stops adding clients after a few stalled rounds: the point is
    // made, and each stall costs `limit` of waiting.
    let mut clients: Vec<(TcpStream, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut stalls = 0;
    let mut stalled_rounds = 0;
    let mut rounds = 0;
    let mut rescue_connections = 0;
    let mut lines_sent = 0;
    let mut i = 0;
    loop {
        let last = i == n_clients || stalled_rounds >= 3;
        if last {
            for (c, _, _) in &clients {
                c.shutdown(Shutdown::Write).unwrap();
            }
        } else {
            clients.push((connect_high(addr).unwrap(), Vec::new(), Vec::new()));
            thread::sleep(ACCEPT_WINDOW + Duration::from_millis(10));
            for (j, (c, sent, _)) in clients.iter_mut().enumerate() {
                let line = format!("client {j} round {i}\n");
                c.write_all(line.as_bytes()).unwrap();
                sent.extend_from_slice(line.as_bytes());
                lines_sent += 1;
            }
        }
        let done = |(c, sent, got): &mut (TcpStream, Vec<u8>, Vec<u8>), deadline| {
            if last {
                read_until(c, got, sent.len() + 1, deadline) == ReadEnd::Eof
            } else {
                read_until(c, got, sent.len(), deadline) == ReadEnd::Full
            }
        };
        let deadline = Instant::now() + limit;
        let mut pending: Vec<usize> = (0..clients.len())
            .filter(|&j| !done(&mut clients[j], deadline))
            .collect();
        rounds += 1;
        stalls += pending.len();
        stalled_rounds += usize::from(!pending.is_empty());
        let mut extra = Vec::new();
        while !pending.is_empty() {
            assert!(extra.len() < 30, "clients {pending:?} never served");
            extra.push(connect_high(addr).unwrap());
            let deadline = Instant::now() + Duration::from_millis(200);
            pending.retain(|&j| !done(&mut clients[j], deadline));
        }
        rescue_connections += extra.len();
        if last {
            break;
        }
        i += 1;
    }
    let stall_time = started.elapsed();
    let clients_connected = clients.len();
    for (_, sent, got) in &clients {
        assert_eq!(got, sent, "byte for byte");
    }
    drop(clients);
    let probe_time = probe(addr).ok();
    let peak = sampler.peak();

    // Stop them all; a server stuck in a blocking accept needs a connection to wake.
    for s in &servers {
        s.stop.shutdown();
    }
    let stop_deadline = Instant::now() + Duration::from_secs(20);
    let mut wakers = Vec::new();
    while servers.iter().any(|s| !s.thread.is_finished()) {
        assert!(Instant::now() < stop_deadline, "servers did not stop");
        if let Ok(c) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            wakers.push(c);
        }
        thread::sleep(Duration::from_millis(50));
    }
    drop(wakers);
    let mut total = Stats::default();
    let mut per_server = Vec::new();
    let mut cpu = Duration::ZERO;
    for s in servers {
        let (stats, c) = s.finish();
        cpu += c;
        per_server.push(stats.accepted);
        total.accepted += stats.accepted;
        total.messages_sent += stats.messages_sent;
        total.empty_accepts.would_block += stats.empty_accepts.would_block;
        total.empty_accepts.aborted += stats.empty_accepts.aborted;
    }
    let end = settle_fds(base, Duration::from_secs(5));
    let mode = if nonblocking {
        "nonblocking"
    } else {
        "blocking"
    };
    report(
        &format!("competing_accepters_{mode}"),
        variant.name(),
        &[
            ("servers", &n_servers),
            ("clients", &clients_connected),
            ("rounds", &rounds),
            ("lines_sent", &lines_sent),
            ("lines_echoed_by_servers", &total.messages_sent),
            ("stalled_rounds", &stalled_rounds),
            ("stalled_client_waits", &stalls),
            ("rescue_connections", &rescue_connections),
            ("accepted_per_server", &format!("{per_server:?}")),
            ("empty_accepts_eagain", &total.empty_accepts.would_block),
            ("probe", &probe_time.map_or("failed".to_string(), ms)),
            ("fds_base", &base),
            ("fds_peak", &peak),
            ("fds_end", &end),
            ("server_cpu", &ms(cpu)),
            ("elapsed", &ms(stall_time)),
        ],
    );
    assert_eq!(end, base, "descriptors leaked");
    if nonblocking {
        assert_eq!(stalls, 0, "a nonblocking listener never stalls a server");
        assert!(probe_time.is_some(), "still serving");
        // The race did happen: servers woke for connections others took.
        assert!(total.empty_accepts.would_block > 0, "{total:?}");
    } else {
        // The book's bug, detected within `limit`, and recovered from.
        assert!(
            stalled_rounds > 0,
            "the blocking listener should stall some server"
        );
        assert_eq!(total.empty_accepts.total(), 0, "{total:?}");
    }
}

#[test]
fn s2_competing_accepters_nonblocking_never_stall() {
    run_scenario(&SELECT_AND_POLL, |variant| competing(variant, true));
}

#[test]
fn s2_competing_accepters_blocking_stall_is_detected() {
    run_scenario(&SELECT_AND_POLL, |variant| competing(variant, false));
}
