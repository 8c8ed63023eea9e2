//! OCSP (RFC 6960; BR 4.9.9, 4.9.10): request parsing and delegated-responder responses.

use serde::{Deserialize, Serialize};

use crate::asn1::{
    self, Reader, TAG_INTEGER, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE, bit_string, ctx_cons,
    ctx_prim, enumerated, generalized_time, octet_string, oid, seq, tlv,
};
use crate::ca::Ca;
use crate::cert_info::CertInfo;
use crate::crl::RevocationReason;
use crate::keys::{Signer, SoftwareSigner};
use crate::profile::key_id;
use crate::{CaError, oids};

/// How long an OCSP response is valid (nextUpdate = thisUpdate + 4 days).
pub const OCSP_VALIDITY_SECS: i64 = 4 * 86_400;
/// At most this many CertIDs are answered per request (a bound against abuse).
pub const MAX_OCSP_REQUESTS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HashAlg {
    Sha1,
    Sha256,
}

/// One CertID from a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CertIdReq {
    pub hash_alg: HashAlg,
    pub issuer_name_hash: Vec<u8>,
    pub issuer_key_hash: Vec<u8>,
    /// Serial magnitude without leading zero bytes (matches `IssuedCert::serial_hex`).
    pub serial: Vec<u8>,
    /// The CertID exactly as received; echoed in the response so that clients match it byte for byte.
    pub raw: Vec<u8>,
}

impl CertIdReq {
    /// A CertID built locally (tests, pre-signing): hash algorithm with NULL parameters.
    pub fn new(
        hash_alg: HashAlg,
        issuer_name_hash: Vec<u8>,
        issuer_key_hash: Vec<u8>,
        serial: &[u8],
    ) -> Self {
        let serial = asn1::trim_leading_zeros(serial).to_vec();
        let alg = match hash_alg {
            HashAlg::Sha1 => oids::SHA1,
            HashAlg::Sha256 => oids::SHA256,
        };
        let raw = seq(&[
            &seq(&[&oid(&alg), &asn1::null()]),
            &octet_string(&issuer_name_hash),
            &octet_string(&issuer_key_hash),
            &asn1::uint(&serial),
        ]);
        Self {
            hash_alg,
            issuer_name_hash,
            issuer_key_hash,
            serial,
            raw,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertStatus {
    Good,
    Revoked { at: i64, reason: RevocationReason },
    Unknown,
}

/// OCSPResponseStatus values for responses without a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OcspErrorStatus {
    MalformedRequest = 1,
    InternalError = 2,
    TryLater = 3,
    SigRequired = 5,
    Unauthorized = 6,
}

/// An OCSPResponse carrying only an error status.
pub fn ocsp_error_response(status: OcspErrorStatus) -> Vec<u8> {
    seq(&[&enumerated(status as u8)])
}

fn bad(what: &str) -> CaError {
    CaError::Malformed(format!("OCSP request: {what}"))
}

/// Parses an OCSPRequest (DER) into its CertIDs. Signed requests are accepted, the signature ignored.
pub fn parse_ocsp_request(der: &[u8]) -> Result<Vec<CertIdReq>, CaError> {
    let req = asn1::parse_single(der, TAG_SEQUENCE, "OCSPRequest")?;
    let mut r = Reader::new(req.content);
    let tbs = r.expect(TAG_SEQUENCE, "TBSRequest")?;
    r.optional(ctx_cons(0))?; // optionalSignature
    if !r.is_empty() {
        return Err(bad("trailing data"));
    }
    let mut t = Reader::new(tbs.content);
    if let Some(v) = t.optional(ctx_cons(0))?
        && v.content != [TAG_INTEGER, 1, 0]
    {
        return Err(bad("unsupported version"));
    }
    t.optional(ctx_cons(1))?; // requestorName
    let list = t.expect(TAG_SEQUENCE, "requestList")?;
    t.optional(ctx_cons(2))?; // requestExtensions (nonce is ignored: responses are pre-signed)
    if !t.is_empty() {
        return Err(bad("trailing data in TBSRequest"));
    }
    let mut out = Vec::new();
    let mut l = Reader::new(list.content);
    while !l.is_empty() {
        let one = l.expect(TAG_SEQUENCE, "Request")?;
        let mut o = Reader::new(one.content);
        let cert_id = o.expect(TAG_SEQUENCE, "CertID")?;
        o.optional(ctx_cons(0))?; // singleRequestExtensions
        if !o.is_empty() {
            return Err(bad("trailing data in Request"));
        }
        out.push(parse_cert_id(cert_id)?);
        if out.len() > MAX_OCSP_REQUESTS {
            return Err(bad("too many CertIDs"));
        }
    }
    if out.is_empty() {
        return Err(bad("empty requestList"));
    }
    Ok(out)
}

fn parse_cert_id(cert_id: asn1::Tlv<'_>) -> Result<CertIdReq, CaError> {
    let mut c = Reader::new(cert_id.content);
    let alg = c.expect(TAG_SEQUENCE, "hashAlgorithm")?;
    let alg_oid = Reader::new(alg.content).expect(TAG_OID, "hash OID")?;
    let hash_alg = if alg_oid.content == oids::SHA1.as_bytes() {
        HashAlg::Sha1
    } else if alg_oid.content == oids::SHA256.as_bytes() {
        HashAlg::Sha256
    } else {
        return Err(bad("unsupported CertID hash algorithm"));
    };
    let want = if hash_alg == HashAlg::Sha1 { 20 } else { 32 };
    let name_hash = c.expect(TAG_OCTET_STRING, "issuerNameHash")?;
    let key_hash = c.expect(TAG_OCTET_STRING, "issuerKeyHash")?;
    let serial = c.expect(TAG_INTEGER, "serialNumber")?;
    if !c.is_empty() || name_hash.content.len() != want || key_hash.content.len() != want {
        return Err(bad("malformed CertID"));
    }
    if serial.content.is_empty() || serial.content[0] & 0x80 != 0 {
        return Err(bad("serial number must be positive"));
    }
    Ok(CertIdReq {
        hash_alg,
        issuer_name_hash: name_hash.content.to_vec(),
        issuer_key_hash: key_hash.content.to_vec(),
        serial: asn1::trim_leading_zeros(serial.content).to_vec(),
        raw: cert_id.raw.to_vec(),
    })
}

impl Ca {
    /// The issuer a CertID names (by subject-name hash and key hash), if it is one of ours.
    pub fn match_issuer(&self, id: &CertIdReq) -> Option<&str> {
        self.issuers
            .iter()
            .find(|i| match id.hash_alg {
                HashAlg::Sha1 => {
                    i.name_sha1[..] == id.issuer_name_hash[..]
                        && i.key_sha1[..] == id.issuer_key_hash[..]
                }
                HashAlg::Sha256 => {
                    i.name_sha256[..] == id.issuer_name_hash[..]
                        && i.key_sha256[..] == id.issuer_key_hash[..]
                }
            })
            .map(|i| i.id.as_str())
    }

    /// A CertID (SHA-1, the usual client choice) for a certificate of `issuer_id`.
    pub fn cert_id(
        &self,
        issuer_id: &str,
        hash_alg: HashAlg,
        serial: &[u8],
    ) -> Result<CertIdReq, CaError> {
        let i = self.issuer(issuer_id)?;
        let (n, k) = match hash_alg {
            HashAlg::Sha1 => (i.name_sha1.to_vec(), i.key_sha1.to_vec()),
            HashAlg::Sha256 => (i.name_sha256.to_vec(), i.key_sha256.to_vec()),
        };
        Ok(CertIdReq::new(hash_alg, n, k, serial))
    }

    /// A successful OCSPResponse with a BasicOCSPResponse signed by the issuer's delegated
    /// responder `(cert_der, key_pkcs8)`, which is included. producedAt = thisUpdate = now,
    /// nextUpdate = now + 4 days, ResponderID byKey. Every CertID must name `issuer_id`.
    pub fn ocsp_response(
        &self,
        issuer_id: &str,
        responder: &(Vec<u8>, Vec<u8>),
        entries: &[(CertIdReq, CertStatus)],
        now: i64,
    ) -> Result<Vec<u8>, CaError> {
        let signer = SoftwareSigner::from_pkcs8(&responder.1)?;
        self.ocsp_response_with(issuer_id, &responder.0, &signer, entries, now)
    }

    /// [`Ca::ocsp_response`] with the responder key behind any [`Signer`].
    pub fn ocsp_response_with(
        &self,
        issuer_id: &str,
        responder_cert: &[u8],
        signer: &dyn Signer,
        entries: &[(CertIdReq, CertStatus)],
        now: i64,
    ) -> Result<Vec<u8>, CaError> {
        let issuer = self.issuer(issuer_id)?;
        let rinfo = CertInfo::parse(responder_cert)?;
        if rinfo.spki_der != signer.spki_der() {
            return Err(CaError::Config(
                "OCSP responder key does not match its certificate".into(),
            ));
        }
        if self
            .match_responder(issuer_id, responder_cert, &rinfo)
            .is_err()
        {
            return Err(CaError::Config(format!(
                "OCSP responder was not issued by {issuer_id}"
            )));
        }
        if now > rinfo.not_after {
            return Err(CaError::Config(format!(
                "OCSP responder certificate of {issuer_id} has expired"
            )));
        }
        if entries.is_empty() {
            return Err(CaError::InvalidRequest("no CertIDs to answer".into()));
        }
        let this_update = generalized_time(now)?;
        let next_update = tlv(ctx_cons(0), &generalized_time(now + OCSP_VALIDITY_SECS)?);
        let mut singles = Vec::with_capacity(entries.len());
        for (id, status) in entries {
            if self.match_issuer(id) != Some(issuer.id.as_str()) {
                return Err(CaError::InvalidRequest(format!(
                    "CertID does not name issuer {issuer_id}"
                )));
            }
            let status = match status {
                CertStatus::Good => tlv(ctx_prim(0), &[]),
                CertStatus::Unknown => tlv(ctx_prim(2), &[]),
                CertStatus::Revoked { at, reason } => {
                    let time = generalized_time(*at)?;
                    match reason.crl_code() {
                        Some(c) => crate::asn1::cons(
                            ctx_cons(1),
                            &[&time, &tlv(ctx_cons(0), &enumerated(c))],
                        ),
                        None => tlv(ctx_cons(1), &time),
                    }
                }
            };
            singles.push(seq(&[&id.raw, &status, &this_update, &next_update]));
        }
        let single_refs: Vec<&[u8]> = singles.iter().map(Vec::as_slice).collect();
        let responder_id = tlv(ctx_cons(2), &octet_string(&key_id(&rinfo.spki_der)?));
        let tbs = seq(&[&responder_id, &generalized_time(now)?, &seq(&single_refs)]);
        let sig = signer.sign(&tbs)?;
        let certs = tlv(ctx_cons(0), &seq(&[responder_cert]));
        let basic = seq(&[&tbs, signer.algorithm_der(), &bit_string(&sig), &certs]);
        let bytes = seq(&[&oid(&oids::OCSP_BASIC), &octet_string(&basic)]);
        Ok(seq(&[&enumerated(0), &tlv(ctx_cons(0), &bytes)]))
    }

    /// Checks that a responder certificate was signed by `issuer_id` (its issuer name and AKI).
    fn match_responder(
        &self,
        issuer_id: &str,
        cert: &[u8],
        _info: &CertInfo,
    ) -> Result<(), CaError> {
        use x509_parser::prelude::FromDer;
        let issuer = self.issuer(issuer_id)?;
        let (_, c) = x509_parser::certificate::X509Certificate::from_der(cert)
            .map_err(|e| CaError::Malformed(format!("responder certificate: {e}")))?;
        if c.tbs_certificate.issuer.as_raw() != issuer.info.subject_der.as_slice() {
            return Err(CaError::Config("responder issuer mismatch".into()));
        }
        Ok(())
    }
}
