//! Scenario 8. Half-close.

use super::*;

fn half_close(variant: Variant) {
    let _dog = watchdog("half close");
    raise_nofile(16384);
    let seed = seed();
    let n_clients = pick(10, 50, 200);
    let per_client = pick(4 << 10, 64 << 10, 1 << 20);
    let base = open_fds();
    let started = Instant::now();
    let s = Server::start(Echo::Bytes, Config::book(), variant);
    let idle = idle_fds(s.addr);
    let sampler = FdSampler::start();

    let clients: Vec<JoinHandle<(usize, usize, u64)>> = (0..n_clients)
        .map(|id| {
            let addr = s.addr;
            thread::spawn(move || {
                let mut rng = Rng::new(seed ^ (id as u64 + 1) << 20);
                let mut data = Vec::new();
                let mut lines = 0u64;
                while data.len() < per_client {
                    // Some lines longer than MAXLINE: they come back in pieces.
                    let max = if rng.chance(5) { 10_000 } else { 300 };
                    data.extend(rng.line(max, &format!("c{id} l{lines} ")));
                    lines += 1;
                }
                data.extend_from_slice(format!("c{id} unterminated tail").as_bytes());
                let mut c = connect_high(addr).unwrap();
                let writer = {
                    let mut w = c.try_clone().unwrap();
                    let data = data.clone();
                    thread::spawn(move || {
                        w.write_all(&data)?;
                        w.shutdown(Shutdown::Write)
                    })
                };
                let mut got = Vec::new();
                c.read_to_end(&mut got).expect("read to EOF");
                writer.join().unwrap().expect("write then SHUT_WR");
                assert_eq!(got.len(), data.len(), "client {id}");
                assert!(got == data, "client {id}: echo differs");
                (data.len(), got.len(), lines + 1)
            })
        })
        .collect();
    let (mut sent, mut echoed, mut lines) = (0, 0, 0);
    for h in clients {
        let (s_, e, l) = h.join().expect("half-close client");
        sent += s_;
        echoed += e;
        lines += l;
    }
    let probe_time = probe(s.addr).expect("still serving");
    let peak = sampler.peak();
    let idle_after = settle_fds(idle, Duration::from_secs(10));
    let (stats, cpu) = s.finish();
    let end = settle_fds(base, Duration::from_secs(5));
    report(
        "half_close",
        variant.name(),
        &[
            ("seed", &seed),
            ("clients", &n_clients),
            ("lines_sent", &lines),
            ("server_lines_echoed", &stats.messages_sent),
            ("bytes_sent", &sent),
            ("bytes_echoed", &echoed),
            ("closed_eof", &stats.closed_eof),
            ("probe", &ms(probe_time)),
            ("fds_base", &base),
            ("fds_peak", &peak),
            ("fds_end", &end),
            ("server_cpu", &ms(cpu)),
            ("elapsed", &ms(started.elapsed())),
        ],
    );
    assert_eq!(sent, echoed);
    assert_eq!(stats.closed_eof, n_clients as u64 + 2, "{stats:?}");
    assert_all_closed(&stats);
    assert_eq!(idle_after, idle, "descriptors leaked while running");
    assert_eq!(end, base, "descriptors leaked after shutdown");
}

#[test]
fn s8_half_close() {
    run_scenario(&SELECT_AND_POLL, half_close);
}
