//! Bounded line framing shared by the sans-IO protocol crates (`proto-smtp`, `proto-pop3`):
//! [`LineBuffer`] splits received bytes into lines ended by CRLF or a bare LF and bounds their
//! length. It knows no protocol and performs no I/O.

#![deny(missing_docs)]

/// Why [`LineBuffer::next_line`] could not produce a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// The line exceeded the maximum length; its bytes are discarded up to the next LF.
    #[error("line too long")]
    TooLong,
}

/// Splits a byte stream into lines ended by CRLF or a bare LF, with a bound on the line length.
///
/// Call [`next_line`](Self::next_line) until it returns `None` after every
/// [`push`](Self::push); the buffer then never holds more than `max_line` plus one push.
#[derive(Debug)]
pub struct LineBuffer {
    max_line: usize,
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf` (consumed lines are dropped lazily, not per line).
    start: usize,
    /// Bytes from `start` already searched for LF without finding one.
    scanned: usize,
    /// Dropping the rest of an over-long line (up to and including its LF).
    discarding: bool,
}

impl LineBuffer {
    /// A buffer accepting lines of at most `max_line` bytes, terminator excluded.
    pub fn new(max_line: usize) -> Self {
        LineBuffer {
            max_line,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            discarding: false,
        }
    }

    /// Changes the bound for the lines still to come (a SASL response may be longer than a
    /// command line).
    pub fn set_max_line(&mut self, max_line: usize) {
        self.max_line = max_line;
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        if self.discarding {
            if let Some(i) = memchr::memchr(b'\n', bytes) {
                self.discarding = false;
                self.buf.extend_from_slice(&bytes[i + 1..]);
            }
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next complete line with its terminator (CRLF or bare LF) stripped.
    ///
    /// Returns `Err(LineError::TooLong)` once per line longer than `max_line`; the rest of that
    /// line (up to and including the next LF) is discarded and later lines parse normally.
    pub fn next_line(&mut self) -> Option<Result<&[u8], LineError>> {
        let pending = &self.buf[self.start + self.scanned..];
        match memchr::memchr(b'\n', pending) {
            Some(pos) => {
                let begin = self.start;
                let lf = begin + self.scanned + pos;
                self.start = lf + 1;
                self.scanned = 0;
                let mut end = lf;
                if end > begin && self.buf[end - 1] == b'\r' {
                    end -= 1;
                }
                if end - begin > self.max_line {
                    Some(Err(LineError::TooLong))
                } else {
                    Some(Ok(&self.buf[begin..end]))
                }
            }
            None => {
                let unread = self.buf.len() - self.start;
                self.scanned = unread;
                // A trailing CR may still become part of the CRLF terminator.
                let content = unread - usize::from(self.buf.last() == Some(&b'\r'));
                if content > self.max_line {
                    self.clear();
                    self.discarding = true;
                    Some(Err(LineError::TooLong))
                } else {
                    if self.start > 0 {
                        // Keep the buffer from growing: move the partial line to the front.
                        self.buf.drain(..self.start);
                        self.start = 0;
                    }
                    None
                }
            }
        }
    }

    /// Takes the unread bytes, those after the last returned line, and resets the buffer
    /// (also ending any pending discard). SMTP uses it for DATA / BDAT content.
    pub fn take_remaining(&mut self) -> Vec<u8> {
        self.buf.drain(..self.start);
        let rest = std::mem::take(&mut self.buf);
        self.clear();
        rest
    }

    /// True when unread bytes are buffered (e.g. pipelined after STARTTLS or STLS, which
    /// RFC 3207 4.2 and RFC 2595 4 require to be discarded).
    pub fn has_buffered(&self) -> bool {
        self.buf.len() > self.start
    }

    /// Number of unread bytes buffered (at most `max_line` + 1 once drained by
    /// [`next_line`](Self::next_line)).
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Drops everything buffered and any pending discard.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        self.discarding = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Item = Result<Vec<u8>, LineError>;

    /// Feeds `input` in chunks of `chunk` bytes, collecting every item and the bytes left
    /// unread at the end; also checks the bound.
    fn run(max: usize, input: &[u8], chunk: usize) -> (Vec<Item>, Vec<u8>) {
        let mut lb = LineBuffer::new(max);
        let mut items = Vec::new();
        for c in input.chunks(chunk) {
            lb.push(c);
            while let Some(item) = lb.next_line() {
                items.push(item.map(<[u8]>::to_vec));
            }
            assert!(lb.buf.len() <= max + 1, "buffer grew to {}", lb.buf.len());
            assert_eq!(lb.buffered_len(), lb.buf.len());
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
                b"USER a\r\nPASS b c\r\n",
                vec![ok("USER a"), ok("PASS b c")],
                b"",
            ),
            (
                b"EHLO a\r\nMAIL FROM:<>\r\n",
                vec![ok("EHLO a"), ok("MAIL FROM:<>")],
                b"",
            ),
            (b"STAT\nQUIT\n", vec![ok("STAT"), ok("QUIT")], b""),
            (b"EHLO a\nQUIT\n", vec![ok("EHLO a"), ok("QUIT")], b""),
            (b"\r\n\n", vec![ok(""), ok("")], b""),
            (b"A\rB\r\n", vec![ok("A\rB")], b""),
            (
                b"DATA\r\nSubject: x\r\n",
                vec![ok("DATA"), ok("Subject: x")],
                b"",
            ),
            (b"LIST\r\npartial", vec![ok("LIST")], b"partial"),
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
            for chunk in 1..=512 {
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
        assert_eq!(lb.next_line(), Some(Ok(&b"RSET"[..])));
        assert_eq!(lb.next_line(), None);
        assert!(!lb.has_buffered());
    }

    #[test]
    fn clear_drops_pipelined_bytes_and_max_line_can_grow() {
        let mut lb = LineBuffer::new(4);
        lb.push(b"STLS\r\nUSER evil\r\n");
        assert_eq!(lb.next_line(), Some(Ok(&b"STLS"[..])));
        assert!(lb.has_buffered());
        lb.clear();
        assert!(!lb.has_buffered());
        assert_eq!(lb.next_line(), None);
        lb.set_max_line(10);
        lb.push(b"0123456789\r\n");
        assert_eq!(lb.next_line(), Some(Ok(&b"0123456789"[..])));
    }

    #[test]
    fn take_remaining_hands_over_the_bytes_after_a_line() {
        // (clear() is covered above.)
        let mut lb = LineBuffer::new(100);
        lb.push(b"BDAT 3\r\nabcQUIT\r\n");
        assert_eq!(lb.next_line(), Some(Ok(&b"BDAT 3"[..])));
        assert_eq!(lb.buffered_len(), 9);
        assert_eq!(lb.take_remaining(), b"abcQUIT\r\n");
        assert!(!lb.has_buffered());
        assert_eq!(lb.next_line(), None);
    }

    /// DATA as SMTP reads it: lines up to DATA, then the unread rest (which starts after the
    /// lines already consumed, whatever the chunking), then the next command pushed back.
    #[test]
    fn take_remaining_after_lines_at_all_chunk_sizes() {
        let input = b"EHLO a\r\nMAIL FROM:<>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n";
        let after_data = b"Subject: x\r\n\r\nbody\r\n.\r\n";
        for chunk in 1..=input.len() {
            let mut lb = LineBuffer::new(16);
            let mut chunks = input.chunks(chunk);
            let mut lines = Vec::new();
            'feed: for c in chunks.by_ref() {
                lb.push(c);
                while let Some(item) = lb.next_line() {
                    let line = item.unwrap().to_vec();
                    let done = line == b"DATA";
                    lines.push(line);
                    if done {
                        break 'feed;
                    }
                }
            }
            assert_eq!(
                lines,
                [&b"EHLO a"[..], b"MAIL FROM:<>", b"DATA"],
                "chunk {chunk}"
            );
            let mut rest = lb.take_remaining();
            assert!(!lb.has_buffered(), "chunk {chunk}");
            for c in chunks {
                rest.extend_from_slice(c);
            }
            assert_eq!(rest, after_data, "chunk {chunk}");
            lb.push(b"QUIT\r\n");
            assert_eq!(lb.next_line(), Some(Ok(&b"QUIT"[..])), "chunk {chunk}");
            assert_eq!(lb.next_line(), None);
        }
    }

    /// Taking the rest ends the discard of an over-long line: what is pushed next is read as
    /// new lines.
    #[test]
    fn take_remaining_ends_a_discard() {
        let mut lb = LineBuffer::new(4);
        lb.push(b"NOOP\r\ntoo long");
        assert_eq!(lb.next_line(), Some(Ok(&b"NOOP"[..])));
        assert_eq!(lb.next_line(), Some(Err(LineError::TooLong)));
        assert_eq!(lb.take_remaining(), b"");
        lb.push(b"abc\r\n");
        assert_eq!(lb.next_line(), Some(Ok(&b"abc"[..])));
        assert_eq!(lb.next_line(), None);
    }
}
