//! SIGKILL during outbound delivery: the sending server (the real binary) is killed while its
//! queue runner relays to the receiving server, then started again. Every message that got
//! "250" at submission must reach the recipient, at least once (a message the peer took just
//! before the kill may arrive twice: RFC 5321 6.1 accepts duplicates, never losses), and the
//! queue must end empty.

use std::collections::HashMap;

use std::net::SocketAddr;
use std::process::Child;
use std::sync::{Arc, Mutex};

use base64::Engine;

use crate::cli::ok;
use crate::support::{
    Node, PASSWORD, Raw, TestServer, common_port, contains, eventually, loopback_net,
};

const SESSIONS: usize = 4;
const PER_SESSION: usize = 40;

/// Starts `postern serve` for daum.test; returns it with its submission address.
fn start_daum(dir: &std::path::Path) -> (Child, SocketAddr) {
    crate::support::spawn_server(&dir.join("postern.toml"), "submission")
}

/// One submission session; records the subjects that got "250".
async fn session(addr: SocketAddr, first: usize, acked: Arc<Mutex<Vec<String>>>) {
    let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    let mut c = Raw {
        io: tokio::io::BufReader::new(Box::new(tcp)),
    };
    let plain =
        base64::engine::general_purpose::STANDARD.encode(format!("\0kim@daum.test\0{PASSWORD}"));
    let script = async {
        c.reply().await?;
        c.line("EHLO crash.test").await;
        c.reply().await?;
        c.line(&format!("AUTH PLAIN {plain}")).await;
        if c.reply().await?.code != 235 {
            return None;
        }
        for i in first..first + PER_SESSION {
            let subject = format!("crash-{i:04}");
            c.line("MAIL FROM:<kim@daum.test>").await;
            c.reply().await?;
            c.line("RCPT TO:<lee@naver.test>").await;
            c.reply().await?;
            c.line("DATA").await;
            if c.reply().await?.code != 354 {
                return None;
            }
            c.send(format!("Subject: {subject}\r\nMessage-ID: <{subject}@daum.test>\r\n\r\nbody {i}\r\n.\r\n").as_bytes())
                .await;
            if c.reply().await?.code == 250 {
                acked.lock().unwrap().push(subject);
            }
        }
        Some(())
    };
    // The server may die under us: a closed connection ends the session (a failed write
    // panics this task, which the test ignores).
    let _ = script.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_relaying_loses_nothing() {
    let net = loopback_net();
    let (daum_ip, naver_ip) = (format!("{net}.2"), format!("{net}.3"));
    let port = common_port(&[&daum_ip, &naver_ip]);
    let mut n = Node::new("mx.naver.test", naver_ip.clone(), port, "naver.test");
    n.users = &["lee@naver.test"];
    let naver = TestServer::node(&n, None).await;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&data, &["domain", "add", "daum.test"], None);
    ok(
        &data,
        &["user", "add", "kim@daum.test", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    std::fs::write(
        dir.path().join("postern.toml"),
        format!(
            "hostname = \"mx.daum.test\"\ndata_dir = \"{}\"\n[dns]\nnameservers = [\"127.0.0.1:9\"]\n\
             [relay]\nsource_address = \"{daum_ip}\"\n[relay.routes]\n\"naver.test\" = \"{naver_ip}:{port}\"\n\
             [listen]\nsmtp = \"{daum_ip}:{port}\"\nsubmission = \"{daum_ip}:0\"\n",
            data.display()
        ),
    )
    .unwrap();

    let (mut child, addr) = start_daum(dir.path());
    let acked = Arc::new(Mutex::new(Vec::new()));
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|s| tokio::spawn(session(addr, s * PER_SESSION, acked.clone())))
        .collect();
    // Kill once the relay is under way. The runner may relay a message before its session
    // has read the "250" for it, so the acknowledgements are waited for too.
    eventually(60, "relaying has started", || async {
        naver.messages("lee@naver.test", "INBOX").await.len() >= 10
            && acked.lock().unwrap().len() >= 10
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for s in sessions {
        let _ = s.await;
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    let at_kill = naver.messages("lee@naver.test", "INBOX").await.len();
    assert!(
        acked.len() >= 10,
        "only {} submissions acknowledged",
        acked.len()
    );

    // Restart: leases left by the killed runner are taken back and retried at once.
    let (mut child, _) = start_daum(dir.path());
    let count = |all: &[Vec<u8>]| {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for m in all {
            for s in &acked {
                if contains(m, &format!("Subject: {s}\r\n")) {
                    *seen.entry(s.clone()).or_default() += 1;
                }
            }
        }
        seen
    };
    eventually(60, "every acknowledged message reached lee", || async {
        count(&naver.messages("lee@naver.test", "INBOX").await).len() == acked.len()
    })
    .await;
    let all = naver.messages("lee@naver.test", "INBOX").await;
    let seen = count(&all);
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    assert!(
        seen.values().all(|n| *n <= 2),
        "a message arrived more than twice: {seen:?}"
    );
    let mut queue = String::new();
    for _ in 0..100 {
        queue = ok(&data, &["queue", "list"], None);
        if queue.contains("queue is empty") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(queue.contains("queue is empty"), "{queue}");
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!(
        "acknowledged {}, at the kill {at_kill} had arrived, duplicates {duplicates}, total {}",
        acked.len(),
        all.len()
    );
}
