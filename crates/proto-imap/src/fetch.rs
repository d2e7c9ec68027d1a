//! FETCH data items built from `message` values: `ENVELOPE`, `BODY` and `BODYSTRUCTURE`
//! (RFC 9051 section 7.5.2 / RFC 3501 section 7.4.2), in exact wire syntax.

use message::{Address, BodyStructure, Envelope, PartFields};

use crate::string::{nstring, quoted, quoted_or_literal};

/// Appends an `ENVELOPE` value: `("date" "subject" (from) (sender) (reply-to) (to) (cc)
/// (bcc) "in-reply-to" "message-id")`; empty address lists are `NIL`.
pub fn envelope(out: &mut Vec<u8>, e: &Envelope) {
    out.push(b'(');
    nstring(out, e.date.as_deref());
    out.push(b' ');
    nstring(out, e.subject.as_deref());
    for list in [&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc] {
        out.push(b' ');
        addresses(out, list);
    }
    out.push(b' ');
    nstring(out, e.in_reply_to.as_deref());
    out.push(b' ');
    nstring(out, e.message_id.as_deref());
    out.push(b')');
}

/// Appends an address list: `NIL` when empty, else `((name adl mailbox host)...)`.
pub fn addresses(out: &mut Vec<u8>, list: &[Address]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        nstring(out, a.name.as_deref());
        out.push(b' ');
        nstring(out, a.adl.as_deref());
        out.push(b' ');
        nstring(out, a.mailbox.as_deref());
        out.push(b' ');
        nstring(out, a.host.as_deref());
        out.push(b')');
    }
    out.push(b')');
}

/// Appends a `BODYSTRUCTURE` value (`extensible`: with extension data: MD5, disposition,
/// language, location) or a `BODY` value (without).
///
/// Media types, subtypes, parameter names, disposition types and encodings are sent in upper
/// case. Parameter values that are not 7-bit (RFC 2231 values were decoded to UTF-8 by
/// `message`) are re-encoded the RFC 2231 way, `NAME*` `utf-8''%XX...`, which every client
/// understands and which keeps the response 7-bit.
pub fn body_structure(out: &mut Vec<u8>, b: &BodyStructure, extensible: bool) {
    out.push(b'(');
    match b {
        BodyStructure::Multipart {
            parts,
            subtype,
            params: p,
            disposition,
            language,
            location,
        } => {
            for part in parts {
                body_structure(out, part, extensible);
            }
            out.push(b' ');
            upper(out, subtype);
            if extensible {
                out.push(b' ');
                params(out, p);
                out.push(b' ');
                dsp(out, disposition.as_ref());
                out.push(b' ');
                lang(out, language.as_deref());
                out.push(b' ');
                nstring(out, location.as_deref().map(str::as_bytes));
            }
        }
        BodyStructure::Basic { part } => {
            fields(out, part);
            if extensible {
                ext_1part(out, part);
            }
        }
        BodyStructure::Text { part, lines } => {
            fields(out, part);
            out.push(b' ');
            out.extend_from_slice(lines.to_string().as_bytes());
            if extensible {
                ext_1part(out, part);
            }
        }
        BodyStructure::Message {
            part,
            envelope: e,
            body,
            lines,
        } => {
            fields(out, part);
            out.push(b' ');
            envelope(out, e);
            out.push(b' ');
            body_structure(out, body, extensible);
            out.push(b' ');
            out.extend_from_slice(lines.to_string().as_bytes());
            if extensible {
                ext_1part(out, part);
            }
        }
    }
    out.push(b')');
}

/// Appends an upper-cased string.
fn upper(out: &mut Vec<u8>, s: &str) {
    quoted_or_literal(out, s.to_ascii_uppercase().as_bytes(), false);
}

/// `type subtype params id description encoding size`
fn fields(out: &mut Vec<u8>, p: &PartFields) {
    upper(out, &p.media_type);
    out.push(b' ');
    upper(out, &p.subtype);
    out.push(b' ');
    params(out, &p.params);
    out.push(b' ');
    nstring(out, p.id.as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(out, p.description.as_deref().map(str::as_bytes));
    out.push(b' ');
    upper(out, &p.encoding);
    out.push(b' ');
    out.extend_from_slice(p.size.to_string().as_bytes());
}

/// ` md5 disposition language location`
fn ext_1part(out: &mut Vec<u8>, p: &PartFields) {
    out.push(b' ');
    nstring(out, p.md5.as_deref().map(str::as_bytes));
    out.push(b' ');
    dsp(out, p.disposition.as_ref());
    out.push(b' ');
    lang(out, p.language.as_deref());
    out.push(b' ');
    nstring(out, p.location.as_deref().map(str::as_bytes));
}

/// `body-fld-param`: `NIL` or `("NAME" "value" ...)`.
fn params(out: &mut Vec<u8>, ps: &[(String, String)]) {
    if ps.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in ps.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        if v.is_ascii() && !v.contains(['\r', '\n', '\0']) {
            upper(out, k);
            out.push(b' ');
            quoted(out, v.as_bytes());
        } else {
            upper(out, &format!("{k}*"));
            out.push(b' ');
            quoted(out, rfc2231(v).as_bytes());
        }
    }
    out.push(b')');
}

/// Encodes a value as an RFC 2231 extended value: `utf-8''` and percent-encoding.
fn rfc2231(v: &str) -> String {
    let mut s = String::from("utf-8''");
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// `body-fld-dsp`: `NIL` or `("TYPE" params)`.
fn dsp(out: &mut Vec<u8>, d: Option<&(String, Vec<(String, String)>)>) {
    match d {
        None => out.extend_from_slice(b"NIL"),
        Some((t, p)) => {
            out.push(b'(');
            upper(out, t);
            out.push(b' ');
            params(out, p);
            out.push(b')');
        }
    }
}

/// `body-fld-lang`: `NIL` or `("tag" ...)`.
fn lang(out: &mut Vec<u8>, l: Option<&[String]>) {
    match l {
        None | Some([]) => out.extend_from_slice(b"NIL"),
        Some(tags) => {
            out.push(b'(');
            for (i, t) in tags.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                quoted_or_literal(out, t.as_bytes(), false);
            }
            out.push(b')');
        }
    }
}
