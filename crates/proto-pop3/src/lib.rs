//! Sans-IO POP3 protocol pieces for Postern: bounded line framing, command parsing and the
//! response writers, including the multi-line message form (CRLF line ends, dot-stuffing) and
//! the exact octet count it stands for. Nothing here performs I/O or knows tokio: the server
//! session pushes received bytes in and writes the produced bytes out.
//!
//! Covers RFC 1939 (POP3), RFC 2449 (CAPA, response codes), RFC 2595 (STLS), RFC 3206
//! (SYS and AUTH response codes) and RFC 5034 (AUTH with an initial response).
//!
//! # Layout
//! - [`LineBuffer`] and [`LineError`]: bounded CRLF / LF line framing, re-exported from
//!   `proto-line` (shared with `proto-smtp`).
//! - [`command`]: [`Command`], [`parse_command`] and [`ParseError`].
//! - [`response`]: status lines ([`ok`], [`err`], [`Code`]), multi-line responses and
//!   [`MessageWriter`] / [`message_size`] for RETR and TOP.

#![deny(missing_docs)]

pub mod command;
pub mod response;

pub use command::{Command, ParseError, parse_command};
pub use proto_line::{LineBuffer, LineError};
pub use response::{Code, MessageWriter, err, message_size, ok};

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole pipelined session script through the line buffer and the parser, re-fed at every
    /// chunk size from 1 to 512: the same commands and errors in the same order each time.
    #[test]
    fn pipelined_script_at_all_chunk_sizes() {
        let long = format!("NOOP {}\r\n", "x".repeat(600));
        let script = [
            "CAPA\r\n",
            "USER lee@naver.test\r\n",
            "PASS two words\r\n",
            "STAT\nLIST\r\n",
            &long,
            "RETR 1\r\nTOP 1 0\r\nDELE 1\r\nBOGUS\r\nUIDL 2\r\nQUIT\r\n",
        ]
        .concat();
        let want: Vec<Result<Result<Command, ParseError>, LineError>> = vec![
            Ok(Ok(Command::Capa)),
            Ok(Ok(Command::User("lee@naver.test".into()))),
            Ok(Ok(Command::Pass("two words".into()))),
            Ok(Ok(Command::Stat)),
            Ok(Ok(Command::List(None))),
            Err(LineError::TooLong),
            Ok(Ok(Command::Retr(1))),
            Ok(Ok(Command::Top(1, 0))),
            Ok(Ok(Command::Dele(1))),
            Ok(Err(ParseError::Unknown("BOGUS".into()))),
            Ok(Ok(Command::Uidl(Some(2)))),
            Ok(Ok(Command::Quit)),
        ];
        for chunk in 1..=512 {
            let mut lb = LineBuffer::new(512);
            let mut got = Vec::new();
            for c in script.as_bytes().chunks(chunk) {
                lb.push(c);
                while let Some(item) = lb.next_line() {
                    got.push(item.map(parse_command));
                }
            }
            assert_eq!(got, want, "chunk {chunk}");
            assert!(!lb.has_buffered());
        }
    }
}
