//! What security each listener asks for, and the rule that no listener serves less.
//!
//! Kafka names a listener's security protocol through `listener.security.protocol.map`
//! (`NAME:PROTOCOL,...`); a listener named after a protocol (`SSL://`) maps to it by the
//! default map. Every protocol is served, but never with less than it asks for: an SSL listener
//! without a usable keystore, or a SASL listener whose mechanisms Strom does not serve or whose
//! users are not given, is a startup error. Every Kafka security key Strom does not act on
//! (delegation tokens, Java-only `ssl.*` keys, ...) is refused with a message saying so,
//! instead of being accepted and ignored.
//!
//! A broker is also a client of the other brokers (replication, transaction markers) and of the
//! controller quorum: [`InterBroker`] and [`ClientTls`] say how it connects to them, from the
//! same listener settings Kafka's inter-broker client reads.
//!
//! The TLS keys (`ssl.*`, in the key table's Security section) may be set per listener as
//! `listener.name.<listener>.<key>`, which wins over the bare key. This module resolves them
//! into [`TlsSettings`]; reading the PEM files is the broker's (this crate does no I/O beyond
//! the properties file).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::keys::{key, Key, Section};
use crate::resolve::{invalid, Resolver};
use crate::ConfigError;

/// Kafka's security protocols, by their names in `listener.security.protocol.map`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub const ALL: [SecurityProtocol; 4] = [Self::Plaintext, Self::Ssl, Self::SaslPlaintext, Self::SaslSsl];

    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// Case-insensitive, as Kafka's `SecurityProtocol.forName` after upper-casing.
    pub fn parse(s: &str) -> Option<SecurityProtocol> {
        Self::ALL.into_iter().find(|p| p.name().eq_ignore_ascii_case(s.trim()))
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

/// Kafka's default `listener.security.protocol.map`: each protocol names itself.
pub const DEFAULT_PROTOCOL_MAP: &str = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

/// The effective map from (upper-cased) listener name to protocol, as Kafka's
/// `effectiveListenerSecurityProtocolMap`: when the map is not set explicitly and nothing uses
/// SSL or SASL, the controller listener names map to PLAINTEXT, so `CONTROLLER://` works without
/// a map.
pub(crate) fn protocol_map(
    value: &str,
    explicit: bool,
    listener_names: &[String],
    controller_names: &[&str],
) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
    const KEY: &str = "listener.security.protocol.map";
    let mut map = BTreeMap::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, protocol) = item
            .split_once(':')
            .ok_or_else(|| invalid(KEY, value, format!("`{item}`: expected LISTENER_NAME:SECURITY_PROTOCOL")))?;
        let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
            invalid(KEY, value, format!("`{protocol}` is not a security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)"))
        })?;
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    if !explicit {
        let secured = |n: &str| SecurityProtocol::parse(n).is_some_and(|p| p != SecurityProtocol::Plaintext);
        if !controller_names.iter().any(|n| secured(n)) && !listener_names.iter().any(|n| secured(n)) {
            for name in controller_names {
                map.entry(name.to_ascii_uppercase()).or_insert(SecurityProtocol::Plaintext);
            }
        }
    }
    Ok(map)
}

/// Whether `key` is one of Kafka's security settings (TLS, SASL, authorization, principals),
/// also under a per-listener prefix (`listener.name.<name>.ssl.keystore.location`,
/// `listener.name.<name>.plain.sasl.jaas.config`).
pub fn is_security_key(key: &str) -> bool {
    let bare = match key.strip_prefix("listener.name.") {
        Some(rest) => rest.split_once('.').map_or(rest, |(_, k)| k),
        None => key,
    };
    const PREFIXES: &[&str] = &["ssl.", "sasl.", "security.", "authorizer.", "delegation.token.", "principal.builder."];
    const KEYS: &[&str] = &["super.users", "allow.everyone.if.no.acl.found", "connections.max.reauth.ms"];
    PREFIXES.iter().any(|p| bare.starts_with(p))
        || KEYS.contains(&bare)
        // `<mechanism>.sasl.jaas.config`, `<mechanism>.sasl.login.callback.handler.class`, ...
        || bare.contains(".sasl.")
}

/// A security key set to a value that asks for no security at all (Kafka's own default, as a
/// stock `server.properties` may spell out) is accepted: refusing it would protect nothing.
pub fn asks_for_nothing(key: &str, value: &str) -> bool {
    let v = value.trim();
    match key {
        "authorizer.class.name" | "super.users" => v.is_empty(),
        "allow.everyone.if.no.acl.found" => v.eq_ignore_ascii_case("false"),
        _ => false,
    }
}

/// A security key given per listener (`listener.name.<listener>.ssl.keystore.location`): the
/// bare key, if it is one of the Security section's.
pub(crate) fn per_listener_security_key(name: &str) -> Option<&'static Key> {
    let rest = name.strip_prefix("listener.name.")?;
    let (_, bare) = rest.split_once('.')?;
    key(bare).filter(|k| k.section == Section::Security)
}

/// The JAAS keys Strom reads: `listener.name.<listener>.<mechanism>.sasl.jaas.config` for the
/// mechanisms it serves.
pub(crate) fn is_served_jaas_key(name: &str) -> bool {
    name.strip_prefix("listener.name.")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(_, k)| SaslMechanism::ALL.iter().any(|m| k == format!("{}.sasl.jaas.config", m.name().to_ascii_lowercase())))
}

/// The SASL mechanisms Strom serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    /// SCRAM's credentials live in the metadata log (AlterUserScramCredentials), not the config.
    ScramSha256,
    ScramSha512,
    /// RFC 7628 bearer tokens: JWTs checked against a JWKS (`OAuthSettings`).
    OAuthBearer,
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 4] = [SaslMechanism::Plain, SaslMechanism::ScramSha256, SaslMechanism::ScramSha512, SaslMechanism::OAuthBearer];

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// A SCRAM credential for a new cluster's metadata log (`strom server --add-scram`, as Kafka's
/// `kafka-storage format --add-scram`): salted by the binary before it gets here, so the password
/// itself is not kept; written only by the node that creates the log.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapScram {
    pub name: String,
    /// `ScramSha256` or `ScramSha512`.
    pub mechanism: SaslMechanism,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for BootstrapScram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BootstrapScram {{ name: {:?}, mechanism: {}, iterations: {}, keys: <hidden> }}", self.name, self.mechanism.name(), self.iterations)
    }
}

/// A password from the config: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// Kafka's KRaft authorizer, the one `authorizer.class.name` Strom serves.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// The authorizer's settings; `None` in `BrokerConfig` when no authorizer is configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizerSettings {
    /// Principals allowed everything (`super.users`), as `User:<name>`.
    pub super_users: Vec<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

/// `authorizer.class.name`, `super.users`, `allow.everyone.if.no.acl.found`.
pub(crate) fn authorizer_settings(r: &Resolver) -> Result<Option<AuthorizerSettings>, ConfigError> {
    let class = r.text("authorizer.class.name")?.map(str::trim).unwrap_or("");
    let super_users = r.text("super.users")?.unwrap_or("");
    let super_users: Vec<String> = super_users.split(';').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    if let Some(bad) = super_users.iter().find(|p| !p.split_once(':').is_some_and(|(t, n)| !t.is_empty() && !n.is_empty())) {
        return Err(invalid("super.users", bad, "a principal is written `User:<name>`".into()));
    }
    let allow_everyone_if_no_acl_found = r.bool("allow.everyone.if.no.acl.found")?;
    match class {
        "" => Ok(None),
        STANDARD_AUTHORIZER => Ok(Some(AuthorizerSettings { super_users, allow_everyone_if_no_acl_found })),
        "kafka.security.authorizer.AclAuthorizer" => Err(invalid(
            "authorizer.class.name",
            class,
            format!("AclAuthorizer keeps ACLs in ZooKeeper; Strom stores them in its metadata log, as Kafka's KRaft mode: use {STANDARD_AUTHORIZER}"),
        )),
        other => Err(invalid("authorizer.class.name", other, format!("Strom serves Kafka's {STANDARD_AUTHORIZER} only (other classes cannot be loaded: Strom is not a JVM)"))),
    }
}

/// What a SASL listener authenticates with.
#[derive(Clone, Debug)]
pub struct SaslSettings {
    pub mechanisms: Vec<SaslMechanism>,
    /// PLAIN's users and passwords (`user_<name>="<password>"` in the JAAS config).
    pub plain_users: BTreeMap<String, Secret>,
    /// KIP-368 (`connections.max.reauth.ms`): an authenticated session lasts this long, then
    /// the client must authenticate again on the same connection; 0: for the connection's life.
    pub reauth_ms: u64,
    /// OAUTHBEARER's token validation, when the listener offers it.
    pub oauth: Option<OAuthSettings>,
}

/// How OAUTHBEARER tokens are validated (Kafka's KIP-768 `sasl.oauthbearer.*` keys): JWTs signed
/// by a key of the JWKS at `jwks_url`. Unsigned tokens (Kafka's default, unsecured validator) are
/// never accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthSettings {
    /// `file:`, `http:` or `https:` URL of the JSON Web Key Set.
    pub jwks_url: String,
    /// Refetch the JWKS this often (and sooner, at most every 10 s, for an unknown key id).
    pub jwks_refresh_ms: u64,
    /// The token's `aud` must name one of these (empty: not checked).
    pub expected_audience: Vec<String>,
    /// The token's `iss` must be this (None: not checked).
    pub expected_issuer: Option<String>,
    /// The claim that names the principal (`User:<value>`).
    pub sub_claim_name: String,
    /// Tolerance for `exp`, `nbf` and `iat`, in seconds.
    pub clock_skew_seconds: u64,
}

/// Kafka's validating callback handler class names (3.x and 4.x): the only server callback handler
/// Strom accepts for OAUTHBEARER, since it is what Strom does.
const OAUTH_VALIDATOR_CLASSES: [&str; 2] = [
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
];

/// `listener.name.<listener>.oauthbearer.sasl.server.callback.handler.class`, which Kafka needs to
/// validate signed tokens; Strom always does, so the key is accepted (with Kafka's class only).
pub(crate) fn is_oauth_handler_key(name: &str) -> bool {
    name.strip_prefix("listener.name.").and_then(|rest| rest.split_once('.')).is_some_and(|(_, k)| k == "oauthbearer.sasl.server.callback.handler.class")
}

fn oauth_settings(props: &BTreeMap<String, String>, listener: &str, prefix: &str) -> Result<OAuthSettings, ConfigError> {
    // Per listener first (`listener.name.<l>.sasl.oauthbearer.*`), then the broker's.
    let get = |k: &str| -> (String, Option<String>) {
        let own = format!("{prefix}{k}");
        match props.get(&own) {
            Some(v) => (own, Some(v.trim().to_string())),
            None => (k.to_string(), props.get(k).map(|v| v.trim().to_string()).or_else(|| crate::key(k).and_then(|d| d.default_value()).map(str::to_string))),
        }
    };
    let handler_key = format!("{prefix}oauthbearer.sasl.server.callback.handler.class");
    if let Some(class) = props.get(&handler_key).map(|v| v.trim()) {
        if !OAUTH_VALIDATOR_CLASSES.contains(&class) {
            return Err(invalid(&handler_key, class, format!("Strom validates OAUTHBEARER tokens itself, as {} does; other classes cannot be loaded", OAUTH_VALIDATOR_CLASSES[0])));
        }
    }
    let (url_key, url) = get("sasl.oauthbearer.jwks.endpoint.url");
    let jwks_url = url.filter(|u| !u.is_empty()).ok_or_else(|| {
        invalid(&url_key, "", format!("listener {listener} offers OAUTHBEARER: give the JWKS (file:, http: or https: URL) its tokens' signatures are checked against. Strom never accepts unsigned tokens"))
    })?;
    if !["file:", "http://", "https://"].iter().any(|s| jwks_url.starts_with(s)) {
        return Err(invalid(&url_key, &jwks_url, "a file:, http:// or https:// URL".into()));
    }
    let number = |k: &str| -> Result<u64, ConfigError> {
        let (key, v) = get(k);
        let v = v.unwrap_or_default();
        v.parse::<u64>().map_err(|_| invalid(&key, &v, "a non-negative integer".into()))
    };
    let list = |v: Option<String>| v.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect::<Vec<_>>();
    let (sub_key, sub) = get("sasl.oauthbearer.sub.claim.name");
    let sub_claim_name = sub.filter(|s| !s.is_empty()).ok_or_else(|| invalid(&sub_key, "", "the name of the claim that names the principal".into()))?;
    Ok(OAuthSettings {
        jwks_url,
        jwks_refresh_ms: number("sasl.oauthbearer.jwks.endpoint.refresh.ms")?.max(1),
        expected_audience: list(get("sasl.oauthbearer.expected.audience").1),
        expected_issuer: get("sasl.oauthbearer.expected.issuer").1.filter(|s| !s.is_empty()),
        sub_claim_name,
        clock_skew_seconds: number("sasl.oauthbearer.clock.skew.seconds")?,
    })
}

/// The SASL settings of listener `name`, as Kafka configures a broker: `sasl.enabled.mechanisms`
/// (per listener or bare) and, per mechanism, `listener.name.<listener>.<mechanism>.sasl.jaas.config`.
pub(crate) fn sasl_settings(props: &BTreeMap<String, String>, listener: &str) -> Result<SaslSettings, ConfigError> {
    let prefix = format!("listener.name.{}.", listener.to_ascii_lowercase());
    let mech_key = if props.contains_key(&format!("{prefix}sasl.enabled.mechanisms")) { format!("{prefix}sasl.enabled.mechanisms") } else { "sasl.enabled.mechanisms".into() };
    let value = props.get(&mech_key).map(String::as_str).unwrap_or("GSSAPI");
    let mut mechanisms = Vec::new();
    for m in value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        match SaslMechanism::ALL.iter().find(|s| s.name() == m) {
            Some(s) => mechanisms.push(*s),
            None => {
                return Err(invalid(
                    &mech_key,
                    value,
                    format!("listener {listener}: SASL mechanism `{m}` is not served yet (Strom serves PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER); Strom refuses to start rather than offer less"),
                ))
            }
        }
    }
    if mechanisms.is_empty() {
        return Err(invalid(&mech_key, value, format!("listener {listener} is a SASL listener: name its mechanisms (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)")));
    }
    let mut plain_users = BTreeMap::new();
    if mechanisms.contains(&SaslMechanism::Plain) {
        let jaas_key = format!("{prefix}plain.sasl.jaas.config");
        let jaas = props.get(&jaas_key).ok_or_else(|| {
            invalid(&jaas_key, "", format!("listener {listener} offers PLAIN: its users are given here, as `org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"alice-secret\";`"))
        })?;
        let options = parse_jaas(jaas).map_err(|reason| ConfigError::InvalidValue { key: jaas_key.clone(), value: "<hidden>".into(), reason })?;
        for (k, v) in options {
            if let Some(user) = k.strip_prefix("user_") {
                plain_users.insert(user.to_string(), Secret(v));
            }
        }
        if plain_users.is_empty() {
            return Err(ConfigError::InvalidValue { key: jaas_key, value: "<hidden>".into(), reason: "no user_<name>=\"<password>\" entry: nobody could log in".into() });
        }
    }
    let reauth_key = format!("{prefix}connections.max.reauth.ms");
    let (reauth_key, reauth) = match props.get(&reauth_key) {
        Some(v) => (reauth_key, Some(v)),
        None => ("connections.max.reauth.ms".to_string(), props.get("connections.max.reauth.ms")),
    };
    let reauth_ms = match reauth.map(|v| v.trim()) {
        None | Some("") => 0,
        Some(v) => v.parse::<u64>().map_err(|_| invalid(&reauth_key, v, "a number of milliseconds (0: no re-authentication)".into()))?,
    };
    let oauth = if mechanisms.contains(&SaslMechanism::OAuthBearer) { Some(oauth_settings(props, listener, &prefix)?) } else { None };
    Ok(SaslSettings { mechanisms, plain_users, reauth_ms, oauth })
}

/// The options of a one-module JAAS config (`<LoginModule class> <flag> name="value" ... ;`), as
/// Kafka's `JaasConfig` reads it: values are quoted (with `\` escapes) or bare words. Errors
/// never echo the text (it holds passwords).
fn parse_jaas(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut chars = text.trim().chars().peekable();
    let word = |chars: &mut std::iter::Peekable<std::str::Chars>| -> Result<Option<String>, String> {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut w = String::new();
        match chars.peek() {
            None | Some(';') => return Ok(None),
            Some('"') => {
                chars.next();
                loop {
                    match chars.next() {
                        None => return Err("unterminated quoted value".into()),
                        Some('"') => break,
                        Some('\\') => w.push(chars.next().ok_or("a `\\` at the end")?),
                        Some(c) => w.push(c),
                    }
                }
            }
            Some(_) => {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '=' || c == ';' {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
            }
        }
        Ok(Some(w))
    };
    let _module = word(&mut chars)?.ok_or("no login module")?;
    let flag = word(&mut chars)?.ok_or("no control flag (required)")?;
    if !matches!(flag.as_str(), "required" | "requisite" | "sufficient" | "optional") {
        return Err("the control flag must be required, requisite, sufficient or optional".into());
    }
    let mut options = Vec::new();
    while let Some(name) = word(&mut chars)? {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("option `{name}` has no value"));
        }
        let value = word(&mut chars)?.ok_or_else(|| format!("option `{name}` has no value"))?;
        options.push((name, value));
    }
    if chars.next() != Some(';') {
        return Err("the config must end with `;`".into());
    }
    Ok(options)
}

/// Whether a client must, may or need not present a certificate (`ssl.client.auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// PEM text, from a file or inline in the config. Inline private keys never reach a log:
/// `Debug` shows where the PEM comes from, never its content.
#[derive(Clone)]
pub enum Pem {
    /// `path`, named by the config key that gave it (for error messages).
    File { key: String, path: PathBuf },
    Inline { key: String, text: String },
}

impl Pem {
    /// The config key this PEM came from.
    pub fn key(&self) -> &str {
        match self {
            Pem::File { key, .. } | Pem::Inline { key, .. } => key,
        }
    }
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pem::File { key, path } => write!(f, "{key}={}", path.display()),
            Pem::Inline { key, .. } => write!(f, "{key}=<inline PEM>"),
        }
    }
}

/// Where a listener's key and certificate chain come from.
#[derive(Clone, Debug)]
pub enum Keystore {
    /// One PEM holding both the private key and the chain (`ssl.keystore.location`).
    Combined(Pem),
    /// `ssl.keystore.certificate.chain` and `ssl.keystore.key`, inline.
    Split { chain: Pem, key: Pem },
    /// `ssl.keystore.type=PKCS12`: `ssl.keystore.location` opened with `ssl.keystore.password`.
    Pkcs12(Pkcs12File),
}

/// A password-protected PKCS#12 file, named by the config key that gave it.
#[derive(Clone, Debug)]
pub struct Pkcs12File {
    pub key: String,
    pub path: PathBuf,
    pub password: Secret,
}

/// The CA certificates a listener trusts.
#[derive(Clone, Debug)]
pub enum Truststore {
    /// `ssl.truststore.location` (a PEM file) or `ssl.truststore.certificates` (inline PEM).
    Pem(Pem),
    /// `ssl.truststore.type=PKCS12`: every certificate of the file is trusted.
    Pkcs12(Pkcs12File),
}

impl Truststore {
    /// The config key this truststore came from.
    pub fn key(&self) -> &str {
        match self {
            Truststore::Pem(p) => p.key(),
            Truststore::Pkcs12(f) => &f.key,
        }
    }
}

/// What an SSL listener serves with, resolved from the `ssl.*` keys.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub keystore: Keystore,
    /// `ssl.key.password`: decrypts the keystore's key when it is an encrypted PKCS#8 key.
    pub key_password: Option<Secret>,
    pub truststore: Option<Truststore>,
    pub client_auth: ClientAuth,
    pub protocols: Vec<TlsVersion>,
    /// IANA names as Java spells them; empty: every suite of the enabled versions.
    pub cipher_suites: Vec<String>,
    /// How a client certificate's DN becomes the principal (`ssl.principal.mapping.rules`).
    pub principal_rules: crate::PrincipalRules,
}

/// The TLS settings of listener `name` (upper case): `listener.name.<name lower case>.<key>`
/// over `<key>`. Errors name the key to set.
pub(crate) fn tls_settings(props: &BTreeMap<String, String>, listener: &str) -> Result<TlsSettings, ConfigError> {
    let prefix = format!("listener.name.{}.", listener.to_ascii_lowercase());
    // The key a value came from, for messages: the per-listener one if it is set.
    let shown = |k: &str| {
        let scoped = format!("{prefix}{k}");
        if props.contains_key(&scoped) { scoped } else { k.to_string() }
    };
    let get = |k: &Key| props.get(&format!("{prefix}{}", k.name)).or_else(|| props.get(k.name)).map(String::as_str);
    let r = Resolver::new(&get);
    let set = |k: &str| -> Result<Option<String>, ConfigError> { Ok(r.set(k)?.map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)) };
    // PEM (KIP-651) or PKCS12; JKS is Java's own format, which Strom does not read.
    let store_type = |type_key: &str| -> Result<bool, ConfigError> {
        let t = r.text(type_key)?.unwrap_or("PEM").trim().to_string();
        if t.eq_ignore_ascii_case("PEM") {
            return Ok(false);
        }
        if t.eq_ignore_ascii_case("PKCS12") {
            return Ok(true);
        }
        Err(invalid(&shown(type_key), &t, "PEM and PKCS12 stores are supported, JKS is not: convert it with `keytool -importkeystore -deststoretype PKCS12`".into()))
    };
    let password = |k: &str| props.get(&format!("{prefix}{k}")).or_else(|| props.get(k)).filter(|v| !v.is_empty()).map(|v| Secret(v.clone()));
    let pkcs12_keystore = store_type("ssl.keystore.type")?;
    let pkcs12_truststore = store_type("ssl.truststore.type")?;
    // A password with a PEM store would be ignored: it means a store of another type was meant.
    // (`ssl.key.password` decrypts an encrypted PKCS#8 key of either type.)
    for (k, pkcs12) in [("ssl.keystore.password", pkcs12_keystore), ("ssl.truststore.password", pkcs12_truststore)] {
        if !pkcs12 && password(k).is_some() {
            return Err(ConfigError::InvalidValue {
                key: shown(k),
                value: "<hidden>".into(),
                reason: format!(
                    "a PEM store has no password (its key may be an encrypted PKCS#8 key, with ssl.key.password): set {}=PKCS12 if the store is one",
                    k.replace(".password", ".type")
                ),
            });
        }
    }
    let pkcs12_file = |location: &str, password_key: &str| -> Result<Option<Pkcs12File>, ConfigError> {
        let Some(path) = set(location)? else { return Ok(None) };
        let Some(password) = password(password_key) else {
            return Err(invalid(&shown(password_key), "", format!("a PKCS12 store ({}) is opened with its password: set {password_key}", shown(location))));
        };
        Ok(Some(Pkcs12File { key: shown(location), path: path.into(), password }))
    };
    if pkcs12_keystore {
        for k in ["ssl.keystore.certificate.chain", "ssl.keystore.key"] {
            if set(k)?.is_some() {
                return Err(invalid(&shown(k), "<inline PEM>", "inline PEM with ssl.keystore.type=PKCS12: set ssl.keystore.type=PEM, or give the PKCS12 file as ssl.keystore.location".into()));
            }
        }
    }
    if pkcs12_truststore && set("ssl.truststore.certificates")?.is_some() {
        return Err(invalid(&shown("ssl.truststore.certificates"), "<inline PEM>", "inline PEM with ssl.truststore.type=PKCS12: set ssl.truststore.type=PEM, or give the PKCS12 file as ssl.truststore.location".into()));
    }
    let keystore = match (set("ssl.keystore.location")?, set("ssl.keystore.certificate.chain")?, set("ssl.keystore.key")?) {
        (Some(_), None, None) if pkcs12_keystore => match pkcs12_file("ssl.keystore.location", "ssl.keystore.password")? {
            Some(f) => Keystore::Pkcs12(f),
            None => return Err(invalid(&shown("ssl.keystore.location"), "", "the PKCS12 keystore's location is empty".into())),
        },
        (Some(path), None, None) => Keystore::Combined(Pem::File { key: shown("ssl.keystore.location"), path: path.into() }),
        (None, Some(chain), Some(key)) => Keystore::Split {
            chain: Pem::Inline { key: shown("ssl.keystore.certificate.chain"), text: chain },
            key: Pem::Inline { key: shown("ssl.keystore.key"), text: key },
        },
        (None, None, None) => {
            return Err(invalid(
                &shown("ssl.keystore.location"),
                "",
                format!(
                    "listener {listener} serves TLS and needs a keystore: set ssl.keystore.location (a PEM file with the private key and \
                     its certificate chain), or ssl.keystore.certificate.chain and ssl.keystore.key, optionally under {prefix}"
                ),
            ))
        }
        _ => {
            return Err(invalid(
                &shown("ssl.keystore.location"),
                "",
                "give either ssl.keystore.location, or both ssl.keystore.certificate.chain and ssl.keystore.key".into(),
            ))
        }
    };
    let truststore = match (set("ssl.truststore.location")?, set("ssl.truststore.certificates")?) {
        (Some(_), None) if pkcs12_truststore => pkcs12_file("ssl.truststore.location", "ssl.truststore.password")?.map(Truststore::Pkcs12),
        (Some(path), None) => Some(Truststore::Pem(Pem::File { key: shown("ssl.truststore.location"), path: path.into() })),
        (None, Some(text)) => Some(Truststore::Pem(Pem::Inline { key: shown("ssl.truststore.certificates"), text })),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(invalid(&shown("ssl.truststore.location"), "", "give ssl.truststore.location or ssl.truststore.certificates, not both".into()))
        }
    };
    let auth = r.text("ssl.client.auth")?.unwrap_or("none").trim().to_ascii_lowercase();
    let client_auth = match auth.as_str() {
        "none" => ClientAuth::None,
        "requested" => ClientAuth::Requested,
        "required" => ClientAuth::Required,
        _ => return Err(invalid(&shown("ssl.client.auth"), &auth, "must be none, requested or required".into())),
    };
    if client_auth != ClientAuth::None && truststore.is_none() {
        return Err(invalid(
            &shown("ssl.client.auth"),
            &auth,
            "client certificates are checked against a truststore: set ssl.truststore.location or ssl.truststore.certificates".into(),
        ));
    }
    let protocols_value = r.text("ssl.enabled.protocols")?.unwrap_or_default();
    let mut protocols = Vec::new();
    for p in protocols_value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match p {
            "TLSv1.2" => protocols.push(TlsVersion::Tls12),
            "TLSv1.3" => protocols.push(TlsVersion::Tls13),
            // Java's older names are refused, not quietly dropped: they name insecure versions.
            _ => return Err(invalid(&shown("ssl.enabled.protocols"), protocols_value, format!("`{p}`: only TLSv1.2 and TLSv1.3 are served"))),
        }
    }
    protocols.sort();
    protocols.dedup();
    if protocols.is_empty() {
        return Err(invalid(&shown("ssl.enabled.protocols"), protocols_value, "no TLS version left to serve".into()));
    }
    let rules_value = r.text("ssl.principal.mapping.rules")?.unwrap_or("DEFAULT");
    let principal_rules = crate::PrincipalRules::parse(rules_value).map_err(|why| invalid(&shown("ssl.principal.mapping.rules"), rules_value, why))?;
    let ssl_protocol = r.text("ssl.protocol")?.unwrap_or_default().trim().to_string();
    if !matches!(ssl_protocol.as_str(), "TLSv1.2" | "TLSv1.3" | "TLS") {
        return Err(invalid(&shown("ssl.protocol"), &ssl_protocol, "must be TLSv1.2, TLSv1.3 or TLS".into()));
    }
    let cipher_suites = set("ssl.cipher.suites")?
        .map(|v| v.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    let key_password = password("ssl.key.password");
    Ok(TlsSettings { keystore, key_password, truststore, client_auth, protocols, cipher_suites, principal_rules })
}

/// How this broker connects to another over TLS: the settings of the listener it connects to
/// (its own listener of the same name): the truststore verifies the peer, the keystore is the
/// client certificate a peer with `ssl.client.auth` asks for, versions and suites as served.
#[derive(Clone, Debug)]
pub struct ClientTls {
    pub settings: TlsSettings,
    /// `ssl.endpoint.identification.algorithm=https`: the peer's certificate must name the host.
    pub verify_hostname: bool,
}

/// The credentials this broker logs in to another with (Kafka's inter-broker SASL client).
#[derive(Clone, Debug)]
pub struct SaslLogin {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Secret,
}

/// The inter-broker listener (Kafka's `inter.broker.listener.name` /
/// `security.inter.broker.protocol`): where followers fetch and coordinators send markers, in
/// the peers' registrations, and how this broker connects to it.
#[derive(Clone, Debug)]
pub struct InterBroker {
    /// Upper case, as listener names are.
    pub listener: String,
    pub protocol: SecurityProtocol,
    /// Set exactly when the protocol uses TLS (and this node has peers).
    pub tls: Option<ClientTls>,
    /// Set exactly when the protocol uses SASL (and this node has peers).
    pub sasl: Option<SaslLogin>,
}

/// The client side of TLS to `listener` (upper case), whose server settings are `settings`.
/// A broker must verify the peers it replicates from, so a truststore is required.
pub(crate) fn client_tls(props: &BTreeMap<String, String>, listener: &str, settings: &TlsSettings) -> Result<ClientTls, ConfigError> {
    let k = "ssl.endpoint.identification.algorithm";
    let scoped = format!("listener.name.{}.{k}", listener.to_ascii_lowercase());
    let (shown, value) = match props.get(&scoped) {
        Some(v) => (scoped, v.trim()),
        None => (k.to_string(), props.get(k).map_or("https", |v| v.trim())),
    };
    let verify_hostname = if value.eq_ignore_ascii_case("https") {
        true
    } else if value.is_empty() {
        false
    } else {
        return Err(invalid(&shown, value, "`https` (check the peer's host name) or empty (do not)".into()));
    };
    if settings.truststore.is_none() {
        return Err(invalid(
            &format!("listener.name.{}.ssl.truststore.location", listener.to_ascii_lowercase()),
            "",
            format!(
                "brokers connect to each other's {listener} listener over TLS and must verify the certificate they are shown: \
                 set ssl.truststore.location (or ssl.truststore.certificates) to the CA that signed the brokers' certificates"
            ),
        ));
    }
    Ok(ClientTls { settings: settings.clone(), verify_hostname })
}

/// The login of this broker on SASL listener `listener` with the mechanism `mech_key` names:
/// `username` and `password` from `listener.name.<listener>.<mechanism>.sasl.jaas.config`, as
/// Kafka's inter-broker client reads them. The mechanism must be one the listener offers, or
/// every peer would refuse it.
pub(crate) fn sasl_login(props: &BTreeMap<String, String>, listener: &str, mech_key: &str, served: &SaslSettings) -> Result<SaslLogin, ConfigError> {
    let value = props.get(mech_key).map_or("GSSAPI", |v| v.trim());
    // OAUTHBEARER between brokers would need a token source on each broker (Kafka's login
    // callback handler fetching from an OIDC endpoint), which Strom does not have.
    let Some(mechanism) = SaslMechanism::ALL.into_iter().filter(|m| *m != SaslMechanism::OAuthBearer).find(|m| m.name() == value) else {
        return Err(invalid(
            mech_key,
            value,
            format!("listener {listener} is a SASL listener: brokers log in to it with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (GSSAPI, Kafka's default, and OAUTHBEARER between brokers are not served)"),
        ));
    };
    if !served.mechanisms.contains(&mechanism) {
        return Err(invalid(mech_key, value, format!("listener {listener} does not offer {value} (its sasl.enabled.mechanisms): peers would refuse the login")));
    }
    let jaas_key = format!("listener.name.{}.{}.sasl.jaas.config", listener.to_ascii_lowercase(), mechanism.name().to_ascii_lowercase());
    let hint = || {
        format!(
            "brokers log in to listener {listener} with {value}: give this broker's own `username=\"...\" password=\"...\"` here, as Kafka does \
             (for PLAIN beside the user_<name> entries)"
        )
    };
    let jaas = props.get(&jaas_key).ok_or_else(|| invalid(&jaas_key, "", hint()))?;
    let options = parse_jaas(jaas).map_err(|reason| ConfigError::InvalidValue { key: jaas_key.clone(), value: "<hidden>".into(), reason })?;
    let find = |name: &str| options.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    match (find("username"), find("password")) {
        (Some(username), Some(password)) if !username.is_empty() => Ok(SaslLogin { mechanism, username, password: Secret(password) }),
        _ => Err(ConfigError::InvalidValue { key: jaas_key, value: "<hidden>".into(), reason: hint() }),
    }
}

/// Resolves the inter-broker listener as Kafka's `KafkaConfig` does: `inter.broker.listener.name`,
/// else the listener named after `security.inter.broker.protocol` (never both). `listeners` are
/// this node's bound (non-controller) listeners with their settings, `advertised` what it
/// registers. With `has_peers` false (a cluster of one) the client settings are not needed and
/// not resolved: a single node never connects to another broker.
pub(crate) fn inter_broker(
    props: &BTreeMap<String, String>,
    protocols: &BTreeMap<String, SecurityProtocol>,
    listeners: &[crate::broker::Listener],
    advertised: &[crate::broker::Listener],
    has_peers: bool,
) -> Result<InterBroker, ConfigError> {
    const NAME_KEY: &str = "inter.broker.listener.name";
    const PROTOCOL_KEY: &str = "security.inter.broker.protocol";
    let set = |k: &str| props.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let (key, name) = match (set(NAME_KEY), set(PROTOCOL_KEY)) {
        (Some(_), Some(_)) => {
            return Err(invalid(NAME_KEY, set(NAME_KEY).unwrap_or_default(), format!("give {NAME_KEY} or {PROTOCOL_KEY}, not both (as Kafka)")))
        }
        (Some(name), None) => (NAME_KEY, name.to_ascii_uppercase()),
        (None, Some(p)) => {
            let p = SecurityProtocol::parse(p)
                .ok_or_else(|| invalid(PROTOCOL_KEY, p, "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL".into()))?;
            (PROTOCOL_KEY, p.name().to_string())
        }
        // Kafka's default is the listener named PLAINTEXT; Strom's earlier rule, kept for
        // clusters configured by it, is the first advertised listener.
        (None, None) => match advertised.iter().find(|l| l.name == "PLAINTEXT").or(advertised.first()) {
            Some(l) => (NAME_KEY, l.name.clone()),
            None => return Err(invalid("advertised.listeners", "", "no listener to reach the other brokers on".into())),
        },
    };
    // A single node never connects to another broker: a stock server.properties whose
    // `security.inter.broker.protocol=PLAINTEXT` names no listener of this node still starts.
    let name = match advertised.first() {
        Some(first) if !has_peers && !listeners.iter().any(|l| l.name == name) => first.name.clone(),
        _ => name,
    };
    let shown = || props.get(key).map_or(name.as_str(), |v| v.as_str()).to_string();
    let protocol = *protocols.get(&name).ok_or_else(|| invalid(key, &shown(), format!("no security protocol defined for listener {name}")))?;
    let Some(own) = listeners.iter().find(|l| l.name == name) else {
        return Err(invalid(key, &shown(), format!("listener {name} is not in `listeners` (controller listeners excepted)")));
    };
    if !advertised.iter().any(|l| l.name == name) {
        return Err(invalid(key, &shown(), format!("listener {name} is not in advertised.listeners: other brokers could not find it")));
    }
    let (mut tls, mut sasl) = (None, None);
    if has_peers {
        if let Some(settings) = &own.tls {
            tls = Some(client_tls(props, &name, settings)?);
        }
        if let Some(served) = &own.sasl {
            sasl = Some(sasl_login(props, &name, "sasl.mechanism.inter.broker.protocol", served)?);
        }
    }
    Ok(InterBroker { listener: name, protocol, tls, sasl })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_map_names_protocols_and_adds_plaintext_controllers() {
        let m = protocol_map(DEFAULT_PROTOCOL_MAP, false, &["PLAINTEXT".into()], &["CONTROLLER"]).unwrap();
        assert_eq!(m["SSL"], SecurityProtocol::Ssl);
        assert_eq!(m["CONTROLLER"], SecurityProtocol::Plaintext);
        // With SSL in use, Kafka adds no controller mapping: the operator must say.
        let m = protocol_map(DEFAULT_PROTOCOL_MAP, false, &["SSL".into()], &["CONTROLLER"]).unwrap();
        assert!(!m.contains_key("CONTROLLER"));
        // An explicit map is taken as written.
        let m = protocol_map("INTERNAL:sasl_ssl", true, &["INTERNAL".into()], &["CONTROLLER"]).unwrap();
        assert_eq!(m["INTERNAL"], SecurityProtocol::SaslSsl);
        assert!(!m.contains_key("CONTROLLER"));
        assert!(protocol_map("A:TLS", true, &[], &[]).unwrap_err().to_string().contains("listener.security.protocol.map"));
        assert!(protocol_map("A", true, &[], &[]).is_err());
    }

    #[test]
    fn security_keys_are_recognised_under_listener_prefixes() {
        for k in [
            "ssl.keystore.location",
            "sasl.enabled.mechanisms",
            "authorizer.class.name",
            "super.users",
            "security.inter.broker.protocol",
            "listener.name.external.ssl.keystore.location",
            "listener.name.sasl_ssl.plain.sasl.jaas.config",
            "listener.name.internal.scram-sha-256.sasl.jaas.config",
            "connections.max.reauth.ms",
        ] {
            assert!(is_security_key(k), "{k}");
        }
        for k in ["listener.security.protocol.map", "listener.name.internal.max.connections", "log.dirs", "socket.send.buffer.bytes"] {
            assert!(!is_security_key(k), "{k}");
        }
        assert!(asks_for_nothing("super.users", ""));
        assert!(!asks_for_nothing("super.users", "User:admin"));
        assert!(!asks_for_nothing("ssl.client.auth", "none"));
        assert!(per_listener_security_key("listener.name.external.ssl.keystore.location").is_some());
        assert!(per_listener_security_key("listener.name.external.sasl.enabled.mechanisms").is_some());
        assert!(per_listener_security_key("listener.name.external.sasl.jaas.config").is_none());
        assert!(is_served_jaas_key("listener.name.sasl_ssl.plain.sasl.jaas.config"));
        assert!(is_served_jaas_key("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"));
        assert!(!is_served_jaas_key("listener.name.sasl_ssl.gssapi.sasl.jaas.config"));
    }

    #[test]
    fn jaas_and_sasl_settings_as_kafka_writes_them() {
        let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required
            username="admin" password="admin-secret"
            user_admin="admin-secret" user_alice="al\"ice" user_bob=bare;"#;
        let o = parse_jaas(jaas).unwrap();
        assert_eq!(o[3], ("user_alice".to_string(), "al\"ice".to_string()));
        assert_eq!(o[4], ("user_bob".to_string(), "bare".to_string()));
        for bad in ["", "Module", "Module required user_a=\"x\"", "Module maybe;", "Module required user_a;", "Module required user_a=\"x;"] {
            assert!(parse_jaas(bad).is_err(), "{bad}");
        }
        let p = props(&[("sasl.enabled.mechanisms", "PLAIN"), ("listener.name.sasl_plaintext.plain.sasl.jaas.config", jaas)]);
        let s = sasl_settings(&p, "SASL_PLAINTEXT").unwrap();
        assert_eq!(s.plain_users.len(), 3);
        assert!(!format!("{s:?}").contains("admin-secret"));
        // GSSAPI (Kafka's default), other mechanisms, and PLAIN without users: refused by key.
        let e = sasl_settings(&BTreeMap::new(), "SASL_PLAINTEXT").unwrap_err().to_string();
        assert!(e.contains("sasl.enabled.mechanisms") && e.contains("GSSAPI"), "{e}");
        let e = sasl_settings(&props(&[("sasl.enabled.mechanisms", "PLAIN,GSSAPI")]), "X").unwrap_err().to_string();
        assert!(e.contains("GSSAPI"), "{e}");
        // OAUTHBEARER needs a JWKS: Strom never accepts unsigned tokens.
        let e = sasl_settings(&props(&[("sasl.enabled.mechanisms", "OAUTHBEARER")]), "X").unwrap_err().to_string();
        assert!(e.contains("sasl.oauthbearer.jwks.endpoint.url") && e.contains("unsigned"), "{e}");
        let s = sasl_settings(
            &props(&[
                ("sasl.enabled.mechanisms", "OAUTHBEARER"),
                ("listener.name.x.sasl.oauthbearer.jwks.endpoint.url", "file:///etc/jwks.json"),
                ("sasl.oauthbearer.expected.audience", "a, b"),
                ("listener.name.x.oauthbearer.sasl.server.callback.handler.class", OAUTH_VALIDATOR_CLASSES[0]),
            ]),
            "X",
        )
        .unwrap();
        let o = s.oauth.unwrap();
        assert_eq!((o.jwks_url.as_str(), o.expected_audience.clone(), o.expected_issuer.clone()), ("file:///etc/jwks.json", vec!["a".into(), "b".into()], None));
        assert_eq!((o.sub_claim_name.as_str(), o.clock_skew_seconds, o.jwks_refresh_ms), ("sub", 30, 3_600_000));
        let bad_class = props(&[
            ("sasl.enabled.mechanisms", "OAUTHBEARER"),
            ("sasl.oauthbearer.jwks.endpoint.url", "https://idp/keys"),
            ("listener.name.x.oauthbearer.sasl.server.callback.handler.class", "com.example.Mine"),
        ]);
        assert!(sasl_settings(&bad_class, "X").unwrap_err().to_string().contains("callback.handler.class"));
        assert!(sasl_settings(&props(&[("sasl.enabled.mechanisms", "OAUTHBEARER"), ("sasl.oauthbearer.jwks.endpoint.url", "ldap://x")]), "X").is_err());
        // SCRAM needs no JAAS users (its credentials are in the metadata log); PLAIN's still do.
        let s = sasl_settings(&props(&[("sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512")]), "X").unwrap();
        assert_eq!(s.mechanisms, vec![SaslMechanism::ScramSha256, SaslMechanism::ScramSha512]);
        assert!(sasl_settings(&props(&[("sasl.enabled.mechanisms", "SCRAM-SHA-512,PLAIN")]), "X").is_err());
        let e = sasl_settings(&props(&[("listener.name.x.sasl.enabled.mechanisms", "PLAIN")]), "X").unwrap_err().to_string();
        assert!(e.contains("listener.name.x.plain.sasl.jaas.config"), "{e}");
    }

    fn props(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn tls_settings_per_listener_over_bare_keys_and_named_errors() {
        let p = props(&[("ssl.keystore.location", "/a.pem"), ("listener.name.ext.ssl.keystore.location", "/b.pem"), ("ssl.client.auth", "none")]);
        let t = tls_settings(&p, "EXT").unwrap();
        assert!(matches!(t.keystore, Keystore::Combined(Pem::File { ref path, .. }) if path.to_str() == Some("/b.pem")));
        assert_eq!(t.protocols, vec![TlsVersion::Tls12, TlsVersion::Tls13]);
        let t = tls_settings(&p, "SSL").unwrap();
        assert!(matches!(t.keystore, Keystore::Combined(Pem::File { ref path, .. }) if path.to_str() == Some("/a.pem")));
        // Missing keystore: the error names the key to set.
        let e = tls_settings(&BTreeMap::new(), "SSL").unwrap_err().to_string();
        assert!(e.contains("ssl.keystore.location") && e.contains("needs a keystore"), "{e}");
        // Client auth without a truststore, PKCS12, passwords, old protocols: refused by name.
        for (k, v, named) in [
            ("ssl.client.auth", "required", "ssl.client.auth"),
            ("ssl.keystore.type", "JKS", "ssl.keystore.type"),
            ("ssl.keystore.type", "PKCS12", "ssl.keystore.password"),
            ("ssl.keystore.password", "secret", "ssl.keystore.password"),
            ("ssl.truststore.password", "secret", "ssl.truststore.password"),
            ("ssl.enabled.protocols", "TLSv1.1", "ssl.enabled.protocols"),
            ("listener.name.ssl.ssl.client.auth", "maybe", "listener.name.ssl.ssl.client.auth"),
        ] {
            let e = tls_settings(&props(&[("ssl.keystore.location", "/a.pem"), (k, v)]), "SSL").unwrap_err().to_string();
            assert!(e.contains(named), "{k}={v}: {e}");
            assert!(!e.contains("secret"), "a password must not be echoed: {e}");
        }
        // PKCS12 stores, with their passwords (never shown in Debug).
        let p = props(&[
            ("listener.name.ssl.ssl.keystore.type", "PKCS12"),
            ("ssl.keystore.location", "/k.p12"),
            ("ssl.keystore.password", "store-pw"),
            ("ssl.truststore.type", "pkcs12"),
            ("ssl.truststore.location", "/t.p12"),
            ("listener.name.ssl.ssl.truststore.password", "trust-pw"),
        ]);
        let t = tls_settings(&p, "SSL").unwrap();
        assert!(matches!(&t.keystore, Keystore::Pkcs12(f) if f.path.to_str() == Some("/k.p12") && f.password.0 == "store-pw"));
        assert!(matches!(&t.truststore, Some(Truststore::Pkcs12(f)) if f.key == "ssl.truststore.location" && f.password.0 == "trust-pw"));
        assert!(!format!("{t:?}").contains("-pw"));
        let e = tls_settings(&props(&[("ssl.keystore.type", "PKCS12"), ("ssl.keystore.certificate.chain", "C"), ("ssl.keystore.key", "K"), ("ssl.keystore.password", "x")]), "SSL").unwrap_err().to_string();
        assert!(e.contains("ssl.keystore.certificate.chain") && e.contains("PKCS12"), "{e}");
        // Inline PEM never shows in Debug.
        let t = tls_settings(&props(&[("ssl.keystore.certificate.chain", "CHAIN"), ("ssl.keystore.key", "PRIVATE")]), "SSL").unwrap();
        assert!(!format!("{t:?}").contains("PRIVATE"));
    }
}
