//! ListGroups: every group this coordinator knows, filtered by state (v4+) and type (v5+:
//! "classic", "consumer" (KIP-848's) or "share" (KIP-932's)). As Kafka's coordinator: an empty list before
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
    // Kafka matches state and type names case-insensitively; an unknown name matches nothing.
    let state_wanted = |state: &str| req.states_filter.is_empty() || req.states_filter.iter().any(|f| f.eq_ignore_ascii_case(state));
    let type_wanted = |kind: &str| req.types_filter.is_empty() || req.types_filter.iter().any(|t| t.eq_ignore_ascii_case(kind));
    let wanted: Vec<GroupState> = STATES.into_iter().filter(|s| state_wanted(s.as_str())).collect();
    let mut groups = Vec::new();
    if type_wanted("classic") && !wanted.is_empty() {
        let classic = broker.groups.read(|c| c.list_groups(&wanted));
        for g in classic {
            // A consumer group's committed offsets live in a classic entry without members:
            // the group is listed once, as the consumer group it is.
            if broker.groups.is_consumer_group(&g.group_id) || !(all || authz.allows_group(Operation::Describe, &g.group_id)) {
                continue;
            }
            groups.push(
                ListedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                    .with_protocol_type(StrBytes::from_string(g.protocol_type))
                    .with_group_state(StrBytes::from_static_str(g.state.as_str()))
                    .with_group_type(StrBytes::from_static_str("classic")),
            );
        }
    }
    if type_wanted("share") {
        for (id, state) in broker.groups.list_share_groups() {
            if state_wanted(state) && (all || authz.allows_group(Operation::Describe, &id)) {
                groups.push(
                    ListedGroup::default()
                        .with_group_id(GroupId(StrBytes::from_string(id)))
                        .with_protocol_type(StrBytes::from_static_str("share"))
                        .with_group_state(StrBytes::from_static_str(state))
                        .with_group_type(StrBytes::from_static_str("share")),
                );
            }
        }
    }
    if type_wanted("consumer") {
        for (id, state) in broker.groups.list_consumer_groups() {
            if state_wanted(state.as_str()) && (all || authz.allows_group(Operation::Describe, &id)) {
                groups.push(
                    ListedGroup::default()
                        .with_group_id(GroupId(StrBytes::from_string(id)))
                        .with_protocol_type(StrBytes::from_static_str("consumer"))
                        .with_group_state(StrBytes::from_static_str(state.as_str()))
                        .with_group_type(StrBytes::from_static_str("consumer")),
                );
            }
        }
    }
    ListGroupsResponse::default().with_groups(groups)
}
