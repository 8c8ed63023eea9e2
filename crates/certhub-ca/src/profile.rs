//! Building blocks of the certificate profiles: names, extensions, the TBS and its signature.

use std::net::IpAddr;

use const_oid::ObjectIdentifier;

use crate::asn1::{
    self, TAG_BIT_STRING, TAG_SEQUENCE, boolean, ctx_cons, ctx_prim, extension, named_bits, null,
    octet_string, oid, printable, seq, set, small_uint, tlv, uint, utf8, x509_time,
};
use crate::keys::{Signer, sha1, sign_and_wrap};
use crate::{CaError, oids};

/// KeyUsage bit numbers (RFC 5280 §4.2.1.3).
pub(crate) const KU_DIGITAL_SIGNATURE: u8 = 0;
pub(crate) const KU_KEY_CERT_SIGN: u8 = 5;
pub(crate) const KU_CRL_SIGN: u8 = 6;

/// A distinguished name from (attribute, value) pairs, one attribute per RDN, in the given order.
/// countryName is a PrintableString (RFC 5280 appendix A); every other attribute is a UTF8String.
pub(crate) fn name_der(attrs: &[(ObjectIdentifier, &str)]) -> Result<Vec<u8>, CaError> {
    let mut rdns = Vec::with_capacity(attrs.len());
    for (attr, value) in attrs {
        if value.is_empty() || value.len() > 64 {
            return Err(CaError::InvalidRequest(format!(
                "subject attribute {attr} must be 1 to 64 characters"
            )));
        }
        let v = if *attr == oids::AT_COUNTRY {
            if value.len() != 2 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(CaError::InvalidRequest(format!(
                    "country {value:?} is not an ISO 3166-1 alpha-2 code"
                )));
            }
            printable(value)
        } else {
            utf8(value)
        };
        rdns.push(set(&[&seq(&[&oid(attr), &v])]));
    }
    let parts: Vec<&[u8]> = rdns.iter().map(Vec::as_slice).collect();
    Ok(seq(&parts))
}

/// The subjectPublicKey BIT STRING content (without the unused-bits octet) of an SPKI.
pub(crate) fn spki_key_bits(spki_der: &[u8]) -> Result<&[u8], CaError> {
    let spki = asn1::parse_single(spki_der, TAG_SEQUENCE, "SubjectPublicKeyInfo")?;
    let mut r = asn1::Reader::new(spki.content);
    r.expect(TAG_SEQUENCE, "SPKI algorithm")?;
    let bits = r.expect(TAG_BIT_STRING, "SPKI public key")?;
    match bits.content.split_first() {
        Some((0, key)) if r.is_empty() && !key.is_empty() => Ok(key),
        _ => Err(CaError::Malformed("invalid SubjectPublicKeyInfo".into())),
    }
}

/// RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. Used for SKI/AKI
/// and, identically, for the OCSP ResponderID byKey and CertID issuerKeyHash.
pub(crate) fn key_id(spki_der: &[u8]) -> Result<Vec<u8>, CaError> {
    Ok(sha1(spki_key_bits(spki_der)?).to_vec())
}

pub(crate) fn ext_ski(key_id: &[u8]) -> Vec<u8> {
    extension(&oids::EXT_SKI, false, &octet_string(key_id))
}

pub(crate) fn ext_aki(key_id: &[u8]) -> Vec<u8> {
    extension(&oids::EXT_AKI, false, &seq(&[&tlv(ctx_prim(0), key_id)]))
}

pub(crate) fn ext_basic_constraints_ca(path_len: Option<u8>) -> Vec<u8> {
    let value = match path_len {
        Some(n) => seq(&[&boolean(true), &small_uint(u64::from(n))]),
        None => seq(&[&boolean(true)]),
    };
    extension(&oids::EXT_BASIC_CONSTRAINTS, true, &value)
}

pub(crate) fn ext_key_usage(bits: &[u8]) -> Vec<u8> {
    extension(&oids::EXT_KEY_USAGE, true, &named_bits(bits))
}

pub(crate) fn ext_eku(purposes: &[ObjectIdentifier]) -> Vec<u8> {
    let encoded: Vec<Vec<u8>> = purposes.iter().map(oid).collect();
    let parts: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
    extension(&oids::EXT_EKU, false, &seq(&parts))
}

/// certificatePolicies with exactly one policy and no qualifiers (BR 7.1.2.7.9, 7.1.2.10.5).
pub(crate) fn ext_policy(policy: &ObjectIdentifier) -> Vec<u8> {
    extension(
        &oids::EXT_CERT_POLICIES,
        false,
        &seq(&[&seq(&[&oid(policy)])]),
    )
}

/// One DistributionPoint with a fullName URI.
pub(crate) fn ext_crl_dp(url: &str) -> Vec<u8> {
    let uri = tlv(ctx_prim(6), url.as_bytes());
    let full_name = tlv(ctx_cons(0), &uri);
    let dp_name = tlv(ctx_cons(0), &full_name);
    extension(&oids::EXT_CRL_DP, false, &seq(&[&seq(&[&dp_name])]))
}

pub(crate) fn ext_aia(ocsp_url: Option<&str>, ca_issuers_url: &str) -> Vec<u8> {
    let mut descs = Vec::new();
    if let Some(u) = ocsp_url {
        descs.push(seq(&[
            &oid(&oids::AD_OCSP),
            &tlv(ctx_prim(6), u.as_bytes()),
        ]));
    }
    descs.push(seq(&[
        &oid(&oids::AD_CA_ISSUERS),
        &tlv(ctx_prim(6), ca_issuers_url.as_bytes()),
    ]));
    let parts: Vec<&[u8]> = descs.iter().map(Vec::as_slice).collect();
    extension(&oids::EXT_AIA, false, &seq(&parts))
}

pub(crate) fn ext_san(dns_names: &[String], ips: &[IpAddr], critical: bool) -> Vec<u8> {
    let mut gns = Vec::with_capacity(dns_names.len() + ips.len());
    for n in dns_names {
        gns.push(tlv(ctx_prim(2), n.as_bytes()));
    }
    for ip in ips {
        let bytes = match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        gns.push(tlv(ctx_prim(7), &bytes));
    }
    let parts: Vec<&[u8]> = gns.iter().map(Vec::as_slice).collect();
    extension(&oids::EXT_SAN, critical, &seq(&parts))
}

pub(crate) fn ext_ocsp_nocheck() -> Vec<u8> {
    extension(&oids::EXT_OCSP_NOCHECK, false, &null())
}

/// Everything a v3 certificate needs besides its signature.
pub(crate) struct TbsParams<'a> {
    pub serial: &'a [u8],
    pub issuer_der: &'a [u8],
    pub not_before: i64,
    pub not_after: i64,
    pub subject_der: &'a [u8],
    pub spki_der: &'a [u8],
    pub extensions: &'a [Vec<u8>],
}

/// Encodes the TBSCertificate and signs it.
pub(crate) fn build_certificate(
    signer: &dyn Signer,
    p: &TbsParams<'_>,
) -> Result<Vec<u8>, CaError> {
    let version = tlv(ctx_cons(0), &small_uint(2));
    let validity = seq(&[&x509_time(p.not_before)?, &x509_time(p.not_after)?]);
    let ext_parts: Vec<&[u8]> = p.extensions.iter().map(Vec::as_slice).collect();
    let exts = tlv(ctx_cons(3), &seq(&ext_parts));
    let tbs = seq(&[
        &version,
        &uint(p.serial),
        signer.algorithm_der(),
        p.issuer_der,
        &validity,
        p.subject_der,
        p.spki_der,
        &exts,
    ]);
    sign_and_wrap(signer, &tbs)
}
