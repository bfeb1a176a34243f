//! `strom acls`: Kafka's `kafka-acls.sh`. Add, remove and list ACLs with its flags
//! (`--add`, `--remove`, `--list`, `--allow-principal`, `--deny-principal`, `--allow-host`,
//! `--deny-host`, `--operation`, `--topic`, `--group`, `--cluster`, `--transactional-id`,
//! `--resource-pattern-type`, `--principal`, `--producer`, `--consumer`, `--idempotent`,
//! `--force`) and its output (`Current ACLs for resource ...`, `(principal=..., host=...,
//! operation=..., permissionType=...)`).
//!
//! The requests are CreateAcls, DeleteAcls and DescribeAcls sent by `kafka_client`, to one
//! broker (any broker takes them: ACLs live in the metadata log).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::acl::{AccessControlEntry, Operation, PatternType, Permission, ResourceType, CLUSTER_NAME, CODE_ANY, CODE_MATCH};

use super::kafka_client::{error, BrokerError, Cluster, Settings};
use super::TIMEOUT;

/// CreateAcls, DeleteAcls and DescribeAcls v3 (flexible): Kafka 3.x's admin client's versions.
const ACLS_VERSION: i16 = 3;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The broker(s) to connect to, HOST:PORT[,HOST:PORT...].
    #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// A properties file of client settings: client.id, request.timeout.ms, security.protocol
    /// PLAINTEXT or SASL_PLAINTEXT with SASL/PLAIN.
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    /// Add ACLs.
    #[arg(long, group = "action")]
    pub add: bool,
    /// Remove ACLs.
    #[arg(long, group = "action")]
    pub remove: bool,
    /// List ACLs for the given resources (all of them when none is given).
    #[arg(long, group = "action")]
    pub list: bool,
    /// A topic (`*` for every topic).
    #[arg(long)]
    pub topic: Vec<String>,
    /// A consumer group (`*` for every group).
    #[arg(long)]
    pub group: Vec<String>,
    /// The cluster.
    #[arg(long)]
    pub cluster: bool,
    /// A transactional id (`*` for every one).
    #[arg(long)]
    pub transactional_id: Vec<String>,
    /// literal or prefixed (adding); any or match too (listing, removing).
    #[arg(long, default_value = "literal")]
    pub resource_pattern_type: String,
    /// Principal (`User:<name>`) to allow.
    #[arg(long)]
    pub allow_principal: Vec<String>,
    /// Principal (`User:<name>`) to deny.
    #[arg(long)]
    pub deny_principal: Vec<String>,
    /// Host the allowed principals may connect from (default `*` when a principal is given).
    #[arg(long)]
    pub allow_host: Vec<String>,
    /// Host the denied principals are denied from (default `*`).
    #[arg(long)]
    pub deny_host: Vec<String>,
    /// Operation (Read, Write, Create, Delete, Alter, Describe, ClusterAction, AlterConfigs,
    /// DescribeConfigs, IdempotentWrite, All), repeatable.
    #[arg(long)]
    pub operation: Vec<String>,
    /// With --list: only this principal's ACLs.
    #[arg(long)]
    pub principal: Vec<String>,
    /// The producer role: WRITE, DESCRIBE, CREATE on the topics, WRITE, DESCRIBE on the
    /// transactional ids.
    #[arg(long)]
    pub producer: bool,
    /// With --producer: IDEMPOTENT_WRITE on the cluster.
    #[arg(long)]
    pub idempotent: bool,
    /// The consumer role: READ, DESCRIBE on the topics, READ on the groups.
    #[arg(long)]
    pub consumer: bool,
    /// Do not ask before removing.
    #[arg(long)]
    pub force: bool,
}

/// A resource pattern as Kafka prints it; `pattern` is a code (filters may use ANY/MATCH).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Resource {
    kind: ResourceType,
    name: String,
    pattern: i8,
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pattern = match self.pattern {
            CODE_ANY => "ANY",
            CODE_MATCH => "MATCH",
            code => PatternType::from_code(code).map_or("UNKNOWN", PatternType::name),
        };
        write!(f, "ResourcePattern(resourceType={}, name={}, patternType={pattern})", self.kind.name(), self.name)
    }
}

type Entry = AccessControlEntry;

/// An entry as Kafka's tool prints it.
fn show(e: &Entry) -> String {
    format!("(principal={}, host={}, operation={}, permissionType={})", e.principal, e.host, e.operation.name(), e.permission.name())
}

fn pattern_code(a: &Args) -> anyhow::Result<i8> {
    Ok(match a.resource_pattern_type.to_ascii_lowercase().as_str() {
        "literal" => PatternType::Literal.code(),
        "prefixed" => PatternType::Prefixed.code(),
        "any" => CODE_ANY,
        "match" => CODE_MATCH,
        other => bail!("--resource-pattern-type {other}: expected literal, prefixed, any or match"),
    })
}

fn resources(a: &Args, pattern: i8) -> Vec<Resource> {
    let mut out = Vec::new();
    let mut add = |kind, names: &[String]| out.extend(names.iter().map(|n| Resource { kind, name: n.clone(), pattern }));
    add(ResourceType::Topic, &a.topic);
    add(ResourceType::Group, &a.group);
    add(ResourceType::TransactionalId, &a.transactional_id);
    if a.cluster {
        out.push(Resource { kind: ResourceType::Cluster, name: CLUSTER_NAME.into(), pattern });
    }
    out
}

fn principals(list: &[String]) -> anyhow::Result<Vec<String>> {
    list.iter()
        .map(|p| match p.split_once(':') {
            Some((t, n)) if !t.is_empty() && !n.is_empty() => Ok(p.clone()),
            _ => Err(anyhow!("Could not parse principal from `{p}` (no colon is found)")),
        })
        .collect()
}

/// The entries for `operations`, from the allow/deny principal and host flags.
fn entries(a: &Args, operations: &[Operation]) -> anyhow::Result<BTreeSet<Entry>> {
    let mut out = BTreeSet::new();
    let hosts = |h: &[String]| if h.is_empty() { vec!["*".to_string()] } else { h.to_vec() };
    for (who, hosts, permission) in [(principals(&a.allow_principal)?, hosts(&a.allow_host), Permission::Allow), (principals(&a.deny_principal)?, hosts(&a.deny_host), Permission::Deny)] {
        for principal in &who {
            for host in &hosts {
                for operation in operations {
                    out.insert(Entry { principal: principal.clone(), host: host.clone(), operation: *operation, permission });
                }
            }
        }
    }
    Ok(out)
}

/// Resource -> entries, as kafka-acls.sh builds them from the flags (the roles, or
/// `--operation`, default ALL).
fn resource_entries(a: &Args, pattern: i8) -> anyhow::Result<BTreeMap<Resource, BTreeSet<Entry>>> {
    let mut out: BTreeMap<Resource, BTreeSet<Entry>> = BTreeMap::new();
    let all = resources(a, pattern);
    if !a.producer && !a.consumer {
        let operations = if a.operation.is_empty() {
            vec![Operation::All]
        } else {
            a.operation.iter().map(|o| Operation::parse(o.trim()).ok_or_else(|| anyhow!("unknown operation {o}"))).collect::<anyhow::Result<_>>()?
        };
        for r in all {
            let supported = Operation::supported_by(r.kind);
            if let Some(op) = operations.iter().find(|o| **o != Operation::All && !supported.contains(o)) {
                bail!("ResourceType {} only supports operations {}; {} is not one of them", r.kind.name(), supported.iter().map(|o| o.name()).collect::<Vec<_>>().join(","), op.name());
            }
            out.insert(r, entries(a, &operations)?);
        }
        return Ok(out);
    }
    for r in all {
        let ops: &[Operation] = match (r.kind, a.producer, a.consumer) {
            (ResourceType::Topic, true, true) => &[Operation::Write, Operation::Describe, Operation::Create, Operation::Read],
            (ResourceType::Topic, true, false) => &[Operation::Write, Operation::Describe, Operation::Create],
            (ResourceType::Topic, false, _) => &[Operation::Read, Operation::Describe],
            (ResourceType::TransactionalId, true, _) => &[Operation::Write, Operation::Describe],
            (ResourceType::Group, _, true) => &[Operation::Read],
            _ => continue,
        };
        out.entry(r).or_default().extend(entries(a, ops)?);
    }
    if a.producer && a.idempotent {
        out.insert(Resource { kind: ResourceType::Cluster, name: CLUSTER_NAME.into(), pattern }, entries(a, &[Operation::IdempotentWrite])?);
    }
    Ok(out)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if !(a.add || a.remove || a.list) {
        bail!("Command must include exactly one action: --list, --add, --remove.");
    }
    let settings = Settings::read("strom-acls", a.command_config.as_deref(), TIMEOUT)?;
    let pattern = pattern_code(&a)?;
    if a.add && !(pattern == PatternType::Literal.code() || pattern == PatternType::Prefixed.code()) {
        bail!("A '--resource-pattern-type' value of '{}' is not valid when adding acls.", a.resource_pattern_type.to_ascii_uppercase());
    }
    let plan = if a.list { BTreeMap::new() } else { resource_entries(&a, pattern)? };
    if a.add && (plan.is_empty() || plan.values().any(BTreeSet::is_empty)) {
        bail!("You must specify one of: --allow-principal, --deny-principal when trying to add ACLs, and a resource (--topic, --group, --cluster, --transactional-id).");
    }
    if a.remove && plan.is_empty() {
        bail!("You must specify a resource (--topic, --group, --cluster, --transactional-id) to remove ACLs from.");
    }
    super::block_on(async move {
        let mut cluster = Cluster::connect(&a.bootstrap_server, &settings).await?;
        let node = *cluster.brokers.keys().next().ok_or_else(|| anyhow!("the cluster lists no broker"))?;
        if a.add {
            for (resource, entries) in &plan {
                println!("Adding ACLs for resource `{resource}`: \n {} \n", entries.iter().map(|e| format!("\t{}", show(e))).collect::<Vec<_>>().join("\n"));
                let creations = entries
                    .iter()
                    .map(|e| {
                        AclCreation::default()
                            .with_resource_type(resource.kind.code())
                            .with_resource_name(StrBytes::from_string(resource.name.clone()))
                            .with_resource_pattern_type(resource.pattern)
                            .with_principal(StrBytes::from_string(e.principal.clone()))
                            .with_host(StrBytes::from_string(e.host.clone()))
                            .with_operation(e.operation.code())
                            .with_permission_type(e.permission.code())
                    })
                    .collect();
                let r = cluster.call(node, ACLS_VERSION, &CreateAclsRequest::default().with_creations(creations)).await?;
                if let Some(failed) = r.results.iter().find(|x| x.error_code != 0) {
                    let code = error(failed.error_code).map_or_else(|| format!("error {}", failed.error_code), |e| format!("{}", BrokerError(e)));
                    bail!("Error while adding ACLs: {code}: {}", failed.error_message.as_deref().unwrap_or(""));
                }
            }
        }
        if a.remove {
            for (resource, entries) in &plan {
                let question = format!(
                    "Are you sure you want to remove ACLs: \n {} \n from resource filter `{resource}`? (y/n)",
                    entries.iter().map(|e| format!("\t{}", show(e))).collect::<Vec<_>>().join("\n")
                );
                if !a.force && !confirm(&question)? {
                    continue;
                }
                let filters = entries
                    .iter()
                    .map(|e| {
                        DeleteAclsFilter::default()
                            .with_resource_type_filter(resource.kind.code())
                            .with_resource_name_filter(Some(StrBytes::from_string(resource.name.clone())))
                            .with_pattern_type_filter(resource.pattern)
                            .with_principal_filter(Some(StrBytes::from_string(e.principal.clone())))
                            .with_host_filter(Some(StrBytes::from_string(e.host.clone())))
                            .with_operation(e.operation.code())
                            .with_permission_type(e.permission.code())
                    })
                    .collect();
                let r = cluster.call(node, ACLS_VERSION, &DeleteAclsRequest::default().with_filters(filters)).await?;
                if let Some(failed) = r.filter_results.iter().find(|x| x.error_code != 0) {
                    bail!("Error while removing ACLs: error {}: {}", failed.error_code, failed.error_message.as_deref().unwrap_or(""));
                }
            }
        }
        // Kafka's tool lists what the resources hold after adding or removing, too.
        let shown = if a.list { resources(&a, pattern) } else { plan.keys().cloned().collect() };
        list(&mut cluster, node, &shown, &principals(&a.principal)?, pattern).await
    })?
}

async fn list(cluster: &mut Cluster, node: i32, resources: &[Resource], only: &[String], pattern: i8) -> anyhow::Result<()> {
    let filters: Vec<(i8, Option<String>, i8)> = if resources.is_empty() {
        vec![(CODE_ANY, None, CODE_ANY)]
    } else {
        resources.iter().map(|r| (r.kind.code(), Some(r.name.clone()), pattern)).collect()
    };
    let mut found: BTreeMap<Resource, BTreeSet<Entry>> = BTreeMap::new();
    for (kind, name, pattern) in filters {
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(kind)
            .with_resource_name_filter(name.map(StrBytes::from_string))
            .with_pattern_type_filter(pattern)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(CODE_ANY)
            .with_permission_type(CODE_ANY);
        let r = cluster.call(node, ACLS_VERSION, &req).await?;
        if let Some(e) = error(r.error_code) {
            bail!("{}: {}", BrokerError(e), r.error_message.as_deref().unwrap_or(""));
        }
        for res in r.resources {
            let Some(kind) = ResourceType::from_code(res.resource_type) else { continue };
            let resource = Resource { kind, name: res.resource_name.to_string(), pattern: res.pattern_type };
            for acl in res.acls {
                let (Some(operation), Some(permission)) = (Operation::from_code(acl.operation), Permission::from_code(acl.permission_type)) else { continue };
                found.entry(resource.clone()).or_default().insert(Entry { principal: acl.principal.to_string(), host: acl.host.to_string(), operation, permission });
            }
        }
    }
    let print = |found: &BTreeMap<Resource, BTreeSet<Entry>>, keep: &dyn Fn(&Entry) -> bool| {
        for (resource, entries) in found {
            let entries: Vec<String> = entries.iter().filter(|e| keep(e)).map(|e| format!("\t{}", show(e))).collect();
            if !entries.is_empty() {
                println!("Current ACLs for resource `{resource}`: \n {} \n", entries.join("\n"));
            }
        }
    };
    if only.is_empty() {
        print(&found, &|_| true);
    }
    for principal in only {
        println!("ACLs for principal `{principal}`");
        print(&found, &|e: &Entry| e.principal == *principal);
    }
    Ok(())
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    println!("{question}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().eq_ignore_ascii_case("y"))
}
