//! Customers, API keys and credit: the operator's set-up and REST authentication.

use certhub_store::billing::CreditAccount;
use certhub_store::customers::{ApiKeyInfo, Customer};

use crate::{App, AppError, Caller};

/// RTR's handle rule: `[a-zA-Z0-9\-_@\.]+`, 3–40 characters.
pub fn valid_handle(h: &str) -> bool {
    (3..=40).contains(&h.len())
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_@.".contains(&b))
}

impl App {
    pub async fn create_customer(
        &self,
        handle: &str,
        currency: &str,
    ) -> Result<Customer, AppError> {
        if !valid_handle(handle) {
            return Err(AppError::constraint(
                "handle",
                "must match [a-zA-Z0-9-_@.]{3,40}",
                Some(handle.into()),
            ));
        }
        let currency = currency.to_uppercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(AppError::constraint(
                "currency",
                "must be an ISO-4217 code",
                Some(currency),
            ));
        }
        // State and its audit record commit together or not at all.
        let mut tx = self.db().begin().await?;
        let c = self
            .db()
            .create_customer(&mut tx, handle, &currency, self.now())
            .await?;
        self.db()
            .audit(
                &mut tx,
                self.now(),
                "operator",
                Some(c.id),
                "customer.create",
                handle,
                "",
            )
            .await?;
        tx.commit().await?;
        Ok(c)
    }

    pub async fn customer(&self, handle: &str) -> Result<Customer, AppError> {
        self.db()
            .customer_by_handle(handle)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("customer {handle} does not exist")))
    }

    /// Creates an API key; the clear key is returned once and never stored.
    pub async fn create_api_key(&self, handle: &str) -> Result<(ApiKeyInfo, String), AppError> {
        let c = self.customer(handle).await?;
        let mut tx = self.db().begin().await?;
        let (info, key) = self
            .db()
            .create_api_key(&mut tx, self.pepper(), c.id, self.now())
            .await?;
        self.db()
            .audit(
                &mut tx,
                self.now(),
                "operator",
                Some(c.id),
                "apikey.create",
                &info.key_id,
                "",
            )
            .await?;
        tx.commit().await?;
        Ok((info, key))
    }

    pub async fn revoke_api_key(&self, key_id: &str) -> Result<ApiKeyInfo, AppError> {
        let mut tx = self.db().begin().await?;
        let info = self
            .db()
            .revoke_api_key(&mut tx, key_id, self.now())
            .await
            .map_err(|e| match e {
                certhub_store::StoreError::NotFound => AppError::NotFound(format!(
                    "API key {key_id} does not exist or is already revoked"
                )),
                other => other.into(),
            })?;
        self.db()
            .audit(
                &mut tx,
                self.now(),
                "operator",
                Some(info.customer_id),
                "apikey.revoke",
                key_id,
                "",
            )
            .await?;
        tx.commit().await?;
        Ok(info)
    }

    /// Resolves `Authorization: ApiKey <key>`.
    pub async fn authenticate(&self, key: &str) -> Result<Caller, AppError> {
        match self.db().authenticate_api_key(self.pepper(), key).await? {
            Some((info, c)) => Ok(Caller {
                customer_id: c.id,
                handle: c.handle,
                currency: c.currency,
                api_key_id: info.id,
            }),
            None => Err(AppError::Unauthenticated("invalid API key".into())),
        }
    }

    /// A handle in a path or body must be the caller's own.
    pub fn check_handle(&self, caller: &Caller, handle: &str) -> Result<(), AppError> {
        if caller.handle == handle {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "not authorized for customer {handle}"
            )))
        }
    }

    pub async fn credit(
        &self,
        caller: &Caller,
        handle: &str,
    ) -> Result<Vec<CreditAccount>, AppError> {
        self.check_handle(caller, handle)?;
        Ok(self.db().credit_accounts(caller.customer_id).await?)
    }

    pub async fn add_credit(&self, handle: &str, cents: i64) -> Result<i64, AppError> {
        let c = self.customer(handle).await?;
        let mut tx = self.db().begin().await?;
        let id = self
            .db()
            .add_credit(&mut tx, c.id, &c.handle, &c.currency, cents, self.now())
            .await?;
        self.db()
            .audit(
                &mut tx,
                self.now(),
                "operator",
                Some(c.id),
                "credit.add",
                handle,
                &format!("{cents} {}", c.currency),
            )
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The operator's `admin price set`: one price of the catalogue, checked
    /// against the product (action, offered period) and audited in the same
    /// transaction.
    pub async fn set_price(
        &self,
        product: &str,
        action: &str,
        period: i64,
        currency: &str,
        cents: i64,
    ) -> Result<(), AppError> {
        const ACTIONS: &[&str] = &[
            "CREATE",
            "RENEW",
            "REQUEST",
            "EXTRA_DOMAIN",
            "EXTRA_WILDCARD",
        ];
        let p = self
            .db()
            .product(product)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("unknown product {product}")))?;
        let action = action.to_uppercase();
        let currency = currency.to_uppercase();
        if !ACTIONS.contains(&action.as_str()) {
            return Err(AppError::constraint(
                "action",
                format!("must be one of {}", ACTIONS.join(", ")),
                Some(action),
            ));
        }
        if !p.offers_period(period) {
            return Err(AppError::constraint(
                "period",
                format!("product {product} does not offer this period"),
                Some(period.to_string()),
            ));
        }
        if cents < 0 {
            return Err(AppError::constraint(
                "price",
                "must not be negative",
                Some(cents.to_string()),
            ));
        }
        let mut tx = self.db().begin().await?;
        self.db()
            .set_price(&mut tx, product, &action, period, &currency, cents)
            .await?;
        self.db()
            .audit(
                &mut tx,
                self.now(),
                "operator",
                None,
                "price.set",
                product,
                &format!("{action} {period} {currency} {cents}"),
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
