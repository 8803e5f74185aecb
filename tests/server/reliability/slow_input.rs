//! Scenario 3. Slow and partial input.

use super::*;

/// How many leading bytes of `sent` the server must have echoed by now: whole
/// lines, and pieces of `max_line` bytes of longer lines; an incomplete last piece
/// stays with the server until more comes or EOF.
fn completed_len(sent: &[u8], max_line: usize) -> usize {
    let mut pos = 0;
    loop {
        let rest = &sent[pos..];
        let window = &rest[..rest.len().min(max_line)];
        if let Some(i) = window.iter().position(|&b| b == b'\n') {
            pos += i + 1;
        } else if rest.len() >= max_line {
            pos += max_line;
        } else {
            return pos;
        }
    }
}

struct Slow {
    stream: TcpStream,
    sent: Vec<u8>,
    target: usize,
    newlines: bool,
}

fn slow_input(variant: Variant) {
    const MAX_LINE: usize = 64;
    let _dog = watchdog("slow input");
    raise_nofile(16384);
    let seed = seed();
    let mut rng = Rng::new(seed);
    let n_slow = pick(50, 500, 500);
    let n_fast = pick(3, 10, 20);
    let duration = pick(
        Duration::from_secs(2),
        Duration::from_secs(3),
        Duration::from_secs(30),
    );
    let limit = prompt_limit();

    let base = open_fds();
    let rss_before = rss_kib();
    let started = Instant::now();
    let config = Config::book().with_max_line(MAX_LINE);
    let s = Server::start(Echo::Lines, config, variant);
    let idle = idle_fds(s.addr);
    let sampler = FdSampler::start();

    let mut slow: Vec<Slow> = (0..n_slow)
        .map(|_| Slow {
            stream: connect_high(s.addr).unwrap(),
            sent: Vec::new(),
            target: 20 + rng.below(pick(120, 180, 2000)) as usize,
            newlines: !rng.chance(30), // 30% never send a newline
        })
        .collect();
    let never_newline = slow.iter().filter(|c| !c.newlines).count();

    let fast_go = Arc::new(AtomicBool::new(true));
    let fast = spawn_clients(s.addr, n_fast, seed, 1, 1, 100, Some(fast_go.clone()));

    // One byte at a time, each client with random pauses (70% of ticks skip).
    let slow_started = Instant::now();
    let mut writes = 0u64;
    while slow_started.elapsed() < duration && slow.iter().any(|c| c.sent.len() < c.target) {
        for c in slow.iter_mut() {
            if c.sent.len() >= c.target || !rng.chance(30) {
                continue;
            }
            let byte = if c.newlines && rng.chance(10) {
                b'\n'
            } else {
                b'a' + rng.below(26) as u8
            };
            c.stream.write_all(&[byte]).unwrap();
            c.sent.push(byte);
            writes += 1;
        }
        thread::sleep(Duration::from_millis(10));
    }
    fast_go.store(false, Ordering::SeqCst);
    let fast = join_clients(fast);

    // Checkpoint: each client has back exactly its completed lines and pieces, and
    // nothing of its incomplete last piece (which the server holds, < MAX_LINE).
    let deadline = Instant::now()
        + pick(
            Duration::from_secs(30),
            Duration::from_secs(10),
            Duration::from_secs(10),
        );
    let mut max_held = 0;
    let mut bytes_sent = 0;
    let mut bytes_echoed = 0;
    for (i, c) in slow.iter_mut().enumerate() {
        let want = completed_len(&c.sent, MAX_LINE);
        let mut got = Vec::new();
        assert!(
            read_until(&mut c.stream, &mut got, want, deadline) == ReadEnd::Full,
            "slow client {i}: {} of {want} bytes echoed",
            got.len()
        );
        assert_eq!(got, c.sent[..want], "slow client {i}: echo differs");
        max_held = max_held.max(c.sent.len() - want);
        bytes_sent += c.sent.len();
        // EOF makes the server echo the incomplete tail too.
        c.stream.shutdown(Shutdown::Write).unwrap();
        c.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        c.stream.read_to_end(&mut got).unwrap();
        assert_eq!(got, c.sent, "slow client {i}: echo differs after EOF");
        bytes_echoed += got.len();
    }
    drop(slow);
    let probe_time = probe(s.addr).expect("still serving");
    let peak = sampler.peak();
    let idle_after = settle_fds(idle, Duration::from_secs(10));
    let rss_peak = peak_rss_kib();
    let (stats, cpu) = s.finish();
    let end = settle_fds(base, Duration::from_secs(5));

    let kib = |v: Option<u64>| v.map_or("n/a".to_string(), |k| format!("{k}KiB"));
    report(
        "slow_partial_input",
        variant.name(),
        &[
            ("seed", &seed),
            ("slow_clients", &n_slow),
            ("never_newline", &never_newline),
            ("one_byte_writes", &writes),
            ("slow_bytes_sent", &bytes_sent),
            ("slow_bytes_echoed", &bytes_echoed),
            ("max_line", &MAX_LINE),
            ("max_unechoed_per_client", &max_held),
            ("fast_clients", &n_fast),
            ("fast_round_trips", &fast.lines_echoed),
            ("fast_max_wait", &ms(fast.max_wait)),
            ("probe", &ms(probe_time)),
            ("accepted", &stats.accepted),
            ("fds_base", &base),
            ("fds_peak", &peak),
            ("fds_end", &end),
            ("rss_before", &kib(rss_before)),
            ("rss_peak", &kib(rss_peak)),
            ("server_cpu", &ms(cpu)),
            ("elapsed", &ms(started.elapsed())),
        ],
    );
    assert_eq!(fast.error, None);
    assert_eq!(fast.bytes_echoed, fast.bytes_sent);
    assert!(fast.lines_echoed > 0);
    assert!(
        fast.max_wait < limit,
        "fast clients waited {:?} behind slow ones",
        fast.max_wait
    );
    assert!(
        max_held < MAX_LINE,
        "the server held {max_held} bytes of one client"
    );
    assert_eq!(bytes_echoed, bytes_sent);
    assert_eq!(idle_after, idle, "descriptors leaked while running");
    assert_eq!(end, base, "descriptors leaked after shutdown");
    assert_all_closed(&stats);
    assert_eq!(stats.closed_eof, stats.accepted, "{stats:?}");
}

#[test]
fn s3_slow_partial_input() {
    run_scenario(&SELECT_AND_POLL, slow_input);
}
