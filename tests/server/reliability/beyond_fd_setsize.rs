//! Scenario 6. More clients than FD_SETSIZE.

use super::*;
use unp_select::select::FD_SETSIZE;

fn beyond_fd_setsize(variant: Variant) {
    let _dog = Watchdog::new(
        "beyond FD_SETSIZE",
        Duration::from_secs(pick(600, 120, 600)),
    );
    let n_clients = FD_SETSIZE + pick(100, 100, 2000);
    let needed = (HIGH_FD as usize + n_clients + 2 * FD_SETSIZE) as libc::rlim_t;
    let soft = raise_nofile(needed);
    assert!(
        soft >= needed,
        "RLIMIT_NOFILE hard limit too low for this scenario: {soft} < {needed}"
    );
    let base = open_fds();
    let started = Instant::now();
    // More slots than FD_SETSIZE: the descriptor limit, not the slot limit, refuses.
    let config = Config::book().with_max_clients(4 * FD_SETSIZE + n_clients);
    let s = Server::start(Echo::Bytes, config, variant);
    let idle = idle_fds(s.addr);
    // Clients live at HIGH_FD and above; the server's descriptors are the low ones.
    let low_in_use = fd_numbers()
        .into_iter()
        .filter(|&fd| (fd as usize) < FD_SETSIZE)
        .count();
    let free_low = FD_SETSIZE - low_in_use;

    let mut served = Vec::new();
    let mut refused = 0;
    for i in 0..n_clients {
        match flood_client(s.addr, i) {
            Ok(Fate::Served(c)) => served.push(c),
            Ok(Fate::Reset) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    let connect_time = started.elapsed();
    let fds = fd_numbers();
    let peak = fds.len();
    // Server-side connections at or above FD_SETSIZE (clients are >= HIGH_FD).
    let server_high = fds
        .iter()
        .filter(|&&fd| fd as usize >= FD_SETSIZE && fd < HIGH_FD)
        .count();
    let n_served = served.len();
    // Still serving: the held clients echo again.
    for (i, c) in served.iter_mut().enumerate().step_by(97) {
        let line = format!("again {i}\n");
        c.write_all(line.as_bytes()).unwrap();
        let mut got = vec![0u8; line.len()];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, line.as_bytes());
    }
    for mut c in served {
        expect_eof(&mut c).unwrap();
    }
    let idle_after = settle_fds(idle, Duration::from_secs(10));
    let probe_time = probe(s.addr).expect("serves again");
    let (stats, cpu) = s.finish();
    let end = settle_fds(base, Duration::from_secs(5));
    report(
        "beyond_fd_setsize",
        variant.name(),
        &[
            ("fd_setsize", &FD_SETSIZE),
            ("clients", &n_clients),
            ("free_low_fds", &free_low),
            ("served", &n_served),
            ("refused_seen", &refused),
            ("server_refused", &stats.refused),
            ("server_accepted", &stats.accepted),
            ("server_fds_at_or_above_fd_setsize", &server_high),
            ("probe", &ms(probe_time)),
            ("fds_base", &base),
            ("fds_peak", &peak),
            ("fds_end", &end),
            ("server_cpu", &ms(cpu)),
            ("elapsed", &ms(connect_time)),
        ],
    );
    match variant {
        Variant::Select => {
            assert_eq!(n_served, free_low, "every descriptor below FD_SETSIZE used");
            assert_eq!(refused, n_clients - free_low);
            assert_eq!(
                server_high, 0,
                "no server descriptor >= FD_SETSIZE stays open"
            );
        }
        Variant::Poll | Variant::Large => {
            assert_eq!(n_served, n_clients, "no FD_SETSIZE limit");
            assert_eq!(refused, 0);
            assert!(server_high > 0);
        }
    }
    assert_eq!(
        stats.refused, refused as u64,
        "refused connections are counted"
    );
    assert_eq!(stats.accepted, n_served as u64 + 2, "{stats:?}");
    assert_eq!(stats.closed_eof, stats.accepted, "{stats:?}");
    assert_eq!(idle_after, idle, "descriptors leaked while running");
    assert_eq!(end, base, "descriptors leaked after shutdown");
}

#[test]
fn s6_beyond_fd_setsize_select_refuses_and_counts_poll_and_large_serve_all() {
    run_scenario(&Variant::ALL, beyond_fd_setsize);
}
