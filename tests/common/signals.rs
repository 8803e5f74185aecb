//! Real `EINTR` for the integration tests: a counting signal handler installed WITHOUT
//! `SA_RESTART`, and helpers that signal one blocked thread with `pthread_kill`.
//!
//! The tests of one binary run as threads of one process and share its signal
//! dispositions, so there is one handler for every signal used here. It only counts:
//! per thread ([`hits`], for the thread that was interrupted) and per process
//! ([`total`]). Both counters are bumped for any of the installed signals; a binary
//! that wants signals kept apart from another test's uses a different one with
//! [`install_handler_for`] and [`signal_thread`] (e.g. `SIGUSR2`).

use std::cell::Cell;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

thread_local! {
    // Const-initialised and Copy: touching it from a signal handler allocates nothing.
    static HITS: Cell<usize> = const { Cell::new(0) };
}

/// Signals handled by any thread of the process.
static TOTAL: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count(_: libc::c_int) {
    HITS.with(|h| h.set(h.get() + 1));
    TOTAL.fetch_add(1, Ordering::SeqCst);
}

/// Installs the counting handler for `SIGUSR1`, once per process, WITHOUT
/// `SA_RESTART`: a blocked system call in the signalled thread fails with `EINTR`.
pub fn install_handler() {
    install_handler_for(Signal::SIGUSR1);
}

/// Installs the counting handler for `signal`, once per process and signal, WITHOUT
/// `SA_RESTART`.
pub fn install_handler_for(signal: Signal) {
    // A bit per signal number (all below 64), set once its handler is installed.
    static INSTALLED: Mutex<u64> = Mutex::new(0);
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    let bit = 1u64 << (signal as i32);
    if *installed & bit == 0 {
        let sa = SigAction::new(
            SigHandler::Handler(count),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only touches a const-initialised thread-local Cell and an
        // atomic, which is async-signal-safe.
        unsafe { sigaction(signal, &sa) }.expect("sigaction");
        *installed |= bit;
    }
}

/// Signals the handler ran for on the calling thread.
pub fn hits() -> usize {
    HITS.with(Cell::get)
}

/// Signals the handler ran for on any thread of the process.
pub fn total() -> usize {
    TOTAL.load(Ordering::SeqCst)
}

/// Sends `signal` to `handle`'s thread with `pthread_kill`; returns its result (0, or
/// `ESRCH` once the thread has finished).
pub fn signal_thread<T>(handle: &JoinHandle<T>, signal: Signal) -> libc::c_int {
    // SAFETY: `handle` is borrowed, so the thread has not been joined or detached and its
    // pthread_t is still valid.
    unsafe { libc::pthread_kill(handle.as_pthread_t() as _, signal as libc::c_int) }
}

/// Sends SIGUSR1 to the thread every `every` until it finishes (or for at most 5 s),
/// then joins it. Returns its result and the number of signals sent.
pub fn signal_until_finished<T>(handle: JoinHandle<T>, every: Duration) -> (T, usize) {
    let start = Instant::now();
    let mut sent = 0;
    while !handle.is_finished() && start.elapsed() < Duration::from_secs(5) {
        let rc = signal_thread(&handle, Signal::SIGUSR1);
        assert!(rc == 0 || rc == libc::ESRCH, "pthread_kill: {rc}");
        sent += 1;
        thread::sleep(every);
    }
    (handle.join().expect("thread panicked"), sent)
}

/// What a call made on a thread that was sent signals returned, and how it went.
pub struct Signalled<T> {
    /// What the call returned.
    pub out: T,
    /// How long the call took.
    pub took: Duration,
    /// Signals the handler ran for on the call's thread.
    pub handled: usize,
    /// Signals sent to that thread.
    pub sent: usize,
}

/// Installs the counting handler ([`install_handler`]) and makes `call` on a thread of
/// its own, which is sent `SIGUSR1` every `every` until the call returns
/// ([`signal_until_finished`]).
pub fn under_signals<T: Send + 'static>(
    every: Duration,
    call: impl FnOnce() -> T + Send + 'static,
) -> Signalled<T> {
    install_handler();
    let waiter = thread::spawn(move || {
        let start = Instant::now();
        let out = call();
        (out, start.elapsed(), hits())
    });
    let ((out, took, handled), sent) = signal_until_finished(waiter, every);
    Signalled {
        out,
        took,
        handled,
        sent,
    }
}

/// Checks a restarting wait through signals: `wait(timeout)` on something that never
/// becomes ready, sent a signal every 15 ms, returns 0 after its whole 300 ms (5 ms
/// of slack), not restarted from scratch (under 900 ms), the signals handled on the
/// way.
pub fn assert_keeps_the_deadline(
    wait: impl FnOnce(Duration) -> std::io::Result<usize> + Send + 'static,
) {
    let s = under_signals(Duration::from_millis(15), move || {
        wait(Duration::from_millis(300))
    });
    let (res, waited, handled, sent) = (s.out, s.took, s.handled, s.sent);
    assert_eq!(res.unwrap(), 0);
    assert!(sent >= 10, "only {sent} signals sent");
    assert!(handled >= 5, "only {handled} signals handled by the waiter");
    assert!(
        waited >= Duration::from_millis(295),
        "returned early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(900),
        "restarted from scratch? {waited:?}"
    );
}
