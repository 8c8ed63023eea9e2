//! ACME use cases (RFC 8555, RFC 9773): accounts bound to subscriptions by
//! External Account Binding, orders, authorisations and challenges, finalize,
//! revocation and renewal information. The HTTP layer (`certhub-acme`)
//! verifies the JWS and renders what these functions return; every error is
//! a [`Problem`].

mod account;
mod ari;
mod nonce;
mod order;
mod problem;
mod revoke;
mod validate;

use certhub_domain::time::DAY;
use certhub_jose::Jwk;
use certhub_store::jobs::Job;

pub use account::{NewAccountRequest, eab_kid};
pub use ari::{CertRef, ari_window, parse_cert_id};
pub use certhub_store::acme::{AcmeAccount, AcmeAuthz, AcmeOrder, AcmeSubscription};
pub use nonce::{NONCE_TTL, Nonces};
pub use order::{NewOrderRequest, authz_status, order_status};
pub use problem::{Identifier, Problem, SubProblem};
pub use revoke::Revoker;

use crate::{App, AppError};

/// How long a new authorisation and a new order may stay pending.
pub const PENDING_LIFETIME: i64 = 7 * DAY;
/// Challenge types offered for a non-wildcard name (wildcards: dns-01 only).
pub const CHALLENGE_TYPES: [&str; 3] = ["http-01", "dns-01", "tls-alpn-01"];
/// Orders per page of an account's orders list.
pub const ORDERS_PAGE: i64 = 50;
/// Seconds after which finalize checks CAA again (design.md "CAA").
pub const CAA_RECHECK_AFTER: i64 = 8 * 3600;

/// Seconds after a challenge POST at which another node re-runs a
/// validation that has not finished (its node died): a few VA timeouts.
pub const VALIDATION_RETRY_AFTER: i64 = 60;

/// Runs one due lifecycle job of kind `acme.*`.
pub async fn run_job(app: &App, job: &Job) -> Result<Option<String>, AppError> {
    match job.kind.as_str() {
        certhub_store::acme::ACME_VALIDATE_JOB => rerun_validation(app, job).await,
        other => Err(AppError::Internal(format!("unknown job kind {other}"))),
    }
}

/// The validation started by a challenge POST did not record a result in
/// time (its node died mid-way): run it here. Recording the result finishes
/// the job; the first result wins if the original is merely slow.
async fn rerun_validation(app: &App, job: &Job) -> Result<Option<String>, AppError> {
    let authz = app.db().acme_authz(job.subject_id).await?;
    let account = match &authz {
        Some(a) if a.status == "pending" && a.chall_status.as_deref() == Some("processing") => {
            app.db().acme_account(a.account_id).await?
        }
        _ => None,
    };
    let (Some(authz), Some((account, sub))) = (authz, account) else {
        // Finished meanwhile (or gone): nothing to validate.
        let mut tx = app.db().begin().await?;
        app.db().finish_job(&mut tx, job.id, app.now()).await?;
        tx.commit().await?;
        return Ok(None);
    };
    let ctx = AccountCtx::from_rows(account, sub).map_err(|p| AppError::Internal(p.detail))?;
    let url = Urls::new(&app.settings().public_url, &ctx.account.product).account(ctx.id());
    let id = authz.id;
    validate::run(app.clone(), authz, ctx.jwk, url).await;
    Ok(Some(format!(
        "authorization {id} validated again (its node stopped)"
    )))
}

/// Every URL of one product's ACME directory: `{public_url}/acme/{product}/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    pub base: String,
}

impl Urls {
    pub fn new(public_url: &str, product: &str) -> Urls {
        Urls {
            base: format!("{}/acme/{product}", public_url.trim_end_matches('/')),
        }
    }
    pub fn directory(&self) -> String {
        format!("{}/directory", self.base)
    }
    pub fn new_nonce(&self) -> String {
        format!("{}/new-nonce", self.base)
    }
    pub fn new_account(&self) -> String {
        format!("{}/new-account", self.base)
    }
    pub fn new_order(&self) -> String {
        format!("{}/new-order", self.base)
    }
    pub fn revoke_cert(&self) -> String {
        format!("{}/revoke-cert", self.base)
    }
    pub fn key_change(&self) -> String {
        format!("{}/key-change", self.base)
    }
    pub fn renewal_info(&self) -> String {
        format!("{}/renewal-info", self.base)
    }
    pub fn terms(&self) -> String {
        format!("{}/terms", self.base)
    }
    pub fn account(&self, id: i64) -> String {
        format!("{}/acct/{id}", self.base)
    }
    pub fn orders(&self, account: i64) -> String {
        format!("{}/acct/{account}/orders", self.base)
    }
    pub fn order(&self, id: i64) -> String {
        format!("{}/order/{id}", self.base)
    }
    pub fn finalize(&self, id: i64) -> String {
        format!("{}/order/{id}/finalize", self.base)
    }
    pub fn authz(&self, id: i64) -> String {
        format!("{}/authz/{id}", self.base)
    }
    pub fn challenge(&self, authz: i64, kind: &str) -> String {
        format!("{}/chall/{authz}/{kind}", self.base)
    }
    pub fn certificate(&self, id: i64) -> String {
        format!("{}/cert/{id}", self.base)
    }

    /// The account id named by a `kid`, if it is an account URL of this directory.
    pub fn account_id(&self, kid: &str) -> Option<i64> {
        let rest = kid.strip_prefix(&self.base)?.strip_prefix("/acct/")?;
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) || rest.starts_with('0') {
            return None;
        }
        rest.parse().ok()
    }
}

/// An authenticated account with its subscription and parsed key.
#[derive(Debug, Clone)]
pub struct AccountCtx {
    pub account: AcmeAccount,
    pub sub: AcmeSubscription,
    pub jwk: Jwk,
}

impl AccountCtx {
    pub(crate) fn from_rows(
        account: AcmeAccount,
        sub: AcmeSubscription,
    ) -> Result<AccountCtx, Problem> {
        let value: serde_json::Value = serde_json::from_str(&account.jwk)
            .map_err(|_| Problem::internal(format!("account {} has a corrupt key", account.id)))?;
        let jwk = Jwk::from_json(&value)
            .map_err(|_| Problem::internal(format!("account {} has a corrupt key", account.id)))?;
        Ok(AccountCtx { account, sub, jwk })
    }

    pub fn id(&self) -> i64 {
        self.account.id
    }

    /// `valid`, `deactivated`, or `revoked` (also when the subscription was
    /// deleted or revoked, even before the engine rewrote the account row).
    pub fn status(&self) -> &'static str {
        if self.account.status == "deactivated" {
            "deactivated"
        } else if self.account.status == "revoked"
            || self.sub.deleted
            || self.sub.status == "REVOKED"
        {
            "revoked"
        } else {
            "valid"
        }
    }

    /// 401 `unauthorized` unless the account can be used.
    pub fn require_usable(&self) -> Result<(), Problem> {
        match self.status() {
            "valid" => Ok(()),
            "deactivated" => Err(Problem::unauthorized(format!(
                "account {} is deactivated",
                self.id()
            ))),
            _ => Err(Problem::unauthorized(format!(
                "account {} is revoked: subscription {} is {}: order a new subscription",
                self.id(),
                self.sub.id,
                if self.sub.deleted {
                    "DELETED"
                } else {
                    "REVOKED"
                }
            ))),
        }
    }
}

/// newOrder and finalize need an ACTIVE subscription: otherwise 403
/// `unauthorized`, naming the state and the remedy.
pub fn require_active(sub: &AcmeSubscription) -> Result<(), Problem> {
    if sub.deleted {
        return Err(Problem::forbidden(format!(
            "subscription {} is DELETED: order a new subscription",
            sub.id
        )));
    }
    let remedy = match sub.status.as_str() {
        "ACTIVE" => return Ok(()),
        "SUSPENDED" => "renew the subscription".to_string(),
        "PENDING_ORGANIZATION_VALIDATION" => match sub.org_process_id {
            Some(p) => format!("complete the organisation validation, process {p}"),
            None => "complete the organisation validation".to_string(),
        },
        "REVOKED" => "order a new subscription".to_string(),
        _ => "contact your provider".to_string(),
    };
    Err(Problem::forbidden(format!(
        "subscription {} is {}: {remedy}",
        sub.id, sub.status
    )))
}

/// CAA identities: the host of the public URL (design.md "CAA").
pub fn caa_identities(public_url: &str) -> Vec<String> {
    let rest = public_url.split_once("://").map_or(public_url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    vec![host.to_ascii_lowercase()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_kids() {
        let u = Urls::new("https://ca.example:8443/", "dv");
        assert_eq!(u.account(7), "https://ca.example:8443/acme/dv/acct/7");
        assert_eq!(
            u.account_id("https://ca.example:8443/acme/dv/acct/7"),
            Some(7)
        );
        assert_eq!(u.account_id("https://ca.example:8443/acme/ov/acct/7"), None);
        assert_eq!(
            u.account_id("https://ca.example:8443/acme/dv/acct/07"),
            None
        );
        assert_eq!(
            u.account_id("https://ca.example:8443/acme/dv/acct/7/orders"),
            None
        );
        assert_eq!(
            caa_identities("https://CA.example:8443"),
            vec!["ca.example"]
        );
        assert_eq!(caa_identities("http://127.0.0.1:1234"), vec!["127.0.0.1"]);
        assert_eq!(caa_identities("https://[::1]:8443"), vec!["::1"]);
    }

    #[test]
    fn gates_name_state_and_remedy() {
        let mut s = AcmeSubscription {
            id: 4,
            status: "ACTIVE".into(),
            ..Default::default()
        };
        assert!(require_active(&s).is_ok());
        s.status = "SUSPENDED".into();
        assert_eq!(
            require_active(&s).unwrap_err().detail,
            "subscription 4 is SUSPENDED: renew the subscription"
        );
        s.status = "PENDING_ORGANIZATION_VALIDATION".into();
        s.org_process_id = Some(12);
        let p = require_active(&s).unwrap_err();
        assert_eq!(p.status, 403);
        assert!(p.detail.ends_with("process 12"), "{}", p.detail);
    }
}
