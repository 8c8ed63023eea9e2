//! Revoke, import, download, decode CSR, DCV e-mail list, AuthKey, cancel,
//! operator revocation, and the expiry jobs.

use certhub_ca::{
    RevocationReason, hex_lower, hex_upper, parse_foreign_certificate, pem_decode_all, pem_encode,
    pkcs7_der,
};
use certhub_domain::names::{is_wildcard, normalize_dns_name};
use certhub_domain::time::{DAY, format_rtr};
use certhub_store::Tx;
use certhub_store::certificates::CertificateRow;
use certhub_store::jobs::Job;
use certhub_store::processes::{NewProcess, Process};
use serde::Deserialize;
use serde_json::{Value, json};

use super::rules::{AUTH_KEY_VALIDITY, dcv_email_addresses, make_auth_key, zip_stored};
use super::{JOB_EXPIRE, JOB_EXPIRING, Pending};
use crate::notify::Notice;
use crate::{App, AppError, Caller};

/// `POST /v2/ssl/import` body.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportInput {
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub certificate: Option<String>,
    #[serde(default)]
    pub csr: Option<String>,
    #[serde(default)]
    pub coc: Option<String>,
    #[serde(default)]
    pub domain_name: Option<String>,
}

/// A download: raw bytes with their media type and a file name.
#[derive(Debug, Clone)]
pub struct Download {
    pub content_type: &'static str,
    pub file_name: String,
    pub body: Vec<u8>,
}

/// Renewal window used for imported certificates (they belong to no product).
const IMPORTED_RENEWAL_WINDOW_DAYS: i64 = 30;

fn parse_reason(reason: Option<&str>) -> Result<RevocationReason, AppError> {
    match reason.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(RevocationReason::Unspecified),
        Some(r) => RevocationReason::from_rtr_name(&r.to_ascii_uppercase()).ok_or_else(|| {
            AppError::constraint(
                "reason",
                "must be UNSPECIFIED, KEY_COMPROMISE, AFFILIATION_CHANGED, SUPERSEDED or CESSATION_OF_OPERATION",
                Some(r.to_string()),
            )
        }),
    }
}

fn certificate_type_of(names: &[String]) -> &'static str {
    match names {
        [one] if is_wildcard(one) => "WILDCARD",
        [_] => "SINGLE_DOMAIN",
        _ => "MULTI_DOMAIN",
    }
}

impl App {
    /// Revokes one certificate in `tx` with its own `certificate`/`revoke`
    /// process; false when it was already revoked.
    async fn revoke_one(
        &self,
        tx: &mut Tx,
        cert: &CertificateRow,
        reason: RevocationReason,
        customer: &str,
        user: &str,
    ) -> Result<Option<i64>, AppError> {
        let now = self.now();
        let command = json!({"reason": reason.rtr_name()});
        let pid = self
            .db()
            .insert_process(
                tx,
                &NewProcess {
                    customer_id: cert.customer_id,
                    customer,
                    user,
                    process_type: "certificate",
                    action: "revoke",
                    identifier: &cert.domain_name,
                    status: "COMPLETED",
                    command: &command,
                    subject_id: Some(cert.id),
                },
                now,
            )
            .await?;
        if !self.revoke_in_tx(tx, cert, reason, user).await? {
            return Ok(None);
        }
        self.db()
            .cancel_jobs(tx, JOB_EXPIRING, cert.id, now)
            .await?;
        self.notify(
            tx,
            Notice {
                customer_id: cert.customer_id,
                event_type: "CERTIFICATE_REVOKED",
                message: format!(
                    "Certificate {} for {} was revoked ({})",
                    cert.id,
                    cert.domain_name,
                    reason.rtr_name()
                ),
                process_id: Some(pid),
                process_type: Some("certificate".into()),
                process_identifier: Some(cert.domain_name.clone()),
                certificate_id: Some(cert.id),
                product: Some(cert.product.clone()),
                expiry_date: Some(cert.expiry_date),
                dedupe_key: Some(format!("cert-revoked:{}", cert.id)),
                ..Default::default()
            },
        )
        .await?;
        Ok(Some(pid))
    }

    /// `DELETE /v2/ssl/certificates/{id}`: revoked at once (CRL and OCSP). Returns the process id.
    pub async fn revoke_certificate(
        &self,
        caller: &Caller,
        id: i64,
        reason: Option<&str>,
    ) -> Result<i64, AppError> {
        let reason = parse_reason(reason)?;
        let cert = self.own_certificate(caller, id).await?;
        if cert.revoked_at.is_some() {
            return Err(AppError::StatusProhibits(format!(
                "certificate {id} is already revoked"
            )));
        }
        let mut tx = self.db().begin().await?;
        let cert = self
            .db()
            .certificate_tx(&mut tx, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("certificate {id} does not exist")))?;
        let pid = self
            .revoke_one(&mut tx, &cert, reason, &caller.handle, &caller.user())
            .await?
            .ok_or_else(|| {
                AppError::StatusProhibits(format!("certificate {id} is already revoked"))
            })?;
        tx.commit().await?;
        Ok(pid)
    }

    /// `certhub admin cert revoke SERIAL --reason R`: every non-imported certificate with that serial.
    pub async fn operator_revoke_serial(
        &self,
        serial: &str,
        reason: &str,
    ) -> Result<Vec<i64>, AppError> {
        let reason = parse_reason(Some(reason))?;
        let serial: String = serial
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .collect::<String>()
            .to_ascii_lowercase();
        let serial = serial.trim_start_matches('0').to_string();
        let certs = self.db().certificates_by_serial(&serial).await?;
        if certs.is_empty() {
            return Err(AppError::NotFound(format!(
                "no certificate with serial {serial}"
            )));
        }
        self.operator_revoke(certs, reason, None).await
    }

    /// `certhub admin cert revoke --key-sha256 HASH --reason R`: every live certificate with that key;
    /// KEY_COMPROMISE also blocks the key for future requests.
    pub async fn operator_revoke_key(
        &self,
        key_sha256: &str,
        reason: &str,
    ) -> Result<Vec<i64>, AppError> {
        let reason = parse_reason(Some(reason))?;
        let key = key_sha256.trim().to_ascii_lowercase();
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AppError::validation("--key-sha256 must be 64 hex digits"));
        }
        let certs = self.db().certificates_by_key(&key).await?;
        let block = (reason == RevocationReason::KeyCompromise).then_some(key);
        self.operator_revoke(certs, reason, block).await
    }

    async fn operator_revoke(
        &self,
        certs: Vec<CertificateRow>,
        reason: RevocationReason,
        block_key: Option<String>,
    ) -> Result<Vec<i64>, AppError> {
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let mut revoked = Vec::new();
        for c in certs
            .iter()
            .filter(|c| c.revoked_at.is_none() && c.expiry_date > now)
        {
            // A key-compromise revocation may already have revoked this one.
            let Some(cur) = self.db().certificate_tx(&mut tx, c.id).await? else {
                continue;
            };
            if cur.revoked_at.is_some() {
                revoked.push(c.id);
                continue;
            }
            let customer = self
                .db()
                .customer_by_id(c.customer_id)
                .await?
                .map(|x| x.handle)
                .unwrap_or_default();
            if self
                .revoke_one(&mut tx, &cur, reason, &customer, "operator")
                .await?
                .is_some()
            {
                revoked.push(c.id);
            }
        }
        if let Some(k) = block_key {
            self.db()
                .block_key(
                    &mut tx,
                    &k,
                    "revoked for keyCompromise by the operator",
                    now,
                )
                .await?;
        }
        tx.commit().await?;
        Ok(revoked)
    }

    /// `POST /v2/ssl/import`: tracks a certificate of any issuer. Returns the process id.
    pub async fn import_certificate(
        &self,
        caller: &Caller,
        input: ImportInput,
    ) -> Result<i64, AppError> {
        let customer = input
            .customer
            .clone()
            .ok_or_else(|| AppError::constraint("customer", "is required", None))?;
        self.check_handle(caller, &customer)?;
        let pem = input
            .certificate
            .clone()
            .ok_or_else(|| AppError::constraint("certificate", "is required", None))?;
        let fc = parse_foreign_certificate(&pem).map_err(|e| {
            AppError::constraint(
                "certificate",
                format!("is not a PEM certificate: {e}"),
                None,
            )
        })?;
        if fc.is_ca {
            return Err(AppError::constraint(
                "certificate",
                "is a CA certificate; import the leaf certificate",
                None,
            ));
        }
        if !matches!(fc.key_alg.as_str(), "RSA" | "ECDSA") {
            return Err(AppError::constraint(
                "certificate",
                format!("key algorithm {} is not supported", fc.key_alg),
                None,
            ));
        }
        let mut names: Vec<String> = fc
            .names
            .iter()
            .filter_map(|n| normalize_dns_name(n).ok())
            .collect();
        if let Some(d) = &input.domain_name {
            let d = normalize_dns_name(d).map_err(|e| {
                AppError::constraint("domainName", e.reason.to_string(), Some(d.clone()))
            })?;
            if !names.contains(&d) {
                return Err(AppError::constraint(
                    "domainName",
                    "is not a name of the certificate",
                    Some(d),
                ));
            }
            names.retain(|n| *n != d);
            names.insert(0, d);
        }
        if names.is_empty() {
            return Err(AppError::constraint(
                "certificate",
                "names no DNS name",
                None,
            ));
        }
        let csr = match &input.csr {
            Some(c) => {
                let parsed = self.parse_csr(c.as_bytes()).await?;
                if parsed.key_sha256 != fc.key_sha256 {
                    return Err(AppError::constraint(
                        "csr",
                        "does not belong to the certificate's key",
                        None,
                    ));
                }
                Some(c.clone())
            }
            None => None,
        };
        let chain: String = pem_decode_all(&pem)
            .map_err(|e| AppError::constraint("certificate", e.to_string(), None))?
            .into_iter()
            .filter(|(l, d)| l == "CERTIFICATE" && *d != fc.der)
            .map(|(_, d)| pem_encode("CERTIFICATE", &d))
            .collect();
        let now = self.now();
        let db = self.db();
        let mut tx = db.begin().await?;
        if db
            .certificate_by_fingerprint(&mut tx, caller.customer_id, &fc.fingerprint_sha256_hex)
            .await?
            .is_some()
        {
            return Err(AppError::ObjectExists(
                "this certificate is already imported".into(),
            ));
        }
        let mut command = serde_json::to_value(&input).unwrap_or(json!({}));
        if let Some(o) = command.as_object_mut() {
            o.retain(|_, v| !v.is_null());
        }
        let user = caller.user();
        let pid = db
            .insert_process(
                &mut tx,
                &NewProcess {
                    customer_id: caller.customer_id,
                    customer: &caller.handle,
                    user: &user,
                    process_type: "certificate",
                    action: "import",
                    identifier: &names[0],
                    status: "COMPLETED",
                    command: &command,
                    subject_id: None,
                },
                now,
            )
            .await?;
        let row = CertificateRow {
            customer_id: caller.customer_id,
            process_id: pid,
            product: "imported".into(),
            validation_type: certhub_domain::product::DV.into(),
            certificate_type: certificate_type_of(&names).into(),
            domain_name: names[0].clone(),
            san: names.clone(),
            coc: input.coc.clone(),
            start_date: fc.not_before,
            expiry_date: fc.not_after,
            status: if fc.not_after <= now {
                "EXPIRED".into()
            } else {
                "ACTIVE".into()
            },
            public_key_algorithm: fc.key_alg.clone(),
            public_key_size: Some(i64::from(fc.key_size)),
            csr,
            certificate_der: fc.der.clone(),
            chain_pem: (!chain.is_empty()).then_some(chain),
            fingerprint: fc.fingerprint_sha256_hex.clone(),
            serial_hex: fc.serial_hex.clone(),
            // Per customer, so two customers may track the same certificate
            // without colliding on (issuer_id, serial_hex).
            issuer_id: format!("external:{}", caller.customer_id),
            key_sha256: hex_lower(&fc.key_sha256),
            imported: true,
            created_at: now,
            ..Default::default()
        };
        let id = db.insert_certificate(&mut tx, &row).await?;
        db.update_process(
            &mut tx,
            pid,
            &certhub_store::processes::ProcessUpdate {
                subject_id: Some(id),
                ..Default::default()
            },
            now,
        )
        .await?;
        if fc.not_after > now {
            db.schedule_job(&mut tx, JOB_EXPIRE, id, fc.not_after)
                .await?;
            let expiring = fc.not_after - IMPORTED_RENEWAL_WINDOW_DAYS * DAY;
            if expiring > now {
                db.schedule_job(&mut tx, JOB_EXPIRING, id, expiring).await?;
            }
        }
        db.audit(
            &mut tx,
            now,
            &user,
            Some(caller.customer_id),
            "certificate.import",
            &format!("certificate {id}"),
            &fc.issuer_dn,
        )
        .await?;
        tx.commit().await?;
        Ok(pid)
    }

    /// `GET /v2/ssl/certificates/{id}/download?format=...`.
    /// PKCS7 is PEM (`-----BEGIN PKCS7-----`), leaf first, then the intermediates.
    pub async fn download_certificate(
        &self,
        caller: &Caller,
        id: i64,
        format: Option<&str>,
    ) -> Result<Download, AppError> {
        let c = self.own_certificate(caller, id).await?;
        let format = format.unwrap_or("CRT").to_ascii_uppercase();
        let leaf = pem_encode("CERTIFICATE", &c.certificate_der);
        let (intermediates, root) = if c.imported {
            (c.chain_pem.clone().unwrap_or_default(), String::new())
        } else {
            let pki = self.pki();
            let chain = pki
                .ca
                .chain_pem(&c.issuer_id)
                .map_err(|e| AppError::Internal(format!("CA chain: {e}")))?;
            (chain, pki.ca.root_pem())
        };
        let base = c.domain_name.replace('*', "wildcard");
        let pem = |body: String, name: String| Download {
            content_type: "application/x-pem-file",
            file_name: name,
            body: body.into_bytes(),
        };
        let no_chain = || AppError::NotFound(format!("certificate {id} has no stored chain"));
        Ok(match format.as_str() {
            "CRT" => pem(leaf, format!("{base}.crt")),
            "CA" if intermediates.is_empty() => return Err(no_chain()),
            "CA" => pem(intermediates, format!("{base}.ca.crt")),
            "CA_BUNDLE" if intermediates.is_empty() && root.is_empty() => return Err(no_chain()),
            "CA_BUNDLE" => pem(
                format!("{intermediates}{root}"),
                format!("{base}.ca-bundle.crt"),
            ),
            "PKCS7" => {
                let mut ders = vec![c.certificate_der.clone()];
                for (label, der) in
                    pem_decode_all(&intermediates).map_err(|e| AppError::Internal(e.to_string()))?
                {
                    if label == "CERTIFICATE" {
                        ders.push(der);
                    }
                }
                Download {
                    content_type: "application/pkcs7-mime",
                    file_name: format!("{base}.p7b"),
                    body: pem_encode("PKCS7", &pkcs7_der(&ders)).into_bytes(),
                }
            }
            "ZIP" => Download {
                content_type: "application/zip",
                file_name: format!("{base}.zip"),
                body: zip_stored(&[
                    ("certificate.crt", leaf.as_bytes()),
                    ("ca-bundle.crt", format!("{intermediates}{root}").as_bytes()),
                ]),
            },
            "CSR" => match &c.csr {
                Some(csr) => Download {
                    content_type: "application/pkcs10",
                    file_name: format!("{base}.csr"),
                    body: csr.clone().into_bytes(),
                },
                None => {
                    return Err(AppError::NotFound(format!(
                        "certificate {id} has no stored CSR"
                    )));
                }
            },
            other => {
                return Err(AppError::validation(format!(
                    "parameter format: '{other}' is not one of CRT, CA, CA_BUNDLE, PKCS7, ZIP, CSR"
                )));
            }
        })
    }

    /// `POST /v2/ssl/decodecsr`: CsrInfo (§3.6).
    pub async fn decode_csr(&self, csr_pem: &str) -> Result<Value, AppError> {
        let csr = self.parse_csr(csr_pem.as_bytes()).await?;
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        let mut dn = Vec::new();
        for (k, v) in [
            ("CN", &csr.cn),
            ("OU", &csr.organizational_unit),
            ("O", &csr.organization),
            ("L", &csr.locality),
            ("ST", &csr.state),
            ("C", &csr.country),
        ] {
            if let Some(v) = v {
                dn.push(format!("{k}={v}"));
            }
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &csr.der);
        let mut v = json!({
            "subject": dn.join(", "),
            "commonName": s(&csr.cn),
            "organization": s(&csr.organization),
            "organizationalUnit": s(&csr.organizational_unit),
            "locality": s(&csr.locality),
            "state": s(&csr.state),
            "country": s(&csr.country),
            "street": Vec::<String>::new(),
            "publicKeyAlgorithm": csr.key_alg,
            "publicKeySize": csr.key_size,
            "altNames": csr.names,
            "sha256": hex_upper(digest.as_ref()),
        });
        if let Some(e) = &csr.email {
            v["emailAddress"] = json!(e);
        }
        Ok(v)
    }

    /// `GET /v2/ssl/dcvemailaddresslist/{domainName}`.
    pub fn dcv_email_address_list(&self, domain: &str) -> Result<Vec<String>, AppError> {
        let name = normalize_dns_name(domain).map_err(|e| {
            AppError::constraint("domainName", e.reason.to_string(), Some(domain.into()))
        })?;
        dcv_email_addresses(&name).ok_or_else(|| {
            AppError::constraint(
                "domainName",
                "has no registrable domain",
                Some(domain.into()),
            )
        })
    }

    /// `POST /v2/ssl/authkey`: `{authKey, validity}` for this customer and the CSR's key.
    pub async fn generate_auth_key(
        &self,
        caller: &Caller,
        product: Option<&str>,
        csr: Option<&str>,
    ) -> Result<Value, AppError> {
        let product =
            product.ok_or_else(|| AppError::constraint("product", "is required", None))?;
        let csr = csr.ok_or_else(|| AppError::constraint("csr", "is required", None))?;
        let p = self.product_or_ref_error(product).await?;
        if !p.auth_key {
            return Err(AppError::constraint(
                "product",
                format!("product {product} does not offer AuthKey"),
                Some(product.into()),
            ));
        }
        let csr = self.parse_csr(csr.as_bytes()).await?;
        let secret = self.db().server_secret(self.kek(), "authkey_key").await?;
        let expiry = self.now() + AUTH_KEY_VALIDITY;
        Ok(json!({
            "authKey": make_auth_key(&secret, caller.customer_id, &csr.key_sha256, expiry),
            "validity": format_rtr(expiry),
        }))
    }

    /// `DELETE /v2/processes/{id}` for certificate processes still waiting for validation.
    pub async fn cancel_certificate_process(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<Process, AppError> {
        let p = self.own_process(caller, id).await?;
        let prohibited = || {
            AppError::StatusProhibits(format!(
                "process {id} is {} and cannot be cancelled",
                p.status
            ))
        };
        if p.process_type != "certificate" {
            return Err(prohibited());
        }
        let mut tx = self.db().begin().await?;
        let Some(mut req) = self
            .db()
            .cert_request_for_update(&mut tx, id)
            .await?
            .filter(|r| r.status == "PENDING")
        else {
            return Err(prohibited());
        };
        let pending = Pending::from_row(&req)?;
        self.close_request(
            &mut tx,
            &mut req,
            &pending,
            "CANCELLED",
            "cancelled by the customer",
        )
        .await?;
        self.db()
            .audit(
                &mut tx,
                self.now(),
                &caller.user(),
                Some(caller.customer_id),
                "process.cancel",
                &id.to_string(),
                "",
            )
            .await?;
        tx.commit().await?;
        self.own_process(caller, id).await
    }
}

impl App {
    /// `POST /v2/processes/{id}/schedule-validation-call`: recorded for the
    /// operator (certhub places no calls; RTR books them in office hours).
    pub async fn schedule_validation_call(
        &self,
        caller: &Caller,
        id: i64,
        at: i64,
    ) -> Result<(), AppError> {
        let p = self.own_process(caller, id).await?;
        if p.process_type != "certificate" || p.status != "RUNNING" {
            return Err(AppError::StatusProhibits(format!(
                "process {id} is not a running certificate process"
            )));
        }
        let mut tx = self.db().begin().await?;
        self.db()
            .audit(
                &mut tx,
                self.now(),
                &caller.user(),
                Some(caller.customer_id),
                "process.schedule-validation-call",
                &id.to_string(),
                &format_rtr(at),
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// `POST /v2/processes/{id}/send-subscriber-agreement`: the agreement goes to the outbox.
    pub async fn send_subscriber_agreement(
        &self,
        caller: &Caller,
        id: i64,
        email: &str,
        language: Option<&str>,
    ) -> Result<(), AppError> {
        let p = self.own_process(caller, id).await?;
        if p.process_type != "certificate" || p.status != "RUNNING" {
            return Err(AppError::StatusProhibits(format!(
                "process {id} is not a running certificate process"
            )));
        }
        let email = email.trim();
        if email.len() > 254
            || email
                .split_once('@')
                .is_none_or(|(l, d)| l.is_empty() || !d.contains('.'))
        {
            return Err(AppError::constraint(
                "email",
                "is not an e-mail address",
                Some(email.to_string()),
            ));
        }
        let language = language.unwrap_or("EN").to_ascii_uppercase();
        if !["EN", "NL", "FR", "DE"].contains(&language.as_str()) {
            return Err(AppError::constraint(
                "language",
                "must be EN, NL, FR or DE",
                Some(language),
            ));
        }
        let mut tx = self.db().begin().await?;
        let body = format!(
            "Subscriber agreement for certificate process {id} ({}), language {language}.\n\n\
             By using the certificate you accept the certhub subscriber agreement.\n",
            p.identifier
        );
        self.db()
            .insert_outbox(
                &mut tx,
                Some(caller.customer_id),
                email,
                "Subscriber agreement",
                &body,
                self.now(),
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// `cert.expiring`: CERTIFICATE_EXPIRING the renewal window before expiry.
pub(super) async fn run_expiring_job(app: &App, job: &Job) -> Result<Option<String>, AppError> {
    let db = app.db();
    let mut tx = db.begin().await?;
    if !db.finish_job(&mut tx, job.id, app.now()).await? {
        return Ok(None);
    }
    let Some(c) = db
        .certificate_tx(&mut tx, job.subject_id)
        .await?
        .filter(|c| c.status == "ACTIVE" && c.expiry_date > app.now())
    else {
        tx.commit().await?;
        return Ok(None);
    };
    let days = (c.expiry_date - app.now() + DAY - 1) / DAY;
    app.notify(
        &mut tx,
        Notice {
            customer_id: c.customer_id,
            event_type: "CERTIFICATE_EXPIRING",
            message: format!(
                "Certificate {} for {} expires in {days} days: renew or reissue it",
                c.id, c.domain_name
            ),
            process_id: Some(c.process_id),
            process_type: Some("certificate".into()),
            process_identifier: Some(c.domain_name.clone()),
            certificate_id: Some(c.id),
            product: Some(c.product.clone()),
            expiry_date: Some(c.expiry_date),
            dedupe_key: Some(format!("cert-expiring:{}:{}", c.id, c.expiry_date)),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Some(format!(
        "certificate {}: expiring on {}",
        c.id,
        format_rtr(c.expiry_date)
    )))
}

/// `cert.expire`: ACTIVE → EXPIRED at expiryDate.
pub(super) async fn run_expire_job(app: &App, job: &Job) -> Result<Option<String>, AppError> {
    let db = app.db();
    let now = app.now();
    let mut tx = db.begin().await?;
    if !db.finish_job(&mut tx, job.id, now).await? {
        return Ok(None);
    }
    let Some(c) = db.certificate_tx(&mut tx, job.subject_id).await? else {
        tx.commit().await?;
        return Ok(None);
    };
    if c.expiry_date > now
        || !db
            .transition_certificate(&mut tx, c.id, "ACTIVE", "EXPIRED")
            .await?
    {
        tx.commit().await?;
        return Ok(None);
    }
    app.notify(
        &mut tx,
        Notice {
            customer_id: c.customer_id,
            event_type: "CERTIFICATE_EXPIRED",
            message: format!("Certificate {} for {} has expired", c.id, c.domain_name),
            process_id: Some(c.process_id),
            process_type: Some("certificate".into()),
            process_identifier: Some(c.domain_name.clone()),
            certificate_id: Some(c.id),
            product: Some(c.product.clone()),
            expiry_date: Some(c.expiry_date),
            dedupe_key: Some(format!("cert-expired:{}", c.id)),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Some(format!("certificate {}: expired", c.id)))
}
