//! Access control lists with the semantics of Kafka's `StandardAuthorizer`: which ACLs exist
//! (part of the metadata image, so they survive restarts and reach every node through the
//! metadata log), which ones a filter selects (DescribeAcls, DeleteAcls), and what they decide
//! for one principal, host, operation and resource.
//!
//! The rules, as Kafka's `StandardAuthorizerData`:
//! - an ACL applies to a resource if it names it literally, names it by a prefix, or is the
//!   literal wildcard `*` of its resource type;
//! - it applies to a principal if it names it or `User:*`, and to a host if it names the
//!   client's address or `*`;
//! - an ALLOW for READ, WRITE, DELETE or ALTER also allows DESCRIBE, an ALLOW for ALTER_CONFIGS
//!   also DESCRIBE_CONFIGS; a DENY denies only the operation it names (or ALL);
//! - any DENY that applies wins; else any ALLOW allows; else the request is denied, unless no
//!   ACL at all names the resource (`NoAcls`: `allow.everyone.if.no.acl.found` decides).
//!
//! Super users are the broker's business (`super.users` is a broker config, not metadata).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The name of the one CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The resource name and the principal that match every resource and every user.
pub const WILDCARD: &str = "*";
pub const WILDCARD_PRINCIPAL: &str = "User:*";

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:expr, $text:expr;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name { $($variant),* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }
            /// Kafka's name (`kafka-acls.sh` and the admin client print these).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
            /// Parses Kafka's name, in any case and with `-` or `_` (`--operation DescribeConfigs`).
            pub fn parse(s: &str) -> Option<$name> {
                let norm = |t: &str| t.chars().filter(|c| *c != '_' && *c != '-').collect::<String>().to_ascii_lowercase();
                let s = norm(s);
                Self::ALL.iter().copied().find(|v| norm(v.name()) == s)
            }
        }
    };
}

wire_enum!(
    /// What an ACL protects (Kafka's `ResourceType`; 0 UNKNOWN and 1 ANY are filter-only).
    ResourceType {
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

wire_enum!(
    /// How an ACL's resource name is matched (Kafka's `PatternType`; 1 ANY and 2 MATCH are
    /// filter-only).
    PatternType {
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

wire_enum!(
    /// Kafka's `AclOperation` (0 UNKNOWN and 1 ANY are filter-only).
    Operation {
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

wire_enum!(
    /// Kafka's `AclPermissionType` (0 UNKNOWN and 1 ANY are filter-only).
    Permission {
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

/// The filter-only codes shared by every enum above.
pub const CODE_ANY: i8 = 1;
/// `PatternType.MATCH`: every pattern that would match the filter's resource name.
pub const CODE_MATCH: i8 = 2;

impl Operation {
    /// The operations an ALLOW for `self` also allows (itself included).
    fn allows(self, wanted: Operation) -> bool {
        self == Operation::All
            || self == wanted
            || (wanted == Operation::Describe && matches!(self, Operation::Read | Operation::Write | Operation::Delete | Operation::Alter))
            || (wanted == Operation::DescribeConfigs && self == Operation::AlterConfigs)
    }

    /// The operations a resource type has (Kafka's `AclEntry.supportedOperations`): what the
    /// `authorized_operations` bit fields are computed over.
    pub fn supported_by(resource: ResourceType) -> &'static [Operation] {
        use Operation::*;
        match resource {
            ResourceType::Topic => &[Read, Write, Create, Describe, Delete, Alter, DescribeConfigs, AlterConfigs],
            ResourceType::Group => &[Read, Describe, Delete],
            ResourceType::Cluster => &[Create, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, Alter, Describe],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
        }
    }
}

/// One ACL: Kafka's `AclBinding` (a resource pattern and an access control entry).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:<name>`, or `User:*`.
    pub principal: String,
    /// A client address, or `*`.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Why an ACL cannot be created: Kafka answers INVALID_REQUEST with this message.
pub fn validate(acl: &AclBinding) -> Result<(), String> {
    if acl.resource_name.is_empty() {
        return Err("Invalid empty resource name".into());
    }
    if acl.resource_type == ResourceType::Cluster && acl.resource_name != CLUSTER_NAME {
        return Err(format!("The only valid name for the CLUSTER resource is {CLUSTER_NAME}"));
    }
    match acl.principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
        _ => return Err(format!("Could not parse principal from `{}` (no colon is found)", acl.principal)),
    }
    if acl.host.is_empty() {
        return Err("Invalid empty host".into());
    }
    Ok(())
}

/// How a filter matches resource patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternFilter {
    /// Any pattern type; the name, if given, equal.
    Any,
    /// The patterns that would apply to the filter's (literal) resource name.
    Match,
    /// Exactly this pattern type; the name, if given, equal.
    Exactly(PatternType),
}

/// Kafka's `AclBindingFilter`: `None` fields match anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// Matches every ACL.
    pub fn any() -> AclFilter {
        AclFilter { resource_type: None, resource_name: None, pattern: PatternFilter::Any, principal: None, host: None, operation: None, permission: None }
    }

    pub fn matches(&self, acl: &AclBinding) -> bool {
        let entry = self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission);
        entry && self.resource_type.is_none_or(|t| t == acl.resource_type) && self.matches_pattern(acl)
    }

    fn matches_pattern(&self, acl: &AclBinding) -> bool {
        match (self.pattern, &self.resource_name) {
            (PatternFilter::Exactly(t), _) if t != acl.pattern_type => false,
            (PatternFilter::Any | PatternFilter::Exactly(_), name) => name.as_ref().is_none_or(|n| *n == acl.resource_name),
            (PatternFilter::Match, None) => true,
            (PatternFilter::Match, Some(name)) => match acl.pattern_type {
                PatternType::Literal => acl.resource_name == *name || acl.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&acl.resource_name),
            },
        }
    }
}

/// What the ACLs say about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// No ACL names the resource at all: `allow.everyone.if.no.acl.found` decides.
    NoAcls,
}

/// The access control entry of an ACL (Kafka's `AccessControlEntry`): who, from where, what,
/// allowed or denied; kept under its resource pattern.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AccessControlEntry {
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AccessControlEntry {
    /// ALLOW or DENY if this entry applies to the request, `None` if it does not.
    fn verdict(&self, principal: &str, host: &str, operation: Operation) -> Option<Permission> {
        if self.principal != principal && self.principal != WILDCARD_PRINCIPAL {
            return None;
        }
        if self.host != WILDCARD && self.host != host {
            return None;
        }
        let applies = match self.permission {
            Permission::Allow => self.operation.allows(operation),
            Permission::Deny => self.operation == Operation::All || self.operation == operation,
        };
        applies.then_some(self.permission)
    }
}

type Patterns = BTreeMap<(ResourceType, String), BTreeSet<AccessControlEntry>>;

/// Every ACL of the cluster, indexed by resource pattern: deciding a request looks up the
/// resource's literal name, each of its prefixes and the wildcard, never scans the whole set.
/// Shared by `Arc` between images (metadata changes that are not ACLs do not copy it); stored
/// in snapshots as a plain list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<AclBinding>", into = "Vec<AclBinding>")]
pub struct Acls {
    index: Arc<Index>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Index {
    literal: Patterns,
    prefixed: Patterns,
    count: usize,
}

impl Index {
    fn patterns(&mut self, t: PatternType) -> &mut Patterns {
        match t {
            PatternType::Literal => &mut self.literal,
            PatternType::Prefixed => &mut self.prefixed,
        }
    }
}

fn split(acl: &AclBinding) -> ((ResourceType, String), AccessControlEntry) {
    let entry = AccessControlEntry { principal: acl.principal.clone(), host: acl.host.clone(), operation: acl.operation, permission: acl.permission };
    ((acl.resource_type, acl.resource_name.clone()), entry)
}

impl Acls {
    pub fn len(&self) -> usize {
        self.index.count
    }

    pub fn is_empty(&self) -> bool {
        self.index.count == 0
    }

    /// Adds an ACL; adding one that exists changes nothing (as Kafka).
    pub fn insert(&mut self, acl: &AclBinding) {
        let (pattern, entry) = split(acl);
        let index = Arc::make_mut(&mut self.index);
        if index.patterns(acl.pattern_type).entry(pattern).or_default().insert(entry) {
            index.count += 1;
        }
    }

    pub fn remove(&mut self, acl: &AclBinding) {
        let (pattern, entry) = split(acl);
        let index = Arc::make_mut(&mut self.index);
        let patterns = index.patterns(acl.pattern_type);
        let Some(entries) = patterns.get_mut(&pattern) else { return };
        let removed = entries.remove(&entry);
        if entries.is_empty() {
            patterns.remove(&pattern);
        }
        if removed {
            index.count -= 1;
        }
    }

    /// Every ACL, ordered by pattern type, resource type, resource name, then entry.
    pub fn iter(&self) -> impl Iterator<Item = AclBinding> + '_ {
        let all = [(PatternType::Literal, &self.index.literal), (PatternType::Prefixed, &self.index.prefixed)];
        all.into_iter().flat_map(|(pattern_type, patterns)| {
            patterns.iter().flat_map(move |((resource_type, resource_name), entries)| {
                entries.iter().map(move |e| AclBinding {
                    resource_type: *resource_type,
                    resource_name: resource_name.clone(),
                    pattern_type,
                    principal: e.principal.clone(),
                    host: e.host.clone(),
                    operation: e.operation,
                    permission: e.permission,
                })
            })
        })
    }

    pub fn matching<'a>(&'a self, filter: &'a AclFilter) -> impl Iterator<Item = AclBinding> + 'a {
        self.iter().filter(move |a| filter.matches(a))
    }

    /// What the ACLs decide for `principal` (`User:<name>`) at `host` doing `operation` on the
    /// resource `(resource_type, name)`.
    pub fn decide(&self, principal: &str, host: &str, operation: Operation, resource_type: ResourceType, name: &str) -> Decision {
        let mut named = false;
        let mut allowed = false;
        let literal = [name, WILDCARD].into_iter().filter_map(|n| self.index.literal.get(&(resource_type, n.to_string())));
        // Every prefix of the name (the name itself included) that has PREFIXED ACLs.
        let prefixed = name
            .char_indices()
            .map(|(i, c)| &name[..i + c.len_utf8()])
            .filter_map(|p| self.index.prefixed.get(&(resource_type, p.to_string())));
        for entries in literal.chain(prefixed) {
            named |= !entries.is_empty();
            for e in entries {
                match e.verdict(principal, host, operation) {
                    Some(Permission::Deny) => return Decision::Deny,
                    Some(Permission::Allow) => allowed = true,
                    None => {}
                }
            }
        }
        match (allowed, named) {
            (true, _) => Decision::Allow,
            (false, true) => Decision::Deny,
            (false, false) => Decision::NoAcls,
        }
    }

    /// Whether `principal` at `host` may do `operation` on at least one resource of the type
    /// (Kafka's `Authorizer.authorizeByResourceType`, which InitProducerId uses for
    /// idempotent producers: WRITE on any topic): an ALLOW that no DENY covers.
    pub fn allows_some(&self, principal: &str, host: &str, operation: Operation, resource_type: ResourceType) -> bool {
        let applies = |e: &AccessControlEntry| {
            (e.principal == principal || e.principal == WILDCARD_PRINCIPAL)
                && (e.host == WILDCARD || e.host == host)
                && (e.operation == operation || e.operation == Operation::All)
        };
        let of_type = |patterns: &'_ Patterns, permission: Permission| -> BTreeSet<String> {
            patterns
                .iter()
                .filter(|((t, _), entries)| *t == resource_type && entries.iter().any(|e| e.permission == permission && applies(e)))
                .map(|((_, n), _)| n.clone())
                .collect()
        };
        let deny_literal = of_type(&self.index.literal, Permission::Deny);
        if deny_literal.contains(WILDCARD) {
            return false;
        }
        let deny_prefixed = of_type(&self.index.prefixed, Permission::Deny);
        let allow_literal = of_type(&self.index.literal, Permission::Allow);
        if allow_literal.contains(WILDCARD) {
            return true;
        }
        let denied_by_prefix = |n: &str| deny_prefixed.iter().any(|p| n.starts_with(p.as_str()));
        allow_literal.iter().any(|n| !deny_literal.contains(n) && !denied_by_prefix(n))
            || of_type(&self.index.prefixed, Permission::Allow).iter().any(|n| !denied_by_prefix(n))
    }
}

impl From<Vec<AclBinding>> for Acls {
    fn from(list: Vec<AclBinding>) -> Acls {
        let mut acls = Acls::default();
        for a in &list {
            acls.insert(a);
        }
        acls
    }
}

impl From<Acls> for Vec<AclBinding> {
    fn from(acls: Acls) -> Vec<AclBinding> {
        acls.iter().collect()
    }
}

#[cfg(test)]
mod tests;
