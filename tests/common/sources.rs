//! What the `Sources` tests share: the backends of this platform and waits that
//! check what they return.

use std::time::{Duration, Instant};

use unp_select::sources::{Backend, Events, Readiness, Sources};

/// Every backend this platform has: select, large select, poll, and epoll (Linux,
/// Android) or kqueue (Apple's systems, the BSDs).
pub fn backends() -> Vec<Backend> {
    [
        Backend::Select,
        Backend::LargeSelect,
        Backend::Poll,
        Backend::Epoll,
        Backend::Kqueue,
    ]
    .into_iter()
    .filter(|b| b.is_supported())
    .collect()
}

/// A long enough timeout for something that is ready (or about to be).
pub const SOON: Duration = Duration::from_secs(5);

/// Waits once and returns the `(key, readiness)` pairs, checking the count returned.
pub fn wait<K: Clone>(sources: &mut Sources<K>, timeout: Option<Duration>) -> Vec<(K, Readiness)> {
    let mut events = Events::new();
    let n = sources
        .wait(&mut events, timeout)
        .unwrap_or_else(|e| panic!("wait on {:?}: {e}", sources.backend()));
    assert_eq!(n, events.len());
    assert_eq!(events.iter().len(), n);
    events.iter().map(|(k, r)| (k.clone(), r)).collect()
}

/// Waits once and returns what was ready and how long the wait took.
pub fn timed_wait<K: Clone>(
    sources: &mut Sources<K>,
    timeout: Option<Duration>,
) -> (Vec<(K, Readiness)>, Duration) {
    let start = Instant::now();
    let ready = wait(sources, timeout);
    (ready, start.elapsed())
}

/// Asserts that nothing is reported within `t`, and that the wait really lasted `t`
/// (so a source that is reported nothing for does not make the loop spin either).
pub fn assert_quiet<K: Clone + std::fmt::Debug>(sources: &mut Sources<K>, t: Duration, what: &str) {
    let backend = sources.backend();
    let (ready, took) = timed_wait(sources, Some(t));
    assert!(ready.is_empty(), "{backend:?}, {what}: {ready:?}");
    assert!(took >= t, "{backend:?}, {what}: returned after {took:?}");
}

/// Waits once (up to [`SOON`]) and asserts that exactly `want` was ready: one event
/// a source, in the order of the keys (the kernels hand them out in any order).
#[track_caller]
pub fn assert_ready<K: Copy + Ord + std::fmt::Debug>(
    sources: &mut Sources<K>,
    want: &[(K, Readiness)],
) {
    let backend = sources.backend();
    let mut ready = wait(sources, Some(SOON));
    ready.sort_by_key(|&(k, _)| k);
    assert_eq!(ready, want, "{backend:?}");
}
