//! Interop with a real POP3 client program: fetchmail (Debian package `fetchmail`) downloading
//! what a user received by SMTP, keeping it on the server or not, over STLS and over implicit
//! TLS, into an MDA that appends to a file. `./test.sh` installs it; without it these tests
//! fail with a clear message rather than skip.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::{PASSWORD, TestServer, contains};

const USER: &str = "lee@naver.test";

/// A fetchmail set-up: a temporary HOME with the rc file, and the mailbox file the MDA fills.
struct Fetch {
    dir: tempfile::TempDir,
    rc: PathBuf,
    mbox: PathBuf,
}

impl Fetch {
    /// `implicit`: `ssl` on the pop3s port; otherwise STLS required on the pop3 port.
    fn new(s: &TestServer, implicit: bool, keep: bool) -> Fetch {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("delivered.mbox");
        let (port, tls) = if implicit {
            (s.pop3s().port(), "ssl sslproto 'TLS1.2+'")
        } else {
            // sslproto without ssl: STLS is mandatory (fetchmail 6.4).
            (s.pop3().port(), "sslproto 'TLS1.2+'")
        };
        let rc = format!(
            "set no syslog\n\
             poll 127.0.0.1 service {port} protocol POP3 auth password timeout 20\n\
             \tuser \"{USER}\" there with password \"{PASSWORD}\" is \"root\" here\n\
             \t{tls} no sslcertck\n\
             \tmda \"cat >> {mbox}\"\n\
             \t{keep}\n",
            mbox = mbox.display(),
            keep = if keep { "keep" } else { "nokeep" },
        );
        let path = dir.path().join("fetchmailrc");
        std::fs::write(&path, rc).unwrap();
        // fetchmail refuses an rc file others can read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        Fetch {
            dir,
            rc: path,
            mbox,
        }
    }

    /// Runs fetchmail once; returns its exit code (0: mail fetched, 1: no mail) and output.
    async fn run(&self) -> (i32, String) {
        let mut cmd = tokio::process::Command::new("fetchmail");
        cmd.arg("-v")
            .arg("--nodetach")
            .arg("-f")
            .arg(&self.rc)
            // Run as root, fetchmail takes its lock at /var/run/fetchmail.pid whatever HOME
            // and FETCHMAILHOME say, and refuses to run beside any other fetchmail on the
            // machine (another test suite's, say): the lock goes in this set-up's own directory.
            .arg("--pidfile")
            .arg(self.dir.path().join("fetchmail.pid"))
            .env("HOME", self.dir.path())
            .env("FETCHMAILHOME", self.dir.path())
            // Run as root, fetchmail would switch to the user named here for the MDA.
            .env("FETCHMAILUSER", "root")
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("fetchmail did not finish within 60 s"))
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run fetchmail ({e}); install it with `apt-get install fetchmail` \
                     or run ./test.sh, which does"
                )
            });
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let code = out.status.code().unwrap_or(-1);
        assert!(code == 0 || code == 1, "fetchmail failed ({code}):\n{text}");
        (code, text)
    }

    fn delivered(&self) -> Vec<u8> {
        std::fs::read(&self.mbox).unwrap_or_default()
    }
}

#[tokio::test]
async fn fetchmail_keep_over_stls_then_delete_over_implicit_tls() {
    let s = TestServer::with_config("[auth]\nplaintext_on_loopback = false").await;
    s.deliver(USER, "first fetch", "hello fetchmail\r\n..a dotted line")
        .await;
    s.deliver(USER, "second fetch", "more mail").await;

    // 1. STLS, keep: both messages delivered locally, both still on the server.
    let keep = Fetch::new(&s, false, true);
    let (code, text) = keep.run().await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("STLS"), "fetchmail did not use STLS:\n{text}");
    let got = keep.delivered();
    for needle in [
        "Subject: first fetch",
        "hello fetchmail",
        ".a dotted line",
        "Subject: second fetch",
        "more mail",
    ] {
        assert!(
            contains(&got, needle),
            "{needle:?} not delivered:\n{}",
            String::from_utf8_lossy(&got)
        );
    }
    assert_eq!(s.messages(USER, "INBOX").await.len(), 2);

    // 2. Again with keep: UIDL is stable across sessions, so fetchmail sees nothing new.
    s.deliver(USER, "third fetch", "newer").await;
    let (code, text) = keep.run().await;
    assert_eq!(code, 0, "{text}");
    let got = keep.delivered();
    let count = |needle: &str| {
        got.windows(needle.len())
            .filter(|w| *w == needle.as_bytes())
            .count()
    };
    assert_eq!(count("Subject: first fetch"), 1, "{text}");
    assert_eq!(count("Subject: third fetch"), 1, "{text}");
    assert_eq!(s.messages(USER, "INBOX").await.len(), 3);

    // 3. Implicit TLS, no keep: everything downloaded and deleted on the server.
    let fetch = Fetch::new(&s, true, false);
    let (code, text) = fetch.run().await;
    assert_eq!(code, 0, "{text}");
    let got = fetch.delivered();
    for needle in [
        "Subject: first fetch",
        "Subject: second fetch",
        "Subject: third fetch",
    ] {
        assert!(contains(&got, needle), "{needle:?} not delivered:\n{text}");
    }
    assert!(s.messages(USER, "INBOX").await.is_empty(), "{text}");
    let (code, text) = fetch.run().await;
    assert_eq!(code, 1, "no mail left:\n{text}");
}
