//! Naming certhub's certificates the RFC 9773 way: (AKI key identifier,
//! serial) ↔ (issuer id, stored serial hex).

use certhub_app::acme::{CertRef, Problem, parse_cert_id};
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use crate::St;

fn ski_of(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    cert.tbs_certificate
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

impl St {
    async fn issuer_keys(&self) -> &[(Vec<u8>, String)] {
        self.0
            .issuers
            .get_or_init(|| async {
                let pki = self.app().pki();
                [certhub_ca::DV_ID, certhub_ca::OV_ID]
                    .iter()
                    .filter_map(|id| Some((ski_of(pki.ca.issuer_cert_der(id)?)?, id.to_string())))
                    .collect()
            })
            .await
    }

    /// Resolves a CertID (renewalInfo path, newOrder `replaces`).
    pub(crate) async fn cert_ref(&self, cert_id: &str) -> Result<CertRef, Problem> {
        let (aki, serial_hex) = parse_cert_id(cert_id)?;
        let issuer = self
            .issuer_keys()
            .await
            .iter()
            .find(|(k, _)| *k == aki)
            .map(|(_, id)| id.clone())
            .ok_or_else(|| {
                Problem::not_found(format!("certificate {cert_id} was not issued by this CA"))
            })?;
        Ok(CertRef {
            issuer_id: issuer,
            serial_hex,
            cert_id: cert_id.to_string(),
        })
    }

    /// Names a certificate given in DER (revokeCert).
    pub(crate) async fn cert_ref_of_der(&self, der: &[u8]) -> Result<CertRef, Problem> {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| Problem::malformed(format!("the certificate cannot be parsed: {e}")))?;
        if !rest.is_empty() {
            return Err(Problem::malformed("trailing data after the certificate"));
        }
        let id = certhub_ca::ari_cert_id(&cert)
            .ok_or_else(|| Problem::not_found("the certificate was not issued by this CA"))?;
        self.cert_ref(&id).await
    }
}
