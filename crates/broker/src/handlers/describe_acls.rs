//! DescribeAcls. Strom has no authorizer yet (issue 15), so it answers as Kafka without
//! `authorizer.class.name`: SECURITY_DISABLED, with Kafka's message. Clients (sarama's
//! `ListAcls`, confluent's `describe_acls`) then report that security is off instead of seeing
//! the connection close.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;

pub fn handle(_req: DescribeAclsRequest) -> DescribeAclsResponse {
    DescribeAclsResponse::default()
        .with_error_code(ResponseError::SecurityDisabled.code())
        .with_error_message(Some(StrBytes::from_static_str("No Authorizer is configured on the broker")))
}
