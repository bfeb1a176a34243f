//! SCRAM credentials in the metadata log, as Kafka's KRaft keeps them (`UserScramCredentialRecord`,
//! `RemoveUserScramCredentialRecord`, `ScramControlManager`, `ScramImage`): per user and
//! mechanism the salt, StoredKey, ServerKey and iteration count, never the password (RFC 5802:
//! StoredKey verifies a client's proof, ServerKey signs the server's answer).
//!
//! The keys are derived by the broker from the salted password a client sends
//! (AlterUserScramCredentials) before anything reaches this module, so this crate needs no
//! cryptography; what lives here is the checks Kafka's controller makes and the apply.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Kafka's bounds on a credential's iteration count: `ScramMechanism.minIterations` (4096 for both
/// mechanisms) and `ScramControlManager`'s `MAX_ITERATIONS`.
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

/// The SCRAM mechanisms, with Kafka's wire numbers (`org.apache.kafka.clients.admin.ScramMechanism`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    pub fn from_type(t: i8) -> Option<ScramMechanism> {
        match t {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    pub fn type_id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// What the server keeps of one password (RFC 5802 section 3).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// The keys are as good as the password for impersonating the server: never in a log line.
impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScramCredential {{ iterations: {}, salt, keys: <hidden> }}", self.iterations)
    }
}

/// Every user's credentials, by user name and mechanism.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScramImage {
    pub users: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
}

impl ScramImage {
    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        self.users.get(user).and_then(|m| m.get(&mechanism))
    }

    pub(crate) fn set(&mut self, name: &str, mechanism: ScramMechanism, credential: &ScramCredential) {
        self.users.entry(name.to_string()).or_default().insert(mechanism, credential.clone());
    }

    pub(crate) fn remove(&mut self, name: &str, mechanism: ScramMechanism) {
        if let Some(m) = self.users.get_mut(name) {
            m.remove(&mechanism);
            if m.is_empty() {
                self.users.remove(name);
            }
        }
    }
}

/// One credential to create or replace, its keys already derived from the salted password.
#[derive(Clone, Debug)]
pub struct Upsertion {
    pub name: String,
    /// Kafka's wire number; an unknown one is refused per user.
    pub mechanism: i8,
    pub credential: ScramCredential,
}

/// Why Kafka's controller refuses one user's part of an AlterUserScramCredentials request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlterError {
    /// DUPLICATE_RESOURCE.
    Duplicate,
    /// UNACCEPTABLE_CREDENTIAL.
    EmptyName,
    TooFewIterations,
    TooManyIterations,
    /// UNSUPPORTED_SASL_MECHANISM.
    UnknownMechanism,
    /// RESOURCE_NOT_FOUND: a deletion of a credential that does not exist.
    NotFound,
}

impl AlterError {
    /// Kafka's message for it.
    pub fn message(&self) -> &'static str {
        match self {
            AlterError::Duplicate => "A user credential cannot be altered twice in the same request",
            AlterError::EmptyName => "Username must not be empty",
            AlterError::TooFewIterations => "Too few iterations",
            AlterError::TooManyIterations => "Too many iterations",
            AlterError::UnknownMechanism => "Unknown SCRAM mechanism",
            AlterError::NotFound => "Attempt to delete a user credential that does not exist",
        }
    }
}

/// A change of credentials: the records to commit (all together) and one result per user named
/// in the request, as `ScramControlManager.alterCredentials` computes them. A user named twice
/// (in deletions, upsertions or both) fails as a whole with DUPLICATE_RESOURCE and nothing of it
/// is changed; the other users' changes go ahead.
pub fn alter(image: &ScramImage, deletions: &[(String, i8)], upsertions: &[Upsertion]) -> (Vec<crate::MetadataRecord>, Vec<(String, Result<(), AlterError>)>) {
    let mut errors: BTreeMap<&str, AlterError> = BTreeMap::new();
    let mut deletes: BTreeMap<&str, ScramMechanism> = BTreeMap::new();
    let mut upserts: BTreeMap<&str, (ScramMechanism, &ScramCredential)> = BTreeMap::new();
    for (name, mechanism) in deletions {
        if errors.contains_key(name.as_str()) {
            continue;
        }
        if deletes.remove(name.as_str()).is_some() {
            errors.insert(name, AlterError::Duplicate);
            continue;
        }
        match check_name_and_mechanism(name, *mechanism) {
            Err(e) => {
                errors.insert(name, e);
            }
            Ok(m) if image.get(name, m).is_none() => {
                errors.insert(name, AlterError::NotFound);
            }
            Ok(m) => {
                deletes.insert(name, m);
            }
        }
    }
    for u in upsertions {
        let name = u.name.as_str();
        if errors.contains_key(name) {
            continue;
        }
        if deletes.remove(name).is_some() || upserts.remove(name).is_some() {
            errors.insert(name, AlterError::Duplicate);
            continue;
        }
        let checked = check_name_and_mechanism(name, u.mechanism).and_then(|m| match u.credential.iterations {
            i if i < MIN_ITERATIONS => Err(AlterError::TooFewIterations),
            i if i > MAX_ITERATIONS => Err(AlterError::TooManyIterations),
            _ => Ok(m),
        });
        match checked {
            Ok(m) => {
                upserts.insert(name, (m, &u.credential));
            }
            Err(e) => {
                errors.insert(name, e);
            }
        }
    }
    let mut records = Vec::new();
    let mut results = Vec::new();
    for (name, mechanism) in deletes {
        records.push(crate::MetadataRecord::ScramCredentialRemoved { name: name.to_string(), mechanism });
        results.push((name.to_string(), Ok(())));
    }
    for (name, (mechanism, credential)) in upserts {
        records.push(crate::MetadataRecord::ScramCredentialSet { name: name.to_string(), mechanism, credential: credential.clone() });
        results.push((name.to_string(), Ok(())));
    }
    results.extend(errors.into_iter().map(|(name, e)| (name.to_string(), Err(e))));
    (records, results)
}

fn check_name_and_mechanism(name: &str, mechanism: i8) -> Result<ScramMechanism, AlterError> {
    if name.is_empty() {
        return Err(AlterError::EmptyName);
    }
    ScramMechanism::from_type(mechanism).ok_or(AlterError::UnknownMechanism)
}

/// DescribeUserScramCredentials' answer for one user: its mechanisms and iterations, or why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Described {
    Found(Vec<(ScramMechanism, i32)>),
    /// RESOURCE_NOT_FOUND, with Kafka's message.
    NotFound(String),
    /// DUPLICATE_RESOURCE: the user was named more than once.
    Duplicate(String),
}

/// `ScramImage.describe`: every user when `users` is empty (Kafka treats null and empty alike),
/// else each named user once.
pub fn describe(image: &ScramImage, users: &[String]) -> Vec<(String, Described)> {
    let mut named: BTreeMap<&str, bool> = BTreeMap::new();
    if users.is_empty() {
        named.extend(image.users.keys().map(|u| (u.as_str(), false)));
    } else {
        for u in users {
            named.entry(u.as_str()).and_modify(|dup| *dup = true).or_insert(false);
        }
    }
    named
        .into_iter()
        .map(|(user, duplicate)| {
            let answer = if duplicate {
                Described::Duplicate(format!("Cannot describe SCRAM credentials for the same user twice in a single request: {user}"))
            } else {
                match image.users.get(user) {
                    Some(m) if !m.is_empty() => Described::Found(m.iter().map(|(m, c)| (*m, c.iterations)).collect()),
                    _ => Described::NotFound(format!("Attempt to describe a user credential that does not exist: {user}")),
                }
            };
            (user.to_string(), answer)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MetadataCommand, MetadataImage};

    fn cred(iterations: i32) -> ScramCredential {
        ScramCredential { salt: vec![1; 16], stored_key: vec![2; 32], server_key: vec![3; 32], iterations }
    }

    fn up(name: &str, mechanism: i8, iterations: i32) -> Upsertion {
        Upsertion { name: name.into(), mechanism, credential: cred(iterations) }
    }

    fn commit(img: &mut MetadataImage, records: Vec<crate::MetadataRecord>) {
        assert!(img.apply_command(&MetadataCommand { based_on: None, records }));
    }

    #[test]
    fn upsert_describe_delete_as_kafka() {
        let mut img = MetadataImage::default();
        let (records, results) = alter(&img.scram, &[], &[up("alice", 1, 8192), up("bob", 2, 4096)]);
        assert!(results.iter().all(|(_, r)| r.is_ok()));
        commit(&mut img, records);
        assert_eq!(img.scram.get("alice", ScramMechanism::Sha256), Some(&cred(8192)));
        assert_eq!(describe(&img.scram, &[]).len(), 2);
        assert_eq!(describe(&img.scram, &["alice".into()]), vec![("alice".into(), Described::Found(vec![(ScramMechanism::Sha256, 8192)]))]);
        let d = describe(&img.scram, &["carol".into(), "bob".into(), "bob".into()]);
        assert!(matches!(&d[0], (u, Described::Duplicate(m)) if u == "bob" && m.ends_with(": bob")));
        assert!(matches!(&d[1], (u, Described::NotFound(m)) if u == "carol" && m == "Attempt to describe a user credential that does not exist: carol"));
        // Deleting a mechanism the user has not: RESOURCE_NOT_FOUND; the right one: gone.
        let (records, results) = alter(&img.scram, &[("alice".into(), 2)], &[]);
        assert!(records.is_empty());
        assert_eq!(results, vec![("alice".into(), Err(AlterError::NotFound))]);
        let (records, _) = alter(&img.scram, &[("alice".into(), 1)], &[]);
        commit(&mut img, records);
        assert!(!img.scram.users.contains_key("alice"));
        // The image survives its JSON snapshot form.
        let json = serde_json_roundtrip(&img.scram);
        assert_eq!(json, img.scram);
    }

    fn serde_json_roundtrip(s: &ScramImage) -> ScramImage {
        // The controller snapshots the image as JSON; keys of the inner map are enum names.
        let v = serde_json::to_string(s).unwrap();
        serde_json::from_str(&v).unwrap()
    }

    #[test]
    fn kafkas_per_user_errors() {
        let img = ScramImage::default();
        let (records, results) = alter(
            &img,
            &[("dup".into(), 1)],
            &[up("", 1, 8192), up("low", 1, 4095), up("high", 2, 16385), up("mech", 3, 8192), up("dup", 1, 8192), up("twice", 1, 8192), up("twice", 2, 8192), up("ok", 2, 16384)],
        );
        let r: BTreeMap<String, Result<(), AlterError>> = results.into_iter().collect();
        assert_eq!(r[""], Err(AlterError::EmptyName));
        assert_eq!(r["low"], Err(AlterError::TooFewIterations));
        assert_eq!(r["high"], Err(AlterError::TooManyIterations));
        assert_eq!(r["mech"], Err(AlterError::UnknownMechanism));
        // Named in deletions (not found) first: that error stands.
        assert_eq!(r["dup"], Err(AlterError::NotFound));
        assert_eq!(r["twice"], Err(AlterError::Duplicate));
        assert_eq!(r["ok"], Ok(()));
        assert_eq!(records.len(), 1);
    }
}
