//! The client (chat: two) that must be served after the faults.

use super::*;

pub(crate) const FRESH: &[u8] = b"fresh client after the faults\n\0\x01\x02binary\xff\n";

/// A new client after the faults: its exchange, half-close, EOF.
pub(crate) fn fresh_client(
    target: Target,
    addr: SocketAddr,
    expect: Expect,
) -> Result<Traffic, String> {
    let exchange = match target {
        Target::Chat => return chat_fresh(addr, expect),
        Target::Kv => {
            let mut request = kv_set("fresh", FRESH);
            request.extend_from_slice(b"get fresh\r\n");
            let mut reply = STORED.to_vec();
            reply.extend(kv_value("fresh", FRESH));
            reply.extend_from_slice(b"END\r\n");
            Exchange {
                pieces: vec![request],
                reply,
                msgs_in: 3,
                msgs_out: 2,
            }
        }
        Target::Echo(_) | Target::Relay => echo_of(vec![FRESH.to_vec()]),
    };
    let request = exchange.pieces.concat();
    let mut s = fresh_connect(addr)?;
    s.write_all(&request).map_err(|e| format!("write: {e}"))?;
    let mut verified = 0;
    read_expected(&mut s, &exchange.reply, &mut verified).map_err(|e| format!("reply: {e}"))?;
    let eof = half_close_eof(&mut s, expect)?;
    Ok(Traffic {
        no_eof: u64::from(!eof),
        sent: request.len() as u64,
        verified,
        msgs_in: exchange.msgs_in,
        msgs_out: exchange.msgs_out,
    })
}

pub(crate) fn fresh_connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(READ_TIMEOUT))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

/// Half-closes and reads EOF: `Ok(true)`; `Ok(false)` when none came and the
/// server's `close` may have been a fault (`Expect::CloseIgnored`).
pub(crate) fn half_close_eof(s: &mut TcpStream, expect: Expect) -> Result<bool, String> {
    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(eof_wait(expect)))
        .map_err(|e| e.to_string())?;
    match s.read(&mut [0u8; 16]) {
        Ok(0) => Ok(true),
        Ok(n) => Err(format!("{n} bytes after the reply")),
        Err(e) if common::is_timeout(&e) && expect == Expect::CloseIgnored => Ok(false),
        Err(e) => Err(format!("no EOF: {e}")),
    }
}

/// Chat: two new clients. B's line reaches A (accepted first), so both are served;
/// then A's line, binary, reaches B; then both half-close and get EOF.
pub(crate) fn chat_fresh(addr: SocketAddr, expect: Expect) -> Result<Traffic, String> {
    let mut a = fresh_connect(addr)?;
    let mut b = fresh_connect(addr)?;
    let from_b: &[u8] = b"<f.0>fresh client B\n";
    let from_a: &[u8] = b"<f.1>fresh client A after the faults\0\x01\x02binary\xff\r\n";
    let mut verified = 0;
    b.write_all(from_b).map_err(|e| format!("B: write: {e}"))?;
    read_expected(&mut a, from_b, &mut verified).map_err(|e| format!("A: {e}"))?;
    a.write_all(from_a).map_err(|e| format!("A: write: {e}"))?;
    read_expected(&mut b, from_a, &mut verified).map_err(|e| format!("B: {e}"))?;
    let eof_a = half_close_eof(&mut a, expect).map_err(|e| format!("A: {e}"))?;
    let eof_b = half_close_eof(&mut b, expect).map_err(|e| format!("B: {e}"))?;
    Ok(Traffic {
        no_eof: u64::from(!eof_a) + u64::from(!eof_b),
        sent: (from_a.len() + from_b.len()) as u64,
        verified,
        msgs_in: 2,
        msgs_out: 2,
    })
}
