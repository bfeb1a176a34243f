//! Strom's broker: a Kafka-wire-compatible server over `strom-storage` partition logs.
//!
//! Layering, outside in: `server` (listen, signals, background tasks) → `connection` (frames,
//! decode, ordered responses) → `handlers` (one file per Kafka API, thin) → the subsystems that
//! own the work: `topics` (admin rules), `metadata` (cluster image) and `controller` (its Raft log), `replica_manager` and
//! `partition` (logs, high watermark). See ARCHITECTURE.md at the repository root.

pub mod acl_admin;
pub mod alloc_guard;
pub mod authz;
pub mod broker;
pub mod clock;
pub mod coordinator_topic;
pub mod disk_guard;
pub mod elections;
mod frames;
pub mod group_service;
pub mod metrics;
mod connection;
pub mod handlers;
pub mod http;
mod log_limit;
pub mod old_versions;
pub mod replication;
pub mod partition;
pub mod peers;
pub mod producer_ids;
pub mod quotas;
mod quorum_transport;
pub mod replica_manager;
pub mod sasl;
pub mod server;
pub mod session;
pub mod share_leader;
mod sync;
pub mod tls;
pub mod topics;
mod transport;
pub mod txn_markers;
pub mod txn_service;
mod zero_copy;

pub use broker::Broker;
pub use strom_config::BrokerConfig;

#[cfg(test)]
#[global_allocator]
static ALLOC: alloc_guard::GuardedAlloc = alloc_guard::GuardedAlloc;
