//! POP3 responses: status lines, multi-line responses, and messages in their multi-line form.
//!
//! RFC 1939 3: a multi-line response is lines ended by CRLF and a final line of a single ".";
//! a line starting with "." is sent with one more "." in front (byte-stuffing). The size of a
//! message (STAT, LIST, the "+OK n octets" of RETR) is its octets with every line ended by
//! CRLF, not counting the stuffing dots and the final "." line: [`message_size`]. Stored
//! messages may have bare LF line ends or lack a last line end; [`MessageWriter`] sends them
//! as CRLF lines, so what is sent always matches [`message_size`].

use std::fmt::Write as _;

/// RFC 2449 8 / RFC 3206 response codes, sent in brackets after "-ERR".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Code {
    /// `[IN-USE]`: the maildrop is locked by another session (RFC 2449 8.1.1).
    InUse,
    /// `[AUTH]`: the credentials are wrong or cannot be used here (RFC 3206 5).
    Auth,
    /// `[SYS/TEMP]`: a temporary system problem; try again later (RFC 3206 4).
    SysTemp,
    /// `[SYS/PERM]`: a permanent system problem (RFC 3206 4).
    SysPerm,
}

impl Code {
    /// The code as written inside the brackets.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InUse => "IN-USE",
            Code::Auth => "AUTH",
            Code::SysTemp => "SYS/TEMP",
            Code::SysPerm => "SYS/PERM",
        }
    }
}

/// Writes `+OK text` (CR and LF in `text` are dropped, so a line is always one line).
pub fn ok(out: &mut Vec<u8>, text: &str) {
    status(out, "+OK", None, text);
}

/// Writes `-ERR [code] text`.
pub fn err(out: &mut Vec<u8>, code: Option<Code>, text: &str) {
    status(out, "-ERR", code, text);
}

fn status(out: &mut Vec<u8>, indicator: &str, code: Option<Code>, text: &str) {
    out.extend_from_slice(indicator.as_bytes());
    if let Some(c) = code {
        out.extend_from_slice(b" [");
        out.extend_from_slice(c.as_str().as_bytes());
        out.push(b']');
    }
    if !text.is_empty() {
        out.push(b' ');
        out.extend(text.bytes().filter(|b| *b != b'\r' && *b != b'\n'));
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes one line of a multi-line response, dot-stuffed.
pub fn line(out: &mut Vec<u8>, text: &str) {
    if text.starts_with('.') {
        out.push(b'.');
    }
    out.extend(text.bytes().filter(|b| *b != b'\r' && *b != b'\n'));
    out.extend_from_slice(b"\r\n");
}

/// Writes a scan-listing or unique-id line `n value` of a multi-line LIST/UIDL response.
pub fn listing_line(out: &mut Vec<u8>, n: usize, value: impl std::fmt::Display) {
    let mut s = String::with_capacity(24);
    let _ = write!(s, "{n} {value}\r\n");
    out.extend_from_slice(s.as_bytes());
}

/// Writes the terminating `.` line of a multi-line response.
pub fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(b".\r\n");
}

/// The unique-id of a message (RFC 1939 7 UIDL): the UID and the mailbox's UIDVALIDITY as
/// eight upper-case hex digits each, as Dovecot's `%08Xu%08Xv`. Stable as long as the mailbox
/// keeps its UIDVALIDITY, and what IMAP identifies the message by.
pub fn unique_id(uid: u32, uid_validity: u32) -> String {
    format!("{uid:08X}{uid_validity:08X}")
}

/// Octets of `msg` with every line ended by CRLF: a bare LF counts as CRLF, a last line
/// without a line end gets one. This is the size RETR announces and LIST reports.
pub fn message_size(msg: &[u8]) -> u64 {
    let mut size = msg.len() as u64;
    for i in memchr::memchr_iter(b'\n', msg) {
        if i == 0 || msg[i - 1] != b'\r' {
            size += 1;
        }
    }
    if msg.last().is_some_and(|b| *b != b'\n') {
        size += 2;
    }
    size
}

/// Writes a message as the body of a RETR or TOP response, a budget of output at a time, so a
/// large message need not be copied whole into the output buffer.
#[derive(Debug)]
pub struct MessageWriter<'a> {
    msg: &'a [u8],
    pos: usize,
    /// TOP: body lines still to send once the header has ended; `None`: the whole message.
    body_lines: Option<u32>,
    in_body: bool,
    done: bool,
}

impl<'a> MessageWriter<'a> {
    /// The whole message (RETR).
    pub fn retr(msg: &'a [u8]) -> Self {
        MessageWriter {
            msg,
            pos: 0,
            body_lines: None,
            in_body: false,
            done: false,
        }
    }

    /// The header, the empty line after it and the first `lines` lines of the body (TOP).
    pub fn top(msg: &'a [u8], lines: u32) -> Self {
        MessageWriter {
            body_lines: Some(lines),
            ..MessageWriter::retr(msg)
        }
    }

    /// Appends CRLF lines, dot-stuffed, to `out` until about `budget` octets were written or
    /// the message is done; then the terminating ".". Returns true once it has been written.
    pub fn write(&mut self, out: &mut Vec<u8>, budget: usize) -> bool {
        if self.done {
            return true;
        }
        let limit = out.len().saturating_add(budget);
        while out.len() < limit && self.pos < self.msg.len() {
            if self.in_body && self.body_lines == Some(0) {
                break;
            }
            let rest = &self.msg[self.pos..];
            let (mut line, next) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], self.pos + i + 1),
                None => (rest, self.msg.len()),
            };
            if line.last() == Some(&b'\r') && next <= self.msg.len() && rest.len() > line.len() {
                line = &line[..line.len() - 1];
            }
            self.pos = next;
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
            if self.in_body {
                if let Some(n) = self.body_lines.as_mut() {
                    *n -= 1;
                }
            } else if line.is_empty() {
                self.in_body = true;
            }
        }
        if self.pos >= self.msg.len() || (self.in_body && self.body_lines == Some(0)) {
            end(out);
            self.done = true;
        }
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(mut w: MessageWriter<'_>, budget: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rounds = 0;
        while !w.write(&mut out, budget) {
            rounds += 1;
            assert!(rounds < 10_000);
        }
        out
    }

    /// The size the message's multi-line form stands for: without stuffing and the final ".".
    fn unstuffed_len(wire: &[u8]) -> u64 {
        let body = wire.strip_suffix(b".\r\n").unwrap();
        let mut n = 0;
        for l in body.split_inclusive(|b| *b == b'\n') {
            n += l.len() - usize::from(l.first() == Some(&b'.'));
        }
        n as u64
    }

    #[test]
    fn retr_is_crlf_stuffed_and_matches_the_size() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"A: 1\r\n\r\nbody\r\n", b"A: 1\r\n\r\nbody\r\n.\r\n"),
            (b"A: 1\n\nbody\n", b"A: 1\r\n\r\nbody\r\n.\r\n"),
            (b"A: 1\r\n\r\nno end", b"A: 1\r\n\r\nno end\r\n.\r\n"),
            (
                b"S: x\r\n\r\n.\r\n..two\r\n.\n. \r\nend.\r\n",
                b"S: x\r\n\r\n..\r\n...two\r\n..\r\n.. \r\nend.\r\n.\r\n",
            ),
            (b"a\rb\r\n\r\r\n", b"a\rb\r\n\r\r\n.\r\n"),
            (b"x\r", b"x\r\r\n.\r\n"),
            (b".", b"..\r\n.\r\n"),
            (b"\n\n", b"\r\n\r\n.\r\n"),
        ];
        for (msg, want) in cases {
            for budget in [1, 2, 3, 7, 64, 1 << 20] {
                let got = all(MessageWriter::retr(msg), budget);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(want),
                    "budget {budget}"
                );
            }
            assert_eq!(message_size(msg), unstuffed_len(want), "{msg:?}");
        }
    }

    #[test]
    fn top_sends_header_blank_line_and_n_body_lines() {
        let msg = b"Subject: s\r\nFrom: f\r\n\r\n1\r\n.2\r\n3\r\n";
        let top = |n| String::from_utf8(all(MessageWriter::top(msg, n), 5)).unwrap();
        assert_eq!(top(0), "Subject: s\r\nFrom: f\r\n\r\n.\r\n");
        assert_eq!(top(2), "Subject: s\r\nFrom: f\r\n\r\n1\r\n..2\r\n.\r\n");
        assert_eq!(
            top(9),
            "Subject: s\r\nFrom: f\r\n\r\n1\r\n..2\r\n3\r\n.\r\n"
        );
        // No body at all: the header is everything; bare LF becomes CRLF here too.
        let head = b"Subject: only\nX: y";
        assert_eq!(
            String::from_utf8(all(MessageWriter::top(head, 3), 100)).unwrap(),
            "Subject: only\r\nX: y\r\n.\r\n"
        );
    }

    #[test]
    fn status_lines_and_listings() {
        let mut out = Vec::new();
        ok(&mut out, "2 320");
        err(&mut out, Some(Code::InUse), "locked\r\nby another");
        err(&mut out, None, "");
        line(&mut out, ".hidden");
        listing_line(&mut out, 3, 120);
        end(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "+OK 2 320\r\n-ERR [IN-USE] lockedby another\r\n-ERR\r\n..hidden\r\n3 120\r\n.\r\n"
        );
        assert_eq!(unique_id(5, 0x5f00_0001), "000000055F000001");
    }
}
