//! What security each listener asks for, and the rule that no listener serves less.
//!
//! Kafka names a listener's security protocol through `listener.security.protocol.map`
//! (`NAME:PROTOCOL,...`); a listener named after a protocol (`SSL://`) maps to it by the
//! default map. Strom serves PLAINTEXT only so far, so a listener that maps to SSL, SASL_PLAINTEXT
//! or SASL_SSL is a startup error, never a plaintext port the operator believes is encrypted.
//! Likewise every Kafka security key (`ssl.*`, `sasl.*`, authorizer, super users, ...) is refused
//! with a message saying Strom does not act on it yet, instead of being accepted and ignored.

use std::collections::BTreeMap;

use crate::resolve::invalid;
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

    /// The protocols this build can serve. The invariant every listener is checked against.
    pub fn is_served(self) -> bool {
        self == Self::Plaintext
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
        "security.inter.broker.protocol" => v.eq_ignore_ascii_case("PLAINTEXT"),
        "authorizer.class.name" | "super.users" => v.is_empty(),
        "allow.everyone.if.no.acl.found" => v.eq_ignore_ascii_case("false"),
        _ => false,
    }
}

/// The startup error for a listener whose protocol this build cannot serve.
pub(crate) fn check_served(key: &str, value: &str, name: &str, protocol: SecurityProtocol) -> Result<(), ConfigError> {
    if protocol.is_served() {
        return Ok(());
    }
    Err(invalid(
        key,
        value,
        format!(
            "listener {name} asks for security protocol {}, which Strom does not serve yet (TLS and SASL are not implemented); \
             Strom refuses to start rather than serve that port as PLAINTEXT",
            protocol.name()
        ),
    ))
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
        assert!(asks_for_nothing("security.inter.broker.protocol", "PLAINTEXT"));
        assert!(!asks_for_nothing("security.inter.broker.protocol", "SSL"));
        assert!(!asks_for_nothing("ssl.client.auth", "none"));
    }
}
