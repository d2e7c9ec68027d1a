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
