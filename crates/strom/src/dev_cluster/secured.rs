//! `strom cluster --secured`: what a secured development cluster needs besides its ports: a CA
//! and one certificate per node (made once with the `openssl` command, kept in `DIR/certs`),
//! the passwords of its two users (made once at random, kept in `DIR/secrets.properties`, so a
//! restarted cluster still knows them), each node's security properties, and a client config
//! for the administrator (`DIR/admin.properties`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

pub struct Secrets {
    admin: String,
    broker: String,
}

impl Secrets {
    /// `strom server --add-scram` for both users: the founding node writes them.
    pub fn add_scram(&self) -> Vec<String> {
        [("broker", &self.broker), ("admin", &self.admin)]
            .into_iter()
            .flat_map(|(name, password)| ["--add-scram".to_string(), format!("SCRAM-SHA-512=[name={name},password={password}]")])
            .collect()
    }
}

/// Makes what is missing: certificates for `nodes` nodes, the passwords, the client config.
pub fn prepare(dir: &Path, nodes: u16) -> anyhow::Result<Secrets> {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).with_context(|| format!("creating {}", certs.display()))?;
    if !certs.join("ca.crt").exists() {
        openssl(&certs, &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "365", "-subj", "/CN=strom-dev-ca"])?;
    }
    // Each node serves with its certificate and presents it to the others (mutual TLS): both
    // key usages, for 127.0.0.1 where the nodes listen.
    std::fs::write(certs.join("node.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")?;
    for i in 1..=nodes {
        if certs.join(format!("node{i}.pem")).exists() {
            continue;
        }
        let (raw, key, csr, crt) = (format!("node{i}.rawkey"), format!("node{i}.key"), format!("node{i}.csr"), format!("node{i}.crt"));
        openssl(&certs, &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &raw, "-out", &csr, "-subj", &format!("/CN=node{i}")])?;
        openssl(&certs, &["pkcs8", "-topk8", "-nocrypt", "-in", &raw, "-out", &key])?;
        openssl(&certs, &["x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "365", "-extfile", "node.ext", "-out", &crt])?;
        let pem = std::fs::read_to_string(certs.join(&key))? + &std::fs::read_to_string(certs.join(&crt))?;
        std::fs::write(certs.join(format!("node{i}.pem")), pem)?;
    }
    let path = dir.join("secrets.properties");
    let mut kept: BTreeMap<String, String> = match std::fs::File::open(&path) {
        Ok(f) => java_properties::read(std::io::BufReader::new(f)).with_context(|| format!("reading {}", path.display()))?.into_iter().collect(),
        Err(_) => BTreeMap::new(),
    };
    let mut changed = false;
    for user in ["admin", "broker"] {
        let key = format!("{user}.password");
        if !kept.contains_key(&key) {
            kept.insert(key, random_password()?);
            changed = true;
        }
    }
    if changed {
        let text: String = kept.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        write_private(&path, &format!("# The passwords of strom cluster --secured's users (SCRAM-SHA-512), made at its first start.\n{text}"))?;
    }
    let secrets = Secrets { admin: kept["admin.password"].clone(), broker: kept["broker.password"].clone() };
    let ca = certs.join("ca.crt");
    write_private(
        &dir.join("admin.properties"),
        &format!(
            "# librdkafka client settings for the secured development cluster's administrator.\n\
             security.protocol=SASL_SSL\nssl.ca.location={}\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=admin\nsasl.password={}\n",
            ca.display(),
            secrets.admin
        ),
    )?;
    Ok(secrets)
}

/// Node `i`'s security properties (as examples/cluster-secured).
pub fn node_props(dir: &Path, i: u16, secrets: &Secrets) -> Vec<(String, String)> {
    let certs = dir.join("certs");
    [
        ("listener.security.protocol.map", "CLIENT:SASL_SSL,INTERNAL:SASL_SSL,CONTROLLER:SSL".to_string()),
        ("inter.broker.listener.name", "INTERNAL".to_string()),
        ("ssl.keystore.location", certs.join(format!("node{i}.pem")).display().to_string()),
        ("ssl.truststore.location", certs.join("ca.crt").display().to_string()),
        ("listener.name.controller.ssl.client.auth", "required".to_string()),
        ("sasl.enabled.mechanisms", "SCRAM-SHA-512".to_string()),
        ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512".to_string()),
        (
            "listener.name.internal.scram-sha-512.sasl.jaas.config",
            format!("org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"{}\";", secrets.broker),
        ),
        ("authorizer.class.name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string()),
        ("super.users", "User:admin;User:broker".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running `openssl` to make the secured cluster's certificates (is it installed?)")?;
    if !out.status.success() {
        bail!("openssl {} failed: {}", args.first().unwrap_or(&""), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// 24 random hex characters from the kernel's generator.
fn random_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a file only its owner may read (it holds a password).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}
