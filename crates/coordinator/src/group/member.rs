//! One member of a classic group (Kafka's MemberMetadata), and protocol selection.

use bytes::Bytes;

use super::types::Ticket;

#[derive(Debug, Clone)]
pub(super) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// (name, metadata) in preference order.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// A JoinGroup waiting for the rebalance to complete.
    pub join_ticket: Option<Ticket>,
    /// A SyncGroup waiting for the leader's assignment.
    pub sync_ticket: Option<Ticket>,
    pub last_heartbeat_ms: i64,
}

impl Member {
    /// When the member's session ends, if nothing else is heard from it.
    ///
    /// Kafka keeps a member alive while it awaits a join or sync response (`shouldKeepAlive`):
    /// the client cannot heartbeat while its JoinGroup is parked. Such a member is bounded by the
    /// rebalance timeout instead (a join), or by the leader's own session (a sync: if the leader
    /// dies, the rebalance that follows answers the parked syncs).
    pub fn session_deadline(&self) -> Option<i64> {
        if self.join_ticket.is_some() || self.sync_ticket.is_some() {
            None
        } else {
            Some(self.last_heartbeat_ms.saturating_add(i64::from(self.session_timeout_ms)))
        }
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(n, _)| n == protocol)
    }

    /// The metadata this member sent for `protocol` (empty if it does not support it).
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    /// Kafka's `MemberMetadata.matches`: same protocols, same order, same metadata.
    pub fn protocols_match(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

/// Kafka's `selectProtocol`: among the protocols every member supports, each member votes for
/// its first preference; the most votes win. Ties go to the candidate listed first by the first
/// member (Kafka leaves ties to hash order; any deterministic choice is compatible).
pub(super) fn select_protocol(members: &[Member]) -> Option<String> {
    let first = members.first()?;
    let candidates: Vec<&str> =
        first.protocols.iter().map(|(n, _)| n.as_str()).filter(|n| members.iter().all(|m| m.supports(n))).collect();
    if candidates.is_empty() {
        // Cannot happen while joins are checked against the group's common protocols, but a
        // member replacing its own protocols can leave none in common: fall back to the first
        // member's preference rather than failing.
        return first.protocols.first().map(|(n, _)| n.clone());
    }
    let mut votes = vec![0usize; candidates.len()];
    for m in members {
        if let Some(i) = m.protocols.iter().find_map(|(n, _)| candidates.iter().position(|c| c == n)) {
            if let Some(v) = votes.get_mut(i) {
                *v += 1;
            }
        }
    }
    let mut best = 0;
    for (i, v) in votes.iter().enumerate() {
        if *v > votes.get(best).copied().unwrap_or(0) {
            best = i;
        }
    }
    candidates.get(best).map(|s| s.to_string())
}
