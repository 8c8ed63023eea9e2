//! Accounts: newAccount with External Account Binding, update, deactivation,
//! key rollover, and the operator's listing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certhub_jose::{Jwk, verify_eab, verify_key_change};
use certhub_store::acme::AcmeAccount;
use serde::Deserialize;
use serde_json::Value;

use super::{AccountCtx, Problem};
use crate::App;

/// The newAccount payload (RFC 8555 §7.3); unknown members are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAccountRequest {
    #[serde(default)]
    pub contact: Option<Vec<String>>,
    #[serde(default)]
    pub terms_of_service_agreed: Option<bool>,
    #[serde(default)]
    pub only_return_existing: bool,
    #[serde(default)]
    pub external_account_binding: Option<Value>,
}

/// The `kid` of an EAB object's protected header, if readable (verification
/// happens in `verify_eab`; this only finds which MAC key to fetch).
pub fn eab_kid(eab: &Value) -> Option<String> {
    let protected = eab.get("protected")?.as_str()?;
    let bytes = URL_SAFE_NO_PAD.decode(protected).ok()?;
    let header: Value = serde_json::from_slice(&bytes).ok()?;
    header.get("kid")?.as_str().map(str::to_string)
}

/// Contacts must be `mailto:` URIs with one plain address each.
fn check_contacts(contact: &[String]) -> Result<(), Problem> {
    if contact.len() > 10 {
        return Err(Problem::new(
            "invalidContact",
            400,
            "at most 10 contacts are allowed",
        ));
    }
    for c in contact {
        let Some(addr) = c.strip_prefix("mailto:") else {
            return Err(Problem::new(
                "unsupportedContact",
                400,
                format!("contact {c:?}: only mailto: URIs are supported"),
            ));
        };
        let ok = addr.len() <= 254
            && !addr.contains([',', '?', ' ', '<', '>'])
            && addr
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'));
        if !ok {
            return Err(Problem::new(
                "invalidContact",
                400,
                format!("contact {c:?} is not a valid e-mail address"),
            ));
        }
    }
    Ok(())
}

impl App {
    /// An account of `product` by id (None if unknown there).
    pub async fn acme_account(
        &self,
        product: &str,
        id: i64,
    ) -> Result<Option<AccountCtx>, Problem> {
        match self.db().acme_account(id).await? {
            Some((a, s)) if a.product == product => Ok(Some(AccountCtx::from_rows(a, s)?)),
            _ => Ok(None),
        }
    }

    /// The account registered with `jwk` at `product`.
    pub async fn acme_account_by_key(
        &self,
        product: &str,
        jwk: &Jwk,
    ) -> Result<Option<AccountCtx>, Problem> {
        match self
            .db()
            .acme_account_by_key(product, &jwk.thumbprint_b64())
            .await?
        {
            Some((a, s)) => Ok(Some(AccountCtx::from_rows(a, s)?)),
            None => Ok(None),
        }
    }

    /// newAccount (the JWS is verified with `jwk` already). Returns the
    /// account and whether it was created (201) or already existed (200).
    pub async fn acme_new_account(
        &self,
        product: &str,
        jwk: &Jwk,
        url: &str,
        req: &NewAccountRequest,
    ) -> Result<(AccountCtx, bool), Problem> {
        if let Some(existing) = self.acme_account_by_key(product, jwk).await? {
            existing.require_usable()?;
            return Ok((existing, false));
        }
        if req.only_return_existing {
            return Err(Problem::new(
                "accountDoesNotExist",
                400,
                "no account exists with this key",
            ));
        }
        let contact = req.contact.clone().unwrap_or_default();
        check_contacts(&contact)?;
        let Some(eab) = &req.external_account_binding else {
            return Err(Problem::new(
                "externalAccountRequired",
                403,
                "this directory requires external account binding: register with the EAB key id (accountKey) and \
                 HMAC key (hmacKey) of your ACME subscription",
            ));
        };
        let kid = eab_kid(eab);
        let found = match &kid {
            Some(k) => self.db().acme_eab_subscription(k).await?,
            None => None,
        };
        let mac_key = match &found {
            Some((_, sealed)) => Some(self.kek().open("eab", sealed)?),
            None => None,
        };
        verify_eab(eab, jwk, url, |k| {
            if Some(k) == kid.as_deref() {
                mac_key
            } else {
                None
            }
        })?;
        let Some((sub, _)) = found else {
            return Err(Problem::unauthorized(
                "unknown external account binding key id",
            ));
        };
        if sub.product != product {
            return Err(Problem::unauthorized(format!(
                "this external account binding key belongs to the {} directory, not {product}",
                sub.product
            )));
        }
        if sub.deleted || sub.status == "REVOKED" {
            return Err(Problem::unauthorized(format!(
                "subscription {} is {}: order a new subscription",
                sub.id,
                if sub.deleted { "DELETED" } else { "REVOKED" }
            )));
        }
        let now = self.now();
        let row = AcmeAccount {
            id: 0,
            product: product.to_string(),
            subscription_id: sub.id,
            customer_id: sub.customer_id,
            thumbprint: jwk.thumbprint_b64(),
            jwk: jwk.to_json().to_string(),
            contact,
            status: "valid".into(),
            eab_kid: kid.unwrap_or_default(),
            created_at: now,
            updated_at: now,
        };
        match self.db().acme_insert_account(&row).await? {
            Some(id) => {
                tracing::info!(
                    account = id,
                    subscription = sub.id,
                    "ACME account registered"
                );
                let ctx = AccountCtx::from_rows(AcmeAccount { id, ..row }, sub)?;
                Ok((ctx, true))
            }
            // The same key registered concurrently: answer with that account.
            None => {
                let ctx = self
                    .acme_account_by_key(product, jwk)
                    .await?
                    .ok_or_else(|| Problem::internal("account registration raced and vanished"))?;
                Ok((ctx, false))
            }
        }
    }

    /// Account update (contact) or deactivation; POST-as-GET callers pass None.
    pub async fn acme_update_account(
        &self,
        ctx: &AccountCtx,
        payload: Option<&Value>,
    ) -> Result<AccountCtx, Problem> {
        let Some(p) = payload else {
            return Ok(ctx.clone());
        };
        let obj = p
            .as_object()
            .ok_or_else(|| Problem::malformed("the account update must be a JSON object"))?;
        let now = self.now();
        let mut out = ctx.clone();
        if let Some(status) = obj.get("status") {
            match status.as_str() {
                Some("deactivated") => {
                    self.db()
                        .acme_set_account_status(ctx.id(), "deactivated", now)
                        .await?;
                    out.account.status = "deactivated".into();
                    tracing::info!(account = ctx.id(), "ACME account deactivated by its holder");
                    return Ok(out);
                }
                Some("valid") => {}
                _ => {
                    return Err(Problem::malformed(
                        "an account's status can only be changed to \"deactivated\"",
                    ));
                }
            }
        }
        if let Some(c) = obj.get("contact") {
            let contact: Vec<String> = serde_json::from_value(c.clone())
                .map_err(|_| Problem::malformed("contact must be an array of strings"))?;
            check_contacts(&contact)?;
            self.db()
                .acme_update_account_contact(ctx.id(), &contact, now)
                .await?;
            out.account.contact = contact;
        }
        Ok(out)
    }

    /// keyChange (RFC 8555 §7.3.5): the outer JWS is verified with the old key.
    pub async fn acme_key_change(
        &self,
        ctx: &AccountCtx,
        inner: &[u8],
        url: &str,
        account_url: &str,
        urls: &super::Urls,
    ) -> Result<AccountCtx, Problem> {
        let new_key = verify_key_change(inner, url, account_url, &ctx.jwk)?;
        let thumb = new_key.thumbprint_b64();
        if let Some(other) = self
            .acme_account_by_key(&ctx.account.product, &new_key)
            .await?
        {
            let mut p = Problem::new(
                "malformed",
                409,
                "the new key is already in use by another account",
            );
            p.location = Some(urls.account(other.id()));
            return Err(p);
        }
        self.db()
            .acme_set_account_key(ctx.id(), &thumb, &new_key.to_json().to_string(), self.now())
            .await
            .map_err(|e| match e {
                certhub_store::StoreError::Conflict(m) => Problem::new("malformed", 409, m),
                other => Problem::from(other),
            })?;
        let mut out = ctx.clone();
        out.account.thumbprint = thumb;
        out.account.jwk = new_key.to_json().to_string();
        out.jwk = new_key;
        tracing::info!(account = ctx.id(), "ACME account key rolled over");
        Ok(out)
    }

    /// Operator: accounts bound to a subscription.
    pub async fn acme_accounts_of_subscription(
        &self,
        subscription_id: i64,
    ) -> Result<Vec<AcmeAccount>, Problem> {
        Ok(self
            .db()
            .acme_accounts_of_subscription(subscription_id)
            .await?)
    }

    /// Operator: deactivates an account (a leaked key). False if unknown.
    pub async fn acme_deactivate_account(&self, id: i64) -> Result<bool, Problem> {
        let done = self
            .db()
            .acme_set_account_status(id, "deactivated", self.now())
            .await?;
        if done {
            tracing::info!(account = id, "ACME account deactivated by the operator");
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts() {
        assert!(check_contacts(&["mailto:a@example.com".into()]).is_ok());
        assert_eq!(
            check_contacts(&["tel:+1".into()]).unwrap_err().short_type(),
            "unsupportedContact"
        );
        assert_eq!(
            check_contacts(&["mailto:nope".into()])
                .unwrap_err()
                .short_type(),
            "invalidContact"
        );
        assert_eq!(
            check_contacts(&["mailto:a@b.c?subject=x".into()])
                .unwrap_err()
                .short_type(),
            "invalidContact"
        );
    }

    #[test]
    fn reads_eab_kid() {
        let key = certhub_jose::sign::SigningKey::generate(certhub_jose::Alg::Es256).unwrap();
        let eab = certhub_jose::sign::sign_eab(
            "kid-1",
            b"k",
            certhub_jose::MacAlg::Hs256,
            key.public_jwk(),
            "u",
        );
        assert_eq!(eab_kid(&eab).as_deref(), Some("kid-1"));
        assert_eq!(eab_kid(&serde_json::json!({"protected": "!!"})), None);
    }
}
