//! ApiVersions: what this broker speaks. Clients pick, per API, the highest version both sides know.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

use super::SUPPORTED;

pub fn handle() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(versions())
}

/// The answer to an ApiVersions version newer than ours, encoded at v0 by the connection.
pub fn unsupported() -> ApiVersionsResponse {
    handle().with_error_code(ResponseError::UnsupportedVersion.code())
}

fn versions() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(k, lo, hi)| ApiVersion::default().with_api_key(*k as i16).with_min_version(*lo).with_max_version(*hi))
        .collect()
}
