//! Key generation and the signing seam.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
    KeyPair as _, RsaKeyPair,
};
use serde::{Deserialize, Serialize};

use crate::asn1::{null, oid, seq};
use crate::{CaError, oids};

/// Key algorithms certhub generates for its own CA, responder and listener keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlg {
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyAlg {
    /// DER AlgorithmIdentifier of the signatures a key of this type makes
    /// (BR 7.1.3.2: P-256 with SHA-256, P-384 with SHA-384, RSA PKCS#1 v1.5 SHA-256 with NULL params).
    pub fn signature_algorithm_der(self) -> Vec<u8> {
        match self {
            Self::EcdsaP256 => seq(&[&oid(&oids::ECDSA_SHA256)]),
            Self::EcdsaP384 => seq(&[&oid(&oids::ECDSA_SHA384)]),
            Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096 => {
                seq(&[&oid(&oids::SHA256_WITH_RSA), &null()])
            }
        }
    }
}

/// A private key (PKCS#8 v1 DER; the caller encrypts it at rest) and its SubjectPublicKeyInfo.
#[derive(Clone)]
pub struct KeyPair {
    pub alg: KeyAlg,
    pub pkcs8_der: Vec<u8>,
    pub spki_der: Vec<u8>,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private key material.
        f.debug_struct("KeyPair")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn crypto(what: &str) -> CaError {
    CaError::Crypto(what.to_string())
}

/// Generates a fresh key.
pub fn generate_key(alg: KeyAlg) -> Result<KeyPair, CaError> {
    let pkcs8_der = match alg {
        KeyAlg::EcdsaP256 | KeyAlg::EcdsaP384 => {
            let sig_alg = ecdsa_signing_alg(alg);
            let k =
                EcdsaKeyPair::generate(sig_alg).map_err(|_| crypto("EC key generation failed"))?;
            k.to_pkcs8v1()
                .map_err(|_| crypto("EC key export failed"))?
                .as_ref()
                .to_vec()
        }
        KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096 => {
            let size = match alg {
                KeyAlg::Rsa2048 => KeySize::Rsa2048,
                KeyAlg::Rsa3072 => KeySize::Rsa3072,
                _ => KeySize::Rsa4096,
            };
            let k = RsaKeyPair::generate(size).map_err(|_| crypto("RSA key generation failed"))?;
            let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'static>>::as_der(&k)
                .map_err(|_| crypto("RSA key export failed"))?;
            der.as_ref().to_vec()
        }
    };
    KeyPair::from_pkcs8(&pkcs8_der)
}

fn ecdsa_signing_alg(alg: KeyAlg) -> &'static signature::EcdsaSigningAlgorithm {
    if alg == KeyAlg::EcdsaP384 {
        &ECDSA_P384_SHA384_ASN1_SIGNING
    } else {
        &ECDSA_P256_SHA256_ASN1_SIGNING
    }
}

impl KeyPair {
    /// Loads a PKCS#8 v1 key (P-256, P-384 or RSA 2048/3072/4096).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, CaError> {
        Ok(SoftwareSigner::from_pkcs8(der)?.key_pair)
    }

    /// A software signer over this key.
    pub fn signer(&self) -> Result<SoftwareSigner, CaError> {
        SoftwareSigner::from_pkcs8(&self.pkcs8_der)
    }
}

/// The signing seam: software keys now, an HSM or an upstream CA later.
pub trait Signer: Send + Sync {
    /// DER AlgorithmIdentifier placed in the TBS `signature` field and the outer `signatureAlgorithm`.
    fn algorithm_der(&self) -> &[u8];
    /// Signs `tbs` (the DER to be signed) and returns the signature value
    /// (the BIT STRING content: DER ECDSA-Sig-Value or the RSA signature block).
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, CaError>;
    /// SubjectPublicKeyInfo DER of the signing key.
    fn spki_der(&self) -> &[u8];
}

enum SoftKey {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A [`Signer`] over an in-memory PKCS#8 key.
pub struct SoftwareSigner {
    key: SoftKey,
    key_pair: KeyPair,
    alg_der: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareSigner")
            .field("alg", &self.key_pair.alg)
            .finish_non_exhaustive()
    }
}

impl SoftwareSigner {
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, CaError> {
        let (key, alg, spki) = if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
        {
            let spki = ec_spki(&k)?;
            (SoftKey::Ec(k), KeyAlg::EcdsaP256, spki)
        } else if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, der) {
            let spki = ec_spki(&k)?;
            (SoftKey::Ec(k), KeyAlg::EcdsaP384, spki)
        } else if let Ok(k) = RsaKeyPair::from_pkcs8(der) {
            let alg = match k.public_modulus_len() * 8 {
                2048 => KeyAlg::Rsa2048,
                3072 => KeyAlg::Rsa3072,
                4096 => KeyAlg::Rsa4096,
                bits => return Err(CaError::Crypto(format!("unsupported RSA key size {bits}"))),
            };
            let spki =
                AsDer::<aws_lc_rs::encoding::PublicKeyX509Der<'static>>::as_der(k.public_key())
                    .map_err(|_| crypto("RSA public key export failed"))?
                    .as_ref()
                    .to_vec();
            (SoftKey::Rsa(k), alg, spki)
        } else {
            return Err(crypto("not a supported PKCS#8 private key"));
        };
        Ok(Self {
            key,
            key_pair: KeyPair {
                alg,
                pkcs8_der: der.to_vec(),
                spki_der: spki,
            },
            alg_der: alg.signature_algorithm_der(),
            rng: SystemRandom::new(),
        })
    }

    pub fn key_alg(&self) -> KeyAlg {
        self.key_pair.alg
    }
}

fn ec_spki(k: &EcdsaKeyPair) -> Result<Vec<u8>, CaError> {
    Ok(
        AsDer::<aws_lc_rs::encoding::PublicKeyX509Der<'static>>::as_der(k.public_key())
            .map_err(|_| crypto("EC public key export failed"))?
            .as_ref()
            .to_vec(),
    )
}

impl Signer for SoftwareSigner {
    fn algorithm_der(&self) -> &[u8] {
        &self.alg_der
    }

    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, CaError> {
        match &self.key {
            SoftKey::Ec(k) => Ok(k
                .sign(&self.rng, tbs)
                .map_err(|_| crypto("ECDSA signing failed"))?
                .as_ref()
                .to_vec()),
            SoftKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, tbs, &mut sig)
                    .map_err(|_| crypto("RSA signing failed"))?;
                Ok(sig)
            }
        }
    }

    fn spki_der(&self) -> &[u8] {
        &self.key_pair.spki_der
    }
}

/// Wraps `tbs` into `SEQUENCE { tbs, signatureAlgorithm, signature }` (certificates, CRLs, OCSP).
pub(crate) fn sign_and_wrap(signer: &dyn Signer, tbs: &[u8]) -> Result<Vec<u8>, CaError> {
    let sig = signer.sign(tbs)?;
    Ok(seq(&[
        tbs,
        signer.algorithm_der(),
        &crate::asn1::bit_string(&sig),
    ]))
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub(crate) fn sha1(data: &[u8]) -> [u8; 20] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
    let mut out = [0u8; 20];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_keys_round_trip_through_pkcs8() {
        for alg in [KeyAlg::EcdsaP256, KeyAlg::EcdsaP384] {
            let k = generate_key(alg).unwrap();
            let again = KeyPair::from_pkcs8(&k.pkcs8_der).unwrap();
            assert_eq!(again.alg, alg);
            assert_eq!(again.spki_der, k.spki_der);
            let s = k.signer().unwrap();
            let sig = s.sign(b"hello").unwrap();
            let spki = x509_parser::prelude::FromDer::from_der(&k.spki_der[..]).map(|(_, s)| s);
            let spki: x509_parser::x509::SubjectPublicKeyInfo<'_> = spki.unwrap();
            let valg: &dyn signature::VerificationAlgorithm = if alg == KeyAlg::EcdsaP256 {
                &signature::ECDSA_P256_SHA256_ASN1
            } else {
                &signature::ECDSA_P384_SHA384_ASN1
            };
            signature::UnparsedPublicKey::new(valg, &spki.subject_public_key.data[..])
                .verify(b"hello", &sig)
                .unwrap();
        }
    }

    #[test]
    fn rsa_key_round_trip() {
        let k = generate_key(KeyAlg::Rsa2048).unwrap();
        let again = KeyPair::from_pkcs8(&k.pkcs8_der).unwrap();
        assert_eq!(again.alg, KeyAlg::Rsa2048);
        assert_eq!(again.spki_der, k.spki_der);
        assert_eq!(k.signer().unwrap().sign(b"x").unwrap().len(), 256);
    }

    #[test]
    fn debug_does_not_leak_keys() {
        let k = generate_key(KeyAlg::EcdsaP256).unwrap();
        assert!(!format!("{k:?}").contains("pkcs8"));
    }
}
