//! Raw header handling: splitting a message or part into header and body, iterating header
//! fields with their exact byte spans, and unfolding values.
//!
//! Lines may end in CRLF or a bare LF; both are accepted everywhere.

use std::ops::Range;

/// One header field as it appears in the raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field name as sent (no trailing whitespace, no colon).
    pub name: &'a [u8],
    /// The raw value: everything after the colon up to (not including) the line break that
    /// ends the field; folded continuation lines are included with their line breaks.
    pub value: &'a [u8],
    /// The whole field: name, value and the final line break (if present).
    pub raw: &'a [u8],
}

impl Field<'_> {
    /// Whether the field name equals `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    /// The unfolded value with leading and trailing whitespace trimmed.
    pub fn unfolded(&self) -> Vec<u8> {
        unfold(self.value)
    }
}

/// Returns the end of the line starting at `pos` (index of the `\n`, or `end`) and the start of
/// the next line.
pub(crate) fn line_at(raw: &[u8], pos: usize, end: usize) -> (usize, usize) {
    match raw
        .get(pos..end)
        .and_then(|s| s.iter().position(|&b| b == b'\n'))
    {
        Some(i) => (pos + i, pos + i + 1),
        None => (end, end),
    }
}

/// Whether the line `raw[start..nl]` is empty (just a line break, optionally with a CR).
fn is_blank(raw: &[u8], start: usize, nl: usize) -> bool {
    nl == start || (nl == start + 1 && raw.get(start) == Some(&b'\r'))
}

/// Splits `raw[range]` into the header (including the blank separator line) and the body.
/// When there is no blank line, the whole range is header and the body is empty.
pub(crate) fn split_range(raw: &[u8], range: Range<usize>) -> (Range<usize>, Range<usize>) {
    let (start, end) = (range.start, range.end.min(raw.len()));
    let start = start.min(end);
    let mut pos = start;
    while pos < end {
        let (nl, next) = line_at(raw, pos, end);
        if nl < end && is_blank(raw, pos, nl) {
            return (start..next, next..end);
        }
        pos = next;
    }
    (start..end, end..end)
}

/// Splits a whole message into header (including the blank line) and body.
pub fn split(raw: &[u8]) -> (&[u8], &[u8]) {
    let (h, b) = split_range(raw, 0..raw.len());
    (&raw[h], &raw[b])
}

/// Iterator over the fields of a header block.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    raw: &'a [u8],
    pos: usize,
}

/// Iterates over the header fields in `header` (a header block, as returned by [`split`]).
/// Lines that are not fields (no colon, or a name containing whitespace, such as an mbox
/// `From ` line) are skipped together with their continuation lines.
pub fn fields(header: &[u8]) -> Fields<'_> {
    Fields {
        raw: header,
        pos: 0,
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let raw = self.raw;
        let end = raw.len();
        loop {
            if self.pos >= end {
                return None;
            }
            let start = self.pos;
            let (nl, mut next) = line_at(raw, start, end);
            if is_blank(raw, start, nl) {
                // The blank line ends the header.
                self.pos = end;
                return None;
            }
            // Extend over continuation lines.
            let mut value_end = if nl > start && raw.get(nl - 1) == Some(&b'\r') && nl < end {
                nl - 1
            } else {
                nl
            };
            while next < end && matches!(raw[next], b' ' | b'\t') {
                let (nl2, next2) = line_at(raw, next, end);
                value_end = if nl2 > next && raw.get(nl2 - 1) == Some(&b'\r') && nl2 < end {
                    nl2 - 1
                } else {
                    nl2
                };
                next = next2;
            }
            self.pos = next;
            let line = &raw[start..value_end];
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let name = trim_end(&line[..colon]);
            if name.is_empty()
                || name
                    .iter()
                    .any(|&b| b <= b' ' || b == 0x7f || matches!(b, b'\r' | b'\n'))
            {
                continue;
            }
            return Some(Field {
                name,
                value: &line[colon + 1..],
                raw: &raw[start..next],
            });
        }
    }
}

/// The first field named `name` (ASCII case-insensitive) in a header block.
pub fn first<'a>(header: &'a [u8], name: &str) -> Option<Field<'a>> {
    fields(header).find(|f| f.is(name))
}

/// Unfolds a raw field value: removes every CR and LF (all line breaks inside a field value are
/// folds) and trims surrounding whitespace.
pub fn unfold(value: &[u8]) -> Vec<u8> {
    let v: Vec<u8> = value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    trim(&v).to_vec()
}

/// Trims ASCII whitespace (SP, HT, CR, LF) from both ends.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    trim_end(trim_start(s))
}

pub(crate) fn trim_start(s: &[u8]) -> &[u8] {
    let i = s
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(s.len());
    &s[i..]
}

pub(crate) fn trim_end(s: &[u8]) -> &[u8] {
    let i = s
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .map_or(0, |i| i + 1);
    &s[..i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_crlf_and_lf() {
        let (h, b) = split(b"A: 1\r\nB: 2\r\n\r\nbody\r\n");
        assert_eq!(h, b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(b, b"body\r\n");
        let (h, b) = split(b"A: 1\n\nbody");
        assert_eq!(h, b"A: 1\n\n");
        assert_eq!(b, b"body");
        let (h, b) = split(b"\r\nbody");
        assert_eq!(h, b"\r\n");
        assert_eq!(b, b"body");
        let (h, b) = split(b"A: 1\r\n");
        assert_eq!(h, b"A: 1\r\n");
        assert_eq!(b, b"");
    }

    #[test]
    fn fields_with_folding() {
        let h = b"From ignored line\r\nSubject: a\r\n b\r\nX-Y :z\r\nbad line\r\n\r\n";
        let f: Vec<_> = fields(h).collect();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, b"Subject");
        assert_eq!(f[0].value, b" a\r\n b");
        assert_eq!(f[0].raw, b"Subject: a\r\n b\r\n");
        assert_eq!(f[0].unfolded(), b"a b");
        assert_eq!(f[1].name, b"X-Y");
        assert_eq!(f[1].value, b"z");
        assert!(first(h, "x-y").is_some());
    }
}
