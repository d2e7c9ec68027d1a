//! `BODY[section]` (RFC 9051 6.4.5) and `BINARY[section]` (RFC 3516) extraction.

use crate::header;
use crate::mime::{self, Kind};
use crate::transfer::TransferEncoding;

/// The text part of a section specifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// No text specifier: the whole message, or the body of the addressed part.
    Full,
    /// `HEADER`: the header including the blank line.
    Header,
    /// `HEADER.FIELDS (names)`.
    HeaderFields(Vec<String>),
    /// `HEADER.FIELDS.NOT (names)`.
    HeaderFieldsNot(Vec<String>),
    /// `TEXT`: the body.
    Text,
    /// `MIME`: the MIME header of a part (only with a part number).
    Mime,
}

/// A section specifier: a part number path and a text specifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Part numbers (1-based); empty means the whole message.
    pub part: Vec<u32>,
    /// What to take from the addressed part.
    pub text: SectionText,
}

/// Extracts a section. `None` if the part does not exist or the specifier does not apply
/// (e.g. `HEADER` of a part that is not `message/rfc822`, `MIME` without a part number).
pub fn section(raw: &[u8], s: &Section) -> Option<Vec<u8>> {
    let root = mime::parse(raw);
    let t = mime::resolve(&root, &s.part)?;
    let p = t.part;
    // The message whose header/body HEADER, HEADER.FIELDS and TEXT refer to.
    let msg = if t.top {
        Some(p)
    } else {
        match &p.kind {
            Kind::Message(inner) => Some(&**inner),
            _ => None,
        }
    };
    let get = |r: std::ops::Range<usize>| raw.get(r).map(<[u8]>::to_vec);
    match &s.text {
        SectionText::Full if t.top => Some(raw.to_vec()),
        SectionText::Full => get(p.body.clone()),
        SectionText::Mime if t.top => None,
        SectionText::Mime => get(p.header.clone()),
        SectionText::Header => get(msg?.header.clone()),
        SectionText::Text => get(msg?.body.clone()),
        SectionText::HeaderFields(names) => {
            Some(header_fields(raw.get(msg?.header.clone())?, names, true))
        }
        SectionText::HeaderFieldsNot(names) => {
            Some(header_fields(raw.get(msg?.header.clone())?, names, false))
        }
    }
}

/// The header lines whose names are (`include`) or are not in `names`, in original order with
/// folding kept, followed by a blank line.
pub fn header_fields(h: &[u8], names: &[String], include: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for f in header::fields(h) {
        let listed = names.iter().any(|n| f.is(n));
        if listed == include {
            out.extend_from_slice(f.raw);
            if !f.raw.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Why `BINARY[]` could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    /// The part's Content-Transfer-Encoding is not known (IMAP `UNKNOWN-CTE`).
    #[error("unknown content-transfer-encoding {0:?}")]
    UnknownEncoding(String),
    /// The part does not exist.
    #[error("no such part")]
    NoSuchPart,
}

/// RFC 3516 `BINARY[part]`: the part body with its Content-Transfer-Encoding removed. An empty
/// path returns the whole message unchanged.
pub fn binary(raw: &[u8], part: &[u32]) -> Result<Vec<u8>, BinaryError> {
    if part.is_empty() {
        return Ok(raw.to_vec());
    }
    let root = mime::parse(raw);
    let t = mime::resolve(&root, part).ok_or(BinaryError::NoSuchPart)?;
    let p = t.part;
    let body = raw.get(p.body.clone()).ok_or(BinaryError::NoSuchPart)?;
    let enc = match p.encoding_name(raw) {
        None => TransferEncoding::Identity,
        Some(name) => {
            TransferEncoding::from_name(&name).ok_or(BinaryError::UnknownEncoding(name))?
        }
    };
    Ok(enc.decode(body))
}

/// The size of `BINARY[part]` (`BINARY.SIZE`).
pub fn binary_size(raw: &[u8], part: &[u32]) -> Result<u64, BinaryError> {
    binary(raw, part).map(|v| v.len() as u64)
}
