//! The admin CLI as a user runs it: the real binary, exit codes and messages.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub fn postern(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_postern"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Runs and asserts success; returns stdout.
pub fn ok(data: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = postern(data, args, stdin);
    assert!(
        out.status.success(),
        "postern {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs and asserts failure with `needle` in stderr.
fn fails(data: &Path, args: &[&str], needle: &str) {
    let out = postern(data, args, Some("pw\n"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "postern {args:?} should fail");
    assert!(
        err.contains(needle),
        "postern {args:?}: {err:?} does not mention {needle:?}"
    );
}

#[test]
fn domains_users_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["domain", "add", "Naver.Test"], None);
    fails(d, &["domain", "add", "naver.test"], "already exists");
    fails(d, &["domain", "add", "bad domain"], "not a valid domain");
    assert_eq!(ok(d, &["domain", "list"], None), "naver.test\n");
    ok(
        d,
        &["user", "add", "lee@naver.test", "--password-stdin"],
        Some("s3cret\n"),
    );
    fails(
        d,
        &["user", "add", "lee@naver.test", "--password-stdin"],
        "already exists",
    );
    fails(
        d,
        &["user", "add", "kim@daum.test", "--password-stdin"],
        "not hosted",
    );
    fails(
        d,
        &["user", "add", "not-an-address", "--password-stdin"],
        "not a valid address",
    );
    let out = postern(
        d,
        &["user", "add", "x@naver.test", "--password-stdin"],
        Some("\n"),
    );
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("must not be empty")
    );
    ok(
        d,
        &["user", "passwd", "lee@naver.test", "--password-stdin"],
        Some("n3w\n"),
    );
    fails(
        d,
        &["user", "passwd", "ghost@naver.test", "--password-stdin"],
        "not found",
    );
    ok(
        d,
        &["alias", "add", "sales@naver.test", "lee@naver.test"],
        None,
    );
    ok(d, &["alias", "add", "@naver.test", "lee@naver.test"], None);
    ok(
        d,
        &["alias", "add", "fwd@naver.test", "someone@elsewhere.test"],
        None,
    );
    fails(
        d,
        &["alias", "add", "sales@naver.test", "lee@naver.test"],
        "already exists",
    );
    fails(
        d,
        &["alias", "add", "x@naver.test", "ghost@naver.test"],
        "neither a user nor an alias",
    );
    fails(
        d,
        &["alias", "add", "x@daum.test", "lee@naver.test"],
        "not hosted",
    );
    assert_eq!(
        ok(d, &["alias", "list"], None),
        "@naver.test -> lee@naver.test\nfwd@naver.test -> someone@elsewhere.test\nsales@naver.test -> lee@naver.test\n"
    );
    fails(
        d,
        &["domain", "remove", "naver.test"],
        "still has 1 account",
    );
    assert_eq!(
        ok(d, &["alias", "remove", "sales@naver.test"], None),
        "alias sales@naver.test removed, with all its targets\n"
    );
    fails(d, &["alias", "remove", "sales@naver.test"], "not found");
    assert_eq!(ok(d, &["user", "list"], None), "lee@naver.test\n");
    fails(d, &["user", "list", "daum.test"], "not hosted");
    fails(d, &["alias", "list", "daum.test"], "not hosted");
    ok(d, &["user", "remove", "lee@naver.test"], None);
    assert_eq!(
        ok(
            d,
            &[
                "alias",
                "remove",
                "fwd@naver.test",
                "someone@elsewhere.test"
            ],
            None
        ),
        "alias fwd@naver.test -> someone@elsewhere.test removed\n"
    );
    ok(d, &["domain", "remove", "naver.test"], None);
    assert_eq!(ok(d, &["domain", "list"], None), "");
}

#[test]
fn removals_say_what_they_do_to_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["domain", "add", "naver.test"], None);
    for user in ["lee@naver.test", "kim@naver.test"] {
        ok(d, &["user", "add", user, "--password-stdin"], Some("pw\n"));
    }
    for (from, to) in [
        ("info@naver.test", "lee@naver.test"),
        ("grp@naver.test", "info@naver.test"),
        ("team@naver.test", "kim@naver.test"),
        ("out@naver.test", "John.Doe@Other.TEST"),
        ("out@naver.test", "LEE@naver.test"),
    ] {
        ok(d, &["alias", "add", from, to], None);
    }
    // A remote target keeps its local part's case; a hosted one is folded.
    assert_eq!(
        ok(d, &["alias", "list"], None),
        "grp@naver.test -> info@naver.test\ninfo@naver.test -> lee@naver.test\n\
         out@naver.test -> John.Doe@other.test\nout@naver.test -> lee@naver.test\n\
         team@naver.test -> kim@naver.test\n"
    );
    for to in ["John.Doe@other.test", "Lee@Naver.test"] {
        ok(d, &["alias", "remove", "out@naver.test", to], None);
    }
    // Removing info leaves grp leading nowhere: a warning says so.
    let out = postern(d, &["alias", "remove", "info@naver.test"], None);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: alias grp@naver.test -> info@naver.test now leads nowhere"),
        "{err}"
    );
    // Removing kim removes the alias onto kim with it, and says so.
    assert_eq!(
        ok(d, &["user", "remove", "kim@naver.test"], None),
        "user kim@naver.test removed, with all its mail\n\
         alias team@naver.test -> kim@naver.test removed with it\n"
    );
    assert_eq!(
        ok(d, &["alias", "list"], None),
        "grp@naver.test -> info@naver.test\n"
    );
}

#[test]
fn bad_config_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("postern.toml");
    std::fs::write(
        &cfg,
        "hostname = \"mx.test\"\n[listen]\nsmpt = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("smpt") && err.contains("postern.toml"),
        "{err}"
    );
    std::fs::write(&cfg, "[limits]\nmax_message_size = -1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_message_size"));
}

const MBOX: &str = "From kim@daum.test Sat Nov 21 12:00:00 2026\nFrom: kim@daum.test\nSubject: one\nStatus: RO\n\nfirst body\n>From the quoted line\n\nFrom MAILER-DAEMON Sat Nov 21 13:00:00 2026\nFrom: x@y.test\nSubject: two\n\nsecond\n";

#[test]
fn import_mbox_and_export_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["domain", "add", "naver.test"], None);
    ok(
        d,
        &["user", "add", "lee@naver.test", "--password-stdin"],
        Some("pw\n"),
    );
    let mbox = d.join("in.mbox");
    std::fs::write(&mbox, MBOX).unwrap();
    let out = ok(
        d,
        &[
            "import",
            "lee@naver.test",
            mbox.to_str().unwrap(),
            "--mailbox",
            "Old/2026",
        ],
        None,
    );
    assert!(out.contains("imported 2 message(s)"), "{out}");
    let exported = ok(
        d,
        &["export", "lee@naver.test", "--mailbox", "Old/2026"],
        None,
    );
    assert!(
        exported.starts_with("From MAILER-DAEMON Sat Nov 21 12:00:00 2026\n"),
        "{exported}"
    );
    assert!(
        exported.contains("Subject: one\n") && exported.contains("\n>From the quoted line\n"),
        "{exported}"
    );
    assert!(exported.contains("Status: RO"), "flags survive: {exported}");
    assert!(exported.contains("From MAILER-DAEMON Sat Nov 21 13:00:00 2026\n"));
    // re-import of the export gives the same messages
    let again = d.join("again.mbox");
    std::fs::write(&again, &exported).unwrap();
    ok(
        d,
        &[
            "import",
            "lee@naver.test",
            again.to_str().unwrap(),
            "--mailbox",
            "Copy",
        ],
        None,
    );
    assert_eq!(
        ok(d, &["export", "lee@naver.test", "--mailbox", "Copy"], None),
        exported
    );
    fails(
        d,
        &["export", "lee@naver.test", "--mailbox", "Nope"],
        "no mailbox",
    );
    fails(
        d,
        &["export", "ghost@naver.test"],
        "account ghost@naver.test not found",
    );
    // INBOX is named in any case, as in IMAP.
    assert_eq!(
        ok(d, &["export", "lee@naver.test", "--mailbox", "inbox"], None),
        ok(d, &["export", "lee@naver.test"], None)
    );
    fails(
        d,
        &["import", "lee@naver.test", "/nonexistent/file"],
        "cannot read",
    );
}

#[test]
fn import_dovecot_maildir() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["domain", "add", "naver.test"], None);
    ok(
        d,
        &["user", "add", "lee@naver.test", "--password-stdin"],
        Some("pw\n"),
    );
    let md = d.join("Maildir");
    for sub in ["cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    std::fs::write(
        md.join("new/1700000000.M1P1.host"),
        "Subject: unread\n\nnew mail\n",
    )
    .unwrap();
    std::fs::write(
        md.join("cur/1700000001.M2P1.host:2,FS"),
        "Subject: seen\n\nold mail\n",
    )
    .unwrap();
    std::fs::write(
        md.join(".Sent/cur/1700000002.M3P1.host:2,S"),
        "Subject: sent\n\nby me\n",
    )
    .unwrap();
    let out = ok(d, &["import", "lee@naver.test", md.to_str().unwrap()], None);
    assert!(out.contains("imported 3 message(s)"), "{out}");
    let inbox = ok(d, &["export", "lee@naver.test"], None);
    assert!(inbox.contains("Subject: unread") && inbox.contains("Subject: seen"));
    assert!(inbox.contains("X-Status: F"), "{inbox}");
    let sent = ok(d, &["export", "lee@naver.test", "--mailbox", "Sent"], None);
    assert!(sent.contains("Subject: sent"));
    fails(
        d,
        &[
            "import",
            "lee@naver.test",
            md.to_str().unwrap(),
            "--mailbox",
            "X",
        ],
        "--mailbox applies to mbox",
    );
}
