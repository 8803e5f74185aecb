//! Scenario 7. Signals.

use super::*;

fn signals(variant: Variant) {
    let _dog = watchdog("signals");
    use nix::sys::signal::Signal;
    // The shared counting handler, installed without SA_RESTART.
    common::signals::install_handler_for(Signal::SIGUSR2);
    raise_nofile(16384);
    let seed = seed();
    let n_clients = pick(4, 20, 50);
    let duration = pick(
        Duration::from_secs(1),
        Duration::from_secs(3),
        Duration::from_secs(20),
    );
    let base = open_fds();
    let started = Instant::now();
    let s = Server::start(Echo::Bytes, Config::book(), variant);
    let idle = idle_fds(s.addr);
    let handled_before = common::signals::total();

    let go = Arc::new(AtomicBool::new(true));
    let clients = spawn_clients(s.addr, n_clients, seed, 1, 10, 200, Some(go.clone()));
    // Also connect and disconnect during the storm of signals, to hit accept too.
    let churn = {
        let (addr, go) = (s.addr, go.clone());
        thread::spawn(move || {
            let mut n = 0u64;
            while go.load(Ordering::SeqCst) {
                probe(addr).expect("probe while signalled");
                n += 1;
                thread::sleep(Duration::from_millis(20));
            }
            n
        })
    };
    // This thread signals the server thread every millisecond for `duration`, and
    // at least 100 times however long the start took (valgrind, a busy machine).
    let mut signals_sent = 0u64;
    let signalling = Instant::now();
    while signalling.elapsed() < duration || signals_sent < 100 {
        let rc = common::signals::signal_thread(&s.thread, Signal::SIGUSR2);
        assert_eq!(rc, 0, "pthread_kill");
        signals_sent += 1;
        thread::sleep(Duration::from_millis(1));
    }
    go.store(false, Ordering::SeqCst);
    let churn = churn.join().expect("churn thread");
    let handled = common::signals::total() - handled_before;
    let out = join_clients(clients);
    let probe_time = probe(s.addr).expect("still serving");
    let idle_after = settle_fds(idle, Duration::from_secs(10));
    let (stats, cpu) = s.finish();
    let end = settle_fds(base, Duration::from_secs(5));
    report(
        "signals",
        variant.name(),
        &[
            ("seed", &seed),
            ("signals_sent", &signals_sent),
            ("signals_handled", &handled),
            ("clients", &n_clients),
            ("connect_churn", &churn),
            ("lines_sent", &out.lines_sent),
            ("lines_echoed", &out.lines_echoed),
            ("bytes_sent", &out.bytes_sent),
            ("bytes_echoed", &out.bytes_echoed),
            ("max_batch_wait", &ms(out.max_wait)),
            ("accept_eintr", &stats.empty_accepts.interrupted),
            ("closed_reset", &stats.closed_reset),
            ("probe", &ms(probe_time)),
            ("fds_base", &base),
            ("fds_end", &end),
            ("server_cpu", &ms(cpu)),
            ("elapsed", &ms(started.elapsed())),
        ],
    );
    assert_eq!(out.error, None);
    assert_eq!(out.bytes_echoed, out.bytes_sent);
    assert!(out.lines_echoed > 0);
    assert!(
        handled >= 50,
        "only {handled} signals reached the server thread"
    );
    assert_eq!(stats.closed_reset, 0, "nothing failed: {stats:?}");
    assert_eq!(stats.closed_eof, stats.accepted, "{stats:?}");
    assert_eq!(idle_after, idle, "descriptors leaked while running");
    assert_eq!(end, base, "descriptors leaked after shutdown");
}

#[test]
fn s7_signals_every_millisecond() {
    run_scenario(&SELECT_AND_POLL, signals);
}
