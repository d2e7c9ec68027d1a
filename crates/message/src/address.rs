//! RFC 5322 address-list parsing into IMAP ENVELOPE address structures, tolerant of obsolete
//! and broken syntax (routes, missing domains, unterminated quotes, stray specials).

/// One address of an IMAP ENVELOPE address list (RFC 9051 7.5.2).
///
/// Group syntax yields a start marker (`mailbox` = group name, `host` = `None`) and an end
/// marker (all fields `None`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    /// The display name as raw header text: RFC 2047 encoded words left encoded, quotes
    /// removed, quoted-pairs unescaped, runs of whitespace collapsed to one space. When the
    /// address has no display name but a trailing comment (`user@host (Name)`), the comment.
    pub name: Option<Vec<u8>>,
    /// The obsolete source route (`@a,@b`), if any.
    pub adl: Option<Vec<u8>>,
    /// The local part (unquoted), or the group name of a group start marker.
    pub mailbox: Option<Vec<u8>>,
    /// The domain. An address without a domain gets `.MISSING-HOST-NAME.` (as Dovecot does)
    /// so that it cannot be mistaken for a group marker.
    pub host: Option<Vec<u8>>,
}

/// The host used for addresses that lack a domain.
pub const MISSING_HOST: &[u8] = b".MISSING-HOST-NAME.";

impl Address {
    /// Whether this is a group start or end marker.
    pub fn is_group_marker(&self) -> bool {
        self.host.is_none()
    }

    /// `mailbox@host` for a real address.
    pub fn addr_spec(&self) -> Option<Vec<u8>> {
        let m = self.mailbox.as_ref()?;
        let h = self.host.as_ref()?;
        let mut v = m.clone();
        if !h.is_empty() {
            v.push(b'@');
            v.extend_from_slice(h);
        }
        Some(v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Atom,
    Quoted(Vec<u8>),
    Comment(Vec<u8>),
    Literal,
    Special(u8),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

fn lex(s: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        let start = i;
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => {
                let mut depth = 0usize;
                let mut text = Vec::new();
                while i < s.len() {
                    let c = s[i];
                    match c {
                        b'\\' if i + 1 < s.len() => {
                            text.push(s[i + 1]);
                            i += 2;
                            continue;
                        }
                        b'(' => {
                            if depth > 0 {
                                text.push(c);
                            }
                            depth += 1;
                        }
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                            text.push(c);
                        }
                        _ => text.push(c),
                    }
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Comment(text),
                    start,
                    end: i,
                });
            }
            b'"' => {
                i += 1;
                let mut text = Vec::new();
                while i < s.len() && s[i] != b'"' {
                    if s[i] == b'\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    if !matches!(s[i], b'\r' | b'\n') {
                        text.push(s[i]);
                    }
                    i += 1;
                }
                i = (i + 1).min(s.len());
                out.push(Token {
                    tok: Tok::Quoted(text),
                    start,
                    end: i,
                });
            }
            b'[' => {
                while i < s.len() && s[i] != b']' {
                    i += 1;
                }
                i = (i + 1).min(s.len());
                out.push(Token {
                    tok: Tok::Literal,
                    start,
                    end: i,
                });
            }
            b')' | b'<' | b'>' | b']' | b':' | b';' | b'@' | b'\\' | b',' | b'.' => {
                i += 1;
                out.push(Token {
                    tok: Tok::Special(b),
                    start,
                    end: i,
                });
            }
            _ => {
                while i < s.len()
                    && !matches!(
                        s[i],
                        b' ' | b'\t'
                            | b'\r'
                            | b'\n'
                            | b'('
                            | b')'
                            | b'<'
                            | b'>'
                            | b'['
                            | b']'
                            | b':'
                            | b';'
                            | b'@'
                            | b'\\'
                            | b','
                            | b'.'
                            | b'"'
                    )
                {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Atom,
                    start,
                    end: i,
                });
            }
        }
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    toks: Vec<Token>,
    pos: usize,
}

fn collapse_ws(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    for &b in v {
        let b = if matches!(b, b'\t' | b'\r' | b'\n') {
            b' '
        } else {
            b
        };
        if b == b' ' && (out.is_empty() || out.last() == Some(&b' ')) {
            continue;
        }
        out.push(b);
    }
    while out.last() == Some(&b' ') {
        out.pop();
    }
    out
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn text(&self, t: &Token) -> Vec<u8> {
        match &t.tok {
            Tok::Quoted(v) => v.clone(),
            Tok::Comment(v) => v.clone(),
            _ => self.s[t.start..t.end].to_vec(),
        }
    }

    /// Joins tokens as a phrase: a single space wherever the source had a gap.
    fn phrase(&self, toks: &[Token]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev_end: Option<usize> = None;
        for t in toks {
            if matches!(t.tok, Tok::Comment(_)) {
                continue;
            }
            if let Some(pe) = prev_end
                && t.start > pe
            {
                out.push(b' ');
            }
            out.extend(self.text(t));
            prev_end = Some(t.end);
        }
        collapse_ws(&out)
    }

    /// Joins tokens without spaces (local parts, domains, routes).
    fn joined(&self, toks: &[Token]) -> Vec<u8> {
        let mut out = Vec::new();
        for t in toks {
            if !matches!(t.tok, Tok::Comment(_)) {
                out.extend(self.text(t));
            }
        }
        out
    }

    fn first_comment(toks: &[Token]) -> Option<Vec<u8>> {
        toks.iter().find_map(|t| match &t.tok {
            Tok::Comment(c) => {
                let c = collapse_ws(c);
                (!c.is_empty()).then_some(c)
            }
            _ => None,
        })
    }

    /// Parses the inside of `<...>` (the `<` already consumed) up to and including `>`.
    fn angle(&mut self, name: Option<Vec<u8>>) -> Address {
        let start = self.pos;
        while let Some(t) = self.peek() {
            if *t == Tok::Special(b'>') {
                break;
            }
            self.pos += 1;
        }
        let inner: Vec<Token> = self.toks[start..self.pos].to_vec();
        if self.pos < self.toks.len() {
            self.pos += 1; // '>'
        }
        // Route: everything up to the last ':'.
        let (adl, spec) = match inner.iter().rposition(|t| t.tok == Tok::Special(b':')) {
            Some(i) => {
                let r = self.joined(&inner[..i]);
                (if r.is_empty() { None } else { Some(r) }, &inner[i + 1..])
            }
            None => (None, &inner[..]),
        };
        let mut a = self.addr_spec(spec);
        a.name = name;
        a.adl = adl;
        if spec.is_empty() {
            // `<>`: the null address.
            a.mailbox = Some(Vec::new());
            a.host = Some(Vec::new());
        }
        a
    }

    fn addr_spec(&self, toks: &[Token]) -> Address {
        let (local, domain) = match toks.iter().rposition(|t| t.tok == Tok::Special(b'@')) {
            Some(i) => (&toks[..i], Some(&toks[i + 1..])),
            None => (toks, None),
        };
        let host = match domain.map(|d| self.joined(d)) {
            Some(h) if !h.is_empty() => h,
            _ => MISSING_HOST.to_vec(),
        };
        Address {
            name: None,
            adl: None,
            mailbox: Some(self.joined(local)),
            host: Some(host),
        }
    }

    fn list(&mut self) -> Vec<Address> {
        let mut out = Vec::new();
        let mut in_group = false;
        while self.pos < self.toks.len() {
            // Collect one item: tokens up to ',' ';' ':' '<' at this level.
            let start = self.pos;
            while let Some(t) = self.peek() {
                if matches!(
                    t,
                    Tok::Special(b',')
                        | Tok::Special(b';')
                        | Tok::Special(b':')
                        | Tok::Special(b'<')
                ) {
                    break;
                }
                self.pos += 1;
            }
            let item: Vec<Token> = self.toks[start..self.pos].to_vec();
            match self.peek().cloned() {
                Some(Tok::Special(b':')) if !in_group && !item.is_empty() => {
                    self.pos += 1;
                    out.push(Address {
                        name: None,
                        adl: None,
                        mailbox: Some(self.phrase(&item)),
                        host: None,
                    });
                    in_group = true;
                    continue;
                }
                Some(Tok::Special(b'<')) => {
                    self.pos += 1;
                    let name = self.phrase(&item);
                    let name = if name.is_empty() { None } else { Some(name) };
                    let a = self.angle(name);
                    out.push(a);
                    // Skip junk up to the next separator.
                    while let Some(t) = self.peek() {
                        if matches!(t, Tok::Special(b',') | Tok::Special(b';')) {
                            break;
                        }
                        self.pos += 1;
                    }
                    continue;
                }
                Some(Tok::Special(b':')) => {
                    // A stray ':' (nested group or junk): treat as part of the item.
                    self.pos += 1;
                    if !item.iter().all(|t| matches!(t.tok, Tok::Comment(_))) {
                        let mut a = self.addr_spec(&item);
                        a.name = Self::first_comment(&item);
                        out.push(a);
                    }
                    continue;
                }
                _ => {}
            }
            // A bare addr-spec (or nothing) followed by ',' ';' or the end.
            if !item.iter().all(|t| matches!(t.tok, Tok::Comment(_))) {
                let mut a = self.addr_spec(&item);
                a.name = Self::first_comment(&item);
                out.push(a);
            }
            match self.peek() {
                Some(Tok::Special(b';')) => {
                    self.pos += 1;
                    if in_group {
                        out.push(Address::default());
                        in_group = false;
                    }
                }
                Some(_) => self.pos += 1,
                None => {}
            }
        }
        if in_group {
            out.push(Address::default());
        }
        out
    }
}

/// Parses an address-list header value (raw, possibly folded) into ENVELOPE addresses.
pub fn parse_address_list(value: &[u8]) -> Vec<Address> {
    let mut p = Parser {
        s: value,
        toks: lex(value),
        pos: 0,
    };
    p.list()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(
        name: Option<&str>,
        adl: Option<&str>,
        mailbox: Option<&str>,
        host: Option<&str>,
    ) -> Address {
        let f = |s: Option<&str>| s.map(|s| s.as_bytes().to_vec());
        Address {
            name: f(name),
            adl: f(adl),
            mailbox: f(mailbox),
            host: f(host),
        }
    }

    #[test]
    fn forms() {
        assert_eq!(
            parse_address_list(b"\"Doe, John\" <john@example.com>, jane@example.org (Jane D.)"),
            vec![
                a(Some("Doe, John"), None, Some("john"), Some("example.com")),
                a(Some("Jane D."), None, Some("jane"), Some("example.org")),
            ]
        );
        assert_eq!(
            parse_address_list(b"John Q. \"Public\"\r\n <\"john q\"@[1.2.3.4]>"),
            vec![a(
                Some("John Q. Public"),
                None,
                Some("john q"),
                Some("[1.2.3.4]")
            )]
        );
        assert_eq!(
            parse_address_list(b"=?utf-8?B?7ZWc?= <a@b>"),
            vec![a(Some("=?utf-8?B?7ZWc?="), None, Some("a"), Some("b"))]
        );
        assert_eq!(
            parse_address_list(b"<@r1,@r2:u@h>"),
            vec![a(None, Some("@r1,@r2"), Some("u"), Some("h"))]
        );
        assert_eq!(
            parse_address_list(b"root"),
            vec![a(None, None, Some("root"), Some(".MISSING-HOST-NAME."))]
        );
        assert_eq!(parse_address_list(b""), vec![]);
        assert_eq!(parse_address_list(b" , ,"), vec![]);
    }

    #[test]
    fn groups() {
        assert_eq!(
            parse_address_list(b"undisclosed-recipients:;"),
            vec![
                a(None, None, Some("undisclosed-recipients"), None),
                Address::default()
            ]
        );
        assert_eq!(
            parse_address_list(b"Team: a@x, B <b@y>; c@z"),
            vec![
                a(None, None, Some("Team"), None),
                a(None, None, Some("a"), Some("x")),
                a(Some("B"), None, Some("b"), Some("y")),
                Address::default(),
                a(None, None, Some("c"), Some("z")),
            ]
        );
        assert_eq!(
            parse_address_list(b"G: a@x"),
            vec![
                a(None, None, Some("G"), None),
                a(None, None, Some("a"), Some("x")),
                Address::default()
            ]
        );
    }
}
