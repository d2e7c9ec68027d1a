//! Interop with a real IMAP client program: mbsync (Debian package `isync`) synchronising a
//! local Maildir with Postern in both directions. `./test.sh` installs it; without it these
//! tests fail with a clear message rather than skip.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{Imap, PASSWORD, TestServer, contains, messages_in};

const USER: &str = "lee@naver.test";

/// A local Maildir tree plus the mbsync config that syncs it with a test server.
struct Sync {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Sync {
    /// `auth` is the `AuthMechs` value (LOGIN is built in; PLAIN goes through Cyrus SASL).
    fn new(s: &TestServer, auth: &str) -> Sync {
        let dir = tempfile::tempdir().unwrap();
        let mail = dir.path().join("mail");
        std::fs::create_dir_all(&mail).unwrap();
        // isync 1.5 renamed SSLType to TLSType; older releases (Debian 12 ships 1.4.4) only
        // know SSLType, newer ones still accept it with a deprecation warning.
        let tls_key = if mbsync_version() >= (1, 5) {
            "TLSType"
        } else {
            "SSLType"
        };
        let config = format!(
            "IMAPAccount postern\n\
             Host 127.0.0.1\n\
             Port {port}\n\
             User {USER}\n\
             Pass \"{PASSWORD}\"\n\
             {tls_key} None\n\
             AuthMechs {auth}\n\
             Timeout 20\n\
             \n\
             IMAPStore remote\n\
             Account postern\n\
             \n\
             MaildirStore local\n\
             Path {mail}/\n\
             Inbox {mail}/INBOX\n\
             SubFolders Verbatim\n\
             \n\
             Channel postern\n\
             Far :remote:\n\
             Near :local:\n\
             Patterns *\n\
             Create Both\n\
             Expunge Both\n\
             SyncState *\n",
            port = s.imap().port(),
            mail = mail.display(),
        );
        let path = dir.path().join("mbsyncrc");
        std::fs::write(&path, config).unwrap();
        Sync { dir, config: path }
    }

    /// The local folder for mailbox `name` (INBOX or a Verbatim subfolder path).
    fn folder(&self, name: &str) -> PathBuf {
        self.dir.path().join("mail").join(name)
    }

    /// Runs `mbsync -a` with a timeout; panics with its output unless it succeeds.
    async fn run(&self) -> String {
        let mut cmd = tokio::process::Command::new("mbsync");
        cmd.arg("-V")
            .arg("-c")
            .arg(&self.config)
            .arg("-a")
            .env("HOME", self.dir.path())
            .kill_on_drop(true);
        let start = Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("mbsync did not finish within 60 s"))
            .unwrap_or_else(|e| panic!("{}", missing(&e)));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "mbsync failed ({}) after {:?}:\n{text}",
            out.status,
            start.elapsed()
        );
        text
    }
}

fn missing(e: &std::io::Error) -> String {
    format!(
        "cannot run mbsync ({e}); install it with `apt-get install isync` or run ./test.sh, which does"
    )
}

/// `mbsync --version` as (major, minor); fails the test with a hint when mbsync is missing.
fn mbsync_version() -> (u32, u32) {
    let out = std::process::Command::new("mbsync")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{}", missing(&e)));
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.split_whitespace().last().unwrap_or("");
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// One message file in a local Maildir folder.
#[derive(Clone)]
struct MaildirMsg {
    path: PathBuf,
    /// The flag letters after ":2," (empty for files in new/).
    flags: String,
    data: Vec<u8>,
}

impl std::fmt::Debug for MaildirMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaildirMsg")
            .field("path", &self.path)
            .field("flags", &self.flags)
            .field("data", &String::from_utf8_lossy(&self.data))
            .finish()
    }
}

impl MaildirMsg {
    fn has(&self, needle: &str) -> bool {
        contains(&self.data, needle)
    }

    /// The message as the server should hold it: mbsync stores Maildir files with LF line
    /// ends and adds an `X-TUID:` header of its own, so drop that and go back to CRLF.
    fn as_on_server(&self) -> Vec<u8> {
        let text = String::from_utf8_lossy(&self.data);
        let mut out = String::new();
        for line in text.split_inclusive('\n') {
            if line.starts_with("X-TUID: ") {
                continue;
            }
            out.push_str(line.strip_suffix('\n').unwrap_or(line));
            if line.ends_with('\n') {
                out.push_str("\r\n");
            }
        }
        out.into_bytes()
    }
}

/// The messages of a Maildir folder (cur/ and new/).
fn maildir(folder: &Path) -> Vec<MaildirMsg> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(rd) = std::fs::read_dir(folder.join(sub)) else {
            continue;
        };
        for e in rd {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let flags = name
                .rsplit_once(":2,")
                .map(|(_, f)| f.to_string())
                .unwrap_or_default();
            let data = std::fs::read(&path).unwrap();
            out.push(MaildirMsg { path, flags, data });
        }
    }
    out
}

/// The single local message containing `needle`.
fn find(folder: &Path, needle: &str) -> MaildirMsg {
    let all = maildir(folder);
    let hits: Vec<_> = all.iter().filter(|m| m.has(needle)).cloned().collect();
    assert_eq!(
        hits.len(),
        1,
        "expected one message with {needle:?} in {}: {all:#?}",
        folder.display()
    );
    hits.into_iter().next().unwrap()
}

/// Sets the Maildir flags of a local message by renaming it into cur/ (as a MUA does).
fn set_local_flags(m: &MaildirMsg, flags: &str) {
    let name = m.path.file_name().unwrap().to_string_lossy().into_owned();
    let base = name.split_once(":2,").map_or(name.as_str(), |(b, _)| b);
    let folder = m.path.parent().unwrap().parent().unwrap();
    std::fs::rename(
        &m.path,
        folder.join("cur").join(format!("{base}:2,{flags}")),
    )
    .unwrap();
}

/// Drops a new message into a local Maildir folder the way a local MUA / MDA would.
fn add_local(folder: &Path, unique: &str, data: &str) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(folder.join(sub)).unwrap();
    }
    let tmp = folder.join("tmp").join(unique);
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, folder.join("new").join(unique)).unwrap();
}

/// Server-side flags of every message in `mailbox`, with the message bytes.
async fn server_messages(s: &TestServer, mailbox: &str) -> Vec<(Vec<String>, Vec<u8>)> {
    let creds = s
        .store
        .credentials(USER)
        .await
        .unwrap()
        .expect("no such user");
    let mb = s
        .store
        .mailbox_by_name(creds.id, mailbox)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no mailbox {mailbox:?} on the server"));
    let mut out = Vec::new();
    for m in s.store.list_messages(mb.id).await.unwrap() {
        out.push((m.flags.names(), s.store.read_blob(m.blob).await.unwrap()));
    }
    out
}

fn server_find<'a>(msgs: &'a [(Vec<String>, Vec<u8>)], needle: &str) -> &'a [String] {
    let hits: Vec<_> = msgs.iter().filter(|(_, d)| contains(d, needle)).collect();
    assert_eq!(hits.len(), 1, "expected one server message with {needle:?}");
    &hits[0].0
}

#[tokio::test]
async fn mbsync_two_way_sync() {
    let started = Instant::now();
    let s = TestServer::start().await;
    s.deliver(USER, "alpha", "alpha body text").await;
    s.deliver(USER, "beta", "beta body text").await;
    s.deliver(USER, "gamma", "gamma body text").await;
    let sync = Sync::new(&s, "LOGIN");

    // 1. First sync pulls everything down.
    sync.run().await;
    let inbox = sync.folder("INBOX");
    let local = maildir(&inbox);
    assert_eq!(local.len(), 3, "{local:#?}");
    let server = messages_in(&s.store, USER, "INBOX").await;
    for subject in ["alpha", "beta", "gamma"] {
        let m = find(&inbox, &format!("Subject: {subject}\n"));
        assert!(m.has(&format!("{subject} body text")), "{m:?}");
        assert!(m.flags.is_empty(), "no flags yet: {m:?}");
        // byte-for-byte the stored message
        let stored = server
            .iter()
            .find(|d| contains(d, &format!("Subject: {subject}\r\n")))
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&m.as_on_server()),
            String::from_utf8_lossy(stored),
            "local copy of {subject} differs"
        );
    }
    // the other server mailboxes exist locally as Maildir folders
    for name in ["Sent", "Trash", "Archive"] {
        assert!(
            sync.folder(name).join("cur").is_dir(),
            "local folder {name} missing"
        );
    }

    // 2. Local changes: read alpha, delete beta, file a new message into Archive and
    //    into a brand-new local folder.
    set_local_flags(&find(&inbox, "Subject: alpha"), "S");
    std::fs::remove_file(find(&inbox, "Subject: beta").path).unwrap();
    add_local(
        &sync.folder("Archive"),
        "1700000000.P1Q1.localhost",
        "From: Lee <lee@naver.test>\r\nTo: Park <park@daum.test>\r\nSubject: filed locally\r\nDate: Mon, 23 Nov 2026 09:00:00 +0900\r\nMessage-ID: <filed@naver.test>\r\n\r\nwritten offline\r\n",
    );
    add_local(
        &sync.folder("Projects"),
        "1700000001.P1Q2.localhost",
        "From: Lee <lee@naver.test>\r\nSubject: new folder\r\n\r\nin a folder the server has not seen\r\n",
    );
    sync.run().await;

    let server = server_messages(&s, "INBOX").await;
    assert_eq!(server.len(), 2, "beta is expunged on the server");
    assert!(
        server_find(&server, "Subject: alpha").contains(&"\\Seen".to_string()),
        "alpha is \\Seen on the server"
    );
    assert!(server_find(&server, "Subject: gamma").is_empty());
    assert!(!server.iter().any(|(_, d)| contains(d, "Subject: beta")));
    let archive = server_messages(&s, "Archive").await;
    assert_eq!(archive.len(), 1);
    assert!(contains(&archive[0].1, "written offline"));
    let projects = server_messages(&s, "Projects").await;
    assert_eq!(projects.len(), 1);
    assert!(contains(
        &projects[0].1,
        "in a folder the server has not seen"
    ));

    // A raw IMAP session agrees.
    let mut c = Imap::login(s.imap(), USER).await;
    let r = c.cmd("SELECT INBOX").await;
    assert!(r.ok() && r.has("2 EXISTS"), "{r:?}");
    let r = c.cmd("UID SEARCH SEEN").await;
    assert!(r.has("SEARCH 1") && !r.has("SEARCH 1 "), "{r:?}");
    let r = c.cmd("STATUS Projects (MESSAGES)").await;
    assert!(r.has("(MESSAGES 1)"), "{r:?}");

    // 3. Server changes: a new delivery, gamma flagged over IMAP, alpha marked unread.
    s.deliver(USER, "delta", "delta body text").await;
    let r = c.cmd("UID SEARCH SUBJECT gamma").await;
    let gamma_uid = r
        .untagged
        .iter()
        .find_map(|l| l.strip_prefix("SEARCH "))
        .unwrap_or_else(|| panic!("{r:?}"))
        .trim()
        .to_string();
    let r = c
        .cmd(&format!(
            "UID STORE {gamma_uid} +FLAGS (\\Flagged \\Answered)"
        ))
        .await;
    assert!(r.ok(), "{r:?}");
    let r = c.cmd("UID STORE 1 -FLAGS (\\Seen)").await;
    assert!(r.ok(), "{r:?}");
    assert!(c.cmd("LOGOUT").await.ok());
    sync.run().await;

    let local = maildir(&inbox);
    assert_eq!(local.len(), 3, "{local:#?}");
    let delta = find(&inbox, "Subject: delta");
    assert!(delta.has("delta body text"), "{delta:?}");
    assert_eq!(find(&inbox, "Subject: gamma").flags, "FR");
    assert_eq!(find(&inbox, "Subject: alpha").flags, "");
    assert!(!local.iter().any(|m| m.has("Subject: beta")));

    // 4. Nothing changed: another sync is a no-op on both sides.
    sync.run().await;
    assert_eq!(maildir(&inbox).len(), 3);
    assert_eq!(server_messages(&s, "INBOX").await.len(), 3);
    assert_eq!(server_messages(&s, "Archive").await.len(), 1);
    eprintln!("mbsync round trip took {:?}", started.elapsed());
}

#[tokio::test]
async fn mbsync_nested_folders_flags_and_auth_plain() {
    let s = TestServer::start().await;
    let mut c = Imap::login(s.imap(), USER).await;
    assert!(c.cmd("CREATE Work/2026").await.ok());
    let msg = "From: Kim <kim@daum.test>\r\nSubject: draft plan\r\n\r\nnested folder body\r\n";
    let r = c
        .cmd(&format!(
            "APPEND Work/2026 (\\Flagged \\Draft) {{{}+}}\r\n{msg}",
            msg.len()
        ))
        .await;
    assert!(r.ok(), "{r:?}");
    let sync = Sync::new(&s, "PLAIN");
    sync.run().await;

    // the hierarchy maps onto nested local folders; the parent exists too
    let m = find(&sync.folder("Work/2026"), "Subject: draft plan");
    assert_eq!(m.flags, "DF", "{m:?}");
    assert!(m.has("nested folder body"));
    assert!(sync.folder("Work").join("cur").is_dir());

    // a deeper folder made locally is created on the server with its message and flags
    add_local(
        &sync.folder("Work/2027/Q1"),
        "1700000002.P1Q3.localhost:2,FS",
        "From: Lee <lee@naver.test>\nSubject: deep\n\nthree levels down\n",
    );
    sync.run().await;
    let deep = server_messages(&s, "Work/2027/Q1").await;
    assert_eq!(deep.len(), 1);
    assert_eq!(deep[0].0, vec!["\\Seen", "\\Flagged"]);
    // LF line ends locally, CRLF on the server
    assert!(
        contains(&deep[0].1, "Subject: deep\r\n")
            && contains(&deep[0].1, "\r\n\r\nthree levels down\r\n"),
        "{}",
        String::from_utf8_lossy(&deep[0].1)
    );
    let r = c.cmd("LIST \"\" \"Work/*\"").await;
    assert!(r.has("\"Work/2026\"") && r.has("\"Work/2027/Q1\""), "{r:?}");

    // the server moves the draft out; the local copy follows
    assert!(c.cmd("SELECT Work/2026").await.ok());
    let r = c.cmd("MOVE 1 Archive").await;
    assert!(r.ok(), "{r:?}");
    sync.run().await;
    assert!(maildir(&sync.folder("Work/2026")).is_empty());
    let m = find(&sync.folder("Archive"), "Subject: draft plan");
    assert_eq!(m.flags, "DF", "{m:?}");
}
