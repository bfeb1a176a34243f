//! DescribeUserScramCredentials (KIP-554): each user's SCRAM mechanisms and iteration counts
//! (never salts or keys), from this node's metadata image, as Kafka's `ScramImage.describe`.
//! No users named (null or empty): every user.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{CredentialInfo, DescribeUserScramCredentialsResult};
use kafka_protocol::messages::{DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::scram::{describe, Described};

use crate::broker::Broker;

/// Needs DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED in the top-level error), as Kafka.
pub fn handle(broker: &Arc<Broker>, req: DescribeUserScramCredentialsRequest, session: &crate::session::Session) -> DescribeUserScramCredentialsResponse {
    if !broker.authz(session).allows_cluster(strom_metadata::acl::Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(kafka_protocol::error::ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(kafka_protocol::protocol::StrBytes::from_static_str("Cluster authorization failed.")));
    }
    let users: Vec<String> = req.users.unwrap_or_default().iter().map(|u| u.name.to_string()).collect();
    let image = broker.metadata.image();
    let results = describe(&image.scram, &users)
        .into_iter()
        .map(|(user, answer)| {
            let r = DescribeUserScramCredentialsResult::default().with_user(StrBytes::from_string(user));
            match answer {
                Described::Found(infos) => r.with_credential_infos(infos.into_iter().map(|(m, i)| CredentialInfo::default().with_mechanism(m.type_id()).with_iterations(i)).collect()),
                Described::NotFound(message) => r.with_error_code(ResponseError::ResourceNotFound.code()).with_error_message(Some(StrBytes::from_string(message))),
                Described::Duplicate(message) => r.with_error_code(ResponseError::DuplicateResource.code()).with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
