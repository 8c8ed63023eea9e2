//! revokeCert (RFC 8555 §7.6): by the account that ordered the certificate
//! (in every subscription state) or by the certificate's own key.

use certhub_ca::RevocationReason;
use certhub_jose::Jwk;

use super::{AccountCtx, CertRef, Problem};
use crate::App;

/// Who asks for the revocation.
#[derive(Debug, Clone, Copy)]
pub enum Revoker<'a> {
    /// The `kid` account (deactivated accounts are refused by the caller).
    Account(&'a AccountCtx),
    /// A JWS signed with the certificate's key (`jwk`).
    CertificateKey(&'a Jwk),
}

fn sha256_hex(bytes: &[u8]) -> String {
    certhub_ca::hex_lower(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

impl App {
    pub async fn acme_revoke(
        &self,
        product: &str,
        who: Revoker<'_>,
        cert: &CertRef,
        der: &[u8],
        reason: Option<i64>,
    ) -> Result<(), Problem> {
        let reason = match reason {
            None => RevocationReason::Unspecified,
            Some(code) => u8::try_from(code)
                .ok()
                .and_then(RevocationReason::from_code)
                .ok_or_else(|| {
                    Problem::new(
                        "badRevocationReason",
                        400,
                        format!("reason {code} is not allowed; use 0, 1, 3, 4 or 5"),
                    )
                })?,
        };
        let row = self
            .db()
            .certificate_by_serial(&cert.issuer_id, &cert.serial_hex)
            .await?
            .filter(|c| c.certificate_der == der && c.product == product)
            .ok_or_else(|| {
                Problem::not_found("this certificate was not issued by this directory")
            })?;
        let actor = match who {
            Revoker::Account(ctx) => {
                if row.acme_account_id != Some(ctx.id()) {
                    return Err(Problem::forbidden(
                        "this account did not order the certificate; sign with the certificate key",
                    ));
                }
                format!("acme-account-{}", ctx.id())
            }
            Revoker::CertificateKey(jwk) => {
                let spki = jwk.spki_der().map_err(Problem::from)?;
                if sha256_hex(&spki) != row.key_sha256 {
                    return Err(Problem::forbidden(
                        "the request is not signed with the certificate's key",
                    ));
                }
                "acme-certificate-key".to_string()
            }
        };
        if row.revoked_at.is_some() {
            return Err(Problem::new(
                "alreadyRevoked",
                400,
                format!("certificate {} is already revoked", cert.cert_id),
            ));
        }
        let mut tx = self.db().begin().await?;
        let done = self.revoke_in_tx(&mut tx, &row, reason, &actor).await?;
        if !done {
            return Err(Problem::new(
                "alreadyRevoked",
                400,
                format!("certificate {} is already revoked", cert.cert_id),
            ));
        }
        tx.commit().await?;
        tracing::info!(certificate = row.id, reason = reason.rtr_name(), %actor, "ACME revocation");
        Ok(())
    }
}
