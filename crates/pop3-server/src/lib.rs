//! POP3 sessions (RFC 1939 with CAPA, response codes, STLS and SASL PLAIN) over the store's
//! INBOX.
//!
//! A session authenticates through the shared [`auth::Authenticator`], locks the account's
//! maildrop ([`MaildropLocks`]), and fixes a snapshot of the INBOX: message numbers, UIDs and
//! exact sizes stay as they were at login for the whole session. DELE only marks; a QUIT in the
//! TRANSACTION state removes the marked messages in one durable store call before "+OK"; any
//! other end of the session removes nothing.
//!
//! # Layout
//! * `session`: the connection loop, line framing, timeouts, state table and dispatch.
//! * `authorization`: CAPA, STLS, USER/PASS, AUTH PLAIN, and entering the TRANSACTION state.
//! * `maildrop`: the snapshot and the TRANSACTION commands (STAT, LIST, UIDL, RETR, TOP,
//!   DELE, RSET) and the UPDATE state (QUIT).
//! * `lock`: [`MaildropLocks`], one POP3 session per account at a time.
#![deny(missing_docs)]

mod authorization;
mod lock;
mod maildrop;
mod session;

use std::sync::Arc;
use std::time::Duration;

use auth::Authenticator;
use net::{Connection, TlsAcceptor};
use store::Store;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub use lock::MaildropLocks;

/// Errors of a POP3 session that end up as a `-ERR` reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pop3Error {
    /// The store failed; the client may try again later (`[SYS/TEMP]`).
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The account has no INBOX (a damaged store).
    #[error("the account has no INBOX")]
    NoInbox,
}

/// Settings of one POP3 listener.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Our host name (greeting).
    pub hostname: String,
    /// Autologout before authentication.
    pub login_timeout: Duration,
    /// Autologout in the TRANSACTION state (RFC 1939 3: at least 10 minutes).
    pub timeout: Duration,
    /// Allow USER/PASS and AUTH on unencrypted non-loopback connections.
    pub allow_plaintext_auth: bool,
    /// Allow USER/PASS and AUTH on unencrypted loopback connections.
    pub plaintext_auth_on_loopback: bool,
    /// Erroneous commands in one session before it is closed.
    pub max_errors: u32,
}

/// One POP3 listener's shared state.
pub struct Pop3Server {
    settings: Settings,
    store: Store,
    auth: Authenticator,
    locks: MaildropLocks,
    tls: Option<TlsAcceptor>,
}

impl Pop3Server {
    /// A server; `tls` enables STLS on plaintext connections. Every listener of one process
    /// must share `locks`, so a maildrop is locked whichever port a client uses.
    pub fn new(
        settings: Settings,
        store: Store,
        auth: Authenticator,
        locks: MaildropLocks,
        tls: Option<TlsAcceptor>,
    ) -> Pop3Server {
        Pop3Server {
            settings,
            store,
            auth,
            locks,
            tls,
        }
    }
}

impl net::Handler for Pop3Server {
    fn handle(self: Arc<Self>, conn: Connection) -> impl Future<Output = ()> + Send + 'static {
        session::Session::new(self, conn).run()
    }

    async fn refuse(self: Arc<Self>, mut stream: TcpStream) {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            stream.write_all(b"-ERR [SYS/TEMP] Too many connections, try again later\r\n"),
        )
        .await;
    }
}
