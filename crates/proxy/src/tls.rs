//! TLS on the proxy listener (rustls): certificate chain and key from PEM files, ALPN h2 and
//! http/1.1. Loaded with the config, so a reload picks up renewed certificates.

use std::path::PathBuf;
use std::sync::Arc;

/// Certificate chain and key for TLS on the proxy listener (PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

pub fn load_server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, String> {
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let cert_pem = read(&files.cert_file)?;
    let key_pem = read(&files.key_file)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", files.cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", files.cert_file.display()));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| format!("{}: {e}", files.key_file.display()))?
        .ok_or_else(|| format!("{}: no private key found", files.key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not form a valid pair: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
