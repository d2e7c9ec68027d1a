//! Decoded text for IMAP SEARCH: header values and the text of all `text/*` parts, converted
//! to UTF-8, plus case folding for substring matching.

use crate::charset;
use crate::encoded_word::decode_header_value;
use crate::header;
use crate::mime::{self, Kind, Part};
use crate::transfer::TransferEncoding;

/// Decoded searchable text of a message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchText {
    /// Top-level header fields in order: lower-case name and decoded value.
    pub headers: Vec<(String, String)>,
    /// Decoded text of every `text/*` part (HTML reduced to text) and the decoded headers of
    /// encapsulated messages, separated by newlines.
    pub body: String,
}

impl SearchText {
    /// Values of the header `name` (case-insensitive).
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Case folding for case-insensitive substring matching: Unicode lower-casing (scripts
/// without case, such as Hangul, are unchanged).
pub fn fold(s: &str) -> String {
    s.to_lowercase()
}

fn decoded_headers(h: &[u8]) -> Vec<(String, String)> {
    header::fields(h)
        .map(|f| {
            (
                String::from_utf8_lossy(f.name).to_ascii_lowercase(),
                decode_header_value(f.value),
            )
        })
        .collect()
}

/// Extracts the searchable text of a raw message.
pub fn search_text(raw: &[u8]) -> SearchText {
    let root = mime::parse(raw);
    let headers = decoded_headers(&raw[root.header.clone()]);
    let mut body = String::new();
    collect(raw, &root, &mut body);
    SearchText { headers, body }
}

fn collect(raw: &[u8], p: &Part, out: &mut String) {
    match &p.kind {
        Kind::Multipart(ch) => ch.iter().for_each(|c| collect(raw, c, out)),
        Kind::Message(inner) => {
            for (k, v) in decoded_headers(&raw[inner.header.clone()]) {
                push_block(out, &format!("{k}: {v}"));
            }
            collect(raw, inner, out);
        }
        Kind::Leaf if p.media_type == "text" => {
            let body = &raw[p.body.clone()];
            let decoded = match p.encoding_name(raw) {
                Some(e) => match TransferEncoding::from_name(&e) {
                    Some(enc) => enc.decode(body),
                    None => body.to_vec(),
                },
                None => body.to_vec(),
            };
            let text = charset::decode_or_guess(p.param("charset"), &decoded);
            if p.subtype == "html" {
                push_block(out, &html_to_text(&text));
            } else {
                push_block(out, &text);
            }
        }
        Kind::Leaf => {}
    }
}

fn push_block(out: &mut String, s: &str) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(s);
}

/// Reduces HTML to text: drops tags, comments and `<script>`/`<style>` contents, decodes
/// common entities and numeric character references.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                if let Some(r) = rest.strip_prefix("<!--") {
                    rest = r.find("-->").map_or("", |i| &r[i + 3..]);
                    continue;
                }
                let (tag, end) = match rest.find('>') {
                    Some(i) => (&rest[1..i], i + 1),
                    None => (&rest[1..], rest.len()),
                };
                let name: String = tag
                    .trim_start_matches('/')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect::<String>()
                    .to_ascii_lowercase();
                rest = &rest[end..];
                if !tag.starts_with('/') && (name == "script" || name == "style") {
                    let close = format!("</{name}");
                    rest = match find_ascii_ci(rest.as_bytes(), close.as_bytes()) {
                        Some(i) => {
                            let after = &rest[i..];
                            after.find('>').map_or("", |j| &after[j + 1..])
                        }
                        None => "",
                    };
                }
                if matches!(
                    name.as_str(),
                    "br" | "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6"
                ) {
                    out.push('\n');
                } else if matches!(name.as_str(), "td" | "th" | "img" | "hr")
                    && !out.ends_with(char::is_whitespace)
                    && !out.is_empty()
                {
                    // Cells and images separate words; inline tags (b, span, a, ...) do not.
                    out.push(' ');
                }
            }
            '&' => {
                let semi = rest.bytes().take(12).position(|b| b == b';');
                let decoded = semi.and_then(|i| entity(&rest[1..i]).map(|c| (c, i + 1)));
                match decoded {
                    Some((ch, n)) => {
                        out.push(ch);
                        rest = &rest[n..];
                    }
                    None => {
                        out.push('&');
                        rest = &rest[1..];
                    }
                }
            }
            _ => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// Finds `needle` (lower-case ASCII) in `hay`, ignoring ASCII case.
fn find_ascii_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (0..=hay.len() - needle.len()).find(|&i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let v = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return Some(char::from_u32(v).unwrap_or('\u{fffd}'));
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html() {
        assert_eq!(
            html_to_text("<html><style>p{}</style><p>A&amp;B&#xD55C;</p><!-- x -->c<br>d &bogus;"),
            "\nA&B한\nc\nd &bogus;"
        );
        assert_eq!(html_to_text("<"), " ".trim());
        assert_eq!(html_to_text("a<script>x"), "a");
        assert_eq!(html_to_text("<b>Hel</b>lo<td>x</td><td>y"), "Hello x y");
    }

    #[test]
    fn folding() {
        assert_eq!(fold("HeLLo 안녕 ÄÖ"), "hello 안녕 äö");
    }
}
