//! Pure readers and writers for the mailbox formats users migrate from and to.
//!
//! Postern stores every message with CRLF line endings; the on-disk formats
//! handled here (mbox and Maildir) use bare LF. This crate converts between the
//! two and maps each format's flag encoding to IMAP flags. It does no I/O
//! beyond reading/writing the files or streams it is handed: no store, no
//! async, no global state.
//!
//! # Layout
//!
//! - [`mbox`]: [`MboxReader`] (reads mboxo/mboxrd files as written by Dovecot,
//!   Thunderbird, mutt and Postfix `local(8)`) and [`write_mbox_message`]
//!   (writes mboxrd).
//! - [`maildir`]: [`read_maildir`], which lists the folders and messages of a
//!   Maildir / Maildir++ tree as Dovecot and Courier lay it out.
//! - [`eol`]: line-ending conversion ([`to_crlf`]).
//! - `error`: the crate's [`Error`] type.
//! - `date`: asctime parsing/formatting for mbox separator lines (private).
//! - `mutf7`: IMAP modified UTF-7 decoding for Maildir++ folder names (private).
#![deny(missing_docs)]

mod date;
pub mod eol;
mod error;
pub mod maildir;
pub mod mbox;
mod mutf7;

pub use eol::to_crlf;
pub use error::Error;
pub use maildir::{MaildirFolder, MaildirMessage, read_maildir};
pub use mbox::{MboxMessage, MboxReader, write_mbox_message};
