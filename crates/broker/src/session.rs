//! Who is on the other end of a connection, as the handlers see it: the principal it
//! authenticated as (Kafka's `KafkaPrincipal`, written `User:<name>`), the address it came from
//! and the listener it came through. The connection builds it once (and updates the principal
//! when SASL completes); every handler gets it, so authorization and per-listener answers
//! (Metadata's endpoints) read from one place.

use std::net::SocketAddr;
use std::sync::Arc;

/// Kafka's principal for a connection that did not authenticate (PLAINTEXT, or SSL without a
/// client certificate).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

#[derive(Debug, Clone)]
pub struct Session {
    /// `User:<name>`, as Kafka's ACLs name principals.
    pub principal: Arc<str>,
    pub peer: SocketAddr,
    pub listener: Arc<str>,
}

impl Session {
    pub fn anonymous(peer: SocketAddr, listener: Arc<str>) -> Session {
        Session { principal: Arc::from(ANONYMOUS), peer, listener }
    }
}
