//! The embedded CA as a service: hierarchy set-up (once, shared by every node
//! through the database, keys sealed under the KEK), issuance into the
//! certificates table, revocation, CRLs and OCSP.

use std::collections::HashMap;
use std::sync::Arc;

use certhub_ca::{
    Ca, CaConfig, CertStatus, IssueRequest, IssuedCert, IssuerMaterial, KeyPolicy, OcspErrorStatus,
    ParsedCsr, Profile, RevocationReason, RevokedEntry, SoftwareSigner, hex_decode, hex_lower,
    init_hierarchy, ocsp_error_response, parse_csr, parse_ocsp_request, random_serial,
};
use certhub_store::Tx;
use certhub_store::certificates::{CertificateRow, IssuerRow};
use certhub_store::sealed::Kek;

use crate::{App, AppError};

/// Loaded CA plus the OCSP responders.
pub struct Pki {
    pub ca: Ca,
    responders: HashMap<String, (Vec<u8>, Arc<SoftwareSigner>)>,
    pub key_policy: KeyPolicy,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

fn key_ctx(id: &str) -> String {
    format!("ca-key:{id}")
}

fn ocsp_ctx(id: &str) -> String {
    format!("ocsp-key:{id}")
}

fn ca_err(e: certhub_ca::CaError) -> AppError {
    AppError::Internal(format!("CA: {e}"))
}

/// Loads the CA from the database, creating the hierarchy on first start.
pub async fn load_or_init(
    db: &certhub_store::Db,
    kek: &Kek,
    cfg: &CaConfig,
    key_policy: KeyPolicy,
    now: i64,
) -> Result<(Pki, bool), AppError> {
    let mut created = false;
    let mut rows = db.issuers().await?;
    if rows.is_empty() {
        let materials = init_hierarchy(cfg, now).map_err(ca_err)?;
        let sealed: Vec<IssuerRow> = materials
            .iter()
            .map(|m| IssuerRow {
                id: m.id.clone(),
                parent: m.parent.clone(),
                cert_der: m.cert_der.clone(),
                key_sealed: kek.seal(&key_ctx(&m.id), &m.key_pkcs8),
                ocsp_cert_der: Some(m.ocsp_cert_der.clone()),
                ocsp_key_sealed: Some(kek.seal(&ocsp_ctx(&m.id), &m.ocsp_key_pkcs8)),
            })
            .collect();
        created = db.store_issuers_if_absent(&sealed, now).await?;
        rows = db.issuers().await?;
    }
    let mut materials = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut m = IssuerMaterial {
            id: r.id.clone(),
            parent: r.parent.clone(),
            cert_der: r.cert_der.clone(),
            key_pkcs8: kek.open(&key_ctx(&r.id), &r.key_sealed)?,
            ocsp_cert_der: r.ocsp_cert_der.clone().unwrap_or_default(),
            ocsp_key_pkcs8: match &r.ocsp_key_sealed {
                Some(s) => kek.open(&ocsp_ctx(&r.id), s)?,
                None => vec![],
            },
        };
        // Responders are short-lived; renew them when close to expiry.
        if m.ocsp_cert_der.is_empty()
            || certhub_ca::responder_needs_renewal(&m.ocsp_cert_der, now).unwrap_or(true)
        {
            let (cert, key) = certhub_ca::new_ocsp_responder(&m, now).map_err(ca_err)?;
            db.update_ocsp_responder(&m.id, &cert, &kek.seal(&ocsp_ctx(&m.id), &key))
                .await?;
            m.ocsp_cert_der = cert;
            m.ocsp_key_pkcs8 = key;
        }
        materials.push(m);
    }
    let mut responders = HashMap::new();
    for m in &materials {
        let signer = SoftwareSigner::from_pkcs8(&m.ocsp_key_pkcs8).map_err(ca_err)?;
        responders.insert(m.id.clone(), (m.ocsp_cert_der.clone(), Arc::new(signer)));
    }
    let ca = Ca::load(materials, &cfg.pki_url).map_err(ca_err)?;
    Ok((
        Pki {
            ca,
            responders,
            key_policy,
        },
        created,
    ))
}

/// What an issuance needs beyond the CA request.
#[derive(Debug, Clone)]
pub struct IssueInput {
    pub customer_id: i64,
    pub process_id: i64,
    pub product: String,
    pub validation_type: String,
    pub certificate_type: String,
    pub profile: Profile,
    /// Authorised names, first = RTR `domainName`.
    pub names: Vec<String>,
    pub csr: ParsedCsr,
    pub csr_pem: Option<String>,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub max_days: u32,
    pub subscription_id: Option<i64>,
    pub subscription_end_date: Option<i64>,
    pub acme_account_id: Option<i64>,
    pub acme_order_id: Option<i64>,
    /// OV subject copied onto the row (RTR shows it).
    pub organization: Option<String>,
    pub country: Option<String>,
    pub state: Option<String>,
    pub city: Option<String>,
}

impl App {
    pub fn pki(&self) -> Arc<Pki> {
        self.pki_handle()
    }

    /// Parses and checks a CSR (signature, key policy, names, keys revoked for
    /// keyCompromise). The error text names the reason.
    pub async fn parse_csr(&self, pem_or_der: &[u8]) -> Result<ParsedCsr, AppError> {
        let pki = self.pki();
        let csr = parse_csr(pem_or_der, &pki.key_policy)
            .map_err(|e| AppError::InvalidCsr(e.to_string()))?;
        if let Some(reason) = self
            .db()
            .blocked_key_reason(&hex_lower(&csr.key_sha256))
            .await?
        {
            return Err(AppError::InvalidCsr(format!(
                "the CSR's key is blocked: {reason}"
            )));
        }
        Ok(csr)
    }

    /// Signs and records a certificate inside the caller's transaction, so the
    /// certificate exists exactly when the state change that paid for it does.
    pub async fn issue_in_tx(
        &self,
        tx: &mut Tx,
        input: &IssueInput,
    ) -> Result<(CertificateRow, IssuedCert), AppError> {
        let pki = self.pki();
        let req = IssueRequest {
            profile: input.profile.clone(),
            names: input.names.clone(),
            spki_der: input.csr.spki_der.clone(),
            not_before: input.not_before,
            not_after: input.not_after,
            max_days: input.max_days,
            now: self.now(),
        };
        let issued = pki.ca.issue(&req, random_serial()).map_err(|e| match e {
            certhub_ca::CaError::Validity(m) | certhub_ca::CaError::InvalidRequest(m) => {
                AppError::validation(m)
            }
            certhub_ca::CaError::Csr(c) => AppError::InvalidCsr(c.to_string()),
            other => ca_err(other),
        })?;
        let row = CertificateRow {
            customer_id: input.customer_id,
            process_id: input.process_id,
            product: input.product.clone(),
            validation_type: input.validation_type.clone(),
            certificate_type: input.certificate_type.clone(),
            domain_name: input.names.first().cloned().unwrap_or_default(),
            san: input.names.clone(),
            organization: input.organization.clone(),
            country: input.country.clone(),
            state: input.state.clone(),
            city: input.city.clone(),
            start_date: issued.not_before,
            expiry_date: issued.not_after,
            subscription_end_date: input.subscription_end_date,
            status: "ACTIVE".into(),
            public_key_algorithm: input.csr.key_alg.clone(),
            public_key_size: Some(i64::from(input.csr.key_size)),
            csr: input.csr_pem.clone(),
            certificate_der: issued.der.clone(),
            chain_pem: Some(issued.chain_pem.clone()),
            fingerprint: issued.fingerprint_sha256_hex.clone(),
            serial_hex: issued.serial_hex.clone(),
            issuer_id: issued.issuer_id.clone(),
            key_sha256: hex_lower(&issued.key_sha256),
            subscription_id: input.subscription_id,
            acme_account_id: input.acme_account_id,
            acme_order_id: input.acme_order_id,
            created_at: self.now(),
            ..Default::default()
        };
        let id = self.db().insert_certificate(tx, &row).await?;
        self.db()
            .audit(
                tx,
                self.now(),
                "system",
                Some(input.customer_id),
                "certificate.issue",
                &format!("certificate {id}"),
                &format!(
                    "serial {} names {}",
                    issued.serial_hex,
                    input.names.join(",")
                ),
            )
            .await?;
        crate::metrics::CERTIFICATES_ISSUED.inc();
        Ok((CertificateRow { id, ..row }, issued))
    }

    /// Revokes inside the caller's transaction. KEY_COMPROMISE also blocks the
    /// key and revokes every other live certificate with it. Returns false if
    /// the certificate was already revoked.
    pub async fn revoke_in_tx(
        &self,
        tx: &mut Tx,
        cert: &CertificateRow,
        reason: RevocationReason,
        actor: &str,
    ) -> Result<bool, AppError> {
        let now = self.now();
        if cert.imported {
            return Err(AppError::StatusProhibits(
                "imported certificates cannot be revoked by certhub".into(),
            ));
        }
        if !self
            .db()
            .mark_revoked(tx, cert.id, reason.rtr_name(), now)
            .await?
        {
            return Ok(false);
        }
        self.db()
            .drop_ocsp_cache(tx, &cert.issuer_id, &cert.serial_hex)
            .await?;
        if reason == RevocationReason::KeyCompromise {
            self.db()
                .block_key(tx, &cert.key_sha256, "revoked for keyCompromise", now)
                .await?;
            for other in self
                .db()
                .live_certificates_by_key(tx, &cert.key_sha256, now)
                .await?
            {
                self.db()
                    .mark_revoked(tx, other.id, reason.rtr_name(), now)
                    .await?;
                self.db()
                    .drop_ocsp_cache(tx, &other.issuer_id, &other.serial_hex)
                    .await?;
            }
        }
        self.db()
            .audit(
                tx,
                now,
                actor,
                Some(cert.customer_id),
                "certificate.revoke",
                &format!("certificate {}", cert.id),
                &format!("serial {} reason {}", cert.serial_hex, reason.rtr_name()),
            )
            .await?;
        self.regenerate_crl_in_tx(tx, &cert.issuer_id).await?;
        Ok(true)
    }

    async fn regenerate_crl_in_tx(&self, tx: &mut Tx, issuer: &str) -> Result<Vec<u8>, AppError> {
        let now = self.now();
        // The number first: it locks the issuer's counter row until commit, so
        // CRL generation is serialised per issuer and the entries read next
        // include every revocation committed by a lower-numbered CRL's
        // transaction (a higher number never lists less, on any node).
        let number = self.db().next_crl_number(tx, issuer).await?;
        let entries: Vec<RevokedEntry> = self
            .db()
            .revoked_entries(tx, issuer)
            .await?
            .into_iter()
            .filter_map(|(serial, at, reason)| {
                Some(RevokedEntry {
                    serial: hex_decode(&serial)?,
                    revoked_at: at,
                    reason: RevocationReason::from_rtr_name(&reason)
                        .unwrap_or(RevocationReason::Unspecified),
                })
            })
            .collect();
        let der = self
            .pki()
            .ca
            .crl(issuer, number as u64, &entries, now)
            .map_err(ca_err)?;
        self.db()
            .store_crl(
                tx,
                issuer,
                number,
                &der,
                now,
                now + certhub_ca::CRL_VALIDITY_SECS,
            )
            .await?;
        Ok(der)
    }

    /// The current CRL of an issuer, regenerated when it is half-way to nextUpdate.
    pub async fn crl_der(&self, issuer: &str) -> Result<Vec<u8>, AppError> {
        if self.pki().ca.issuer_cert_der(issuer).is_none() {
            return Err(AppError::NotFound(format!(
                "issuer {issuer} does not exist"
            )));
        }
        if let Some((der, next)) = self.db().crl(issuer).await?
            && next - self.now() > certhub_ca::CRL_VALIDITY_SECS / 2
        {
            return Ok(der);
        }
        let mut tx = self.db().begin().await?;
        let der = self.regenerate_crl_in_tx(&mut tx, issuer).await?;
        tx.commit().await?;
        Ok(der)
    }

    /// Answers an OCSP request (DER). Never fails: errors become OCSP error responses.
    pub async fn ocsp(&self, request_der: &[u8]) -> Vec<u8> {
        match self.ocsp_inner(request_der).await {
            Ok(r) => r,
            Err(status) => ocsp_error_response(status),
        }
    }

    async fn ocsp_inner(&self, request_der: &[u8]) -> Result<Vec<u8>, OcspErrorStatus> {
        let reqs =
            parse_ocsp_request(request_der).map_err(|_| OcspErrorStatus::MalformedRequest)?;
        let pki = self.pki();
        let first = reqs.first().ok_or(OcspErrorStatus::MalformedRequest)?;
        let issuer = pki
            .ca
            .match_issuer(first)
            .ok_or(OcspErrorStatus::Unauthorized)?
            .to_string();
        if reqs
            .iter()
            .any(|r| pki.ca.match_issuer(r) != Some(issuer.as_str()))
        {
            return Err(OcspErrorStatus::Unauthorized);
        }
        let now = self.now();
        let single = reqs.len() == 1;
        let serial_hex = hex_lower(&first.serial);
        if single
            && let Ok(Some((resp, produced))) = self.db().ocsp_cached(&issuer, &serial_hex).await
            && now - produced < certhub_ca::OCSP_VALIDITY_SECS / 2
        {
            return Ok(resp);
        }
        let mut entries = Vec::with_capacity(reqs.len());
        for r in reqs {
            let serial = hex_lower(&r.serial);
            let status = match self.db().certificate_by_serial(&issuer, &serial).await {
                Ok(Some(c)) => match c.revoked_at {
                    Some(at) => CertStatus::Revoked {
                        at,
                        reason: c
                            .revocation_reason
                            .as_deref()
                            .and_then(RevocationReason::from_rtr_name)
                            .unwrap_or(RevocationReason::Unspecified),
                    },
                    None => CertStatus::Good,
                },
                Ok(None) => CertStatus::Unknown,
                Err(_) => return Err(OcspErrorStatus::TryLater),
            };
            entries.push((r, status));
        }
        let (cert, signer) = pki
            .responders
            .get(&issuer)
            .ok_or(OcspErrorStatus::InternalError)?;
        let resp = pki
            .ca
            .ocsp_response_with(&issuer, cert, signer.as_ref(), &entries, now)
            .map_err(|_| OcspErrorStatus::InternalError)?;
        if single {
            let _ = self.db().cache_ocsp(&issuer, &serial_hex, &resp, now).await;
        }
        Ok(resp)
    }

    /// A fresh certificate for certhub's own HTTPS listener: (chain DER, PKCS#8 key).
    pub fn server_identity(
        &self,
        names: &[String],
        ips: &[std::net::IpAddr],
    ) -> Result<(Vec<Vec<u8>>, Vec<u8>), AppError> {
        let pki = self.pki();
        let key = certhub_ca::generate_key(certhub_ca::KeyAlg::EcdsaP256).map_err(ca_err)?;
        let req = IssueRequest {
            profile: Profile::Server {
                ip_addresses: ips.to_vec(),
            },
            names: names.to_vec(),
            spki_der: key.spki_der.clone(),
            not_before: None,
            not_after: None,
            max_days: 30,
            now: self.now(),
        };
        let issued = pki.ca.issue(&req, random_serial()).map_err(ca_err)?;
        let mut chain = vec![issued.der];
        for c in pki.ca.chain_der(certhub_ca::SERVER_ID).map_err(ca_err)? {
            chain.push(c.to_vec());
        }
        Ok((chain, key.pkcs8_der))
    }
}
