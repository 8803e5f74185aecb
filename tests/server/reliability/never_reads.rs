//! Scenario 4. A client that never reads.

use super::*;

fn never_reads(variant: Variant) {
    let _dog = watchdog("never reads");
    raise_nofile(16384);
    let seed = seed();
    let write_timeout = Duration::from_millis(500);
    let n_good = pick(3, 10, 20);
    let batches = pick(20, 100, 1000);
    let base = open_fds();
    let started = Instant::now();
    let config = Config::book().with_write_timeout(write_timeout);
    let s = Server::start(Echo::Bytes, config, variant);
    let idle = idle_fds(s.addr);
    let sampler = FdSampler::start();

    // The hog: sends 1 KiB lines as fast as the server takes them, never reads.
    let hog = {
        let addr = s.addr;
        thread::spawn(move || {
            let hog = connect_high(addr).unwrap();
            hog.set_nonblocking(true).unwrap();
            let mut line = vec![b'h'; 1023];
            line.push(b'\n');
            let mut sent = 0u64;
            let mut blocked_since: Option<Instant> = None;
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut offset = 0;
            loop {
                assert!(Instant::now() < deadline, "the hog was never closed");
                match (&hog).write(&line[offset..]) {
                    Ok(n) => {
                        sent += n as u64;
                        offset = (offset + n) % line.len();
                        blocked_since = None;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        blocked_since.get_or_insert_with(Instant::now);
                        thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => {
                        let waited = blocked_since.map_or(Duration::ZERO, |t| t.elapsed());
                        return (sent, e.kind(), waited);
                    }
                }
            }
        })
    };
    let good = spawn_clients(s.addr, n_good, seed, batches, 5, 200, None);
    let (hog_sent, hog_error, hog_blocked) = hog.join().expect("hog thread");
    let good = join_clients(good);
    let probe_time = probe(s.addr).expect("still serving");
    let peak = sampler.peak();
    let idle_after = settle_fds(idle, Duration::from_secs(10));
    let (stats, cpu) = s.finish();
    let end = settle_fds(base, Duration::from_secs(5));

    report(
        "never_reads",
        variant.name(),
        &[
            ("seed", &seed),
            ("hog_bytes_sent", &hog_sent),
            ("hog_error", &format!("{hog_error:?}")),
            ("hog_blocked_before_close", &ms(hog_blocked)),
            ("write_timeout", &ms(write_timeout)),
            ("good_clients", &n_good),
            ("lines_sent", &good.lines_sent),
            ("lines_echoed", &good.lines_echoed),
            ("bytes_sent", &good.bytes_sent),
            ("bytes_echoed", &good.bytes_echoed),
            ("max_batch_wait", &ms(good.max_wait)),
            ("probe", &ms(probe_time)),
            ("closed_policy", &stats.closed_policy),
            ("closed_eof", &stats.closed_eof),
            ("closed_reset", &stats.closed_reset),
            ("fds_base", &base),
            ("fds_peak", &peak),
            ("fds_end", &end),
            ("server_cpu", &ms(cpu)),
            ("elapsed", &ms(started.elapsed())),
        ],
    );
    assert_eq!(good.error, None);
    assert_eq!(good.bytes_echoed, good.bytes_sent);
    assert!(
        good.max_wait < prompt_limit(),
        "others waited {:?}",
        good.max_wait
    );
    assert!(
        matches!(
            hog_error,
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{hog_error:?}"
    );
    assert!(hog_sent >= 1 << 20, "the hog sent only {hog_sent} bytes");
    assert_eq!(stats.closed_policy, 1, "only the hog: {stats:?}");
    assert_eq!(stats.closed_reset, 0, "{stats:?}");
    assert_eq!(stats.closed_eof, n_good as u64 + 2, "{stats:?}");
    assert_all_closed(&stats);
    assert_eq!(idle_after, idle, "descriptors leaked while running");
    assert_eq!(end, base, "descriptors leaked after shutdown");
}

#[test]
fn s4_client_that_never_reads() {
    run_scenario(&SELECT_AND_POLL, never_reads);
}
