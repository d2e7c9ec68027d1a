//! Integration tests: a real Postern server on ephemeral loopback ports, spoken to over TCP
//! with raw transcripts, a real SMTP client library (lettre), real client programs (swaks),
//! and the real binary (CLI, SIGKILL crash test).

#![allow(unreachable_pub)]

mod cli;
mod crash;
mod dns;
mod imap;
mod imap_compress;
mod imap_interop;
mod interop;
mod pop3;
mod pop3_interop;
mod relay;
mod relay_crash;
mod smtp_mx;
mod submission;
mod support;
