//! Client side: an incremental parser for server replies ([`ReplyParser`] producing
//! [`ParsedReply`]) and the extensions a server announces in its EHLO reply
//! ([`Capabilities`]).

use crate::command::ParseError;
use proto_line::LineBuffer;

/// Upper bound on the number of lines in one reply, so a hostile server cannot grow memory forever.
const MAX_REPLY_LINES: usize = 1000;

/// A reply as received by a client. Unlike [`crate::Reply`], the enhanced code is owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedReply {
    /// The reply code, e.g. 250.
    pub code: u16,
    /// The RFC 2034 enhanced status code (e.g. `"2.1.0"`) when the first line carried one.
    pub enhanced: Option<String>,
    /// Text lines with code, separator and enhanced code removed. Invalid UTF-8 is replaced (lossy).
    pub lines: Vec<String>,
}

impl ParsedReply {
    /// 2xx or 3xx.
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 4xx.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
}

/// Incremental reply parser: push received bytes, then take complete replies.
#[derive(Debug)]
pub struct ReplyParser {
    lines: LineBuffer,
    code: Option<u16>,
    pending: Vec<String>,
}

impl ReplyParser {
    /// A parser accepting reply lines of at most `max_line` bytes (RFC 5321 4.5.3.1.5: 512
    /// including CRLF).
    pub fn new(max_line: usize) -> Self {
        ReplyParser {
            lines: LineBuffer::new(max_line),
            code: None,
            pending: Vec::new(),
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.lines.push(bytes);
    }

    /// The next complete reply, `None` if more bytes are needed. After an error the partial reply is
    /// dropped; a client should usually close the connection.
    pub fn next_reply(&mut self) -> Option<Result<ParsedReply, ParseError>> {
        loop {
            let line = match self.lines.next_line()? {
                Ok(line) => line,
                // LineError::TooLong, the only error.
                Err(_) => return Some(self.fail("line too long")),
            };
            let (code, last, text) = match parse_line(line) {
                Ok(parts) => parts,
                Err(e) => return Some(self.fail(e)),
            };
            // RFC 5321 4.2.1: every line of a multi-line reply carries the same code.
            if self.code.is_some_and(|c| c != code) {
                return Some(self.fail("inconsistent codes in multi-line reply"));
            }
            self.code = Some(code);
            self.pending.push(text);
            if last {
                self.code = None;
                return Some(Ok(build(code, std::mem::take(&mut self.pending))));
            }
            if self.pending.len() >= MAX_REPLY_LINES {
                return Some(self.fail("too many lines in reply"));
            }
        }
    }

    fn fail(&mut self, msg: &'static str) -> Result<ParsedReply, ParseError> {
        self.code = None;
        self.pending.clear();
        Err(ParseError::BadReply(msg))
    }
}

/// What a server announced in its EHLO reply (RFC 5321 4.1.1.1: one keyword per line after
/// the first, parameters separated by spaces; keywords are case-insensitive).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The first word of the first line: the name the server gives itself.
    pub domain: String,
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// SIZE (RFC 1870): `Some(0)` means announced without a fixed limit.
    pub size: Option<u64>,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034).
    pub enhanced_status_codes: bool,
    /// CHUNKING (RFC 3030).
    pub chunking: bool,
    /// SASL mechanisms of AUTH (RFC 4954), upper-cased.
    pub auth: Vec<String>,
}

impl Capabilities {
    /// Reads the EHLO reply (a positive one; for anything else the result is empty).
    pub fn from_ehlo(reply: &ParsedReply) -> Capabilities {
        let mut caps = Capabilities::default();
        if reply.code != 250 {
            return caps;
        }
        let mut lines = reply.lines.iter();
        if let Some(first) = lines.next() {
            caps.domain = first.split_whitespace().next().unwrap_or("").to_owned();
        }
        for line in lines {
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => caps.pipelining = true,
                "STARTTLS" => caps.starttls = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "ENHANCEDSTATUSCODES" => caps.enhanced_status_codes = true,
                "CHUNKING" => caps.chunking = true,
                // RFC 1870 4: "SIZE" [SP number]; an unparsable limit counts as none.
                "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "AUTH" => caps.auth.extend(words.map(|m| m.to_ascii_uppercase())),
                _ => {}
            }
        }
        caps
    }

    /// Whether a message of `size` octets is over the announced limit.
    pub fn too_large(&self, size: u64) -> bool {
        self.size.is_some_and(|limit| limit > 0 && size > limit)
    }
}

/// RFC 5321 4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF )
///   Reply-code [ SP textstring ] CRLF; Reply-code = %x32-35 %x30-35 %x30-39
fn parse_line(line: &[u8]) -> Result<(u16, bool, String), &'static str> {
    let ok = line.len() >= 3
        && (b'2'..=b'5').contains(&line[0])
        && (b'0'..=b'5').contains(&line[1])
        && line[2].is_ascii_digit();
    if !ok {
        return Err("invalid reply code");
    }
    let code = line[..3]
        .iter()
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    let last = match line.get(3) {
        None | Some(b' ') => true,
        Some(b'-') => false,
        Some(_) => return Err("invalid separator after reply code"),
    };
    let text = line.get(4..).unwrap_or_default();
    Ok((code, last, String::from_utf8_lossy(text).into_owned()))
}

/// Splits a leading RFC 3463 enhanced code off `text` if its class matches the reply code.
/// RFC 3463 2: status-code = class "." subject "." detail; class = "2"/"4"/"5";
///   subject = 1*3digit; detail = 1*3digit
fn split_enhanced(code: u16, text: &str) -> Option<(&str, &str)> {
    let end = text.find(' ').unwrap_or(text.len());
    let candidate = &text[..end];
    let mut parts = candidate.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    let digits = |s: &str| (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    let class_ok =
        matches!(class, "2" | "4" | "5") && class.as_bytes()[0] - b'0' == (code / 100) as u8;
    if parts.next().is_none() && class_ok && digits(subject) && digits(detail) {
        Some((candidate, text[end..].strip_prefix(' ').unwrap_or("")))
    } else {
        None
    }
}

fn build(code: u16, lines: Vec<String>) -> ParsedReply {
    // RFC 2034 4: when the first line carries an enhanced code, strip it from every line.
    let Some((enhanced, _)) = split_enhanced(code, &lines[0]) else {
        return ParsedReply {
            code,
            enhanced: None,
            lines,
        };
    };
    let enhanced = enhanced.to_owned();
    let lines = lines
        .iter()
        .map(|l| match split_enhanced(code, l) {
            Some((_, rest)) => rest.to_owned(),
            None => l.clone(),
        })
        .collect();
    ParsedReply {
        code,
        enhanced: Some(enhanced),
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::Reply;

    type Item = Result<ParsedReply, ParseError>;

    fn pr(code: u16, enhanced: Option<&str>, lines: &[&str]) -> Item {
        Ok(ParsedReply {
            code,
            enhanced: enhanced.map(str::to_owned),
            lines: lines.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn run(input: &[u8], chunk: usize) -> Vec<Item> {
        let mut p = ReplyParser::new(64);
        let mut out = Vec::new();
        for c in input.chunks(chunk) {
            p.push(c);
            while let Some(r) = p.next_reply() {
                out.push(r);
            }
        }
        out
    }

    #[test]
    fn parse_at_all_chunk_sizes() {
        let bad = |m| Err(ParseError::BadReply(m));
        let long = format!("250 {}\r\n220 ok\r\n", "x".repeat(70));
        let cases: Vec<(&[u8], Vec<Item>)> = vec![
            (
                b"220 mx.example.com ESMTP\r\n",
                vec![pr(220, None, &["mx.example.com ESMTP"])],
            ),
            (
                b"250-mx.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
                vec![pr(250, None, &["mx.example.com", "PIPELINING", "8BITMIME"])],
            ),
            (
                b"250 2.1.0 Sender OK\r\n",
                vec![pr(250, Some("2.1.0"), &["Sender OK"])],
            ),
            (
                b"550-5.7.1 No\r\n550 5.7.1 Really not\r\n",
                vec![pr(550, Some("5.7.1"), &["No", "Really not"])],
            ),
            (b"250 2.0.0\r\n", vec![pr(250, Some("2.0.0"), &[""])]),
            (b"250\r\n", vec![pr(250, None, &[""])]),
            (b"250-\n250 x\n", vec![pr(250, None, &["", "x"])]),
            // class mismatch or malformed enhanced codes are left in the text
            (b"250 5.1.1 odd\r\n", vec![pr(250, None, &["5.1.1 odd"])]),
            (b"354 3.0.0 go\r\n", vec![pr(354, None, &["3.0.0 go"])]),
            (b"250 2.1 short\r\n", vec![pr(250, None, &["2.1 short"])]),
            (
                b"250 2.1.1000 long\r\n",
                vec![pr(250, None, &["2.1.1000 long"])],
            ),
            // pipelined replies
            (
                b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n",
                vec![
                    pr(250, Some("2.1.0"), &["ok"]),
                    pr(250, Some("2.1.5"), &["ok"]),
                    pr(354, None, &["go"]),
                ],
            ),
            // errors, then recovery
            (
                b"abc\r\n220 ok\r\n",
                vec![bad("invalid reply code"), pr(220, None, &["ok"])],
            ),
            (b"600 x\r\n", vec![bad("invalid reply code")]),
            (b"25\r\n", vec![bad("invalid reply code")]),
            (b"250x\r\n", vec![bad("invalid separator after reply code")]),
            (
                b"250-a\r\n251 b\r\n",
                vec![bad("inconsistent codes in multi-line reply")],
            ),
            (
                long.as_bytes(),
                vec![bad("line too long"), pr(220, None, &["ok"])],
            ),
        ];
        for (input, want) in cases {
            for chunk in (1..=16).chain([64, 512]) {
                assert_eq!(
                    run(input, chunk),
                    want,
                    "{:?} chunk {chunk}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn reply_round_trip() {
        let replies = [
            Reply::new(250, "2.1.5", "Recipient OK"),
            Reply::multiline(250, vec!["mx".into(), "SIZE 100".into(), "SMTPUTF8".into()]),
            Reply {
                code: 451,
                enhanced: Some("4.3.0"),
                lines: vec!["try".into(), "later".into()],
            },
            Reply::start_data(),
        ];
        for r in replies {
            let mut p = ReplyParser::new(512);
            p.push(&r.to_bytes());
            let got = p.next_reply().unwrap().unwrap();
            assert_eq!(got.code, r.code);
            assert_eq!(got.enhanced.as_deref(), r.enhanced);
            assert_eq!(got.lines, r.lines);
            assert_eq!(got.is_transient(), r.is_transient());
            assert!(p.next_reply().is_none());
        }
    }

    #[test]
    fn capabilities_from_ehlo() {
        let mut p = ReplyParser::new(512);
        p.push(
            b"250-mx.naver.test Hello\r\n250-pipelining\r\n250-SIZE 1000\r\n250-8BITMIME\r\n\
              250-SMTPUTF8\r\n250-AUTH plain LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n\
              250-X-UNKNOWN a b\r\n250 STARTTLS\r\n",
        );
        let caps = Capabilities::from_ehlo(&p.next_reply().unwrap().unwrap());
        assert_eq!(caps.domain, "mx.naver.test");
        assert!(caps.pipelining && caps.starttls && caps.eight_bit_mime && caps.smtputf8);
        assert!(caps.enhanced_status_codes && !caps.chunking);
        assert_eq!(caps.size, Some(1000));
        assert_eq!(caps.auth, ["PLAIN", "LOGIN"]);
        assert!(caps.too_large(1001) && !caps.too_large(1000));
        p.push(b"250-old.test\r\n250 SIZE\r\n");
        let caps = Capabilities::from_ehlo(&p.next_reply().unwrap().unwrap());
        assert_eq!(caps.size, Some(0));
        assert!(!caps.too_large(u64::MAX) && !caps.pipelining);
        p.push(b"502 5.5.1 no EHLO here\r\n");
        assert_eq!(
            Capabilities::from_ehlo(&p.next_reply().unwrap().unwrap()),
            Capabilities::default()
        );
    }

    #[test]
    fn bounded_line_count() {
        let mut p = ReplyParser::new(64);
        for _ in 0..MAX_REPLY_LINES - 1 {
            p.push(b"250-x\r\n");
            assert!(p.next_reply().is_none());
        }
        p.push(b"250-x\r\n");
        assert_eq!(
            p.next_reply(),
            Some(Err(ParseError::BadReply("too many lines in reply")))
        );
        assert!(p.pending.is_empty());
    }
}
