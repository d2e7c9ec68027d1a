//! TLS configuration: the configured certificate, or a self-signed one generated on first start
//! and kept in `<data_dir>/tls/` so clients can pin it across restarts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::NetError;

/// Where the certificate chain and private key are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Whether Postern generated them (self-signed).
    pub generated: bool,
}

fn tls_err(what: &'static str, path: &Path, reason: impl ToString) -> NetError {
    NetError::Tls {
        what,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Builds the TLS acceptor from `configured` files, or from a self-signed certificate for
/// `hostname` in `data_dir/tls/` (generated if absent).
pub fn load_tls(
    configured: Option<(&Path, &Path)>,
    data_dir: &Path,
    hostname: &str,
) -> Result<(TlsAcceptor, TlsFiles), NetError> {
    let files = match configured {
        Some((cert, key)) => TlsFiles {
            cert: cert.into(),
            key: key.into(),
            generated: false,
        },
        None => ensure_self_signed(data_dir, hostname)?,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| tls_err("certificate", &files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err("certificate", &files.cert, e))?;
    if certs.is_empty() {
        return Err(tls_err(
            "certificate",
            &files.cert,
            "no certificate in file",
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| tls_err("key", &files.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("certificate", &files.cert, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls_err("key", &files.key, e))?;
    Ok((TlsAcceptor::from(Arc::new(config)), files))
}

fn ensure_self_signed(data_dir: &Path, hostname: &str) -> Result<TlsFiles, NetError> {
    let dir = data_dir.join("tls");
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        generated: true,
    };
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    std::fs::create_dir_all(&dir).map_err(|e| tls_err("certificate", &dir, e))?;
    let names = vec![hostname.to_string(), "localhost".to_string()];
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| tls_err("certificate", &files.cert, e))?;
    write_private(&files.key, ck.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&files.cert, ck.cert.pem())
        .map_err(|e| tls_err("certificate", &files.cert, e))?;
    tracing::info!(cert = %files.cert.display(), "generated a self-signed TLS certificate");
    Ok(files)
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), NetError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| tls_err("key", path, e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| tls_err("key", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let (_, f1) = load_tls(None, dir.path(), "mail.example.test").unwrap();
        assert!(f1.generated);
        let pem1 = std::fs::read(&f1.cert).unwrap();
        let (_, f2) = load_tls(None, dir.path(), "mail.example.test").unwrap();
        assert_eq!(pem1, std::fs::read(&f2.cert).unwrap());
        let bad = dir.path().join("missing.pem");
        let err = load_tls(Some((&bad, &bad)), dir.path(), "x").err().unwrap();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
