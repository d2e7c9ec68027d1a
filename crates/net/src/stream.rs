//! A connection that is plaintext or TLS. STARTTLS replaces the plaintext variant in place.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A client connection.
#[derive(Debug)]
pub enum Stream {
    /// Plaintext TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Protocol version and cipher suite, e.g. "TLSv1_3 TLS13_AES_256_GCM_SHA384", for Received headers.
    pub fn tls_description(&self) -> Option<String> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(t) => {
                let (_, conn) = t.get_ref();
                let version = conn
                    .protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default();
                let suite = conn
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()))
                    .unwrap_or_default();
                Some(format!("{version} {suite}").trim().to_string())
            }
        }
    }

    /// Performs the server side of a TLS handshake on a plaintext stream. The caller must have
    /// discarded any plaintext it buffered (STARTTLS command injection).
    pub async fn upgrade(self, acceptor: &TlsAcceptor) -> io::Result<Stream> {
        match self {
            Stream::Plain(tcp) => Ok(Stream::Tls(Box::new(acceptor.accept(tcp).await?))),
            Stream::Tls(_) => Err(io::Error::other("connection is already TLS")),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
