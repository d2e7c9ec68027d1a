//! Mailboxes and paths: `local@domain` addresses, reverse paths and forward paths (RFC 5321 4.1.2, RFC 6531).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::command::ParseError;

// RFC 5321 4.5.3.1.1: the maximum total length of a local part is 64 octets.
const MAX_LOCAL: usize = 64;
// RFC 5321 4.5.3.1.2: the maximum total length of a domain is 255 octets.
const MAX_DOMAIN: usize = 255;
// RFC 1035 2.3.4: a label is at most 63 octets.
const MAX_LABEL: usize = 63;

/// An RFC 5321 mailbox.
///
/// `local` is kept exactly as sent, except that a quoted-string local part is stored unquoted (its
/// content, with quoted-pairs resolved). `domain` is kept as sent, including the brackets of an
/// address literal (`[192.0.2.1]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    /// The local part (unquoted content when it was sent as a quoted-string).
    pub local: String,
    /// The domain or address literal, as sent.
    pub domain: String,
}

impl Address {
    /// Parses a bare mailbox (`user@example.com`, `"a b"@x.org`, `u@[192.0.2.1]`; UTF-8 allowed).
    pub fn parse(s: &str) -> Result<Address, ParseError> {
        if s.is_empty() {
            return Err(ParseError::BadAddress("empty address"));
        }
        let (local, raw_local_len, rest) = if let Some(quoted) = s.strip_prefix('"') {
            let (content, used) = parse_quoted(quoted)?;
            (content, used + 1, &quoted[used..])
        } else {
            let at = s
                .find('@')
                .ok_or(ParseError::BadAddress("missing @domain"))?;
            let local = &s[..at];
            if !is_dot_string(local) {
                return Err(ParseError::BadAddress("invalid local part"));
            }
            (local.to_owned(), at, &s[at..])
        };
        if raw_local_len > MAX_LOCAL {
            return Err(ParseError::BadAddress("local part longer than 64 octets"));
        }
        let domain = rest
            .strip_prefix('@')
            .ok_or(ParseError::BadAddress("missing @domain"))?;
        validate_domain(domain)?;
        Ok(Address {
            local,
            domain: domain.to_owned(),
        })
    }

    /// True when both the local part and the domain are pure ASCII (no SMTPUTF8 needed).
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_dot_string(&self.local) {
            f.write_str(&self.local)?;
        } else {
            // RFC 5321 4.1.2: Quoted-string = DQUOTE *QcontentSMTP DQUOTE, with "\" escaping.
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        write!(f, "@{}", self.domain)
    }
}

/// The argument of `MAIL FROM:`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReversePath {
    /// `<>`: the null reverse path, used for bounces (RFC 5321 4.5.5).
    Null,
    /// A sender mailbox.
    Address(Address),
}

impl fmt::Display for ReversePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => f.write_str("<>"),
            ReversePath::Address(a) => write!(f, "<{a}>"),
        }
    }
}

/// The argument of `RCPT TO:`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ForwardPath {
    /// `<Postmaster>` without a domain (case-insensitive), RFC 5321 4.5.1.
    Postmaster,
    /// A recipient mailbox.
    Address(Address),
}

impl fmt::Display for ForwardPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("<Postmaster>"),
            ForwardPath::Address(a) => write!(f, "<{a}>"),
        }
    }
}

/// RFC 5322 3.2.3 atext, extended with UTF-8 by RFC 6531 3.3.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// RFC 5321 4.1.2: Dot-string = Atom *("." Atom).
fn is_dot_string(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// Parses the content of a quoted string (after the opening quote). Returns the unquoted content
/// and the number of bytes used including the closing quote.
fn parse_quoted(s: &str) -> Result<(String, usize), ParseError> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match chars.next() {
                // RFC 5321 4.1.2: quoted-pairSMTP = %d92 %d32-126
                Some((_, e)) if (' '..='~').contains(&e) => out.push(e),
                _ => return Err(ParseError::BadAddress("invalid quoted-pair in local part")),
            },
            // RFC 5321 4.1.2: qtextSMTP = %d32-33 / %d35-91 / %d93-126; RFC 6531 3.3 adds UTF-8.
            c if (' '..='~').contains(&c) || !c.is_ascii() => out.push(c),
            _ => {
                return Err(ParseError::BadAddress(
                    "invalid character in quoted local part",
                ));
            }
        }
    }
    Err(ParseError::BadAddress("unterminated quoted local part"))
}

/// Validates a domain or address literal (RFC 5321 4.1.2 Domain / address-literal, RFC 6531 3.3).
pub(crate) fn validate_domain(d: &str) -> Result<(), ParseError> {
    if d.is_empty() {
        return Err(ParseError::BadAddress("empty domain"));
    }
    if d.len() > MAX_DOMAIN {
        return Err(ParseError::BadAddress("domain longer than 255 octets"));
    }
    if let Some(lit) = d.strip_prefix('[') {
        let lit = lit
            .strip_suffix(']')
            .ok_or(ParseError::BadAddress("unterminated address literal"))?;
        // RFC 5321 4.1.3: IPv6-address-literal = "IPv6:" IPv6-addr
        let ok = match lit.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => lit[5..].parse::<Ipv6Addr>().is_ok(),
            _ => lit.parse::<Ipv4Addr>().is_ok(),
        };
        return if ok {
            Ok(())
        } else {
            Err(ParseError::BadAddress("invalid address literal"))
        };
    }
    for label in d.split('.') {
        // RFC 5321 4.1.2: sub-domain = Let-dig [Ldh-str]; RFC 6531 3.3: or U-label.
        let ok = !label.is_empty()
            && label.len() <= MAX_LABEL
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii());
        if !ok {
            return Err(ParseError::BadAddress("invalid domain"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(local: &str, domain: &str) -> Address {
        Address {
            local: local.into(),
            domain: domain.into(),
        }
    }

    #[test]
    fn valid_addresses() {
        let cases: &[(&str, Address, &str)] = &[
            (
                "user@example.com",
                addr("user", "example.com"),
                "user@example.com",
            ),
            (
                "first.last@sub.example.org",
                addr("first.last", "sub.example.org"),
                "first.last@sub.example.org",
            ),
            ("a+tag@x.org", addr("a+tag", "x.org"), "a+tag@x.org"),
            (
                "!#$%&'*+-/=?^_`{|}~@x.org",
                addr("!#$%&'*+-/=?^_`{|}~", "x.org"),
                "!#$%&'*+-/=?^_`{|}~@x.org",
            ),
            ("\"a b\"@x.org", addr("a b", "x.org"), "\"a b\"@x.org"),
            (
                "\"a\\\"b\"@x.org",
                addr("a\"b", "x.org"),
                "\"a\\\"b\"@x.org",
            ),
            (
                "\"a\\\\b\"@x.org",
                addr("a\\b", "x.org"),
                "\"a\\\\b\"@x.org",
            ),
            ("\"a>b@c\"@x.org", addr("a>b@c", "x.org"), "\"a>b@c\"@x.org"),
            ("\"plain\"@x.org", addr("plain", "x.org"), "plain@x.org"),
            ("\"\"@x.org", addr("", "x.org"), "\"\"@x.org"),
            ("\".a\"@x.org", addr(".a", "x.org"), "\".a\"@x.org"),
            ("u@[192.0.2.1]", addr("u", "[192.0.2.1]"), "u@[192.0.2.1]"),
            (
                "u@[IPv6:2001:db8::1]",
                addr("u", "[IPv6:2001:db8::1]"),
                "u@[IPv6:2001:db8::1]",
            ),
            ("u@[ipv6:::1]", addr("u", "[ipv6:::1]"), "u@[ipv6:::1]"),
            (
                "用户@例子.广告",
                addr("用户", "例子.广告"),
                "用户@例子.广告",
            ),
            (
                "jörg@bücher.de",
                addr("jörg", "bücher.de"),
                "jörg@bücher.de",
            ),
            ("u@localhost", addr("u", "localhost"), "u@localhost"),
            (
                "u@xn--bcher-kva.de",
                addr("u", "xn--bcher-kva.de"),
                "u@xn--bcher-kva.de",
            ),
        ];
        for (input, want, shown) in cases {
            let got = Address::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(&got, want, "{input}");
            assert_eq!(got.to_string(), *shown, "{input}");
            // Display output parses back to the same address.
            assert_eq!(&Address::parse(shown).unwrap(), want, "{shown}");
        }
    }

    #[test]
    fn invalid_addresses() {
        let long_local = format!("{}@x.org", "a".repeat(65));
        let long_quoted = format!("\"{}\"@x.org", "a".repeat(63)); // 65 octets with quotes
        let long_label = format!("u@{}.org", "a".repeat(64));
        let long_domain = format!("u@{}org", "abcdefghi.".repeat(26));
        let cases: &[(&str, &str)] = &[
            ("", "empty address"),
            ("user", "missing @domain"),
            ("user@", "empty domain"),
            ("@x.org", "invalid local part"),
            (".user@x.org", "invalid local part"),
            ("user.@x.org", "invalid local part"),
            ("us..er@x.org", "invalid local part"),
            ("us er@x.org", "invalid local part"),
            ("us\"er@x.org", "invalid local part"),
            ("a(b)@x.org", "invalid local part"),
            ("\"abc@x.org", "unterminated quoted local part"),
            ("\"a\tb\"@x.org", "invalid character in quoted local part"),
            ("\"a\\\tb\"@x.org", "invalid quoted-pair in local part"),
            ("\"ab\"x@x.org", "missing @domain"),
            ("u@x..org", "invalid domain"),
            ("u@.x.org", "invalid domain"),
            ("u@x.org.", "invalid domain"),
            ("u@-x.org", "invalid domain"),
            ("u@x-.org", "invalid domain"),
            ("u@x_y.org", "invalid domain"),
            ("u@x.org@y.org", "invalid domain"),
            ("u@[192.0.2.256]", "invalid address literal"),
            ("u@[192.0.2.1", "unterminated address literal"),
            ("u@[IPv6:zz::1]", "invalid address literal"),
            ("u@[foo:bar]", "invalid address literal"),
            (&long_local, "local part longer than 64 octets"),
            (&long_quoted, "local part longer than 64 octets"),
            (&long_label, "invalid domain"),
            (&long_domain, "domain longer than 255 octets"),
        ];
        for (input, msg) in cases {
            assert_eq!(
                Address::parse(input),
                Err(ParseError::BadAddress(msg)),
                "{input}"
            );
        }
        // Exactly 64 octets of local part is fine.
        assert!(Address::parse(&format!("{}@x.org", "a".repeat(64))).is_ok());
    }

    #[test]
    fn ascii_check() {
        assert!(Address::parse("a@b.c").unwrap().is_ascii());
        assert!(!Address::parse("ä@b.c").unwrap().is_ascii());
        assert!(!Address::parse("a@bä.c").unwrap().is_ascii());
    }

    #[test]
    fn path_display() {
        assert_eq!(ReversePath::Null.to_string(), "<>");
        assert_eq!(ForwardPath::Postmaster.to_string(), "<Postmaster>");
        let a = addr("a b", "x.org");
        assert_eq!(
            ReversePath::Address(a.clone()).to_string(),
            "<\"a b\"@x.org>"
        );
        assert_eq!(ForwardPath::Address(a).to_string(), "<\"a b\"@x.org>");
    }
}
