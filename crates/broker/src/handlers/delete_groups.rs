//! DeleteGroups: removes Empty groups and their committed offsets (tombstones in
//! `__consumer_offsets`); a group with members gets NON_EMPTY_GROUP.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use strom_coordinator::group::error_code;

pub async fn handle(broker: &Arc<Broker>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let ids: Vec<String> = req.groups_names.iter().map(|g| g.to_string()).collect();
    let results = match broker.groups.ready() {
        Err(code) => ids.into_iter().map(|id| (id, Some(code))).collect(),
        Ok(()) => {
            let (results, persisted) = broker.groups.with(|c| c.delete_groups(&ids)).await;
            results.into_iter().map(|(id, e)| (id, e.or(persisted.err()))).collect::<Vec<_>>()
        }
    };
    let results = results
        .into_iter()
        .map(|(id, e)| {
            DeletableGroupResult::default().with_group_id(GroupId(StrBytes::from_string(id))).with_error_code(error_code(e))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
