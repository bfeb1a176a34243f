//! Topic administration: the rules for creating, growing, deleting and configuring topics.
//! Handlers translate requests into these calls and the errors back into Kafka error codes.
//!
//! A change is a command committed through the controller; the answer waits until this broker
//! has published the image that holds it (`Broker::publish`), so a client that creates a topic
//! and produces to it at once finds its partitions open here.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use strom_config::BrokerConfig;
use strom_controller::Controller;
use tokio::sync::watch;
use strom_config::validate_topic_config;
use strom_metadata::assign::{manual_new_partitions, manual_topic_partitions, InvalidAssignment};
use strom_metadata::elect::place_replicas;
use strom_metadata::{MetadataImage, MetadataRecord, TopicImage};

/// A Kafka error code with the message a real broker would attach.
#[derive(Debug, Clone)]
pub struct AdminError {
    pub code: ResponseError,
    pub message: String,
}

impl AdminError {
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        AdminError { code, message: message.into() }
    }
}

/// Kafka's rule: 1-249 characters of [a-zA-Z0-9._-], and not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), AdminError> {
    let bad = |why: &str| Err(AdminError::new(ResponseError::InvalidTopicException, format!("Topic name \"{name}\" is illegal, {why}")));
    if name.is_empty() {
        return bad("it can't be empty");
    }
    if name == "." || name == ".." {
        return bad("it can't be '.' or '..'");
    }
    if name.len() > 249 {
        return bad("it can't be longer than 249 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return bad("it contains a character other than ASCII alphanumerics, '.', '_' and '-'");
    }
    Ok(())
}

pub(crate) fn metadata_failure(e: impl std::fmt::Display) -> AdminError {
    tracing::error!(error = %e, "metadata write failed");
    AdminError::new(ResponseError::KafkaStorageError, e.to_string())
}

fn unknown_topic() -> AdminError {
    AdminError::new(ResponseError::UnknownTopicOrPartition, "This server does not host this topic-partition.")
}

fn invalid_assignment(e: InvalidAssignment) -> AdminError {
    AdminError::new(ResponseError::InvalidReplicaAssignment, e.0)
}

fn not_enough_brokers(rf: i16, live: usize) -> AdminError {
    AdminError::new(
        ResponseError::InvalidReplicationFactor,
        format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {live} broker(s) are registered."),
    )
}

/// Where a new topic's replicas go.
enum Placement {
    /// Spread over the live brokers (`place_replicas`).
    Spread { partitions: i32, replication_factor: i16 },
    /// As the request names them: `(partition index, broker ids)`.
    Manual(Vec<(i32, Vec<i32>)>),
}

/// How long an answer waits for this broker to publish the change; past it, the change is
/// committed all the same and the answer goes out.
const PUBLISH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct TopicAdmin {
    config: Arc<BrokerConfig>,
    metadata: Arc<Controller>,
    /// The last metadata version this broker published.
    published: watch::Receiver<u64>,
}

impl TopicAdmin {
    pub fn new(config: Arc<BrokerConfig>, metadata: Arc<Controller>, published: watch::Receiver<u64>) -> Self {
        TopicAdmin { config, metadata, published }
    }

    /// Waits until this broker has published `image` (or a later one).
    pub(crate) fn metadata(&self) -> &Controller {
        &self.metadata
    }

    pub(crate) async fn published(&self, image: &MetadataImage) {
        let mut rx = self.published.clone();
        let version = image.version;
        if tokio::time::timeout(PUBLISH_WAIT, rx.wait_for(|v| *v >= version)).await.is_err() {
            tracing::warn!(version, "metadata change committed but not yet applied here");
        }
    }

    /// Creates a topic. `partitions`/`replication_factor` of -1 take the broker defaults.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<TopicImage>, AdminError> {
        validate_topic_name(name)?;
        let partitions = if partitions == -1 { self.config.num_partitions } else { partitions };
        let replication_factor = if replication_factor == -1 { self.config.default_replication_factor } else { replication_factor };
        if partitions <= 0 {
            return Err(AdminError::new(ResponseError::InvalidPartitions, "Number of partitions must be larger than 0."));
        }
        if replication_factor <= 0 {
            return Err(AdminError::new(ResponseError::InvalidReplicationFactor, "Replication factor must be larger than 0."));
        }
        self.create(name, Placement::Spread { partitions, replication_factor }, configs, validate_only).await
    }

    /// Creates a topic whose partitions have the given replicas: `(partition index, broker ids)`
    /// pairs, any registered brokers (CreateTopics' `assignments`, `--replica-assignment`).
    pub async fn create_topic_assigned(
        &self,
        name: &str,
        assignments: Vec<(i32, Vec<i32>)>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<TopicImage>, AdminError> {
        self.create(name, Placement::Manual(assignments), configs, validate_only).await
    }

    async fn create(&self, name: &str, placement: Placement, configs: BTreeMap<String, String>, validate_only: bool) -> Result<Arc<TopicImage>, AdminError> {
        validate_topic_name(name)?;
        for (k, v) in &configs {
            validate_topic_config(k, v).map_err(|m| AdminError::new(ResponseError::InvalidConfig, m))?;
        }
        let id = Uuid::new_v4();
        let build = |img: &MetadataImage| -> Result<Vec<MetadataRecord>, AdminError> {
            if img.topics.contains_key(name) {
                return Err(AdminError::new(ResponseError::TopicAlreadyExists, format!("Topic '{name}' already exists.")));
            }
            let placed = match &placement {
                Placement::Spread { partitions, replication_factor } => place_replicas(img, 0, *partitions, *replication_factor)
                    .map_err(|live| not_enough_brokers(*replication_factor, live))?,
                Placement::Manual(assignments) => manual_topic_partitions(img, assignments).map_err(invalid_assignment)?,
            };
            let replication_factor = placed.first().map_or(0, |p| p.replicas.len() as i16);
            let topic = TopicImage { name: name.to_string(), id, replication_factor, partitions: placed, configs: configs.clone() };
            Ok(vec![MetadataRecord::TopicCreated(topic)])
        };
        if validate_only {
            let records = build(&self.metadata.image())?;
            return match records.into_iter().next() {
                Some(MetadataRecord::TopicCreated(t)) => Ok(Arc::new(t)),
                _ => Err(AdminError::new(ResponseError::UnknownServerError, "no topic built")),
            };
        }
        let image = self.metadata.commit(build).await.map_err(metadata_failure)??;
        self.published(&image).await;
        let topic = image.topic(name).cloned().ok_or_else(|| AdminError::new(ResponseError::UnknownServerError, "topic vanished"))?;
        tracing::info!(topic = name, partitions = topic.partition_count(), replication_factor = topic.replication_factor, "created topic");
        Ok(topic)
    }

    /// Metadata auto-creation (`auto.create.topics.enable`); racing creators both succeed.
    pub async fn auto_create_topic(&self, name: &str) -> Result<Arc<TopicImage>, AdminError> {
        match self.create_topic(name, -1, -1, BTreeMap::new(), false).await {
            Err(e) if e.code == ResponseError::TopicAlreadyExists => self
                .metadata
                .image()
                .topic(name)
                .cloned()
                .ok_or_else(|| AdminError::new(ResponseError::UnknownTopicOrPartition, "topic was deleted while being created")),
            other => other,
        }
    }

    /// Deletes a topic and its data; returns the deleted topic's id.
    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, AdminError> {
        let deleted = self.metadata.image().topic(name).map(|t| t.id).ok_or_else(unknown_topic)?;
        let image = self
            .metadata
            .commit(|img| match img.topic(name) {
                Some(t) if t.id == deleted => Ok(vec![MetadataRecord::TopicDeleted { name: name.to_string() }]),
                _ => Err(unknown_topic()),
            })
            .await
            .map_err(metadata_failure)??;
        // The image no longer names the topic, so a crash before the files go leaves only an
        // orphan directory, which a later topic of the same name replaces (partition.metadata).
        self.published(&image).await;
        tracing::info!(topic = name, "deleted topic");
        Ok(deleted)
    }

    /// Grows a topic to `count` partitions; the new ones get the given replicas (one list per
    /// new partition, CreatePartitions' `assignments`) or are spread over the live brokers.
    pub async fn create_partitions(&self, name: &str, count: i32, assignments: Option<Vec<Vec<i32>>>, validate_only: bool) -> Result<(), AdminError> {
        let check = |img: &MetadataImage| -> Result<Vec<MetadataRecord>, AdminError> {
            let t = img.topic(name).ok_or_else(unknown_topic)?;
            let have = t.partition_count();
            if count == have {
                return Err(AdminError::new(ResponseError::InvalidPartitions, format!("Topic already has {have} partition(s).")));
            }
            if count < have {
                return Err(AdminError::new(
                    ResponseError::InvalidPartitions,
                    format!("The topic {name} currently has {have} partition(s); {count} would not be an increase."),
                ));
            }
            let partitions = match &assignments {
                Some(a) => manual_new_partitions(img, t, count, a).map_err(invalid_assignment)?,
                None => place_replicas(img, have, count - have, t.replication_factor).map_err(|live| not_enough_brokers(t.replication_factor, live))?,
            };
            Ok(vec![MetadataRecord::PartitionsCreated { name: name.to_string(), partitions }])
        };
        if validate_only {
            return check(&self.metadata.image()).map(|_| ());
        }
        let image = self.metadata.commit(check).await.map_err(metadata_failure)??;
        self.published(&image).await;
        Ok(())
    }

    /// Replaces (`incremental = false`, AlterConfigs) or edits (IncrementalAlterConfigs) a topic's configs.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        edit: impl Fn(&mut BTreeMap<String, String>) -> Result<(), AdminError>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let build = |img: &MetadataImage| -> Result<Vec<MetadataRecord>, AdminError> {
            let t = img.topic(name).ok_or_else(unknown_topic)?;
            let mut configs = t.configs.clone();
            edit(&mut configs)?;
            for (k, v) in &configs {
                validate_topic_config(k, v).map_err(|m| AdminError::new(ResponseError::InvalidConfig, m))?;
            }
            Ok(vec![MetadataRecord::TopicConfigsSet { name: name.to_string(), configs }])
        };
        if validate_only {
            return build(&self.metadata.image()).map(|_| ());
        }
        let image = self.metadata.commit(build).await.map_err(metadata_failure)??;
        self.published(&image).await;
        Ok(())
    }

    /// Changes dynamic broker configs: the cluster's (`node` None: the default broker resource)
    /// or this broker's own (`node` Some: broker `<id>`), as Kafka keeps both. Security keys
    /// (keystores) are one broker's own only, as in Kafka; `check` sees the configs this broker
    /// would run with, before anything is committed (a keystore that does not load is refused
    /// there, not found broken later).
    pub async fn alter_broker_configs(
        &self,
        node: Option<i32>,
        edit: impl Fn(&mut BTreeMap<String, String>) -> Result<(), AdminError>,
        check: impl Fn(&strom_config::BrokerConfig) -> Result<(), AdminError>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let me = self.config.node_id;
        let build = |img: &MetadataImage| -> Result<Vec<MetadataRecord>, AdminError> {
            let mut configs = match node {
                None => img.broker_configs.clone(),
                Some(n) => img.node_configs.get(&n).cloned().unwrap_or_default(),
            };
            edit(&mut configs)?;
            for k in configs.keys() {
                match strom_config::dynamic_key(k) {
                    None => return Err(AdminError::new(ResponseError::InvalidConfig, format!("Cannot update config `{k}` dynamically; set it in server.properties"))),
                    Some(scope) if scope == strom_config::DynamicScope::PerBroker && node.is_none() => {
                        return Err(AdminError::new(
                            ResponseError::InvalidRequest,
                            format!("Cannot update `{k}` at the default cluster level: it is one broker's own, so give the broker id (--entity-name)"),
                        ))
                    }
                    Some(_) => {}
                }
            }
            let mut running = img.dynamic_configs(me);
            match node {
                None => {
                    running = configs.clone();
                    running.extend(img.node_configs.get(&me).into_iter().flatten().map(|(k, v)| (k.clone(), v.clone())));
                }
                Some(_) => running.extend(configs.iter().map(|(k, v)| (k.clone(), v.clone()))),
            }
            let effective = self.config.with_dynamic(&running).map_err(|e| AdminError::new(ResponseError::InvalidConfig, e.to_string()))?;
            check(&effective)?;
            Ok(vec![match node {
                None => MetadataRecord::BrokerConfigsSet { configs },
                Some(node) => MetadataRecord::NodeConfigsSet { node, configs },
            }])
        };
        if validate_only {
            return build(&self.metadata.image()).map(|_| ());
        }
        let image = self.metadata.commit(build).await.map_err(metadata_failure)??;
        self.published(&image).await;
        Ok(())
    }

    /// Changes group `group`'s configs (Kafka 4's config resource GROUP): `edit` turns its
    /// current set into the new one, which must pass Kafka's checks (`validate_group_configs`)
    /// against this broker's bounds. The group need not exist (Kafka allows it).
    pub async fn alter_group_configs(
        &self,
        group: &str,
        edit: impl Fn(&mut BTreeMap<String, String>) -> Result<(), AdminError>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let build = |img: &MetadataImage| -> Result<Vec<MetadataRecord>, AdminError> {
            let mut configs = img.group_configs.get(group).cloned().unwrap_or_default();
            edit(&mut configs)?;
            self.config.validate_group_configs(group, &configs).map_err(|e| match e {
                strom_config::GroupConfigError::InvalidRequest(m) => AdminError::new(ResponseError::InvalidRequest, m),
                strom_config::GroupConfigError::InvalidConfig(m) => AdminError::new(ResponseError::InvalidConfig, m),
            })?;
            Ok(vec![MetadataRecord::GroupConfigsSet { group: group.to_string(), configs }])
        };
        if validate_only {
            return build(&self.metadata.image()).map(|_| ());
        }
        let image = self.metadata.commit(build).await.map_err(metadata_failure)??;
        self.published(&image).await;
        Ok(())
    }
}

/// One partition of an AlterPartitionReassignments request: its target replicas, or `None` to
/// cancel the partition's ongoing reassignment.
pub struct Reassignment {
    pub topic: String,
    pub index: i32,
    pub target: Option<Vec<i32>>,
}

impl TopicAdmin {
    /// Starts (or cancels) partition reassignments (KIP-455), with Kafka's checks: the partition
    /// exists, the target is non-empty, without duplicates and names registered brokers only,
    /// and keeps the replication factor unless `allow_rf_change`. The valid ones go into one
    /// metadata command; the controller completes each once its target replicas are in sync.
    pub async fn reassign_partitions(&self, changes: Vec<Reassignment>, allow_rf_change: bool) -> Vec<Result<(), AdminError>> {
        let image = self.metadata.image();
        let mut results = Vec::with_capacity(changes.len());
        let mut records = Vec::new();
        for c in changes {
            let check = || {
                let p = image.topic(&c.topic).and_then(|t| t.partition(c.index)).ok_or_else(unknown_topic)?;
                let Some(target) = &c.target else {
                    if !p.reassigning() {
                        return Err(AdminError::new(ResponseError::NoReassignmentInProgress, "No reassignment is in progress for this partition."));
                    }
                    return Ok(());
                };
                let invalid = |why: String| Err(AdminError::new(ResponseError::InvalidReplicaAssignment, why));
                if target.is_empty() {
                    return invalid("The target replica set is empty.".into());
                }
                let mut sorted = target.clone();
                sorted.sort_unstable();
                sorted.dedup();
                if sorted.len() != target.len() {
                    return invalid(format!("The target replicas {target:?} contain a duplicate."));
                }
                if let Some(b) = target.iter().find(|b| !image.brokers.contains_key(b)) {
                    return invalid(format!("Broker {b} is not a registered broker."));
                }
                let current = p.replicas.len() - p.adding.len();
                if !allow_rf_change && target.len() != current {
                    return Err(AdminError::new(
                        ResponseError::InvalidReplicationFactor,
                        format!("The replication factor would change from {current} to {}.", target.len()),
                    ));
                }
                Ok(())
            };
            let r = check();
            if r.is_ok() {
                records.push(MetadataRecord::ReassignmentChanged { name: c.topic.clone(), index: c.index, target: c.target.clone() });
            }
            results.push(r);
        }
        if !records.is_empty() {
            let committed = self.metadata.commit::<std::convert::Infallible>(|_| Ok(records.clone())).await;
            match committed {
                Ok(Ok(image)) => self.published(&image).await,
                Ok(Err(never)) => match never {},
                Err(e) => {
                    let failed = metadata_failure(e);
                    for r in results.iter_mut().filter(|r| r.is_ok()) {
                        *r = Err(failed.clone());
                    }
                }
            }
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        for bad in ["", ".", "..", "a b", "ä", &"x".repeat(250)] {
            let e = validate_topic_name(bad).unwrap_err();
            assert_eq!(e.code, ResponseError::InvalidTopicException, "{bad:?}");
        }
    }
}
