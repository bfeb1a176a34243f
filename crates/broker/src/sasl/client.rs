//! The client side of SASL, for a broker logging in to another broker (Kafka's inter-broker
//! client): PLAIN's one token, and SCRAM-SHA-256/512 (RFC 5802) as Kafka's `ScramSaslClient`
//! runs it: client-first `n,,n=<user>,r=<nonce>`, the server-first's nonce, salt and iteration
//! count checked, client-final with the proof, and the server-final's signature verified, so
//! this broker also knows the peer holds the credential (a peer that cannot prove it is refused
//! like one that fails the login).
//!
//! The server's messages come from the network: parsed without panics, bounded iterations.

use ring::rand::SecureRandom;

use super::scram::{base64_decode, base64_encode, hash, hmac, salted_password, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};

/// PLAIN's token (RFC 4616): `authzid NUL authcid NUL password`, with an empty authzid.
pub fn plain_token(username: &str, password: &str) -> Vec<u8> {
    let mut t = Vec::with_capacity(username.len() + password.len() + 2);
    t.push(0);
    t.extend_from_slice(username.as_bytes());
    t.push(0);
    t.extend_from_slice(password.as_bytes());
    t
}

/// Why a SCRAM exchange failed on the client side (the server's own refusals arrive as
/// SaslAuthenticate errors instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramClientError {
    #[error("the server's SCRAM message is malformed")]
    Malformed,
    #[error("the server's nonce does not extend ours")]
    Nonce,
    #[error("the server asks for {0} iterations, outside {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    Iterations(i64),
    #[error("the server's signature is wrong: it does not hold this user's credential")]
    Signature,
    #[error("the server refused: {0}")]
    Refused(String),
    #[error("no randomness for the nonce")]
    Random,
}

/// One login in progress.
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: Vec<u8>,
    nonce: String,
    first_bare: String,
    /// Set by `client_final`: the ServerSignature the server-final must carry.
    expected_signature: Option<Vec<u8>>,
}

/// A username as a saslname: `=` and `,` escaped (RFC 5802).
fn saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

impl ScramClient {
    /// Starts a login; `client_first` is the first token to send.
    pub fn new(mechanism: ScramMechanism, username: &str, password: &str, rng: &dyn SecureRandom) -> Result<ScramClient, ScramClientError> {
        let nonce = super::scram::random_nonce(rng).ok_or(ScramClientError::Random)?;
        Ok(Self::with_nonce(mechanism, username, password, nonce))
    }

    fn with_nonce(mechanism: ScramMechanism, username: &str, password: &str, nonce: String) -> ScramClient {
        let first_bare = format!("n={},r={nonce}", saslname(username));
        ScramClient { mechanism, password: password.as_bytes().to_vec(), nonce, first_bare, expected_signature: None }
    }

    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// The client-final message, from the server-first `r=<nonce>,s=<salt>,i=<iterations>`.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramClientError> {
        let text = std::str::from_utf8(server_first).map_err(|_| ScramClientError::Malformed)?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(ScramClientError::Refused(e.to_string()));
        }
        let mut fields = text.split(',');
        let nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or(ScramClientError::Malformed)?;
        let salt = fields.next().and_then(|f| f.strip_prefix("s=")).and_then(base64_decode).ok_or(ScramClientError::Malformed)?;
        let iterations: i64 = fields.next().and_then(|f| f.strip_prefix("i=")).and_then(|i| i.parse().ok()).ok_or(ScramClientError::Malformed)?;
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) || nonce.contains(',') {
            return Err(ScramClientError::Nonce);
        }
        if iterations < MIN_ITERATIONS as i64 || iterations > MAX_ITERATIONS as i64 {
            return Err(ScramClientError::Iterations(iterations));
        }
        let m = self.mechanism;
        let salted = salted_password(m, &self.password, &salt, iterations as u32);
        let client_key = hmac(m, &salted, b"Client Key");
        let stored_key = hash(m, &client_key);
        // `biws` is base64 of the gs2 header `n,,`.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.first_bare);
        let signature = hmac(m, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let server_key = hmac(m, &salted, b"Server Key");
        self.expected_signature = Some(hmac(m, &server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", base64_encode(&proof)).into_bytes())
    }

    /// Checks the server-final `v=<signature>`.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramClientError> {
        let text = std::str::from_utf8(server_final).map_err(|_| ScramClientError::Malformed)?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(ScramClientError::Refused(e.to_string()));
        }
        let got = text.split(',').next().and_then(|v| v.strip_prefix("v=")).and_then(base64_decode).ok_or(ScramClientError::Malformed)?;
        match &self.expected_signature {
            Some(want) if super::constant_time_eq(want, &got) => Ok(()),
            _ => Err(ScramClientError::Signature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::scram::{credential, ScramServer, ServerContext, Step};

    /// The client against Strom's own server: a right password logs in and the server's
    /// signature verifies; a wrong one is refused by the server.
    #[test]
    fn logs_in_to_the_scram_server_and_verifies_it() {
        for m in ScramMechanism::ALL {
            let salt = b"salty".to_vec();
            let cred = credential(m, &salted_password(m, b"pw,=x", &salt, 4096), &salt, 4096);
            let lookup = |user: &str, mech: ScramMechanism| (user == "bro,ker=1" && mech == m).then(|| cred.clone());
            let nonce = || Some("servernonce".to_string());
            let ctx = ServerContext { lookup: &lookup, nonce: &nonce, secret: b"s" };
            for (password, ok) in [("pw,=x", true), ("wrong", false)] {
                let mut client = ScramClient::with_nonce(m, "bro,ker=1", password, "clientnonce".into());
                let mut server = ScramServer::new(m);
                let Ok(Step::Continue(server_first)) = server.step(&client.client_first(), &ctx) else { panic!("server-first") };
                let client_final = client.client_final(&server_first).expect("client-final");
                match server.step(&client_final, &ctx) {
                    Ok(Step::Done { principal, server_final }) => {
                        assert!(ok, "a wrong password was accepted");
                        assert_eq!(principal, "User:bro,ker=1");
                        client.verify_server_final(&server_final).expect("the server's signature");
                        assert_eq!(client.verify_server_final(b"v=AAAA"), Err(ScramClientError::Signature));
                    }
                    other => assert!(!ok && other.is_err(), "{m:?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn bad_server_messages_are_refused_without_panicking() {
        let mut c = ScramClient::with_nonce(ScramMechanism::Sha256, "u", "p", "abc".into());
        for (msg, want) in [
            (&b"r=abcdef,s=c2FsdA==,i=4096"[..], None),
            (b"r=xyz,s=c2FsdA==,i=4096", Some(ScramClientError::Nonce)),
            (b"r=abc,s=c2FsdA==,i=4096", Some(ScramClientError::Nonce)),
            (b"r=abcd,s=c2FsdA==,i=1", Some(ScramClientError::Iterations(1))),
            (b"r=abcd,s=c2FsdA==,i=999999999999", Some(ScramClientError::Iterations(999999999999))),
            (b"r=abcd,s=!!,i=4096", Some(ScramClientError::Malformed)),
            (b"r=abcd", Some(ScramClientError::Malformed)),
            (b"\xff", Some(ScramClientError::Malformed)),
            (b"e=unknown-user", Some(ScramClientError::Refused("unknown-user".into()))),
        ] {
            assert_eq!(c.client_final(msg).err(), want, "{}", String::from_utf8_lossy(msg));
        }
        assert_eq!(plain_token("a", "b"), b"\0a\0b");
    }
}
