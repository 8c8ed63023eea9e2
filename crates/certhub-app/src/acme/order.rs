//! Orders and authorisations: newOrder (coverage, reuse, validity, ARI
//! `replaces`), reads, authorisation deactivation, challenges, finalize and
//! the certificate download.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certhub_ca::{OrgSubject, Profile, check_names, pem_encode, validity_window};
use certhub_domain::names::{base_name, is_wildcard, normalize_dns_name};
use certhub_domain::product::Product;
use certhub_domain::time::{DAY, parse_rfc3339};
use certhub_store::acme::{AcmeAuthz, AcmeOrder, AcmeSubscription};
use certhub_store::processes::NewProcess;
use certhub_store::sealed::random_bytes;
use serde::Deserialize;
use serde_json::json;

use super::{
    AccountCtx, CAA_RECHECK_AFTER, CHALLENGE_TYPES, CertRef, PENDING_LIFETIME, Problem,
    require_active,
};
use crate::App;
use crate::notify::Notice;
use crate::pki::IssueInput;

/// The newOrder payload (RFC 8555 §7.4, RFC 9773 `replaces`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrderRequest {
    pub identifiers: Vec<super::Identifier>,
    #[serde(default)]
    pub not_before: Option<String>,
    #[serde(default)]
    pub not_after: Option<String>,
    #[serde(default)]
    pub replaces: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
}

/// An order's status as clients see it: unfinished orders expire, and die
/// with their subscription.
pub fn order_status(o: &AcmeOrder, sub: &AcmeSubscription, now: i64) -> &'static str {
    let unfinished = matches!(o.status.as_str(), "pending" | "ready");
    if unfinished && (o.expires_at <= now || sub.deleted) {
        return "invalid";
    }
    match o.status.as_str() {
        "pending" => "pending",
        "ready" => "ready",
        "processing" => "processing",
        "valid" => "valid",
        _ => "invalid",
    }
}

/// An authorisation's status as clients see it (expiry applied).
pub fn authz_status(a: &AcmeAuthz, now: i64) -> &'static str {
    match a.status.as_str() {
        "pending" | "valid" if a.expires_at <= now => "expired",
        "pending" => "pending",
        "valid" => "valid",
        "deactivated" => "deactivated",
        "revoked" => "revoked",
        _ => "invalid",
    }
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Normalises and checks the requested identifiers against the product and
/// the subscription; every refused name is one subproblem.
fn check_identifiers(
    product: &Product,
    sub: &AcmeSubscription,
    req: &NewOrderRequest,
) -> Result<Vec<String>, Problem> {
    if req.identifiers.is_empty() {
        return Err(Problem::malformed("the order has no identifiers"));
    }
    let mut names: Vec<String> = Vec::with_capacity(req.identifiers.len());
    let mut subs = Vec::new();
    let mut unsupported = false;
    for id in &req.identifiers {
        if id.kind != "dns" {
            unsupported = true;
            subs.push(Problem::sub(
                "unsupportedIdentifier",
                &id.value,
                format!(
                    "identifier type {:?} is not supported; only \"dns\"",
                    id.kind
                ),
            ));
            continue;
        }
        match normalize_dns_name(&id.value) {
            Ok(n) if !product.coverage.covers(&sub.domain_names, &n) => subs.push(Problem::sub(
                "rejectedIdentifier",
                &id.value,
                format!("{n} is not covered by subscription {}", sub.id),
            )),
            Ok(n) => {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            Err(e) => subs.push(Problem::sub("rejectedIdentifier", &id.value, e.to_string())),
        }
    }
    if !subs.is_empty() {
        let (kind, what) = if unsupported && subs.len() == 1 {
            (
                "unsupportedIdentifier",
                "an identifier type is not supported",
            )
        } else {
            (
                "rejectedIdentifier",
                "the subscription does not allow some identifiers",
            )
        };
        let listed = subs
            .iter()
            .map(|s| s.identifier.value.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Problem::new(kind, 400, format!("{what}: {listed}")).with_subproblems(subs));
    }
    if let Some(max) = product.max_domains
        && names.len() as i64 > max
    {
        return Err(Problem::new(
            "rejectedIdentifier",
            400,
            format!("an order may have at most {max} names"),
        ));
    }
    Ok(names)
}

fn parse_time(field: &str, v: &Option<String>) -> Result<Option<i64>, Problem> {
    v.as_deref()
        .map(|s| {
            parse_rfc3339(s).ok_or_else(|| {
                Problem::malformed(format!("{field} {s:?} is not an RFC 3339 date-time"))
            })
        })
        .transpose()
}

impl App {
    /// newOrder: ACTIVE subscription, covered names, honoured validity,
    /// identical unfinished orders and live authorisations reused.
    pub async fn acme_new_order(
        &self,
        product: &Product,
        ctx: &AccountCtx,
        req: &NewOrderRequest,
        replaces: Option<&CertRef>,
    ) -> Result<AcmeOrder, Problem> {
        require_active(&ctx.sub)?;
        self.rate_limit(crate::ratelimit::Scope::NewOrder, &ctx.id().to_string())
            .await?;
        if let Some(p) = &req.profile {
            return Err(Problem::new(
                "invalidProfile",
                400,
                format!("profile {p:?} is not offered by this directory"),
            ));
        }
        let names = check_identifiers(product, &ctx.sub, req)?;
        self.check_failed_validations(ctx.id(), &names).await?;
        let now = self.now();
        let not_before = parse_time("notBefore", &req.not_before)?;
        let not_after = parse_time("notAfter", &req.not_after)?;
        if not_before.is_some() || not_after.is_some() {
            validity_window(now, not_before, not_after, product.max_validity_days)
                .map_err(|e| Problem::malformed(e.to_string()))?;
        }
        let replaces_cert_id = match (replaces, &req.replaces) {
            (Some(r), _) => Some(self.check_replaces(ctx, r).await?),
            (None, Some(s)) => {
                return Err(Problem::malformed(format!(
                    "replaces {s:?} is not a certificate of this CA"
                )));
            }
            (None, None) => None,
        };
        let mut sorted = names.clone();
        sorted.sort();
        let ident_key = sorted.join(",");

        let mut tx = self.db().begin().await?;
        let reusable = self
            .db()
            .acme_reusable_order(&mut tx, ctx.id(), &ident_key, now)
            .await?;
        if let Some(o) = reusable.into_iter().find(|o| {
            o.not_before == not_before && o.not_after == not_after && o.replaces == req.replaces
        }) {
            tx.rollback().await?;
            return Ok(o);
        }
        let bases: Vec<String> = names.iter().map(|n| base_name(n).to_string()).collect();
        let live = self
            .db()
            .acme_live_authzs(&mut tx, ctx.id(), &bases, now)
            .await?;
        let mut authz_ids = Vec::with_capacity(names.len());
        let mut all_valid = true;
        for n in &names {
            let (base, wildcard) = (base_name(n), is_wildcard(n));
            let same = |a: &&AcmeAuthz| a.identifier == base && a.wildcard == wildcard;
            let found = live
                .iter()
                .filter(same)
                .find(|a| a.status == "valid")
                .or_else(|| live.iter().filter(same).find(|a| a.status == "pending"));
            let id = match found {
                Some(a) => {
                    all_valid &= a.status == "valid";
                    a.id
                }
                None => {
                    all_valid = false;
                    let a = AcmeAuthz {
                        account_id: ctx.id(),
                        identifier: base.to_string(),
                        wildcard,
                        status: "pending".into(),
                        token: random_token(),
                        expires_at: now + PENDING_LIFETIME,
                        created_at: now,
                        ..Default::default()
                    };
                    self.db().acme_insert_authz(&mut tx, &a).await?
                }
            };
            authz_ids.push(id);
        }
        let mut order = AcmeOrder {
            id: 0,
            account_id: ctx.id(),
            subscription_id: ctx.sub.id,
            status: if all_valid { "ready" } else { "pending" }.into(),
            identifiers: names,
            ident_key,
            authz_ids,
            not_before,
            not_after,
            replaces: req.replaces.clone(),
            replaces_cert_id,
            expires_at: now + PENDING_LIFETIME,
            error: None,
            certificate_id: None,
            created_at: now,
            updated_at: now,
        };
        order.id = self.db().acme_insert_order(&mut tx, &order).await?;
        tx.commit().await?;
        crate::metrics::ACME_ORDERS.inc();
        Ok(order)
    }

    /// RFC 9773 §5: `replaces` must name a not-yet-replaced certificate of this account.
    async fn check_replaces(&self, ctx: &AccountCtx, r: &CertRef) -> Result<i64, Problem> {
        let facts = self
            .db()
            .acme_ari_facts(&r.issuer_id, &r.serial_hex)
            .await?
            .ok_or_else(|| {
                Problem::malformed(format!(
                    "replaces: no certificate {} was issued here",
                    r.cert_id
                ))
            })?;
        if facts.acme_account_id != Some(ctx.id()) {
            return Err(Problem::malformed(format!(
                "replaces: certificate {} was not issued to this account",
                r.cert_id
            )));
        }
        if facts.replaced_by.is_some() {
            return Err(Problem::new(
                "alreadyReplaced",
                409,
                format!("certificate {} was already replaced", r.cert_id),
            ));
        }
        Ok(facts.certificate_id)
    }

    /// An order of the account.
    pub async fn acme_order(&self, ctx: &AccountCtx, id: i64) -> Result<AcmeOrder, Problem> {
        let o = self
            .db()
            .acme_order(id)
            .await?
            .ok_or_else(|| Problem::not_found(format!("order {id} does not exist")))?;
        if o.account_id != ctx.id() {
            return Err(Problem::forbidden(format!(
                "order {id} belongs to another account"
            )));
        }
        if o.status != "pending" {
            return Ok(o);
        }
        // A pending order is settled from its authorisations, so an order
        // created while one of them was being validated never stays pending.
        let now = self.now();
        let authzs = self.db().acme_authzs(&o.authz_ids).await?;
        let statuses: Vec<&str> = authzs.iter().map(|a| authz_status(a, now)).collect();
        let status =
            if statuses.len() == o.authz_ids.len() && statuses.iter().all(|s| *s == "valid") {
                "ready"
            } else if statuses.iter().any(|s| !matches!(*s, "pending" | "valid")) {
                "invalid"
            } else {
                "pending"
            };
        let error = match status {
            "invalid" => authzs.iter().find_map(|a| a.chall_error.clone()),
            _ => None,
        };
        Ok(AcmeOrder {
            status: status.into(),
            error: o.error.or(error),
            ..o
        })
    }

    /// One page of the account's order ids, and whether more follow.
    pub async fn acme_order_page(
        &self,
        ctx: &AccountCtx,
        after: i64,
    ) -> Result<(Vec<i64>, bool), Problem> {
        let mut ids = self
            .db()
            .acme_order_ids(ctx.id(), after, super::ORDERS_PAGE + 1)
            .await?;
        let more = ids.len() as i64 > super::ORDERS_PAGE;
        ids.truncate(super::ORDERS_PAGE as usize);
        Ok((ids, more))
    }

    /// An authorisation of the account.
    pub async fn acme_authz(&self, ctx: &AccountCtx, id: i64) -> Result<AcmeAuthz, Problem> {
        let a = self
            .db()
            .acme_authz(id)
            .await?
            .ok_or_else(|| Problem::not_found(format!("authorization {id} does not exist")))?;
        if a.account_id != ctx.id() {
            return Err(Problem::forbidden(format!(
                "authorization {id} belongs to another account"
            )));
        }
        Ok(a)
    }

    /// Deactivates a pending or valid authorisation (RFC 8555 §7.5.2).
    pub async fn acme_deactivate_authz(
        &self,
        ctx: &AccountCtx,
        id: i64,
    ) -> Result<AcmeAuthz, Problem> {
        let a = self.acme_authz(ctx, id).await?;
        let now = self.now();
        if !matches!(authz_status(&a, now), "pending" | "valid") {
            return Err(Problem::malformed(format!(
                "authorization {id} is {} and cannot be deactivated",
                authz_status(&a, now)
            )));
        }
        self.db().acme_deactivate_authz(id, now).await?;
        Ok(AcmeAuthz {
            status: "deactivated".into(),
            ..a
        })
    }

    /// A challenge POST: starts validation of a pending authorisation (once)
    /// and returns it as it stands after at most `answer_wait`; otherwise
    /// returns the authorisation unchanged.
    pub async fn acme_challenge(
        &self,
        ctx: &AccountCtx,
        urls: &super::Urls,
        authz_id: i64,
        kind: &str,
        respond: bool,
    ) -> Result<AcmeAuthz, Problem> {
        let a = self.acme_authz(ctx, authz_id).await?;
        let offered = if a.wildcard {
            kind == "dns-01"
        } else {
            CHALLENGE_TYPES.contains(&kind)
        };
        if !offered {
            return Err(Problem::not_found(format!(
                "authorization {authz_id} has no {kind} challenge"
            )));
        }
        let now = self.now();
        if !respond || authz_status(&a, now) != "pending" || a.chall_type.is_some() {
            return Ok(a);
        }
        if !self
            .db()
            .acme_start_challenge(authz_id, kind, now + super::VALIDATION_RETRY_AFTER)
            .await?
        {
            // Someone else started it in between: show what is there now.
            return self.acme_authz(ctx, authz_id).await;
        }
        let started = AcmeAuthz {
            chall_type: Some(kind.to_string()),
            chall_status: Some("processing".into()),
            ..a
        };
        let app = self.clone();
        let (job, jwk, account_url) = (started.clone(), ctx.jwk.clone(), urls.account(ctx.id()));
        // The validation runs on its own task, so it finishes (and records
        // its result) even if this request is abandoned. A prompt one is
        // awaited: the response then carries the result, which spares the
        // client a polling round (lego returns at once on `valid`, and
        // otherwise sleeps Retry-After before its first poll).
        let validation =
            tokio::spawn(async move { super::validate::run(app, job, jwk, account_url).await });
        let wait = self.va().config().answer_wait;
        if wait.is_zero() || tokio::time::timeout(wait, validation).await.is_err() {
            return Ok(started);
        }
        self.acme_authz(ctx, authz_id).await
    }

    /// finalize: ACTIVE subscription, ready order, CSR names equal to the
    /// order's; issues synchronously in one transaction.
    pub async fn acme_finalize(
        &self,
        product: &Product,
        ctx: &AccountCtx,
        urls: &super::Urls,
        order_id: i64,
        csr_der: &[u8],
    ) -> Result<AcmeOrder, Problem> {
        let order = self.acme_order(ctx, order_id).await?;
        let now = self.now();
        let status = order_status(&order, &ctx.sub, now);
        if status != "ready" {
            return Err(Problem::order_not_ready(format!(
                "order {order_id} is {status}, not ready"
            )));
        }
        require_active(&ctx.sub)?;
        let authzs = self.db().acme_authzs(&order.authz_ids).await?;
        if authzs.len() != order.authz_ids.len()
            || authzs.iter().any(|a| authz_status(a, now) != "valid")
        {
            return Err(Problem::order_not_ready(format!(
                "an authorization of order {order_id} is no longer valid; create a new order"
            )));
        }
        self.recheck_caa(&authzs, urls.account(ctx.id()), now)
            .await?;
        let csr = self.parse_csr(csr_der).await?;
        check_names(&csr.names, &order.identifiers).map_err(|e| Problem::bad_csr(e.detail))?;
        let profile = profile_for(product, &ctx.sub)?;

        let mut tx = self.db().begin().await?;
        let locked = self
            .db()
            .acme_order_for_update(&mut tx, order_id)
            .await?
            .ok_or_else(|| Problem::not_found(format!("order {order_id} does not exist")))?;
        if !matches!(locked.status.as_str(), "ready" | "pending") {
            return Err(Problem::order_not_ready(format!(
                "order {order_id} is {}, not ready",
                locked.status
            )));
        }
        let first = order.identifiers.first().cloned().unwrap_or_default();
        let user = format!("{}/acme-account-{}", ctx.sub.customer, ctx.id());
        let command = json!({
            "subscription": ctx.sub.id, "acmeAccount": ctx.id(), "acmeOrder": order_id, "domainNames": order.identifiers,
        });
        let process_id = self
            .db()
            .insert_process(
                &mut tx,
                &NewProcess {
                    customer_id: ctx.sub.customer_id,
                    customer: &ctx.sub.customer,
                    user: &user,
                    process_type: "acmeSubscription",
                    action: "issue",
                    identifier: &first,
                    status: "COMPLETED",
                    command: &command,
                    subject_id: Some(ctx.sub.id),
                },
                now,
            )
            .await?;
        let org = match &profile {
            Profile::Ov(o) => Some(o.clone()),
            _ => None,
        };
        let input = IssueInput {
            customer_id: ctx.sub.customer_id,
            process_id,
            product: product.product.clone(),
            validation_type: product.validation_type.clone(),
            certificate_type: "ACME_SUBSCRIPTION".into(),
            profile,
            names: order.identifiers.clone(),
            csr_pem: Some(pem_encode("CERTIFICATE REQUEST", &csr.der)),
            csr,
            not_before: order.not_before,
            not_after: order.not_after,
            max_days: product.max_validity_days,
            subscription_id: Some(ctx.sub.id),
            subscription_end_date: Some(ctx.sub.expiry_date),
            acme_account_id: Some(ctx.id()),
            acme_order_id: Some(order_id),
            organization: org.as_ref().map(|o| o.organization.clone()),
            country: org.as_ref().map(|o| o.country.clone()),
            state: org.as_ref().and_then(|o| o.state.clone()),
            city: org.as_ref().and_then(|o| o.locality.clone()),
        };
        let (cert, _) = self.issue_in_tx(&mut tx, &input).await?;
        self.db()
            .acme_set_order(&mut tx, order_id, "valid", None, Some(cert.id), now)
            .await?;
        if let Some(old) = order.replaces_cert_id {
            self.db().acme_mark_replaced(&mut tx, old, cert.id).await?;
        }
        self.notify(
            &mut tx,
            Notice {
                customer_id: ctx.sub.customer_id,
                event_type: "CERTIFICATE_ISSUED",
                message: format!(
                    "certificate {} issued for {} (ACME subscription {})",
                    cert.id, first, ctx.sub.id
                ),
                process_id: Some(process_id),
                process_type: Some("acmeSubscription".into()),
                process_identifier: Some(first.clone()),
                certificate_id: Some(cert.id),
                product: Some(product.product.clone()),
                expiry_date: Some(cert.expiry_date),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            order = order_id,
            certificate = cert.id,
            subscription = ctx.sub.id,
            "ACME certificate issued"
        );
        Ok(AcmeOrder {
            status: "valid".into(),
            certificate_id: Some(cert.id),
            updated_at: now,
            ..order
        })
    }

    /// CAA again at signing when the validation is older than 8 hours.
    async fn recheck_caa(
        &self,
        authzs: &[AcmeAuthz],
        account_url: String,
        now: i64,
    ) -> Result<(), Problem> {
        let identities = super::caa_identities(&self.settings().public_url);
        let mut subs = Vec::new();
        for a in authzs
            .iter()
            .filter(|a| a.validated_at.is_none_or(|v| now - v > CAA_RECHECK_AFTER))
        {
            let method = a.chall_type.as_deref().unwrap_or("dns-01");
            if let Err(e) = self
                .va()
                .check_caa(
                    &a.identifier,
                    a.wildcard,
                    &identities,
                    Some(&account_url),
                    method,
                )
                .await
            {
                subs.push(Problem::sub(e.acme_type(), &a.identifier, e.detail));
            }
        }
        if subs.is_empty() {
            return Ok(());
        }
        Err(
            Problem::new("caa", 403, "CAA records forbid issuance for some names")
                .with_subproblems(subs),
        )
    }

    /// The PEM chain of a certificate the account ordered.
    pub async fn acme_certificate_chain(
        &self,
        ctx: &AccountCtx,
        id: i64,
    ) -> Result<String, Problem> {
        let c = self
            .db()
            .certificate(None, id)
            .await?
            .filter(|c| c.acme_account_id == Some(ctx.id()))
            .ok_or_else(|| Problem::not_found(format!("certificate {id} does not exist")))?;
        match c.chain_pem {
            Some(p) => Ok(p),
            None => Ok(pem_encode("CERTIFICATE", &c.certificate_der)),
        }
    }
}

/// DV, or OV with the subscription's approved organisation snapshot.
fn profile_for(product: &Product, sub: &AcmeSubscription) -> Result<Profile, Problem> {
    if !product.is_ov() {
        return Ok(Profile::Dv);
    }
    match (&sub.approved_organization, &sub.approved_country) {
        (Some(o), Some(c)) => Ok(Profile::Ov(OrgSubject {
            organization: o.clone(),
            country: c.clone(),
            state: sub.approved_state.clone(),
            locality: sub.approved_city.clone(),
        })),
        _ => Err(Problem::forbidden(format!(
            "subscription {} has no approved organisation: complete the organisation validation",
            sub.id
        ))),
    }
}

/// Lifetime of a valid authorisation.
pub(crate) fn valid_authz_secs(reuse_days: u32) -> i64 {
    i64::from(reuse_days.max(1)) * DAY
}

#[cfg(test)]
mod tests {
    use super::*;
    use certhub_domain::names::Coverage;

    fn product(coverage: Coverage) -> Product {
        let (mut list, _) = certhub_domain::product::default_catalogue();
        let mut p = list.remove(0);
        p.coverage = coverage;
        p
    }

    fn req(names: &[&str]) -> NewOrderRequest {
        NewOrderRequest {
            identifiers: names
                .iter()
                .map(|n| super::super::Identifier::dns(n))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn identifiers_are_normalised_and_covered() {
        let sub = AcmeSubscription {
            id: 3,
            domain_names: vec!["example.com".into(), "*.example.com".into()],
            ..Default::default()
        };
        let p = product(Coverage::Exact);
        assert_eq!(
            check_identifiers(
                &p,
                &sub,
                &req(&["Example.COM.", "*.example.com", "example.com"])
            )
            .unwrap(),
            vec!["example.com", "*.example.com"]
        );
        let e = check_identifiers(
            &p,
            &sub,
            &req(&["www.example.com", "bad_name.example.com", "example.com"]),
        )
        .unwrap_err();
        assert_eq!(e.short_type(), "rejectedIdentifier");
        assert_eq!(e.subproblems.len(), 2);
        assert!(
            check_identifiers(
                &product(Coverage::Subdomains),
                &sub,
                &req(&["www.example.com"])
            )
            .is_ok()
        );
        let mut ip = req(&["1.2.3.4"]);
        ip.identifiers[0].kind = "ip".into();
        assert_eq!(
            check_identifiers(&p, &sub, &ip).unwrap_err().short_type(),
            "unsupportedIdentifier"
        );
        assert_eq!(
            check_identifiers(&p, &sub, &req(&[]))
                .unwrap_err()
                .short_type(),
            "malformed"
        );
    }

    #[test]
    fn statuses_apply_expiry() {
        let sub = AcmeSubscription::default();
        let o = AcmeOrder {
            status: "pending".into(),
            expires_at: 100,
            ..Default::default()
        };
        assert_eq!(order_status(&o, &sub, 50), "pending");
        assert_eq!(order_status(&o, &sub, 100), "invalid");
        let gone = AcmeSubscription {
            deleted: true,
            ..Default::default()
        };
        assert_eq!(order_status(&o, &gone, 50), "invalid");
        let a = AcmeAuthz {
            status: "valid".into(),
            expires_at: 100,
            ..Default::default()
        };
        assert_eq!(authz_status(&a, 50), "valid");
        assert_eq!(authz_status(&a, 100), "expired");
    }
}
