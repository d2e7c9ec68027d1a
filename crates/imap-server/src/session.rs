//! One IMAP connection from greeting to LOGOUT.
//!
//! Implementation notes:
//! * Input is framed by `Fragmentizer` into complete commands (lines plus literals). A
//!   synchronising literal gets its "+" continuation only if it fits the limit; a larger one is
//!   refused with `NO [TOOBIG]` and skipped without being read as commands. Whole commands are
//!   bounded by `max_append` plus a small slack.
//! * State: `user` (authenticated) and `selected` (a mailbox view). Which commands each state
//!   allows is the table in [`Session::allowed`].
//! * Replies go to `out` and are flushed before every read, and early when large.
//! * After COMPRESS DEFLATE (RFC 4978) `flush` compresses `out` (ending with a sync flush) and
//!   input is inflated in chunks of at most `INFLATE_CHUNK` octets before it reaches the
//!   Fragmentizer: the next chunk is inflated only once the Fragmentizer has used up the last,
//!   exactly as the next socket read is, so compressed input is bounded like plain input.
//! * Before the tagged reply of most commands the selected view is resynced with the store and
//!   the differences are sent as untagged EXISTS/EXPUNGE/FETCH; EXPUNGE is held back during
//!   FETCH, STORE and SEARCH (RFC 9051 7.5.1).

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use auth::Identity;
use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer, LiteralAnnouncement};
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::LiteralMode;
use net::{Connection, Shutdown, Stream};
use proto_imap::deflate::Deflate;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ImapServer;
use crate::selected::Selected;

const READ_CHUNK: usize = 16 * 1024;
/// Flush the output buffer once it holds this much (large FETCH responses).
const FLUSH_AT: usize = 256 * 1024;
/// Room for the command around an APPEND literal.
const COMMAND_SLACK: u32 = 64 * 1024;
/// Largest non-synchronising literal accepted when LITERAL- is advertised (RFC 7888 4).
const LITERAL_MINUS_MAX: u32 = 4096;
/// Largest command (line and literals together) before login: LOGIN and AUTHENTICATE need
/// little, and an anonymous client must not make the server hold APPENDLIMIT per connection.
const PRE_LOGIN_MAX: u32 = 16 * 1024;

/// Why a session ends.
#[derive(Debug)]
pub(crate) enum End {
    /// LOGOUT, a BYE we sent, or shutdown.
    Closed,
    /// The client went away, timed out or the socket failed.
    Disconnected,
}

/// Result of handling one command: continue, or end the session.
pub(crate) type Flow = Result<(), End>;

/// What reading the next command produced.
enum Next {
    /// A complete command's bytes.
    Command(Vec<u8>),
    /// A command that was refused while being read (already answered).
    Refused,
}

pub(crate) struct Session {
    pub(crate) srv: Arc<ImapServer>,
    stream: Option<Stream>,
    pub(crate) peer: SocketAddr,
    shutdown: Shutdown,
    frag: Fragmentizer,
    out: Vec<u8>,
    read_buf: Vec<u8>,
    /// COMPRESS=DEFLATE is active: the compressor and decompressor (a few hundred KiB, only
    /// for sessions that asked).
    deflate: Option<Deflate>,
    /// With `deflate`: the part of `read_buf` read from the socket but not yet inflated.
    wire: Range<usize>,
    /// With `deflate`: inflated input on its way to the Fragmentizer, and compressed output
    /// on its way to the socket (never both at once).
    zbuf: Vec<u8>,
    /// The authenticated user.
    pub(crate) user: Option<Identity>,
    /// The selected mailbox.
    pub(crate) selected: Option<Selected>,
    /// UTF8=ACCEPT enabled: mailbox names and strings are UTF-8 on the wire.
    pub(crate) utf8: bool,
    /// CONDSTORE enabled (ENABLE, or a CONDSTORE-using command): FETCH responses carry MODSEQ.
    pub(crate) condstore: bool,
    /// QRESYNC enabled: expunges are reported as VANISHED.
    pub(crate) qresync: bool,
    /// IMAP4rev2 enabled (RFC 9051): ESEARCH responses, UTF-8 names, no \Recent.
    pub(crate) rev2: bool,
    /// SEARCHRES saved result (`$`), as UIDs.
    pub(crate) saved: Vec<store::Uid>,
    /// RETURN options of the SEARCH being run (ESEARCH), set by the pre-parser.
    pub(crate) search_return: Option<crate::extended::SearchReturn>,
    bad_in_a_row: u32,
}

impl Session {
    pub(crate) fn new(srv: Arc<ImapServer>, conn: Connection) -> Session {
        let limit = srv.settings.max_append.saturating_add(COMMAND_SLACK);
        Session {
            srv,
            stream: Some(conn.stream),
            peer: conn.peer,
            shutdown: conn.shutdown,
            frag: Fragmentizer::new(limit),
            out: Vec::with_capacity(1024),
            read_buf: vec![0; READ_CHUNK],
            deflate: None,
            wire: 0..0,
            zbuf: Vec::new(),
            user: None,
            selected: None,
            utf8: false,
            condstore: false,
            qresync: false,
            rev2: false,
            saved: Vec::new(),
            search_return: None,
            bad_in_a_row: 0,
        }
    }

    pub(crate) async fn run(mut self) {
        let greeting = format!(
            "* OK [CAPABILITY {}] {} Postern IMAP ready\r\n",
            self.capabilities(),
            self.srv.settings.hostname
        );
        self.out.extend_from_slice(greeting.as_bytes());
        let end = self.command_loop().await;
        tracing::debug!(peer = %self.peer, ?end, "IMAP session ended");
        let _ = self.flush().await;
        if let Some(mut s) = self.stream.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), s.shutdown()).await;
        }
    }

    async fn command_loop(&mut self) -> Flow {
        loop {
            let bytes = match self.next_command().await? {
                Next::Command(b) => b,
                Next::Refused => continue,
            };
            let bytes = match self.preprocess(bytes).await? {
                Some(b) => b,
                None => continue,
            };
            match CommandCodec::default().decode(&bytes) {
                Ok((_, command)) => {
                    self.bad_in_a_row = 0;
                    self.dispatch(command).await?;
                }
                Err(_) => {
                    let tag = tag_of(&bytes);
                    self.bad(&tag, "Syntax error in command")?;
                }
            }
            if self.out.len() >= FLUSH_AT {
                self.flush().await?;
            }
        }
    }

    fn timeout(&self) -> Duration {
        if self.user.is_some() {
            self.srv.settings.authenticated_timeout
        } else {
            self.srv.settings.unauthenticated_timeout
        }
    }

    /// Reads until one complete command is framed.
    async fn next_command(&mut self) -> Result<Next, End> {
        loop {
            if self.user.is_none() && self.frag.message_bytes().len() > PRE_LOGIN_MAX as usize {
                // Checked as the bytes arrive, so at most a chunk or two more is held; no
                // answer would stop a client that is still sending, so the connection ends.
                self.out
                    .extend_from_slice(b"* BYE [TOOBIG] Command too large before login\r\n");
                return Err(End::Closed);
            }
            match self.frag.progress() {
                Some(FragmentInfo::Line {
                    announcement: Some(LiteralAnnouncement { mode, length }),
                    ..
                }) => {
                    let limit = match mode {
                        _ if self.user.is_none() => PRE_LOGIN_MAX,
                        LiteralMode::NonSync => self.non_sync_limit(),
                        LiteralMode::Sync => self.srv.settings.max_append,
                    };
                    if length > limit {
                        let tag = self
                            .frag
                            .decode_tag()
                            .map(|t| t.inner().to_string())
                            .unwrap_or_else(|| "*".into());
                        match mode {
                            LiteralMode::Sync => {
                                // RFC 7889: refuse before the client sends the literal.
                                self.frag.skip_message();
                                self.tagged(
                                    &tag,
                                    "NO",
                                    &format!("[TOOBIG] Literal larger than APPENDLIMIT={limit}"),
                                );
                                return Ok(Next::Refused);
                            }
                            LiteralMode::NonSync => {
                                // The bytes are coming anyway: consume them, then refuse with
                                // BAD [TOOBIG] below (RFC 7888 4).
                                self.frag.poison_message();
                            }
                        }
                    } else if mode == LiteralMode::Sync {
                        self.out.extend_from_slice(b"+ Ready for literal data\r\n");
                    }
                }
                Some(_) => {}
                None => {
                    let timeout = self.timeout();
                    self.fill(timeout).await?;
                    continue;
                }
            }
            if self.frag.is_message_complete() {
                if self.frag.is_max_message_size_exceeded() || self.frag.is_message_poisoned() {
                    let tag = self
                        .frag
                        .decode_tag()
                        .map(|t| t.inner().to_string())
                        .unwrap_or_else(|| "*".into());
                    self.tagged(&tag, "BAD", "[TOOBIG] Command or literal too large");
                    return Ok(Next::Refused);
                }
                return Ok(Next::Command(self.frag.message_bytes().to_vec()));
            }
        }
    }

    /// Reads one line (SASL continuation, IDLE's DONE); `None` for an over-long one.
    pub(crate) async fn read_line(&mut self) -> Result<Vec<u8>, End> {
        match self.next_command().await? {
            Next::Command(mut b) => {
                while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                    b.pop();
                }
                Ok(b)
            }
            Next::Refused => Ok(Vec::new()),
        }
    }

    /// Largest non-synchronising literal: APPENDLIMIT with LITERAL+, 4096 with LITERAL-.
    fn non_sync_limit(&self) -> u32 {
        let s = &self.srv.settings;
        if s.literal_minus {
            s.max_append.min(LITERAL_MINUS_MAX)
        } else {
            s.max_append
        }
    }

    /// Gives the Fragmentizer more input: the next inflated chunk if compressed bytes are
    /// waiting, else what the socket delivers (with the autologout timeout).
    async fn fill(&mut self, timeout: Duration) -> Flow {
        loop {
            if self.inflate_buffered()? {
                return Ok(());
            }
            let n = self.read_some(timeout).await?;
            if self.deflate.is_none() {
                let Session { frag, read_buf, .. } = self;
                frag.enqueue_bytes(&read_buf[..n]);
                return Ok(());
            }
            self.wire = 0..n;
        }
    }

    /// Flushes replies, then reads more bytes (with the autologout timeout) into `read_buf`.
    async fn read_some(&mut self, timeout: Duration) -> Result<usize, End> {
        self.flush().await?;
        let stream = self.stream.as_mut().ok_or(End::Disconnected)?;
        let mut shutdown = self.shutdown.clone();
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, stream.read(&mut self.read_buf)) => r,
            _ = shutdown.wait() => {
                self.out.extend_from_slice(b"* BYE Server shutting down\r\n");
                return Err(End::Closed);
            }
        };
        match result {
            Ok(Ok(0)) | Ok(Err(_)) => Err(End::Disconnected),
            Ok(Ok(n)) => Ok(n),
            Err(_) => {
                self.out
                    .extend_from_slice(b"* BYE Autologout; idle for too long\r\n");
                Err(End::Disconnected)
            }
        }
    }

    /// COMPRESS: inflates the compressed bytes waiting in `read_buf` into the Fragmentizer,
    /// one chunk at most; whether anything was enqueued. A corrupt stream ends the session.
    fn inflate_buffered(&mut self) -> Result<bool, End> {
        let Session {
            deflate: Some(z),
            read_buf,
            wire,
            zbuf,
            frag,
            ..
        } = self
        else {
            return Ok(false);
        };
        zbuf.clear();
        let mut result = Ok(());
        // Input may be taken without output (a block header); loop until output or dry.
        while zbuf.is_empty() && (wire.start < wire.end || z.has_output()) {
            match z.inflate(&read_buf[wire.clone()], zbuf) {
                Ok(n) => wire.start += n,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        frag.enqueue_bytes(zbuf);
        let enqueued = !zbuf.is_empty();
        if let Err(e) = result {
            tracing::info!(peer = %self.peer, "closing IMAP session: {e}");
            self.untagged("BYE Corrupt compressed input");
            return Err(End::Closed);
        }
        Ok(enqueued)
    }

    /// Waits until more input reaches the Fragmentizer (IDLE). Cancel-safe: nothing is consumed
    /// unless it returns.
    pub(crate) async fn readable(&mut self) -> Flow {
        if self.inflate_buffered()? {
            return Ok(());
        }
        let stream = self.stream.as_mut().ok_or(End::Disconnected)?;
        match stream.read(&mut self.read_buf).await {
            Ok(0) | Err(_) => Err(End::Disconnected),
            Ok(n) if self.deflate.is_some() => {
                self.wire = 0..n;
                // A partial block may inflate to nothing yet; the IDLE loop then calls again.
                self.inflate_buffered().map(|_| ())
            }
            Ok(n) => {
                let Session { frag, read_buf, .. } = self;
                frag.enqueue_bytes(&read_buf[..n]);
                Ok(())
            }
        }
    }

    /// Writes `out` to the socket (compressed after COMPRESS, each flush a sync flush).
    pub(crate) async fn flush(&mut self) -> Flow {
        if self.out.is_empty() {
            return Ok(());
        }
        let stream = self.stream.as_mut().ok_or(End::Disconnected)?;
        let wire = match self.deflate.as_mut() {
            Some(z) => {
                self.zbuf.clear();
                if let Err(e) = z.deflate(&self.out, &mut self.zbuf) {
                    tracing::warn!(peer = %self.peer, "IMAP compression failed: {e}");
                    return Err(End::Disconnected);
                }
                &self.zbuf
            }
            None => &self.out,
        };
        let write = async {
            stream.write_all(wire).await?;
            stream.flush().await
        };
        match tokio::time::timeout(Duration::from_secs(300), write).await {
            Ok(Ok(())) => {
                self.out.clear();
                self.zbuf.clear();
                if self.out.capacity() > 4 * FLUSH_AT {
                    self.out.shrink_to(1024);
                }
                if self.zbuf.capacity() > 4 * FLUSH_AT {
                    self.zbuf.shrink_to(READ_CHUNK);
                }
                Ok(())
            }
            _ => Err(End::Disconnected),
        }
    }

    /// COMPRESS DEFLATE (RFC 4978): the tagged OK goes out uncompressed, everything after it
    /// in both directions is compressed.
    pub(crate) async fn start_compression(&mut self, tag: &str) -> Flow {
        if self.deflate.is_some() {
            return self.no(tag, "[COMPRESSIONACTIVE] DEFLATE is already active");
        }
        // RFC 4978 3: the client sends nothing more until it has seen our answer, so input
        // buffered behind COMPRESS broke that rule; it was read as plaintext and cannot be
        // told apart from compressed data. Refuse rather than guess.
        if self.frag.progress().is_some() || !self.frag.message_bytes().is_empty() {
            self.untagged("BYE Input after COMPRESS before its response (RFC 4978 3)");
            self.tagged(tag, "BAD", "Commands pipelined after COMPRESS");
            return Err(End::Closed);
        }
        self.ok(tag, "DEFLATE active")?;
        self.flush().await?;
        self.deflate = Some(Deflate::new());
        self.wire = 0..0;
        Ok(())
    }

    pub(crate) fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Writes `tag STATUS text`.
    pub(crate) fn tagged(&mut self, tag: &str, status: &str, text: &str) {
        self.out.extend_from_slice(tag.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(status.as_bytes());
        self.out.push(b' ');
        self.out
            .extend(text.bytes().filter(|b| *b != b'\r' && *b != b'\n'));
        self.out.extend_from_slice(b"\r\n");
    }

    /// Writes an untagged line (without the "* " and CRLF).
    pub(crate) fn untagged(&mut self, line: &str) {
        self.out.extend_from_slice(b"* ");
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    pub(crate) fn ok(&mut self, tag: &str, text: &str) -> Flow {
        self.tagged(tag, "OK", text);
        Ok(())
    }

    pub(crate) fn no(&mut self, tag: &str, text: &str) -> Flow {
        self.tagged(tag, "NO", text);
        Ok(())
    }

    /// BAD; too many in a row close the connection.
    pub(crate) fn bad(&mut self, tag: &str, text: &str) -> Flow {
        self.tagged(tag, "BAD", text);
        self.bad_in_a_row += 1;
        if self.bad_in_a_row >= self.srv.settings.max_bad_commands {
            self.untagged("BYE Too many invalid commands");
            return Err(End::Closed);
        }
        Ok(())
    }

    /// Whether COMPRESS DEFLATE is active.
    pub(crate) fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.stream.as_ref().is_some_and(Stream::is_tls)
    }

    /// Whether passwords may be sent on this connection now.
    pub(crate) fn auth_allowed(&self) -> bool {
        let s = &self.srv.settings;
        self.is_tls()
            || s.allow_plaintext_auth
            || (s.plaintext_auth_on_loopback && self.peer.ip().is_loopback())
    }

    pub(crate) fn capabilities(&self) -> String {
        let literal = if self.srv.settings.literal_minus {
            "LITERAL-"
        } else {
            "LITERAL+"
        };
        let mut caps = vec![
            "IMAP4rev1",
            "IMAP4rev2",
            literal,
            "SASL-IR",
            "ID",
            "ENABLE",
            "IDLE",
            "NAMESPACE",
            "UNSELECT",
        ];
        if self.user.is_none() {
            if self.srv.tls.is_some() && !self.is_tls() {
                caps.push("STARTTLS");
            }
            if self.auth_allowed() {
                caps.push("AUTH=PLAIN");
            } else {
                caps.push("LOGINDISABLED");
            }
        } else {
            caps.extend([
                "UIDPLUS",
                "MOVE",
                "CHILDREN",
                "SPECIAL-USE",
                "CREATE-SPECIAL-USE",
                "CONDSTORE",
                "QRESYNC",
                "UTF8=ACCEPT",
                "STATUS=SIZE",
                "ESEARCH",
                "SEARCHRES",
                "LIST-EXTENDED",
                "LIST-STATUS",
                "SORT",
                "THREAD=ORDEREDSUBJECT",
                "THREAD=REFERENCES",
                "BINARY",
                "QUOTA",
                "QUOTA=RES-STORAGE",
            ]);
            // COMPRESS is an authenticated-state command (RFC 4978 5), so it is offered only
            // then, as Dovecot does; that also keeps it from being announced before STARTTLS.
            caps.push("COMPRESS=DEFLATE");
        }
        let mut s = caps.join(" ");
        if self.user.is_some() {
            s.push_str(&format!(" APPENDLIMIT={}", self.srv.settings.max_append));
        }
        s
    }

    /// Takes the plaintext stream for a STARTTLS upgrade; the input buffer is dropped with it
    /// (anything pipelined after STARTTLS was sent in plaintext).
    pub(crate) async fn start_tls(&mut self) -> Flow {
        let Some(acceptor) = self.srv.tls.clone() else {
            return Err(End::Closed);
        };

        self.flush().await?;
        let limit = self.srv.settings.max_append.saturating_add(COMMAND_SLACK);
        self.frag = Fragmentizer::new(limit);
        let plain = self.stream.take().ok_or(End::Disconnected)?;
        match tokio::time::timeout(Duration::from_secs(60), plain.upgrade(&acceptor)).await {
            Ok(Ok(tls)) => {
                self.stream = Some(tls);
                Ok(())
            }
            _ => Err(End::Disconnected),
        }
    }

    /// Which commands the current state allows (RFC 9051 3, 6).
    fn allowed(&self, body: &CommandBody<'_>) -> Result<(), &'static str> {
        use CommandBody as C;
        let any = matches!(body, C::Capability | C::Noop | C::Logout | C::Id { .. });
        let not_auth = matches!(body, C::StartTLS | C::Authenticate { .. } | C::Login { .. });
        let selected_only = matches!(
            body,
            C::Check
                | C::Close
                | C::Unselect
                | C::Expunge
                | C::ExpungeUid { .. }
                | C::Search { .. }
                | C::Fetch { .. }
                | C::Store { .. }
                | C::Copy { .. }
                | C::Move { .. }
                | C::Sort { .. }
                | C::Thread { .. }
        );
        match (self.user.is_some(), self.selected.is_some()) {
            _ if any => Ok(()),
            (false, _) if not_auth => Ok(()),
            (false, _) => Err("Log in first"),
            (true, _) if not_auth => Err("Already authenticated"),
            (true, false) if selected_only => Err("Select a mailbox first"),
            _ => Ok(()),
        }
    }

    /// Handles the syntax imap-codec does not know (see [`crate::extended`]); returns the
    /// bytes to decode, or `None` when the command was handled here.
    async fn preprocess(&mut self, bytes: Vec<u8>) -> Result<Option<Vec<u8>>, End> {
        use crate::extended;
        self.search_return = None;
        // Only look at commands whose first line may carry extended syntax (cheap check;
        // APPEND literals are never copied).
        let first_line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
        let upper = String::from_utf8_lossy(first_line).to_ascii_uppercase();
        let words: Vec<&str> = upper.split_whitespace().take(4).collect();
        let verb = match words.get(1) {
            Some(&"UID") => words.get(2).copied().unwrap_or(""),
            Some(v) => v,
            None => "",
        };
        // RFC 6855 4: after ENABLE UTF8=ACCEPT, APPEND's message may come as `UTF8 (literal8)`,
        // which imap-codec does not parse: it becomes a plain literal (copied, but this form
        // is rare and only for messages with UTF-8 headers).
        if verb == "APPEND" && self.utf8 && self.user.is_some() && upper.contains(" UTF8 (") {
            return Ok(Some(
                extended::tokenize(&bytes)
                    .and_then(|t| extended::unwrap_utf8_append(&t))
                    .unwrap_or(bytes),
            ));
        }
        let interesting = matches!(
            verb,
            "SEARCH" | "LIST" | "FETCH" | "STORE" | "COPY" | "MOVE" | "EXPUNGE" | "SORT" | "THREAD"
        );
        if !interesting || self.user.is_none() {
            return Ok(Some(bytes));
        }
        let Some(tokens) = extended::tokenize(&bytes) else {
            return Ok(Some(bytes));
        };
        let tag = match tokens.first() {
            Some(extended::Token::Atom(t)) => t.clone(),
            _ => return Ok(Some(bytes)),
        };
        if let Some(list) = extended::extended_list(&tokens) {
            match list {
                Ok(l) => self.handle_list_extended(&tag, l).await?,
                Err(why) => self.bad(&tag, why)?,
            }
            return Ok(None);
        }
        let mut tokens = tokens;
        if let Some(e) = extended::extended_search(&tokens) {
            self.search_return = Some(e.ret);
            match extended::tokenize(&e.rest) {
                Some(t) => tokens = t,
                None => return Ok(Some(e.rest)),
            }
        }
        if extended::uses_saved(&tokens) {
            // RFC 5182: `$` is the saved result, kept as UIDs. An empty result becomes a UID
            // that cannot exist, which matches nothing.
            let uids = if self.saved.is_empty() {
                u32::MAX.to_string()
            } else {
                crate::selected::compress_uids(&self.saved)
            };
            if let Some(rewritten) = extended::substitute_saved(&tokens, &uids) {
                if self.selected.is_none() {
                    self.bad(&tag, "Select a mailbox first")?;
                    return Ok(None);
                }
                return Ok(Some(rewritten));
            }
        }
        Ok(Some(extended::render(&tokens)))
    }

    async fn dispatch(&mut self, command: Command<'_>) -> Flow {
        let tag = command.tag.inner().to_string();
        if let Err(why) = self.allowed(&command.body) {
            return self.bad(&tag, why);
        }
        use CommandBody as C;
        match command.body {
            C::Capability => {
                let caps = self.capabilities();
                self.untagged(&format!("CAPABILITY {caps}"));
                self.finish(&tag, "CAPABILITY completed", true).await
            }
            C::Noop | C::Check => self.finish(&tag, "NOOP completed", true).await,
            C::Logout => {
                self.untagged("BYE Logging out");
                self.ok(&tag, "LOGOUT completed")?;
                Err(End::Closed)
            }
            C::StartTLS => self.handle_starttls(&tag).await,
            C::Login { username, password } => {
                let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                let pass = String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                self.handle_login(&tag, &user, &pass).await
            }
            C::Authenticate {
                mechanism,
                initial_response,
            } => {
                let initial = initial_response.map(|r| r.declassify().to_vec());
                self.handle_authenticate(&tag, &mechanism, initial).await
            }
            C::Enable { capabilities } => self.handle_enable(&tag, capabilities.as_ref()).await,
            C::Id { .. } => {
                self.untagged("ID (\"name\" \"Postern\" \"vendor\" \"Postern\")");
                self.ok(&tag, "ID completed")
            }
            C::Namespace => {
                self.untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
                self.finish(&tag, "NAMESPACE completed", true).await
            }
            C::Select {
                mailbox,
                parameters,
            } => self.handle_select(&tag, &mailbox, false, &parameters).await,
            C::Examine {
                mailbox,
                parameters,
            } => self.handle_select(&tag, &mailbox, true, &parameters).await,
            C::Create { mailbox } => self.handle_create(&tag, &mailbox).await,
            C::Delete { mailbox } => self.handle_delete(&tag, &mailbox).await,
            C::Rename { from, to } => self.handle_rename(&tag, &from, &to).await,
            C::Subscribe { mailbox } => self.handle_subscribe(&tag, &mailbox, true).await,
            C::Unsubscribe { mailbox } => self.handle_subscribe(&tag, &mailbox, false).await,
            C::List {
                reference,
                mailbox_wildcard,
            } => {
                self.handle_list(&tag, &reference, &mailbox_wildcard, false)
                    .await
            }
            C::Lsub {
                reference,
                mailbox_wildcard,
            } => {
                self.handle_list(&tag, &reference, &mailbox_wildcard, true)
                    .await
            }
            C::Status {
                mailbox,
                item_names,
            } => self.handle_status(&tag, &mailbox, &item_names).await,
            C::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                self.handle_append(&tag, &mailbox, &flags, date, message)
                    .await
            }
            C::Close => self.handle_close(&tag, true).await,
            C::Unselect => self.handle_close(&tag, false).await,
            C::Expunge => self.handle_expunge(&tag, None).await,
            C::ExpungeUid { sequence_set } => self.handle_expunge(&tag, Some(&sequence_set)).await,
            C::Search {
                criteria,
                uid,
                charset,
            } => {
                if let Some(cs) = charset
                    && !["UTF-8", "US-ASCII"].contains(&cs.as_ref().to_ascii_uppercase().as_str())
                {
                    return self.no(&tag, "[BADCHARSET (UTF-8 US-ASCII)] Use UTF-8");
                }
                self.handle_search(&tag, criteria.as_ref(), uid).await
            }
            C::Sort {
                sort_criteria,
                search_criteria,
                uid,
                ..
            } => {
                self.handle_sort(&tag, sort_criteria.as_ref(), search_criteria.as_ref(), uid)
                    .await
            }
            C::Thread {
                algorithm,
                search_criteria,
                uid,
                ..
            } => {
                self.handle_thread(&tag, &algorithm, search_criteria.as_ref(), uid)
                    .await
            }
            C::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                self.handle_fetch(&tag, &sequence_set, macro_or_item_names, uid, &modifiers)
                    .await
            }
            C::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                self.handle_store(&tag, &sequence_set, kind, response, &flags, uid, &modifiers)
                    .await
            }
            C::Copy {
                sequence_set,
                mailbox,
                uid,
            } => {
                self.handle_copy(&tag, &sequence_set, &mailbox, uid, false)
                    .await
            }
            C::Move {
                sequence_set,
                mailbox,
                uid,
            } => {
                self.handle_copy(&tag, &sequence_set, &mailbox, uid, true)
                    .await
            }
            C::Idle => self.handle_idle(&tag).await,
            C::Compress { .. } => self.start_compression(&tag).await,
            C::GetQuotaRoot { mailbox } => self.handle_getquotaroot(&tag, &mailbox).await,
            C::GetQuota { root } => {
                let root = String::from_utf8_lossy(root.as_ref()).into_owned();
                self.handle_getquota(&tag, &root).await
            }
            C::SetQuota { .. } => self.no(&tag, "[NOPERM] Quotas are set by the administrator"),
            _ => self.bad(&tag, "Command not supported"),
        }
    }

    /// Resyncs the selected mailbox (sending untagged updates), then the tagged OK.
    pub(crate) async fn finish(&mut self, tag: &str, text: &str, allow_expunge: bool) -> Flow {
        self.sync(allow_expunge).await;
        self.ok(tag, text)
    }

    /// Brings the selected view up to date and writes the differences.
    pub(crate) async fn sync(&mut self, allow_expunge: bool) {
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        let store = self.srv.store.clone();
        match sel
            .refresh(
                &store,
                allow_expunge,
                self.condstore,
                self.qresync,
                &mut self.out,
            )
            .await
        {
            Ok(()) => {}
            Err(e) => tracing::warn!("resync of selected mailbox failed: {e}"),
        }
    }

    async fn handle_idle(&mut self, tag: &str) -> Flow {
        self.sync(true).await;
        self.out.extend_from_slice(b"+ idling\r\n");
        self.flush().await?;
        let mut watch = self.selected.as_ref().map(|s| s.watch.clone());
        let timeout = self.srv.settings.authenticated_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // A complete line already buffered ends the IDLE.
            if let Some(FragmentInfo::Line { .. }) = self.frag.progress() {
                break;
            }
            let mut shutdown = self.shutdown.clone();
            tokio::select! {
                r = self.readable() => { r?; }
                changed = async {
                    match watch.as_mut() {
                        Some(w) => w.changed().await.is_ok(),
                        None => std::future::pending().await,
                    }
                } => {
                    if changed {
                        self.sync(true).await;
                        self.flush().await?;
                    } else {
                        watch = None;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.untagged("BYE Autologout; idle for too long");
                    return Err(End::Disconnected);
                }
                _ = shutdown.wait() => {
                    self.untagged("BYE Server shutting down");
                    return Err(End::Closed);
                }
            }
        }
        let line = if self.frag.is_message_complete() {
            let mut b = self.frag.message_bytes().to_vec();
            while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                b.pop();
            }
            b
        } else {
            self.read_line().await?
        };
        if line.eq_ignore_ascii_case(b"DONE") {
            self.finish(tag, "IDLE terminated", true).await
        } else {
            self.bad(tag, "Expected DONE")
        }
    }
}

/// Best-effort tag of an undecodable command, for the BAD reply.
fn tag_of(bytes: &[u8]) -> String {
    let tag: String = bytes
        .iter()
        .take_while(|b| {
            b.is_ascii_graphic()
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b'+')
        })
        .take(64)
        .map(|b| *b as char)
        .collect();
    if tag.is_empty() { "*".into() } else { tag }
}
