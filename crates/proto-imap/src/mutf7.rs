//! Modified UTF-7 mailbox names (RFC 3501 section 5.1.3): printable ASCII stands for itself
//! (`&` as `&-`), everything else is UTF-16 in modified base64 (`,` for `/`, no padding)
//! between `&` and `-`.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn value(b: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == b).map(|v| v as u32)
}

fn is_direct(c: char) -> bool {
    (' '..='~').contains(&c)
}

/// Encodes a mailbox name to modified UTF-7.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |out: &mut String, pending: &mut Vec<u16>| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let mut acc: u32 = 0;
        let mut bits = 0;
        for unit in pending.drain(..) {
            acc = (acc << 16) | u32::from(unit);
            bits += 16;
            while bits >= 6 {
                bits -= 6;
                out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
            }
        }
        if bits > 0 {
            out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
        }
        out.push('-');
    };
    for c in s.chars() {
        if is_direct(c) {
            flush(&mut out, &mut pending);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut out, &mut pending);
    out
}

/// Decodes a modified UTF-7 mailbox name. Returns `None` for invalid input: characters outside
/// printable ASCII, an unterminated or malformed `&...-` section, non-zero padding bits, or
/// invalid UTF-16 (unpaired surrogates). Encoded printable ASCII and split encoded sections
/// (not produced by [`encode`]) are also rejected, so `encode(decode(s)?) == s`.
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut prev_was_encoded = false;
    while i < bytes.len() {
        let b = bytes[i];
        if !(0x20..=0x7e).contains(&b) {
            return None;
        }
        if b != b'&' {
            out.push(b as char);
            prev_was_encoded = false;
            i += 1;
            continue;
        }
        let rel = bytes[i + 1..].iter().position(|&c| c == b'-')?;
        let section = &bytes[i + 1..i + 1 + rel];
        i += rel + 2;
        if section.is_empty() {
            out.push('&');
            prev_was_encoded = false;
            continue;
        }
        if prev_was_encoded {
            return None;
        }
        let mut units = Vec::with_capacity(section.len() * 6 / 16);
        let mut acc: u32 = 0;
        let mut bits = 0;
        for &c in section {
            acc = (acc << 6) | value(c)?;
            bits += 6;
            if bits >= 16 {
                bits -= 16;
                units.push((acc >> bits) as u16);
                acc &= (1 << bits) - 1;
            }
        }
        if bits >= 6 || acc != 0 {
            return None;
        }
        for c in char::decode_utf16(units) {
            let c = c.ok()?;
            if is_direct(c) {
                return None;
            }
            out.push(c);
        }
        prev_was_encoded = true;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3501_example() {
        let name = "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}";
        assert_eq!(encode(name), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Some(name)
        );
    }

    #[test]
    fn round_trips() {
        for s in [
            "",
            "INBOX",
            "a&b",
            "&",
            "한국어 메일",
            "Entwürfe",
            "😀 emoji",
            "x\u{1}y",
            "&-&",
        ] {
            let e = encode(s);
            assert!(e.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{e}");
            assert_eq!(decode(&e).as_deref(), Some(s), "{e}");
        }
        assert_eq!(encode("한국어"), "&1VytbcW0-");
        assert_eq!(encode("a&b"), "a&-b");
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(encode("😀 emoji"), "&2D3eAA- emoji");
    }

    #[test]
    fn invalid() {
        for s in [
            "&",
            "&U,BTFw",
            "&U,BTF-",
            "&AGE-",
            "&2D0-",
            "é",
            "&U,B-&TFw-",
            "&U=-",
        ] {
            assert_eq!(decode(s), None, "{s}");
        }
    }
}
