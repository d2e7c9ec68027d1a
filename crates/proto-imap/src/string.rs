//! IMAP string encoding (RFC 9051 section 4.3): quoted strings, literals, `literal8`, NIL.

/// Whether `s` can be sent as a quoted string: no NUL, CR or LF, and 7-bit (or, when `utf8`
/// is set, i.e. after `ENABLE UTF8=ACCEPT`, valid UTF-8).
pub fn is_quotable(s: &[u8], utf8: bool) -> bool {
    let safe = s.iter().all(|&b| b != 0 && b != b'\r' && b != b'\n');
    safe && (s.is_ascii() || (utf8 && std::str::from_utf8(s).is_ok()))
}

/// Appends `s` as a quoted string (escaping `"` and `\`) when [`is_quotable`], otherwise as a
/// synchronizing literal `{n}\r\n...`.
pub fn quoted_or_literal(out: &mut Vec<u8>, s: &[u8], utf8: bool) {
    if is_quotable(s, utf8) {
        quoted(out, s);
    } else {
        literal(out, s, false);
    }
}

/// Appends `s` as a quoted string. The caller must have checked [`is_quotable`].
pub fn quoted(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Appends `NIL` for `None`, else the string as by [`quoted_or_literal`] (7-bit quoting).
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => quoted_or_literal(out, s, false),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// Appends a literal: `{n}\r\n` followed by `s`, or with `binary` the RFC 3516 `literal8`
/// form `~{n}\r\n`. A plain literal is CHAR8, without NUL (RFC 9051 9): a NUL in `s` goes
/// out as 0x80, as Dovecot sends it, which keeps every length and partial offset right.
pub fn literal(out: &mut Vec<u8>, s: &[u8], binary: bool) {
    if binary {
        out.push(b'~');
    }
    out.push(b'{');
    out.extend_from_slice(s.len().to_string().as_bytes());
    out.extend_from_slice(b"}\r\n");
    if binary || !s.contains(&0) {
        out.extend_from_slice(s);
    } else {
        out.extend(s.iter().map(|&b| if b == 0 { 0x80 } else { b }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &[u8], utf8: bool) -> Vec<u8> {
        let mut v = Vec::new();
        quoted_or_literal(&mut v, s, utf8);
        v
    }

    #[test]
    fn strings() {
        assert_eq!(q(b"abc", false), b"\"abc\"");
        assert_eq!(q(b"a\"b\\c", false), b"\"a\\\"b\\\\c\"");
        assert_eq!(q(b"", false), b"\"\"");
        assert_eq!(q(b"a\r\nb", false), b"{4}\r\na\r\nb");
        assert_eq!(q("한".as_bytes(), false), "{3}\r\n한".as_bytes());
        assert_eq!(q("한".as_bytes(), true), "\"한\"".as_bytes());
        assert_eq!(q(b"\xff", true), b"{1}\r\n\xff");
        assert_eq!(
            q(b"a\0", true),
            b"{2}\r\na\x80",
            "no NUL in a plain literal"
        );
        let mut v = Vec::new();
        nstring(&mut v, None);
        v.push(b' ');
        nstring(&mut v, Some(b"x"));
        v.push(b' ');
        literal(&mut v, b"\0\x01", true);
        assert_eq!(v, b"NIL \"x\" ~{2}\r\n\0\x01");
    }
}
