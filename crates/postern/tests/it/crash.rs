//! Durability under SIGKILL: parallel SMTP sessions load the real binary, it is killed midway,
//! restarted, and then every message that got "250" must be stored exactly once, and none whose
//! final "." was never sent. A message whose "." was sent but whose reply never arrived is in
//! doubt (the server may have committed it just before dying; SMTP cannot tell the client):
//! it may be present, but at most once. Run with small messages (stored in the database) and
//! large ones (stored in the blob log, made durable alongside the commit).

use std::collections::HashMap;

use std::net::SocketAddr;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::TcpStream;

use crate::cli::ok;

const SESSIONS: usize = 8;
const PER_SESSION: usize = 80;
const KILL_AFTER_ACKS: usize = 150;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    NotFinished,
    InDoubt,
    Acked,
}

/// Starts `postern serve` and returns it with its SMTP address.
fn start_server(dir: &std::path::Path) -> (Child, SocketAddr) {
    let cfg = dir.join("postern.toml");
    std::fs::write(&cfg, crate::support::test_config(&dir.join("data"), "")).unwrap();
    crate::support::spawn_server(&cfg, "smtp")
}

async fn reply(r: &mut TokioBufReader<TcpStream>) -> Option<u16> {
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).await.ok()? == 0 {
            return None;
        }
        if l.as_bytes().get(3) != Some(&b'-') {
            return l.get(..3)?.parse().ok();
        }
    }
}

async fn session(
    addr: SocketAddr,
    first: usize,
    fates: Arc<Mutex<Vec<Fate>>>,
    acks: Arc<AtomicUsize>,
    filler_lines: usize,
) {
    let Ok(tcp) = TcpStream::connect(addr).await else {
        return;
    };
    let mut c = TokioBufReader::new(tcp);
    if reply(&mut c).await != Some(220) {
        return;
    }
    let _ = c.get_mut().write_all(b"EHLO crash.test\r\n").await;
    if reply(&mut c).await != Some(250) {
        return;
    }
    let filler = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n"
        .repeat(filler_lines);
    for k in first..first + PER_SESSION {
        let envelope = "MAIL FROM:<kim@daum.test>\r\nRCPT TO:<lee@naver.test>\r\nDATA\r\n";
        if c.get_mut().write_all(envelope.as_bytes()).await.is_err() {
            return;
        }
        for _ in 0..3 {
            if reply(&mut c).await.is_none_or(|code| code >= 400) {
                return;
            }
        }
        let head = format!("Subject: crash {k}\r\nX-Crash-Id: {k}\r\n\r\n");
        if c.get_mut().write_all(head.as_bytes()).await.is_err()
            || c.get_mut().write_all(filler.as_bytes()).await.is_err()
        {
            return;
        }
        // The last line shows the body arrived whole.
        let end = format!("End-Of-Crash: {k}\r\n.\r\n");
        if c.get_mut().write_all(end.as_bytes()).await.is_err() {
            return;
        }
        fates.lock().unwrap()[k] = Fate::InDoubt;
        match reply(&mut c).await {
            Some(250) => {
                fates.lock().unwrap()[k] = Fate::Acked;
                acks.fetch_add(1, Ordering::SeqCst);
            }
            _ => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_loses_nothing_acknowledged() {
    // About 4.5 KB each.
    crash_run(60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_loses_nothing_acknowledged_in_the_blob_log() {
    // About 44 KB each: above the blob log's threshold.
    crash_run(600).await;
}

async fn crash_run(filler_lines: usize) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&data, &["domain", "add", "naver.test"], None);
    ok(
        &data,
        &["user", "add", "lee@naver.test", "--password-stdin"],
        Some("pw\n"),
    );
    let (mut server, addr) = start_server(dir.path());

    let total = SESSIONS * PER_SESSION;
    let fates = Arc::new(Mutex::new(vec![Fate::NotFinished; total]));
    let acks = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for s in 0..SESSIONS {
        tasks.push(tokio::spawn(session(
            addr,
            s * PER_SESSION,
            fates.clone(),
            acks.clone(),
            filler_lines,
        )));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while acks.load(Ordering::SeqCst) < KILL_AFTER_ACKS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "load did not progress"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let fates = fates.lock().unwrap().clone();
    let acked = fates.iter().filter(|f| **f == Fate::Acked).count();
    assert!(
        acked >= KILL_AFTER_ACKS && acked < total,
        "the kill must land midway (acked {acked} of {total})"
    );

    // Restart on the same data: recovery must succeed and the server must work again.
    let (mut server, addr) = start_server(dir.path());
    session(
        addr,
        0,
        Arc::new(Mutex::new(vec![Fate::NotFinished; total])),
        Arc::new(AtomicUsize::new(0)),
        filler_lines,
    )
    .await;
    server.kill().unwrap();
    server.wait().unwrap();

    let mbox = ok(&data, &["export", "lee@naver.test"], None);
    let mut counts: HashMap<usize, usize> = HashMap::new();
    let mut whole: HashMap<usize, usize> = HashMap::new();
    for line in mbox.lines() {
        if let Some(id) = line.strip_prefix("X-Crash-Id: ") {
            *counts.entry(id.trim().parse().unwrap()).or_default() += 1;
        }
        if let Some(id) = line.strip_prefix("End-Of-Crash: ") {
            *whole.entry(id.trim().parse().unwrap()).or_default() += 1;
        }
    }
    assert_eq!(counts, whole, "every stored message is whole");
    let mut in_doubt = 0;
    for (k, fate) in fates.iter().enumerate() {
        // ids 0..PER_SESSION were sent again after the restart: one more copy each is expected there
        let extra = usize::from(k < PER_SESSION);
        let n = counts.get(&k).copied().unwrap_or(0).saturating_sub(extra);
        match fate {
            Fate::Acked => assert_eq!(n, 1, "acknowledged message {k} stored {n} times"),
            Fate::NotFinished => assert_eq!(n, 0, "message {k} was never finished but is stored"),
            Fate::InDoubt => {
                assert!(n <= 1, "in-doubt message {k} stored {n} times");
                in_doubt += 1;
            }
        }
    }
    eprintln!(
        "crash test: {acked} acknowledged, {in_doubt} in doubt, {} stored",
        counts.values().sum::<usize>()
    );
}
