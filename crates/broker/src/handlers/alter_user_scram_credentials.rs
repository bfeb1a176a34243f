//! AlterUserScramCredentials (KIP-554): create, replace or delete users' SCRAM credentials. The
//! client salts the password itself (the request carries salt, iterations and the salted
//! password); the broker derives StoredKey and ServerKey from it, as Kafka's controller does,
//! and commits them through the metadata log, so every node learns them and they survive
//! restarts. The checks and per-user errors are `strom_metadata::scram::alter`'s (Kafka's
//! `ScramControlManager`): the valid users' changes are committed together.

use std::sync::{Arc, Mutex};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::scram::{self, AlterError, ScramMechanism, Upsertion};

use crate::broker::Broker;
use crate::sasl::scram::credential;

/// Needs ALTER on the cluster (every user answered CLUSTER_AUTHORIZATION_FAILED), as Kafka.
pub async fn handle(broker: &Arc<Broker>, req: AlterUserScramCredentialsRequest, session: &crate::session::Session) -> AlterUserScramCredentialsResponse {
    if !broker.authz(session).allows_cluster(strom_metadata::acl::Operation::Alter) {
        let users = req.deletions.iter().map(|d| d.name.clone()).chain(req.upsertions.iter().map(|u| u.name.clone()));
        let results = users
            .map(|user| {
                AlterUserScramCredentialsResult::default()
                    .with_user(user)
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
                    .with_error_message(Some(StrBytes::from_static_str("Cluster authorization failed.")))
            })
            .collect();
        return AlterUserScramCredentialsResponse::default().with_results(results);
    }
    let deletions: Vec<(String, i8)> = req.deletions.iter().map(|d| (d.name.to_string(), d.mechanism)).collect();
    let upsertions: Vec<Upsertion> = req
        .upsertions
        .iter()
        .map(|u| {
            // An unknown mechanism is refused per user by `alter`; its keys are never used.
            let m = ScramMechanism::from_type(u.mechanism).unwrap_or(ScramMechanism::Sha256);
            Upsertion { name: u.name.to_string(), mechanism: u.mechanism, credential: credential(m, &u.salted_password, &u.salt, u.iterations) }
        })
        .collect();
    let results = Mutex::new(Vec::new());
    let build = |image: &strom_metadata::MetadataImage| -> Result<_, ()> {
        let (records, r) = scram::alter(&image.scram, &deletions, &upsertions);
        *crate::sync::lock(&results) = r;
        Ok(records)
    };
    let outcome = broker.metadata.commit(build).await;
    let results = std::mem::take(&mut *crate::sync::lock(&results));
    let failure = match outcome {
        Ok(_) => None,
        Err(e) => {
            tracing::error!(error = %e, "metadata write failed");
            Some(e.to_string())
        }
    };
    let results = results
        .into_iter()
        .map(|(user, result)| {
            let (code, message) = match (&result, &failure) {
                (Err(e), _) => (code(e), Some(e.message().to_string())),
                // Valid, but the commit failed: nothing was changed.
                (Ok(()), Some(f)) => (ResponseError::KafkaStorageError.code(), Some(f.clone())),
                (Ok(()), None) => (0, None),
            };
            AlterUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(user))
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn code(e: &AlterError) -> i16 {
    match e {
        AlterError::Duplicate => ResponseError::DuplicateResource,
        AlterError::EmptyName | AlterError::TooFewIterations | AlterError::TooManyIterations => ResponseError::UnacceptableCredential,
        AlterError::UnknownMechanism => ResponseError::UnsupportedSaslMechanism,
        AlterError::NotFound => ResponseError::ResourceNotFound,
    }
    .code()
}
