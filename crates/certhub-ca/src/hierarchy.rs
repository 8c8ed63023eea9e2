//! The CA hierarchy: root, the DV/OV/server intermediates and their delegated OCSP responders.

use serde::{Deserialize, Serialize};

use crate::keys::{KeyAlg, Signer, SoftwareSigner, generate_key};
use crate::profile::{
    KU_CRL_SIGN, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, TbsParams, build_certificate, ext_aia,
    ext_aki, ext_basic_constraints_ca, ext_crl_dp, ext_eku, ext_key_usage, ext_ocsp_nocheck,
    ext_policy, ext_ski, key_id, name_der,
};
use crate::{CaError, cert_info::CertInfo, oids, random_serial};

/// Issuer ids created by [`init_hierarchy`].
pub const ROOT_ID: &str = "root";
pub const DV_ID: &str = "dv";
pub const OV_ID: &str = "ov";
pub const SERVER_ID: &str = "server";

/// Validity of a delegated OCSP responder certificate. The caller re-creates it
/// with [`new_ocsp_responder`] when [`responder_needs_renewal`] says so.
pub const OCSP_RESPONDER_DAYS: i64 = 90;
/// Remaining lifetime below which a responder certificate is replaced.
pub const OCSP_RESPONDER_RENEW_BEFORE_DAYS: i64 = 30;

/// Backdating of every certificate certhub signs (design.md: notBefore = signing time − 60 s).
pub(crate) const BACKDATE_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaConfig {
    pub key_alg: KeyAlg,
    pub organization: String,
    pub country: String,
    pub root_cn: String,
    pub root_days: u32,
    pub intermediate_days: u32,
    /// `http://` base of the CRL, OCSP and issuer URLs, without trailing slash.
    pub pki_url: String,
}

impl Default for CaConfig {
    fn default() -> Self {
        Self {
            key_alg: KeyAlg::EcdsaP256,
            organization: "certhub".into(),
            country: "NL".into(),
            root_cn: "certhub Root CA".into(),
            root_days: 20 * 365,
            intermediate_days: 5 * 365,
            pki_url: "http://localhost:8443".into(),
        }
    }
}

/// One issuer's certificate and keys, as the application stores them
/// (it encrypts `key_pkcs8` and `ocsp_key_pkcs8` at rest).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerMaterial {
    pub id: String,
    pub parent: Option<String>,
    pub cert_der: Vec<u8>,
    pub key_pkcs8: Vec<u8>,
    pub ocsp_cert_der: Vec<u8>,
    pub ocsp_key_pkcs8: Vec<u8>,
}

impl std::fmt::Debug for IssuerMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerMaterial")
            .field("id", &self.id)
            .field("parent", &self.parent)
            .finish_non_exhaustive()
    }
}

/// Checks and normalises the PKI base URL (BR: CRL, OCSP and caIssuers URLs are `http://`).
pub fn normalize_pki_url(url: &str) -> Result<String, CaError> {
    let trimmed = url.trim().trim_end_matches('/');
    let Some(rest) = trimmed.strip_prefix("http://") else {
        return Err(CaError::Config(format!(
            "pki_url {url:?} must start with http://"
        )));
    };
    if rest.is_empty() || rest.contains(char::is_whitespace) || rest.contains(['?', '#']) {
        return Err(CaError::Config(format!(
            "pki_url {url:?} is not a valid http:// base URL"
        )));
    }
    Ok(trimmed.to_string())
}

fn days(n: u32) -> i64 {
    i64::from(n) * 86_400
}

/// Creates the root, the three intermediates and a delegated OCSP responder for each.
pub fn init_hierarchy(cfg: &CaConfig, now_unix: i64) -> Result<Vec<IssuerMaterial>, CaError> {
    let pki_url = normalize_pki_url(&cfg.pki_url)?;
    if cfg.root_days == 0 || cfg.intermediate_days == 0 || cfg.root_days > 9132 {
        return Err(CaError::Config(
            "root_days must be 1..=9132 and intermediate_days positive".into(),
        ));
    }
    let nb = now_unix - BACKDATE_SECS;
    let root_key = generate_key(cfg.key_alg)?;
    let root_signer = root_key.signer()?;
    let root_name = name_der(&[
        (oids::AT_COUNTRY, &cfg.country),
        (oids::AT_ORGANIZATION, &cfg.organization),
        (oids::AT_COMMON_NAME, &cfg.root_cn),
    ])?;
    let root_kid = key_id(&root_key.spki_der)?;
    let root_na = nb + days(cfg.root_days) - 1;
    let root_exts = vec![
        ext_basic_constraints_ca(None),
        ext_key_usage(&[KU_KEY_CERT_SIGN, KU_CRL_SIGN]),
        ext_ski(&root_kid),
        // BR 7.1.2.1.2 recommends an AKI on roots (keyIdentifier = SKI); pkilint warns without it.
        ext_aki(&root_kid),
    ];
    let root_cert = build_certificate(
        &root_signer,
        &TbsParams {
            serial: &random_serial(),
            issuer_der: &root_name,
            not_before: nb,
            not_after: root_na,
            subject_der: &root_name,
            spki_der: &root_key.spki_der,
            extensions: &root_exts,
        },
    )?;
    let mut out = vec![with_responder(
        ROOT_ID,
        None,
        root_cert,
        root_key.pkcs8_der,
        now_unix,
    )?];

    let intermediates = [
        (DV_ID, "DV TLS CA", Some(oids::POLICY_DV)),
        (OV_ID, "OV TLS CA", Some(oids::POLICY_OV)),
        (SERVER_ID, "Server CA", None),
    ];
    for (id, label, policy) in intermediates {
        let key = generate_key(cfg.key_alg)?;
        let cn = format!("{} {label}", cfg.organization);
        let subject = name_der(&[
            (oids::AT_COUNTRY, &cfg.country),
            (oids::AT_ORGANIZATION, &cfg.organization),
            (oids::AT_COMMON_NAME, &cn),
        ])?;
        let mut exts = vec![
            ext_basic_constraints_ca(Some(0)),
            ext_key_usage(&[KU_KEY_CERT_SIGN, KU_CRL_SIGN]),
            ext_eku(&[oids::KP_SERVER_AUTH]),
            ext_ski(&key_id(&key.spki_der)?),
            ext_aki(&root_kid),
            ext_crl_dp(&format!("{pki_url}/crl/{ROOT_ID}.crl")),
            ext_aia(None, &format!("{pki_url}/issuer/{ROOT_ID}.cer")),
        ];
        if let Some(p) = policy {
            exts.push(ext_policy(&p));
        }
        let cert = build_certificate(
            &root_signer,
            &TbsParams {
                serial: &random_serial(),
                issuer_der: &root_name,
                not_before: nb,
                not_after: (nb + days(cfg.intermediate_days) - 1).min(root_na),
                subject_der: &subject,
                spki_der: &key.spki_der,
                extensions: &exts,
            },
        )?;
        out.push(with_responder(
            id,
            Some(ROOT_ID.to_string()),
            cert,
            key.pkcs8_der,
            now_unix,
        )?);
    }
    Ok(out)
}

fn with_responder(
    id: &str,
    parent: Option<String>,
    cert_der: Vec<u8>,
    key_pkcs8: Vec<u8>,
    now: i64,
) -> Result<IssuerMaterial, CaError> {
    let signer = SoftwareSigner::from_pkcs8(&key_pkcs8)?;
    let (ocsp_cert_der, ocsp_key_pkcs8) = responder_for(&cert_der, &signer, now)?;
    Ok(IssuerMaterial {
        id: id.to_string(),
        parent,
        cert_der,
        key_pkcs8,
        ocsp_cert_der,
        ocsp_key_pkcs8,
    })
}

/// Creates a new delegated OCSP responder certificate and key for `issuer`
/// (EKU OCSPSigning, id-pkix-ocsp-nocheck, KU digitalSignature, [`OCSP_RESPONDER_DAYS`] days).
/// Returns `(cert_der, key_pkcs8)`.
pub fn new_ocsp_responder(
    issuer: &IssuerMaterial,
    now: i64,
) -> Result<(Vec<u8>, Vec<u8>), CaError> {
    let signer = SoftwareSigner::from_pkcs8(&issuer.key_pkcs8)?;
    responder_for(&issuer.cert_der, &signer, now)
}

pub(crate) fn responder_for(
    issuer_cert: &[u8],
    signer: &dyn Signer,
    now: i64,
) -> Result<(Vec<u8>, Vec<u8>), CaError> {
    let info = CertInfo::parse(issuer_cert)?;
    if info.spki_der != signer.spki_der() {
        return Err(CaError::Config(
            "issuer key does not match its certificate".into(),
        ));
    }
    let key = generate_key(signer_key_alg(signer)?)?;
    let cn = format!(
        "{} OCSP Responder",
        info.common_name.as_deref().unwrap_or("certhub")
    );
    let mut attrs = Vec::new();
    if let Some(c) = info.country.as_deref() {
        attrs.push((oids::AT_COUNTRY, c));
    }
    if let Some(o) = info.organization.as_deref() {
        attrs.push((oids::AT_ORGANIZATION, o));
    }
    attrs.push((oids::AT_COMMON_NAME, cn.as_str()));
    let subject = name_der(&attrs)?;
    let nb = now - BACKDATE_SECS;
    let exts = vec![
        ext_key_usage(&[KU_DIGITAL_SIGNATURE]),
        ext_eku(&[oids::KP_OCSP_SIGNING]),
        ext_ocsp_nocheck(),
        ext_ski(&key_id(&key.spki_der)?),
        ext_aki(&info.key_id),
    ];
    let cert = build_certificate(
        signer,
        &TbsParams {
            serial: &random_serial(),
            issuer_der: &info.subject_der,
            not_before: nb,
            not_after: (nb + OCSP_RESPONDER_DAYS * 86_400 - 1).min(info.not_after),
            subject_der: &subject,
            spki_der: &key.spki_der,
            extensions: &exts,
        },
    )?;
    Ok((cert, key.pkcs8_der))
}

/// The key algorithm of a signer, read from its SPKI.
fn signer_key_alg(signer: &dyn Signer) -> Result<KeyAlg, CaError> {
    crate::cert_info::key_alg_of_spki(signer.spki_der())
}

/// Whether a responder certificate expires within [`OCSP_RESPONDER_RENEW_BEFORE_DAYS`] of `now`.
pub fn responder_needs_renewal(ocsp_cert_der: &[u8], now: i64) -> Result<bool, CaError> {
    let info = CertInfo::parse(ocsp_cert_der)?;
    Ok(info.not_after - now < OCSP_RESPONDER_RENEW_BEFORE_DAYS * 86_400)
}
