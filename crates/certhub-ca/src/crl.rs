//! Revocation reasons and CRLs (RFC 5280 §5, BR 7.2).

use serde::{Deserialize, Serialize};

use crate::asn1::{ctx_cons, enumerated, extension, seq, small_uint, tlv, uint, x509_time};
use crate::ca::Ca;
use crate::keys::sign_and_wrap;
use crate::profile::ext_aki;
use crate::{CaError, oids};

/// How long a CRL is valid (design.md: nextUpdate = thisUpdate + 7 days).
pub const CRL_VALIDITY_SECS: i64 = 7 * 86_400;

/// The reasons certhub revokes for (BR 7.2.2; RTR names in SCREAMING_SNAKE_CASE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
}

impl RevocationReason {
    pub const ALL: [Self; 5] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
    ];

    /// RFC 5280 CRLReason code; `unspecified` is 0 but is never written (BR 7.2.2: no reasonCode entry).
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
        }
    }

    /// The code written in a reasonCode entry extension, if any.
    pub fn crl_code(self) -> Option<u8> {
        (self != Self::Unspecified).then_some(self.code())
    }

    /// ACME revokeCert reasons accepted: 0, 1, 3, 4, 5 (else `badRevocationReason`).
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// RTR wire name, e.g. `KEY_COMPROMISE`.
    pub fn rtr_name(self) -> &'static str {
        match self {
            Self::Unspecified => "UNSPECIFIED",
            Self::KeyCompromise => "KEY_COMPROMISE",
            Self::AffiliationChanged => "AFFILIATION_CHANGED",
            Self::Superseded => "SUPERSEDED",
            Self::CessationOfOperation => "CESSATION_OF_OPERATION",
        }
    }

    pub fn from_rtr_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.rtr_name().eq_ignore_ascii_case(name.trim()))
    }
}

/// One revoked certificate of the issuer whose CRL is being built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedEntry {
    /// Serial number magnitude, big-endian (the 16 bytes of the serial).
    pub serial: Vec<u8>,
    pub revoked_at: i64,
    pub reason: RevocationReason,
}

impl Ca {
    /// A complete v2 CRL for `issuer_id`, signed by that issuer (the root signs its own).
    /// thisUpdate = now, nextUpdate = now + 7 days; AKI and CRL number extensions.
    pub fn crl(
        &self,
        issuer_id: &str,
        crl_number: u64,
        revoked: &[RevokedEntry],
        now: i64,
    ) -> Result<Vec<u8>, CaError> {
        let issuer = self.issuer(issuer_id)?;
        let mut entries = Vec::with_capacity(revoked.len());
        for r in revoked {
            if r.serial.iter().all(|b| *b == 0) {
                return Err(CaError::InvalidRequest(
                    "revoked serial number must not be zero".into(),
                ));
            }
            let serial = uint(&r.serial);
            let date = x509_time(r.revoked_at)?;
            let entry = match r.reason.crl_code() {
                Some(code) => {
                    let ext = extension(&oids::EXT_CRL_REASON, false, &enumerated(code));
                    seq(&[&serial, &date, &seq(&[&ext])])
                }
                None => seq(&[&serial, &date]),
            };
            entries.push(entry);
        }
        let crl_number_ext = extension(&oids::EXT_CRL_NUMBER, false, &small_uint(crl_number));
        let exts = tlv(
            ctx_cons(0),
            &seq(&[&ext_aki(&issuer.info.key_id), &crl_number_ext]),
        );
        let this_update = x509_time(now)?;
        let next_update = x509_time(now + CRL_VALIDITY_SECS)?;
        let version = small_uint(1);
        let mut parts: Vec<&[u8]> = vec![
            &version,
            issuer.signer.algorithm_der(),
            &issuer.info.subject_der,
            &this_update,
            &next_update,
        ];
        let revoked_seq;
        if !entries.is_empty() {
            let e: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
            revoked_seq = seq(&e);
            parts.push(&revoked_seq);
        }
        parts.push(&exts);
        sign_and_wrap(issuer.signer.as_ref(), &seq(&parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_and_names() {
        assert_eq!(RevocationReason::Unspecified.crl_code(), None);
        assert_eq!(RevocationReason::KeyCompromise.crl_code(), Some(1));
        assert_eq!(
            RevocationReason::from_code(3),
            Some(RevocationReason::AffiliationChanged)
        );
        assert_eq!(RevocationReason::from_code(2), None);
        assert_eq!(RevocationReason::from_code(6), None);
        assert_eq!(
            RevocationReason::from_rtr_name("CESSATION_OF_OPERATION"),
            Some(RevocationReason::CessationOfOperation)
        );
        assert_eq!(
            serde_json::to_string(&RevocationReason::Superseded).unwrap(),
            "\"SUPERSEDED\""
        );
    }
}
