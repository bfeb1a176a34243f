//! CreateAcls. Without an authorizer (Strom has none yet, issue 15) Kafka answers every creation
//! with SECURITY_DISABLED, and so does Strom: an ACL that cannot be enforced is never stored.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::protocol::StrBytes;

pub fn handle(req: CreateAclsRequest) -> CreateAclsResponse {
    let results = req
        .creations
        .iter()
        .map(|_| {
            AclCreationResult::default()
                .with_error_code(ResponseError::SecurityDisabled.code())
                .with_error_message(Some(StrBytes::from_static_str("No Authorizer is configured.")))
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}
