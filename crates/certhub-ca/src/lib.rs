//! certhub's embedded issuing CA: keys, hierarchy, CSR policy, certificate profiles,
//! CRL, OCSP and output formats. Pure: no database, network or async; the application
//! layer stores what these functions return.

mod asn1;
mod ca;
mod cert_info;
mod crl;
mod csr;
mod foreign;
mod hierarchy;
mod keys;
mod ocsp;
mod oids;
mod output;
mod profile;

#[cfg(test)]
mod tests;

pub use ca::{
    Ca, IssueRequest, IssuedCert, IssuerSigner, MAX_NAMES, OrgSubject, Profile, random_serial,
    validity_max_days, validity_window,
};
pub use cert_info::ari_cert_id;
pub use crl::{CRL_VALIDITY_SECS, RevocationReason, RevokedEntry};
pub use csr::{CsrError, CsrErrorKind, KeyPolicy, ParsedCsr, check_names, parse_csr};
pub use foreign::{ForeignCert, parse_foreign_certificate};
pub use hierarchy::{
    CaConfig, DV_ID, IssuerMaterial, OCSP_RESPONDER_DAYS, OCSP_RESPONDER_RENEW_BEFORE_DAYS, OV_ID,
    ROOT_ID, SERVER_ID, init_hierarchy, new_ocsp_responder, normalize_pki_url,
    responder_needs_renewal,
};
pub use keys::{KeyAlg, KeyPair, Signer, SoftwareSigner, generate_key};
pub use ocsp::{
    CertIdReq, CertStatus, HashAlg, MAX_OCSP_REQUESTS, OCSP_VALIDITY_SECS, OcspErrorStatus,
    ocsp_error_response, parse_ocsp_request,
};
pub use output::{hex_decode, hex_lower, hex_upper, pem_decode_all, pem_encode, pkcs7_der};

/// The crate's error type. CSR refusals carry a [`CsrError`] with its kind.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// Input that cannot be parsed (OCSP request, certificate, PEM).
    #[error("malformed input: {0}")]
    Malformed(String),
    /// Requested notBefore/notAfter outside the validity rules (ACME `malformed`).
    #[error("{0}")]
    Validity(String),
    /// A request the profiles refuse (names, subject, serial).
    #[error("{0}")]
    InvalidRequest(String),
    #[error("unknown issuer {0:?}")]
    UnknownIssuer(String),
    /// Inconsistent CA material or configuration.
    #[error("CA configuration: {0}")]
    Config(String),
    #[error("crypto failure: {0}")]
    Crypto(String),
}
