//! mbox reading (mboxo/mboxrd, as written by Dovecot, Thunderbird, mutt, Postfix `local(8)`) and mboxrd writing.
//!
//! # Reading rules
//!
//! - A line is a message separator only if it starts with `From ` and is the
//!   first line of the file or follows an empty line, or if it is a whole
//!   separator line (`From sender date`, the date parsed): some writers leave
//!   out the empty line, and mutt splits there too. `Content-Length:`
//!   headers are never used for framing (mboxcl2 is rare and dangerous).
//! - The empty line before a separator (and a trailing empty line at end of
//!   file) belongs to the mbox framing and is removed from the message.
//! - mboxrd un-quoting: a line matching `^>+From ` loses one `>`.
//! - Line endings become CRLF; CRLF files are tolerated.
//! - Storage metadata headers in the top header block are parsed and removed,
//!   as Dovecot does on import: `Status:`, `X-Status:`, `X-Keywords:`,
//!   `X-UID:`, `X-IMAP:`, `X-IMAPbase:`, `Content-Length:` and Thunderbird's
//!   `X-Mozilla-Status:`, `X-Mozilla-Status2:`, `X-Mozilla-Keys:`.
//! - The UW-IMAP/Dovecot folder pseudo-message (first message carrying an
//!   `X-IMAP:` header) is skipped.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::date::{format_asctime, is_weekday, parse_separator_date};

/// Sender used when a separator line has none (or an unusable one).
pub const DEFAULT_SENDER: &str = "MAILER-DAEMON";

/// System flags in the order they are reported, with their mbox
/// `Status:`/`X-Status:` letter.
const SYSTEM_FLAGS: [(&str, u8); 5] = [
    ("\\Seen", b'R'),
    ("\\Answered", b'A'),
    ("\\Flagged", b'F'),
    ("\\Draft", b'T'),
    ("\\Deleted", b'D'),
];

/// One message read from an mbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MboxMessage {
    /// Envelope sender from the `From ` separator line (`MAILER-DAEMON` if
    /// absent or garbled).
    pub sender: String,
    /// Unix seconds parsed from the separator line's date, `None` if
    /// unparsable.
    pub date: Option<i64>,
    /// IMAP flags (`\Seen`, `\Answered`, `\Flagged`, `\Draft`, `\Deleted`, in
    /// that order) from `Status:`/`X-Status:`/`X-Mozilla-Status:`, followed by
    /// keywords from `X-Keywords:`/`X-Mozilla-Keys:`.
    pub flags: Vec<String>,
    /// Message bytes with CRLF line endings, un-quoted, metadata headers and
    /// the framing blank line removed.
    pub data: Vec<u8>,
}

/// Iterates the messages of an mbox.
///
/// A message larger than `max_message_size` (measured with CRLF endings)
/// yields `Err(Error::MessageTooLarge)`; iteration then continues with the
/// next message. An I/O error or a file that does not start with `From `
/// (`Error::NotMbox`; leading empty lines are tolerated) ends the iteration
/// after that error. An empty file yields no messages.
pub struct MboxReader<R: BufRead> {
    reader: R,
    max: usize,
    path: PathBuf,
    line: Vec<u8>,
    next_separator: Option<Vec<u8>>,
    started: bool,
    done: bool,
    index: usize,
}

impl MboxReader<BufReader<File>> {
    /// Opens the mbox file at `path`.
    pub fn open(path: &Path, max_message_size: usize) -> Result<Self, Error> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(MboxReader::new(BufReader::new(file), max_message_size).with_path(path))
    }
}

impl<R: BufRead> MboxReader<R> {
    /// Reads messages from `r`, rejecting those over `max_message_size` bytes.
    pub fn new(r: R, max_message_size: usize) -> Self {
        MboxReader {
            reader: r,
            max: max_message_size,
            path: PathBuf::from("(mbox stream)"),
            line: Vec::new(),
            next_separator: None,
            started: false,
            done: false,
            index: 0,
        }
    }

    /// Sets the path reported in errors.
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = path.into();
        self
    }

    /// Longest line prefix kept in memory; longer lines make the message too
    /// large anyway, and separator lines are never that long.
    fn line_cap(&self) -> usize {
        self.max.saturating_add(2).max(4096)
    }

    /// Reads the next line into `self.line` without its `\n` (and without a
    /// `\r` before it). Returns `None` at end of input.
    fn read_line(&mut self) -> io::Result<Option<LineInfo>> {
        let cap = self.line_cap();
        self.line.clear();
        let mut seen_any = false;
        let mut truncated = false;
        loop {
            let avail = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                if !seen_any {
                    return Ok(None);
                }
                return Ok(Some(LineInfo {
                    newline: false,
                    truncated,
                }));
            }
            seen_any = true;
            let (chunk, used, newline) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (&avail[..i], i + 1, true),
                None => (avail, avail.len(), false),
            };
            let room = cap.saturating_sub(self.line.len());
            if chunk.len() > room {
                truncated = true;
            }
            self.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.reader.consume(used);
            if newline {
                if !truncated && self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                return Ok(Some(LineInfo { newline, truncated }));
            }
        }
    }

    /// Reads up to the first separator line. `Ok(false)` for an empty input.
    fn start(&mut self) -> Result<bool, Error> {
        loop {
            match self.read_line() {
                Err(e) => return Err(Error::io(&self.path, e)),
                Ok(None) => return Ok(false),
                Ok(Some(_)) if self.line.is_empty() => continue,
                Ok(Some(_)) if self.line.starts_with(b"From ") => {
                    self.next_separator = Some(self.line.clone());
                    return Ok(true);
                }
                Ok(Some(_)) => {
                    return Err(Error::NotMbox {
                        path: self.path.clone(),
                    });
                }
            }
        }
    }

    /// Reads the message whose separator was already consumed.
    fn read_message(&mut self, separator: &[u8], first: bool) -> Result<Parsed, Error> {
        let mut builder = Builder::new(self.max);
        let mut prev_empty = false;
        loop {
            let info = match self.read_line() {
                Err(e) => return Err(Error::io(&self.path, e)),
                Ok(None) => break,
                Ok(Some(info)) => info,
            };
            if self.line.starts_with(b"From ")
                && (prev_empty || parse_separator(&self.line).1.is_some())
            {
                self.next_separator = Some(self.line.clone());
                break;
            }
            prev_empty = self.line.is_empty();
            builder.push_line(&self.line, info);
        }
        if prev_empty {
            builder.drop_trailing_blank();
        }
        let (sender, date) = parse_separator(separator);
        Ok(builder.finish(sender, date, first))
    }
}

impl<R: BufRead> Iterator for MboxReader<R> {
    type Item = Result<MboxMessage, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            match self.start() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        loop {
            let Some(separator) = self.next_separator.take() else {
                self.done = true;
                return None;
            };
            let index = self.index;
            self.index += 1;
            match self.read_message(&separator, index == 0) {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(Parsed::TooLarge) => {
                    return Some(Err(Error::MessageTooLarge {
                        path: self.path.clone(),
                        index,
                        max: self.max,
                    }));
                }
                Ok(Parsed::Pseudo) => continue,
                Ok(Parsed::Message(m)) => return Some(Ok(m)),
            }
        }
    }
}

#[derive(Clone, Copy)]
struct LineInfo {
    newline: bool,
    truncated: bool,
}

enum Parsed {
    Message(MboxMessage),
    TooLarge,
    /// The UW-IMAP/Dovecot "FOLDER INTERNAL DATA" message.
    Pseudo,
}

/// Metadata headers removed from the top header block.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Meta {
    /// `Status:` / `X-Status:` letters.
    StatusLetters,
    /// `X-Keywords:` / `X-Mozilla-Keys:` words.
    Keywords,
    /// `X-Mozilla-Status:` hex bits.
    MozillaStatus,
    /// `X-IMAP:` (marks the pseudo-message).
    Imap,
    /// Dropped without interpretation.
    Other,
}

fn meta_header(line: &[u8]) -> Option<(Meta, &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    let value = &line[colon + 1..];
    const TABLE: [(&str, Meta); 10] = [
        ("status", Meta::StatusLetters),
        ("x-status", Meta::StatusLetters),
        ("x-keywords", Meta::Keywords),
        ("x-mozilla-keys", Meta::Keywords),
        ("x-mozilla-status", Meta::MozillaStatus),
        ("x-mozilla-status2", Meta::Other),
        ("x-uid", Meta::Other),
        ("x-imap", Meta::Imap),
        ("x-imapbase", Meta::Other),
        ("content-length", Meta::Other),
    ];
    TABLE
        .iter()
        .find(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
        .map(|&(_, m)| (m, value))
}

struct Builder {
    data: Vec<u8>,
    max: usize,
    too_large: bool,
    in_headers: bool,
    current_meta: Option<Meta>,
    system: [bool; 5],
    keywords: Vec<String>,
    pseudo: bool,
}

impl Builder {
    fn new(max: usize) -> Self {
        Builder {
            data: Vec::new(),
            max,
            too_large: false,
            in_headers: true,
            current_meta: None,
            system: [false; 5],
            keywords: Vec::new(),
            pseudo: false,
        }
    }

    fn push_line(&mut self, line: &[u8], info: LineInfo) {
        if self.in_headers {
            if line.is_empty() {
                self.in_headers = false;
                self.current_meta = None;
            } else if line[0] == b' ' || line[0] == b'\t' {
                if let Some(meta) = self.current_meta {
                    self.apply_meta(meta, line);
                    return;
                }
            } else if let Some((meta, value)) = meta_header(line) {
                self.current_meta = Some(meta);
                self.apply_meta(meta, value);
                return;
            } else {
                self.current_meta = None;
            }
        }
        if self.too_large {
            return;
        }
        if info.truncated {
            self.mark_too_large();
            return;
        }
        let body = if is_quoted_from(line) {
            &line[1..]
        } else {
            line
        };
        self.data.extend_from_slice(body);
        if info.newline {
            self.data.extend_from_slice(b"\r\n");
        }
        // Allow 2 bytes of slack for a framing blank line removed later.
        if self.data.len() > self.max.saturating_add(2) {
            self.mark_too_large();
        }
    }

    fn mark_too_large(&mut self) {
        self.too_large = true;
        self.data = Vec::new();
    }

    fn apply_meta(&mut self, meta: Meta, value: &[u8]) {
        match meta {
            Meta::StatusLetters => {
                for &b in value {
                    if let Some(i) = SYSTEM_FLAGS.iter().position(|&(_, l)| l == b) {
                        self.system[i] = true;
                    }
                }
            }
            Meta::Keywords => {
                let text = String::from_utf8_lossy(value);
                for kw in text.split(|c: char| c.is_whitespace() || c == ',') {
                    if !kw.is_empty() && !self.keywords.iter().any(|k| k == kw) {
                        self.keywords.push(kw.to_string());
                    }
                }
            }
            Meta::MozillaStatus => {
                let text = String::from_utf8_lossy(value);
                if let Ok(bits) = u32::from_str_radix(text.trim(), 16) {
                    // MSG_FLAG_READ, _REPLIED, _MARKED, _EXPUNGED.
                    for (bit, idx) in [(0x1, 0), (0x2, 1), (0x4, 2), (0x8, 4)] {
                        if bits & bit != 0 {
                            self.system[idx] = true;
                        }
                    }
                }
            }
            Meta::Imap => self.pseudo = true,
            Meta::Other => {}
        }
    }

    fn drop_trailing_blank(&mut self) {
        if !self.too_large && self.data.ends_with(b"\r\n") {
            self.data.truncate(self.data.len() - 2);
        }
    }

    /// `first`: this is the first message of the file, the only place the
    /// folder pseudo-message can be.
    fn finish(self, sender: String, date: Option<i64>, first: bool) -> Parsed {
        if self.too_large || self.data.len() > self.max {
            return Parsed::TooLarge;
        }
        if self.pseudo && first {
            return Parsed::Pseudo;
        }
        let mut flags: Vec<String> = SYSTEM_FLAGS
            .iter()
            .zip(self.system)
            .filter(|(_, set)| *set)
            .map(|((name, _), _)| (*name).to_string())
            .collect();
        flags.extend(self.keywords);
        Parsed::Message(MboxMessage {
            sender,
            date,
            flags,
            data: self.data,
        })
    }
}

/// `^>+From `
fn is_quoted_from(line: &[u8]) -> bool {
    let gts = line.iter().take_while(|&&b| b == b'>').count();
    gts > 0 && line[gts..].starts_with(b"From ")
}

/// `^>*From `
fn needs_quoting(line: &[u8]) -> bool {
    let gts = line.iter().take_while(|&&b| b == b'>').count();
    line[gts..].starts_with(b"From ")
}

/// Splits a separator line into (sender, date).
fn parse_separator(line: &[u8]) -> (String, Option<i64>) {
    let rest = String::from_utf8_lossy(&line[b"From ".len()..]);
    let rest = rest.trim();
    // A quoted local part may contain spaces: `"john doe"@example.com`.
    let (sender, tail) = if let Some(quoted) = rest.strip_prefix('"') {
        match quoted.find('"') {
            Some(q) => {
                let after = &rest[q + 2..];
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (&rest[..q + 2 + end], &after[end..])
            }
            None => rest.split_once(char::is_whitespace).unwrap_or((rest, "")),
        }
    } else {
        rest.split_once(char::is_whitespace).unwrap_or((rest, ""))
    };
    let tail_tokens: Vec<&str> = tail.split_whitespace().collect();
    let date = parse_separator_date(&tail_tokens);
    if is_weekday(sender) {
        // "From Sat Nov 21 ...": the sender is missing.
        let all: Vec<&str> = rest.split_whitespace().collect();
        if let Some(d) = parse_separator_date(&all) {
            return (DEFAULT_SENDER.to_string(), Some(d));
        }
    }
    let usable = !sender.is_empty() && sender.chars().all(|c| !c.is_control() && c != '\u{FFFD}');
    let sender = if usable {
        sender.to_string()
    } else {
        DEFAULT_SENDER.to_string()
    };
    (sender, date)
}

/// Writes one message in mboxrd format.
///
/// Output: `From <sender> <asctime date in UTC>\n`, then the message with
/// CRLF turned into LF, every line matching `^>*From ` given one more `>`,
/// and `Status:`/`X-Status:` (and `X-Keywords:` for keywords, i.e. flags not
/// starting with `\`) inserted at the end of the header block; existing
/// headers of those names are dropped. `\Seen` gives `Status: RO`;
/// `\Answered`/`\Flagged`/`\Draft`/`\Deleted` give `X-Status:` letters in
/// `AFTD` order. A final newline is added if the message lacks one, then the
/// separating blank line. An empty or whitespace-containing `sender` is
/// replaced with `MAILER-DAEMON` (whitespace would break the separator line).
pub fn write_mbox_message<W: Write>(
    w: &mut W,
    sender: &str,
    date: i64,
    flags: &[&str],
    data: &[u8],
) -> io::Result<()> {
    let sender = if sender.is_empty() || sender.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        DEFAULT_SENDER
    } else {
        sender
    };
    let has = |f: &str| flags.iter().any(|x| x.eq_ignore_ascii_case(f));
    let mut meta = Vec::new();
    if has("\\Seen") {
        meta.extend_from_slice(b"Status: RO\n");
    }
    let x_status: Vec<u8> = [
        ("\\Answered", b'A'),
        ("\\Flagged", b'F'),
        ("\\Draft", b'T'),
        ("\\Deleted", b'D'),
    ]
    .iter()
    .filter(|(f, _)| has(f))
    .map(|&(_, l)| l)
    .collect();
    if !x_status.is_empty() {
        meta.extend_from_slice(b"X-Status: ");
        meta.extend_from_slice(&x_status);
        meta.push(b'\n');
    }
    let keywords: Vec<&str> = flags
        .iter()
        .copied()
        .filter(|f| !f.starts_with('\\') && !f.is_empty())
        .collect();
    if !keywords.is_empty() {
        meta.extend_from_slice(b"X-Keywords: ");
        meta.extend_from_slice(keywords.join(" ").as_bytes());
        meta.push(b'\n');
    }

    let mut out = Vec::with_capacity(data.len() + meta.len() + 64);
    out.extend_from_slice(format!("From {sender} {}\n", format_asctime(date)).as_bytes());

    let mut in_headers = true;
    let mut dropping = false;
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    if !data.is_empty() {
        for line in body.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if in_headers {
                if line.is_empty() {
                    in_headers = false;
                    out.extend_from_slice(&meta);
                } else if line[0] == b' ' || line[0] == b'\t' {
                    if dropping {
                        continue;
                    }
                } else {
                    dropping = matches!(
                        meta_header(line),
                        Some((Meta::StatusLetters | Meta::Keywords, _))
                    );
                    if dropping {
                        continue;
                    }
                }
            }
            if needs_quoting(line) {
                out.push(b'>');
            }
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
    if in_headers {
        out.extend_from_slice(&meta);
    }
    out.push(b'\n');
    w.write_all(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn read_all(input: &[u8], max: usize) -> Vec<Result<MboxMessage, Error>> {
        MboxReader::new(Cursor::new(input.to_vec()), max).collect()
    }

    fn ok(input: &[u8]) -> Vec<MboxMessage> {
        read_all(input, 1 << 20)
            .into_iter()
            .map(|r| r.expect("message"))
            .collect()
    }

    const T: i64 = 1_795_262_400; // Sat Nov 21 12:00:00 2026 UTC

    #[test]
    fn reads_several_messages() {
        let mbox = b"From alice@example.com Sat Nov 21 12:00:00 2026\n\
Subject: one\n\
\n\
Body one\n\
\n\
From bob@example.org  Sat Nov 21 12:00:01 2026\n\
Subject: two\n\
\n\
Body two\n\
line 2\n\
\n\
From MAILER-DAEMON Sat Nov 21 12:00:02 2026 +0000\n\
Subject: three\n\
\n\
\n";
        let msgs = ok(mbox);
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0].sender, "alice@example.com");
        assert_eq!(msgs[0].date, Some(T));
        assert_eq!(msgs[0].data, b"Subject: one\r\n\r\nBody one\r\n".to_vec());
        assert!(msgs[0].flags.is_empty());
        assert_eq!(msgs[1].sender, "bob@example.org");
        assert_eq!(msgs[1].date, Some(T + 1));
        assert_eq!(
            msgs[1].data,
            b"Subject: two\r\n\r\nBody two\r\nline 2\r\n".to_vec()
        );
        assert_eq!(msgs[2].sender, "MAILER-DAEMON");
        assert_eq!(msgs[2].date, Some(T + 2));
        assert_eq!(msgs[2].data, b"Subject: three\r\n\r\n".to_vec());
    }

    #[test]
    fn garbled_separator() {
        let msgs = ok(b"From \nA: b\n\nx\n\nFrom Sat Nov 21 12:00:00 2026\nA: c\n\ny\n");
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].sender, "MAILER-DAEMON");
        assert_eq!(msgs[0].date, None);
        assert_eq!(msgs[1].sender, "MAILER-DAEMON");
        assert_eq!(msgs[1].date, Some(T));
        let msgs = ok(b"From \"john doe\"@example.com Sat Nov 21 12:00:00 2026\n\nx\n");
        assert_eq!(msgs[0].sender, "\"john doe\"@example.com");
        assert_eq!(msgs[0].date, Some(T));
    }

    #[test]
    fn whole_separator_without_blank_before_starts_a_message() {
        let mbox = b"From a@b Sat Nov 21 12:00:00 2026\nSubject: one\n\nHello\n\
From c@d Sat Nov 21 13:00:00 2026\nSubject: two\n\nBye\n";
        let msgs = ok(mbox);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].data, b"Subject: one\r\n\r\nHello\r\n".to_vec());
        assert_eq!(
            (msgs[1].sender.as_str(), msgs[1].date.is_some()),
            ("c@d", true)
        );
    }

    #[test]
    fn from_line_without_blank_before_is_body() {
        let mbox = b"From a@b Sat Nov 21 12:00:00 2026\nSubject: x\n\nHello\nFrom me to you\n>From quoted\n\n";
        let msgs = ok(mbox);
        assert_eq!(msgs.len(), 1);
        assert_eq!(
            msgs[0].data,
            b"Subject: x\r\n\r\nHello\r\nFrom me to you\r\nFrom quoted\r\n".to_vec()
        );
    }

    #[test]
    fn status_headers_parsed_and_removed() {
        let mbox = b"From a@b Sat Nov 21 12:00:00 2026\n\
Subject: x\n\
Status: RO\n\
X-Status: AF\n\
X-Keywords: $Junk Work\n\
X-UID: 17\n\
Content-Length: 5\n\
\n\
Status: R in body stays\n\
\n\
From a@b Sat Nov 21 12:00:00 2026\n\
X-Mozilla-Status: 0009\n\
X-Mozilla-Status2: 00000000\n\
Subject: y\n\
\n\
b\n";
        let msgs = ok(mbox);
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            msgs[0].flags,
            vec!["\\Seen", "\\Answered", "\\Flagged", "$Junk", "Work"]
        );
        assert_eq!(
            msgs[0].data,
            b"Subject: x\r\n\r\nStatus: R in body stays\r\n".to_vec()
        );
        assert_eq!(msgs[1].flags, vec!["\\Seen", "\\Deleted"]);
        assert_eq!(msgs[1].data, b"Subject: y\r\n\r\nb\r\n".to_vec());
    }

    #[test]
    fn all_status_letters() {
        let msgs = ok(b"From a Sat Nov 21 12:00:00 2026\nStatus: O\nX-Status: DTFA\n\n");
        assert_eq!(
            msgs[0].flags,
            vec!["\\Answered", "\\Flagged", "\\Draft", "\\Deleted"]
        );
        assert_eq!(msgs[0].data, b"".to_vec());
    }

    #[test]
    fn pseudo_message_skipped() {
        let mbox = b"From MAILER_DAEMON Sat Nov 21 12:00:00 2026\n\
Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n\
X-IMAP: 1234 0000000002\n\
\n\
This text is part of the internal format of your mail folder.\n\
\n\
From a@b Sat Nov 21 12:00:00 2026\n\
Subject: real\n\
\n\
hi\n";
        let msgs = ok(mbox);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].data, b"Subject: real\r\n\r\nhi\r\n".to_vec());
        // Only the first message can be the pseudo-message.
        let mut later = mbox.to_vec();
        later.extend_from_slice(b"\nFrom a@b Sat Nov 21 12:00:00 2026\nX-IMAP: 1 2\n\nz\n");
        let msgs = ok(&later);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1].data, b"\r\nz\r\n".to_vec());
    }

    #[test]
    fn empty_file_and_blank_file() {
        assert!(read_all(b"", 100).is_empty());
        assert!(read_all(b"\n\n", 100).is_empty());
    }

    #[test]
    fn not_mbox() {
        let r = read_all(b"Subject: hello\n\nbody\n", 100);
        assert_eq!(r.len(), 1);
        let err = MboxReader::new(Cursor::new(b"Subject: x\n".to_vec()), 10)
            .with_path("/tmp/x.mbox")
            .next()
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, Error::NotMbox { .. }));
        assert_eq!(
            err.to_string(),
            "not an mbox: /tmp/x.mbox does not start with a \"From \" line"
        );
    }

    #[test]
    fn too_large_is_skipped() {
        let big = "x".repeat(200);
        let mbox = format!(
            "From a Sat Nov 21 12:00:00 2026\nS: 1\n\nsmall\n\n\
From b Sat Nov 21 12:00:00 2026\nS: 2\n\n{big}\n{big}\n\n\
From c Sat Nov 21 12:00:00 2026\nS: 3\n\nsmall\n\n\
From d Sat Nov 21 12:00:00 2026\nS: 4\n\n{}\n",
            "y".repeat(10_000)
        );
        let r = read_all(mbox.as_bytes(), 100);
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[0].as_ref().unwrap().data,
            b"S: 1\r\n\r\nsmall\r\n".to_vec()
        );
        match &r[1] {
            Err(Error::MessageTooLarge { index, max, .. }) => {
                assert_eq!((*index, *max), (1, 100))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(r[2].as_ref().unwrap().sender, "c");
        assert_eq!(
            r[2].as_ref().unwrap().data,
            b"S: 3\r\n\r\nsmall\r\n".to_vec()
        );
        assert!(matches!(
            &r[3],
            Err(Error::MessageTooLarge { index: 3, .. })
        ));
    }

    #[test]
    fn size_limit_is_exact() {
        // Data is "S: 1\r\n\r\nab\r\n" = 12 bytes.
        let mbox = b"From a Sat Nov 21 12:00:00 2026\nS: 1\n\nab\n\n";
        assert!(read_all(mbox, 12)[0].is_ok());
        assert!(read_all(mbox, 11)[0].is_err());
    }

    #[test]
    fn crlf_mbox_tolerated() {
        let mbox = b"From a@b Sat Nov 21 12:00:00 2026\r\nSubject: x\r\nStatus: RO\r\n\r\nline\rwith cr\r\n\r\nFrom c@d Sat Nov 21 12:00:00 2026\r\n\r\nz\r\n";
        let msgs = ok(mbox);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].flags, vec!["\\Seen"]);
        assert_eq!(
            msgs[0].data,
            b"Subject: x\r\n\r\nline\rwith cr\r\n".to_vec()
        );
        assert_eq!(msgs[1].sender, "c@d");
        assert_eq!(msgs[1].data, b"\r\nz\r\n".to_vec());
    }

    #[test]
    fn write_format() {
        let mut out = Vec::new();
        write_mbox_message(
            &mut out,
            "a@b",
            T,
            &["\\Seen", "\\Flagged", "\\Answered", "$Junk"],
            b"Subject: x\r\nStatus: O\r\n\r\nFrom here\r\n>From there\r\nend",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "From a@b Sat Nov 21 12:00:00 2026\n\
Subject: x\n\
Status: RO\n\
X-Status: AF\n\
X-Keywords: $Junk\n\
\n\
>From here\n\
>>From there\n\
end\n\
\n"
        );
        let mut out = Vec::new();
        write_mbox_message(&mut out, "", 0, &["\\Draft"], b"Subject: only\r\n").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\nSubject: only\nX-Status: T\n\n"
        );
    }

    #[test]
    fn round_trip() {
        let messages: Vec<(&str, i64, Vec<&str>, &[u8])> = vec![
            (
                "alice@example.com",
                T,
                vec!["\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted"],
                b"Subject: a\r\nFrom: alice@example.com\r\n\r\nFrom the start\r\n>From one\r\n>>From two\r\n\r\nFrom after blank\r\n\r\n",
            ),
            ("bob@x", T + 60, vec![], b"Subject: b\r\n\r\n\r\n\r\nblank lines\r\n"),
            ("c@x", T - 86_400 * 400, vec!["\\Seen", "Work"], b"Subject: c\r\n\r\n>From \r\nFrom\r\n"),
            ("d@x", 0, vec![], b""),
        ];
        let mut file = Vec::new();
        for (s, d, f, data) in &messages {
            write_mbox_message(&mut file, s, *d, f, data).unwrap();
        }
        let back = ok(&file);
        assert_eq!(back.len(), messages.len());
        for (got, (s, d, f, data)) in back.iter().zip(&messages) {
            assert_eq!(got.sender, *s);
            assert_eq!(got.date, Some(*d));
            assert_eq!(got.flags, *f);
            assert_eq!(got.data, data.to_vec(), "{}", String::from_utf8_lossy(data));
        }
    }
}
