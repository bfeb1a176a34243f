//! ElectLeaders as a metadata change: the elections an operator asks for
//! (`kafka-leader-election.sh`), decided by `strom_metadata::elect::elect_leader` against the
//! image the command applies to, all partitions' changes in one command. The answer waits until
//! this node has published it, so a client that asks Metadata next sees the new leaders.

use std::sync::Mutex;

use kafka_protocol::error::ResponseError;
use strom_metadata::elect::{elect_leader, ElectionOutcome, ElectionType};
use strom_metadata::MetadataImage;

use crate::topics::{metadata_failure, AdminError, TopicAdmin};

/// The partitions of one topic and each one's result.
pub type TopicResults = (String, Vec<(i32, Result<(), AdminError>)>);

impl TopicAdmin {
    /// Runs `kind` elections for `partitions` (topic, indexes), or for every partition of every
    /// topic when `None`; then, as Kafka's controller, partitions that needed no election are
    /// left out of the answer (every topic is still listed).
    pub async fn elect_leaders(&self, kind: ElectionType, partitions: Option<Vec<(String, Vec<i32>)>>) -> Result<Vec<TopicResults>, AdminError> {
        let all = partitions.is_none();
        let decide = |image: &MetadataImage| {
            let wanted: Vec<(String, Vec<i32>)> = match &partitions {
                Some(p) => p.clone(),
                None => image.topics.values().map(|t| (t.name.clone(), (0..t.partitions.len() as i32).collect())).collect(),
            };
            let mut records = Vec::new();
            let results: Vec<TopicResults> = wanted
                .into_iter()
                .map(|(topic, indexes)| {
                    let outcomes = indexes
                        .into_iter()
                        .filter_map(|i| match elect_leader(image, &topic, i, kind) {
                            Ok(record) => {
                                records.push(record);
                                Some((i, Ok(())))
                            }
                            Err(ElectionOutcome::NotNeeded) if all => None,
                            Err(e) => Some((i, Err(outcome_error(e)))),
                        })
                        .collect();
                    (topic, outcomes)
                })
                .collect();
            (records, results)
        };
        let now = decide(&self.metadata().image());
        if now.0.is_empty() {
            return Ok(now.1);
        }
        let results = Mutex::new(Vec::new());
        let image = self
            .metadata()
            .commit::<std::convert::Infallible>(|image| {
                let (records, r) = decide(image);
                if let Ok(mut slot) = results.lock() {
                    *slot = r;
                }
                Ok(records)
            })
            .await
            .map_err(metadata_failure)?
            .unwrap_or_else(|never| match never {});
        self.published(&image).await;
        let results = results.into_inner().map_err(|_| AdminError::new(ResponseError::UnknownServerError, "election state poisoned"))?;
        let elected: usize = results.iter().map(|(_, ps)| ps.iter().filter(|(_, r)| r.is_ok()).count()).sum();
        tracing::info!(elected, ?kind, "leader elections on demand");
        Ok(results)
    }
}

/// Kafka's error and message (its `Errors` descriptions where the controller gives none).
fn outcome_error(e: ElectionOutcome) -> AdminError {
    match e {
        ElectionOutcome::Unknown(message) => AdminError::new(ResponseError::UnknownTopicOrPartition, message),
        ElectionOutcome::NotNeeded => AdminError::new(ResponseError::ElectionNotNeeded, "Leader election not needed for topic partition."),
        ElectionOutcome::PreferredNotAvailable => AdminError::new(ResponseError::PreferredLeaderNotAvailable, "The preferred leader was not available."),
        ElectionOutcome::EligibleNotAvailable => AdminError::new(ResponseError::EligibleLeadersNotAvailable, "Eligible topic partition leaders are not available."),
    }
}
