//! 8-bit mail for a 7-bit SMTP peer (RFC 6152 3): every leaf part whose body has 8-bit octets is
//! re-encoded, text as quoted-printable (line breaks kept), anything else as base64, and its
//! Content-Transfer-Encoding changed; containers labelled 8bit/binary become 7bit. A message
//! that is not MIME gets the headers that make it so (`charset=unknown-8bit`, RFC 1428, when
//! it declares none). Headers with 8-bit octets cannot be converted (that is SMTPUTF8's job,
//! RFC 6532), nor can a body that is already labelled base64/quoted-printable yet has 8-bit
//! octets: then `None`, and the sender gets a bounce rather than mangled mail.

use std::ops::Range;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::mime::{Kind, Part};

/// Whether any octet has the high bit set.
pub fn has_8bit(data: &[u8]) -> bool {
    data.iter().any(|b| *b >= 0x80)
}

/// Whether the top-level header has 8-bit octets (UTF-8 headers need SMTPUTF8).
pub fn headers_have_8bit(message: &[u8]) -> bool {
    has_8bit(crate::header::split(message).0)
}

/// The message with every 8-bit body re-encoded as 7-bit, or `None` if that is not possible.
pub fn to_seven_bit(message: &[u8]) -> Option<Vec<u8>> {
    let root = crate::mime::parse(message);
    let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
    convert(message, &root, true, &mut edits)?;
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = Vec::with_capacity(message.len() + message.len() / 3);
    let mut pos = 0;
    for (range, bytes) in edits {
        out.extend_from_slice(&message[pos..range.start]);
        out.extend_from_slice(&bytes);
        pos = range.end;
    }
    out.extend_from_slice(&message[pos..]);
    // 8-bit octets outside every part (a multipart's preamble or epilogue, or a body whose
    // boundary never occurs) cannot be re-encoded without changing what the message says.
    if has_8bit(&out) {
        return None;
    }
    Some(out)
}

fn encoding(raw: &[u8], part: &Part) -> String {
    part.encoding_name(raw)
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn convert(
    raw: &[u8],
    part: &Part,
    top: bool,
    edits: &mut Vec<(Range<usize>, Vec<u8>)>,
) -> Option<()> {
    if has_8bit(&raw[part.header.clone()]) {
        return None;
    }
    let enc = encoding(raw, part);
    match &part.kind {
        Kind::Multipart(children) => {
            for c in children {
                convert(raw, c, false, edits)?;
            }
            if matches!(enc.as_str(), "8bit" | "binary") {
                edits.push((part.header.clone(), rewrite_header(raw, part, "7bit", top)));
            }
        }
        Kind::Message(inner) => {
            convert(raw, inner, false, edits)?;
            if matches!(enc.as_str(), "8bit" | "binary") {
                edits.push((part.header.clone(), rewrite_header(raw, part, "7bit", top)));
            }
        }
        Kind::Leaf => {
            let body = &raw[part.body.clone()];
            if !has_8bit(body) {
                return Some(());
            }
            if !matches!(enc.as_str(), "" | "7bit" | "8bit" | "binary") {
                return None;
            }
            let (label, encoded) = if part.media_type == "text" {
                ("quoted-printable", quoted_printable(body))
            } else {
                ("base64", base64_lines(body))
            };
            let mut bytes = rewrite_header(raw, part, label, top);
            bytes.extend_from_slice(&encoded);
            edits.push((part.header.start..part.body.end, bytes));
        }
    }
    Some(())
}

/// The part's header with Content-Transfer-Encoding set to `label` (and, at the top of a
/// message that lacks them, MIME-Version and Content-Type), ending with the blank line.
fn rewrite_header(raw: &[u8], part: &Part, label: &str, top: bool) -> Vec<u8> {
    let header = &raw[part.header.clone()];
    let base = header.as_ptr() as usize;
    let mut cut: Vec<Range<usize>> = crate::header::fields(header)
        .filter(|f| f.is("content-transfer-encoding"))
        .map(|f| {
            let start = f.raw.as_ptr() as usize - base;
            start..start + f.raw.len()
        })
        .collect();
    // The blank line that ends the header (CRLF or LF) stays at the end.
    let blank = if header.ends_with(b"\r\n\r\n") || header == b"\r\n" {
        2
    } else if header.ends_with(b"\n\n") || header == b"\n" {
        1
    } else {
        0
    };
    let fields_end = header.len() - blank;
    cut.push(fields_end..header.len());
    let mut out = Vec::with_capacity(header.len() + 64);
    let mut pos = 0;
    for r in cut {
        out.extend_from_slice(&header[pos..r.start.max(pos)]);
        pos = pos.max(r.end);
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    if top {
        if crate::header::first(header, "mime-version").is_none() {
            out.extend_from_slice(b"MIME-Version: 1.0\r\n");
        }
        if crate::header::first(header, "content-type").is_none() {
            // RFC 1428: 8-bit text of an undeclared charset.
            out.extend_from_slice(b"Content-Type: text/plain; charset=unknown-8bit\r\n");
        }
    }
    out.extend_from_slice(format!("Content-Transfer-Encoding: {label}\r\n\r\n").as_bytes());
    out
}

/// RFC 2045 6.7 quoted-printable of text: line breaks (CRLF or LF) stay hard line breaks,
/// lines are soft-broken before 76 characters, trailing white space is encoded.
pub fn quoted_printable(body: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(body.len() * 3 / 2);
    let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
    let last = lines.len() - 1;
    for (n, line) in lines.iter().enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut width = 0;
        for (i, &b) in line.iter().enumerate() {
            let at_end = i + 1 == line.len();
            let literal =
                (b == b' ' || b == b'\t') && !at_end || (33..=126).contains(&b) && b != b'=';
            let len = if literal { 1 } else { 3 };
            if width + len > 75 {
                out.extend_from_slice(b"=\r\n");
                width = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'=', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            }
            width += len;
        }
        if n < last {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// Base64 in 76-character lines (RFC 2045 6.8), ending with a line break.
fn base64_lines(body: &[u8]) -> Vec<u8> {
    let encoded = B64.encode(body);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded_text(m: &[u8]) -> String {
        // Decode every part again with the message crate and join the texts.
        let root = crate::mime::parse(m);
        let mut out = String::new();
        fn walk(raw: &[u8], p: &Part, out: &mut String) {
            match &p.kind {
                Kind::Leaf => {
                    let enc = p.encoding_name(raw).unwrap_or_default();
                    let te = crate::transfer::TransferEncoding::from_name(&enc)
                        .unwrap_or(crate::transfer::TransferEncoding::Identity);
                    out.push_str(&String::from_utf8_lossy(&te.decode(&raw[p.body.clone()])));
                    out.push('|');
                }
                Kind::Multipart(c) => c.iter().for_each(|c| walk(raw, c, out)),
                Kind::Message(m) => walk(raw, m, out),
            }
        }
        walk(m, &root, &mut out);
        out
    }

    #[test]
    fn plain_utf8_text_becomes_quoted_printable() {
        let m = "Subject: hi\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n안녕하세요, 이씨.\r\n= sign and trailing space \r\n".as_bytes();
        let out = to_seven_bit(m).unwrap();
        assert!(!has_8bit(&out), "{}", String::from_utf8_lossy(&out));
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(
            text.contains("Content-Transfer-Encoding: quoted-printable\r\n\r\n"),
            "{text}"
        );
        assert!(!text.contains("8bit"), "{text}");
        assert!(
            text.contains("=3D sign and trailing space=20\r\n"),
            "{text}"
        );
        assert!(text.lines().all(|l| l.len() <= 76), "{text}");
        assert_eq!(
            decoded_text(&out),
            "안녕하세요, 이씨.\r\n= sign and trailing space \r\n|"
        );
    }

    #[test]
    fn multipart_parts_are_converted_one_by_one() {
        let m = b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\npreamble\r\n--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9\r\n--b\r\nContent-Type: text/plain\r\n\r\nascii only\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n\x00\xff\xfe\r\n--b--\r\n";
        let out = to_seven_bit(m).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.contains("Content-Transfer-Encoding: 7bit\r\n\r\npreamble"),
            "{text}"
        );
        assert!(text.contains("caf=E9\r\n"), "{text}");
        assert!(text.contains("\r\n\r\nascii only\r\n--b"), "{text}");
        assert!(
            text.contains("Content-Transfer-Encoding: base64\r\n\r\nAP/+"),
            "{text}"
        );
        let parts = decoded_text(&out);
        assert!(parts.contains("ascii only"), "{parts}");
        // the binary part decodes back to its bytes
        let root = crate::mime::parse(&out);
        let Kind::Multipart(c) = &root.kind else {
            panic!()
        };
        let bin = crate::transfer::base64(&out[c[2].body.clone()]);
        assert_eq!(bin, b"\x00\xff\xfe");
    }

    #[test]
    fn non_mime_message_gets_mime_headers() {
        let m = b"Subject: x\r\n\r\n\xeb\x8b\xa4 8bit\r\n";
        let out = String::from_utf8(to_seven_bit(m).unwrap()).unwrap();
        assert!(out.starts_with("Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=unknown-8bit\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=EB=8B=A4 8bit\r\n"), "{out}");
    }

    #[test]
    fn impossible_conversions_are_refused() {
        assert!(to_seven_bit("Subject: 안녕\r\n\r\nbody é\r\n".as_bytes()).is_none());
        assert!(to_seven_bit(b"Content-Transfer-Encoding: base64\r\n\r\n\xff\xff\r\n").is_none());
        // 8-bit outside any part: a preamble, or a multipart whose boundary never occurs
        assert!(to_seven_bit(
            b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--b\r\n\r\n\xc3\xa9\r\n--b--\r\n"
        )
        .is_none());
        assert!(headers_have_8bit("Subject: 안녕\r\n\r\nx".as_bytes()));
        assert!(!headers_have_8bit("Subject: x\r\n\r\n안녕".as_bytes()));
        // 7-bit mail is unchanged
        let m = b"Subject: x\r\n\r\nplain\r\n";
        assert_eq!(to_seven_bit(m).unwrap(), m);
    }

    #[test]
    fn long_lines_are_soft_broken() {
        let body = "é".repeat(100);
        let qp = quoted_printable(body.as_bytes());
        let s = String::from_utf8(qp.clone()).unwrap();
        assert!(s.lines().all(|l| l.len() <= 76), "{s}");
        assert_eq!(crate::transfer::quoted_printable(&qp), body.as_bytes());
    }
}
