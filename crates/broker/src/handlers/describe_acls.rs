//! DescribeAcls: the ACLs a filter matches, grouped by resource pattern. Needs DESCRIBE on the
//! cluster; without an authorizer Kafka answers SECURITY_DISABLED, and so does Strom (clients
//! then report that security is off instead of seeing the connection close).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::acl::Operation;

use super::acls::{filter, text, WireFilter};
use crate::broker::Broker;
use crate::session::Session;

pub fn handle(broker: &Broker, req: DescribeAclsRequest, session: &Session) -> DescribeAclsResponse {
    let fail = |code: ResponseError, message: String| DescribeAclsResponse::default().with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(message)));
    let authz = broker.authz(session);
    if !authz.enabled() {
        return fail(ResponseError::SecurityDisabled, "No Authorizer is configured on the broker".into());
    }
    if !authz.allows_cluster(Operation::Describe) {
        return fail(ResponseError::ClusterAuthorizationFailed, "Cluster authorization failed.".into());
    }
    let filter = match filter(WireFilter {
        resource_type: req.resource_type_filter,
        resource_name: req.resource_name_filter.as_ref(),
        pattern_type: req.pattern_type_filter,
        principal: req.principal_filter.as_ref(),
        host: req.host_filter.as_ref(),
        operation: req.operation,
        permission: req.permission_type,
    }) {
        Ok(f) => f,
        Err(message) => return fail(ResponseError::InvalidRequest, message),
    };
    let image = broker.metadata.image();
    let mut resources: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for acl in image.acls.matching(&filter) {
        resources.entry((acl.resource_type.code(), acl.resource_name.clone(), acl.pattern_type.code())).or_default().push(
            AclDescription::default()
                .with_principal(text(&acl.principal))
                .with_host(text(&acl.host))
                .with_operation(acl.operation.code())
                .with_permission_type(acl.permission.code()),
        );
    }
    let resources = resources
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default().with_resource_type(resource_type).with_resource_name(text(&name)).with_pattern_type(pattern_type).with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}
