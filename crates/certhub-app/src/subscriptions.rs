//! ACME subscription use cases (create, update, renew, delete, credentials,
//! organisation validation) and their lifecycle jobs.
//!
//! Each use case is one transaction: the state change, its process, the
//! ledger rows, the jobs it schedules, notifications and the audit record are
//! committed together or not at all, so a request repeated after a crash never
//! charges twice and a failed charge changes nothing.
//!
//! Job kinds (subject = subscription id): `sub.expire` (at expiryDate),
//! `sub.expiring` (30 and 7 days before), `sub.revoke` (expiryDate + 30 days),
//! `sub.org_revalidate` (orgValidUntil − 30 days), `sub.org_lapse`
//! (orgValidUntil). Handlers re-check the state, so a job made stale by a
//! renewal or an approval finishes without a change.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certhub_domain::names;
use certhub_domain::product::Product;
use certhub_domain::subscription::{self as rules, OrgIdentity, OrgState, Status, TermState};
use certhub_domain::time::format_rtr;
use certhub_store::Tx;
use certhub_store::billing::{Billable, LedgerRef};
use certhub_store::jobs::Job;
use certhub_store::processes::{NewProcess, ProcessUpdate};
use certhub_store::sealed::random_bytes;
use certhub_store::subscriptions::{EabBinding, OrgValidation, Subscription};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::notify::Notice;
use crate::quote::{money_map, quote_body};
use crate::{App, AppError, Caller, Violation};

/// RTR process `type` of every subscription process.
pub const PROCESS_TYPE: &str = "acmeSubscription";
/// KEK context of sealed EAB MAC keys.
pub const EAB_CONTEXT: &str = "eab";

/// Keys accepted in request bodies (anything else is `UnrecognizedPropertyException`).
pub const CREATE_KEYS: &[&str] = &[
    "customer",
    "product",
    "domainNames",
    "organization",
    "country",
    "state",
    "address",
    "postalCode",
    "city",
    "autoRenew",
    "period",
    "certValidity",
    "approver",
];
pub const UPDATE_KEYS: &[&str] = &[
    "domainNames",
    "organization",
    "country",
    "state",
    "address",
    "postalCode",
    "city",
    "autoRenew",
    "period",
    "approver",
];
pub const RENEW_KEYS: &[&str] = &["period"];

const JOB_KINDS: &[&str] = &[
    "sub.expire",
    "sub.expiring",
    "sub.revoke",
    "sub.org_revalidate",
    "sub.org_lapse",
];

/// RTR's approver object. All keys optional on the wire so that a missing
/// one is reported as a violation of that field.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Approver {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Always serialised (null allowed): RTR's PHP SDK reads the key unconditionally.
    pub job_title: Option<String>,
    pub email: Option<String>,
    pub voice: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_names: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_renew: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_validity: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<Approver>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_names: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_renew: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<Approver>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenewRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<i64>,
}

/// The result of a billable mutation: a quote (nothing changed) or the
/// process that did it.
#[derive(Debug, Clone)]
pub enum Outcome<T> {
    Quote(Value),
    Done { process_id: i64, result: T },
}

/// ACME account binding values handed to the client operator. Secret.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub directory_url: String,
    pub account_key: String,
    pub hmac_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("directory_url", &self.directory_url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct Created {
    pub id: i64,
    pub credentials: Credentials,
    /// OV waiting for organisation validation (answered 202 instead of 201).
    pub pending: bool,
}

/// What the ACME server needs to decide about a subscription.
#[derive(Debug, Clone)]
pub struct SubscriptionGate {
    pub id: i64,
    pub customer_id: i64,
    pub product: String,
    pub domain_names: Vec<String>,
    /// The effective status (see [`App::subscription_gate`]).
    pub status: Status,
    /// ACTIVE and not deleted: newOrder and finalize may proceed.
    pub active: bool,
    pub deleted: bool,
    /// The approved organisation snapshot (organization, country, state, city) of OV subscriptions.
    pub org_subject: Option<(String, String, Option<String>, Option<String>)>,
    pub expiry_date: i64,
    pub auto_renew: bool,
    /// "subscription {id} is {STATUS}: {remedy}" for ACME problem details.
    pub remedy_detail: String,
}

// ---------------------------------------------------------------- validation

#[derive(Default)]
struct Violations(Vec<Violation>);

impl Violations {
    fn add(&mut self, field: &str, message: impl Into<String>, value: Option<String>) {
        self.0.push(Violation {
            field: field.to_string(),
            message: message.into(),
            value,
        });
    }

    fn len(&mut self, field: &str, v: &Option<String>, min: usize, max: usize) {
        if let Some(s) = v {
            let n = s.chars().count();
            if n < min || n > max {
                self.add(
                    field,
                    format!("length must be between {min} and {max}"),
                    Some(s.clone()),
                );
            }
        }
    }

    fn into_result(self) -> Result<(), AppError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let message = self
            .0
            .iter()
            .map(|v| format!("{}: {}", v.field, v.message))
            .collect::<Vec<_>>()
            .join("; ");
        Err(AppError::Constraint {
            message,
            violations: self.0,
        })
    }
}

const ORG_FIELDS: &[&str] = &[
    "organization",
    "country",
    "state",
    "address",
    "postalCode",
    "city",
    "approver",
];

/// Organisation fields common to create and update.
struct OrgInput<'a> {
    organization: &'a Option<String>,
    country: &'a Option<String>,
    state: &'a Option<String>,
    address: &'a Option<String>,
    postal_code: &'a Option<String>,
    city: &'a Option<String>,
    approver: &'a Option<Approver>,
}

impl OrgInput<'_> {
    fn present(&self) -> Vec<&'static str> {
        let flags = [
            self.organization.is_some(),
            self.country.is_some(),
            self.state.is_some(),
            self.address.is_some(),
            self.postal_code.is_some(),
            self.city.is_some(),
            self.approver.is_some(),
        ];
        ORG_FIELDS
            .iter()
            .zip(flags)
            .filter(|(_, p)| *p)
            .map(|(f, _)| *f)
            .collect()
    }

    fn check(&self, v: &mut Violations) {
        v.len("organization", self.organization, 1, 64);
        v.len("state", self.state, 1, 60);
        v.len("address", self.address, 1, 60);
        v.len("postalCode", self.postal_code, 1, 10);
        v.len("city", self.city, 1, 60);
        if let Some(c) = self.country
            && (c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            v.add(
                "country",
                "must be an ISO 3166-1 alpha-2 code",
                Some(c.clone()),
            );
        }
        if let Some(a) = self.approver {
            check_approver(a, v);
        }
    }
}

fn check_approver(a: &Approver, v: &mut Violations) {
    for (field, val, required) in [
        ("approver.firstName", &a.first_name, true),
        ("approver.lastName", &a.last_name, true),
        ("approver.jobTitle", &a.job_title, false),
    ] {
        match val {
            None if required => v.add(field, "must not be null", None),
            _ => v.len(field, val, 1, 40),
        }
    }
    match &a.email {
        None => v.add("approver.email", "must not be null", None),
        Some(e) => {
            let ok = e.len() <= 255
                && e.split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'));
            if !ok {
                v.add(
                    "approver.email",
                    "must be an e-mail address",
                    Some(e.clone()),
                );
            }
        }
    }
    match &a.voice {
        None => v.add("approver.voice", "must not be null", None),
        Some(p) => {
            // RTR phone format: +CC.NUMBER, e.g. +31.6123123213.
            let ok = p
                .strip_prefix('+')
                .and_then(|r| r.split_once('.'))
                .is_some_and(|(cc, n)| {
                    (1..=3).contains(&cc.len())
                        && (1..=14).contains(&n.len())
                        && cc.bytes().all(|b| b.is_ascii_digit())
                        && n.bytes().all(|b| b.is_ascii_digit())
                });
            if !ok {
                v.add(
                    "approver.voice",
                    "must be a phone number like +31.201234567",
                    Some(p.clone()),
                );
            }
        }
    }
}

/// Normalises names per product (maxDomains, wildcards); one violation per bad name.
fn check_names(product: &Product, input: &[String], v: &mut Violations) -> Vec<String> {
    if input.is_empty() {
        v.add("domainNames", "must contain at least one name", None);
        return vec![];
    }
    if let Some(max) = product.max_domains
        && input.len() as i64 > max
    {
        v.add(
            "domainNames",
            format!(
                "at most {max} names are allowed for product {}",
                product.product
            ),
            None,
        );
    }
    let mut out: Vec<String> = Vec::with_capacity(input.len());
    for (i, n) in input.iter().enumerate() {
        let field = format!("domainNames[{i}]");
        match names::normalize_dns_name(n) {
            Err(e) => v.add(&field, e.reason, Some(n.clone())),
            Ok(norm) if out.contains(&norm) => v.add(&field, "duplicate name", Some(n.clone())),
            Ok(norm) if names::is_wildcard(&norm) && !product.allows_wildcard() => v.add(
                &field,
                "wildcards are not allowed for this product",
                Some(n.clone()),
            ),
            Ok(norm) => out.push(norm),
        }
    }
    out
}

fn check_period(product: &Product, period: Option<i64>, v: &mut Violations) {
    match period {
        None => v.add("period", "must not be null", None),
        Some(p) if !product.offers_period(p) => v.add(
            "period",
            format!(
                "must be one of {:?} for product {}",
                product.periods, product.product
            ),
            Some(p.to_string()),
        ),
        Some(_) => {}
    }
}

fn upper(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|c| c.to_uppercase())
}

fn approver_json(a: &Option<Approver>) -> Option<String> {
    a.as_ref().map(certhub_store::to_json)
}

fn term(s: &Subscription) -> TermState {
    TermState::parse(&s.term_state).unwrap_or(TermState::Active)
}

fn org(s: &Subscription) -> OrgState {
    OrgState::parse(&s.org_state).unwrap_or(OrgState::None)
}

fn status_of(s: &Subscription) -> Status {
    Status::parse(&s.status).unwrap_or_else(|| rules::status(term(s), org(s)))
}

fn set_states(s: &mut Subscription, t: TermState, o: OrgState) {
    s.term_state = t.as_str().to_string();
    s.org_state = o.as_str().to_string();
    s.status = rules::status(t, o).as_str().to_string();
}

fn identity(s: &Subscription) -> Option<OrgIdentity> {
    Some(OrgIdentity {
        organization: s.organization.clone()?,
        country: s.country.clone()?,
        state: s.state.clone(),
        city: s.city.clone(),
    })
}

/// 43 base64url characters from 32 random bytes, never starting with `-`.
fn eab_token() -> (String, [u8; 32]) {
    loop {
        let b = random_bytes::<32>();
        let s = URL_SAFE_NO_PAD.encode(b);
        if !s.starts_with('-') {
            return (s, b);
        }
    }
}

fn common_name(s: &Subscription) -> String {
    s.domain_names
        .first()
        .cloned()
        .unwrap_or_else(|| s.id.to_string())
}

fn plain_info(s: &Subscription) -> Value {
    json!({"commonName": common_name(s), "requiresAttention": false, "validations": {}})
}

fn org_info(s: &Subscription, state: &str) -> Value {
    json!({"commonName": common_name(s), "requiresAttention": state == "ATTENTION", "validations": {"organization": state}})
}

// ---------------------------------------------------------------- use cases

impl App {
    /// `{public-url}/acme/{product}/directory`.
    pub fn directory_url(&self, product: &str) -> String {
        format!(
            "{}/acme/{product}/directory",
            self.settings().public_url.trim_end_matches('/')
        )
    }

    /// The MAC key of an EAB binding (the decoded 32 bytes).
    pub fn eab_hmac_key(&self, binding: &EabBinding) -> Result<Vec<u8>, AppError> {
        Ok(self.kek().open(EAB_CONTEXT, &binding.hmac_sealed)?)
    }

    /// The caller's undeleted subscription, or 404.
    pub async fn subscription_for(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<Subscription, AppError> {
        self.db()
            .subscription(id)
            .await?
            .filter(|s| s.customer_id == caller.customer_id && s.deleted_at.is_none())
            .ok_or_else(|| AppError::NotFound(format!("acme subscription {id} does not exist")))
    }

    async fn lock_subscription(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        id: i64,
    ) -> Result<Subscription, AppError> {
        self.db()
            .subscription_for_update(tx, id)
            .await?
            .filter(|s| s.customer_id == caller.customer_id && s.deleted_at.is_none())
            .ok_or_else(|| AppError::NotFound(format!("acme subscription {id} does not exist")))
    }

    async fn acme_product(&self, name: &str) -> Result<Product, AppError> {
        let p = self.product_or_ref_error(name).await?;
        if !p.acme {
            return Err(AppError::constraint(
                "product",
                format!("product {name} is not an ACME subscription product"),
                Some(name.to_string()),
            ));
        }
        Ok(p)
    }

    /// Effective status for the ACME server: the stored status, except that
    /// an instant already past `expiryDate` (without autoRenew) or past
    /// `orgValidUntil` counts as reached even if the engine has not run yet.
    pub async fn subscription_gate(
        &self,
        subscription_id: i64,
    ) -> Result<SubscriptionGate, AppError> {
        let s = self
            .db()
            .subscription(subscription_id)
            .await?
            .ok_or_else(|| {
                AppError::NotFound(format!(
                    "acme subscription {subscription_id} does not exist"
                ))
            })?;
        let now = self.now();
        let mut status = status_of(&s);
        if status == Status::Active && now >= s.expiry_date && !s.auto_renew {
            status = Status::Suspended;
        }
        if status == Status::Active && s.org_valid_until.is_some_and(|u| now >= u) {
            status = Status::PendingOrganizationValidation;
        }
        let deleted = s.deleted_at.is_some();
        let remedy_detail = if deleted {
            rules::deleted_detail(s.id)
        } else {
            rules::remedy_detail(s.id, status, s.org_process_id)
        };
        let org_subject = match (&s.approved_organization, &s.approved_country) {
            (Some(o), Some(c)) => Some((
                o.clone(),
                c.clone(),
                s.approved_state.clone(),
                s.approved_city.clone(),
            )),
            _ => None,
        };
        Ok(SubscriptionGate {
            id: s.id,
            customer_id: s.customer_id,
            product: s.product.clone(),
            domain_names: s.domain_names.clone(),
            status,
            active: status == Status::Active && !deleted,
            deleted,
            org_subject,
            expiry_date: s.expiry_date,
            auto_renew: s.auto_renew,
            remedy_detail,
        })
    }

    /// `POST /v2/ssl/acme`.
    pub async fn create_subscription(
        &self,
        caller: &Caller,
        req: CreateRequest,
        quote: bool,
    ) -> Result<Outcome<Created>, AppError> {
        let Some(customer) = req.customer.as_deref() else {
            return Err(AppError::constraint("customer", "must not be null", None));
        };
        self.check_handle(caller, customer)?;
        let Some(product_name) = req.product.as_deref() else {
            return Err(AppError::constraint("product", "must not be null", None));
        };
        let mut v = Violations::default();
        let product = self.acme_product(product_name).await?;
        check_period(&product, req.period, &mut v);
        let names = match &req.domain_names {
            Some(n) => check_names(&product, n, &mut v),
            None => {
                v.add("domainNames", "must not be null", None);
                vec![]
            }
        };
        let org_in = OrgInput {
            organization: &req.organization,
            country: &req.country,
            state: &req.state,
            address: &req.address,
            postal_code: &req.postal_code,
            city: &req.city,
            approver: &req.approver,
        };
        org_in.check(&mut v);
        if product.is_ov() {
            if req.organization.is_none() {
                v.add("organization", "is required for an OV product", None);
            }
            if req.country.is_none() {
                v.add("country", "is required for an OV product", None);
            }
            if req.city.is_none() && req.state.is_none() {
                v.add("city", "city or state is required for an OV product", None);
            }
            if req.approver.is_none() {
                v.add("approver", "is required for an OV product", None);
            }
        } else {
            for f in org_in.present() {
                v.add(f, "is not allowed for a DV product", None);
            }
        }
        if let Some(cv) = req.cert_validity {
            if product.brand.eq_ignore_ascii_case("SECTIGO") {
                v.add(
                    "certValidity",
                    "is only allowed for DigiCert products",
                    Some(cv.to_string()),
                );
            } else if !(47..=200).contains(&cv) {
                v.add(
                    "certValidity",
                    "must be between 47 and 200 days",
                    Some(cv.to_string()),
                );
            }
        }
        v.into_result()?;
        let period = req.period.unwrap_or_default();
        let billable = self
            .billable(&product, "CREATE", period, 1, &caller.currency)
            .await?;
        if quote {
            return Ok(Outcome::Quote(quote_body(
                "CreateAcmeSubscriptionCommand",
                &caller.currency,
                &[billable],
            )));
        }

        let now = self.now();
        let (kid, _) = eab_token();
        let (hmac_text, hmac_bytes) = eab_token();
        let mut s = Subscription {
            customer_id: caller.customer_id,
            customer: caller.handle.clone(),
            product: product.product.clone(),
            domain_names: names,
            organization: req.organization.clone(),
            address: req.address.clone(),
            city: req.city.clone(),
            state: req.state.clone(),
            postal_code: req.postal_code.clone(),
            country: upper(&req.country),
            approver: approver_json(&req.approver),
            auto_renew: req.auto_renew.unwrap_or(false),
            period,
            cert_validity: req.cert_validity,
            months_paid: period,
            created_at: now,
            updated_at: Some(now),
            expiry_date: rules::expiry(now, period),
            eab_kid: kid.clone(),
            eab_hmac_sealed: self.kek().seal(EAB_CONTEXT, &hmac_bytes),
            eab_created_at: now,
            ..Default::default()
        };
        let org0 = if product.is_ov() {
            OrgState::Pending
        } else {
            OrgState::None
        };
        set_states(&mut s, TermState::Active, org0);

        let user = caller.user();
        let mut tx = self.db().begin().await?;
        self.db().lock_customer(&mut tx, caller.customer_id).await?;
        s.id = self.db().insert_subscription(&mut tx, &s).await?;
        let id_text = s.id.to_string();
        let command = serde_json::to_value(&req).unwrap_or(json!({}));
        let pid = self
            .new_process(&mut tx, &s, &user, "create", &command)
            .await?;
        self.charge_process(&mut tx, &s, pid, "create", &billable)
            .await?;
        self.schedule_term_jobs(&mut tx, &s).await?;
        if product.is_ov() {
            self.settle_organisation(&mut tx, &mut s, &user).await?;
            self.db().save_subscription(&mut tx, &s).await?;
        }
        self.db()
            .audit(
                &mut tx,
                now,
                &user,
                Some(caller.customer_id),
                "subscription.create",
                &id_text,
                &format!(
                    "product={} period={} names={}",
                    s.product,
                    period,
                    s.domain_names.join(",")
                ),
            )
            .await?;
        tx.commit().await?;
        let pending = org(&s) == OrgState::Pending;
        Ok(Outcome::Done {
            process_id: pid,
            result: Created {
                id: s.id,
                credentials: Credentials {
                    directory_url: self.directory_url(&s.product),
                    account_key: kid,
                    hmac_key: hmac_text,
                },
                pending,
            },
        })
    }

    /// `POST /v2/ssl/acme/{id}/update`: names, organisation, approver,
    /// autoRenew and the period of the next auto-renewal. Free of charge.
    pub async fn update_subscription(
        &self,
        caller: &Caller,
        id: i64,
        req: UpdateRequest,
        quote: bool,
    ) -> Result<Outcome<Subscription>, AppError> {
        let current = self.subscription_for(caller, id).await?;
        if status_of(&current) == Status::Revoked {
            return Err(AppError::StatusProhibits(format!(
                "acme subscription {id} is REVOKED"
            )));
        }
        let product = self.acme_product(&current.product).await?;
        let mut v = Violations::default();
        if req.period.is_some() {
            check_period(&product, req.period, &mut v);
        }
        let names = req
            .domain_names
            .as_ref()
            .map(|n| check_names(&product, n, &mut v));
        let org_in = OrgInput {
            organization: &req.organization,
            country: &req.country,
            state: &req.state,
            address: &req.address,
            postal_code: &req.postal_code,
            city: &req.city,
            approver: &req.approver,
        };
        org_in.check(&mut v);
        if !product.is_ov() {
            for f in org_in.present() {
                v.add(f, "is not allowed for a DV product", None);
            }
        }
        v.into_result()?;
        if quote {
            return Ok(Outcome::Quote(quote_body(
                "UpdateAcmeSubscriptionCommand",
                &caller.currency,
                &[],
            )));
        }

        let now = self.now();
        let user = caller.user();
        let mut tx = self.db().begin().await?;
        let mut s = self.lock_subscription(&mut tx, caller, id).await?;
        if term(&s) == TermState::Revoked {
            return Err(AppError::StatusProhibits(format!(
                "acme subscription {id} is REVOKED"
            )));
        }
        let old_key = identity(&s).map(|i| i.key());
        if let Some(n) = names {
            s.domain_names = n;
        }
        let set = |dst: &mut Option<String>, src: &Option<String>| {
            if src.is_some() {
                dst.clone_from(src);
            }
        };
        set(&mut s.organization, &req.organization);
        set(&mut s.state, &req.state);
        set(&mut s.address, &req.address);
        set(&mut s.postal_code, &req.postal_code);
        set(&mut s.city, &req.city);
        set(&mut s.country, &upper(&req.country));
        if req.approver.is_some() {
            s.approver = approver_json(&req.approver);
        }
        if let Some(a) = req.auto_renew {
            s.auto_renew = a;
        }
        if let Some(p) = req.period {
            s.period = p;
        }
        s.updated_at = Some(now);
        let command = serde_json::to_value(&req).unwrap_or(json!({}));
        let pid = self
            .new_process(&mut tx, &s, &user, "update", &command)
            .await?;
        // A changed organisation (or one that was rejected) needs a new validation.
        let org_changed = product.is_ov()
            && (identity(&s).map(|i| i.key()) != old_key || org(&s) == OrgState::Rejected);
        if org_changed {
            let t = term(&s);
            set_states(&mut s, t, OrgState::Pending);
            self.settle_organisation(&mut tx, &mut s, &user).await?;
        }
        self.db().save_subscription(&mut tx, &s).await?;
        self.complete_process(&mut tx, pid, &s, None, None).await?;
        self.db()
            .audit(
                &mut tx,
                now,
                &user,
                Some(caller.customer_id),
                "subscription.update",
                &id.to_string(),
                &format!(
                    "fields={}",
                    command
                        .as_object()
                        .map(|m| m.keys().cloned().collect::<Vec<_>>().join(","))
                        .unwrap_or_default()
                ),
            )
            .await?;
        tx.commit().await?;
        Ok(Outcome::Done {
            process_id: pid,
            result: s,
        })
    }

    /// `POST /v2/ssl/acme/{id}/renew`: charges (product, RENEW, period) and
    /// extends from the current expiryDate. Refused when REVOKED.
    pub async fn renew_subscription(
        &self,
        caller: &Caller,
        id: i64,
        req: RenewRequest,
        quote: bool,
    ) -> Result<Outcome<Subscription>, AppError> {
        let current = self.subscription_for(caller, id).await?;
        if term(&current) == TermState::Revoked {
            return Err(AppError::StatusProhibits(format!(
                "acme subscription {id} is REVOKED and can no longer be renewed; order a new subscription"
            )));
        }
        let product = self.acme_product(&current.product).await?;
        let mut v = Violations::default();
        check_period(&product, req.period, &mut v);
        v.into_result()?;
        let period = req.period.unwrap_or_default();
        let billable = self
            .billable(&product, "RENEW", period, 1, &caller.currency)
            .await?;
        if quote {
            return Ok(Outcome::Quote(quote_body(
                "RenewAcmeSubscriptionCommand",
                &caller.currency,
                &[billable],
            )));
        }
        let now = self.now();
        let user = caller.user();
        let mut tx = self.db().begin().await?;
        self.db().lock_customer(&mut tx, caller.customer_id).await?;
        let mut s = self.lock_subscription(&mut tx, caller, id).await?;
        if term(&s) == TermState::Revoked {
            return Err(AppError::StatusProhibits(format!(
                "acme subscription {id} is REVOKED"
            )));
        }
        let command = serde_json::to_value(&req).unwrap_or(json!({}));
        let pid = self
            .new_process(&mut tx, &s, &user, "renew", &command)
            .await?;
        self.charge_process(&mut tx, &s, pid, "renew", &billable)
            .await?;
        self.extend(&mut tx, &mut s, period).await?;
        self.db()
            .audit(
                &mut tx,
                now,
                &user,
                Some(caller.customer_id),
                "subscription.renew",
                &id.to_string(),
                &format!("period={period} expiry={}", format_rtr(s.expiry_date)),
            )
            .await?;
        tx.commit().await?;
        Ok(Outcome::Done {
            process_id: pid,
            result: s,
        })
    }

    /// `DELETE /v2/ssl/acme/{id}`: within 30 days of creation every charge is
    /// refunded and unexpired certificates are revoked; always the EAB stops
    /// binding and get/list answer 404.
    pub async fn delete_subscription(&self, caller: &Caller, id: i64) -> Result<i64, AppError> {
        let now = self.now();
        let user = caller.user();
        let mut tx = self.db().begin().await?;
        self.db().lock_customer(&mut tx, caller.customer_id).await?;
        let mut s = self.lock_subscription(&mut tx, caller, id).await?;
        let pid = self
            .new_process(&mut tx, &s, &user, "delete", &json!({}))
            .await?;
        let mut refunded: std::collections::BTreeMap<String, i64> = Default::default();
        let mut revoked = Vec::new();
        if rules::refundable(s.created_at, now) {
            let id_text = s.id.to_string();
            let r = LedgerRef {
                customer_id: s.customer_id,
                customer: &s.customer,
                process_id: pid,
                process_type: PROCESS_TYPE,
                process_identifier: &id_text,
                process_action: "delete",
                subject_id: Some(s.id),
            };
            for charge in self
                .db()
                .charges_for_subject(&mut tx, PROCESS_TYPE, s.id)
                .await?
            {
                let billables: Vec<Billable> = charge
                    .billables
                    .as_deref()
                    .and_then(|b| serde_json::from_str(b).ok())
                    .unwrap_or_default();
                self.db()
                    .refund(
                        &mut tx,
                        &r,
                        &charge.currency,
                        -charge.amount,
                        &billables,
                        now,
                    )
                    .await?;
                *refunded.entry(charge.currency.clone()).or_default() += -charge.amount;
            }
            revoked = self
                .db()
                .revoke_subscription_certificates(&mut tx, s.id, now)
                .await?;
        }
        self.cancel_pending_validations(&mut tx, &s).await?;
        for kind in JOB_KINDS {
            self.db().cancel_jobs(&mut tx, kind, s.id, now).await?;
        }
        s.deleted_at = Some(now);
        s.updated_at = Some(now);
        self.db().save_subscription(&mut tx, &s).await?;
        let refund = (!refunded.is_empty()).then(|| json!(refunded));
        self.complete_process(&mut tx, pid, &s, None, refund)
            .await?;
        self.db()
            .audit(
                &mut tx,
                now,
                &user,
                Some(caller.customer_id),
                "subscription.delete",
                &id.to_string(),
                &format!(
                    "refunded={refunded:?} revoked_certificates={}",
                    revoked.len()
                ),
            )
            .await?;
        tx.commit().await?;
        Ok(pid)
    }

    /// `POST /v2/ssl/acme/{id}/credentials`: brand SECTIGO returns the
    /// existing pair; other brands get a new pair and the old kid stops binding.
    pub async fn subscription_credentials(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<(i64, Credentials), AppError> {
        let current = self.subscription_for(caller, id).await?;
        let product = self.product_or_ref_error(&current.product).await?;
        let user = caller.user();
        let mut tx = self.db().begin().await?;
        let mut s = self.lock_subscription(&mut tx, caller, id).await?;
        let pid = self
            .new_process(&mut tx, &s, &user, "credentials", &json!({}))
            .await?;
        let creds = if product.brand.eq_ignore_ascii_case("SECTIGO") {
            let mac = self.kek().open(EAB_CONTEXT, &s.eab_hmac_sealed)?;
            Credentials {
                directory_url: self.directory_url(&s.product),
                account_key: s.eab_kid.clone(),
                hmac_key: URL_SAFE_NO_PAD.encode(mac),
            }
        } else {
            self.rotate(&mut tx, &mut s, &user).await?
        };
        self.complete_process(&mut tx, pid, &s, None, None).await?;
        self.db()
            .audit(
                &mut tx,
                self.now(),
                &user,
                Some(caller.customer_id),
                "subscription.credentials",
                &id.to_string(),
                "",
            )
            .await?;
        tx.commit().await?;
        Ok((pid, creds))
    }

    /// Operator: new EAB pair for a leaked one (`admin subscription rotate-eab`).
    pub async fn rotate_eab(&self, subscription_id: i64) -> Result<Credentials, AppError> {
        let mut tx = self.db().begin().await?;
        let mut s = self
            .db()
            .subscription_for_update(&mut tx, subscription_id)
            .await?
            .filter(|s| s.deleted_at.is_none())
            .ok_or_else(|| {
                AppError::NotFound(format!(
                    "acme subscription {subscription_id} does not exist"
                ))
            })?;
        let creds = self.rotate(&mut tx, &mut s, "operator").await?;
        tx.commit().await?;
        Ok(creds)
    }

    async fn rotate(
        &self,
        tx: &mut Tx,
        s: &mut Subscription,
        actor: &str,
    ) -> Result<Credentials, AppError> {
        let now = self.now();
        let (kid, _) = eab_token();
        let (hmac_text, hmac_bytes) = eab_token();
        s.eab_kid = kid.clone();
        s.eab_hmac_sealed = self.kek().seal(EAB_CONTEXT, &hmac_bytes);
        s.eab_created_at = now;
        s.updated_at = Some(now);
        self.db().save_subscription(tx, s).await?;
        self.db()
            .audit(
                tx,
                now,
                actor,
                Some(s.customer_id),
                "subscription.eab.rotate",
                &s.id.to_string(),
                "",
            )
            .await?;
        Ok(Credentials {
            directory_url: self.directory_url(&s.product),
            account_key: kid,
            hmac_key: hmac_text,
        })
    }

    /// Operator: organisation validations, oldest first (`status` e.g. "PENDING").
    pub async fn org_validations(
        &self,
        status: Option<&str>,
    ) -> Result<Vec<OrgValidation>, AppError> {
        Ok(self.db().list_org_validations(status).await?)
    }

    /// Operator approval: orgValidUntil = now + 397 days; the subscription
    /// becomes ACTIVE (unless its term says otherwise). Returns a report line.
    pub async fn approve_org_validation(&self, id: i64) -> Result<String, AppError> {
        if self.is_certificate_org_validation(id).await? {
            let issued = self
                .decide_certificate_org_validation(id, true, None)
                .await?;
            return Ok(match issued {
                Some(cert) => format!(
                    "validation {id} APPROVED (certificate request issued: certificate {cert})"
                ),
                None => {
                    format!("validation {id} APPROVED (certificate request continues with DCV)")
                }
            });
        }
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let v = self.pending_validation(&mut tx, id).await?;
        let valid_until = rules::org_valid_until(now);
        self.db()
            .decide_org_validation(&mut tx, id, "APPROVED", None, now, Some(valid_until))
            .await?;
        let approved = OrgValidation {
            status: "APPROVED".into(),
            decided_at: Some(now),
            valid_until: Some(valid_until),
            ..v
        };
        let mut line = format!(
            "validation {id} APPROVED (orgValidUntil {})",
            format_rtr(valid_until)
        );
        let sub = match approved.subscription_id {
            Some(sid) => self.db().subscription_for_update(&mut tx, sid).await?,
            None => None,
        };
        let info_sub = sub.clone().unwrap_or_default();
        self.db()
            .update_process(
                &mut tx,
                approved.process_id,
                &ProcessUpdate {
                    status: Some("COMPLETED".into()),
                    info: Some(org_info(&info_sub, "VALIDATED")),
                    ..Default::default()
                },
                now,
            )
            .await?;
        if let Some(mut s) =
            sub.filter(|s| s.deleted_at.is_none() && s.org_process_id == Some(approved.process_id))
        {
            self.apply_approval(&mut tx, &mut s, &approved).await?;
            s.updated_at = Some(now);
            self.db().save_subscription(&mut tx, &s).await?;
            self.notify_sub(
                &mut tx,
                &s,
                "ORGANIZATION_VALIDATION_APPROVED",
                format!(
                    "The organisation validation of ACME subscription {} was approved; valid until {}",
                    s.id,
                    format_rtr(valid_until)
                ),
                Some(approved.process_id),
                format!("sub:{}:org-approved:{}", s.id, approved.process_id),
            )
            .await?;
            line = format!("{line}: subscription {} {}", s.id, s.status);
        }
        self.db()
            .audit(
                &mut tx,
                now,
                "operator",
                Some(approved.customer_id),
                "validation.approve",
                &id.to_string(),
                "",
            )
            .await?;
        tx.commit().await?;
        Ok(line)
    }

    /// Operator rejection: the process FAILS with the reason; the
    /// subscription stays pending until an update starts a new validation.
    pub async fn reject_org_validation(&self, id: i64, reason: &str) -> Result<String, AppError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(AppError::constraint("reason", "must not be empty", None));
        }
        if self.is_certificate_org_validation(id).await? {
            self.decide_certificate_org_validation(id, false, Some(reason))
                .await?;
            return Ok(format!(
                "validation {id} REJECTED (certificate request failed: {reason})"
            ));
        }
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let v = self.pending_validation(&mut tx, id).await?;
        self.db()
            .decide_org_validation(&mut tx, id, "REJECTED", Some(reason), now, None)
            .await?;
        let sub = match v.subscription_id {
            Some(sid) => self.db().subscription_for_update(&mut tx, sid).await?,
            None => None,
        };
        let info_sub = sub.clone().unwrap_or_default();
        self.db()
            .update_process(
                &mut tx,
                v.process_id,
                &ProcessUpdate {
                    status: Some("FAILED".into()),
                    status_detail: Some(reason.to_string()),
                    info: Some(org_info(&info_sub, "ATTENTION")),
                    ..Default::default()
                },
                now,
            )
            .await?;
        let mut line = format!("validation {id} REJECTED ({reason})");
        if let Some(mut s) =
            sub.filter(|s| s.deleted_at.is_none() && s.org_process_id == Some(v.process_id))
        {
            if org(&s) == OrgState::Pending {
                let t = term(&s);
                set_states(&mut s, t, OrgState::Rejected);
                s.updated_at = Some(now);
                self.db().save_subscription(&mut tx, &s).await?;
            }
            self.notify_sub(
                &mut tx,
                &s,
                "ORGANIZATION_VALIDATION_REJECTED",
                format!(
                    "The organisation validation of ACME subscription {} was rejected: {reason}",
                    s.id
                ),
                Some(v.process_id),
                format!("sub:{}:org-rejected:{}", s.id, v.process_id),
            )
            .await?;
            line = format!("{line}: subscription {} {}", s.id, s.status);
        }
        self.db()
            .audit(
                &mut tx,
                now,
                "operator",
                Some(v.customer_id),
                "validation.reject",
                &id.to_string(),
                reason,
            )
            .await?;
        tx.commit().await?;
        Ok(line)
    }

    /// Organisation validations started by a REST certificate request (no
    /// subscription, a `certificate` process) are decided by that feature.
    async fn is_certificate_org_validation(&self, id: i64) -> Result<bool, AppError> {
        let mut tx = self.db().begin().await?;
        let v = self.db().org_validation_for_update(&mut tx, id).await?;
        let result = match v {
            Some(v) if v.subscription_id.is_none() => self
                .db()
                .process_tx(&mut tx, v.process_id)
                .await?
                .is_some_and(|p| p.process_type == "certificate"),
            _ => false,
        };
        tx.rollback().await?;
        Ok(result)
    }

    async fn pending_validation(&self, tx: &mut Tx, id: i64) -> Result<OrgValidation, AppError> {
        let v = self
            .db()
            .org_validation_for_update(tx, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("validation {id} does not exist")))?;
        if v.status != "PENDING" {
            return Err(AppError::StatusProhibits(format!(
                "validation {id} is {}",
                v.status
            )));
        }
        Ok(v)
    }

    // ------------------------------------------------------------ helpers

    async fn new_process(
        &self,
        tx: &mut Tx,
        s: &Subscription,
        user: &str,
        action: &str,
        command: &Value,
    ) -> Result<i64, AppError> {
        let id_text = s.id.to_string();
        Ok(self
            .db()
            .insert_process(
                tx,
                &NewProcess {
                    customer_id: s.customer_id,
                    customer: &s.customer,
                    user,
                    process_type: PROCESS_TYPE,
                    action,
                    identifier: &id_text,
                    status: "RUNNING",
                    command,
                    subject_id: Some(s.id),
                },
                self.now(),
            )
            .await?)
    }

    async fn complete_process(
        &self,
        tx: &mut Tx,
        pid: i64,
        s: &Subscription,
        transaction: Option<Value>,
        refund: Option<Value>,
    ) -> Result<(), AppError> {
        let upd = ProcessUpdate {
            status: Some("COMPLETED".into()),
            info: Some(plain_info(s)),
            transaction,
            refund,
            ..Default::default()
        };
        self.db().update_process(tx, pid, &upd, self.now()).await?;
        Ok(())
    }

    /// Charges one billable on the process and completes it. Fails with
    /// `InsufficientCredit` before writing anything.
    async fn charge_process(
        &self,
        tx: &mut Tx,
        s: &Subscription,
        pid: i64,
        action: &str,
        billable: &Billable,
    ) -> Result<(), AppError> {
        let currency = self.customer_currency(s).await?;
        let id_text = s.id.to_string();
        let r = LedgerRef {
            customer_id: s.customer_id,
            customer: &s.customer,
            process_id: pid,
            process_type: PROCESS_TYPE,
            process_identifier: &id_text,
            process_action: action,
            subject_id: Some(s.id),
        };
        self.db()
            .charge(
                tx,
                &r,
                &currency,
                std::slice::from_ref(billable),
                self.now(),
            )
            .await?;
        let upd = ProcessUpdate {
            status: Some("COMPLETED".into()),
            info: Some(plain_info(s)),
            transaction: (billable.total > 0).then(|| money_map(&currency, billable.total)),
            billables: Some(json!([billable])),
            ..Default::default()
        };
        self.db().update_process(tx, pid, &upd, self.now()).await?;
        Ok(())
    }

    async fn customer_currency(&self, s: &Subscription) -> Result<String, AppError> {
        self.db()
            .customer_by_id(s.customer_id)
            .await?
            .map(|c| c.currency)
            .ok_or_else(|| {
                AppError::Internal(format!(
                    "customer {} of subscription {} is missing",
                    s.customer_id, s.id
                ))
            })
    }

    /// Adds paid months, reactivates the term and moves the term jobs.
    async fn extend(&self, tx: &mut Tx, s: &mut Subscription, months: i64) -> Result<(), AppError> {
        let now = self.now();
        s.months_paid += months;
        s.expiry_date = rules::expiry(s.created_at, s.months_paid);
        let o = org(s);
        set_states(s, TermState::Active, o);
        s.updated_at = Some(now);
        for kind in ["sub.expire", "sub.expiring", "sub.revoke"] {
            self.db().cancel_jobs(tx, kind, s.id, now).await?;
        }
        self.schedule_term_jobs(tx, s).await?;
        self.db().save_subscription(tx, s).await?;
        Ok(())
    }

    async fn schedule_term_jobs(&self, tx: &mut Tx, s: &Subscription) -> Result<(), AppError> {
        let now = self.now();
        self.db()
            .schedule_job(tx, "sub.expire", s.id, s.expiry_date)
            .await?;
        for (_, at) in rules::expiring_notices(s.expiry_date) {
            if at > now {
                self.db().schedule_job(tx, "sub.expiring", s.id, at).await?;
            }
        }
        Ok(())
    }

    /// For a subscription whose organisation needs a (new) decision: reuse a
    /// live approval of the same organisation, else start a validation.
    async fn settle_organisation(
        &self,
        tx: &mut Tx,
        s: &mut Subscription,
        user: &str,
    ) -> Result<(), AppError> {
        let Some(ident) = identity(s) else {
            return Err(AppError::Internal(format!(
                "subscription {} has no organisation",
                s.id
            )));
        };
        let now = self.now();
        match self
            .db()
            .reusable_org_validation(tx, s.customer_id, &ident.key(), now)
            .await?
        {
            Some(v) => {
                self.cancel_pending_validations(tx, s).await?;
                self.apply_approval(tx, s, &v).await
            }
            None => {
                let t = term(s);
                set_states(s, t, OrgState::Pending);
                self.start_org_validation(tx, s, user).await?;
                Ok(())
            }
        }
    }

    /// Makes `v` the subscription's approved organisation and schedules
    /// revalidation and lapse.
    async fn apply_approval(
        &self,
        tx: &mut Tx,
        s: &mut Subscription,
        v: &OrgValidation,
    ) -> Result<(), AppError> {
        let until = v
            .valid_until
            .unwrap_or_else(|| rules::org_valid_until(v.decided_at.unwrap_or(v.created_at)));
        let t = term(s);
        set_states(s, t, OrgState::Validated);
        s.org_valid_until = Some(until);
        s.approved_organization = Some(v.organization.clone());
        s.approved_country = Some(v.country.clone());
        s.approved_state = v.state.clone();
        s.approved_city = v.city.clone();
        let now = self.now();
        for kind in ["sub.org_revalidate", "sub.org_lapse"] {
            self.db().cancel_jobs(tx, kind, s.id, now).await?;
        }
        self.db()
            .schedule_job(
                tx,
                "sub.org_revalidate",
                s.id,
                rules::revalidation_at(until),
            )
            .await?;
        self.db()
            .schedule_job(tx, "sub.org_lapse", s.id, until)
            .await?;
        Ok(())
    }

    /// Starts a validateOrganization process for the subscription's current
    /// organisation data (superseding any pending one) and notifies.
    async fn start_org_validation(
        &self,
        tx: &mut Tx,
        s: &mut Subscription,
        user: &str,
    ) -> Result<i64, AppError> {
        let Some(ident) = identity(s) else {
            return Err(AppError::Internal(format!(
                "subscription {} has no organisation",
                s.id
            )));
        };
        self.cancel_pending_validations(tx, s).await?;
        let now = self.now();
        let command = json!({
            "organization": s.organization, "country": s.country, "state": s.state, "city": s.city,
            "address": s.address, "postalCode": s.postal_code,
        });
        let pid = self
            .new_process(tx, s, user, "validateOrganization", &command)
            .await?;
        self.db()
            .update_process(
                tx,
                pid,
                &ProcessUpdate {
                    info: Some(org_info(s, "WAITING")),
                    resume_types: Some(json!([])),
                    ..Default::default()
                },
                now,
            )
            .await?;
        self.db()
            .insert_org_validation(
                tx,
                &OrgValidation {
                    customer_id: s.customer_id,
                    subscription_id: Some(s.id),
                    process_id: pid,
                    org_key: ident.key(),
                    organization: ident.organization,
                    country: ident.country,
                    state: ident.state,
                    city: ident.city,
                    address: s.address.clone(),
                    postal_code: s.postal_code.clone(),
                    status: "PENDING".into(),
                    created_at: now,
                    ..Default::default()
                },
            )
            .await?;
        s.org_process_id = Some(pid);
        self.notify_sub(
            tx,
            s,
            "ORGANIZATION_VALIDATION_NEEDED",
            format!(
                "ACME subscription {} needs an organisation validation (process {pid})",
                s.id
            ),
            Some(pid),
            format!("sub:{}:org-needed:{pid}", s.id),
        )
        .await?;
        Ok(pid)
    }

    async fn cancel_pending_validations(
        &self,
        tx: &mut Tx,
        s: &Subscription,
    ) -> Result<(), AppError> {
        let now = self.now();
        for v in self.db().pending_org_validations(tx, s.id).await? {
            self.db()
                .decide_org_validation(tx, v.id, "CANCELLED", None, now, None)
                .await?;
            let upd = ProcessUpdate {
                status: Some("CANCELLED".into()),
                ..Default::default()
            };
            self.db()
                .update_process(tx, v.process_id, &upd, now)
                .await?;
        }
        Ok(())
    }

    async fn notify_sub(
        &self,
        tx: &mut Tx,
        s: &Subscription,
        event_type: &'static str,
        message: String,
        process_id: Option<i64>,
        dedupe_key: String,
    ) -> Result<(), AppError> {
        self.notify(
            tx,
            Notice {
                customer_id: s.customer_id,
                event_type,
                message,
                process_id,
                process_type: Some(PROCESS_TYPE.into()),
                process_identifier: Some(s.id.to_string()),
                product: Some(s.product.clone()),
                expiry_date: Some(s.expiry_date),
                payload: Some(json!({"acmeSubscriptionId": s.id, "status": s.status})),
                dedupe_key: Some(dedupe_key),
                ..Default::default()
            },
        )
        .await
    }
}

// ---------------------------------------------------------------- lifecycle

/// Runs one due lifecycle job of kind `sub.*`. Returns a line describing the
/// change for `certhub lifecycle run`, or None when nothing changed.
pub async fn run_job(app: &App, job: &Job) -> Result<Option<String>, AppError> {
    let mut tx = app.db().begin().await?;
    // Finishing first serialises overlapping runs on the job row: the loser
    // finds it done and rolls back without a change.
    if !app.db().finish_job(&mut tx, job.id, app.now()).await? {
        return Ok(None);
    }
    let Some(mut s) = app
        .db()
        .subscription_for_update(&mut tx, job.subject_id)
        .await?
    else {
        tx.commit().await?;
        return Ok(None);
    };
    if s.deleted_at.is_some() {
        tx.commit().await?;
        return Ok(None);
    }
    let line = match job.kind.as_str() {
        "sub.expire" => job_expire(app, &mut tx, &mut s).await?,
        "sub.expiring" => job_expiring(app, &mut tx, &s, job).await?,
        "sub.revoke" => job_revoke(app, &mut tx, &mut s).await?,
        "sub.org_revalidate" => job_org_revalidate(app, &mut tx, &mut s, job).await?,
        "sub.org_lapse" => job_org_lapse(app, &mut tx, &mut s, job).await?,
        other => return Err(AppError::Internal(format!("unknown job kind {other}"))),
    };
    if let Some(l) = &line {
        app.db()
            .audit(
                &mut tx,
                app.now(),
                "lifecycle",
                Some(s.customer_id),
                &job.kind,
                &s.id.to_string(),
                l,
            )
            .await?;
    }
    tx.commit().await?;
    Ok(line)
}

async fn job_expire(
    app: &App,
    tx: &mut Tx,
    s: &mut Subscription,
) -> Result<Option<String>, AppError> {
    let now = app.now();
    // Stale: renewed since (later expiry) or no longer active.
    if term(s) != TermState::Active || now < s.expiry_date {
        return Ok(None);
    }
    let expired = s.expiry_date;
    let user = format!("{}/system", s.customer);
    let mut failure: Option<String> = None;
    if s.auto_renew {
        let pid = app
            .new_process(
                tx,
                s,
                &user,
                "renew",
                &json!({"period": s.period, "autoRenew": true}),
            )
            .await?;
        let currency = app.customer_currency(s).await?;
        let attempt = match app.db().product(&s.product).await? {
            Some(p) => app.billable(&p, "RENEW", s.period, 1, &currency).await,
            None => Err(AppError::Internal(format!(
                "product {} no longer exists",
                s.product
            ))),
        };
        let charged = match attempt {
            Ok(b) => app.charge_process(tx, s, pid, "renew", &b).await.map(|_| b),
            Err(e) => Err(e),
        };
        match charged {
            Ok(b) => {
                let period = s.period;
                app.extend(tx, s, period).await?;
                return Ok(Some(format!(
                    "subscription {} RENEWED until {} (auto-renew, {} {currency} cents)",
                    s.id,
                    format_rtr(s.expiry_date),
                    b.total
                )));
            }
            Err(AppError::InsufficientCredit(m)) | Err(AppError::Validation { message: m }) => {
                let upd = ProcessUpdate {
                    status: Some("FAILED".into()),
                    status_detail: Some(m.clone()),
                    info: Some(plain_info(s)),
                    ..Default::default()
                };
                app.db().update_process(tx, pid, &upd, now).await?;
                failure = Some(m);
            }
            Err(e) => return Err(e),
        }
    }
    let o = org(s);
    set_states(s, TermState::Suspended, o);
    s.updated_at = Some(now);
    app.db().save_subscription(tx, s).await?;
    app.db()
        .schedule_job(tx, "sub.revoke", s.id, rules::revocation_at(expired))
        .await?;
    let revoke_at = format_rtr(rules::revocation_at(expired));
    let (event, message) = match &failure {
        Some(m) => (
            "ACME_AUTORENEW_FAILED",
            format!(
                "Auto-renewal of ACME subscription {} failed ({m}); it is SUSPENDED and will be REVOKED on {revoke_at} unless renewed",
                s.id
            ),
        ),
        None => (
            "ACME_SUBSCRIPTION_SUSPENDED",
            format!(
                "ACME subscription {} expired and is SUSPENDED; it will be REVOKED on {revoke_at} unless renewed",
                s.id
            ),
        ),
    };
    app.notify_sub(
        tx,
        s,
        event,
        message,
        None,
        format!("sub:{}:suspended:{expired}", s.id),
    )
    .await?;
    Ok(Some(match failure {
        Some(m) => format!(
            "subscription {} SUSPENDED (auto-renew failed: {m}; expired {})",
            s.id,
            format_rtr(expired)
        ),
        None => format!(
            "subscription {} SUSPENDED (expired {})",
            s.id,
            format_rtr(expired)
        ),
    }))
}

async fn job_expiring(
    app: &App,
    tx: &mut Tx,
    s: &Subscription,
    job: &Job,
) -> Result<Option<String>, AppError> {
    let Some(days) = rules::expiring_notice_days(s.expiry_date, job.due_at) else {
        return Ok(None);
    };
    if term(s) != TermState::Active {
        return Ok(None);
    }
    if s.auto_renew {
        // Notify only when the renewal would fail for lack of credit.
        let currency = app.customer_currency(s).await?;
        let price = app
            .db()
            .price(&s.product, "RENEW", s.period, &currency)
            .await?
            .unwrap_or(0);
        let balance = app
            .db()
            .credit_accounts(s.customer_id)
            .await?
            .into_iter()
            .find(|a| a.currency == currency)
            .map(|a| a.balance)
            .unwrap_or(0);
        if balance >= price {
            return Ok(None);
        }
    }
    let why = if s.auto_renew {
        "auto-renewal lacks credit"
    } else {
        "auto-renew is off"
    };
    app.notify_sub(
        tx,
        s,
        "ACME_SUBSCRIPTION_EXPIRING",
        format!(
            "ACME subscription {} expires on {} ({why})",
            s.id,
            format_rtr(s.expiry_date)
        ),
        None,
        format!("sub:{}:expiring:{}:{days}", s.id, s.expiry_date),
    )
    .await?;
    Ok(Some(format!(
        "subscription {} EXPIRING in {days} days ({}; {why})",
        s.id,
        format_rtr(s.expiry_date)
    )))
}

async fn job_revoke(
    app: &App,
    tx: &mut Tx,
    s: &mut Subscription,
) -> Result<Option<String>, AppError> {
    let now = app.now();
    if term(s) != TermState::Suspended || now < rules::revocation_at(s.expiry_date) {
        return Ok(None);
    }
    let o = org(s);
    set_states(s, TermState::Revoked, o);
    s.updated_at = Some(now);
    app.db().save_subscription(tx, s).await?;
    app.notify_sub(
        tx,
        s,
        "ACME_SUBSCRIPTION_REVOKED",
        format!(
            "ACME subscription {} was not renewed within 30 days of expiry and is REVOKED",
            s.id
        ),
        None,
        format!("sub:{}:revoked", s.id),
    )
    .await?;
    Ok(Some(format!(
        "subscription {} REVOKED (expired {})",
        s.id,
        format_rtr(s.expiry_date)
    )))
}

async fn job_org_revalidate(
    app: &App,
    tx: &mut Tx,
    s: &mut Subscription,
    job: &Job,
) -> Result<Option<String>, AppError> {
    let current = s.org_valid_until.map(rules::revalidation_at) == Some(job.due_at);
    if !current || org(s) != OrgState::Validated || term(s) == TermState::Revoked {
        return Ok(None);
    }
    let user = format!("{}/system", s.customer);
    let pid = app.start_org_validation(tx, s, &user).await?;
    s.updated_at = Some(app.now());
    app.db().save_subscription(tx, s).await?;
    Ok(Some(format!(
        "subscription {} organisation revalidation started (process {pid}; orgValidUntil {})",
        s.id,
        s.org_valid_until.map(format_rtr).unwrap_or_default()
    )))
}

async fn job_org_lapse(
    app: &App,
    tx: &mut Tx,
    s: &mut Subscription,
    job: &Job,
) -> Result<Option<String>, AppError> {
    if s.org_valid_until != Some(job.due_at)
        || org(s) != OrgState::Validated
        || app.now() < job.due_at
    {
        return Ok(None);
    }
    // Pending if a validation is waiting, rejected if the last one failed;
    // without any, start one so the customer has something to complete.
    let latest = match s.org_process_id {
        Some(pid) => app.db().org_validation_by_process(tx, pid).await?,
        None => None,
    };
    let t = term(s);
    match latest.map(|v| v.status) {
        Some(st) if st == "PENDING" => set_states(s, t, OrgState::Pending),
        Some(st) if st == "REJECTED" => set_states(s, t, OrgState::Rejected),
        _ => {
            set_states(s, t, OrgState::Pending);
            let user = format!("{}/system", s.customer);
            app.start_org_validation(tx, s, &user).await?;
        }
    }
    s.updated_at = Some(app.now());
    app.db().save_subscription(tx, s).await?;
    app.notify_sub(
        tx,
        s,
        "ORGANIZATION_VALIDATION_NEEDED",
        format!(
            "The organisation validation of ACME subscription {} expired; certificates are blocked until process {} is completed",
            s.id,
            s.org_process_id.unwrap_or_default()
        ),
        s.org_process_id,
        format!("sub:{}:org-lapsed:{}", s.id, job.due_at),
    )
    .await?;
    Ok(Some(format!(
        "subscription {} {} (organisation validation expired {})",
        s.id,
        s.status,
        format_rtr(job.due_at)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eab_tokens_follow_the_rules() {
        for _ in 0..200 {
            let (t, b) = eab_token();
            assert!(rules::valid_eab_token(&t), "{t}");
            assert_eq!(URL_SAFE_NO_PAD.decode(&t).unwrap(), b);
        }
    }

    #[test]
    fn approver_rules() {
        let mut v = Violations::default();
        check_approver(
            &Approver {
                first_name: Some("Jan".into()),
                last_name: Some("Jansen".into()),
                job_title: None,
                email: Some("jan@example.com".into()),
                voice: Some("+31.201234567".into()),
            },
            &mut v,
        );
        assert!(v.0.is_empty());
        check_approver(
            &Approver {
                voice: Some("0201234567".into()),
                ..Default::default()
            },
            &mut v,
        );
        let fields: Vec<_> = v.0.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "approver.firstName",
                "approver.lastName",
                "approver.email",
                "approver.voice"
            ]
        );
    }

    #[test]
    fn approver_json_keeps_job_title() {
        let j = approver_json(&Some(Approver::default())).unwrap();
        assert!(j.contains("\"jobTitle\":null"), "{j}");
    }
}
