//! CreateAcls and DeleteAcls as metadata changes: ACLs live in the metadata log (as in Kafka's
//! KRaft mode), so they survive restarts and every node's authorizer sees the same ones. The
//! request waits until this node has published the change, so a client that created an ACL and
//! then uses it, on this node, is decided by it.

use kafka_protocol::error::ResponseError;
use strom_metadata::acl::{AclBinding, AclFilter};
use strom_metadata::MetadataRecord;

use crate::topics::{metadata_failure, AdminError, TopicAdmin};

impl TopicAdmin {
    /// Stores `acls` (already validated); existing ones stay as they are.
    pub async fn create_acls(&self, acls: Vec<AclBinding>) -> Result<(), AdminError> {
        if acls.is_empty() {
            return Ok(());
        }
        let image = self
            .metadata()
            .commit::<std::convert::Infallible>(|_| Ok(vec![MetadataRecord::AclsCreated { acls: acls.clone() }]))
            .await
            .map_err(metadata_failure)?
            .unwrap_or_else(|never| match never {});
        self.published(&image).await;
        tracing::info!(count = acls.len(), "created ACLs");
        Ok(())
    }

    /// Deletes every ACL that one of `filters` matches; returns, per filter, what it deleted.
    /// Built from the image the command applies to, so what is returned is what went away.
    pub async fn delete_acls(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>, AdminError> {
        let matched = |image: &strom_metadata::MetadataImage| -> Vec<Vec<AclBinding>> {
            filters.iter().map(|f| image.acls.matching(f).collect()).collect()
        };
        // Nothing to delete is an answer, not a change.
        let now = matched(&self.metadata().image());
        if now.iter().all(Vec::is_empty) {
            return Ok(now);
        }
        let result = std::sync::Mutex::new(Vec::new());
        let image = self
            .metadata()
            .commit::<std::convert::Infallible>(|image| {
                let per_filter = matched(image);
                let mut all: Vec<AclBinding> = per_filter.iter().flatten().cloned().collect();
                all.sort();
                all.dedup();
                if let Ok(mut r) = result.lock() {
                    *r = per_filter;
                }
                Ok(if all.is_empty() { Vec::new() } else { vec![MetadataRecord::AclsDeleted { acls: all }] })
            })
            .await
            .map_err(metadata_failure)?
            .unwrap_or_else(|never| match never {});
        self.published(&image).await;
        let per_filter = result.into_inner().map_err(|_| AdminError::new(ResponseError::UnknownServerError, "ACL deletion state poisoned"))?;
        let deleted: usize = per_filter.iter().map(Vec::len).sum();
        if deleted > 0 {
            tracing::info!(count = deleted, "deleted ACLs");
        }
        Ok(per_filter)
    }
}
