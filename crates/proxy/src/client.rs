//! How the proxy reaches its upstreams: rustls with the webpki roots (plus an optional extra
//! CA), HTTP/2 when the upstream offers it over ALPN, HTTP/1.1 otherwise, and optionally
//! through an HTTP CONNECT egress proxy. The connections are pooled by `crate::pool`, which is built from this connector by
//! `crate::snapshot`.

use crate::config::Config;
use crate::BoxError;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

/// TCP, then TLS when the origin is `https`.
pub type Https = HttpsConnector<Connector>;

/// TCP to the upstream, directly or through the configured CONNECT proxy.
#[derive(Clone)]
pub enum Connector {
    Direct(HttpConnector),
    Tunnel(Tunnel<HttpConnector>),
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, BoxError>> + Send>>;

impl tower::Service<http::Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Connector::Direct(c) => c.poll_ready(cx).map_err(Into::into),
            Connector::Tunnel(c) => c.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, dst: http::Uri) -> Connecting {
        match self {
            Connector::Direct(c) => {
                let f = c.call(dst);
                Box::pin(async move { f.await.map_err(Into::into) })
            }
            Connector::Tunnel(c) => {
                let f = c.call(dst);
                Box::pin(async move { f.await.map_err(Into::into) })
            }
        }
    }
}

/// The connector: TCP (direct or tunnelled), then TLS for `https` origins.
/// Why the upstream connector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// `upstream.ca_file` is unreadable or not PEM.
    #[error("upstream.ca_file {}: {source}", path.display())]
    CaFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A certificate in `upstream.ca_file` is not a usable root.
    #[error("upstream.ca_file {}: {source}", path.display())]
    CaCert {
        path: std::path::PathBuf,
        source: rustls::Error,
    },
    #[error("{0}")]
    Protocols(rustls::Error),
}

pub fn connector(config: &Config) -> Result<Https, ConnectorError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &config.upstream_ca_file {
        let unreadable = |source| ConnectorError::CaFile {
            path: path.clone(),
            source,
        };
        let pem = std::fs::read(path).map_err(unreadable)?;
        for cert in rustls_pemfile::certs(&mut &pem[..]) {
            roots
                .add(cert.map_err(unreadable)?)
                .map_err(|source| ConnectorError::CaCert {
                    path: path.clone(),
                    source,
                })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ConnectorError::Protocols)?
        .with_root_certificates(roots)
        .with_no_client_auth();

    let mut http = HttpConnector::new();
    // The scheme is checked by the https wrapper; plain http only reaches configured overrides.
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.timeouts.connect));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let tcp = match &config.connect_proxy {
        Some(proxy) => Connector::Tunnel(Tunnel::new(proxy.clone(), http)),
        None => Connector::Direct(http),
    };

    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::ProxyBody;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// A one-shot upstream that answers any request with `ok`.
    async fn upstream() -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
        });
        addr
    }

    /// A CONNECT proxy that records the target it was asked for, then splices bytes.
    async fn connect_proxy() -> (std::net::SocketAddr, tokio::sync::oneshot::Receiver<String>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut s = BufReader::new(s);
            let mut line = String::new();
            s.read_line(&mut line).await.unwrap();
            let target = line.split_whitespace().nth(1).unwrap().to_string();
            loop {
                let mut h = String::new();
                s.read_line(&mut h).await.unwrap();
                if h == "\r\n" {
                    break;
                }
            }
            let mut up = TcpStream::connect(&target).await.unwrap();
            let _ = tx.send(format!("{} {target}", line.split_whitespace().next().unwrap()));
            s.get_mut()
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await
                .unwrap();
            let _ = tokio::io::copy_bidirectional(s.get_mut(), &mut up).await;
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn requests_go_through_the_connect_proxy_when_configured() {
        let up = upstream().await;
        let (proxy, seen) = connect_proxy().await;
        let text = format!(
            "[upstream]\nbase_urls = {{ eu = \"http://{up}\" }}\nconnect_proxy = \"http://{proxy}\"\n\
             [[projects]]\nname = \"p\"\nregion = \"eu\"\nretention = \"zdr\"\ndefault = true\n"
        );
        let config = Config::from_toml(&text, None).unwrap();
        let pool = crate::snapshot::build_pool(&config).unwrap();
        let req = http::Request::get("/v1/models")
            .header(http::header::HOST, up.to_string())
            .body(ProxyBody::Empty)
            .unwrap();
        let res = pool.send(0, req).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(&res.into_body().collect().await.unwrap().to_bytes()[..], b"ok");
        assert_eq!(seen.await.unwrap(), format!("CONNECT {up}"));
    }

    #[test]
    fn a_connect_proxy_must_be_plain_http() {
        let text = "[upstream]\nconnect_proxy = \"https://proxy:3128\"\n[[projects]]\nname = \"p\"\nregion = \"us\"\nretention = \"default\"\ndefault = true\n";
        let e = Config::from_toml(text, None).unwrap_err();
        assert!(e.problems[0].starts_with("upstream.connect_proxy"), "{e}");
    }
}
