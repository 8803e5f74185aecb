//! Settings shared by the criterion benchmarks.

use criterion::Criterion;

/// Short runs: the whole `cargo bench` stays within a few minutes on 2 cores.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
}
