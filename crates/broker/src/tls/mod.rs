//! TLS for SSL listeners: a rustls `ServerConfig` (ring provider) built from a listener's
//! `TlsSettings`, and the `ClientConfig` this broker connects to other brokers and controllers
//! with (`client_config`). Every failure names the config key behind it, so an operator sees
//! "ssl.keystore.location: no private key in the PEM", not a rustls enum.
//!
//! Certificates expire, so they are rotated without a restart: a [`TlsListener`] watches the
//! keystore and truststore files (size and modification time, every [`RELOAD_CHECK`]) and
//! rebuilds the whole config when one changes; new connections get the new config, open ones
//! keep theirs. Kafka reloads only when the keystore is re-set as a dynamic config; watching the
//! files needs no command at all. A changed file that does not load (half written, wrong key)
//! is reported once and the listener keeps serving what it had.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme, SupportedProtocolVersion};
use strom_config::{ClientAuth, ClientTls, Keystore, Pem, Pkcs12File, TlsSettings, TlsVersion, Truststore};

pub mod pkcs12;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read `{key}` ({path}): {source}")]
    Read { key: String, path: String, source: std::io::Error },
    #[error("`{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: &str, reason: impl Into<String>) -> TlsError {
    TlsError::Invalid { key: key.to_string(), reason: reason.into() }
}

fn pem_bytes(p: &Pem) -> Result<Vec<u8>, TlsError> {
    match p {
        Pem::File { key, path } => {
            std::fs::read(path).map_err(|source| TlsError::Read { key: key.clone(), path: path.display().to_string(), source })
        }
        Pem::Inline { text, .. } => Ok(text.clone().into_bytes()),
    }
}

fn certificates(key: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    // The PEM error's text can carry the whole offending line as bytes: keep its gist.
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, format!("bad PEM: {}", e.to_string().split(':').next().unwrap_or("unreadable"))))?;
    if certs.is_empty() {
        return Err(invalid(key, "no CERTIFICATE block in the PEM"));
    }
    Ok(certs)
}

fn private_key(key: &str, pem: &[u8], password: Option<&strom_config::Secret>) -> Result<PrivateKeyDer<'static>, TlsError> {
    // rustls reads PKCS#8, PKCS#1 and SEC1 keys; an encrypted PKCS#8 key is decrypted here with
    // `ssl.key.password` (Kafka's KIP-651 PEM keystores allow the same).
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    let text = String::from_utf8_lossy(pem);
    if let Some(start) = text.find(BEGIN) {
        let Some(password) = password else {
            return Err(invalid(key, "the private key is encrypted: set ssl.key.password"));
        };
        let body = &text[start + BEGIN.len()..];
        let body = body.find(END).map(|e| &body[..e]).ok_or_else(|| invalid(key, "the encrypted private key's PEM block is not closed"))?;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = crate::sasl::scram::base64_decode(&b64).ok_or_else(|| invalid(key, "the encrypted private key is not valid base64"))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice()).map_err(|e| invalid(key, format!("not an encrypted PKCS#8 key ({e})")))?;
        // A wrong password fails the decryption's padding check (or, rarely, yields garbage that
        // the key check of `server_config` then refuses).
        let plain = info.decrypt(password.0.as_bytes()).map_err(|e| invalid("ssl.key.password", format!("cannot decrypt the private key with it ({e})")))?;
        return Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()));
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| invalid(key, format!("no usable private key in the PEM ({e})")))
}

/// The suites of `provider` that `names` allow, in that order of preference, by Java's IANA
/// names (`TLS_AES_128_GCM_SHA256`; rustls spells TLS 1.3 suites `TLS13_...`). Empty `names`:
/// all of them, AES-128-GCM first. Clients (OpenSSL, Java) list AES-256-GCM first, which
/// costs the broker more CPU per byte for no security TLS 1.3 asks for: the server's order
/// decides (`ignore_client_order`).
fn order_suites(provider: &mut CryptoProvider, names: &[String]) -> Result<(), TlsError> {
    let java_name = |s: &rustls::SupportedCipherSuite| s.suite().as_str().map(|n| n.replacen("TLS13_", "TLS_", 1));
    if names.is_empty() {
        // A stable sort keeps rustls's order otherwise (TLS 1.3 before 1.2, ECDSA before RSA).
        provider.cipher_suites.sort_by_key(|s| !java_name(s).is_some_and(|n| n.contains("AES_128_GCM")));
        return Ok(());
    }
    let mut chosen = Vec::new();
    for n in names {
        match provider.cipher_suites.iter().find(|s| java_name(s).as_deref() == Some(n.as_str())) {
            Some(s) => chosen.push(*s),
            None => {
                let known: Vec<String> = provider.cipher_suites.iter().filter_map(java_name).collect();
                return Err(invalid("ssl.cipher.suites", format!("`{n}` is not offered (rustls offers {})", known.join(", "))));
            }
        }
    }
    provider.cipher_suites = chosen;
    Ok(())
}

/// The crypto provider every TLS config of Strom uses, listeners and clients alike.
pub fn provider() -> CryptoProvider {
    // ring, not aws-lc (no C/cmake build on these machines). rustls 0.23.48 deprecates it for
    // lacking post-quantum key exchange; the classical groups it offers are what Kafka's JVM
    // clients and librdkafka negotiate today.
    #[allow(deprecated)]
    rustls::crypto::ring::default_provider()
}

/// The crypto provider and versions `settings` allow.
fn provider_and_versions(settings: &TlsSettings) -> Result<(Arc<CryptoProvider>, Vec<&'static SupportedProtocolVersion>), TlsError> {
    let mut provider = provider();
    order_suites(&mut provider, &settings.cipher_suites)?;
    let versions = settings
        .protocols
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    Ok((Arc::new(provider), versions))
}

fn keystore(settings: &TlsSettings) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, &str), TlsError> {
    load_keystore(&settings.keystore, settings.key_password.as_ref())
}

/// A keystore's certificate chain and private key, and the config key they came from.
pub fn load_keystore<'k>(keystore: &'k Keystore, key_password: Option<&strom_config::Secret>) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, &'k str), TlsError> {
    Ok(match keystore {
        Keystore::Combined(pem) => {
            let bytes = pem_bytes(pem)?;
            (certificates(pem.key(), &bytes)?, private_key(pem.key(), &bytes, key_password)?, pem.key())
        }
        Keystore::Split { chain, key } => (certificates(chain.key(), &pem_bytes(chain)?)?, private_key(key.key(), &pem_bytes(key)?, key_password)?, key.key()),
        Keystore::Pkcs12(file) => {
            let key_password = key_password.map(|s| s.0.as_str());
            let (chain, key) = read_pkcs12(file, key_password)?.key_and_chain().map_err(|e| invalid(&file.key, e))?;
            (chain, key, file.key.as_str())
        }
    })
}

fn read_pkcs12(file: &Pkcs12File, key_password: Option<&str>) -> Result<pkcs12::Contents, TlsError> {
    let bytes = std::fs::read(&file.path).map_err(|source| TlsError::Read { key: file.key.clone(), path: file.path.display().to_string(), source })?;
    pkcs12::read(&bytes, &file.password.0, key_password).map_err(|e| invalid(&file.key, e))
}

/// The CA certificates of a truststore.
pub fn trusted_certificates(trust: &Truststore) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    match trust {
        Truststore::Pem(pem) => certificates(pem.key(), &pem_bytes(pem)?),
        Truststore::Pkcs12(file) => {
            let certs: Vec<_> = read_pkcs12(file, None)?.certificates.into_iter().map(|(c, _)| c).collect();
            if certs.is_empty() {
                return Err(invalid(&file.key, "the PKCS12 truststore holds no certificate"));
            }
            Ok(certs)
        }
    }
}

fn roots(trust: &Truststore) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in trusted_certificates(trust)? {
        roots.add(c).map_err(|e| invalid(trust.key(), format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The client side of TLS to another node's listener, as Kafka's inter-broker client: the
/// peer's certificate must chain to the listener's truststore (and name the host reached, with
/// `ssl.endpoint.identification.algorithm=https`); the listener's keystore is the client
/// certificate, sent only when the peer asks for one.
pub fn client_config(tls: &ClientTls) -> Result<Arc<ClientConfig>, TlsError> {
    let settings = &tls.settings;
    let (provider, versions) = provider_and_versions(settings)?;
    // The config refuses a client without a truststore; never connect unverified.
    let trust = settings.truststore.as_ref().ok_or_else(|| invalid("ssl.truststore.location", "a broker verifies its peers: a truststore is needed"))?;
    let (chain, key, key_name) = keystore(settings)?;
    connector_config(provider, &versions, trust, Some((chain, key, key_name)), tls.verify_hostname)
}

/// A TLS client's config: the server's certificate must chain to `trust` (and name the host
/// reached when `verify_hostname`); `identity` is the client certificate, sent when the server
/// asks for one. Used by brokers connecting to peers and by Strom's tools.
pub fn connector_config(
    provider: Arc<CryptoProvider>,
    versions: &[&'static SupportedProtocolVersion],
    trust: &Truststore,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, &str)>,
    verify_hostname: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots(trust)?), provider.clone())
        .build()
        .map_err(|e| invalid(trust.key(), e.to_string()))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| invalid("ssl.enabled.protocols", format!("with ssl.cipher.suites: {e}")))?;
    let builder = if verify_hostname {
        builder.with_webpki_verifier(verifier)
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyHostName(verifier)))
    };
    let config = match identity {
        Some((chain, key, key_name)) => builder.with_client_auth_cert(chain, key).map_err(|e| invalid(key_name, format!("key and certificate do not go together: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `ssl.endpoint.identification.algorithm=` (empty): the whole of webpki's verification except
/// the host name, which is checked last, so a name mismatch is the only error forgiven.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The name a peer at `host` is verified against: its IP address, or its DNS name.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string())
        .map_err(|e| invalid("advertised.listeners", format!("`{host}` is not a host name TLS can verify: {e}")))
}

/// The server side of TLS for one listener.
pub fn server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let (provider, versions) = provider_and_versions(settings)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| invalid("ssl.enabled.protocols", format!("with ssl.cipher.suites: {e}")))?;
    let builder = match (settings.client_auth, &settings.truststore) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (auth, Some(trust)) => {
            let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(trust)?), provider);
            if auth == ClientAuth::Requested {
                verifier = verifier.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(verifier.build().map_err(|e| invalid(trust.key(), e.to_string()))?)
        }
        // The config refuses this combination; never serve without the check it asked for.
        (_, None) => return Err(invalid("ssl.client.auth", "client certificates need a truststore")),
    };
    let (chain, key, key_name) = keystore(settings)?;
    // with_single_cert checks that the key is the certificate's.
    let mut config = builder.with_single_cert(chain, key).map_err(|e| invalid(key_name, format!("key and certificate do not go together: {e}")))?;
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// A certificate's subject as RFC 4514 (RFC 2253) writes it, most specific attribute first
/// (`CN=alice,OU=eng,O=Example`), as Java's `X500Principal.getName()` which Kafka's principals use.
fn subject_dn(der: &[u8]) -> Result<String, String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| format!("unreadable client certificate: {e}"))?;
    Ok(cert.tbs_certificate.subject.to_string())
}

/// How often the files of a TLS listener are checked for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(5);

/// What identifies a version of a file without reading it.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &PathBuf) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// A TLS config rebuilt from its settings when their files change: new connections take the
/// current one, open connections keep theirs. A change that does not load is reported once and
/// the last good config stays.
struct Rotating<C> {
    current: RwLock<Arc<C>>,
    /// The files to watch, the stamps last acted on (loaded, or reported as failing), and when
    /// they were read.
    watch: Mutex<Watch>,
}

struct Watch {
    files: Vec<PathBuf>,
    stamps: Vec<Stamp>,
    at: Instant,
}

impl Watch {
    fn of(settings: &TlsSettings) -> Watch {
        let files = store_files(settings);
        let stamps = files.iter().map(stamp).collect();
        Watch { files, stamps, at: Instant::now() }
    }
}

impl<C> Rotating<C> {
    fn new(settings: &TlsSettings, config: Arc<C>) -> Rotating<C> {
        Rotating { current: RwLock::new(config), watch: Mutex::new(Watch::of(settings)) }
    }

    fn current(&self) -> Arc<C> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Rebuilds with `build` if a file changed since last time: `Ok(true)` when a new config is
    /// in use, `Err` (once per change) when the changed files do not load. With `due_only`,
    /// the files are looked at no more often than every [`RELOAD_CHECK`] (for callers on a
    /// connection's path rather than a timer).
    fn reload_if_changed(&self, due_only: bool, build: impl FnOnce() -> Result<Arc<C>, TlsError>) -> Result<bool, TlsError> {
        {
            let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
            if due_only && watch.at.elapsed() < RELOAD_CHECK {
                return Ok(false);
            }
            let now: Vec<Stamp> = watch.files.iter().map(stamp).collect();
            watch.at = Instant::now();
            if watch.stamps == now {
                return Ok(false);
            }
            watch.stamps = now;
        }
        let config = build()?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(true)
    }

    /// Serves `config`, built from `settings`, whose files are watched from now on.
    fn replace(&self, settings: &TlsSettings, config: Arc<C>) {
        *self.watch.lock().unwrap_or_else(|e| e.into_inner()) = Watch::of(settings);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
    }
}

/// One TLS listener's current config, reloaded when its files change, and rebuilt when its
/// settings are altered as dynamic broker configs.
pub struct TlsListener {
    settings: RwLock<TlsSettings>,
    rotating: Rotating<ServerConfig>,
}

impl TlsListener {
    pub fn new(settings: TlsSettings) -> Result<TlsListener, TlsError> {
        let config = server_config(&settings)?;
        Ok(TlsListener { rotating: Rotating::new(&settings, config), settings: RwLock::new(settings) })
    }

    fn settings(&self) -> TlsSettings {
        self.settings.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The principal of a client that completed the handshake: `User:<name>` from its
    /// certificate's subject through `ssl.principal.mapping.rules`, `User:ANONYMOUS` without a
    /// certificate (`ssl.client.auth` none or requested). `Err` when no rule maps the subject
    /// (or it cannot be read): Kafka then fails the connection's authentication.
    pub fn principal(&self, certificates: Option<&[rustls::pki_types::CertificateDer<'_>]>) -> Result<String, String> {
        let Some(leaf) = certificates.and_then(|c| c.first()) else {
            return Ok(crate::session::ANONYMOUS.to_string());
        };
        let dn = subject_dn(leaf)?;
        let settings = self.settings.read().unwrap_or_else(|e| e.into_inner());
        match settings.principal_rules.name(&dn) {
            Some(name) => Ok(format!("User:{name}")),
            None => Err(format!("no rule of ssl.principal.mapping.rules ({}) applies to {dn}", settings.principal_rules)),
        }
    }

    /// The config for a new connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.rotating.current())
    }

    /// Rebuilds the config if a file changed since last time: `Ok(true)` when a new one is in
    /// use, `Err` (once per change) when the changed files do not load.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let settings = self.settings();
        self.rotating.reload_if_changed(false, || server_config(&settings))
    }

    /// As `reload_if_changed`, looking at the files at most every [`RELOAD_CHECK`], for a
    /// listener without its own reload timer (the controller quorum's); failures are logged.
    pub fn reload_if_due(&self, what: &str) {
        let settings = self.settings();
        log_reload(what, self.rotating.reload_if_changed(true, || server_config(&settings)));
    }

    /// Serves with new settings (a keystore altered as a dynamic broker config), checked as
    /// `check_replacement` checks them. On error the listener keeps what it had.
    pub fn replace_settings(&self, settings: TlsSettings) -> Result<(), TlsError> {
        check_replacement(&self.settings(), &settings)?;
        let config = server_config(&settings)?;
        self.rotating.replace(&settings, config);
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
        Ok(())
    }
}

/// Checks the TLS listeners of `new` (a config with dynamic configs altered) whose stores differ
/// from `current`'s: each must be able to replace what is served (`check_replacement`).
pub fn check_reconfiguration(current: &strom_config::BrokerConfig, new: &strom_config::BrokerConfig) -> Result<(), TlsError> {
    // The controller quorum's listener is served by the controller's own transport, which
    // follows its files but not dynamic configs: refused rather than stored and not acted on.
    if let Some(c) = &new.cluster.controller_listener {
        if current.reconfigurable_tls(&c.name) != new.reconfigurable_tls(&c.name) {
            return Err(invalid(
                &format!("listener.name.{}.ssl.*", c.name.to_ascii_lowercase()),
                "the controller listener's stores cannot be altered as dynamic configs (give the keys with another listener's prefix); replace their files instead (followed within 5 s)",
            ));
        }
    }
    for l in &new.listeners {
        let (Some(new_tls), Some(old_tls)) = (&l.tls, current.listeners.iter().find(|o| o.name == l.name).and_then(|o| o.tls.as_ref())) else { continue };
        if current.reconfigurable_tls(&l.name) != new.reconfigurable_tls(&l.name) {
            check_replacement(old_tls, new_tls).map_err(|e| invalid(&format!("listener {}", l.name), e.to_string()))?;
        }
    }
    Ok(())
}

/// Whether a listener may switch from `old` to `new` settings: the new stores load and make a
/// working config, and the new certificate names the same subject and the same alternative
/// names as the old one, so that clients checking host names (and peers checking principals)
/// see the same identity. Kafka checks the same before it swaps a keystore altered at run time.
pub fn check_replacement(old: &TlsSettings, new: &TlsSettings) -> Result<(), TlsError> {
    server_config(new)?;
    let (old_chain, _, _) = keystore(old)?;
    let (new_chain, _, key_name) = keystore(new)?;
    let identity = |chain: &[CertificateDer<'static>]| -> Result<(String, Option<Vec<u8>>), TlsError> {
        use x509_cert::der::Decode;
        let leaf = chain.first().ok_or_else(|| invalid(key_name, "the keystore holds no certificate"))?;
        let cert = x509_cert::Certificate::from_der(leaf).map_err(|e| invalid(key_name, format!("unreadable certificate: {e}")))?;
        let san = cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == x509_cert::der::oid::ObjectIdentifier::new_unwrap("2.5.29.17"))
            .map(|e| e.extn_value.as_bytes().to_vec());
        Ok((cert.tbs_certificate.subject.to_string(), san))
    };
    let (old_dn, old_san) = identity(&old_chain)?;
    let (new_dn, new_san) = identity(&new_chain)?;
    if old_dn != new_dn {
        return Err(invalid(key_name, format!("the new certificate's subject `{new_dn}` is not the current one's `{old_dn}`")));
    }
    if old_san != new_san {
        return Err(invalid(key_name, "the new certificate's subject alternative names are not the current one's"));
    }
    Ok(())
}

fn log_reload(what: &str, result: Result<bool, TlsError>) {
    match result {
        Ok(true) => tracing::info!(what, "TLS keystore or truststore changed: new connections use the new certificates"),
        Ok(false) => {}
        Err(e) => tracing::error!(what, error = %e, "TLS files changed but do not load: still using the previous certificates"),
    }
}

/// The client side of this node's TLS to its peers (inter-broker and controller connections),
/// rebuilt when the keystore or truststore files change, so a rotated certificate is presented
/// on the next connection without a restart; the inter-broker one also when its listener's
/// stores are altered as dynamic broker configs (`replace`).
pub struct ClientTlsRotating {
    tls: RwLock<ClientTls>,
    rotating: Rotating<ClientConfig>,
    what: &'static str,
}

impl ClientTlsRotating {
    pub fn new(tls: &ClientTls, what: &'static str) -> Result<ClientTlsRotating, TlsError> {
        let config = client_config(tls)?;
        Ok(ClientTlsRotating { rotating: Rotating::new(&tls.settings, config), tls: RwLock::new(tls.clone()), what })
    }

    /// The connector for a new connection (the files looked at first, at most every
    /// [`RELOAD_CHECK`]).
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        // Held while the files are looked at, so that a `replace` is never undone by a reload
        // of the stores it replaced.
        let tls = self.tls.read().unwrap_or_else(|e| e.into_inner());
        log_reload(self.what, self.rotating.reload_if_changed(true, || client_config(&tls)));
        tokio_rustls::TlsConnector::from(self.rotating.current())
    }

    /// Connects with new stores from now on (open connections keep theirs). On error nothing
    /// changes.
    pub fn replace(&self, tls: &ClientTls) -> Result<(), TlsError> {
        let config = client_config(tls)?;
        let mut current = self.tls.write().unwrap_or_else(|e| e.into_inner());
        self.rotating.replace(&tls.settings, config);
        *current = tls.clone();
        Ok(())
    }
}

fn store_files(settings: &TlsSettings) -> Vec<PathBuf> {
    let file = |p: &Pem| match p {
        Pem::File { path, .. } => Some(path.clone()),
        Pem::Inline { .. } => None,
    };
    let mut out = Vec::new();
    match &settings.keystore {
        Keystore::Combined(p) => out.extend(file(p)),
        Keystore::Split { chain, key } => out.extend(file(chain).into_iter().chain(file(key))),
        Keystore::Pkcs12(f) => out.push(f.path.clone()),
    }
    match &settings.truststore {
        Some(Truststore::Pem(p)) => out.extend(file(p)),
        Some(Truststore::Pkcs12(f)) => out.push(f.path.clone()),
        None => {}
    }
    out
}
