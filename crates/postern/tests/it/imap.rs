//! IMAP over TCP: raw transcripts for exact responses and edge cases, several sessions on one
//! mailbox, IDLE woken by SMTP delivery, and Python's imaplib as a real client library.

use std::time::{Duration, Instant};

use crate::support::{Imap, PASSWORD, Raw, TestServer, message};

#[tokio::test]
async fn greeting_login_and_capabilities() {
    let s = TestServer::start().await;
    let (mut c, greeting) = Imap::connect(s.imap()).await;
    assert!(
        greeting.starts_with("* OK [CAPABILITY IMAP4rev1 "),
        "{greeting}"
    );
    assert!(
        greeting.contains("STARTTLS") && greeting.contains("AUTH=PLAIN"),
        "{greeting}"
    );
    let r = c.cmd("SELECT INBOX").await;
    assert!(r.status.starts_with("BAD"), "{r:?}");
    let r = c.cmd("LOGIN lee@naver.test wrong").await;
    assert!(r.status.starts_with("NO [AUTHENTICATIONFAILED]"), "{r:?}");
    let r = c.cmd(&format!("LOGIN Lee@Naver.Test \"{PASSWORD}\"")).await;
    assert!(
        r.status.starts_with("OK [CAPABILITY ")
            && r.status.contains("UIDPLUS")
            && r.status.contains("MOVE"),
        "{r:?}"
    );
    let r = c.cmd("CAPABILITY").await;
    assert!(
        r.has("CONDSTORE") && r.has("SPECIAL-USE") && !r.has("STARTTLS"),
        "{r:?}"
    );
    // Clients use only what is advertised: every extension the README names.
    for cap in [
        "IMAP4rev2",
        "ESEARCH",
        "SEARCHRES",
        "LIST-EXTENDED",
        "LIST-STATUS",
        "SORT",
        "THREAD=ORDEREDSUBJECT",
        "THREAD=REFERENCES",
        "BINARY",
        "QUOTA",
        "COMPRESS=DEFLATE",
    ] {
        assert!(r.has(&format!(" {cap} ")), "{cap} missing: {r:?}");
    }
    // BINARY: APPEND takes a literal8, FETCH BINARY returns the decoded part.
    let r = c
        .cmd("APPEND INBOX ~{49}\r\nContent-Transfer-Encoding: base64\r\n\r\nYmluYXJ5IQ==")
        .await;
    assert!(r.status.starts_with("OK [APPENDUID "), "{r:?}");
    assert!(c.cmd("SELECT INBOX").await.ok());
    let r = c.cmd("FETCH 1 BINARY.PEEK[1]").await;
    assert!(r.has("BINARY[1] {7}\r\nbinary!"), "{r:?}");
    let r = c.cmd("LOGOUT").await;
    assert!(r.has("BYE") && r.ok());
}

#[tokio::test]
async fn authenticate_plain_with_and_without_initial_response() {
    use base64::Engine;
    let s = TestServer::start().await;
    let creds =
        base64::engine::general_purpose::STANDARD.encode(format!("\0lee@naver.test\0{PASSWORD}"));
    let (mut c, _) = Imap::connect(s.imap()).await;
    assert!(c.cmd(&format!("AUTHENTICATE PLAIN {creds}")).await.ok());
    let (mut c, _) = Imap::connect(s.imap()).await;
    let tag = c.next_tag();
    c.bump_tag();
    c.send(format!("{tag} AUTHENTICATE PLAIN\r\n").as_bytes())
        .await;
    assert_eq!(c.line().await.unwrap().trim_end(), "+");
    c.send(format!("{creds}\r\n").as_bytes()).await;
    assert!(c.until(&tag).await.ok());
}

#[tokio::test]
async fn before_login_commands_are_small() {
    let s = TestServer::start().await;
    // A literal of APPENDLIMIT's size is refused before it is sent...
    let (mut c, _) = Imap::connect(s.imap()).await;
    c.send(b"a LOGIN {25000000}\r\n").await;
    let l = c.line().await.unwrap();
    assert!(l.starts_with("a NO [TOOBIG]"), "{l}");
    // ... and one line that grows past the pre-login bound ends the connection, long before
    // the server would hold APPENDLIMIT of it.
    let mut long = b"b LOGIN ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 64 * 1024));
    c.send(&long).await;
    // (The BYE may be lost to the reset that closing with unread input sends.)
    let l = c.line().await;
    assert!(
        l.as_deref().is_none_or(|l| l.starts_with("* BYE [TOOBIG]")),
        "{l:?}"
    );
    if l.is_some() {
        assert_eq!(c.line().await, None, "closed");
    }
    // After login the full APPENDLIMIT applies again.
    let (mut c, _) = Imap::connect(s.imap()).await;
    assert!(
        c.cmd(&format!("LOGIN lee@naver.test \"{PASSWORD}\""))
            .await
            .ok()
    );
    let r = c
        .cmd(&format!("APPEND INBOX {{40000+}}\r\n{}", "y".repeat(40000)))
        .await;
    assert!(r.status.starts_with("OK [APPENDUID "), "{r:?}");
}

#[tokio::test]
async fn logindisabled_without_tls_for_remote_clients() {
    let s = TestServer::with_config("[auth]\nplaintext_on_loopback = false").await;
    let (mut c, greeting) = Imap::connect(s.imap()).await;
    assert!(
        greeting.contains("LOGINDISABLED") && !greeting.contains("AUTH=PLAIN"),
        "{greeting}"
    );
    let r = c.cmd(&format!("LOGIN lee@naver.test \"{PASSWORD}\"")).await;
    assert!(r.status.starts_with("NO [PRIVACYREQUIRED]"), "{r:?}");
}

#[tokio::test]
async fn select_fetch_store_search_expunge() {
    let s = TestServer::start().await;
    s.deliver("lee@naver.test", "one", "first body").await;
    s.deliver("lee@naver.test", "two", "second body").await;
    let mut c = Imap::login(s.imap(), "lee@naver.test").await;
    let r = c.cmd("SELECT INBOX").await;
    assert!(r.status.starts_with("OK [READ-WRITE]"), "{r:?}");
    assert!(
        r.has("2 EXISTS")
            && r.has("OK [UIDVALIDITY ")
            && r.has("OK [UIDNEXT 3]")
            && r.has("OK [UNSEEN 1]"),
        "{r:?}"
    );
    let r = c.cmd("FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.untagged.len(), 2);
    assert!(
        r.untagged[0].starts_with("1 FETCH (UID 1 FLAGS () RFC822.SIZE "),
        "{r:?}"
    );
    assert!(r.untagged[1].contains("ENVELOPE (\"Sun, 22 Nov 2026 10:00:00 +0900\" \"two\" ((\"Kim\" NIL \"kim\" \"daum.test\"))"), "{r:?}");
    // Rendered from the message or read from what the indexer stored: the same bytes.
    let structure = c.cmd("FETCH 1:2 (ENVELOPE BODYSTRUCTURE BODY)").await;
    assert!(
        structure.ok() && structure.untagged.len() == 2,
        "{structure:?}"
    );
    assert!(c.cmd("SEARCH SUBJECT one").await.ok()); // summarises the mailbox
    assert_eq!(
        c.cmd("FETCH 1:2 (ENVELOPE BODYSTRUCTURE BODY)")
            .await
            .untagged,
        structure.untagged
    );
    let r = c
        .cmd("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])")
        .await;
    assert!(
        r.untagged[0].contains("BODY[HEADER.FIELDS (SUBJECT)] {16}\r\nSubject: one\r\n\r\n"),
        "{r:?}"
    );
    assert!(
        r.untagged[0].contains("BODY[TEXT] {12}\r\nfirst body\r\n"),
        "{r:?}"
    );
    assert!(!r.untagged[0].contains("\\Seen"));
    // a non-peek fetch sets \Seen and reports it
    let r = c.cmd("FETCH 1 BODY[TEXT]").await;
    assert!(r.untagged[0].contains("FLAGS (\\Seen)"), "{r:?}");
    let r = c.cmd("SEARCH UNSEEN").await;
    assert!(r.has("SEARCH 2"), "{r:?}");
    let r = c.cmd("SEARCH SUBJECT TWO").await;
    assert!(r.has("SEARCH 2"), "{r:?}");
    let r = c.cmd("UID SEARCH BODY \"FIRST\"").await;
    assert!(r.has("SEARCH 1"), "{r:?}");
    // TEXT looks at headers and body
    let r = c.cmd("SEARCH TEXT \"second\"").await;
    assert!(r.has("SEARCH 2"), "{r:?}");
    let r = c.cmd("SEARCH TEXT kim@daum").await;
    assert!(r.has("SEARCH 1 2"), "{r:?}");
    // Text keys, sets and flags combined under OR/NOT, with and without a body key.
    for (query, expected) in [
        ("OR 2 SUBJECT one", "SEARCH 1 2"),
        ("NOT SUBJECT one 1:2", "SEARCH 2"),
        ("UID 2 OR SUBJECT nothing FROM kim", "SEARCH 2"),
        ("HEADER Subject \"\"", "SEARCH 1 2"),
        ("OR BODY first SUBJECT two", "SEARCH 1 2"),
        ("NOT OR 1 SUBJECT two", "SEARCH"),
        ("SEEN NOT BODY second", "SEARCH 1"),
        ("SENTON 22-Nov-2026 SUBJECT two", "SEARCH 2"),
    ] {
        let r = c.cmd(&format!("SEARCH {query}")).await;
        assert!(r.ok() && r.untagged == [expected], "{query}: {r:?}");
    }
    // One scan answers at most 64 text keys at once.
    let many = |n: usize| vec!["SUBJECT x"; n].join(" ");
    assert!(c.cmd(&format!("SEARCH {}", many(64))).await.ok());
    let r = c.cmd(&format!("SEARCH {}", many(65))).await;
    assert!(r.status.starts_with("NO [LIMIT]"), "{r:?}");
    // Keywords are case-insensitive: one spelling each.
    let r = c.cmd("STORE 2 +FLAGS (\\Deleted $Work $WORK $work)").await;
    assert!(r.has("2 FETCH (FLAGS (\\Deleted $Work))"), "{r:?}");
    let r = c.cmd("UID STORE 1 FLAGS.SILENT (\\Seen \\Flagged)").await;
    assert!(r.ok() && r.untagged.is_empty(), "{r:?}");
    let r = c.cmd("EXPUNGE").await;
    assert!(r.has("2 EXPUNGE"), "{r:?}");
    let r = c.cmd("FETCH 2 FLAGS").await;
    assert!(
        r.status.starts_with("BAD"),
        "sequence number beyond EXISTS: {r:?}"
    );
    let r = c.cmd("UID FETCH 1:* (FLAGS)").await;
    assert_eq!(r.untagged, vec!["1 FETCH (UID 1 FLAGS (\\Seen \\Flagged))"]);
    let r = c.cmd("FETCH 1 (RFC822.HEADER RFC822.TEXT)").await;
    assert!(r.ok(), "{r:?}");
    assert!(
        r.untagged[0].contains("RFC822.HEADER {")
            && r.untagged[0].contains("Subject: one\r\n")
            && r.untagged[0].ends_with("RFC822.TEXT {12}\r\nfirst body\r\n)"),
        "{r:?}"
    );
}

#[tokio::test]
async fn mailboxes_list_status_append_copy_move() {
    let s = TestServer::start().await;
    s.deliver("lee@naver.test", "one", "body").await;
    let mut c = Imap::login(s.imap(), "lee@naver.test").await;
    let r = c.cmd("LIST \"\" \"*\"").await;
    assert!(
        r.has("LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\""),
        "{r:?}"
    );
    assert!(r.has("LIST (\\HasNoChildren) \"/\" \"INBOX\""), "{r:?}");
    assert!(c.cmd("CREATE Projects/2026").await.ok());
    let r = c.cmd("LIST \"\" \"%\"").await;
    assert!(r.has("LIST (\\HasChildren) \"/\" \"Projects\""), "{r:?}");
    assert!(!r.has("2026"));
    let r = c.cmd("CREATE Projects/2026").await;
    assert!(r.status.starts_with("NO [ALREADYEXISTS]"), "{r:?}");
    assert!(c.cmd("RENAME Projects Work").await.ok());
    assert!(c.cmd("LIST \"\" \"Work/*\"").await.has("\"Work/2026\""));
    let r = c
        .cmd("APPEND Work/2026 (\\Seen) {23}\r\nSubject: appended\r\n\r\nhi")
        .await;
    // the literal needs a continuation first
    assert!(r.untagged.iter().any(|l| l.starts_with('+')), "{r:?}");
    assert!(r.status.starts_with("OK [APPENDUID "), "{r:?}");
    let r = c.cmd("APPEND Nowhere {5+}\r\nhello").await;
    assert!(r.status.starts_with("NO [TRYCREATE]"), "{r:?}");
    let r = c
        .cmd("STATUS Work/2026 (MESSAGES UNSEEN UIDNEXT SIZE)")
        .await;
    assert!(
        r.has("STATUS \"Work/2026\" (MESSAGES 1 UNSEEN 0 UIDNEXT 2 SIZE 23)"),
        "{r:?}"
    );
    assert!(c.cmd("SELECT INBOX").await.ok());
    let r = c.cmd("COPY 1 Archive").await;
    assert!(r.status.starts_with("OK [COPYUID "), "{r:?}");
    let r = c.cmd("UID MOVE 1 Trash").await;
    assert!(
        r.has("OK [COPYUID ") && r.has("1 EXPUNGE") && r.ok(),
        "{r:?}"
    );
    let r = c.cmd("STATUS Trash (MESSAGES)").await;
    assert!(r.has("(MESSAGES 1)"), "{r:?}");
    let r = c.cmd("DELETE INBOX").await;
    assert!(r.status.starts_with("NO"), "{r:?}");
    assert!(c.cmd("DELETE Work/2026").await.ok());
    assert!(c.cmd("SUBSCRIBE Work").await.ok());
    assert!(
        c.cmd("LSUB \"\" \"W*\"")
            .await
            .has("LSUB () \"/\" \"Work\"")
    );
}

#[tokio::test]
async fn two_sessions_see_each_others_changes() {
    let s = TestServer::start().await;
    s.deliver("lee@naver.test", "one", "body").await;
    s.deliver("lee@naver.test", "two", "body").await;
    let mut a = Imap::login(s.imap(), "lee@naver.test").await;
    let mut b = Imap::login(s.imap(), "lee@naver.test").await;
    assert!(a.cmd("SELECT INBOX").await.ok());
    assert!(b.cmd("SELECT INBOX").await.ok());
    assert!(a.cmd("STORE 1 +FLAGS (\\Flagged \\Deleted)").await.ok());
    let r = b.cmd("NOOP").await;
    assert!(
        r.has("1 FETCH (UID 1 FLAGS (\\Flagged \\Deleted))"),
        "{r:?}"
    );
    // A session is not told again about its own change.
    let r = a.cmd("NOOP").await;
    assert!(r.ok() && r.untagged.is_empty(), "{r:?}");
    assert!(a.cmd("EXPUNGE").await.ok());
    s.deliver("lee@naver.test", "three", "body").await;
    // FETCH may announce the new message but must not announce the expunge; NOOP does.
    // Meanwhile message 1 is gone from the store: NO for its sequence number, and a UID
    // FETCH leaves it out.
    let r = b.cmd("FETCH 1 (FLAGS)").await;
    assert!(!r.has("EXPUNGE") && r.has("3 EXISTS"), "{r:?}");
    assert!(r.status.starts_with("NO"), "{r:?}");
    let r = b.cmd("UID FETCH 1:* (FLAGS)").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(
        r.untagged,
        vec!["2 FETCH (UID 2 FLAGS ())", "3 FETCH (UID 3 FLAGS ())"]
    );
    let r = b.cmd("NOOP").await;
    assert_eq!(r.untagged, vec!["1 EXPUNGE"], "{r:?}");
    let r = b.cmd("UID FETCH 1:* (UID)").await;
    assert_eq!(r.untagged, vec!["1 FETCH (UID 2)", "2 FETCH (UID 3)"]);
}

#[tokio::test]
async fn idle_wakes_on_smtp_delivery_within_a_second() {
    let s = TestServer::start().await;
    let mut c = Imap::login(s.imap(), "lee@naver.test").await;
    assert!(c.cmd("SELECT INBOX").await.ok());
    let tag = c.next_tag();
    c.bump_tag();
    c.send(format!("{tag} IDLE\r\n").as_bytes()).await;
    assert!(c.line().await.unwrap().starts_with("+ "));
    let mut m = Raw::connect(s.smtp()).await;
    m.cmd("EHLO test", 250).await;
    m.begin_data("kim@daum.test", "lee@naver.test").await;
    m.send(message("wake", "up").as_bytes()).await;
    // Timed from the "250", when the message is stored: the SMTP session and its fsync, which
    // take seconds on a loaded machine, are not IDLE's doing. Watchers are woken before the
    // "250" goes out, so EXISTS may even come first.
    let (stored, (l, woke)) = tokio::join!(
        async {
            m.cmd(".", 250).await;
            Instant::now()
        },
        async { (c.line().await.unwrap(), Instant::now()) }
    );
    assert_eq!(l, "* 1 EXISTS");
    let late = woke.saturating_duration_since(stored);
    assert!(late < Duration::from_secs(1), "took {late:?} after the 250");
    c.send(b"DONE\r\n").await;
    assert!(c.until(&tag).await.ok());
}

#[tokio::test]
async fn condstore_and_qresync() {
    let s = TestServer::start().await;
    s.deliver("lee@naver.test", "one", "body").await;
    s.deliver("lee@naver.test", "two", "body").await;
    let mut c = Imap::login(s.imap(), "lee@naver.test").await;
    let r = c.cmd("SELECT INBOX (CONDSTORE)").await;
    let hms: u64 = r
        .untagged
        .iter()
        .find_map(|l| l.strip_prefix("OK [HIGHESTMODSEQ "))
        .and_then(|l| l.split(']').next())
        .unwrap()
        .parse()
        .unwrap();
    let r = c
        .cmd(&format!("STORE 1 (UNCHANGEDSINCE {hms}) +FLAGS (\\Seen)"))
        .await;
    assert!(r.has("MODSEQ ("), "{r:?}");
    let r = c
        .cmd(&format!(
            "STORE 1,2 (UNCHANGEDSINCE {hms}) +FLAGS (\\Answered)"
        ))
        .await;
    assert!(r.status.starts_with("OK [MODIFIED 1]"), "{r:?}");
    let r = c
        .cmd(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {hms})"))
        .await;
    assert_eq!(r.untagged.len(), 2, "{r:?}");
    assert!(c.cmd("STORE 2 +FLAGS (\\Deleted)").await.ok());
    assert!(c.cmd("EXPUNGE").await.ok());
    let uv = c.cmd("STATUS INBOX (UIDVALIDITY)").await.untagged[0]
        .split("UIDVALIDITY ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')')
        .to_string();
    let mut q = Imap::login(s.imap(), "lee@naver.test").await;
    assert!(q.cmd("ENABLE QRESYNC").await.has("ENABLED QRESYNC"));
    let r = q.cmd(&format!("SELECT INBOX (QRESYNC ({uv} {hms}))")).await;
    assert!(r.has("VANISHED (EARLIER) 2"), "{r:?}");
    assert!(r.has("1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ ("), "{r:?}");
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let s = TestServer::start().await;
    let mut c = Imap::login(s.imap(), "lee@naver.test").await;
    let r = c.cmd("FROBNICATE").await;
    assert!(r.status.starts_with("BAD"), "{r:?}");
    let r = c.cmd("SELECT \"unterminated").await;
    assert!(
        r.status.starts_with("BAD") || r.status.starts_with("NO"),
        "{r:?}"
    );
    // a synchronising literal beyond APPENDLIMIT is refused before it is sent
    let tag = c.next_tag();
    c.bump_tag();
    c.send(format!("{tag} APPEND INBOX {{999999999}}\r\n").as_bytes())
        .await;
    let r = c.until(&tag).await;
    assert!(r.status.starts_with("NO [TOOBIG]"), "{r:?}");
    assert!(c.cmd("NOOP").await.ok(), "the session goes on");
    let r = c.cmd("FETCH 1 FLAGS").await;
    assert!(r.status.starts_with("BAD"), "not selected: {r:?}");
}

#[tokio::test]
async fn imaps_implicit_tls() {
    let s = TestServer::start().await;
    let tcp = tokio::net::TcpStream::connect(s.imaps()).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(crate::support::insecure_client_config());
    let tls = connector
        .connect(
            rustls_pki_types::ServerName::try_from("mx.naver.test").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let mut c = Imap::over(Box::new(tls));
    assert!(c.line().await.unwrap().starts_with("* OK"));
    assert!(
        c.cmd(&format!("LOGIN lee@naver.test \"{PASSWORD}\""))
            .await
            .ok()
    );
}

const IMAPLIB_SCRIPT: &str = r#"
import imaplib, sys, email
port = int(sys.argv[1]); pw = sys.argv[2]
M = imaplib.IMAP4('127.0.0.1', port)
M.login('lee@naver.test', pw)
typ, boxes = M.list()
assert typ == 'OK' and any(b'"Sent"' in b for b in boxes), boxes
typ, data = M.select('INBOX')
assert typ == 'OK' and data == [b'1'], data
typ, data = M.fetch('1', '(RFC822)')
msg = email.message_from_bytes(data[0][1])
assert msg['Subject'] == 'hello imaplib', msg['Subject']
typ, data = M.search(None, 'FROM', '"kim@daum.test"')
assert data == [b'1'], data
M.store('1', '+FLAGS', '\\Flagged')
typ, data = M.fetch('1', '(FLAGS)')
assert b'\\Flagged' in data[0] and b'\\Seen' in data[0], data
typ, data = M.create('Folders/Sub')
assert typ == 'OK', data
typ, data = M.append('Folders/Sub', '(\\Seen)', None, b'Subject: appended\r\n\r\nbody\r\n')
assert typ == 'OK' and b'APPENDUID' in data[0], data
typ, data = M.copy('1', 'Archive')
assert typ == 'OK', data
typ, data = M.uid('MOVE', '1', 'Trash')
assert typ == 'OK', data
typ, data = M.status('Trash', '(MESSAGES)')
assert b'MESSAGES 1' in data[0], data
typ, data = M.select('Trash')
M.store('1', '+FLAGS', '\\Deleted')
typ, data = M.expunge()
assert data == [b'1'], data
M.close()
M.logout()
print('imaplib ok')
"#;

#[tokio::test]
async fn python_imaplib_client() {
    let s = TestServer::start().await;
    s.deliver("lee@naver.test", "hello imaplib", "body").await;
    let port = s.imap().port().to_string();
    let out = tokio::process::Command::new("python3")
        .args(["-c", IMAPLIB_SCRIPT, &port, PASSWORD])
        .output()
        .await
        .expect("python3 is needed for the imaplib test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("imaplib ok"),
        "{text}"
    );
}

#[tokio::test]
async fn esearch_searchres_sort_thread() {
    let s = TestServer::start().await;
    s.deliver("lee@naver.test", "banana", "x").await;
    s.deliver("lee@naver.test", "Re: apple", "y").await;
    s.deliver("lee@naver.test", "apple", "z").await;
    let mut c = Imap::login(s.imap(), "lee@naver.test").await;
    assert!(c.cmd("SELECT INBOX").await.ok());
    let r = c.cmd("SEARCH RETURN (MIN MAX COUNT ALL) ALL").await;
    let tag = format!("a{}", 3);
    assert!(
        r.has(&format!(
            "ESEARCH (TAG \"{tag}\") MIN 1 MAX 3 ALL 1:3 COUNT 3"
        )),
        "{r:?}"
    );
    let r = c.cmd("UID SEARCH RETURN (SAVE) SUBJECT apple").await;
    assert!(
        r.ok() && r.untagged.is_empty(),
        "SAVE alone returns nothing: {r:?}"
    );
    let r = c.cmd("FETCH $ (UID)").await;
    assert_eq!(
        r.untagged,
        vec!["2 FETCH (UID 2)", "3 FETCH (UID 3)"],
        "{r:?}"
    );
    let r = c.cmd("SEARCH NOT $").await;
    assert!(r.has("SEARCH 1"), "{r:?}");
    let r = c.cmd("SORT (SUBJECT) UTF-8 ALL").await;
    assert!(r.has("SORT 2 3 1"), "{r:?}");
    // sizes differ by the subject's length (it is in Subject and Message-ID)
    let r = c.cmd("SORT (REVERSE SIZE) UTF-8 ALL").await;
    assert!(r.has("SORT 2 1 3"), "{r:?}");
    // Newest arrival first; equal arrival times (same second) keep sequence order, also when
    // reversed. The three deliveries may or may not share a second, so derive the expectation.
    let r = c.cmd("UID FETCH 1:3 (INTERNALDATE)").await;
    let mut arrivals: Vec<(String, u32)> = r
        .untagged
        .iter()
        .map(|l| {
            let uid = l.split(' ').nth(3).unwrap().parse().unwrap();
            let date = l.split('"').nth(1).unwrap().to_string();
            (date, uid)
        })
        .collect();
    assert_eq!(arrivals.len(), 3, "{r:?}");
    arrivals.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let expected: Vec<String> = arrivals.iter().map(|(_, u)| u.to_string()).collect();
    let r = c.cmd("UID SORT (REVERSE ARRIVAL) UTF-8 ALL").await;
    assert_eq!(
        r.untagged,
        [format!("SORT {}", expected.join(" "))],
        "{r:?}"
    );
    let r = c.cmd("THREAD ORDEREDSUBJECT UTF-8 ALL").await;
    assert!(r.has("THREAD (1)(2 3)"), "{r:?}");
    let r = c.cmd("UID THREAD REFERENCES UTF-8 ALL").await;
    assert!(r.ok() && r.has("THREAD ("), "{r:?}");
    // RFC 5256: "THREAD" [SP 1*thread-list], so no trailing space when nothing matched.
    let r = c.cmd("THREAD REFERENCES UTF-8 SUBJECT nomatch").await;
    assert_eq!(r.untagged, ["THREAD"], "{r:?}");
    // RFC 5182 2.4: SAVE with MIN (and no ALL or COUNT) saves only the minimum.
    let r = c.cmd("SEARCH RETURN (SAVE MIN) SUBJECT apple").await;
    assert!(r.has(" MIN 2"), "{r:?}");
    let r = c.cmd("FETCH $ (UID)").await;
    assert_eq!(r.untagged, ["2 FETCH (UID 2)"], "{r:?}");
    // With message 1 expunged, sequence numbers and UIDs differ: `$` in SORT and THREAD
    // criteria names the saved messages, answered in sequence numbers.
    assert!(c.cmd("SEARCH RETURN (SAVE) SUBJECT apple").await.ok());
    assert!(c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").await.ok());
    assert!(c.cmd("EXPUNGE").await.ok());
    let r = c.cmd("SORT (SUBJECT) UTF-8 $").await;
    assert_eq!(r.untagged, ["SORT 1 2"], "{r:?}");
    let r = c.cmd("THREAD ORDEREDSUBJECT UTF-8 $").await;
    assert_eq!(r.untagged, ["THREAD (1 2)"], "{r:?}");
    // Elsewhere `$` is an ordinary atom: a keyword, a mailbox name.
    let r = c.cmd("STORE 1 +FLAGS ($)").await;
    assert!(r.has("1 FETCH (FLAGS ($))"), "{r:?}");
    assert!(c.cmd("CREATE $").await.ok());
    let r = c.cmd("COPY 2 $").await;
    assert!(r.status.starts_with("OK [COPYUID "), "{r:?}");
    let r = c.cmd("SEARCH CHARSET KOI8-R ALL").await;
    assert!(r.status.starts_with("NO [BADCHARSET"), "{r:?}");
}

#[tokio::test]
async fn list_extended_and_list_status() {
    let s = TestServer::start().await;
    s.deliver("lee@naver.test", "one", "x").await;
    let mut c = Imap::login(s.imap(), "lee@naver.test").await;
    assert!(c.cmd("CREATE Lists/Rust").await.ok());
    assert!(c.cmd("SUBSCRIBE Lists/Rust").await.ok());
    let r = c.cmd("LIST (SPECIAL-USE) \"\" \"*\"").await;
    assert!(
        r.has("\\Sent") && !r.has("\"INBOX\"") && !r.has("Lists"),
        "{r:?}"
    );
    let r = c.cmd("LIST (SUBSCRIBED) \"\" \"Lists/*\"").await;
    assert!(
        r.has("LIST (\\HasNoChildren \\Subscribed) \"/\" \"Lists/Rust\""),
        "{r:?}"
    );
    let r = c
        .cmd("LIST \"\" (INBOX Sent) RETURN (STATUS (MESSAGES UNSEEN))")
        .await;
    assert!(
        r.has("STATUS \"INBOX\" (MESSAGES 1 UNSEEN 1)")
            && r.has("STATUS \"Sent\" (MESSAGES 0 UNSEEN 0)"),
        "{r:?}"
    );
    let r = c.cmd("LIST (BOGUS) \"\" *").await;
    assert!(r.status.starts_with("BAD"), "{r:?}");
}

#[tokio::test]
async fn imap4rev2_mode() {
    let s = TestServer::start().await;
    s.deliver("lee@naver.test", "one", "x").await;
    let mut c = Imap::login(s.imap(), "lee@naver.test").await;
    assert!(c.cmd("ENABLE IMAP4rev2").await.has("ENABLED IMAP4REV2"));
    let r = c.cmd("SELECT INBOX").await;
    assert!(
        r.has("LIST () \"/\" \"INBOX\"") && !r.has("RECENT"),
        "{r:?}"
    );
    let r = c.cmd("SEARCH ALL").await;
    assert!(
        r.untagged
            .iter()
            .any(|l| l.starts_with("ESEARCH (TAG ") && l.ends_with("ALL 1")),
        "{r:?}"
    );
    assert!(c.cmd("CREATE \"한국어/편지함\"").await.ok());
    let r = c.cmd("LIST \"\" \"한국어/*\"").await;
    assert!(r.has("\"한국어/편지함\""), "UTF-8 names in rev2: {r:?}");
}

#[tokio::test]
async fn modified_utf7_for_rev1_clients() {
    let s = TestServer::start().await;
    let mut c = Imap::login(s.imap(), "lee@naver.test").await;
    // "한국어" in modified UTF-7
    assert!(c.cmd("CREATE &1VytbcW0-").await.ok());
    let r = c.cmd("LIST \"\" \"*\"").await;
    assert!(r.has("\"&1VytbcW0-\""), "{r:?}");
    let mut u = Imap::login(s.imap(), "lee@naver.test").await;
    // RFC 6855 4: APPEND's UTF8 (literal8) form is refused until UTF8=ACCEPT is enabled...
    let message = "Subject: 한국어\r\n\r\nhi\r\n";
    let append = format!("APPEND Drafts UTF8 (~{{{}+}}\r\n{message})", message.len());
    assert!(u.cmd(&append).await.status.starts_with("BAD"));
    assert!(u.cmd("ENABLE UTF8=ACCEPT").await.ok());
    assert!(u.cmd("LIST \"\" \"*\"").await.has("\"한국어\""));
    // ... and then stores the message as sent.
    let r = u.cmd(&append).await;
    assert!(r.status.starts_with("OK [APPENDUID "), "{r:?}");
    assert!(u.cmd("SELECT Drafts").await.ok());
    let r = u.cmd("FETCH 1 BODY.PEEK[]").await;
    assert!(r.has(message), "{r:?}");
}

#[tokio::test]
async fn quota_is_reported_and_enforced() {
    let s = TestServer::with_config("[limits]\nmailbox_quota = 2048").await;
    s.deliver("lee@naver.test", "one", &"x".repeat(900)).await;
    let mut c = Imap::login(s.imap(), "lee@naver.test").await;
    let r = c.cmd("GETQUOTAROOT INBOX").await;
    assert!(
        r.has("QUOTAROOT \"INBOX\" \"\"") && r.has("QUOTA \"\" (STORAGE 2 2)"),
        "{r:?}"
    );
    let r = c
        .cmd(&format!("APPEND INBOX {{1200+}}\r\n{}", "y".repeat(1200)))
        .await;
    assert!(r.status.starts_with("NO [OVERQUOTA]"), "{r:?}");
    assert!(
        c.cmd("SETQUOTA \"\" (STORAGE 100)")
            .await
            .status
            .starts_with("NO")
    );
    // SMTP: the account is not full yet, so one more small message is accepted...
    s.deliver("lee@naver.test", "two", &"x".repeat(900)).await;
    // ...and then it is: RCPT gets "mailbox full", a temporary failure.
    let mut m = crate::support::Raw::connect(s.smtp()).await;
    m.cmd("EHLO x", 250).await;
    m.cmd("MAIL FROM:<kim@daum.test>", 250).await;
    let r = m.cmd("RCPT TO:<lee@naver.test>", 452).await;
    assert!(r.text().starts_with("4.2.2"), "{r:?}");
}

/// SEARCH decodes Korean charsets and finds substrings inside words and across them, in
/// headers (TEXT, SUBJECT) and bodies, from what the indexer stored.
#[tokio::test]
async fn search_korean_charsets() {
    let s = TestServer::start().await;
    let mut c = Imap::login(s.imap(), "lee@naver.test").await;
    // "회의는 취소되었습니다" in EUC-KR, "내일 회의 안내" in ISO-2022-KR, and a
    // ks_c_5601-1987 encoded-word subject "회의 취소".
    let euc_kr: &[u8] = &[
        200, 184, 192, 199, 180, 194, 32, 195, 235, 188, 210, 181, 199, 190, 250, 189, 192, 180,
        207, 180, 217,
    ];
    let iso_2022_kr: &[u8] = &[
        27, 36, 41, 67, 14, 51, 59, 64, 79, 15, 32, 14, 72, 56, 64, 71, 15, 32, 14, 62, 72, 51, 59,
        15,
    ];
    let messages: [(&str, &str, &[u8]); 3] = [
        ("euc-kr", "Subject: a", euc_kr),
        ("iso-2022-kr", "Subject: b", iso_2022_kr),
        (
            "us-ascii",
            "Subject: =?ks_c_5601-1987?B?yLjAxyDD67zS?=",
            b"see the subject",
        ),
    ];
    for (charset, subject, body) in messages {
        let mut m = format!(
            "From: kim@daum.test\r\n{subject}\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        )
        .into_bytes();
        m.extend_from_slice(body);
        m.extend_from_slice(b"\r\n");
        let tag = c.next_tag();
        c.bump_tag();
        let mut cmd = format!("{tag} APPEND INBOX {{{}+}}\r\n", m.len()).into_bytes();
        cmd.extend_from_slice(&m);
        cmd.extend_from_slice(b"\r\n");
        c.send(&cmd).await;
        assert!(c.until(&tag).await.ok());
    }
    assert!(c.cmd("SELECT INBOX").await.ok());
    for (key, needle, expected) in [
        ("BODY", "회의", "SEARCH 1 2"),
        ("BODY", "회의는", "SEARCH 1"),
        ("BODY", "취소되었", "SEARCH 1"),
        ("BODY", "안내", "SEARCH 2"),
        ("BODY", "일 회의 안", "SEARCH 2"),
        ("BODY", "회의 취소", "SEARCH"),
        ("TEXT", "회의 취소", "SEARCH 3"),
        ("TEXT", "취소", "SEARCH 1 3"),
        ("SUBJECT", "취소", "SEARCH 3"),
        ("BODY", "SUBJ", "SEARCH 3"),
        ("BODY", "ub", "SEARCH 3"),
    ] {
        let r = c
            .cmd(&format!(
                "SEARCH CHARSET UTF-8 {key} {{{}+}}\r\n{needle}",
                needle.len()
            ))
            .await;
        assert!(r.ok() && r.untagged == [expected], "{key} {needle}: {r:?}");
    }
}

#[tokio::test]
async fn literal_minus_refuses_large_non_synchronising_literals() {
    let s = TestServer::with_config("[imap]\nliteral_minus = true").await;
    let (mut c, greeting) = Imap::connect(s.imap()).await;
    assert!(
        greeting.contains(" LITERAL- ") && !greeting.contains("LITERAL+"),
        "{greeting}"
    );
    // A small non-synchronising literal is fine.
    let r = c
        .cmd(&format!("LOGIN {{14+}}\r\nlee@naver.test \"{PASSWORD}\""))
        .await;
    assert!(r.ok(), "{r:?}");
    let r = c.cmd("CAPABILITY").await;
    assert!(r.has(" LITERAL- ") && !r.has("LITERAL+"), "{r:?}");

    // Over 4096: the bytes are read and dropped (not run as the commands they look like),
    // the command gets BAD [TOOBIG], and the session goes on.
    let evil = format!("Subject: x\r\n\r\n{}", "q1 CREATE Evil\r\n".repeat(320));
    assert!(evil.len() > 5000);
    let r = c
        .cmd(&format!("APPEND INBOX {{{}+}}\r\n{evil}", evil.len()))
        .await;
    assert!(r.status.starts_with("BAD [TOOBIG]"), "{r:?}");
    assert!(c.cmd("NOOP").await.ok());
    let r = c.cmd("LIST \"\" \"*\"").await;
    assert!(r.ok() && !r.has("Evil"), "{r:?}");
    assert!(s.messages("lee@naver.test", "INBOX").await.is_empty());

    // Exactly 4096 is allowed, and a large synchronising literal still is too.
    let head = "Subject: y\r\n\r\n";
    let at_limit = format!("{head}{}", "z".repeat(4096 - head.len()));
    assert_eq!(at_limit.len(), 4096);
    let r = c
        .cmd(&format!("APPEND INBOX {{4096+}}\r\n{at_limit}"))
        .await;
    assert!(r.status.starts_with("OK [APPENDUID "), "{r:?}");
    let tag = c.next_tag();
    c.bump_tag();
    c.send(format!("{tag} APPEND INBOX {{{}}}\r\n", evil.len()).as_bytes())
        .await;
    assert!(c.line().await.unwrap().starts_with("+ "));
    c.send(format!("{evil}\r\n").as_bytes()).await;
    let r = c.until(&tag).await;
    assert!(r.status.starts_with("OK [APPENDUID "), "{r:?}");
    assert_eq!(s.messages("lee@naver.test", "INBOX").await.len(), 2);
}

#[tokio::test]
async fn literal_plus_by_default() {
    let s = TestServer::start().await;
    let (_, greeting) = Imap::connect(s.imap()).await;
    assert!(
        greeting.contains(" LITERAL+ ") && !greeting.contains("LITERAL-"),
        "{greeting}"
    );
    let mut c = Imap::login(s.imap(), "lee@naver.test").await;
    let body = format!("Subject: x\r\n\r\n{}", "a".repeat(5000));
    let r = c
        .cmd(&format!("APPEND INBOX {{{}+}}\r\n{body}", body.len()))
        .await;
    assert!(r.status.starts_with("OK [APPENDUID "), "{r:?}");
}
