//! Line-ending conversion between the LF world of mbox/Maildir and Postern's CRLF.

/// Converts bare LF line endings to CRLF.
///
/// Existing CRLF pairs are kept as they are (no doubled CRs) and a lone CR not
/// followed by LF is left untouched.
pub fn to_crlf(input: &[u8]) -> Vec<u8> {
    let extra = input.iter().filter(|&&b| b == b'\n').count();
    let mut out = Vec::with_capacity(input.len() + extra);
    let mut prev = 0u8;
    for &b in input {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// Size `input` would have after [`to_crlf`], without allocating.
pub fn crlf_len(input: &[u8]) -> usize {
    let mut len = input.len();
    let mut prev = 0u8;
    for &b in input {
        if b == b'\n' && prev != b'\r' {
            len += 1;
        }
        prev = b;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_lf_keeps_crlf_and_lone_cr() {
        assert_eq!(to_crlf(b"a\nb\r\nc\rd\n"), b"a\r\nb\r\nc\rd\r\n".to_vec());
        assert_eq!(to_crlf(b"\n\n"), b"\r\n\r\n".to_vec());
        assert_eq!(to_crlf(b""), b"".to_vec());
        assert_eq!(crlf_len(b"a\nb\r\nc\rd\n"), 11);
    }
}
