//! CSR parsing and the key policy (design.md "ACME rules", CSR bullet; BR 6.1.5, 6.1.6).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::LazyLock;

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use num_bigint::BigUint;
use num_traits::{ToPrimitive, Zero};
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509CertificationRequest};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::keys::sha256;
use crate::output::der_or_pem;
use crate::{CaError, oids};

/// Why a CSR was refused. Every kind maps to ACME `badCSR` and RTR `InvalidCSRException`;
/// the kind lets callers count or log refusals by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CsrErrorKind {
    /// Not a parseable PKCS#10 request.
    Malformed,
    /// The signature does not verify, or its algorithm is not supported.
    BadSignature,
    /// Key type, size, exponent or curve outside the policy.
    UnsupportedKey,
    /// A structurally weak key: ROCA fingerprint, Fermat-factorable, even modulus, point off the curve.
    WeakKey,
    /// On the operator's weak-key list.
    BlockedKey,
    /// Revoked before for keyCompromise.
    CompromisedKey,
    /// A name that is not an acceptable DNS name, or an unsupported SAN type.
    BadName,
    /// The same name twice among the SANs.
    DuplicateName,
    /// The CSR's names differ from the authorised identifiers.
    NameMismatch,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct CsrError {
    pub kind: CsrErrorKind,
    pub detail: String,
}

fn csr_err(kind: CsrErrorKind, detail: impl Into<String>) -> CsrError {
    CsrError {
        kind,
        detail: detail.into(),
    }
}

/// Keys refused by the operator, both as SHA-256 of the SubjectPublicKeyInfo DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPolicy {
    /// The operator's weak-key list (`[ca] weak_keys_file`).
    pub blocked_keys: HashSet<[u8; 32]>,
    /// Keys revoked for keyCompromise.
    pub compromised_keys: HashSet<[u8; 32]>,
    /// Rounds of Fermat factorisation tried on RSA moduli.
    pub fermat_rounds: u32,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            blocked_keys: HashSet::new(),
            compromised_keys: HashSet::new(),
            fermat_rounds: 100,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedCsr {
    pub der: Vec<u8>,
    /// Normalised SAN dNSNames, then the CN if it is not among them; no duplicates.
    pub names: Vec<String>,
    /// The subject commonName as written in the CSR.
    pub cn: Option<String>,
    pub country: Option<String>,
    pub state: Option<String>,
    pub locality: Option<String>,
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
    pub email: Option<String>,
    /// "RSA" or "ECDSA".
    pub key_alg: String,
    /// RSA modulus bits, or the curve size (256, 384).
    pub key_size: u32,
    pub spki_der: Vec<u8>,
    /// SHA-256 of `spki_der`.
    pub key_sha256: [u8; 32],
    /// SAN iPAddress entries (and an IP CN that repeats one); only the server profile uses them.
    pub ip_addresses: Vec<IpAddr>,
}

/// Parses a PEM or DER PKCS#10 request, verifies its signature and applies the key policy.
pub fn parse_csr(pem_or_der: &[u8], policy: &KeyPolicy) -> Result<ParsedCsr, CsrError> {
    use CsrErrorKind::*;
    let der = der_or_pem(
        pem_or_der,
        &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"],
    )
    .map_err(|e| csr_err(Malformed, format!("CSR is not DER or PEM: {e}")))?;
    let (rest, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| csr_err(Malformed, format!("CSR cannot be parsed: {e}")))?;
    if !rest.is_empty() {
        return Err(csr_err(Malformed, "CSR has trailing data"));
    }
    let info = &csr.certification_request_info;
    if info.version.0 != 0 {
        return Err(csr_err(Malformed, "CSR version must be 1"));
    }
    let spki = &info.subject_pki;
    let key = analyze_key(spki, Some(policy.fermat_rounds))?;
    let spki_der = spki.raw.to_vec();
    let key_sha256 = sha256(&spki_der);
    if policy.compromised_keys.contains(&key_sha256) {
        return Err(csr_err(
            CompromisedKey,
            "key was revoked for key compromise",
        ));
    }
    if policy.blocked_keys.contains(&key_sha256) {
        return Err(csr_err(BlockedKey, "key is on the weak-key list"));
    }
    verify_signature(&csr, &key)?;

    let (names, ip_addresses, cn) = collect_names(&csr)?;
    let subject = &info.subject;
    let first = |mut it: Box<
        dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>> + '_,
    >| { it.next().and_then(|a| a.as_str().ok()).map(str::to_string) };
    Ok(ParsedCsr {
        names,
        cn,
        country: first(Box::new(subject.iter_country())),
        state: first(Box::new(subject.iter_state_or_province())),
        locality: first(Box::new(subject.iter_locality())),
        organization: first(Box::new(subject.iter_organization())),
        organizational_unit: first(Box::new(subject.iter_organizational_unit())),
        email: first(Box::new(subject.iter_email())),
        key_alg: key.kind.label().to_string(),
        key_size: key.bits,
        spki_der,
        key_sha256,
        ip_addresses,
        der,
    })
}

/// The CSR's names must equal the authorised identifiers as sets.
pub fn check_names(csr_names: &[String], authorized: &[String]) -> Result<(), CsrError> {
    let csr: HashSet<&str> = csr_names.iter().map(String::as_str).collect();
    let auth: HashSet<&str> = authorized.iter().map(String::as_str).collect();
    if csr == auth {
        return Ok(());
    }
    let mut missing: Vec<&str> = auth.difference(&csr).copied().collect();
    let mut extra: Vec<&str> = csr.difference(&auth).copied().collect();
    missing.sort_unstable();
    extra.sort_unstable();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        parts.push(format!("not authorised {}", extra.join(", ")));
    }
    Err(csr_err(
        CsrErrorKind::NameMismatch,
        format!("CSR names do not match the order: {}", parts.join("; ")),
    ))
}

type Names = (Vec<String>, Vec<IpAddr>, Option<String>);

fn collect_names(csr: &X509CertificationRequest<'_>) -> Result<Names, CsrError> {
    use CsrErrorKind::*;
    let mut names: Vec<String> = Vec::new();
    let mut ips: Vec<IpAddr> = Vec::new();
    let mut seen_san = false;
    for ext in csr.requested_extensions().into_iter().flatten() {
        match ext {
            ParsedExtension::SubjectAlternativeName(san) => {
                if seen_san {
                    return Err(csr_err(Malformed, "CSR requests subjectAltName twice"));
                }
                seen_san = true;
                for gn in &san.general_names {
                    match gn {
                        GeneralName::DNSName(raw) => {
                            let n = normalize(raw)?;
                            if names.contains(&n) {
                                return Err(csr_err(DuplicateName, format!("duplicate name {n}")));
                            }
                            names.push(n);
                        }
                        GeneralName::IPAddress(bytes) => {
                            let ip = ip_from_bytes(bytes)
                                .ok_or_else(|| csr_err(BadName, "malformed iPAddress SAN"))?;
                            if ips.contains(&ip) {
                                return Err(csr_err(DuplicateName, format!("duplicate name {ip}")));
                            }
                            ips.push(ip);
                        }
                        other => {
                            return Err(csr_err(
                                BadName,
                                format!("unsupported subjectAltName entry {other}"),
                            ));
                        }
                    }
                }
            }
            ParsedExtension::ParseError { error } => {
                return Err(csr_err(
                    Malformed,
                    format!("CSR extension cannot be parsed: {error}"),
                ));
            }
            _ => {}
        }
    }
    let subject = &csr.certification_request_info.subject;
    let mut cns = subject.iter_common_name();
    let cn = match cns.next() {
        None => None,
        Some(a) => Some(
            a.as_str()
                .map_err(|_| csr_err(BadName, "commonName is not a string"))?
                .to_string(),
        ),
    };
    if cns.next().is_some() {
        return Err(csr_err(BadName, "CSR subject has more than one commonName"));
    }
    if let Some(cn) = &cn {
        match cn.parse::<IpAddr>() {
            Ok(ip) if ips.contains(&ip) => {}
            Ok(ip) => {
                return Err(csr_err(
                    BadName,
                    format!("name {ip}: IP address commonName is not among the SANs"),
                ));
            }
            Err(_) => {
                let n = normalize(cn)?;
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
    }
    if names.is_empty() && ips.is_empty() {
        return Err(csr_err(BadName, "CSR contains no names"));
    }
    Ok((names, ips, cn))
}

fn normalize(raw: &str) -> Result<String, CsrError> {
    certhub_domain::names::normalize_dns_name(raw)
        .map_err(|e| csr_err(CsrErrorKind::BadName, format!("name {raw}: {}", e.reason)))
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

// ------------------------------------------------------------------ keys

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
}

impl KeyKind {
    fn label(self) -> &'static str {
        if self == Self::Rsa { "RSA" } else { "ECDSA" }
    }
}

struct KeyFacts<'a> {
    kind: KeyKind,
    bits: u32,
    /// RSAPublicKey DER or the uncompressed EC point: what aws-lc-rs verifies with.
    public: &'a [u8],
}

/// Applies the key policy. `fermat_rounds: None` skips the expensive weak-key tests
/// (used at issuance, where the CSR was already checked).
fn analyze_key<'a>(
    spki: &'a SubjectPublicKeyInfo<'a>,
    fermat_rounds: Option<u32>,
) -> Result<KeyFacts<'a>, CsrError> {
    use CsrErrorKind::*;
    let alg = spki.algorithm.algorithm.to_id_string();
    let public = spki.subject_public_key.data.as_ref();
    if alg == oids::RSA_ENCRYPTION.to_string() {
        let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
            return Err(csr_err(Malformed, "RSA public key cannot be parsed"));
        };
        let n = BigUint::from_bytes_be(rsa.modulus);
        let bits = u32::try_from(n.bits()).unwrap_or(u32::MAX);
        if bits < 2048 {
            return Err(csr_err(
                UnsupportedKey,
                format!("RSA key of {bits} bits is too small (minimum 2048)"),
            ));
        }
        if bits > 4096 {
            return Err(csr_err(
                UnsupportedKey,
                format!("RSA key of {bits} bits is too large (maximum 4096)"),
            ));
        }
        if bits % 8 != 0 {
            return Err(csr_err(
                UnsupportedKey,
                format!("RSA key of {bits} bits is not a multiple of 8 bits"),
            ));
        }
        let e = BigUint::from_bytes_be(rsa.exponent);
        if e != BigUint::from(65_537u32) {
            return Err(csr_err(
                UnsupportedKey,
                format!("RSA public exponent {e} is not allowed (must be 65537)"),
            ));
        }
        if let Some(rounds) = fermat_rounds {
            if !n.bit(0) {
                return Err(csr_err(WeakKey, "RSA modulus is even"));
            }
            if is_roca_fingerprint(&n) {
                return Err(csr_err(WeakKey, "ROCA-vulnerable key"));
            }
            if fermat_factor(&n, rounds).is_some() {
                return Err(csr_err(WeakKey, "key is Fermat-factorable"));
            }
        }
        return Ok(KeyFacts {
            kind: KeyKind::Rsa,
            bits,
            public,
        });
    }
    if alg == oids::EC_PUBLIC_KEY.to_string() {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_id_string())
            // An empty OID parses, but names no curve either.
            .filter(|o| !o.is_empty())
            .ok_or_else(|| csr_err(UnsupportedKey, "ECDSA key without a named curve"))?;
        let (kind, bits, c) = if curve == oids::CURVE_P256.to_string() {
            (KeyKind::P256, 256, &*P256)
        } else if curve == oids::CURVE_P384.to_string() {
            (KeyKind::P384, 384, &*P384)
        } else {
            let name = if curve == oids::CURVE_P521.to_string() {
                "P-521".to_string()
            } else {
                curve
            };
            return Err(csr_err(
                UnsupportedKey,
                format!("ECDSA curve {name} is not allowed (P-256 or P-384 only)"),
            ));
        };
        check_point(public, c)?;
        return Ok(KeyFacts { kind, bits, public });
    }
    Err(csr_err(
        UnsupportedKey,
        format!("key algorithm {alg} is not allowed (RSA or ECDSA only)"),
    ))
}

/// Structural key check used at issuance (type, size, exponent, curve, point).
pub(crate) fn check_issuable_spki(spki_der: &[u8]) -> Result<(), CaError> {
    let (rest, spki) = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| CaError::InvalidRequest(format!("public key cannot be parsed: {e}")))?;
    if !rest.is_empty() {
        return Err(CaError::InvalidRequest(
            "trailing data after the public key".into(),
        ));
    }
    analyze_key(&spki, None).map(|_| ()).map_err(CaError::Csr)
}

fn verify_signature(
    csr: &X509CertificationRequest<'_>,
    key: &KeyFacts<'_>,
) -> Result<(), CsrError> {
    use CsrErrorKind::BadSignature;
    let sig_oid = csr.signature_algorithm.algorithm.to_id_string();
    let is = |o: &const_oid::ObjectIdentifier| sig_oid == o.to_string();
    let alg: &'static dyn VerificationAlgorithm = match key.kind {
        KeyKind::Rsa if is(&oids::SHA256_WITH_RSA) => &signature::RSA_PKCS1_2048_8192_SHA256,
        KeyKind::Rsa if is(&oids::SHA384_WITH_RSA) => &signature::RSA_PKCS1_2048_8192_SHA384,
        KeyKind::Rsa if is(&oids::SHA512_WITH_RSA) => &signature::RSA_PKCS1_2048_8192_SHA512,
        KeyKind::P256 if is(&oids::ECDSA_SHA256) => &signature::ECDSA_P256_SHA256_ASN1,
        KeyKind::P256 if is(&oids::ECDSA_SHA384) => &signature::ECDSA_P256_SHA384_ASN1,
        KeyKind::P256 if is(&oids::ECDSA_SHA512) => &signature::ECDSA_P256_SHA512_ASN1,
        KeyKind::P384 if is(&oids::ECDSA_SHA256) => &signature::ECDSA_P384_SHA256_ASN1,
        KeyKind::P384 if is(&oids::ECDSA_SHA384) => &signature::ECDSA_P384_SHA384_ASN1,
        KeyKind::P384 if is(&oids::ECDSA_SHA512) => &signature::ECDSA_P384_SHA512_ASN1,
        _ => {
            return Err(csr_err(
                BadSignature,
                format!(
                    "CSR signature algorithm {sig_oid} is not supported for a {} key",
                    key.kind.label()
                ),
            ));
        }
    };
    let message = csr.certification_request_info.raw;
    UnparsedPublicKey::new(alg, key.public)
        .verify(message, &csr.signature_value.data)
        .map_err(|_| csr_err(BadSignature, "CSR signature is invalid"))
}

// ------------------------------------------------------------------ EC points

struct Curve {
    p: BigUint,
    b: BigUint,
    len: usize,
}

fn curve(p_hex: &str, b_hex: &str, len: usize) -> Curve {
    let parse = |h: &str| BigUint::parse_bytes(h.as_bytes(), 16).unwrap_or_default();
    Curve {
        p: parse(p_hex),
        b: parse(b_hex),
        len,
    }
}

static P256: LazyLock<Curve> = LazyLock::new(|| {
    curve(
        "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
        "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
        32,
    )
});

static P384: LazyLock<Curve> = LazyLock::new(|| {
    curve(
        "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
        "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
        48,
    )
});

/// Uncompressed point with coordinates below p on y² = x³ − 3x + b (the NIST curves have
/// cofactor 1, so on-curve means in the prime-order group).
fn check_point(point: &[u8], c: &Curve) -> Result<(), CsrError> {
    use CsrErrorKind::*;
    match point.first() {
        Some(4) if point.len() == 1 + 2 * c.len => {}
        Some(2 | 3) => {
            return Err(csr_err(
                UnsupportedKey,
                "compressed EC points are not allowed",
            ));
        }
        _ => return Err(csr_err(WeakKey, "EC public key is not a valid point")),
    }
    let x = BigUint::from_bytes_be(&point[1..=c.len]);
    let y = BigUint::from_bytes_be(&point[1 + c.len..]);
    if x >= c.p || y >= c.p {
        return Err(csr_err(
            WeakKey,
            "EC public key coordinates are out of range",
        ));
    }
    let lhs = (&y * &y) % &c.p;
    let x3 = (&x * &x % &c.p) * &x % &c.p;
    let three_x = (&x * 3u32) % &c.p;
    let rhs = (x3 + &c.p - three_x + &c.b) % &c.p;
    if lhs != rhs {
        return Err(csr_err(WeakKey, "EC public key point is not on the curve"));
    }
    Ok(())
}

// ------------------------------------------------------------------ RSA weak keys

/// Small primes of the ROCA fingerprint test (Nemec et al., CCS 2017): an Infineon-generated
/// modulus is congruent to a power of 65537 modulo each of them.
const ROCA_PRIMES: [u32; 38] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
];

/// For each ROCA prime, the residues in the subgroup generated by 65537.
static ROCA_SUBGROUPS: LazyLock<Vec<(u32, Vec<bool>)>> = LazyLock::new(|| {
    ROCA_PRIMES
        .iter()
        .map(|&p| {
            let mut member = vec![false; p as usize];
            let g = 65_537 % p;
            let mut x = 1u32;
            while !member[x as usize] {
                member[x as usize] = true;
                x = x * g % p;
            }
            (p, member)
        })
        .collect()
});

/// True if `n` carries the ROCA fingerprint.
pub(crate) fn is_roca_fingerprint(n: &BigUint) -> bool {
    ROCA_SUBGROUPS.iter().all(|(p, member)| {
        let r = (n % *p).to_usize().unwrap_or(0);
        member.get(r).copied().unwrap_or(false)
    })
}

/// Quadratic residues modulo 64, 63, 65 and 11: cheap filters before a full integer square root.
static SQUARE_TABLES: LazyLock<Vec<(u32, Vec<bool>)>> = LazyLock::new(|| {
    [64u32, 63, 65, 11]
        .iter()
        .map(|&m| {
            let mut t = vec![false; m as usize];
            for i in 0..m {
                t[((i * i) % m) as usize] = true;
            }
            (m, t)
        })
        .collect()
});

fn maybe_square(v: &BigUint) -> bool {
    SQUARE_TABLES.iter().all(|(m, t)| {
        t.get((v % *m).to_usize().unwrap_or(0))
            .copied()
            .unwrap_or(false)
    })
}

/// Tries `rounds` steps of Fermat's method from ⌈√n⌉; returns a factor when p and q are close.
pub(crate) fn fermat_factor(n: &BigUint, rounds: u32) -> Option<BigUint> {
    if n.is_zero() {
        return None;
    }
    let mut a = n.sqrt();
    if &a * &a < *n {
        a += 1u32;
    }
    let mut b2 = &a * &a - n;
    for _ in 0..rounds {
        if maybe_square(&b2) {
            let b = b2.sqrt();
            if &b * &b == b2 {
                let f = &a - &b;
                return (f > BigUint::from(1u32) && f < *n).then_some(f);
            }
        }
        // (a+1)² − n = b2 + 2a + 1
        b2 += &a * 2u32 + 1u32;
        a += 1u32;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fermat_finds_close_factors() {
        let p = (BigUint::from(1u32) << 1024) + 15u32;
        let q = (BigUint::from(1u32) << 1024) + 99u32;
        let n = &p * &q;
        let f = fermat_factor(&n, 100).unwrap();
        assert_eq!(f, p);
        // Factors a round apart further than 100 steps are not found.
        let q2 = (BigUint::from(1u32) << 1030) + 1u32;
        assert!(fermat_factor(&(&p * &q2), 100).is_none());
    }

    #[test]
    fn roca_fingerprint_detected() {
        let m: BigUint = ROCA_PRIMES.iter().map(|p| BigUint::from(*p)).product();
        let g = BigUint::from(65_537u32);
        let residue = g.modpow(&BigUint::from(123_456u32), &m);
        let n = (BigUint::from(1u32) << 2040) / &m * &m + &residue;
        assert!(is_roca_fingerprint(&n));
        assert!(!is_roca_fingerprint(&(n + 2u32)));
    }
}
