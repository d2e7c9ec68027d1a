//! SASL mechanisms offered by Postern: PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login),
//! decoded here so SMTP, IMAP and POP3 share one implementation.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::AuthError;

/// Longest base64 SASL response accepted (a user name and password fit easily).
pub const MAX_RESPONSE: usize = 4096;

/// Decodes one base64 client response. `=` alone is the empty response (RFC 4954 4).
pub fn decode_response(b64: &str) -> Result<Vec<u8>, AuthError> {
    let b64 = b64.trim();
    if b64.len() > MAX_RESPONSE {
        return Err(AuthError::Malformed("response too long"));
    }
    if b64 == "=" {
        return Ok(Vec::new());
    }
    STANDARD
        .decode(b64)
        .map_err(|_| AuthError::Malformed("invalid base64"))
}

/// Encodes a server challenge.
pub fn encode_challenge(text: &str) -> String {
    STANDARD.encode(text)
}

/// Credentials carried by a PLAIN response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plain {
    /// Authorization identity (empty: same as `authcid`).
    pub authzid: String,
    /// Authentication identity (the user name).
    pub authcid: String,
    /// Password.
    pub password: String,
}

/// Parses a decoded PLAIN message: `[authzid] NUL authcid NUL passwd`.
pub fn parse_plain(decoded: &[u8]) -> Result<Plain, AuthError> {
    let mut parts = decoded.split(|b| *b == 0);
    let (Some(z), Some(c), Some(p), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(
            "PLAIN needs authzid NUL authcid NUL password",
        ));
    };
    let text = |b: &[u8]| {
        String::from_utf8(b.to_vec()).map_err(|_| AuthError::Malformed("credentials not UTF-8"))
    };
    let plain = Plain {
        authzid: text(z)?,
        authcid: text(c)?,
        password: text(p)?,
    };
    if plain.authcid.is_empty() {
        return Err(AuthError::Malformed("empty user name"));
    }
    // Acting as another user is not supported: authzid must be empty or the user itself.
    if !plain.authzid.is_empty() && !plain.authzid.eq_ignore_ascii_case(&plain.authcid) {
        return Err(AuthError::Malformed(
            "authorization identity differs from user",
        ));
    }
    Ok(plain)
}

/// Decodes one LOGIN step (user name or password) to text.
pub fn parse_login_step(b64: &str) -> Result<String, AuthError> {
    String::from_utf8(decode_response(b64)?).map_err(|_| AuthError::Malformed("not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain() {
        let p = parse_plain(&decode_response("AGxlZUBuYXZlci50ZXN0AHB3").unwrap()).unwrap();
        assert_eq!(
            (p.authcid.as_str(), p.password.as_str()),
            ("lee@naver.test", "pw")
        );
        assert!(parse_plain(b"only\0two").is_err());
        assert!(parse_plain(b"\0\0pw").is_err());
        assert!(parse_plain(b"other\0lee\0pw").is_err());
        assert!(parse_plain(b"LEE\0lee\0pw").is_ok());
        assert!(decode_response("!!!").is_err());
        assert_eq!(decode_response("=").unwrap(), b"");
        assert_eq!(
            parse_login_step(&encode_challenge("Username:")).unwrap(),
            "Username:"
        );
    }
}
