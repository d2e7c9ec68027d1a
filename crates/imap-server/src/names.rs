//! Mailbox names on the wire and LIST patterns. Internally names are UTF-8 with "/" as the
//! hierarchy delimiter; clients without UTF8=ACCEPT see modified UTF-7 (RFC 3501 5.1.3).

use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};

/// The hierarchy delimiter.
pub(crate) const DELIMITER: char = '/';

/// Longest mailbox name accepted, in bytes.
const MAX_NAME: usize = 1024;

/// A mailbox name from a command, as stored; `None` if it is not a valid name.
pub(crate) fn from_wire(m: &Mailbox<'_>, utf8: bool) -> Option<String> {
    let raw = match m {
        Mailbox::Inbox => return Some("INBOX".to_string()),
        Mailbox::Other(o) => o.as_ref(),
    };
    let text = std::str::from_utf8(raw).ok()?;
    let name = if utf8 || !text.contains('&') {
        text.to_string()
    } else {
        proto_imap::mutf7::decode(text)?
    };
    let name = name.trim_end_matches(DELIMITER).to_string();
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with(DELIMITER)
        && !name.contains("//")
        && !name.chars().any(|c| c.is_control() || c == '*' || c == '%');
    if !valid {
        return None;
    }
    // "inbox" in any case is INBOX, also as a hierarchy root (RFC 9051 5.1).
    match name.split_once(DELIMITER) {
        Some((root, rest)) if root.eq_ignore_ascii_case("INBOX") => Some(format!("INBOX/{rest}")),
        None if name.eq_ignore_ascii_case("INBOX") => Some("INBOX".into()),
        _ => Some(name),
    }
}

/// Writes a stored name as a quoted string or literal, UTF-8 or modified UTF-7.
pub(crate) fn to_wire(out: &mut Vec<u8>, name: &str, utf8: bool) {
    proto_imap::mailbox_name(out, name, utf8);
}

/// The pattern of a LIST command, as a string.
pub(crate) fn pattern(reference: &Mailbox<'_>, wildcard: &ListMailbox<'_>, utf8: bool) -> String {
    let reference = match reference {
        Mailbox::Inbox => "INBOX".to_string(),
        Mailbox::Other(o) => String::from_utf8_lossy(o.as_ref()).into_owned(),
    };
    let w = match wildcard {
        ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).into_owned(),
        ListMailbox::String(s) => String::from_utf8_lossy(s.as_ref()).into_owned(),
    };
    let joined = format!("{reference}{w}");
    if utf8 || !joined.contains('&') {
        joined
    } else {
        proto_imap::mutf7::decode(&joined).unwrap_or(joined)
    }
}

/// LIST matching: `*` matches anything, `%` anything but the delimiter (RFC 9051 6.3.9).
/// INBOX matches case-insensitively.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let inbox_fold = |s: &[char]| -> Vec<char> {
        let text: String = s.iter().collect();
        let head = text.get(..5).filter(|h| h.eq_ignore_ascii_case("INBOX"));
        let rest = text.get(5..).unwrap_or("");
        if head.is_some() && (rest.is_empty() || rest.starts_with(DELIMITER)) {
            format!("INBOX{rest}").chars().collect()
        } else {
            s.to_vec()
        }
    };
    glob(&inbox_fold(&p), &inbox_fold(&n))
}

fn glob(p: &[char], n: &[char]) -> bool {
    // Iterative matcher with backtracking over the last star, bounded by O(p * n).
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize, bool)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '*' || p[pi] == '%') {
            star = Some((pi, ni, p[pi] == '%'));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn, percent)) = star {
            if percent && n[sn] == DELIMITER {
                return false;
            }
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1, percent));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*' || *c == '%')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_patterns() {
        assert!(matches("*", "Archive/2026"));
        assert!(matches("%", "Archive"));
        assert!(!matches("%", "Archive/2026"));
        assert!(matches("Archive/%", "Archive/2026"));
        assert!(matches("inbox", "INBOX"));
        assert!(matches("Inbox/%", "INBOX/sub"));
        assert!(!matches("Arch", "Archive"));
        assert!(matches("A*e", "Archive"));
        assert!(matches("*2026", "Archive/2026"));
        assert!(!matches("%2026", "Archive/2026"));
        // multi-byte names never split inside a character
        assert!(matches("한국*", "한국어"));
        assert!(!matches("inbox", "한국어"));
        // multi-byte names never split inside a character
        assert!(matches("한국*", "한국어"));
        assert!(!matches("inbox", "한국어"));
    }
}
