//! ApiVersions: what this broker speaks. Clients pick, per API, the highest version both sides know.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{ApiVersion, FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::protocol::StrBytes;
use strom_coordinator::txn::TransactionVersion;

use super::SUPPORTED;

/// The features (v3+; older versions drop the fields): `transaction.version` is supported from
/// level 0 to 2 and finalized at 2, so a client that knows transactions v2 (KIP-890 part 2) uses
/// them. Strom finalizes nothing it does not implement: no `metadata.version` (it has no
/// metadata-version upgrades) and no `group.version` (no KIP-848 groups yet).
pub fn handle() -> ApiVersionsResponse {
    let tv = TransactionVersion::FINALIZED.feature_level();
    let name = StrBytes::from_static_str(TransactionVersion::FEATURE);
    ApiVersionsResponse::default()
        .with_api_keys(versions())
        .with_supported_features(vec![SupportedFeatureKey::default().with_name(name.clone()).with_min_version(0).with_max_version(tv)])
        // The features never change while a Strom cluster runs: one epoch for all.
        .with_finalized_features_epoch(0)
        .with_finalized_features(vec![FinalizedFeatureKey::default().with_name(name).with_min_version_level(tv).with_max_version_level(tv)])
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
