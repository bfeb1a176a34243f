//! KIP-392: which replica a consumer should fetch from, given its rack (`client.rack`). The
//! rules of Kafka's `RackAwareReplicaSelector` as the leader applies them
//! (`ReplicaManager.findPreferredReadReplica`): the candidates are the leader and the in-sync
//! followers that have the consumer's fetch offset; among those in the consumer's rack the
//! leader wins, else the most caught-up follower. The leader answers with the chosen follower's
//! id (Fetch's `preferred_read_replica`) only when it is not itself.

use crate::MetadataImage;

/// One candidate replica, as the leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaView {
    pub id: i32,
    pub log_end_offset: i64,
    /// How long ago it last had the leader's whole log (0 for the leader).
    pub time_since_caught_up_ms: i64,
}

/// The follower a consumer in `client_rack` should fetch from instead of `leader`, if any.
/// `followers` are the in-sync followers that have the fetch offset (the caller filters them);
/// a follower whose broker is not live in `image` has no endpoint to send the client to and is
/// passed over, as Kafka's metadata cache leaves it out.
pub fn rack_aware(image: &MetadataImage, client_rack: &str, leader: ReplicaView, followers: &[ReplicaView]) -> Option<i32> {
    if client_rack.is_empty() {
        return None;
    }
    let in_rack = |id: i32| image.live_brokers().any(|b| b.id == id && b.rack.as_deref() == Some(client_rack));
    if in_rack(leader.id) {
        return None;
    }
    // Kafka's ReplicaView.comparator: the largest log end, then the most recently caught up,
    // then the largest id.
    followers
        .iter()
        .filter(|f| f.id != leader.id && in_rack(f.id))
        .max_by_key(|f| (f.log_end_offset, std::cmp::Reverse(f.time_since_caught_up_ms), f.id))
        .map(|f| f.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BrokerRegistration;
    use uuid::Uuid;

    fn image(brokers: &[(i32, &str, bool)]) -> MetadataImage {
        let mut img = MetadataImage::default();
        for &(id, rack, fenced) in brokers {
            let rack = (!rack.is_empty()).then(|| rack.to_string());
            img.brokers.insert(id, BrokerRegistration { id, incarnation: Uuid::nil(), endpoints: vec![], rack, fenced });
        }
        img
    }

    fn view(id: i32, log_end_offset: i64, time_since_caught_up_ms: i64) -> ReplicaView {
        ReplicaView { id, log_end_offset, time_since_caught_up_ms }
    }

    #[test]
    fn a_follower_in_the_clients_rack_is_preferred_over_a_leader_elsewhere() {
        let img = image(&[(1, "r1", false), (2, "r2", false), (3, "r3", false)]);
        let leader = view(1, 10, 0);
        assert_eq!(rack_aware(&img, "r2", leader, &[view(2, 10, 0), view(3, 10, 0)]), Some(2));
        assert_eq!(rack_aware(&img, "r3", leader, &[view(2, 10, 0), view(3, 10, 0)]), Some(3));
    }

    #[test]
    fn the_leader_serves_when_it_is_in_the_rack_or_nobody_is_or_the_client_has_no_rack() {
        let img = image(&[(1, "r1", false), (2, "r1", false), (3, "r3", false)]);
        let followers = [view(2, 10, 0), view(3, 10, 0)];
        assert_eq!(rack_aware(&img, "r1", view(1, 10, 0), &followers), None, "the leader is in r1");
        assert_eq!(rack_aware(&img, "r9", view(1, 10, 0), &followers), None, "no replica in r9");
        assert_eq!(rack_aware(&img, "", view(1, 10, 0), &followers), None, "no client.rack");
        assert_eq!(rack_aware(&img, "r3", view(1, 10, 0), &[view(2, 10, 0)]), None, "3 is not a candidate (out of sync or behind)");
    }

    #[test]
    fn among_followers_in_the_rack_the_most_caught_up_wins() {
        let img = image(&[(1, "r1", false), (2, "r2", false), (3, "r2", false), (4, "r2", true)]);
        let leader = view(1, 10, 0);
        assert_eq!(rack_aware(&img, "r2", leader, &[view(2, 8, 0), view(3, 9, 50)]), Some(3), "larger log end");
        assert_eq!(rack_aware(&img, "r2", leader, &[view(2, 9, 10), view(3, 9, 50)]), Some(2), "caught up more recently");
        assert_eq!(rack_aware(&img, "r2", leader, &[view(2, 9, 10), view(3, 9, 10)]), Some(3), "the larger id on a tie");
        assert_eq!(rack_aware(&img, "r2", leader, &[view(4, 10, 0)]), None, "a fenced broker has no endpoint");
    }
}
