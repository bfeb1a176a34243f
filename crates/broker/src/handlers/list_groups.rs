//! ListGroups: every group this coordinator knows, filtered by state (v4+) and type (v5+:
//! every Strom group is a "classic" one). As Kafka's coordinator: an empty list before
//! `__consumer_offsets` exists (this request never creates it), COORDINATOR_LOAD_IN_PROGRESS
//! while an offsets partition led here is loading.

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use strom_coordinator::group::GroupState;

const STATES: [GroupState; 5] =
    [GroupState::Empty, GroupState::PreparingRebalance, GroupState::CompletingRebalance, GroupState::Stable, GroupState::Dead];

/// DESCRIBE on the cluster lists every group; otherwise only the groups the principal may
/// DESCRIBE, as Kafka.
pub fn handle(broker: &Arc<Broker>, req: ListGroupsRequest, session: &Session) -> ListGroupsResponse {
    let authz = broker.authz(session);
    let all = authz.allows_cluster(Operation::Describe);
    if let Err(code) = broker.groups.all_loaded() {
        return ListGroupsResponse::default().with_error_code(code.code());
    }
    // Kafka matches state names case-insensitively; an unknown name matches nothing.
    let wanted: Vec<GroupState> = STATES
        .into_iter()
        .filter(|s| req.states_filter.iter().any(|f| f.eq_ignore_ascii_case(s.as_str())))
        .collect();
    if !req.states_filter.is_empty() && wanted.is_empty() {
        return ListGroupsResponse::default();
    }
    if !req.types_filter.is_empty() && !req.types_filter.iter().any(|t| t.eq_ignore_ascii_case("classic")) {
        return ListGroupsResponse::default();
    }
    let groups = broker
        .groups
        .read(|c| c.list_groups(&wanted))
        .into_iter()
        .filter(|g| all || authz.allows_group(Operation::Describe, &g.group_id))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                .with_protocol_type(StrBytes::from_string(g.protocol_type))
                .with_group_state(StrBytes::from_static_str(g.state.as_str()))
                .with_group_type(StrBytes::from_static_str("classic"))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
