//! The SMTP client: one session to one host, carrying any number of messages. EHLO (HELO
//! when EHLO is refused), STARTTLS (opportunistic, or required), AUTH for a smarthost,
//! PIPELINING, SIZE, and the 8-bit rules: BODY=8BITMIME when the peer has it, a 7-bit
//! conversion when it has not (RFC 6152 3), SMTPUTF8 when an address or header needs it and a
//! bounce when the peer cannot take it (RFC 6531 3.4). Every wait has the RFC 5321 4.5.3.2
//! timeout; replies are parsed by `proto_smtp`.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use proto_smtp::{Capabilities, ParsedReply, ReplyParser};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

use super::Failure;
use message::seven_bit as downgrade;

/// RFC 5321 4.5.3.1.5: a reply line is at most 512 octets; be lenient with long ones.
const MAX_REPLY_LINE: usize = 4096;
/// Message data is written in chunks of this size, each with the data-block timeout.
const DATA_CHUNK: usize = 64 * 1024;

/// Client waits (RFC 5321 4.5.3.2 minimums by default).
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// TCP connect (not in the RFC; Postfix uses 30 s).
    pub connect: Duration,
    /// The 220 greeting (4.5.3.2.1: 5 minutes).
    pub greeting: Duration,
    /// EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET (4.5.3.2.2/3: 5 minutes).
    pub command: Duration,
    /// The 354 after DATA (4.5.3.2.4: 2 minutes).
    pub data_init: Duration,
    /// Each block of message data written (4.5.3.2.5: 3 minutes).
    pub data_block: Duration,
    /// The reply after the final dot (4.5.3.2.6: 10 minutes).
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(30),
            greeting: Duration::from_secs(300),
            command: Duration::from_secs(300),
            data_init: Duration::from_secs(120),
            data_block: Duration::from_secs(180),
            data_end: Duration::from_secs(600),
        }
    }
}

/// How STARTTLS is used on a session.
#[derive(Debug, Clone)]
pub(crate) enum TlsPolicy {
    /// Never.
    Off,
    /// When offered, without checking the certificate; plaintext otherwise.
    Opportunistic(Arc<rustls::ClientConfig>),
    /// Always: no session without TLS.
    Required(Arc<rustls::ClientConfig>),
}

/// How to open a session.
#[derive(Debug, Clone)]
pub(crate) struct SessionConfig {
    /// Our name in EHLO.
    pub(crate) helo: String,
    /// Waits.
    pub(crate) timeouts: Timeouts,
    /// STARTTLS policy.
    pub(crate) tls: TlsPolicy,
    /// AUTH credentials (smarthost).
    pub(crate) auth: Option<(String, String)>,
    /// Local address to connect from.
    pub(crate) source: Option<IpAddr>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A message and its envelope.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Envelope<'a> {
    /// `None`: the null reverse-path `<>`.
    pub(crate) sender: Option<&'a str>,
    /// Recipients, in wire form (quoted local parts quoted).
    pub(crate) recipients: &'a [String],
}

/// Per recipient: `Ok(reply text)` when the peer took responsibility, else why not.
pub(crate) type RcptResult = Result<String, Failure>;

/// A session with one host.
pub(crate) struct Session {
    stream: Stream,
    parser: ReplyParser,
    caps: Capabilities,
    /// `name[ip]`, for messages and the DSN Remote-MTA.
    peer: String,
    tls: bool,
    timeouts: Timeouts,
    /// The connection can carry another transaction.
    usable: bool,
    /// The first word of the greeting: the name the peer gives itself.
    banner: String,
}

/// Why opening a session failed.
#[derive(Debug)]
pub(crate) struct OpenError {
    pub(crate) failure: Failure,
    /// The TLS handshake failed: the same host may work without it (opportunistic only).
    pub(crate) tls_failed: bool,
}

impl From<Failure> for OpenError {
    fn from(failure: Failure) -> OpenError {
        OpenError {
            failure,
            tls_failed: false,
        }
    }
}

impl Session {
    /// Connects to `addr` (host `name`), reads the greeting, says EHLO, upgrades to TLS and
    /// authenticates as `config` asks.
    pub(crate) async fn open(
        name: &str,
        addr: SocketAddr,
        config: &SessionConfig,
    ) -> Result<Session, OpenError> {
        let peer = format!("{name}[{}]", addr.ip());
        let t = &config.timeouts;
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| Failure::temporary("4.4.1", format!("socket for {peer}: {e}")))?;
        if let Some(ip) = config.source.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| Failure::temporary("4.4.1", format!("bind to {ip}: {e}")))?;
        }
        let tcp = match timeout(t.connect, socket.connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(Failure::temporary(
                    "4.4.1",
                    format!("connect to {peer}:{}: {e}", addr.port()),
                )
                .into());
            }
            Err(_) => {
                return Err(Failure::temporary(
                    "4.4.1",
                    format!("connect to {peer}:{}: timed out", addr.port()),
                )
                .into());
            }
        };
        let _ = tcp.set_nodelay(true);
        let mut s = Session {
            stream: Stream::Plain(tcp),
            parser: ReplyParser::new(MAX_REPLY_LINE),
            caps: Capabilities::default(),
            peer,
            tls: false,
            timeouts: t.clone(),
            usable: true,
            banner: String::new(),
        };
        let greeting = s.read_reply(t.greeting).await?;
        if greeting.code != 220 {
            return Err(s.failed_reply(&greeting).into());
        }
        // RFC 5321 4.3.1: the greeting starts with the server's name.
        s.banner = greeting
            .lines
            .first()
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_default()
            .to_owned();
        s.hello(&config.helo).await?;
        let tls_config = match &config.tls {
            TlsPolicy::Off => None,
            TlsPolicy::Opportunistic(c) if s.caps.starttls => Some(c.clone()),
            TlsPolicy::Opportunistic(_) => None,
            TlsPolicy::Required(c) if s.caps.starttls => Some(c.clone()),
            TlsPolicy::Required(_) => {
                return Err(Failure::temporary(
                    "4.7.10",
                    format!("{} does not offer STARTTLS, which is required", s.peer),
                )
                .into());
            }
        };
        if let Some(tls_config) = tls_config {
            s = s.start_tls(name, tls_config, &config.helo).await?;
        }
        if let Some((user, password)) = &config.auth {
            s.authenticate(user, password).await?;
        }
        Ok(s)
    }

    /// The peer as `name[ip]`.
    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }

    /// Whether the peer calls itself `host`, in its greeting or its EHLO (HELO) reply: a
    /// loop when `host` is our own name.
    pub(crate) fn is_named(&self, host: &str) -> bool {
        self.caps.domain.eq_ignore_ascii_case(host) || self.banner.eq_ignore_ascii_case(host)
    }

    /// Whether the session runs over TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether another transaction may be started.
    pub(crate) fn usable(&self) -> bool {
        self.usable
    }

    /// What the peer announced.
    #[cfg(test)]
    pub(crate) fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn hello(&mut self, helo: &str) -> Result<(), Failure> {
        self.write(format!("EHLO {helo}\r\n").as_bytes(), self.timeouts.command)
            .await?;
        let reply = self.read_reply(self.timeouts.command).await?;
        if reply.code == 250 {
            self.caps = Capabilities::from_ehlo(&reply);
            return Ok(());
        }
        if reply.code == 421 {
            return Err(self.failed_reply(&reply));
        }
        // RFC 5321 3.2: a server that does not know EHLO gets HELO (no extensions then).
        self.write(format!("HELO {helo}\r\n").as_bytes(), self.timeouts.command)
            .await?;
        let reply = self.read_reply(self.timeouts.command).await?;
        if reply.code != 250 {
            return Err(self.failed_reply(&reply));
        }
        self.caps = Capabilities {
            domain: reply.lines[0]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_owned(),
            ..Capabilities::default()
        };
        Ok(())
    }

    async fn start_tls(
        mut self,
        name: &str,
        config: Arc<rustls::ClientConfig>,
        helo: &str,
    ) -> Result<Session, OpenError> {
        self.write(b"STARTTLS\r\n", self.timeouts.command).await?;
        let reply = self.read_reply(self.timeouts.command).await?;
        if reply.code != 220 {
            return Err(OpenError {
                failure: self.failed_reply(&reply),
                tls_failed: true,
            });
        }
        let Stream::Plain(tcp) = self.stream else {
            return Err(Failure::temporary("4.7.0", "STARTTLS twice").into());
        };
        let server_name = rustls_pki_types::ServerName::try_from(name.to_owned())
            .unwrap_or_else(|_| rustls_pki_types::ServerName::try_from("invalid").unwrap());
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls = match timeout(self.timeouts.command, connector.connect(server_name, tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                return Err(OpenError {
                    failure: Failure::temporary(
                        "4.7.0",
                        format!("TLS handshake with {}: {e}", self.peer),
                    ),
                    tls_failed: true,
                });
            }
            Err(_) => {
                return Err(OpenError {
                    failure: Failure::temporary(
                        "4.7.0",
                        format!("TLS handshake with {}: timed out", self.peer),
                    ),
                    tls_failed: true,
                });
            }
        };
        // RFC 3207 4.2: forget everything learnt before TLS, and say EHLO again.
        let mut s = Session {
            stream: Stream::Tls(Box::new(tls)),
            parser: ReplyParser::new(MAX_REPLY_LINE),
            caps: Capabilities::default(),
            peer: self.peer,
            tls: true,
            timeouts: self.timeouts,
            usable: true,
            banner: self.banner,
        };
        s.hello(helo).await?;
        Ok(s)
    }

    async fn authenticate(&mut self, user: &str, password: &str) -> Result<(), Failure> {
        let t = self.timeouts.command;
        if self.caps.auth.iter().any(|m| m == "PLAIN") {
            // RFC 4616: authzid NUL authcid NUL passwd, with an initial response (RFC 4954 4).
            let ir = B64.encode(format!("\0{user}\0{password}"));
            self.write(format!("AUTH PLAIN {ir}\r\n").as_bytes(), t)
                .await?;
        } else if self.caps.auth.iter().any(|m| m == "LOGIN") {
            self.write(b"AUTH LOGIN\r\n", t).await?;
            for value in [user, password] {
                let reply = self.read_reply(t).await?;
                if reply.code != 334 {
                    return Err(self.auth_failure(&reply));
                }
                self.write(format!("{}\r\n", B64.encode(value)).as_bytes(), t)
                    .await?;
            }
        } else {
            return Err(Failure::temporary(
                "4.7.12",
                format!("{} offers no AUTH PLAIN or LOGIN", self.peer),
            ));
        }
        let reply = self.read_reply(t).await?;
        if reply.code != 235 {
            return Err(self.auth_failure(&reply));
        }
        Ok(())
    }

    /// A refused login is our configuration's fault, not the message's: retry later.
    fn auth_failure(&mut self, reply: &ParsedReply) -> Failure {
        let mut f = self.failed_reply(reply);
        f.permanent = false;
        f.status = "4.7.8".into();
        f
    }

    /// Sends one message. Returns a result per recipient of `env`, in order; recipients
    /// refused before DATA keep their own reply.
    pub(crate) async fn send(&mut self, env: Envelope<'_>, message: &[u8]) -> Vec<RcptResult> {
        let all = |f: Failure| env.recipients.iter().map(|_| Err(f.clone())).collect();
        if !self.usable {
            return all(Failure::temporary("4.4.2", "connection lost"));
        }
        let sender_utf8 = env.sender.is_some_and(|s| !s.is_ascii());
        let headers_8bit = downgrade::headers_have_8bit(message);
        let needs_utf8 =
            sender_utf8 || headers_8bit || env.recipients.iter().any(|r| !r.is_ascii());
        if needs_utf8 && !self.caps.smtputf8 {
            // RFC 6531 3.4: a message that needs SMTPUTF8 cannot go to a server without it.
            if sender_utf8 || headers_8bit {
                return all(Failure::permanent(
                    if sender_utf8 { "5.6.7" } else { "5.6.9" },
                    format!(
                        "{} does not support SMTPUTF8, which this message needs",
                        self.peer
                    ),
                ));
            }
        }
        let body_8bit = downgrade::has_8bit(message);
        let converted;
        let (data, body8) = if !body_8bit {
            (message, false)
        } else if self.caps.eight_bit_mime {
            (message, true)
        } else {
            // RFC 6152 3: 8-bit mail to a 7-bit server is converted (MIME), never mangled.
            match downgrade::to_seven_bit(message) {
                Some(m) => {
                    converted = m;
                    (converted.as_slice(), false)
                }
                None => {
                    return all(Failure::permanent(
                        "5.6.3",
                        format!(
                            "{} does not support 8BITMIME and the message cannot be converted",
                            self.peer
                        ),
                    ));
                }
            }
        };
        // After any conversion: base64 or quoted-printable adds up to a third.
        if self.caps.too_large(data.len() as u64) {
            // RFC 1870 6: the peer will not take it; retrying cannot help.
            return all(Failure::permanent(
                "5.3.4",
                format!(
                    "message of {} octets exceeds the size limit of {} ({} octets)",
                    data.len(),
                    self.peer,
                    self.caps.size.unwrap_or(0)
                ),
            ));
        }
        let smtputf8 = needs_utf8 && self.caps.smtputf8;
        // Recipients the peer cannot take at all (non-ASCII without SMTPUTF8) are not sent.
        let mut results: Vec<Option<RcptResult>> = env
            .recipients
            .iter()
            .map(|r| {
                (!r.is_ascii() && !self.caps.smtputf8).then(|| {
                    Err(Failure::permanent(
                        "5.6.7",
                        format!("{} does not support SMTPUTF8 addresses", self.peer),
                    ))
                })
            })
            .collect();
        let sent: Vec<usize> = (0..env.recipients.len())
            .filter(|i| results[*i].is_none())
            .collect();
        let outcome = if sent.is_empty() {
            Ok(())
        } else {
            self.transaction(env, &sent, data, body8, smtputf8, &mut results)
                .await
        };
        if let Err(f) = outcome {
            for r in results.iter_mut().filter(|r| r.is_none()) {
                *r = Some(Err(f.clone()));
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Failure::temporary("4.4.2", "no result"))))
            .collect()
    }

    /// MAIL, RCPT (for the indexes in `sent`), DATA; fills `results`. An `Err` applies to
    /// every recipient without a result yet.
    async fn transaction(
        &mut self,
        env: Envelope<'_>,
        sent: &[usize],
        data: &[u8],
        body8: bool,
        smtputf8: bool,
        results: &mut [Option<RcptResult>],
    ) -> Result<(), Failure> {
        let t = self.timeouts.clone();
        let mut mail = format!("MAIL FROM:<{}>", env.sender.unwrap_or(""));
        if self.caps.size.is_some() {
            mail.push_str(&format!(" SIZE={}", data.len()));
        }
        if body8 {
            mail.push_str(" BODY=8BITMIME");
        }
        if smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        let commands: Vec<String> = std::iter::once(mail)
            .chain(
                sent.iter()
                    .map(|&i| format!("RCPT TO:<{}>", env.recipients[i])),
            )
            .chain(std::iter::once("DATA".to_owned()))
            .map(|c| c.replace(['\r', '\n'], "") + "\r\n")
            .collect();
        let pipelined = self.caps.pipelining;
        if pipelined {
            // RFC 2920 3.1: MAIL, RCPT and DATA may all go in one write.
            self.write(commands.concat().as_bytes(), t.command).await?;
        }
        // MAIL
        if !pipelined {
            self.write(commands[0].as_bytes(), t.command).await?;
        }
        let mail_reply = self.read_reply(t.command).await?;
        let mail_ok = mail_reply.code == 250;
        let mail_failure = (!mail_ok).then(|| self.failed_reply(&mail_reply));
        if let (Some(f), false) = (&mail_failure, pipelined) {
            let f = f.clone();
            self.reset().await;
            return Err(f);
        }
        // RCPT
        let mut accepted = Vec::new();
        for (n, &i) in sent.iter().enumerate() {
            if !pipelined {
                self.write(commands[1 + n].as_bytes(), t.command).await?;
            }
            let reply = self.read_reply(t.command).await?;
            results[i] = Some(match &mail_failure {
                Some(f) => Err(f.clone()),
                None if reply.code == 250 || reply.code == 251 => {
                    accepted.push(i);
                    continue;
                }
                None => Err(self.failed_reply(&reply)),
            });
            if reply.code == 421 {
                self.usable = false;
                return Err(self.failed_reply(&reply));
            }
        }
        // DATA
        if !pipelined {
            if accepted.is_empty() {
                self.reset().await;
                return Ok(());
            }
            self.write(b"DATA\r\n", t.command).await?;
        }
        let data_reply = self.read_reply(t.data_init).await?;
        if data_reply.code != 354 {
            let f = self.failed_reply(&data_reply);
            if data_reply.code == 421 {
                self.usable = false;
            } else {
                self.reset().await;
            }
            for &i in &accepted {
                results[i] = Some(Err(f.clone()));
            }
            return Ok(());
        }
        if accepted.is_empty() {
            // RFC 2920 3.1: DATA was accepted although no recipient was: send an empty message.
            self.write(b".\r\n", t.data_block).await?;
            let _ = self.read_reply(t.data_end).await?;
            self.reset().await;
            return Ok(());
        }
        let mut stuffed = Vec::with_capacity(data.len() + data.len() / 64 + 8);
        proto_smtp::data::dot_stuff(data, &mut stuffed);
        for chunk in stuffed.chunks(DATA_CHUNK) {
            self.write(chunk, t.data_block).await?;
        }
        // From here a lost connection leaves the outcome unknown (RFC 5321 6.1): the peer may
        // have the message. It is retried: at worst a duplicate, never a loss.
        let end = self.read_reply(t.data_end).await?;
        let result = if end.code == 250 {
            Ok(reply_text(&end))
        } else {
            if end.code == 421 {
                self.usable = false;
            }
            Err(self.failed_reply(&end))
        };
        for &i in &accepted {
            results[i] = Some(result.clone());
        }
        Ok(())
    }

    /// RSET after a failed transaction; a session that does not take it is not reused.
    async fn reset(&mut self) {
        if !self.usable {
            return;
        }
        let ok = match self.write(b"RSET\r\n", self.timeouts.command).await {
            Ok(()) => {
                matches!(self.read_reply(self.timeouts.command).await, Ok(r) if r.code == 250)
            }
            Err(_) => false,
        };
        self.usable = ok;
    }

    /// QUIT, briefly waiting for the reply, then closes.
    pub(crate) async fn quit(mut self) {
        if self.usable
            && self
                .write(b"QUIT\r\n", Duration::from_secs(10))
                .await
                .is_ok()
        {
            let _ = self.read_reply(Duration::from_secs(10)).await;
        }
        let _ = timeout(Duration::from_secs(5), self.stream.shutdown()).await;
    }

    async fn write(&mut self, bytes: &[u8], wait: Duration) -> Result<(), Failure> {
        let io = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match timeout(wait, io).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.usable = false;
                Err(Failure::temporary(
                    "4.4.2",
                    format!("lost connection with {}: {e}", self.peer),
                ))
            }
            Err(_) => {
                self.usable = false;
                Err(Failure::temporary(
                    "4.4.2",
                    format!("timed out sending to {}", self.peer),
                ))
            }
        }
    }

    async fn read_reply(&mut self, wait: Duration) -> Result<ParsedReply, Failure> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = [0u8; 4096];
        loop {
            match self.parser.next_reply() {
                Some(Ok(r)) => return Ok(r),
                Some(Err(e)) => {
                    self.usable = false;
                    return Err(Failure::temporary(
                        "4.5.0",
                        format!("bad reply from {}: {e}", self.peer),
                    ));
                }
                None => {}
            }
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) => {
                    self.usable = false;
                    return Err(Failure::temporary(
                        "4.4.2",
                        format!("{} closed the connection", self.peer),
                    ));
                }
                Ok(Ok(n)) => self.parser.push(&buf[..n]),
                Ok(Err(e)) => {
                    self.usable = false;
                    return Err(Failure::temporary(
                        "4.4.2",
                        format!("lost connection with {}: {e}", self.peer),
                    ));
                }
                Err(_) => {
                    self.usable = false;
                    return Err(Failure::temporary(
                        "4.4.2",
                        format!("timed out waiting for {}", self.peer),
                    ));
                }
            }
        }
    }

    fn failed_reply(&mut self, reply: &ParsedReply) -> Failure {
        if reply.code == 421 {
            self.usable = false;
        }
        Failure::from_reply(reply, &self.peer)
    }
}

/// `250 2.0.0 text` as one line.
pub(crate) fn reply_text(r: &ParsedReply) -> String {
    let mut s = r.code.to_string();
    if let Some(e) = &r.enhanced {
        s.push(' ');
        s.push_str(e);
    }
    let text = r.lines.join(" ");
    if !text.is_empty() {
        s.push(' ');
        s.push_str(&text);
    }
    s.chars().filter(|c| !c.is_control()).take(500).collect()
}
