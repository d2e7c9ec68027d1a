//! Sans-IO IMAP response encoding for Postern: strings, literals and `literal8`, ENVELOPE,
//! BODY and BODYSTRUCTURE (from the `message` crate's views of a stored message) and mailbox
//! names (modified UTF-7 or, after `ENABLE UTF8=ACCEPT`, UTF-8). Everything appends bytes to a
//! caller-supplied `Vec<u8>` in exact RFC 9051 / RFC 3501 wire syntax; nothing performs I/O.
//! The COMPRESS=DEFLATE layer ([`deflate`]) lives here too, for the same reason.
//!
//! # Layout
//!
//! - [`string`]: [`quoted_or_literal`], [`nstring`], [`literal`], quoting rules.
//! - [`fetch`]: [`envelope`], [`body_structure`] and address lists.
//! - [`mutf7`]: modified UTF-7 [`mutf7::encode`] / [`mutf7::decode`].
//! - [`mailbox_name`]: a mailbox name as an IMAP string.
//! - [`deflate`]: COMPRESS=DEFLATE (RFC 4978) for both directions, in bounded chunks.

#![deny(missing_docs)]

pub mod deflate;
pub mod fetch;
pub mod mutf7;
pub mod string;

pub use fetch::{body_structure, envelope};
pub use string::{literal, nstring, quoted_or_literal};

/// Appends a mailbox name as a string: modified UTF-7 when `utf8` is false, raw UTF-8 when the
/// client enabled `UTF8=ACCEPT`. Always quoted (or a literal when quoting is impossible).
pub fn mailbox_name(out: &mut Vec<u8>, name: &str, utf8: bool) {
    if utf8 {
        quoted_or_literal(out, name.as_bytes(), true);
    } else {
        quoted_or_literal(out, mutf7::encode(name).as_bytes(), false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_names() {
        let mut v = Vec::new();
        mailbox_name(&mut v, "받은 편지함/\"x\"", false);
        v.push(b' ');
        mailbox_name(&mut v, "받은 편지함", true);
        v.push(b' ');
        mailbox_name(&mut v, "a\nb", true);
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "\"&vBvHQA- &07jJwNVo-/\\\"x\\\"\" \"받은 편지함\" {3}\r\na\nb"
        );
    }
}
