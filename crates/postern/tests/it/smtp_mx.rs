//! The MX role: what any internet host may do on port 25, and every error path.

use std::time::Duration;

use crate::support::{Raw, TestServer, contains, message};

#[tokio::test]
async fn ehlo_advertises_extensions() {
    let s = TestServer::start().await;
    let mut c = Raw::connect(s.smtp()).await;
    let r = c.cmd("EHLO client.daum.test", 250).await;
    for ext in [
        "PIPELINING",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "STARTTLS",
        "CHUNKING",
    ] {
        assert!(r.lines.iter().any(|l| l == ext), "{ext} missing in {r:?}");
    }
    assert!(r.lines.iter().any(|l| l == "SIZE 26214400"), "{r:?}");
    assert!(
        !r.lines.iter().any(|l| l.starts_with("AUTH")),
        "MX must not offer AUTH: {r:?}"
    );
    c.cmd("QUIT", 221).await;
    assert!(c.closed().await);
}

#[tokio::test]
async fn delivers_with_trace_headers_tags_and_case() {
    let s = TestServer::start().await;
    let mut c = Raw::connect(s.smtp()).await;
    c.cmd("EHLO client.daum.test", 250).await;
    c.cmd("MAIL FROM:<kim@daum.test>", 250).await;
    c.cmd("RCPT TO:<LEE+news@Naver.Test>", 250).await;
    c.cmd("DATA", 354).await;
    c.send(message("first", "hello").as_bytes()).await;
    let r = c.cmd(".", 250).await;
    assert!(r.text().starts_with("2.0.0"), "{r:?}");
    let msgs = s.messages("lee@naver.test", "INBOX").await;
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert!(m.starts_with(b"Return-Path: <kim@daum.test>\r\nReceived: from client.daum.test ([127.0.0.1])\r\n\tby mx.naver.test (Postern) with ESMTP"), "{}", String::from_utf8_lossy(m));
    assert!(contains(m, "for <LEE+news@Naver.Test>;"));
    assert!(m.ends_with(b"Subject: first\r\nDate: Sun, 22 Nov 2026 10:00:00 +0900\r\nMessage-ID: <first@daum.test>\r\n\r\nhello\r\n"));
}

#[tokio::test]
async fn aliases_and_catch_all_deliver() {
    let s = TestServer::start().await;
    s.add_user("kim@naver.test").await;
    s.store
        .add_alias("team@naver.test", "lee@naver.test")
        .await
        .unwrap();
    s.store
        .add_alias("team@naver.test", "kim@naver.test")
        .await
        .unwrap();
    s.store.add_domain("other.test").await.unwrap();
    s.store
        .add_alias("@other.test", "kim@naver.test")
        .await
        .unwrap();
    let mut c = Raw::connect(s.smtp()).await;
    c.cmd("EHLO x", 250).await;
    c.cmd("MAIL FROM:<>", 250).await;
    c.cmd("RCPT TO:<team@naver.test>", 250).await;
    c.cmd("RCPT TO:<whoever@other.test>", 250).await;
    c.cmd("DATA", 354).await;
    c.send(message("team", "to the team").as_bytes()).await;
    c.cmd(".", 250).await;
    assert_eq!(s.messages("lee@naver.test", "INBOX").await.len(), 1);
    // kim is reached twice (alias and catch-all) but gets one copy
    let kim = s.messages("kim@naver.test", "INBOX").await;
    assert_eq!(kim.len(), 1);
    assert!(kim[0].starts_with(b"Return-Path: <>\r\n"));
    assert!(s.store.list_queue().await.unwrap().is_empty());
}

#[tokio::test]
async fn unknown_user_and_relay_are_refused() {
    let s = TestServer::start().await;
    let mut c = Raw::connect(s.smtp()).await;
    c.cmd("EHLO x", 250).await;
    c.cmd("MAIL FROM:<spammer@evil.test>", 250).await;
    let r = c.cmd("RCPT TO:<nobody@naver.test>", 550).await;
    assert!(r.text().starts_with("5.1.1"), "{r:?}");
    let r = c.cmd("RCPT TO:<victim@gmail.test>", 554).await;
    assert!(
        r.text().starts_with("5.7.1") && r.text().contains("Relay access denied"),
        "{r:?}"
    );
    // a source-routed or percent-hack address is not a way around it either
    c.cmd("RCPT TO:<@naver.test:victim@gmail.test>", 554).await;
    c.cmd("RCPT TO:<victim%gmail.test@naver.test>", 550).await;
    c.cmd("DATA", 554).await;
    assert!(s.store.list_queue().await.unwrap().is_empty());
    assert!(s.messages("lee@naver.test", "INBOX").await.is_empty());
}

#[tokio::test]
async fn sequence_errors() {
    let s = TestServer::start().await;
    let mut c = Raw::connect(s.smtp()).await;
    c.cmd("MAIL FROM:<a@b.test>", 503).await;
    c.cmd("EHLO x", 250).await;
    c.cmd("RCPT TO:<lee@naver.test>", 503).await;
    c.cmd("DATA", 503).await;
    c.cmd("MAIL FROM:<a@b.test>", 250).await;
    c.cmd("MAIL FROM:<a@b.test>", 503).await;
    c.cmd("DATA", 554).await;
    c.cmd("RSET", 250).await;
    c.cmd("RCPT TO:<lee@naver.test>", 503).await;
    c.cmd("NOOP", 250).await;
    c.cmd("VRFY lee", 252).await;
    c.cmd("EXPN staff", 502).await;
    c.cmd("FOO bar", 500).await;
    c.cmd("MAIL FROM:<not an address>", 501).await;
    c.cmd("MAIL FROM:<a@b.test> FROBNICATE=1", 555).await;
}

#[tokio::test]
async fn dot_stuffing_and_bare_lf() {
    let s = TestServer::start().await;
    let mut c = Raw::connect(s.smtp()).await;
    c.cmd("EHLO x", 250).await;
    c.begin_data("kim@daum.test", "lee@naver.test").await;
    // "..dots" is a stuffed ".dots"; a bare LF line ending is normalised to CRLF
    c.send(b"Subject: dots\r\n\r\n..dots\r\nbare\nend\r\n.\r\n")
        .await;
    c.expect(250).await;
    let m = &s.messages("lee@naver.test", "INBOX").await[0];
    assert!(
        m.ends_with(b"Subject: dots\r\n\r\n.dots\r\nbare\r\nend\r\n"),
        "{}",
        String::from_utf8_lossy(m)
    );
}

#[tokio::test]
async fn smtp_smuggling_is_not_an_end_of_data() {
    let s = TestServer::start().await;
    let mut c = Raw::connect(s.smtp()).await;
    c.cmd("EHLO x", 250).await;
    c.begin_data("kim@daum.test", "lee@naver.test").await;
    // A smuggled second message after "\n.\r\n" must not become a transaction of its own.
    c.send(b"Subject: outer\r\n\r\nhi\n.\r\nMAIL FROM:<admin@naver.test>\r\nRCPT TO:<lee@naver.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n").await;
    let r = c.expect(554).await;
    assert!(r.text().starts_with("5.6.0"), "{r:?}");
    c.cmd("NOOP", 250).await;
    assert!(s.messages("lee@naver.test", "INBOX").await.is_empty());
}

#[tokio::test]
async fn pipelining_and_bdat() {
    let s = TestServer::start().await;
    let mut c = Raw::connect(s.smtp()).await;
    c.cmd("EHLO x", 250).await;
    c.send(b"MAIL FROM:<kim@daum.test>\r\nRCPT TO:<lee@naver.test>\r\nRCPT TO:<nobody@naver.test>\r\nDATA\r\n").await;
    c.expect(250).await;
    c.expect(250).await;
    c.expect(550).await;
    c.expect(354).await;
    c.send(b"Subject: piped\r\n\r\nbody\r\n.\r\nMAIL FROM:<kim@daum.test>\r\nRCPT TO:<lee@naver.test>\r\nBDAT 20\r\nSubject: chunk\r\n\r\n12BDAT 6 LAST\r\n3456\r\n").await;
    c.expect(250).await;
    c.expect(250).await;
    c.expect(250).await;
    c.expect(250).await; // BDAT 20
    c.expect(250).await; // BDAT LAST: stored
    let msgs = s.messages("lee@naver.test", "INBOX").await;
    assert_eq!(msgs.len(), 2);
    assert!(msgs[0].ends_with(b"Subject: piped\r\n\r\nbody\r\n"));
    assert!(
        msgs[1].ends_with(b"Subject: chunk\r\n\r\n123456\r\n"),
        "{}",
        String::from_utf8_lossy(&msgs[1])
    );
    // BDAT without a transaction still consumes its chunk
    c.send(b"BDAT 5\r\nHELLONOOP\r\n").await;
    c.expect(503).await;
    c.expect(250).await;
}

#[tokio::test]
async fn size_limits() {
    let s = TestServer::with_config("[limits]\nmax_message_size = 1000\nmax_recipients = 2").await;
    let mut c = Raw::connect(s.smtp()).await;
    let r = c.cmd("EHLO x", 250).await;
    assert!(r.lines.iter().any(|l| l == "SIZE 1000"));
    let r = c.cmd("MAIL FROM:<kim@daum.test> SIZE=5000", 552).await;
    assert!(r.text().starts_with("5.3.4"));
    c.cmd("MAIL FROM:<kim@daum.test> SIZE=500", 250).await;
    c.cmd("RCPT TO:<lee@naver.test>", 250).await;
    c.cmd("RCPT TO:<lee+a@naver.test>", 250).await;
    c.cmd("RCPT TO:<lee+b@naver.test>", 452).await;
    c.cmd("DATA", 354).await;
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(70).repeat(30));
    c.send(big.replace("xx", "xx\r\n").as_bytes()).await;
    c.cmd(".", 552).await;
    assert!(s.messages("lee@naver.test", "INBOX").await.is_empty());
    c.cmd("NOOP", 250).await;
}

#[tokio::test]
async fn overlong_lines_and_garbage() {
    let s = TestServer::with_config("[limits]\nsmtp_max_errors = 5").await;
    let mut c = Raw::connect(s.smtp()).await;
    c.send(format!("EHLO {}\r\n", "a".repeat(10_000)).as_bytes())
        .await;
    c.expect(500).await;
    c.cmd("EHLO x", 250).await;
    c.send(b"\x00\xff\xfe garbage\r\n").await;
    c.expect(500).await;
    c.cmd("HELLO", 500).await;
    c.cmd("WHAT", 500).await;
    c.line("AGAIN").await;
    c.expect(500).await;
    let r = c.expect(421).await;
    assert!(r.text().contains("Too many errors"));
    assert!(c.closed().await);
}

#[tokio::test]
async fn postmaster_without_a_domain_is_accepted() {
    // RFC 5321 4.5.1. The host name (mx.naver.test) is not a hosted domain.
    let s = TestServer::start().await;
    let mut c = Raw::connect(s.smtp()).await;
    c.cmd("EHLO x", 250).await;
    c.cmd("MAIL FROM:<kim@daum.test>", 250).await;
    // Nobody is postmaster yet: an unknown user of a hosted domain, not a relay attempt.
    let r = c.cmd("RCPT TO:<Postmaster>", 550).await;
    assert!(r.text().contains("postmaster@naver.test"), "{r:?}");
    s.store
        .add_alias("postmaster@naver.test", "lee@naver.test")
        .await
        .unwrap();
    c.cmd("RCPT TO:<Postmaster>", 250).await;
    c.cmd("DATA", 354).await;
    c.send(message("for the postmaster", "hi").as_bytes()).await;
    c.cmd(".", 250).await;
    let inbox = s.messages("lee@naver.test", "INBOX").await;
    assert!(contains(&inbox[0], "for the postmaster"));
}

#[tokio::test]
async fn message_cut_off_before_the_dot_is_not_delivered() {
    let s = TestServer::with_config("[limits]\nmax_connections_per_ip = 1").await;
    let mut c = Raw::connect(s.smtp()).await;
    c.cmd("EHLO x", 250).await;
    c.begin_data("kim@daum.test", "lee@naver.test").await;
    c.send(b"Subject: cut\r\n\r\nhalf a message\r\n").await;
    drop(c);
    // The server notices EOF and ends the session. With one connection per IP, the next one
    // is greeted only once it has: then nothing may have been stored (a fixed pause would
    // check too early on a loaded machine, and pass whatever the session went on to do).
    let mut c = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let tcp = tokio::net::TcpStream::connect(s.smtp()).await.unwrap();
            let mut c = Raw {
                io: tokio::io::BufReader::new(Box::new(tcp)),
            };
            if c.reply().await.is_some_and(|r| r.code == 220) {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the cut-off session never ended");
    assert!(s.messages("lee@naver.test", "INBOX").await.is_empty());
    // and it still serves others
    c.cmd("EHLO x", 250).await;
}

#[tokio::test]
async fn idle_clients_time_out() {
    let s =
        TestServer::with_config("[limits]\nsmtp_command_timeout = 1\nsmtp_data_timeout = 1").await;
    let mut c = Raw::connect(s.smtp()).await;
    c.cmd("EHLO x", 250).await;
    let r = c.expect(421).await;
    assert!(r.text().starts_with("4.4.2"), "{r:?}");
    assert!(c.closed().await);
    // in the middle of DATA too
    let mut c = Raw::connect(s.smtp()).await;
    c.cmd("EHLO x", 250).await;
    c.begin_data("kim@daum.test", "lee@naver.test").await;
    c.send(b"Subject: slow\r\n").await;
    c.expect(421).await;
    assert!(s.messages("lee@naver.test", "INBOX").await.is_empty());
}

#[tokio::test]
async fn connection_limit_per_ip() {
    let s = TestServer::with_config("[limits]\nmax_connections_per_ip = 2").await;
    let _a = Raw::connect(s.smtp()).await;
    let _b = Raw::connect(s.smtp()).await;
    let tcp = tokio::net::TcpStream::connect(s.smtp()).await.unwrap();
    let mut c = crate::support::Raw {
        io: tokio::io::BufReader::new(Box::new(tcp)),
    };
    let r = c.expect(421).await;
    assert!(r.text().contains("Too many connections"));
}

#[tokio::test]
async fn starttls_then_mail_and_no_plaintext_injection() {
    let s = TestServer::start().await;
    let mut c = Raw::connect(s.smtp()).await;
    c.cmd("EHLO x", 250).await;
    // A NOOP pipelined after STARTTLS in plaintext must be discarded, not answered inside TLS.
    c.send(b"STARTTLS\r\nNOOP\r\n").await;
    c.expect(220).await;
    let mut c = c.start_tls().await;
    let r = c.cmd("EHLO x", 250).await;
    assert!(!r.lines.iter().any(|l| l == "STARTTLS"), "{r:?}");
    c.cmd("STARTTLS", 503).await;
    c.begin_data("kim@daum.test", "lee@naver.test").await;
    c.send(message("tls", "secret").as_bytes()).await;
    c.cmd(".", 250).await;
    let m = &s.messages("lee@naver.test", "INBOX").await[0];
    assert!(
        contains(m, "with ESMTPS (TLSv1_3"),
        "{}",
        String::from_utf8_lossy(m)
    );
}

#[tokio::test]
async fn lettre_client_delivers() {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let s = TestServer::start().await;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(s.smtp().port())
        .build();
    let email = Message::builder()
        .from("Kim <kim@daum.test>".parse().unwrap())
        .to("Lee <lee@naver.test>".parse().unwrap())
        .subject("안녕하세요")
        .body("한국어 본문입니다.".to_string())
        .unwrap();
    let response = transport.send(email).await.unwrap();
    assert_eq!(response.code().to_string(), "250");
    let m = &s.messages("lee@naver.test", "INBOX").await[0];
    assert!(
        contains(m, "Subject: =?utf-8?b?"),
        "{}",
        String::from_utf8_lossy(m)
    );
}

/// RFC 5321 6.3: a message that has already passed 50 hops is a loop and is refused.
#[tokio::test]
async fn a_looping_message_is_refused() {
    let s = TestServer::start().await;
    let mut c = Raw::connect(s.smtp()).await;
    c.cmd("EHLO client.daum.test", 250).await;
    for (hops, code) in [(49, 250), (50, 554)] {
        c.cmd("MAIL FROM:<kim@daum.test>", 250).await;
        c.cmd("RCPT TO:<lee@naver.test>", 250).await;
        c.cmd("DATA", 354).await;
        let trace = "Received: from a by b; Sun, 22 Nov 2026 10:00:00 +0900\r\n".repeat(hops);
        c.send(format!("{trace}{}", message("loop", "again")).as_bytes())
            .await;
        let r = c.cmd(".", code).await;
        if code == 554 {
            assert!(r.text().starts_with("5.4.6"), "{r:?}");
        }
    }
    assert_eq!(s.messages("lee@naver.test", "INBOX").await.len(), 1);
}
