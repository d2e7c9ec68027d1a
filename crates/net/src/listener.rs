//! The accept loop: connection caps (global and per client IP), implicit TLS handshakes with a
//! timeout, one task per connection, tracked so shutdown can wait for sessions to finish.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use crate::{Shutdown, Stream};

/// Connection caps of one listener.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Concurrent connections in all.
    pub max_connections: usize,
    /// Concurrent connections from one IP address.
    pub max_per_ip: usize,
    /// Time allowed for an implicit-TLS handshake.
    pub handshake_timeout: Duration,
}

/// Whether a listener speaks TLS from the first byte.
#[derive(Clone)]
pub enum TlsMode {
    /// Plaintext (the protocol may offer STARTTLS).
    Plain,
    /// Implicit TLS (SMTPS, IMAPS, POP3S).
    Implicit(TlsAcceptor),
}

/// An accepted connection handed to a [`Handler`].
#[derive(Debug)]
pub struct Connection {
    /// The stream (already TLS on implicit-TLS listeners).
    pub stream: Stream,
    /// The client's address.
    pub peer: SocketAddr,
    /// Our address the client connected to.
    pub local: SocketAddr,
    /// Fires when the server is shutting down.
    pub shutdown: Shutdown,
}

/// A protocol's session entry points.
pub trait Handler: Send + Sync + 'static {
    /// Runs one session to its end.
    fn handle(self: Arc<Self>, conn: Connection) -> impl Future<Output = ()> + Send + 'static;
    /// Tells a plaintext client that the server is too busy, then the connection is closed.
    fn refuse(self: Arc<Self>, stream: TcpStream) -> impl Future<Output = ()> + Send + 'static;
}

/// Releases a connection slot when the session ends.
struct Slot {
    ip: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total -= 1;
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

fn take_slot(counts: &Arc<Mutex<Counts>>, ip: IpAddr, limits: &ConnLimits) -> Option<Slot> {
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    let here = c.per_ip.get(&ip).copied().unwrap_or(0);
    if c.total >= limits.max_connections || here >= limits.max_per_ip {
        return None;
    }
    c.total += 1;
    *c.per_ip.entry(ip).or_insert(0) += 1;
    Some(Slot {
        ip,
        counts: counts.clone(),
    })
}

/// Accepts connections until `shutdown` fires, spawning one tracked task per session.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    tls: TlsMode,
    limits: ConnLimits,
    handler: Arc<H>,
    mut shutdown: Shutdown,
    tracker: TaskTracker,
) {
    let counts = Arc::new(Mutex::new(Counts::default()));
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => return,
        };
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().unwrap_or(peer);
        let Some(slot) = take_slot(&counts, peer.ip(), &limits) else {
            tracing::info!(%peer, "connection refused: limit reached");
            if matches!(tls, TlsMode::Plain) {
                tracker.spawn(handler.clone().refuse(tcp));
            }
            continue;
        };
        let (handler, tls, shutdown, timeout) = (
            handler.clone(),
            tls.clone(),
            shutdown.clone(),
            limits.handshake_timeout,
        );
        tracker.spawn(async move {
            let _slot = slot;
            let stream = match tls {
                TlsMode::Plain => Stream::Plain(tcp),
                TlsMode::Implicit(acceptor) => {
                    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => Stream::Tls(Box::new(s)),
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            handler
                .handle(Connection {
                    stream,
                    peer,
                    local,
                    shutdown,
                })
                .await;
        });
    }
}
