//! `strom server --add-scram 'SCRAM-SHA-256=[name=admin,password=admin-secret]'`: the first
//! super user of a new cluster, as Kafka's `kafka-storage format --add-scram` creates it (Strom
//! has no format step: the metadata log is created at the first start). The password is salted
//! here (a random salt, PBKDF2 with the mechanism's HMAC); only the salt and the derived keys go
//! on, into the command that creates the cluster. With an existing log the flag is ignored
//! (logged): credentials are changed with AlterUserScramCredentials then.

use anyhow::{bail, Context};
use strom_broker::sasl::scram::{credential, random_salt, salted_password, ScramMechanism, MIN_ITERATIONS};
use strom_config::{BootstrapScram, SaslMechanism};

/// Kafka's default for `--add-scram` without `iterations=`.
const DEFAULT_ITERATIONS: i32 = 4096;
const MAX_ITERATIONS: i32 = strom_broker::sasl::scram::MAX_ITERATIONS;

/// One `--add-scram` argument: `MECHANISM=[name=N,password=P(,iterations=I)]`; a value with
/// commas or brackets goes in double quotes.
pub fn parse(spec: &str) -> anyhow::Result<BootstrapScram> {
    let (mech, rest) = spec.split_once('=').context("--add-scram takes MECHANISM=[name=NAME,password=PASSWORD]")?;
    let mechanism = match mech.trim() {
        "SCRAM-SHA-256" => (SaslMechanism::ScramSha256, ScramMechanism::Sha256),
        "SCRAM-SHA-512" => (SaslMechanism::ScramSha512, ScramMechanism::Sha512),
        other => bail!("--add-scram: unknown SCRAM mechanism {other} (SCRAM-SHA-256 or SCRAM-SHA-512)"),
    };
    let Some(body) = rest.trim().strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        bail!("--add-scram: expected {mech}=[name=NAME,password=PASSWORD]");
    };
    let (mut name, mut password, mut iterations) = (None, None, DEFAULT_ITERATIONS);
    for field in split_fields(body)? {
        let (k, v) = field.split_once('=').with_context(|| format!("--add-scram: `{}` is not key=value", k_only(&field)))?;
        let v = unquote(v);
        match k.trim() {
            "name" => name = Some(v),
            "password" => password = Some(v),
            "iterations" => iterations = v.parse().with_context(|| format!("--add-scram: iterations must be a number, not {v}"))?,
            other => bail!("--add-scram: unknown field {other} (name, password, iterations)"),
        }
    }
    let name = name.filter(|n| !n.is_empty()).context("--add-scram: a name= is required")?;
    let password = password.context("--add-scram: a password= is required")?;
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        bail!("--add-scram: iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, not {iterations}");
    }
    let salt = random_salt().context("no randomness for a salt")?;
    let c = credential(mechanism.1, &salted_password(mechanism.1, password.as_bytes(), &salt, iterations as u32), &salt, iterations);
    Ok(BootstrapScram { name, mechanism: mechanism.0, salt: c.salt, stored_key: c.stored_key, server_key: c.server_key, iterations })
}

/// The key of a field, so an error never echoes a password.
fn k_only(field: &str) -> &str {
    field.split('=').next().unwrap_or("")
}

/// Splits at commas outside double quotes.
fn split_fields(body: &str) -> anyhow::Result<Vec<String>> {
    let (mut fields, mut current, mut quoted) = (Vec::new(), String::new(), false);
    for c in body.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => fields.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if quoted {
        bail!("--add-scram: unbalanced double quote");
    }
    fields.push(current);
    Ok(fields)
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    v.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_add_scram_syntax() {
        let c = parse("SCRAM-SHA-512=[name=admin,password=\"a,b]c\",iterations=8192]").unwrap();
        assert_eq!((c.name.as_str(), c.mechanism, c.iterations, c.salt.len(), c.stored_key.len()), ("admin", SaslMechanism::ScramSha512, 8192, 32, 64));
        let c = parse("SCRAM-SHA-256=[name=alice,password=pw]").unwrap();
        assert_eq!((c.iterations, c.stored_key.len()), (4096, 32));
        for bad in ["PLAIN=[name=a,password=b]", "SCRAM-SHA-256=name=a", "SCRAM-SHA-256=[password=b]", "SCRAM-SHA-256=[name=a]", "SCRAM-SHA-256=[name=a,password=b,iterations=100]", "SCRAM-SHA-256=[name=a,password=\"b]", "SCRAM-SHA-256=[name=a,secret=b]"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(!e.contains("=b"), "{bad}: a password must not be echoed: {e}");
        }
    }
}
