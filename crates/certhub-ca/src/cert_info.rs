//! The facts certhub needs from its own issuer and responder certificates.

use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::keys::KeyAlg;
use crate::profile::key_id;
use crate::{CaError, oids};

/// The RFC 9773 CertID of a certificate: base64url(AKI keyIdentifier) "."
/// base64url(serial DER content). None without an AKI keyIdentifier.
pub fn ari_cert_id(cert: &X509Certificate<'_>) -> Option<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let aki =
        cert.tbs_certificate
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref(),
                _ => None,
            })?;
    Some(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(aki.0),
        URL_SAFE_NO_PAD.encode(cert.tbs_certificate.raw_serial())
    ))
}

#[derive(Debug, Clone)]
pub(crate) struct CertInfo {
    pub subject_der: Vec<u8>,
    pub spki_der: Vec<u8>,
    /// SKI if present, else RFC 5280 method (1).
    pub key_id: Vec<u8>,
    pub not_after: i64,
    pub common_name: Option<String>,
    pub organization: Option<String>,
    pub country: Option<String>,
}

fn first_str<'a>(
    mut it: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) -> Option<String> {
    it.next().and_then(|a| a.as_str().ok()).map(str::to_string)
}

impl CertInfo {
    pub(crate) fn parse(der: &[u8]) -> Result<Self, CaError> {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| CaError::Malformed(format!("certificate: {e}")))?;
        if !rest.is_empty() {
            return Err(CaError::Malformed("trailing data after certificate".into()));
        }
        let tbs = &cert.tbs_certificate;
        let spki_der = tbs.subject_pki.raw.to_vec();
        let ski = tbs
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            });
        let key_id = match ski {
            Some(k) => k,
            None => key_id(&spki_der)?,
        };
        Ok(Self {
            subject_der: tbs.subject.as_raw().to_vec(),
            key_id,
            not_after: tbs.validity.not_after.timestamp(),
            common_name: first_str(tbs.subject.iter_common_name()),
            organization: first_str(tbs.subject.iter_organization()),
            country: first_str(tbs.subject.iter_country()),
            spki_der,
        })
    }
}

/// Key algorithm of a CA-usable SPKI (P-256, P-384, RSA 2048/3072/4096).
pub(crate) fn key_alg_of_spki(spki_der: &[u8]) -> Result<KeyAlg, CaError> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| CaError::Malformed(format!("public key: {e}")))?;
    let unsupported = || CaError::Crypto("unsupported CA key type".into());
    match spki.parsed().map_err(|_| unsupported())? {
        PublicKey::EC(_) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .ok_or_else(unsupported)?;
            if curve == oids::CURVE_P256.to_string() {
                Ok(KeyAlg::EcdsaP256)
            } else if curve == oids::CURVE_P384.to_string() {
                Ok(KeyAlg::EcdsaP384)
            } else {
                Err(unsupported())
            }
        }
        PublicKey::RSA(rsa) => match rsa.key_size() {
            2048 => Ok(KeyAlg::Rsa2048),
            3072 => Ok(KeyAlg::Rsa3072),
            4096 => Ok(KeyAlg::Rsa4096),
            _ => Err(unsupported()),
        },
        _ => Err(unsupported()),
    }
}
