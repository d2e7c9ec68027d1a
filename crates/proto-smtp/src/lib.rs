//! Sans-IO SMTP protocol pieces for Postern: command parsing, reply formatting and parsing, bounded
//! line framing and the DATA phase (dot-unstuffing, end-of-data detection, SMTP smuggling defence).
//! Nothing here performs I/O: callers push received bytes in and write produced bytes out. It
//! covers RFC 5321 with the SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), CHUNKING
//! (RFC 3030), ENHANCEDSTATUSCODES (RFC 2034) and AUTH (RFC 4954) extensions, and is used by both
//! the server sessions and the outbound client.
//!
//! # Layout
//!
//! - [`address`]: mailboxes ([`Address`]) and paths ([`ReversePath`], [`ForwardPath`]).
//! - [`command`]: [`Command`], [`parse_command`], ESMTP parameters and [`ParseError`].
//! - [`reply`]: [`Reply`] formatting and named constructors for common replies.
//! - [`LineBuffer`] and [`LineError`]: bounded CRLF / LF line framing for the command phase,
//!   re-exported from `proto-line` (shared with `proto-pop3`); [`Reply::line_too_long`] answers
//!   [`LineError::TooLong`].
//! - [`data`]: [`DataReceiver`] for the DATA phase and [`data::dot_stuff`] for the client side.
//! - [`client`]: [`ReplyParser`], incremental parsing of server replies, and [`Capabilities`]
//!   from an EHLO reply.

#![deny(missing_docs)]

pub mod address;
pub mod client;
pub mod command;
pub mod data;
pub mod reply;

pub use address::{Address, ForwardPath, ReversePath};
pub use client::{Capabilities, ParsedReply, ReplyParser};
pub use command::{Body, Command, MailParams, ParseError, RcptParams, parse_command};
pub use data::{DataOutcome, DataReceiver};
pub use proto_line::{LineBuffer, LineError};
pub use reply::Reply;
