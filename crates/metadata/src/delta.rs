//! What changed from one image to the next, for readers that act on changes only (the replica
//! manager opens, closes and re-roles just the partitions of changed topics).
//!
//! Computed by comparing two images rather than recorded per record, so a reader that skipped
//! images (it takes the latest) still sees every change since the one it last acted on. The
//! comparison is cheap: applying a record copies only the topics it touches (`Arc::make_mut`),
//! so an unchanged topic is the same allocation in both images and compares by pointer.

use std::sync::Arc;

use crate::{MetadataImage, TopicImage};

#[derive(Debug, Default)]
pub struct MetadataDelta {
    /// Topics that are new or changed in the newer image.
    pub changed: Vec<Arc<TopicImage>>,
    /// Topics of the older image that are gone, or were deleted and created again (another id).
    pub deleted: Vec<Arc<TopicImage>>,
    /// Any broker registration, fencing or endpoint changed.
    pub brokers_changed: bool,
    /// The cluster's dynamic broker configs, or any broker's own.
    pub broker_configs_changed: bool,
}

impl MetadataDelta {
    pub fn between(old: &MetadataImage, new: &MetadataImage) -> MetadataDelta {
        let mut delta = MetadataDelta {
            brokers_changed: old.brokers != new.brokers,
            broker_configs_changed: old.broker_configs != new.broker_configs || old.node_configs != new.node_configs,
            ..MetadataDelta::default()
        };
        for (name, t) in &new.topics {
            match old.topics.get(name) {
                Some(before) if Arc::ptr_eq(before, t) => {}
                Some(before) if before.id != t.id => {
                    delta.deleted.push(before.clone());
                    delta.changed.push(t.clone());
                }
                _ => delta.changed.push(t.clone()),
            }
        }
        delta.deleted.extend(old.topics.iter().filter(|(name, _)| !new.topics.contains_key(*name)).map(|(_, t)| t.clone()));
        delta
    }

    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.deleted.is_empty() && !self.brokers_changed && !self.broker_configs_changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MetadataCommand, MetadataRecord, PartitionImage};
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn topic(name: &str, id: u128) -> MetadataRecord {
        MetadataRecord::TopicCreated(TopicImage {
            name: name.into(),
            id: Uuid::from_u128(id),
            replication_factor: 1,
            partitions: vec![PartitionImage::new(vec![1])],
            configs: BTreeMap::new(),
        })
    }

    fn apply(img: &MetadataImage, records: Vec<MetadataRecord>) -> MetadataImage {
        let mut next = img.clone();
        next.apply_command(&MetadataCommand { based_on: None, records });
        next
    }

    #[test]
    fn a_delta_names_exactly_the_topics_a_command_touched() {
        let a = apply(&MetadataImage::default(), vec![topic("a", 1), topic("b", 2), topic("c", 3)]);
        let b = apply(&a, vec![MetadataRecord::PartitionChanged { name: "a".into(), index: 0, leader: 1, isr: vec![1] }, MetadataRecord::TopicDeleted { name: "b".into() }]);
        let d = MetadataDelta::between(&a, &b);
        assert_eq!(d.changed.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(d.deleted.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["b"]);
        assert!(!d.brokers_changed && !d.broker_configs_changed);
        // Deleted and created again under the same name: both.
        let c = apply(&b, vec![MetadataRecord::TopicDeleted { name: "c".into() }, topic("c", 9)]);
        let d = MetadataDelta::between(&b, &c);
        assert_eq!((d.changed.len(), d.deleted.len()), (1, 1));
        assert!(MetadataDelta::between(&c, &c).is_empty());
    }
}
