//! The clients of echo and kv: request and reply, checked byte for byte; what they
//! report for `check`.

use super::*;

pub(crate) const CLIENTS: usize = 5;
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client that half-closed waits for EOF when the server's close may have
/// been a fault (the descriptor then stays open under strace).
pub(crate) const EOF_WAIT_IF_LEAKED: Duration = Duration::from_millis(1500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Close {
    /// Read 0.
    Eof,
    /// ECONNRESET, EPIPE, ECONNABORTED, ECONNREFUSED.
    Reset,
}

/// What went through the server for the fresh client(s): bytes and messages sent to
/// it, bytes and messages got back and checked.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Traffic {
    /// Connections of the fresh client(s) that got no EOF (`close` rows).
    pub(crate) no_eof: u64,
    pub(crate) sent: u64,
    pub(crate) verified: u64,
    pub(crate) msgs_in: u64,
    pub(crate) msgs_out: u64,
}

#[derive(Debug, Default)]
pub(crate) struct ClientReport {
    pub(crate) id: usize,
    /// The hello round trip worked (the server accepted and serves it).
    pub(crate) hello_ok: bool,
    /// How the server turned it away at the hello (shed or refused).
    pub(crate) turned_away: Option<Close>,
    /// How the server closed it after the hello, before all its replies came back.
    pub(crate) closed: Option<Close>,
    /// Bytes it sent (hello included) and bytes it got back, checked.
    pub(crate) sent: u64,
    pub(crate) verified: u64,
    /// chat and kv: messages the server read from it (whole lines, pieces of long
    /// lines, data blocks), and messages it got and checked.
    pub(crate) msgs_in: u64,
    pub(crate) msgs_out: u64,
    /// It half-closed at the end and read EOF.
    pub(crate) eof: bool,
    /// Wrong bytes, or no answer in time: always a failure.
    pub(crate) failure: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Workload {
    pub(crate) clients: Vec<ClientReport>,
    pub(crate) fresh: Option<Result<Traffic, String>>,
    /// With workers, fresh clients shed before the one served (a worker's planned
    /// accept4 fault can be the fresh client's).
    pub(crate) fresh_shed: u64,
    /// The relay's upstream: connections it accepted, and those still open once
    /// the fresh client is done (every pair should be closed by then).
    pub(crate) upstream_accepted: u64,
    pub(crate) upstream_open: u64,
    /// The relay's `close` rows: the failed closes that were a client's (the
    /// client sees no EOF; an upstream's peer closed first).
    pub(crate) client_closes_failed: u64,
}

/// One request, sent in pieces 1 ms apart, and the reply that must come back whole
/// before the next request; with the messages the server counts for it (chat, kv).
pub(crate) struct Exchange {
    pub(crate) pieces: Vec<Vec<u8>>,
    pub(crate) reply: Vec<u8>,
    pub(crate) msgs_in: u64,
    pub(crate) msgs_out: u64,
}

/// Echo: the reply is the request.
pub(crate) fn echo_of(pieces: Vec<Vec<u8>>) -> Exchange {
    Exchange {
        reply: pieces.concat(),
        pieces,
        msgs_in: 0,
        msgs_out: 0,
    }
}

/// `m` in `parts` pieces of (nearly) equal length.
pub(crate) fn split(m: &[u8], parts: usize) -> Vec<Vec<u8>> {
    m.chunks(m.len().div_ceil(parts))
        .map(<[u8]>::to_vec)
        .collect()
}

/// `m` cut at the positions `at` (ascending).
pub(crate) fn cut(m: &[u8], at: &[usize]) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    let mut from = 0;
    for &to in at.iter().chain([&m.len()]) {
        pieces.push(m[from..to].to_vec());
        from = to;
    }
    pieces
}

/// What an echo client sends: messages, each in pieces; each message comes back
/// whole before the next is sent. In line mode every message ends a line or is
/// exactly 4095 bytes (the longest piece the server echoes without a newline).
pub(crate) fn messages(id: usize) -> Vec<Vec<Vec<u8>>> {
    (0..5)
        .map(|k| match id % 5 {
            0 => split(
                format!("client {id} line {k}: the quick brown fox jumps\n").as_bytes(),
                2,
            ),
            1 => {
                // Binary with NULs (and newlines, which only split lines).
                let mut m: Vec<u8> = (0..200 + 37 * k).map(|i| (i * 7 + k + id) as u8).collect();
                m.push(b'\n');
                split(&m, 3)
            }
            2 if k == 0 => {
                // One piece of 4095 bytes without a newline.
                vec![(0..4095).map(|i| b'a' + (i % 26) as u8).collect()]
            }
            3 => split(format!("{id}.{k}: a\nbb\nccc\ndddd\n").as_bytes(), 3),
            _ => split(format!("nul\0inside {id}.{k}\0\n").as_bytes(), 2),
        })
        .collect()
}

pub(crate) const STORED: &[u8] = b"STORED\r\n";

/// kv: `set KEY 0 0 N\r\n<value>\r\n`.
pub(crate) fn kv_set(key: &str, value: &[u8]) -> Vec<u8> {
    let mut m = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
    m.extend_from_slice(value);
    m.extend_from_slice(b"\r\n");
    m
}

/// kv: a `get`'s `VALUE KEY 0 N\r\n<value>\r\n`.
pub(crate) fn kv_value(key: &str, value: &[u8]) -> Vec<u8> {
    let mut m = format!("VALUE {key} 0 {}\r\n", value.len()).into_bytes();
    m.extend_from_slice(value);
    m.extend_from_slice(b"\r\n");
    m
}

/// What a kv client does: sets binary values (NULs, `\r\n` inside, one longer than
/// a command line may be), cut inside the command line's `\r\n` and inside the data,
/// gets them back (two values and a miss in one `get`), a `set` and a `get`
/// pipelined in one request, a `delete`.
pub(crate) fn kv_exchanges(id: usize) -> Vec<Exchange> {
    let key = |k: &str| format!("c{id}:{k}");
    let a = format!("line one\r\nline two\r\n\0\0nul, CR\r and LF\n of client {id}").into_bytes();
    let b: Vec<u8> = (0..300 + 17 * id).map(|i| (i * 31 + id) as u8).collect();
    let c: Vec<u8> = (0..3000)
        .map(|i| match i % 100 {
            98 => b'\r',
            99 => b'\n',
            _ => b'A' + ((i + id) % 26) as u8,
        })
        .collect();
    let d = b"\r\n\0\r\n".to_vec();
    let set_a = kv_set(&key("a"), &a);
    let line_end = set_a.iter().position(|&x| x == b'\n').unwrap();
    let mut got_ab = kv_value(&key("a"), &a);
    got_ab.extend(kv_value(&key("b"), &b));
    got_ab.extend_from_slice(b"END\r\n");
    let mut pipelined = kv_set(&key("d"), &d);
    pipelined.extend(format!("get {} {}\r\n", key("c"), key("d")).into_bytes());
    let mut got_cd = STORED.to_vec();
    got_cd.extend(kv_value(&key("c"), &c));
    got_cd.extend(kv_value(&key("d"), &d));
    got_cd.extend_from_slice(b"END\r\n");
    let ex = |pieces, reply: &[u8], msgs_in, msgs_out| Exchange {
        pieces,
        reply: reply.to_vec(),
        msgs_in,
        msgs_out,
    };
    vec![
        ex(cut(&set_a, &[line_end, line_end + 12]), STORED, 2, 1),
        ex(split(&kv_set(&key("b"), &b), 4), STORED, 2, 1),
        ex(split(&kv_set(&key("c"), &c), 3), STORED, 2, 1),
        ex(
            split(
                format!("get {} {} {}\r\n", key("a"), key("b"), key("none")).as_bytes(),
                2,
            ),
            &got_ab,
            1,
            1,
        ),
        ex(split(&pipelined, 3), &got_cd, 3, 2),
        ex(
            split(format!("delete {0}\r\nget {0}\r\n", key("a")).as_bytes(), 2),
            b"DELETED\r\nEND\r\n",
            2,
            2,
        ),
    ]
}

/// The hello of client `id`, one write: echo's line, kv's `set`.
pub(crate) fn hello(target: Target, id: usize) -> Exchange {
    match target {
        Target::Kv => Exchange {
            pieces: vec![kv_set(
                &format!("h{id}"),
                format!("hello from {id}").as_bytes(),
            )],
            reply: STORED.to_vec(),
            msgs_in: 2,
            msgs_out: 1,
        },
        _ => echo_of(vec![format!("hello from client {id}\n").into_bytes()]),
    }
}

pub(crate) fn exchanges(target: Target, id: usize) -> Vec<Exchange> {
    match target {
        Target::Kv => kv_exchanges(id),
        _ => messages(id).into_iter().map(echo_of).collect(),
    }
}

pub(crate) fn close_kind(e: &io::Error) -> Option<Close> {
    match e.kind() {
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::ConnectionRefused
        | ErrorKind::NotConnected => Some(Close::Reset),
        ErrorKind::UnexpectedEof => Some(Close::Eof),
        _ => None,
    }
}

/// Reads `want.len()` bytes and compares them as they come.
pub(crate) fn read_expected(s: &mut TcpStream, want: &[u8], verified: &mut u64) -> io::Result<()> {
    let mut got = 0;
    let mut buf = [0u8; 8192];
    while got < want.len() {
        let room = (want.len() - got).min(buf.len());
        let n = s.read(&mut buf[..room])?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        if buf[..n] != want[got..got + n] {
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                format!("reply differs from byte {got} on"),
            ));
        }
        got += n;
        *verified += n as u64;
    }
    Ok(())
}

/// Sorts an error into "the server closed us" or a failure.
pub(crate) fn sort_error(report: &mut ClientReport, e: io::Error, what: &str) -> Option<Close> {
    match close_kind(&e) {
        Some(kind) => Some(kind),
        None => {
            report.failure = Some(format!("client {}: {what}: {e}", report.id));
            None
        }
    }
}

/// Whether a fresh client's failure (its message) was a reset by the server.
pub(crate) fn was_reset(why: &str) -> bool {
    [libc::ECONNRESET, libc::EPIPE]
        .iter()
        .any(|e| why.contains(&format!("(os error {e})")))
}

/// Whether the server turns a connection away before serving it in this row (a
/// failed hello is then "turned away"; otherwise the server accepted and closed it).
pub(crate) fn turns_away(expect: Expect) -> bool {
    matches!(
        expect,
        Expect::Shed | Expect::ShedReopenFails | Expect::LingerFin | Expect::Refuse
    )
}

/// A failed hello: turned away, closed, or a failure.
pub(crate) fn hello_failed(report: &mut ClientReport, e: io::Error, expect: Expect) {
    let kind = sort_error(report, e, "hello");
    if turns_away(expect) {
        report.turned_away = kind;
    } else {
        report.closed = kind;
    }
}

/// Connects client `id`: its stream and report; `None` when the connection failed
/// or (refusing rows) the server turned it away at once, its report (saying so)
/// added to `reports`.
pub(crate) fn connect(
    addr: SocketAddr,
    expect: Expect,
    id: usize,
    reports: &mut Vec<ClientReport>,
) -> Option<(TcpStream, ClientReport)> {
    let mut report = ClientReport {
        id,
        ..ClientReport::default()
    };
    match open(addr, expect, &mut report) {
        Some(stream) => Some((stream, report)),
        None => {
            reports.push(report);
            None
        }
    }
}

/// [`connect`]'s stream, or `None` as `report` says.
fn open(addr: SocketAddr, expect: Expect, report: &mut ClientReport) -> Option<TcpStream> {
    let id = report.id;
    let mut stream = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => {
            // Only after a fatal fault: the server is gone.
            report.closed = sort_error(report, e, "connect");
            return None;
        }
    };
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    // Each piece leaves at once (no Nagle): more, smaller reads for the server.
    let _ = stream.set_nodelay(true);
    if expect == Expect::LingerFin {
        // Refused connections are closed at once: wait for that before sending, so
        // a FIN is not turned into an RST by unread data.
        let _ = stream.set_read_timeout(Some(Duration::from_millis(400)));
        match stream.read(&mut [0u8; 16]) {
            Ok(0) => report.turned_away = Some(Close::Eof),
            Ok(_) => report.failure = Some(format!("client {id}: data before hello")),
            Err(e) if common::is_timeout(&e) => {}
            Err(e) => report.turned_away = sort_error(report, e, "probe"),
        }
        let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
        if report.turned_away.is_some() || report.failure.is_some() {
            return None;
        }
    }
    Some(stream)
}

/// The clients' run against `target`.
pub(crate) fn workload(target: Target, addr: SocketAddr, expect: Expect) -> Workload {
    match target {
        Target::Chat => chat_workload(addr, expect),
        _ => exchange_workload(target, addr, expect),
    }
}

pub(crate) fn eof_wait(expect: Expect) -> Duration {
    if expect == Expect::CloseIgnored {
        EOF_WAIT_IF_LEAKED
    } else {
        READ_TIMEOUT
    }
}

/// Echo and kv: request, reply. The same bytes suit byte and line echo.
pub(crate) fn exchange_workload(target: Target, addr: SocketAddr, expect: Expect) -> Workload {
    let mut streams = Vec::new();
    let mut reports = Vec::new();
    // Phase 1: connect one after the other, so the n-th accept is client n.
    for id in 0..CLIENTS {
        let Some((mut stream, mut report)) = connect(addr, expect, id, &mut reports) else {
            continue;
        };
        let hello = hello(target, id);
        let request = hello.pieces.concat();
        let result = stream
            .write_all(&request)
            .and_then(|()| read_expected(&mut stream, &hello.reply, &mut report.verified));
        match result {
            Ok(()) => {
                report.hello_ok = true;
                report.sent = request.len() as u64;
                report.msgs_in = hello.msgs_in;
                report.msgs_out = hello.msgs_out;
                streams.push((report, stream));
            }
            Err(e) => {
                hello_failed(&mut report, e, expect);
                reports.push(report);
            }
        }
    }
    // Phase 2: all at once, in pieces; then half-close and wait for EOF.
    let eof_wait = eof_wait(expect);
    let handles: Vec<_> = streams
        .into_iter()
        .map(|(mut report, mut stream)| {
            thread::spawn(move || {
                for exchange in exchanges(target, report.id) {
                    let mut result = Ok(());
                    for piece in &exchange.pieces {
                        result = stream.write_all(piece);
                        if result.is_err() {
                            break;
                        }
                        report.sent += piece.len() as u64;
                        thread::sleep(Duration::from_millis(1));
                    }
                    let result = result.and_then(|()| {
                        read_expected(&mut stream, &exchange.reply, &mut report.verified)
                    });
                    if let Err(e) = result {
                        report.closed = sort_error(&mut report, e, "reply");
                        return report;
                    }
                    report.msgs_in += exchange.msgs_in;
                    report.msgs_out += exchange.msgs_out;
                }
                let _ = stream.shutdown(Shutdown::Write);
                let _ = stream.set_read_timeout(Some(eof_wait));
                match stream.read(&mut [0u8; 64]) {
                    Ok(0) => report.eof = true,
                    Ok(n) => report.failure = Some(format!("{n} bytes after the replies")),
                    Err(e) if common::is_timeout(&e) && expect == Expect::CloseIgnored => {}
                    Err(e) => report.closed = sort_error(&mut report, e, "EOF"),
                }
                report
            })
        })
        .collect();
    join_reports(handles, reports)
}

pub(crate) fn join_reports(
    handles: Vec<thread::JoinHandle<ClientReport>>,
    mut reports: Vec<ClientReport>,
) -> Workload {
    for h in handles {
        match h.join() {
            Ok(r) => reports.push(r),
            Err(_) => reports.push(ClientReport {
                failure: Some("client thread panicked".into()),
                ..ClientReport::default()
            }),
        }
    }
    reports.sort_by_key(|r| r.id);
    Workload {
        clients: reports,
        ..Workload::default()
    }
}
