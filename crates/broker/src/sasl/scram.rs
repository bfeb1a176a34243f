//! SASL/SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the server side, as Kafka's
//! `ScramSaslServer` runs it: client-first (`n,[a=authzid],n=user,r=cnonce[,ext]`), server-first
//! (`r=cnonce+snonce,s=salt,i=iterations`), client-final (`c=gs2,r=nonce[,ext],p=proof`),
//! server-final (`v=signature`). Kafka supports neither channel binding (gs2 flag `n` only) nor
//! SASLprep (passwords are their UTF-8 bytes); neither does this.
//!
//! The messages come from unauthenticated clients, so the parsers accept exactly the grammar and
//! return `None` on anything else, never panic, and allocate only what the input holds. Every
//! failure looks the same to the client (`ScramError::Invalid`, Kafka's message), whether the
//! user is unknown, the proof wrong or a message garbled; an unknown user is even answered with
//! a server-first message like any other (a salt derived from the name, so asking twice gives
//! the same answer), failing only at the proof, so the exchange does not tell who exists.
//!
//! The cryptography is `ring`'s (already in the tree through rustls): HMAC, SHA-2, PBKDF2.

use ring::rand::SecureRandom;
use ring::{digest, hmac, pbkdf2};
pub use strom_metadata::scram::{ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};

fn hmac_alg(m: ScramMechanism) -> hmac::Algorithm {
    match m {
        ScramMechanism::Sha256 => hmac::HMAC_SHA256,
        ScramMechanism::Sha512 => hmac::HMAC_SHA512,
    }
}

pub(crate) fn hmac(m: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac_alg(m), key), data).as_ref().to_vec()
}

pub(crate) fn hash(m: ScramMechanism, data: &[u8]) -> Vec<u8> {
    let alg = match m {
        ScramMechanism::Sha256 => &digest::SHA256,
        ScramMechanism::Sha512 => &digest::SHA512,
    };
    digest::digest(alg, data).as_ref().to_vec()
}

/// RFC 5802's `Hi(password, salt, i)`: PBKDF2 with the mechanism's HMAC, one hash long. What a
/// client computes (and sends in AlterUserScramCredentials); the broker computes it only for
/// credentials given at startup and in tests.
pub fn salted_password(m: ScramMechanism, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let (alg, len) = match m {
        ScramMechanism::Sha256 => (pbkdf2::PBKDF2_HMAC_SHA256, 32),
        ScramMechanism::Sha512 => (pbkdf2::PBKDF2_HMAC_SHA512, 64),
    };
    let mut out = vec![0u8; len];
    pbkdf2::derive(alg, std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN), salt, password, &mut out);
    out
}

/// What the server stores of a salted password, as Kafka's controller derives it
/// (`ScramControlManager.finishUpsertion`): StoredKey = H(HMAC(SaltedPassword, "Client Key")),
/// ServerKey = HMAC(SaltedPassword, "Server Key").
pub fn credential(m: ScramMechanism, salted_password: &[u8], salt: &[u8], iterations: i32) -> ScramCredential {
    let client_key = hmac(m, salted_password, b"Client Key");
    ScramCredential { salt: salt.to_vec(), stored_key: hash(m, &client_key), server_key: hmac(m, salted_password, b"Server Key"), iterations }
}

/// Every failure of an exchange, as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramError {
    /// Kafka's SaslException path: one message whatever went wrong.
    Invalid,
    /// Kafka's one specific message (`SaslAuthenticationException`), about the request itself.
    AuthorizationId,
}

impl ScramError {
    pub fn message(&self, m: ScramMechanism) -> String {
        match self {
            ScramError::Invalid => format!("Authentication failed during authentication due to invalid credentials with SASL mechanism {}", m.name()),
            ScramError::AuthorizationId => "Authentication failed: Client requested an authorization id that is different from username".into(),
        }
    }
}

/// What the server sends after a client message.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The server-first message; the client-final comes next.
    Continue(Vec<u8>),
    /// Authenticated as `User:<name>`; the server-final message proves the server knew the key.
    Done { principal: String, server_final: Vec<u8> },
}

/// Where the server's side of an exchange comes from: the credentials, fresh nonces, and the
/// per-process secret that makes unknown users' fake salts stable.
pub struct ServerContext<'a> {
    pub lookup: &'a dyn Fn(&str, ScramMechanism) -> Option<ScramCredential>,
    /// The server's part of the nonce (`random_nonce` in the broker; fixed in tests).
    pub nonce: &'a dyn Fn() -> Option<String>,
    pub secret: &'a [u8],
}

/// A fresh 32-byte salt from the OS's randomness (for tools and credentials made by the broker).
pub fn random_salt() -> Option<Vec<u8>> {
    let mut salt = vec![0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut salt).ok()?;
    Some(salt)
}

/// A fresh server nonce: 18 random bytes in base64 (24 printable characters, no comma).
pub fn random_nonce(rng: &dyn SecureRandom) -> Option<String> {
    let mut random = [0u8; 18];
    rng.fill(&mut random).ok()?;
    Some(base64_encode(&random))
}

/// One connection's exchange. A failed step leaves it failed: every later message fails too.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: State,
}

#[derive(Clone, PartialEq, Eq)]
enum State {
    ClientFirst,
    ClientFinal {
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        /// The client's nonce followed by the server's: the client-final's must end with it.
        nonce: String,
        username: String,
        credential: ScramCredential,
        /// False for a user that does not exist: the exchange runs on a fake credential and fails.
        known: bool,
    },
    Finished,
}

/// Never prints credentials or nonces.
impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::ClientFirst => "client-first",
            State::ClientFinal { .. } => "client-final",
            State::Finished => "finished",
        };
        write!(f, "ScramServer({}, awaiting {state})", self.mechanism.name())
    }
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> ScramServer {
        ScramServer { mechanism, state: State::ClientFirst }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Takes the client's next message.
    pub fn step(&mut self, message: &[u8], ctx: &ServerContext<'_>) -> Result<Step, ScramError> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::ClientFirst => {
                let first = parse_client_first(message).ok_or(ScramError::Invalid)?;
                // Delegation tokens (`tokenauth=true`) are not served: such a login fails.
                if first.token_auth {
                    return Err(ScramError::Invalid);
                }
                if !first.authzid.is_empty() && first.authzid != first.username {
                    return Err(ScramError::AuthorizationId);
                }
                let (credential, known) = match (ctx.lookup)(&first.username, self.mechanism) {
                    Some(c) if c.iterations >= MIN_ITERATIONS => (c, true),
                    Some(_) => return Err(ScramError::Invalid),
                    None => (self.fake_credential(&first.username, ctx.secret), false),
                };
                let nonce = format!("{}{}", first.nonce, (ctx.nonce)().ok_or(ScramError::Invalid)?);
                let server_first = format!("r={nonce},s={},i={}", base64_encode(&credential.salt), credential.iterations);
                let reply = server_first.clone().into_bytes();
                self.state = State::ClientFinal {
                    gs2_header: first.gs2_header.to_string(),
                    client_first_bare: first.bare.to_string(),
                    server_first,
                    nonce,
                    username: first.username,
                    credential,
                    known,
                };
                Ok(Step::Continue(reply))
            }
            State::ClientFinal { gs2_header, client_first_bare, server_first, nonce, username, credential, known } => {
                let last = parse_client_final(message).ok_or(ScramError::Invalid)?;
                // Kafka's test is `endsWith`, not equality: librdkafka before 2.x sent its own
                // nonce once more in front of the combined one (kcat 1.7 with librdkafka 2.0
                // does). The combined nonce, with the server's fresh part, must be there whole.
                if last.channel_binding != gs2_header.as_bytes() || !last.nonce.ends_with(nonce.as_str()) {
                    return Err(ScramError::Invalid);
                }
                let auth_message = format!("{client_first_bare},{server_first},{}", last.without_proof);
                let m = self.mechanism;
                let client_signature = hmac(m, &credential.stored_key, auth_message.as_bytes());
                if last.proof.len() != client_signature.len() {
                    return Err(ScramError::Invalid);
                }
                let client_key: Vec<u8> = last.proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
                let proved = super::constant_time_eq(&hash(m, &client_key), &credential.stored_key);
                if !(proved && known) {
                    return Err(ScramError::Invalid);
                }
                let server_signature = hmac(m, &credential.server_key, auth_message.as_bytes());
                Ok(Step::Done { principal: format!("User:{username}"), server_final: format!("v={}", base64_encode(&server_signature)).into_bytes() })
            }
            State::Finished => Err(ScramError::Invalid),
        }
    }

    /// A credential for a user that does not exist, stable per name and process: the salt is
    /// what a client sees, the keys only keep the work of the final step the same.
    fn fake_credential(&self, username: &str, secret: &[u8]) -> ScramCredential {
        let m = self.mechanism;
        let mut salt = hmac(m, secret, format!("salt\0{username}").as_bytes());
        salt.truncate(16);
        let key = hmac(m, secret, format!("key\0{username}").as_bytes());
        ScramCredential { salt, stored_key: hash(m, &key), server_key: key, iterations: MIN_ITERATIONS }
    }
}

/// A parsed client-first message.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFirst<'a> {
    /// `n,` or `n,a=<authzid>,` as sent: the client-final's `c=` must carry it.
    pub gs2_header: &'a str,
    pub authzid: String,
    /// The message without the gs2 header, part of the signed AuthMessage.
    pub bare: &'a str,
    pub username: String,
    pub nonce: &'a str,
    /// Kafka's `tokenauth=true` extension (delegation tokens).
    pub token_auth: bool,
}

/// `gs2-header client-first-message-bare` with Kafka's grammar (`ScramMessages.ClientFirstMessage`):
/// gs2 flag `n`, an optional authzid, no mandatory extension (`m=`), `n=` saslname, `r=` nonce,
/// then optional `name=value` extensions.
pub fn parse_client_first(message: &[u8]) -> Option<ClientFirst<'_>> {
    let s = std::str::from_utf8(message).ok()?;
    let rest = s.strip_prefix("n,")?;
    let (authz, bare) = rest.split_once(',')?;
    let authzid = if authz.is_empty() { String::new() } else { decode_saslname(authz.strip_prefix("a=")?)? };
    let gs2_header = &s[..2 + authz.len() + 1];
    let mut fields = bare.split(',');
    let username = decode_saslname(fields.next()?.strip_prefix("n=")?)?;
    let nonce = fields.next()?.strip_prefix("r=")?;
    if !is_printable(nonce) {
        return None;
    }
    let mut token_auth = false;
    for ext in fields {
        let (name, value) = parse_extension(ext)?;
        if name == "tokenauth" && value.eq_ignore_ascii_case("true") {
            token_auth = true;
        }
    }
    Some(ClientFirst { gs2_header, authzid, bare, username, nonce, token_auth })
}

/// A parsed client-final message.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFinal<'a> {
    pub channel_binding: Vec<u8>,
    pub nonce: &'a str,
    /// Everything before `,p=`: part of the signed AuthMessage.
    pub without_proof: &'a str,
    pub proof: Vec<u8>,
}

/// `c=<base64>,r=<nonce>[,ext...],p=<base64>` (`ScramMessages.ClientFinalMessage`).
pub fn parse_client_final(message: &[u8]) -> Option<ClientFinal<'_>> {
    let s = std::str::from_utf8(message).ok()?;
    let at = s.rfind(",p=")?;
    let (without_proof, proof) = (&s[..at], &s[at + 3..]);
    let proof = base64_decode(proof)?;
    let mut fields = without_proof.split(',');
    let channel_binding = base64_decode(fields.next()?.strip_prefix("c=")?)?;
    let nonce = fields.next()?.strip_prefix("r=")?;
    if !is_printable(nonce) {
        return None;
    }
    for ext in fields {
        parse_extension(ext)?;
    }
    Some(ClientFinal { channel_binding, nonce, without_proof, proof })
}

/// RFC 5802's `printable`: `%x21-2B / %x2D-7E` (no comma), at least one.
fn is_printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// A saslname: ASCII other than NUL, `,` and `=`, with `=2C` for `,` and `=3D` for `=`
/// (Kafka's `SASLNAME`, decoded as `ScramFormatter.username`). Empty names are refused.
fn decode_saslname(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '=' {
            if let Some(r) = rest.strip_prefix("=2C") {
                out.push(',');
                rest = r;
            } else if let Some(r) = rest.strip_prefix("=3D") {
                out.push('=');
                rest = r;
            } else {
                return None;
            }
            continue;
        }
        if c == ',' || c == '\0' || !c.is_ascii() {
            return None;
        }
        out.push(c);
        rest = &rest[1..];
    }
    (!out.is_empty()).then_some(out)
}

/// `ALPHA+ "=" VALUE` with VALUE ASCII other than NUL and `,` (Kafka's extensions grammar).
fn parse_extension(ext: &str) -> Option<(&str, &str)> {
    let (name, value) = ext.split_once('=')?;
    let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic());
    let value_ok = !value.is_empty() && value.bytes().all(|b| (0x01..=0x7f).contains(&b) && b != b',');
    (name_ok && value_ok).then_some((name, value))
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 section 4), as SCRAM uses it.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The strict inverse of `base64_encode`: whole quads, padding only at the end, no other bytes.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (q, quad) in bytes.chunks(4).enumerate() {
        let last = q == bytes.len() / 4 - 1;
        let pad = quad.iter().rev().take_while(|b| **b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            let v = BASE64.iter().position(|a| *a == c)? as u32;
            n = (n << 6) | v;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        First,
        /// The client-final for the last server-first, with the right password or not.
        Final(bool),
        Garbage(Vec<u8>),
    }

    const RFC_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

    fn users() -> impl Fn(&str, ScramMechanism) -> Option<ScramCredential> {
        |user: &str, m: ScramMechanism| {
            let salt = base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==")?;
            (user == "user").then(|| credential(m, &salted_password(m, b"pencil", &salt, 4096), &salt, 4096))
        }
    }

    fn run(m: ScramMechanism, messages: &[&[u8]]) -> Vec<Result<Step, ScramError>> {
        let lookup = users();
        let nonce = || Some(RFC_NONCE.to_string());
        let ctx = ServerContext { lookup: &lookup, nonce: &nonce, secret: b"process secret" };
        let mut server = ScramServer::new(m);
        messages.iter().map(|msg| server.step(msg, &ctx)).collect()
    }

    /// RFC 7677 section 3's exchange, byte for byte.
    #[test]
    fn rfc_7677_test_vector() {
        let out = run(
            ScramMechanism::Sha256,
            &[b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="],
        );
        assert_eq!(out[0], Ok(Step::Continue(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".to_vec())));
        assert_eq!(out[1], Ok(Step::Done { principal: "User:user".into(), server_final: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec() }));
    }

    /// A client written from the RFC (not from the server's code): the proof for `password`.
    fn client_final(m: ScramMechanism, password: &[u8], client_first_bare: &str, server_first: &[u8], nonce_override: Option<&str>) -> Vec<u8> {
        let sf = std::str::from_utf8(server_first).unwrap();
        let mut nonce = "";
        let (mut salt, mut iterations) = (vec![], 0);
        for f in sf.split(',') {
            match f.split_at(2) {
                ("r=", v) => nonce = v,
                ("s=", v) => salt = base64_decode(v).unwrap(),
                ("i=", v) => iterations = v.parse().unwrap(),
                _ => {}
            }
        }
        let nonce = nonce_override.unwrap_or(nonce);
        let without_proof = format!("c=biws,r={nonce}");
        let salted = salted_password(m, password, &salt, iterations);
        let client_key = hmac(m, &salted, b"Client Key");
        let stored = hash(m, &client_key);
        let signature = hmac(m, &stored, format!("{client_first_bare},{sf},{without_proof}").as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        format!("{without_proof},p={}", base64_encode(&proof)).into_bytes()
    }

    fn exchange(m: ScramMechanism, user: &str, password: &[u8], nonce_override: Option<&str>) -> Result<Step, ScramError> {
        let lookup = users();
        let nonce = || Some("servernonce".to_string());
        let ctx = ServerContext { lookup: &lookup, nonce: &nonce, secret: b"process secret" };
        let mut server = ScramServer::new(m);
        let bare = format!("n={user},r=clientnonce");
        let Step::Continue(first) = server.step(format!("n,,{bare}").as_bytes(), &ctx)? else { panic!("one step too soon") };
        let last = client_final(m, password, &bare, &first, nonce_override);
        let out = server.step(&last, &ctx);
        // One exchange per connection: anything after the end fails.
        assert_eq!(server.step(&last, &ctx), Err(ScramError::Invalid));
        out
    }

    #[test]
    fn good_login_bad_proof_unknown_user_bad_nonce() {
        for m in ScramMechanism::ALL {
            assert!(matches!(exchange(m, "user", b"pencil", None), Ok(Step::Done { ref principal, .. }) if principal == "User:user"));
            assert_eq!(exchange(m, "user", b"pen", None), Err(ScramError::Invalid));
            assert_eq!(exchange(m, "nobody", b"pencil", None), Err(ScramError::Invalid));
            // A nonce that does not extend the server's, or drops part of it.
            assert_eq!(exchange(m, "user", b"pencil", Some("clientnonceservernonceX")), Err(ScramError::Invalid));
            assert_eq!(exchange(m, "user", b"pencil", Some("clientnonceserver")), Err(ScramError::Invalid));
            assert_eq!(exchange(m, "user", b"pencil", Some("othernonceservernonce")), Err(ScramError::Invalid));
            assert_eq!(exchange(m, "user", b"pencil", Some("servernonce")), Err(ScramError::Invalid));
            // librdkafka 2.0's form (its nonce again in front), which Kafka's `endsWith` accepts.
            assert!(matches!(exchange(m, "user", b"pencil", Some("clientnonceclientnonceservernonce")), Ok(Step::Done { .. })));
        }
    }

    #[test]
    fn an_unknown_user_gets_a_stable_believable_challenge() {
        let lookup = users();
        let nonce = || Some("s".to_string());
        let ctx = ServerContext { lookup: &lookup, nonce: &nonce, secret: b"k" };
        let first = |user: &str| match ScramServer::new(ScramMechanism::Sha256).step(format!("n,,n={user},r=c").as_bytes(), &ctx) {
            Ok(Step::Continue(m)) => String::from_utf8(m).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(first("ghost"), first("ghost"));
        assert_ne!(first("ghost"), first("phantom"));
        assert!(first("ghost").starts_with("r=cs,s=") && first("ghost").ends_with(",i=4096"));
    }

    #[test]
    fn replayed_and_garbled_messages_fail() {
        let rfc_first: &[u8] = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let rfc_final: &[u8] = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        // The client-first again in place of the final; the final first.
        assert_eq!(run(ScramMechanism::Sha256, &[rfc_first, rfc_first])[1], Err(ScramError::Invalid));
        assert_eq!(run(ScramMechanism::Sha256, &[rfc_final])[0], Err(ScramError::Invalid));
        // The right messages under the other mechanism: the proof does not verify.
        assert_eq!(run(ScramMechanism::Sha512, &[rfc_first, rfc_final])[1], Err(ScramError::Invalid));
        // A channel binding other than `n,,`; a flipped proof bit; a proof cut short.
        let garbled = [
            &b"c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="[..],
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVA=",
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+",
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        ];
        for g in garbled {
            assert_eq!(run(ScramMechanism::Sha256, &[rfc_first, g])[1], Err(ScramError::Invalid), "{}", String::from_utf8_lossy(g));
        }
        // Client-first forms Kafka refuses: channel binding asked for, `m=`, bad saslname, no nonce.
        for bad in [&b"y,,n=user,r=abc"[..], b"p=tls,,n=user,r=abc", b"n,,m=x,n=user,r=abc", b"n,,n=us=er,r=abc", b"n,,n=,r=abc", b"n,,n=user,r=", b"n,,n=user", b"n,,n=user,r=a,b", b"n,,n=user,r=abc,tokenauth=true", b""] {
            assert_eq!(run(ScramMechanism::Sha256, &[bad])[0], Err(ScramError::Invalid), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(run(ScramMechanism::Sha256, &[b"n,a=admin,n=user,r=abc"])[0], Err(ScramError::AuthorizationId));
        assert!(matches!(run(ScramMechanism::Sha256, &[b"n,a=user,n=user,r=abc,ext=1"])[0], Ok(Step::Continue(_))));
    }

    #[test]
    fn saslnames_and_base64() {
        let f = parse_client_first(b"n,a=a=3Db,n=a=3Db=2Cc,r=x").unwrap();
        assert_eq!((f.authzid.as_str(), f.username.as_str(), f.gs2_header, f.bare), ("a=b", "a=b,c", "n,a=a=3Db,", "n=a=3Db=2Cc,r=x"));
        for (raw, enc) in [(&b""[..], ""), (b"f", "Zg=="), (b"fo", "Zm8="), (b"foo", "Zm9v"), (b"foob", "Zm9vYg==")] {
            assert_eq!(base64_encode(raw), enc);
            assert_eq!(base64_decode(enc).as_deref(), Some(raw));
        }
        for bad in ["Zg", "Zg=a", "Z===", "Zg==Zm8=", "Zm9v!A==", "===="] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    proptest! {
        /// Arbitrary bytes never panic any parser, nor a server at either step.
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_client_first(&bytes);
            let _ = parse_client_final(&bytes);
            let _ = base64_decode(&String::from_utf8_lossy(&bytes));
            let _ = run(ScramMechanism::Sha256, &[&bytes]);
            let _ = run(ScramMechanism::Sha512, &[b"n,,n=user,r=abc", &bytes]);
        }

        /// Structured near-misses: SCRAM-looking text made of the grammar's own pieces.
        #[test]
        fn near_miss_messages_never_panic(parts in proptest::collection::vec(prop_oneof![
            Just("n,"), Just("a="), Just("n="), Just("r="), Just("c="), Just("p="), Just(","), Just("="),
            Just("=2C"), Just("=3D"), Just("=2"), Just("biws"), Just("user"), Just("\u{e9}"), Just("=="), Just("\0"),
        ], 0..16)) {
            let msg = parts.concat();
            let _ = run(ScramMechanism::Sha256, &[msg.as_bytes()]);
            let _ = run(ScramMechanism::Sha256, &[b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", msg.as_bytes()]);
        }

        /// A model of one connection's exchange: any sequence of messages (the right ones, a
        /// wrong password, garbage, replays) authenticates only as client-first then its
        /// matching client-final, at most once, and after any failure everything fails.
        #[test]
        fn the_exchange_follows_its_model(ops in proptest::collection::vec(prop_oneof![
            Just(Op::First),
            any::<bool>().prop_map(Op::Final),
            proptest::collection::vec(any::<u8>(), 0..60).prop_map(Op::Garbage),
        ], 0..6)) {
            #[derive(PartialEq)]
            enum Model { Start, AwaitFinal, Done, Dead }
            let m = ScramMechanism::Sha256;
            let lookup = users();
            let nonce = || Some("srv".to_string());
            let ctx = ServerContext { lookup: &lookup, nonce: &nonce, secret: b"k" };
            let mut server = ScramServer::new(m);
            let mut model = Model::Start;
            let mut server_first = b"r=cnsrv,s=AAAA,i=4096".to_vec();
            let mut logins = 0;
            for op in ops {
                let (message, expect_ok) = match &op {
                    Op::First => (b"n,,n=user,r=cn".to_vec(), model == Model::Start),
                    Op::Final(right) => {
                        let pw: &[u8] = if *right { b"pencil" } else { b"pen" };
                        (client_final(m, pw, "n=user,r=cn", &server_first, None), model == Model::AwaitFinal && *right)
                    }
                    Op::Garbage(bytes) => (bytes.clone(), false),
                };
                let out = server.step(&message, &ctx);
                prop_assert_eq!(out.is_ok(), expect_ok);
                model = match (out, model) {
                    (Ok(Step::Continue(first)), Model::Start) => {
                        server_first = first;
                        Model::AwaitFinal
                    }
                    (Ok(Step::Done { principal, .. }), Model::AwaitFinal) => {
                        prop_assert_eq!(principal, "User:user");
                        logins += 1;
                        Model::Done
                    }
                    (Ok(_), _) => return Err(TestCaseError::fail("a step the model does not allow succeeded")),
                    (Err(_), Model::Done) => Model::Done,
                    (Err(_), _) => Model::Dead,
                };
            }
            prop_assert!(logins <= 1);
        }

        #[test]
        fn base64_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(base64_decode(&base64_encode(&bytes)), Some(bytes));
        }
    }
}
