//! Test harness: a real server on ephemeral loopback ports with a temp data dir, a raw SMTP
//! client for exact transcripts, and helpers to inspect what was stored.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postern::config::Config;
use postern::server::Running;
use store::{Store, normalize_address};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestServer {
    pub _dir: tempfile::TempDir,
    pub running: Running,
    pub store: Store,
}

/// Config for a test server: all SMTP listeners on port 0, plus `extra` TOML. Without a
/// `[dns]` table in `extra`, DNS goes to a closed port: queued mail then waits (temporary
/// failures), whatever the machine's resolver would say.
pub fn test_config(dir: &std::path::Path, extra: &str) -> String {
    let dns = if extra.contains("[dns]") {
        ""
    } else {
        "[dns]\nnameservers = [\"127.0.0.1:9\"]\n"
    };
    format!(
        "hostname = \"mx.naver.test\"\ndata_dir = \"{}\"\n{extra}\n{dns}[listen]\nsmtp = \"127.0.0.1:0\"\nsubmission = \"127.0.0.1:0\"\nsubmissions = \"127.0.0.1:0\"\nimap = \"127.0.0.1:0\"\nimaps = \"127.0.0.1:0\"\npop3 = \"127.0.0.1:0\"\npop3s = \"127.0.0.1:0\"\n[store]\nwal_preallocate_mib = 1\nlog_zeros_ahead_mib = 1\n",
        dir.display()
    )
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::with_config("").await
    }

    /// Starts with extra top-level TOML (e.g. "[limits]\nmax_recipients = 2").
    pub async fn with_config(extra: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::parse(&test_config(dir.path(), extra)).unwrap();
        let running = postern::server::start(&config).await.unwrap();
        let store = running.store.clone();
        let s = TestServer {
            _dir: dir,
            running,
            store,
        };
        s.store.add_domain("naver.test").await.unwrap();
        s.add_user("lee@naver.test").await;
        s
    }

    /// Starts one of several servers of a test ([`Node`]); `dir` reuses the data directory of
    /// a stopped one (a restart: its domains and users exist already).
    pub async fn node(n: &Node<'_>, dir: Option<tempfile::TempDir>) -> TestServer {
        let restart = dir.is_some();
        let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
        let dns = n
            .dns
            .clone()
            .unwrap_or_else(|| "[dns]\nnameservers = [\"127.0.0.1:9\"]\n".into());
        let text = format!(
            "hostname = \"{host}\"\ndata_dir = \"{data}\"\n[relay]\nport = {port}\nsource_address = \"{ip}\"\n{relay}\n{dns}\n{extra}\n\
             [listen]\nsmtp = \"{ip}:{port}\"\nsubmission = \"{ip}:0\"\nimap = \"{ip}:0\"\npop3 = \"{ip}:0\"\n",
            host = n.hostname,
            data = dir.path().display(),
            port = n.smtp_port,
            relay = n.relay,
            extra = n.extra,
            ip = n.ip,
        );
        let config = Config::parse(&text).unwrap_or_else(|e| panic!("{e:#}\n{text}"));
        let options = postern::server::Options {
            clock: n
                .clock
                .clone()
                .map(|c| Arc::new(c) as Arc<dyn queue::Clock>),
        };
        let running = postern::server::start_with(&config, options).await.unwrap();
        let store = running.store.clone();
        let s = TestServer {
            _dir: dir,
            running,
            store,
        };
        if !restart {
            s.store.add_domain(n.domain).await.unwrap();
            for u in n.users {
                s.add_user(u).await;
            }
        }
        s
    }

    /// Shuts the server down (listeners closed, queue runner stopped); returns its data
    /// directory for a restart.
    pub async fn stop(self) -> tempfile::TempDir {
        self.running.shutdown().await;
        self._dir
    }

    pub async fn add_user(&self, address: &str) {
        // A cheap-to-verify hash is not possible with argon2 defaults; hashing once per user is fine.
        let hash = auth::hash_password(PASSWORD).unwrap();
        self.store.add_account(address, &hash).await.unwrap();
    }

    pub fn smtp(&self) -> SocketAddr {
        self.running.addr("smtp").unwrap()
    }
    pub fn submission(&self) -> SocketAddr {
        self.running.addr("submission").unwrap()
    }
    pub fn submissions(&self) -> SocketAddr {
        self.running.addr("submissions").unwrap()
    }
    pub fn imap(&self) -> SocketAddr {
        self.running.addr("imap").unwrap()
    }
    pub fn imaps(&self) -> SocketAddr {
        self.running.addr("imaps").unwrap()
    }
    pub fn pop3(&self) -> SocketAddr {
        self.running.addr("pop3").unwrap()
    }
    pub fn pop3s(&self) -> SocketAddr {
        self.running.addr("pop3s").unwrap()
    }

    /// Delivers a message to `to` over SMTP (the MX listener).
    pub async fn deliver(&self, to: &str, subject: &str, body: &str) {
        let mut c = Raw::connect(self.smtp()).await;
        c.cmd("EHLO test", 250).await;
        c.begin_data("kim@daum.test", to).await;
        c.send(message(subject, body).as_bytes()).await;
        c.cmd(".", 250).await;
        c.cmd("QUIT", 221).await;
    }

    /// The raw messages in `address`'s mailbox `mailbox`.
    pub async fn messages(&self, address: &str, mailbox: &str) -> Vec<Vec<u8>> {
        messages_in(&self.store, address, mailbox).await
    }
}

/// One server of a multi-server test: its own loopback address and name, one hosted domain.
pub struct Node<'a> {
    pub hostname: &'a str,
    pub ip: String,
    /// Its SMTP (MX) port; also the port its queue runner connects to (`relay.port`).
    pub smtp_port: u16,
    pub domain: &'a str,
    pub users: &'a [&'a str],
    /// Lines of the `[relay]` table besides `port`.
    pub relay: String,
    /// A `[dns]` table; `None`: DNS goes to a closed port.
    pub dns: Option<String>,
    /// More TOML tables.
    pub extra: String,
    /// The queue runner's clock.
    pub clock: Option<queue::ShiftedClock>,
}

impl<'a> Node<'a> {
    pub fn new(hostname: &'a str, ip: String, smtp_port: u16, domain: &'a str) -> Node<'a> {
        Node {
            hostname,
            ip,
            smtp_port,
            domain,
            users: &[],
            relay: String::new(),
            dns: None,
            extra: String::new(),
            clock: None,
        }
    }
}

/// A fresh `127.0.N` prefix per call, so tests running in parallel never share an address.
pub fn loopback_net() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    // Start somewhere per process, so two test runs at once are unlikely to collide either.
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = 10 + std::process::id() % 200;
    format!("127.0.{}", 1 + (base + n) % 250)
}

/// A port free on every one of `ips` (MX hosts all listen on the one port the senders use).
pub fn common_port(ips: &[&str]) -> u16 {
    loop {
        let first = std::net::TcpListener::bind((ips[0], 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        let rest: Vec<_> = ips[1..]
            .iter()
            .map(|ip| std::net::TcpListener::bind((*ip, port)))
            .collect();
        if rest.iter().all(Result::is_ok) {
            return port;
        }
    }
}

/// Waits (up to `secs` seconds) until `f` holds.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {secs} s waiting until {what}");
}

pub async fn messages_in(store: &Store, address: &str, mailbox: &str) -> Vec<Vec<u8>> {
    let creds = store
        .credentials(&normalize_address(address))
        .await
        .unwrap()
        .expect("no such user");
    let boxes = store.list_mailboxes(creds.id).await.unwrap();
    let mb = boxes
        .iter()
        .find(|m| m.name == mailbox)
        .expect("no such mailbox");
    let mut out = Vec::new();
    for m in store.list_messages(mb.id).await.unwrap() {
        out.push(store.read_blob(m.blob).await.unwrap());
    }
    out
}

pub fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// One SMTP reply: code and the text lines (after "NNN-"/"NNN ").
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A scripted SMTP client for exact transcripts.
pub struct Raw {
    pub io: BufReader<Box<dyn Io>>,
}

impl Raw {
    /// Connects and reads the greeting (asserting 220).
    pub async fn connect(addr: SocketAddr) -> Raw {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut raw = Raw {
            io: BufReader::new(Box::new(tcp)),
        };
        raw.expect(220).await;
        raw
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
        self.io.get_mut().flush().await.unwrap();
    }

    /// Sends one command line (CRLF added).
    pub async fn line(&mut self, line: &str) {
        self.send(format!("{line}\r\n").as_bytes()).await;
    }

    /// Reads one reply; `None` at EOF. Times out after 10 s.
    pub async fn reply(&mut self) -> Option<Reply> {
        tokio::time::timeout(Duration::from_secs(10), self.reply_inner())
            .await
            .expect("timed out waiting for a reply")
    }

    async fn reply_inner(&mut self) -> Option<Reply> {
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            if self.io.read_line(&mut l).await.ok()? == 0 {
                return None;
            }
            let l = l.trim_end_matches(['\r', '\n']);
            assert!(l.len() >= 3, "short reply line {l:?}");
            let code: u16 = l[..3]
                .parse()
                .unwrap_or_else(|_| panic!("bad reply line {l:?}"));
            lines.push(l.get(4..).unwrap_or("").to_string());
            if l.as_bytes().get(3) != Some(&b'-') {
                return Some(Reply { code, lines });
            }
        }
    }

    /// Reads a reply and asserts its code.
    pub async fn expect(&mut self, code: u16) -> Reply {
        let r = self.reply().await.expect("connection closed");
        assert_eq!(r.code, code, "unexpected reply {r:?}");
        r
    }

    /// Sends a command and asserts the reply code.
    pub async fn cmd(&mut self, line: &str, code: u16) -> Reply {
        self.line(line).await;
        self.expect(code).await
    }

    /// MAIL, RCPT, DATA for one recipient, asserting 250, 250, 354.
    pub async fn begin_data(&mut self, from: &str, to: &str) {
        self.cmd(&format!("MAIL FROM:<{from}>"), 250).await;
        self.cmd(&format!("RCPT TO:<{to}>"), 250).await;
        self.cmd("DATA", 354).await;
    }

    /// Upgrades to TLS (after a 220 to STARTTLS), accepting any certificate.
    pub async fn start_tls(self) -> Raw {
        let Raw { io } = self;
        assert!(
            io.buffer().is_empty(),
            "server sent data before the TLS handshake"
        );
        let inner = io.into_inner();
        let connector = tokio_rustls::TlsConnector::from(insecure_client_config());
        let name = rustls_pki_types::ServerName::try_from("mx.naver.test").unwrap();
        let tls = connector.connect(name, inner).await.unwrap();
        Raw {
            io: BufReader::new(Box::new(tls)),
        }
    }

    /// Connects with implicit TLS and reads the greeting.
    pub async fn connect_tls(addr: SocketAddr) -> Raw {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let raw = Raw {
            io: BufReader::new(Box::new(tcp)),
        };
        let mut raw = raw.start_tls().await;
        raw.expect(220).await;
        raw
    }

    /// Whether the server closed the connection (EOF) within 10 s.
    pub async fn closed(&mut self) -> bool {
        self.reply().await.is_none()
    }
}

pub fn insecure_client_config() -> Arc<rustls::ClientConfig> {
    // Tests talk to a self-signed certificate: the relay's opportunistic client config
    // checks the handshake but not the certificate.
    queue::opportunistic_tls()
}

/// A small well-formed message.
pub fn message(subject: &str, body: &str) -> String {
    format!(
        "From: Kim <kim@daum.test>\r\nTo: Lee <lee@naver.test>\r\nSubject: {subject}\r\nDate: Sun, 22 Nov 2026 10:00:00 +0900\r\nMessage-ID: <{subject}@daum.test>\r\n\r\n{body}\r\n"
    )
}

/// A scripted IMAP client: sends tagged commands and collects responses (literals inlined).
pub struct Imap {
    pub io: BufReader<Box<dyn Io>>,
    next: u32,
}

/// The responses to one command.
#[derive(Debug)]
pub struct ImapReply {
    /// Untagged responses ("* ..." without the "* "), literals inlined.
    pub untagged: Vec<String>,
    /// The tagged status line without the tag ("OK ...", "NO ...", "BAD ...").
    pub status: String,
}

impl ImapReply {
    pub fn ok(&self) -> bool {
        self.status.starts_with("OK")
    }
    pub fn has(&self, needle: &str) -> bool {
        self.untagged.iter().any(|l| l.contains(needle))
    }
}

impl Imap {
    /// Connects, reads the greeting, returns it.
    pub async fn connect(addr: SocketAddr) -> (Imap, String) {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut c = Imap {
            io: BufReader::new(Box::new(tcp)),
            next: 1,
        };
        let greeting = c.line().await.expect("greeting");
        (c, greeting)
    }

    /// Connects and logs in as `user`.
    pub async fn login(addr: SocketAddr, user: &str) -> Imap {
        let (mut c, _) = Imap::connect(addr).await;
        let r = c.cmd(&format!("LOGIN {user} \"{PASSWORD}\"")).await;
        assert!(r.ok(), "login failed: {r:?}");
        c
    }

    /// Reads one response line with literals inlined; `None` at EOF.
    pub async fn line(&mut self) -> Option<String> {
        let mut full = Vec::new();
        loop {
            let mut l = Vec::new();
            let n =
                tokio::time::timeout(Duration::from_secs(10), self.io.read_until(b'\n', &mut l))
                    .await
                    .expect("timed out waiting for the server")
                    .ok()?;
            if n == 0 {
                return None;
            }
            while l.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                l.pop();
            }
            let lit = l.strip_suffix(b"}").and_then(|h| {
                let open = h.iter().rposition(|c| *c == b'{')?;
                std::str::from_utf8(&h[open + 1..])
                    .ok()?
                    .trim_end_matches('+')
                    .parse::<usize>()
                    .ok()
            });
            full.extend_from_slice(&l);
            match lit {
                Some(len) => {
                    full.extend_from_slice(b"\r\n");
                    let mut buf = vec![0; len];
                    tokio::io::AsyncReadExt::read_exact(&mut self.io, &mut buf)
                        .await
                        .ok()?;
                    full.extend_from_slice(&buf);
                }
                None => return Some(String::from_utf8_lossy(&full).into_owned()),
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
        self.io.get_mut().flush().await.unwrap();
    }

    /// Sends `tag command` and collects responses up to the tagged one.
    pub async fn cmd(&mut self, command: &str) -> ImapReply {
        let tag = format!("a{}", self.next);
        self.next += 1;
        self.send(format!("{tag} {command}\r\n").as_bytes()).await;
        self.until(&tag).await
    }

    /// Collects responses until the line tagged `tag`.
    pub async fn until(&mut self, tag: &str) -> ImapReply {
        let mut untagged = Vec::new();
        loop {
            let l = self.line().await.expect("connection closed");
            if let Some(rest) = l.strip_prefix("* ") {
                untagged.push(rest.to_string());
            } else if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
                return ImapReply {
                    untagged,
                    status: rest.to_string(),
                };
            } else if l.starts_with('+') {
                untagged.push(l);
            }
        }
    }

    /// Next tag that `cmd` will use.
    pub fn next_tag(&self) -> String {
        format!("a{}", self.next)
    }

    pub fn bump_tag(&mut self) {
        self.next += 1;
    }

    /// A client over an already connected stream (e.g. implicit TLS).
    pub fn over(stream: Box<dyn Io>) -> Imap {
        Imap {
            io: BufReader::new(stream),
            next: 1,
        }
    }
}

/// Starts the real `postern serve --config CONFIG` as a child process (for SIGKILL tests) and
/// returns it with the address of `listener`, read from what it prints on start-up.
pub fn spawn_server(config: &std::path::Path, listener: &str) -> (std::process::Child, SocketAddr) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["serve", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let prefix = format!("{listener} ");
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(rest) = line.trim().strip_prefix(prefix.as_str()) {
            break rest
                .trim()
                .trim_start_matches("listening on ")
                .parse()
                .unwrap();
        }
    };
    // Keep draining stdout so the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}
