//! SASL/OAUTHBEARER (RFC 7628) as Kafka's broker serves it with its validating callback handler
//! (KIP-768): the client's one message carries a JWT, whose signature is checked against a key
//! of the configured JWKS and whose claims against the settings (`exp` required, `nbf` and `iat`
//! when present, the expected audience and issuer); the principal is `User:<sub claim>`. An
//! invalid token is answered with RFC 7628's error challenge (`{"status":"invalid_token"}`),
//! the client acknowledges it with %x01, and only then does the exchange fail, as Kafka's
//! `OAuthBearerSaslServer`.
//!
//! Unsigned tokens (`alg: none`, what Kafka accepts when no validating handler is configured)
//! and shared-secret algorithms (HS*, whose key would have to be in the JWKS) are refused.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use strom_config::OAuthSettings;

/// A token's key id not in the key set asks for a refetch, at most this often.
const MIN_REFETCH_MS: i64 = 10_000;

pub struct OAuthValidator {
    settings: OAuthSettings,
    keys: RwLock<Arc<JwkSet>>,
    last_fetch_ms: AtomicI64,
    refetch: tokio::sync::Notify,
}

/// A token that passed: whose it is and until when it is valid (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    pub principal: String,
    pub expires_ms: i64,
}

/// The client's initial response, `gs2-header %x01 auth=Bearer <token> %x01 (key=value %x01)* %x01`
/// (RFC 7628 section 3.1): the authorization id of the GS2 header (may be empty) and the token.
pub fn parse_initial_response(message: &[u8]) -> Result<(String, String), String> {
    const BAD: &str = "Invalid OAUTHBEARER client first message";
    let text = std::str::from_utf8(message).map_err(|_| BAD.to_string())?;
    let (gs2, rest) = text.split_once('\u{1}').ok_or(BAD)?;
    // gs2-header: "n," or "y," (no channel binding), then an optional "a=<authzid>", then ",".
    let mut parts = gs2.splitn(3, ',');
    let (Some(flag), Some(authz), Some("")) = (parts.next(), parts.next(), parts.next()) else { return Err(BAD.into()) };
    if flag != "n" && flag != "y" {
        return Err(BAD.into());
    }
    let authzid = match authz {
        "" => String::new(),
        a => a.strip_prefix("a=").ok_or(BAD)?.replace("=2C", ",").replace("=3D", "="),
    };
    let kvs = rest.strip_suffix("\u{1}\u{1}").or_else(|| rest.strip_suffix('\u{1}')).ok_or(BAD)?;
    let mut token = None;
    for kv in kvs.split('\u{1}').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').ok_or(BAD)?;
        if k == "auth" {
            let t = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).ok_or(BAD)?;
            token = Some(t.trim().to_string());
        }
    }
    let token = token.filter(|t| !t.is_empty()).ok_or(BAD)?;
    Ok((authzid, token))
}

impl OAuthValidator {
    /// Fetches the key set once: a broker whose JWKS cannot be read does not start.
    pub async fn start(settings: OAuthSettings, now_ms: i64) -> Result<Arc<OAuthValidator>, String> {
        let keys = super::jwks::fetch(&settings.jwks_url).await.map_err(|e| format!("sasl.oauthbearer.jwks.endpoint.url ({}): {e}", settings.jwks_url))?;
        Ok(Arc::new(OAuthValidator { settings, keys: RwLock::new(Arc::new(keys)), last_fetch_ms: AtomicI64::new(now_ms), refetch: tokio::sync::Notify::new() }))
    }

    /// Refetches the key set every `sasl.oauthbearer.jwks.endpoint.refresh.ms`, and when a token
    /// named a key it does not hold. A failed fetch keeps the keys there are (logged).
    pub async fn refresh_loop(self: Arc<Self>, mut stopping: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(self.settings.jwks_refresh_ms)) => {}
                _ = self.refetch.notified() => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            self.last_fetch_ms.store(crate::clock::now_ms(), Ordering::Relaxed);
            match super::jwks::fetch(&self.settings.jwks_url).await {
                Ok(keys) => {
                    tracing::debug!(keys = keys.keys.len(), url = %self.settings.jwks_url, "fetched the OAUTHBEARER key set");
                    *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
                }
                Err(e) => tracing::warn!(url = %self.settings.jwks_url, error = %e, "could not refetch the OAUTHBEARER key set; keeping the previous keys"),
            }
        }
    }

    /// Checks `token` at `now_ms`; `Err` says why it is refused (for the log and the client).
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<Validated, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
        if matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(format!("{:?} tokens are not accepted: only public-key signatures checked against the JWKS", header.alg));
        }
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        let jwk = match &header.kid {
            Some(kid) => keys.find(kid),
            None if keys.keys.len() == 1 => keys.keys.first(),
            None => None,
        };
        let Some(jwk) = jwk else {
            if now_ms - self.last_fetch_ms.load(Ordering::Relaxed) >= MIN_REFETCH_MS {
                self.refetch.notify_one();
            }
            return Err(format!("no key {} in the JWKS", header.kid.as_deref().unwrap_or("(the token names none, and the set has several)")));
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("the JWKS key cannot verify: {e}"))?;
        let mut v = Validation::new(header.alg);
        // Times are checked below, with the broker's clock and the configured skew.
        v.validate_exp = false;
        v.validate_nbf = false;
        v.required_spec_claims = HashSet::new();
        if self.settings.expected_audience.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&self.settings.expected_audience);
        }
        if let Some(iss) = &self.settings.expected_issuer {
            v.set_issuer(&[iss]);
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &v).map_err(|e| format!("the token does not verify: {e}"))?;
        let claims = data.claims;
        let skew = self.settings.clock_skew_seconds as i64 * 1000;
        let time = |name: &str| -> Result<Option<i64>, String> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => v.as_f64().map(|s| Some((s * 1000.0) as i64)).ok_or_else(|| format!("the `{name}` claim is not a number")),
            }
        };
        let exp = time("exp")?.ok_or("the token has no `exp` claim")?;
        if now_ms > exp + skew {
            return Err("the token has expired".into());
        }
        if time("nbf")?.is_some_and(|nbf| now_ms + skew < nbf) {
            return Err("the token is not valid yet (`nbf`)".into());
        }
        if time("iat")?.is_some_and(|iat| now_ms + skew < iat) {
            return Err("the token was issued in the future (`iat`)".into());
        }
        let name = &self.settings.sub_claim_name;
        let sub = claims.get(name).and_then(|s| s.as_str()).filter(|s| !s.trim().is_empty()).ok_or_else(|| format!("the token has no `{name}` claim"))?;
        Ok(Validated { principal: format!("User:{}", sub.trim()), expires_ms: exp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use jsonwebtoken::{EncodingKey, Header};
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn b64url(b: &[u8]) -> String {
        super::super::scram::base64_encode(b).trim_end_matches('=').replace('+', "-").replace('/', "_")
    }

    /// A validator over one Ed25519 key `k1`, and a signer with it.
    fn setup() -> (OAuthValidator, impl Fn(serde_json::Value) -> String) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwks = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": b64url(pair.public_key().as_ref())}]});
        let settings = OAuthSettings {
            jwks_url: "file:/unused".into(),
            jwks_refresh_ms: 3_600_000,
            expected_audience: vec!["strom".into()],
            expected_issuer: Some("idp".into()),
            sub_claim_name: "sub".into(),
            clock_skew_seconds: 30,
        };
        let v = OAuthValidator {
            settings,
            keys: RwLock::new(Arc::new(serde_json::from_value(jwks).unwrap())),
            last_fetch_ms: AtomicI64::new(0),
            refetch: tokio::sync::Notify::new(),
        };
        let key = EncodingKey::from_ed_der(pkcs8.as_ref());
        let sign = move |claims: serde_json::Value| {
            let mut h = Header::new(Algorithm::EdDSA);
            h.kid = Some("k1".into());
            jsonwebtoken::encode(&h, &claims, &key).unwrap()
        };
        (v, sign)
    }

    #[test]
    fn tokens_are_checked_for_signature_audience_issuer_and_time() {
        let (v, sign) = setup();
        let now = 1_800_000_000_000i64;
        let secs = now / 1000;
        let good = serde_json::json!({"sub": "alice", "aud": "strom", "iss": "idp", "exp": secs + 60, "iat": secs});
        assert_eq!(v.validate(&sign(good.clone()), now), Ok(Validated { principal: "User:alice".into(), expires_ms: (secs + 60) * 1000 }));
        let with = |k: &str, val: serde_json::Value| {
            let mut c = good.clone();
            c[k] = val;
            sign(c)
        };
        // Within the skew an expired token passes; beyond it, not.
        assert!(v.validate(&with("exp", (secs - 20).into()), now).is_ok());
        assert!(v.validate(&with("exp", (secs - 31).into()), now).unwrap_err().contains("expired"));
        assert!(v.validate(&with("nbf", (secs + 31).into()), now).unwrap_err().contains("nbf"));
        assert!(v.validate(&with("aud", "other".into()), now).is_err());
        assert!(v.validate(&with("iss", "other".into()), now).is_err());
        assert!(v.validate(&with("sub", "".into()), now).unwrap_err().contains("sub"));
        let mut no_exp = good.clone();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(v.validate(&sign(no_exp), now).unwrap_err().contains("exp"));
        // A flipped signature byte, and garbage, are refused.
        let t = sign(good);
        let mut bytes = t.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert!(v.validate(std::str::from_utf8(&bytes).unwrap(), now).is_err());
        assert!(v.validate("a.b.c", now).is_err() && v.validate("", now).is_err());
    }

    #[test]
    fn initial_responses_as_rfc_7628_writes_them() {
        assert_eq!(parse_initial_response(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01").unwrap(), (String::new(), "abc.def.ghi".into()));
        assert_eq!(parse_initial_response(b"n,a=alice,\x01host=x\x01auth=Bearer t\x01traceId=1\x01\x01").unwrap(), ("alice".into(), "t".into()));
        for bad in [&b""[..], b"n,,", b"n,,\x01\x01", b"x,,\x01auth=Bearer t\x01\x01", b"n,,\x01auth=Basic t\x01\x01", b"n,b=c,\x01auth=Bearer t\x01\x01", b"\xff\x01"] {
            assert!(parse_initial_response(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Arbitrary client first messages and tokens are refused or accepted, never a panic.
        #[test]
        fn parsers_and_the_validator_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse_initial_response(&bytes);
            let (v, _) = setup();
            let text = String::from_utf8_lossy(&bytes);
            let _ = v.validate(&text, 1_800_000_000_000);
            // Three dot-separated parts, the shape of a JWT, reach the header and claims decoding.
            let parts: Vec<&[u8]> = bytes.splitn(3, |b| *b == b'.').collect();
            let jwt = parts.iter().map(|p| b64url(p)).collect::<Vec<_>>().join(".");
            proptest::prop_assert!(v.validate(&jwt, 1_800_000_000_000).is_err());
        }

        /// What a client builds from an authorization id and a token parses back to them.
        #[test]
        fn initial_responses_round_trip(authz in "[a-zA-Z0-9,=@._-]{0,20}", token in "[a-zA-Z0-9._~+/-]{1,60}") {
            let escaped = authz.replace('=', "=3D").replace(',', "=2C");
            let gs2 = if authz.is_empty() { "n,,".to_string() } else { format!("n,a={escaped},") };
            let message = format!("{gs2}\u{1}auth=Bearer {token}\u{1}\u{1}");
            proptest::prop_assert_eq!(parse_initial_response(message.as_bytes()), Ok((authz, token)));
        }
    }
}
