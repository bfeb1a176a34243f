//! PKCS#12 keystores and truststores (`ssl.keystore.type=PKCS12`), as Java's `keytool` (JDK 11.0.12
//! and later) and OpenSSL 3's `openssl pkcs12 -export` write them: the store's MAC checked with
//! its password (HMAC-SHA-256/384/512 over RFC 7292's key derivation), safe contents encrypted
//! with PBES2 (PBKDF2 and AES-CBC), keys in PKCS#8 shrouded bags. RustCrypto's `pkcs12` crate
//! gives the ASN.1 types; this file walks them.
//!
//! Stores encrypted the legacy way (PKCS#12's own PBE with 3DES or RC2, the default of Java 8's
//! keytool and of OpenSSL 1.1) are refused with the command that re-exports them: those ciphers
//! are broken or nearly, and a keystore is where a weak cipher matters most.

use der::asn1::{ContextSpecific, OctetString};
use der::{Decode, Encode};
use pkcs12::authenticated_safe::AuthenticatedSafe;
use pkcs12::cert_type::CertBag;
use pkcs12::pfx::Pfx;
use pkcs12::safe_bag::{SafeBag, SafeContents};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_cert::der;
use x509_cert::der::oid::ObjectIdentifier;

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const ID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// PKCS#9 `localKeyId`: ties a key bag to its certificate.
const LOCAL_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");
/// The arc of PKCS#12's own (legacy) PBE algorithms.
const PKCS12_PBE_ARC: &str = "1.2.840.113549.1.12.1.";

/// What a PKCS#12 file holds, decrypted.
#[derive(Debug, Default)]
pub struct Contents {
    /// The private keys, each with its `localKeyId` if it has one.
    pub keys: Vec<(PrivateKeyDer<'static>, Option<Vec<u8>>)>,
    /// The certificates, each with its `localKeyId` if it has one, in the file's order.
    pub certificates: Vec<(CertificateDer<'static>, Option<Vec<u8>>)>,
}

impl Contents {
    /// A keystore's one key and its chain, its own certificate first (the one with the key's
    /// `localKeyId`, else the file's first).
    pub fn key_and_chain(self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let mut keys = self.keys;
        if keys.len() != 1 {
            return Err(format!("the keystore holds {} private keys; a listener serves with exactly one", keys.len()));
        }
        let Some((key, id)) = keys.pop() else { return Err("the keystore holds no private key".into()) };
        if self.certificates.is_empty() {
            return Err("the keystore holds no certificate for its private key".into());
        }
        let mut certs = self.certificates;
        if let Some(i) = id.and_then(|id| certs.iter().position(|(_, cid)| cid.as_deref() == Some(id.as_slice()))) {
            let own = certs.remove(i);
            certs.insert(0, own);
        }
        Ok((certs.into_iter().map(|(c, _)| c).collect(), key))
    }
}

/// Reads and decrypts a PKCS#12 file with the store's `password`; shrouded keys with
/// `key_password` when given (Java's keytool lets a key's password differ from the store's: Kafka's
/// `ssl.key.password`). Errors say what is wrong in words an operator can act on (a wrong
/// password is named as such).
pub fn read(der_bytes: &[u8], password: &str, key_password: Option<&str>) -> Result<Contents, String> {
    let pfx = Pfx::from_der(der_bytes).map_err(|e| format!("not a PKCS#12 file ({e})"))?;
    if pfx.auth_safe.content_type != ID_DATA {
        return Err("public-key-protected PKCS#12 stores are not supported (only password-protected ones)".into());
    }
    let safes = octets(&pfx.auth_safe.content)?;
    if let Some(mac) = &pfx.mac_data {
        check_mac(mac, &safes, password)?;
    }
    let safes = AuthenticatedSafe::from_der(&safes).map_err(|e| format!("unreadable PKCS#12 contents ({e})"))?;
    let mut out = Contents::default();
    for safe in safes {
        let bags = if safe.content_type == ID_DATA {
            octets(&safe.content)?
        } else if safe.content_type == ID_ENCRYPTED_DATA {
            decrypt_data(&safe.content, password)?
        } else {
            return Err(format!("PKCS#12 content of type {} is not supported", safe.content_type));
        };
        let bags = SafeContents::from_der(&bags).map_err(|e| format!("unreadable PKCS#12 bags ({e})"))?;
        for bag in bags {
            read_bag(&bag, key_password.unwrap_or(password), &mut out)?;
        }
    }
    Ok(out)
}

/// The bytes inside a content's OCTET STRING.
fn octets(content: &der::Any) -> Result<Vec<u8>, String> {
    let der = content.to_der().map_err(|e| e.to_string())?;
    Ok(OctetString::from_der(&der).map_err(|e| format!("unreadable PKCS#12 data ({e})"))?.as_bytes().to_vec())
}

/// RFC 7292 appendix B: the MAC key is derived from the password (as a BMPString) with the
/// store's hash, salt and iterations; the MAC covers the authenticated safe's bytes.
fn check_mac(mac: &pkcs12::mac_data::MacData, data: &[u8], password: &str) -> Result<(), String> {
    use hmac::{Mac, SimpleHmac};
    use pkcs12::kdf::{derive_key_utf8, Pkcs12KeyType};
    let salt = mac.mac_salt.as_bytes();
    let rounds = mac.iterations;
    let expected = mac.mac.digest.as_bytes();
    let bad_password = || Err("the store's integrity check fails: wrong password (ssl.keystore.password / ssl.truststore.password), or a damaged file".to_string());
    let kdf_error = |e: der::Error| format!("the password cannot be encoded for PKCS#12 ({e})");
    macro_rules! verify {
        ($hash:ty, $len:expr) => {{
            let key = derive_key_utf8::<$hash>(password, salt, Pkcs12KeyType::Mac, rounds, $len).map_err(kdf_error)?;
            let mut h = <SimpleHmac<$hash>>::new_from_slice(&key).map_err(|e| e.to_string())?;
            h.update(data);
            if h.verify_slice(expected).is_err() {
                return bad_password();
            }
        }};
    }
    let alg = mac.mac.algorithm.oid;
    if alg == ID_SHA256 {
        verify!(sha2::Sha256, 32)
    } else if alg == ID_SHA384 {
        verify!(sha2::Sha384, 48)
    } else if alg == ID_SHA512 {
        verify!(sha2::Sha512, 64)
    } else if alg == ID_SHA1 {
        return Err(legacy("its integrity check uses SHA-1"));
    } else {
        return Err(format!("the store's MAC algorithm {alg} is not supported (SHA-256, SHA-384 or SHA-512 are)"));
    }
    Ok(())
}

fn legacy(what: &str) -> String {
    format!(
        "a legacy PKCS#12 store ({what}): re-export it with modern encryption, e.g. `openssl pkcs12 -export` of OpenSSL 3, \
         or `keytool -importkeystore -deststoretype PKCS12` of JDK 11.0.12 or later (PBES2 with AES and HMAC-SHA-256)"
    )
}

/// An EncryptedData content, decrypted (PBES2 only).
fn decrypt_data(content: &der::Any, password: &str) -> Result<Vec<u8>, String> {
    let der = content.to_der().map_err(|e| e.to_string())?;
    let data = cms::encrypted_data::EncryptedData::from_der(&der).map_err(|e| format!("unreadable encrypted PKCS#12 data ({e})"))?;
    let info = data.enc_content_info;
    let alg = info.content_enc_alg;
    if alg.oid.to_string().starts_with(PKCS12_PBE_ARC) {
        return Err(legacy("certificates encrypted with PKCS#12's own PBE, 3DES or RC2"));
    }
    let alg_der = alg.to_der().map_err(|e| e.to_string())?;
    let scheme = pkcs8::pkcs5::EncryptionScheme::try_from(alg_der.as_slice()).map_err(|e| format!("unsupported PKCS#12 encryption ({e})"))?;
    let ciphertext = info.encrypted_content.ok_or("encrypted PKCS#12 data without content")?;
    scheme.decrypt(password.as_bytes(), ciphertext.as_bytes()).map_err(|_| "cannot decrypt the store: wrong password".to_string())
}

fn local_key_id(bag: &SafeBag) -> Option<Vec<u8>> {
    let attrs = bag.bag_attributes.as_ref()?;
    let attr = attrs.iter().find(|a| a.oid == LOCAL_KEY_ID)?;
    let value = attr.values.iter().next()?;
    Some(value.decode_as::<OctetString>().ok()?.as_bytes().to_vec())
}

fn read_bag(bag: &SafeBag, password: &str, out: &mut Contents) -> Result<(), String> {
    // A bag's value is wrapped in an explicit [0] tag.
    let inner = || -> Result<Vec<u8>, String> {
        let wrapped = ContextSpecific::<der::Any>::from_der(&bag.bag_value).map_err(|e| format!("unreadable PKCS#12 bag ({e})"))?;
        wrapped.value.to_der().map_err(|e| e.to_string())
    };
    let id = local_key_id(bag);
    match bag.bag_id {
        pkcs12::PKCS_12_PKCS8_KEY_BAG_OID => {
            let der = inner()?;
            let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice()).map_err(|e| format!("unreadable shrouded key ({e})"))?;
            if info.encryption_algorithm.oid().to_string().starts_with(PKCS12_PBE_ARC) {
                return Err(legacy("its private key is encrypted with PKCS#12's own PBE, 3DES or RC2"));
            }
            let plain = info.decrypt(password.as_bytes()).map_err(|_| "cannot decrypt the private key: wrong password (ssl.key.password, or the store's password when that is not set)".to_string())?;
            out.keys.push((PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()), id));
        }
        pkcs12::PKCS_12_KEY_BAG_OID => out.keys.push((PrivateKeyDer::Pkcs8(inner()?.into()), id)),
        pkcs12::PKCS_12_CERT_BAG_OID => {
            let bag = CertBag::from_der(&inner()?).map_err(|e| format!("unreadable certificate bag ({e})"))?;
            if bag.cert_id != pkcs12::PKCS_12_X509_CERT_OID {
                return Ok(()); // SDSI certificates: nothing TLS uses.
            }
            out.certificates.push((CertificateDer::from(bag.cert_value.as_bytes().to_vec()), id));
        }
        // CRLs, secrets and nested contents: nothing a TLS listener uses.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with OpenSSL 3 (`openssl pkcs12 -export`, password `changeit`; `-legacy` for the
    // legacy one) from the self-signed throwaway `cert.pem` / `key.pem` beside them.
    const KEYSTORE: &[u8] = include_bytes!("testdata/keystore.p12");
    const TRUSTSTORE: &[u8] = include_bytes!("testdata/truststore.p12");
    const LEGACY: &[u8] = include_bytes!("testdata/legacy.p12");

    fn pem_cert() -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(include_bytes!("testdata/cert.pem")).unwrap()
    }

    #[test]
    fn an_openssl_keystore_gives_its_key_and_certificate() {
        use rustls::pki_types::pem::PemObject;
        let (chain, key) = read(KEYSTORE, "changeit", None).unwrap().key_and_chain().unwrap();
        assert_eq!(chain, vec![pem_cert()]);
        let pem_key = PrivateKeyDer::from_pem_slice(include_bytes!("testdata/key.pem")).unwrap();
        assert_eq!(key.secret_der(), pem_key.secret_der());
    }

    #[test]
    fn a_truststore_gives_certificates_only() {
        let c = read(TRUSTSTORE, "changeit", None).unwrap();
        assert!(c.keys.is_empty());
        assert_eq!(c.certificates.into_iter().map(|(c, _)| c).collect::<Vec<_>>(), vec![pem_cert()]);
    }

    #[test]
    fn a_wrong_key_password_is_named() {
        let e = read(KEYSTORE, "changeit", Some("other")).unwrap_err();
        assert!(e.contains("cannot decrypt the private key"), "{e}");
    }

    #[test]
    fn a_wrong_password_is_named() {
        let e = read(KEYSTORE, "changeme", None).unwrap_err();
        assert!(e.contains("wrong password"), "{e}");
    }

    #[test]
    fn legacy_encryption_is_refused_with_the_way_out() {
        let e = read(LEGACY, "changeit", None).unwrap_err();
        assert!(e.contains("legacy PKCS#12") && e.contains("openssl pkcs12 -export"), "{e}");
    }

    #[test]
    fn garbage_is_refused_with_words() {
        assert!(read(b"not a store", "pw", None).unwrap_err().contains("not a PKCS#12 file"));
        assert!(read(&[], "pw", None).unwrap_err().contains("not a PKCS#12 file"));
    }

    #[test]
    fn a_keystore_needs_one_key() {
        let c = Contents::default();
        assert!(c.key_and_chain().unwrap_err().contains("0 private keys"));
    }

    #[test]
    fn the_keys_own_certificate_comes_first() {
        let c = Contents {
            keys: vec![(PrivateKeyDer::Pkcs8(vec![1].into()), Some(vec![7]))],
            certificates: vec![(CertificateDer::from(vec![10]), None), (CertificateDer::from(vec![11]), Some(vec![7]))],
        };
        let (chain, _) = c.key_and_chain().unwrap();
        assert_eq!(chain.iter().map(|c| c.as_ref()[0]).collect::<Vec<_>>(), vec![11, 10]);
    }
}
