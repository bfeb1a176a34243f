//! `strom configs --entity-type users`: SCRAM credentials, as `kafka-configs.sh` handles them
//! with `--bootstrap-server`: `--alter --add-config 'SCRAM-SHA-256=[iterations=8192,password=pw]'`
//! (iterations default to 4096), `--alter --delete-config SCRAM-SHA-512`, and `--describe`
//! (mechanisms and iterations of one user or of all).
//!
//! The tool salts the password itself, as Kafka's admin client does (a random salt, PBKDF2 with
//! the mechanism's HMAC), so the password never leaves this process; the request carries the
//! salt and salted password only. Both requests are spoken with kafka-protocol's codecs through
//! `kafka_client.rs`, as `strom transactions` does.

use anyhow::{bail, Context};
use kafka_protocol::messages::alter_user_scram_credentials_request::{ScramCredentialDeletion, ScramCredentialUpsertion};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::error::ResponseError;
use strom_broker::sasl::scram::{random_salt, salted_password, ScramMechanism, MIN_ITERATIONS};

use super::super::kafka_client::{error, Cluster, Settings};
use super::{parse_add_config, Args};

/// Kafka's tool's default (`ConfigCommand.DefaultScramIterations`).
const DEFAULT_ITERATIONS: i32 = 4096;

pub fn run(a: &Args) -> anyhow::Result<()> {
    if a.entity_default {
        bail!("The use of --entity-default or --user-defaults is not allowed with User SCRAM Credentials using --bootstrap-server.");
    }
    // SASL/PLAIN from --command-config, as `strom acls` (with an authorizer, only principals
    // allowed ALTER on the cluster may set credentials).
    let settings = Settings::read("strom-configs", a.connection.command_config.as_deref(), super::super::TIMEOUT)?;
    let bootstrap = a.connection.bootstrap_server.clone();
    let alter = if a.alter { Some(alterations(a)?) } else { None };
    let user = a.entity_name.clone();
    super::super::block_on(async move {
        let mut cluster = Cluster::connect(&bootstrap, &settings).await?;
        let node = *cluster.brokers.keys().next().context("the cluster lists no brokers")?;
        match alter {
            Some((user, req)) => {
                let resp = cluster.call(node, 0, &req).await.context("AlterUserScramCredentials")?;
                for r in &resp.results {
                    if r.error_code != 0 {
                        bail!("{}", super::super::error_text(i32::from(r.error_code), r.error_message.as_deref()));
                    }
                }
                println!("Completed updating config for user {user}.");
                Ok(())
            }
            None => {
                let users = user.map(|u| vec![UserName::default().with_name(StrBytes::from_string(u))]);
                let resp = cluster.call(node, 0, &DescribeUserScramCredentialsRequest::default().with_users(users)).await.context("DescribeUserScramCredentials")?;
                if resp.error_code != 0 {
                    bail!("{}", super::super::error_text(i32::from(resp.error_code), resp.error_message.as_deref()));
                }
                for r in &resp.results {
                    // As Java's `DescribeUserScramCredentialsResult.users()`: unknown users are left out.
                    match error(r.error_code) {
                        None => {
                            let infos: Vec<String> = r
                                .credential_infos
                                .iter()
                                .map(|i| format!("{}=iterations={}", ScramMechanism::from_type(i.mechanism).map_or("UNKNOWN", |m| m.name()), i.iterations))
                                .collect();
                            println!("SCRAM credential configs for user-principal '{}' are {}", r.user, infos.join(", "));
                        }
                        Some(ResponseError::ResourceNotFound) => {}
                        Some(_) => println!(
                            "Error retrieving SCRAM credential configs for user-principal '{}': {}",
                            r.user,
                            super::super::error_text(i32::from(r.error_code), r.error_message.as_deref())
                        ),
                    }
                }
                Ok(())
            }
        }
    })?
}

/// The request for `--alter` of one user, with Kafka's checks and messages.
fn alterations(a: &Args) -> anyhow::Result<(String, AlterUserScramCredentialsRequest)> {
    let Some(user) = a.entity_name.clone() else { bail!("An entity name must be specified with --alter of users") };
    let adds = match &a.add_config {
        Some(spec) => parse_add_config(spec)?,
        None => Vec::new(),
    };
    if a.add_config_file.is_some() {
        bail!("--add-config-file is not supported with --entity-type users");
    }
    let deletes: Vec<&str> = a.delete_config.iter().map(|k| k.trim()).filter(|k| !k.is_empty()).collect();
    if adds.is_empty() && deletes.is_empty() {
        bail!("At least one of --add-config, --add-config-file, or --delete-config must be specified with --alter");
    }
    let unknown: Vec<&str> = adds.iter().map(|(k, _)| k.as_str()).filter(|k| ScramMechanism::from_name(k).is_none()).collect();
    if !unknown.is_empty() {
        bail!("Only quota and SCRAM credential configs can be added for 'users' using --bootstrap-server. Unexpected config names: {}", unknown.join(","));
    }
    let unknown: Vec<&str> = deletes.iter().copied().filter(|k| ScramMechanism::from_name(k).is_none()).collect();
    if !unknown.is_empty() {
        bail!("Only quota and SCRAM credential configs can be deleted for 'users' using --bootstrap-server. Unexpected config names: {}", unknown.join(","));
    }
    let mut upsertions = Vec::new();
    for (name, value) in &adds {
        let m = ScramMechanism::from_name(name).context("checked above")?;
        let (iterations, password) = iterations_and_password(value).with_context(|| format!("Invalid credential property {name}={value}"))?;
        if iterations < MIN_ITERATIONS {
            bail!("Iterations {iterations} is less than the minimum {MIN_ITERATIONS} required for {name}");
        }
        let salt = random_salt().context("no randomness for a salt")?;
        let salted = salted_password(m, password.as_bytes(), &salt, iterations as u32);
        upsertions.push(
            ScramCredentialUpsertion::default()
                .with_name(StrBytes::from_string(user.clone()))
                .with_mechanism(m.type_id())
                .with_iterations(iterations)
                .with_salt(salt.into())
                .with_salted_password(salted.into()),
        );
    }
    let deletions = deletes
        .iter()
        .filter_map(|k| ScramMechanism::from_name(k))
        .map(|m| ScramCredentialDeletion::default().with_name(StrBytes::from_string(user.clone())).with_mechanism(m.type_id()))
        .collect();
    Ok((user, AlterUserScramCredentialsRequest::default().with_deletions(deletions).with_upsertions(upsertions)))
}

/// Kafka's `(?:iterations=(-?[0-9]*),)?password=(.*)` (brackets already dropped by the
/// --add-config parser); `-1` or nothing means the default.
fn iterations_and_password(value: &str) -> Option<(i32, &str)> {
    let (iterations, rest) = match value.strip_prefix("iterations=") {
        Some(rest) => {
            let (n, rest) = rest.split_once(',')?;
            let n = if n.is_empty() || n == "-1" { DEFAULT_ITERATIONS } else { n.parse().ok()? };
            (n, rest)
        }
        None => (DEFAULT_ITERATIONS, value),
    };
    Some((iterations, rest.strip_prefix("password=")?))
}

#[cfg(test)]
mod tests {
    use super::iterations_and_password;

    #[test]
    fn credential_syntax_is_kafkas() {
        assert_eq!(iterations_and_password("iterations=8192,password=a,b=c"), Some((8192, "a,b=c")));
        assert_eq!(iterations_and_password("password=pw"), Some((4096, "pw")));
        assert_eq!(iterations_and_password("iterations=-1,password=pw"), Some((4096, "pw")));
        for bad in ["iterations=x,password=pw", "pw", "iterations=8192", "iterations=8192,pw"] {
            assert_eq!(iterations_and_password(bad), None, "{bad}");
        }
    }
}
