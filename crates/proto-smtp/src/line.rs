//! Bounded line framing for the command phase: [`LineBuffer`] splits received bytes into lines.

use std::fmt;

use crate::reply::Reply;

/// Why [`LineBuffer::next_line`] could not produce a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineError {
    /// The line exceeded the maximum length; its bytes are being discarded up to the next LF.
    TooLong,
}

impl LineError {
    /// The reply a server should send for this error.
    pub fn reply(&self) -> Reply {
        match self {
            LineError::TooLong => Reply::line_too_long(),
        }
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong => f.write_str("line too long"),
        }
    }
}

impl std::error::Error for LineError {}

/// Splits a byte stream into lines ended by CRLF or a bare LF, with a bound on the line length.
///
/// Call [`next_line`](Self::next_line) until it returns `None` after every [`push`](Self::push);
/// the buffer then never holds more than about `max_line` plus one read.
#[derive(Debug)]
pub struct LineBuffer {
    max_line: usize,
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for LF without finding one.
    scanned: usize,
    /// Dropping the rest of an over-long line (up to and including its LF).
    discarding: bool,
}

impl LineBuffer {
    /// A buffer accepting lines of at most `max_line` bytes, terminator excluded
    /// (RFC 5321 4.5.3.1.4: command lines are at most 512 octets including CRLF, so 510).
    pub fn new(max_line: usize) -> Self {
        LineBuffer {
            max_line,
            buf: Vec::new(),
            scanned: 0,
            discarding: false,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.discarding {
            if let Some(i) = bytes.iter().position(|&b| b == b'\n') {
                self.discarding = false;
                self.buf.extend_from_slice(&bytes[i + 1..]);
            }
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next complete line with its terminator (CRLF or bare LF) stripped.
    ///
    /// Returns `Err(LineError::TooLong)` once per line longer than `max_line`; the rest of that line
    /// (up to and including the next LF) is discarded and later lines parse normally.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, LineError>> {
        match self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(pos) => {
                let lf = self.scanned + pos;
                self.scanned = 0;
                let mut line: Vec<u8> = self.buf.drain(..=lf).collect();
                line.pop(); // the LF
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > self.max_line {
                    Some(Err(LineError::TooLong))
                } else {
                    Some(Ok(line))
                }
            }
            None => {
                self.scanned = self.buf.len();
                // A trailing CR may still become part of the CRLF terminator.
                let content = self.buf.len() - usize::from(self.buf.last() == Some(&b'\r'));
                if content > self.max_line {
                    self.buf.clear();
                    self.scanned = 0;
                    self.discarding = true;
                    Some(Err(LineError::TooLong))
                } else {
                    None
                }
            }
        }
    }

    /// Takes the bytes buffered after the last returned line (for DATA / BDAT content, or to
    /// discard plaintext pipelined after STARTTLS) and resets the buffer.
    pub fn take_remaining(&mut self) -> Vec<u8> {
        self.scanned = 0;
        self.discarding = false;
        std::mem::take(&mut self.buf)
    }

    /// True when bytes are buffered (e.g. pipelined after STARTTLS, RFC 3207 4.2 forbids that).
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Number of bytes currently buffered (at most about `max_line` + one read when drained).
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Drops everything buffered and any pending discard.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.scanned = 0;
        self.discarding = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Item = Result<Vec<u8>, LineError>;

    /// Feeds `input` in chunks of `chunk` bytes, collecting every item; also checks the bound.
    fn run(max: usize, input: &[u8], chunk: usize) -> (Vec<Item>, Vec<u8>) {
        let mut lb = LineBuffer::new(max);
        let mut items = Vec::new();
        for c in input.chunks(chunk) {
            lb.push(c);
            while let Some(item) = lb.next_line() {
                items.push(item);
            }
            assert!(lb.buf.len() <= max + 1, "buffer grew to {}", lb.buf.len());
        }
        (items, lb.take_remaining())
    }

    fn ok(s: &str) -> Item {
        Ok(s.as_bytes().to_vec())
    }

    #[test]
    fn framing_at_all_chunk_sizes() {
        let long = format!("{}\r\nNOOP\r\n", "x".repeat(40));
        let cases: Vec<(&[u8], Vec<Item>, &[u8])> = vec![
            (
                b"EHLO a\r\nMAIL FROM:<>\r\n",
                vec![ok("EHLO a"), ok("MAIL FROM:<>")],
                b"",
            ),
            (b"EHLO a\nQUIT\n", vec![ok("EHLO a"), ok("QUIT")], b""),
            (b"\r\n\n", vec![ok(""), ok("")], b""),
            (b"A\rB\r\n", vec![ok("A\rB")], b""),
            (
                b"DATA\r\nSubject: x\r\n",
                vec![ok("DATA"), ok("Subject: x")],
                b"",
            ),
            (b"DATA\r\npartial", vec![ok("DATA")], b"partial"),
            (b"NOOP\r\n\r", vec![ok("NOOP")], b"\r"),
            // Exactly max_line (16) is fine, with or without CR.
            (
                b"0123456789abcdef\r\n0123456789abcdef\n",
                vec![ok("0123456789abcdef"), ok("0123456789abcdef")],
                b"",
            ),
            (
                long.as_bytes(),
                vec![Err(LineError::TooLong), ok("NOOP")],
                b"",
            ),
            (
                b"0123456789abcdefg\r\nQUIT\r\n",
                vec![Err(LineError::TooLong), ok("QUIT")],
                b"",
            ),
            (
                b"0123456789abcdefg\nQUIT\r\n",
                vec![Err(LineError::TooLong), ok("QUIT")],
                b"",
            ),
        ];
        for (input, want_items, want_rest) in cases {
            for chunk in (1..=16).chain([64, 512]) {
                let (items, rest) = run(16, input, chunk);
                assert_eq!(
                    items,
                    want_items,
                    "{:?} chunk {chunk}",
                    String::from_utf8_lossy(input)
                );
                assert_eq!(
                    rest,
                    want_rest,
                    "{:?} chunk {chunk}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn long_line_is_bounded_and_reported_once() {
        let mut lb = LineBuffer::new(8);
        let mut errors = 0;
        for _ in 0..1000 {
            lb.push(&[b'a'; 100]);
            while let Some(item) = lb.next_line() {
                assert_eq!(item, Err(LineError::TooLong));
                errors += 1;
            }
            assert!(lb.buf.len() <= 9);
        }
        assert_eq!(errors, 1);
        lb.push(b"aaa\r\nRSET\r\n");
        assert_eq!(lb.next_line(), Some(Ok(b"RSET".to_vec())));
        assert_eq!(lb.next_line(), None);
        assert!(!lb.has_buffered());
    }

    #[test]
    fn take_remaining_and_clear() {
        let mut lb = LineBuffer::new(100);
        lb.push(b"STARTTLS\r\nEHLO evil\r\n");
        assert_eq!(lb.next_line(), Some(Ok(b"STARTTLS".to_vec())));
        assert!(lb.has_buffered());
        lb.clear();
        assert!(!lb.has_buffered());
        assert_eq!(lb.next_line(), None);
        lb.push(b"BDAT 3\r\nabcQUIT\r\n");
        assert_eq!(lb.next_line(), Some(Ok(b"BDAT 3".to_vec())));
        assert_eq!(lb.take_remaining(), b"abcQUIT\r\n");
        assert_eq!(lb.next_line(), None);
    }
}
