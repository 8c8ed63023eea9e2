//! Producing flattened JWS, for tests, the load generator and other crates'
//! test clients. The server never signs JWS; this lives here so that signer
//! and verifier share one definition of the wire format.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

use crate::{Alg, JoseError, Jwk, MacAlg, b64};

/// A private key able to sign ACME requests with one [`Alg`].
pub struct SigningKey {
    alg: Alg,
    inner: Inner,
    jwk: Jwk,
}

enum Inner {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private material.
        write!(f, "SigningKey({}, {:?})", self.alg, self.jwk)
    }
}

fn internal(what: &str) -> JoseError {
    JoseError::Internal(format!("{what} failed"))
}

impl SigningKey {
    /// Generates a fresh key for `alg` (RSA keys are 2048 bits).
    ///
    /// # Errors
    /// [`JoseError::Internal`] if key generation fails.
    pub fn generate(alg: Alg) -> Result<Self, JoseError> {
        let inner = match alg {
            Alg::Es256 => Inner::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| internal("P-256 key generation"))?,
            ),
            Alg::Es384 => Inner::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING)
                    .map_err(|_| internal("P-384 key generation"))?,
            ),
            Alg::Rs256 | Alg::Ps256 => Inner::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| internal("RSA key generation"))?,
            ),
            Alg::EdDsa => Inner::Ed(
                Ed25519KeyPair::generate().map_err(|_| internal("Ed25519 key generation"))?,
            ),
        };
        Self::new(alg, inner)
    }

    /// Loads a PKCS#8 DER private key to be used with `alg`.
    ///
    /// # Errors
    /// [`JoseError::BadPublicKey`] if the key does not parse or fit `alg`.
    pub fn from_pkcs8(alg: Alg, der: &[u8]) -> Result<Self, JoseError> {
        let rejected = |e: aws_lc_rs::error::KeyRejected| {
            JoseError::bad_key(format!("cannot load {alg} PKCS#8 key: {e}"))
        };
        let inner = match alg {
            Alg::Es256 => Inner::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(rejected)?,
            ),
            Alg::Es384 => Inner::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, der)
                    .map_err(rejected)?,
            ),
            Alg::Rs256 | Alg::Ps256 => Inner::Rsa(RsaKeyPair::from_pkcs8(der).map_err(rejected)?),
            Alg::EdDsa => Inner::Ed(Ed25519KeyPair::from_pkcs8(der).map_err(rejected)?),
        };
        Self::new(alg, inner)
    }

    /// The private key as PKCS#8 DER, e.g. to persist a load-test account.
    ///
    /// # Errors
    /// [`JoseError::Internal`] if encoding fails.
    pub fn to_pkcs8(&self) -> Result<Vec<u8>, JoseError> {
        let doc = match &self.inner {
            Inner::Ec(k) => k.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
            Inner::Rsa(k) => k.as_der().map(|d| d.as_ref().to_vec()),
            Inner::Ed(k) => k.to_pkcs8().map(|d| d.as_ref().to_vec()),
        };
        doc.map_err(|_| internal("PKCS#8 encoding"))
    }

    fn new(alg: Alg, inner: Inner) -> Result<Self, JoseError> {
        let jwk = match &inner {
            Inner::Ec(k) => {
                // Uncompressed SEC1 point: 04 || x || y.
                let point = k.public_key().as_ref();
                let coords = point.get(1..).unwrap_or_default();
                let (x, y) = coords.split_at(coords.len() / 2);
                match alg {
                    Alg::Es384 => Jwk::ec_p384(&fixed(x)?, &fixed(y)?)?,
                    _ => Jwk::ec_p256(&fixed(x)?, &fixed(y)?)?,
                }
            }
            Inner::Rsa(k) => {
                let n = k
                    .public_key()
                    .modulus()
                    .big_endian_without_leading_zero()
                    .to_vec();
                Jwk::rsa(n)?
            }
            Inner::Ed(k) => Jwk::ed25519(&fixed(k.public_key().as_ref())?)?,
        };
        Ok(Self { alg, inner, jwk })
    }

    /// The algorithm this key signs with.
    #[must_use]
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The public key.
    #[must_use]
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Signs `msg` (the JWS signing input) with [`SigningKey::alg`].
    ///
    /// # Errors
    /// [`JoseError::Internal`] if the crypto library fails.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, JoseError> {
        let rng = SystemRandom::new();
        match &self.inner {
            Inner::Ec(k) => k
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| internal("ECDSA signing")),
            Inner::Ed(k) => Ok(k.sign(msg).as_ref().to_vec()),
            Inner::Rsa(k) => {
                let padding: &'static dyn signature::RsaEncoding = if self.alg == Alg::Ps256 {
                    &signature::RSA_PSS_SHA256
                } else {
                    &signature::RSA_PKCS1_SHA256
                };
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(padding, &rng, msg, &mut sig)
                    .map_err(|_| internal("RSA signing"))?;
                Ok(sig)
            }
        }
    }
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], JoseError> {
    bytes
        .try_into()
        .map_err(|_| internal("public key extraction"))
}

/// Builds a flattened JWS for an ACME request. With `kid` the header names
/// the account; without it the public key is embedded as `jwk`.
///
/// # Errors
/// [`JoseError::Internal`] if signing fails.
pub fn sign_jws(
    key: &SigningKey,
    url: &str,
    nonce: Option<&str>,
    kid: Option<&str>,
    payload: &[u8],
) -> Result<Value, JoseError> {
    let mut header = json!({"alg": key.alg.as_str(), "url": url});
    if let Some(nonce) = nonce {
        header["nonce"] = json!(nonce);
    }
    match kid {
        Some(kid) => header["kid"] = json!(kid),
        None => header["jwk"] = key.jwk.to_json(),
    }
    sign_jws_with_header(key, &header, payload)
}

/// Signs `protected` exactly as given (including its `alg`, which is not
/// checked), to build deliberately odd requests in tests.
///
/// # Errors
/// [`JoseError::Internal`] if signing fails.
pub fn sign_jws_with_header(
    key: &SigningKey,
    protected: &Value,
    payload: &[u8],
) -> Result<Value, JoseError> {
    let protected = b64::encode(protected.to_string());
    let payload = b64::encode(payload);
    let sig = key.sign(format!("{protected}.{payload}").as_bytes())?;
    Ok(json!({"protected": protected, "payload": payload, "signature": b64::encode(sig)}))
}

/// Builds an `externalAccountBinding` object (RFC 8555 §7.3.4) binding `jwk`
/// with the raw MAC key `hmac_key` issued under `kid`.
#[must_use]
pub fn sign_eab(kid: &str, hmac_key: &[u8], alg: MacAlg, jwk: &Jwk, url: &str) -> Value {
    let header = json!({"alg": alg.as_str(), "kid": kid, "url": url});
    let protected = b64::encode(header.to_string());
    let payload = b64::encode(jwk.to_json().to_string());
    let tag = hmac::sign(
        &hmac::Key::new(alg.hmac(), hmac_key),
        format!("{protected}.{payload}").as_bytes(),
    );
    json!({"protected": protected, "payload": payload, "signature": b64::encode(tag.as_ref())})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs8_round_trip_keeps_public_key() {
        for alg in [Alg::Es256, Alg::Es384, Alg::EdDsa, Alg::Rs256] {
            let key = crate::jws::tests::key(alg);
            let der = key.to_pkcs8().unwrap();
            let back = SigningKey::from_pkcs8(alg, &der).unwrap();
            assert_eq!(back.public_jwk(), key.public_jwk());
            assert!(!format!("{back:?}").is_empty());
        }
        assert_eq!(
            SigningKey::from_pkcs8(Alg::Es256, b"junk")
                .unwrap_err()
                .acme_type(),
            "badPublicKey"
        );
    }
}
