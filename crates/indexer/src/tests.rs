//! Summaries against a real embedded store.

use store::{Flags, NewMessage};

use super::*;

const KOREAN: &[u8] = b"From: =?EUC-KR?B?sei/tcij?= <kim@daum.test>\r\nTo: Lee <lee@naver.test>\r\n\
Subject: Re: =?UTF-8?B?7ZqM7J2YIOyekOujjA==?=\r\nDate: Tue, 3 Nov 2026 10:00:00 +0900\r\n\
Message-ID: <a1@daum.test>\r\nReferences: <r0@daum.test> <r1@daum.test>\r\nX-Odd: =?UTF-8?Q?nul=00here?=\r\n\r\nbody\r\n";

fn headers_of(data: &SummaryData) -> Vec<(&str, &str)> {
    header_fields(&data.headers).collect()
}

#[test]
fn summary_round_trips() {
    let data = summarize(KOREAN);
    let keys = decode_keys(&data.keys, KeyFields::ALL);
    assert_eq!(keys, message::sort_keys(KOREAN));
    assert_eq!(keys.subject, "회의 자료");
    assert!(keys.subject_is_reply);
    assert_eq!(keys.references, ["<r0@daum.test>", "<r1@daum.test>"]);
    assert_eq!(sent_date(&data.keys), keys.date);
    // Only what is asked for is decoded (and the date, always).
    let subject_only = KeyFields {
        subject: true,
        ..KeyFields::default()
    };
    let partial = decode_keys(&data.keys, subject_only);
    assert_eq!(
        (partial.date, partial.subject.as_str()),
        (keys.date, "회의 자료")
    );
    assert!(partial.from.is_empty() && partial.references.is_empty() && !partial.subject_is_reply);
    assert!(keys.date.is_some());
    let headers = headers_of(&data);
    assert_eq!(headers.len(), 7);
    assert!(headers.contains(&("from", "김영호 <kim@daum.test>")));
    assert!(headers.contains(&("x-odd", "nul here")));
}

#[test]
fn empty_and_garbage_decode_to_defaults() {
    assert_eq!(
        decode_keys(b"", KeyFields::ALL),
        message::SortKeys::default()
    );
    assert_eq!(decode_keys(b"\xff\x00\x00", KeyFields::ALL).date, None);
    assert_eq!(sent_date(b"\xff"), None);
    assert_eq!(header_fields(b"").count(), 0);
    assert_eq!(header_fields(b"lonely").count(), 0);
    assert!(headers_of(&summarize(b"")).is_empty());
}

#[test]
fn fetch_parts_are_what_imap_renders_and_damage_is_detected() {
    let raw: &[u8] = b"From: kim@daum.test\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=euc-kr\r\n\r\nbody\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: inner\r\n\r\ninner body\r\n--b--\r\n";
    for msg in [
        raw,
        KOREAN,
        b"" as &[u8],
        b"\x00\xff garbage without a header end",
    ] {
        let stored = summarize(msg).fetch;
        let parts = fetch_parts(&stored).expect("decodes");
        let structure = message::body_structure(msg);
        let mut want = Vec::new();
        proto_imap::envelope(&mut want, &message::envelope(msg));
        assert_eq!(parts.envelope, want);
        want.clear();
        proto_imap::body_structure(&mut want, &structure, true);
        assert_eq!(parts.body_structure, want);
        want.clear();
        proto_imap::body_structure(&mut want, &structure, false);
        assert_eq!(parts.body, want);
        // Cut short or with bytes to spare, it is refused rather than misread.
        assert_eq!(fetch_parts(&stored[..stored.len() - 1]), None);
        assert_eq!(fetch_parts(&[&stored[..], b"x"].concat()), None);
    }
    assert_eq!(fetch_parts(b""), None);
    assert_eq!(fetch_parts(b"\xff\xff\xff\xff"), None);
}

/// A fresh store with one account; its INBOX.
async fn store_with_inbox() -> (tempfile::TempDir, Store, store::Mailbox) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_embedded(dir.path()).unwrap();
    store.add_domain("naver.test").await.unwrap();
    let lee = store.add_account("lee@naver.test", "x").await.unwrap();
    let inbox = store.mailbox_by_name(lee, "INBOX").await.unwrap().unwrap();
    (dir, store, inbox)
}

#[tokio::test]
async fn ensure_summarises_a_mailbox_and_deletion_drops_summaries() {
    let (_dir, store, inbox) = store_with_inbox().await;
    let msg = |subject: &str| NewMessage {
        data: format!("Subject: {subject}\r\nFrom: a@b.test\r\n\r\nhi\r\n").into_bytes(),
        internal_date: 1_700_000_000,
        flags: Flags::default(),
    };
    let uids = store
        .append(inbox.id, (0..600).map(|i| msg(&format!("m{i}"))).collect())
        .await
        .unwrap();
    let keys = store.summary_keys(inbox.id).await.unwrap();
    assert!(keys.iter().all(|(_, k)| k.is_none()));

    assert_eq!(ensure(&store, inbox.id).await.unwrap(), 600);
    assert_eq!(ensure(&store, inbox.id).await.unwrap(), 0);
    let keys = store.summary_keys(inbox.id).await.unwrap();
    assert_eq!(keys.len(), 600);
    assert_eq!(
        decode_keys(keys[7].1.as_ref().unwrap(), KeyFields::ALL).subject,
        "m7"
    );

    let hits = store
        .scan_summaries(
            inbox.id,
            false,
            Box::new(|row| u64::from(header_fields(row.headers).any(|f| f == ("subject", "m42")))),
        )
        .await
        .unwrap();
    assert_eq!(hits, vec![(uids[42], 1)]);

    store
        .store_flags(
            inbox.id,
            uids.clone(),
            store::FlagOp::Add,
            Flags {
                system: Flags::DELETED,
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    store.expunge(inbox.id, None).await.unwrap();
    assert!(store.summary_keys(inbox.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_background_task_drains_the_backlog_and_stops_when_told() {
    let (_dir, store, inbox) = store_with_inbox().await;
    let msgs = (0..300)
        .map(|i| NewMessage {
            data: format!("Subject: s{i}\r\n\r\nhi\r\n").into_bytes(),
            internal_date: 1_700_000_000,
            flags: Flags::default(),
        })
        .collect();
    store.append(inbox.id, msgs).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(store.clone(), async {
        let _ = stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let keys = store.summary_keys(inbox.id).await.unwrap();
        if keys.iter().all(|(_, k)| k.is_some()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "backlog not drained"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("task stops")
        .unwrap();
    assert_eq!(ensure(&store, inbox.id).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_task_yields_while_mail_arrives() {
    let (_dir, store, inbox) = store_with_inbox().await;
    let msg = |i: usize| NewMessage {
        data: format!("Subject: s{i}\r\n\r\nhi\r\n").into_bytes(),
        internal_date: 1_700_000_000,
        flags: Flags::default(),
    };
    store
        .append(inbox.id, (0..300).map(msg).collect())
        .await
        .unwrap();
    let summarised = || async {
        let keys = store.summary_keys(inbox.id).await.unwrap();
        keys.iter().filter(|(_, k)| k.is_some()).count()
    };
    // Deliveries every 50 ms until the reading below is taken (a loaded machine may take it
    // late: the indexer must still see mail arriving then), the indexer started in the
    // middle of them.
    let reading_taken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let arriving = {
        let (store, done) = (store.clone(), reading_taken.clone());
        tokio::spawn(async move {
            let mut i = 300;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                store.append(inbox.id, vec![msg(i)]).await.unwrap();
                i += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            i
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = std::time::Instant::now();
    let task = tokio::spawn(run(store.clone(), async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    // Two small batches at most while busy (one at once, one after a second's pause), not
    // the whole backlog; read later than 1.2 s, one more batch per second.
    let while_busy = summarised().await;
    let batches = 1 + started.elapsed().as_secs() as usize;
    reading_taken.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        while_busy <= batches * BUSY_BATCH,
        "{while_busy} summarised while busy, in {batches} batches' time"
    );
    let total = arriving.await.unwrap();
    // Once mail stops arriving, the backlog goes at full speed.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while summarised().await < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "backlog not drained"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.send(()).unwrap();
    task.await.unwrap();
}
