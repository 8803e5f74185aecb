//! The load of the reliability suite (`tests/server/reliability/`): levels, a reproducible
//! random generator, and the measurement lines `docs/reliability.md` is built from.

use std::fmt::Display;
use std::time::Duration;

/// How hard the suite pushes: `UNP_LOAD=light` (for valgrind), the default (CI), or
/// `UNP_SOAK=1` / `UNP_LOAD=soak` (the full numbers and longer runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Light,
    Default,
    Soak,
}

pub fn level() -> Level {
    if std::env::var("UNP_SOAK").is_ok_and(|v| v == "1") {
        return Level::Soak;
    }
    match std::env::var("UNP_LOAD").as_deref() {
        Ok("light") => Level::Light,
        Ok("soak") => Level::Soak,
        _ => Level::Default,
    }
}

/// Picks the number for the current level.
pub fn pick<T>(light: T, default: T, soak: T) -> T {
    match level() {
        Level::Light => light,
        Level::Default => default,
        Level::Soak => soak,
    }
}

/// How long a well-behaved client may wait for one echo before it counts as not
/// served promptly. Valgrind (light level) slows everything down many times; on a
/// 2-core machine under other load a debug build once took 1.55 s, so the default
/// is 2 s (a starved client waits for ever, so any bound shows the bug).
pub fn prompt_limit() -> Duration {
    pick(
        Duration::from_secs(5),
        Duration::from_secs(2),
        Duration::from_secs(1),
    )
}

/// xorshift64*: small, fast, reproducible. The seed comes from `UNP_SEED` (printed by
/// every scenario) or the clock.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A line of printable bytes (no `\n` inside) of 1..=max bytes, `\n` included.
    pub fn line(&mut self, max: usize, tag: &str) -> Vec<u8> {
        let len = 1 + self.below(max as u64) as usize;
        let mut v: Vec<u8> = tag.bytes().take(len.saturating_sub(1)).collect();
        while v.len() + 1 < len {
            v.push(b' ' + self.below(95) as u8);
        }
        v.push(b'\n');
        v
    }
}

pub fn seed() -> u64 {
    std::env::var("UNP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// Prints one measurement line (`RELIABILITY scenario=... key=value ...`); run the
/// tests with `--nocapture` to see them. `docs/reliability.md` is built from these.
pub fn report(scenario: &str, variant: &str, fields: &[(&str, &dyn Display)]) {
    let mut line = format!(
        "RELIABILITY scenario={scenario} variant={variant} level={:?}",
        level()
    );
    for (k, v) in fields {
        line.push_str(&format!(" {k}={v}"));
    }
    println!("{line}");
}

/// Milliseconds, for reports.
pub fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}
