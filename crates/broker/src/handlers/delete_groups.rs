//! DeleteGroups: removes Empty groups and their committed offsets (tombstones in
//! `__consumer_offsets`); a group with members gets NON_EMPTY_GROUP. Each group is deleted by
//! its coordinator only (NOT_COORDINATOR elsewhere), as in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use strom_coordinator::group::error_code;

/// Each group needs DELETE (GROUP_AUTHORIZATION_FAILED otherwise), as Kafka.
pub async fn handle(broker: &Arc<Broker>, req: DeleteGroupsRequest, session: &Session) -> DeleteGroupsResponse {
    let authz = broker.authz(session);
    let ids: Vec<String> = req.groups_names.iter().map(|g| g.to_string()).collect();
    let check = |id: &str| {
        if authz.allows_group(Operation::Delete, id) {
            broker.groups.ready_for(id).err()
        } else {
            Some(kafka_protocol::error::ResponseError::GroupAuthorizationFailed)
        }
    };
    let (here, elsewhere): (Vec<_>, Vec<_>) = ids.into_iter().map(|id| (check(&id), id)).partition(|(e, _)| e.is_none());
    let here: Vec<String> = here.into_iter().map(|(_, id)| id).collect();
    let mut results: Vec<(String, Option<_>)> = elsewhere.into_iter().map(|(e, id)| (id, e)).collect();
    if !here.is_empty() {
        results.extend(broker.groups.delete_groups(&here).await);
    }
    let results = results
        .into_iter()
        .map(|(id, e)| {
            DeletableGroupResult::default().with_group_id(GroupId(StrBytes::from_string(id))).with_error_code(error_code(e))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
