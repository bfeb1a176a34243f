//! The groups `strom consumer-groups` works on, of both protocols, in one shape: classic groups
//! (JoinGroup/SyncGroup) as librdkafka describes them (DescribeGroups), and KIP-848 consumer
//! groups (ConsumerGroupHeartbeat), which DescribeGroups does not describe, through
//! ConsumerGroupDescribe to their coordinator with the tools' own protocol client. Which is
//! which comes from ListGroups v5's group types, as Kafka's admin client learns it.

use std::collections::BTreeMap;

use anyhow::bail;
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, GroupId, ListGroupsRequest};
use kafka_protocol::protocol::StrBytes;
use rdkafka::groups::GroupInfo;

use super::super::kafka_client::{error, BrokerError, Cluster};

/// ListGroups v5 (KIP-848: group types), ConsumerGroupDescribe v0.
const LIST_GROUPS_VERSION: i16 = 5;
const CONSUMER_GROUP_DESCRIBE_VERSION: i16 = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Classic,
    Consumer,
}

impl Kind {
    /// As Kafka's `GroupType` prints itself.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Classic => "Classic",
            Kind::Consumer => "Consumer",
        }
    }
}

/// A group as ListGroups lists it.
#[derive(Clone, Debug)]
pub struct Listing {
    pub name: String,
    pub kind: Kind,
    pub state: String,
}

/// A group as described: its state, assignment strategy (a classic group's protocol, a consumer
/// group's server-side assignor) and members.
#[derive(Clone, Debug, Default)]
pub struct Group {
    pub state: String,
    pub strategy: String,
    pub members: Vec<Member>,
    /// `host:port  (id)` of the coordinator, when known.
    pub coordinator: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub host: String,
    pub client_id: String,
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// The consumer groups of the cluster (classic groups of the consumer protocol type, or with
/// none, and KIP-848 groups; share groups are `strom share-groups`'), by name, from every broker.
pub async fn list(cluster: &mut Cluster) -> anyhow::Result<Vec<Listing>> {
    let req = ListGroupsRequest::default();
    let mut out = BTreeMap::new();
    let nodes: Vec<i32> = cluster.brokers.keys().copied().collect();
    for node in nodes {
        let r = cluster.call(node, LIST_GROUPS_VERSION, &req).await?;
        if let Some(e) = error(r.error_code) {
            return Err(anyhow::Error::new(BrokerError(e)).context("cannot list the consumer groups"));
        }
        for g in r.groups {
            let kind = match (g.group_type.as_str(), g.protocol_type.as_str()) {
                ("consumer", _) => Kind::Consumer,
                ("classic" | "", "consumer" | "") => Kind::Classic,
                _ => continue,
            };
            let name = g.group_id.to_string();
            out.insert(name.clone(), Listing { name, kind, state: g.group_state.to_string() });
        }
    }
    Ok(out.into_values().collect())
}

/// A KIP-848 group, from its coordinator. `None`: the coordinator no longer knows it.
pub async fn describe_consumer_group(cluster: &mut Cluster, name: &str) -> anyhow::Result<Option<Group>> {
    let coordinator = cluster.group_coordinator(name).await?;
    let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(StrBytes::from_string(name.to_string()))]);
    let r = cluster.call(coordinator, CONSUMER_GROUP_DESCRIBE_VERSION, &req).await?;
    let Some(g) = r.groups.into_iter().next() else { bail!("ConsumerGroupDescribe: empty response") };
    match error(g.error_code) {
        None => {}
        Some(kafka_protocol::error::ResponseError::GroupIdNotFound) => return Ok(None),
        Some(e) => return Err(anyhow::Error::new(BrokerError(e)).context(format!("Consumer group '{name}'"))),
    }
    let host = cluster.brokers.get(&coordinator).cloned().unwrap_or_default();
    let members = g
        .members
        .into_iter()
        .map(|m| Member {
            id: m.member_id.to_string(),
            instance_id: m.instance_id.map(|i| i.to_string()),
            host: m.client_host.to_string(),
            client_id: m.client_id.to_string(),
            assignment: m.assignment.topic_partitions.into_iter().map(|t| (t.topic_name.to_string(), t.partitions)).collect(),
        })
        .collect();
    Ok(Some(Group { state: g.group_state.to_string(), strategy: g.assignor_name.to_string(), members, coordinator: Some(format!("{host}  ({coordinator})")) }))
}

/// A classic group as librdkafka's DescribeGroups gives it.
pub fn from_classic(g: &GroupInfo) -> Group {
    Group {
        state: g.state().to_string(),
        strategy: g.protocol().to_string(),
        members: g
            .members()
            .iter()
            .map(|m| Member {
                id: m.id().to_string(),
                // librdkafka's group listing does not carry group.instance.id.
                instance_id: None,
                host: m.client_host().to_string(),
                client_id: m.client_id().to_string(),
                assignment: m.assignment().map(super::parse_assignment).unwrap_or_default(),
            })
            .collect(),
        coordinator: None,
    }
}
