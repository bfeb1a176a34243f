//! Broker sessions as a controller voter sees them: when it last heard from each broker, and
//! which brokers' sessions expired. Pure: the time (monotonic milliseconds) is passed in. Not in
//! the metadata log: heartbeats are frequent. Brokers heartbeat to every voter, so a voter that
//! becomes the active controller already knows when it last heard from each broker: a broker
//! that died with the old controller (one process, both roles) is fenced one session after its
//! death, not one session after the election (Kafka waits the latter).

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::MetadataImage;

#[derive(Debug, Default, Clone)]
pub struct Sessions {
    /// When this voter became the active controller, or last restarted every clock.
    active_since: Option<i64>,
    last_heartbeat: BTreeMap<i32, (Uuid, i64)>,
}

impl Sessions {
    pub fn heartbeat(&mut self, broker: i32, incarnation: Uuid, now_ms: i64) {
        self.last_heartbeat.insert(broker, (incarnation, now_ms));
    }

    /// This voter became the active controller: the clocks it kept as a follower carry over; a
    /// broker it never heard from gets one session from now.
    pub fn became_active(&mut self, now_ms: i64) {
        self.active_since = Some(now_ms);
    }

    /// This voter itself stood still (SIGSTOP, a VM stall): the heartbeats it missed meanwhile
    /// may sit unread in its sockets, so its clocks say nothing about the brokers. Every broker
    /// gets one session from now.
    pub fn restart_clocks(&mut self, now_ms: i64) {
        self.active_since = Some(now_ms);
        self.last_heartbeat.clear();
    }

    /// The live brokers of `image` not heard from (under their current registration) for more
    /// than `session_ms`.
    pub fn expired(&self, image: &MetadataImage, now_ms: i64, session_ms: i64) -> Vec<i32> {
        let since = self.active_since.unwrap_or(now_ms);
        image
            .live_brokers()
            .filter(|b| {
                let last = match self.last_heartbeat.get(&b.id) {
                    Some((inc, at)) if *inc == b.incarnation => *at,
                    _ => since,
                };
                now_ms - last > session_ms
            })
            .map(|b| b.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BrokerRegistration, MetadataCommand, MetadataRecord};

    fn image(ids: &[(i32, Uuid)]) -> MetadataImage {
        let mut img = MetadataImage::default();
        let records = ids
            .iter()
            .map(|(id, inc)| MetadataRecord::BrokerRegistered(BrokerRegistration { id: *id, incarnation: *inc, endpoints: vec![], rack: None, fenced: false }))
            .collect();
        img.apply_command(&MetadataCommand { based_on: None, records });
        img
    }

    #[test]
    fn a_broker_expires_one_session_after_its_last_heartbeat_or_the_activation() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let img = image(&[(1, a), (2, b)]);
        let mut s = Sessions::default();
        s.heartbeat(1, a, 1_000);
        s.became_active(5_000);
        assert_eq!(s.expired(&img, 9_000, 9_000), Vec::<i32>::new());
        assert_eq!(s.expired(&img, 10_001, 9_000), vec![1], "heard at 1000, before the activation");
        assert_eq!(s.expired(&img, 14_001, 9_000), vec![1, 2], "never heard: one session from the activation");
        // A heartbeat of an older incarnation does not count for the new registration.
        s.heartbeat(2, a, 14_000);
        assert_eq!(s.expired(&img, 14_001, 9_000), vec![1, 2]);
        s.heartbeat(2, b, 14_000);
        assert_eq!(s.expired(&img, 14_001, 9_000), vec![1]);
        s.restart_clocks(20_000);
        assert!(s.expired(&img, 29_000, 9_000).is_empty());
    }
}
