//! BODYSTRUCTURE data (RFC 9051 7.5.2) computed from the part tree: types, parameters,
//! encodings, sizes, line counts and extension fields.

use crate::envelope::{Envelope, from_header};
use crate::header;
use crate::mime::{self, Kind, Part};
use crate::params;

/// The fields every non-multipart body has.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartFields {
    /// Lower-case media type (`text`, `image`, ...).
    pub media_type: String,
    /// Lower-case media subtype (`plain`, `jpeg`, ...).
    pub subtype: String,
    /// Content-Type parameters: lower-case names, values unquoted (RFC 2231 decoded to UTF-8).
    pub params: Vec<(String, String)>,
    /// `Content-ID`, raw and trimmed.
    pub id: Option<String>,
    /// `Content-Description`, raw (not RFC 2047 decoded) and trimmed.
    pub description: Option<String>,
    /// Upper-case `Content-Transfer-Encoding` (`7BIT` when absent).
    pub encoding: String,
    /// Octets of the body as stored (still transfer-encoded).
    pub size: u64,
    /// `Content-MD5`, raw and trimmed.
    pub md5: Option<String>,
    /// `Content-Disposition`: lower-case type and parameters.
    pub disposition: Option<(String, Vec<(String, String)>)>,
    /// `Content-Language` tags.
    pub language: Option<Vec<String>>,
    /// `Content-Location`, with whitespace removed.
    pub location: Option<String>,
}

/// The structure of a message or part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyStructure {
    /// Any non-text, non-message leaf.
    Basic {
        /// Common fields.
        part: PartFields,
    },
    /// A `text/*` leaf.
    Text {
        /// Common fields.
        part: PartFields,
        /// Lines of the body as stored.
        lines: u32,
    },
    /// `message/rfc822` or `message/global`.
    Message {
        /// Common fields.
        part: PartFields,
        /// Envelope of the encapsulated message.
        envelope: Box<Envelope>,
        /// Structure of the encapsulated message.
        body: Box<BodyStructure>,
        /// Lines of the body as stored.
        lines: u32,
    },
    /// A multipart.
    Multipart {
        /// The parts (at least one).
        parts: Vec<BodyStructure>,
        /// Lower-case subtype (`mixed`, `alternative`, ...).
        subtype: String,
        /// Content-Type parameters.
        params: Vec<(String, String)>,
        /// `Content-Disposition`.
        disposition: Option<(String, Vec<(String, String)>)>,
        /// `Content-Language`.
        language: Option<Vec<String>>,
        /// `Content-Location`.
        location: Option<String>,
    },
}

/// Computes the structure of a raw message.
pub fn body_structure(raw: &[u8]) -> BodyStructure {
    let root = mime::parse(raw);
    from_part(raw, &root)
}

/// Counts lines: line feeds, plus one for a final line without a line break.
pub(crate) fn count_lines(body: &[u8]) -> u32 {
    let n = body.iter().filter(|&&b| b == b'\n').count();
    let partial = usize::from(body.last().is_some_and(|&b| b != b'\n'));
    u32::try_from(n + partial).unwrap_or(u32::MAX)
}

fn text_field(h: &[u8], name: &str) -> Option<String> {
    header::first(h, name).map(|f| String::from_utf8_lossy(&f.unfolded()).into_owned())
}

struct Ext {
    disposition: Option<(String, Vec<(String, String)>)>,
    language: Option<Vec<String>>,
    location: Option<String>,
}

fn ext_fields(h: &[u8]) -> Ext {
    let disposition = header::first(h, "content-disposition").and_then(|f| {
        let pv = params::parse(&f.unfolded());
        (!pv.value.is_empty()).then_some((pv.value, pv.params))
    });
    let language = text_field(h, "content-language").and_then(|v| {
        let tags: Vec<String> = v
            .split(',')
            .map(|t| t.split('(').next().unwrap_or("").trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        (!tags.is_empty()).then_some(tags)
    });
    let location = text_field(h, "content-location")
        .map(|v| v.split_whitespace().collect::<String>())
        .filter(|v| !v.is_empty());
    Ext {
        disposition,
        language,
        location,
    }
}

pub(crate) fn from_part(raw: &[u8], p: &Part) -> BodyStructure {
    let h = &raw[p.header.clone()];
    let body = &raw[p.body.clone()];
    let ext = ext_fields(h);
    if let Kind::Multipart(children) = &p.kind {
        return BodyStructure::Multipart {
            parts: children.iter().map(|c| from_part(raw, c)).collect(),
            subtype: p.subtype.clone(),
            params: p.params.clone(),
            disposition: ext.disposition,
            language: ext.language,
            location: ext.location,
        };
    }
    let encoding = p
        .encoding_name(raw)
        .filter(|e| !e.is_empty())
        .map_or_else(|| "7BIT".to_owned(), |e| e.to_ascii_uppercase());
    let fields = PartFields {
        media_type: p.media_type.clone(),
        subtype: p.subtype.clone(),
        params: p.params.clone(),
        id: text_field(h, "content-id"),
        description: text_field(h, "content-description"),
        encoding,
        size: body.len() as u64,
        md5: text_field(h, "content-md5"),
        disposition: ext.disposition,
        language: ext.language,
        location: ext.location,
    };
    match &p.kind {
        Kind::Message(inner) => BodyStructure::Message {
            part: fields,
            envelope: Box::new(from_header(&raw[inner.header.clone()])),
            body: Box::new(from_part(raw, inner)),
            lines: count_lines(body),
        },
        _ if p.media_type == "text" => BodyStructure::Text {
            part: fields,
            lines: count_lines(body),
        },
        _ => BodyStructure::Basic { part: fields },
    }
}
