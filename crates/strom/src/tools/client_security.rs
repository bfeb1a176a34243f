//! The security settings of a tool's `--command-config`, written as for Kafka's Java tools
//! (`security.protocol`, `sasl.mechanism`, `sasl.jaas.config`, `ssl.truststore.location`,
//! `ssl.keystore.type=PKCS12`, ...), read once and handed to both clients under the tools:
//! librdkafka, whose names differ (`ssl.ca.location`, `sasl.username`; `translate`), and the
//! protocol client of `kafka_client.rs` (rustls and Strom's own SASL client; `Security`).
//!
//! Nothing is quietly dropped: a setting neither client can honour is refused by name, so a
//! tool never talks plaintext to a cluster the file says is encrypted.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Context};
use strom_broker::sasl::scram::ScramMechanism;
use strom_config::{Keystore, Pem, Pkcs12File, Secret, Truststore};

/// How a tool's connections are secured.
#[derive(Clone, Default)]
pub struct Security {
    /// TLS (`SSL`, `SASL_SSL`), with the host each connection is verified against.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<Login>,
}

#[derive(Clone)]
pub struct Login {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security").field("tls", &self.tls.is_some()).field("sasl", &self.sasl.as_ref().map(|l| (l.mechanism, &l.username))).finish()
    }
}

/// `username="..."` of a JAAS config line.
fn jaas_field(jaas: &str, name: &str) -> Option<String> {
    let (_, rest) = jaas.split_once(&format!("{name}=\""))?;
    rest.split_once('"').map(|(v, _)| v.to_string())
}

/// The SASL user and password: librdkafka's `sasl.username`/`sasl.password`, or the Java
/// tools' `sasl.jaas.config` with PlainLoginModule or ScramLoginModule.
fn credentials(props: &BTreeMap<String, String>) -> anyhow::Result<(Option<String>, Option<String>)> {
    let (mut user, mut password) = (props.get("sasl.username").cloned(), props.get("sasl.password").cloned());
    if let Some(jaas) = props.get("sasl.jaas.config") {
        if jaas.contains("OAuthBearerLoginModule") {
            bail!("sasl.jaas.config: OAUTHBEARER logins are not supported by Strom's tools yet (PLAIN and SCRAM are)");
        }
        if !(jaas.contains("PlainLoginModule") || jaas.contains("ScramLoginModule")) {
            bail!("sasl.jaas.config: only PlainLoginModule and ScramLoginModule logins are supported by Strom's tools");
        }
        user = user.or(jaas_field(jaas, "username"));
        password = password.or(jaas_field(jaas, "password"));
    }
    Ok((user, password))
}

fn store_type(props: &BTreeMap<String, String>, key: &str) -> anyhow::Result<bool> {
    match props.get(key).map(|t| t.trim().to_ascii_uppercase()).as_deref() {
        None | Some("PEM") => Ok(false),
        Some("PKCS12") => Ok(true),
        Some(t) => bail!("{key}={t}: Strom's tools read PEM and PKCS12 stores (convert a JKS store with `keytool -importkeystore -deststoretype PKCS12`)"),
    }
}

/// The truststore the file names, if any.
fn truststore(props: &BTreeMap<String, String>) -> anyhow::Result<Option<Truststore>> {
    let pkcs12 = store_type(props, "ssl.truststore.type")?;
    Ok(match (props.get("ssl.truststore.location"), props.get("ssl.truststore.certificates")) {
        (Some(_), Some(_)) => bail!("give ssl.truststore.location or ssl.truststore.certificates, not both"),
        (Some(path), None) if pkcs12 => {
            let Some(password) = props.get("ssl.truststore.password") else { bail!("a PKCS12 truststore is opened with its password: set ssl.truststore.password") };
            Some(Truststore::Pkcs12(Pkcs12File { key: "ssl.truststore.location".into(), path: path.into(), password: Secret(password.clone()) }))
        }
        (Some(path), None) => Some(Truststore::Pem(Pem::File { key: "ssl.truststore.location".into(), path: path.into() })),
        (None, Some(text)) => Some(Truststore::Pem(Pem::Inline { key: "ssl.truststore.certificates".into(), text: text.clone() })),
        // librdkafka's own name, for a file written for librdkafka-based tools.
        (None, None) => props.get("ssl.ca.location").map(|path| Truststore::Pem(Pem::File { key: "ssl.ca.location".into(), path: path.into() })),
    })
}

/// The keystore (the client certificate) the file names, if any.
fn keystore(props: &BTreeMap<String, String>) -> anyhow::Result<Option<Keystore>> {
    let pkcs12 = store_type(props, "ssl.keystore.type")?;
    Ok(match (props.get("ssl.keystore.location"), props.get("ssl.keystore.certificate.chain"), props.get("ssl.keystore.key")) {
        (Some(path), None, None) if pkcs12 => {
            let Some(password) = props.get("ssl.keystore.password") else { bail!("a PKCS12 keystore is opened with its password: set ssl.keystore.password") };
            Some(Keystore::Pkcs12(Pkcs12File { key: "ssl.keystore.location".into(), path: path.into(), password: Secret(password.clone()) }))
        }
        (Some(path), None, None) => Some(Keystore::Combined(Pem::File { key: "ssl.keystore.location".into(), path: path.into() })),
        (None, Some(chain), Some(key)) => Some(Keystore::Split {
            chain: Pem::Inline { key: "ssl.keystore.certificate.chain".into(), text: chain.clone() },
            key: Pem::Inline { key: "ssl.keystore.key".into(), text: key.clone() },
        }),
        // librdkafka's own names.
        (None, None, None) => match (props.get("ssl.certificate.location"), props.get("ssl.key.location")) {
            (Some(chain), Some(key)) => Some(Keystore::Split {
                chain: Pem::File { key: "ssl.certificate.location".into(), path: chain.into() },
                key: Pem::File { key: "ssl.key.location".into(), path: key.into() },
            }),
            _ => None,
        },
        _ => bail!("give ssl.keystore.location, or both ssl.keystore.certificate.chain and ssl.keystore.key"),
    })
}

fn uses_tls(protocol: &str) -> bool {
    protocol.eq_ignore_ascii_case("SSL") || protocol.eq_ignore_ascii_case("SASL_SSL")
}

fn uses_sasl(protocol: &str) -> bool {
    protocol.eq_ignore_ascii_case("SASL_PLAINTEXT") || protocol.eq_ignore_ascii_case("SASL_SSL")
}

fn protocol(props: &BTreeMap<String, String>) -> anyhow::Result<String> {
    let p = props.get("security.protocol").map_or("PLAINTEXT", String::as_str).trim().to_ascii_uppercase();
    if !matches!(p.as_str(), "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL") {
        bail!("security.protocol={p}: must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL");
    }
    Ok(p)
}

fn mechanism(props: &BTreeMap<String, String>) -> anyhow::Result<Mechanism> {
    // Kafka's clients default to GSSAPI, which Strom does not serve.
    let name = props.get("sasl.mechanism").or_else(|| props.get("sasl.mechanisms")).map_or("GSSAPI", String::as_str).trim();
    Ok(match name.to_ascii_uppercase().as_str() {
        "PLAIN" => Mechanism::Plain,
        "SCRAM-SHA-256" => Mechanism::Scram(ScramMechanism::Sha256),
        "SCRAM-SHA-512" => Mechanism::Scram(ScramMechanism::Sha512),
        other => bail!("sasl.mechanism={other} is not supported by Strom's tools (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"),
    })
}

impl Security {
    /// Reads the security settings of a `--command-config`'s properties.
    pub fn read(props: &BTreeMap<String, String>) -> anyhow::Result<Security> {
        let protocol = protocol(props)?;
        let mut s = Security::default();
        if uses_sasl(&protocol) {
            let mechanism = mechanism(props)?;
            let (Some(username), Some(password)) = credentials(props)? else {
                bail!("SASL needs a user: sasl.jaas.config with username and password (or sasl.username and sasl.password)");
            };
            s.sasl = Some(Login { mechanism, username, password });
        }
        if uses_tls(&protocol) {
            let Some(trust) = truststore(props)? else {
                bail!("security.protocol={protocol} needs the CA that signed the brokers' certificates: set ssl.truststore.location (PEM or PKCS12) or ssl.truststore.certificates");
            };
            let identity = match keystore(props)? {
                Some(ks) => {
                    let password = props.get("ssl.key.password").map(|p| Secret(p.clone()));
                    let (chain, key, _) = strom_broker::tls::load_keystore(&ks, password.as_ref())?;
                    Some((chain, key))
                }
                None => None,
            };
            // Kafka's clients check the host name unless this is set to the empty string.
            let verify_hostname = props.get("ssl.endpoint.identification.algorithm").is_none_or(|v| !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("none"));
            let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
            let config = strom_broker::tls::connector_config(
                Arc::new(strom_broker::tls::provider()),
                &versions,
                &trust,
                identity.map(|(c, k)| (c, k, "ssl.keystore.location")),
                verify_hostname,
            )?;
            s.tls = Some(config);
        }
        Ok(s)
    }
}

/// The properties as librdkafka names them: Kafka's Java names for stores and logins become
/// librdkafka's (`ssl.truststore.location` → `ssl.ca.location`, a PKCS12 truststore → its
/// certificates as `ssl.ca.pem`, `sasl.jaas.config` → `sasl.username`/`sasl.password`, ...);
/// anything else goes through as given, and librdkafka refuses what it does not know by name.
pub fn translate(props: Vec<(String, String)>) -> anyhow::Result<Vec<(String, String)>> {
    let map: BTreeMap<String, String> = props.iter().cloned().collect();
    const JAVA_ONLY: &[&str] = &[
        "ssl.truststore.location",
        "ssl.truststore.type",
        "ssl.truststore.password",
        "ssl.truststore.certificates",
        "ssl.keystore.type",
        "ssl.keystore.certificate.chain",
        "ssl.keystore.key",
        "sasl.jaas.config",
    ];
    let mut out: Vec<(String, String)> = props.into_iter().filter(|(k, _)| !JAVA_ONLY.contains(&k.as_str())).collect();
    fn set(out: &mut Vec<(String, String)>, k: &str, v: String) {
        out.retain(|(key, _)| key != k);
        out.push((k.to_string(), v));
    }
    match truststore(&map)? {
        Some(Truststore::Pem(Pem::File { path, .. })) => set(&mut out, "ssl.ca.location", path.display().to_string()),
        Some(Truststore::Pem(Pem::Inline { text, .. })) => set(&mut out, "ssl.ca.pem", text),
        Some(t @ Truststore::Pkcs12(_)) => {
            let certs = strom_broker::tls::trusted_certificates(&t).context("reading the truststore")?;
            set(&mut out, "ssl.ca.pem", certs.iter().map(|c| pem("CERTIFICATE", c.as_ref())).collect());
        }
        None => {}
    }
    match keystore(&map)? {
        // librdkafka reads the key and the chain from the same PEM file.
        Some(Keystore::Combined(Pem::File { path, .. })) => {
            out.retain(|(k, _)| k != "ssl.keystore.location");
            set(&mut out, "ssl.certificate.location", path.display().to_string());
            set(&mut out, "ssl.key.location", path.display().to_string());
        }
        Some(Keystore::Split { chain: Pem::Inline { text: chain, .. }, key: Pem::Inline { text: key, .. } }) => {
            set(&mut out, "ssl.certificate.pem", chain);
            set(&mut out, "ssl.key.pem", key);
        }
        // PKCS12: librdkafka's own `ssl.keystore.location` / `ssl.keystore.password`.
        _ => {}
    }
    if map.contains_key("sasl.jaas.config") {
        let (user, password) = credentials(&map)?;
        if let Some(u) = user {
            set(&mut out, "sasl.username", u);
        }
        if let Some(p) = password {
            set(&mut out, "sasl.password", p);
        }
    }
    if map.get("ssl.endpoint.identification.algorithm").is_some_and(|v| v.trim().is_empty()) {
        set(&mut out, "ssl.endpoint.identification.algorithm", "none".into());
    }
    Ok(out)
}

/// A DER object as PEM text.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = strom_broker::sasl::scram::base64_encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(line));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn java_names_become_librdkafka_names() {
        let out = translate(props(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.jaas.config", r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="pw";"#),
            ("ssl.truststore.location", "/ca.pem"),
            ("ssl.truststore.type", "PEM"),
            ("ssl.keystore.location", "/me.pem"),
            ("ssl.endpoint.identification.algorithm", ""),
            ("client.id", "x"),
        ]))
        .unwrap();
        let m: BTreeMap<_, _> = out.into_iter().collect();
        assert_eq!(m.get("ssl.ca.location").map(String::as_str), Some("/ca.pem"));
        assert_eq!(m.get("ssl.certificate.location").map(String::as_str), Some("/me.pem"));
        assert_eq!(m.get("ssl.key.location").map(String::as_str), Some("/me.pem"));
        assert_eq!((m["sasl.username"].as_str(), m["sasl.password"].as_str()), ("alice", "pw"));
        assert_eq!(m["ssl.endpoint.identification.algorithm"], "none");
        assert_eq!(m["client.id"], "x");
        for gone in ["sasl.jaas.config", "ssl.truststore.location", "ssl.truststore.type", "ssl.keystore.location"] {
            assert!(!m.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn librdkafka_names_and_pkcs12_keystores_pass_through() {
        let given = props(&[("ssl.ca.location", "/ca.pem"), ("ssl.keystore.type", "PKCS12"), ("ssl.keystore.location", "/me.p12"), ("ssl.keystore.password", "pw")]);
        let m: BTreeMap<_, _> = translate(given).unwrap().into_iter().collect();
        assert_eq!(m.get("ssl.keystore.location").map(String::as_str), Some("/me.p12"));
        assert_eq!(m.get("ssl.keystore.password").map(String::as_str), Some("pw"));
        assert!(!m.contains_key("ssl.keystore.type"));
    }

    #[test]
    fn librdkafka_names_serve_the_protocol_client_too() {
        let p: BTreeMap<String, String> = props(&[("ssl.ca.location", "/ca.pem"), ("ssl.certificate.location", "/c.pem"), ("ssl.key.location", "/k.pem")]).into_iter().collect();
        assert!(matches!(truststore(&p).unwrap(), Some(Truststore::Pem(Pem::File { ref path, .. })) if path.to_str() == Some("/ca.pem")));
        assert!(matches!(keystore(&p).unwrap(), Some(Keystore::Split { chain: Pem::File { .. }, key: Pem::File { .. } })));
    }

    #[test]
    fn what_cannot_be_honoured_is_refused() {
        assert!(translate(props(&[("ssl.truststore.type", "JKS"), ("ssl.truststore.location", "/t.jks")])).unwrap_err().to_string().contains("JKS"));
        let m = |p: &[(&str, &str)]| Security::read(&p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        assert!(m(&[("security.protocol", "SSL")]).unwrap_err().to_string().contains("ssl.truststore.location"));
        assert!(m(&[("security.protocol", "SASL_PLAINTEXT"), ("sasl.mechanism", "GSSAPI")]).unwrap_err().to_string().contains("GSSAPI"));
        assert!(m(&[("security.protocol", "SASL_PLAINTEXT"), ("sasl.mechanism", "PLAIN")]).unwrap_err().to_string().contains("username"));
        assert!(m(&[("security.protocol", "TLS")]).is_err());
        let s = m(&[("security.protocol", "SASL_PLAINTEXT"), ("sasl.mechanism", "SCRAM-SHA-256"), ("sasl.username", "u"), ("sasl.password", "p")]).unwrap();
        assert!(s.tls.is_none());
        assert_eq!(s.sasl.map(|l| l.mechanism), Some(Mechanism::Scram(ScramMechanism::Sha256)));
    }
}
