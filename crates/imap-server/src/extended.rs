//! Syntax imap-codec does not parse, handled before it: `SEARCH RETURN (...)` (ESEARCH,
//! RFC 4731), the `$` saved result (SEARCHRES, RFC 5182) and the extended LIST forms
//! (LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819). A small tokenizer splits the command
//! (with literals inlined) into atoms, strings and parentheses; what is left after taking
//! these clauses out is rebuilt as plain IMAP and given to imap-codec.

/// One token of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// An atom (or number, or sequence set).
    Atom(String),
    /// A quoted string or literal, unquoted.
    Str(Vec<u8>),
    /// `(`
    Open,
    /// `)`
    Close,
}

/// Splits a command line (with inline literals, CRLF-terminated) into tokens. `None` if it is
/// malformed; then imap-codec gets it unchanged and reports the error.
pub(crate) fn tokenize(bytes: &[u8]) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\r' | b'\n' => i += 1,
            b'(' => {
                out.push(Token::Open);
                i += 1;
            }
            b')' => {
                out.push(Token::Close);
                i += 1;
            }
            b'"' => {
                let mut s = Vec::new();
                i += 1;
                loop {
                    match *bytes.get(i)? {
                        b'"' => break,
                        b'\\' => {
                            s.push(*bytes.get(i + 1)?);
                            i += 2;
                        }
                        c => {
                            s.push(c);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push(Token::Str(s));
            }
            b'{' | b'~' => {
                let start = if bytes[i] == b'~' { i + 2 } else { i + 1 };
                let close = start + bytes[start..].iter().position(|c| *c == b'}')?;
                let n: usize = std::str::from_utf8(&bytes[start..close])
                    .ok()?
                    .trim_end_matches(['+', '-'])
                    .parse()
                    .ok()?;
                let data_start = close + 3; // "}\r\n"
                out.push(Token::Str(
                    bytes.get(data_start..data_start.checked_add(n)?)?.to_vec(),
                ));
                i = data_start + n;
            }
            _ => {
                let start = i;
                while i < bytes.len()
                    && !matches!(bytes[i], b' ' | b'(' | b')' | b'\r' | b'\n' | b'"')
                {
                    // An atom may contain a bracketed part with spaces (BODY[HEADER.FIELDS (A B)]).
                    if bytes[i] == b'[' {
                        let close = bytes[i..].iter().position(|c| *c == b']')?;
                        i += close;
                    }
                    i += 1;
                }
                out.push(Token::Atom(
                    String::from_utf8_lossy(&bytes[start..i]).into_owned(),
                ));
            }
        }
    }
    Some(out)
}

/// Writes tokens back as an IMAP command line (strings as literals when needed).
pub(crate) fn render(tokens: &[Token]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev_open = true;
    for t in tokens {
        if !prev_open && !matches!(t, Token::Close) {
            out.push(b' ');
        }
        prev_open = false;
        match t {
            Token::Atom(a) => out.extend_from_slice(a.as_bytes()),
            Token::Str(s) => {
                if s.iter()
                    .all(|c| *c >= 0x20 && *c != b'"' && *c != b'\\' && *c < 0x7f)
                {
                    out.push(b'"');
                    out.extend_from_slice(s);
                    out.push(b'"');
                } else {
                    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
                    out.extend_from_slice(s);
                }
            }
            Token::Open => {
                out.push(b'(');
                prev_open = true;
            }
            Token::Close => out.push(b')'),
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn atom_is(t: Option<&Token>, word: &str) -> bool {
    matches!(t, Some(Token::Atom(a)) if a.eq_ignore_ascii_case(word))
}

/// Takes a parenthesized list of atoms/strings starting at `i` (which must be `(`); returns
/// the items (nested lists flattened into their own entries with the parens) and the index after.
fn take_list(tokens: &[Token], i: usize) -> Option<(Vec<Token>, usize)> {
    if tokens.get(i) != Some(&Token::Open) {
        return None;
    }
    let mut depth = 0;
    let mut j = i;
    loop {
        match tokens.get(j)? {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if depth == 0 {
                    return Some((tokens[i + 1..j].to_vec(), j + 1));
                }
            }
            _ => {}
        }
        j += 1;
    }
}

/// ESEARCH result options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SearchReturn {
    pub(crate) min: bool,
    pub(crate) max: bool,
    pub(crate) all: bool,
    pub(crate) count: bool,
    pub(crate) save: bool,
}

/// A SEARCH (or UID SEARCH, SORT, UID SORT) with RETURN options taken out.
pub(crate) struct ExtendedSearch {
    /// `RETURN (...)` options; empty `RETURN ()` means ALL (RFC 4731 3.1).
    pub(crate) ret: SearchReturn,
    /// The command without the RETURN clause, for imap-codec.
    pub(crate) rest: Vec<u8>,
}

/// Finds `[UID] SEARCH RETURN (...)` and takes the clause out.
pub(crate) fn extended_search(tokens: &[Token]) -> Option<ExtendedSearch> {
    let verb = if atom_is(tokens.get(1), "UID") { 2 } else { 1 };
    if !atom_is(tokens.get(verb), "SEARCH") || !atom_is(tokens.get(verb + 1), "RETURN") {
        return None;
    }
    let (opts, after) = take_list(tokens, verb + 2)?;
    let mut ret = SearchReturn::default();
    for o in &opts {
        match o {
            Token::Atom(a) => match a.to_ascii_uppercase().as_str() {
                "MIN" => ret.min = true,
                "MAX" => ret.max = true,
                "ALL" => ret.all = true,
                "COUNT" => ret.count = true,
                "SAVE" => ret.save = true,
                _ => return None,
            },
            _ => return None,
        }
    }
    if !(ret.min || ret.max || ret.count || ret.save) {
        ret.all = true;
    }
    let mut rest: Vec<Token> = tokens[..verb + 1].to_vec();
    rest.extend_from_slice(&tokens[after..]);
    Some(ExtendedSearch {
        ret,
        rest: render(&rest),
    })
}

/// Whether the command uses the saved result `$` (SEARCHRES).
pub(crate) fn uses_saved(tokens: &[Token]) -> bool {
    tokens
        .iter()
        .any(|t| matches!(t, Token::Atom(a) if a == "$"))
}

/// Replaces `$` where it stands for the saved result (RFC 5182 2.1) with `uids`, the saved
/// UIDs: as the sequence set of FETCH, STORE, COPY, MOVE and UID EXPUNGE, which then become
/// their UID forms; and in the criteria of SEARCH, SORT and THREAD, as a search key (written
/// `UID <uids>`, so that the command keeps its numbering) or as the argument of the UID key.
/// Anywhere else (a keyword, a mailbox name, a search string) `$` is an ordinary atom.
/// `None` when the command does not use the saved result.
pub(crate) fn substitute_saved(tokens: &[Token], uids: &str) -> Option<Vec<u8>> {
    let is_uid = atom_is(tokens.get(1), "UID");
    let verb_at = if is_uid { 2 } else { 1 };
    let Some(Token::Atom(verb)) = tokens.get(verb_at) else {
        return None;
    };
    let dollar = |t: Option<&Token>| matches!(t, Some(Token::Atom(a)) if a == "$");
    let mut t = tokens.to_vec();
    match verb.to_ascii_uppercase().as_str() {
        "FETCH" | "STORE" | "COPY" | "MOVE" | "EXPUNGE" => {
            if !dollar(t.get(verb_at + 1)) {
                return None;
            }
            t[verb_at + 1] = Token::Atom(uids.to_string());
            if !is_uid {
                t.insert(1, Token::Atom("UID".into()));
            }
        }
        verb @ ("SEARCH" | "SORT" | "THREAD") => {
            // Where the search keys start: after CHARSET for SEARCH, after the sort criteria
            // and the charset for SORT, after the algorithm and the charset for THREAD.
            let mut i = verb_at + 1;
            match verb {
                "SEARCH" if atom_is(t.get(i), "CHARSET") => i += 2,
                "SORT" => {
                    let mut depth = 0usize;
                    while let Some(tok) = t.get(i) {
                        i += 1;
                        match tok {
                            Token::Open => depth += 1,
                            Token::Close => depth = depth.saturating_sub(1),
                            _ => {}
                        }
                        if depth == 0 {
                            break;
                        }
                    }
                    i += 1;
                }
                "THREAD" => i += 2,
                _ => {}
            }
            let mut found = false;
            while i < t.len() {
                let Token::Atom(key) = &t[i] else {
                    i += 1;
                    continue;
                };
                let key = key.to_ascii_uppercase();
                if key == "$" {
                    t[i] = Token::Atom(format!("UID {uids}"));
                    found = true;
                } else if key == "UID" && dollar(t.get(i + 1)) {
                    t[i + 1] = Token::Atom(uids.to_string());
                    found = true;
                }
                i += 1 + search_key_arguments(&key, t.get(i + 1));
            }
            if !found {
                return None;
            }
        }
        _ => return None,
    }
    Some(render(&t))
}

/// `APPEND mailbox [flags] [date] UTF8 (literal8)` (RFC 6855 4) as the plain APPEND of the
/// same message; `None` if the command has no such part.
pub(crate) fn unwrap_utf8_append(tokens: &[Token]) -> Option<Vec<u8>> {
    let at = tokens.windows(4).position(|w| {
        atom_is(w.first(), "UTF8")
            && w[1] == Token::Open
            && matches!(w[2], Token::Str(_))
            && w[3] == Token::Close
    })?;
    let mut t = tokens.to_vec();
    let message = t[at + 2].clone();
    t.splice(at..at + 4, [message]);
    Some(render(&t))
}

/// How many arguments follow a search key (RFC 9051 6.4.4 and the extensions we parse); a
/// `$` among them is a value, not the saved result.
fn search_key_arguments(key: &str, next: Option<&Token>) -> usize {
    match key {
        "HEADER" => 2,
        // RFC 7162 3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer.
        "MODSEQ" if matches!(next, Some(Token::Str(_))) => 3,
        "BCC" | "BEFORE" | "BODY" | "CC" | "FROM" | "KEYWORD" | "LARGER" | "MODSEQ" | "ON"
        | "OLDER" | "SENTBEFORE" | "SENTON" | "SENTSINCE" | "SINCE" | "SMALLER" | "SUBJECT"
        | "TEXT" | "TO" | "UID" | "UNKEYWORD" | "YOUNGER" => 1,
        _ => 0,
    }
}

/// A LIST in the extended form.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExtendedList {
    pub(crate) reference: Vec<u8>,
    pub(crate) patterns: Vec<Vec<u8>>,
    /// Selection: SUBSCRIBED.
    pub(crate) subscribed: bool,
    /// Selection: SPECIAL-USE.
    pub(crate) special_use_only: bool,
    /// Selection: RECURSIVEMATCH.
    pub(crate) recursive_match: bool,
    /// RETURN (SUBSCRIBED).
    pub(crate) ret_subscribed: bool,
    /// RETURN (SPECIAL-USE) — attributes are always sent; kept for completeness.
    pub(crate) ret_special_use: bool,
    /// RETURN (STATUS (...)): the status item names.
    pub(crate) ret_status: Option<Vec<String>>,
}

/// Parses `LIST [(selection)] reference (pattern | (patterns)) [RETURN (options)]` when it
/// uses any extended syntax; `None` for the basic form (imap-codec handles it).
pub(crate) fn extended_list(tokens: &[Token]) -> Option<Result<ExtendedList, &'static str>> {
    if !atom_is(tokens.get(1), "LIST") {
        return None;
    }
    let extended = tokens.len() > 4
        || tokens.get(2) == Some(&Token::Open)
        || tokens.get(3) == Some(&Token::Open);
    if !extended {
        return None;
    }
    Some(parse_list(tokens))
}

fn bytes_of(t: &Token) -> Option<Vec<u8>> {
    match t {
        Token::Atom(a) => Some(a.as_bytes().to_vec()),
        Token::Str(s) => Some(s.clone()),
        _ => None,
    }
}

fn parse_list(tokens: &[Token]) -> Result<ExtendedList, &'static str> {
    let mut l = ExtendedList::default();
    let mut i = 2;
    if tokens.get(i) == Some(&Token::Open) {
        let (sel, after) = take_list(tokens, i).ok_or("unbalanced selection options")?;
        for s in sel {
            match &s {
                Token::Atom(a) => match a.to_ascii_uppercase().as_str() {
                    "SUBSCRIBED" => l.subscribed = true,
                    "SPECIAL-USE" => l.special_use_only = true,
                    "RECURSIVEMATCH" => l.recursive_match = true,
                    "REMOTE" => {}
                    _ => return Err("unknown LIST selection option"),
                },
                _ => return Err("bad LIST selection option"),
            }
        }
        if l.recursive_match && !l.subscribed {
            // RFC 5258 3.1: RECURSIVEMATCH needs another selection option.
            return Err("RECURSIVEMATCH needs SUBSCRIBED");
        }
        i = after;
    }
    l.reference = tokens
        .get(i)
        .and_then(bytes_of)
        .ok_or("missing reference")?;
    i += 1;
    if tokens.get(i) == Some(&Token::Open) {
        let (pats, after) = take_list(tokens, i).ok_or("unbalanced patterns")?;
        l.patterns = pats.iter().filter_map(bytes_of).collect();
        i = after;
    } else {
        l.patterns
            .push(tokens.get(i).and_then(bytes_of).ok_or("missing pattern")?);
        i += 1;
    }
    if atom_is(tokens.get(i), "RETURN") {
        let (opts, after) = take_list(tokens, i + 1).ok_or("bad RETURN options")?;
        let mut j = 0;
        while j < opts.len() {
            match &opts[j] {
                Token::Atom(a) => match a.to_ascii_uppercase().as_str() {
                    "SUBSCRIBED" => l.ret_subscribed = true,
                    "CHILDREN" => {}
                    "SPECIAL-USE" => l.ret_special_use = true,
                    "STATUS" => {
                        let (items, next) = take_list(&opts, j + 1).ok_or("STATUS needs a list")?;
                        l.ret_status = Some(
                            items
                                .iter()
                                .filter_map(|t| {
                                    if let Token::Atom(a) = t {
                                        Some(a.to_ascii_uppercase())
                                    } else {
                                        None
                                    }
                                })
                                .collect(),
                        );
                        j = next;
                        continue;
                    }
                    _ => return Err("unknown LIST return option"),
                },
                _ => return Err("bad LIST return option"),
            }
            j += 1;
        }
        i = after;
    }
    if i != tokens.len() {
        return Err("unexpected data after LIST arguments");
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_return_is_taken_out() {
        let t =
            tokenize(b"a1 UID SEARCH RETURN (MIN COUNT SAVE) SUBJECT {5}\r\nhello\r\n").unwrap();
        let e = extended_search(&t).unwrap();
        assert_eq!(
            e.ret,
            SearchReturn {
                min: true,
                count: true,
                save: true,
                ..Default::default()
            }
        );
        assert_eq!(e.rest, b"a1 UID SEARCH SUBJECT \"hello\"\r\n");
        let t = tokenize(b"a1 SEARCH RETURN () ALL\r\n").unwrap();
        assert!(extended_search(&t).unwrap().ret.all);
        assert!(extended_search(&tokenize(b"a1 SEARCH ALL\r\n").unwrap()).is_none());
    }

    #[test]
    fn dollar_is_substituted() {
        let t = tokenize(b"a1 FETCH $ FLAGS\r\n").unwrap();
        assert!(uses_saved(&t));
        for (line, want) in [
            (
                &b"a2 UID FETCH $ (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])\r\n"[..],
                Some("a2 UID FETCH 1:3,7 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])\r\n"),
            ),
            (b"a3 COPY $ Trash\r\n", Some("a3 UID COPY 1:3,7 Trash\r\n")),
            // Search keys keep the command's numbering; UID's argument takes the set alone.
            (
                b"a4 SEARCH NOT $ UID $\r\n",
                Some("a4 SEARCH NOT UID 1:3,7 UID 1:3,7\r\n"),
            ),
            (
                b"a5 SORT (REVERSE ARRIVAL) UTF-8 $\r\n",
                Some("a5 SORT (REVERSE ARRIVAL) UTF-8 UID 1:3,7\r\n"),
            ),
            (
                b"a6 THREAD ORDEREDSUBJECT UTF-8 OR $ SUBJECT $\r\n",
                Some("a6 THREAD ORDEREDSUBJECT UTF-8 OR UID 1:3,7 SUBJECT $\r\n"),
            ),
            // Elsewhere `$` is an ordinary atom: a keyword, a mailbox, a search string.
            (b"a7 STORE 1 +FLAGS ($)\r\n", None),
            (b"a8 COPY 1 $\r\n", None),
            (b"a9 SEARCH HEADER X-Tag $ KEYWORD $\r\n", None),
        ] {
            let t = tokenize(line).unwrap();
            let got = substitute_saved(&t, "1:3,7").map(|b| String::from_utf8(b).unwrap());
            assert_eq!(got.as_deref(), want, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn list_extended_forms() {
        let t = tokenize(b"a LIST (SUBSCRIBED) \"\" (\"INBOX\" \"Sent*\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n").unwrap();
        let l = extended_list(&t).unwrap().unwrap();
        assert!(l.subscribed);
        assert_eq!(l.patterns, vec![b"INBOX".to_vec(), b"Sent*".to_vec()]);
        assert_eq!(l.ret_status, Some(vec!["MESSAGES".into(), "UNSEEN".into()]));
        assert!(extended_list(&tokenize(b"a LIST \"\" *\r\n").unwrap()).is_none());
        assert!(
            extended_list(&tokenize(b"a LIST (BOGUS) \"\" *\r\n").unwrap())
                .unwrap()
                .is_err()
        );
    }
}
