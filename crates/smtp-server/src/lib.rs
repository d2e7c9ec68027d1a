//! SMTP sessions: the MX role (mail for hosted domains from anyone, never relaying) and the
//! submission role (authenticated users sending anywhere), over plaintext+STARTTLS or
//! implicit TLS.
//!
//! # Layout
//! * `session`: the connection loop, reading primitives, timeouts, dispatch.
//! * `envelope`: HELO/EHLO, MAIL, RCPT, RSET and the other small commands.
//! * `message`: DATA and BDAT, the Received header, handing the message to the deliverer.
//! * `sasl`: AUTH PLAIN and LOGIN.
#![deny(missing_docs)]

mod envelope;
mod message;
mod sasl;
mod session;

use std::sync::Arc;
use std::time::Duration;

use auth::Authenticator;
use net::{Connection, TlsAcceptor};
use queue::Deliverer;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Which job a listener does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Port 25: accept mail for hosted domains from anyone; no AUTH, no relaying.
    Mx,
    /// Ports 587/465: AUTH required before MAIL; authenticated users may send anywhere.
    Submission,
}

/// Settings of one SMTP listener.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Our host name (greeting, Received).
    pub hostname: String,
    /// MX or submission.
    pub role: Role,
    /// Largest message, in octets.
    pub max_message_size: usize,
    /// Recipients per transaction.
    pub max_recipients: usize,
    /// Wait for a command.
    pub command_timeout: Duration,
    /// Wait for each chunk of message data.
    pub data_timeout: Duration,
    /// Protocol errors before the session is closed.
    pub max_errors: u32,
    /// Offer AUTH on unencrypted non-loopback connections.
    pub allow_plaintext_auth: bool,
    /// Offer AUTH on unencrypted loopback connections.
    pub plaintext_auth_on_loopback: bool,
}

/// Longest command line accepted, terminator excluded. RFC 5321 4.5.3.1.4 sets 512 octets
/// including CRLF but SMTP extensions may add parameters; 4 KiB keeps a clear bound.
const MAX_COMMAND_LINE: usize = 4096;

/// One SMTP listener's shared state.
pub struct SmtpServer {
    settings: Settings,
    deliverer: Deliverer,
    auth: Authenticator,
    tls: Option<TlsAcceptor>,
}

impl SmtpServer {
    /// A server; `tls` enables STARTTLS on plaintext connections.
    pub fn new(
        settings: Settings,
        deliverer: Deliverer,
        auth: Authenticator,
        tls: Option<TlsAcceptor>,
    ) -> SmtpServer {
        SmtpServer {
            settings,
            deliverer,
            auth,
            tls,
        }
    }
}

impl net::Handler for SmtpServer {
    fn handle(self: Arc<Self>, conn: Connection) -> impl Future<Output = ()> + Send + 'static {
        session::Session::new(self, conn).run()
    }

    async fn refuse(self: Arc<Self>, mut stream: TcpStream) {
        // RFC 5321 3.1: a busy server may answer 421 instead of 220.
        let line = format!(
            "421 4.7.0 {} Too many connections, try again later\r\n",
            self.settings.hostname
        );
        let _ =
            tokio::time::timeout(Duration::from_secs(5), stream.write_all(line.as_bytes())).await;
    }
}
