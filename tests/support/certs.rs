//! Test certificates, made in-process with `rcgen` (no `openssl` binary needed).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
use tokio::net::TcpStream;

/// A self-signed certificate for `localhost` and `127.0.0.1`, written as PEM files.
pub struct TestCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: rustls::pki_types::CertificateDer<'static>,
}

impl TestCert {
    /// A server certificate (no CA bit): what a rustls client trusts as its one root.
    pub fn server(cert: &Path, key: &Path) -> TestCert {
        TestCert::write(cert, key, IsCa::NoCa)
    }

    /// A certificate that is its own CA (`basicConstraints CA:TRUE`), which OpenSSL-based
    /// clients (the Python and Node SDKs, curl) accept as a `--cacert` / `cafile` root.
    pub fn self_signed_ca(cert: &Path, key: &Path) -> TestCert {
        TestCert::write(cert, key, IsCa::Ca(BasicConstraints::Unconstrained))
    }

    fn write(cert: &Path, key: &Path, is_ca: IsCa) -> TestCert {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "localhost");
        params.distinguished_name = dn;
        params.is_ca = is_ca;
        let signing = KeyPair::generate().unwrap();
        let c = params.self_signed(&signing).unwrap();
        std::fs::write(cert, c.pem()).unwrap();
        std::fs::write(key, signing.serialize_pem()).unwrap();
        TestCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            der: c.der().clone(),
        }
    }

    /// The `[tls]` table that serves this certificate.
    pub fn tls_table(&self) -> String {
        format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            self.cert.display(),
            self.key.display()
        )
    }
}

pub type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// A TLS connection to `addr` that trusts only `trust` and offers `alpn`.
pub async fn tls_connect(addr: std::net::SocketAddr, trust: &TestCert, alpn: &[u8]) -> std::io::Result<Tls> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.der.clone()).unwrap();
    let mut cfg =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("TLS handshake timed out"))?
}
