//! The epoll and kqueue backends of [`Sources`](super::Sources): the kernel keeps
//! the interest list, so registering costs one call and a wait costs in proportion
//! to the ready descriptors, not the registered ones.
//!
//! What the two share lives here, over the calls of [`sys::Queue`]:
//! - registrations in a dense array (the `slot` of a source's entry, as poll's
//!   `pollfd` array), each with a generation number carried in the kernel's token,
//!   so that no event of an earlier registration of a number passes for a later one;
//! - [`Interest::NONE`] as no registration at all (epoll reports `EPOLLHUP` and
//!   `EPOLLERR` to every registration, asked or not);
//! - a descriptor found closed when it is (re)registered, reported invalid by the
//!   next wait, as poll's `POLLNVAL` is;
//! - for epoll, whose registrations belong to the open file description, every
//!   event checked against the file the number named when it was registered; a
//!   registration that can no longer be reached through its number (closed, or
//!   renumbered, while a `dup` keeps the file open) is dropped by rebuilding the
//!   set;
//! - kqueue's two events for one descriptor (reading and writing) merged into one.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{lookup, Entry, Events, Interest, Readiness};
use crate::sys::{self, FileId};
use crate::time::Deadline;

/// Events one wait can take from the kernel: at least this many…
const MIN_EVENTS: usize = 64;
/// …and at most this many; the rest are reported by the next wait (epoll and
/// kqueue hand out ready registrations in turn, so none is starved).
const MAX_EVENTS: usize = 1024;

/// A kernel queue and the registrations in it.
pub(super) struct Queue<Q: sys::Queue> {
    /// Opened at the first registration or wait (or by `Sources::try_new`).
    kernel: Option<Q>,
    /// The array a wait fills; sized by registrations, never by a wait.
    buf: Vec<Q::Event>,
    /// By slot: one per registered source.
    regs: Vec<Reg>,
    /// The last generation handed out.
    generation: u32,
    /// Descriptors found closed when (re)registered, with their generation: the
    /// next wait reports them invalid.
    pending: Vec<(RawFd, u32)>,
    /// The kernel holds a registration that its number can no longer reach:
    /// build the set anew before the next wait.
    rebuild: bool,
    /// Counts waits, to find a second event of one source in one wait.
    turn: u64,
}

/// One registered source.
#[derive(Clone, Copy, Debug)]
struct Reg {
    fd: RawFd,
    generation: u32,
    /// What the kernel watches it for (`NONE`: not in the kernel's set).
    armed: Interest,
    /// The file the number named when it was armed (epoll only).
    file: FileId,
    /// Whether events are checked against `file` (epoll only): not for the
    /// crate's own descriptors, which it always unregisters before it closes them.
    checked: bool,
    /// The wait that last reported it, and where in that wait's events.
    turn: u64,
    at: usize,
}

/// The kernel's token for a registration: the descriptor and the generation.
fn token(fd: RawFd, generation: u32) -> u64 {
    u64::from(fd as u32) | (u64::from(generation) << 32)
}

fn is(e: &io::Error, errno: i32) -> bool {
    e.raw_os_error() == Some(errno)
}

/// The kernel queue in `slot`, opened now if it is not yet.
fn open<Q: sys::Queue>(slot: &mut Option<Q>) -> io::Result<&Q> {
    let kernel = match slot.take() {
        Some(kernel) => kernel,
        None => Q::open()?,
    };
    Ok(slot.insert(kernel))
}

/// Puts `reg` into the kernel's set for `interest` under a new generation. A
/// descriptor that is not open is no error here: it goes to `pending`, and the
/// next wait reports it invalid, as poll reports `POLLNVAL`.
fn arm<Q: sys::Queue>(
    kernel: &Q,
    generation: &mut u32,
    pending: &mut Vec<(RawFd, u32)>,
    reg: &mut Reg,
    interest: Interest,
) -> io::Result<()> {
    *generation = generation.wrapping_add(1);
    let new = *generation;
    let fd = reg.fd;
    let file = if Q::FOLLOWS_FILE && reg.checked {
        match sys::file_id(fd) {
            Ok(file) => file,
            Err(e) if is(&e, libc::EBADF) => {
                reg.generation = new;
                pending.push((fd, new));
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    } else {
        FileId::default()
    };
    let t = token(fd, new);
    let added = match kernel.add(fd, interest, t) {
        // This very file is in the set under this number still (a registration
        // whose removal failed, as its number was closed then): take it over.
        Err(e) if is(&e, libc::EEXIST) => kernel.modify(fd, interest, interest, t),
        other => other,
    };
    match added {
        Ok(()) => {
            reg.generation = new;
            reg.file = file;
            reg.armed = interest;
            Ok(())
        }
        Err(e) if is(&e, libc::EBADF) => {
            reg.generation = new;
            pending.push((fd, new));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

impl<Q: sys::Queue> Queue<Q> {
    pub(super) fn new() -> Queue<Q> {
        Queue {
            kernel: None,
            buf: vec![Q::empty(); MIN_EVENTS],
            regs: Vec::new(),
            generation: 0,
            pending: Vec::new(),
            rebuild: false,
            turn: 0,
        }
    }

    /// Opens the kernel queue if it is not open yet.
    pub(super) fn open(&mut self) -> io::Result<()> {
        open(&mut self.kernel).map(drop)
    }

    /// Registers `fd`; returns its slot.
    pub(super) fn add(
        &mut self,
        fd: RawFd,
        interest: Interest,
        checked: bool,
    ) -> io::Result<usize> {
        let kernel = open(&mut self.kernel)?;
        let mut reg = Reg {
            fd,
            generation: 0,
            armed: Interest::NONE,
            file: FileId::default(),
            checked,
            turn: 0,
            at: 0,
        };
        if !interest.is_none() {
            arm(
                kernel,
                &mut self.generation,
                &mut self.pending,
                &mut reg,
                interest,
            )?;
        }
        self.regs.push(reg);
        // Room for two events per source (kqueue's reading and writing), up to
        // MAX_EVENTS: made here, so that a wait never allocates.
        let want = (2 * self.regs.len()).min(MAX_EVENTS);
        if self.buf.len() < want {
            let grown = want.next_power_of_two().min(MAX_EVENTS);
            self.buf.resize(grown, Q::empty());
        }
        Ok(self.regs.len() - 1)
    }

    /// Watches the source in `slot` for `interest` instead.
    pub(super) fn modify(&mut self, slot: usize, interest: Interest) -> io::Result<()> {
        let kernel = open(&mut self.kernel)?;
        let Some(reg) = self.regs.get_mut(slot) else {
            return Ok(());
        };
        let (fd, from) = (reg.fd, reg.armed);
        if from == interest {
            return Ok(());
        }
        if interest.is_none() {
            match kernel.delete(fd, from) {
                // EBADF, ENOENT: closed or renumbered behind our back. The kernel
                // dropped the registration with the file (or, kqueue, with the
                // number), or it lingers (epoll, a `dup` alive): then its next
                // event finds it stale, and the set is built anew.
                Err(e) if !is(&e, libc::EBADF) && !is(&e, libc::ENOENT) => return Err(e),
                _ => {}
            }
            reg.armed = Interest::NONE;
            return Ok(());
        }
        if !from.is_none() {
            match kernel.modify(fd, from, interest, token(fd, reg.generation)) {
                Ok(()) => {
                    reg.armed = interest;
                    return Ok(());
                }
                // Closed, or (epoll) the number names another file now: armed
                // anew below, as for a new registration.
                Err(e) if is(&e, libc::EBADF) || is(&e, libc::ENOENT) => {
                    reg.armed = Interest::NONE;
                }
                Err(e) => return Err(e),
            }
        }
        arm(
            kernel,
            &mut self.generation,
            &mut self.pending,
            reg,
            interest,
        )
    }

    /// Unregisters the source in `slot`. The last one moves into its slot: returns
    /// that one's descriptor.
    pub(super) fn remove(&mut self, slot: usize) -> Option<RawFd> {
        if slot >= self.regs.len() {
            return None;
        }
        let reg = self.regs.swap_remove(slot);
        if let (Some(kernel), false) = (&self.kernel, reg.armed.is_none()) {
            // Errors as in `modify`: a registration that lingers is found by its
            // next event.
            let _ = kernel.delete(reg.fd, reg.armed);
        }
        self.regs.get(slot).map(|r| r.fd)
    }

    /// One wait: the ready sources go into `events`, those found invalid into
    /// `invalid` as well.
    pub(super) fn wait<K: Clone>(
        &mut self,
        timeout: Option<Duration>,
        events: &mut Events<K>,
        entries: &[Option<Entry<K>>],
        invalid: &mut Vec<RawFd>,
    ) -> io::Result<()> {
        let deadline = Deadline::after(timeout);
        let mut timeout = timeout;
        loop {
            if self.rebuild {
                self.rebuild()?;
            }
            let kernel = open(&mut self.kernel)?;
            self.turn += 1;
            let turn = self.turn;
            for (fd, generation) in self.pending.drain(..) {
                let Some(entry) = lookup(entries, fd) else {
                    continue; // unregistered since
                };
                match self.regs.get_mut(entry.slot) {
                    Some(reg) if reg.generation == generation && reg.turn != turn => {
                        reg.turn = turn;
                        reg.at = events.len();
                    }
                    _ => continue, // registered anew since, or listed twice
                }
                events.push(entry.key.clone(), Readiness::INVALID);
                invalid.push(fd);
            }
            // Something to report already: only collect what is ready now.
            let t = if events.is_empty() {
                timeout
            } else {
                Some(Duration::ZERO)
            };
            let n = kernel.wait(&mut self.buf, t)?;
            for event in &self.buf[..n] {
                let (token, mut readiness) = Q::decode(event);
                let fd = token as u32 as RawFd;
                let generation = (token >> 32) as u32;
                let found = lookup(entries, fd)
                    .and_then(|entry| Some((entry, self.regs.get_mut(entry.slot)?)))
                    .filter(|(_, reg)| reg.generation == generation && !reg.armed.is_none());
                let Some((entry, reg)) = found else {
                    // A registration whose removal failed, its number closed first
                    // while a `dup` keeps its file open: not to be reported, and
                    // out of reach of epoll_ctl. Build the set anew without it.
                    self.rebuild = true;
                    continue;
                };
                if Q::FOLLOWS_FILE && reg.checked && sys::file_id(fd).ok() != Some(reg.file) {
                    // The number was closed, or names another file now, while a
                    // `dup` keeps the registered file open. Not this key's
                    // readiness: the source is reported invalid, as a closed
                    // descriptor is on every backend, and the set built anew.
                    readiness = Readiness::INVALID;
                    self.rebuild = true;
                }
                if readiness.is_invalid() {
                    invalid.push(fd);
                }
                if reg.turn == turn {
                    events.merge(reg.at, readiness);
                } else {
                    reg.turn = turn;
                    reg.at = events.len();
                    events.push(entry.key.clone(), readiness);
                }
            }
            // Only stale registrations woke the wait: rebuild, and wait the rest.
            if !events.is_empty() || n == 0 || !self.rebuild {
                return Ok(());
            }
            timeout = deadline.remaining();
        }
    }

    /// A new kernel queue with every armed registration whose number still names
    /// its file; the others are reported invalid by the next wait. The old queue
    /// is closed, and with it whatever registrations could not be reached. Costs
    /// one call per armed source: it happens only after a descriptor was closed
    /// before it was unregistered.
    fn rebuild(&mut self) -> io::Result<()> {
        let fresh = Q::open()?;
        let mut lost = Vec::new();
        for (slot, reg) in self.regs.iter().enumerate() {
            if reg.armed.is_none() {
                continue;
            }
            if Q::FOLLOWS_FILE && reg.checked && sys::file_id(reg.fd).ok() != Some(reg.file) {
                lost.push(slot);
                continue;
            }
            match fresh.add(reg.fd, reg.armed, token(reg.fd, reg.generation)) {
                Ok(()) => {}
                Err(e) if is(&e, libc::EBADF) => lost.push(slot),
                Err(e) => return Err(e),
            }
        }
        for slot in lost {
            if let Some(reg) = self.regs.get_mut(slot) {
                reg.armed = Interest::NONE;
                self.pending.push((reg.fd, reg.generation));
            }
        }
        self.kernel = Some(fresh);
        self.rebuild = false;
        Ok(())
    }
}

/// The shared logic over a scripted kernel: the errors epoll and kqueue can return
/// (ENOSPC and ENOMEM cannot be provoked on a real system without changing its
/// limits) and kqueue's two events per descriptor, on any platform.
#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    /// One call the queue made.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Call {
        Open,
        Add(RawFd, Interest, u64),
        Modify(RawFd, Interest, Interest, u64),
        Delete(RawFd, Interest),
    }

    #[derive(Default)]
    struct Script {
        calls: Vec<Call>,
        /// The results of the next add, modify, delete calls, in order (Ok when
        /// empty).
        results: VecDeque<io::Result<()>>,
        /// What the next wait returns.
        ready: Vec<(u64, Readiness)>,
    }

    thread_local! {
        static SCRIPT: RefCell<Script> = RefCell::new(Script::default());
    }

    fn record(call: Call) -> io::Result<()> {
        SCRIPT.with(|s| {
            let mut s = s.borrow_mut();
            s.calls.push(call);
            s.results.pop_front().unwrap_or(Ok(()))
        })
    }

    fn script(results: Vec<i32>, ready: Vec<(u64, Readiness)>) {
        SCRIPT.with(|s| {
            let mut s = s.borrow_mut();
            s.results = results
                .into_iter()
                .map(|e| {
                    if e == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(e))
                    }
                })
                .collect();
            s.ready = ready;
        });
    }

    fn calls() -> Vec<Call> {
        SCRIPT.with(|s| std::mem::take(&mut s.borrow_mut().calls))
    }

    /// A kernel that keeps registrations by number, as kqueue does.
    struct Mock;

    impl sys::Queue for Mock {
        type Event = (u64, Readiness);
        const SUPPORTED: bool = true;
        const FOLLOWS_FILE: bool = false;

        fn empty() -> (u64, Readiness) {
            (0, Readiness::EMPTY)
        }
        fn open() -> io::Result<Mock> {
            record(Call::Open).map(|()| Mock)
        }
        fn add(&self, fd: RawFd, interest: Interest, token: u64) -> io::Result<()> {
            record(Call::Add(fd, interest, token))
        }
        fn modify(&self, fd: RawFd, from: Interest, to: Interest, token: u64) -> io::Result<()> {
            record(Call::Modify(fd, from, to, token))
        }
        fn delete(&self, fd: RawFd, from: Interest) -> io::Result<()> {
            record(Call::Delete(fd, from))
        }
        fn wait(&self, events: &mut [Self::Event], _: Option<Duration>) -> io::Result<usize> {
            SCRIPT.with(|s| {
                let ready = std::mem::take(&mut s.borrow_mut().ready);
                events[..ready.len()].copy_from_slice(&ready);
                Ok(ready.len())
            })
        }
        fn decode(event: &Self::Event) -> (u64, Readiness) {
            *event
        }
    }

    /// Registers `fd` under key `fd` in both the queue and the entries.
    fn register(
        q: &mut Queue<Mock>,
        entries: &mut Vec<Option<Entry<RawFd>>>,
        fd: RawFd,
        interest: Interest,
    ) -> io::Result<()> {
        let slot = q.add(fd, interest, true)?;
        if entries.len() <= fd as usize {
            entries.resize_with(fd as usize + 1, || None);
        }
        entries[fd as usize] = Some(Entry {
            key: fd,
            interest,
            slot,
        });
        Ok(())
    }

    fn wait(q: &mut Queue<Mock>, entries: &[Option<Entry<RawFd>>]) -> Vec<(RawFd, Readiness)> {
        let mut events = Events::new();
        let mut invalid = Vec::new();
        q.wait(Some(Duration::ZERO), &mut events, entries, &mut invalid)
            .unwrap();
        let got: Vec<_> = events.iter().map(|(k, r)| (*k, r)).collect();
        let invalid_keys: Vec<_> = got
            .iter()
            .filter(|(_, r)| r.is_invalid())
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(invalid, invalid_keys);
        got
    }

    #[test]
    fn kernel_errors_come_back_from_register_and_keep_nothing() {
        let mut q = Queue::<Mock>::new();
        let mut entries = Vec::new();
        for errno in [libc::ENOSPC, libc::ENOMEM, libc::EPERM] {
            script(vec![errno], vec![]);
            let err = register(&mut q, &mut entries, 5, Interest::READ).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(errno));
            assert!(q.regs.is_empty());
        }
        assert_eq!(calls()[0], Call::Open, "opened at the first registration");
        // A failed open is returned too, and tried again next time.
        let mut q = Queue::<Mock>::new();
        script(vec![libc::EMFILE], vec![]);
        let err = register(&mut q, &mut entries, 5, Interest::READ).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EMFILE));
        register(&mut q, &mut entries, 5, Interest::READ).unwrap();
        assert_eq!(q.regs.len(), 1);
    }

    #[test]
    fn closed_at_registration_is_invalid_at_the_next_wait_once() {
        let mut q = Queue::<Mock>::new();
        let mut entries = Vec::new();
        register(&mut q, &mut entries, 3, Interest::READ).unwrap();
        script(vec![libc::EBADF], vec![]);
        register(&mut q, &mut entries, 4, Interest::READ).unwrap();
        assert_eq!(wait(&mut q, &entries), [(4, Readiness::INVALID)]);
        assert_eq!(wait(&mut q, &entries), []);
        // Not in the kernel: taking it out asks nothing of the kernel.
        calls();
        q.modify(1, Interest::NONE).unwrap();
        assert_eq!(calls(), []);
    }

    #[test]
    fn kqueue_reading_and_writing_are_one_event() {
        let mut q = Queue::<Mock>::new();
        let mut entries = Vec::new();
        register(&mut q, &mut entries, 6, Interest::BOTH).unwrap();
        register(&mut q, &mut entries, 7, Interest::WRITE).unwrap();
        let t6 = token(6, q.regs[0].generation);
        let t7 = token(7, q.regs[1].generation);
        script(
            vec![],
            vec![
                (t6, Readiness::READABLE),
                (t7, Readiness::WRITABLE),
                (t6, Readiness::WRITABLE | Readiness::HANGUP),
            ],
        );
        assert_eq!(
            wait(&mut q, &entries),
            [
                (
                    6,
                    Readiness::READABLE | Readiness::WRITABLE | Readiness::HANGUP
                ),
                (7, Readiness::WRITABLE)
            ]
        );
    }

    #[test]
    fn interest_changes_and_their_errors() {
        let mut q = Queue::<Mock>::new();
        let mut entries = Vec::new();
        register(&mut q, &mut entries, 8, Interest::READ).unwrap();
        let first = q.regs[0].generation;
        calls();

        // The same interest: no call.
        q.modify(0, Interest::READ).unwrap();
        assert_eq!(calls(), []);
        // READ to WRITE: one modify, same generation.
        q.modify(0, Interest::WRITE).unwrap();
        let t = token(8, first);
        assert_eq!(
            calls(),
            [Call::Modify(8, Interest::READ, Interest::WRITE, t)]
        );
        // ENOMEM from the kernel: returned, nothing changed.
        script(vec![libc::ENOMEM], vec![]);
        let err = q.modify(0, Interest::BOTH).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOMEM));
        assert_eq!(q.regs[0].armed, Interest::WRITE);
        calls();
        // ENOENT (epoll: the number names another file now): added anew, under a
        // new generation.
        script(vec![libc::ENOENT], vec![]);
        q.modify(0, Interest::BOTH).unwrap();
        let second = q.regs[0].generation;
        assert_ne!(second, first);
        assert_eq!(
            calls(),
            [
                Call::Modify(8, Interest::WRITE, Interest::BOTH, t),
                Call::Add(8, Interest::BOTH, token(8, second)),
            ]
        );
        // NONE: out of the kernel, even if the kernel says the number is closed.
        script(vec![libc::EBADF], vec![]);
        q.modify(0, Interest::NONE).unwrap();
        assert_eq!(q.regs[0].armed, Interest::NONE);
        // Back: a new registration, under a new generation.
        calls();
        q.modify(0, Interest::READ).unwrap();
        let third = q.regs[0].generation;
        assert_ne!(third, second);
        assert_eq!(calls(), [Call::Add(8, Interest::READ, token(8, third))]);
        // EEXIST (epoll: the file is in the set under this number still, its
        // removal having failed) is taken over with a modify.
        script(vec![0, libc::EEXIST], vec![]);
        q.modify(0, Interest::NONE).unwrap();
        q.modify(0, Interest::WRITE).unwrap();
        let fourth = q.regs[0].generation;
        assert_eq!(q.regs[0].armed, Interest::WRITE);
        assert_eq!(
            calls(),
            [
                Call::Delete(8, Interest::READ),
                Call::Add(8, Interest::WRITE, token(8, fourth)),
                Call::Modify(8, Interest::WRITE, Interest::WRITE, token(8, fourth)),
            ]
        );
    }

    #[test]
    fn a_stale_registration_rebuilds_the_set_and_is_never_reported() {
        let mut q = Queue::<Mock>::new();
        let mut entries = Vec::new();
        register(&mut q, &mut entries, 9, Interest::READ).unwrap();
        register(&mut q, &mut entries, 10, Interest::NONE).unwrap();
        register(&mut q, &mut entries, 11, Interest::WRITE).unwrap();
        let g9 = q.regs[0].generation;
        let g11 = q.regs[2].generation;
        calls();
        // An older generation of 9, and a number nobody registered.
        script(
            vec![],
            vec![
                (token(9, g9.wrapping_sub(1)), Readiness::READABLE),
                (token(12, 1), Readiness::READABLE),
            ],
        );
        assert_eq!(wait(&mut q, &entries), []);
        // The wait built the set anew (the armed ones only) and waited again.
        assert_eq!(
            calls(),
            [
                Call::Open,
                Call::Add(9, Interest::READ, token(9, g9)),
                Call::Add(11, Interest::WRITE, token(11, g11)),
            ]
        );
        assert!(!q.rebuild);
        // Events of the current generation are reported.
        script(vec![], vec![(token(11, g11), Readiness::WRITABLE)]);
        assert_eq!(wait(&mut q, &entries), [(11, Readiness::WRITABLE)]);
        // A rebuild that finds a number closed reports it invalid.
        q.rebuild = true;
        script(vec![0, 0, libc::EBADF], vec![]); // open, add 9, add 11

        assert_eq!(wait(&mut q, &entries), [(11, Readiness::INVALID)]);
    }

    #[test]
    fn removal_moves_the_last_registration() {
        let mut q = Queue::<Mock>::new();
        let mut entries = Vec::new();
        for fd in [20, 21, 22] {
            register(&mut q, &mut entries, fd, Interest::READ).unwrap();
        }
        calls();
        assert_eq!(q.remove(0), Some(22));
        assert_eq!(calls(), [Call::Delete(20, Interest::READ)]);
        assert_eq!(q.remove(1), None);
        assert_eq!(q.remove(5), None);
        assert_eq!(q.regs.len(), 1);
    }
}
