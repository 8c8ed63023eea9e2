//! Public JSON Web Keys (RFC 7517/7518) for ACME account keys.
//!
//! A [`Jwk`] can only be obtained through validation ([`Jwk::from_json`]) or
//! from one of our own signing keys, so holding one means: a supported key
//! type, a point on its curve, or an RSA modulus of 2048..=4096 bits with
//! e = 65537. The stored bytes are canonical (exact coordinate lengths, no
//! leading zero in `n`), which makes equality, [`Jwk::thumbprint`] (RFC 7638)
//! and [`Jwk::to_json`] agree with each other.

use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use serde_json::{Map, Value};
use std::fmt;

use crate::{Alg, JoseError, b64};

/// The only RSA public exponent we accept (RFC 8555 servers commonly insist
/// on it; small exponents have a history of padding attacks).
const RSA_E_65537: [u8; 3] = [1, 0, 1];
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 4096;

/// JWK members that carry private key material; a client must never send them.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The kind of a validated [`Jwk`]; it fixes which JWS `alg`s may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `kty: EC`, `crv: P-256` (alg ES256).
    EcP256,
    /// `kty: EC`, `crv: P-384` (alg ES384).
    EcP384,
    /// `kty: RSA`, 2048..=4096 bits, e = 65537 (alg RS256 or PS256).
    Rsa,
    /// `kty: OKP`, `crv: Ed25519` (alg EdDSA).
    Ed25519,
}

/// A validated public key. See the module docs for the invariants.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Jwk(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    EcP256 {
        x: [u8; 32],
        y: [u8; 32],
    },
    EcP384 {
        x: [u8; 48],
        y: [u8; 48],
    },
    /// Modulus, big-endian without leading zero; e is always 65537.
    Rsa {
        n: Vec<u8>,
    },
    Ed25519 {
        x: [u8; 32],
    },
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jwk({:?}, {})", self.key_type(), self.thumbprint_b64())
    }
}

impl Jwk {
    /// Parses and validates a public JWK.
    ///
    /// Unknown members (`alg`, `use`, `kid`, ...) are ignored as RFC 7517
    /// requires; private members are rejected.
    ///
    /// # Errors
    /// [`JoseError::Malformed`] if `value` is not an object or a member is not
    /// a base64url string; [`JoseError::BadPublicKey`] for unsupported or
    /// invalid keys.
    pub fn from_json(value: &Value) -> Result<Self, JoseError> {
        let obj = value
            .as_object()
            .ok_or_else(|| JoseError::malformed("jwk must be a JSON object"))?;
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
            return Err(JoseError::bad_key(format!(
                "jwk contains private key member \"{m}\"; send only the public key"
            )));
        }
        match str_member(obj, "kty")?.as_str() {
            "EC" => Self::ec_from_json(obj),
            "RSA" => Self::rsa_from_json(obj),
            "OKP" => Self::okp_from_json(obj),
            other => Err(JoseError::bad_key(format!(
                "unsupported jwk kty \"{other}\"; use EC (P-256, P-384), RSA or OKP (Ed25519)"
            ))),
        }
    }

    fn ec_from_json(obj: &Map<String, Value>) -> Result<Self, JoseError> {
        let crv = str_member(obj, "crv")?;
        let x = b64_member(obj, "x")?;
        let y = b64_member(obj, "y")?;
        match crv.as_str() {
            "P-256" => Self::ec_p256(&fixed(&x, "x", "P-256")?, &fixed(&y, "y", "P-256")?),
            "P-384" => Self::ec_p384(&fixed(&x, "x", "P-384")?, &fixed(&y, "y", "P-384")?),
            other => Err(JoseError::bad_key(format!(
                "unsupported EC curve \"{other}\"; use P-256 or P-384"
            ))),
        }
    }

    fn rsa_from_json(obj: &Map<String, Value>) -> Result<Self, JoseError> {
        let n = b64_member(obj, "n")?;
        let e = b64_member(obj, "e")?;
        if e != RSA_E_65537 {
            return Err(JoseError::bad_key(
                "RSA public exponent must be 65537 (\"AQAB\")",
            ));
        }
        Self::rsa(n)
    }

    fn okp_from_json(obj: &Map<String, Value>) -> Result<Self, JoseError> {
        let crv = str_member(obj, "crv")?;
        if crv != "Ed25519" {
            return Err(JoseError::bad_key(format!(
                "unsupported OKP curve \"{crv}\"; only Ed25519 is accepted"
            )));
        }
        let x = b64_member(obj, "x")?;
        Self::ed25519(&fixed(&x, "x", "Ed25519")?)
    }

    /// Builds a P-256 key, checking that (x, y) is on the curve.
    pub(crate) fn ec_p256(x: &[u8; 32], y: &[u8; 32]) -> Result<Self, JoseError> {
        let jwk = Self(Repr::EcP256 { x: *x, y: *y });
        jwk.parsed_key(Alg::Es256)?;
        Ok(jwk)
    }

    /// Builds a P-384 key, checking that (x, y) is on the curve.
    pub(crate) fn ec_p384(x: &[u8; 48], y: &[u8; 48]) -> Result<Self, JoseError> {
        let jwk = Self(Repr::EcP384 { x: *x, y: *y });
        jwk.parsed_key(Alg::Es384)?;
        Ok(jwk)
    }

    /// Builds an RSA key (e = 65537) from its big-endian modulus.
    pub(crate) fn rsa(n: Vec<u8>) -> Result<Self, JoseError> {
        // A leading zero octet would give the same key a second encoding and
        // thus a second thumbprint (RFC 7518 §6.3.1.1 forbids it).
        let first = match n.first() {
            None | Some(0) => {
                return Err(JoseError::bad_key(
                    "RSA modulus must not be empty or start with a zero octet",
                ));
            }
            Some(b) => *b,
        };
        let bits = n.len() * 8 - first.leading_zeros() as usize;
        if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
            return Err(JoseError::bad_key(format!(
                "RSA modulus is {bits} bits; it must be between {RSA_MIN_BITS} and {RSA_MAX_BITS} bits"
            )));
        }
        let jwk = Self(Repr::Rsa { n });
        jwk.parsed_key(Alg::Rs256)?;
        Ok(jwk)
    }

    /// Builds an Ed25519 key from its 32-byte public value.
    pub(crate) fn ed25519(x: &[u8; 32]) -> Result<Self, JoseError> {
        let jwk = Self(Repr::Ed25519 { x: *x });
        jwk.parsed_key(Alg::EdDsa)?;
        Ok(jwk)
    }

    /// The key type, which decides the acceptable JWS algorithms.
    #[must_use]
    pub fn key_type(&self) -> KeyType {
        match self.0 {
            Repr::EcP256 { .. } => KeyType::EcP256,
            Repr::EcP384 { .. } => KeyType::EcP384,
            Repr::Rsa { .. } => KeyType::Rsa,
            Repr::Ed25519 { .. } => KeyType::Ed25519,
        }
    }

    /// The RFC 7638 canonical JSON: required members only, in lexicographic
    /// order, no whitespace. All values are base64url or fixed ASCII, so no
    /// JSON escaping is ever needed.
    fn canonical_json(&self) -> String {
        match &self.0 {
            Repr::EcP256 { x, y } => ec_json("P-256", x, y),
            Repr::EcP384 { x, y } => ec_json("P-384", x, y),
            Repr::Rsa { n } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                b64::encode(RSA_E_65537),
                b64::encode(n)
            ),
            Repr::Ed25519 { x } => {
                format!(
                    r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                    b64::encode(x)
                )
            }
        }
    }

    /// The canonical JSON form (the RFC 7638 member set).
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: String| m.insert(k.to_owned(), Value::String(v));
        match &self.0 {
            Repr::EcP256 { x, y } => {
                put("crv", "P-256".into());
                put("kty", "EC".into());
                put("x", b64::encode(x));
                put("y", b64::encode(y));
            }
            Repr::EcP384 { x, y } => {
                put("crv", "P-384".into());
                put("kty", "EC".into());
                put("x", b64::encode(x));
                put("y", b64::encode(y));
            }
            Repr::Rsa { n } => {
                put("e", b64::encode(RSA_E_65537));
                put("kty", "RSA".into());
                put("n", b64::encode(n));
            }
            Repr::Ed25519 { x } => {
                put("crv", "Ed25519".into());
                put("kty", "OKP".into());
                put("x", b64::encode(x));
            }
        }
        Value::Object(m)
    }

    /// RFC 7638 JWK thumbprint with SHA-256.
    #[must_use]
    pub fn thumbprint(&self) -> [u8; 32] {
        let d = digest::digest(&digest::SHA256, self.canonical_json().as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    /// [`Jwk::thumbprint`] as unpadded base64url.
    #[must_use]
    pub fn thumbprint_b64(&self) -> String {
        b64::encode(self.thumbprint())
    }

    /// The ACME key authorization for a challenge token (RFC 8555 §8.1).
    #[must_use]
    pub fn key_authorization(&self, token: &str) -> String {
        format!("{token}.{}", self.thumbprint_b64())
    }

    /// DER `SubjectPublicKeyInfo` of the key, e.g. to compare an account key
    /// with the key of a CSR or certificate (byte equality).
    ///
    /// # Errors
    /// [`JoseError::BadPublicKey`] if the crypto library cannot encode the key
    /// (not expected for a validated key).
    pub fn spki_der(&self) -> Result<Vec<u8>, JoseError> {
        let der: Result<PublicKeyX509Der<'static>, _> = match &self.0 {
            Repr::Rsa { n } => RsaPublicKeyComponents {
                n: n.as_slice(),
                e: &RSA_E_65537[..],
            }
            .as_der(),
            _ => self.parsed_key(self.default_alg())?.as_der(),
        };
        der.map(|d| d.as_ref().to_vec())
            .map_err(|_| JoseError::bad_key("cannot encode the public key as SPKI"))
    }

    /// The exact signature length for this key: r||s for ECDSA, the modulus
    /// length for RSA (RFC 7518 §3.3 keeps leading zeros), 64 for Ed25519.
    pub(crate) fn signature_len(&self) -> usize {
        match &self.0 {
            Repr::EcP256 { .. } | Repr::Ed25519 { .. } => 64,
            Repr::EcP384 { .. } => 96,
            Repr::Rsa { n } => n.len(),
        }
    }

    /// The JWS algorithm used when only the key is known (validation, SPKI).
    fn default_alg(&self) -> Alg {
        match self.0 {
            Repr::EcP256 { .. } => Alg::Es256,
            Repr::EcP384 { .. } => Alg::Es384,
            Repr::Rsa { .. } => Alg::Rs256,
            Repr::Ed25519 { .. } => Alg::EdDsa,
        }
    }

    /// Whether `alg` is a valid algorithm for this key type. The verifier is
    /// chosen from the key, never from the client's `alg` alone.
    #[must_use]
    pub fn accepts(&self, alg: Alg) -> bool {
        matches!(
            (&self.0, alg),
            (Repr::EcP256 { .. }, Alg::Es256)
                | (Repr::EcP384 { .. }, Alg::Es384)
                | (Repr::Rsa { .. }, Alg::Rs256 | Alg::Ps256)
                | (Repr::Ed25519 { .. }, Alg::EdDsa)
        )
    }

    /// The aws-lc-rs verification key for `alg`; parsing validates curve
    /// membership and RSA structure.
    pub(crate) fn parsed_key(&self, alg: Alg) -> Result<ParsedPublicKey, JoseError> {
        if !self.accepts(alg) {
            return Err(JoseError::bad_alg(format!(
                "JWS alg \"{}\" does not match the {} key; use {}",
                alg.as_str(),
                self.key_type().describe(),
                self.default_alg().as_str()
            )));
        }
        let parsed = match (&self.0, alg) {
            (Repr::EcP256 { x, y }, _) => {
                ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, sec1_point(x, y))
            }
            (Repr::EcP384 { x, y }, _) => {
                ParsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, sec1_point(x, y))
            }
            (Repr::Ed25519 { x }, _) => ParsedPublicKey::new(&signature::ED25519, x),
            (Repr::Rsa { n }, alg) => {
                let params = if alg == Alg::Ps256 {
                    &signature::RSA_PSS_2048_8192_SHA256
                } else {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                };
                RsaPublicKeyComponents {
                    n: n.as_slice(),
                    e: &RSA_E_65537[..],
                }
                .to_parsed_public_key(params)
            }
        };
        parsed.map_err(|_| {
            let what = match self.key_type() {
                KeyType::EcP256 | KeyType::EcP384 => "(x, y) is not a point on the curve",
                KeyType::Rsa => "the modulus is not a usable RSA modulus",
                KeyType::Ed25519 => "x is not a valid Ed25519 public key",
            };
            JoseError::bad_key(format!(
                "invalid {} public key: {what}",
                self.key_type().describe()
            ))
        })
    }
}

impl KeyType {
    /// A short human description for error details.
    fn describe(self) -> &'static str {
        match self {
            Self::EcP256 => "EC P-256",
            Self::EcP384 => "EC P-384",
            Self::Rsa => "RSA",
            Self::Ed25519 => "Ed25519",
        }
    }
}

fn ec_json(crv: &str, x: &[u8], y: &[u8]) -> String {
    format!(
        r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
        b64::encode(x),
        b64::encode(y)
    )
}

/// Uncompressed SEC1 point `04 || x || y`.
fn sec1_point(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(1 + x.len() + y.len());
    p.push(4);
    p.extend_from_slice(x);
    p.extend_from_slice(y);
    p
}

fn str_member(obj: &Map<String, Value>, name: &str) -> Result<String, JoseError> {
    match obj.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(JoseError::malformed(format!(
            "jwk member \"{name}\" must be a string"
        ))),
        None => Err(JoseError::bad_key(format!(
            "jwk member \"{name}\" is missing"
        ))),
    }
}

fn b64_member(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, JoseError> {
    b64::decode(&str_member(obj, name)?, &format!("jwk member \"{name}\""))
}

/// Requires an exact coordinate length (RFC 7518 §6.2.1.2: full length, with
/// leading zeros kept).
fn fixed<const N: usize>(bytes: &[u8], name: &str, crv: &str) -> Result<[u8; N], JoseError> {
    bytes.try_into().map_err(|_| {
        JoseError::bad_key(format!(
            "jwk member \"{name}\" for {crv} must be exactly {N} bytes, got {}",
            bytes.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 7638 §3.1 example key.
    fn rfc7638_key() -> Value {
        json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        })
    }

    #[test]
    fn rfc7638_thumbprint_vector() {
        let jwk = Jwk::from_json(&rfc7638_key()).unwrap();
        assert_eq!(jwk.key_type(), KeyType::Rsa);
        assert_eq!(
            jwk.thumbprint_b64(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(
            jwk.key_authorization("tok"),
            "tok.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // to_json drops optional members and round-trips.
        let canon = jwk.to_json();
        assert_eq!(canon.as_object().unwrap().len(), 3);
        assert_eq!(Jwk::from_json(&canon).unwrap(), jwk);
        let der = jwk.spki_der().unwrap();
        assert_eq!(der[0], 0x30);
    }

    #[test]
    fn ec_and_okp_round_trip() {
        for key in [
            crate::sign::SigningKey::generate(crate::Alg::Es256).unwrap(),
            crate::sign::SigningKey::generate(crate::Alg::Es384).unwrap(),
            crate::sign::SigningKey::generate(crate::Alg::EdDsa).unwrap(),
        ] {
            let jwk = key.public_jwk();
            let json = jwk.to_json();
            let s = serde_json::to_string(&json).unwrap();
            assert_eq!(s, jwk.canonical_json());
            let back = Jwk::from_json(&json).unwrap();
            assert_eq!(&back, jwk);
            assert_eq!(back.thumbprint(), jwk.thumbprint());
            assert!(!jwk.spki_der().unwrap().is_empty());
        }
    }

    #[test]
    fn rejects_weak_or_invalid_keys() {
        let ok = crate::sign::SigningKey::generate(crate::Alg::Es256).unwrap();
        let ec = ok.public_jwk().to_json();
        let mut off_curve = ec.clone();
        // Flip the last byte of y: overwhelmingly likely off the curve.
        let mut y = b64::decode(ec["y"].as_str().unwrap(), "y").unwrap();
        y[31] ^= 1;
        off_curve["y"] = json!(b64::encode(&y));
        let mut short_x = ec.clone();
        short_x["x"] = json!(b64::encode([1u8; 31]));
        let mut with_d = ec.clone();
        with_d["d"] = json!("AAAA");
        let mut p521 = ec.clone();
        p521["crv"] = json!("P-521");

        // RSA 1024: 128 bytes with the top bit set.
        let mut n1024 = vec![0xc1u8; 128];
        n1024[127] = 0x01;
        let rsa1024 = json!({"kty":"RSA","n": b64::encode(&n1024),"e":"AQAB"});
        let mut rsa_e3 = rfc7638_key();
        rsa_e3["e"] = json!("Aw");
        let mut rsa_lead0 = rfc7638_key();
        let mut n = b64::decode(rsa_lead0["n"].as_str().unwrap(), "n").unwrap();
        n.insert(0, 0);
        rsa_lead0["n"] = json!(b64::encode(&n));

        let cases = [
            (off_curve, "badPublicKey"),
            (short_x, "badPublicKey"),
            (with_d, "badPublicKey"),
            (p521, "badPublicKey"),
            (rsa1024, "badPublicKey"),
            (rsa_e3, "badPublicKey"),
            (rsa_lead0, "badPublicKey"),
            (json!({"kty":"oct","k":"AAAA"}), "badPublicKey"),
            (
                json!({"kty":"OKP","crv":"X25519","x": b64::encode([9u8;32])}),
                "badPublicKey",
            ),
            (json!({"crv":"P-256"}), "badPublicKey"),
            (
                json!({"kty":"EC","crv":"P-256","x":"AQ==","y":"AQ"}),
                "malformed",
            ),
            (
                json!({"kty":"EC","crv":"P-256","x":1,"y":"AQ"}),
                "malformed",
            ),
            (json!("not an object"), "malformed"),
        ];
        for (value, ty) in cases {
            let err = Jwk::from_json(&value).unwrap_err();
            assert_eq!(err.acme_type(), ty, "{value}: {err}");
        }
    }
}
