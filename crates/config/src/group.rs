//! Group configs (Kafka 4's config resource GROUP, KIP-848 and KIP-932): one group's own values of
//! the group settings whose broker key names a `group` key in the table (`keys.rs`). Here: which
//! names exist, Kafka's checks of a group's whole set (`GroupConfigManager.validate`: the broker's
//! values with the group's on top, each within the broker's min/max bounds, the heartbeat below
//! the session timeout) and what a group's set means for its coordinator: the broker's
//! consumer-group and share-group settings with the group's values over them.

use std::collections::BTreeMap;

use strom_coordinator::consumer_group::ConsumerGroupConfig;
use strom_coordinator::share_group::{AutoOffsetReset, ShareGroupConfig};

use crate::broker::{lookup, BrokerConfig};
use crate::keys::{Check, Key, KEYS};
use crate::resolve::Resolver;

/// Kafka's group config names that Strom cannot act on yet, refused by name rather than stored
/// and ignored.
const NOT_ACTED_ON: &[(&str, &str)] =
    &[("share.isolation.level", "Strom's share groups read uncommitted records only (read_committed share groups are not supported yet)")];

/// Why a group's configs are refused, as Kafka answers: INVALID_REQUEST or INVALID_CONFIG, with
/// Kafka's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupConfigError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidConfig(String),
}

/// The broker key a group config name overrides.
pub fn by_group_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.group == Some(name))
}

/// Every group config with the broker key behind it, in Kafka's order of definition.
pub fn group_keys() -> impl Iterator<Item = (&'static str, &'static Key)> {
    KEYS.iter().filter_map(|k| k.group.map(|g| (g, k)))
}

/// One group config as DescribeConfigs shows it.
#[derive(Debug, Clone)]
pub struct GroupValue {
    pub name: &'static str,
    /// The broker key it falls back to.
    pub broker_key: &'static Key,
    pub value: String,
    /// Set for the group (else the broker's value).
    pub set: bool,
}

fn invalid_value(name: &str, value: &str, reason: &str) -> GroupConfigError {
    GroupConfigError::InvalidConfig(format!("Invalid value {value} for configuration {name}: {reason}"))
}

impl BrokerConfig {
    /// The broker's value of a group setting (its properties or the table's default).
    fn broker_value(&self, k: &Key) -> String {
        lookup(&self.props, k).or(k.default_value()).unwrap_or_default().trim().to_string()
    }

    /// Kafka's checks of the whole set of configs group `group` would have (the names first, then
    /// each value, then the bounds in Kafka's order), against this broker's bounds.
    pub fn validate_group_configs(&self, group: &str, configs: &BTreeMap<String, String>) -> Result<(), GroupConfigError> {
        if group.is_empty() {
            return Err(GroupConfigError::InvalidRequest("Default group resources are not allowed.".into()));
        }
        for name in configs.keys() {
            if let Some((_, why)) = NOT_ACTED_ON.iter().find(|(n, _)| n == name) {
                return Err(GroupConfigError::InvalidConfig(format!("Group config {name} is not supported: {why}")));
            }
            if by_group_key(name).is_none() {
                return Err(GroupConfigError::InvalidConfig(format!("Unknown group config name: {name}")));
            }
        }
        // Every value parsed, the group's over the broker's (Kafka's ConfigDef.parse).
        let mut ints: BTreeMap<&str, i64> = BTreeMap::new();
        for (name, k) in group_keys() {
            let value = configs.get(name).map(|v| v.trim().to_string()).unwrap_or_else(|| self.broker_value(k));
            match k.check {
                Check::Int { min, max } => {
                    let n: i32 = value.parse().map_err(|_| invalid_value(name, &value, "Not a number of type INT"))?;
                    if i64::from(n) < min {
                        return Err(invalid_value(name, &value, &format!("Value must be at least {min}")));
                    }
                    if i64::from(n) > max {
                        return Err(invalid_value(name, &value, &format!("Value must be no more than {max}")));
                    }
                    ints.insert(name, i64::from(n));
                }
                _ => {
                    if parse_reset(&value).is_none() {
                        return Err(invalid_value(name, &value, "String must be one of: latest, earliest"));
                    }
                }
            }
        }
        let get = |k: &Key| lookup(&self.props, k);
        let r = Resolver::new(&get);
        let bound = |key: &str| -> Result<i64, GroupConfigError> { r.int(key).map_err(|e| GroupConfigError::InvalidConfig(e.to_string())) };
        let value = |name: &str| ints.get(name).copied().unwrap_or_default();
        // Kafka's GroupConfig.validateValues, in its order and words.
        let bounded = [
            ("consumer.heartbeat.interval.ms", "group.consumer.min.heartbeat.interval.ms", "group.consumer.max.heartbeat.interval.ms"),
            ("consumer.session.timeout.ms", "group.consumer.min.session.timeout.ms", "group.consumer.max.session.timeout.ms"),
            ("share.heartbeat.interval.ms", "group.share.min.heartbeat.interval.ms", "group.share.max.heartbeat.interval.ms"),
            ("share.session.timeout.ms", "group.share.min.session.timeout.ms", "group.share.max.session.timeout.ms"),
            ("share.record.lock.duration.ms", "group.share.min.record.lock.duration.ms", "group.share.max.record.lock.duration.ms"),
        ];
        for (name, min, max) in bounded {
            if value(name) < bound(min)? {
                return Err(GroupConfigError::InvalidConfig(format!("{name} must be greater than or equal to {min}")));
            }
            if value(name) > bound(max)? {
                return Err(GroupConfigError::InvalidConfig(format!("{name} must be less than or equal to {max}")));
            }
        }
        for (session, heartbeat) in [("consumer.session.timeout.ms", "consumer.heartbeat.interval.ms"), ("share.session.timeout.ms", "share.heartbeat.interval.ms")] {
            if value(session) <= value(heartbeat) {
                return Err(GroupConfigError::InvalidConfig(format!("{session} must be greater than {heartbeat}")));
            }
        }
        Ok(())
    }

    /// Every group config of a group with these configs: its value and whether the group sets
    /// it (DescribeConfigs of a GROUP resource).
    pub fn group_values(&self, configs: &BTreeMap<String, String>) -> Vec<GroupValue> {
        group_keys()
            .map(|(name, k)| match configs.get(name) {
                Some(v) => GroupValue { name, broker_key: k, value: v.clone(), set: true },
                None => GroupValue { name, broker_key: k, value: self.broker_value(k), set: false },
            })
            .collect()
    }

    /// The KIP-848 settings of a group with these configs: the broker's, with the group's
    /// session timeout and heartbeat interval over them. Configs were checked when they were
    /// set; one that does not parse all the same leaves the broker's value.
    pub fn consumer_group_config(&self, configs: &BTreeMap<String, String>) -> ConsumerGroupConfig {
        let mut c = self.groups.consumer.clone();
        if let Some(v) = int(configs, "consumer.session.timeout.ms") {
            c.session_timeout_ms = v;
        }
        if let Some(v) = int(configs, "consumer.heartbeat.interval.ms") {
            c.heartbeat_interval_ms = v;
        }
        c
    }

    /// The KIP-932 settings of a group with these configs (as `consumer_group_config`).
    pub fn share_group_config(&self, configs: &BTreeMap<String, String>) -> ShareGroupConfig {
        let mut c = self.groups.share.clone();
        if let Some(v) = int(configs, "share.session.timeout.ms") {
            c.session_timeout_ms = v;
        }
        if let Some(v) = int(configs, "share.heartbeat.interval.ms") {
            c.heartbeat_interval_ms = v;
        }
        if let Some(v) = int(configs, "share.record.lock.duration.ms") {
            c.record_lock_duration_ms = v;
        }
        if let Some(r) = configs.get("share.auto.offset.reset").and_then(|v| parse_reset(v.trim())) {
            c.auto_offset_reset = r;
        }
        c
    }
}

fn int(configs: &BTreeMap<String, String>, name: &str) -> Option<i32> {
    configs.get(name).and_then(|v| v.trim().parse().ok()).filter(|v| *v > 0)
}

/// `share.auto.offset.reset`'s values (Kafka 4.0's; 4.1's `by_duration:` is not supported).
pub(crate) fn parse_reset(v: &str) -> Option<AutoOffsetReset> {
    match v {
        "latest" => Some(AutoOffsetReset::Latest),
        "earliest" => Some(AutoOffsetReset::Earliest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(props: &[(&str, &str)]) -> BrokerConfig {
        BrokerConfig::from_props(&props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap()
    }

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn refusal(b: &BrokerConfig, pairs: &[(&str, &str)]) -> String {
        match b.validate_group_configs("g", &set(pairs)) {
            Err(GroupConfigError::InvalidConfig(m)) => m,
            other => panic!("{pairs:?}: expected INVALID_CONFIG, got {other:?}"),
        }
    }

    /// The six names of Kafka 4.0's GroupConfig, each behind its broker key.
    #[test]
    fn group_keys_are_kafkas() {
        let names: Vec<(&str, &str)> = group_keys().map(|(g, k)| (g, k.name)).collect();
        assert_eq!(
            names,
            vec![
                ("consumer.session.timeout.ms", "group.consumer.session.timeout.ms"),
                ("consumer.heartbeat.interval.ms", "group.consumer.heartbeat.interval.ms"),
                ("share.session.timeout.ms", "group.share.session.timeout.ms"),
                ("share.heartbeat.interval.ms", "group.share.heartbeat.interval.ms"),
                ("share.record.lock.duration.ms", "group.share.record.lock.duration.ms"),
                ("share.auto.offset.reset", "share.auto.offset.reset"),
            ]
        );
    }

    #[test]
    fn names_are_checked_first() {
        let b = broker(&[]);
        assert_eq!(b.validate_group_configs("", &set(&[])), Err(GroupConfigError::InvalidRequest("Default group resources are not allowed.".into())));
        assert_eq!(refusal(&b, &[("session.timeout.ms", "50000")]), "Unknown group config name: session.timeout.ms");
        assert!(refusal(&b, &[("share.isolation.level", "read_committed")]).starts_with("Group config share.isolation.level is not supported"));
        assert_eq!(b.validate_group_configs("g", &set(&[])), Ok(()));
    }

    #[test]
    fn values_must_parse_and_be_positive() {
        let b = broker(&[]);
        assert_eq!(refusal(&b, &[("consumer.session.timeout.ms", "abc")]), "Invalid value abc for configuration consumer.session.timeout.ms: Not a number of type INT");
        assert_eq!(refusal(&b, &[("share.heartbeat.interval.ms", "0")]), "Invalid value 0 for configuration share.heartbeat.interval.ms: Value must be at least 1");
        assert_eq!(refusal(&b, &[("consumer.session.timeout.ms", "4294967296")]), "Invalid value 4294967296 for configuration consumer.session.timeout.ms: Not a number of type INT");
        assert_eq!(refusal(&b, &[("share.auto.offset.reset", "none")]), "Invalid value none for configuration share.auto.offset.reset: String must be one of: latest, earliest");
        assert_eq!(b.validate_group_configs("g", &set(&[("share.auto.offset.reset", "earliest")])), Ok(()));
    }

    /// Each value within the broker's bounds (Kafka's words), the broker's value standing in for
    /// a key the group does not set.
    #[test]
    fn values_must_lie_within_the_brokers_bounds() {
        let b = broker(&[]);
        assert_eq!(refusal(&b, &[("consumer.heartbeat.interval.ms", "4999")]), "consumer.heartbeat.interval.ms must be greater than or equal to group.consumer.min.heartbeat.interval.ms");
        assert_eq!(refusal(&b, &[("consumer.heartbeat.interval.ms", "15001")]), "consumer.heartbeat.interval.ms must be less than or equal to group.consumer.max.heartbeat.interval.ms");
        assert_eq!(refusal(&b, &[("consumer.session.timeout.ms", "60001")]), "consumer.session.timeout.ms must be less than or equal to group.consumer.max.session.timeout.ms");
        assert_eq!(refusal(&b, &[("share.session.timeout.ms", "44999")]), "share.session.timeout.ms must be greater than or equal to group.share.min.session.timeout.ms");
        assert_eq!(refusal(&b, &[("share.record.lock.duration.ms", "14999")]), "share.record.lock.duration.ms must be greater than or equal to group.share.min.record.lock.duration.ms");
        assert_eq!(refusal(&b, &[("share.record.lock.duration.ms", "60001")]), "share.record.lock.duration.ms must be less than or equal to group.share.max.record.lock.duration.ms");
        let wide = broker(&[("group.consumer.min.session.timeout.ms", "1000"), ("group.consumer.min.heartbeat.interval.ms", "500"), ("group.share.min.record.lock.duration.ms", "1000")]);
        assert_eq!(wide.validate_group_configs("g", &set(&[("consumer.session.timeout.ms", "3000"), ("consumer.heartbeat.interval.ms", "500"), ("share.record.lock.duration.ms", "1000")])), Ok(()));
        // The heartbeat must stay below the session timeout, the broker's included.
        assert_eq!(refusal(&wide, &[("consumer.session.timeout.ms", "3000"), ("consumer.heartbeat.interval.ms", "3000")]), "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms");
        let low_session = broker(&[("group.consumer.min.session.timeout.ms", "1000")]);
        assert_eq!(refusal(&low_session, &[("consumer.session.timeout.ms", "5000")]), "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms");
    }

    #[test]
    fn a_groups_values_override_the_brokers() {
        let b = broker(&[("share.auto.offset.reset", "latest"), ("group.share.record.lock.duration.ms", "20000")]);
        let configs = set(&[("consumer.heartbeat.interval.ms", "7000"), ("share.auto.offset.reset", "earliest"), ("share.record.lock.duration.ms", "16000")]);
        let c = b.consumer_group_config(&configs);
        assert_eq!((c.session_timeout_ms, c.heartbeat_interval_ms), (45_000, 7_000));
        let s = b.share_group_config(&configs);
        assert_eq!((s.record_lock_duration_ms, s.auto_offset_reset, s.session_timeout_ms), (16_000, AutoOffsetReset::Earliest, 45_000));
        assert_eq!(b.share_group_config(&BTreeMap::new()).record_lock_duration_ms, 20_000);
        let shown = b.group_values(&configs);
        let lock = shown.iter().find(|v| v.name == "share.record.lock.duration.ms").unwrap();
        assert!(lock.set && lock.value == "16000" && lock.broker_key.name == "group.share.record.lock.duration.ms");
        let session = shown.iter().find(|v| v.name == "share.session.timeout.ms").unwrap();
        assert!(!session.set && session.value == "45000");
    }
}
