//! TLS on the proxy listener (rustls): certificate chain and key from PEM files, ALPN h2 and
//! http/1.1. Loaded with the config, so a reload picks up renewed certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Certificate chain and key for TLS on the proxy listener (PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Why the listener's certificate could not be loaded; each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Unreadable, or not PEM.
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: no certificate found", .0.display())]
    NoCertificate(PathBuf),
    #[error("{}: no private key found", .0.display())]
    NoKey(PathBuf),
    #[error("certificate and key do not form a valid pair: {0}")]
    Pair(rustls::Error),
    #[error("{0}")]
    Protocols(rustls::Error),
}

pub fn load_server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Read { path, source }
    };
    let cert_pem = std::fs::read(&files.cert_file).map_err(at(&files.cert_file))?;
    let key_pem = std::fs::read(&files.key_file).map_err(at(&files.key_file))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(at(&files.cert_file))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(files.cert_file.clone()));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(at(&files.key_file))?
        .ok_or_else(|| TlsError::NoKey(files.key_file.clone()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Protocols)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::Pair)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
