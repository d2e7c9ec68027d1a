//! Outbound delivery between real servers: two (or three) Postern instances in this process,
//! each on its own loopback address (`127.0.N.2` daum.test, `127.0.N.3` naver.test) with the
//! same SMTP port, and an in-process DNS server with their MX and A records. Mail is submitted
//! with AUTH, relayed by the queue runner through a real MX lookup and SMTP, and read back
//! with IMAP and POP3; time is moved forward with the runner's clock, not slept.

use std::net::Ipv4Addr;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use queue::ShiftedClock;
use store::RecipientStatus;

use crate::cli::ok;
use crate::dns::{Rec, TestDns};
use crate::pop3::Pop;
use crate::support::{
    Imap, Node, PASSWORD, TestServer, common_port, contains, eventually, loopback_net,
};

/// Submits a message with STARTTLS and AUTH PLAIN to `server`'s submission port.
async fn submit(server: &TestServer, user: &str, to: &str, subject: &str, body: &str) {
    let tls = TlsParameters::builder("localhost".into())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .unwrap();
    let addr = server.submission();
    let t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .tls(Tls::Required(tls))
        .credentials(Credentials::new(user.into(), PASSWORD.into()))
        .build();
    let m = Message::builder()
        .from(user.parse().unwrap())
        .to(to.parse().unwrap())
        .subject(subject)
        .message_id(Some(format!("<{subject}@test>")))
        .body(body.to_string())
        .unwrap();
    t.send(m).await.unwrap();
}

/// Every message in `user`'s INBOX, read over IMAP.
async fn imap_inbox(server: &TestServer, user: &str) -> Vec<String> {
    let mut c = Imap::login(server.imap(), user).await;
    let r = c.cmd("SELECT INBOX").await;
    assert!(r.ok(), "{r:?}");
    let exists = r
        .untagged
        .iter()
        .find_map(|l| l.strip_suffix(" EXISTS")?.parse::<u32>().ok())
        .unwrap_or(0);
    if exists == 0 {
        return Vec::new();
    }
    let r = c.cmd("FETCH 1:* BODY.PEEK[]").await;
    assert!(r.ok(), "{r:?}");
    r.untagged
        .into_iter()
        .filter(|l| l.contains(" FETCH "))
        .collect()
}

fn ip(net: &str, host: u8) -> String {
    format!("{net}.{host}")
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// daum.test (kim) and naver.test (lee), MX records for both, one shared clock each.
struct TwoDomains {
    dns: TestDns,
    net: String,
    port: u16,
    daum: TestServer,
    naver: TestServer,
    daum_clock: ShiftedClock,
}

impl TwoDomains {
    async fn start() -> TwoDomains {
        TwoDomains::with_records(|_| Vec::new()).await
    }

    /// With extra DNS records (given the network prefix).
    async fn with_records(extra: impl FnOnce(&str) -> Vec<(String, u16, String)>) -> TwoDomains {
        let net = loopback_net();
        let (daum_ip, naver_ip) = (ip(&net, 2), ip(&net, 3));
        let port = common_port(&[&daum_ip, &naver_ip, &ip(&net, 4)]);
        let extra = extra(&net);
        let mut records = vec![
            Rec::Mx("daum.test", 10, "mx.daum.test"),
            Rec::A("mx.daum.test", v4(&daum_ip)),
            Rec::A("mx1.naver.test", v4(&ip(&net, 4))),
            Rec::A("mx2.naver.test", v4(&naver_ip)),
            Rec::Mx("nullmx.test", 0, "."),
        ];
        if extra.is_empty() {
            records.push(Rec::Mx("naver.test", 10, "mx.naver.test"));
            records.push(Rec::A("mx.naver.test", v4(&naver_ip)));
        }
        for (domain, pref, host) in &extra {
            records.push(Rec::Mx(domain, *pref, host));
        }
        let dns = TestDns::start(&records).await;
        let daum_clock = ShiftedClock::new();
        let mut d = Node::new("mx.daum.test", daum_ip, port, "daum.test");
        d.users = &["kim@daum.test"];
        d.dns = Some(dns.config());
        d.clock = Some(daum_clock.clone());
        let daum = TestServer::node(&d, None).await;
        let naver = TestServer::node(&TwoDomains::naver_node(&net, port, &dns), None).await;
        TwoDomains {
            dns,
            net,
            port,
            daum,
            naver,
            daum_clock,
        }
    }

    fn naver_node<'a>(net: &str, port: u16, dns: &TestDns) -> Node<'a> {
        let mut n = Node::new("mx.naver.test", ip(net, 3), port, "naver.test");
        n.users = &["lee@naver.test"];
        n.dns = Some(dns.config());
        n
    }
}

async fn inbox_len(server: &TestServer, user: &str) -> usize {
    server.messages(user, "INBOX").await.len()
}

/// The runner drops an entry in the write after the peer's 250, so the
/// recipient may hold the message a moment before the sender's queue is empty.
async fn queue_drains(server: &TestServer) {
    eventually(5, "the queue is empty", || async {
        server.store.list_queue().await.unwrap().is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_domains_exchange_mail_through_mx() {
    let t = TwoDomains::start().await;
    submit(
        &t.daum,
        "kim@daum.test",
        "lee@naver.test",
        "hello-lee",
        "안녕, 이씨",
    )
    .await;
    eventually(20, "lee has kim's mail", || async {
        inbox_len(&t.naver, "lee@naver.test").await == 1
    })
    .await;
    queue_drains(&t.daum).await;

    // lee reads it over IMAP ...
    let inbox = imap_inbox(&t.naver, "lee@naver.test").await;
    let m = &inbox[0];
    assert!(m.contains("Subject: hello-lee"), "{m}");
    assert!(m.contains("Return-Path: <kim@daum.test>"), "{m}");
    // naver's Received line: from daum's runner, over STARTTLS (ESMTPS), via MX
    let daum_ip = ip(&t.net, 2);
    assert!(
        m.contains(&format!("from mx.daum.test ([{daum_ip}])"))
            && m.contains("by mx.naver.test (Postern) with ESMTPS"),
        "{m}"
    );
    // ... and over POP3
    let mut p = Pop::login(t.naver.pop3(), "lee@naver.test").await;
    assert!(p.cmd("RETR 1").await.starts_with("+OK"));
    let body: Vec<u8> = p.body().await.concat();
    assert!(contains(&body, "Message-ID: <hello-lee@test>"));
    p.cmd("QUIT").await;

    // lee replies; kim gets the reply at daum
    submit(
        &t.naver,
        "lee@naver.test",
        "kim@daum.test",
        "re-hello",
        "반가워요",
    )
    .await;
    eventually(20, "kim has lee's reply", || async {
        inbox_len(&t.daum, "kim@daum.test").await == 1
    })
    .await;
    let inbox = imap_inbox(&t.daum, "kim@daum.test").await;
    assert!(inbox[0].contains("Subject: re-hello"), "{}", inbox[0]);
    assert!(
        inbox[0].contains("by mx.daum.test (Postern) with ESMTPS"),
        "{}",
        inbox[0]
    );
    queue_drains(&t.naver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_null_mx_and_nxdomain_bounce_back_to_kim() {
    let t = TwoDomains::start().await;
    // swaks, a real client program, submits this one
    let addr = t.daum.submission();
    let args = vec![
        "--server".to_string(),
        format!("{}:{}", addr.ip(), addr.port()),
        "--tls".into(),
        "--auth".into(),
        "PLAIN".into(),
        "--auth-user".into(),
        "kim@daum.test".into(),
        "--auth-password".into(),
        PASSWORD.into(),
        "--from".into(),
        "kim@daum.test".into(),
        "--to".into(),
        "nobody@naver.test,somebody@nullmx.test,anyone@nosuch.test".into(),
        "--header".into(),
        "Subject: to-nobody".into(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("swaks")
            .args(&args)
            .output()
            .expect("swaks is installed by test.sh")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    eventually(20, "the bounce is in kim's INBOX", || async {
        inbox_len(&t.daum, "kim@daum.test").await == 1
    })
    .await;
    let inbox = imap_inbox(&t.daum, "kim@daum.test").await;
    let b = &inbox[0];
    for needle in [
        "Return-Path: <>",
        "From: \"Mail Delivery System\" <MAILER-DAEMON@mx.daum.test>",
        "Subject: Undelivered Mail Returned to Sender",
        "Content-Type: multipart/report; report-type=\"delivery-status\"",
        "Reporting-MTA: dns; mx.daum.test",
        "Final-Recipient: rfc822; nobody@naver.test",
        "Action: failed",
        "Status: 5.1.1",
        "Remote-MTA: dns; mx.naver.test",
        "Diagnostic-Code: smtp; 550 5.1.1",
        "Final-Recipient: rfc822; somebody@nullmx.test",
        "Status: 5.1.10",
        "Final-Recipient: rfc822; anyone@nosuch.test",
        "Status: 5.1.2",
        "Content-Type: text/rfc822-headers",
        "Subject: to-nobody",
    ] {
        assert!(b.contains(needle), "missing {needle:?} in\n{b}");
    }
    assert!(t.daum.store.list_queue().await.unwrap().is_empty());
    assert_eq!(inbox_len(&t.naver, "lee@naver.test").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_down_for_an_hour_gets_the_mail_when_back() {
    let t = TwoDomains::start().await;
    let TwoDomains {
        dns,
        net,
        port,
        daum,
        naver,
        daum_clock,
    } = t;
    let naver_dir = naver.stop().await;
    submit(
        &daum,
        "kim@daum.test",
        "lee@naver.test",
        "while-down-1",
        "first",
    )
    .await;
    submit(
        &daum,
        "kim@daum.test",
        "lee@naver.test",
        "while-down-2",
        "second",
    )
    .await;
    eventually(20, "both attempts failed", || async {
        let q = daum.store.list_queue().await.unwrap();
        q.len() == 2 && q.iter().all(|e| e.attempts == 1 && !e.leased)
    })
    .await;
    let q = daum.store.list_queue().await.unwrap();
    let r = &q[0].recipients[0];
    assert_eq!(r.status, RecipientStatus::Pending);
    assert_eq!(r.status_code.as_deref(), Some("4.4.1"), "{r:?}");
    assert!(
        r.last_error
            .as_deref()
            .unwrap()
            .contains("connect to mx.naver.test")
    );
    // the admin CLI sees the same queue while the server runs
    let data = daum._dir.path();
    let list = ok(data, &["queue", "list"], None);
    assert!(
        list.contains("to <lee@naver.test>  pending 4.4.1") && list.contains("attempts 1"),
        "{list}"
    );
    let show = ok(data, &["queue", "show", &q[0].id.to_string()], None);
    assert!(
        show.contains("sender        <kim@daum.test>") && show.contains("Subject: while-down-1"),
        "{show}"
    );

    // naver comes back on the same address; nothing is due yet (first retry after 5 minutes)
    let naver = TestServer::node(&TwoDomains::naver_node(&net, port, &dns), Some(naver_dir)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(inbox_len(&naver, "lee@naver.test").await, 0);

    // `queue retry ID` makes one due now: the running server sends it within a second
    let out = ok(data, &["queue", "retry", &q[0].id.to_string()], None);
    assert!(out.contains("1 message(s) due now"), "{out}");
    eventually(20, "the retried message arrived", || async {
        inbox_len(&naver, "lee@naver.test").await == 1
    })
    .await;
    eventually(5, "one entry is left", || async {
        daum.store.list_queue().await.unwrap().len() == 1
    })
    .await;

    // an hour later the other one is retried by the schedule
    daum_clock.advance(3600);
    daum.running.queue.wake();
    eventually(20, "the second message arrived", || async {
        inbox_len(&naver, "lee@naver.test").await == 2
    })
    .await;
    queue_drains(&daum).await;
    let subjects = imap_inbox(&naver, "lee@naver.test").await.join("\n");
    assert!(subjects.contains("while-down-1") && subjects.contains("while-down-2"));
    assert_eq!(
        inbox_len(&daum, "kim@daum.test").await,
        0,
        "no bounce, no delay warning"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_mx_takes_over_when_the_first_refuses() {
    // naver.test: MX 10 mx1 (127.0.N.4, nothing listens), MX 20 mx2 (naver's address)
    let t = TwoDomains::with_records(|_| {
        vec![
            ("naver.test".into(), 10, "mx1.naver.test".into()),
            ("naver.test".into(), 20, "mx2.naver.test".into()),
        ]
    })
    .await;
    submit(&t.daum, "kim@daum.test", "lee@naver.test", "via-mx2", "x").await;
    eventually(20, "lee has it", || async {
        inbox_len(&t.naver, "lee@naver.test").await == 1
    })
    .await;
    queue_drains(&t.daum).await;
    let _ = (&t.dns, &t.net, t.port, &t.daum_clock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_delete_bounces_or_stays_silent() {
    let t = TwoDomains::start().await;
    let naver_dir = t.naver.stop().await;
    for s in ["cancel-me", "drop-me"] {
        submit(&t.daum, "kim@daum.test", "lee@naver.test", s, "x").await;
    }
    eventually(20, "attempted", || async {
        let q = t.daum.store.list_queue().await.unwrap();
        q.len() == 2 && q.iter().all(|e| e.attempts == 1 && !e.leased)
    })
    .await;
    let q = t.daum.store.list_queue().await.unwrap();
    let data = t.daum._dir.path();
    let out = ok(data, &["queue", "delete", &q[0].id.to_string()], None);
    assert!(
        out.contains("1 recipient(s) returned to the sender"),
        "{out}"
    );
    let out = ok(
        data,
        &["queue", "delete", "--silent", &q[1].id.to_string()],
        None,
    );
    assert!(out.contains("deleted"), "{out}");
    assert!(t.daum.store.list_queue().await.unwrap().is_empty());
    let inbox = t.daum.messages("kim@daum.test", "INBOX").await;
    assert_eq!(inbox.len(), 1, "one bounce, for the non-silent delete");
    assert!(contains(
        &inbox[0],
        "delivery cancelled by the administrator"
    ));
    assert!(contains(&inbox[0], "Subject: cancel-me"));
    let out = crate::cli::postern(data, &["queue", "delete", "999999"], None);
    assert!(!out.status.success());
    drop(naver_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smarthost_with_auth_instead_of_mx() {
    // daum relays everything through naver's submission port, logging in as kim@daum.test,
    // an account naver keeps for it (the usual setup behind a port-25 block). No DNS at all.
    let net = loopback_net();
    let (daum_ip, naver_ip) = (ip(&net, 2), ip(&net, 3));
    let port = common_port(&[&daum_ip, &naver_ip]);
    let mut n = Node::new("mx.naver.test", naver_ip, port, "naver.test");
    n.users = &["lee@naver.test"];
    let naver = TestServer::node(&n, None).await;
    naver.store.add_domain("daum.test").await.unwrap();
    naver.add_user("kim@daum.test").await;
    let sub = naver.submission();
    let mut d = Node::new("mx.daum.test", daum_ip, port, "daum.test");
    d.users = &["kim@daum.test"];
    d.relay = format!(
        "smarthost = \"{sub}\"\nsmarthost_user = \"kim@daum.test\"\nsmarthost_password = \"{PASSWORD}\"\nsmarthost_verify_certificate = false\n"
    );
    let daum = TestServer::node(&d, None).await;
    submit(
        &daum,
        "kim@daum.test",
        "lee@naver.test",
        "via-smarthost",
        "x",
    )
    .await;
    eventually(20, "lee has it", || async {
        inbox_len(&naver, "lee@naver.test").await == 1
    })
    .await;
    let m = &naver.messages("lee@naver.test", "INBOX").await[0];
    // naver received it on submission, authenticated, over STARTTLS
    assert!(
        contains(m, "with ESMTPSA"),
        "{}",
        String::from_utf8_lossy(m)
    );
    queue_drains(&daum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_failure_is_temporary() {
    // The nameserver refuses to answer for a zone it does not serve (like a SERVFAIL):
    // retried later, no bounce.
    let t = TwoDomains::start().await;
    submit(
        &t.daum,
        "kim@daum.test",
        "lee@elsewhere.example",
        "no-dns",
        "x",
    )
    .await;
    eventually(30, "the attempt failed", || async {
        let q = t.daum.store.list_queue().await.unwrap();
        q.len() == 1 && q[0].attempts == 1 && !q[0].leased
    })
    .await;
    let q = t.daum.store.list_queue().await.unwrap();
    let r = &q[0].recipients[0];
    assert_eq!(r.status, RecipientStatus::Pending);
    assert_eq!(r.status_code.as_deref(), Some("4.4.3"), "{r:?}");
    assert!(
        r.last_error
            .as_deref()
            .unwrap()
            .contains("MX lookup of elsewhere.example"),
        "{r:?}"
    );
    assert_eq!(inbox_len(&t.daum, "kim@daum.test").await, 0);
}
