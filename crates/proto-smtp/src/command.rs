//! SMTP commands: parsing a command line into a [`Command`] and writing one back to the wire.

use std::fmt;

use crate::address::{Address, ForwardPath, ReversePath, validate_domain};
use crate::reply::Reply;

// RFC 5321 4.5.3.1.3: the maximum total length of a reverse-path or forward-path is 256 octets
// (including the punctuation and element separators).
const MAX_PATH: usize = 256;
// RFC 1870 3: size-value = 1*20DIGIT
const MAX_SIZE_DIGITS: usize = 20;
// RFC 3461 4.4: the ENVID parameter value is at most 100 characters.
const MAX_ENVID: usize = 100;
// RFC 4422 3.1: SASL mechanism names are 1 to 20 characters.
const MAX_MECH: usize = 20;

/// Why a command line (or, for [`crate::ReplyParser`], a reply) could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The verb is not one we know. Reply 500 5.5.1.
    UnknownCommand,
    /// Bad command syntax; the message says what. Reply 501 5.5.4.
    Syntax(&'static str),
    /// Bad mailbox or path syntax; the message says what. Reply 501 5.1.3.
    BadAddress(&'static str),
    /// An ESMTP parameter keyword we do not support (the keyword as sent). Reply 555 5.5.4.
    UnknownParameter(String),
    /// The command contains bytes that are not UTF-8. Reply 500 5.5.2.
    NotUtf8,
    /// A server reply could not be parsed (client side only).
    BadReply(&'static str),
}

impl ParseError {
    /// The reply a server should send for this error.
    pub fn reply(&self) -> Reply {
        match self {
            ParseError::UnknownCommand => Reply::new(500, "5.5.1", "Command unrecognized"),
            ParseError::Syntax(m) => Reply::new(501, "5.5.4", format!("Syntax error: {m}")),
            // RFC 3463 3.2: X.1.3 Bad destination mailbox address syntax.
            ParseError::BadAddress(m) => {
                Reply::new(501, "5.1.3", format!("Bad address syntax: {m}"))
            }
            // RFC 5321 4.1.1.11: 555 MAIL FROM/RCPT TO parameters not recognized or not implemented.
            ParseError::UnknownParameter(k) => {
                let k: String = k.chars().take(32).collect();
                Reply::new(555, "5.5.4", format!("Unsupported parameter {k}"))
            }
            ParseError::NotUtf8 => Reply::new(500, "5.5.2", "Invalid characters in command"),
            ParseError::BadReply(m) => Reply::new(500, "5.5.2", format!("Malformed reply: {m}")),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::UnknownCommand => f.write_str("unrecognised command"),
            ParseError::Syntax(m) => write!(f, "syntax error: {m}"),
            ParseError::BadAddress(m) => write!(f, "bad address: {m}"),
            ParseError::UnknownParameter(k) => write!(f, "unrecognised parameter {k}"),
            ParseError::NotUtf8 => f.write_str("command is not valid UTF-8"),
            ParseError::BadReply(m) => write!(f, "malformed reply: {m}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// The `BODY=` parameter of `MAIL` (RFC 6152, RFC 3030).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// `BODY=7BIT`
    SevenBit,
    /// `BODY=8BITMIME` (RFC 6152)
    EightBitMime,
    /// `BODY=BINARYMIME` (RFC 3030; requires BDAT)
    BinaryMime,
}

impl Body {
    fn as_str(self) -> &'static str {
        match self {
            Body::SevenBit => "7BIT",
            Body::EightBitMime => "8BITMIME",
            Body::BinaryMime => "BINARYMIME",
        }
    }
}

/// ESMTP parameters of `MAIL FROM:`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SIZE=` declared message size (RFC 1870); saturates at `u64::MAX`.
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152, RFC 3030).
    pub body: Option<Body>,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `RET=FULL|HDRS` (RFC 3461), uppercased.
    pub ret: Option<String>,
    /// `ENVID=` xtext as sent (RFC 3461).
    pub envid: Option<String>,
    /// `AUTH=` xtext or `<>` as sent (RFC 4954 5).
    pub auth: Option<String>,
}

/// ESMTP parameters of `RCPT TO:`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// `NOTIFY=` (RFC 3461), uppercased: `NEVER` or a comma list of `SUCCESS`, `FAILURE`, `DELAY`.
    pub notify: Option<String>,
    /// `ORCPT=addr-type;xtext` as sent (RFC 3461).
    pub orcpt: Option<String>,
}

/// One SMTP command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `HELO domain`
    Helo {
        /// The first token of the argument (not strictly validated).
        domain: String,
    },
    /// `EHLO domain`
    Ehlo {
        /// The first token of the argument (not strictly validated).
        domain: String,
    },
    /// `MAIL FROM:<path> [params]`
    Mail {
        /// The sender.
        from: ReversePath,
        /// ESMTP parameters.
        params: MailParams,
    },
    /// `RCPT TO:<path> [params]`
    Rcpt {
        /// The recipient.
        to: ForwardPath,
        /// ESMTP parameters.
        params: RcptParams,
    },
    /// `DATA`
    Data,
    /// `BDAT size [LAST]` (RFC 3030)
    Bdat {
        /// Chunk size in octets.
        size: u64,
        /// `LAST` was given.
        last: bool,
    },
    /// `RSET`
    Rset,
    /// `NOOP [string]`
    Noop,
    /// `QUIT`
    Quit,
    /// `HELP [string]`
    Help,
    /// `STARTTLS` (RFC 3207)
    StartTls,
    /// `VRFY string`
    Vrfy {
        /// The argument, trimmed.
        arg: String,
    },
    /// `EXPN string`
    Expn {
        /// The argument, trimmed.
        arg: String,
    },
    /// `AUTH mechanism [initial-response]` (RFC 4954)
    Auth {
        /// The SASL mechanism, uppercased.
        mechanism: String,
        /// The base64 initial response as sent; `"="` means an empty response.
        initial_response: Option<String>,
    },
}

impl Command {
    /// Writes the command as a wire line, including the CRLF (client side).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let line = match self {
            Command::Helo { domain } => format!("HELO {domain}"),
            Command::Ehlo { domain } => format!("EHLO {domain}"),
            Command::Mail { from, params } => {
                let mut s = format!("MAIL FROM:{from}");
                if let Some(n) = params.size {
                    s.push_str(&format!(" SIZE={n}"));
                }
                if let Some(b) = params.body {
                    s.push_str(&format!(" BODY={}", b.as_str()));
                }
                if params.smtputf8 {
                    s.push_str(" SMTPUTF8");
                }
                for (k, v) in [
                    ("RET", &params.ret),
                    ("ENVID", &params.envid),
                    ("AUTH", &params.auth),
                ] {
                    if let Some(v) = v {
                        s.push_str(&format!(" {k}={v}"));
                    }
                }
                s
            }
            Command::Rcpt { to, params } => {
                let mut s = format!("RCPT TO:{to}");
                for (k, v) in [("NOTIFY", &params.notify), ("ORCPT", &params.orcpt)] {
                    if let Some(v) = v {
                        s.push_str(&format!(" {k}={v}"));
                    }
                }
                s
            }
            Command::Data => "DATA".into(),
            Command::Bdat { size, last: true } => format!("BDAT {size} LAST"),
            Command::Bdat { size, last: false } => format!("BDAT {size}"),
            Command::Rset => "RSET".into(),
            Command::Noop => "NOOP".into(),
            Command::Quit => "QUIT".into(),
            Command::Help => "HELP".into(),
            Command::StartTls => "STARTTLS".into(),
            Command::Vrfy { arg } => format!("VRFY {arg}"),
            Command::Expn { arg } => format!("EXPN {arg}"),
            Command::Auth {
                mechanism,
                initial_response: Some(ir),
            } => format!("AUTH {mechanism} {ir}"),
            Command::Auth {
                mechanism,
                initial_response: None,
            } => format!("AUTH {mechanism}"),
        };
        // Defensive: never let a field inject a line break into the command stream.
        out.extend(line.bytes().filter(|&b| b != b'\r' && b != b'\n'));
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one command line WITHOUT its line terminator (the caller strips CRLF or LF).
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
    if line.chars().any(|c| c.is_ascii_control()) {
        return Err(ParseError::Syntax("control character in command"));
    }
    // Trailing spaces are harmless and common; tolerate them.
    let line = line.trim_end_matches(' ');
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    // RFC 5321 2.4: verbs are case-insensitive.
    if verb.len() > 8 {
        return Err(ParseError::UnknownCommand);
    }
    let verb = verb.to_ascii_uppercase();
    let cmd = match verb.as_str() {
        "HELO" | "EHLO" => {
            // RFC 5321 4.1.1.1: ehlo = "EHLO" SP ( Domain / address-literal ) CRLF
            let domain = rest
                .split(' ')
                .find(|t| !t.is_empty())
                .ok_or(ParseError::Syntax("HELO/EHLO requires a domain"))?
                .to_owned();
            // RFC 5321 4.5.3.1.2: a domain is at most 255 octets (an address literal less);
            // the name goes into the Received header, which must stay a bounded line.
            if domain.len() > 255 {
                return Err(ParseError::Syntax("HELO/EHLO name longer than 255 octets"));
            }
            if verb == "HELO" {
                Command::Helo { domain }
            } else {
                Command::Ehlo { domain }
            }
        }
        "MAIL" => {
            // RFC 5321 4.1.1.2: mail = "MAIL FROM:" Reverse-path [SP Mail-parameters] CRLF
            let rest = strip_prefix_ci(rest.trim_start_matches(' '), "FROM:")
                .ok_or(ParseError::Syntax("expected MAIL FROM:<address>"))?;
            // Not in the grammar, but "MAIL FROM: <a@b>" is common in the wild.
            let (inner, params) = split_path(rest.trim_start_matches(' '))?;
            // RFC 5321 4.1.1.2: the null reverse path "<>".
            let from = if inner.is_empty() {
                ReversePath::Null
            } else {
                ReversePath::Address(parse_mailbox(inner)?)
            };
            Command::Mail {
                from,
                params: parse_mail_params(params)?,
            }
        }
        "RCPT" => {
            // RFC 5321 4.1.1.3: rcpt = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" /
            //   Forward-path ) [SP Rcpt-parameters] CRLF
            let rest = strip_prefix_ci(rest.trim_start_matches(' '), "TO:")
                .ok_or(ParseError::Syntax("expected RCPT TO:<address>"))?;
            let (inner, params) = split_path(rest.trim_start_matches(' '))?;
            // RFC 5321 4.5.1: "Postmaster" without a domain, case-insensitive.
            let to = if inner.eq_ignore_ascii_case("postmaster") {
                ForwardPath::Postmaster
            } else if inner.is_empty() {
                return Err(ParseError::BadAddress("empty forward path"));
            } else {
                ForwardPath::Address(parse_mailbox(inner)?)
            };
            Command::Rcpt {
                to,
                params: parse_rcpt_params(params)?,
            }
        }
        "DATA" => no_args(rest, Command::Data)?,
        "RSET" => no_args(rest, Command::Rset)?,
        "QUIT" => no_args(rest, Command::Quit)?,
        "STARTTLS" => no_args(rest, Command::StartTls)?,
        // RFC 5321 4.1.1.9 / 4.1.1.8: the optional string argument of NOOP and HELP is ignored.
        "NOOP" => Command::Noop,
        "HELP" => Command::Help,
        "VRFY" | "EXPN" => {
            let arg = rest.trim_matches(' ');
            if arg.is_empty() {
                return Err(ParseError::Syntax("VRFY/EXPN requires an argument"));
            }
            let arg = arg.to_owned();
            if verb == "VRFY" {
                Command::Vrfy { arg }
            } else {
                Command::Expn { arg }
            }
        }
        "BDAT" => {
            // RFC 3030 2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CR LF
            let mut tokens = rest.split(' ').filter(|t| !t.is_empty());
            let size = tokens
                .next()
                .ok_or(ParseError::Syntax("BDAT requires a chunk size"))?;
            if size.is_empty()
                || size.len() > MAX_SIZE_DIGITS
                || !size.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(ParseError::Syntax("invalid BDAT chunk size"));
            }
            let size = size
                .parse::<u64>()
                .map_err(|_| ParseError::Syntax("BDAT chunk size too large"))?;
            let last = match tokens.next() {
                None => false,
                Some(t) if t.eq_ignore_ascii_case("LAST") => true,
                Some(_) => return Err(ParseError::Syntax("expected LAST after BDAT size")),
            };
            if tokens.next().is_some() {
                return Err(ParseError::Syntax("too many BDAT arguments"));
            }
            Command::Bdat { size, last }
        }
        "AUTH" => {
            // RFC 4954 4: "AUTH" SP sasl-mech [SP initial-response]
            let mut tokens = rest.split(' ').filter(|t| !t.is_empty());
            let mechanism = tokens
                .next()
                .ok_or(ParseError::Syntax("AUTH requires a mechanism"))?;
            // RFC 4422 3.1: sasl-mech = 1*20mech-char; mech-char = UPPER-ALPHA / DIGIT / "-" / "_"
            if mechanism.len() > MAX_MECH
                || !mechanism
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ParseError::Syntax("invalid SASL mechanism name"));
            }
            let initial_response = match tokens.next() {
                None => None,
                // RFC 4954 4: initial-response = base64 / "="
                Some(t) if t.bytes().all(is_base64) => Some(t.to_owned()),
                Some(_) => return Err(ParseError::Syntax("invalid AUTH initial response")),
            };
            if tokens.next().is_some() {
                return Err(ParseError::Syntax("too many AUTH arguments"));
            }
            Command::Auth {
                mechanism: mechanism.to_ascii_uppercase(),
                initial_response,
            }
        }
        _ => return Err(ParseError::UnknownCommand),
    };
    Ok(cmd)
}

fn no_args(rest: &str, cmd: Command) -> Result<Command, ParseError> {
    if rest.trim_matches(' ').is_empty() {
        Ok(cmd)
    } else {
        Err(ParseError::Syntax("command takes no arguments"))
    }
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

/// Case-insensitive ASCII prefix strip.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let n = prefix.len();
    let head = s.as_bytes().get(..n)?;
    // The prefix is ASCII, so a match ends on a char boundary.
    head.eq_ignore_ascii_case(prefix.as_bytes())
        .then(|| &s[n..])
}

/// Splits `<path> params` into the text between the angle brackets and the parameter text.
fn split_path(s: &str) -> Result<(&str, &str), ParseError> {
    let body = s
        .strip_prefix('<')
        .ok_or(ParseError::BadAddress("path must be enclosed in <>"))?;
    let mut in_quote = false;
    let mut escaped = false;
    let mut end = None;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
        } else if in_quote && c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_quote = !in_quote;
        } else if c == '>' && !in_quote {
            end = Some(i);
            break;
        }
    }
    let end = end.ok_or(ParseError::BadAddress("missing closing '>'"))?;
    let inner = &body[..end];
    // RFC 5321 4.5.3.1.3: path length includes the angle brackets.
    if inner.len() + 2 > MAX_PATH {
        return Err(ParseError::BadAddress("path longer than 256 octets"));
    }
    let rest = &body[end + 1..];
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(ParseError::Syntax("expected space after path"));
    }
    Ok((inner, rest))
}

/// Parses `[A-d-l ":"] Mailbox`, ignoring any source route.
fn parse_mailbox(inner: &str) -> Result<Address, ParseError> {
    let mailbox = if inner.starts_with('@') {
        // RFC 5321 4.1.2: A-d-l = At-domain *( "," At-domain ); RFC 5321 C: the route MUST be
        // accepted and SHOULD be ignored.
        let (route, mailbox) = inner
            .split_once(':')
            .ok_or(ParseError::BadAddress("bad source route"))?;
        for hop in route.split(',') {
            let d = hop
                .strip_prefix('@')
                .ok_or(ParseError::BadAddress("bad source route"))?;
            validate_domain(d).map_err(|_| ParseError::BadAddress("bad source route"))?;
        }
        mailbox
    } else {
        inner
    };
    Address::parse(mailbox)
}

/// RFC 5321 4.1.2: esmtp-param = esmtp-keyword ["=" esmtp-value]
fn parse_params(s: &str) -> Result<Vec<(&str, Option<&str>)>, ParseError> {
    let mut out: Vec<(&str, Option<&str>)> = Vec::new();
    for tok in s.split(' ').filter(|t| !t.is_empty()) {
        let (key, value) = match tok.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (tok, None),
        };
        // RFC 5321 4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
        let key_ok = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !key_ok {
            return Err(ParseError::Syntax("invalid parameter keyword"));
        }
        if let Some(v) = value {
            // RFC 5321 4.1.2: esmtp-value = 1*(%d33-60 / %d62-126); RFC 6531 3.3 adds UTF-8.
            if v.is_empty() || v.contains('=') {
                return Err(ParseError::Syntax("invalid parameter value"));
            }
        }
        if out.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
            return Err(ParseError::Syntax("duplicate parameter"));
        }
        out.push((key, value));
    }
    Ok(out)
}

fn parse_mail_params(s: &str) -> Result<MailParams, ParseError> {
    let mut p = MailParams::default();
    for (key, value) in parse_params(s)? {
        match (key.to_ascii_uppercase().as_str(), value) {
            // RFC 1870 3: size-value = 1*20DIGIT
            ("SIZE", Some(v)) => {
                if v.len() > MAX_SIZE_DIGITS || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseError::Syntax("invalid SIZE value"));
                }
                // 20 digits can exceed u64; such a size is over any limit anyway.
                p.size = Some(v.parse().unwrap_or(u64::MAX));
            }
            // RFC 6152 2 / RFC 3030 3: BODY=7BIT / 8BITMIME / BINARYMIME
            ("BODY", Some(v)) => {
                p.body = Some(match v.to_ascii_uppercase().as_str() {
                    "7BIT" => Body::SevenBit,
                    "8BITMIME" => Body::EightBitMime,
                    "BINARYMIME" => Body::BinaryMime,
                    _ => return Err(ParseError::Syntax("invalid BODY value")),
                });
            }
            // RFC 6531 3.4: SMTPUTF8 takes no value.
            ("SMTPUTF8", None) => p.smtputf8 = true,
            // RFC 3461 4.3: ret-value = "FULL" / "HDRS"
            ("RET", Some(v)) => {
                let v = v.to_ascii_uppercase();
                if v != "FULL" && v != "HDRS" {
                    return Err(ParseError::Syntax("invalid RET value"));
                }
                p.ret = Some(v);
            }
            // RFC 3461 4.4: ENVID=xtext, at most 100 characters.
            ("ENVID", Some(v)) => {
                if v.len() > MAX_ENVID || !is_xtext(v) {
                    return Err(ParseError::Syntax("invalid ENVID value"));
                }
                p.envid = Some(v.to_owned());
            }
            // RFC 4954 5: auth-param = "AUTH=" xtext / "AUTH=<>"
            ("AUTH", Some(v)) => {
                if v != "<>" && !is_xtext(v) {
                    return Err(ParseError::Syntax("invalid AUTH value"));
                }
                p.auth = Some(v.to_owned());
            }
            ("SIZE" | "BODY" | "RET" | "ENVID" | "AUTH", None) => {
                return Err(ParseError::Syntax("parameter requires a value"));
            }
            ("SMTPUTF8", Some(_)) => {
                return Err(ParseError::Syntax("SMTPUTF8 takes no value"));
            }
            _ => return Err(ParseError::UnknownParameter(key.to_owned())),
        }
    }
    Ok(p)
}

fn parse_rcpt_params(s: &str) -> Result<RcptParams, ParseError> {
    let mut p = RcptParams::default();
    for (key, value) in parse_params(s)? {
        match (key.to_ascii_uppercase().as_str(), value) {
            // RFC 3461 4.1: notify-esmtp-value = "NEVER" / 1#notify-list-element
            ("NOTIFY", Some(v)) => {
                let v = v.to_ascii_uppercase();
                let items: Vec<&str> = v.split(',').collect();
                let ok = if items.contains(&"NEVER") {
                    items.len() == 1
                } else {
                    items
                        .iter()
                        .all(|i| matches!(*i, "SUCCESS" | "FAILURE" | "DELAY"))
                };
                if !ok {
                    return Err(ParseError::Syntax("invalid NOTIFY value"));
                }
                p.notify = Some(v);
            }
            // RFC 3461 4.2: orcpt-parameter = "ORCPT=" original-recipient-address
            //   original-recipient-address = addr-type ";" xtext
            ("ORCPT", Some(v)) => {
                let ok = v.split_once(';').is_some_and(|(t, a)| {
                    !t.is_empty()
                        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !a.is_empty()
                        && is_xtext(a)
                });
                if !ok {
                    return Err(ParseError::Syntax("invalid ORCPT value"));
                }
                p.orcpt = Some(v.to_owned());
            }
            ("NOTIFY" | "ORCPT", None) => {
                return Err(ParseError::Syntax("parameter requires a value"));
            }
            _ => return Err(ParseError::UnknownParameter(key.to_owned())),
        }
    }
    Ok(p)
}

/// RFC 3461 4: xtext = *( xchar / hexchar ); xchar = "!".."~" except "+" and "=";
/// hexchar = "+" 2(HEXDIG). Lowercase hex is tolerated.
fn is_xtext(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 3;
            }
            b'!'..=b'~' if b[i] != b'=' => i += 1,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    fn mail(from: ReversePath, params: MailParams) -> Command {
        Command::Mail { from, params }
    }

    fn rcpt(to: ForwardPath, params: RcptParams) -> Command {
        Command::Rcpt { to, params }
    }

    fn valid_cases() -> Vec<(&'static str, Command)> {
        let d = MailParams::default;
        let r = RcptParams::default;
        let ra = |s| ReversePath::Address(a(s));
        let fa = |s| ForwardPath::Address(a(s));
        vec![
            (
                "HELO mx.example.com",
                Command::Helo {
                    domain: "mx.example.com".into(),
                },
            ),
            (
                "helo [192.0.2.1]",
                Command::Helo {
                    domain: "[192.0.2.1]".into(),
                },
            ),
            (
                "EHLO mx.example.com",
                Command::Ehlo {
                    domain: "mx.example.com".into(),
                },
            ),
            (
                "ehlo  client.example extra words",
                Command::Ehlo {
                    domain: "client.example".into(),
                },
            ),
            ("EhLo x ", Command::Ehlo { domain: "x".into() }),
            (
                "MAIL FROM:<user@example.com>",
                mail(ra("user@example.com"), d()),
            ),
            (
                "mail from:<user@example.com>",
                mail(ra("user@example.com"), d()),
            ),
            (
                "MAIL FROM: <user@example.com>",
                mail(ra("user@example.com"), d()),
            ),
            ("MAIL FROM:<>", mail(ReversePath::Null, d())),
            (
                "MAIL FROM:<> SIZE=100",
                mail(
                    ReversePath::Null,
                    MailParams {
                        size: Some(100),
                        ..d()
                    },
                ),
            ),
            (
                "MAIL FROM:<@a.org,@b.org:user@c.org>",
                mail(ra("user@c.org"), d()),
            ),
            (
                "MAIL FROM:<\"a> b\"@x.org> SIZE=5",
                mail(
                    ra("\"a> b\"@x.org"),
                    MailParams {
                        size: Some(5),
                        ..d()
                    },
                ),
            ),
            (
                "MAIL FROM:<u@x.org> SIZE=12345 BODY=8BITMIME SMTPUTF8 RET=hdrs ENVID=QQ+2B1 AUTH=<>",
                mail(
                    ra("u@x.org"),
                    MailParams {
                        size: Some(12345),
                        body: Some(Body::EightBitMime),
                        smtputf8: true,
                        ret: Some("HDRS".into()),
                        envid: Some("QQ+2B1".into()),
                        auth: Some("<>".into()),
                    },
                ),
            ),
            (
                "MAIL FROM:<u@x.org>  body=7bit  ",
                mail(
                    ra("u@x.org"),
                    MailParams {
                        body: Some(Body::SevenBit),
                        ..d()
                    },
                ),
            ),
            (
                "MAIL FROM:<u@x.org> BODY=BinaryMIME",
                mail(
                    ra("u@x.org"),
                    MailParams {
                        body: Some(Body::BinaryMime),
                        ..d()
                    },
                ),
            ),
            (
                "MAIL FROM:<u@x.org> RET=FULL",
                mail(
                    ra("u@x.org"),
                    MailParams {
                        ret: Some("FULL".into()),
                        ..d()
                    },
                ),
            ),
            (
                "MAIL FROM:<u@x.org> AUTH=joe+40x.org",
                mail(
                    ra("u@x.org"),
                    MailParams {
                        auth: Some("joe+40x.org".into()),
                        ..d()
                    },
                ),
            ),
            (
                "MAIL FROM:<u@x.org> SIZE=99999999999999999999",
                mail(
                    ra("u@x.org"),
                    MailParams {
                        size: Some(u64::MAX),
                        ..d()
                    },
                ),
            ),
            (
                "MAIL FROM:<jörg@bücher.de> SMTPUTF8",
                mail(
                    ra("jörg@bücher.de"),
                    MailParams {
                        smtputf8: true,
                        ..d()
                    },
                ),
            ),
            (
                "RCPT TO:<user@example.com>",
                rcpt(fa("user@example.com"), r()),
            ),
            (
                "rcpt to: <user@example.com>",
                rcpt(fa("user@example.com"), r()),
            ),
            ("RCPT TO:<Postmaster>", rcpt(ForwardPath::Postmaster, r())),
            ("RCPT TO:<postMASTER>", rcpt(ForwardPath::Postmaster, r())),
            (
                "RCPT TO:<Postmaster@x.org>",
                rcpt(fa("Postmaster@x.org"), r()),
            ),
            ("RCPT TO:<@hop.net:u@x.org>", rcpt(fa("u@x.org"), r())),
            (
                "RCPT TO:<u@x.org> NOTIFY=success,Delay ORCPT=rfc822;u+40x.org",
                rcpt(
                    fa("u@x.org"),
                    RcptParams {
                        notify: Some("SUCCESS,DELAY".into()),
                        orcpt: Some("rfc822;u+40x.org".into()),
                    },
                ),
            ),
            (
                "RCPT TO:<u@x.org> NOTIFY=NEVER",
                rcpt(
                    fa("u@x.org"),
                    RcptParams {
                        notify: Some("NEVER".into()),
                        ..r()
                    },
                ),
            ),
            ("DATA", Command::Data),
            ("data ", Command::Data),
            (
                "BDAT 1000",
                Command::Bdat {
                    size: 1000,
                    last: false,
                },
            ),
            (
                "BDAT 0 LAST",
                Command::Bdat {
                    size: 0,
                    last: true,
                },
            ),
            (
                "bdat 42 last",
                Command::Bdat {
                    size: 42,
                    last: true,
                },
            ),
            ("RSET", Command::Rset),
            ("NOOP", Command::Noop),
            ("NOOP anything at all", Command::Noop),
            ("QUIT", Command::Quit),
            ("HELP", Command::Help),
            ("help mail", Command::Help),
            ("STARTTLS", Command::StartTls),
            ("VRFY joe", Command::Vrfy { arg: "joe".into() }),
            (
                "EXPN staff list",
                Command::Expn {
                    arg: "staff list".into(),
                },
            ),
            (
                "AUTH plain",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial_response: None,
                },
            ),
            (
                "AUTH PLAIN AGpvZQBzZWNyZXQ=",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial_response: Some("AGpvZQBzZWNyZXQ=".into()),
                },
            ),
            (
                "AUTH PLAIN =",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial_response: Some("=".into()),
                },
            ),
            (
                "AUTH SCRAM-SHA-256",
                Command::Auth {
                    mechanism: "SCRAM-SHA-256".into(),
                    initial_response: None,
                },
            ),
        ]
    }

    #[test]
    fn valid_commands() {
        for (line, want) in valid_cases() {
            assert_eq!(parse_command(line.as_bytes()), Ok(want), "{line}");
        }
    }

    #[test]
    fn write_to_round_trips() {
        for (line, cmd) in valid_cases() {
            let mut out = Vec::new();
            cmd.write_to(&mut out);
            assert!(out.ends_with(b"\r\n"), "{line}");
            let wire = &out[..out.len() - 2];
            assert_eq!(
                parse_command(wire),
                Ok(cmd),
                "{line} -> {}",
                String::from_utf8_lossy(wire)
            );
        }
        let mut out = Vec::new();
        Command::Mail {
            from: ReversePath::Address(a("\"a b\"@x.org")),
            params: MailParams {
                size: Some(7),
                smtputf8: true,
                ..Default::default()
            },
        }
        .write_to(&mut out);
        assert_eq!(out, b"MAIL FROM:<\"a b\"@x.org> SIZE=7 SMTPUTF8\r\n");
        out.clear();
        Command::Vrfy {
            arg: "a\r\nQUIT".into(),
        }
        .write_to(&mut out);
        assert_eq!(out, b"VRFY aQUIT\r\n");
    }

    #[test]
    fn invalid_commands() {
        use ParseError::*;
        let long_helo = format!("EHLO {}", "h".repeat(256));
        let long_path = format!(
            "MAIL FROM:<{}@{}.org>",
            "a".repeat(64),
            vec!["b".repeat(63); 3].join(".")
        );
        let cases: Vec<(&[u8], ParseError)> = vec![
            (b"", UnknownCommand),
            (b"FOO", UnknownCommand),
            (b"MAILFROM:<a@b>", UnknownCommand),
            (b"STARTTLSX", UnknownCommand),
            (b" MAIL FROM:<a@b>", UnknownCommand),
            (b"MAIL FROM:<\xff@b>", NotUtf8),
            (b"EHLO \xc3", NotUtf8),
            (b"HELO", Syntax("HELO/EHLO requires a domain")),
            (b"EHLO   ", Syntax("HELO/EHLO requires a domain")),
            (
                long_helo.as_bytes(),
                Syntax("HELO/EHLO name longer than 255 octets"),
            ),
            (b"NOOP\0", Syntax("control character in command")),
            (
                b"MAIL FROM:<a@b>\rRCPT",
                Syntax("control character in command"),
            ),
            (b"MAIL TO:<a@b>", Syntax("expected MAIL FROM:<address>")),
            (b"MAIL", Syntax("expected MAIL FROM:<address>")),
            (b"RCPT FROM:<a@b>", Syntax("expected RCPT TO:<address>")),
            (b"MAIL FROM:a@b", BadAddress("path must be enclosed in <>")),
            (b"MAIL FROM:<a@b", BadAddress("missing closing '>'")),
            (b"MAIL FROM:<\"a>@b", BadAddress("missing closing '>'")),
            (
                b"MAIL FROM:<a@b>SIZE=1",
                Syntax("expected space after path"),
            ),
            (b"MAIL FROM:<a>", BadAddress("missing @domain")),
            (b"MAIL FROM:<a@b..c>", BadAddress("invalid domain")),
            (b"MAIL FROM:<@a.org:>", BadAddress("empty address")),
            (b"MAIL FROM:<@a.org>", BadAddress("bad source route")),
            (
                b"MAIL FROM:<@a..org:u@x.org>",
                BadAddress("bad source route"),
            ),
            (
                b"MAIL FROM:<@a.org,b.org:u@x.org>",
                BadAddress("bad source route"),
            ),
            (
                long_path.as_bytes(),
                BadAddress("path longer than 256 octets"),
            ),
            (b"RCPT TO:<>", BadAddress("empty forward path")),
            (b"RCPT TO:<Postmaster >", BadAddress("missing @domain")),
            (b"MAIL FROM:<a@b> SIZE=12x", Syntax("invalid SIZE value")),
            (
                b"MAIL FROM:<a@b> SIZE=123456789012345678901",
                Syntax("invalid SIZE value"),
            ),
            (
                b"MAIL FROM:<a@b> SIZE",
                Syntax("parameter requires a value"),
            ),
            (b"MAIL FROM:<a@b> SIZE=", Syntax("invalid parameter value")),
            (
                b"MAIL FROM:<a@b> SIZE=1 SIZE=2",
                Syntax("duplicate parameter"),
            ),
            (b"MAIL FROM:<a@b> BODY=9BIT", Syntax("invalid BODY value")),
            (
                b"MAIL FROM:<a@b> SMTPUTF8=yes",
                Syntax("SMTPUTF8 takes no value"),
            ),
            (b"MAIL FROM:<a@b> RET=ALL", Syntax("invalid RET value")),
            (b"MAIL FROM:<a@b> ENVID=a+zz", Syntax("invalid ENVID value")),
            (b"MAIL FROM:<a@b> ENVID=a+2", Syntax("invalid ENVID value")),
            (
                b"MAIL FROM:<a@b> AUTH=a=b",
                Syntax("invalid parameter value"),
            ),
            (
                b"MAIL FROM:<a@b> AUTH=\xc3\xa4",
                Syntax("invalid AUTH value"),
            ),
            (b"MAIL FROM:<a@b> =1", Syntax("invalid parameter keyword")),
            (b"MAIL FROM:<a@b> -X", Syntax("invalid parameter keyword")),
            (b"MAIL FROM:<a@b> X_Y", Syntax("invalid parameter keyword")),
            (b"MAIL FROM:<a@b> XFOO=1", UnknownParameter("XFOO".into())),
            (
                b"MAIL FROM:<a@b> notify=NEVER",
                UnknownParameter("notify".into()),
            ),
            (b"RCPT TO:<a@b> SIZE=1", UnknownParameter("SIZE".into())),
            (
                b"RCPT TO:<a@b> NOTIFY=NEVER,DELAY",
                Syntax("invalid NOTIFY value"),
            ),
            (
                b"RCPT TO:<a@b> NOTIFY=SOMETIMES",
                Syntax("invalid NOTIFY value"),
            ),
            (
                b"RCPT TO:<a@b> NOTIFY",
                Syntax("parameter requires a value"),
            ),
            (b"RCPT TO:<a@b> ORCPT=rfc822", Syntax("invalid ORCPT value")),
            (b"RCPT TO:<a@b> ORCPT=;a@b", Syntax("invalid ORCPT value")),
            (b"DATA now", Syntax("command takes no arguments")),
            (b"QUIT please", Syntax("command takes no arguments")),
            (b"RSET x", Syntax("command takes no arguments")),
            (b"STARTTLS x", Syntax("command takes no arguments")),
            (b"VRFY", Syntax("VRFY/EXPN requires an argument")),
            (b"EXPN  ", Syntax("VRFY/EXPN requires an argument")),
            (b"BDAT", Syntax("BDAT requires a chunk size")),
            (b"BDAT x", Syntax("invalid BDAT chunk size")),
            (b"BDAT -1", Syntax("invalid BDAT chunk size")),
            (
                b"BDAT 99999999999999999999",
                Syntax("BDAT chunk size too large"),
            ),
            (b"BDAT 10 FIRST", Syntax("expected LAST after BDAT size")),
            (b"BDAT 10 LAST now", Syntax("too many BDAT arguments")),
            (b"AUTH", Syntax("AUTH requires a mechanism")),
            (b"AUTH PL@IN", Syntax("invalid SASL mechanism name")),
            (
                b"AUTH ABCDEFGHIJKLMNOPQRSTU",
                Syntax("invalid SASL mechanism name"),
            ),
            (b"AUTH PLAIN a*b", Syntax("invalid AUTH initial response")),
            (b"AUTH PLAIN abc def", Syntax("too many AUTH arguments")),
        ];
        for (line, want) in cases {
            assert_eq!(
                parse_command(line),
                Err(want),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn error_replies() {
        use ParseError::*;
        let cases = [
            (UnknownCommand, "500 5.5.1 Command unrecognized\r\n"),
            (Syntax("bad"), "501 5.5.4 Syntax error: bad\r\n"),
            (BadAddress("bad"), "501 5.1.3 Bad address syntax: bad\r\n"),
            (
                UnknownParameter("XFOO".into()),
                "555 5.5.4 Unsupported parameter XFOO\r\n",
            ),
            (NotUtf8, "500 5.5.2 Invalid characters in command\r\n"),
        ];
        for (err, want) in cases {
            let mut out = Vec::new();
            err.reply().write_to(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{err:?}");
        }
    }

    #[test]
    fn xtext() {
        for (s, ok) in [
            ("", true),
            ("abc", true),
            ("a+2B", true),
            ("a+2b", true),
            ("+", false),
            ("+2", false),
            ("a=b", false),
            ("a b", false),
            ("é", false),
        ] {
            assert_eq!(is_xtext(s), ok, "{s}");
        }
    }
}
