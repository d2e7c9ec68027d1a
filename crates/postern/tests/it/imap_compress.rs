//! IMAP COMPRESS=DEFLATE (RFC 4978) over TCP. The compressed client
//! is flate2 on our side of the socket: raw DEFLATE, one sync flush per write, so every
//! command can be decoded by the server at once (and the server must do the same for us, or
//! the reads below time out). mbsync (isync 1.4, zlib) in `imap_interop` also turns
//! COMPRESS on whenever it is advertised, so those tests run compressed too.

use std::net::SocketAddr;
use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::{Imap, PASSWORD, TestServer, contains};

/// Compresses `plain` and sync-flushes, as a client does after each command.
fn deflate_sync(z: &mut Compress, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + 1024);
    let mut rest = plain;
    loop {
        let before = z.total_in();
        z.compress_vec(rest, &mut out, FlushCompress::Sync).unwrap();
        rest = &rest[(z.total_in() - before) as usize..];
        if rest.is_empty() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity().max(1024));
    }
}

/// Inflates what has arrived; `None` if it is not DEFLATE data.
fn inflate(z: &mut Decompress, wire: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(wire.len() * 4 + 1024);
    let mut rest = wire;
    loop {
        let before = z.total_in();
        z.decompress_vec(rest, &mut out, FlushDecompress::Sync)
            .ok()?;
        rest = &rest[(z.total_in() - before) as usize..];
        if rest.is_empty() && out.len() < out.capacity() {
            return Some(out);
        }
        out.reserve(out.capacity());
    }
}

/// Reads plain lines up to the one tagged `tag`, which it returns.
async fn plain_until(io: &mut BufReader<TcpStream>, tag: &str) -> String {
    loop {
        let mut l = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), io.read_line(&mut l))
            .await
            .expect("timed out")
            .unwrap();
        assert!(n > 0, "connection closed");
        if l.starts_with(tag) {
            return l.trim_end().to_string();
        }
    }
}

/// Logs in as lee over plain TCP and sends COMPRESS DEFLATE; returns the socket, on which
/// everything from now on is compressed.
async fn login_and_compress(addr: SocketAddr) -> TcpStream {
    let mut io = BufReader::new(TcpStream::connect(addr).await.unwrap());
    let mut greeting = String::new();
    io.read_line(&mut greeting).await.unwrap();
    assert!(
        !greeting.contains("COMPRESS"),
        "only after login: {greeting}"
    );
    io.get_mut()
        .write_all(format!("c1 LOGIN lee@naver.test \"{PASSWORD}\"\r\n").as_bytes())
        .await
        .unwrap();
    let ok = plain_until(&mut io, "c1 ").await;
    assert!(
        ok.starts_with("c1 OK") && ok.contains("COMPRESS=DEFLATE"),
        "{ok}"
    );
    io.get_mut()
        .write_all(b"c2 COMPRESS DEFLATE\r\n")
        .await
        .unwrap();
    assert_eq!(plain_until(&mut io, "c2 ").await, "c2 OK DEFLATE active");
    assert!(io.buffer().is_empty(), "plaintext after the OK");
    io.into_inner()
}

/// The usual scripted client over a compressed socket: two tasks translate between a plain
/// in-memory pipe and the socket. Socket EOF, or data that does not inflate, is EOF for
/// the client.
fn compressed(tcp: TcpStream) -> Imap {
    let (client, ours) = tokio::io::duplex(1 << 20);
    let (mut plain_r, mut plain_w) = tokio::io::split(ours);
    let (mut tcp_r, mut tcp_w) = tcp.into_split();
    tokio::spawn(async move {
        let mut z = Compress::new(Compression::default(), false);
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = plain_r.read(&mut buf).await {
            if tcp_w
                .write_all(&deflate_sync(&mut z, &buf[..n]))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = tcp_w.shutdown().await;
    });
    tokio::spawn(async move {
        let mut z = Decompress::new(false);
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = tcp_r.read(&mut buf).await {
            let Some(plain) = inflate(&mut z, &buf[..n]) else {
                break;
            };
            if plain_w.write_all(&plain).await.is_err() {
                break;
            }
        }
        let _ = plain_w.shutdown().await;
    });
    Imap::over(Box::new(client))
}

/// A body of many distinct lines (so it does not compress to nothing).
fn lines(n: usize) -> String {
    (0..n)
        .map(|i| format!("line {i:06} of a longer message, {}\r\n", i * 7919 % 10007))
        .collect()
}

#[tokio::test]
async fn compress_deflate_session() {
    let s = TestServer::start().await;
    s.deliver("lee@naver.test", "small", "compressed body")
        .await;
    let big = lines(6000); // about 300 KB: several server flushes and inflate chunks
    s.deliver("lee@naver.test", "big", &big).await;

    // Not before authentication (RFC 4978: authenticated state).
    let (mut pre, _) = Imap::connect(s.imap()).await;
    let r = pre.cmd("COMPRESS DEFLATE").await;
    assert!(r.status.starts_with("BAD"), "{r:?}");
    assert!(pre.cmd("NOOP").await.ok(), "still plain and usable");

    let mut c = compressed(login_and_compress(s.imap()).await);
    let r = c.cmd("CAPABILITY").await;
    assert!(r.ok() && r.has("COMPRESS=DEFLATE"), "{r:?}");
    let r = c.cmd("SELECT INBOX").await;
    assert!(r.ok() && r.has("2 EXISTS"), "{r:?}");
    let r = c.cmd("FETCH 1 BODY[TEXT]").await;
    assert!(r.untagged[0].contains("compressed body"), "{r:?}");
    let r = c.cmd("FETCH 2 BODY.PEEK[TEXT]").await;
    assert!(r.ok(), "{r:?}");
    assert!(
        r.untagged[0].contains(&format!("BODY[TEXT] {{{}}}\r\n{big}", big.len() + 2)),
        "big body differs"
    );
    // Compressed input larger than one inflate chunk, as a non-synchronising literal.
    let appended = format!("Subject: up\r\n\r\n{}", lines(3000));
    let r = c
        .cmd(&format!(
            "APPEND INBOX {{{}+}}\r\n{appended}",
            appended.len()
        ))
        .await;
    assert!(r.status.starts_with("OK [APPENDUID "), "{r:?}");
    assert!(c.cmd("NOOP").await.ok());
    let r = c.cmd("FETCH 3 BODY.PEEK[]").await;
    assert!(r.untagged[0].contains(&appended), "{r:?}");
    assert_eq!(
        s.messages("lee@naver.test", "INBOX").await[2],
        appended.as_bytes()
    );

    // IDLE, woken by an SMTP delivery while compressed.
    let tag = c.next_tag();
    c.bump_tag();
    c.send(format!("{tag} IDLE\r\n").as_bytes()).await;
    assert!(c.line().await.unwrap().starts_with("+ "));
    s.deliver("lee@naver.test", "wake", "up").await;
    assert_eq!(c.line().await.unwrap(), "* 4 EXISTS");
    c.send(b"DONE\r\n").await;
    assert!(c.until(&tag).await.ok());

    let r = c.cmd("COMPRESS DEFLATE").await;
    assert!(r.status.starts_with("NO [COMPRESSIONACTIVE]"), "{r:?}");
    let r = c.cmd("STARTTLS").await;
    assert!(r.status.starts_with("BAD"), "{r:?}");
    let r = c.cmd("LOGOUT").await;
    assert!(r.ok() && r.has("BYE"), "{r:?}");
    assert_eq!(c.line().await, None, "closed after LOGOUT");
}

#[tokio::test]
async fn corrupt_compressed_input_closes_only_that_session() {
    let s = TestServer::start().await;
    s.deliver("lee@naver.test", "one", "body").await;
    let mut plain = Imap::login(s.imap(), "lee@naver.test").await;
    assert!(plain.cmd("SELECT INBOX").await.ok());
    let mut other = compressed(login_and_compress(s.imap()).await);
    assert!(other.cmd("SELECT INBOX").await.ok());

    let mut tcp = login_and_compress(s.imap()).await;
    // 0xff starts a block of the reserved type 11: invalid from the first byte.
    tcp.write_all(&[0xff; 64]).await.unwrap();
    let mut wire = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut wire))
        .await
        .expect("the server did not close the connection")
        .unwrap();
    let said = inflate(&mut Decompress::new(false), &wire).expect("a compressed goodbye");
    assert!(
        contains(&said, "* BYE"),
        "{:?}",
        String::from_utf8_lossy(&said)
    );

    // Both other sessions, compressed or not, carry on.
    assert!(plain.cmd("NOOP").await.ok());
    let r = other.cmd("FETCH 1 BODY[TEXT]").await;
    assert!(r.ok() && r.untagged[0].contains("body"), "{r:?}");
    let mut again = compressed(login_and_compress(s.imap()).await);
    assert!(again.cmd("NOOP").await.ok());
}

#[tokio::test]
async fn input_pipelined_behind_compress_is_refused() {
    let s = TestServer::start().await;
    let mut c = Imap::login(s.imap(), "lee@naver.test").await;
    // RFC 4978 3: the client waits for the answer to COMPRESS before sending more.
    c.send(b"z1 COMPRESS DEFLATE\r\nz2 NOOP\r\n").await;
    let r = c.until("z1").await;
    assert!(r.status.starts_with("BAD") && r.has("BYE"), "{r:?}");
    assert_eq!(c.line().await, None);
}
