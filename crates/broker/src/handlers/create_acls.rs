//! CreateAcls: each creation is checked as Kafka checks it (INVALID_REQUEST with its message),
//! the valid ones are stored in one metadata change. Needs ALTER on the cluster; without an
//! authorizer every creation is answered SECURITY_DISABLED, so an ACL that cannot be enforced
//! is never stored.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::acl::{self, AclBinding, Operation, PatternType, Permission, ResourceType};

use crate::broker::Broker;
use crate::session::Session;

fn failed(code: ResponseError, message: String) -> AclCreationResult {
    AclCreationResult::default().with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(message)))
}

pub async fn handle(broker: &Broker, req: CreateAclsRequest, session: &Session) -> CreateAclsResponse {
    let everyone = |code: ResponseError, message: &str| {
        CreateAclsResponse::default().with_results(req.creations.iter().map(|_| failed(code, message.to_string())).collect())
    };
    let authz = broker.authz(session);
    if !authz.enabled() {
        return everyone(ResponseError::SecurityDisabled, "No Authorizer is configured.");
    }
    if !authz.allows_cluster(Operation::Alter) {
        return everyone(ResponseError::ClusterAuthorizationFailed, "Cluster authorization failed.");
    }
    let checked: Vec<Result<AclBinding, String>> = req
        .creations
        .iter()
        .map(|c| {
            let binding = AclBinding {
                resource_type: ResourceType::from_code(c.resource_type).ok_or_else(|| format!("Invalid resourceType {}", c.resource_type))?,
                resource_name: c.resource_name.to_string(),
                pattern_type: PatternType::from_code(c.resource_pattern_type).ok_or_else(|| format!("Invalid patternType {}", c.resource_pattern_type))?,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: Operation::from_code(c.operation).ok_or_else(|| format!("Invalid operation {}", c.operation))?,
                permission: Permission::from_code(c.permission_type).ok_or_else(|| format!("Invalid permissionType {}", c.permission_type))?,
            };
            acl::validate(&binding)?;
            Ok(binding)
        })
        .collect();
    let valid: Vec<AclBinding> = checked.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
    let stored = broker.topics.create_acls(valid).await;
    let results = checked
        .into_iter()
        .map(|r| match (r, &stored) {
            (Err(message), _) => failed(ResponseError::InvalidRequest, message),
            (Ok(_), Err(e)) => failed(e.code, e.message.clone()),
            (Ok(_), Ok(())) => AclCreationResult::default(),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}
