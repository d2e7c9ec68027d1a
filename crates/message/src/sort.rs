//! SORT and THREAD keys (RFC 5256, RFC 5957 DISPLAY): sent date, base subject, first
//! addresses, message ids and references.

use crate::address::Address;
use crate::encoded_word::decode_header_value;
use crate::envelope::from_header;
use crate::header;
use crate::search::fold;

/// Keys for sorting and threading one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SortKeys {
    /// The `Date` header as Unix seconds; `None` if absent or unparsable.
    pub date: Option<i64>,
    /// The RFC 5256 base subject, folded.
    pub subject: String,
    /// The local part of the first `From` address, folded.
    pub from: String,
    /// The local part of the first `To` address, folded.
    pub to: String,
    /// The local part of the first `Cc` address, folded.
    pub cc: String,
    /// RFC 5957 display name of the first `From` address (decoded display name, else the
    /// `mailbox@host`), folded.
    pub display_from: String,
    /// Likewise for the first `To` address.
    pub display_to: String,
    /// The `Message-ID` msg-id, including angle brackets; `None` if absent or invalid.
    pub message_id: Option<String>,
    /// Message ids of `References` (or, if that has none, the first of `In-Reply-To`),
    /// in order, with angle brackets.
    pub references: Vec<String>,
    /// Whether the subject indicated a reply or forward (RFC 5256 base subject extraction
    /// removed a `Re:`/`Fwd:` leader, a `(fwd)` trailer or a `[fwd: ...]` wrapper).
    pub subject_is_reply: bool,
}

/// Computes the sort and thread keys of a raw message.
pub fn sort_keys(raw: &[u8]) -> SortKeys {
    let (h, _) = header::split(raw);
    let env = from_header(h);
    let first = |list: &[Address]| -> Option<Address> {
        list.iter().find(|a| !a.is_group_marker()).cloned()
    };
    let mailbox = |a: &Option<Address>| {
        a.as_ref()
            .and_then(|a| a.mailbox.as_ref())
            .map(|m| fold(&String::from_utf8_lossy(m)))
            .unwrap_or_default()
    };
    let display = |a: &Option<Address>| {
        let Some(a) = a else { return String::new() };
        let name = a
            .name
            .as_ref()
            .map(|n| decode_header_value(n))
            .filter(|n| !n.is_empty());
        let s = match name {
            Some(n) => n,
            None => String::from_utf8_lossy(&a.addr_spec().unwrap_or_default()).into_owned(),
        };
        fold(&s)
    };
    let f = first(&env.from);
    let t = first(&env.to);
    let c = first(&env.cc);
    let (subject, subject_is_reply) = match header::first(h, "subject") {
        Some(s) => base_subject(&decode_header_value(s.value)),
        None => (String::new(), false),
    };
    let date = header::first(h, "date").and_then(|d| parse_date(&d.unfolded()));
    let message_id =
        header::first(h, "message-id").and_then(|v| msg_ids(v.value).into_iter().next());
    let mut references = header::first(h, "references")
        .map(|v| msg_ids(v.value))
        .unwrap_or_default();
    if references.is_empty()
        && let Some(first) =
            header::first(h, "in-reply-to").and_then(|v| msg_ids(v.value).into_iter().next())
    {
        references.push(first);
    }
    SortKeys {
        date,
        subject: fold(&subject),
        from: mailbox(&f),
        to: mailbox(&t),
        cc: mailbox(&c),
        display_from: display(&f),
        display_to: display(&t),
        message_id,
        references,
        subject_is_reply,
    }
}

/// Parses an RFC 5322 date (obsolete forms tolerated) to Unix seconds.
pub fn parse_date(v: &[u8]) -> Option<i64> {
    let s = String::from_utf8_lossy(v);
    let dt = mail_parser::DateTime::parse_rfc822(&s)?;
    dt.is_valid().then(|| dt.to_timestamp())
}

/// Extracts `<...>` message ids (without whitespace or comments inside) from a header value.
pub fn msg_ids(v: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'(' => {
                // Skip a comment.
                let mut depth = 0usize;
                while i < v.len() {
                    match v[i] {
                        b'\\' => i += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
            }
            b'<' => {
                let start = i + 1;
                let Some(len) = v[start..].iter().position(|&b| b == b'>' || b == b'<') else {
                    break;
                };
                let stop = start + len;
                if v[stop] == b'<' {
                    // "<<id>": restart at the inner '<'.
                    i = stop;
                    continue;
                }
                let inner: Vec<u8> = v[start..stop]
                    .iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                if !inner.is_empty() {
                    out.push(format!("<{}>", String::from_utf8_lossy(&inner)));
                }
                i = stop + 1;
            }
            _ => i += 1,
        }
    }
    out
}

fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Strips a `subj-blob` (`[` *BLOBCHAR `]` *WSP) at the start of `s`.
fn strip_blob(s: &str) -> Option<&str> {
    let r = s.strip_prefix('[')?;
    let end = r.find([']', '['])?;
    if r.as_bytes()[end] != b']' {
        return None;
    }
    Some(r[end + 1..].trim_start_matches(is_wsp))
}

/// Strips a `subj-refwd` (("re" / ("fw" ["d"])) *WSP [subj-blob] ":") at the start of `s`.
fn strip_refwd(s: &str) -> Option<&str> {
    let lower = |n: usize| s.get(..n).map(str::to_ascii_lowercase);
    let rest = if lower(3).as_deref() == Some("fwd") {
        &s[3..]
    } else if lower(2).as_deref() == Some("fw") || lower(2).as_deref() == Some("re") {
        &s[2..]
    } else {
        return None;
    };
    let rest = rest.trim_start_matches(is_wsp);
    let rest = strip_blob(rest).unwrap_or(rest);
    rest.strip_prefix(':')
}

/// Strips a `subj-leader` ((*subj-blob subj-refwd) / WSP) at the start of `s`. Returns the
/// rest and whether a `subj-refwd` was removed.
fn strip_leader(s: &str) -> Option<(&str, bool)> {
    if s.starts_with(is_wsp) {
        return Some((s.trim_start_matches(is_wsp), false));
    }
    let mut r = s;
    loop {
        if let Some(after) = strip_refwd(r) {
            return Some((after, true));
        }
        r = strip_blob(r)?;
    }
}

/// The RFC 5256 section 2.1 base subject of an (already RFC 2047 decoded) subject, and
/// whether the subject marked a reply or forward. The result is not case-folded.
pub fn base_subject(subject: &str) -> (String, bool) {
    // (1) Tabs and continuations to spaces, runs of spaces to one.
    let mut s = String::with_capacity(subject.len());
    for c in subject.chars() {
        let c = if matches!(c, '\t' | '\r' | '\n') {
            ' '
        } else {
            c
        };
        if c == ' ' && s.ends_with(' ') {
            continue;
        }
        s.push(c);
    }
    let mut is_reply = false;
    let mut cur: &str = &s;
    loop {
        // (2) Remove trailers: "(fwd)" and WSP.
        loop {
            if let Some(r) = cur.strip_suffix(is_wsp) {
                cur = r;
            } else if cur.len() >= 5
                && cur.is_char_boundary(cur.len() - 5)
                && cur[cur.len() - 5..].eq_ignore_ascii_case("(fwd)")
            {
                cur = &cur[..cur.len() - 5];
                is_reply = true;
            } else {
                break;
            }
        }
        // (3)-(5) Remove leaders and blobs until nothing changes.
        loop {
            let mut changed = false;
            while let Some((r, refwd)) = strip_leader(cur) {
                cur = r;
                is_reply |= refwd;
                changed = true;
            }
            // (4) Once no leader matches, removing one blob cannot make a leader match at
            // the next blob (step 3 already tried every blob prefix), so remove the whole run
            // of blobs at once, keeping the last one if nothing would follow it.
            while let Some(r) = strip_blob(cur) {
                if r.is_empty() {
                    break;
                }
                cur = r;
                changed = true;
            }
            if !changed {
                break;
            }
        }
        // (6) "[fwd:" ... "]"
        if cur.len() >= 6
            && cur.is_char_boundary(5)
            && cur[..5].eq_ignore_ascii_case("[fwd:")
            && cur.ends_with(']')
        {
            cur = &cur[5..cur.len() - 1];
            is_reply = true;
            continue;
        }
        break;
    }
    (cur.to_owned(), is_reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects() {
        let cases = [
            ("Hello", "Hello", false),
            ("Re: Hello", "Hello", true),
            ("RE: re: Re:Hello", "Hello", true),
            ("Fwd: Hello", "Hello", true),
            ("Fw: Hello", "Hello", true),
            ("Hello (fwd)", "Hello", true),
            ("Hello (FWD)  (fwd) ", "Hello", true),
            ("[fwd: Hello]", "Hello", true),
            ("[Fwd: Re: Hello (fwd)]", "Hello", true),
            ("[list] Re: Hello", "Hello", true),
            ("Re [list]: Hello", "Hello", true),
            ("[list] Hello", "Hello", false),
            ("[list]", "[list]", false),
            ("[a][b] Re: [c] Hello", "Hello", true),
            ("  Hello\t  world  ", "Hello world", false),
            ("Re:", "", true),
            ("Reply: x", "Reply: x", false),
            ("", "", false),
            ("Re: 안녕하세요", "안녕하세요", true),
            ("[ 한 ] 한국어", "한국어", false),
        ];
        for (input, want, reply) in cases {
            assert_eq!(base_subject(input), (want.to_owned(), reply), "{input:?}");
        }
    }

    #[test]
    fn ids() {
        assert_eq!(
            msg_ids(b"<a@b> (c <x@y>)\r\n <c@\r\n d> junk <"),
            vec!["<a@b>".to_owned(), "<c@d>".to_owned()]
        );
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date(b"Thu, 1 Jan 1970 00:00:00 +0000"), Some(0));
        assert_eq!(
            parse_date(b"Fri, 21 Nov 1997 09:55:06 -0600"),
            Some(880127706)
        );
        assert_eq!(parse_date(b"garbage"), None);
    }
}
