//! The submission role: AUTH before MAIL, sender ownership, remote recipients queued, TLS policy,
//! and failed-login rate limiting.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::support::{PASSWORD, Raw, TestServer, contains};

fn plain(user: &str, pass: &str) -> String {
    B64.encode(format!("\0{user}\0{pass}"))
}

fn tls_params() -> TlsParameters {
    TlsParameters::builder("mx.naver.test".into())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .unwrap()
}

fn email(from: &str, to: &[&str], subject: &str) -> Message {
    let mut b = Message::builder()
        .from(from.parse().unwrap())
        .subject(subject);
    for t in to {
        b = b.to(t.parse().unwrap());
    }
    b.body(format!("body of {subject}")).unwrap()
}

#[tokio::test]
async fn auth_required_and_sender_must_be_owned() {
    let s = TestServer::start().await;
    s.store
        .add_alias("sales@naver.test", "lee@naver.test")
        .await
        .unwrap();
    s.add_user("kim@naver.test").await;
    let mut c = Raw::connect(s.submission()).await;
    let r = c.cmd("EHLO client", 250).await;
    assert!(
        r.lines.iter().any(|l| l == "AUTH PLAIN LOGIN"),
        "loopback may AUTH before TLS: {r:?}"
    );
    c.cmd("MAIL FROM:<lee@naver.test>", 530).await;
    c.cmd(
        &format!("AUTH PLAIN {}", plain("lee@naver.test", "wrong")),
        535,
    )
    .await;
    c.cmd(
        &format!("AUTH PLAIN {}", plain("Lee@Naver.test", PASSWORD)),
        235,
    )
    .await;
    c.cmd(
        &format!("AUTH PLAIN {}", plain("lee@naver.test", PASSWORD)),
        503,
    )
    .await;
    let r = c.cmd("MAIL FROM:<kim@naver.test>", 553).await;
    assert!(r.text().starts_with("5.7.1"), "{r:?}");
    c.cmd("MAIL FROM:<>", 553).await;
    c.cmd("MAIL FROM:<sales@naver.test>", 250).await;
    c.cmd("RSET", 250).await;
    c.cmd("MAIL FROM:<lee+lists@naver.test>", 250).await;
    c.cmd("RCPT TO:<friend@daum.test>", 250).await;
    c.cmd("RCPT TO:<John.Doe@Daum.TEST>", 250).await;
    c.cmd("RCPT TO:<kim@naver.test>", 250).await;
    c.cmd("DATA", 354).await;
    c.send(b"Subject: no date or id\r\n\r\nhi\r\n.\r\n").await;
    c.expect(250).await;
    let q = s.store.list_queue().await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].sender.as_deref(), Some("lee+lists@naver.test"));
    let mut remote: Vec<&str> = q[0].recipients.iter().map(|r| r.address.as_str()).collect();
    remote.sort_unstable();
    // RFC 5321 2.4: a remote local part keeps its case; only the domain is folded.
    assert_eq!(remote, ["John.Doe@daum.test", "friend@daum.test"]);
    let queued = s.store.read_blob(q[0].blob).await.unwrap();
    assert!(
        !contains(&queued, "Return-Path:"),
        "queued copy gets Return-Path only at final delivery"
    );
    let m = &s.messages("kim@naver.test", "INBOX").await[0];
    assert!(contains(m, "with ESMTPA id"));
    // RFC 6409 8: the MSA added the missing Date and Message-ID
    assert!(
        contains(m, "\r\nDate: ") && contains(m, "\r\nMessage-ID: <"),
        "{}",
        String::from_utf8_lossy(m)
    );
    // Forwarding one's own mail elsewhere (an alias on the address) leaves the address, and
    // its +tag forms, one's own to send from.
    s.store
        .add_alias("lee@naver.test", "kim@naver.test")
        .await
        .unwrap();
    c.cmd("MAIL FROM:<lee@naver.test>", 250).await;
    c.cmd("RSET", 250).await;
    c.cmd("MAIL FROM:<Lee+x@naver.test>", 250).await;
    c.cmd("RSET", 250).await;
    c.cmd("MAIL FROM:<kim@naver.test>", 553).await;
}

#[tokio::test]
async fn auth_login_and_cancel() {
    let s = TestServer::start().await;
    let mut c = Raw::connect(s.submission()).await;
    c.cmd("EHLO client", 250).await;
    let r = c.cmd("AUTH LOGIN", 334).await;
    assert_eq!(r.text(), B64.encode("Username:"));
    c.cmd("*", 501).await;
    c.cmd("AUTH CRAM-MD5", 504).await;
    c.cmd("AUTH LOGIN", 334).await;
    c.cmd(&B64.encode("lee@naver.test"), 334).await;
    c.cmd(&B64.encode(PASSWORD), 235).await;
    c.cmd("MAIL FROM:<lee@naver.test>", 250).await;
}

#[tokio::test]
async fn no_auth_before_tls_for_non_local_clients() {
    // With loopback treated like any remote client, AUTH is hidden and refused until STARTTLS.
    let s = TestServer::with_config("[auth]\nplaintext_on_loopback = false").await;
    let mut c = Raw::connect(s.submission()).await;
    let r = c.cmd("EHLO client", 250).await;
    assert!(!r.lines.iter().any(|l| l.starts_with("AUTH")), "{r:?}");
    let r = c
        .cmd(
            &format!("AUTH PLAIN {}", plain("lee@naver.test", PASSWORD)),
            538,
        )
        .await;
    assert!(r.text().starts_with("5.7.11"));
    c.cmd("STARTTLS", 220).await;
    let mut c = c.start_tls().await;
    let r = c.cmd("EHLO client", 250).await;
    assert!(r.lines.iter().any(|l| l == "AUTH PLAIN LOGIN"), "{r:?}");
    c.cmd(
        &format!("AUTH PLAIN {}", plain("lee@naver.test", PASSWORD)),
        235,
    )
    .await;
}

#[tokio::test]
async fn failed_logins_are_rate_limited() {
    let s = TestServer::with_config("[auth]\nmax_failures = 3\nlockout = 60").await;
    let mut c = Raw::connect(s.submission()).await;
    c.cmd("EHLO client", 250).await;
    for _ in 0..3 {
        c.cmd(
            &format!("AUTH PLAIN {}", plain("lee@naver.test", "guess")),
            535,
        )
        .await;
    }
    // locked out: even the right password is refused, on a new connection too
    let r = c
        .cmd(
            &format!("AUTH PLAIN {}", plain("lee@naver.test", PASSWORD)),
            454,
        )
        .await;
    assert!(r.text().contains("Too many failed"), "{r:?}");
    let mut c2 = Raw::connect(s.submission()).await;
    c2.cmd("EHLO client", 250).await;
    c2.cmd(
        &format!("AUTH PLAIN {}", plain("lee@naver.test", PASSWORD)),
        454,
    )
    .await;
}

#[tokio::test]
async fn lettre_starttls_plain_and_login() {
    let s = TestServer::start().await;
    s.add_user("kim@naver.test").await;
    for mechanism in [Mechanism::Plain, Mechanism::Login] {
        let t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(s.submission().port())
            .tls(Tls::Required(tls_params()))
            .credentials(Credentials::new("lee@naver.test".into(), PASSWORD.into()))
            .authentication(vec![mechanism])
            .build();
        t.send(email(
            "lee@naver.test",
            &["kim@naver.test", "kim@daum.test"],
            "both",
        ))
        .await
        .unwrap();
    }
    assert_eq!(s.messages("kim@naver.test", "INBOX").await.len(), 2);
    assert_eq!(s.store.list_queue().await.unwrap().len(), 2);
}

#[tokio::test]
async fn lettre_implicit_tls_submissions() {
    let s = TestServer::start().await;
    let t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(s.submissions().port())
        .tls(Tls::Wrapper(tls_params()))
        .credentials(Credentials::new("lee@naver.test".into(), PASSWORD.into()))
        .build();
    t.send(email("lee@naver.test", &["lee@naver.test"], "to self"))
        .await
        .unwrap();
    let m = &s.messages("lee@naver.test", "INBOX").await[0];
    assert!(contains(m, "with ESMTPSA (TLSv1_3"));
    // wrong password over TLS is refused
    let t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(s.submissions().port())
        .tls(Tls::Wrapper(tls_params()))
        .credentials(Credentials::new("lee@naver.test".into(), "nope".into()))
        .build();
    assert!(
        t.send(email("lee@naver.test", &["lee@naver.test"], "x"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn implicit_tls_offers_auth_but_not_starttls() {
    let s = TestServer::with_config("[auth]\nplaintext_on_loopback = false").await;
    let mut c = Raw::connect_tls(s.submissions()).await;
    let r = c.cmd("EHLO client", 250).await;
    assert!(r.lines.iter().any(|l| l == "AUTH PLAIN LOGIN"), "{r:?}");
    assert!(!r.lines.iter().any(|l| l == "STARTTLS"), "{r:?}");
    c.cmd(
        &format!("AUTH PLAIN {}", plain("lee@naver.test", PASSWORD)),
        235,
    )
    .await;
}
