//! IMAP sessions (RFC 3501 IMAP4rev1 with the extensions real clients rely on) over the store.
//!
//! Commands are framed by imap-codec's `Fragmentizer` (lines and literals, bounded) and
//! decoded by its `CommandCodec`; responses are written with `proto-imap`. Each connection is
//! one task; the selected mailbox is a [`selected::Selected`] view that is brought up to date
//! with the store at command boundaries and whenever the store signals a change (IDLE).
//!
//! # Layout
//! * `session`: the connection loop, literals, COMPRESS, state, dispatch, IDLE.
//! * `selected`: the selected mailbox: sequence numbers, resync, untagged updates.
//! * `names`: mailbox names on the wire (UTF-8 or modified UTF-7) and LIST pattern matching.
//! * `auth_cmds`: CAPABILITY, LOGIN, AUTHENTICATE, STARTTLS, ENABLE, ID, NAMESPACE.
//! * `mailbox_cmds`: SELECT/EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE, LIST, LSUB, STATUS, APPEND.
//! * `message_cmds`: FETCH, STORE, COPY, MOVE, EXPUNGE, CLOSE, UNSELECT.
//! * `search`: SEARCH evaluation and ESEARCH/SEARCHRES results.
//! * `sort`: SORT and THREAD (RFC 5256).
//! * `extended`: syntax imap-codec does not parse (SEARCH RETURN, `$`, extended LIST).
#![deny(missing_docs)]

mod auth_cmds;
mod extended;
mod mailbox_cmds;
mod message_cmds;
mod names;
mod search;
mod selected;
mod session;
mod sort;
mod uid_list;

use std::sync::Arc;
use std::time::Duration;

use auth::Authenticator;
use net::{Connection, TlsAcceptor};
use store::Store;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Settings of one IMAP listener.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Our host name (greeting).
    pub hostname: String,
    /// Largest APPEND literal, in octets (advertised as APPENDLIMIT).
    pub max_append: u32,
    /// Autologout before authentication.
    pub unauthenticated_timeout: Duration,
    /// Autologout once authenticated (RFC 9051 5.4: at least 30 minutes).
    pub authenticated_timeout: Duration,
    /// Allow LOGIN/AUTHENTICATE on unencrypted non-loopback connections.
    pub allow_plaintext_auth: bool,
    /// Allow LOGIN/AUTHENTICATE on unencrypted loopback connections.
    pub plaintext_auth_on_loopback: bool,
    /// Consecutive BAD commands before the connection is closed.
    pub max_bad_commands: u32,
    /// Storage quota per account in octets (0: unlimited).
    pub quota: u64,
    /// Advertise LITERAL- instead of LITERAL+: non-synchronising literals over 4096 octets
    /// are refused with BAD [TOOBIG] (RFC 7888).
    pub literal_minus: bool,
}

/// One IMAP listener's shared state.
pub struct ImapServer {
    settings: Settings,
    store: Store,
    auth: Authenticator,
    tls: Option<TlsAcceptor>,
}

impl ImapServer {
    /// A server; `tls` enables STARTTLS on plaintext connections.
    pub fn new(
        settings: Settings,
        store: Store,
        auth: Authenticator,
        tls: Option<TlsAcceptor>,
    ) -> ImapServer {
        ImapServer {
            settings,
            store,
            auth,
            tls,
        }
    }
}

impl net::Handler for ImapServer {
    fn handle(self: Arc<Self>, conn: Connection) -> impl Future<Output = ()> + Send + 'static {
        session::Session::new(self, conn).run()
    }

    async fn refuse(self: Arc<Self>, mut stream: TcpStream) {
        // RFC 9051 7.1.5: BYE as the greeting when the server will not accept the connection.
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            stream.write_all(b"* BYE Too many connections, try again later\r\n"),
        )
        .await;
    }
}
