//! One POP3 connection from greeting to close.
//!
//! Implementation notes:
//! * States (RFC 1939 3): [`State::Authorization`] and [`State::Transaction`]; the UPDATE
//!   state is the QUIT handler. Which commands each state takes is [`Session::allowed`].
//! * Replies are buffered and flushed whenever no complete command is left in the input
//!   buffer, which is what PIPELINING (RFC 2449 6.6) needs; RETR output is flushed in pieces.
//! * Command lines are bounded ([`MAX_LINE`]); `max_errors` erroneous commands close the
//!   session. Every wait for the client has a timeout: `login_timeout` before login,
//!   `timeout` after (RFC 1939 3: autologout timer of at least 10 minutes).
//! * STLS discards any plaintext buffered after the command (RFC 2595 4, command injection)
//!   and forgets the USER name given before it.
//! * A session that ends without QUIT in the TRANSACTION state deletes nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use net::{Connection, Shutdown, Stream};
use proto_pop3::{Code, Command, LineBuffer, LineError, ParseError, parse_command};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Pop3Server;
use crate::maildrop::Maildrop;

const READ_CHUNK: usize = 16 * 1024;
/// Output buffered before it is written out (large RETR responses are sent in pieces).
pub(crate) const FLUSH_AT: usize = 128 * 1024;
/// RFC 2449 4: commands are at most 255 octets including CRLF; some clients send longer AUTH
/// lines, so up to 510 are accepted.
pub(crate) const MAX_LINE: usize = 510;
/// Time allowed for writing a reply or finishing a TLS handshake.
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a session ends.
#[derive(Debug)]
pub(crate) enum End {
    /// QUIT, too many errors, or shutdown.
    Closed,
    /// The client went away, timed out or the socket failed.
    Disconnected,
}

/// Result of handling one command: continue, or end the session.
pub(crate) type Flow = Result<(), End>;

/// RFC 1939 3: the session's state.
pub(crate) enum State {
    /// Before login; `user` is the name given by USER, waiting for PASS.
    Authorization { user: Option<String> },
    /// Logged in, with the maildrop snapshot and its lock.
    Transaction(Box<Maildrop>),
}

/// The whole AUTHORIZATION state may last this many `login_timeout`s.
const LOGIN_WINDOW_TIMEOUTS: u32 = 5;

pub(crate) struct Session {
    pub(crate) srv: Arc<Pop3Server>,
    stream: Option<Stream>,
    pub(crate) peer: SocketAddr,
    shutdown: Shutdown,
    pub(crate) input: LineBuffer,
    pub(crate) out: Vec<u8>,
    read_buf: Vec<u8>,
    pub(crate) state: State,
    errors: u32,
    pub(crate) auth_failures: u32,
    /// Login must be done by then: the per-read timeout alone would let a client that sends
    /// CAPA now and then hold a connection without ever logging in.
    login_deadline: tokio::time::Instant,
}

impl Session {
    pub(crate) fn new(srv: Arc<Pop3Server>, conn: Connection) -> Session {
        let login_deadline =
            tokio::time::Instant::now() + srv.settings.login_timeout * LOGIN_WINDOW_TIMEOUTS;
        Session {
            srv,
            stream: Some(conn.stream),
            peer: conn.peer,
            shutdown: conn.shutdown,
            input: LineBuffer::new(MAX_LINE),
            out: Vec::with_capacity(512),
            read_buf: vec![0; READ_CHUNK],
            state: State::Authorization { user: None },
            errors: 0,
            auth_failures: 0,
            login_deadline,
        }
    }

    pub(crate) async fn run(mut self) {
        // No APOP timestamp: APOP needs plaintext passwords, which we do not keep.
        let greeting = format!("{} Postern POP3 ready", self.srv.settings.hostname);
        proto_pop3::ok(&mut self.out, &greeting);
        let end = self.command_loop().await;
        tracing::debug!(peer = %self.peer, ?end, "POP3 session ended");
        let _ = self.flush().await;
        if let Some(mut s) = self.stream.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), s.shutdown()).await;
        }
        // Dropping the session (and its maildrop) releases the maildrop lock.
    }

    async fn command_loop(&mut self) -> Flow {
        loop {
            let command = match self.next_command().await? {
                Ok(Ok(c)) => c,
                Ok(Err(ParseError::Unknown(k))) if k.is_empty() => {
                    self.error(None, "Empty command")?;
                    continue;
                }
                Ok(Err(ParseError::Unknown(k))) => {
                    self.error(None, &format!("Unknown command {k}"))?;
                    continue;
                }
                Ok(Err(e)) => {
                    self.error(None, &format!("Invalid command: {e}"))?;
                    continue;
                }
                Err(_) => {
                    self.error(None, "Command line too long")?;
                    continue;
                }
            };
            if let Err(why) = self.allowed(&command) {
                self.error(None, why)?;
                continue;
            }
            self.dispatch(command).await?;
            if self.out.len() >= FLUSH_AT {
                self.flush().await?;
            }
        }
    }

    /// Which commands the current state allows (RFC 1939 3-7, RFC 2449 5, RFC 2595 4).
    fn allowed(&self, command: &Command) -> Result<(), &'static str> {
        use Command as C;
        let authorization = matches!(self.state, State::Authorization { .. });
        match command {
            C::Capa | C::Quit => Ok(()),
            C::User(_) | C::Pass(_) | C::Apop | C::Auth { .. } | C::Stls if authorization => Ok(()),
            C::User(_) | C::Pass(_) | C::Apop | C::Auth { .. } | C::Stls => {
                Err("Already logged in")
            }
            _ if authorization => Err("Log in first"),
            _ => Ok(()),
        }
    }

    async fn dispatch(&mut self, command: Command) -> Flow {
        use Command as C;
        match command {
            C::Capa => {
                self.handle_capa();
                Ok(())
            }
            C::Quit => self.handle_quit().await,
            C::Stls => self.handle_stls().await,
            C::User(name) => self.handle_user(name),
            C::Pass(password) => self.handle_pass(&password).await,
            C::Apop => self.error(
                None,
                "APOP is not supported; use USER/PASS or AUTH PLAIN over TLS",
            ),
            C::Auth { mechanism, initial } => self.handle_auth(mechanism, initial).await,
            C::Stat => self.handle_stat(),
            C::List(n) => self.handle_list(n),
            C::Uidl(n) => self.handle_uidl(n),
            C::Retr(n) => self.handle_retr(n, None).await,
            C::Top(n, lines) => self.handle_retr(n, Some(lines)).await,
            C::Dele(n) => self.handle_dele(n),
            C::Noop => {
                proto_pop3::ok(&mut self.out, "");
                Ok(())
            }
            C::Rset => self.handle_rset(),
        }
    }

    /// Writes `-ERR [code] text` for a failed command and counts it; too many close the session.
    pub(crate) fn error(&mut self, code: Option<Code>, text: &str) -> Flow {
        proto_pop3::err(&mut self.out, code, text);
        self.errors += 1;
        if self.errors >= self.srv.settings.max_errors {
            tracing::info!(peer = %self.peer, "POP3 session closed after too many errors");
            return Err(End::Closed);
        }
        Ok(())
    }

    /// The session's maildrop (TRANSACTION state only; [`Session::allowed`] guarantees it).
    pub(crate) fn maildrop(&mut self) -> Option<&mut Maildrop> {
        match &mut self.state {
            State::Transaction(m) => Some(m),
            State::Authorization { .. } => None,
        }
    }

    fn timeout(&self) -> Duration {
        match self.state {
            State::Authorization { .. } => self.srv.settings.login_timeout.min(
                self.login_deadline
                    .saturating_duration_since(tokio::time::Instant::now()),
            ),
            State::Transaction(_) => self.srv.settings.timeout,
        }
    }

    /// The next command line, parsed.
    async fn next_command(
        &mut self,
    ) -> Result<Result<Result<Command, ParseError>, LineError>, End> {
        loop {
            if let Some(item) = self.input.next_line() {
                return Ok(item.map(parse_command));
            }
            self.read_more().await?;
        }
    }

    /// The next raw line (a SASL response), up to `max` octets; `None` when it was longer.
    pub(crate) async fn read_line(&mut self, max: usize) -> Result<Option<Vec<u8>>, End> {
        self.input.set_max_line(max);
        let line = loop {
            if let Some(item) = self.input.next_line() {
                break item.ok().map(<[u8]>::to_vec);
            }
            if let Err(e) = self.read_more().await {
                self.input.set_max_line(MAX_LINE);
                return Err(e);
            }
        };
        self.input.set_max_line(MAX_LINE);
        Ok(line)
    }

    /// Flushes replies, then reads more bytes into the line buffer (with the autologout
    /// timeout); shutdown and timeouts end the session with a last `-ERR`.
    async fn read_more(&mut self) -> Flow {
        self.flush().await?;
        let timeout = self.timeout();
        let stream = self.stream.as_mut().ok_or(End::Disconnected)?;
        let mut shutdown = self.shutdown.clone();
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, stream.read(&mut self.read_buf)) => r,
            _ = shutdown.wait() => {
                proto_pop3::err(&mut self.out, Some(Code::SysTemp), "Server shutting down");
                return Err(End::Closed);
            }
        };
        match result {
            Ok(Ok(0)) | Ok(Err(_)) => Err(End::Disconnected),
            Ok(Ok(n)) => {
                let Session {
                    input, read_buf, ..
                } = self;
                input.push(&read_buf[..n]);
                Ok(())
            }
            Err(_) => {
                proto_pop3::err(&mut self.out, None, "Autologout; idle for too long");
                Err(End::Disconnected)
            }
        }
    }

    pub(crate) async fn flush(&mut self) -> Flow {
        if self.out.is_empty() {
            return Ok(());
        }
        let stream = self.stream.as_mut().ok_or(End::Disconnected)?;
        let write = async {
            stream.write_all(&self.out).await?;
            stream.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {
                self.out.clear();
                if self.out.capacity() > 2 * FLUSH_AT {
                    self.out.shrink_to(1024);
                }
                Ok(())
            }
            _ => Err(End::Disconnected),
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.stream.as_ref().is_some_and(Stream::is_tls)
    }

    /// Whether passwords may be sent on this connection now (RFC 2595 4: the server may refuse
    /// plaintext authentication before STLS).
    pub(crate) fn auth_allowed(&self) -> bool {
        let s = &self.srv.settings;
        self.is_tls()
            || s.allow_plaintext_auth
            || (s.plaintext_auth_on_loopback && self.peer.ip().is_loopback())
    }

    /// Upgrades the connection after the "+OK" to STLS was written; the input buffer is dropped
    /// (anything pipelined after STLS was sent in plaintext).
    pub(crate) async fn start_tls(&mut self) -> Flow {
        let Some(acceptor) = self.srv.tls.clone() else {
            return Err(End::Closed);
        };
        self.flush().await?;
        self.input.clear();
        let plain = self.stream.take().ok_or(End::Disconnected)?;
        match tokio::time::timeout(WRITE_TIMEOUT, plain.upgrade(&acceptor)).await {
            Ok(Ok(tls)) => {
                self.stream = Some(tls);
                Ok(())
            }
            _ => Err(End::Disconnected),
        }
    }
}
