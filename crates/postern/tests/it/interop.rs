//! Interop with a real SMTP client program: swaks (Debian package `swaks`). The README's test
//! command installs it; without it these tests fail with a clear message rather than skip.

use std::process::Command;

use crate::support::{PASSWORD, TestServer, contains};

fn swaks(args: &[String]) -> (bool, String) {
    let out = Command::new("swaks").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run swaks ({e}); install it (`apt-get install swaks`) or run the README's test command, which does")
    });
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn swaks_mx_delivery_and_refusals() {
    let s = TestServer::start().await;
    let port = s.smtp().port().to_string();
    let base = [
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--from",
        "kim@daum.test",
        "--helo",
        "swaks.daum.test",
    ];
    let mut a = args(&base);
    a.extend(args(&[
        "--to",
        "lee@naver.test",
        "--header",
        "Subject: from swaks",
        "--body",
        "hello from swaks",
    ]));
    let (ok, out) = tokio::task::spawn_blocking(move || swaks(&a))
        .await
        .unwrap();
    assert!(ok, "{out}");
    let m = &s.messages("lee@naver.test", "INBOX").await[0];
    assert!(contains(m, "Subject: from swaks") && contains(m, "hello from swaks"));

    let mut a = args(&base);
    a.extend(args(&["--to", "nobody@naver.test"]));
    let (ok, out) = tokio::task::spawn_blocking(move || swaks(&a))
        .await
        .unwrap();
    assert!(!ok && out.contains("550 5.1.1"), "{out}");

    let mut a = args(&base);
    a.extend(args(&["--to", "victim@gmail.test"]));
    let (ok, out) = tokio::task::spawn_blocking(move || swaks(&a))
        .await
        .unwrap();
    assert!(!ok && out.contains("Relay access denied"), "{out}");
}

#[tokio::test]
async fn swaks_submission_starttls_and_implicit_tls() {
    let s = TestServer::start().await;
    for (port, tls) in [
        (s.submission().port(), "--tls"),
        (s.submissions().port(), "--tls-on-connect"),
    ] {
        let port = port.to_string();
        let a = args(&[
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            tls,
            "--auth",
            "PLAIN",
            "--auth-user",
            "lee@naver.test",
            "--auth-password",
            PASSWORD,
            "--from",
            "lee@naver.test",
            "--to",
            "friend@daum.test",
        ]);
        let (ok, out) = tokio::task::spawn_blocking(move || swaks(&a))
            .await
            .unwrap();
        assert!(ok, "{out}");
    }
    assert_eq!(s.store.list_queue().await.unwrap().len(), 2);
}
