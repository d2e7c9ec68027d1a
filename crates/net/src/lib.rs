//! The listener runtime shared by every protocol: accept loops with connection caps, TLS
//! (implicit and STARTTLS) with a self-signed certificate generated on first start, and
//! graceful shutdown. Knows no protocol.
//!
//! # Layout
//! * `tls`: loading or generating the certificate, building the rustls server config.
//! * `stream`: [`Stream`], a connection that is plaintext or TLS, upgradable in place.
//! * `listener`: [`serve`], the accept loop, and [`ConnLimits`].
//! * `shutdown`: [`Shutdown`], the signal sessions watch to end cleanly.
#![deny(missing_docs)]

mod listener;
mod shutdown;
mod stream;
mod tls;

pub use listener::{ConnLimits, Connection, Handler, TlsMode, serve};
pub use shutdown::{Shutdown, ShutdownTrigger};
pub use stream::Stream;
pub use tls::{TlsFiles, load_tls};
pub use tokio_rustls::TlsAcceptor;

/// Errors of the listener runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A certificate or key file could not be read, written or parsed.
    #[error("TLS {what} {path}: {reason}")]
    Tls {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// An I/O failure.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
