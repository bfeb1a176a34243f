//! DeleteAcls: every ACL one of the filters matches is deleted in one metadata change, and each
//! filter's result lists what it matched. Needs ALTER on the cluster; without an authorizer
//! Kafka answers every filter SECURITY_DISABLED with no matching ACLs, and so does Strom.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::acl::{AclFilter, Operation};

use super::acls::{filter, text, WireFilter};
use crate::broker::Broker;
use crate::session::Session;

fn failed(code: ResponseError, message: String) -> DeleteAclsFilterResult {
    DeleteAclsFilterResult::default().with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(message)))
}

pub async fn handle(broker: &Broker, req: DeleteAclsRequest, session: &Session) -> DeleteAclsResponse {
    let everyone = |code: ResponseError, message: &str| {
        DeleteAclsResponse::default().with_filter_results(req.filters.iter().map(|_| failed(code, message.to_string())).collect())
    };
    let authz = broker.authz(session);
    if !authz.enabled() {
        return everyone(ResponseError::SecurityDisabled, "No Authorizer is configured.");
    }
    if !authz.allows_cluster(Operation::Alter) {
        return everyone(ResponseError::ClusterAuthorizationFailed, "Cluster authorization failed.");
    }
    let parsed: Vec<Result<AclFilter, String>> = req
        .filters
        .iter()
        .map(|f| {
            filter(WireFilter {
                resource_type: f.resource_type_filter,
                resource_name: f.resource_name_filter.as_ref(),
                pattern_type: f.pattern_type_filter,
                principal: f.principal_filter.as_ref(),
                host: f.host_filter.as_ref(),
                operation: f.operation,
                permission: f.permission_type,
            })
        })
        .collect();
    let valid: Vec<AclFilter> = parsed.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
    let mut deleted = match broker.topics.delete_acls(&valid).await {
        Ok(d) => d.into_iter(),
        Err(e) => return everyone(e.code, &e.message),
    };
    let results = parsed
        .into_iter()
        .map(|r| match r {
            Err(message) => failed(ResponseError::InvalidRequest, message),
            Ok(_) => {
                let matching = deleted.next().unwrap_or_default().into_iter().map(|a| {
                    DeleteAclsMatchingAcl::default()
                        .with_resource_type(a.resource_type.code())
                        .with_resource_name(text(&a.resource_name))
                        .with_pattern_type(a.pattern_type.code())
                        .with_principal(text(&a.principal))
                        .with_host(text(&a.host))
                        .with_operation(a.operation.code())
                        .with_permission_type(a.permission.code())
                });
                DeleteAclsFilterResult::default().with_matching_acls(matching.collect())
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
