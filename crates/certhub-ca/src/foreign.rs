//! Parsing third-party certificates for the REST import endpoint (lenient; any issuer).

use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::CaError;
use crate::keys::sha256;
use crate::output::{hex_lower, hex_upper, pem_decode_all};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignCert {
    pub der: Vec<u8>,
    /// SAN dNSNames (lower-cased), else the CN.
    pub names: Vec<String>,
    pub cn: Option<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub issuer_dn: String,
    /// Lower-case hex of the serial magnitude.
    pub serial_hex: String,
    pub fingerprint_sha256_hex: String,
    /// "RSA", "ECDSA", "Ed25519" or "UNKNOWN".
    pub key_alg: String,
    pub key_size: u32,
    pub key_sha256: [u8; 32],
    pub is_ca: bool,
}

/// Parses the first CERTIFICATE block of `pem` (a chain may follow; it is ignored).
pub fn parse_foreign_certificate(pem: &str) -> Result<ForeignCert, CaError> {
    let der = pem_decode_all(pem)?
        .into_iter()
        .find(|(label, _)| label == "CERTIFICATE")
        .map(|(_, der)| der)
        .ok_or_else(|| CaError::Malformed("no CERTIFICATE PEM block".into()))?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|e| CaError::Malformed(format!("certificate: {e}")))?;
    let tbs = &cert.tbs_certificate;
    let cn = tbs
        .subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_string);
    let mut names = Vec::new();
    let mut is_ca = false;
    for ext in tbs.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for gn in &san.general_names {
                    if let GeneralName::DNSName(n) = gn {
                        let n = n.trim().trim_end_matches('.').to_ascii_lowercase();
                        if !names.contains(&n) {
                            names.push(n);
                        }
                    }
                }
            }
            ParsedExtension::BasicConstraints(bc) => is_ca = bc.ca,
            _ => {}
        }
    }
    if names.is_empty()
        && let Some(cn) = &cn
    {
        names.push(cn.trim().trim_end_matches('.').to_ascii_lowercase());
    }
    let spki = &tbs.subject_pki;
    let alg = spki.algorithm.algorithm.to_id_string();
    let (key_alg, key_size) = match spki.parsed() {
        Ok(PublicKey::RSA(k)) => ("RSA", k.key_size()),
        Ok(PublicKey::EC(p)) => ("ECDSA", p.key_size()),
        _ if alg == "1.3.101.112" => ("Ed25519", 256),
        _ => ("UNKNOWN", 0),
    };
    Ok(ForeignCert {
        names,
        cn,
        not_before: tbs.validity.not_before.timestamp(),
        not_after: tbs.validity.not_after.timestamp(),
        issuer_dn: tbs.issuer.to_string(),
        serial_hex: hex_lower(crate::asn1::trim_leading_zeros(tbs.raw_serial())),
        fingerprint_sha256_hex: hex_upper(&sha256(&der)),
        key_alg: key_alg.to_string(),
        key_size: u32::try_from(key_size).unwrap_or(0),
        key_sha256: sha256(spki.raw),
        is_ca,
        der,
    })
}
