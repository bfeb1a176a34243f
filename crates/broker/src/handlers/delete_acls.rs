//! DeleteAcls. Without an authorizer (Strom has none yet, issue 15) Kafka answers every filter
//! with SECURITY_DISABLED and no matching ACLs, and so does Strom.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::protocol::StrBytes;

pub fn handle(req: DeleteAclsRequest) -> DeleteAclsResponse {
    let results = req
        .filters
        .iter()
        .map(|_| {
            DeleteAclsFilterResult::default()
                .with_error_code(ResponseError::SecurityDisabled.code())
                .with_error_message(Some(StrBytes::from_static_str("No Authorizer is configured.")))
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
