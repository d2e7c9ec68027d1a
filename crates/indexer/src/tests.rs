//! Summaries against a real embedded store.

use store::{Flags, NewMessage};

use super::*;

const KOREAN: &[u8] = b"From: =?EUC-KR?B?sei/tcij?= <kim@daum.test>\r\nTo: Lee <lee@naver.test>\r\n\
Subject: Re: =?UTF-8?B?7ZqM7J2YIOyekOujjA==?=\r\nDate: Tue, 3 Nov 2026 10:00:00 +0900\r\n\
Message-ID: <a1@daum.test>\r\nReferences: <r0@daum.test> <r1@daum.test>\r\nX-Odd: =?UTF-8?Q?nul=00here?=\r\n\r\nbody\r\n";

#[test]
fn summary_round_trips() {
    let data = summarize(KOREAN);
    let s = Summary::decode(&data.keys, &data.headers);
    assert_eq!(s.keys, message::sort_keys(KOREAN));
    assert_eq!(s.keys.subject, "회의 자료");
    assert!(s.keys.subject_is_reply);
    assert_eq!(s.keys.references, ["<r0@daum.test>", "<r1@daum.test>"]);
    let from = s.headers.iter().find(|(n, _)| n == "from").unwrap();
    assert_eq!(from.1, "김영호 <kim@daum.test>");
    let odd = s.headers.iter().find(|(n, _)| n == "x-odd").unwrap();
    assert_eq!(odd.1, "nul here");
    assert_eq!(s.headers.len(), 7);
    assert_eq!(sent_date(&data.keys), s.keys.date);
    assert_eq!(header_fields(&data.headers).count(), 7);
}

#[test]
fn empty_and_garbage_decode_to_defaults() {
    assert_eq!(Summary::decode(b"", b""), Summary::default());
    let s = Summary::decode(b"\xff\x00\x00", b"lonely");
    assert_eq!(s.keys.date, None);
    assert!(s.headers.is_empty());
    let data = summarize(b"");
    assert_eq!(Summary::decode(&data.keys, &data.headers).headers, vec![]);
}

#[tokio::test]
async fn ensure_summarises_a_mailbox_and_deletion_drops_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_embedded(dir.path()).unwrap();
    store.add_domain("naver.test").await.unwrap();
    let lee = store.add_account("lee@naver.test", "x").await.unwrap();
    let inbox = store.mailbox_by_name(lee, "INBOX").await.unwrap().unwrap();
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
    assert_eq!(decode_keys(keys[7].1.as_ref().unwrap()).subject, "m7");

    let hits = store
        .scan_summaries(
            inbox.id,
            Box::new(|k, h| {
                let s = Summary::decode(k, h);
                u64::from(s.headers.iter().any(|(n, v)| n == "subject" && v == "m42"))
            }),
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
    // The background task finds nothing left to do and stops when told.
    run(store.clone(), async {}).await;
}
