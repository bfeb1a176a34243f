//! `strom configs --entity-type groups --entity-name G --describe | --alter`: a group's configs
//! (Kafka 4's config resource GROUP, type 32: `consumer.session.timeout.ms`,
//! `share.auto.offset.reset`, ...); without `--entity-name`, `--describe` shows every group's.
//!
//! librdkafka 2.12's config resource types stop at BROKER (its GROUP is the ACL resource type 3,
//! not the config resource type 32), so DescribeConfigs and IncrementalAlterConfigs are spoken
//! with kafka-protocol's codecs through `kafka_client.rs`, to any broker (group configs live in
//! the metadata log, which every broker reads and changes).

use anyhow::{bail, Context};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{DescribeConfigsRequest, ListGroupsRequest};
use kafka_protocol::protocol::StrBytes;

use super::super::admin_ffi::{Entry, Op, Synonym};
use super::super::kafka_client::{Cluster, Settings};
use super::Args;

/// Kafka's ConfigResource type of a group, and its ConfigSource of a group's own value.
const RESOURCE_GROUP: i8 = 32;
pub(super) const DYNAMIC_GROUP_CONFIG: i32 = 8;

fn settings(a: &Args) -> anyhow::Result<Settings> {
    Settings::read("strom-configs", a.connection.command_config.as_deref(), super::super::TIMEOUT)
}

/// Every group of the cluster, of any type, sorted (ListGroups to every broker: each answers for
/// the groups it coordinates).
pub fn list(a: &Args) -> anyhow::Result<Vec<String>> {
    let settings = settings(a)?;
    let bootstrap = a.connection.bootstrap_server.clone();
    super::super::block_on(async move {
        let mut cluster = Cluster::connect(&bootstrap, &settings).await?;
        let mut ids = std::collections::BTreeSet::new();
        let nodes: Vec<i32> = cluster.brokers.keys().copied().collect();
        for node in nodes {
            let r = cluster.call(node, 4, &ListGroupsRequest::default()).await.context("ListGroups")?;
            if r.error_code != 0 {
                bail!("{}", super::super::error_text(i32::from(r.error_code), None));
            }
            ids.extend(r.groups.into_iter().map(|g| g.group_id.to_string()));
        }
        Ok(ids.into_iter().collect())
    })?
}

/// Every config of group `group`, with synonyms (DescribeConfigs v1); a resource-level error is
/// an `Err` with Kafka's error name and the broker's message.
pub fn describe(a: &Args, group: &str) -> anyhow::Result<Vec<Entry>> {
    let settings = settings(a)?;
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![DescribeConfigsResource::default().with_resource_type(RESOURCE_GROUP).with_resource_name(StrBytes::from_string(group.to_string())).with_configuration_keys(None)]);
    let bootstrap = a.connection.bootstrap_server.clone();
    super::super::block_on(async move {
        let mut cluster = Cluster::connect(&bootstrap, &settings).await?;
        let resp = cluster.call_any(1, &req).await.context("DescribeConfigs")?;
        let Some(r) = resp.results.into_iter().next() else { bail!("the broker answered no resource") };
        if r.error_code != 0 {
            bail!("{}", super::super::error_text(i32::from(r.error_code), r.error_message.as_deref()));
        }
        Ok(r.configs
            .into_iter()
            .map(|c| Entry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: i32::from(c.config_source),
                sensitive: c.is_sensitive,
                synonyms: c.synonyms.into_iter().map(|s| Synonym { name: s.name.to_string(), value: s.value.map(|v| v.to_string()), source: i32::from(s.source) }).collect(),
            })
            .collect())
    })?
}

/// IncrementalAlterConfigs of group `group`: the deletes, then the sets, in one request.
pub fn alter(a: &Args, group: &str, ops: &[Op]) -> anyhow::Result<()> {
    super::defaults::incremental_alter(a, RESOURCE_GROUP, group, ops)
}
