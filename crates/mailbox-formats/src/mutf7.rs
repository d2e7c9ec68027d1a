//! IMAP modified UTF-7 (RFC 3501 §5.1.3) decoding, used for Maildir++ folder names.

fn b64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b',' => 63,
        _ => return None,
    } as u32)
}

/// Decodes a modified UTF-7 string; `None` if it is not valid modified UTF-7
/// (callers then keep the raw name, which may already be UTF-8).
pub(crate) fn decode(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        let (plain, tail) = rest.split_at(amp);
        if !plain.is_ascii() {
            return None;
        }
        out.push_str(plain);
        let tail = &tail[1..];
        let end = tail.find('-')?;
        let encoded = &tail[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let mut units = Vec::new();
            let (mut acc, mut bits) = (0u32, 0u32);
            for &c in encoded.as_bytes() {
                acc = (acc << 6) | b64_value(c)?;
                bits += 6;
                if bits >= 16 {
                    bits -= 16;
                    units.push((acc >> bits) as u16);
                    acc &= (1 << bits) - 1;
                }
            }
            if bits >= 6 || acc != 0 || units.is_empty() {
                return None;
            }
            for ch in char::decode_utf16(units) {
                out.push(ch.ok()?);
            }
        }
        rest = &tail[end + 1..];
    }
    if !rest.is_ascii() {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes() {
        assert_eq!(decode("Sent").as_deref(), Some("Sent"));
        assert_eq!(decode("R&AOk-sum&AOk-").as_deref(), Some("Résumé"));
        assert_eq!(decode("A&-B").as_deref(), Some("A&B"));
        assert_eq!(decode("&ZeVnLIqe-").as_deref(), Some("日本語"));
        assert_eq!(decode("bad&AOk").as_deref(), None);
        assert_eq!(decode("Résumé").as_deref(), None);
    }
}
