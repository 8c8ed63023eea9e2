//! Request, renew and reissue: input checks, price, reservation, DCV entries.

use certhub_ca::ParsedCsr;
use certhub_domain::names::{is_wildcard, normalize_dns_name};
use certhub_domain::product::Product;
use certhub_domain::time::DAY;
use certhub_store::billing::Billable;
use certhub_store::certificates::CertificateRow;
use certhub_store::dcv::{CertRequestRow, DcvEntry};
use certhub_store::processes::{NewProcess, ProcessUpdate};
use certhub_store::subscriptions::OrgValidation;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::rules::{self, REQUEST_TIMEOUT, covering_domains, dcv_email_addresses, reuse_days};
use super::{JOB_DCV, JOB_TIMEOUT, OrgFields, Pending, info_json};
use crate::notify::Notice;
use crate::quote::{money_map, quote_body};
use crate::{App, AppError, Caller};

/// A DCV choice of a request or resend: `{commonName, type, email?}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DcvChoice {
    pub common_name: String,
    #[serde(rename = "type")]
    pub dcv_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The body of request, renew and reissue (RTR §3.4); which keys each
/// accepts is decided by the REST layer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub san: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sa_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sa_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_key: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dcv: Option<Vec<DcvChoice>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billables: Option<Value>,
}

/// What request, renew and reissue answer.
#[derive(Debug, Clone)]
pub enum OrderOutcome {
    /// `?quote=true`: `{command, quote}`, nothing changed.
    Quote(Value),
    /// The process started; `certificate_id` when it was issued at once (201).
    Started {
        process_id: i64,
        info: Value,
        certificate_id: Option<i64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    Renew,
    Reissue,
}

impl Kind {
    fn action(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Renew => "renew",
            Kind::Reissue => "reissue",
        }
    }

    fn billing_action(self) -> Option<&'static str> {
        match self {
            Kind::Request => Some("REQUEST"),
            Kind::Renew => Some("RENEW"),
            Kind::Reissue => None,
        }
    }

    fn command(self) -> &'static str {
        match self {
            Kind::Request => "RequestCertificateCommand",
            Kind::Renew => "RenewCertificateCommand",
            Kind::Reissue => "ReissueCertificateCommand",
        }
    }
}

/// How one name will be validated, decided before the transaction.
struct NamePlan {
    name: String,
    method: String,
    email: Option<String>,
    /// Already validated (reuse or AuthKey).
    validated: bool,
    authkey: bool,
}

fn len_check(field: &str, v: &Option<String>, min: usize, max: usize) -> Result<(), AppError> {
    if let Some(s) = v
        && !(min..=max).contains(&s.chars().count())
    {
        return Err(AppError::constraint(
            field,
            format!("length must be between {min} and {max}"),
            Some(s.clone()),
        ));
    }
    Ok(())
}

fn check_lengths(i: &OrderInput) -> Result<(), AppError> {
    len_check("domainName", &i.domain_name, 4, 255)?;
    len_check("organization", &i.organization, 1, 64)?;
    len_check("department", &i.department, 1, 60)?;
    len_check("country", &i.country, 2, 2)?;
    len_check("state", &i.state, 1, 60)?;
    len_check("address", &i.address, 1, 60)?;
    len_check("city", &i.city, 1, 60)?;
    len_check("postalCode", &i.postal_code, 1, 10)?;
    len_check("coc", &i.coc, 1, 32)?;
    len_check("uniqueValue", &i.unique_value, 1, 20)?;
    if let Some(u) = &i.unique_value
        && !u.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(AppError::constraint(
            "uniqueValue",
            "must be alphanumeric",
            Some(u.clone()),
        ));
    }
    Ok(())
}

/// The requested names: `domainName` first, then `san` (or the CSR's names).
/// Every CSR name must be among them.
fn requested_names(
    i: &OrderInput,
    csr: &ParsedCsr,
    product: &Product,
) -> Result<Vec<String>, AppError> {
    let first = i
        .domain_name
        .clone()
        .or_else(|| csr.cn.clone())
        .or_else(|| csr.names.first().cloned())
        .ok_or_else(|| {
            AppError::constraint(
                "domainName",
                "is required when the CSR names no domain",
                None,
            )
        })?;
    let first = normalize_dns_name(&first).map_err(|e| {
        AppError::constraint("domainName", e.reason.to_string(), Some(first.clone()))
    })?;
    let mut names = vec![first];
    let rest: Vec<String> = match &i.san {
        Some(s) => s.clone(),
        None => csr.names.clone(),
    };
    for raw in rest {
        let n = normalize_dns_name(&raw)
            .map_err(|e| AppError::constraint("san", e.reason.to_string(), Some(raw.clone())))?;
        if !names.contains(&n) {
            names.push(n);
        }
    }
    if let Some(extra) = csr.names.iter().find(|n| !names.contains(n)) {
        return Err(AppError::constraint(
            "san",
            format!("the CSR names {extra}, which is not among the requested names"),
            Some(extra.clone()),
        ));
    }
    if let Some(max) = product.max_domains
        && names.len() as i64 > max
    {
        return Err(AppError::constraint(
            "san",
            format!(
                "product {} allows at most {max} names, {} requested",
                product.product,
                names.len()
            ),
            None,
        ));
    }
    if let Some(w) = names.iter().find(|n| is_wildcard(n))
        && !product.allows_wildcard()
    {
        return Err(AppError::constraint(
            "san",
            format!("product {} does not allow wildcards", product.product),
            Some(w.clone()),
        ));
    }
    if product.certificate_type == "WILDCARD" && !is_wildcard(&names[0]) {
        return Err(AppError::constraint(
            "domainName",
            "a wildcard product needs a wildcard name",
            Some(names[0].clone()),
        ));
    }
    Ok(names)
}

fn org_fields(i: &OrderInput, csr: &ParsedCsr, old: Option<&CertificateRow>) -> OrgFields {
    let pick = |body: &Option<String>, csr_v: &Option<String>, old_v: Option<&Option<String>>| {
        body.clone()
            .or_else(|| csr_v.clone())
            .or_else(|| old_v.and_then(|o| o.clone()))
    };
    OrgFields {
        organization: pick(
            &i.organization,
            &csr.organization,
            old.map(|o| &o.organization),
        ),
        department: pick(
            &i.department,
            &csr.organizational_unit,
            old.map(|o| &o.department),
        ),
        country: pick(&i.country, &csr.country, old.map(|o| &o.country)).map(|c| c.to_uppercase()),
        state: pick(&i.state, &csr.state, old.map(|o| &o.state)),
        city: pick(&i.city, &csr.locality, old.map(|o| &o.city)),
        address: pick(&i.address, &None, old.map(|o| &o.address)),
        postal_code: pick(&i.postal_code, &None, old.map(|o| &o.postal_code)),
        coc: pick(&i.coc, &None, old.map(|o| &o.coc)),
    }
}

fn check_ov(org: &OrgFields) -> Result<(), AppError> {
    if org.organization.is_none() {
        return Err(AppError::constraint(
            "organization",
            "is required for organisation validation",
            None,
        ));
    }
    match &org.country {
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()) => {}
        other => {
            return Err(AppError::constraint(
                "country",
                "must be an ISO 3166-1 alpha-2 code",
                other.clone(),
            ));
        }
    }
    if org.city.is_none() && org.state.is_none() {
        return Err(AppError::constraint(
            "city",
            "city or state is required for organisation validation",
            None,
        ));
    }
    Ok(())
}

/// DCV method per name from the `dcv` list (default DNS).
fn dcv_methods(
    choices: &[DcvChoice],
    names: &[String],
) -> Result<Vec<(String, Option<String>)>, AppError> {
    let mut out: Vec<(String, Option<String>)> =
        names.iter().map(|_| ("DNS".to_string(), None)).collect();
    for c in choices {
        let name = normalize_dns_name(&c.common_name).map_err(|e| {
            AppError::constraint(
                "dcv.commonName",
                e.reason.to_string(),
                Some(c.common_name.clone()),
            )
        })?;
        let idx = names.iter().position(|n| *n == name).ok_or_else(|| {
            AppError::constraint(
                "dcv.commonName",
                "is not one of the requested names",
                Some(c.common_name.clone()),
            )
        })?;
        out[idx] = check_choice(c, &name)?;
    }
    Ok(out)
}

/// Validates one choice: type, FILE not for wildcards, EMAIL to a constructed address.
pub(super) fn check_choice(
    c: &DcvChoice,
    name: &str,
) -> Result<(String, Option<String>), AppError> {
    match c.dcv_type.as_str() {
        "DNS" => Ok(("DNS".into(), None)),
        "FILE" if is_wildcard(name) => Err(AppError::constraint(
            "dcv.type",
            format!("FILE validation cannot validate the wildcard {name}"),
            Some("FILE".into()),
        )),
        "FILE" => Ok(("FILE".into(), None)),
        "EMAIL" => {
            let email = c
                .email
                .as_deref()
                .map(|e| e.trim().to_ascii_lowercase())
                .ok_or_else(|| {
                    AppError::constraint("dcv.email", "is required for EMAIL validation", None)
                })?;
            let allowed = dcv_email_addresses(name).unwrap_or_default();
            if !allowed.contains(&email) {
                return Err(AppError::constraint(
                    "dcv.email",
                    format!("must be one of the addresses of /v2/ssl/dcvemailaddresslist/{name}"),
                    Some(email),
                ));
            }
            Ok(("EMAIL".into(), Some(email)))
        }
        other => Err(AppError::constraint(
            "dcv.type",
            "must be EMAIL, FILE or DNS",
            Some(other.to_string()),
        )),
    }
}

impl App {
    /// `POST /v2/ssl/certificates`.
    pub async fn request_certificate(
        &self,
        caller: &Caller,
        input: OrderInput,
        quote: bool,
    ) -> Result<OrderOutcome, AppError> {
        let customer = input
            .customer
            .clone()
            .ok_or_else(|| AppError::constraint("customer", "is required", None))?;
        self.check_handle(caller, &customer)?;
        self.place_order(caller, Kind::Request, None, input, quote)
            .await
    }

    /// `POST /v2/ssl/certificates/{id}/renew`.
    pub async fn renew_certificate(
        &self,
        caller: &Caller,
        id: i64,
        input: OrderInput,
        quote: bool,
    ) -> Result<OrderOutcome, AppError> {
        let old = self.own_certificate(caller, id).await?;
        self.place_order(caller, Kind::Renew, Some(old), input, quote)
            .await
    }

    /// `POST /v2/ssl/certificates/{id}/reissue`.
    pub async fn reissue_certificate(
        &self,
        caller: &Caller,
        id: i64,
        input: OrderInput,
        quote: bool,
    ) -> Result<OrderOutcome, AppError> {
        let old = self.own_certificate(caller, id).await?;
        self.place_order(caller, Kind::Reissue, Some(old), input, quote)
            .await
    }

    /// The caller's certificate, or 404 (another customer's id looks missing).
    pub async fn own_certificate(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<CertificateRow, AppError> {
        self.db()
            .certificate(Some(caller.customer_id), id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("certificate {id} does not exist")))
    }

    async fn place_order(
        &self,
        caller: &Caller,
        kind: Kind,
        old: Option<CertificateRow>,
        input: OrderInput,
        quote: bool,
    ) -> Result<OrderOutcome, AppError> {
        check_lengths(&input)?;
        if let Some(o) = &old {
            check_old(kind, o, self.now())?;
        }
        let product_id = match (kind, &input.product, &old) {
            (Kind::Reissue, _, Some(o)) => o.product.clone(),
            (_, Some(p), _) => p.clone(),
            (Kind::Renew, None, Some(o)) if !o.imported => o.product.clone(),
            _ => return Err(AppError::constraint("product", "is required", None)),
        };
        let product = self.product_or_ref_error(&product_id).await?;
        if product.acme {
            return Err(AppError::constraint(
                "product",
                "is an ACME subscription product; order it through /v2/ssl/acme",
                Some(product_id),
            ));
        }
        let period = match kind {
            Kind::Reissue => None,
            _ => {
                let p = input
                    .period
                    .ok_or_else(|| AppError::constraint("period", "is required", None))?;
                if !product.offers_period(p) {
                    return Err(AppError::constraint(
                        "period",
                        format!(
                            "product {} is offered for {:?} months",
                            product.product, product.periods
                        ),
                        Some(p.to_string()),
                    ));
                }
                Some(p)
            }
        };
        let csr_pem = input
            .csr
            .clone()
            .ok_or_else(|| AppError::constraint("csr", "is required", None))?;
        let csr = self.parse_csr(csr_pem.as_bytes()).await?;
        let names = requested_names(&input, &csr, &product)?;
        let org = org_fields(&input, &csr, old.as_ref());
        if product.is_ov() {
            check_ov(&org)?;
            if kind == Kind::Request && product.requires("approver") && input.approver.is_none() {
                return Err(AppError::constraint(
                    "approver",
                    "is required for this product",
                    None,
                ));
            }
        }
        let methods = dcv_methods(input.dcv.as_deref().unwrap_or(&[]), &names)?;
        let use_authkey = input.auth_key == Some(true);
        if use_authkey && !product.auth_key {
            return Err(AppError::constraint(
                "authKey",
                format!("product {} does not offer AuthKey", product.product),
                None,
            ));
        }
        let billables = self
            .order_billables(kind, &product, period, &names, &caller.currency)
            .await?;
        if quote {
            return Ok(OrderOutcome::Quote(quote_body(
                kind.command(),
                &caller.currency,
                &billables,
            )));
        }
        let coverage_end = match (kind, &old) {
            (Kind::Reissue, Some(o)) => Some(o.subscription_end_date.unwrap_or(o.expiry_date)),
            _ => None,
        };
        let plans = self
            .plan_names(caller, &names, methods, use_authkey, &csr)
            .await?;
        let pending = Pending {
            customer: caller.handle.clone(),
            names: names.clone(),
            csr_pem,
            product: product.product.clone(),
            validation_type: product.validation_type.clone(),
            certificate_type: product.certificate_type.clone(),
            period,
            currency: caller.currency.clone(),
            reserved: billables.iter().map(|b| b.total).sum(),
            billables,
            old_certificate_id: old.as_ref().map(|o| o.id),
            subscription_end_date: coverage_end,
            org,
            ov: product.is_ov(),
            org_validation_id: None,
            org_status: None,
        };
        let command = serde_json::to_value(&input).unwrap_or(json!({}));
        let process_id = self
            .start_order(caller, kind, pending, plans, &command, old.as_ref())
            .await?;
        let certificate_id = super::validate::try_finalize(self, process_id).await?;
        let info = self.certificate_process_info(process_id).await?;
        Ok(OrderOutcome::Started {
            process_id,
            info,
            certificate_id,
        })
    }

    /// REQUEST/RENEW for the period plus EXTRA_DOMAIN / EXTRA_WILDCARD for
    /// names beyond `includedDomains` (when the product prices them).
    async fn order_billables(
        &self,
        kind: Kind,
        product: &Product,
        period: Option<i64>,
        names: &[String],
        currency: &str,
    ) -> Result<Vec<Billable>, AppError> {
        let (Some(action), Some(period)) = (kind.billing_action(), period) else {
            return Ok(vec![]);
        };
        let mut out = vec![
            self.billable(product, action, period, 1, currency)
                .await
                .map_err(|e| match e {
                    AppError::Validation { message } => {
                        AppError::constraint("period", message, Some(period.to_string()))
                    }
                    other => other,
                })?,
        ];
        let included =
            usize::try_from(product.included_domains.unwrap_or(names.len() as i64)).unwrap_or(0);
        let extra = names.iter().skip(included);
        let wild = extra.clone().filter(|n| is_wildcard(n)).count() as i64;
        let plain = extra.filter(|n| !is_wildcard(n)).count() as i64;
        for (action, qty) in [("EXTRA_DOMAIN", plain), ("EXTRA_WILDCARD", wild)] {
            if qty > 0
                && let Ok(b) = self.billable(product, action, period, qty, currency).await
            {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// Reuse and AuthKey checks, before any transaction (they read DNS/HTTP).
    async fn plan_names(
        &self,
        caller: &Caller,
        names: &[String],
        methods: Vec<(String, Option<String>)>,
        use_authkey: bool,
        csr: &ParsedCsr,
    ) -> Result<Vec<NamePlan>, AppError> {
        let auth_secret = if use_authkey {
            Some(self.db().server_secret(self.kek(), "authkey_key").await?)
        } else {
            None
        };
        let mut plans = Vec::with_capacity(names.len());
        for (name, (method, email)) in names.iter().zip(methods) {
            let mut plan = NamePlan {
                name: name.clone(),
                method,
                email,
                validated: false,
                authkey: false,
            };
            if let Some(m) = self.reusable_method(caller.customer_id, name).await? {
                plan.method = m;
                plan.email = None;
                plan.validated = true;
            } else if let Some(secret) = &auth_secret
                && super::validate::authkey_published(
                    self,
                    secret,
                    caller.customer_id,
                    &csr.key_sha256,
                    name,
                )
                .await
            {
                plan.method = "AUTHKEY".into();
                plan.email = None;
                plan.validated = true;
                plan.authkey = true;
            }
            plans.push(plan);
        }
        Ok(plans)
    }

    /// A completed validation of this customer that covers `name` and is
    /// younger than the BR 4.2.1 limit: its method.
    pub(crate) async fn reusable_method(
        &self,
        customer_id: i64,
        name: &str,
    ) -> Result<Option<String>, AppError> {
        let since = self.now() - reuse_days(self.now()) * DAY;
        for (i, domain) in covering_domains(name).iter().enumerate() {
            for m in self
                .db()
                .validations_since(customer_id, domain, since)
                .await?
            {
                // FILE proves control of one host only, never of a wildcard or a parent's children.
                if m == "FILE" && (i > 0 || is_wildcard(name)) {
                    continue;
                }
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    /// The transaction that starts the process: reservation, DCV entries,
    /// organisation validation, outbox e-mails, engine jobs.
    async fn start_order(
        &self,
        caller: &Caller,
        kind: Kind,
        mut pending: Pending,
        plans: Vec<NamePlan>,
        command: &Value,
        old: Option<&CertificateRow>,
    ) -> Result<i64, AppError> {
        let now = self.now();
        let db = self.db();
        let mut tx = db.begin().await?;
        let user = caller.user();
        let identifier = pending.names.first().cloned().unwrap_or_default();
        let process_id = db
            .insert_process(
                &mut tx,
                &NewProcess {
                    customer_id: caller.customer_id,
                    customer: &caller.handle,
                    user: &user,
                    process_type: "certificate",
                    action: kind.action(),
                    identifier: &identifier,
                    status: "RUNNING",
                    command,
                    subject_id: old.map(|o| o.id),
                },
                now,
            )
            .await?;
        db.reserve(
            &mut tx,
            caller.customer_id,
            &pending.currency,
            pending.reserved,
        )
        .await?;
        if pending.ov {
            self.attach_org_validation(&mut tx, caller, process_id, &mut pending)
                .await?;
        }
        let mut entries = Vec::with_capacity(plans.len());
        for p in plans {
            let mut e = DcvEntry {
                process_id,
                customer_id: caller.customer_id,
                name: p.name.clone(),
                method: p.method.clone(),
                token: rules::random_value(),
                status: if p.validated {
                    "VALIDATED".into()
                } else {
                    "WAITING".into()
                },
                created_at: now,
                validated_at: p.validated.then_some(now),
                ..Default::default()
            };
            match e.method.as_str() {
                "FILE" => e.file_name = Some(rules::random_file_name()),
                "EMAIL" => {
                    e.email = p.email.clone();
                    e.approval_token = Some(rules::random_link_token());
                }
                _ => {}
            }
            e.id = db.insert_dcv_entry(&mut tx, &e).await?;
            if e.method == "EMAIL" && !p.validated {
                self.send_approval_email(&mut tx, &e).await?;
            }
            if p.authkey {
                db.record_validation(
                    &mut tx,
                    caller.customer_id,
                    certhub_domain::names::base_name(&p.name),
                    "AUTHKEY",
                    now,
                    Some(process_id),
                )
                .await?;
            }
            entries.push(e);
        }
        let req = CertRequestRow {
            process_id,
            customer_id: caller.customer_id,
            action: kind.action().into(),
            product: pending.product.clone(),
            details: pending.to_value(),
            status: "PENDING".into(),
            created_at: now,
            expires_at: now + REQUEST_TIMEOUT,
            ..Default::default()
        };
        db.insert_cert_request(&mut tx, &req, now).await?;
        db.schedule_job(&mut tx, JOB_DCV, process_id, now + rules::backoff_secs(0))
            .await?;
        db.schedule_job(&mut tx, JOB_TIMEOUT, process_id, req.expires_at)
            .await?;
        let update = ProcessUpdate {
            info: Some(info_json(&req, &pending, &entries)),
            reservation: (pending.reserved > 0)
                .then(|| money_map(&pending.currency, pending.reserved)),
            billables: (!pending.billables.is_empty()).then(|| json!(pending.billables)),
            resume_types: Some(json!(["RESEND", "CANCEL"])),
            ..Default::default()
        };
        db.update_process(&mut tx, process_id, &update, now).await?;
        db.audit(
            &mut tx,
            now,
            &user,
            Some(caller.customer_id),
            &format!("certificate.{}", kind.action()),
            &format!("process {process_id}"),
            &format!("names {}", pending.names.join(",")),
        )
        .await?;
        tx.commit().await?;
        Ok(process_id)
    }

    /// OV: reuse an approval of the same organisation, or open a pending
    /// validation the operator decides (the same queue as OV subscriptions).
    async fn attach_org_validation(
        &self,
        tx: &mut certhub_store::Tx,
        caller: &Caller,
        process_id: i64,
        pending: &mut Pending,
    ) -> Result<(), AppError> {
        let now = self.now();
        let ident = certhub_domain::subscription::OrgIdentity {
            organization: pending.org.organization.clone().unwrap_or_default(),
            country: pending.org.country.clone().unwrap_or_default(),
            state: pending.org.state.clone(),
            city: pending.org.city.clone(),
        };
        if let Some(v) = self
            .db()
            .reusable_org_validation(tx, caller.customer_id, &ident.key(), now)
            .await?
        {
            pending.org_validation_id = Some(v.id);
            pending.org_status = Some("VALIDATED".into());
            return Ok(());
        }
        let v = OrgValidation {
            customer_id: caller.customer_id,
            subscription_id: None,
            process_id,
            organization: ident.organization.clone(),
            country: ident.country.clone(),
            state: ident.state.clone(),
            city: ident.city.clone(),
            address: pending.org.address.clone(),
            postal_code: pending.org.postal_code.clone(),
            org_key: ident.key(),
            status: "PENDING".into(),
            created_at: now,
            ..Default::default()
        };
        let id = self.db().insert_org_validation(tx, &v).await?;
        pending.org_validation_id = Some(id);
        pending.org_status = Some("WAITING".into());
        self.notify(
            tx,
            Notice {
                customer_id: caller.customer_id,
                event_type: "ORGANIZATION_VALIDATION_NEEDED",
                message: format!(
                    "Organisation validation {id} of {} is waiting for the operator",
                    ident.organization
                ),
                process_id: Some(process_id),
                process_type: Some("certificate".into()),
                process_identifier: pending.names.first().cloned(),
                product: Some(pending.product.clone()),
                dedupe_key: Some(format!("cert-org-needed:{process_id}")),
                ..Default::default()
            },
        )
        .await?;
        Ok(())
    }
}

/// Which states allow renew / reissue of `old`.
fn check_old(kind: Kind, old: &CertificateRow, now: i64) -> Result<(), AppError> {
    if old.certificate_type == "ACME_SUBSCRIPTION" || old.subscription_id.is_some() {
        return Err(AppError::StatusProhibits(format!(
            "certificate {} is managed by ACME: renew or reissue it through the ACME subscription",
            old.id
        )));
    }
    match kind {
        Kind::Renew if matches!(old.status.as_str(), "ACTIVE" | "EXPIRED") => Ok(()),
        Kind::Reissue if old.imported => Err(AppError::StatusProhibits(format!(
            "certificate {} is imported: renew it into a product instead",
            old.id
        ))),
        Kind::Reissue if old.status == "ACTIVE" => {
            if old.subscription_end_date.unwrap_or(old.expiry_date) <= now {
                return Err(AppError::StatusProhibits(format!(
                    "the coverage of certificate {} has ended: renew it",
                    old.id
                )));
            }
            Ok(())
        }
        _ => Err(AppError::StatusProhibits(format!(
            "certificate {} is {}: {} is not possible",
            old.id,
            old.status,
            kind.action()
        ))),
    }
}
