//! The words of a command line and the numbers in them, read as memcached reads
//! them (strtoull/strtoll on a whole word), and the numbers written back.

/// Longest key (memcached's KEY_MAX_LENGTH).
pub const MAX_KEY: usize = 250;

/// At most [`MAX_KEY`] bytes, no control character (space cannot occur: it
/// separates words).
pub fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY && !key.iter().any(|&b| b < 0x20 || b == 0x7f)
}

/// The words of `line`, separated by one or more spaces.
pub fn words(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b' ').filter(|w| !w.is_empty())
}

/// `s` without its leading spaces.
pub fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

/// The first word of `s` (which starts with one, not a space) and what follows it.
pub fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    let end = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
    s.split_at(end)
}

/// A decimal unsigned number, as strtoull takes it in a whole word: an optional
/// `+`, then digits only; `None` on overflow.
pub fn parse_u64(word: &[u8]) -> Option<u64> {
    let digits = word.strip_prefix(b"+").unwrap_or(word);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// A decimal signed number with an optional sign.
pub fn parse_i64(word: &[u8]) -> Option<i64> {
    match word.strip_prefix(b"-") {
        Some(digits) if !digits.starts_with(b"+") => {
            let n = parse_u64(digits)?;
            0i64.checked_sub_unsigned(n)
        }
        Some(_) => None,
        None => i64::try_from(parse_u64(word)?).ok(),
    }
}

/// An item's value read as a number for incr/decr, as memcached reads it: leading
/// white space, an optional `+`, digits, then the end, white space or a NUL. It
/// takes the bytes one by one (a long value comes in pieces) and stops at the first
/// that decides, so an `incr` on a 1 MiB value costs what its first bytes do.
pub fn parse_number(bytes: impl IntoIterator<Item = u8>) -> Option<u64> {
    let mut n: Option<u64> = None; // until the first digit
    let mut first = true;
    for b in bytes.into_iter().skip_while(|&b| is_c_space(b)) {
        match b {
            b'+' if first => {}
            b'0'..=b'9' => {
                let so_far = n.unwrap_or(0);
                n = Some(so_far.checked_mul(10)?.checked_add(u64::from(b - b'0'))?);
            }
            b if is_c_space(b) || b == 0 => break,
            _ => return None,
        }
        first = false;
    }
    n
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Appends `n` in decimal.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"+"), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-+1"), None);
        assert_eq!(parse_i64(b"--1"), None);
        for n in [0, 9, 10, 99, 12345, u64::MAX] {
            let mut v = Vec::new();
            push_u64(&mut v, n);
            assert_eq!(v, n.to_string().as_bytes());
        }
    }

    #[test]
    fn numbers_in_values() {
        for (v, n) in [
            (&b" 12"[..], Some(12)),
            (b"12 ", Some(12)),
            (b"+12", Some(12)),
            (b"12\0", Some(12)),
            (b"12 x", Some(12)),
            (b"12x", None),
            (b"-1", None),
            (b"", None),
            (b" ", None),
            (b"18446744073709551616", None),
            (b"18446744073709551615", Some(u64::MAX)),
            (b"+", None),
            (b"+ 1", None),
            (b"1+", None),
            (b"++1", None),
            (b"\t\n 7\r", Some(7)),
        ] {
            let got = parse_number(v.iter().copied());
            assert_eq!(got, n, "{:?}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn words_and_keys() {
        let got: Vec<&[u8]> = words(b"  get a  b ").collect();
        assert_eq!(got, [&b"get"[..], b"a", b"b"]);
        assert_eq!(split_word(b"abc def"), (&b"abc"[..], &b" def"[..]));
        assert_eq!(split_word(b"abc"), (&b"abc"[..], &b""[..]));
        assert_eq!(trim_start(b"  x "), b"x ");
        assert!(valid_key(&[b'k'; MAX_KEY]));
        assert!(!valid_key(&[b'k'; MAX_KEY + 1]));
        assert!(!valid_key(b""));
        assert!(!valid_key(b"a\x01"));
        assert!(!valid_key(b"a\x7f"));
        assert!(valid_key("ключ".as_bytes()));
    }
}
