//! One SMTP connection from greeting to close.
//!
//! Implementation notes:
//! * Replies are buffered and flushed whenever no complete command is left in the input
//!   buffer, which is exactly what PIPELINING (RFC 2920) needs.
//! * Every wait for the client is bounded: `command_timeout` between commands,
//!   `data_timeout` per read during DATA/BDAT (RFC 5321 4.5.3.2).
//! * The transaction is a phase (`Phase`), never loose optional fields.
//! * STARTTLS discards any plaintext buffered after the command (RFC 3207 5, command
//!   injection) and forgets HELO, AUTH and the transaction.
//! * A connection dropped before the end of DATA/BDAT LAST delivers nothing: the message is
//!   handed to the store only once it is complete.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auth::Identity;
use net::{Connection, Shutdown, Stream};
use proto_smtp::{Command, LineBuffer, MailParams, Reply, parse_command};
use queue::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{MAX_COMMAND_LINE, Role, SmtpServer};

/// Size of one socket read. Large enough that a 100 KiB message arrives in a few reads (each
/// read is a task wake-up), small enough to keep per-connection memory modest.
const READ_CHUNK: usize = 64 * 1024;

/// Why a session ends.
#[derive(Debug)]
pub(crate) enum End {
    /// QUIT, or a reply that closes (421).
    Closed,
    /// The client went away or the socket failed.
    Disconnected,
}

/// The mail transaction in progress (RFC 5321 3.3).
#[derive(Debug, Default)]
pub(crate) enum Phase {
    /// No MAIL yet (or after RSET / a finished message).
    #[default]
    Idle,
    /// After MAIL, collecting RCPTs.
    Mail(Envelope),
}

/// The envelope of the transaction.
#[derive(Debug)]
pub(crate) struct Envelope {
    /// Reverse-path; `None` is `<>`.
    pub(crate) from: Option<String>,
    /// MAIL parameters.
    pub(crate) params: MailParams,
    /// Accepted recipients with where each goes.
    pub(crate) rcpts: Vec<(String, Vec<Target>)>,
    /// BDAT chunks received so far; `None` until the first BDAT.
    pub(crate) chunks: Option<Vec<u8>>,
    /// The BDAT chunks exceeded the size limit (we keep reading to stay in sync).
    pub(crate) chunks_too_large: bool,
}

/// What the client said in HELO/EHLO.
#[derive(Debug, Clone)]
pub(crate) struct Greeting {
    pub(crate) name: String,
    pub(crate) esmtp: bool,
}

pub(crate) struct Session {
    pub(crate) srv: Arc<SmtpServer>,
    stream: Option<Stream>,
    pub(crate) peer: SocketAddr,
    shutdown: Shutdown,
    pub(crate) input: LineBuffer,
    out: Vec<u8>,
    read_buf: Vec<u8>,
    pub(crate) greeting: Option<Greeting>,
    pub(crate) phase: Phase,
    pub(crate) identity: Option<Identity>,
    errors: u32,
}

impl Session {
    pub(crate) fn new(srv: Arc<SmtpServer>, conn: Connection) -> Session {
        Session {
            srv,
            stream: Some(conn.stream),
            peer: conn.peer,
            shutdown: conn.shutdown,
            input: LineBuffer::new(MAX_COMMAND_LINE),
            out: Vec::with_capacity(512),
            read_buf: vec![0; READ_CHUNK],
            greeting: None,
            phase: Phase::Idle,
            identity: None,
            errors: 0,
        }
    }

    pub(crate) async fn run(mut self) {
        let host = self.srv.settings.hostname.clone();
        // RFC 2034 3: no enhanced status code in the greeting.
        self.reply(Reply::multiline(220, vec![format!("{host} ESMTP Postern")]));
        let end = self.command_loop().await;
        tracing::debug!(peer = %self.peer, ?end, "SMTP session ended");
        let _ = self.flush().await;
        if let Some(mut s) = self.stream.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), s.shutdown()).await;
        }
    }

    async fn command_loop(&mut self) -> Result<(), End> {
        loop {
            let timeout = self.srv.settings.command_timeout;
            let parsed = match self.next_line(timeout, true, parse_command).await? {
                Ok(parsed) => parsed,
                Err(reply) => {
                    self.error_reply(reply)?;
                    continue;
                }
            };
            match parsed {
                Ok(cmd) => self.dispatch(cmd).await?,
                Err(e) => self.error_reply(e.reply())?,
            }
        }
    }

    async fn dispatch(&mut self, cmd: Command) -> Result<(), End> {
        match cmd {
            Command::Helo { domain } => self.handle_helo(domain, false),
            Command::Ehlo { domain } => self.handle_helo(domain, true),
            Command::Mail { from, params } => self.handle_mail(from, params).await,
            Command::Rcpt { to, .. } => self.handle_rcpt(to).await,
            Command::Data => self.handle_data().await,
            Command::Bdat { size, last } => self.handle_bdat(size, last).await,
            Command::Rset => {
                self.phase = Phase::Idle;
                self.reply(Reply::ok());
                Ok(())
            }
            Command::Noop => {
                self.reply(Reply::ok());
                Ok(())
            }
            Command::Quit => {
                self.reply(Reply::new(
                    221,
                    "2.0.0",
                    format!("{} closing connection", self.srv.settings.hostname),
                ));
                Err(End::Closed)
            }
            Command::Help => {
                self.reply(Reply::new(214, "2.0.0", "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT STARTTLS AUTH VRFY"));
                Ok(())
            }
            // RFC 5321 3.5.3: 252 when we will not verify; answering honestly would let anyone
            // enumerate accounts.
            Command::Vrfy { .. } => {
                self.reply(Reply::new(
                    252,
                    "2.5.0",
                    "Cannot VRFY user, but will accept message and attempt delivery",
                ));
                Ok(())
            }
            Command::Expn { .. } => {
                self.error_reply(Reply::new(502, "5.5.1", "EXPN not available"))
            }
            Command::StartTls => self.handle_starttls().await,
            Command::Auth {
                mechanism,
                initial_response,
            } => self.handle_auth(mechanism, initial_response).await,
        }
    }

    /// Queues a reply.
    pub(crate) fn reply(&mut self, reply: Reply) {
        reply.write_to(&mut self.out);
    }

    /// Queues an error reply and counts it; too many errors close the session.
    pub(crate) fn error_reply(&mut self, reply: Reply) -> Result<(), End> {
        self.reply(reply);
        self.errors += 1;
        if self.errors >= self.srv.settings.max_errors {
            self.reply(Reply::new(
                421,
                "4.7.0",
                "Too many errors, closing connection",
            ));
            return Err(End::Closed);
        }
        Ok(())
    }

    pub(crate) async fn flush(&mut self) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        let stream = self.stream.as_mut().ok_or(End::Disconnected)?;
        let write = async {
            stream.write_all(&self.out).await?;
            stream.flush().await
        };
        match tokio::time::timeout(self.srv.settings.command_timeout, write).await {
            Ok(Ok(())) => {
                self.out.clear();
                Ok(())
            }
            _ => Err(End::Disconnected),
        }
    }

    /// Reads more bytes into `buf` (flushing replies first). `watch_shutdown`: give up with 421
    /// when the server stops (only between commands, never inside a message).
    pub(crate) async fn read_some(
        &mut self,
        timeout: Duration,
        watch_shutdown: bool,
    ) -> Result<usize, End> {
        self.flush().await?;
        let stream = self.stream.as_mut().ok_or(End::Disconnected)?;
        let mut shutdown = self.shutdown.clone();
        let read = stream.read(&mut self.read_buf);
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, read) => r,
            _ = shutdown.wait(), if watch_shutdown => {
                self.reply(Reply::shutting_down());
                return Err(End::Closed);
            }
        };
        match result {
            Ok(Ok(0)) | Ok(Err(_)) => Err(End::Disconnected),
            Ok(Ok(n)) => Ok(n),
            Err(_) => {
                self.reply(Reply::new(
                    421,
                    "4.4.2",
                    format!("{} Timeout, closing connection", self.srv.settings.hostname),
                ));
                Err(End::Closed)
            }
        }
    }

    /// The bytes of the last [`read_some`](Self::read_some).
    pub(crate) fn received(&self, n: usize) -> &[u8] {
        &self.read_buf[..n]
    }

    /// The next command line, passed to `read` (it borrows the line buffer);
    /// `Ok(Err(reply))` for a line that was too long.
    pub(crate) async fn next_line<T>(
        &mut self,
        timeout: Duration,
        watch_shutdown: bool,
        read: impl FnOnce(&[u8]) -> T,
    ) -> Result<Result<T, Reply>, End> {
        loop {
            match self.input.next_line() {
                Some(Ok(line)) => return Ok(Ok(read(line))),
                // LineError::TooLong, the only error.
                Some(Err(_)) => return Ok(Err(Reply::line_too_long())),
                None => {
                    let n = self.read_some(timeout, watch_shutdown).await?;
                    let Session {
                        input, read_buf, ..
                    } = self;
                    input.push(&read_buf[..n]);
                }
            }
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.stream.as_ref().is_some_and(Stream::is_tls)
    }

    pub(crate) fn tls_description(&self) -> Option<String> {
        self.stream.as_ref().and_then(Stream::tls_description)
    }

    /// Whether AUTH may be offered/used on this connection now.
    pub(crate) fn auth_allowed(&self) -> bool {
        self.srv.settings.role == Role::Submission
            && (self.is_tls()
                || self.srv.settings.allow_plaintext_auth
                || (self.srv.settings.plaintext_auth_on_loopback && self.peer.ip().is_loopback()))
    }

    async fn handle_starttls(&mut self) -> Result<(), End> {
        let Some(acceptor) = self.srv.tls.clone() else {
            return self.error_reply(Reply::new(502, "5.5.1", "STARTTLS not available"));
        };
        if self.is_tls() {
            return self.error_reply(Reply::new(503, "5.5.1", "Already using TLS"));
        }
        self.reply(Reply::new(220, "2.0.0", "Ready to start TLS"));
        self.flush().await?;
        // Anything pipelined after STARTTLS was sent in plaintext: drop it unread.
        self.input.clear();
        let plain = self.stream.take().ok_or(End::Disconnected)?;
        let upgrade =
            tokio::time::timeout(self.srv.settings.command_timeout, plain.upgrade(&acceptor));
        match upgrade.await {
            Ok(Ok(tls)) => self.stream = Some(tls),
            _ => return Err(End::Disconnected),
        }
        // RFC 3207 4.2: discard all knowledge obtained from the client before TLS.
        self.greeting = None;
        self.phase = Phase::Idle;
        self.identity = None;
        Ok(())
    }
}
