//! The SMTP client and the queue runner against a scripted SMTP peer on loopback, with a
//! table-driven resolver and a clock the tests move forward.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use store::{RecipientStatus, Store};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::client::{Envelope, Session, SessionConfig, TlsPolicy};
use super::dns::fake::FakeResolver;
use super::*;
use crate::{Deliverer, Target};

// ---------------------------------------------------------------- a scripted peer

#[derive(Clone)]
struct PeerScript {
    /// EHLO keywords after the first line; `None`: EHLO is refused (502).
    ehlo: Option<Vec<&'static str>>,
    name: &'static str,
    /// The name in the greeting, when it differs from `name` (the EHLO reply's).
    greeting_name: Option<&'static str>,
    /// RCPT replies by address; others get 250.
    rcpt: HashMap<String, &'static str>,
    /// The reply after the final dot.
    data_end: &'static str,
    /// Say nothing at all (greeting timeout).
    mute: bool,
    /// Called when a message's final dot arrives, before the reply.
    on_data: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Default for PeerScript {
    fn default() -> PeerScript {
        PeerScript {
            ehlo: Some(vec!["PIPELINING", "8BITMIME", "SMTPUTF8", "SIZE 100000"]),
            name: "mx.naver.test",
            greeting_name: None,
            rcpt: HashMap::new(),
            data_end: "250 2.0.0 Ok: queued",
            mute: false,
            on_data: None,
        }
    }
}

#[derive(Default, Debug)]
struct PeerLog {
    connections: usize,
    /// Every command line, in order.
    commands: Vec<String>,
    /// Each message: MAIL line, accepted RCPTs, data (unstuffed).
    messages: Vec<(String, Vec<String>, Vec<u8>)>,
    /// Reads that contained more than one command (pipelining seen).
    batched_reads: usize,
}

struct Peer {
    addr: SocketAddr,
    log: Arc<Mutex<PeerLog>>,
}

impl Peer {
    async fn start(ip: &str, script: PeerScript) -> Peer {
        Peer::start_on(SocketAddr::new(ip.parse().unwrap(), 0), script).await
    }

    async fn start_on(addr: SocketAddr, script: PeerScript) -> Peer {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(PeerLog::default()));
        let l = log.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                l.lock().unwrap().connections += 1;
                tokio::spawn(serve(tcp, script.clone(), l.clone()));
            }
        });
        Peer { addr, log }
    }

    fn messages(&self) -> Vec<(String, Vec<String>, Vec<u8>)> {
        self.log.lock().unwrap().messages.clone()
    }
}

async fn serve(tcp: tokio::net::TcpStream, s: PeerScript, log: Arc<Mutex<PeerLog>>) {
    let (r, mut w) = tcp.into_split();
    let mut r = BufReader::new(r);
    if s.mute {
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut r, &mut sink).await;
        return;
    }
    let _ = w
        .write_all(format!("220 {} ESMTP fake\r\n", s.greeting_name.unwrap_or(s.name)).as_bytes())
        .await;
    let mut mail = String::new();
    let mut rcpts = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        if !r.buffer().is_empty() {
            log.lock().unwrap().batched_reads += 1;
        }
        let cmd = line.trim_end().to_string();
        log.lock().unwrap().commands.push(cmd.clone());
        let upper = cmd.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            match &s.ehlo {
                Some(ext) => {
                    let mut out = format!("250-{}\r\n", s.name);
                    for (i, e) in ext.iter().enumerate() {
                        let sep = if i + 1 == ext.len() { ' ' } else { '-' };
                        out.push_str(&format!("250{sep}{e}\r\n"));
                    }
                    if ext.is_empty() {
                        out = format!("250 {}\r\n", s.name);
                    }
                    out
                }
                None => "502 5.5.1 EHLO not implemented\r\n".into(),
            }
        } else if upper.starts_with("HELO") {
            format!("250 {}\r\n", s.name)
        } else if upper.starts_with("MAIL FROM:") {
            mail = cmd.clone();
            rcpts.clear();
            "250 2.1.0 Ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            let addr = cmd[8..]
                .trim()
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or("")
                .to_string();
            match s.rcpt.get(&addr) {
                Some(r) => format!("{r}\r\n"),
                None => {
                    rcpts.push(addr);
                    "250 2.1.5 Ok\r\n".into()
                }
            }
        } else if upper == "DATA" {
            if rcpts.is_empty() {
                "554 5.5.1 No valid recipients\r\n".into()
            } else {
                let _ = w.write_all(b"354 go ahead\r\n").await;
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if r.read_until(b'\n', &mut l).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    let l = l.strip_prefix(b".").map(<[u8]>::to_vec).unwrap_or(l);
                    data.extend_from_slice(&l);
                }
                log.lock()
                    .unwrap()
                    .messages
                    .push((mail.clone(), rcpts.clone(), data));
                if let Some(f) = &s.on_data {
                    f();
                }
                format!("{}\r\n", s.data_end)
            }
        } else if upper.starts_with("AUTH PLAIN ") {
            "235 2.7.0 Authentication successful\r\n".into()
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 Ok\r\n".into()
        } else if upper == "QUIT" {
            let _ = w.write_all(b"221 2.0.0 Bye\r\n").await;
            return;
        } else {
            "502 5.5.2 unknown\r\n".into()
        };
        if w.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn quick_timeouts() -> Timeouts {
    let t = Duration::from_secs(2);
    Timeouts {
        connect: t,
        greeting: t,
        command: t,
        data_init: t,
        data_block: t,
        data_end: t,
    }
}

fn session_config() -> SessionConfig {
    SessionConfig {
        helo: "mx.daum.test".into(),
        timeouts: quick_timeouts(),
        tls: TlsPolicy::Off,
        auth: None,
        source: None,
    }
}

const MESSAGE: &[u8] =
    b"From: kim@daum.test\r\nTo: lee@naver.test\r\nSubject: hi\r\n\r\n.leading dot\r\nbody\r\n";

fn rcpts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------- the client

#[tokio::test]
async fn client_pipelines_and_reports_per_recipient() {
    let mut script = PeerScript::default();
    script.rcpt.insert(
        "bad@naver.test".into(),
        "550 5.1.1 <bad@naver.test>: no such user",
    );
    script
        .rcpt
        .insert("later@naver.test".into(), "450 4.2.1 mailbox busy");
    let peer = Peer::start("127.0.0.1", script).await;
    let mut s = Session::open("mx.naver.test", peer.addr, &session_config())
        .await
        .unwrap();
    assert!(s.capabilities().pipelining);
    let to = rcpts(&["lee@naver.test", "bad@naver.test", "later@naver.test"]);
    let r = s
        .send(
            Envelope {
                sender: Some("kim@daum.test"),
                recipients: &to,
            },
            MESSAGE,
        )
        .await;
    assert!(r[0].as_ref().unwrap().starts_with("250 2.0.0"), "{r:?}");
    let bad = r[1].as_ref().unwrap_err();
    assert!(bad.permanent && bad.status == "5.1.1", "{bad:?}");
    assert!(
        bad.text.starts_with("550 5.1.1 <bad@naver.test>"),
        "{bad:?}"
    );
    assert_eq!(bad.remote_mta.as_deref(), Some("mx.naver.test[127.0.0.1]"));
    let later = r[2].as_ref().unwrap_err();
    assert!(!later.permanent && later.status == "4.2.1", "{later:?}");
    // a second message on the same connection
    let r = s
        .send(
            Envelope {
                sender: None,
                recipients: &rcpts(&["lee@naver.test"]),
            },
            MESSAGE,
        )
        .await;
    assert!(r[0].is_ok());
    s.quit().await;
    let log = peer.log.lock().unwrap();
    assert_eq!(log.connections, 1);
    assert!(
        log.batched_reads >= 2,
        "MAIL/RCPT/DATA were pipelined: {log:?}"
    );
    assert_eq!(log.messages.len(), 2);
    assert_eq!(
        log.messages[0].0,
        format!("MAIL FROM:<kim@daum.test> SIZE={}", MESSAGE.len())
    );
    assert_eq!(
        log.messages[0].2, MESSAGE,
        "dot-stuffing is undone by the peer"
    );
    assert_eq!(
        log.messages[1].0,
        format!("MAIL FROM:<> SIZE={}", MESSAGE.len())
    );
}

#[tokio::test]
async fn client_falls_back_to_helo_and_converts_8bit() {
    let script = PeerScript {
        ehlo: None,
        ..PeerScript::default()
    };
    let peer = Peer::start("127.0.0.1", script).await;
    let mut s = Session::open("old.test", peer.addr, &session_config())
        .await
        .unwrap();
    let eight = "Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n안녕\r\n".as_bytes();
    let to = rcpts(&["lee@naver.test"]);
    let env = Envelope {
        sender: Some("kim@daum.test"),
        recipients: &to,
    };
    assert!(s.send(env, eight).await[0].is_ok());
    // header 8-bit needs SMTPUTF8, which a HELO peer does not have
    let r = s.send(env, "Subject: 안녕\r\n\r\nx\r\n".as_bytes()).await;
    let f = r[0].as_ref().unwrap_err();
    assert!(f.permanent && f.status == "5.6.9", "{f:?}");
    // a non-ASCII recipient cannot be sent; an ASCII one in the same message can
    let to = rcpts(&["이@naver.test", "lee@naver.test"]);
    let r = s
        .send(
            Envelope {
                sender: Some("kim@daum.test"),
                recipients: &to,
            },
            MESSAGE,
        )
        .await;
    assert!(
        r[0].as_ref().unwrap_err().status == "5.6.7" && r[1].is_ok(),
        "{r:?}"
    );
    s.quit().await;
    let log = peer.log.lock().unwrap();
    assert!(log.commands[0].starts_with("EHLO") && log.commands[1].starts_with("HELO"));
    let (mail, _, data) = &log.messages[0];
    assert_eq!(
        mail, "MAIL FROM:<kim@daum.test>",
        "no ESMTP parameters after HELO"
    );
    assert!(data.is_ascii(), "{}", String::from_utf8_lossy(data));
    let text = String::from_utf8_lossy(data);
    assert!(
        text.contains("Content-Transfer-Encoding: quoted-printable"),
        "{text}"
    );
    assert!(text.contains("=EC=95=88=EB=85=95"), "{text}");
    assert_eq!(log.messages.len(), 2);
}

#[tokio::test]
async fn client_sends_8bitmime_and_smtputf8_when_offered() {
    let peer = Peer::start("127.0.0.1", PeerScript::default()).await;
    let mut s = Session::open("mx.naver.test", peer.addr, &session_config())
        .await
        .unwrap();
    let m = "Subject: 안녕\r\n\r\n본문\r\n".as_bytes();
    let to = rcpts(&["이@naver.test"]);
    let r = s
        .send(
            Envelope {
                sender: Some("kim@daum.test"),
                recipients: &to,
            },
            m,
        )
        .await;
    assert!(r[0].is_ok(), "{r:?}");
    // over the announced SIZE: refused without a transaction
    let big = vec![b'a'; 100_001];
    let r = s
        .send(
            Envelope {
                sender: Some("kim@daum.test"),
                recipients: &to,
            },
            &big,
        )
        .await;
    let f = r[0].as_ref().unwrap_err();
    assert!(f.permanent && f.status == "5.3.4", "{f:?}");
    s.quit().await;
    let log = peer.log.lock().unwrap();
    assert_eq!(log.messages.len(), 1);
    let (mail, _, data) = &log.messages[0];
    assert!(mail.ends_with("BODY=8BITMIME SMTPUTF8"), "{mail}");
    assert_eq!(data, m);
    assert_eq!(
        log.commands
            .iter()
            .filter(|c| c.starts_with("MAIL"))
            .count(),
        1
    );
}

#[tokio::test]
async fn client_waits_are_bounded() {
    let script = PeerScript {
        mute: true,
        ..PeerScript::default()
    };
    let peer = Peer::start("127.0.0.1", script).await;
    let mut config = session_config();
    // Every other wait far longer, so that the bound below leaves a loaded machine seconds
    // of slack and still tells the greeting's timeout from any other.
    let long = Duration::from_secs(10);
    config.timeouts = Timeouts {
        connect: long,
        greeting: Duration::from_millis(300),
        command: long,
        data_init: long,
        data_block: long,
        data_end: long,
    };
    let started = std::time::Instant::now();
    let e = Session::open("slow.test", peer.addr, &config)
        .await
        .err()
        .unwrap();
    assert!(
        !e.failure.permanent && e.failure.text.contains("timed out"),
        "{e:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // a refused connection is temporary
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let e = Session::open("down.test", addr, &session_config())
        .await
        .err()
        .unwrap();
    assert!(!e.failure.permanent && e.failure.status == "4.4.1", "{e:?}");
}

// ---------------------------------------------------------------- the runner

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    deliverer: Deliverer,
    resolver: Arc<FakeResolver>,
    clock: ShiftedClock,
    handle: RunnerHandle,
    kim: store::AccountId,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn harness(port: u16, tune: impl FnOnce(&mut RelaySettings)) -> Harness {
    harness_in(tempfile::tempdir().unwrap(), port, tune).await
}

/// [`harness`] with its store in `dir`.
async fn harness_in(
    dir: tempfile::TempDir,
    port: u16,
    tune: impl FnOnce(&mut RelaySettings),
) -> Harness {
    let store = Store::open_embedded(dir.path()).unwrap();
    store.add_domain("daum.test").await.unwrap();
    let kim = store.add_account("kim@daum.test", "x").await.unwrap();
    let clock = ShiftedClock::new();
    let deliverer = Deliverer::with_clock(store.clone(), 0, Arc::new(clock.clone()));
    let resolver = Arc::new(FakeResolver::default());
    let mut settings = RelaySettings::new("mx.daum.test");
    settings.port = port;
    settings.timeouts = quick_timeouts();
    tune(&mut settings);
    let runner = QueueRunner::new(store.clone(), deliverer.clone(), settings, resolver.clone());
    let handle = runner.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(runner.run(async move {
        let _ = stopped.await;
    }));
    Harness {
        _dir: dir,
        store,
        deliverer,
        resolver,
        clock,
        handle,
        kim,
        _stop: stop,
    }
}

impl Harness {
    async fn queue(&self, sender: Option<&str>, to: &[&str], subject: &str) -> i64 {
        let targets: Vec<Target> = to.iter().map(|t| Target::Remote(t.to_string())).collect();
        let msg = format!(
            "From: kim@daum.test\r\nSubject: {subject}\r\nMessage-ID: <{subject}@daum.test>\r\n\r\nbody\r\n"
        );
        self.deliverer
            .deliver(sender, &targets, msg.into_bytes())
            .await
            .unwrap()
            .queue_id
            .unwrap()
    }

    async fn inbox(&self) -> Vec<Vec<u8>> {
        let mb = self
            .store
            .mailbox_by_name(self.kim, "INBOX")
            .await
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        for m in self.store.list_messages(mb.id).await.unwrap() {
            out.push(self.store.read_blob(m.blob).await.unwrap());
        }
        out
    }

    /// Moves the clock and wakes the runner.
    fn later(&self, seconds: i64) {
        self.clock.advance(seconds);
        self.handle.wake();
    }
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn runner_delivers_and_shares_one_connection() {
    let peer = Peer::start("127.0.0.1", PeerScript::default()).await;
    let h = harness(peer.addr.port(), |_| {}).await;
    h.resolver.mx("naver.test", &[(10, "mx.naver.test")]);
    h.resolver.host("mx.naver.test", &[ip("127.0.0.1")]);
    for i in 0..3 {
        h.queue(
            Some("kim@daum.test"),
            &["lee@naver.test", "park@naver.test"],
            &format!("m{i}"),
        )
        .await;
    }
    eventually("the queue is empty", || async {
        h.store.list_queue().await.unwrap().is_empty()
    })
    .await;
    let msgs = peer.messages();
    assert_eq!(
        msgs.len(),
        3,
        "one transaction per message, both recipients in it"
    );
    assert!(msgs.iter().all(|(_, r, _)| r.len() == 2));
    let connections = peer.log.lock().unwrap().connections;
    assert!(connections <= 2, "connections are reused: {connections}");
    assert!(h.inbox().await.is_empty(), "no bounce");
}

#[tokio::test]
async fn runner_retries_after_backoff_and_falls_back_to_the_second_mx() {
    // The first MX refuses connections (nothing listens on its address): the second takes it.
    let peer = Peer::start("127.0.0.3", PeerScript::default()).await;
    let h = harness(peer.addr.port(), |_| {}).await;
    h.resolver.mx(
        "naver.test",
        &[(10, "mx1.naver.test"), (20, "mx2.naver.test")],
    );
    h.resolver.host("mx1.naver.test", &[ip("127.0.0.2")]);
    h.resolver.host("mx2.naver.test", &[ip("127.0.0.3")]);
    h.queue(Some("kim@daum.test"), &["lee@naver.test"], "fallback")
        .await;
    eventually("delivered through the second MX", || async {
        h.store.list_queue().await.unwrap().is_empty()
    })
    .await;
    assert_eq!(peer.messages().len(), 1);

    // Now the only MX is down: deferred with backoff, delivered when it is back later.
    h.resolver.mx("daum2.test", &[(10, "mx.daum2.test")]);
    h.resolver.host("mx.daum2.test", &[ip("127.0.0.4")]);
    let id = h
        .queue(Some("kim@daum.test"), &["x@daum2.test"], "later")
        .await;
    eventually("the first attempt failed", || async {
        h.store.queue_entry(id).await.unwrap().unwrap().attempts == 1
    })
    .await;
    let e = h.store.queue_entry(id).await.unwrap().unwrap();
    let delay = e.next_attempt - e.last_attempt.unwrap();
    assert!(
        (300..=330).contains(&delay),
        "first retry after 5 minutes: {delay}"
    );
    let r = &e.recipients[0];
    assert_eq!(r.status, RecipientStatus::Pending);
    assert_eq!(r.status_code.as_deref(), Some("4.4.1"));
    assert!(
        r.last_error
            .as_deref()
            .unwrap()
            .contains("connect to mx.daum2.test[127.0.0.4]")
    );
    // nothing happens before the backoff elapses
    h.later(60);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(h.store.queue_entry(id).await.unwrap().unwrap().attempts, 1);
    // an hour later the host is back
    let back = Peer::start_on(
        SocketAddr::new(ip("127.0.0.4"), peer.addr.port()),
        PeerScript::default(),
    )
    .await;
    h.later(3600);
    eventually("delivered after the peer came back", || async {
        h.store.queue_entry(id).await.unwrap().is_none()
    })
    .await;
    assert_eq!(back.messages().len(), 1);
    assert!(h.inbox().await.is_empty());
}

#[tokio::test]
async fn a_bounce_that_cannot_be_built_keeps_the_failure_pending_and_the_delivery_recorded() {
    // The body lives in the blob log; the peer takes lee, refuses nobody, and by the time the
    // runner builds the bounce the record is gone (as if damaged), so no bounce can be built.
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs");
    let mut script = PeerScript::default();
    script.rcpt.insert(
        "nobody@naver.test".into(),
        "550 5.1.1 <nobody@naver.test>: no such user",
    );
    script.on_data = Some(Arc::new(move || {
        for e in std::fs::read_dir(&blobs).unwrap() {
            std::fs::OpenOptions::new()
                .write(true)
                .open(e.unwrap().path())
                .unwrap()
                .set_len(0)
                .unwrap();
        }
    }));
    let peer = Peer::start("127.0.0.1", script).await;
    let h = harness_in(dir, peer.addr.port(), |_| {}).await;
    h.resolver.mx("naver.test", &[(10, "mx.naver.test")]);
    h.resolver.host("mx.naver.test", &[ip("127.0.0.1")]);
    let body = format!(
        "From: kim@daum.test\r\nSubject: big\r\n\r\n{}\r\n",
        "x".repeat(40_000)
    );
    let targets = [
        Target::Remote("lee@naver.test".into()),
        Target::Remote("nobody@naver.test".into()),
    ];
    let id = h
        .deliverer
        .deliver(Some("kim@daum.test"), &targets, body.into_bytes())
        .await
        .unwrap()
        .queue_id
        .unwrap();
    eventually("the attempt is recorded", || async {
        h.store
            .queue_entry(id)
            .await
            .unwrap()
            .is_some_and(|e| e.attempts == 1 && !e.leased)
    })
    .await;
    let e = h.store.queue_entry(id).await.unwrap().unwrap();
    let status = |a: &str| {
        e.recipients
            .iter()
            .find(|r| r.address == a)
            .map(|r| r.status)
            .unwrap()
    };
    // lee is not sent the message again; nobody waits for a bounce that can be built.
    assert_eq!(status("lee@naver.test"), RecipientStatus::Delivered);
    assert_eq!(status("nobody@naver.test"), RecipientStatus::Pending);
    assert!(h.inbox().await.is_empty(), "no bounce");
    assert_eq!(peer.messages().len(), 1);
    // Retried at the usual pace, not at once.
    assert!(e.next_attempt >= h.clock.now() + 60, "{e:?}");
}

#[tokio::test]
async fn runner_bounces_permanent_failures_but_never_a_bounce() {
    let mut script = PeerScript::default();
    script.rcpt.insert(
        "nobody@naver.test".into(),
        "550 5.1.1 <nobody@naver.test>: no such user",
    );
    let peer = Peer::start("127.0.0.1", script).await;
    let h = harness(peer.addr.port(), |_| {}).await;
    h.resolver.mx("naver.test", &[(10, "mx.naver.test")]);
    h.resolver.host("mx.naver.test", &[ip("127.0.0.1")]);
    h.resolver.mx("nullmx.test", &[(0, "")]);
    h.queue(
        Some("kim@daum.test"),
        &[
            "lee@naver.test",
            "nobody@naver.test",
            "x@nullmx.test",
            "y@nosuch.test",
        ],
        "mixed",
    )
    .await;
    eventually("the entry is done", || async {
        h.store.list_queue().await.unwrap().is_empty()
    })
    .await;
    assert_eq!(peer.messages().len(), 1, "lee got it");
    let inbox = h.inbox().await;
    assert_eq!(inbox.len(), 1, "one bounce for the three failures");
    let b = &inbox[0];
    for needle in [
        "Return-Path: <>\r\n",
        "Subject: Undelivered Mail Returned to Sender",
        "Content-Type: message/delivery-status\r\n",
        "Final-Recipient: rfc822; nobody@naver.test\r\nAction: failed\r\nStatus: 5.1.1",
        "Diagnostic-Code: smtp; 550 5.1.1 <nobody@naver.test>: no such user",
        "Final-Recipient: rfc822; x@nullmx.test\r\nAction: failed\r\nStatus: 5.1.10",
        "Final-Recipient: rfc822; y@nosuch.test\r\nAction: failed\r\nStatus: 5.1.2",
        "Subject: mixed",
    ] {
        assert!(
            contains(b, needle),
            "missing {needle:?}:\n{}",
            String::from_utf8_lossy(b)
        );
    }
    assert!(
        !contains(b, "lee@naver.test\r\nAction"),
        "the delivered recipient is not listed"
    );

    // a null-sender message that fails is dropped without a notice
    h.queue(None, &["nobody@naver.test"], "bounce-of-bounce")
        .await;
    eventually("the null-sender entry is done", || async {
        h.store.list_queue().await.unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.inbox().await.len(), 1);
}

#[tokio::test]
async fn runner_warns_once_then_expires_with_a_bounce() {
    let h = harness(9, |s| {
        s.lifetime = Duration::from_secs(24 * 3600);
        s.delay_warning = Some(Duration::from_secs(4 * 3600));
    })
    .await;
    // SERVFAIL for the domain: temporary, every time.
    h.resolver.fail.lock().unwrap().push("flaky.test".into());
    let id = h
        .queue(Some("kim@daum.test"), &["x@flaky.test"], "slow")
        .await;
    eventually("first attempt", || async {
        h.store.queue_entry(id).await.unwrap().unwrap().attempts == 1
    })
    .await;
    assert!(h.inbox().await.is_empty());
    h.later(5 * 3600);
    eventually("a delay warning", || async { h.inbox().await.len() == 1 }).await;
    let w = &h.inbox().await[0];
    assert!(
        contains(w, "Action: delayed\r\nStatus: 4.4.3"),
        "{}",
        String::from_utf8_lossy(w)
    );
    assert!(contains(w, "Will-Retry-Until: "));
    let e = h.store.queue_entry(id).await.unwrap().unwrap();
    assert!(e.warned && e.attempts == 2);
    // another failed attempt: no second warning
    h.later(3 * 3600);
    eventually("third attempt", || async {
        h.store.queue_entry(id).await.unwrap().unwrap().attempts == 3
    })
    .await;
    assert_eq!(h.inbox().await.len(), 1);
    // past the lifetime: bounced and removed
    h.later(24 * 3600);
    eventually("expired", || async {
        h.store.queue_entry(id).await.unwrap().is_none()
    })
    .await;
    let inbox = h.inbox().await;
    assert_eq!(inbox.len(), 2);
    let b = &inbox[1];
    assert!(
        contains(b, "Action: failed\r\nStatus: 4.4.3"),
        "{}",
        String::from_utf8_lossy(b)
    );
    assert!(contains(b, "gave up: in the queue for more than 24 hours"));
}

#[tokio::test]
async fn runner_uses_routes_and_the_smarthost() {
    let peer = Peer::start(
        "127.0.0.1",
        PeerScript {
            ehlo: Some(vec!["PIPELINING", "AUTH PLAIN LOGIN"]),
            ..PeerScript::default()
        },
    )
    .await;
    let port = peer.addr.port();
    // relay.routes: no DNS needed for the routed domain
    let h = harness(9, |s| {
        s.routes.insert(
            "routed.test".into(),
            NextHop {
                host: "127.0.0.1".into(),
                port,
            },
        );
    })
    .await;
    h.queue(Some("kim@daum.test"), &["a@routed.test"], "routed")
        .await;
    eventually("routed", || async {
        h.store.list_queue().await.unwrap().is_empty()
    })
    .await;
    assert_eq!(peer.messages().len(), 1);

    // smarthost with AUTH on loopback: TLS not required there, AUTH PLAIN used
    let h = harness(9, |s| {
        s.smarthost = Some(Smarthost {
            hop: NextHop {
                host: "127.0.0.1".into(),
                port,
            },
            credentials: Some(("relay-user".into(), "secret".into())),
            verify_certificate: true,
        });
    })
    .await;
    h.queue(
        Some("kim@daum.test"),
        &["b@anywhere.test", "c@else.test"],
        "smart",
    )
    .await;
    eventually("through the smarthost", || async {
        h.store.list_queue().await.unwrap().is_empty()
    })
    .await;
    let log = peer.log.lock().unwrap();
    assert_eq!(log.messages.len(), 2);
    assert_eq!(
        log.messages[1].1,
        ["b@anywhere.test", "c@else.test"],
        "one transaction for all domains"
    );
    assert!(
        log.commands.iter().any(|c| c.starts_with("AUTH PLAIN ")),
        "{:?}",
        log.commands
    );
}

#[tokio::test]
async fn runner_refuses_to_deliver_to_itself() {
    // The MX answers with our own name: a routing loop, bounced at once (RFC 5321 5.1).
    refused_as_a_loop(PeerScript {
        name: "mx.daum.test",
        ..PeerScript::default()
    })
    .await;
}

#[tokio::test]
async fn runner_sees_a_loop_in_the_greeting_alone() {
    // Our name in the greeting only (the EHLO reply names another host).
    refused_as_a_loop(PeerScript {
        greeting_name: Some("mx.daum.test"),
        ..PeerScript::default()
    })
    .await;
}

async fn refused_as_a_loop(script: PeerScript) {
    let peer = Peer::start("127.0.0.1", script).await;
    let h = harness(peer.addr.port(), |_| {}).await;
    h.resolver.mx("loop.test", &[(10, "mx.loop.test")]);
    h.resolver.host("mx.loop.test", &[ip("127.0.0.1")]);
    h.queue(Some("kim@daum.test"), &["x@loop.test"], "loop")
        .await;
    eventually("bounced", || async { h.inbox().await.len() == 1 }).await;
    let b = &h.inbox().await[0];
    assert!(
        contains(b, "Status: 5.4.6"),
        "{}",
        String::from_utf8_lossy(b)
    );
    assert!(contains(b, "loops back to myself"));
    assert!(peer.messages().is_empty());
    assert!(h.store.list_queue().await.unwrap().is_empty());
}
