//! Fetching OAUTHBEARER's JSON Web Key Set: from a `file:` URL, or with one HTTP/1.1 GET over
//! `http://` or `https://` (hyper's client; TLS with rustls, trusting the CA certificates of
//! `SSL_CERT_FILE` or the system's bundle). Bounded in time and size: a key set is small.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use jsonwebtoken::jwk::JwkSet;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BYTES: usize = 1 << 20;
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub async fn fetch(url: &str) -> Result<JwkSet, String> {
    let body = if let Some(path) = url.strip_prefix("file:") {
        // `file:///etc/jwks.json` and `file:/etc/jwks.json` both name /etc/jwks.json.
        let path = path.strip_prefix("//").unwrap_or(path);
        let p = path.to_string();
        tokio::task::spawn_blocking(move || std::fs::read(&p)).await.map_err(|e| e.to_string())?.map_err(|e| format!("cannot read {path}: {e}"))?
    } else {
        tokio::time::timeout(TIMEOUT, get(url)).await.map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))??
    };
    let set: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
    if set.keys.is_empty() {
        return Err("the key set holds no key".into());
    }
    Ok(set)
}

/// (https, host, port, path and query) of an http(s) URL.
fn split(url: &str) -> Result<(bool, String, u16, String), String> {
    let (tls, rest) = match url.split_once("://") {
        Some(("https", r)) => (true, r),
        Some(("http", r)) => (false, r),
        _ => return Err("not an http:// or https:// URL".into()),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse::<u16>().map_err(|_| format!("bad port in {url}"))?),
        _ => (authority, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(format!("no host in {url}"));
    }
    Ok((tls, host.trim_start_matches('[').trim_end_matches(']').to_string(), port, path.to_string()))
}

async fn get(url: &str) -> Result<Vec<u8>, String> {
    let (tls, host, port, path) = split(url)?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let authority = if (tls && port == 443) || (!tls && port == 80) { host.clone() } else { format!("{host}:{port}") };
    if !tls {
        return request(tcp, &authority, &path).await;
    }
    let bundle = std::env::var("SSL_CERT_FILE").unwrap_or_else(|_| SYSTEM_CA_BUNDLE.to_string());
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&bundle).map_err(|e| format!("cannot read the CA certificates in {bundle}: {e}"))?.filter_map(Result::ok).collect();
    roots.add_parsable_certificates(certs);
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(ring_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.clone()).map_err(|e| format!("bad host name {host}: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| format!("TLS with {host}: {e}"))?;
    request(stream, &authority, &path).await
}

/// rustls' ring provider, as the listeners use it (`tls.rs`).
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

async fn request<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: S, authority: &str, path: &str) -> Result<Vec<u8>, String> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    // The connection task ends when the response is read (or the request fails).
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let body = Limited::new(resp.into_body(), MAX_BYTES).collect().await.map_err(|e| format!("reading the answer: {e}"))?;
    Ok(body.to_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_as_expected() {
        assert_eq!(split("https://idp.example/keys").unwrap(), (true, "idp.example".into(), 443, "/keys".into()));
        assert_eq!(split("http://127.0.0.1:8080/a?b=c").unwrap(), (false, "127.0.0.1".into(), 8080, "/a?b=c".into()));
        assert_eq!(split("http://[::1]:81").unwrap(), (false, "::1".into(), 81, "/".into()));
        assert!(split("ftp://x/").is_err() && split("http://:80/").is_err() && split("http://h:x/").is_err());
    }
}
