//! DescribeAcls, CreateAcls and DeleteAcls v0 (Kafka 3.9 served them; Kafka 4.0 dropped them).
//! v0 is v1 without the resource pattern type: requests decode into the crate's v1 structs with
//! LITERAL, Kafka's default for v0; responses are written from those structs without it.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{
    CreateAclsRequest, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest, DescribeAclsResponse, RequestKind, ResponseKind,
};

use super::{Reader, Writer};

/// Kafka's PatternType.LITERAL: the only kind of pattern before v1.
const LITERAL: i8 = 3;

pub(super) fn decode_describe(r: &mut Reader) -> Result<RequestKind, String> {
    Ok(RequestKind::DescribeAcls(
        DescribeAclsRequest::default()
            .with_resource_type_filter(r.i8()?)
            .with_resource_name_filter(r.nullable_string()?)
            .with_pattern_type_filter(LITERAL)
            .with_principal_filter(r.nullable_string()?)
            .with_host_filter(r.nullable_string()?)
            .with_operation(r.i8()?)
            .with_permission_type(r.i8()?),
    ))
}

pub(super) fn decode_create(r: &mut Reader) -> Result<RequestKind, String> {
    let creations = r.array(|r| {
        Ok(AclCreation::default()
            .with_resource_type(r.i8()?)
            .with_resource_name(r.string()?)
            .with_resource_pattern_type(LITERAL)
            .with_principal(r.string()?)
            .with_host(r.string()?)
            .with_operation(r.i8()?)
            .with_permission_type(r.i8()?))
    })?;
    Ok(RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(creations)))
}

pub(super) fn decode_delete(r: &mut Reader) -> Result<RequestKind, String> {
    let filters = r.array(|r| {
        Ok(DeleteAclsFilter::default()
            .with_resource_type_filter(r.i8()?)
            .with_resource_name_filter(r.nullable_string()?)
            .with_pattern_type_filter(LITERAL)
            .with_principal_filter(r.nullable_string()?)
            .with_host_filter(r.nullable_string()?)
            .with_operation(r.i8()?)
            .with_permission_type(r.i8()?))
    })?;
    Ok(RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(filters)))
}

/// The v0 response body, or `None` when `response` is not one of the three.
pub(super) fn encode(w: &mut Writer, response: &ResponseKind) -> Option<Result<(), String>> {
    Some(match response {
        ResponseKind::DescribeAcls(r) => encode_describe(w, r),
        ResponseKind::CreateAcls(r) => {
            w.i32(r.throttle_time_ms);
            w.array(&r.results, |w, res| {
                w.i16(res.error_code);
                w.nullable_string(res.error_message.as_ref())
            })
        }
        ResponseKind::DeleteAcls(r) => encode_delete(w, r),
        _ => return None,
    })
}

fn encode_describe(w: &mut Writer, r: &DescribeAclsResponse) -> Result<(), String> {
    w.i32(r.throttle_time_ms);
    w.i16(r.error_code);
    w.nullable_string(r.error_message.as_ref())?;
    w.array(&r.resources, |w, res| {
        w.i8(res.resource_type);
        w.string(&res.resource_name)?;
        w.array(&res.acls, |w, a| {
            w.string(&a.principal)?;
            w.string(&a.host)?;
            w.i8(a.operation);
            w.i8(a.permission_type);
            Ok(())
        })
    })
}

fn encode_delete(w: &mut Writer, r: &DeleteAclsResponse) -> Result<(), String> {
    w.i32(r.throttle_time_ms);
    w.array(&r.filter_results, |w, f| {
        w.i16(f.error_code);
        w.nullable_string(f.error_message.as_ref())?;
        w.array(&f.matching_acls, |w, a| {
            w.i16(a.error_code);
            w.nullable_string(a.error_message.as_ref())?;
            w.i8(a.resource_type);
            w.string(&a.resource_name)?;
            w.string(&a.principal)?;
            w.string(&a.host)?;
            w.i8(a.operation);
            w.i8(a.permission_type);
            Ok(())
        })
    })
}
