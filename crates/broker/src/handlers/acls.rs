//! What the three ACL APIs share: the wire codes of resource patterns and entries, turned into
//! `strom_metadata::acl` values, with Kafka's refusals.

use kafka_protocol::protocol::StrBytes;
use strom_metadata::acl::{AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType, CODE_ANY, CODE_MATCH};

/// A filter's fields as they come on the wire (DescribeAcls' request, DeleteAcls' filters).
pub struct WireFilter<'a> {
    pub resource_type: i8,
    pub resource_name: Option<&'a StrBytes>,
    pub pattern_type: i8,
    pub principal: Option<&'a StrBytes>,
    pub host: Option<&'a StrBytes>,
    pub operation: i8,
    pub permission: i8,
}

/// The filter, or Kafka's INVALID_REQUEST message for a code that is UNKNOWN or out of range.
pub fn filter(w: WireFilter<'_>) -> Result<AclFilter, String> {
    fn any_or<T>(code: i8, what: &str, parse: fn(i8) -> Option<T>) -> Result<Option<T>, String> {
        if code == CODE_ANY {
            return Ok(None);
        }
        parse(code).map(Some).ok_or_else(|| format!("Invalid {what} {code} in the filter"))
    }
    let pattern = match w.pattern_type {
        CODE_ANY => PatternFilter::Any,
        CODE_MATCH => PatternFilter::Match,
        code => PatternFilter::Exactly(PatternType::from_code(code).ok_or_else(|| format!("Invalid pattern type {code} in the filter"))?),
    };
    Ok(AclFilter {
        resource_type: any_or(w.resource_type, "resource type", ResourceType::from_code)?,
        resource_name: w.resource_name.map(|s| s.to_string()),
        pattern,
        principal: w.principal.map(|s| s.to_string()),
        host: w.host.map(|s| s.to_string()),
        operation: any_or(w.operation, "operation", Operation::from_code)?,
        permission: any_or(w.permission, "permission type", Permission::from_code)?,
    })
}

pub fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}
