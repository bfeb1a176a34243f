//! SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners, as Kafka's
//! `SaslServerAuthenticator` does it: until a connection has authenticated, it may send only
//! ApiVersions, SaslHandshake (naming a mechanism) and then its token, in SaslAuthenticate
//! (handshake v1) or as a bare size-prefixed frame (handshake v0). Anything else closes it. A
//! failed authentication is answered SASL_AUTHENTICATION_FAILED and the connection closed.
//!
//! The pure part lives here (the per-connection state, the mechanisms); `connection.rs` runs it
//! before any handler sees a request, so no handler can be reached unauthenticated.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;
use strom_config::{SaslMechanism, SaslSettings};

/// A connection's progress through authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// No SaslHandshake accepted yet.
    Handshake,
    /// A mechanism was accepted; its token comes next, framed as the handshake version says.
    Token { mechanism: SaslMechanism, raw: bool },
    /// `User:<name>`.
    Authenticated { principal: String },
}

/// What the connection does with a request that arrives before authentication completed.
pub enum Verdict {
    /// Serve it as usual (ApiVersions).
    Dispatch,
    /// Answer with this, and go on.
    Reply(ResponseKind),
    /// Answer with this, then close (authentication failed).
    ReplyAndClose(ResponseKind),
    /// Close without an answer: not a request allowed before authentication.
    Close(&'static str),
}

/// Kafka's message for any failed PLAIN login: it never says which of name or password was wrong.
const INVALID: &str = "Authentication failed: Invalid username or password";

pub struct Authenticator {
    settings: SaslSettings,
}

impl Authenticator {
    pub fn new(settings: SaslSettings) -> Authenticator {
        Authenticator { settings }
    }

    fn mechanism_names(&self) -> Vec<StrBytes> {
        self.settings.mechanisms.iter().map(|m| StrBytes::from_static_str(m.name())).collect()
    }

    /// The step for `request` (of `api_key`, `version`) in state `gate`, which it may advance.
    pub fn before_auth(&self, gate: &mut Gate, api_key: ApiKey, version: i16, request: &RequestKind) -> Verdict {
        match (&*gate, request) {
            (_, RequestKind::ApiVersions(_)) => Verdict::Dispatch,
            (Gate::Handshake, RequestKind::SaslHandshake(r)) => {
                let response = SaslHandshakeResponse::default().with_mechanisms(self.mechanism_names());
                match self.settings.mechanisms.iter().find(|m| m.name() == r.mechanism.as_str()) {
                    Some(m) => {
                        *gate = Gate::Token { mechanism: *m, raw: version == 0 };
                        Verdict::Reply(ResponseKind::SaslHandshake(response))
                    }
                    // The client may pick another of the listed mechanisms.
                    None => Verdict::Reply(ResponseKind::SaslHandshake(response.with_error_code(ResponseError::UnsupportedSaslMechanism.code()))),
                }
            }
            (Gate::Token { mechanism, raw: false }, RequestKind::SaslAuthenticate(r)) => match self.authenticate(*mechanism, &r.auth_bytes) {
                Ok(principal) => {
                    *gate = Gate::Authenticated { principal };
                    Verdict::Reply(ResponseKind::SaslAuthenticate(SaslAuthenticateResponse::default()))
                }
                Err(message) => Verdict::ReplyAndClose(ResponseKind::SaslAuthenticate(
                    SaslAuthenticateResponse::default()
                        .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                        .with_error_message(Some(StrBytes::from_static_str(message))),
                )),
            },
            _ => {
                let _ = api_key;
                Verdict::Close("request not allowed before SASL authentication completes")
            }
        }
    }

    /// A token that came as a bare frame after a SaslHandshake v0: `Ok` with the (empty)
    /// server token to send back, or `Err` to close.
    pub fn raw_token(&self, gate: &mut Gate, token: &[u8]) -> Result<Vec<u8>, &'static str> {
        let Gate::Token { mechanism, raw: true } = gate else {
            return Err("a bare SASL token outside a v0 handshake");
        };
        let principal = self.authenticate(*mechanism, token)?;
        *gate = Gate::Authenticated { principal };
        Ok(Vec::new())
    }

    /// One complete SASL exchange (PLAIN needs one message): the principal, or Kafka's message.
    fn authenticate(&self, mechanism: SaslMechanism, token: &[u8]) -> Result<String, &'static str> {
        match mechanism {
            SaslMechanism::Plain => self.plain(token),
        }
    }

    /// RFC 4616: `[authzid] NUL authcid NUL passwd`, checked as Kafka's `PlainSaslServer`.
    fn plain(&self, token: &[u8]) -> Result<String, &'static str> {
        let mut parts = token.split(|b| *b == 0);
        let (Some(authzid), Some(user), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err("Authentication failed: Invalid SASL/PLAIN response: expected 3 tokens");
        };
        let (Ok(authzid), Ok(user)) = (std::str::from_utf8(authzid), std::str::from_utf8(user)) else {
            return Err(INVALID);
        };
        if user.is_empty() {
            return Err("Authentication failed: username not specified");
        }
        if password.is_empty() {
            return Err("Authentication failed: password not specified");
        }
        if !authzid.is_empty() && authzid != user {
            return Err("Authentication failed: Client requested an authorization id that is different from username");
        }
        match self.settings.plain_users.get(user) {
            Some(expected) if constant_time_eq(expected.0.as_bytes(), password) => Ok(format!("User:{user}")),
            // An unknown user costs the same comparison as a wrong password.
            Some(_) => Err(INVALID),
            None => {
                let _ = constant_time_eq(password, password);
                Err(INVALID)
            }
        }
    }
}

/// Failed logins since the last one logged, and when that was (ms): a client retrying a bad
/// password in a loop must not flood the log, and the operator must still see that it happens.
static FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static LAST_LOGGED_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(i64::MIN);
const FAILURE_LOG_EVERY_MS: i64 = 10_000;

/// Logs a failed authentication (SASL, or a client certificate no principal rule maps) at most
/// once per 10 s, with how many failed meanwhile. The line names the peer and the listener,
/// never the credentials.
pub fn report_failure(peer: std::net::SocketAddr, listener: &str, now_ms: i64) {
    use std::sync::atomic::Ordering::Relaxed;
    let failures = FAILURES.fetch_add(1, Relaxed) + 1;
    let last = LAST_LOGGED_MS.load(Relaxed);
    if now_ms.saturating_sub(last) >= FAILURE_LOG_EVERY_MS && LAST_LOGGED_MS.compare_exchange(last, now_ms, Relaxed, Relaxed).is_ok() {
        FAILURES.fetch_sub(failures, Relaxed);
        tracing::warn!(%peer, listener, failed_since_last_report = failures, "authentication failed");
    }
}

/// Equality whose time depends on the lengths only, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest};
    use strom_config::Secret;

    fn auth() -> Authenticator {
        let users = [("alice".to_string(), Secret("s3cret".into()))].into_iter().collect();
        Authenticator::new(SaslSettings { mechanisms: vec![SaslMechanism::Plain], plain_users: users })
    }

    fn handshake(m: &str) -> RequestKind {
        RequestKind::SaslHandshake(SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(m.into())))
    }

    fn token(t: &[u8]) -> RequestKind {
        RequestKind::SaslAuthenticate(SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::copy_from_slice(t)))
    }

    fn error(v: &Verdict) -> Option<i16> {
        match v {
            Verdict::Reply(ResponseKind::SaslHandshake(r)) => Some(r.error_code),
            Verdict::Reply(ResponseKind::SaslAuthenticate(r)) | Verdict::ReplyAndClose(ResponseKind::SaslAuthenticate(r)) => Some(r.error_code),
            _ => None,
        }
    }

    #[test]
    fn plain_login_as_kafka() {
        let a = auth();
        let mut gate = Gate::Handshake;
        assert!(matches!(a.before_auth(&mut gate, ApiKey::ApiVersions, 3, &RequestKind::ApiVersions(ApiVersionsRequest::default())), Verdict::Dispatch));
        assert!(matches!(a.before_auth(&mut gate, ApiKey::Metadata, 12, &RequestKind::Metadata(MetadataRequest::default())), Verdict::Close(_)));
        assert_eq!(error(&a.before_auth(&mut gate, ApiKey::SaslHandshake, 1, &handshake("SCRAM-SHA-256"))), Some(33));
        assert_eq!(gate, Gate::Handshake);
        assert_eq!(error(&a.before_auth(&mut gate, ApiKey::SaslHandshake, 1, &handshake("PLAIN"))), Some(0));
        assert_eq!(error(&a.before_auth(&mut gate, ApiKey::SaslAuthenticate, 2, &token(b"\0alice\0s3cret"))), Some(0));
        assert_eq!(gate, Gate::Authenticated { principal: "User:alice".into() });
    }

    #[test]
    fn bad_plain_tokens_fail_and_close() {
        let a = auth();
        for t in [&b"\0alice\0wrong"[..], b"\0bob\0s3cret", b"\0alice\0", b"\0\0s3cret", b"mallory\0alice\0s3cret", b"alice\0s3cret", b"\0alice\0s3cret\0", b"", b"\0\xff\0x"] {
            let mut gate = Gate::Token { mechanism: SaslMechanism::Plain, raw: false };
            let v = a.before_auth(&mut gate, ApiKey::SaslAuthenticate, 1, &token(t));
            assert!(matches!(v, Verdict::ReplyAndClose(_)), "{t:?}");
            assert_eq!(error(&v), Some(58));
            assert!(matches!(gate, Gate::Token { .. }));
        }
        // v0's bare token.
        let mut gate = Gate::Token { mechanism: SaslMechanism::Plain, raw: true };
        assert!(a.raw_token(&mut gate, b"\0alice\0nope").is_err());
        assert_eq!(a.raw_token(&mut gate, b"alice\0alice\0s3cret"), Ok(Vec::new()));
        assert!(constant_time_eq(b"ab", b"ab") && !constant_time_eq(b"ab", b"abc") && !constant_time_eq(b"ab", b"ac"));
    }
}
