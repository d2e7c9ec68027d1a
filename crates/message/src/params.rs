//! Parsing of structured MIME header values with parameters (`Content-Type`,
//! `Content-Disposition`), including RFC 2231 continuations, charsets and languages.

use crate::charset;

/// A parsed `value; attr=val; ...` header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParamValue {
    /// The main value, comments removed, trimmed and lower-cased (e.g. `text/plain`).
    pub value: String,
    /// Parameters in order of first appearance: lower-cased attribute names (RFC 2231 `*`
    /// suffixes removed), values unquoted and, for RFC 2231 values, decoded to UTF-8.
    pub params: Vec<(String, String)>,
}

impl ParamValue {
    /// The value of parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Removes `(comments)` (nested, with quoted-pairs) outside quoted strings.
fn strip_comments(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut depth = 0usize;
    let mut in_quote = false;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if depth > 0 {
            match b {
                b'\\' => i += 1,
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
        } else if in_quote {
            out.push(b);
            match b {
                b'\\' => {
                    if let Some(&n) = s.get(i + 1) {
                        out.push(n);
                    }
                    i += 1;
                }
                b'"' => in_quote = false,
                _ => {}
            }
        } else {
            match b {
                b'(' => depth = 1,
                b'"' => {
                    in_quote = true;
                    out.push(b);
                }
                _ => out.push(b),
            }
        }
        i += 1;
    }
    out
}

struct RawParam {
    attr: String,
    value: Vec<u8>,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn raw_params(s: &[u8]) -> Vec<RawParam> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        while i < s.len() && (is_ws(s[i]) || s[i] == b';') {
            i += 1;
        }
        let attr_start = i;
        while i < s.len() && s[i] != b'=' && s[i] != b';' {
            i += 1;
        }
        if i >= s.len() || s[i] == b';' {
            continue; // a parameter without a value: ignore
        }
        let attr = String::from_utf8_lossy(trim(&s[attr_start..i])).to_ascii_lowercase();
        i += 1; // '='
        while i < s.len() && is_ws(s[i]) {
            i += 1;
        }
        let value = if s.get(i) == Some(&b'"') {
            i += 1;
            let mut v = Vec::new();
            while i < s.len() && s[i] != b'"' {
                if s[i] == b'\\' && i + 1 < s.len() {
                    i += 1;
                }
                if !matches!(s[i], b'\r' | b'\n') {
                    v.push(s[i]);
                }
                i += 1;
            }
            // Skip the closing quote and anything up to the next ';'.
            while i < s.len() && s[i] != b';' {
                i += 1;
            }
            v
        } else {
            let start = i;
            while i < s.len() && s[i] != b';' {
                i += 1;
            }
            let v = trim(&s[start..i]);
            // Comments were removed already; tolerate spaces inside unquoted values.
            v.iter()
                .copied()
                .filter(|&b| b != b'\r' && b != b'\n')
                .collect()
        };
        if !attr.is_empty() && !attr.bytes().any(is_ws) {
            out.push(RawParam { attr, value });
        }
    }
    out
}

fn trim(s: &[u8]) -> &[u8] {
    crate::header::trim(s)
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Splits an RFC 2231 attribute into (base name, section number, extended).
fn split_2231(attr: &str) -> (&str, Option<u32>, bool) {
    let (a, ext) = match attr.strip_suffix('*') {
        Some(a) => (a, true),
        None => (attr, false),
    };
    if let Some((base, num)) = a.rsplit_once('*')
        && !num.is_empty()
        && num.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = num.parse()
    {
        return (base, Some(n), ext);
    }
    if ext {
        (a, None, true)
    } else {
        (attr, None, false)
    }
}

/// Parses a structured header value such as `text/plain; charset="utf-8"`.
pub fn parse(raw: &[u8]) -> ParamValue {
    let clean = strip_comments(raw);
    let semi = clean.iter().position(|&b| b == b';').unwrap_or(clean.len());
    let value: String = String::from_utf8_lossy(trim(&clean[..semi]))
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    let raw = raw_params(clean.get(semi..).unwrap_or_default());

    // Group by base name in order of first appearance.
    struct Group {
        base: String,
        plain: Option<Vec<u8>>,
        sections: Vec<(Option<u32>, bool, Vec<u8>)>,
    }
    let mut groups: Vec<Group> = Vec::new();
    for p in raw {
        let (base, num, ext) = split_2231(&p.attr);
        let idx = match groups.iter().position(|g| g.base == base) {
            Some(i) => i,
            None => {
                groups.push(Group {
                    base: base.to_owned(),
                    plain: None,
                    sections: Vec::new(),
                });
                groups.len() - 1
            }
        };
        let g = &mut groups[idx];
        if num.is_none() && !ext {
            if g.plain.is_none() {
                g.plain = Some(p.value);
            }
        } else {
            g.sections.push((num, ext, p.value));
        }
    }

    let mut params = Vec::with_capacity(groups.len());
    for mut g in groups {
        if g.sections.is_empty() {
            let v = g.plain.unwrap_or_default();
            params.push((g.base, charset::guess(&v)));
            continue;
        }
        g.sections.sort_by_key(|(n, _, _)| n.unwrap_or(0));
        g.sections.dedup_by_key(|(n, _, _)| *n);
        let mut bytes = Vec::new();
        let mut cs: Option<String> = None;
        for (i, (_, ext, v)) in g.sections.iter().enumerate() {
            if *ext {
                if i == 0 {
                    let mut it = v.splitn(3, |&b| b == b'\'');
                    match (it.next(), it.next(), it.next()) {
                        (Some(c), Some(_lang), Some(data)) => {
                            if !c.is_empty() {
                                cs = Some(String::from_utf8_lossy(c).into_owned());
                            }
                            bytes.extend(percent_decode(data));
                        }
                        _ => bytes.extend(percent_decode(v)),
                    }
                } else {
                    bytes.extend(percent_decode(v));
                }
            } else {
                bytes.extend_from_slice(v);
            }
        }
        params.push((g.base, charset::decode_or_guess(cs.as_deref(), &bytes)));
    }
    ParamValue { value, params }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ParamValue {
        parse(s.as_bytes())
    }

    #[test]
    fn simple() {
        let v = p(" Text/Plain ; charset=\"UTF-8\"; format=flowed (comment)");
        assert_eq!(v.value, "text/plain");
        assert_eq!(
            v.params,
            vec![
                ("charset".into(), "UTF-8".into()),
                ("format".into(), "flowed".into())
            ]
        );
        assert_eq!(v.param("CHARSET"), Some("UTF-8"));
    }

    #[test]
    fn rfc2231() {
        let v =
            p("attachment; filename*0*=utf-8''%ED%95%9C; filename*1*=%EA%B5%AD; filename*2=.txt");
        assert_eq!(v.value, "attachment");
        assert_eq!(v.params, vec![("filename".into(), "한국.txt".into())]);
        let v = p("application/x-stuff; title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A");
        assert_eq!(v.param("title"), Some("This is ***fun***"));
        let v = p("message/external-body; URL*0=\"ftp://\"; URL*1=\"cs.utk.edu/pub\"");
        assert_eq!(v.param("url"), Some("ftp://cs.utk.edu/pub"));
        let (euc, _, _) = encoding_rs::EUC_KR.encode("한");
        let s = format!("a; name*=ks_c_5601-1987''%{:02X}%{:02X}", euc[0], euc[1]);
        assert_eq!(p(&s).param("name"), Some("한"));
    }

    #[test]
    fn junk() {
        let v = p(";;=;a;b=\"unterminated");
        assert_eq!(v.params, vec![("b".into(), "unterminated".into())]);
        assert_eq!(p("").value, "");
    }
}
