//! Signals: what `writen` needs to keep a write's `SIGPIPE` from killing the process,
//! and handlers that run hooks a server registers (`ShutdownHandle::on_signals`).

use std::io;
use std::os::fd::RawFd;

use super::cvt;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use nix::errno::Errno;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};

/// `SIGPIPE` blocked in the calling thread for as long as this value lives, around
/// `write(2)`s to a non-socket.
///
/// Dropping it takes the `SIGPIPE` that a failed write raised meanwhile (if
/// [`SigpipeBlock::saw_epipe`] was called) off the pending set, unless that signal merged
/// into one pending before, and restores the thread's signal mask.
pub(crate) struct SigpipeBlock {
    old_mask: SigSet,
    /// Decided before the first write: the write's `SIGPIPE` will be a pending signal of
    /// its own, so taking one takes it and nothing else.
    take_ours: bool,
    epipe: bool,
}

impl SigpipeBlock {
    /// Blocks `SIGPIPE` in the calling thread (`pthread_sigmask`), keeping the old mask.
    pub(crate) fn new() -> io::Result<Self> {
        let old_mask = SigSet::from(Signal::SIGPIPE).thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
        let mut block = SigpipeBlock {
            old_mask,
            take_ours: false,
            epipe: false,
        };
        // On error `block` is dropped, which restores the mask.
        block.take_ours = ours_stays_separate()?;
        Ok(block)
    }

    /// Records that a write failed with `EPIPE`, so it raised a `SIGPIPE`.
    pub(crate) fn saw_epipe(&mut self) {
        self.epipe = true;
    }
}

impl Drop for SigpipeBlock {
    fn drop(&mut self) {
        if self.epipe && self.take_ours {
            // Takes the thread's pending SIGPIPE before the process's, without waiting.
            // It cannot fail with SIGPIPE blocked; if it did, the signal would stay
            // pending, which is all a destructor could do anyway.
            let _ = take_pending_sigpipe();
        }
        // Restoring a mask that was valid before cannot fail.
        let _ = self.old_mask.thread_set_mask();
    }
}

/// Whether the `SIGPIPE` that a failed write by this thread (which blocks `SIGPIPE`)
/// raises from now on will be a pending signal of its own.
///
/// The kernel sends it to the writing thread. A standard signal sent to a thread that has
/// it pending already merges into the pending one (except on FreeBSD, which queues each),
/// while one pending for the process is kept apart. So it stays separate unless a
/// `SIGPIPE` is pending for this thread. When that cannot be told, the answer is no.
fn ours_stays_separate() -> io::Result<bool> {
    if SIGPIPE_QUEUES || !sigpipe_pending()? {
        return Ok(true);
    }
    Ok(sigpipe_pending_for_thread() == Some(false))
}

/// Makes writes to the non-socket `fd` fail with `EPIPE` without raising `SIGPIPE`, where
/// the platform has a per-descriptor switch for it; returns whether it did.
///
/// Apple: `fcntl(F_SETNOSIGPIPE)`. XNU sends the `SIGPIPE` of a failed pipe write to the
/// *process* (`psignal` in `dofilewrite`), and a process-directed signal goes to any
/// thread that does not block it, so blocking it in the writing thread would not help.
/// The flag is kept by the open file description, so it stays set after the call and
/// every descriptor sharing that description (duplicates, other processes) sees it.
#[cfg(target_vendor = "apple")]
pub(crate) fn set_nosigpipe_nonsocket(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_SETNOSIGPIPE takes an int argument; no memory is passed. A bad `fd` is an
    // error (EBADF), not UB. (nix's `FcntlArg` has no F_SETNOSIGPIPE.)
    cvt(unsafe { libc::fcntl(fd, libc::F_SETNOSIGPIPE, 1) })?;
    Ok(true)
}
/// See the Apple version: elsewhere there is no such switch, and this returns `false`.
#[cfg(not(target_vendor = "apple"))]
pub(crate) fn set_nosigpipe_nonsocket(_fd: RawFd) -> io::Result<bool> {
    Ok(false)
}

/// Whether a `SIGPIPE` sent to a thread that already has one pending is kept as a signal
/// of its own instead of merging into the pending one.
///
/// FreeBSD queues a `ksiginfo` for every signal sent, standard ones included
/// (`tdsendsignal` → `sigqueue_add`), and `sigtimedwait` takes one at a time. Linux keeps
/// at most one pending instance of a standard signal per pending set (`legacy_queue`),
/// which is what POSIX allows; other systems are assumed to do the same.
const SIGPIPE_QUEUES: bool = cfg!(target_os = "freebsd");

/// Whether `SIGPIPE` is in the calling thread's pending set (`sigpending(2)`: the
/// signals pending for the thread and for the process, together).
fn sigpipe_pending() -> io::Result<bool> {
    let mut pending = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigpending writes a full sigset_t to the pointer it is given. (nix has
    // no sigpending.)
    cvt(unsafe { libc::sigpending(pending.as_mut_ptr()) })?;
    // SAFETY: sigpending succeeded, so `pending` is initialized; sigismember only reads it.
    Ok(unsafe { libc::sigismember(pending.as_ptr(), libc::SIGPIPE) } == 1)
}

/// Whether `SIGPIPE` is pending for the calling thread itself (sent to this thread, as
/// the kernel sends that of a failed write), apart from one pending for the process;
/// `None` when the platform cannot tell.
///
/// Linux and Android: bit `SIGPIPE - 1` of the `SigPnd` line of
/// `/proc/thread-self/status` (the process's set is `ShdPnd`; `sigpending(2)` returns
/// both together). `None` without `/proc`. Reads into a stack buffer.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn sigpipe_pending_for_thread() -> Option<bool> {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;

    // /proc/thread-self exists since Linux 3.17; older kernels have /proc/self/task/TID.
    let mut file = std::fs::File::open("/proc/thread-self/status")
        .or_else(|_| {
            // SAFETY: gettid takes no arguments and cannot fail. (nix's gettid needs its
            // "process" feature, which this crate does not enable.)
            let tid = unsafe { libc::syscall(libc::SYS_gettid) };
            let mut path = [0u8; 64];
            let len = {
                let mut w = &mut path[..];
                std::io::Write::write_fmt(&mut w, format_args!("/proc/self/task/{tid}/status"))?;
                64 - w.len()
            };
            let path = std::ffi::OsStr::from_bytes(&path[..len]);
            std::fs::File::open(path)
        })
        .ok()?;
    let mut scan = StatusLine::new(b"SigPnd:");
    let mut buf = [0u8; 512];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        for &b in &buf[..n] {
            if let Some(mask) = scan.push(b) {
                return Some(mask? & (1 << (libc::SIGPIPE - 1)) != 0);
            }
        }
    }
}
/// See the Linux version: not implemented elsewhere (FreeBSD, the one other platform
/// that takes a pending `SIGPIPE`, needs no answer: see [`SIGPIPE_QUEUES`]).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn sigpipe_pending_for_thread() -> Option<bool> {
    None
}

/// Finds the line `KEY<blanks><hex>` in a `/proc` status file fed one byte at a time and
/// parses its hexadecimal value (the low 64 bits of a longer one).
#[cfg(any(target_os = "linux", target_os = "android", test))]
struct StatusLine {
    key: &'static [u8],
    /// Bytes of `key` matched at the start of the current line; `None` once it failed.
    matched: Option<usize>,
    value: u64,
    digits: usize,
}

#[cfg(any(target_os = "linux", target_os = "android", test))]
impl StatusLine {
    fn new(key: &'static [u8]) -> Self {
        StatusLine {
            key,
            matched: Some(0),
            value: 0,
            digits: 0,
        }
    }

    /// Feeds one byte; `Some` at the end of the key's line: its value, or `None` if the
    /// line is malformed.
    fn push(&mut self, b: u8) -> Option<Option<u64>> {
        let in_value = self.matched == Some(self.key.len());
        if b == b'\n' {
            if in_value {
                return Some((self.digits > 0).then_some(self.value));
            }
            self.matched = Some(0);
            return None;
        }
        match self.matched {
            Some(_) if in_value => match (b as char).to_digit(16) {
                // Shifting out the high digits keeps the low 64 bits.
                Some(d) => {
                    self.value = (self.value << 4) | u64::from(d);
                    self.digits += 1;
                }
                None if b == b' ' || b == b'\t' => {}
                None => return Some(None),
            },
            Some(i) if self.key[i] == b => self.matched = Some(i + 1),
            _ => self.matched = None,
        }
        None
    }
}

/// Takes one pending `SIGPIPE` of the calling thread (which blocks `SIGPIPE`) off its
/// pending set without waiting; returns whether there was one.
///
/// Linux, Android, FreeBSD: `sigtimedwait(2)` with a zero timeout, which takes a signal
/// pending for the thread before one pending for the process (Linux `dequeue_signal`,
/// FreeBSD `kern_sigtimedwait`).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn take_pending_sigpipe() -> io::Result<bool> {
    let set = SigSet::from(Signal::SIGPIPE);
    let zero = nix::sys::time::TimeSpec::new(0, 0);
    loop {
        // SAFETY: `set` is an initialized sigset_t and `zero` a live timespec; a null
        // siginfo pointer is allowed. (nix has no sigtimedwait.)
        let rc = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), zero.as_ref()) };
        match cvt(rc) {
            Ok(_) => return Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}
/// See the Linux version. Elsewhere (no `sigtimedwait` on Apple and OpenBSD):
/// `sigwait(2)`, called only when `sigpending(2)` shows `SIGPIPE`, so it returns at once;
/// which one it takes when one is pending for the thread and one for the process is not
/// known.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn take_pending_sigpipe() -> io::Result<bool> {
    if !sigpipe_pending()? {
        return Ok(false);
    }
    SigSet::from(Signal::SIGPIPE).wait()?;
    Ok(true)
}

/// What a signal handler runs: async-signal-safe code only (atomics, `send(2)`).
pub(crate) type SignalHook = Box<dyn Fn(libc::c_int) + Send + Sync>;

/// How many hooks the process keeps.
const HOOKS: usize = 16;

#[allow(clippy::declare_interior_mutable_const)] // a template for the array below
const NO_HOOK: AtomicPtr<SignalHook> = AtomicPtr::new(ptr::null_mut());

/// The hooks, each leaked from a `Box` and never freed: a handler may read them at
/// any time.
static HOOK_SLOTS: [AtomicPtr<SignalHook>; HOOKS] = [NO_HOOK; HOOKS];

#[allow(clippy::declare_interior_mutable_const)] // a template for the array below
const NO_SIGNALS: AtomicU64 = AtomicU64::new(0);

/// Each hook's signals, one bit per signal number: a hook runs for its own only.
/// Written before the hook is published.
static HOOK_SIGNALS: [AtomicU64; HOOKS] = [NO_SIGNALS; HOOKS];

/// The bit of `signo` in a [`HOOK_SIGNALS`] mask (0 for a number past 63).
fn signal_bit(signo: libc::c_int) -> u64 {
    u32::try_from(signo)
        .ok()
        .and_then(|n| 1u64.checked_shl(n))
        .unwrap_or(0)
}

/// The handler: runs every hook, keeping `errno` for the code it interrupted.
extern "C" fn run_hooks(signo: libc::c_int) {
    let saved = Errno::last_raw();
    let bit = signal_bit(signo);
    for (slot, signals) in HOOK_SLOTS.iter().zip(&HOOK_SIGNALS) {
        let hook = slot.load(Ordering::Acquire);
        if !hook.is_null() && signals.load(Ordering::Acquire) & bit != 0 {
            // SAFETY: a non-null slot holds a pointer from `Box::into_raw` in
            // `on_signals`, published with Release after the box was written, and
            // never freed, so it is valid for the life of the process.
            unsafe { (*hook)(signo) };
        }
    }
    Errno::set_raw(saved);
}

/// Makes each of `signals` run `hook` (and the hooks kept before), through a
/// handler installed without `SA_RESTART`.
pub(crate) fn on_signals(signals: &[Signal], hook: SignalHook) -> io::Result<()> {
    if let Some(s) = signals
        .iter()
        .find(|s| matches!(s, Signal::SIGKILL | Signal::SIGSTOP))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{s} cannot be caught"),
        ));
    }
    let mask = signals
        .iter()
        .fold(0, |m, &s| m | signal_bit(s as libc::c_int));
    // One registration at a time (a handler takes no lock: it only reads).
    static REGISTERING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = REGISTERING.lock().unwrap_or_else(|e| e.into_inner());
    let raw = Box::into_raw(Box::new(hook));
    let kept = HOOK_SLOTS.iter().zip(&HOOK_SIGNALS).any(|(slot, signals)| {
        // The mask first: a handler that sees the hook sees its signals.
        if !slot.load(Ordering::Acquire).is_null() {
            return false;
        }
        signals.store(mask, Ordering::Release);
        slot.compare_exchange(ptr::null_mut(), raw, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    });
    if !kept {
        // SAFETY: `raw` is from `Box::into_raw` above and was published nowhere.
        drop(unsafe { Box::from_raw(raw) });
        return Err(io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("at most {HOOKS} signal hooks per process"),
        ));
    }
    let action = SigAction::new(
        SigHandler::Handler(run_hooks),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for &signal in signals {
        // SAFETY: `run_hooks` is async-signal-safe: it loads atomics and runs hooks
        // that are (their contract), and keeps errno.
        unsafe { sigaction(signal, &action) }?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::StatusLine;

    fn scan(text: &str, key: &'static [u8]) -> Option<Option<u64>> {
        let mut s = StatusLine::new(key);
        text.bytes().find_map(|b| s.push(b))
    }

    #[test]
    fn status_line_finds_the_key_line_only() {
        let text = "Name:\tx\nShdPnd:\t0000000000001000\nSigPnd:\t0000000000000800\nSigBlk:\t1\n";
        assert_eq!(scan(text, b"SigPnd:"), Some(Some(0x800)));
        assert_eq!(scan(text, b"ShdPnd:"), Some(Some(0x1000)));
        // A key that only starts a longer one, or sits inside a line, is no match.
        assert_eq!(scan("XSigPnd:\t1\nSigPndX:\t2\n", b"SigPnd:"), None);
        // 128-bit masks (MIPS): the low 64 bits.
        let wide = "SigPnd:\t00000000000000010000000000001000\n";
        assert_eq!(scan(wide, b"SigPnd:"), Some(Some(0x1000)));
        assert_eq!(scan("SigPnd:\tzz\n", b"SigPnd:"), Some(None));
        assert_eq!(scan("SigPnd:\t\n", b"SigPnd:"), Some(None));
        assert_eq!(scan("SigPnd:\t0", b"SigPnd:"), None);
    }

    #[test]
    fn a_signal_runs_the_hooks_and_keeps_errno() {
        use super::{on_signals, Errno, Signal};
        use std::sync::atomic::{AtomicI32, Ordering};
        use std::sync::Arc;
        let seen = Arc::new(AtomicI32::new(0));
        let hook_seen = Arc::clone(&seen);
        on_signals(
            &[Signal::SIGUSR2],
            Box::new(move |signo| {
                Errno::set_raw(libc::EIO); // a hook that clobbers errno
                hook_seen.store(signo, Ordering::SeqCst);
            }),
        )
        .unwrap();
        Errno::set_raw(libc::EAGAIN);
        nix::sys::signal::raise(Signal::SIGUSR2).unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), libc::SIGUSR2);
        assert_eq!(
            Errno::last_raw(),
            libc::EAGAIN,
            "errno kept across the handler"
        );
    }

    #[test]
    fn uncatchable_signals_are_refused() {
        use super::{io, on_signals, Signal};
        let e = on_signals(&[Signal::SIGKILL], Box::new(|_| {})).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
