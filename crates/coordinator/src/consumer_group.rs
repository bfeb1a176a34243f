//! KIP-848 consumer groups (`group.protocol=consumer`): the broker computes the assignment, and
//! each member reconciles towards it one heartbeat at a time. Pure and deterministic like the
//! classic [`crate::group`] coordinator: every call takes `now_ms` and the topics it may assign
//! (the caller's metadata image), and nothing here reads a clock or does I/O.
//!
//! The pieces, after Kafka's group-coordinator module:
//!
//! - the *group epoch* goes up whenever what the assignment depends on changes (a member joins,
//!   leaves or changes its subscription; a subscribed topic appears, disappears or grows);
//! - the *target assignment* is recomputed for that epoch by the group's server-side assignor
//!   (`assignor.rs`: `uniform`, `range`);
//! - each member moves towards its share of the target on its own (`member.rs`, Kafka's
//!   CurrentAssignmentBuilder): partitions it must give up are revoked first, and it gets the
//!   new epoch only once it has acknowledged the revocation (by no longer reporting them as
//!   owned); a partition another member still holds is assigned only once that member let it go.
//!   So no partition is ever held by two members at once.
//!
//! Persistence (`record.rs`): after each call the caller takes the group's changed records
//! ([`ConsumerGroupCoordinator::take_records`], Kafka's formats, record types 3 to 8), appends
//! them to the group's `__consumer_offsets` partition and answers once they are replicated; a new
//! coordinator replays them ([`ConsumerGroupCoordinator::load_record`]). As in the classic
//! coordinator, the state in memory changes before the append; a failed append fails the answer.
//!
//! Regular-expression subscriptions match whole topic names (never an internal topic) and are
//! resolved against the topics of every call, so a topic created later is picked up.
//!
//! Static members (an instance id, Kafka's getOrMaybeSubscribeStaticConsumerGroupMember): a
//! heartbeat at epoch -2 leaves for now, keeping the member, its assignment and its running
//! session; the instance coming back (epoch 0, same instance id, any member id) takes the old
//! member's place and partitions without a new group epoch; an instance id in use is refused
//! UNRELEASED_INSTANCE_ID to a joining member and FENCED_INSTANCE_ID to another member id.
//!
//! Racks: the assignors prefer a member's rack for a partition with a replica there
//! (`assignor.rs`), and the replicas' racks are part of the subscribed topics' metadata, stored
//! in the partition-metadata record, so a change re-assigns.
//!
//! Classic-protocol members (`classic.rs`, Kafka's classicGroup*ToConsumerGroup paths): a
//! consumer using JoinGroup/SyncGroup/Heartbeat/LeaveGroup may be a member of a consumer group.
//! Its subscription and owned partitions come from the embedded consumer protocol
//! (`embedded.rs`), it reconciles like any member at each JoinGroup, gets its assignment in
//! SyncGroup, and hears REBALANCE_IN_PROGRESS on Heartbeat when it must rejoin. A classic group
//! whose members use the consumer protocol becomes a consumer group when a ConsumerGroupHeartbeat
//! joins it (the upgrade), and a consumer group whose last consumer-protocol member leaves becomes
//! a classic group again (the downgrade), as `group.consumer.migration.policy` allows.

mod assignor;
mod classic;
mod coordinator;
pub mod embedded;
mod member;
pub(crate) mod record;
mod types;

#[cfg(test)]
mod classic_model_tests;
#[cfg(test)]
mod classic_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod rack_tests;
#[cfg(test)]
mod tests;

pub use assignor::{Assignor, AssignorSpec};
pub use coordinator::ConsumerGroupCoordinator;
pub use classic::Downgraded;
pub use member::MemberState;
pub use record::is_consumer_group_key;
pub use types::*;

/// Kafka's `group.consumer.*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms`: a member not heard from for this long is removed.
    pub session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`: told to members in every response.
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`; `None` is unlimited.
    pub max_size: Option<usize>,
    /// `group.consumer.assignors`: the first is the default, the others may be asked for.
    pub assignors: Vec<Assignor>,
    /// `group.consumer.migration.policy`: which online conversions between the protocols happen.
    pub migration_policy: MigrationPolicy,
}

/// Kafka's `ConsumerGroupMigrationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MigrationPolicy {
    Disabled,
    Upgrade,
    Downgrade,
    #[default]
    Bidirectional,
}

impl MigrationPolicy {
    /// Kafka's `parse`: case-insensitive; anything else is `Disabled`.
    pub fn parse(name: &str) -> MigrationPolicy {
        match name.to_ascii_lowercase().as_str() {
            "bidirectional" => MigrationPolicy::Bidirectional,
            "upgrade" => MigrationPolicy::Upgrade,
            "downgrade" => MigrationPolicy::Downgrade,
            _ => MigrationPolicy::Disabled,
        }
    }

    pub fn upgrade_enabled(self) -> bool {
        matches!(self, MigrationPolicy::Upgrade | MigrationPolicy::Bidirectional)
    }

    pub fn downgrade_enabled(self) -> bool {
        matches!(self, MigrationPolicy::Downgrade | MigrationPolicy::Bidirectional)
    }
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: None,
            assignors: vec![Assignor::Uniform, Assignor::Range],
            migration_policy: MigrationPolicy::Bidirectional,
        }
    }
}
