//! The loaded CA: issuers with their signers, leaf issuance and the validity rules.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::cert_info::CertInfo;
use crate::hierarchy::{
    BACKDATE_SECS, DV_ID, IssuerMaterial, OV_ID, SERVER_ID, normalize_pki_url, responder_for,
};
use crate::keys::{Signer, SoftwareSigner, sha1, sha256};
use crate::output::{hex_lower, hex_upper, pem_encode};
use crate::profile::{
    KU_DIGITAL_SIGNATURE, TbsParams, build_certificate, ext_aia, ext_aki, ext_crl_dp, ext_eku,
    ext_key_usage, ext_policy, ext_san, name_der, spki_key_bits,
};
use crate::{CaError, oids};

/// Most names one certificate may carry (a sanity bound; products set lower limits).
pub const MAX_NAMES: usize = 1000;

/// Organisation subject of an OV certificate: the approved snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgSubject {
    pub organization: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    pub state: Option<String>,
    pub locality: Option<String>,
}

/// Leaf certificate profiles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Profile {
    /// Issued by "dv": empty subject, policy 2.23.140.1.2.1.
    Dv,
    /// Issued by "ov": subject C, ST and/or L, O; policy 2.23.140.1.2.2.
    Ov(OrgSubject),
    /// certhub's own listener certificate, issued by "server": DV-like without a CA/B policy,
    /// names such as `localhost` allowed, plus IP SANs.
    Server { ip_addresses: Vec<IpAddr> },
}

impl Profile {
    pub fn issuer_id(&self) -> &'static str {
        match self {
            Self::Dv => DV_ID,
            Self::Ov(_) => OV_ID,
            Self::Server { .. } => SERVER_ID,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    pub profile: Profile,
    /// Authorised, normalised names; the first is RTR's `domainName` and the first SAN.
    pub names: Vec<String>,
    pub spki_der: Vec<u8>,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    /// The product's maximum validity in days.
    pub max_days: u32,
    pub now: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCert {
    pub der: Vec<u8>,
    pub pem: String,
    /// Leaf followed by its intermediate.
    pub chain_pem: String,
    /// Lower-case hex of the serial number's magnitude (the 16 bytes of a [`random_serial`]).
    pub serial_hex: String,
    pub not_before: i64,
    pub not_after: i64,
    pub issuer_id: String,
    /// Upper-case hex SHA-256 of the DER certificate.
    pub fingerprint_sha256_hex: String,
    /// SHA-256 of the SubjectPublicKeyInfo DER.
    pub key_sha256: [u8; 32],
}

/// 16 random bytes, top bit cleared (positive INTEGER) and a non-zero first byte, so the DER
/// INTEGER is exactly these 16 bytes (BR 7.1: at least 64 bits of CSPRNG output).
pub fn random_serial() -> [u8; 16] {
    loop {
        let mut s = [0u8; 16];
        if aws_lc_rs::rand::fill(&mut s).is_err() {
            continue;
        }
        s[0] &= 0x7f;
        if s[0] != 0 {
            return s;
        }
    }
}

// ------------------------------------------------------------------ validity

fn unix(y: i32, m: time::Month, d: u8) -> i64 {
    time::Date::from_calendar_date(y, m, d)
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .unwrap_or(i64::MAX)
}

/// BR 6.3.2 maximum validity (days) by notBefore, one day below each limit.
fn br_cap_days(not_before: i64) -> u32 {
    use time::Month::March;
    if not_before < unix(2026, March, 15) {
        397
    } else if not_before < unix(2027, March, 15) {
        199
    } else if not_before < unix(2029, March, 15) {
        99
    } else {
        46
    }
}

/// Maximum validity D in days for a certificate starting at `not_before`:
/// min(product maximum, 397 / 199 / 99 / 46 days by date).
pub fn validity_max_days(not_before: i64, product_max: u32) -> u32 {
    product_max.min(br_cap_days(not_before))
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// notBefore / notAfter for a certificate signed at `now`: notBefore = now − 60 s unless requested;
/// notAfter = notBefore + D·86400 − 1 unless an earlier one is requested. Requests outside the rules
/// are [`CaError::Validity`] errors naming the limit (ACME `malformed`).
pub fn validity_window(
    now: i64,
    not_before: Option<i64>,
    not_after: Option<i64>,
    max_days: u32,
) -> Result<(i64, i64), CaError> {
    let nb = match not_before {
        None => now - BACKDATE_SECS,
        Some(nb) if nb < now - 86_400 => {
            return Err(CaError::Validity(format!(
                "notBefore {} is more than one day in the past (earliest {})",
                rfc3339(nb),
                rfc3339(now - 86_400)
            )));
        }
        Some(nb) if nb > now + 90 * 86_400 => {
            return Err(CaError::Validity(format!(
                "notBefore {} is more than 90 days in the future (latest {})",
                rfc3339(nb),
                rfc3339(now + 90 * 86_400)
            )));
        }
        Some(nb) => nb,
    };
    let d = validity_max_days(nb, max_days);
    if d == 0 {
        return Err(CaError::Validity("the product allows no validity".into()));
    }
    let latest = nb + i64::from(d) * 86_400 - 1;
    let na = match not_after {
        None => latest,
        Some(na) if na > latest => {
            return Err(CaError::Validity(format!(
                "notAfter {} exceeds the maximum validity of {d} days (latest {})",
                rfc3339(na),
                rfc3339(latest)
            )));
        }
        Some(na) if na <= nb || na <= now => {
            return Err(CaError::Validity(format!(
                "notAfter {} must be later than notBefore and now",
                rfc3339(na)
            )));
        }
        Some(na) => na,
    };
    Ok((nb, na))
}

// ------------------------------------------------------------------ the CA

pub(crate) struct Issuer {
    pub id: String,
    pub parent: Option<String>,
    pub cert_der: Vec<u8>,
    pub info: CertInfo,
    pub signer: Box<dyn Signer>,
    pub name_sha1: [u8; 20],
    pub key_sha1: [u8; 20],
    pub name_sha256: [u8; 32],
    pub key_sha256: [u8; 32],
}

/// A loaded CA hierarchy. Pure: the application stores what it returns.
pub struct Ca {
    pub(crate) issuers: Vec<Issuer>,
    by_id: HashMap<String, usize>,
    root: usize,
    pub(crate) pki_url: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field(
                "issuers",
                &self.issuers.iter().map(|i| &i.id).collect::<Vec<_>>(),
            )
            .field("pki_url", &self.pki_url)
            .finish()
    }
}

/// An issuer whose key lives behind a [`Signer`] (HSM, upstream): the seam next to [`Ca::load`].
pub struct IssuerSigner {
    pub id: String,
    pub parent: Option<String>,
    pub cert_der: Vec<u8>,
    pub signer: Box<dyn Signer>,
}

impl Ca {
    /// Loads issuers with software keys.
    pub fn load(materials: Vec<IssuerMaterial>, pki_url: &str) -> Result<Self, CaError> {
        let mut issuers = Vec::with_capacity(materials.len());
        for m in materials {
            let signer = SoftwareSigner::from_pkcs8(&m.key_pkcs8)?;
            issuers.push(IssuerSigner {
                id: m.id,
                parent: m.parent,
                cert_der: m.cert_der,
                signer: Box::new(signer),
            });
        }
        Self::from_signers(issuers, pki_url)
    }

    /// Loads issuers whose keys are reached through any [`Signer`].
    pub fn from_signers(list: Vec<IssuerSigner>, pki_url: &str) -> Result<Self, CaError> {
        let pki_url = normalize_pki_url(pki_url)?;
        let mut issuers = Vec::with_capacity(list.len());
        let mut by_id = HashMap::new();
        for s in list {
            let info = CertInfo::parse(&s.cert_der)?;
            if info.spki_der != s.signer.spki_der() {
                return Err(CaError::Config(format!(
                    "issuer {}: key does not match its certificate",
                    s.id
                )));
            }
            let key_bits = spki_key_bits(&info.spki_der)?;
            let issuer = Issuer {
                name_sha1: sha1(&info.subject_der),
                name_sha256: sha256(&info.subject_der),
                key_sha1: sha1(key_bits),
                key_sha256: sha256(key_bits),
                id: s.id,
                parent: s.parent,
                cert_der: s.cert_der,
                info,
                signer: s.signer,
            };
            if by_id.insert(issuer.id.clone(), issuers.len()).is_some() {
                return Err(CaError::Config(format!(
                    "duplicate issuer id {}",
                    issuer.id
                )));
            }
            issuers.push(issuer);
        }
        let mut roots = issuers
            .iter()
            .enumerate()
            .filter(|(_, i)| i.parent.is_none())
            .map(|(n, _)| n);
        let (Some(root), None) = (roots.next(), roots.next()) else {
            return Err(CaError::Config(
                "exactly one issuer must be the root (no parent)".into(),
            ));
        };
        for i in &issuers {
            if let Some(p) = &i.parent
                && !by_id.contains_key(p)
            {
                return Err(CaError::Config(format!(
                    "issuer {}: unknown parent {p}",
                    i.id
                )));
            }
        }
        Ok(Self {
            issuers,
            by_id,
            root,
            pki_url,
        })
    }

    pub(crate) fn issuer(&self, id: &str) -> Result<&Issuer, CaError> {
        self.by_id
            .get(id)
            .map(|n| &self.issuers[*n])
            .ok_or_else(|| CaError::UnknownIssuer(id.to_string()))
    }

    pub fn pki_url(&self) -> &str {
        &self.pki_url
    }

    pub fn issuer_ids(&self) -> Vec<&str> {
        self.issuers.iter().map(|i| i.id.as_str()).collect()
    }

    pub fn issuer_cert_der(&self, id: &str) -> Option<&[u8]> {
        self.by_id
            .get(id)
            .map(|n| self.issuers[*n].cert_der.as_slice())
    }

    /// notAfter of an issuer certificate.
    pub fn issuer_not_after(&self, id: &str) -> Option<i64> {
        self.by_id.get(id).map(|n| self.issuers[*n].info.not_after)
    }

    pub fn root_der(&self) -> &[u8] {
        &self.issuers[self.root].cert_der
    }

    pub fn root_pem(&self) -> String {
        pem_encode("CERTIFICATE", self.root_der())
    }

    /// PEM of the issuer and its ancestors up to, but without, the root.
    pub fn chain_pem(&self, issuer_id: &str) -> Result<String, CaError> {
        let mut out = String::new();
        for der in self.chain_der(issuer_id)? {
            out.push_str(&pem_encode("CERTIFICATE", der));
        }
        Ok(out)
    }

    /// DER certificates from `issuer_id` up to, but without, the root.
    pub fn chain_der(&self, issuer_id: &str) -> Result<Vec<&[u8]>, CaError> {
        let mut out = Vec::new();
        let mut cur = self.issuer(issuer_id)?;
        while let Some(parent) = &cur.parent {
            out.push(cur.cert_der.as_slice());
            if out.len() > 8 {
                return Err(CaError::Config("issuer parent loop".into()));
            }
            cur = self.issuer(parent)?;
        }
        Ok(out)
    }

    /// A new delegated OCSP responder `(cert_der, key_pkcs8)` for a loaded issuer.
    pub fn new_ocsp_responder(
        &self,
        issuer_id: &str,
        now: i64,
    ) -> Result<(Vec<u8>, Vec<u8>), CaError> {
        let i = self.issuer(issuer_id)?;
        responder_for(&i.cert_der, i.signer.as_ref(), now)
    }

    /// Issues a leaf certificate. `serial` comes from [`random_serial`]; the caller retries
    /// with a new one if its store reports a collision for this issuer.
    pub fn issue(&self, req: &IssueRequest, serial: [u8; 16]) -> Result<IssuedCert, CaError> {
        let issuer = self.issuer(req.profile.issuer_id())?;
        if serial.iter().all(|b| *b == 0) {
            return Err(CaError::InvalidRequest(
                "serial number must not be zero".into(),
            ));
        }
        check_leaf_names(&req.profile, &req.names)?;
        crate::csr::check_issuable_spki(&req.spki_der)?;
        let (not_before, not_after) =
            validity_window(req.now, req.not_before, req.not_after, req.max_days)?;
        if not_after > issuer.info.not_after {
            return Err(CaError::Validity(format!(
                "notAfter {} is beyond the issuer's expiry {}",
                rfc3339(not_after),
                rfc3339(issuer.info.not_after)
            )));
        }

        let id = issuer.id.as_str();
        let url = &self.pki_url;
        let (subject, san_critical, policy, ips): (Vec<u8>, bool, Option<_>, &[IpAddr]) =
            match &req.profile {
                Profile::Dv => (name_der(&[])?, true, Some(oids::POLICY_DV), &[]),
                Profile::Ov(org) => (ov_subject(org)?, false, Some(oids::POLICY_OV), &[]),
                Profile::Server { ip_addresses } => {
                    (name_der(&[])?, true, None, ip_addresses.as_slice())
                }
            };
        let mut exts = vec![
            ext_key_usage(&[KU_DIGITAL_SIGNATURE]),
            ext_eku(&[oids::KP_SERVER_AUTH]),
            ext_aki(&issuer.info.key_id),
            ext_aia(
                Some(&format!("{url}/ocsp/{id}")),
                &format!("{url}/issuer/{id}.cer"),
            ),
            ext_crl_dp(&format!("{url}/crl/{id}.crl")),
            ext_san(&req.names, ips, san_critical),
        ];
        if let Some(p) = policy {
            exts.push(ext_policy(&p));
        }
        let der = build_certificate(
            issuer.signer.as_ref(),
            &TbsParams {
                serial: &serial,
                issuer_der: &issuer.info.subject_der,
                not_before,
                not_after,
                subject_der: &subject,
                spki_der: &req.spki_der,
                extensions: &exts,
            },
        )?;
        let pem = pem_encode("CERTIFICATE", &der);
        let mut chain_pem = pem.clone();
        chain_pem.push_str(&self.chain_pem(id)?);
        Ok(IssuedCert {
            serial_hex: hex_lower(crate::asn1::trim_leading_zeros(&serial)),
            fingerprint_sha256_hex: hex_upper(&sha256(&der)),
            key_sha256: sha256(&req.spki_der),
            der,
            pem,
            chain_pem,
            not_before,
            not_after,
            issuer_id: id.to_string(),
        })
    }
}

/// BR 7.1.4.2: C, ST, L, O in the BR's relative order; ST or L required with O.
fn ov_subject(org: &OrgSubject) -> Result<Vec<u8>, CaError> {
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let state = nonempty(&org.state);
    let locality = nonempty(&org.locality);
    if state.is_none() && locality.is_none() {
        return Err(CaError::InvalidRequest(
            "an OV subject needs a state or a locality".into(),
        ));
    }
    let mut attrs = vec![(oids::AT_COUNTRY, org.country.trim())];
    if let Some(s) = state.as_deref() {
        attrs.push((oids::AT_STATE, s));
    }
    if let Some(l) = locality.as_deref() {
        attrs.push((oids::AT_LOCALITY, l));
    }
    attrs.push((oids::AT_ORGANIZATION, org.organization.trim()));
    name_der(&attrs)
}

/// Names must already be authorised and normalised: this re-checks the invariant cheaply
/// so that no caller bug can put an unnormalised or duplicate name into a certificate.
fn check_leaf_names(profile: &Profile, names: &[String]) -> Result<(), CaError> {
    let ips = match profile {
        Profile::Server { ip_addresses } => ip_addresses.len(),
        _ => 0,
    };
    if names.is_empty() && ips == 0 {
        return Err(CaError::InvalidRequest(
            "a certificate needs at least one name".into(),
        ));
    }
    if names.len() + ips > MAX_NAMES {
        return Err(CaError::InvalidRequest(format!(
            "at most {MAX_NAMES} names per certificate"
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    for n in names {
        if !seen.insert(n.as_str()) {
            return Err(CaError::InvalidRequest(format!("duplicate name {n}")));
        }
        let ok = match profile {
            Profile::Server { .. } => is_ldh_name(n),
            _ => certhub_domain::names::normalize_dns_name(n).is_ok_and(|norm| norm == *n),
        };
        if !ok {
            return Err(CaError::InvalidRequest(format!(
                "name {n:?} is not a normalised DNS name"
            )));
        }
    }
    Ok(())
}

/// Lower-case LDH host name (for certhub's own listener names such as `localhost`).
fn is_ldh_name(n: &str) -> bool {
    n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn br_caps_by_date() {
        use time::Month::March;
        let t1 = unix(2026, March, 15);
        assert_eq!(validity_max_days(t1 - 1, 500), 397);
        assert_eq!(validity_max_days(t1, 500), 199);
        assert_eq!(validity_max_days(unix(2027, March, 15) - 1, 500), 199);
        assert_eq!(validity_max_days(unix(2027, March, 15), 500), 99);
        assert_eq!(validity_max_days(unix(2029, March, 15), 500), 46);
        assert_eq!(validity_max_days(0, 90), 90);
        assert_eq!(t1, 1_773_532_800);
    }

    #[test]
    fn window_defaults_and_limits() {
        let now = 1_760_000_000; // 2025-10-09
        let (nb, na) = validity_window(now, None, None, 90).unwrap();
        assert_eq!(nb, now - 60);
        assert_eq!(na - nb + 1, 90 * 86_400);
        let (_, na2) = validity_window(now, None, Some(now + 86_400), 90).unwrap();
        assert_eq!(na2, now + 86_400);
        let e = validity_window(now, None, Some(now + 91 * 86_400), 90).unwrap_err();
        assert!(e.to_string().contains("maximum validity of 90 days"), "{e}");
        assert!(validity_window(now, Some(now - 3 * 86_400), None, 90).is_err());
        assert!(validity_window(now, None, Some(now - 10), 90).is_err());
        // Crossing the 2026-03-15 boundary uses the notBefore date.
        let t1 = 1_773_532_800;
        let (nb, na) = validity_window(t1 + 100, None, None, 397).unwrap();
        assert_eq!(na - nb + 1, 199 * 86_400);
    }

    #[test]
    fn serials_are_positive_and_sixteen_bytes() {
        for _ in 0..1000 {
            let s = random_serial();
            assert!(s[0] != 0 && s[0] < 0x80);
        }
    }

    #[test]
    fn ldh_names() {
        assert!(is_ldh_name("localhost"));
        assert!(is_ldh_name("a-b.example"));
        assert!(!is_ldh_name("-a.example"));
        assert!(!is_ldh_name("A.example"));
        assert!(!is_ldh_name("a..b"));
    }
}
