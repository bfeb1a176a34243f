//! SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners, as Kafka's
//! `SaslServerAuthenticator` does it: until a connection has authenticated, it may send only
//! ApiVersions, SaslHandshake (naming a mechanism) and then its tokens, in SaslAuthenticate
//! (handshake v1) or as bare size-prefixed frames (handshake v0). Anything else closes it. A
//! failed authentication is answered SASL_AUTHENTICATION_FAILED and the connection closed.
//! PLAIN takes one token; SCRAM (`scram.rs`) two, with a challenge between them; OAUTHBEARER
//! (`oauth.rs`) one, or, for an invalid token, an error challenge the client acknowledges before
//! the exchange fails. A connection runs one exchange: there is no way back to the handshake.
//!
//! The pure part lives here (the per-connection state, the mechanisms); `connection.rs` runs it
//! before any handler sees a request, so no handler can be reached unauthenticated.

pub mod client;
pub mod jwks;
pub mod oauth;
pub mod scram;

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;
use ring::rand::{SecureRandom, SystemRandom};
use strom_config::{SaslMechanism, SaslSettings};
use strom_metadata::scram::{ScramCredential, ScramMechanism};

use self::scram::{ScramServer, ServerContext, Step};

/// A connection's progress through authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// No SaslHandshake accepted yet.
    Handshake,
    /// A mechanism was accepted; its (first) token comes next, framed as the handshake version says.
    Token { mechanism: SaslMechanism, raw: bool },
    /// A SCRAM exchange answered the client-first message; the client-final comes next.
    Scram { exchange: Box<ScramServer>, raw: bool },
    /// OAUTHBEARER refused the token with RFC 7628's error challenge; the client's %x01 comes
    /// next, and then the exchange fails with `message`.
    OAuthRefused { message: String, raw: bool },
    /// `User:<name>`.
    /// `expires_ms`: when the credential the session was proven with expires (an OAUTHBEARER
    /// token's `exp`), if it does.
    Authenticated { principal: String, expires_ms: Option<i64> },
}

impl Gate {
    /// Whether the next token of the exchange comes as a bare frame (SaslHandshake v0).
    pub fn expects_raw_token(&self) -> bool {
        matches!(self, Gate::Token { raw: true, .. } | Gate::Scram { raw: true, .. } | Gate::OAuthRefused { raw: true, .. })
    }
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

/// A user's SCRAM credential for a mechanism, as the metadata image holds it now.
pub type CredentialLookup = Arc<dyn Fn(&str, ScramMechanism) -> Option<ScramCredential> + Send + Sync>;

pub struct Authenticator {
    settings: SaslSettings,
    credentials: CredentialLookup,
    /// OAUTHBEARER's token validation, when the listener offers it.
    oauth: Option<Arc<oauth::OAuthValidator>>,
    rng: SystemRandom,
    /// Per process: derives the stable fake salts shown for unknown SCRAM users.
    secret: [u8; 32],
}

fn scram_mechanism(m: SaslMechanism) -> Option<ScramMechanism> {
    match m {
        SaslMechanism::Plain | SaslMechanism::OAuthBearer => None,
        SaslMechanism::ScramSha256 => Some(ScramMechanism::Sha256),
        SaslMechanism::ScramSha512 => Some(ScramMechanism::Sha512),
    }
}

impl Authenticator {
    pub fn new(settings: SaslSettings, credentials: CredentialLookup, oauth: Option<Arc<oauth::OAuthValidator>>) -> Authenticator {
        let rng = SystemRandom::new();
        let mut secret = [0u8; 32];
        // Without the OS's randomness the fake salts are merely predictable, which reveals which
        // users exist, nothing more; nonces are drawn per exchange and fail the login if absent.
        if rng.fill(&mut secret).is_err() {
            tracing::warn!("no randomness for the SCRAM secret: unknown users' salts are predictable");
        }
        Authenticator { settings, credentials, oauth, rng, secret }
    }

    /// `connections.max.reauth.ms` of this listener (0: sessions last as long as connections).
    pub fn reauth_ms(&self) -> u64 {
        self.settings.reauth_ms
    }

    /// How long the session just authenticated in `gate` lasts, in ms (0: as long as its
    /// connection). KIP-368, as Kafka: with `connections.max.reauth.ms` set, the shorter of it
    /// and the time left on the credential (an OAUTHBEARER token's expiry); without it, sessions
    /// are not cut short.
    pub fn session_lifetime_ms(&self, gate: &Gate, now_ms: i64) -> u64 {
        let reauth = self.settings.reauth_ms;
        match gate {
            Gate::Authenticated { expires_ms: Some(exp), .. } if reauth > 0 => reauth.min(u64::try_from(exp.saturating_sub(now_ms)).unwrap_or(0).max(1)),
            _ => reauth,
        }
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
            (Gate::Token { raw: false, .. } | Gate::Scram { raw: false, .. } | Gate::OAuthRefused { raw: false, .. }, RequestKind::SaslAuthenticate(r)) => match self.exchange(gate, &r.auth_bytes) {
                Ok(server_token) => {
                    let mut response = SaslAuthenticateResponse::default().with_auth_bytes(server_token.into());
                    // KIP-368: the client learns how long the session lasts (v1+).
                    let lifetime = self.session_lifetime_ms(gate, crate::clock::now_ms());
                    if matches!(gate, Gate::Authenticated { .. }) && lifetime > 0 {
                        response = response.with_session_lifetime_ms(i64::try_from(lifetime).unwrap_or(i64::MAX));
                    }
                    Verdict::Reply(ResponseKind::SaslAuthenticate(response))
                }
                Err(message) => Verdict::ReplyAndClose(ResponseKind::SaslAuthenticate(
                    SaslAuthenticateResponse::default()
                        .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                        .with_error_message(Some(StrBytes::from_string(message))),
                )),
            },
            _ => {
                let _ = api_key;
                Verdict::Close("request not allowed before SASL authentication completes")
            }
        }
    }

    /// A token that came as a bare frame after a SaslHandshake v0: `Ok` with the server token to
    /// send back (a SCRAM challenge, or the final message; empty for PLAIN), or `Err` to close.
    pub fn raw_token(&self, gate: &mut Gate, token: &[u8]) -> Result<Vec<u8>, String> {
        if !gate.expects_raw_token() {
            return Err("a bare SASL token outside a v0 handshake".into());
        }
        self.exchange(gate, token)
    }

    /// One client token of the exchange in progress: the server's token, the gate advanced (to
    /// `Authenticated` once the exchange is complete), or Kafka's message for the failure.
    fn exchange(&self, gate: &mut Gate, token: &[u8]) -> Result<Vec<u8>, String> {
        let (mut exchange, raw) = match std::mem::replace(gate, Gate::Handshake) {
            Gate::Token { mechanism: SaslMechanism::OAuthBearer, raw } => return self.oauth_token(gate, token, raw),
            // The client's %x01 after the error challenge (anything else fails the same way).
            Gate::OAuthRefused { message, .. } => return Err(message),
            Gate::Token { mechanism, raw } => match scram_mechanism(mechanism) {
                None => {
                    // PLAIN: one token settles it. A failure leaves the gate as it was.
                    *gate = Gate::Token { mechanism, raw };
                    let principal = self.plain(token).map_err(str::to_string)?;
                    *gate = Gate::Authenticated { principal, expires_ms: None };
                    return Ok(Vec::new());
                }
                Some(m) => (Box::new(ScramServer::new(m)), raw),
            },
            Gate::Scram { exchange, raw } => (exchange, raw),
            other => {
                *gate = other;
                return Err("no SASL exchange in progress".into());
            }
        };
        let lookup = |user: &str, m: ScramMechanism| (self.credentials)(user, m);
        let nonce = || scram::random_nonce(&self.rng);
        let ctx = ServerContext { lookup: &lookup, nonce: &nonce, secret: &self.secret };
        let mechanism = exchange.mechanism();
        // A failed step leaves the gate at `Handshake`: the connection closes anyway, and no
        // state of a failed exchange survives it.
        match exchange.step(token, &ctx).map_err(|e| e.message(mechanism))? {
            Step::Continue(challenge) => {
                *gate = Gate::Scram { exchange, raw };
                Ok(challenge)
            }
            Step::Done { principal, server_final } => {
                *gate = Gate::Authenticated { principal, expires_ms: None };
                Ok(server_final)
            }
        }
    }

    /// OAUTHBEARER's one client message. A malformed message fails at once; a token that does
    /// not validate gets the error challenge (the gate then waits for the client's %x01).
    fn oauth_token(&self, gate: &mut Gate, message: &[u8], raw: bool) -> Result<Vec<u8>, String> {
        let (authzid, token) = oauth::parse_initial_response(message)?;
        let Some(validator) = &self.oauth else { return Err("OAUTHBEARER is not configured".into()) };
        match validator.validate(&token, crate::clock::now_ms()) {
            Ok(v) => {
                if !authzid.is_empty() && format!("User:{authzid}") != v.principal {
                    return Err(format!(
                        "Authentication failed: Client requested an authorization id ({authzid}) that is different from the token's principal name ({})",
                        v.principal.trim_start_matches("User:")
                    ));
                }
                *gate = Gate::Authenticated { principal: v.principal, expires_ms: Some(v.expires_ms) };
                Ok(Vec::new())
            }
            Err(why) => {
                tracing::debug!(why, "OAUTHBEARER token refused");
                *gate = Gate::OAuthRefused { message: format!("Authentication failed: {why}"), raw };
                Ok(br#"{"status":"invalid_token"}"#.to_vec())
            }
        }
    }

    /// PLAIN's one token, against this listener's users.
    fn plain(&self, token: &[u8]) -> Result<String, &'static str> {
        check_plain(&self.settings.plain_users, token)
    }
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`, checked as Kafka's `PlainSaslServer` against
/// `users` (the listener's `user_<name>` entries); the principal, or Kafka's message.
pub(crate) fn check_plain(users: &std::collections::BTreeMap<String, strom_config::Secret>, token: &[u8]) -> Result<String, &'static str> {
    {
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
        match users.get(user) {
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

/// Whether `user` with `password` would log in over SASL on some listener of this broker: a
/// PLAIN user of a listener's JAAS config, or a SCRAM credential of the image (either hash).
/// The web console's login, so that it knows no user SASL does not.
pub fn password_login(config: &strom_config::BrokerConfig, image: &strom_metadata::MetadataImage, user: &str, password: &str) -> bool {
    let plain = config.listeners.iter().filter_map(|l| l.sasl.as_ref()).filter(|s| s.mechanisms.contains(&SaslMechanism::Plain)).any(|s| {
        s.plain_users.get(user).is_some_and(|expected| constant_time_eq(expected.0.as_bytes(), password.as_bytes()))
    });
    if plain {
        return true;
    }
    [ScramMechanism::Sha256, ScramMechanism::Sha512].into_iter().any(|m| {
        image.scram.get(user, m).is_some_and(|c| {
            let salted = scram::salted_password(m, password.as_bytes(), &c.salt, c.iterations.max(1) as u32);
            constant_time_eq(&scram::credential(m, &salted, &c.salt, c.iterations).stored_key, &c.stored_key)
        })
    })
}

/// Equality whose time depends on the lengths only, not on where the bytes differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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
        Authenticator::new(SaslSettings { mechanisms: vec![SaslMechanism::Plain], plain_users: users, reauth_ms: 0, oauth: None }, Arc::new(|_: &str, _: ScramMechanism| None), None)
    }

    #[test]
    fn a_session_ends_with_its_token_when_reauthentication_is_on() {
        let with_reauth = |ms: u64| {
            Authenticator::new(SaslSettings { mechanisms: vec![SaslMechanism::Plain], plain_users: Default::default(), reauth_ms: ms, oauth: None }, Arc::new(|_: &str, _: ScramMechanism| None), None)
        };
        let token = |exp: Option<i64>| Gate::Authenticated { principal: "User:a".into(), expires_ms: exp };
        let now = 1_000_000;
        // KIP-368: the shorter of connections.max.reauth.ms and the token's time left.
        assert_eq!(with_reauth(60_000).session_lifetime_ms(&token(Some(now + 5_000)), now), 5_000);
        assert_eq!(with_reauth(60_000).session_lifetime_ms(&token(Some(now + 600_000)), now), 60_000);
        assert_eq!(with_reauth(60_000).session_lifetime_ms(&token(None), now), 60_000);
        // A token at its expiry (accepted within the clock skew) still ends the session at once.
        assert_eq!(with_reauth(60_000).session_lifetime_ms(&token(Some(now - 10)), now), 1);
        // Without re-authentication sessions are not cut short, as Kafka.
        assert_eq!(with_reauth(0).session_lifetime_ms(&token(Some(now + 5_000)), now), 0);
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
        assert_eq!(gate, Gate::Authenticated { principal: "User:alice".into(), expires_ms: None });
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
        let mut gate = Gate::Token { mechanism: SaslMechanism::Plain, raw: true };
        assert_eq!(a.raw_token(&mut gate, b"alice\0alice\0s3cret"), Ok(Vec::new()));
        assert!(constant_time_eq(b"ab", b"ab") && !constant_time_eq(b"ab", b"abc") && !constant_time_eq(b"ab", b"ac"));
    }

    fn scram_auth() -> Authenticator {
        let lookup: CredentialLookup = Arc::new(|user: &str, m: ScramMechanism| {
            (user == "bob").then(|| scram::credential(m, &scram::salted_password(m, b"bob-secret", b"NaCl", 4096), b"NaCl", 4096))
        });
        let settings = SaslSettings { mechanisms: vec![SaslMechanism::ScramSha256, SaslMechanism::ScramSha512], plain_users: Default::default(), reauth_ms: 0, oauth: None };
        Authenticator::new(settings, lookup, None)
    }

    /// A SCRAM client from RFC 5802's formulas: the client-final for `password`.
    fn scram_final(m: ScramMechanism, password: &[u8], bare: &str, server_first: &[u8]) -> Vec<u8> {
        use ring::{digest, hmac};
        let sf = std::str::from_utf8(server_first).unwrap();
        let get = |k: &str| sf.split(',').find_map(|f| f.strip_prefix(k)).unwrap();
        let salted = scram::salted_password(m, password, &scram::base64_decode(get("s=")).unwrap(), get("i=").parse().unwrap());
        let (h, d) = match m {
            ScramMechanism::Sha256 => (hmac::HMAC_SHA256, &digest::SHA256),
            ScramMechanism::Sha512 => (hmac::HMAC_SHA512, &digest::SHA512),
        };
        let client_key = hmac::sign(&hmac::Key::new(h, &salted), b"Client Key");
        let stored = digest::digest(d, client_key.as_ref());
        let without_proof = format!("c=biws,r={}", get("r="));
        let sig = hmac::sign(&hmac::Key::new(h, stored.as_ref()), format!("{bare},{sf},{without_proof}").as_bytes());
        let proof: Vec<u8> = client_key.as_ref().iter().zip(sig.as_ref()).map(|(a, b)| a ^ b).collect();
        format!("{without_proof},p={}", scram::base64_encode(&proof)).into_bytes()
    }

    fn auth_bytes(v: &Verdict) -> Vec<u8> {
        match v {
            Verdict::Reply(ResponseKind::SaslAuthenticate(r)) => r.auth_bytes.to_vec(),
            _ => panic!("not a successful SaslAuthenticate answer"),
        }
    }

    #[test]
    fn scram_over_sasl_authenticate_and_bare_frames() {
        let a = scram_auth();
        for (name, m) in [("SCRAM-SHA-256", ScramMechanism::Sha256), ("SCRAM-SHA-512", ScramMechanism::Sha512)] {
            // SaslHandshake v1 + SaslAuthenticate.
            let mut gate = Gate::Handshake;
            assert_eq!(error(&a.before_auth(&mut gate, ApiKey::SaslHandshake, 1, &handshake(name))), Some(0));
            let first = auth_bytes(&a.before_auth(&mut gate, ApiKey::SaslAuthenticate, 2, &token(b"n,,n=bob,r=abc")));
            assert!(matches!(gate, Gate::Scram { raw: false, .. }));
            // Only the exchange may go on: a Metadata request now closes the connection.
            assert!(matches!(a.before_auth(&mut gate.clone(), ApiKey::Metadata, 12, &RequestKind::Metadata(MetadataRequest::default())), Verdict::Close(_)));
            let last = auth_bytes(&a.before_auth(&mut gate, ApiKey::SaslAuthenticate, 2, &token(&scram_final(m, b"bob-secret", "n=bob,r=abc", &first))));
            assert!(last.starts_with(b"v="));
            assert_eq!(gate, Gate::Authenticated { principal: "User:bob".into(), expires_ms: None });
            // SaslHandshake v0 + bare frames.
            let mut gate = Gate::Handshake;
            assert_eq!(error(&a.before_auth(&mut gate, ApiKey::SaslHandshake, 0, &handshake(name))), Some(0));
            let first = a.raw_token(&mut gate, b"n,,n=bob,r=xyz").unwrap();
            assert!(gate.expects_raw_token());
            assert!(a.raw_token(&mut gate, &scram_final(m, b"bob-secret", "n=bob,r=xyz", &first)).unwrap().starts_with(b"v="));
            assert!(!gate.expects_raw_token());
            assert_eq!(gate, Gate::Authenticated { principal: "User:bob".into(), expires_ms: None });
        }
    }

    #[test]
    fn scram_failures_are_kafkas_one_message_and_close() {
        let a = scram_auth();
        let expected = "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256";
        for (user, password) in [("bob", &b"wrong"[..]), ("mallory", b"bob-secret")] {
            let mut gate = Gate::Token { mechanism: SaslMechanism::ScramSha256, raw: false };
            let bare = format!("n={user},r=abc");
            let first = auth_bytes(&a.before_auth(&mut gate, ApiKey::SaslAuthenticate, 2, &token(format!("n,,{bare}").as_bytes())));
            let v = a.before_auth(&mut gate, ApiKey::SaslAuthenticate, 2, &token(&scram_final(ScramMechanism::Sha256, password, &bare, &first)));
            match v {
                Verdict::ReplyAndClose(ResponseKind::SaslAuthenticate(r)) => {
                    assert_eq!(r.error_code, 58);
                    assert_eq!(r.error_message.as_deref(), Some(expected));
                }
                _ => panic!("{user}: not refused"),
            }
        }
        // A garbled first message fails at once; a bare frame on a SaslAuthenticate gate fails.
        let mut gate = Gate::Token { mechanism: SaslMechanism::ScramSha512, raw: false };
        assert!(matches!(a.before_auth(&mut gate, ApiKey::SaslAuthenticate, 2, &token(b"garbage")), Verdict::ReplyAndClose(_)));
        let mut gate = Gate::Token { mechanism: SaslMechanism::ScramSha512, raw: false };
        assert!(a.raw_token(&mut gate, b"n,,n=bob,r=abc").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any PLAIN token is a login or a refusal, never a panic; only the right password for
        /// alice logs in.
        #[test]
        fn plain_tokens_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100)) {
            let a = auth();
            let mut gate = Gate::Token { mechanism: SaslMechanism::Plain, raw: false };
            let verdict = a.before_auth(&mut gate, ApiKey::SaslAuthenticate, 2, &token(&bytes));
            let logged_in = matches!(gate, Gate::Authenticated { .. });
            let good = bytes.splitn(3, |b| *b == 0).skip(1).collect::<Vec<_>>() == [&b"alice"[..], b"s3cret"];
            proptest::prop_assert_eq!(logged_in, good && (bytes[0] == 0 || bytes.starts_with(b"alice\0")), "{:?} {:?}", bytes, error(&verdict));
            let mut gate = Gate::Token { mechanism: SaslMechanism::Plain, raw: true };
            let _ = a.raw_token(&mut gate, &bytes);
        }
    }
}
