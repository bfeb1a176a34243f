//! Broker configuration, spelled with Apache Kafka's own property names.
//!
//! Every key lives once, in the table of `keys.rs`: default, check, topic-level synonym, whether
//! it is dynamic, and its documentation. The typed settings each subsystem reads
//! ([`BrokerConfig`], [`TopicSettings`], [`ClusterSettings`], [`GroupSettings`]) are resolved
//! from properties through that table (`resolve.rs`), so a default or a check is never written
//! twice.
//!
//! Sources are applied in order: built-in defaults, the properties file, then each `--override`.
//! A key Strom does not know is a startup error that names it, because a silently ignored typo
//! (`log.retension.ms`) is the kind of mistake that costs data weeks later. Keys that Kafka knows
//! but Strom does not act on are accepted and logged once, so a stock `server.properties` works.

mod broker;
mod cluster;
mod group;
mod keys;
mod markdown;
mod principal;
mod resolve;
mod security;
mod topic;

use std::path::PathBuf;

pub use broker::{BrokerConfig, GroupSettings, HttpListener, HttpSettings, Listener, ReplicaSelector, ReplicationThrottle, TxnSettings};
pub use cluster::ClusterSettings;
pub use group::{by_group_key, group_keys, GroupConfigError, GroupValue};
pub use keys::{by_topic_key, dynamic_key, is_sensitive, key, DynamicScope, Check, DefaultValue, Key, Section, IGNORED_KAFKA_KEYS, INERT_TOPIC_KEYS, KEYS};
pub use markdown::{help_text, markdown_tables};
pub use principal::PrincipalRules;
pub use security::{
    is_security_key, AuthorizerSettings, BootstrapScram, ClientAuth, ClientTls, InterBroker, Keystore, OAuthSettings, Pem, Pkcs12File, SaslLogin, SaslMechanism, SaslSettings, Secret, SecurityProtocol, TlsSettings, TlsVersion, Truststore,
    STANDARD_AUTHORIZER,
};
pub use topic::{validate_topic_config, CompressionType, ThrottledReplicas, TopicSettings};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown config key `{0}` (Strom takes Kafka's property names; check the spelling)")]
    UnknownKey(String),
    #[error(
        "config `{0}` is one of Kafka's security settings, which Strom does not act on yet; Strom refuses to start \
         rather than run with less security than configured"
    )]
    SecurityNotSupported(String),
    #[error("config `{key}` has an invalid value `{value}`: {reason}")]
    InvalidValue { key: String, value: String, reason: String },
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot parse config file {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("override `{0}` is not of the form key=value")]
    BadOverride(String),
}
