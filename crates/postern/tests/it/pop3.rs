//! POP3 over TCP: raw transcripts for exact responses and edge cases (sizes, dot-stuffing,
//! DELE/RSET/QUIT, locking, timeouts, bad input, STLS), consistency with IMAP over the same
//! store, and Python's poplib as a real client library. fetchmail is in `pop3_interop.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::{Imap, Io, PASSWORD, TestServer, insecure_client_config, message};

const USER: &str = "lee@naver.test";

/// A scripted POP3 client for exact transcripts.
pub struct Pop {
    io: BufReader<Box<dyn Io>>,
}

impl Pop {
    /// Connects and returns the client and the greeting line.
    pub async fn connect(addr: SocketAddr) -> (Pop, String) {
        let tcp = TcpStream::connect(addr).await.unwrap();
        Pop::over(Box::new(tcp)).await
    }

    async fn over(stream: Box<dyn Io>) -> (Pop, String) {
        let mut p = Pop {
            io: BufReader::new(stream),
        };
        let greeting = p.line().await.expect("greeting");
        (p, greeting)
    }

    /// Connects with implicit TLS.
    pub async fn connect_tls(addr: SocketAddr) -> (Pop, String) {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(insecure_client_config());
        let name = rustls_pki_types::ServerName::try_from("mx.naver.test").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        Pop::over(Box::new(tls)).await
    }

    /// Connects and logs in with USER/PASS.
    pub async fn login(addr: SocketAddr, user: &str) -> Pop {
        let (mut p, _) = Pop::connect(addr).await;
        assert!(p.cmd(&format!("USER {user}")).await.starts_with("+OK"));
        let r = p.cmd(&format!("PASS {PASSWORD}")).await;
        assert!(r.starts_with("+OK Logged in"), "{r}");
        p
    }

    /// Upgrades after a "+OK" to STLS.
    async fn start_tls(self) -> Pop {
        assert!(self.io.buffer().is_empty(), "data before the TLS handshake");
        let inner = self.io.into_inner();
        let connector = tokio_rustls::TlsConnector::from(insecure_client_config());
        let name = rustls_pki_types::ServerName::try_from("mx.naver.test").unwrap();
        Pop {
            io: BufReader::new(Box::new(connector.connect(name, inner).await.unwrap())),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
        self.io.get_mut().flush().await.unwrap();
    }

    /// One raw line with its CRLF; `None` at EOF. Times out after 10 s.
    async fn raw_line(&mut self) -> Option<Vec<u8>> {
        let mut l = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(10), self.io.read_until(b'\n', &mut l))
            .await
            .expect("timed out waiting for the server")
            .ok()?;
        (n > 0).then_some(l)
    }

    /// One line without its CRLF.
    async fn line(&mut self) -> Option<String> {
        let l = self.raw_line().await?;
        assert!(l.ends_with(b"\r\n"), "line not ended by CRLF: {l:?}");
        Some(String::from_utf8_lossy(&l[..l.len() - 2]).into_owned())
    }

    /// Sends a command, returns the status line.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.line().await.expect("connection closed")
    }

    /// The lines of a multi-line response body, raw (still dot-stuffed, with CRLF), without
    /// the final ".".
    pub async fn body(&mut self) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        loop {
            let l = self
                .raw_line()
                .await
                .expect("connection closed in a multi-line response");
            if l == b".\r\n" {
                return lines;
            }
            lines.push(l);
        }
    }

    /// A multi-line command: status line and body lines as text.
    async fn multi(&mut self, line: &str) -> (String, Vec<String>) {
        let status = self.cmd(line).await;
        assert!(status.starts_with("+OK"), "{line}: {status}");
        let body = self.body().await;
        let text = body
            .iter()
            .map(|l| String::from_utf8_lossy(&l[..l.len() - 2]).into_owned())
            .collect();
        (status, text)
    }

    /// RETR or TOP: status line and the message as sent (stuffing removed, CRLF kept).
    async fn retr(&mut self, line: &str) -> (String, Vec<u8>) {
        let status = self.cmd(line).await;
        assert!(status.starts_with("+OK"), "{line}: {status}");
        let mut msg = Vec::new();
        for l in self.body().await {
            msg.extend_from_slice(l.strip_prefix(b".").unwrap_or(&l));
        }
        (status, msg)
    }

    /// Whether the server closed the connection within 10 s (after any pending lines).
    async fn closed(&mut self) -> bool {
        while let Some(_l) = self.raw_line().await {}
        true
    }
}

/// The CAPA list.
async fn capa(p: &mut Pop) -> Vec<String> {
    p.multi("CAPA").await.1
}

/// UIDVALIDITY of the INBOX and the UIDs, as IMAP sees them.
async fn imap_view(s: &TestServer) -> (u32, Vec<u32>) {
    let mut c = Imap::login(s.imap(), USER).await;
    let r = c.cmd("SELECT INBOX").await;
    let uv = r
        .untagged
        .iter()
        .find_map(|l| l.strip_prefix("OK [UIDVALIDITY "))
        .and_then(|l| l.split(']').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{r:?}"));
    let r = c.cmd("UID SEARCH ALL").await;
    let uids = r
        .untagged
        .iter()
        .find_map(|l| l.strip_prefix("SEARCH"))
        .unwrap_or("")
        .split_whitespace()
        .map(|u| u.parse().unwrap())
        .collect();
    c.cmd("LOGOUT").await;
    (uv, uids)
}

#[tokio::test]
async fn greeting_capa_and_user_pass() {
    let s = TestServer::start().await;
    let (mut p, greeting) = Pop::connect(s.pop3()).await;
    assert_eq!(greeting, "+OK mx.naver.test Postern POP3 ready");
    let caps = capa(&mut p).await;
    for c in [
        "TOP",
        "UIDL",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "USER",
        "SASL PLAIN",
        "STLS",
        "EXPIRE NEVER",
        "IMPLEMENTATION Postern",
    ] {
        assert!(caps.iter().any(|x| x == c), "{c} missing from {caps:?}");
    }
    assert!(p.cmd("STAT").await.starts_with("-ERR Log in first"));
    assert!(p.cmd("PASS x").await.starts_with("-ERR Send USER first"));
    assert!(
        p.cmd("APOP lee 00")
            .await
            .starts_with("-ERR APOP is not supported")
    );
    assert_eq!(
        p.cmd("USER nobody@naver.test").await,
        "+OK Send your password"
    );
    assert_eq!(
        p.cmd("PASS wrong").await,
        "-ERR [AUTH] Invalid user name or password"
    );
    // A failed PASS needs a new USER.
    assert!(
        p.cmd(&format!("PASS {PASSWORD}"))
            .await
            .starts_with("-ERR Send USER first")
    );
    assert!(p.cmd("USER Lee@Naver.Test").await.starts_with("+OK"));
    assert_eq!(
        p.cmd(&format!("PASS {PASSWORD}")).await,
        "+OK Logged in; maildrop has 0 messages (0 octets)"
    );
    let caps = capa(&mut p).await;
    assert!(caps.contains(&"UIDL".to_string()), "{caps:?}");
    assert!(
        !caps
            .iter()
            .any(|c| c == "USER" || c == "STLS" || c.starts_with("SASL")),
        "{caps:?}"
    );
    assert!(
        p.cmd("USER lee@naver.test")
            .await
            .starts_with("-ERR Already logged in")
    );
    assert_eq!(p.cmd("STAT").await, "+OK 0 0");
    assert_eq!(p.cmd("NOOP").await, "+OK");
    assert!(
        p.cmd("QUIT")
            .await
            .starts_with("+OK mx.naver.test Postern POP3 signing off")
    );
    assert!(p.closed().await);
}

#[tokio::test]
async fn auth_plain_with_and_without_initial_response() {
    let s = TestServer::start().await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let creds = b64(&format!("\0{USER}\0{PASSWORD}"));

    let (mut p, _) = Pop::connect(s.pop3()).await;
    let (_, mechs) = p.multi("AUTH").await;
    assert_eq!(mechs, ["PLAIN"]);
    assert!(p.cmd("AUTH CRAM-MD5").await.starts_with("-ERR Unsupported"));
    assert!(
        p.cmd(&format!("AUTH PLAIN {creds}"))
            .await
            .starts_with("+OK Logged in")
    );
    // QUIT releases the maildrop lock before its "+OK"; a dropped connection releases it
    // whenever the server notices, which may be after the next login below.
    assert!(p.cmd("QUIT").await.starts_with("+OK"));

    let (mut p, _) = Pop::connect(s.pop3()).await;
    assert_eq!(p.cmd("AUTH PLAIN").await, "+ ");
    assert_eq!(p.cmd("*").await, "-ERR Authentication cancelled");
    assert_eq!(p.cmd("AUTH PLAIN").await, "+ ");
    assert!(p.cmd("!!notbase64").await.starts_with("-ERR [AUTH]"));
    assert_eq!(p.cmd("AUTH PLAIN").await, "+ ");
    assert_eq!(
        p.cmd(&b64(&format!("\0{USER}\0wrong"))).await,
        "-ERR [AUTH] Invalid user name or password"
    );
    assert_eq!(p.cmd("AUTH PLAIN").await, "+ ");
    assert!(p.cmd(&creds).await.starts_with("+OK Logged in"));
    assert!(
        p.cmd("AUTH PLAIN")
            .await
            .starts_with("-ERR Already logged in")
    );
}

/// A message with lines starting with "." (sent stuffed over SMTP), bare-LF and unterminated
/// messages appended as IMAP APPEND or an import may store them: sizes, RETR and TOP.
#[tokio::test]
async fn stat_list_uidl_top_retr_exact_sizes_and_dot_stuffing() {
    let s = TestServer::start().await;
    // Over SMTP the client stuffs; the store keeps ".dot", "..two", ".".
    let mut c = crate::support::Raw::connect(s.smtp()).await;
    c.cmd("EHLO test", 250).await;
    c.begin_data("kim@daum.test", USER).await;
    c.send(message("dots", "..dot line\r\n...two dots\r\n..\r\nlast").as_bytes())
        .await;
    c.cmd(".", 250).await;
    c.cmd("QUIT", 221).await;
    let creds = s.store.credentials(USER).await.unwrap().unwrap();
    let inbox = s
        .store
        .mailbox_by_name(creds.id, "INBOX")
        .await
        .unwrap()
        .unwrap();
    let new = |data: &[u8]| store::NewMessage {
        data: data.to_vec(),
        internal_date: 1_700_000_000,
        flags: store::Flags::default(),
    };
    s.store
        .append(
            inbox.id,
            vec![
                new(b"Subject: bare\n\nline one\n.dot\n"),
                new(b"Subject: unterminated\r\n\r\nno line end"),
            ],
        )
        .await
        .unwrap();
    let stored = s.messages(USER, "INBOX").await;
    let expected: Vec<Vec<u8>> = vec![
        stored[0].clone(),
        b"Subject: bare\r\n\r\nline one\r\n.dot\r\n".to_vec(),
        b"Subject: unterminated\r\n\r\nno line end\r\n".to_vec(),
    ];
    assert!(crate::support::contains(
        &stored[0],
        "\r\n.dot line\r\n..two dots\r\n.\r\nlast\r\n"
    ));

    let mut p = Pop::login(s.pop3(), USER).await;
    let total: usize = expected.iter().map(Vec::len).sum();
    assert_eq!(p.cmd("STAT").await, format!("+OK 3 {total}"));
    let (status, list) = p.multi("LIST").await;
    assert_eq!(status, format!("+OK 3 messages ({total} octets)"));
    let want: Vec<String> = expected
        .iter()
        .enumerate()
        .map(|(i, m)| format!("{} {}", i + 1, m.len()))
        .collect();
    assert_eq!(list, want);
    assert_eq!(
        p.cmd("LIST 2").await,
        format!("+OK 2 {}", expected[1].len())
    );
    assert_eq!(p.cmd("LIST 4").await, "-ERR No such message 4");
    assert_eq!(p.cmd("LIST 0").await, "-ERR No such message 0");
    for (i, m) in expected.iter().enumerate() {
        let (status, got) = p.retr(&format!("RETR {}", i + 1)).await;
        assert_eq!(status, format!("+OK {} octets", m.len()));
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(m));
    }
    // The stuffing on the wire: lines starting with "." get one more.
    p.send(b"RETR 1\r\n").await;
    assert!(p.line().await.unwrap().starts_with("+OK"));
    let raw = p.body().await;
    for l in ["..dot line\r\n", "...two dots\r\n", "..\r\n"] {
        assert!(
            raw.iter().any(|x| x == l.as_bytes()),
            "{l:?} not in {raw:?}"
        );
    }
    let (_, top) = p.retr("TOP 2 1").await;
    assert_eq!(top, b"Subject: bare\r\n\r\nline one\r\n");
    let (_, top) = p.retr("TOP 1 0").await;
    assert!(
        top.ends_with(b"Message-ID: <dots@daum.test>\r\n\r\n"),
        "{top:?}"
    );
    assert_eq!(p.cmd("TOP 9 1").await, "-ERR No such message 9");
    // UIDL: the UID and UIDVALIDITY IMAP sees, as Dovecot's %08Xu%08Xv.
    let (uv, uids) = imap_view(&s).await;
    assert_eq!(uids, [1, 2, 3]);
    let (_, ids) = p.multi("UIDL").await;
    let want: Vec<String> = uids
        .iter()
        .enumerate()
        .map(|(i, u)| format!("{} {u:08X}{uv:08X}", i + 1))
        .collect();
    assert_eq!(ids, want);
    assert_eq!(p.cmd("UIDL 3").await, format!("+OK {}", want[2]));
    assert!(p.cmd("QUIT").await.starts_with("+OK"));
}

#[tokio::test]
async fn dele_rset_quit_and_dropped_connection() {
    let s = TestServer::start().await;
    for subject in ["one", "two", "three"] {
        s.deliver(USER, subject, "body").await;
    }
    let sizes: Vec<usize> = s
        .messages(USER, "INBOX")
        .await
        .iter()
        .map(Vec::len)
        .collect();
    let mut p = Pop::login(s.pop3(), USER).await;
    let (_, ids_before) = p.multi("UIDL").await;
    assert_eq!(p.cmd("DELE 1").await, "+OK Message 1 deleted");
    assert_eq!(p.cmd("DELE 1").await, "-ERR Message 1 already deleted");
    assert_eq!(p.cmd("RETR 1").await, "-ERR Message 1 already deleted");
    assert_eq!(
        p.cmd("STAT").await,
        format!("+OK 2 {}", sizes[1] + sizes[2])
    );
    let (_, list) = p.multi("LIST").await;
    assert_eq!(list, [format!("2 {}", sizes[1]), format!("3 {}", sizes[2])]);
    assert_eq!(
        p.cmd("RSET").await,
        format!(
            "+OK Maildrop has 3 messages ({} octets)",
            sizes.iter().sum::<usize>()
        )
    );
    assert!(p.cmd("DELE 1").await.starts_with("+OK"));
    assert!(p.cmd("DELE 3").await.starts_with("+OK"));
    // Dropped without QUIT: nothing is deleted.
    drop(p);
    // The server notices the drop and releases the lock; then log in again.
    let mut p = login_when_unlocked(&s).await;
    assert_eq!(p.cmd("STAT").await.split(' ').nth(1), Some("3"));
    assert!(p.cmd("DELE 1").await.starts_with("+OK"));
    assert!(p.cmd("DELE 3").await.starts_with("+OK"));
    assert_eq!(
        p.cmd("QUIT").await,
        "+OK mx.naver.test Postern POP3 signing off (2 messages deleted)"
    );
    assert!(p.closed().await);
    // Durable once "+OK" was sent: the store has only "two".
    let left = s.messages(USER, "INBOX").await;
    assert_eq!(left.len(), 1);
    assert!(crate::support::contains(&left[0], "Subject: two"));
    let mut p = Pop::login(s.pop3(), USER).await;
    let (_, ids) = p.multi("UIDL").await;
    assert_eq!(
        ids,
        [format!("1 {}", ids_before[1].split(' ').nth(1).unwrap())]
    );
}

/// Logs in, retrying while the maildrop is still locked by a session the server is ending.
async fn login_when_unlocked(s: &TestServer) -> Pop {
    for _ in 0..100 {
        let (mut p, _) = Pop::connect(s.pop3()).await;
        p.cmd(&format!("USER {USER}")).await;
        let r = p.cmd(&format!("PASS {PASSWORD}")).await;
        if r.starts_with("+OK") {
            return p;
        }
        assert!(r.starts_with("-ERR [IN-USE]"), "{r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("maildrop still locked after 5 s");
}

#[tokio::test]
async fn second_session_gets_in_use_on_either_port() {
    let s = TestServer::start().await;
    let mut first = Pop::login(s.pop3(), USER).await;
    let (mut second, _) = Pop::connect(s.pop3()).await;
    second.cmd(&format!("USER {USER}")).await;
    assert_eq!(
        second.cmd(&format!("PASS {PASSWORD}")).await,
        "-ERR [IN-USE] Maildrop is locked by another POP3 session"
    );
    let (mut third, _) = Pop::connect_tls(s.pop3s()).await;
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASSWORD}"));
    assert!(
        third
            .cmd(&format!("AUTH PLAIN {creds}"))
            .await
            .starts_with("-ERR [IN-USE]")
    );
    // Still in AUTHORIZATION: it may try again once the first session quits. The lock is
    // released before the "+OK" to QUIT is sent, so no waiting for the close.
    assert!(first.cmd("QUIT").await.starts_with("+OK"));
    second.cmd(&format!("USER {USER}")).await;
    assert!(
        second
            .cmd(&format!("PASS {PASSWORD}"))
            .await
            .starts_with("+OK Logged in")
    );
}

#[tokio::test]
async fn autologout_after_the_configured_timeout_deletes_nothing() {
    let s = TestServer::with_config("[limits]\npop3_timeout = 1").await;
    s.deliver(USER, "kept", "body").await;
    let mut p = Pop::login(s.pop3(), USER).await;
    // Taken before the command: the server's timer starts after its reply, and a client
    // slow to read that reply would otherwise see less than the full second.
    let started = std::time::Instant::now();
    assert!(p.cmd("DELE 1").await.starts_with("+OK"));
    assert_eq!(
        p.line().await.unwrap(),
        "-ERR Autologout; idle for too long"
    );
    assert!(p.closed().await);
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(s.messages(USER, "INBOX").await.len(), 1);
    // Before login too.
    let (mut p, _) = Pop::connect(s.pop3()).await;
    assert_eq!(
        p.line().await.unwrap(),
        "-ERR Autologout; idle for too long"
    );
    // And a client that keeps sending CAPA but never logs in is closed after five timeouts.
    // Timed from before the connection, which starts the server's clock.
    let started = std::time::Instant::now();
    let (mut p, _) = Pop::connect(s.pop3()).await;
    loop {
        // The server may have closed already: a failed write is one more sign of that.
        let _ = p.io.get_mut().write_all(b"CAPA\r\n").await;
        let mut closed = false;
        loop {
            match p.line().await {
                Some(l) if l == "." => break,
                Some(l) if l.starts_with("-ERR Autologout") => {
                    closed = true;
                    break;
                }
                Some(_) => {}
                None => {
                    closed = true;
                    break;
                }
            }
        }
        if closed {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never closed");
        // Well inside the one-second timeout, so that a slow turn on a loaded machine does
        // not end the session before the five.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_secs(8),
        "{took:?}"
    );
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_too_many_close() {
    let s = TestServer::start().await;
    let mut p = Pop::login(s.pop3(), USER).await;
    let long = format!("NOOP {}", "x".repeat(600));
    assert_eq!(p.cmd(&long).await, "-ERR Command line too long");
    assert_eq!(p.cmd("NOOP").await, "+OK");
    assert_eq!(p.cmd("HELO x").await, "-ERR Unknown command HELO");
    assert_eq!(p.cmd("").await, "-ERR Empty command");
    assert_eq!(
        p.cmd("RETR one").await,
        "-ERR Invalid command: syntax: RETR msg"
    );
    assert_eq!(
        p.cmd("STAT now").await,
        "-ERR Invalid command: syntax: this command takes no arguments"
    );
    assert_eq!(
        p.cmd("RETR 99999999999999").await,
        "-ERR Invalid command: syntax: RETR msg"
    );
    p.send(b"\x00\xff\xfe garbage\r\n").await;
    assert!(p.line().await.unwrap().starts_with("-ERR Unknown command"));
    // A megabyte without a line end: refused once, the session stays bounded and usable.
    p.send(&vec![b'a'; 1 << 20]).await;
    p.send(b"\r\nNOOP\r\n").await;
    assert_eq!(p.line().await.unwrap(), "-ERR Command line too long");
    assert_eq!(p.line().await.unwrap(), "+OK");
    // Pipelined: every reply in order.
    p.send(b"NOOP\r\nSTAT\r\nLIST\r\nNOOP\r\n").await;
    assert_eq!(p.line().await.unwrap(), "+OK");
    assert_eq!(p.line().await.unwrap(), "+OK 0 0");
    assert_eq!(p.line().await.unwrap(), "+OK 0 messages (0 octets)");
    assert_eq!(p.line().await.unwrap(), ".");
    assert_eq!(p.line().await.unwrap(), "+OK");
    // 20 errors in a session close it (8 so far).
    for _ in 0..11 {
        assert!(p.cmd("BOGUS").await.starts_with("-ERR"));
    }
    p.send(b"BOGUS\r\n").await;
    assert!(p.line().await.unwrap().starts_with("-ERR"));
    assert!(p.closed().await);
}

#[tokio::test]
async fn failed_logins_are_rate_limited_and_close_the_session() {
    let s = TestServer::with_config("[auth]\nmax_failures = 4").await;
    let (mut p, _) = Pop::connect(s.pop3()).await;
    for _ in 0..3 {
        p.cmd(&format!("USER {USER}")).await;
        assert!(p.cmd("PASS wrong").await.starts_with("-ERR [AUTH]"));
    }
    assert!(p.closed().await, "three failures close the session");
    let (mut p, _) = Pop::connect(s.pop3()).await;
    p.cmd(&format!("USER {USER}")).await;
    assert!(p.cmd("PASS wrong").await.starts_with("-ERR [AUTH]"));
    // Locked out now, even with the right password (the limiter is shared with IMAP/SMTP).
    p.cmd(&format!("USER {USER}")).await;
    let r = p.cmd(&format!("PASS {PASSWORD}")).await;
    assert!(
        r.starts_with("-ERR [SYS/TEMP] Too many failed logins"),
        "{r}"
    );
    let (mut c, _) = Imap::connect(s.imap()).await;
    let r = c.cmd(&format!("LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(r.status.starts_with("NO"), "{r:?}");
}

#[tokio::test]
async fn stls_discards_pipelined_plaintext_then_auth_over_tls() {
    let s = TestServer::with_config("[auth]\nplaintext_on_loopback = false").await;
    s.deliver(USER, "secret", "over tls").await;
    let (mut p, _) = Pop::connect(s.pop3()).await;
    let caps = capa(&mut p).await;
    assert!(caps.contains(&"STLS".to_string()), "{caps:?}");
    assert!(
        !caps.iter().any(|c| c == "USER" || c.starts_with("SASL")),
        "{caps:?}"
    );
    assert_eq!(
        p.cmd(&format!("USER {USER}")).await,
        "-ERR [AUTH] Plaintext authentication disallowed without TLS; use STLS"
    );
    assert!(p.cmd("AUTH PLAIN").await.starts_with("-ERR [AUTH]"));
    // Plaintext pipelined after STLS must not be executed inside TLS.
    p.send(format!("STLS\r\nUSER {USER}\r\n").as_bytes()).await;
    assert_eq!(p.line().await.unwrap(), "+OK Begin TLS negotiation");
    let mut p = p.start_tls().await;
    assert_eq!(
        p.cmd(&format!("PASS {PASSWORD}")).await,
        "-ERR Send USER first"
    );
    let caps = capa(&mut p).await;
    assert!(
        caps.contains(&"USER".to_string()) && !caps.contains(&"STLS".to_string()),
        "{caps:?}"
    );
    assert!(p.cmd("STLS").await.starts_with("-ERR Already using TLS"));
    p.cmd(&format!("USER {USER}")).await;
    assert!(
        p.cmd(&format!("PASS {PASSWORD}"))
            .await
            .starts_with("+OK Logged in; maildrop has 1")
    );
    let (_, msg) = p.retr("RETR 1").await;
    assert!(crate::support::contains(&msg, "over tls"));
    assert!(p.cmd("QUIT").await.starts_with("+OK"));
}

#[tokio::test]
async fn pop3s_implicit_tls() {
    let s = TestServer::with_config("[auth]\nplaintext_on_loopback = false").await;
    s.deliver(USER, "implicit", "tls body").await;
    let (mut p, greeting) = Pop::connect_tls(s.pop3s()).await;
    assert!(greeting.starts_with("+OK"), "{greeting}");
    let caps = capa(&mut p).await;
    assert!(
        caps.contains(&"USER".to_string()) && !caps.contains(&"STLS".to_string()),
        "{caps:?}"
    );
    assert!(p.cmd("STLS").await.starts_with("-ERR"));
    p.cmd(&format!("USER {USER}")).await;
    assert!(p.cmd(&format!("PASS {PASSWORD}")).await.starts_with("+OK"));
    let (_, msg) = p.retr("RETR 1").await;
    assert!(crate::support::contains(&msg, "tls body"));
    assert!(p.cmd("DELE 1").await.starts_with("+OK"));
    assert!(p.cmd("QUIT").await.starts_with("+OK"));
    assert!(s.messages(USER, "INBOX").await.is_empty());
}

#[tokio::test]
async fn deletions_are_consistent_with_imap() {
    let s = TestServer::start().await;
    for subject in ["a", "b", "c", "d"] {
        s.deliver(USER, subject, "body").await;
    }
    // IMAP marks 3 \Deleted without expunging; POP3 then deletes 1. QUIT removes only 1.
    let mut c = Imap::login(s.imap(), USER).await;
    assert!(c.cmd("SELECT INBOX").await.ok());
    assert!(c.cmd("UID STORE 3 +FLAGS (\\Deleted)").await.ok());
    let mut p = Pop::login(s.pop3(), USER).await;
    assert!(p.cmd("DELE 1").await.starts_with("+OK"));
    // Meanwhile IMAP expunges 3 and 4... only 3 is \Deleted, so flag 4 too.
    assert!(c.cmd("UID STORE 4 +FLAGS (\\Deleted)").await.ok());
    let r = c.cmd("EXPUNGE").await;
    assert!(r.ok() && r.untagged == ["4 EXPUNGE", "3 EXPUNGE"], "{r:?}");
    // The POP3 snapshot still numbers 4 messages; what IMAP removed cannot be retrieved.
    assert!(p.cmd("STAT").await.starts_with("+OK 3 "));
    assert_eq!(
        p.cmd("RETR 4").await,
        "-ERR Message 4 is no longer available"
    );
    assert!(p.cmd("DELE 4").await.starts_with("+OK"));
    assert!(p.cmd("QUIT").await.starts_with("+OK"));
    // IMAP sees the POP3 deletion at its next command.
    let r = c.cmd("NOOP").await;
    assert!(r.has("1 EXPUNGE"), "{r:?}");
    let r = c.cmd("UID SEARCH ALL").await;
    assert!(r.has("SEARCH 2") && !r.has("SEARCH 2 "), "{r:?}");
    let mut p = Pop::login(s.pop3(), USER).await;
    let (uv, uids) = imap_view(&s).await;
    assert_eq!(uids, [2]);
    let (_, ids) = p.multi("UIDL").await;
    assert_eq!(ids, [format!("1 {:08X}{uv:08X}", 2)]);
}

const POPLIB_SCRIPT: &str = r#"
import poplib, ssl, sys, email
port, tls_port, pw = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
# STLS, then USER/PASS; keep everything.
P = poplib.POP3('127.0.0.1', port, timeout=20)
caps = P.capa()
assert 'STLS' in caps and 'UIDL' in caps and 'TOP' in caps, caps
P.stls(context=ctx)
P.user('lee@naver.test'); P.pass_(pw)
count, size = P.stat()
assert count == 2, (count, size)
resp, listing, octets = P.list()
sizes = [int(l.split()[1]) for l in listing]
assert sum(sizes) == size, (listing, size)
for i in (1, 2):
    resp, lines, octets = P.retr(i)
    # poplib strips CRLF and the stuffing: the octets it counts exclude the CRLFs
    raw = b'\r\n'.join(lines) + b'\r\n'
    assert len(raw) == sizes[i - 1], (i, len(raw), sizes[i - 1])
    msg = email.message_from_bytes(raw)
    assert msg['Subject'] in ('first poplib', 'second poplib'), msg['Subject']
resp, lines, octets = P.top(1, 0)
assert lines[-1] == b'' and any(l.startswith(b'Subject: ') for l in lines), lines
resp, uidls, octets = P.uidl()
assert len(uidls) == 2 and all(len(u.split()[1]) == 16 for u in uidls), uidls
P.quit()
# Implicit TLS, AUTH PLAIN is not in poplib: USER/PASS; delete the first message.
P = poplib.POP3_SSL('127.0.0.1', tls_port, context=ctx, timeout=20)
P.user('lee@naver.test'); P.pass_(pw)
P.dele(1)
try:
    P.retr(1)
    raise SystemExit('RETR of a deleted message succeeded')
except poplib.error_proto as e:
    assert b'deleted' in e.args[0], e
P.quit()
P = poplib.POP3_SSL('127.0.0.1', tls_port, context=ctx, timeout=20)
P.user('lee@naver.test'); P.pass_(pw)
assert P.stat()[0] == 1
P.quit()
print('poplib ok')
"#;

#[tokio::test]
async fn python_poplib_client_over_stls_and_implicit_tls() {
    let s = TestServer::start().await;
    s.deliver(USER, "first poplib", "one\r\n..starts with a dot")
        .await;
    s.deliver(USER, "second poplib", "two").await;
    let out = tokio::process::Command::new("python3")
        .args([
            "-c",
            POPLIB_SCRIPT,
            &s.pop3().port().to_string(),
            &s.pop3s().port().to_string(),
            PASSWORD,
        ])
        .output()
        .await
        .expect("python3 is needed for the poplib test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("poplib ok"), "{text}");
    let left = s.messages(USER, "INBOX").await;
    assert_eq!(left.len(), 1);
    assert!(crate::support::contains(&left[0], "Subject: second poplib"));
}
