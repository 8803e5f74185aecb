//! Scenario 1. RST storm.

use super::*;

/// How a storm client ends its connection with an RST.
#[derive(Clone, Copy)]
enum RstKind {
    /// Connect and reset at once: usually before the server's `accept`.
    AtOnce,
    /// After part of a line (no newline).
    MidLine,
    /// After a whole line (sometimes after reading its echo).
    AfterLine,
}

fn rst_storm(variant: Variant) {
    let _dog = watchdog("rst storm");
    raise_nofile(16384);
    let seed = seed();
    let n_rst = pick(200, 1000, 10_000);
    let n_good = pick(10, 50, 50);
    let batches = pick(10, 40, 400);
    let batch = 5;

    let base = open_fds();
    let started = Instant::now();
    let s = Server::start(Echo::Bytes, Config::book(), variant);
    let idle = idle_fds(s.addr);
    let sampler = FdSampler::start();

    let good = spawn_clients(s.addr, n_good, seed, batches, batch, 150, None);
    let storm_threads = 4;
    let storm: Vec<JoinHandle<([u64; 3], u64)>> = (0..storm_threads)
        .map(|t| {
            let addr = s.addr;
            let count = n_rst / storm_threads + usize::from(t < n_rst % storm_threads);
            thread::spawn(move || {
                let mut rng = Rng::new(seed ^ (0x5157_0000 + t as u64));
                let mut kinds = [0u64; 3];
                let mut connect_errors = 0;
                for i in 0..count {
                    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    else {
                        connect_errors += 1;
                        continue;
                    };
                    let kind = match rng.below(3) {
                        0 => RstKind::AtOnce,
                        1 => RstKind::MidLine,
                        _ => RstKind::AfterLine,
                    };
                    match kind {
                        RstKind::AtOnce => {}
                        RstKind::MidLine => {
                            let _ =
                                (&stream).write_all(format!("storm {t}/{i} half a li").as_bytes());
                        }
                        RstKind::AfterLine => {
                            let line = format!("storm {t}/{i} a whole line\n");
                            let _ = (&stream).write_all(line.as_bytes());
                            if rng.chance(50) {
                                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                                let mut got = vec![0u8; line.len()];
                                let _ = (&stream).read_exact(&mut got);
                            }
                        }
                    }
                    kinds[kind as usize] += 1;
                    unp_select::linger::abort(stream).expect("abort a connected socket");
                }
                (kinds, connect_errors)
            })
        })
        .collect();

    let mut kinds = [0u64; 3];
    let mut connect_errors = 0;
    for h in storm {
        let (k, e) = h.join().expect("storm thread panicked");
        for (a, b) in kinds.iter_mut().zip(k) {
            *a += b;
        }
        connect_errors += e;
    }
    let storm_done = started.elapsed();
    let good = join_clients(good);
    let probe_time = probe(s.addr).expect("still serving after the storm");
    let peak = sampler.peak();
    let idle_after = settle_fds(idle, Duration::from_secs(10));
    let (stats, cpu) = s.finish();
    let end = settle_fds(base, Duration::from_secs(5));
    let storm_connections = kinds.iter().sum::<u64>();

    report(
        "rst_storm",
        variant.name(),
        &[
            ("seed", &seed),
            ("rst_clients", &storm_connections),
            ("rst_at_once", &kinds[0]),
            ("rst_mid_line", &kinds[1]),
            ("rst_after_line", &kinds[2]),
            ("connect_errors", &connect_errors),
            ("good_clients", &n_good),
            ("lines_sent", &good.lines_sent),
            ("lines_echoed", &good.lines_echoed),
            ("bytes_sent", &good.bytes_sent),
            ("bytes_echoed", &good.bytes_echoed),
            ("max_batch_wait", &ms(good.max_wait)),
            ("probe", &ms(probe_time)),
            ("accepted", &stats.accepted),
            ("closed_eof", &stats.closed_eof),
            ("closed_reset", &stats.closed_reset),
            ("empty_accepts", &stats.empty_accepts.total()),
            ("fds_base", &base),
            ("fds_idle", &idle),
            ("fds_idle_after", &idle_after),
            ("fds_peak", &peak),
            ("fds_end", &end),
            ("server_cpu", &ms(cpu)),
            ("storm_time", &ms(storm_done)),
            ("elapsed", &ms(started.elapsed())),
        ],
    );

    assert_eq!(good.error, None);
    assert_eq!(good.bytes_echoed, good.bytes_sent);
    assert_eq!(good.lines_sent, (n_good * batches * batch) as u64);
    assert_eq!(connect_errors, 0, "the listener kept accepting");
    assert_eq!(idle_after, idle, "descriptors leaked while running");
    assert_eq!(end, base, "descriptors leaked after shutdown");
    assert_all_closed(&stats);
    // Two probes and the good clients close cleanly; every storm client reset.
    assert_eq!(stats.closed_eof, n_good as u64 + 2, "{stats:?}");
    let total = storm_connections + n_good as u64 + 2;
    let vanished =
        stats.empty_accepts.aborted + stats.empty_accepts.protocol + stats.empty_accepts.other;
    assert_eq!(stats.refused, 0, "{stats:?}");
    if cfg!(target_os = "linux") {
        // Linux hands reset connections to accept (docs/rst-accept-race.md).
        assert_eq!(stats.accepted, total, "{stats:?}");
        assert_eq!(stats.closed_reset, storm_connections, "{stats:?}");
    } else {
        assert_eq!(stats.accepted + vanished, total, "{stats:?}");
    }
}

#[test]
fn s1_rst_storm() {
    run_scenario(&SELECT_AND_POLL, rst_storm);
}
