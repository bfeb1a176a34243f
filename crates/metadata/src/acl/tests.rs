//! The ACL rules against a naive model: the index must decide exactly what a scan of every ACL
//! with Kafka's rules written out plainly decides.

use proptest::prelude::*;

use super::*;

fn acl(t: ResourceType, name: &str, p: PatternType, principal: &str, host: &str, op: Operation, perm: Permission) -> AclBinding {
    AclBinding { resource_type: t, resource_name: name.into(), pattern_type: p, principal: principal.into(), host: host.into(), operation: op, permission: perm }
}

fn topic_acl(name: &str, p: PatternType, principal: &str, op: Operation, perm: Permission) -> AclBinding {
    acl(ResourceType::Topic, name, p, principal, "*", op, perm)
}

/// Kafka's rules, one ACL at a time, without an index.
fn model(list: &[AclBinding], principal: &str, host: &str, op: Operation, t: ResourceType, name: &str) -> Decision {
    let on_resource: Vec<&AclBinding> = list
        .iter()
        .filter(|a| a.resource_type == t)
        .filter(|a| match a.pattern_type {
            PatternType::Literal => a.resource_name == name || a.resource_name == "*",
            PatternType::Prefixed => name.starts_with(&a.resource_name),
        })
        .collect();
    let applies = |a: &&&AclBinding| {
        (a.principal == principal || a.principal == "User:*")
            && (a.host == "*" || a.host == host)
            && match a.permission {
                Permission::Deny => a.operation == op || a.operation == Operation::All,
                Permission::Allow => {
                    a.operation == op
                        || a.operation == Operation::All
                        || (op == Operation::Describe && [Operation::Read, Operation::Write, Operation::Delete, Operation::Alter].contains(&a.operation))
                        || (op == Operation::DescribeConfigs && a.operation == Operation::AlterConfigs)
                }
            }
    };
    if on_resource.iter().filter(applies).any(|a| a.permission == Permission::Deny) {
        Decision::Deny
    } else if on_resource.iter().filter(applies).any(|a| a.permission == Permission::Allow) {
        Decision::Allow
    } else if on_resource.is_empty() {
        Decision::NoAcls
    } else {
        Decision::Deny
    }
}

#[test]
fn kafka_semantics() {
    use Operation::*;
    use PatternType::*;
    use Permission::*;
    let mut acls = Acls::default();
    acls.insert(&topic_acl("orders", Literal, "User:alice", Read, Allow));
    acls.insert(&topic_acl("pay.", Prefixed, "User:bob", Write, Allow));
    acls.insert(&topic_acl("pay.secret", Literal, "User:bob", Write, Deny));
    acls.insert(&topic_acl("*", Literal, "User:*", Describe, Allow));
    acls.insert(&acl(ResourceType::Group, "g", Literal, "User:carol", "10.0.0.1", All, Allow));
    let d = |p: &str, h: &str, op, t, n: &str| acls.decide(p, h, op, t, n);
    assert_eq!(d("User:alice", "1.2.3.4", Read, ResourceType::Topic, "orders"), Decision::Allow);
    assert_eq!(d("User:alice", "1.2.3.4", Write, ResourceType::Topic, "orders"), Decision::Deny);
    // READ implies DESCRIBE; the wildcard gives DESCRIBE to everyone anyway.
    assert_eq!(d("User:mallory", "1.2.3.4", Describe, ResourceType::Topic, "orders"), Decision::Allow);
    assert_eq!(d("User:bob", "h", Write, ResourceType::Topic, "pay.in"), Decision::Allow);
    assert_eq!(d("User:bob", "h", Write, ResourceType::Topic, "pay."), Decision::Allow);
    assert_eq!(d("User:bob", "h", Write, ResourceType::Topic, "pay"), Decision::Deny, "the wildcard names every topic");
    // DENY wins over the prefixed ALLOW; a DENY of WRITE does not deny DESCRIBE.
    assert_eq!(d("User:bob", "h", Write, ResourceType::Topic, "pay.secret"), Decision::Deny);
    assert_eq!(d("User:bob", "h", Describe, ResourceType::Topic, "pay.secret"), Decision::Allow);
    // Hosts.
    assert_eq!(d("User:carol", "10.0.0.1", Read, ResourceType::Group, "g"), Decision::Allow);
    assert_eq!(d("User:carol", "10.0.0.2", Read, ResourceType::Group, "g"), Decision::Deny);
    // No ACL names the group at all.
    assert_eq!(d("User:carol", "10.0.0.1", Read, ResourceType::Group, "other"), Decision::NoAcls);
    assert_eq!(d("User:x", "h", Alter, ResourceType::Cluster, CLUSTER_NAME), Decision::NoAcls);
    // ALTER_CONFIGS implies DESCRIBE_CONFIGS, not the other way round.
    acls.insert(&acl(ResourceType::Cluster, CLUSTER_NAME, Literal, "User:ops", "*", AlterConfigs, Allow));
    assert_eq!(acls.decide("User:ops", "h", DescribeConfigs, ResourceType::Cluster, CLUSTER_NAME), Decision::Allow);
    assert_eq!(acls.decide("User:ops", "h", Alter, ResourceType::Cluster, CLUSTER_NAME), Decision::Deny);
    assert_eq!(acls.len(), 6);
    acls.insert(&topic_acl("orders", Literal, "User:alice", Read, Allow));
    assert_eq!(acls.len(), 6, "adding an existing ACL changes nothing");
}

#[test]
fn filters_as_kafka() {
    use PatternType::*;
    let list = [
        topic_acl("orders", Literal, "User:a", Operation::Read, Permission::Allow),
        topic_acl("ord", Prefixed, "User:a", Operation::Read, Permission::Allow),
        topic_acl("*", Literal, "User:b", Operation::Write, Permission::Deny),
        topic_acl("x", Prefixed, "User:b", Operation::Write, Permission::Deny),
    ];
    let acls = Acls::from(list.to_vec());
    let count = |f: &AclFilter| acls.matching(f).count();
    assert_eq!(count(&AclFilter::any()), 4);
    let by_name = |name: &str, pattern| AclFilter { resource_name: Some(name.into()), pattern, ..AclFilter::any() };
    assert_eq!(count(&by_name("orders", PatternFilter::Match)), 3, "literal, prefix and wildcard apply to `orders`");
    assert_eq!(count(&by_name("orders", PatternFilter::Any)), 1);
    assert_eq!(count(&by_name("ord", PatternFilter::Exactly(Prefixed))), 1);
    assert_eq!(count(&by_name("ord", PatternFilter::Exactly(Literal))), 0);
    assert_eq!(count(&AclFilter { permission: Some(Permission::Deny), ..AclFilter::any() }), 2);
    assert_eq!(count(&AclFilter { principal: Some("User:a".into()), operation: Some(Operation::Read), ..AclFilter::any() }), 2);
    // A snapshot round trip keeps every ACL.
    let json = serde_json::to_string(&acls).expect("serializes");
    let back: Acls = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, acls);
}

#[test]
fn allows_some_as_kafka_authorize_by_resource_type() {
    use PatternType::*;
    let w = |name: &str, p, perm| topic_acl(name, p, "User:a", Operation::Write, perm);
    let some = |list: Vec<AclBinding>| Acls::from(list).allows_some("User:a", "h", Operation::Write, ResourceType::Topic);
    assert!(!some(vec![]));
    assert!(some(vec![w("t", Literal, Permission::Allow)]));
    assert!(!some(vec![w("t", Literal, Permission::Allow), w("t", Literal, Permission::Deny)]));
    assert!(!some(vec![w("t1", Literal, Permission::Allow), w("t", Prefixed, Permission::Deny)]));
    assert!(some(vec![w("t1", Literal, Permission::Allow), w("t2", Prefixed, Permission::Deny)]));
    assert!(!some(vec![w("*", Literal, Permission::Allow), w("*", Literal, Permission::Deny)]));
    assert!(some(vec![w("*", Literal, Permission::Allow), w("x", Prefixed, Permission::Deny)]));
    assert!(!some(vec![topic_acl("t", Literal, "User:a", Operation::Read, Permission::Allow)]));
}

fn arb_acl() -> impl Strategy<Value = AclBinding> {
    let names = prop::sample::select(vec!["*", "a", "ab", "abc", "b", "ba"]);
    let principals = prop::sample::select(vec!["User:*", "User:u", "User:v"]);
    let hosts = prop::sample::select(vec!["*", "h1", "h2"]);
    (
        prop::sample::select(vec![ResourceType::Topic, ResourceType::Group]),
        names,
        prop::sample::select(PatternType::ALL.to_vec()),
        principals,
        hosts,
        prop::sample::select(Operation::ALL.to_vec()),
        prop::sample::select(Permission::ALL.to_vec()),
    )
        .prop_map(|(t, n, p, pr, h, o, pe)| acl(t, n, p, pr, h, o, pe))
}

proptest! {
    #[test]
    fn index_decides_as_the_model(
        list in prop::collection::vec(arb_acl(), 0..24),
        removed in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        principal in prop::sample::select(vec!["User:u", "User:v", "User:w"]),
        host in prop::sample::select(vec!["h1", "h2"]),
        op in prop::sample::select(Operation::ALL.to_vec()),
        t in prop::sample::select(vec![ResourceType::Topic, ResourceType::Group]),
        name in prop::sample::select(vec!["a", "ab", "abc", "b", "ba", "c"]),
    ) {
        let mut acls = Acls::default();
        let mut kept: Vec<AclBinding> = Vec::new();
        for a in &list {
            acls.insert(a);
            if !kept.contains(a) {
                kept.push(a.clone());
            }
        }
        for i in removed {
            if kept.is_empty() {
                break;
            }
            let a = kept.remove(i.index(kept.len()));
            acls.remove(&a);
        }
        prop_assert_eq!(acls.len(), kept.len());
        prop_assert_eq!(acls.decide(principal, host, op, t, name), model(&kept, principal, host, op, t, name));
        let mut listed: Vec<AclBinding> = acls.iter().collect();
        listed.sort();
        kept.sort();
        prop_assert_eq!(listed, kept);
    }
}
