//! Cluster metadata: an immutable image, changed only by applying records.
//!
//! This follows Kafka's KRaft shape (MetadataImage + MetadataDelta): readers take an `Arc` snapshot
//! and never hold a lock while they work; the controller's Raft log carries `MetadataCommand`s,
//! and every node applies them, in log order, to build its next image (`controller/`). Applying
//! is pure and deterministic, so every node that applied the same log holds the same image.

pub mod acl;
pub mod assign;
pub mod delta;
pub mod elect;
pub mod liveness;
pub mod quota;
pub mod read_replica;
pub mod scram;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Kafka's `-1` leader: no replica can serve the partition.
pub const NO_LEADER: i32 = -1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PartitionImage {
    /// Replica node ids; the first is the preferred leader.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    /// Bumped on every leader change: fences requests (and log suffixes) of older leaders.
    pub leader_epoch: i32,
    /// Bumped on every change of the partition's state.
    pub partition_epoch: i32,
    /// An ongoing reassignment (KIP-455): replicas joining (catching up from the leader) and
    /// replicas to drop once every target replica is in sync. `replicas` holds both meanwhile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<i32>,
}

impl PartitionImage {
    pub fn new(replicas: Vec<i32>) -> Self {
        let leader = replicas.first().copied().unwrap_or(NO_LEADER);
        PartitionImage { isr: replicas.clone(), replicas, leader, leader_epoch: 0, partition_epoch: 0, adding: vec![], removing: vec![] }
    }

    pub fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas the partition had before its ongoing reassignment (all of them if none).
    fn original(&self) -> Vec<i32> {
        self.replicas.iter().copied().filter(|r| !self.adding.contains(r)).collect()
    }

    /// The replicas it will have once its ongoing reassignment completes.
    pub fn target(&self) -> Vec<i32> {
        self.replicas.iter().copied().filter(|r| !self.removing.contains(r)).collect()
    }

    /// Narrows the replica set to `replicas`: the ISR follows, and a leader outside it hands
    /// over to the first in-sync replica that is live (a new leader epoch).
    fn narrow_to(&mut self, replicas: Vec<i32>, live: impl Fn(i32) -> bool) {
        self.isr.retain(|r| replicas.contains(r));
        if !replicas.contains(&self.leader) {
            let next = self.isr.iter().copied().find(|r| live(*r)).unwrap_or(NO_LEADER);
            if next != self.leader {
                self.leader = next;
                self.leader_epoch += 1;
            }
        }
        self.replicas = replicas;
        self.adding.clear();
        self.removing.clear();
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub replication_factor: i16,
    /// Index = partition id.
    pub partitions: Vec<PartitionImage>,
    /// Only the configs set on the topic; defaults come from the broker config.
    pub configs: BTreeMap<String, String>,
}

impl TopicImage {
    pub fn partition_count(&self) -> i32 {
        self.partitions.len() as i32
    }

    pub fn partition(&self, index: i32) -> Option<&PartitionImage> {
        usize::try_from(index).ok().and_then(|i| self.partitions.get(i))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Endpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BrokerRegistration {
    pub id: i32,
    /// New on every start of the process: tells a restarted broker from a late heartbeat.
    pub incarnation: Uuid,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// A fenced broker leads nothing and is left out of Metadata responses.
    pub fenced: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MetadataImage {
    pub cluster_id: String,
    /// Commands applied so far; a command built on an older image is refused (`based_on`).
    pub version: u64,
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    /// Producer ids below this have been handed out; they are never reused.
    pub next_producer_id: i64,
    /// Dynamic broker configs of the whole cluster (AlterConfigs on the default broker resource,
    /// `--entity-default`): Kafka's DYNAMIC_DEFAULT_BROKER_CONFIG.
    pub broker_configs: BTreeMap<String, String>,
    /// Dynamic configs of one broker (AlterConfigs on broker `<id>`), over the cluster's:
    /// Kafka's DYNAMIC_BROKER_CONFIG. A keystore path is one broker's own, for instance.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// Every ACL (CreateAcls, DeleteAcls); the broker's authorizer reads them from the image.
    #[serde(default, skip_serializing_if = "acl::Acls::is_empty")]
    pub acls: acl::Acls,
    /// Client quotas (AlterClientQuotas).
    #[serde(default, skip_serializing_if = "quota::Quotas::is_empty")]
    pub quotas: quota::Quotas,
    /// SASL/SCRAM credentials (`scram.rs`).
    #[serde(default)]
    pub scram: scram::ScramImage,
    /// Group configs (Kafka 4's config resource GROUP, KIP-848/KIP-932), by group id: a group's
    /// own session timeouts, heartbeat intervals and share settings over the broker's. A group
    /// may have them before it exists, and keeps them when it is deleted, as in Kafka.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicImage>> {
        self.topics.values().find(|t| t.id == id)
    }

    /// The dynamic configs broker `node` runs with: the cluster's, then its own over them.
    pub fn dynamic_configs(&self, node: i32) -> BTreeMap<String, String> {
        let mut out = self.broker_configs.clone();
        if let Some(own) = self.node_configs.get(&node) {
            out.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        out
    }

    /// Brokers that may lead partitions and are shown to clients.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }
}

/// One change to the cluster metadata.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum MetadataRecord {
    /// The first record of a cluster's log.
    ClusterCreated { cluster_id: String },
    /// Replaces any earlier registration of the id; the broker starts unfenced.
    BrokerRegistered(BrokerRegistration),
    BrokerFenced { id: i32 },
    BrokerUnfenced { id: i32 },
    TopicCreated(TopicImage),
    TopicDeleted { name: String },
    /// New partitions, appended after the existing ones.
    PartitionsCreated { name: String, partitions: Vec<PartitionImage> },
    /// A new leader and ISR; the epochs are bumped by the apply.
    PartitionChanged { name: String, index: i32, leader: i32, isr: Vec<i32> },
    /// A leader's request for a new ISR (Kafka's AlterPartition), computed in the given leader
    /// and partition epochs: applied only if the partition is still in them (a request built on
    /// an older state, say before a follower restarted, must not re-add it), and only with
    /// members that are replicas on live brokers. The leader stays in.
    IsrChanged { name: String, index: i32, leader: i32, leader_epoch: i32, partition_epoch: i32, isr: Vec<i32> },
    /// AlterPartitionReassignments: move the partition to the `target` replicas (`None`: cancel
    /// an ongoing move). The joining replicas are added at once, so they start copying the log;
    /// the leaving ones stay until every target replica is in sync (`ReassignmentCompleted`).
    ReassignmentChanged { name: String, index: i32, target: Option<Vec<i32>> },
    /// The target replicas are all in sync: the partition drops the leaving ones (and, if the
    /// leader is one of them, gets a leader among the target replicas). Ignored otherwise.
    ReassignmentCompleted { name: String, index: i32 },
    TopicConfigsSet { name: String, configs: BTreeMap<String, String> },
    BrokerConfigsSet { configs: BTreeMap<String, String> },
    /// One broker's own dynamic configs, replacing what it had (empty: none left).
    NodeConfigsSet { node: i32, configs: BTreeMap<String, String> },
    /// One group's configs, replacing what it had (empty: none left); Kafka's ConfigRecord
    /// with resource type GROUP.
    GroupConfigsSet { group: String, configs: BTreeMap<String, String> },
    ProducerIdsAllocated { next_producer_id: i64 },
    /// CreateAcls: ACLs that already exist are left as they are.
    AclsCreated { acls: Vec<acl::AclBinding> },
    /// DeleteAcls: the ACLs its filters matched when the command was built.
    AclsDeleted { acls: Vec<acl::AclBinding> },
    /// AlterClientQuotas, for one entity: values set and keys removed.
    ClientQuotasAltered { entity: quota::QuotaEntity, set: BTreeMap<String, f64>, remove: Vec<String> },
    /// Kafka's UserScramCredentialRecord and RemoveUserScramCredentialRecord (`scram.rs`).
    ScramCredentialSet { name: String, mechanism: scram::ScramMechanism, credential: scram::ScramCredential },
    ScramCredentialRemoved { name: String, mechanism: scram::ScramMechanism },
}

/// A partition leader's wanted ISR (Kafka's AlterPartition), from the leader epoch and partition
/// epoch it was computed in.
#[derive(Clone, Debug, PartialEq)]
pub struct IsrChange {
    pub topic: Arc<str>,
    pub index: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

impl IsrChange {
    /// The record that asks for it, proposed by the partition's leader `leader`.
    pub fn record(&self, leader: i32) -> MetadataRecord {
        MetadataRecord::IsrChanged {
            name: self.topic.to_string(),
            index: self.index,
            leader,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            isr: self.isr.clone(),
        }
    }
}

/// The unit the metadata log carries: records that apply together or not at all.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MetadataCommand {
    /// The image version the records were computed from. If another command was applied since,
    /// the records may no longer be valid (two creators of one topic): the command is refused
    /// and its proposer builds it again from the newer image. `None`: valid on any image.
    pub based_on: Option<u64>,
    pub records: Vec<MetadataRecord>,
}

impl MetadataImage {
    /// Applies a command; returns whether it was applied (see `based_on`).
    pub fn apply_command(&mut self, cmd: &MetadataCommand) -> bool {
        if cmd.based_on.is_some_and(|v| v != self.version) {
            return false;
        }
        for r in &cmd.records {
            self.apply(r);
        }
        self.version += 1;
        true
    }

    fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::ClusterCreated { cluster_id } => {
                if self.cluster_id.is_empty() {
                    self.cluster_id = cluster_id.clone();
                }
            }
            MetadataRecord::BrokerRegistered(b) => {
                self.brokers.insert(b.id, b.clone());
            }
            MetadataRecord::BrokerFenced { id } => {
                if let Some(b) = self.brokers.get_mut(id) {
                    b.fenced = true;
                }
            }
            MetadataRecord::BrokerUnfenced { id } => {
                if let Some(b) = self.brokers.get_mut(id) {
                    b.fenced = false;
                }
            }
            MetadataRecord::TopicCreated(t) => {
                self.topics.insert(t.name.clone(), Arc::new(t.clone()));
            }
            MetadataRecord::TopicDeleted { name } => {
                self.topics.remove(name);
            }
            MetadataRecord::PartitionsCreated { name, partitions } => {
                if let Some(t) = self.topics.get_mut(name) {
                    Arc::make_mut(t).partitions.extend(partitions.iter().cloned());
                }
            }
            MetadataRecord::PartitionChanged { name, index, leader, isr } => {
                let Some(t) = self.topics.get_mut(name) else { return };
                let Some(p) = usize::try_from(*index).ok().and_then(|i| Arc::make_mut(t).partitions.get_mut(i)) else { return };
                if p.leader != *leader {
                    p.leader_epoch += 1;
                }
                p.leader = *leader;
                p.isr = isr.clone();
                p.partition_epoch += 1;
            }
            MetadataRecord::IsrChanged { name, index, leader, leader_epoch, partition_epoch, isr } => {
                let brokers = &self.brokers;
                let Some(t) = self.topics.get_mut(name) else { return };
                let Some(p) = usize::try_from(*index).ok().and_then(|i| Arc::make_mut(t).partitions.get_mut(i)) else { return };
                if p.leader != *leader || p.leader_epoch != *leader_epoch || p.partition_epoch != *partition_epoch {
                    return;
                }
                let eligible = |b: &i32| *b == *leader || (p.replicas.contains(b) && brokers.get(b).is_some_and(|r| !r.fenced));
                let mut next: Vec<i32> = isr.iter().copied().filter(eligible).collect();
                if !next.contains(leader) {
                    next.push(*leader);
                }
                next.sort_unstable();
                next.dedup();
                if next != p.isr {
                    p.isr = next;
                    p.partition_epoch += 1;
                }
            }
            MetadataRecord::ReassignmentChanged { name, index, target } => {
                let brokers = &self.brokers;
                let live = |b: i32| brokers.get(&b).is_some_and(|r| !r.fenced);
                let Some(t) = self.topics.get_mut(name) else { return };
                let Some(p) = usize::try_from(*index).ok().and_then(|i| Arc::make_mut(t).partitions.get_mut(i)) else { return };
                let original = p.original();
                match target {
                    Some(target) if !target.is_empty() && *target != original => {
                        let mut replicas = target.clone();
                        replicas.extend(original.iter().copied().filter(|r| !target.contains(r)));
                        p.adding = target.iter().copied().filter(|r| !original.contains(r)).collect();
                        p.removing = original.iter().copied().filter(|r| !target.contains(r)).collect();
                        p.replicas = replicas;
                    }
                    _ => p.narrow_to(original, live),
                }
                p.partition_epoch += 1;
            }
            MetadataRecord::ReassignmentCompleted { name, index } => {
                let brokers = &self.brokers;
                let live = |b: i32| brokers.get(&b).is_some_and(|r| !r.fenced);
                let Some(t) = self.topics.get_mut(name) else { return };
                let Some(p) = usize::try_from(*index).ok().and_then(|i| Arc::make_mut(t).partitions.get_mut(i)) else { return };
                let target = p.target();
                if !p.reassigning() || !target.iter().all(|r| p.isr.contains(r)) {
                    return;
                }
                p.narrow_to(target, live);
                p.partition_epoch += 1;
            }
            MetadataRecord::TopicConfigsSet { name, configs } => {
                if let Some(t) = self.topics.get_mut(name) {
                    Arc::make_mut(t).configs = configs.clone();
                }
            }
            MetadataRecord::BrokerConfigsSet { configs } => self.broker_configs = configs.clone(),
            MetadataRecord::NodeConfigsSet { node, configs } => {
                if configs.is_empty() {
                    self.node_configs.remove(node);
                } else {
                    self.node_configs.insert(*node, configs.clone());
                }
            }
            MetadataRecord::GroupConfigsSet { group, configs } => {
                if configs.is_empty() {
                    self.group_configs.remove(group);
                } else {
                    self.group_configs.insert(group.clone(), configs.clone());
                }
            }
            MetadataRecord::ProducerIdsAllocated { next_producer_id } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
            MetadataRecord::AclsCreated { acls } => acls.iter().for_each(|a| self.acls.insert(a)),
            MetadataRecord::AclsDeleted { acls } => acls.iter().for_each(|a| self.acls.remove(a)),
            MetadataRecord::ClientQuotasAltered { entity, set, remove } => self.quotas.alter(entity, set, remove),
            MetadataRecord::ScramCredentialSet { name, mechanism, credential } => self.scram.set(name, *mechanism, credential),
            MetadataRecord::ScramCredentialRemoved { name, mechanism } => self.scram.remove(name, *mechanism),
        }
    }
}

/// Kafka cluster ids are 16 random bytes in URL-safe base64 without padding (22 characters).
pub fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = Uuid::new_v4().as_u128();
    (0..22).map(|i| ALPHABET[((bits >> (i * 6)) & 63) as usize] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> TopicImage {
        TopicImage {
            name: name.into(),
            id: Uuid::new_v4(),
            replication_factor: 1,
            partitions: vec![PartitionImage::new(vec![1]); 2],
            configs: BTreeMap::new(),
        }
    }

    fn cmd(based_on: Option<u64>, records: Vec<MetadataRecord>) -> MetadataCommand {
        MetadataCommand { based_on, records }
    }

    #[test]
    fn commands_apply_in_order_and_old_snapshots_stay() {
        let mut img = MetadataImage::default();
        assert!(img.apply_command(&cmd(None, vec![MetadataRecord::ClusterCreated { cluster_id: new_cluster_id() }])));
        assert_eq!(img.cluster_id.len(), 22);
        let old = img.clone();
        assert!(img.apply_command(&cmd(Some(1), vec![MetadataRecord::TopicCreated(topic("a")), MetadataRecord::TopicCreated(topic("b"))])));
        let more = vec![PartitionImage::new(vec![1]); 3];
        assert!(img.apply_command(&cmd(Some(2), vec![MetadataRecord::PartitionsCreated { name: "a".into(), partitions: more }])));
        assert!(img.apply_command(&cmd(Some(3), vec![MetadataRecord::TopicDeleted { name: "b".into() }])));
        assert!(old.topics.is_empty());
        assert_eq!(img.topics.len(), 1);
        assert_eq!(img.topic("a").unwrap().partition_count(), 5);
        assert_eq!(img.version, 4);
    }

    #[test]
    fn a_command_built_on_a_stale_image_changes_nothing() {
        let mut img = MetadataImage::default();
        assert!(img.apply_command(&cmd(Some(0), vec![MetadataRecord::TopicCreated(topic("a"))])));
        // A second creator that computed its records from version 0 too.
        let mut again = topic("a");
        again.replication_factor = 3;
        assert!(!img.apply_command(&cmd(Some(0), vec![MetadataRecord::TopicCreated(again)])));
        assert_eq!(img.topic("a").unwrap().replication_factor, 1);
        assert_eq!(img.version, 1);
    }

    #[test]
    fn leader_changes_bump_the_leader_epoch_and_isr_changes_only_the_partition_epoch() {
        let mut img = MetadataImage::default();
        let mut t = topic("a");
        t.partitions = vec![PartitionImage::new(vec![1, 2, 3])];
        img.apply_command(&cmd(None, vec![MetadataRecord::TopicCreated(t)]));
        let change = |leader, isr: Vec<i32>| MetadataRecord::PartitionChanged { name: "a".into(), index: 0, leader, isr };
        img.apply_command(&cmd(None, vec![change(1, vec![1, 2])]));
        let p = &img.topic("a").unwrap().partitions[0];
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch, p.isr.clone()), (1, 0, 1, vec![1, 2]));
        img.apply_command(&cmd(None, vec![change(2, vec![2])]));
        let p = &img.topic("a").unwrap().partitions[0];
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 2));
        // A change naming a partition that does not exist is ignored, not a panic.
        img.apply_command(&cmd(None, vec![MetadataRecord::PartitionChanged { name: "a".into(), index: 7, leader: 1, isr: vec![] }]));
    }

    /// A group's configs are replaced whole, an empty set forgets the group, and they survive
    /// the image's snapshot (JSON) as the controller writes it.
    #[test]
    fn group_configs_are_replaced_whole_and_survive_a_snapshot() {
        let mut img = MetadataImage::default();
        let set = |group: &str, pairs: &[(&str, &str)]| MetadataRecord::GroupConfigsSet {
            group: group.into(),
            configs: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        img.apply_command(&cmd(None, vec![set("g", &[("consumer.session.timeout.ms", "50000"), ("share.auto.offset.reset", "earliest")]), set("h", &[("share.auto.offset.reset", "earliest")])]));
        img.apply_command(&cmd(None, vec![set("g", &[("consumer.session.timeout.ms", "55000")])]));
        assert_eq!(img.group_configs["g"].len(), 1);
        assert_eq!(img.group_configs["g"]["consumer.session.timeout.ms"], "55000");
        img.apply_command(&cmd(None, vec![set("h", &[])]));
        assert!(!img.group_configs.contains_key("h"));
        let again: MetadataImage = serde_json::from_str(&serde_json::to_string(&img).unwrap()).unwrap();
        assert_eq!(again.group_configs, img.group_configs);
    }
}
