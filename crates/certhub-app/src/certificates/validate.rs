//! DCV checks (DNS, FILE, AuthKey), e-mail approval, the organisation
//! validation of OV requests, resend, the engine's DCV and timeout jobs, and
//! issuance once everything is validated.

use std::collections::HashMap;

use certhub_ca::{OrgSubject, Profile, validity_max_days};
use certhub_domain::names::{base_name, is_wildcard};
use certhub_domain::time::{DAY, add_months};
use certhub_store::Tx;
use certhub_store::billing::LedgerRef;
use certhub_store::dcv::{CertRequestRow, DcvEntry};
use certhub_store::jobs::Job;
use certhub_store::processes::ProcessUpdate;
use serde_json::{Value, json};

use super::order::{DcvChoice, check_choice};
use super::rules::{self, ATTENTION_AFTER_CHECKS, backoff_secs, url_host, verify_auth_key};
use super::{JOB_DCV, JOB_EXPIRE, JOB_EXPIRING, JOB_TIMEOUT, Pending, info_json};
use crate::notify::Notice;
use crate::pki::IssueInput;
use crate::quote::money_map;
use crate::{App, AppError, Caller};

/// What the e-mail approval page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalView {
    pub name: String,
    pub email: String,
    /// WAITING | VALIDATED, or CLOSED when the request no longer waits.
    pub status: String,
    pub process_id: i64,
}

/// Whether a live AuthKey of this customer for this key is published for `name`
/// at `_dnsauth.NAME` (or the name itself) or in `/.well-known/pki-validation/fileauth.txt`.
pub(super) async fn authkey_published(
    app: &App,
    secret: &[u8],
    customer_id: i64,
    key_sha256: &[u8],
    name: &str,
) -> bool {
    let now = app.now();
    let base = base_name(name);
    for q in [format!("_dnsauth.{base}"), base.to_string()] {
        if let Ok(values) = app.va().txt_records(&q).await
            && values
                .iter()
                .any(|v| verify_auth_key(secret, customer_id, key_sha256, v, now))
        {
            return true;
        }
    }
    if !is_wildcard(name)
        && let Ok(body) = app
            .va()
            .http_get_text(name, "/.well-known/pki-validation/fileauth.txt", None)
            .await
    {
        return body
            .lines()
            .any(|l| verify_auth_key(secret, customer_id, key_sha256, l, now));
    }
    false
}

/// One DNS or FILE check (network). EMAIL entries are never checked here.
async fn check_entry(app: &App, e: &DcvEntry) -> Result<(), String> {
    match e.method.as_str() {
        "DNS" => {
            let base = base_name(&e.name);
            let mut detail = format!("no TXT record at _dnsauth.{base} holds the expected value");
            for q in [format!("_dnsauth.{base}"), base.to_string()] {
                match app.va().txt_records(&q).await {
                    Ok(values) if values.iter().any(|v| v.trim() == e.token) => return Ok(()),
                    Ok(_) => {}
                    Err(err) => detail = format!("DNS lookup of {q} failed: {}", err.detail),
                }
            }
            Err(detail)
        }
        "FILE" => {
            let path = format!(
                "/.well-known/pki-validation/{}.txt",
                e.file_name.as_deref().unwrap_or("")
            );
            match app.va().http_get_text(&e.name, &path, None).await {
                Ok(body) if body.lines().any(|l| l.trim() == e.token) => Ok(()),
                Ok(_) => Err(format!(
                    "http://{}{path} does not hold the expected value",
                    e.name
                )),
                Err(err) => Err(err.detail),
            }
        }
        _ => Err("waiting for approval".into()),
    }
}

/// The domain a completed validation proves, for reuse.
fn validated_domain(e: &DcvEntry) -> String {
    match (e.method.as_str(), &e.email) {
        ("EMAIL", Some(m)) => m
            .rsplit_once('@')
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| e.name.clone()),
        ("FILE", _) => e.name.clone(),
        _ => base_name(&e.name).to_string(),
    }
}

fn caa_method(method: &str) -> &'static str {
    match method {
        "FILE" => "ca-file",
        "EMAIL" => "ca-email",
        "AUTHKEY" => "ca-authkey",
        _ => "ca-dns",
    }
}

/// Every name validated and, for OV, the organisation approved.
fn ready(pending: &Pending, entries: &[DcvEntry]) -> bool {
    !entries.is_empty()
        && entries.iter().all(|e| e.validated_at.is_some())
        && (!pending.ov || pending.org_status.as_deref() == Some("VALIDATED"))
}

/// Runs the DNS/FILE checks of the entries that still wait (network, no transaction).
async fn check_waiting(app: &App, entries: &[DcvEntry]) -> HashMap<i64, Result<(), String>> {
    let mut out = HashMap::new();
    for e in entries
        .iter()
        .filter(|e| e.validated_at.is_none() && matches!(e.method.as_str(), "DNS" | "FILE"))
    {
        out.insert(e.id, check_entry(app, e).await);
    }
    out
}

impl App {
    /// Rewrites the process's CertificateProcessInfo and attention flag.
    async fn refresh_info(
        &self,
        tx: &mut Tx,
        req: &CertRequestRow,
        pending: &Pending,
    ) -> Result<Value, AppError> {
        let entries = self.db().dcv_entries_tx(tx, req.process_id).await?;
        let info = info_json(req, pending, &entries);
        let attention = info["requiresAttention"].as_bool().unwrap_or(false);
        self.db()
            .update_process(
                tx,
                req.process_id,
                &ProcessUpdate {
                    info: Some(info.clone()),
                    ..Default::default()
                },
                self.now(),
            )
            .await?;
        self.db()
            .set_process_status_detail(
                tx,
                req.process_id,
                attention.then_some("SSL_REQUIRES_ATTENTION"),
            )
            .await?;
        Ok(info)
    }

    /// Applies check results: validated entries are recorded for reuse;
    /// failures keep waiting with the reason.
    async fn apply_checks(
        &self,
        tx: &mut Tx,
        req: &CertRequestRow,
        results: &HashMap<i64, Result<(), String>>,
    ) -> Result<(), AppError> {
        let now = self.now();
        for mut e in self.db().dcv_entries_tx(tx, req.process_id).await? {
            let Some(r) = results.get(&e.id) else {
                continue;
            };
            if e.validated_at.is_some() {
                continue;
            }
            match r {
                Ok(()) => {
                    e.status = "VALIDATED".into();
                    e.validated_at = Some(now);
                    e.last_error = None;
                    self.db()
                        .record_validation(
                            tx,
                            req.customer_id,
                            &validated_domain(&e),
                            &e.method,
                            now,
                            Some(req.process_id),
                        )
                        .await?;
                }
                Err(detail) => {
                    e.last_error = Some(detail.clone());
                    if req.attention {
                        e.status = "ATTENTION".into();
                    }
                }
            }
            self.db().save_dcv_entry(tx, &e).await?;
        }
        Ok(())
    }

    /// The e-mail with the approval link, into the outbox (delivered by SMTP when `[smtp]` is set).
    pub(crate) async fn send_approval_email(
        &self,
        tx: &mut Tx,
        e: &DcvEntry,
    ) -> Result<(), AppError> {
        let (Some(to), Some(token)) = (&e.email, &e.approval_token) else {
            return Ok(());
        };
        let link = format!("{}/dcv/approve/{token}", self.settings().public_url);
        let body = format!(
            "A certificate was requested for {name}.\n\nTo approve it, open\n{link}\nand press \"Approve\".\n\
             If you did not expect this request, ignore this message.\n",
            name = e.name
        );
        self.db()
            .insert_outbox(
                tx,
                Some(e.customer_id),
                to,
                &format!("Approve the certificate for {}", e.name),
                &body,
                self.now(),
            )
            .await?;
        Ok(())
    }

    /// The current CertificateProcessInfo of a certificate process.
    pub async fn certificate_process_info(&self, process_id: i64) -> Result<Value, AppError> {
        let req = self.db().cert_request(process_id).await?.ok_or_else(|| {
            AppError::NotFound(format!("process {process_id} has no certificate request"))
        })?;
        let pending = Pending::from_row(&req)?;
        let entries = self.db().dcv_entries(process_id).await?;
        Ok(info_json(&req, &pending, &entries))
    }

    /// `POST /v2/processes/{id}/resend`: switch methods, re-send e-mails and re-check DNS/FILE at once.
    pub async fn resend_dcv(
        &self,
        caller: &Caller,
        process_id: i64,
        choices: &[DcvChoice],
    ) -> Result<Value, AppError> {
        let p = self.own_process(caller, process_id).await?;
        let db = self.db();
        let mut tx = db.begin().await?;
        let req = pending_request(db.cert_request_for_update(&mut tx, p.id).await?, p.id)?;
        let pending = Pending::from_row(&req)?;
        let mut entries = db.dcv_entries_tx(&mut tx, p.id).await?;
        let mut changed = std::collections::HashSet::new();
        for c in choices {
            let name = certhub_domain::names::normalize_dns_name(&c.common_name).map_err(|e| {
                AppError::constraint(
                    "dcv.commonName",
                    e.reason.to_string(),
                    Some(c.common_name.clone()),
                )
            })?;
            let e = entries.iter_mut().find(|e| e.name == name).ok_or_else(|| {
                AppError::constraint(
                    "dcv.commonName",
                    "is not one of the requested names",
                    Some(c.common_name.clone()),
                )
            })?;
            let (method, email) = check_choice(c, &name)?;
            if e.validated_at.is_some() {
                continue;
            }
            e.method = method;
            e.email = email;
            e.token = rules::random_value();
            e.file_name = (e.method == "FILE").then(rules::random_file_name);
            e.approval_token = (e.method == "EMAIL").then(rules::random_link_token);
            e.status = "WAITING".into();
            e.last_error = None;
            db.save_dcv_entry(&mut tx, e).await?;
            changed.insert(e.id);
        }
        // Resend means: the approval e-mails go out again.
        for e in entries
            .iter()
            .filter(|e| e.method == "EMAIL" && e.validated_at.is_none())
        {
            self.send_approval_email(&mut tx, e).await?;
        }
        self.refresh_info(&mut tx, &req, &pending).await?;
        tx.commit().await?;
        let results = check_waiting(self, &entries).await;
        let mut tx = db.begin().await?;
        let req = pending_request(db.cert_request_for_update(&mut tx, p.id).await?, p.id)?;
        self.apply_checks(&mut tx, &req, &results).await?;
        self.refresh_info(&mut tx, &req, &pending).await?;
        tx.commit().await?;
        try_finalize(self, p.id).await?;
        self.certificate_process_info(p.id).await
    }

    /// A process of the caller that is a certificate process, or 404.
    pub(crate) async fn own_process(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<certhub_store::processes::Process, AppError> {
        self.db()
            .process(Some(caller.customer_id), id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("process {id} does not exist")))
    }

    /// The approval page's facts (GET never approves: mail scanners follow links).
    pub async fn approval_view(&self, token: &str) -> Result<ApprovalView, AppError> {
        let e = self
            .db()
            .dcv_entry_by_approval_token(token)
            .await?
            .ok_or_else(|| AppError::NotFound("this approval link is not valid".into()))?;
        let open = self
            .db()
            .cert_request(e.process_id)
            .await?
            .is_some_and(|r| r.status == "PENDING");
        Ok(view(&e, open))
    }

    /// The approval page's POST: validates the name and issues when everything is validated.
    pub async fn approve_email(&self, token: &str) -> Result<ApprovalView, AppError> {
        let e = self
            .db()
            .dcv_entry_by_approval_token(token)
            .await?
            .ok_or_else(|| AppError::NotFound("this approval link is not valid".into()))?;
        let db = self.db();
        let mut tx = db.begin().await?;
        let Some(req) = db
            .cert_request_for_update(&mut tx, e.process_id)
            .await?
            .filter(|r| r.status == "PENDING")
        else {
            tx.commit().await?;
            return Ok(view(&e, false));
        };
        let pending = Pending::from_row(&req)?;
        let mut e = db
            .dcv_entries_tx(&mut tx, req.process_id)
            .await?
            .into_iter()
            .find(|x| x.id == e.id)
            .unwrap_or(e);
        if e.validated_at.is_none() && e.approval_token.as_deref() == Some(token) {
            let now = self.now();
            e.status = "VALIDATED".into();
            e.validated_at = Some(now);
            e.last_error = None;
            db.save_dcv_entry(&mut tx, &e).await?;
            db.record_validation(
                &mut tx,
                req.customer_id,
                &validated_domain(&e),
                "EMAIL",
                now,
                Some(req.process_id),
            )
            .await?;
            db.audit(
                &mut tx,
                now,
                "email-approval",
                Some(req.customer_id),
                "dcv.approve",
                &e.name,
                e.email.as_deref().unwrap_or(""),
            )
            .await?;
            self.refresh_info(&mut tx, &req, &pending).await?;
        }
        tx.commit().await?;
        if let Err(err) = try_finalize(self, req.process_id).await {
            tracing::warn!(process = req.process_id, error = %err, "issuance after e-mail approval failed; the engine retries");
        }
        Ok(view(&e, true))
    }

    /// Operator decision on an organisation validation opened by a certificate
    /// request (subscription_id NULL). Returns the certificate id when the
    /// approval completed the request.
    pub async fn decide_certificate_org_validation(
        &self,
        id: i64,
        approve: bool,
        reason: Option<&str>,
    ) -> Result<Option<i64>, AppError> {
        let db = self.db();
        let now = self.now();
        let mut tx = db.begin().await?;
        let v = db
            .org_validation_for_update(&mut tx, id)
            .await?
            .filter(|v| v.subscription_id.is_none())
            .ok_or_else(|| {
                AppError::NotFound(format!(
                    "organisation validation {id} of a certificate request does not exist"
                ))
            })?;
        if v.status != "PENDING" {
            return Err(AppError::StatusProhibits(format!(
                "organisation validation {id} is {}",
                v.status
            )));
        }
        let (status, valid_until) = if approve {
            (
                "APPROVED",
                Some(now + certhub_domain::subscription::ORG_VALIDITY_DAYS * DAY),
            )
        } else {
            ("REJECTED", None)
        };
        db.decide_org_validation(&mut tx, id, status, reason, now, valid_until)
            .await?;
        db.audit(
            &mut tx,
            now,
            "operator",
            Some(v.customer_id),
            &format!("validation.{}", status.to_lowercase()),
            &id.to_string(),
            reason.unwrap_or(""),
        )
        .await?;
        self.sync_org_status(&mut tx, v.process_id).await?;
        tx.commit().await?;
        if approve {
            try_finalize(self, v.process_id).await
        } else {
            Ok(None)
        }
    }

    /// Copies the organisation validation's decision onto the request; a
    /// rejection fails it (reservation released).
    async fn sync_org_status(&self, tx: &mut Tx, process_id: i64) -> Result<(), AppError> {
        let db = self.db();
        let Some(mut req) = db
            .cert_request_for_update(tx, process_id)
            .await?
            .filter(|r| r.status == "PENDING")
        else {
            return Ok(());
        };
        let mut pending = Pending::from_row(&req)?;
        let Some(vid) = pending
            .org_validation_id
            .filter(|_| pending.org_status.as_deref() != Some("VALIDATED"))
        else {
            return Ok(());
        };
        let Some(v) = db.org_validation_for_update(tx, vid).await? else {
            return Ok(());
        };
        match v.status.as_str() {
            "APPROVED" => {
                pending.org_status = Some("VALIDATED".into());
                req.details = pending.to_value();
                db.save_cert_request(tx, &req, self.now()).await?;
                self.refresh_info(tx, &req, &pending).await?;
                self.notify(
                    tx,
                    Notice {
                        customer_id: req.customer_id,
                        event_type: "ORGANIZATION_VALIDATION_APPROVED",
                        message: format!(
                            "The organisation of certificate process {process_id} was approved"
                        ),
                        process_id: Some(process_id),
                        process_type: Some("certificate".into()),
                        process_identifier: pending.names.first().cloned(),
                        dedupe_key: Some(format!("cert-org-approved:{process_id}")),
                        ..Default::default()
                    },
                )
                .await?;
            }
            "REJECTED" | "CANCELLED" => {
                pending.org_status = Some("ATTENTION".into());
                req.details = pending.to_value();
                let why = format!(
                    "organisation validation rejected: {}",
                    v.reason.unwrap_or_default()
                );
                self.close_request(tx, &mut req, &pending, "FAILED", &why)
                    .await?;
                self.notify(
                    tx,
                    Notice {
                        customer_id: req.customer_id,
                        event_type: "ORGANIZATION_VALIDATION_REJECTED",
                        message: why,
                        process_id: Some(process_id),
                        process_type: Some("certificate".into()),
                        process_identifier: pending.names.first().cloned(),
                        dedupe_key: Some(format!("cert-org-rejected:{process_id}")),
                        ..Default::default()
                    },
                )
                .await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Ends a pending request without a certificate: FAILED or CANCELLED,
    /// reservation released, jobs cancelled, a pending organisation validation cancelled.
    pub(crate) async fn close_request(
        &self,
        tx: &mut Tx,
        req: &mut CertRequestRow,
        pending: &Pending,
        status: &str,
        detail: &str,
    ) -> Result<(), AppError> {
        let db = self.db();
        let now = self.now();
        db.release(tx, req.customer_id, &pending.currency, pending.reserved)
            .await?;
        req.status = status.to_string();
        db.save_cert_request(tx, req, now).await?;
        db.cancel_jobs(tx, JOB_DCV, req.process_id, now).await?;
        db.cancel_jobs(tx, JOB_TIMEOUT, req.process_id, now).await?;
        if let Some(vid) = pending.org_validation_id
            && let Some(v) = db.org_validation_for_update(tx, vid).await?
            && v.status == "PENDING"
            && v.process_id == req.process_id
        {
            db.decide_org_validation(tx, vid, "CANCELLED", Some(detail), now, None)
                .await?;
        }
        let entries = db.dcv_entries_tx(tx, req.process_id).await?;
        let info = info_json(req, pending, &entries);
        db.update_process(
            tx,
            req.process_id,
            &ProcessUpdate {
                status: Some(status.to_string()),
                info: Some(info),
                resume_types: Some(json!([])),
                ..Default::default()
            },
            now,
        )
        .await?;
        db.set_process_status_detail(tx, req.process_id, Some(detail))
            .await?;
        Ok(())
    }
}

fn view(e: &DcvEntry, open: bool) -> ApprovalView {
    let status = if e.validated_at.is_some() {
        "VALIDATED"
    } else if open {
        "WAITING"
    } else {
        "CLOSED"
    };
    ApprovalView {
        name: e.name.clone(),
        email: e.email.clone().unwrap_or_default(),
        status: status.into(),
        process_id: e.process_id,
    }
}

fn pending_request(req: Option<CertRequestRow>, id: i64) -> Result<CertRequestRow, AppError> {
    match req {
        Some(r) if r.status == "PENDING" => Ok(r),
        Some(r) => Err(AppError::StatusProhibits(format!(
            "process {id} is no longer waiting for validation ({})",
            r.status
        ))),
        None => Err(AppError::StatusProhibits(format!(
            "process {id} is not a certificate request"
        ))),
    }
}

/// Issues when every name (and the organisation) is validated and CAA allows
/// it. Returns the certificate id once issued. Safe to call any time.
pub(crate) async fn try_finalize(app: &App, process_id: i64) -> Result<Option<i64>, AppError> {
    let db = app.db();
    let Some(req) = db.cert_request(process_id).await? else {
        return Ok(None);
    };
    if req.status != "PENDING" {
        return Ok(req.certificate_id);
    }
    let pending = Pending::from_row(&req)?;
    let entries = db.dcv_entries(process_id).await?;
    if !ready(&pending, &entries) {
        return Ok(None);
    }
    // CAA at signing time (network, so before the transaction).
    let identities = vec![url_host(&app.settings().public_url)];
    let mut caa: HashMap<i64, Option<String>> = HashMap::new();
    for e in &entries {
        let r = app
            .va()
            .check_caa(
                &e.name,
                is_wildcard(&e.name),
                &identities,
                None,
                caa_method(&e.method),
            )
            .await;
        caa.insert(e.id, r.err().map(|err| err.detail));
    }
    let mut tx = db.begin().await?;
    let Some(mut req) = db.cert_request_for_update(&mut tx, process_id).await? else {
        return Ok(None);
    };
    if req.status != "PENDING" {
        tx.commit().await?;
        return Ok(req.certificate_id);
    }
    let pending = Pending::from_row(&req)?;
    let mut entries = db.dcv_entries_tx(&mut tx, process_id).await?;
    if !ready(&pending, &entries) || entries.iter().any(|e| !caa.contains_key(&e.id)) {
        tx.commit().await?;
        return Ok(None);
    }
    let mut refused = Vec::new();
    for e in entries.iter_mut() {
        match caa.get(&e.id).cloned().flatten() {
            None => {
                e.caa_status = Some("VALID".into());
                e.status = "VALIDATED".into();
            }
            Some(detail) => {
                e.caa_status = Some("INVALID".into());
                e.status = "ATTENTION".into();
                e.last_error = Some(detail.clone());
                refused.push(format!("{}: {detail}", e.name));
            }
        }
        db.save_dcv_entry(&mut tx, e).await?;
    }
    if !refused.is_empty() {
        req.attention = true;
        db.save_cert_request(&mut tx, &req, app.now()).await?;
        app.refresh_info(&mut tx, &req, &pending).await?;
        app.notify(
            &mut tx,
            Notice {
                customer_id: req.customer_id,
                event_type: "DCV_ATTENTION",
                message: format!("CAA forbids issuance: {}", refused.join("; ")),
                process_id: Some(process_id),
                process_type: Some("certificate".into()),
                process_identifier: pending.names.first().cloned(),
                product: Some(pending.product.clone()),
                dedupe_key: Some(format!("dcv-caa:{process_id}")),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        return Ok(None);
    }
    let id = issue(app, &mut tx, &mut req, &pending).await?;
    tx.commit().await?;
    Ok(Some(id))
}

/// Signs, captures the reservation, closes the process, marks the old
/// certificate RENEWED / REISSUED, notifies and schedules expiry jobs.
async fn issue(
    app: &App,
    tx: &mut Tx,
    req: &mut CertRequestRow,
    pending: &Pending,
) -> Result<i64, AppError> {
    let db = app.db();
    let now = app.now();
    let product = db
        .product(&pending.product)
        .await?
        .ok_or_else(|| AppError::Internal(format!("product {} disappeared", pending.product)))?;
    let csr = app.parse_csr(pending.csr_pem.as_bytes()).await?;
    let coverage_end = match pending.period {
        Some(p) => Some(add_months(now, p)),
        None => pending.subscription_end_date,
    };
    let not_before = now - 60;
    let latest =
        not_before + i64::from(validity_max_days(not_before, product.max_validity_days)) * DAY - 1;
    let not_after = coverage_end.filter(|e| *e < latest);
    let (profile, org) = if pending.ov {
        let v = match pending.org_validation_id {
            Some(id) => db.org_validation_for_update(tx, id).await?,
            None => None,
        };
        let v = v.ok_or_else(|| {
            AppError::Internal("OV request without an organisation validation".into())
        })?;
        let subject = OrgSubject {
            organization: v.organization,
            country: v.country,
            state: v.state,
            locality: v.city,
        };
        (Profile::Ov(subject.clone()), Some(subject))
    } else {
        (Profile::Dv, None)
    };
    let input = IssueInput {
        customer_id: req.customer_id,
        process_id: req.process_id,
        product: pending.product.clone(),
        validation_type: pending.validation_type.clone(),
        certificate_type: pending.certificate_type.clone(),
        profile,
        names: pending.names.clone(),
        csr,
        csr_pem: Some(pending.csr_pem.clone()),
        not_before: None,
        not_after,
        max_days: product.max_validity_days,
        subscription_id: None,
        subscription_end_date: coverage_end,
        acme_account_id: None,
        acme_order_id: None,
        organization: org.as_ref().map(|o| o.organization.clone()),
        country: org.as_ref().map(|o| o.country.clone()),
        state: org.as_ref().and_then(|o| o.state.clone()),
        city: org.as_ref().and_then(|o| o.locality.clone()),
    };
    let (cert, _) = app.issue_in_tx(tx, &input).await?;
    let identifier = pending.names.first().cloned().unwrap_or_default();
    let ledger = LedgerRef {
        customer_id: req.customer_id,
        customer: &pending.customer,
        process_id: req.process_id,
        process_type: "certificate",
        process_identifier: &identifier,
        process_action: &req.action,
        subject_id: Some(cert.id),
    };
    db.capture(tx, &ledger, &pending.currency, &pending.billables, now)
        .await?;
    if let Some(old_id) = pending.old_certificate_id
        && let Some(old) = db.certificate_tx(tx, old_id).await?
        && old.revoked_at.is_none()
    {
        let status = if req.action == "renew" {
            "RENEWED"
        } else {
            "REISSUED"
        };
        db.set_certificate_status(tx, old_id, status, Some(cert.id))
            .await?;
    }
    req.status = "ISSUED".into();
    req.certificate_id = Some(cert.id);
    db.save_cert_request(tx, req, now).await?;
    db.cancel_jobs(tx, JOB_DCV, req.process_id, now).await?;
    db.cancel_jobs(tx, JOB_TIMEOUT, req.process_id, now).await?;
    let entries = db.dcv_entries_tx(tx, req.process_id).await?;
    let info = info_json(req, pending, &entries);
    let charged: i64 = pending.billables.iter().map(|b| b.total).sum();
    db.update_process(
        tx,
        req.process_id,
        &ProcessUpdate {
            status: Some("COMPLETED".into()),
            info: Some(info),
            subject_id: Some(cert.id),
            transaction: (charged > 0).then(|| money_map(&pending.currency, charged)),
            resume_types: Some(json!([])),
            ..Default::default()
        },
        now,
    )
    .await?;
    db.set_process_status_detail(tx, req.process_id, None)
        .await?;
    app.notify(
        tx,
        Notice {
            customer_id: req.customer_id,
            event_type: "CERTIFICATE_ISSUED",
            message: format!("Certificate {} for {} was issued", cert.id, identifier),
            process_id: Some(req.process_id),
            process_type: Some("certificate".into()),
            process_identifier: Some(identifier.clone()),
            certificate_id: Some(cert.id),
            product: Some(pending.product.clone()),
            expiry_date: Some(cert.expiry_date),
            dedupe_key: Some(format!("cert-issued:{}", cert.id)),
            ..Default::default()
        },
    )
    .await?;
    let expiring_at = cert.expiry_date - product.renewal_window * DAY;
    if expiring_at > now {
        db.schedule_job(tx, JOB_EXPIRING, cert.id, expiring_at)
            .await?;
    }
    db.schedule_job(tx, JOB_EXPIRE, cert.id, cert.expiry_date)
        .await?;
    Ok(cert.id)
}

/// `cert.dcv`: re-check DNS/FILE (back-off), follow the organisation
/// validation, flag attention, issue when everything passed.
pub(super) async fn run_dcv_job(app: &App, job: &Job) -> Result<Option<String>, AppError> {
    let db = app.db();
    let pid = job.subject_id;
    let entries = db.dcv_entries(pid).await?;
    let results = match db.cert_request(pid).await? {
        Some(r) if r.status == "PENDING" => check_waiting(app, &entries).await,
        _ => HashMap::new(),
    };
    let now = app.now();
    let mut tx = db.begin().await?;
    if !db.finish_job(&mut tx, job.id, now).await? {
        return Ok(None);
    }
    let Some(mut req) = db
        .cert_request_for_update(&mut tx, pid)
        .await?
        .filter(|r| r.status == "PENDING")
    else {
        tx.commit().await?;
        return Ok(None);
    };
    let pending = Pending::from_row(&req)?;
    req.checks += 1;
    let still_waiting = results.values().filter(|r| r.is_err()).count();
    let newly_attention =
        still_waiting > 0 && req.checks >= ATTENTION_AFTER_CHECKS && !req.attention;
    if newly_attention {
        req.attention = true;
    }
    db.save_cert_request(&mut tx, &req, now).await?;
    app.apply_checks(&mut tx, &req, &results).await?;
    if newly_attention {
        app.notify(
            &mut tx,
            Notice {
                customer_id: req.customer_id,
                event_type: "DCV_ATTENTION",
                message: format!("Domain validation of certificate process {pid} has not succeeded yet; check the DCV records"),
                process_id: Some(pid),
                process_type: Some("certificate".into()),
                process_identifier: pending.names.first().cloned(),
                product: Some(pending.product.clone()),
                dedupe_key: Some(format!("dcv-attention:{pid}")),
                ..Default::default()
            },
        )
        .await?;
    }
    db.schedule_job(&mut tx, JOB_DCV, pid, now + backoff_secs(req.checks))
        .await?;
    app.refresh_info(&mut tx, &req, &pending).await?;
    app.sync_org_status(&mut tx, pid).await?;
    tx.commit().await?;
    let validated = results.values().filter(|r| r.is_ok()).count();
    match try_finalize(app, pid).await? {
        Some(id) => Ok(Some(format!(
            "certificate process {pid}: validated, certificate {id} issued"
        ))),
        None if validated > 0 => Ok(Some(format!(
            "certificate process {pid}: {validated} name(s) validated"
        ))),
        None => Ok(None),
    }
}

/// `cert.timeout`: a request not validated within 30 days fails.
pub(super) async fn run_timeout_job(app: &App, job: &Job) -> Result<Option<String>, AppError> {
    let db = app.db();
    let pid = job.subject_id;
    let mut tx = db.begin().await?;
    if !db.finish_job(&mut tx, job.id, app.now()).await? {
        return Ok(None);
    }
    let Some(mut req) = db
        .cert_request_for_update(&mut tx, pid)
        .await?
        .filter(|r| r.status == "PENDING")
    else {
        tx.commit().await?;
        return Ok(None);
    };
    let pending = Pending::from_row(&req)?;
    app.close_request(
        &mut tx,
        &mut req,
        &pending,
        "FAILED",
        "validation did not complete within 30 days",
    )
    .await?;
    app.notify(
        &mut tx,
        Notice {
            customer_id: req.customer_id,
            event_type: "DCV_ATTENTION",
            message: format!(
                "Certificate process {pid} failed: validation did not complete within 30 days"
            ),
            process_id: Some(pid),
            process_type: Some("certificate".into()),
            process_identifier: pending.names.first().cloned(),
            product: Some(pending.product.clone()),
            dedupe_key: Some(format!("dcv-timeout:{pid}")),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Some(format!(
        "certificate process {pid}: failed, validation timed out, reservation released"
    )))
}
