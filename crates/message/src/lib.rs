//! An RFC 5322 / MIME view over raw message bytes for Postern's IMAP server: ENVELOPE and
//! BODYSTRUCTURE data, `BODY[section]` and `BINARY[]` extraction, decoded text for SEARCH (all
//! common charsets, including the Korean ones: EUC-KR, `ks_c_5601-1987`/CP949, ISO-2022-KR)
//! and SORT/THREAD keys (RFC 5256). It knows nothing of IMAP syntax; `proto-imap` encodes
//! these values on the wire.
//!
//! Messages are raw bytes as stored, normally with CRLF line endings; bare LF is accepted
//! everywhere. Nothing here panics on any input: malformed mail yields best-effort results
//! (defaults, empty values, `None`), and nesting deeper than [`mime::MAX_DEPTH`] is treated
//! as opaque.
//!
//! # Layout
//!
//! - [`header`]: header/body split, header field iteration, unfolding.
//! - [`mime`]: the part tree (byte ranges, content types, multipart splitting).
//! - [`params`]: `Content-Type`-style values with RFC 2231 parameters.
//! - [`address`]: address lists as ENVELOPE [`Address`]es (group markers included).
//! - [`envelope`](mod@envelope): [`Envelope`] and [`envelope()`].
//! - [`structure`]: [`BodyStructure`], [`PartFields`] and [`body_structure()`].
//! - [`section`](mod@section): [`Section`], [`SectionText`], [`section()`], [`binary()`].
//! - [`transfer`]: base64 and quoted-printable decoding.
//! - [`charset`]: charset labels to UTF-8 (encoding_rs, mail-parser, ISO-2022-KR).
//! - [`encoded_word`]: RFC 2047 [`decode_header_value`].
//! - [`search`]: [`SearchText`], [`search_text`], [`fold`].
//! - [`seven_bit`]: 8-bit bodies re-encoded as quoted-printable/base64 for SMTP servers
//!   without 8BITMIME (used by the outbound queue).
//! - [`sort`]: [`SortKeys`], [`sort_keys`], [`base_subject`].

#![deny(missing_docs)]

pub mod address;
pub mod charset;
pub mod encoded_word;
pub mod envelope;
pub mod header;
pub mod mime;
pub mod params;
pub mod search;
pub mod section;
pub mod seven_bit;
pub mod sort;
pub mod structure;
pub mod transfer;

pub use address::Address;
pub use encoded_word::decode_header_value;
pub use envelope::{Envelope, envelope};
pub use search::{SearchText, fold, search_text};
pub use section::{BinaryError, Section, SectionText, binary, binary_size, section};
pub use sort::{SortKeys, base_subject, sort_keys};
pub use structure::{BodyStructure, PartFields, body_structure};
