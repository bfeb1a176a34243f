//! Authorization on the request path: handlers ask `Authz` whether the session's principal may
//! do an operation on a resource, exactly where Kafka's `KafkaApis` asks its authorizer, and
//! answer Kafka's error codes when it may not. The rules are `strom_metadata::acl`'s (pure); this
//! adds what belongs to the broker: whether an authorizer is configured at all, `super.users`,
//! `allow.everyone.if.no.acl.found`, and the ACLs of the image the request started with (one
//! snapshot per request, so a request sees one set of ACLs).
//!
//! Without `authorizer.class.name` every check allows, as Kafka without an authorizer.

use std::sync::Arc;

use strom_config::AuthorizerSettings;
use strom_metadata::acl::{Decision, Operation, ResourceType, CLUSTER_NAME};
use strom_metadata::MetadataImage;

use crate::broker::Broker;
use crate::session::Session;

/// One request's view of authorization.
pub struct Authz<'a> {
    /// `None`: no authorizer, everything is allowed.
    on: Option<(&'a AuthorizerSettings, Arc<MetadataImage>)>,
    session: &'a Session,
    host: String,
}

impl Broker {
    /// The authorization view for one request from `session`.
    pub fn authz<'a>(&'a self, session: &'a Session) -> Authz<'a> {
        let on = self.config.authorizer.as_ref().map(|s| (s, self.metadata.image()));
        Authz { on, session, host: session.peer.ip().to_string() }
    }
}

impl Authz<'_> {
    /// Whether an authorizer is configured (the ACL APIs answer SECURITY_DISABLED otherwise).
    pub fn enabled(&self) -> bool {
        self.on.is_some()
    }

    fn is_super_user(&self, settings: &AuthorizerSettings) -> bool {
        settings.super_users.iter().any(|u| **u == *self.session.principal)
    }

    /// May the principal do `operation` on the resource `(resource_type, name)`?
    pub fn allows(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        let Some((settings, image)) = &self.on else { return true };
        if self.is_super_user(settings) {
            return true;
        }
        let allowed = match image.acls.decide(&self.session.principal, &self.host, operation, resource_type, name) {
            Decision::Allow => true,
            Decision::Deny => false,
            Decision::NoAcls => settings.allow_everyone_if_no_acl_found,
        };
        if !allowed {
            // Kafka's authorizer log says the same at INFO; here at DEBUG, because a client
            // retrying a denied request would otherwise fill the log.
            tracing::debug!(principal = %self.session.principal, host = %self.host, operation = operation.name(), resource = resource_type.name(), name, "denied");
        }
        allowed
    }

    pub fn allows_topic(&self, operation: Operation, topic: &str) -> bool {
        self.allows(operation, ResourceType::Topic, topic)
    }

    pub fn allows_group(&self, operation: Operation, group: &str) -> bool {
        self.allows(operation, ResourceType::Group, group)
    }

    pub fn allows_cluster(&self, operation: Operation) -> bool {
        self.allows(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    pub fn allows_transactional_id(&self, operation: Operation, id: &str) -> bool {
        self.allows(operation, ResourceType::TransactionalId, id)
    }

    /// May the principal do `operation` on at least one resource of the type (Kafka's
    /// `authorizeByResourceType`, which first asks about a made-up literal name, so super
    /// users and `allow.everyone.if.no.acl.found` apply as for any resource)?
    pub fn allows_some(&self, operation: Operation, resource_type: ResourceType) -> bool {
        let Some((_, image)) = &self.on else { return true };
        self.allows(operation, resource_type, "hardcode") || image.acls.allows_some(&self.session.principal, &self.host, operation, resource_type)
    }

    /// The `authorized_operations` bit field of Metadata and the Describe* responses: bit `code`
    /// for each operation the resource type has that the principal may do.
    pub fn operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        Operation::supported_by(resource_type)
            .iter()
            .filter(|op| self.allows(**op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}
