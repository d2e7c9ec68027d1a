//! RFC 2047 encoded-word decoding of header values into UTF-8.

use crate::charset;
use crate::header::unfold;
use crate::transfer;

/// Longest encoded text accepted in one encoded word.
const MAX_WORD: usize = 4096;

/// One piece of a header value.
enum Piece<'a> {
    Text(&'a [u8]),
    Word { charset: &'a [u8], bytes: Vec<u8> },
}

/// Tries to parse an encoded word at the start of `s` (which begins with `=?`). Returns the
/// charset, the decoded bytes and the length consumed.
fn parse_word(s: &[u8]) -> Option<(&[u8], Vec<u8>, usize)> {
    let rest = s.strip_prefix(b"=?")?;
    let q1 = rest.iter().position(|&b| b == b'?')?;
    let cs = &rest[..q1];
    if cs.is_empty() || cs.len() > 64 || cs.iter().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    let after_cs = &rest[q1 + 1..];
    let enc = *after_cs.first()?;
    if after_cs.get(1) != Some(&b'?') {
        return None;
    }
    let text_all = &after_cs[2..];
    // Encoded words are at most 75 octets (RFC 2047); allow much longer ones from sloppy
    // encoders, but bound the search so that scanning stays linear.
    let window = &text_all[..text_all.len().min(MAX_WORD)];
    let end = window.windows(2).position(|w| w == b"?=")?;
    let text = &text_all[..end];
    let bytes = match enc {
        b'B' | b'b' => {
            if text.iter().any(|b| b.is_ascii_whitespace()) {
                return None;
            }
            transfer::base64(text)
        }
        b'Q' | b'q' => q_decode(text),
        _ => return None,
    };
    let consumed = 2 + q1 + 1 + 2 + end + 2;
    Some((cs, bytes, consumed))
}

fn q_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let h = text.get(i + 1..i + 3).and_then(|h| {
                    std::str::from_utf8(h)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                });
                if let Some(v) = h {
                    out.push(v);
                    i += 3;
                    continue;
                }
                out.push(b'=');
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn pieces(s: &[u8]) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'='
            && s.get(i + 1) == Some(&b'?')
            && let Some((cs, bytes, n)) = parse_word(&s[i..])
        {
            if text_start < i {
                out.push(Piece::Text(&s[text_start..i]));
            }
            out.push(Piece::Word { charset: cs, bytes });
            i += n;
            text_start = i;
            continue;
        }
        i += 1;
    }
    if text_start < s.len() {
        out.push(Piece::Text(&s[text_start..]));
    }
    out
}

/// Decodes a raw header value to UTF-8: unfolds it, decodes RFC 2047 encoded words (B and Q, in
/// any charset [`charset::decode`] knows; adjacent words are joined without the whitespace
/// between them, and adjacent words in the same charset are decoded together so characters
/// split across words survive), and converts raw 8-bit text (UTF-8 if valid, else EUC-KR/CP949,
/// else Latin-1). The result is trimmed.
pub fn decode_header_value(raw: &[u8]) -> String {
    let unfolded = unfold(raw);
    let ps = pieces(&unfolded);
    let mut out = String::new();
    let mut i = 0;
    while i < ps.len() {
        match &ps[i] {
            Piece::Text(t) => {
                let between_words = i > 0
                    && matches!(ps[i - 1], Piece::Word { .. })
                    && matches!(ps.get(i + 1), Some(Piece::Word { .. }))
                    && t.iter().all(|b| matches!(b, b' ' | b'\t'));
                if !between_words {
                    out.push_str(&charset::guess(t));
                }
                i += 1;
            }
            Piece::Word { charset: cs, bytes } => {
                let mut joined = bytes.clone();
                let mut j = i + 1;
                // Join following words of the same charset (skipping pure whitespace).
                loop {
                    let mut k = j;
                    if let Some(Piece::Text(t)) = ps.get(k) {
                        if !t.iter().all(|b| matches!(b, b' ' | b'\t')) {
                            break;
                        }
                        k += 1;
                    }
                    match ps.get(k) {
                        Some(Piece::Word {
                            charset: cs2,
                            bytes: b2,
                        }) if cs2.eq_ignore_ascii_case(cs) => {
                            joined.extend_from_slice(b2);
                            j = k + 1;
                        }
                        _ => break,
                    }
                }
                let label = String::from_utf8_lossy(cs);
                out.push_str(&charset::decode_or_guess(Some(&label), &joined));
                i = j;
            }
        }
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2047_examples() {
        assert_eq!(decode_header_value(b"=?ISO-8859-1?Q?a?="), "a");
        assert_eq!(decode_header_value(b"=?ISO-8859-1?Q?a?= b"), "a b");
        assert_eq!(
            decode_header_value(b"=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?="),
            "ab"
        );
        assert_eq!(
            decode_header_value(b"=?ISO-8859-1?Q?a?=\r\n   =?ISO-8859-2?Q?b?="),
            "ab"
        );
        assert_eq!(decode_header_value(b"=?ISO-8859-1?Q?a_b?="), "a b");
        assert_eq!(decode_header_value(b"(=?ISO-8859-1?Q?a?=)"), "(a)");
        assert_eq!(
            decode_header_value(b"=?utf-8?B?7ZWc6rWt?= x =?bogus"),
            "\u{d55c}\u{ad6d} x =?bogus"
        );
    }

    #[test]
    fn split_multibyte_across_words() {
        // "한" is ED 95 9C in UTF-8: split across two B words.
        assert_eq!(
            decode_header_value(b"=?utf-8?B?7ZU=?= =?utf-8?B?nA==?="),
            "한"
        );
    }

    #[test]
    fn raw_8bit() {
        assert_eq!(decode_header_value("  안녕 ".as_bytes()), "안녕");
        let (euc, _, _) = encoding_rs::EUC_KR.encode("안녕");
        assert_eq!(decode_header_value(&euc), "안녕");
        assert_eq!(decode_header_value(b"caf\xe9"), "café");
    }
}
