//! JSON Web Signatures as ACME (RFC 8555 §6.2) sends them: the flattened JSON serialization,
//! a protected header naming `alg`, `nonce`, `url` and exactly one of `jwk` or `kid`, signed
//! with ES256, ES384, RS256 or EdDSA (Ed25519); `none` and MACs are refused, except HS256 for
//! the External Account Binding's inner JWS, checked with its own function. Everything here
//! reads attacker bytes before any signature is known good: it returns errors, never panics.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Largest JWS Mamori reads (the CSR in a finalize is the biggest honest payload).
pub const MAX_JWS_BYTES: usize = 64 * 1024;

/// Why a JWS was refused; the ACME layer maps these to `malformed`, `badSignatureAlgorithm`,
/// `badPublicKey` or `unauthorized`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not a flattened JWS of the expected shape.
    #[error("malformed JWS: {0}")]
    Malformed(String),
    /// An algorithm Mamori does not accept (`none`, MACs, unknown names) or one that does not
    /// fit the key.
    #[error("unsupported signature algorithm {0} (ES256, ES384, RS256 or EdDSA)")]
    BadAlgorithm(String),
    /// A key that cannot be used (unknown type or curve, short RSA, bad point).
    #[error("unusable public key: {0}")]
    BadKey(String),
    /// The signature does not verify.
    #[error("the JWS signature does not verify")]
    BadSignature,
}

fn malformed(reason: impl Into<String>) -> JwsError {
    JwsError::Malformed(reason.into())
}

/// Base64url without padding, strictly (RFC 7515 §2).
pub fn b64url_decode(text: &str) -> Result<Vec<u8>, JwsError> {
    if text.contains('=') {
        return Err(malformed("base64url must not be padded"));
    }
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| malformed("invalid base64url"))
}

/// Base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A signature algorithm Mamori accepts for account keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// Ed25519.
    EdDsa,
}

impl Algorithm {
    /// The algorithm named by a header's `alg`.
    pub fn parse(name: &str) -> Result<Algorithm, JwsError> {
        match name {
            "ES256" => Ok(Algorithm::Es256),
            "ES384" => Ok(Algorithm::Es384),
            "RS256" => Ok(Algorithm::Rs256),
            "EdDSA" => Ok(Algorithm::EdDsa),
            other => Err(JwsError::BadAlgorithm(crate::text::escape_untrusted(
                other, 32,
            ))),
        }
    }

    /// The names the directory advertises.
    pub const NAMES: [&'static str; 4] = ["ES256", "ES384", "RS256", "EdDSA"];
}

/// A public JSON Web Key of a type Mamori accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jwk {
    /// An EC key on P-256 or P-384: the curve name and the uncompressed point.
    Ec {
        /// `P-256` or `P-384`.
        crv: String,
        /// X coordinate.
        x: Vec<u8>,
        /// Y coordinate.
        y: Vec<u8>,
    },
    /// An RSA key (2048 bits at least).
    Rsa {
        /// Modulus, big-endian without leading zeros.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// An Ed25519 key.
    Ed25519 {
        /// The 32-byte public key.
        x: Vec<u8>,
    },
}

fn member<'a>(object: &'a serde_json::Map<String, Value>, name: &str) -> Result<&'a str, JwsError> {
    object
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| JwsError::BadKey(format!("the key has no string member {name}")))
}

fn key_bytes(object: &serde_json::Map<String, Value>, name: &str) -> Result<Vec<u8>, JwsError> {
    b64url_decode(member(object, name)?)
        .map_err(|_| JwsError::BadKey(format!("member {name} is not base64url")))
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

impl Jwk {
    /// Reads a JWK from its JSON object, checking sizes and that EC points lie on the curve.
    pub fn from_value(value: &Value) -> Result<Jwk, JwsError> {
        let object = value
            .as_object()
            .ok_or_else(|| JwsError::BadKey("the jwk is not an object".into()))?;
        if object.contains_key("d") || object.contains_key("k") {
            return Err(JwsError::BadKey(
                "the jwk holds private key material".into(),
            ));
        }
        let jwk = match member(object, "kty")? {
            "EC" => {
                let crv = member(object, "crv")?.to_string();
                let size = match crv.as_str() {
                    "P-256" => 32,
                    "P-384" => 48,
                    _ => return Err(JwsError::BadKey("EC keys must be on P-256 or P-384".into())),
                };
                let (x, y) = (key_bytes(object, "x")?, key_bytes(object, "y")?);
                if x.len() != size || y.len() != size {
                    return Err(JwsError::BadKey(format!(
                        "{crv} coordinates are {size} bytes"
                    )));
                }
                Jwk::Ec { crv, x, y }
            }
            "RSA" => {
                let n = strip_zeros(&key_bytes(object, "n")?).to_vec();
                let e = strip_zeros(&key_bytes(object, "e")?).to_vec();
                if n.len() < 256 || n.len() > 1024 {
                    return Err(JwsError::BadKey(
                        "RSA keys must have 2048 to 8192 bits".into(),
                    ));
                }
                if e.is_empty() || e.len() > 4 || e[e.len() - 1] & 1 == 0 {
                    return Err(JwsError::BadKey("the RSA exponent is unusable".into()));
                }
                Jwk::Rsa { n, e }
            }
            "OKP" => {
                if member(object, "crv")? != "Ed25519" {
                    return Err(JwsError::BadKey("OKP keys must be Ed25519".into()));
                }
                let x = key_bytes(object, "x")?;
                if x.len() != 32 {
                    return Err(JwsError::BadKey("Ed25519 keys are 32 bytes".into()));
                }
                Jwk::Ed25519 { x }
            }
            other => {
                return Err(JwsError::BadKey(format!(
                    "key type {} is not accepted",
                    crate::text::escape_untrusted(other, 16)
                )))
            }
        };
        if let Jwk::Ec { .. } = &jwk {
            // A point off the curve fails here rather than at the first signature.
            jwk.check_point()?;
        }
        Ok(jwk)
    }

    fn check_point(&self) -> Result<(), JwsError> {
        if let Jwk::Ec { crv, x, y } = self {
            let mut point = vec![4u8];
            point.extend_from_slice(x);
            point.extend_from_slice(y);
            let ok = match crv.as_str() {
                "P-256" => p256::PublicKey::from_sec1_bytes(&point).is_ok(),
                _ => p384::PublicKey::from_sec1_bytes(&point).is_ok(),
            };
            if !ok {
                return Err(JwsError::BadKey("the EC point is not on its curve".into()));
            }
        }
        Ok(())
    }

    /// The key as canonical JSON (RFC 7638 §3: required members only, in lexicographic order):
    /// what the thumbprint hashes and what Mamori stores.
    pub fn canonical_json(&self) -> String {
        match self {
            Jwk::Ec { crv, x, y } => format!(
                r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                b64url(x),
                b64url(y)
            ),
            Jwk::Rsa { n, e } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64url(e), b64url(n))
            }
            Jwk::Ed25519 { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64url(x)),
        }
    }

    /// The RFC 7638 thumbprint (SHA-256), base64url: the account key's identity in key
    /// authorizations and in Mamori's account table.
    pub fn thumbprint(&self) -> String {
        b64url(&Sha256::digest(self.canonical_json().as_bytes()))
    }

    /// Checks `signature` over `input` with this key under `alg`; the algorithm must fit the
    /// key (ES256 with P-256, ES384 with P-384, RS256 with RSA, EdDSA with Ed25519).
    pub fn verify(&self, alg: Algorithm, input: &[u8], signature: &[u8]) -> Result<(), JwsError> {
        use ring::signature as sig;
        let result =
            match (self, alg) {
                (Jwk::Ec { crv, x, y }, Algorithm::Es256 | Algorithm::Es384) => {
                    let scheme: &dyn sig::VerificationAlgorithm = match (crv.as_str(), alg) {
                        ("P-256", Algorithm::Es256) => &sig::ECDSA_P256_SHA256_FIXED,
                        ("P-384", Algorithm::Es384) => &sig::ECDSA_P384_SHA384_FIXED,
                        _ => return Err(JwsError::BadAlgorithm(format!("{alg:?} with {crv}"))),
                    };
                    let mut point = vec![4u8];
                    point.extend_from_slice(x);
                    point.extend_from_slice(y);
                    sig::UnparsedPublicKey::new(scheme, point).verify(input, signature)
                }
                (Jwk::Rsa { n, e }, Algorithm::Rs256) => sig::RsaPublicKeyComponents { n, e }
                    .verify(&sig::RSA_PKCS1_2048_8192_SHA256, input, signature),
                (Jwk::Ed25519 { x }, Algorithm::EdDsa) => {
                    sig::UnparsedPublicKey::new(&sig::ED25519, x).verify(input, signature)
                }
                _ => {
                    return Err(JwsError::BadAlgorithm(format!(
                        "{alg:?} does not fit this key type"
                    )))
                }
            };
        result.map_err(|_| JwsError::BadSignature)
    }
}

/// The flattened JSON serialization (RFC 7515 §7.2.2) as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlattenedJws {
    /// Base64url protected header.
    pub protected: String,
    /// Base64url payload (empty for POST-as-GET).
    pub payload: String,
    /// Base64url signature.
    pub signature: String,
}

/// Who signed: a new key (newAccount, revocation by certificate key) or an account URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// The `jwk` header member.
    Key(Jwk),
    /// The `kid` header member: an account URL.
    Account(String),
}

/// A protected header's members ACME uses.
#[derive(Debug, Clone)]
pub struct Header {
    /// The signature algorithm.
    pub alg: Algorithm,
    /// The replay nonce (absent only in keyChange's inner JWS).
    pub nonce: Option<String>,
    /// The URL the request was sent to.
    pub url: String,
    /// The key or the account.
    pub signer: Signer,
}

/// A JWS whose shape and header are read but whose signature is not yet checked (the
/// account key is looked up by `kid` first).
#[derive(Debug, Clone)]
pub struct UnverifiedJws {
    /// The protected header.
    pub header: Header,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
    payload: Vec<u8>,
}

impl UnverifiedJws {
    /// Parses a request body: size, flattened shape, protected header (no `crit`, no `b64`,
    /// exactly one of `jwk` and `kid`, an accepted `alg`).
    pub fn parse(body: &[u8]) -> Result<UnverifiedJws, JwsError> {
        if body.len() > MAX_JWS_BYTES {
            return Err(malformed(format!(
                "the JWS is larger than {MAX_JWS_BYTES} bytes"
            )));
        }
        let jws: FlattenedJws = serde_json::from_slice(body)
            .map_err(|_| malformed("the body is not a flattened JSON JWS"))?;
        Self::from_flattened(&jws)
    }

    /// Reads a JWS already deserialized (keyChange's inner JWS).
    pub fn from_flattened(jws: &FlattenedJws) -> Result<UnverifiedJws, JwsError> {
        let header_bytes = b64url_decode(&jws.protected)?;
        let header: Value = serde_json::from_slice(&header_bytes)
            .map_err(|_| malformed("the protected header is not JSON"))?;
        let object = header
            .as_object()
            .ok_or_else(|| malformed("the protected header is not an object"))?;
        for forbidden in ["crit", "b64", "x5c", "x5u", "jku"] {
            if object.contains_key(forbidden) {
                return Err(malformed(format!(
                    "header member {forbidden} is not accepted"
                )));
            }
        }
        let alg_name = object
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("the header has no alg"))?;
        let alg = Algorithm::parse(alg_name)?;
        let url = object
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("the header has no url"))?
            .to_string();
        let nonce = match object.get("nonce") {
            None => None,
            Some(Value::String(n)) => Some(n.clone()),
            Some(_) => return Err(malformed("the nonce is not a string")),
        };
        let signer = match (object.get("jwk"), object.get("kid")) {
            (Some(jwk), None) => Signer::Key(Jwk::from_value(jwk)?),
            (None, Some(Value::String(kid))) => Signer::Account(kid.clone()),
            _ => return Err(malformed("the header needs exactly one of jwk and kid")),
        };
        let signature = b64url_decode(&jws.signature)?;
        let payload = b64url_decode(&jws.payload)?;
        let mut signing_input = Vec::with_capacity(jws.protected.len() + jws.payload.len() + 1);
        signing_input.extend_from_slice(jws.protected.as_bytes());
        signing_input.push(b'.');
        signing_input.extend_from_slice(jws.payload.as_bytes());
        Ok(UnverifiedJws {
            header: Header {
                alg,
                nonce,
                url,
                signer,
            },
            signing_input,
            signature,
            payload,
        })
    }

    /// Checks the signature with `key` and hands back the payload bytes.
    pub fn verify(self, key: &Jwk) -> Result<Vec<u8>, JwsError> {
        key.verify(self.header.alg, &self.signing_input, &self.signature)?;
        Ok(self.payload)
    }
}

/// Checks an External Account Binding (RFC 8555 §7.3.4): a JWS whose header names `HS256`,
/// the EAB key id `kid` and the newAccount `url`, whose payload is the account key, MAC'd with
/// the EAB key. Returns the key id it names (the caller looks the key up, then calls again
/// with it via [`verify_eab_mac`]).
pub fn eab_key_id(eab: &Value, url: &str, account_key: &Jwk) -> Result<String, JwsError> {
    let jws: FlattenedJws = serde_json::from_value(eab.clone())
        .map_err(|_| malformed("externalAccountBinding is not a flattened JWS"))?;
    let header: Value = serde_json::from_slice(&b64url_decode(&jws.protected)?)
        .map_err(|_| malformed("the binding's header is not JSON"))?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(JwsError::BadAlgorithm(
            "the external account binding must use HS256".into(),
        ));
    }
    if header.get("nonce").is_some() {
        return Err(malformed("the binding must not carry a nonce"));
    }
    if header.get("url").and_then(Value::as_str) != Some(url) {
        return Err(malformed("the binding's url is not this newAccount URL"));
    }
    let payload: Value = serde_json::from_slice(&b64url_decode(&jws.payload)?)
        .map_err(|_| malformed("the binding's payload is not a JWK"))?;
    if Jwk::from_value(&payload)? != *account_key {
        return Err(malformed("the binding names another account key"));
    }
    header
        .get("kid")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| malformed("the binding has no kid"))
}

/// Checks the binding's HMAC-SHA256 with the EAB key, in constant time.
pub fn verify_eab_mac(eab: &Value, mac_key: &[u8]) -> Result<(), JwsError> {
    let jws: FlattenedJws = serde_json::from_value(eab.clone())
        .map_err(|_| malformed("externalAccountBinding is not a flattened JWS"))?;
    let signature = b64url_decode(&jws.signature)?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, mac_key);
    let input = format!("{}.{}", jws.protected, jws.payload);
    ring::hmac::verify(&key, input.as_bytes(), &signature).map_err(|_| JwsError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn es256_key() -> (ring::signature::EcdsaKeyPair, Jwk) {
        let rng = ring::rand::SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        use ring::signature::KeyPair;
        let point = pair.public_key().as_ref().to_vec();
        let jwk = Jwk::Ec {
            crv: "P-256".into(),
            x: point[1..33].to_vec(),
            y: point[33..].to_vec(),
        };
        (pair, jwk)
    }

    fn sign(pair: &ring::signature::EcdsaKeyPair, header: Value, payload: &[u8]) -> Vec<u8> {
        let protected = b64url(header.to_string().as_bytes());
        let payload = b64url(payload);
        let rng = ring::rand::SystemRandom::new();
        let signature = pair
            .sign(&rng, format!("{protected}.{payload}").as_bytes())
            .unwrap();
        json!({"protected": protected, "payload": payload, "signature": b64url(signature.as_ref())})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_signed_request_verifies_and_a_changed_one_does_not() {
        let (pair, jwk) = es256_key();
        let jwk_json: Value = serde_json::from_str(&jwk.canonical_json()).unwrap();
        let body = sign(
            &pair,
            json!({"alg": "ES256", "nonce": "n1", "url": "https://ca/acme/x", "jwk": jwk_json}),
            b"{}",
        );
        let parsed = UnverifiedJws::parse(&body).unwrap();
        assert_eq!(parsed.header.signer, Signer::Key(jwk.clone()));
        assert_eq!(parsed.header.nonce.as_deref(), Some("n1"));
        assert_eq!(parsed.clone().verify(&jwk).unwrap(), b"{}");
        let (_, other) = es256_key();
        assert_eq!(parsed.verify(&other), Err(JwsError::BadSignature));
        // The payload swapped under the same signature.
        let mut value: Value = serde_json::from_slice(&body).unwrap();
        value["payload"] = json!(b64url(b"{\"a\":1}"));
        let swapped = UnverifiedJws::parse(value.to_string().as_bytes()).unwrap();
        assert_eq!(swapped.verify(&jwk), Err(JwsError::BadSignature));
    }

    #[test]
    fn none_macs_and_mismatched_algorithms_are_refused() {
        let (pair, jwk) = es256_key();
        let jwk_json: Value = serde_json::from_str(&jwk.canonical_json()).unwrap();
        for alg in ["none", "HS256", "ES512", "PS256"] {
            let body = sign(&pair, json!({"alg": alg, "url": "u", "jwk": jwk_json}), b"");
            assert!(matches!(
                UnverifiedJws::parse(&body),
                Err(JwsError::BadAlgorithm(_))
            ));
        }
        let body = sign(
            &pair,
            json!({"alg": "RS256", "url": "u", "jwk": jwk_json}),
            b"",
        );
        let parsed = UnverifiedJws::parse(&body).unwrap();
        assert!(matches!(
            parsed.verify(&jwk),
            Err(JwsError::BadAlgorithm(_))
        ));
        let both = sign(
            &pair,
            json!({"alg": "ES256", "url": "u", "jwk": jwk_json, "kid": "k"}),
            b"",
        );
        assert!(matches!(
            UnverifiedJws::parse(&both),
            Err(JwsError::Malformed(_))
        ));
        let oversize = vec![b' '; MAX_JWS_BYTES + 1];
        assert!(matches!(
            UnverifiedJws::parse(&oversize),
            Err(JwsError::Malformed(_))
        ));
    }

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // RFC 7638 §3.1.
        let key = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let jwk = Jwk::from_value(&key).unwrap();
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn off_curve_points_short_rsa_and_private_keys_are_refused() {
        let bad_point =
            json!({"kty": "EC", "crv": "P-256", "x": b64url(&[1u8; 32]), "y": b64url(&[2u8; 32])});
        assert!(matches!(
            Jwk::from_value(&bad_point),
            Err(JwsError::BadKey(_))
        ));
        let short = json!({"kty": "RSA", "n": b64url(&[0xffu8; 128]), "e": "AQAB"});
        assert!(matches!(Jwk::from_value(&short), Err(JwsError::BadKey(_))));
        let private = json!({"kty": "oct", "k": "AAAA"});
        assert!(matches!(
            Jwk::from_value(&private),
            Err(JwsError::BadKey(_))
        ));
    }

    #[test]
    fn an_external_account_binding_checks_url_key_and_mac() {
        let (_, jwk) = es256_key();
        let jwk_json: Value = serde_json::from_str(&jwk.canonical_json()).unwrap();
        let mac_key = [7u8; 32];
        let protected = b64url(
            json!({"alg": "HS256", "kid": "eab_1", "url": "https://ca/acme/p/new-account"})
                .to_string()
                .as_bytes(),
        );
        let payload = b64url(jwk_json.to_string().as_bytes());
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &mac_key);
        let tag = ring::hmac::sign(&key, format!("{protected}.{payload}").as_bytes());
        let eab =
            json!({"protected": protected, "payload": payload, "signature": b64url(tag.as_ref())});
        assert_eq!(
            eab_key_id(&eab, "https://ca/acme/p/new-account", &jwk).unwrap(),
            "eab_1"
        );
        assert!(verify_eab_mac(&eab, &mac_key).is_ok());
        assert_eq!(
            verify_eab_mac(&eab, &[8u8; 32]),
            Err(JwsError::BadSignature)
        );
        assert!(eab_key_id(&eab, "https://ca/acme/q/new-account", &jwk).is_err());
        let (_, other) = es256_key();
        assert!(eab_key_id(&eab, "https://ca/acme/p/new-account", &other).is_err());
    }
}
