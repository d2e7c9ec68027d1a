//! Unit tests of the embedded backend against a real database in a temp dir.

use super::*;
use crate::Store;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_embedded(dir.path()).unwrap();
    (dir, store)
}

fn delivery(local: Vec<AccountId>, remote: Vec<&str>, body: &str) -> Delivery {
    Delivery {
        sender: Some("kim@daum.test".into()),
        local,
        local_data: format!("Return-Path: <kim@daum.test>\r\n\r\n{body}").into_bytes(),
        remote: remote.into_iter().map(String::from).collect(),
        remote_data: format!("\r\n{body}").into_bytes(),
        received: 1_700_000_000,
    }
}

#[tokio::test]
async fn domains_accounts_aliases_lifecycle() {
    let (_d, s) = store();
    s.add_domain("naver.test").await.unwrap();
    assert!(matches!(
        s.add_domain("naver.test").await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.add_account("lee@nowhere.test", "h").await,
        Err(StoreError::NotFound(_))
    ));
    let lee = s.add_account("lee@naver.test", "hash1").await.unwrap();
    assert!(matches!(
        s.add_account("lee@naver.test", "h").await,
        Err(StoreError::AlreadyExists(_))
    ));
    let names: Vec<String> = s
        .list_mailboxes(lee)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(
        names,
        ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    );
    s.set_password("lee@naver.test", "hash2").await.unwrap();
    assert_eq!(
        s.credentials("lee@naver.test")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "hash2"
    );
    assert!(s.credentials("nobody@naver.test").await.unwrap().is_none());

    s.add_alias("sales@naver.test", "lee@naver.test")
        .await
        .unwrap();
    s.add_alias("@naver.test", "lee@naver.test").await.unwrap();
    let l = s.lookup_address("sales@naver.test").await.unwrap();
    assert_eq!(
        l,
        AddressLookup {
            account: None,
            alias_targets: vec!["lee@naver.test".into()]
        }
    );
    assert_eq!(
        s.lookup_address("lee@naver.test").await.unwrap().account,
        Some(lee)
    );
    assert!(matches!(
        s.remove_domain("naver.test").await,
        Err(StoreError::Conflict(_))
    ));
    s.remove_alias("sales@naver.test", None).await.unwrap();
    assert!(matches!(
        s.remove_alias("sales@naver.test", None).await,
        Err(StoreError::NotFound(_))
    ));
    s.remove_account("lee@naver.test").await.unwrap();
    // the catch-all pointed at lee: removed with the account
    assert!(s.list_aliases(None).await.unwrap().is_empty());
    s.remove_domain("naver.test").await.unwrap();
    assert!(s.list_domains().await.unwrap().is_empty());
}

#[tokio::test]
async fn deliver_assigns_uids_and_modseqs_and_queues_remote() {
    let (_d, s) = store();
    s.add_domain("naver.test").await.unwrap();
    let a = s.add_account("a@naver.test", "h").await.unwrap();
    let b = s.add_account("b@naver.test", "h").await.unwrap();
    let r1 = s
        .deliver(delivery(vec![a, b], vec!["x@daum.test"], "one"))
        .await
        .unwrap();
    assert_eq!(r1.local_uids, [1, 1]);
    assert!(r1.queue_id.is_some());
    let r2 = s.deliver(delivery(vec![a], vec![], "two")).await.unwrap();
    assert_eq!(
        r2,
        DeliveryReceipt {
            local_uids: vec![2],
            queue_id: None
        }
    );
    let inbox = s
        .list_mailboxes(a)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "INBOX")
        .unwrap();
    assert_eq!((inbox.messages, inbox.uid_next), (2, 3));
    let msgs = s.list_messages(inbox.id).await.unwrap();
    assert_eq!(msgs.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 2]);
    assert!(msgs[0].modseq < msgs[1].modseq);
    let body = s.read_blob(msgs[1].blob).await.unwrap();
    assert!(body.ends_with(b"two"));
    let q = s.list_queue().await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].recipients[0].address, "x@daum.test");
    assert_eq!(q[0].recipients[0].status, RecipientStatus::Pending);
    assert_eq!(s.read_blob(q[0].blob).await.unwrap(), b"\r\none");
    // identical bytes to two accounts share one blob
    let bi = s
        .list_mailboxes(b)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "INBOX")
        .unwrap();
    assert_eq!(s.list_messages(bi.id).await.unwrap()[0].blob, msgs[0].blob);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_are_all_stored_with_distinct_uids() {
    let (dir, s) = store();
    s.add_domain("naver.test").await.unwrap();
    let a = s.add_account("a@naver.test", "h").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.deliver(delivery(vec![a], vec![], &format!("msg {i}")))
                .await
                .unwrap()
                .local_uids[0]
        }));
    }
    let mut uids = Vec::new();
    for t in tasks {
        uids.push(t.await.unwrap());
    }
    uids.sort();
    assert_eq!(uids, (1..=200).collect::<Vec<u32>>());
    drop(s);
    // a second handle (as another process would) sees every message
    let s2 = Store::open_embedded(dir.path()).unwrap();
    assert_eq!(s2.stats().await.unwrap().messages, 200);
}

#[tokio::test]
async fn failing_job_does_not_spoil_its_batch() {
    let (_d, s) = store();
    s.add_domain("naver.test").await.unwrap();
    let (r1, r2) = tokio::join!(
        s.add_account("a@naver.test", "h"),
        s.add_domain("naver.test")
    );
    assert!(r1.is_ok());
    assert!(matches!(r2, Err(StoreError::AlreadyExists(_))));
    assert_eq!(s.list_accounts(None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn append_and_blob_collection() {
    let (_d, s) = store();
    s.add_domain("naver.test").await.unwrap();
    let a = s.add_account("a@naver.test", "h").await.unwrap();
    let sent = s
        .list_mailboxes(a)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "Sent")
        .unwrap();
    let msgs = vec![
        NewMessage {
            data: b"m1".to_vec(),
            internal_date: 5,
            flags: Flags::from_names(&["\\seen", "$Junk"]),
        },
        NewMessage {
            data: b"m2".to_vec(),
            internal_date: 6,
            flags: Flags::default(),
        },
    ];
    assert_eq!(s.append(sent.id, msgs).await.unwrap(), [1, 2]);
    let listed = s.list_messages(sent.id).await.unwrap();
    assert_eq!(listed[0].flags.names(), ["\\Seen", "$Junk"]);
    assert_eq!(listed[0].internal_date, 5);
    let blob = listed[0].blob;
    s.remove_account("a@naver.test").await.unwrap();
    assert!(matches!(
        s.read_blob(blob).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn uid_validity_is_unique_even_within_one_second() {
    let (_d, s) = store();
    s.add_domain("naver.test").await.unwrap();
    let a = s.add_account("a@naver.test", "h").await.unwrap();
    let b = s.add_account("b@naver.test", "h").await.unwrap();
    let mut all: Vec<u32> = Vec::new();
    for acct in [a, b] {
        all.extend(
            s.list_mailboxes(acct)
                .await
                .unwrap()
                .iter()
                .map(|m| m.uid_validity),
        );
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n);
}

async fn mailbox(s: &Store, a: AccountId, name: &str) -> Mailbox {
    s.mailbox_by_name(a, name).await.unwrap().unwrap()
}

/// A store with one account, a@naver.test, and its INBOX.
async fn one_account() -> (tempfile::TempDir, Store, AccountId, Mailbox) {
    let (dir, s) = store();
    s.add_domain("naver.test").await.unwrap();
    let a = s.add_account("a@naver.test", "h").await.unwrap();
    let inbox = mailbox(&s, a, "INBOX").await;
    (dir, s, a, inbox)
}

/// [`one_account`] with its Archive too.
async fn inbox_and_archive() -> (tempfile::TempDir, Store, Mailbox, Mailbox) {
    let (dir, s, a, inbox) = one_account().await;
    let archive = mailbox(&s, a, "Archive").await;
    (dir, s, inbox, archive)
}

fn msg(body: &str) -> NewMessage {
    NewMessage {
        data: body.as_bytes().to_vec(),
        internal_date: 1,
        flags: Flags::default(),
    }
}

#[tokio::test]
async fn flags_modseq_expunge_and_changes() {
    let (_d, s, a, inbox) = one_account().await;
    let mut watch = s.watch(inbox.id);
    s.append(inbox.id, vec![msg("1"), msg("2"), msg("3")])
        .await
        .unwrap();
    assert!(watch.has_changed().unwrap(), "append wakes watchers");
    watch.mark_unchanged();
    let base = mailbox(&s, a, "INBOX").await.highest_modseq;

    let seen = Flags::from_names(&["\\Seen", "$Important"]);
    let r = s
        .store_flags(inbox.id, vec![1, 2], FlagOp::Add, seen.clone(), None)
        .await
        .unwrap();
    assert_eq!(r.updated.len(), 2);
    assert!(
        r.updated
            .iter()
            .all(|m| m.modseq == base + 1 && m.flags.seen())
    );
    // nothing changes: no new modseq
    let r = s
        .store_flags(inbox.id, vec![1], FlagOp::Add, seen.clone(), None)
        .await
        .unwrap();
    assert_eq!((r.updated.len(), r.unchanged.len()), (0, 1));
    // CONDSTORE: message 1 was modified after `base`, message 3 was not
    let del = Flags::from_names(&["\\Deleted"]);
    let r = s
        .store_flags(inbox.id, vec![1, 3], FlagOp::Add, del.clone(), Some(base))
        .await
        .unwrap();
    assert_eq!(r.modified, vec![1]);
    assert_eq!(r.updated.iter().map(|m| m.uid).collect::<Vec<_>>(), vec![3]);
    s.store_flags(
        inbox.id,
        vec![2],
        FlagOp::Remove,
        Flags::from_names(&["$important"]),
        None,
    )
    .await
    .unwrap();

    let ch = s.changes_since(inbox.id, base).await.unwrap();
    assert_eq!(
        ch.changed.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(ch.expunged.is_empty());
    assert_eq!(
        s.mailbox_status(inbox.id).await.unwrap(),
        MailboxStatus {
            messages: 3,
            unseen: 1,
            size: 3,
            deleted: 1
        }
    );

    let before = mailbox(&s, a, "INBOX").await.highest_modseq;
    assert_eq!(
        s.expunge(inbox.id, Some(vec![1, 2])).await.unwrap(),
        Vec::<Uid>::new()
    );
    assert_eq!(s.expunge(inbox.id, None).await.unwrap(), vec![3]);
    let ch = s.changes_since(inbox.id, before).await.unwrap();
    assert_eq!(ch.expunged, vec![3]);
    assert!(ch.mailbox.highest_modseq > before);
    let snap = s.snapshot(inbox.id).await.unwrap();
    assert_eq!(snap.uids, vec![1, 2]);
    assert_eq!(snap.mailbox.uid_next, 4, "UIDs are never reused");
}

#[tokio::test]
async fn snapshot_has_uids_first_unseen_and_keywords() {
    let (_d, s, _, inbox) = one_account().await;
    s.append(inbox.id, vec![msg("1"), msg("2"), msg("3"), msg("4")])
        .await
        .unwrap();
    let flags = |system, keywords: &[&str]| Flags {
        system,
        keywords: keywords.iter().map(|k| k.to_string()).collect(),
    };
    s.store_flags(
        inbox.id,
        vec![1, 2],
        FlagOp::Add,
        flags(Flags::SEEN, &["$Work"]),
        None,
    )
    .await
    .unwrap();
    s.store_flags(
        inbox.id,
        vec![4],
        FlagOp::Add,
        flags(0, &["$Late", "$Work"]),
        None,
    )
    .await
    .unwrap();
    let snap = s.snapshot(inbox.id).await.unwrap();
    assert_eq!(snap.uids, vec![1, 2, 3, 4]);
    assert_eq!(snap.first_unseen, Some(3));
    assert_eq!(snap.keywords, vec!["$Late", "$Work"]);
    let got = s.get_messages(inbox.id, vec![2, 4, 9]).await.unwrap();
    assert_eq!(got.iter().map(|m| m.uid).collect::<Vec<_>>(), vec![2, 4]);
    // Sparse UIDs take point reads, dense ones a range scan: both give the same answer.
    let sparse = s.get_messages(inbox.id, vec![1, 400]).await.unwrap();
    assert_eq!(sparse.iter().map(|m| m.uid).collect::<Vec<_>>(), vec![1]);
}

#[tokio::test]
async fn copy_move_rename_delete_subscribe() {
    let (_d, s, a, inbox) = one_account().await;
    let archive = mailbox(&s, a, "Archive").await;
    s.append(inbox.id, vec![msg("1"), msg("2"), msg("3")])
        .await
        .unwrap();
    let c = s
        .copy_messages(inbox.id, vec![1, 3], archive.id, false)
        .await
        .unwrap();
    assert_eq!(
        (c.uid_validity, c.pairs),
        (archive.uid_validity, vec![(1, 1), (3, 2)])
    );
    let m = s
        .copy_messages(inbox.id, vec![2], archive.id, true)
        .await
        .unwrap();
    assert_eq!(m.pairs, vec![(2, 3)]);
    assert_eq!(s.snapshot(inbox.id).await.unwrap().uids.len(), 2);
    assert_eq!(s.snapshot(archive.id).await.unwrap().uids.len(), 3);

    s.create_mailbox(a, "Projects").await.unwrap();
    s.create_mailbox(a, "Projects/2026").await.unwrap();
    s.set_subscribed(a, "Projects/2026", true).await.unwrap();
    s.rename_mailbox(a, "Projects", "Work").await.unwrap();
    assert!(s.mailbox_by_name(a, "Work/2026").await.unwrap().is_some());
    assert!(
        s.subscriptions(a)
            .await
            .unwrap()
            .contains(&"Work/2026".to_string())
    );
    assert!(matches!(
        s.rename_mailbox(a, "Work", "Archive").await,
        Err(StoreError::AlreadyExists(_))
    ));
    // INBOX rename moves its messages and leaves an empty INBOX
    s.rename_mailbox(a, "INBOX", "Old").await.unwrap();
    assert_eq!(s.snapshot(inbox.id).await.unwrap().uids.len(), 0);
    assert_eq!(
        s.snapshot(mailbox(&s, a, "Old").await.id)
            .await
            .unwrap()
            .uids
            .len(),
        2
    );
    assert!(matches!(
        s.delete_mailbox(a, "INBOX").await,
        Err(StoreError::Conflict(_))
    ));
    s.delete_mailbox(a, "Archive").await.unwrap();
    assert!(s.mailbox_by_name(a, "Archive").await.unwrap().is_none());
    let su = s
        .create_mailbox_special(a, "Spam2", Some("\\Junk"))
        .await
        .unwrap();
    assert_eq!(su.special_use.as_deref(), Some("\\Junk"));
}

/// Without the query planner stability guarantee SQLite re-plans every `WHERE k = ?1 ORDER BY
/// ...` statement each time a new value is bound: the RCPT path paid a full parse per alias
/// lookup.
#[test]
fn cached_statements_are_not_replanned_per_binding() {
    let (dir, _s) = store();
    let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
    configure(&c).unwrap();
    for sql in [
        "SELECT target FROM aliases WHERE source = ?1 ORDER BY target",
        "SELECT uid FROM messages WHERE mailbox_id = ?1 ORDER BY uid",
    ] {
        for key in [1, 2, 3] {
            let mut stmt = c.prepare_cached(sql).unwrap();
            let rows: Vec<rusqlite::types::Value> = stmt
                .query_map([key], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(rows.is_empty());
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }
}

/// A summary whose body text is what follows the first blank line, lower-cased: what the
/// indexer stores, minus MIME decoding.
fn plain_summary(raw: &[u8]) -> SummaryData {
    let text = String::from_utf8_lossy(raw).to_lowercase();
    let body = text.split_once("\n\n").map_or("", |(_, b)| b);
    SummaryData {
        headers: b"subject".to_vec(),
        body: body.as_bytes().to_vec(),
        ..SummaryData::default()
    }
}

#[tokio::test]
async fn scans_read_summaries_and_body_texts_of_one_mailbox() {
    let (dir, s, inbox, other) = inbox_and_archive().await;
    let bodies = [
        "Meet at the Noodle bar",
        "내일 회의는 취소",
        "noodle soup",
        "nothing",
    ];
    let raw = |b: &str| msg(&format!("subject: x\n\n{b}"));
    s.append(inbox.id, bodies.iter().map(|b| raw(b)).collect())
        .await
        .unwrap();
    s.append(other.id, vec![raw("noodle soup")]).await.unwrap();
    let find = |needle: &'static str| {
        s.scan_summaries(
            inbox.id,
            true,
            Box::new(move |row| {
                u64::from(
                    row.body
                        .windows(needle.len())
                        .any(|w| w == needle.as_bytes()),
                )
            }),
        )
    };
    // Messages without a summary are not scanned.
    assert_eq!(find("noodle").await.unwrap(), []);
    while s.summarize_pending(None, 3, plain_summary).await.unwrap() > 0 {}
    // Every message of this mailbox only, in UID order, over several reader threads.
    assert_eq!(find("noodle").await.unwrap(), [(1, 1), (3, 1)]);
    assert_eq!(find("회의는").await.unwrap(), [(2, 1)]);
    let headers_only = s
        .scan_summaries(
            inbox.id,
            false,
            Box::new(|row| u64::from(row.headers == b"subject" && row.body.is_empty())),
        )
        .await
        .unwrap();
    assert_eq!(headers_only, [(1, 1), (2, 1), (3, 1), (4, 1)]);

    // An expunged message's blob takes its body text with it.
    let deleted = Flags::from_names(&["\\Deleted"]);
    s.store_flags(inbox.id, vec![1], FlagOp::Add, deleted, None)
        .await
        .unwrap();
    assert_eq!(s.expunge(inbox.id, Some(vec![1])).await.unwrap(), [1]);
    assert_eq!(find("noodle").await.unwrap(), [(3, 1)]);
    let db = Connection::open(dir.path().join("postern.db")).unwrap();
    let texts: i64 = db
        .query_row("SELECT count(*) FROM body_text", [], |r| r.get(0))
        .unwrap();
    // Five messages, four blobs ("noodle soup" twice is one blob), one of them gone.
    assert_eq!(texts, 3);
}

#[tokio::test]
async fn large_bodies_live_in_the_blob_log_and_their_space_is_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = Arc::new(Embedded::open(dir.path()).unwrap());
    let s = Store::from_backend(embedded.clone());
    s.add_domain("naver.test").await.unwrap();
    let a = s.add_account("a@naver.test", "h").await.unwrap();
    let inbox = mailbox(&s, a, "INBOX").await;
    let big = |fill: u8, n: usize| -> Vec<u8> {
        let mut m = b"Subject: big\r\n\r\n".to_vec();
        m.resize(n, fill);
        m
    };
    // A delivery with local and remote recipients: two large bodies.
    let d = Delivery {
        sender: Some("kim@daum.test".into()),
        local: vec![a],
        local_data: big(b'l', 100_000),
        remote: vec!["x@daum.test".into()],
        remote_data: big(b'r', 99_000),
        received: 1_700_000_000,
    };
    s.deliver(d).await.unwrap();
    // An APPEND of one large and one small message.
    s.append(
        inbox.id,
        vec![
            msg(std::str::from_utf8(&big(b'a', 40_000)).unwrap()),
            msg("small"),
        ],
    )
    .await
    .unwrap();
    let listed = s.list_messages(inbox.id).await.unwrap();
    assert_eq!(
        s.read_blob(listed[0].blob).await.unwrap(),
        big(b'l', 100_000)
    );
    assert_eq!(
        s.read_blob(listed[1].blob).await.unwrap(),
        big(b'a', 40_000)
    );
    assert_eq!(s.read_blob(listed[2].blob).await.unwrap(), b"small");
    let queued = s.list_queue().await.unwrap();
    assert_eq!(
        s.read_blob(queued[0].blob).await.unwrap(),
        big(b'r', 99_000)
    );
    let db = Connection::open(dir.path().join("postern.db")).unwrap();
    let in_log = |db: &Connection| -> Vec<(i64, i64)> {
        db.prepare("SELECT segment, length(data) FROM blobs WHERE segment IS NOT NULL ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    // Three bodies in the log, none of them in the database too; the small one inline.
    assert_eq!(in_log(&db), [(1, 0), (1, 0), (1, 0)]);

    // Deleting the large messages lists the segment for reclaiming, which frees the space.
    let segment = dir.path().join(BLOB_DIR).join("00000001.seg");
    let allocated = || {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&segment).unwrap().blocks() * 512
    };
    // Measured while every record is live: the maintenance thread's own reclaim (a second
    // after the store opened, then every ten) may free the space before this test's does.
    let before = allocated();
    let deleted = Flags::from_names(&["\\Deleted"]);
    s.store_flags(inbox.id, vec![1, 2], FlagOp::Add, deleted, None)
        .await
        .unwrap();
    s.expunge(inbox.id, None).await.unwrap();
    assert_eq!(in_log(&db), [(1, 0)]);
    reclaim_log(&db, &embedded.log, false).unwrap();
    // If the maintenance thread took the segment off the list first, it may still be punching.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while allocated() + 130_000 >= before {
        assert!(
            std::time::Instant::now() < deadline,
            "{} -> {}",
            before,
            allocated()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let garbage: i64 = db
        .query_row("SELECT count(*) FROM log_garbage", [], |r| r.get(0))
        .unwrap();
    assert_eq!(garbage, 0);
    // The queued body is intact, also after a restart.
    drop((s, embedded));
    let s = Store::open_embedded(dir.path()).unwrap();
    assert_eq!(
        s.read_blob(queued[0].blob).await.unwrap(),
        big(b'r', 99_000)
    );
}

#[tokio::test]
async fn recovery_removes_messages_whose_log_record_did_not_survive() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_embedded(dir.path()).unwrap();
    s.add_domain("naver.test").await.unwrap();
    let a = s.add_account("a@naver.test", "h").await.unwrap();
    let inbox = mailbox(&s, a, "INBOX").await;
    let body = |fill: u8| msg(&String::from_utf8(vec![fill; 50_000]).unwrap());
    s.append(inbox.id, vec![body(b'x')]).await.unwrap();
    s.append(inbox.id, vec![body(b'y')]).await.unwrap();
    let kept = s.list_messages(inbox.id).await.unwrap()[0].blob;
    drop(s);
    // A crash before the second record reached the disk: its bytes are gone (zeros), its row
    // committed. It lies above the watermark stored with it, so recovery checks it.
    let segment = dir.path().join(BLOB_DIR).join("00000001.seg");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&[0; 100], blob_log::HEADER + 50_000 + 30)
        .unwrap();
    let s = Store::open_embedded(dir.path()).unwrap();
    let listed = s.list_messages(inbox.id).await.unwrap();
    assert_eq!(listed.iter().map(|m| m.uid).collect::<Vec<_>>(), [1]);
    assert_eq!(s.read_blob(kept).await.unwrap(), body(b'x').data);
    // Other sessions learn of the removal like of any expunge.
    let changes = s.changes_since(inbox.id, 0).await.unwrap();
    assert!(changes.expunged.contains(&2), "{changes:?}");
}

#[test]
fn canonical_size_counts_crlf_line_ends() {
    for (data, want) in [
        (&b""[..], 0),
        (b"a\r\nb\r\n", 6),
        (b"a\nb\n", 6),
        (b"a\r\nb", 6),
        (b"\n", 2),
        (b"a\rb\n", 5),
        (b"a\r\r\n", 4),
        (b"x\r", 4),
    ] {
        assert_eq!(
            canonical_size(data),
            want,
            "{:?}",
            String::from_utf8_lossy(data)
        );
    }
}

#[tokio::test]
async fn listing_has_canonical_sizes_and_expunge_uids_ignores_flags() {
    let (_d, s, a, inbox) = one_account().await;
    let mut watch = s.watch(inbox.id);
    s.append(
        inbox.id,
        vec![msg("A: 1\r\n\r\nx\r\n"), msg("A: 2\n\ny"), msg("three\r\n")],
    )
    .await
    .unwrap();
    let l = s.message_listing(inbox.id).await.unwrap();
    assert_eq!(l.mailbox.uid_validity, inbox.uid_validity);
    let sizes: Vec<(Uid, u64, u64)> = l
        .messages
        .iter()
        .map(|m| (m.uid, m.size, m.canonical_size))
        .collect();
    assert_eq!(sizes, [(1, 11, 11), (2, 7, 11), (3, 7, 7)]);

    // An IMAP client marked 3 \Deleted; a POP3 session deletes 1 and 2 (and 9, long gone).
    s.store_flags(
        inbox.id,
        vec![3],
        FlagOp::Add,
        Flags::from_names(&["\\Deleted"]),
        None,
    )
    .await
    .unwrap();
    watch.mark_unchanged();
    let before = mailbox(&s, a, "INBOX").await.highest_modseq;
    assert_eq!(
        s.expunge_uids(inbox.id, vec![2, 9, 1, 2]).await.unwrap(),
        [1, 2]
    );
    assert!(watch.has_changed().unwrap(), "expunge wakes watchers");
    assert_eq!(s.snapshot(inbox.id).await.unwrap().uids, [3]);
    assert_eq!(
        s.changes_since(inbox.id, before).await.unwrap().expunged,
        [1, 2]
    );
    assert!(s.expunge_uids(inbox.id, vec![1]).await.unwrap().is_empty());

    // Blobs are read inline up to INLINE_BLOB, on the blocking pool above it: same bytes.
    let big = "x".repeat(INLINE_BLOB + 1);
    s.append(inbox.id, vec![msg("small\r\n"), msg(&big)])
        .await
        .unwrap();
    let metas = s.get_messages(inbox.id, vec![4, 5]).await.unwrap();
    assert_eq!(s.read_blob(metas[0].blob).await.unwrap(), b"small\r\n");
    assert_eq!(s.read_blob(metas[1].blob).await.unwrap(), big.as_bytes());
    assert!(matches!(
        s.read_blob(BlobId(999_999)).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn migration_backfills_canonical_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = {
        let s = Store::open_embedded(dir.path()).unwrap();
        s.add_domain("naver.test").await.unwrap();
        let a = s.add_account("a@naver.test", "h").await.unwrap();
        let inbox = mailbox(&s, a, "INBOX").await;
        s.append(inbox.id, vec![msg("bare\nlf\n")]).await.unwrap();
        inbox
    };
    // Back to the schema before blob_lines (and the blob log after it), as a database from
    // an older version.
    let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
    c.execute_batch(
        "DROP TRIGGER blob_deleted_id; DELETE FROM meta WHERE key = 'last_blob';
         DROP TRIGGER blob_logged_removed; DROP TABLE log_garbage; DROP TABLE log_durable;
         DROP INDEX blobs_segment; ALTER TABLE blobs DROP COLUMN segment;
         ALTER TABLE blobs DROP COLUMN offset;
         ALTER TABLE messages DROP COLUMN canonical_size;
         DELETE FROM meta WHERE key = 'summarized_below';
         CREATE TABLE summary_todo (blob_id INTEGER PRIMARY KEY);
         CREATE TRIGGER blob_added AFTER INSERT ON blobs BEGIN
             INSERT INTO summary_todo (blob_id) VALUES (new.id);
         END;
         ALTER TABLE queue DROP COLUMN leased; ALTER TABLE queue DROP COLUMN last_attempt;
         ALTER TABLE queue DROP COLUMN warned; ALTER TABLE queue_recipients DROP COLUMN status_code;
         ALTER TABLE queue_recipients DROP COLUMN remote_mta; PRAGMA user_version = 5;",
    )
    .unwrap();
    drop(c);
    let s = Store::open_embedded(dir.path()).unwrap();
    let l = s.message_listing(inbox.id).await.unwrap();
    assert_eq!(l.messages[0].canonical_size, 10);
    let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
    let n: i64 = c
        .query_row("SELECT canonical_size FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 10);
}

#[tokio::test]
async fn blob_ids_are_never_reused() {
    let (dir, s, _, inbox) = one_account().await;
    s.append(inbox.id, vec![msg("one"), msg("two")])
        .await
        .unwrap();
    let newest = s.list_messages(inbox.id).await.unwrap()[1].blob;
    let deleted = Flags::from_names(&["\\Deleted"]);
    s.store_flags(inbox.id, vec![2], FlagOp::Add, deleted, None)
        .await
        .unwrap();
    s.expunge(inbox.id, None).await.unwrap();
    // The newest blob is gone; a rowid would be handed out again, a blob id is not: whoever
    // still holds the old id finds nothing rather than this other message.
    s.append(inbox.id, vec![msg("three")]).await.unwrap();
    let third = s.list_messages(inbox.id).await.unwrap()[1].blob;
    assert!(third.0 > newest.0, "{third:?} after {newest:?}");
    assert!(matches!(
        s.read_blob(newest).await,
        Err(StoreError::NotFound(_))
    ));
    // A database from a newer version is refused, not misread.
    drop(s);
    let db = Connection::open(dir.path().join(DB_FILE)).unwrap();
    db.execute_batch("PRAGMA user_version = 999").unwrap();
    drop(db);
    assert!(Store::open_embedded(dir.path()).is_err());
}

#[tokio::test]
async fn a_shared_large_body_is_stored_once_and_a_failed_one_is_purged() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = Arc::new(Embedded::open(dir.path()).unwrap());
    let s = Store::from_backend(embedded.clone());
    s.add_domain("naver.test").await.unwrap();
    let a = s.add_account("a@naver.test", "h").await.unwrap();
    let inbox = mailbox(&s, a, "INBOX").await;
    let body = String::from_utf8(vec![b'z'; 60_000]).unwrap();
    // The same large body twice: one blob, the second record left for reclaiming.
    s.append(inbox.id, vec![msg(&body)]).await.unwrap();
    s.append(inbox.id, vec![msg(&body), msg("small")])
        .await
        .unwrap();
    let listed = s.list_messages(inbox.id).await.unwrap();
    assert_eq!(listed[0].blob, listed[1].blob);
    assert_eq!(s.read_blob(listed[1].blob).await.unwrap(), body.as_bytes());
    let db = Connection::open(dir.path().join(DB_FILE)).unwrap();
    let garbage: Vec<u32> = column(&db, "SELECT segment FROM log_garbage");
    // Unless the maintenance thread's reclaim (a second after the store opened, then every
    // ten) ran in between: it takes the segment off the list, then frees the record.
    if garbage.is_empty() {
        let allocated = || {
            use std::os::unix::fs::MetadataExt;
            let segment = dir.path().join(BLOB_DIR).join("00000001.seg");
            std::fs::metadata(segment).unwrap().blocks() * 512
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while allocated() >= 2 * 60_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "off the list, yet {} bytes allocated",
                allocated()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    } else {
        assert_eq!(garbage, [1]);
    }
    // What a failed fdatasync does after the commit: the messages on that record go, as an
    // expunge other sessions see; the small message stays.
    let (segment, offset): (u32, i64) = db
        .query_row(
            "SELECT segment, offset FROM blobs WHERE segment IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let at = Location {
        segment,
        offset: offset as u64,
    };
    embedded
        .writer
        .write(move |c| purge_blobs_at(c, &[at]))
        .await
        .unwrap();
    let uids: Vec<Uid> = s
        .list_messages(inbox.id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(uids, [3]);
    let changes = s.changes_since(inbox.id, 0).await.unwrap();
    assert_eq!(changes.expunged, [1, 2]);
}

#[tokio::test]
async fn a_new_wal_is_preallocated_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join(format!("{DB_FILE}-wal"));
    let options = crate::EmbeddedOptions {
        wal_preallocate: 1 << 20,
        ..Default::default()
    };
    // A database written by another process that is still running (the admin CLI's threads
    // leave their WAL behind too): while it reads, its WAL is in use and left alone.
    let cli = Store::open_embedded(dir.path()).unwrap();
    cli.add_domain("naver.test").await.unwrap();
    let a = cli.add_account("a@naver.test", "h").await.unwrap();
    let reading = Connection::open(dir.path().join(DB_FILE)).unwrap();
    reading
        .execute_batch("BEGIN; SELECT count(*) FROM domains;")
        .unwrap();
    let s = Store::open_embedded_with(dir.path(), &options).unwrap();
    assert_ne!(std::fs::metadata(&wal).unwrap().len(), 1 << 20);
    drop(s);
    reading.execute_batch("COMMIT").unwrap();
    drop(reading);
    // Nobody reading: the WAL is checkpointed empty and filled, and commits go into it.
    let s = Store::open_embedded_with(dir.path(), &options).unwrap();
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 1 << 20);
    let inbox = mailbox(&s, a, "INBOX").await;
    s.append(inbox.id, vec![msg("kept")]).await.unwrap();
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 1 << 20);
    // Another process meanwhile (the CLI) reads and writes as usual.
    assert_eq!(cli.list_messages(inbox.id).await.unwrap().len(), 1);
    cli.append(inbox.id, vec![msg("too")]).await.unwrap();
    drop((s, cli));
    let s = Store::open_embedded(dir.path()).unwrap();
    let listed = s.list_messages(inbox.id).await.unwrap();
    assert_eq!(s.read_blob(listed[0].blob).await.unwrap(), b"kept");
    assert_eq!(s.read_blob(listed[1].blob).await.unwrap(), b"too");
}

fn result(address: &str, status: RecipientStatus, code: &str) -> RecipientResult {
    RecipientResult {
        address: address.into(),
        status,
        error: Some(format!("{code} said the peer")),
        status_code: Some(code.into()),
        remote_mta: Some("mx.daum.test".into()),
    }
}

fn update(id: i64, results: Vec<RecipientResult>, next: i64) -> QueueUpdate {
    QueueUpdate {
        id,
        results,
        next_attempt: next,
        attempted_at: Some(next - 300),
        warned: false,
        notice: None,
    }
}

async fn inbox_count(s: &Store, account: AccountId) -> u32 {
    s.list_mailboxes(account)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "INBOX")
        .unwrap()
        .messages
}

/// Queues one message for x@ and y@daum.test (received at 1_700_000_000); its queue id.
async fn queue_for_two(s: &Store) -> i64 {
    s.deliver(delivery(vec![], vec!["x@daum.test", "y@daum.test"], "q"))
        .await
        .unwrap()
        .queue_id
        .unwrap()
}

#[tokio::test]
async fn queue_claim_leases_and_release_makes_due_again() {
    let (_d, s) = store();
    let t0 = 1_700_000_000;
    let id = queue_for_two(&s).await;
    assert_eq!(s.next_queue_due().await.unwrap(), Some(t0));
    assert!(
        s.claim_queue(t0 - 1, t0 + 600, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = s.claim_queue(t0, t0 + 600, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, id);
    assert!(claimed[0].leased);
    assert_eq!(claimed[0].pending().count(), 2);
    // leased: not due again until the lease lapses
    assert!(
        s.claim_queue(t0 + 599, t0 + 1200, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.next_queue_due().await.unwrap(), Some(t0 + 600));
    // retry of everything skips leased entries; a runner starting after a crash releases them
    assert_eq!(s.retry_queue(None, t0 + 10).await.unwrap(), 0);
    assert_eq!(s.release_queue_leases(t0 + 10).await.unwrap(), 1);
    let e = s.queue_entry(id).await.unwrap().unwrap();
    assert!(!e.leased);
    assert_eq!(e.next_attempt, t0 + 10);
    assert_eq!(s.claim_queue(t0 + 10, t0 + 600, 10).await.unwrap().len(), 1);
    assert!(s.queue_entry(id + 100).await.unwrap().is_none());
}

#[tokio::test]
async fn queue_update_keeps_pending_and_removes_when_final() {
    let (_d, s) = store();
    let t0 = 1_700_000_000;
    let id = queue_for_two(&s).await;
    let blob = s.queue_entry(id).await.unwrap().unwrap().blob;
    s.claim_queue(t0, t0 + 600, 10).await.unwrap();
    let out = s
        .update_queue(update(
            id,
            vec![
                result("x@daum.test", RecipientStatus::Delivered, "2.0.0"),
                result("y@daum.test", RecipientStatus::Pending, "4.2.0"),
            ],
            t0 + 900,
        ))
        .await
        .unwrap();
    assert_eq!(out, QueueOutcome::Pending);
    let e = s.queue_entry(id).await.unwrap().unwrap();
    assert_eq!((e.attempts, e.leased, e.next_attempt), (1, false, t0 + 900));
    assert_eq!(e.last_attempt, Some(t0 + 600));
    assert_eq!(e.recipients[0].status, RecipientStatus::Delivered);
    assert_eq!(e.recipients[1].status, RecipientStatus::Pending);
    assert_eq!(e.recipients[1].status_code.as_deref(), Some("4.2.0"));
    assert_eq!(e.recipients[1].remote_mta.as_deref(), Some("mx.daum.test"));
    // a result for a recipient already final does not change it
    s.update_queue(update(
        id,
        vec![result("x@daum.test", RecipientStatus::Pending, "4.0.0")],
        t0 + 1000,
    ))
    .await
    .unwrap();
    assert_eq!(
        s.queue_entry(id).await.unwrap().unwrap().recipients[0].status,
        RecipientStatus::Delivered
    );
    let out = s
        .update_queue(update(
            id,
            vec![result("y@daum.test", RecipientStatus::Delivered, "2.0.0")],
            t0 + 2000,
        ))
        .await
        .unwrap();
    assert_eq!(out, QueueOutcome::Removed);
    assert!(s.queue_entry(id).await.unwrap().is_none());
    assert!(s.list_queue().await.unwrap().is_empty());
    assert!(matches!(
        s.read_blob(blob).await,
        Err(StoreError::NotFound(_))
    ));
    // an update for an entry that is gone stores nothing
    assert_eq!(
        s.update_queue(update(id, vec![], t0)).await.unwrap(),
        QueueOutcome::Gone
    );
}

#[tokio::test]
async fn queue_bounce_is_stored_with_the_failure_or_not_at_all() {
    let (_d, s) = store();
    s.add_domain("naver.test").await.unwrap();
    let kim = s.add_account("kim@naver.test", "h").await.unwrap();
    let t0 = 1_700_000_000;
    let id = s
        .deliver(delivery(vec![], vec!["x@daum.test"], "q"))
        .await
        .unwrap()
        .queue_id
        .unwrap();
    let bounce = Delivery {
        sender: None,
        local: vec![kim],
        local_data: b"Return-Path: <>\r\nSubject: Undelivered Mail\r\n\r\nsorry\r\n".to_vec(),
        remote: vec!["far@elsewhere.test".into()],
        remote_data: b"Subject: Undelivered Mail\r\n\r\nsorry\r\n".to_vec(),
        received: t0,
    };
    let mut u = update(
        id,
        vec![result("x@daum.test", RecipientStatus::Failed, "5.1.1")],
        t0,
    );
    u.notice = Some(bounce.clone());
    assert_eq!(
        s.update_queue(u.clone()).await.unwrap(),
        QueueOutcome::Removed
    );
    assert_eq!(inbox_count(&s, kim).await, 1);
    // the remote copy of the notice is a new entry with the null sender
    let q = s.list_queue().await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].sender, None);
    assert_eq!(q[0].recipients[0].address, "far@elsewhere.test");
    // the same update again: the entry is gone, so no second bounce
    assert_eq!(s.update_queue(u).await.unwrap(), QueueOutcome::Gone);
    assert_eq!(inbox_count(&s, kim).await, 1);
    assert_eq!(s.list_queue().await.unwrap().len(), 1);
    // a delay warning leaves the entry pending and marks it warned
    let id2 = q[0].id;
    let mut u = update(
        id2,
        vec![result(
            "far@elsewhere.test",
            RecipientStatus::Pending,
            "4.4.1",
        )],
        t0 + 600,
    );
    u.warned = true;
    u.notice = Some(Delivery {
        remote: vec![],
        ..bounce
    });
    assert_eq!(s.update_queue(u).await.unwrap(), QueueOutcome::Pending);
    assert!(s.queue_entry(id2).await.unwrap().unwrap().warned);
    assert_eq!(inbox_count(&s, kim).await, 2);
}

#[tokio::test]
async fn queue_retry_and_delete() {
    let (_d, s) = store();
    let t0 = 1_700_000_000;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            s.deliver(delivery(vec![], vec!["x@daum.test"], &format!("m{i}")))
                .await
                .unwrap()
                .queue_id
                .unwrap(),
        );
    }
    for id in &ids {
        s.claim_queue(t0, t0 + 60, 1).await.unwrap();
        s.update_queue(update(
            *id,
            vec![result("x@daum.test", RecipientStatus::Pending, "4.4.1")],
            t0 + 3600,
        ))
        .await
        .unwrap();
    }
    assert!(
        s.claim_queue(t0 + 100, t0 + 200, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.retry_queue(Some(ids[0]), t0 + 100).await.unwrap(), 1);
    assert_eq!(
        s.claim_queue(t0 + 100, t0 + 200, 10).await.unwrap().len(),
        1
    );
    assert_eq!(s.retry_queue(None, t0 + 100).await.unwrap(), 2);
    assert_eq!(s.next_queue_due().await.unwrap(), Some(t0 + 100));
    assert!(s.delete_queue(ids[1]).await.unwrap());
    assert!(!s.delete_queue(ids[1]).await.unwrap());
    assert_eq!(s.list_queue().await.unwrap().len(), 2);
    assert_eq!(s.stats().await.unwrap().queued, 2);
}

#[tokio::test]
async fn queue_ids_are_never_reused() {
    let (_d, s) = store();
    let one = s
        .deliver(delivery(vec![], vec!["x@daum.test"], "1"))
        .await
        .unwrap()
        .queue_id
        .unwrap();
    assert!(s.delete_queue(one).await.unwrap());
    let two = s
        .deliver(delivery(vec![], vec!["x@daum.test"], "2"))
        .await
        .unwrap()
        .queue_id
        .unwrap();
    assert!(two > one, "{two} > {one}");
}

#[tokio::test]
async fn blobs_without_summaries_are_found_behind_the_watermark() {
    let (dir, s, inbox, other) = inbox_and_archive().await;
    let mark = || summary_mark(dir.path());
    let summarized = || summarized_blobs(dir.path());
    // Blobs 1 and 2 in INBOX, 3 in Archive.
    s.append(inbox.id, vec![msg("one"), msg("two")])
        .await
        .unwrap();
    s.append(other.id, vec![msg("three")]).await.unwrap();
    // A mailbox's own (SEARCH) first: the others stay pending and hold the watermark back.
    assert_eq!(
        s.summarize_pending(Some(other.id), 10, plain_summary)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.summarize_pending(Some(other.id), 10, plain_summary)
            .await
            .unwrap(),
        0
    );
    assert_eq!((summarized(), mark()), (vec![3], 1));
    // The background order is newest first, each batch below the last one; the watermark
    // jumps once the oldest is done.
    assert_eq!(
        s.summarize_pending(None, 1, plain_summary).await.unwrap(),
        1
    );
    assert_eq!((summarized(), mark()), (vec![2, 3], 1));
    assert_eq!(
        s.summarize_pending(None, 10, plain_summary).await.unwrap(),
        1
    );
    assert_eq!((summarized(), mark()), (vec![1, 2, 3], 4));
    assert_eq!(
        s.summarize_pending(None, 10, plain_summary).await.unwrap(),
        0
    );
    // The newest blob deleted, then a new one: its id is above the watermark all the same.
    s.expunge_uids(other.id, vec![1]).await.unwrap();
    s.append(inbox.id, vec![msg("four")]).await.unwrap();
    assert_eq!(
        s.summarize_pending(Some(inbox.id), 10, plain_summary)
            .await
            .unwrap(),
        1
    );
    assert_eq!((summarized(), mark()), (vec![1, 2, 4], 5));
    // The oldest pending blob (5) deleted after a SEARCH summarised the one above it (6):
    // nothing is left to do, and an idle pass still moves the mark past the newest blob.
    s.append(other.id, vec![msg("five")]).await.unwrap();
    s.append(inbox.id, vec![msg("six")]).await.unwrap();
    assert_eq!(
        s.summarize_pending(Some(inbox.id), 10, plain_summary)
            .await
            .unwrap(),
        1
    );
    s.expunge_uids(other.id, vec![2]).await.unwrap();
    assert_eq!(mark(), 5);
    assert_eq!(
        s.summarize_pending(None, 10, plain_summary).await.unwrap(),
        0
    );
    assert_eq!((summarized(), mark()), (vec![1, 2, 4, 6], 7));
}

/// A store with two summarised messages (blobs 1 and 2), taken back to schema version 10:
/// a to-do list holding `todo`, no watermark.
async fn summarised_store_at_v10(todo: &[i64]) -> tempfile::TempDir {
    let (dir, s, inbox, _) = inbox_and_archive().await;
    s.append(inbox.id, vec![msg("one"), msg("two")])
        .await
        .unwrap();
    while s.summarize_pending(None, 10, plain_summary).await.unwrap() > 0 {}
    drop(s);
    let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
    c.execute_batch(
        "DELETE FROM meta WHERE key = 'summarized_below';
         CREATE TABLE summary_todo (blob_id INTEGER PRIMARY KEY);
         CREATE TRIGGER blob_added AFTER INSERT ON blobs BEGIN
             INSERT INTO summary_todo (blob_id) VALUES (new.id);
         END;
         PRAGMA user_version = 10;",
    )
    .unwrap();
    for id in todo {
        c.execute("INSERT INTO summary_todo (blob_id) VALUES (?1)", [id])
            .unwrap();
    }
    dir
}

/// The blobs that have a summary, in id order.
fn summarized_blobs(dir: &Path) -> Vec<i64> {
    let db = Connection::open(dir.join(DB_FILE)).unwrap();
    column(&db, "SELECT blob_id FROM summaries ORDER BY blob_id")
}

/// The first column of every row `sql` returns.
fn column<T: rusqlite::types::FromSql>(db: &Connection, sql: &str) -> Vec<T> {
    db.prepare(sql)
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

fn summary_mark(dir: &Path) -> i64 {
    Connection::open(dir.join(DB_FILE))
        .unwrap()
        .query_row(
            "SELECT value FROM meta WHERE key = 'summarized_below'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[tokio::test]
async fn blobs_the_todo_list_held_are_summarised_again_after_the_migration() {
    // The to-do list asks for blob 2 again (as the v4 and v5 migrations did).
    let dir = summarised_store_at_v10(&[2]).await;
    let s = Store::open_embedded(dir.path()).unwrap();
    // The listed blob is the oldest without a summary.
    assert_eq!(summary_mark(dir.path()), 2);
    assert_eq!(
        s.summarize_pending(None, 10, plain_summary).await.unwrap(),
        1
    );
    assert_eq!(
        s.summarize_pending(None, 10, plain_summary).await.unwrap(),
        0
    );
    assert_eq!(summary_mark(dir.path()), 3);
}

#[tokio::test]
async fn a_store_migrated_with_nothing_to_summarise_starts_past_its_newest_blob() {
    let dir = summarised_store_at_v10(&[]).await;
    let _s = Store::open_embedded(dir.path()).unwrap();
    assert_eq!(summary_mark(dir.path()), 3);
}

#[tokio::test]
async fn copies_keep_the_canonical_size_in_their_row() {
    let (dir, s, inbox, other) = inbox_and_archive().await;
    s.append(inbox.id, vec![msg("bare\nlf\n")]).await.unwrap();
    s.copy_messages(inbox.id, vec![1], other.id, false)
        .await
        .unwrap();
    let l = s.message_listing(other.id).await.unwrap();
    assert_eq!(l.messages[0].canonical_size, 10);
    let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
    let sizes: Vec<Option<i64>> = column(
        &c,
        "SELECT canonical_size FROM messages ORDER BY mailbox_id",
    );
    assert_eq!(sizes, [Some(10), Some(10)]);
}

#[tokio::test]
async fn the_background_pass_goes_newest_first_and_never_back_over_its_work() {
    let (dir, s, _, inbox) = one_account().await;
    let summarized = || summarized_blobs(dir.path());
    let batch = || s.summarize_pending(None, 2, plain_summary);
    let bodies = ["1", "2", "3", "4", "5"].map(msg).to_vec();
    s.append(inbox.id, bodies).await.unwrap();
    assert_eq!(s.stats().await.unwrap().unsummarized, 5);
    assert_eq!(batch().await.unwrap(), 2);
    assert_eq!(summarized(), [4, 5]);
    // New mail during the pass waits for the next one; the pass goes on below 4.
    s.append(inbox.id, vec![msg("6")]).await.unwrap();
    assert_eq!(batch().await.unwrap(), 2);
    assert_eq!(summarized(), [2, 3, 4, 5]);
    assert_eq!(batch().await.unwrap(), 1);
    assert_eq!(
        (summarized(), summary_mark(dir.path())),
        (vec![1, 2, 3, 4, 5], 6)
    );
    // The pass reached the bottom: the next starts from the newest.
    assert_eq!(batch().await.unwrap(), 1);
    assert_eq!((summarized().len(), summary_mark(dir.path())), (6, 7));
    assert_eq!(batch().await.unwrap(), 0);
    assert_eq!(s.stats().await.unwrap().unsummarized, 0);
}
