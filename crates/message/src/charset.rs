//! Charset conversion to UTF-8: every label `encoding_rs` knows (the WHATWG set, which covers
//! ISO-8859-x, Windows-125x, EUC-KR/CP949 including `ks_c_5601-1987`, ISO-2022-JP, GBK, Big5,
//! Shift_JIS, KOI8-R, ...), a few extra aliases mail clients use, a hand-written ISO-2022-KR
//! decoder, and mail-parser's decoders (UTF-7, IBM code pages) for the rest.

use encoding_rs::{EUC_KR, Encoding, UTF_8, WINDOWS_1252};

/// Decodes `bytes` labelled with `charset` to UTF-8. Returns `None` when the label is unknown.
/// Malformed sequences become U+FFFD.
pub fn decode(charset: &str, bytes: &[u8]) -> Option<String> {
    let label = normalize_label(charset);
    match label.as_str() {
        "" => return None,
        "utf-8" | "utf8" | "unicode-1-1-utf-8" | "x-unicode20utf8" => {
            return Some(String::from_utf8_lossy(bytes).into_owned());
        }
        // Declared 7-bit but mislabelled 8-bit text is common: guess for 8-bit bytes.
        "us-ascii" | "ascii" | "ansi_x3.4-1968" | "iso646-us" | "us" => {
            return Some(guess(bytes));
        }
        "iso-2022-kr" | "csiso2022kr" => return Some(decode_iso_2022_kr(bytes)),
        "cp949" | "uhc" | "ms949" | "x-windows-949" | "ks_c_5601" | "ks_c_5601-1992" | "x-uhc" => {
            return Some(decode_with(EUC_KR, bytes));
        }
        "gb2312" | "x-gbk" | "cp936" | "ms936" | "euc-cn" => {
            return Some(decode_with(encoding_rs::GBK, bytes));
        }
        "iso-8859-8-i" => return Some(decode_with(encoding_rs::ISO_8859_8_I, bytes)),
        _ => {}
    }
    match Encoding::for_label(label.as_bytes()) {
        Some(enc) if enc == encoding_rs::REPLACEMENT => return None,
        Some(enc) => return Some(decode_with(enc, bytes)),
        None => {}
    }
    // mail-parser's map knows a few more (UTF-7, IBM850, underscore spellings, ...); with its
    // `full_encoding` feature its multi-byte decoders are encoding_rs too.
    mail_parser::decoders::charsets::map::charset_decoder(label.as_bytes()).map(|f| f(bytes))
}

/// Decodes with `charset` when known, otherwise guesses (see [`guess`]).
pub fn decode_or_guess(charset: Option<&str>, bytes: &[u8]) -> String {
    charset
        .and_then(|c| decode(c, bytes))
        .unwrap_or_else(|| guess(bytes))
}

/// Decodes unlabelled bytes: UTF-8 if valid, else EUC-KR/CP949 if that decodes without errors,
/// else Windows-1252 (a superset of ISO-8859-1 in the printable range).
pub fn guess(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_owned();
    }
    let (s, had_errors) = EUC_KR.decode_without_bom_handling(bytes);
    if !had_errors {
        return s.into_owned();
    }
    WINDOWS_1252
        .decode_without_bom_handling(bytes)
        .0
        .into_owned()
}

fn decode_with(enc: &'static Encoding, bytes: &[u8]) -> String {
    if enc == UTF_8 {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    enc.decode_without_bom_handling(bytes).0.into_owned()
}

fn normalize_label(charset: &str) -> String {
    let c = charset
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .trim();
    // RFC 2231 language suffix in encoded words: "utf-8*ko".
    let c = c.split('*').next().unwrap_or("");
    c.to_ascii_lowercase()
}

/// Decodes ISO-2022-KR (RFC 1557): `ESC $ ) C` designates KS C 5601 to G1, SO (0x0E) shifts to
/// it and SI (0x0F) back to ASCII. Shifted bytes are 7-bit KS C 5601 code points, which become
/// EUC-KR by setting the high bit. A line break also returns to ASCII.
pub fn decode_iso_2022_kr(bytes: &[u8]) -> String {
    let mut euc = Vec::with_capacity(bytes.len());
    let mut shifted = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            0x1b if bytes.get(i + 1..i + 4) == Some(b"$)C") => {
                i += 4;
                continue;
            }
            0x0e => shifted = true,
            0x0f => shifted = false,
            b'\r' | b'\n' => {
                shifted = false;
                euc.push(b);
            }
            0x21..=0x7e if shifted => euc.push(b | 0x80),
            _ => euc.push(b),
        }
        i += 1;
    }
    EUC_KR.decode_without_bom_handling(&euc).0.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn korean_labels() {
        let (euc, _, _) = EUC_KR.encode("안녕하세요");
        for label in [
            "euc-kr",
            "EUC-KR",
            "ks_c_5601-1987",
            "KS_C_5601-1987",
            "cp949",
            "uhc",
        ] {
            assert_eq!(
                decode(label, &euc).as_deref(),
                Some("안녕하세요"),
                "{label}"
            );
        }
    }

    #[test]
    fn iso_2022_kr() {
        let (euc, _, _) = EUC_KR.encode("한국어");
        let mut bytes = b"\x1b$)Cab \x0e".to_vec();
        bytes.extend(euc.iter().map(|b| b & 0x7f));
        bytes.extend_from_slice(b"\x0f cd");
        assert_eq!(decode("iso-2022-kr", &bytes).unwrap(), "ab 한국어 cd");
    }

    #[test]
    fn others() {
        assert_eq!(decode("iso-8859-1", b"caf\xe9").unwrap(), "café");
        assert_eq!(
            decode("koi8-r", b"\xf0\xd2\xc9\xd7\xc5\xd4").unwrap(),
            "Привет"
        );
        assert_eq!(decode("utf-7", b"Hi Mom -+Jjo--!").unwrap(), "Hi Mom -☺-!");
        assert_eq!(decode("no-such-charset", b"x"), None);
        assert_eq!(guess(b"caf\xe9"), "café");
        assert_eq!(decode("us-ascii", "한".as_bytes()).unwrap(), "한");
    }
}
