//! The MIME part tree: byte ranges of every part's header and body, content types, multipart
//! splitting and encapsulated messages. Everything else (BODYSTRUCTURE, sections, BINARY,
//! search text) walks this tree.

use std::ops::Range;

use crate::header::{self, line_at};
use crate::params;
use crate::transfer::TransferEncoding;

/// Deepest nesting of multiparts and encapsulated messages that is parsed; deeper containers
/// are treated as opaque `application/octet-stream` leaves.
pub const MAX_DEPTH: usize = 64;

/// One node of the part tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The part's header, including the blank line that ends it (if any).
    pub header: Range<usize>,
    /// The part's body, as stored (still transfer-encoded).
    pub body: Range<usize>,
    /// Lower-case media type (`text`), after defaults and demotion.
    pub media_type: String,
    /// Lower-case media subtype (`plain`).
    pub subtype: String,
    /// Content-Type parameters (lower-case names).
    pub params: Vec<(String, String)>,
    /// What the body contains.
    pub kind: Kind,
}

/// The structure below a [`Part`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A leaf: the body is content.
    Leaf,
    /// A multipart: the body holds these parts (at least one).
    Multipart(Vec<Part>),
    /// A `message/rfc822` or `message/global` part: the body is this message (its `header`
    /// is the encapsulated message's header).
    Message(Box<Part>),
}

impl Part {
    /// The value of Content-Type parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The raw `Content-Transfer-Encoding` value (trimmed), if present.
    pub fn encoding_name(&self, raw: &[u8]) -> Option<String> {
        let h = raw.get(self.header.clone())?;
        let f = header::first(h, "content-transfer-encoding")?;
        let v = String::from_utf8_lossy(&f.unfolded()).into_owned();
        // Strip comments such as "base64 (encoded)".
        let v = v.split('(').next().unwrap_or("").trim().to_owned();
        Some(v)
    }
}

/// Parses a whole message into its part tree.
pub fn parse(raw: &[u8]) -> Part {
    parse_part(raw, 0..raw.len(), false, 0)
}

fn default_type(in_digest: bool) -> (String, String, Vec<(String, String)>) {
    if in_digest {
        ("message".into(), "rfc822".into(), Vec::new())
    } else {
        (
            "text".into(),
            "plain".into(),
            vec![("charset".into(), "us-ascii".into())],
        )
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// Parses `raw[range]` as a part (header, blank line, body).
pub(crate) fn parse_part(raw: &[u8], range: Range<usize>, in_digest: bool, depth: usize) -> Part {
    let (h, b) = header::split_range(raw, range);
    let hdr = &raw[h.clone()];
    let (mut media_type, mut subtype, mut params) = match header::first(hdr, "content-type") {
        Some(f) => {
            let pv = params::parse(&f.unfolded());
            match pv.value.split_once('/') {
                Some((t, s)) if is_token(t) && is_token(s) => {
                    (t.to_owned(), s.to_owned(), pv.params)
                }
                _ => default_type(false),
            }
        }
        None => default_type(in_digest),
    };
    let mut part = Part {
        header: h,
        body: b.clone(),
        media_type: String::new(),
        subtype: String::new(),
        params: Vec::new(),
        kind: Kind::Leaf,
    };
    let identity = part
        .encoding_name(raw)
        .is_none_or(|e| TransferEncoding::from_name(&e) == Some(TransferEncoding::Identity));
    let container = media_type == "multipart"
        || (media_type == "message" && (subtype == "rfc822" || subtype == "global"));
    if container {
        let boundary = params
            .iter()
            .find(|(k, _)| k == "boundary")
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty());
        // A transfer-encoded message cannot be parsed in place. Multiparts must not be
        // encoded (RFC 2045 6.4); a label saying otherwise is ignored, as other servers do.
        if depth >= MAX_DEPTH || (!identity && media_type != "multipart") {
            media_type = "application".into();
            subtype = "octet-stream".into();
        } else if media_type == "multipart" {
            match boundary {
                Some(bd) => {
                    let digest = subtype == "digest";
                    let mut children: Vec<Part> = split_multipart(raw, b.clone(), bd.as_bytes())
                        .into_iter()
                        .map(|r| parse_part(raw, r, digest, depth + 1))
                        .collect();
                    if children.is_empty() {
                        children.push(parse_part(raw, b.end..b.end, false, depth + 1));
                    }
                    part.kind = Kind::Multipart(children);
                }
                None => {
                    // A multipart without a boundary cannot be split: plain text.
                    (media_type, subtype, params) = default_type(false);
                }
            }
        } else {
            part.kind = Kind::Message(Box::new(parse_part(raw, b, false, depth + 1)));
        }
    }
    part.media_type = media_type;
    part.subtype = subtype;
    part.params = params;
    part
}

/// Finds the body ranges of the parts of a multipart body delimited by `boundary`. The line
/// break before a delimiter line belongs to the delimiter. Preamble and epilogue are dropped;
/// a missing close delimiter ends the last part at the end of the body.
pub(crate) fn split_multipart(
    raw: &[u8],
    body: Range<usize>,
    boundary: &[u8],
) -> Vec<Range<usize>> {
    let end = body.end.min(raw.len());
    let mut pos = body.start.min(end);
    let mut parts = Vec::new();
    let mut current: Option<usize> = None;
    while pos < end {
        let (nl, next) = line_at(raw, pos, end);
        let line = &raw[pos..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line
            .strip_prefix(b"--")
            .and_then(|l| l.strip_prefix(boundary))
        {
            let (close, rest) = match rest.strip_prefix(b"--") {
                Some(r) => (true, r),
                None => (false, rest),
            };
            if rest.iter().all(|&b| b == b' ' || b == b'\t') {
                if let Some(cs) = current {
                    let mut e = pos;
                    if e > cs && raw[e - 1] == b'\n' {
                        e -= 1;
                        if e > cs && raw[e - 1] == b'\r' {
                            e -= 1;
                        }
                    }
                    parts.push(cs..e);
                }
                if close {
                    return parts;
                }
                current = Some(next);
            }
        }
        pos = next;
    }
    if let Some(cs) = current {
        parts.push(cs..end.max(cs));
    }
    parts
}

/// Where a section part number path leads.
pub(crate) struct Target<'p> {
    /// The part addressed.
    pub part: &'p Part,
    /// Whether the path was empty (the whole message).
    pub top: bool,
}

/// Resolves an IMAP part number path (RFC 9051 6.4.5). For a non-multipart message, part 1 is
/// its body; for a `message/rfc822` part, its sub-parts are those of the encapsulated message
/// (or, if that is not multipart, part 1 is its body).
pub(crate) fn resolve<'p>(root: &'p Part, path: &[u32]) -> Option<Target<'p>> {
    let mut cur = root;
    // `cur` is a message (root or encapsulated) rather than a body part.
    let mut is_msg = true;
    for &n in path {
        if n == 0 {
            return None;
        }
        if !is_msg {
            match &cur.kind {
                Kind::Multipart(ch) => {
                    cur = ch.get(n as usize - 1)?;
                    continue;
                }
                Kind::Message(inner) => {
                    cur = inner;
                }
                Kind::Leaf => return None,
            }
        }
        // `cur` is a message.
        match &cur.kind {
            Kind::Multipart(ch) => cur = ch.get(n as usize - 1)?,
            _ if n == 1 => {}
            _ => return None,
        }
        is_msg = false;
    }
    Some(Target {
        part: cur,
        top: path.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split() {
        let raw = b"pre\r\n--b\r\nA\r\n--b \r\n\r\nB\r\n--bb\r\n--b--\r\nepi";
        let r = split_multipart(raw, 0..raw.len(), b"b");
        let got: Vec<&[u8]> = r.into_iter().map(|r| &raw[r]).collect();
        assert_eq!(got, vec![&b"A"[..], &b"\r\nB\r\n--bb"[..]]);
    }

    #[test]
    fn tree() {
        let raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\none\r\n--x\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\ninner\r\n--x--\r\n";
        let p = parse(raw);
        let Kind::Multipart(ch) = &p.kind else {
            panic!()
        };
        assert_eq!(ch.len(), 2);
        assert_eq!(&raw[ch[0].body.clone()], b"one");
        let Kind::Message(m) = &ch[1].kind else {
            panic!()
        };
        assert_eq!(&raw[m.body.clone()], b"inner");
        assert!(resolve(&p, &[2, 1]).is_some());
        assert!(resolve(&p, &[2, 2]).is_none());
        assert!(resolve(&p, &[1, 1]).is_none());
        assert!(resolve(&p, &[3]).is_none());
    }
}
