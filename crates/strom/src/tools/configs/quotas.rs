//! `strom configs` for client quotas, as `kafka-configs.sh --bootstrap-server` handles them:
//! `--entity-type users|clients|ips` with `--entity-name NAME` or `--entity-default`, or the
//! shorthands `--user`, `--client`, `--ip`, `--user-defaults`, `--client-defaults`,
//! `--ip-defaults` (a user and a client id together: `--user U --client C`).
//! `--alter --add-config 'producer_byte_rate=1024,request_percentage=50'` and
//! `--delete-config k1,k2` send one AlterClientQuotas entry; `--describe` sends
//! DescribeClientQuotas matching exactly the entity types given (Kafka's `containsOnly`) and
//! prints Kafka's lines, `Quota configs for user-principal 'alice', client-id 'app' are
//! producer_byte_rate=1024.0`. For users, `--describe` also lists SCRAM credentials (`users.rs`),
//! as Kafka's tool does.
//!
//! librdkafka has no client-quota API, so both requests go through `kafka_client.rs`.

use anyhow::{bail, Context};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;

use super::super::kafka_client::{Cluster, Settings};
use super::{parse_add_config, Args, EntityType};

const USER: &str = "user";
const CLIENT_ID: &str = "client-id";
const IP: &str = "ip";

/// Quota keys users and client ids take, and the one `ip` takes (Kafka's `QuotaConfigs`).
pub const CLIENT_KEYS: &[&str] = &["producer_byte_rate", "consumer_byte_rate", "request_percentage", "controller_mutation_rate"];
pub const IP_KEYS: &[&str] = &["connection_creation_rate"];

/// The entity's components, in Kafka's order (user, client id, ip): a type and its name
/// (`None`: the type's default; with `--describe`, `Any` when no name was given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Name {
    Named(String),
    Default,
    Any,
}

/// Whether the flags name a quota entity (rather than a topic, a broker or SCRAM credentials).
pub fn is_quota_command(a: &Args) -> bool {
    let shorthand = a.user.is_some() || a.client.is_some() || a.ip.is_some() || a.user_defaults || a.client_defaults || a.ip_defaults;
    let quota_key = |k: &str| CLIENT_KEYS.contains(&k) || IP_KEYS.contains(&k);
    let adds = a.add_config.as_deref().and_then(|s| parse_add_config(s).ok()).unwrap_or_default();
    match a.entity_type {
        _ if shorthand => true,
        Some(EntityType::Clients | EntityType::Ips) => true,
        // Users: quotas when altering quota keys, and always when describing (credentials are
        // listed after the quotas).
        Some(EntityType::Users) => a.describe || adds.iter().any(|(k, _)| quota_key(k)) || a.delete_config.iter().any(|k| quota_key(k.trim())),
        _ => false,
    }
}

/// The components the flags name, with Kafka's checks and messages.
pub fn components(a: &Args) -> anyhow::Result<Vec<(&'static str, Name)>> {
    let shorthand = a.user.is_some() || a.client.is_some() || a.ip.is_some() || a.user_defaults || a.client_defaults || a.ip_defaults;
    let named = |name: &Option<String>, default: bool| match (name, default) {
        (Some(_), true) => bail!("Only one of --entity-name and --entity-default may be specified"),
        (Some(n), false) => Ok(Some(Name::Named(n.clone()))),
        (None, true) => Ok(Some(Name::Default)),
        (None, false) => Ok(None),
    };
    let mut out = Vec::new();
    if shorthand {
        if a.entity_type.is_some() || a.entity_name.is_some() || a.entity_default {
            bail!("--entity-{{type,name,default}} should not be used in conjunction with specific entity flags");
        }
        for (kind, name, default) in [(USER, &a.user, a.user_defaults), (CLIENT_ID, &a.client, a.client_defaults), (IP, &a.ip, a.ip_defaults)] {
            if let Some(n) = named(name, default)? {
                out.push((kind, n));
            }
        }
    } else {
        let kind = match a.entity_type {
            Some(EntityType::Users) => USER,
            Some(EntityType::Clients) => CLIENT_ID,
            Some(EntityType::Ips) => IP,
            _ => bail!("At least one entity type must be specified"),
        };
        out.push((kind, named(&a.entity_name, a.entity_default)?.unwrap_or(Name::Any)));
    }
    if out.iter().any(|(k, _)| *k == IP) && out.len() > 1 {
        bail!("Only 'users' and 'clients' entity types may be specified together");
    }
    if a.alter && out.iter().any(|(_, n)| *n == Name::Any) {
        bail!("An entity name must be specified with --alter of {}", plural(out[0].0));
    }
    if let Some((_, Name::Named(ip))) = out.iter().find(|(k, _)| *k == IP) {
        if ip.parse::<std::net::IpAddr>().is_err() {
            bail!("The entity name for ips must be a valid IP address, but it is: {ip}");
        }
    }
    Ok(out)
}

fn plural(kind: &str) -> &'static str {
    match kind {
        USER => "users",
        CLIENT_ID => "clients",
        _ => "ips",
    }
}

/// Java's `Double.toString`, as Kafka's tool prints quota values: `1024.0`, `12.5`, `1.0E7`.
pub fn java_double(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        let s = format!("{v:?}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') { mantissa.to_string() } else { format!("{mantissa}.0") };
        format!("{mantissa}E{exp}")
    }
}

/// Kafka's description of an entity: `user-principal 'alice', client-id 'app'`, `the default ip`.
pub fn describe_entity(entity: &[(String, Option<String>)]) -> String {
    let mut parts: Vec<(usize, String)> = entity
        .iter()
        .map(|(t, n)| {
            let (rank, label) = match t.as_str() {
                USER => (0, "user-principal"),
                CLIENT_ID => (1, "client-id"),
                IP => (2, "ip"),
                other => (3, other),
            };
            (rank, match n {
                Some(n) => format!("{label} '{n}'"),
                None => format!("the default {label}"),
            })
        })
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join(", ")
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let parts = components(a)?;
    let settings = Settings::read("strom-configs", a.connection.command_config.as_deref(), super::super::TIMEOUT)?;
    let bootstrap = a.connection.bootstrap_server.clone();
    let alteration = if a.alter { Some(alteration(a, &parts)?) } else { None };
    // As Kafka's tool: credentials too, unless a client id or the default user is named.
    let scram_user = match &parts[..] {
        [(USER, Name::Named(u))] => Some(Some(u.clone())),
        [(USER, Name::Any)] => Some(None),
        _ => None,
    }
    .filter(|_| a.describe);
    super::super::block_on(async move {
        let mut cluster = Cluster::connect(&bootstrap, &settings).await?;
        let node = *cluster.brokers.keys().next().context("the cluster lists no brokers")?;
        match alteration {
            Some((deletes, req)) => {
                if !deletes.is_empty() {
                    // As Kafka's tool: removing a key the entity does not have is an error.
                    let current = describe(&mut cluster, node, &parts).await?;
                    let have: Vec<String> = current.entries.iter().flatten().flat_map(|e| e.values.iter().map(|v| v.key.to_string())).collect();
                    let missing: Vec<&str> = deletes.iter().filter(|k| !have.contains(k)).map(String::as_str).collect();
                    if !missing.is_empty() {
                        bail!("Invalid config(s): {}", missing.join(","));
                    }
                }
                let resp = cluster.call(node, 1, &req).await.context("AlterClientQuotas")?;
                for e in &resp.entries {
                    if e.error_code != 0 {
                        bail!("{}", super::super::error_text(i32::from(e.error_code), e.error_message.as_deref()));
                    }
                }
                let (kind, name) = &parts[0];
                match name {
                    Name::Named(n) => println!("Completed updating config for {} {n}.", plural(kind).trim_end_matches('s')),
                    _ => println!("Completed updating default config for {} in the cluster.", plural(kind)),
                }
                Ok(())
            }
            None => {
                let resp = describe(&mut cluster, node, &parts).await?;
                let mut entries: Vec<(String, Vec<(String, f64)>)> = resp
                    .entries
                    .iter()
                    .flatten()
                    .map(|e| {
                        let entity: Vec<(String, Option<String>)> = e.entity.iter().map(|d| (d.entity_type.to_string(), d.entity_name.as_ref().map(|n| n.to_string()))).collect();
                        let mut values: Vec<(String, f64)> = e.values.iter().map(|v| (v.key.to_string(), v.value)).collect();
                        values.sort_by(|x, y| x.0.cmp(&y.0));
                        (describe_entity(&entity), values)
                    })
                    .collect();
                entries.sort_by(|x, y| x.0.cmp(&y.0));
                for (entity, values) in entries {
                    let values: Vec<String> = values.iter().map(|(k, v)| format!("{k}={}", java_double(*v))).collect();
                    println!("Quota configs for {entity} are {}", values.join(", "));
                }
                Ok(())
            }
        }
    })??;
    if let Some(user) = scram_user {
        super::users::run(a, user)?;
    }
    Ok(())
}

async fn describe(cluster: &mut Cluster, node: i32, parts: &[(&'static str, Name)]) -> anyhow::Result<DescribeClientQuotasResponse> {
    // Kafka's match types: 0 exact name, 1 the default, 2 any.
    let components = parts
        .iter()
        .map(|(kind, name)| {
            let c = ComponentData::default().with_entity_type(StrBytes::from_static_str(kind));
            match name {
                Name::Named(n) => c.with_match_type(0).with_match(Some(StrBytes::from_string(n.clone()))),
                // The crate's default match is an empty string, which Kafka refuses here.
                Name::Default => c.with_match_type(1).with_match(None),
                Name::Any => c.with_match_type(2).with_match(None),
            }
        })
        .collect();
    let resp = cluster.call(node, 1, &DescribeClientQuotasRequest::default().with_components(components).with_strict(true)).await.context("DescribeClientQuotas")?;
    if resp.error_code != 0 {
        bail!("{}", super::super::error_text(i32::from(resp.error_code), resp.error_message.as_deref()));
    }
    Ok(resp)
}

/// The keys to delete and the request, with Kafka's checks and messages.
fn alteration(a: &Args, parts: &[(&'static str, Name)]) -> anyhow::Result<(Vec<String>, AlterClientQuotasRequest)> {
    if a.add_config_file.is_some() {
        bail!("--add-config-file is not supported for quotas");
    }
    let adds = match &a.add_config {
        Some(spec) => parse_add_config(spec)?,
        None => Vec::new(),
    };
    let mut deletes: Vec<String> = Vec::new();
    for k in a.delete_config.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
        if !deletes.iter().any(|d| d == k) {
            deletes.push(k.to_string());
        }
    }
    if adds.is_empty() && deletes.is_empty() {
        bail!("At least one of --add-config, --add-config-file, or --delete-config must be specified with --alter");
    }
    let ip = parts[0].0 == IP;
    let allowed = if ip { IP_KEYS } else { CLIENT_KEYS };
    let unknown: Vec<&str> = adds.iter().map(|(k, _)| k.as_str()).chain(deletes.iter().map(String::as_str)).filter(|k| !allowed.contains(k)).collect();
    if !unknown.is_empty() {
        if ip {
            bail!("Only connection quota configs can be added for 'ips' using --bootstrap-server. Unexpected config names: {}", unknown.join(","));
        }
        bail!("Only quota configs can be added for '{}' using --bootstrap-server. Unexpected config names: {}", plural(parts[0].0), unknown.join(","));
    }
    let mut ops = Vec::new();
    for (k, v) in &adds {
        let value: f64 = v.parse().map_err(|_| anyhow::anyhow!("Cannot parse quota configuration value for {k}: {v}"))?;
        ops.push(OpData::default().with_key(StrBytes::from_string(k.clone())).with_value(value));
    }
    for k in &deletes {
        ops.push(OpData::default().with_key(StrBytes::from_string(k.clone())).with_remove(true));
    }
    let entity = parts
        .iter()
        .map(|(kind, name)| {
            EntityData::default().with_entity_type(StrBytes::from_static_str(kind)).with_entity_name(match name {
                Name::Named(n) => Some(StrBytes::from_string(n.clone())),
                _ => None,
            })
        })
        .collect();
    Ok((deletes, AlterClientQuotasRequest::default().with_entries(vec![EntryData::default().with_entity(entity).with_ops(ops)])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_java_doubles() {
        assert_eq!(java_double(1024.0), "1024.0");
        assert_eq!(java_double(12.5), "12.5");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(12_345_678.0), "1.2345678E7");
        assert_eq!(java_double(0.0001), "1.0E-4");
    }

    #[test]
    fn entities_are_described_as_kafka() {
        let e = |parts: &[(&str, Option<&str>)]| describe_entity(&parts.iter().map(|(t, n)| (t.to_string(), n.map(str::to_string))).collect::<Vec<_>>());
        assert_eq!(e(&[(CLIENT_ID, Some("app")), (USER, Some("alice"))]), "user-principal 'alice', client-id 'app'");
        assert_eq!(e(&[(USER, None)]), "the default user-principal");
        assert_eq!(e(&[(IP, Some("10.0.0.1"))]), "ip '10.0.0.1'");
    }
}
