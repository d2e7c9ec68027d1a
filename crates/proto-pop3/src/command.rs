//! POP3 commands: parsing one command line into a [`Command`].

/// RFC 1939 3: "Each argument may be up to 40 characters long." Message numbers and line counts
/// are far shorter; this bounds the digits we accept.
const MAX_NUMBER_DIGITS: usize = 10;
/// RFC 4422 3.1: SASL mechanism names are 1 to 20 characters.
const MAX_MECHANISM: usize = 20;

/// One POP3 command. Message numbers are 1-based, as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `USER name` (RFC 1939 7).
    User(String),
    /// `PASS secret`: everything after the first space, spaces included (RFC 1939 7 allows
    /// servers to accept passwords with spaces).
    Pass(String),
    /// `APOP name digest`: recognised so it can be refused clearly (we keep no plaintext
    /// passwords, which APOP needs).
    Apop,
    /// `AUTH [mechanism [initial-response]]` (RFC 5034); without a mechanism, the list of
    /// mechanisms is asked for.
    Auth {
        /// The mechanism, upper-cased.
        mechanism: Option<String>,
        /// The base64 initial response as sent (`=` is the empty response).
        initial: Option<String>,
    },
    /// `STLS` (RFC 2595 4).
    Stls,
    /// `CAPA` (RFC 2449 5).
    Capa,
    /// `STAT`
    Stat,
    /// `LIST [msg]`
    List(Option<u32>),
    /// `RETR msg`
    Retr(u32),
    /// `DELE msg`
    Dele(u32),
    /// `NOOP`
    Noop,
    /// `RSET`
    Rset,
    /// `QUIT`
    Quit,
    /// `TOP msg n`
    Top(u32, u32),
    /// `UIDL [msg]`
    Uidl(Option<u32>),
}

/// Why a command line could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The keyword is not one we know (at most 8 characters of it, for the reply).
    #[error("unknown command {0}")]
    Unknown(String),
    /// Wrong arguments; the text says what the command takes.
    #[error("syntax: {0}")]
    Syntax(&'static str),
    /// An argument is not valid UTF-8.
    #[error("invalid characters in command")]
    NotUtf8,
}

/// Parses one command line (terminator already stripped). Keywords are case-insensitive
/// (RFC 1939 3); arguments are separated by single or repeated spaces.
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    let (keyword, rest) = match memchr::memchr(b' ', line) {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    // Keywords are three or four characters (RFC 1939 3).
    let mut upper = [0u8; 4];
    if !(3..=4).contains(&keyword.len()) || !keyword.iter().all(u8::is_ascii_alphabetic) {
        return Err(unknown(keyword));
    }
    for (d, s) in upper.iter_mut().zip(keyword) {
        *d = s.to_ascii_uppercase();
    }
    let kw = &upper[..keyword.len()];
    let args = || {
        rest.split(|b| *b == b' ')
            .filter(|a| !a.is_empty())
            .collect::<Vec<_>>()
    };
    let none = |c: Command| {
        if args().is_empty() {
            Ok(c)
        } else {
            Err(ParseError::Syntax("this command takes no arguments"))
        }
    };
    match kw {
        b"USER" => match args().as_slice() {
            [name] => Ok(Command::User(text(name)?)),
            _ => Err(ParseError::Syntax("USER name")),
        },
        b"PASS" => {
            if rest.is_empty() {
                return Err(ParseError::Syntax("PASS password"));
            }
            Ok(Command::Pass(text(rest)?))
        }
        b"APOP" => Ok(Command::Apop),
        b"AUTH" => match args().as_slice() {
            [] => Ok(Command::Auth {
                mechanism: None,
                initial: None,
            }),
            [m, initial @ ..] if m.len() <= MAX_MECHANISM && initial.len() <= 1 => {
                Ok(Command::Auth {
                    mechanism: Some(text(m)?.to_ascii_uppercase()),
                    initial: initial.first().map(|i| text(i)).transpose()?,
                })
            }
            _ => Err(ParseError::Syntax("AUTH mechanism [initial-response]")),
        },
        b"STLS" => none(Command::Stls),
        b"CAPA" => none(Command::Capa),
        b"STAT" => none(Command::Stat),
        b"NOOP" => none(Command::Noop),
        b"RSET" => none(Command::Rset),
        b"QUIT" => none(Command::Quit),
        b"LIST" => match args().as_slice() {
            [] => Ok(Command::List(None)),
            [n] => Ok(Command::List(Some(number(n, "LIST [msg]")?))),
            _ => Err(ParseError::Syntax("LIST [msg]")),
        },
        b"UIDL" => match args().as_slice() {
            [] => Ok(Command::Uidl(None)),
            [n] => Ok(Command::Uidl(Some(number(n, "UIDL [msg]")?))),
            _ => Err(ParseError::Syntax("UIDL [msg]")),
        },
        b"RETR" => match args().as_slice() {
            [n] => Ok(Command::Retr(number(n, "RETR msg")?)),
            _ => Err(ParseError::Syntax("RETR msg")),
        },
        b"DELE" => match args().as_slice() {
            [n] => Ok(Command::Dele(number(n, "DELE msg")?)),
            _ => Err(ParseError::Syntax("DELE msg")),
        },
        b"TOP" => match args().as_slice() {
            [n, lines] => Ok(Command::Top(
                number(n, "TOP msg n")?,
                number(lines, "TOP msg n")?,
            )),
            _ => Err(ParseError::Syntax("TOP msg n")),
        },
        _ => Err(unknown(keyword)),
    }
}

fn unknown(keyword: &[u8]) -> ParseError {
    let shown: String = keyword
        .iter()
        .take(8)
        .map(|b| {
            if b.is_ascii_graphic() {
                *b as char
            } else {
                '?'
            }
        })
        .collect();
    ParseError::Unknown(shown)
}

fn text(b: &[u8]) -> Result<String, ParseError> {
    String::from_utf8(b.to_vec()).map_err(|_| ParseError::NotUtf8)
}

/// A decimal message number or line count: digits only (no sign, no spaces), bounded.
fn number(b: &[u8], usage: &'static str) -> Result<u32, ParseError> {
    if b.is_empty() || b.len() > MAX_NUMBER_DIGITS || !b.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::Syntax(usage));
    }
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ParseError::Syntax(usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let cases: Vec<(&str, Result<Command, ParseError>)> = vec![
            (
                "USER lee@naver.test",
                Ok(Command::User("lee@naver.test".into())),
            ),
            ("user  Lee", Ok(Command::User("Lee".into()))),
            ("USER", Err(ParseError::Syntax("USER name"))),
            ("USER a b", Err(ParseError::Syntax("USER name"))),
            (
                "PASS correct horse ",
                Ok(Command::Pass("correct horse ".into())),
            ),
            ("PASS", Err(ParseError::Syntax("PASS password"))),
            ("APOP lee 0123", Ok(Command::Apop)),
            (
                "AUTH",
                Ok(Command::Auth {
                    mechanism: None,
                    initial: None,
                }),
            ),
            (
                "auth plain",
                Ok(Command::Auth {
                    mechanism: Some("PLAIN".into()),
                    initial: None,
                }),
            ),
            (
                "AUTH PLAIN AGEAYg==",
                Ok(Command::Auth {
                    mechanism: Some("PLAIN".into()),
                    initial: Some("AGEAYg==".into()),
                }),
            ),
            (
                "AUTH PLAIN a b",
                Err(ParseError::Syntax("AUTH mechanism [initial-response]")),
            ),
            ("STLS", Ok(Command::Stls)),
            ("capa", Ok(Command::Capa)),
            ("STAT", Ok(Command::Stat)),
            (
                "STAT 1",
                Err(ParseError::Syntax("this command takes no arguments")),
            ),
            ("LIST", Ok(Command::List(None))),
            ("LIST 7", Ok(Command::List(Some(7)))),
            ("LIST 0", Ok(Command::List(Some(0)))),
            ("LIST -1", Err(ParseError::Syntax("LIST [msg]"))),
            ("LIST +1", Err(ParseError::Syntax("LIST [msg]"))),
            ("LIST 1 2", Err(ParseError::Syntax("LIST [msg]"))),
            ("LIST 99999999999", Err(ParseError::Syntax("LIST [msg]"))),
            ("LIST 4294967296", Err(ParseError::Syntax("LIST [msg]"))),
            ("RETR 1", Ok(Command::Retr(1))),
            ("RETR", Err(ParseError::Syntax("RETR msg"))),
            ("RETR x", Err(ParseError::Syntax("RETR msg"))),
            ("DELE 2", Ok(Command::Dele(2))),
            ("NOOP", Ok(Command::Noop)),
            ("RSET", Ok(Command::Rset)),
            ("QUIT", Ok(Command::Quit)),
            ("TOP 1 0", Ok(Command::Top(1, 0))),
            ("top 3 10", Ok(Command::Top(3, 10))),
            ("TOP 1", Err(ParseError::Syntax("TOP msg n"))),
            ("UIDL", Ok(Command::Uidl(None))),
            ("UIDL 5", Ok(Command::Uidl(Some(5)))),
            ("XTND XMIT", Err(ParseError::Unknown("XTND".into()))),
            ("", Err(ParseError::Unknown("".into()))),
            ("LISTX", Err(ParseError::Unknown("LISTX".into()))),
            ("LAST", Err(ParseError::Unknown("LAST".into()))),
            ("GET / HTTP/1.1", Err(ParseError::Unknown("GET".into()))),
            (" STAT", Err(ParseError::Unknown("".into()))),
        ];
        for (line, want) in cases {
            assert_eq!(parse_command(line.as_bytes()), want, "{line:?}");
        }
        assert_eq!(parse_command(b"USER \xff"), Err(ParseError::NotUtf8));
        assert_eq!(
            parse_command(b"\x01\x02\x03"),
            Err(ParseError::Unknown("???".into()))
        );
    }
}
