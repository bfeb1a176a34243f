//! Client quotas (KIP-546), as Kafka's `ClientQuotaControlManager` keeps them: values per entity
//! (a user, a client id, a user and client id together, or the defaults of each: a `None` name),
//! set and removed by AlterClientQuotas and read by DescribeClientQuotas; and the resolution
//! a broker uses to find the quota of one connection (Kafka's precedence, most specific first).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// One quota entity: its components by type (`user`, `client-id`, `ip`), each with a name or
/// `None` for the type's default. Sorted by type, so equal entities compare equal.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity(pub Vec<(String, Option<String>)>);

impl QuotaEntity {
    pub fn new(mut parts: Vec<(String, Option<String>)>) -> QuotaEntity {
        parts.sort();
        QuotaEntity(parts)
    }

    fn get(&self, kind: &str) -> Option<&Option<String>> {
        self.0.iter().find(|(t, _)| t == kind).map(|(_, n)| n)
    }

    /// Kafka's checks of an entity: known types, each at most once, `ip` alone.
    pub fn validate(&self) -> Result<(), String> {
        if self.0.is_empty() {
            return Err("Invalid empty client quota entity".into());
        }
        for (i, (t, _)) in self.0.iter().enumerate() {
            if ![USER, CLIENT_ID, IP].contains(&t.as_str()) {
                return Err(format!("Unhandled client quota entity type: {t}"));
            }
            if self.0[..i].iter().any(|(o, _)| o == t) {
                return Err(format!("Duplicate {t} entity type"));
            }
        }
        if self.get(IP).is_some() && self.0.len() > 1 {
            return Err("Invalid quota entity combination, IP entity should not be combined with User or ClientId entities.".into());
        }
        // Kafka also accepts a host name, resolved when the quota is applied; this crate does
        // no I/O, so Strom takes addresses only.
        if let Some(Some(name)) = self.get(IP) {
            if name.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("{name} is not a valid IP or resolvable host."));
            }
        }
        Ok(())
    }

    /// Kafka's checks of a quota value for this entity.
    pub fn validate_value(&self, key: &str, value: f64) -> Result<(), String> {
        let ip = self.get(IP).is_some();
        let allowed: &[&str] = if ip { &[CONNECTION_CREATION_RATE] } else { &[PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE, CONTROLLER_MUTATION_RATE] };
        if !allowed.contains(&key) {
            return Err(format!("Invalid configuration key {key}"));
        }
        if !value.is_finite() || value <= 0.0 {
            return Err(format!("Invalid value {value} for configuration key {key}: it must be positive"));
        }
        if [PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, CONNECTION_CREATION_RATE].contains(&key) && value.fract() != 0.0 {
            return Err(format!("Configuration {key} must be a Long value"));
        }
        Ok(())
    }
}

/// How DescribeClientQuotas matches one component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// The entity names this type with this name.
    Exact(String),
    /// The entity is this type's default.
    Default,
    /// The entity names this type, with any name or the default.
    Any,
}

/// The quotas of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quotas(pub BTreeMap<String, (QuotaEntity, BTreeMap<String, f64>)>);

/// The map key of an entity: snapshots are JSON, whose maps take string keys only. A name is
/// quoted, so it never reads as `<default>` or as another entity's components.
fn key(e: &QuotaEntity) -> String {
    e.0.iter().map(|(t, n)| format!("{t}={}", n.as_deref().map_or("<default>".to_string(), |n| format!("{n:?}")))).collect::<Vec<_>>().join(",")
}

impl Quotas {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets and removes values of one entity; an entity left without values goes.
    pub fn alter(&mut self, entity: &QuotaEntity, set: &BTreeMap<String, f64>, remove: &[String]) {
        let k = key(entity);
        let values = &mut self.0.entry(k.clone()).or_insert_with(|| (entity.clone(), BTreeMap::new())).1;
        for r in remove {
            values.remove(r);
        }
        values.extend(set.iter().map(|(k, v)| (k.clone(), *v)));
        if values.is_empty() {
            self.0.remove(&k);
        }
    }

    /// DescribeClientQuotas: the entities matching every component (`strict`: and naming no
    /// other type).
    pub fn describe(&self, components: &[(String, Match)], strict: bool) -> Vec<(QuotaEntity, BTreeMap<String, f64>)> {
        self.0
            .values()
            .filter(|(entity, _)| {
                components.iter().all(|(t, m)| match (entity.get(t), m) {
                    (Some(Some(n)), Match::Exact(want)) => n == want,
                    (Some(None), Match::Default) => true,
                    (Some(_), Match::Any) => true,
                    _ => false,
                }) && (!strict || entity.0.len() == components.len())
            })
            .cloned()
            .collect()
    }

    /// The value of `key` for a connection of `user` with `client_id`: the most specific entity
    /// that sets it, in Kafka's order (user and client id, user and default client id, user,
    /// default user and client id, default user and default client id, default user, client
    /// id, default client id).
    pub fn resolve(&self, user: &str, client_id: &str, key_name: &str) -> Option<f64> {
        let u = |n: Option<&str>| (USER.to_string(), n.map(str::to_string));
        let c = |n: Option<&str>| (CLIENT_ID.to_string(), n.map(str::to_string));
        let order = [
            vec![u(Some(user)), c(Some(client_id))],
            vec![u(Some(user)), c(None)],
            vec![u(Some(user))],
            vec![u(None), c(Some(client_id))],
            vec![u(None), c(None)],
            vec![u(None)],
            vec![c(Some(client_id))],
            vec![c(None)],
        ];
        order.into_iter().find_map(|parts| self.0.get(&key(&QuotaEntity::new(parts))).and_then(|(_, v)| v.get(key_name).copied()))
    }

    /// The `connection_creation_rate` of connections from `ip`: the entity naming that address
    /// (compared as addresses, so any spelling of it counts), else the default `ip` entity.
    pub fn resolve_ip(&self, ip: std::net::IpAddr) -> Option<f64> {
        let mut default = None;
        for (entity, values) in self.0.values() {
            let Some(value) = values.get(CONNECTION_CREATION_RATE) else { continue };
            match entity.get(IP) {
                Some(Some(name)) if name.parse::<std::net::IpAddr>().is_ok_and(|a| a == ip) => return Some(*value),
                Some(None) => default = Some(*value),
                _ => {}
            }
        }
        default
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(parts: &[(&str, Option<&str>)]) -> QuotaEntity {
        QuotaEntity::new(parts.iter().map(|(t, n)| (t.to_string(), n.map(str::to_string))).collect())
    }

    #[test]
    fn resolution_follows_kafkas_precedence() {
        let mut q = Quotas::default();
        let set = |v: f64| [(PRODUCER_BYTE_RATE.to_string(), v)].into_iter().collect::<BTreeMap<_, _>>();
        q.alter(&entity(&[(CLIENT_ID, None)]), &set(1.0), &[]);
        assert_eq!(q.resolve("alice", "app", PRODUCER_BYTE_RATE), Some(1.0));
        q.alter(&entity(&[(USER, None)]), &set(2.0), &[]);
        assert_eq!(q.resolve("alice", "app", PRODUCER_BYTE_RATE), Some(2.0));
        q.alter(&entity(&[(USER, Some("alice"))]), &set(3.0), &[]);
        assert_eq!(q.resolve("alice", "app", PRODUCER_BYTE_RATE), Some(3.0));
        assert_eq!(q.resolve("bob", "app", PRODUCER_BYTE_RATE), Some(2.0));
        q.alter(&entity(&[(CLIENT_ID, Some("app")), (USER, Some("alice"))]), &set(4.0), &[]);
        assert_eq!(q.resolve("alice", "app", PRODUCER_BYTE_RATE), Some(4.0));
        assert_eq!(q.resolve("alice", "other", PRODUCER_BYTE_RATE), Some(3.0));
        assert_eq!(q.resolve("alice", "app", CONSUMER_BYTE_RATE), None);
        // Removing the last value removes the entity.
        q.alter(&entity(&[(USER, Some("alice")), (CLIENT_ID, Some("app"))]), &BTreeMap::new(), &[PRODUCER_BYTE_RATE.to_string()]);
        assert_eq!(q.resolve("alice", "app", PRODUCER_BYTE_RATE), Some(3.0));
        assert_eq!(q.0.len(), 3);
        // Describe: exact, default, any, strict.
        assert_eq!(q.describe(&[(USER.into(), Match::Exact("alice".into()))], false).len(), 1);
        assert_eq!(q.describe(&[(USER.into(), Match::Any)], false).len(), 2);
        assert_eq!(q.describe(&[(CLIENT_ID.into(), Match::Default)], true).len(), 1);
        assert_eq!(q.describe(&[], false).len(), 3);
        let json = serde_json::to_string(&q).expect("serializes");
        assert_eq!(serde_json::from_str::<Quotas>(&json).expect("deserializes"), q);
    }

    #[test]
    fn ip_quotas_resolve_by_address_then_default() {
        let mut q = Quotas::default();
        let set = |v: f64| [(CONNECTION_CREATION_RATE.to_string(), v)].into_iter().collect::<BTreeMap<_, _>>();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("an address");
        assert_eq!(q.resolve_ip(ip("10.0.0.1")), None);
        q.alter(&entity(&[(IP, None)]), &set(5.0), &[]);
        q.alter(&entity(&[(IP, Some("::1"))]), &set(7.0), &[]);
        q.alter(&entity(&[(IP, Some("10.0.0.1"))]), &set(9.0), &[]);
        assert_eq!(q.resolve_ip(ip("10.0.0.1")), Some(9.0));
        assert_eq!(q.resolve_ip(ip("0:0:0:0:0:0:0:1")), Some(7.0));
        assert_eq!(q.resolve_ip(ip("10.0.0.2")), Some(5.0));
    }

    #[test]
    fn kafkas_checks() {
        assert!(entity(&[(USER, Some("a")), (CLIENT_ID, None)]).validate().is_ok());
        assert!(entity(&[(IP, Some("1.2.3.4")), (USER, None)]).validate().is_err());
        assert!(entity(&[("group", Some("g"))]).validate().is_err());
        assert!(entity(&[]).validate().is_err());
        assert!(entity(&[(IP, Some("10.1.2.3"))]).validate().is_ok());
        assert!(entity(&[(IP, Some("::1"))]).validate().is_ok());
        assert!(entity(&[(IP, None)]).validate().is_ok());
        assert!(entity(&[(IP, Some("not an address"))]).validate().is_err());
        let e = entity(&[(USER, Some("a"))]);
        assert!(e.validate_value(PRODUCER_BYTE_RATE, 1024.0).is_ok());
        assert!(e.validate_value(PRODUCER_BYTE_RATE, 10.5).is_err());
        assert!(e.validate_value(REQUEST_PERCENTAGE, 12.5).is_ok());
        assert!(e.validate_value(CONNECTION_CREATION_RATE, 1.0).is_err());
        assert!(e.validate_value(PRODUCER_BYTE_RATE, -1.0).is_err());
    }
}
