//! Content-Transfer-Encoding decoders (RFC 2045): lenient base64 and quoted-printable.

/// A transfer encoding, as named by a `Content-Transfer-Encoding` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferEncoding {
    /// 7bit, 8bit or binary: the body is the content.
    Identity,
    /// base64.
    Base64,
    /// quoted-printable.
    QuotedPrintable,
}

impl TransferEncoding {
    /// Recognises an encoding name (case-insensitive, surrounding whitespace ignored).
    /// Returns `None` for unknown encodings.
    pub fn from_name(name: &str) -> Option<Self> {
        let n = name.trim();
        if n.is_empty()
            || n.eq_ignore_ascii_case("7bit")
            || n.eq_ignore_ascii_case("8bit")
            || n.eq_ignore_ascii_case("binary")
        {
            Some(Self::Identity)
        } else if n.eq_ignore_ascii_case("base64") {
            Some(Self::Base64)
        } else if n.eq_ignore_ascii_case("quoted-printable") {
            Some(Self::QuotedPrintable)
        } else {
            None
        }
    }

    /// Decodes `body`.
    pub fn decode(self, body: &[u8]) -> Vec<u8> {
        match self {
            Self::Identity => body.to_vec(),
            Self::Base64 => base64(body),
            Self::QuotedPrintable => quoted_printable(body),
        }
    }
}

fn b64_value(b: u8) -> Option<u32> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Decodes base64, skipping characters outside the alphabet (line breaks, spaces, junk) and
/// stopping at the first `=` padding. A trailing partial quantum yields the complete bytes it
/// holds.
pub fn base64(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut n = 0;
    for &b in input {
        if b == b'=' {
            break;
        }
        let Some(v) = b64_value(b) else { continue };
        acc = (acc << 6) | v;
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes quoted-printable: `=XX` escapes (either case), soft line breaks (`=` at the end of
/// a line, CRLF or LF), trailing whitespace on lines removed. Hard line breaks are kept as they
/// are (CRLF or LF). Malformed `=` sequences are kept literally.
pub fn quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut pos = 0;
    while pos < input.len() {
        let (content_end, next) = match input[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let nl = pos + i;
                let ce = if nl > pos && input[nl - 1] == b'\r' {
                    nl - 1
                } else {
                    nl
                };
                (ce, nl + 1)
            }
            None => (input.len(), input.len()),
        };
        let line_break = &input[content_end..next];
        let mut line = &input[pos..content_end];
        while let [rest @ .., b' ' | b'\t'] = line {
            line = rest;
        }
        let (line, soft) = match line.strip_suffix(b"=") {
            Some(l) => (l, true),
            None => (line, false),
        };
        let mut i = 0;
        while i < line.len() {
            let b = line[i];
            if b == b'='
                && let (Some(h), Some(l)) = (
                    line.get(i + 1).copied().and_then(hex),
                    line.get(i + 2).copied().and_then(hex),
                )
            {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
            out.push(b);
            i += 1;
        }
        if !soft {
            out.extend_from_slice(line_break);
        }
        pos = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_lenient() {
        assert_eq!(base64(b"aGVsbG8gd29ybGQ=\r\n"), b"hello world");
        assert_eq!(base64(b"aGVs\r\nbG8"), b"hello");
        assert_eq!(base64(b"aGVsbA"), b"hell");
        assert_eq!(base64(b"!!"), b"");
    }

    #[test]
    fn qp() {
        assert_eq!(
            quoted_printable(b"caf=C3=A9 =\r\nlong  \r\nx=3d=ZZ="),
            "caf\u{e9} long\r\nx==ZZ".as_bytes()
        );
        assert_eq!(quoted_printable(b"a\nb=\nc"), b"a\nbc");
    }
}
