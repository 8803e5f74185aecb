//! The clients of chat: each line must reach every other client, whole and in its
//! sender's order.

use super::*;

/// The loop's longest line piece (`max_line`): a longer line reaches the protocol
/// in pieces of this size, each a message.
pub(crate) const MAX_LINE: usize = 4095;

/// Chat line `k` of client `id`, in pieces: a tag `<ID.K>` (its sender, its number),
/// then text, binary (NULs, CRs, every byte but LF), or 5000 bytes (more than
/// `MAX_LINE`: the server gets it in two pieces and must relay it whole).
pub(crate) fn chat_lines(id: usize) -> Vec<Vec<Vec<u8>>> {
    (0..5)
        .map(|k| {
            let mut line = format!("<{id}.{k}>").into_bytes();
            match (id + k) % 4 {
                0 => line.extend_from_slice(b" the quick brown fox jumps over the lazy dog"),
                1 => line.extend((0..150 + 23 * k).map(|i| match (i * 7 + id) as u8 {
                    b'\n' => 0,
                    x => x,
                })),
                2 => line.extend_from_slice(b" nul\0inside\r\0 and a lone CR\r"),
                _ => line.extend((0..5000).map(|i| b'a' + (i % 26) as u8)),
            }
            line.push(b'\n');
            split(&line, 3)
        })
        .collect()
}

/// A chat client: its connection, what it has read of the next line.
pub(crate) struct ChatPeer {
    pub(crate) stream: TcpStream,
    pub(crate) pending: Vec<u8>,
    pub(crate) report: ClientReport,
}

impl ChatPeer {
    fn new(stream: TcpStream, report: ClientReport) -> ChatPeer {
        ChatPeer {
            stream,
            pending: Vec::new(),
            report,
        }
    }

    /// The next whole line within `wait`; `Ok(None)` if none came.
    fn line(&mut self, wait: Duration) -> io::Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 8192];
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                return Ok(Some(self.pending.drain(..=i).collect()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if common::is_timeout(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one line that must be `want`; a failure otherwise.
    fn expect_line(&mut self, want: &[u8]) {
        let id = self.report.id;
        match self.line(READ_TIMEOUT) {
            Ok(Some(got)) if got == want => {
                self.report.verified += got.len() as u64;
                self.report.msgs_out += 1;
            }
            Ok(Some(got)) => {
                self.report.failure = Some(format!(
                    "client {id}: got {}, want {}",
                    show(&got),
                    show(want)
                ));
            }
            Ok(None) => {
                self.report.failure = Some(format!("client {id}: no {} in time", show(want)));
            }
            Err(e) => {
                let what = format!("waiting for {}", show(want));
                self.report.closed = sort_error(&mut self.report, e, &what);
            }
        }
    }
}

/// The start of a line, for messages.
pub(crate) fn show(line: &[u8]) -> String {
    format!(
        "{:?} ({} bytes)",
        String::from_utf8_lossy(&line[..line.len().min(40)]),
        line.len()
    )
}

/// How a line went that nobody echoes (`relay`): relayed, or its sender gone, or the
/// client it should reach gone (`to.report.closed` says how), or wrong.
pub(crate) enum Relay {
    Gone(io::Error),
    Lost,
    Failed(String),
}

/// Whether `line` reached `to` within `wait`: `Ok(false)` if nothing came,
/// `Err(Relay::Lost)` if the server closed `to` (its report says how).
pub(crate) fn arrived(to: &mut ChatPeer, line: &[u8], wait: Duration) -> Result<bool, Relay> {
    match to.line(wait) {
        Ok(None) => Ok(false),
        Ok(Some(got)) if got == line => {
            to.report.verified += got.len() as u64;
            to.report.msgs_out += 1;
            Ok(true)
        }
        Ok(Some(got)) => Err(Relay::Failed(format!(
            "client {} got {}, want {}",
            to.report.id,
            show(&got),
            show(line)
        ))),
        Err(e) => {
            let what = format!("waiting for {}", show(line));
            to.report.closed = sort_error(&mut to.report, e, &what);
            match to.report.failure.take() {
                Some(why) => Err(Relay::Failed(why)),
                None => Err(Relay::Lost),
            }
        }
    }
}

/// How long `relay` looks at `to` once more after the sender was closed: the line
/// is there at once if the server sent it before it closed the sender.
pub(crate) const RECHECK: Duration = Duration::from_millis(50);

/// Waits until `line`, just sent by `from`, reaches `to` (then the server serves
/// `from`), or `from` is reset or closed (turned away).
pub(crate) fn relay(from: &mut TcpStream, to: &mut ChatPeer, line: &[u8]) -> Result<(), Relay> {
    let deadline = Instant::now() + READ_TIMEOUT;
    while Instant::now() < deadline {
        // The sender of a line gets nothing: anything readable is the server
        // closing it.
        from.set_nonblocking(true)
            .map_err(|e| Relay::Failed(e.to_string()))?;
        let peeked = from.peek(&mut [0u8; 1]);
        let _ = from.set_nonblocking(false);
        let gone = match peeked {
            Ok(0) => ErrorKind::UnexpectedEof.into(),
            Ok(_) => return Err(Relay::Failed("data for the sender of a line".into())),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if arrived(to, line, Duration::from_millis(5))? {
                    return Ok(());
                }
                continue;
            }
            Err(e) => e,
        };
        // The server closed the sender: before it read the line (nothing was
        // relayed), or as it stopped (a fatal fault), maybe just after it relayed
        // the line to `to`. Then the line counts as relayed.
        return match arrived(to, line, RECHECK) {
            Ok(true) => Ok(()),
            Ok(false) | Err(Relay::Lost) => Err(Relay::Gone(gone)),
            Err(other) => Err(other),
        };
    }
    Err(Relay::Failed(format!(
        "{} not relayed within {READ_TIMEOUT:?}",
        show(line)
    )))
}

/// How a client's `say` went, when not relayed: the client gone (turned away or
/// closed), or wrong data.
pub(crate) enum Said {
    Gone(io::Error),
    Failed(String),
}

/// `from` writes `lines` in one write. Relayed once the first line reached the
/// first client of `others` still open (then the server serves `from`; if every
/// one of them was closed meanwhile, nobody can tell); every other open client
/// must then get the lines too, whole and in order. Clients the server closed
/// meanwhile, or that got wrong data, are moved from `others` to `reports`.
pub(crate) fn say(
    from: &mut TcpStream,
    lines: &[Vec<u8>],
    others: &mut Vec<ChatPeer>,
    reports: &mut Vec<ClientReport>,
) -> Result<(), Said> {
    let result = say_to(from, lines, others);
    // Clients the server closed send and get nothing more.
    let (open, gone): (Vec<_>, Vec<_>) = mem::take(others)
        .into_iter()
        .partition(|p| p.report.closed.is_none() && p.report.failure.is_none());
    reports.extend(gone.into_iter().map(|p| p.report));
    *others = open;
    result
}

pub(crate) fn say_to(
    from: &mut TcpStream,
    lines: &[Vec<u8>],
    others: &mut [ChatPeer],
) -> Result<(), Said> {
    from.write_all(&lines.concat()).map_err(Said::Gone)?;
    let mut first = None;
    for (i, to) in others.iter_mut().enumerate() {
        match relay(from, to, &lines[0]) {
            Ok(()) => {
                first = Some(i);
                break;
            }
            Err(Relay::Lost) => {} // `to` closed: the next one shows it
            Err(Relay::Gone(e)) => return Err(Said::Gone(e)),
            Err(Relay::Failed(why)) => return Err(Said::Failed(why)),
        }
    }
    let Some(first) = first else {
        return Ok(());
    };
    for (i, peer) in others.iter_mut().enumerate().skip(first) {
        let rest = if i == first { &lines[1..] } else { lines };
        for line in rest {
            peer.expect_line(line);
            if peer.report.closed.is_some() || peer.report.failure.is_some() {
                break;
            }
        }
    }
    Ok(())
}

/// What chat client `id` says in the exchange's opening round, one write each: a
/// line alone, then two lines at once (a short one and a long one with binary).
/// Each of them reaches every receiver while nothing else is queued for it, so
/// the line alone is one buffer there (one `send`) and the two lines are a copy
/// and a shared chunk (one `sendmsg` of both).
pub(crate) fn opening_lines(id: usize) -> [Vec<Vec<u8>>; 2] {
    let mut alone = format!("<{id}.o>a line alone, ").into_bytes();
    alone.extend((0..120).map(|i| b'a' + ((i + id) % 26) as u8));
    alone.push(b'\n');
    let short = format!("<{id}.p>two lines at once\n").into_bytes();
    let mut long = format!("<{id}.q>").into_bytes();
    long.extend((0..200).map(|i| match (i * 13 + id) as u8 {
        b'\n' => b'\r',
        x => x,
    }));
    long.push(b'\n');
    [vec![alone], vec![short, long]]
}

/// The exchange's opening round: each client in turn says its `opening_lines`,
/// and each write must reach all the others before the next one is made.
pub(crate) fn chat_opening(live: &mut Vec<ChatPeer>, reports: &mut Vec<ClientReport>) {
    for id in 0..CLIENTS {
        for lines in opening_lines(id) {
            let Some(i) = live.iter().position(|p| p.report.id == id) else {
                break; // closed, or never served
            };
            let mut peer = live.remove(i);
            match say(&mut peer.stream, &lines, live, reports) {
                Ok(()) => {
                    peer.report.sent += lines.iter().map(|l| l.len() as u64).sum::<u64>();
                    peer.report.msgs_in += lines.len() as u64;
                }
                Err(Said::Gone(e)) => {
                    peer.report.closed = sort_error(&mut peer.report, e, "opening round");
                }
                Err(Said::Failed(why)) => {
                    peer.report.failure = Some(format!("client {id}: opening round: {why}"));
                }
            }
            if peer.report.closed.is_some() || peer.report.failure.is_some() {
                reports.push(peer.report);
                break;
            }
            live.insert(i, peer);
        }
    }
}

/// What a chat client must still get: each other sender's lines, in order.
pub(crate) struct Inbox {
    pub(crate) from: Vec<VecDeque<Vec<u8>>>,
}

impl Inbox {
    fn new(id: usize, senders: &[usize]) -> Inbox {
        let from = (0..CLIENTS)
            .map(|s| {
                if s != id && senders.contains(&s) {
                    chat_lines(s).into_iter().map(|l| l.concat()).collect()
                } else {
                    VecDeque::new()
                }
            })
            .collect();
        Inbox { from }
    }

    /// Checks a line: the next one of the sender its tag names, byte for byte.
    fn take(&mut self, line: &[u8]) -> Result<(), String> {
        let sender = line
            .get(1)
            .and_then(|b| b.checked_sub(b'0'))
            .map(usize::from)
            .filter(|&s| line[0] == b'<' && s < CLIENTS);
        let Some(s) = sender else {
            return Err(format!("a line with no sender's tag: {}", show(line)));
        };
        match self.from[s].front() {
            Some(want) if want == line => {
                self.from[s].pop_front();
                Ok(())
            }
            Some(want) => Err(format!(
                "from client {s}: got {}, want {}",
                show(line),
                show(want)
            )),
            None => Err(format!(
                "from client {s}: a line it did not send: {}",
                show(line)
            )),
        }
    }

    /// Every sender's lines came, or that sender was closed (then a prefix).
    fn done(&self, closed: &[AtomicBool]) -> bool {
        (0..CLIENTS).all(|s| self.from[s].is_empty() || closed[s].load(Ordering::SeqCst))
    }

    fn missing(&self) -> String {
        (0..CLIENTS)
            .filter(|&s| !self.from[s].is_empty())
            .map(|s| format!("{} of client {s}", self.from[s].len()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Chat: five clients connect one after the other; each (but the first) says hello,
/// and is served once that line reached the others. The exchange opens with a
/// round in which each client in turn says its `opening_lines`; then all at once
/// send their lines in pieces while reading the others'; then half-close and wait
/// for EOF.
pub(crate) fn chat_workload(addr: SocketAddr, expect: Expect) -> Workload {
    let mut live: Vec<ChatPeer> = Vec::new();
    let mut reports = Vec::new();
    for id in 0..CLIENTS {
        let Some((mut stream, mut report)) = connect(addr, expect, id, &mut reports) else {
            continue;
        };
        if live.is_empty() {
            // Nobody to say hello to: the next client's hello shows it is served.
            report.hello_ok = true;
            live.push(ChatPeer::new(stream, report));
            continue;
        }
        let hello = format!("<{id}.h>hello from client {id}\n").into_bytes();
        match say(
            &mut stream,
            std::slice::from_ref(&hello),
            &mut live,
            &mut reports,
        ) {
            Ok(()) => {}
            Err(Said::Gone(e)) => {
                hello_failed(&mut report, e, expect);
                reports.push(report);
                continue;
            }
            Err(Said::Failed(why)) => {
                report.failure = Some(format!("client {id}: hello: {why}"));
                reports.push(report);
                continue;
            }
        }
        report.hello_ok = true;
        report.sent = hello.len() as u64;
        report.msgs_in = 1;
        live.push(ChatPeer::new(stream, report));
    }
    chat_opening(&mut live, &mut reports);
    let senders: Vec<usize> = live.iter().map(|p| p.report.id).collect();
    let closed: Arc<Vec<AtomicBool>> =
        Arc::new((0..CLIENTS).map(|_| AtomicBool::new(false)).collect());
    let eof_wait = eof_wait(expect);
    let handles: Vec<_> = live
        .into_iter()
        .map(|peer| {
            let (senders, closed) = (senders.clone(), closed.clone());
            thread::spawn(move || chat_client(peer, &senders, &closed, expect, eof_wait))
        })
        .collect();
    join_reports(handles, reports)
}

/// Takes `line` into `inbox` and counts it in `peer`'s report; `false`, the failure
/// reported, if it was not a line the inbox waited for.
fn receive(peer: &mut ChatPeer, inbox: &mut Inbox, line: &[u8]) -> bool {
    if let Err(why) = inbox.take(line) {
        peer.report.failure = Some(format!("client {}: {why}", peer.report.id));
        return false;
    }
    peer.report.verified += line.len() as u64;
    peer.report.msgs_out += 1;
    true
}

/// One chat client's phase 2: a writer thread sends its lines in pieces; this
/// thread reads the others' lines until every sender's came (or that sender was
/// closed), then half-closes and reads until EOF.
pub(crate) fn chat_client(
    mut peer: ChatPeer,
    senders: &[usize],
    closed: &Arc<Vec<AtomicBool>>,
    expect: Expect,
    eof_wait: Duration,
) -> ClientReport {
    let id = peer.report.id;
    if peer.report.failure.is_some() {
        return peer.report;
    }
    let mut writer = match peer.stream.try_clone() {
        Ok(w) => w,
        Err(e) => {
            peer.report.failure = Some(format!("client {id}: try_clone: {e}"));
            return peer.report;
        }
    };
    let closed_w = closed.clone();
    let writing = thread::spawn(move || {
        let (mut sent, mut msgs) = (0, 0);
        for line in chat_lines(id) {
            for piece in &line {
                if let Err(e) = writer.write_all(piece) {
                    closed_w[id].store(true, Ordering::SeqCst);
                    return (sent, msgs, Some(e));
                }
                sent += piece.len() as u64;
                thread::sleep(Duration::from_millis(1));
            }
            let len = line.iter().map(Vec::len).sum::<usize>();
            msgs += len.div_ceil(MAX_LINE) as u64;
        }
        (sent, msgs, None)
    });
    let mut inbox = Inbox::new(id, senders);
    let mut gone = None;
    let mut last = Instant::now();
    while !inbox.done(closed) {
        match peer.line(Duration::from_millis(20)) {
            Ok(Some(line)) => {
                if !receive(&mut peer, &mut inbox, &line) {
                    break;
                }
                last = Instant::now();
            }
            Ok(None) if last.elapsed() > READ_TIMEOUT => {
                peer.report.failure = Some(format!(
                    "client {id}: nothing for {READ_TIMEOUT:?}, missing {}",
                    inbox.missing()
                ));
                break;
            }
            Ok(None) => {}
            Err(e) => {
                closed[id].store(true, Ordering::SeqCst);
                gone = Some(e);
                break;
            }
        }
    }
    let (sent, msgs, write_error) =
        writing
            .join()
            .unwrap_or((0, 0, Some(io::Error::other("writer panicked"))));
    peer.report.sent += sent;
    peer.report.msgs_in += msgs;
    if peer.report.failure.is_some() {
        return peer.report;
    }
    if let Some(e) = gone.or(write_error) {
        peer.report.closed = sort_error(&mut peer.report, e, "chat");
        return peer.report;
    }
    // What still comes can only be more lines of closed senders, then EOF.
    let _ = peer.stream.shutdown(Shutdown::Write);
    loop {
        match peer.line(eof_wait) {
            Ok(Some(line)) => {
                if !receive(&mut peer, &mut inbox, &line) {
                    break;
                }
            }
            Ok(None) if expect == Expect::CloseIgnored && peer.pending.is_empty() => break,
            Ok(None) => {
                peer.report.failure = Some(format!("client {id}: no EOF within {eof_wait:?}"));
                break;
            }
            Err(e) if e.kind() == ErrorKind::UnexpectedEof && peer.pending.is_empty() => {
                peer.report.eof = true;
                break;
            }
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                peer.report.failure = Some(format!(
                    "client {id}: EOF after part of a line: {}",
                    show(&peer.pending)
                ));
                break;
            }
            Err(e) => {
                peer.report.closed = sort_error(&mut peer.report, e, "EOF");
                break;
            }
        }
    }
    peer.report
}
