//! The ACME server's tables: accounts, authorisations (with their one
//! attempted challenge), orders and used nonces.
//!
//! Reads that every request needs (an account with its subscription) are one
//! joined statement, so the hot path costs one round trip.

use crate::read::{Arg, Cols};
use crate::{Db, Dialect, Result, StoreError, Tx, from_json, to_json};

/// The durable job that (re)runs a started challenge validation.
pub const ACME_VALIDATE_JOB: &str = "acme.validate";

// The statements a validation result runs, one order at a time by primary
// key: a single `UPDATE ... WHERE id IN (subquery)` let PostgreSQL pick a
// sequential scan of `acme_orders` while its statistics were young, so each
// validation read every order (tests/plans.rs checks the plans).

/// The orders waiting for an authorisation.
pub const ORDERS_OF_AUTHZ: &str = "SELECT order_id FROM acme_order_authzs WHERE authz_id = ?";
/// A pending order becomes ready once every authorisation it uses is valid.
/// (Each authorisation's status is a lookup by key: written as a join,
/// PostgreSQL hashed the whole authorisation table while its statistics
/// were unset.)
pub const ORDER_READY: &str = "UPDATE acme_orders SET status = 'ready', updated_at = ? \
     WHERE id = ? AND status = 'pending' AND NOT EXISTS (SELECT 1 FROM acme_order_authzs oa \
     WHERE oa.order_id = acme_orders.id \
     AND (SELECT z.status FROM acme_authzs z WHERE z.id = oa.authz_id) <> 'valid')";
/// An unfinished order fails with its authorisation.
pub const ORDER_INVALID: &str = "UPDATE acme_orders SET status = 'invalid', error = ?, updated_at = ? \
     WHERE id = ? AND status IN ('pending', 'ready')";

/// One ACME account. `jwk` is the JSON text of the public key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcmeAccount {
    pub id: i64,
    pub product: String,
    pub subscription_id: i64,
    pub customer_id: i64,
    pub thumbprint: String,
    pub jwk: String,
    pub contact: Vec<String>,
    /// valid | deactivated | revoked
    pub status: String,
    pub eab_kid: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What the ACME server needs to know about an account's subscription on
/// every request (status gates, coverage, OV subject, ARI end).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcmeSubscription {
    pub id: i64,
    pub customer_id: i64,
    pub customer: String,
    pub product: String,
    pub domain_names: Vec<String>,
    /// RTR status: ACTIVE | SUSPENDED | REVOKED | PENDING_ORGANIZATION_VALIDATION
    pub status: String,
    pub deleted: bool,
    pub expiry_date: i64,
    pub auto_renew: bool,
    pub org_process_id: Option<i64>,
    pub approved_organization: Option<String>,
    pub approved_country: Option<String>,
    pub approved_state: Option<String>,
    pub approved_city: Option<String>,
}

/// An authorisation and its attempted challenge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcmeAuthz {
    pub id: i64,
    pub account_id: i64,
    /// The name without `*.`.
    pub identifier: String,
    pub wildcard: bool,
    /// pending | valid | invalid | deactivated
    pub status: String,
    pub token: String,
    pub expires_at: i64,
    pub chall_type: Option<String>,
    pub chall_status: Option<String>,
    /// Problem document JSON.
    pub chall_error: Option<String>,
    pub validated_at: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcmeOrder {
    pub id: i64,
    pub account_id: i64,
    pub subscription_id: i64,
    /// pending | ready | processing | valid | invalid
    pub status: String,
    pub identifiers: Vec<String>,
    pub ident_key: String,
    pub authz_ids: Vec<i64>,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub replaces: Option<String>,
    pub replaces_cert_id: Option<i64>,
    pub expires_at: i64,
    /// Problem document JSON.
    pub error: Option<String>,
    pub certificate_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A certificate's facts for renewalInfo (RFC 9773).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AriFacts {
    pub certificate_id: i64,
    pub product: String,
    pub start_date: i64,
    pub expiry_date: i64,
    pub revoked_at: Option<i64>,
    pub acme_account_id: Option<i64>,
    pub replaced_by: Option<i64>,
    /// (auto_renew, expiry_date) of the subscription, if any.
    pub subscription: Option<(bool, i64)>,
}

macro_rules! account_cols {
    () => {
        "a.id AS a_id, a.product AS a_product, a.subscription_id AS a_subscription_id, \
     a.customer_id AS a_customer_id, a.thumbprint AS a_thumbprint, a.jwk AS a_jwk, a.contact AS a_contact, \
     a.status AS a_status, a.eab_kid AS a_eab_kid, a.created_at AS a_created_at, a.updated_at AS a_updated_at"
    };
}

macro_rules! sub_cols {
    () => {
        "s.id AS s_id, s.customer_id AS s_customer_id, s.customer AS s_customer, s.product AS s_product, \
     s.domain_names AS s_domain_names, s.status AS s_status, s.deleted_at AS s_deleted_at, s.expiry_date AS s_expiry_date, \
     s.auto_renew AS s_auto_renew, s.org_process_id AS s_org_process_id, s.approved_organization AS s_approved_organization, \
     s.approved_country AS s_approved_country, s.approved_state AS s_approved_state, s.approved_city AS s_approved_city"
    };
}

fn account_from(r: &impl Cols) -> Result<AcmeAccount> {
    Ok(AcmeAccount {
        id: r.col("a_id")?,
        product: r.col("a_product")?,
        subscription_id: r.col("a_subscription_id")?,
        customer_id: r.col("a_customer_id")?,
        thumbprint: r.col("a_thumbprint")?,
        jwk: r.col("a_jwk")?,
        contact: from_json(&r.col::<String>("a_contact")?)?,
        status: r.col("a_status")?,
        eab_kid: r.col("a_eab_kid")?,
        created_at: r.col("a_created_at")?,
        updated_at: r.col("a_updated_at")?,
    })
}

fn sub_from(r: &impl Cols) -> Result<AcmeSubscription> {
    Ok(AcmeSubscription {
        id: r.col("s_id")?,
        customer_id: r.col("s_customer_id")?,
        customer: r.col("s_customer")?,
        product: r.col("s_product")?,
        domain_names: from_json(&r.col::<String>("s_domain_names")?)?,
        status: r.col("s_status")?,
        deleted: r.col::<Option<i64>>("s_deleted_at")?.is_some(),
        expiry_date: r.col("s_expiry_date")?,
        auto_renew: r.col::<i64>("s_auto_renew")? != 0,
        org_process_id: r.col("s_org_process_id")?,
        approved_organization: r.col("s_approved_organization")?,
        approved_country: r.col("s_approved_country")?,
        approved_state: r.col("s_approved_state")?,
        approved_city: r.col("s_approved_city")?,
    })
}

fn authz_from(r: &impl Cols) -> Result<AcmeAuthz> {
    Ok(AcmeAuthz {
        id: r.col("id")?,
        account_id: r.col("account_id")?,
        identifier: r.col("identifier")?,
        wildcard: r.col::<i64>("wildcard")? != 0,
        status: r.col("status")?,
        token: r.col("token")?,
        expires_at: r.col("expires_at")?,
        chall_type: r.col("chall_type")?,
        chall_status: r.col("chall_status")?,
        chall_error: r.col("chall_error")?,
        validated_at: r.col("validated_at")?,
        created_at: r.col("created_at")?,
    })
}

fn order_from(r: &impl Cols) -> Result<AcmeOrder> {
    Ok(AcmeOrder {
        id: r.col("id")?,
        account_id: r.col("account_id")?,
        subscription_id: r.col("subscription_id")?,
        status: r.col("status")?,
        identifiers: from_json(&r.col::<String>("identifiers")?)?,
        ident_key: r.col("ident_key")?,
        authz_ids: from_json(&r.col::<String>("authz_ids")?)?,
        not_before: r.col("not_before")?,
        not_after: r.col("not_after")?,
        replaces: r.col("replaces")?,
        replaces_cert_id: r.col("replaces_cert_id")?,
        expires_at: r.col("expires_at")?,
        error: r.col("error")?,
        certificate_id: r.col("certificate_id")?,
        created_at: r.col("created_at")?,
        updated_at: r.col("updated_at")?,
    })
}

impl Db {
    // ------------------------------------------------------------ accounts

    /// An account with its subscription (one round trip per request).
    pub async fn acme_account(&self, id: i64) -> Result<Option<(AcmeAccount, AcmeSubscription)>> {
        let row = self.read_optional(concat!(
            "SELECT ",
            account_cols!(),
            ", ",
            sub_cols!(),
            " FROM acme_accounts a JOIN subscriptions s ON s.id = a.subscription_id WHERE a.id = ?"
        ), &[Arg::Int(id)])
        .await?;
        row.as_ref()
            .map(|r| Ok((account_from(r)?, sub_from(r)?)))
            .transpose()
    }

    /// The account registered with a key at a product's directory.
    pub async fn acme_account_by_key(
        &self,
        product: &str,
        thumbprint: &str,
    ) -> Result<Option<(AcmeAccount, AcmeSubscription)>> {
        let row = self
            .read_optional(
                concat!(
                    "SELECT ",
                    account_cols!(),
                    ", ",
                    sub_cols!(),
                    " FROM acme_accounts a JOIN subscriptions s ON s.id = a.subscription_id WHERE a.product = ? AND a.thumbprint = ?"
                ),
                &[Arg::from(product), Arg::from(thumbprint)],
            )
            .await?;
        row.as_ref()
            .map(|r| Ok((account_from(r)?, sub_from(r)?)))
            .transpose()
    }

    /// The subscription behind an EAB key id, with its sealed MAC key.
    pub async fn acme_eab_subscription(
        &self,
        kid: &str,
    ) -> Result<Option<(AcmeSubscription, Vec<u8>)>> {
        let row = self
            .read_optional(
                concat!(
                    "SELECT ",
                    sub_cols!(),
                    ", s.eab_hmac_sealed AS s_hmac FROM subscriptions s WHERE s.eab_kid = ?"
                ),
                &[Arg::from(kid)],
            )
            .await?;
        row.as_ref()
            .map(|r| Ok((sub_from(r)?, r.col::<Vec<u8>>("s_hmac")?)))
            .transpose()
    }

    /// Inserts an account unless its key is already registered at the
    /// product; returns the new id, or None when the key won a race elsewhere.
    pub async fn acme_insert_account(&self, a: &AcmeAccount) -> Result<Option<i64>> {
        let row = self
            .write_returning(
                "INSERT INTO acme_accounts (product, subscription_id, customer_id, thumbprint, jwk, contact, status, eab_kid, \
                 created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (product, thumbprint) DO NOTHING RETURNING id",
                &[
                    Arg::from(a.product.clone()),
                    Arg::from(a.subscription_id),
                    Arg::from(a.customer_id),
                    Arg::from(a.thumbprint.clone()),
                    Arg::from(a.jwk.clone()),
                    Arg::from(to_json(&a.contact)),
                    Arg::from(a.status.clone()),
                    Arg::from(a.eab_kid.clone()),
                    Arg::from(a.created_at),
                    Arg::from(a.updated_at),
                ],
            )
            .await?;
        row.map(|r| r.col_at(0)).transpose()
    }

    pub async fn acme_update_account_contact(
        &self,
        id: i64,
        contact: &[String],
        now: i64,
    ) -> Result<()> {
        self.write(
            "UPDATE acme_accounts SET contact = ?, updated_at = ? WHERE id = ?",
            &[Arg::from(to_json(&contact)), Arg::from(now), Arg::from(id)],
        )
        .await?;
        Ok(())
    }

    /// Sets an account's status; false if the account does not exist.
    pub async fn acme_set_account_status(&self, id: i64, status: &str, now: i64) -> Result<bool> {
        let r = self
            .write(
                "UPDATE acme_accounts SET status = ?, updated_at = ? WHERE id = ?",
                &[Arg::from(status.to_string()), Arg::from(now), Arg::from(id)],
            )
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Replaces an account's key. A key already registered at the product is
    /// a [`StoreError::Conflict`].
    pub async fn acme_set_account_key(
        &self,
        id: i64,
        thumbprint: &str,
        jwk: &str,
        now: i64,
    ) -> Result<()> {
        let r = self
            .write(
                "UPDATE acme_accounts SET thumbprint = ?, jwk = ?, updated_at = ? WHERE id = ?",
                &[
                    Arg::from(thumbprint.to_string()),
                    Arg::from(jwk.to_string()),
                    Arg::from(now),
                    Arg::from(id),
                ],
            )
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.is_unique_violation() => Err(StoreError::Conflict(
                "the new key is already in use by another account".into(),
            )),
            Err(e) => Err(e),
        }
    }

    /// Accounts bound to a subscription (operator listing), oldest first.
    pub async fn acme_accounts_of_subscription(
        &self,
        subscription_id: i64,
    ) -> Result<Vec<AcmeAccount>> {
        let rows = sqlx::query(self.sql(concat!(
            "SELECT ",
            account_cols!(),
            " FROM acme_accounts a WHERE a.subscription_id = ? ORDER BY a.id"
        )))
        .bind(subscription_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(account_from).collect()
    }

    /// For subscription delete/revocation: every account of the subscription
    /// becomes `revoked` and its unfinished orders `invalid`.
    pub async fn acme_revoke_subscription_accounts(
        &self,
        tx: &mut Tx,
        subscription_id: i64,
        now: i64,
    ) -> Result<u64> {
        let r = tx.exec("UPDATE acme_accounts SET status = 'revoked', updated_at = ? WHERE subscription_id = ? AND status = 'valid'",
            &[
                Arg::from(now),
                Arg::from(subscription_id),
            ])
        .await?;
        tx.exec(
            "UPDATE acme_orders SET status = 'invalid', updated_at = ? WHERE subscription_id = ? \
             AND status IN ('pending', 'ready', 'processing')",
            &[Arg::from(now), Arg::from(subscription_id)],
        )
        .await?;
        Ok(r.rows_affected())
    }

    // ------------------------------------------------------------ authorisations

    pub async fn acme_authz(&self, id: i64) -> Result<Option<AcmeAuthz>> {
        let row = self
            .read_optional("SELECT * FROM acme_authzs WHERE id = ?", &[Arg::Int(id)])
            .await?;
        row.as_ref().map(authz_from).transpose()
    }

    /// Several authorisations by id (any order).
    pub async fn acme_authzs(&self, ids: &[i64]) -> Result<Vec<AcmeAuthz>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let sql = format!(
            "SELECT * FROM acme_authzs WHERE id IN ({})",
            placeholders(ids.len())
        );
        let args: Vec<Arg> = ids.iter().map(|id| Arg::Int(*id)).collect();
        let rows = self.read_all_dyn(&sql, &args).await?;
        rows.iter().map(authz_from).collect()
    }

    /// An account's pending or valid, unexpired authorisations for any of `identifiers`.
    pub async fn acme_live_authzs(
        &self,
        tx: &mut Tx,
        account_id: i64,
        identifiers: &[String],
        now: i64,
    ) -> Result<Vec<AcmeAuthz>> {
        if identifiers.is_empty() {
            return Ok(vec![]);
        }
        let sql = format!(
            "SELECT * FROM acme_authzs WHERE account_id = ? AND identifier IN ({}) AND status IN ('pending', 'valid') \
             AND expires_at > ? ORDER BY id DESC",
            placeholders(identifiers.len())
        );
        let mut args = vec![Arg::Int(account_id)];
        args.extend(identifiers.iter().map(Arg::from));
        args.push(Arg::Int(now));
        let rows = tx.fetch_all_dyn(&sql, &args).await?;
        rows.iter().map(authz_from).collect()
    }

    pub async fn acme_insert_authz(&self, tx: &mut Tx, a: &AcmeAuthz) -> Result<i64> {
        tx.scalar_one("INSERT INTO acme_authzs (account_id, identifier, wildcard, status, token, expires_at, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            &[
                Arg::from(a.account_id),
                Arg::from(a.identifier.clone()),
                Arg::from(i64::from(a.wildcard)),
                Arg::from(a.status.clone()),
                Arg::from(a.token.clone()),
                Arg::from(a.expires_at),
                Arg::from(a.created_at),
            ])
        .await
    }

    /// Claims the authorisation's one challenge attempt; false if it is not
    /// pending or a challenge was already attempted. In the same transaction
    /// it schedules an `acme.validate` job at `retry_at`: the node that got
    /// the POST validates at once, and if it dies first, any node's lifecycle
    /// engine runs the validation then (the job is finished with the result).
    pub async fn acme_start_challenge(
        &self,
        authz_id: i64,
        chall_type: &str,
        retry_at: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let r = tx
            .exec(
                "UPDATE acme_authzs SET chall_type = ?, chall_status = 'processing' \
             WHERE id = ? AND status = 'pending' AND chall_type IS NULL",
                &[Arg::from(chall_type.to_string()), Arg::from(authz_id)],
            )
            .await?;
        let started = r.rows_affected() > 0;
        if started {
            self.schedule_job(&mut tx, ACME_VALIDATE_JOB, authz_id, retry_at)
                .await?;
        }
        tx.commit().await?;
        Ok(started)
    }

    /// Records a validation result and moves the orders that waited for it:
    /// ready when all their authorisations are valid, invalid on failure.
    /// Records a validation result. `failure` is (problem document JSON,
    /// the refusal's reason for the audit trail).
    pub async fn acme_finish_challenge(
        &self,
        authz_id: i64,
        failure: Option<(&str, &str)>,
        now: i64,
        valid_until: i64,
    ) -> Result<()> {
        let error = failure.map(|(problem, _)| problem);
        let mut tx = self.begin().await?;
        let (status, expires) = match error {
            None => ("valid", valid_until),
            Some(_) => ("invalid", now),
        };
        let r = tx.exec("UPDATE acme_authzs SET status = ?, chall_status = ?, chall_error = ?, validated_at = ?, expires_at = ? \
             WHERE id = ? AND status = 'pending'",
            &[
                Arg::from(status),
                Arg::from(status),
                Arg::from(error.map(str::to_string)),
                Arg::from(if error.is_none() { Some(now) } else { None }),
                Arg::from(expires),
                Arg::from(authz_id),
            ])
        .await?;
        tx.exec(
            "UPDATE jobs SET done_at = ? WHERE kind = ? AND subject_id = ? AND done_at IS NULL",
            &[
                Arg::from(now),
                Arg::from(ACME_VALIDATE_JOB),
                Arg::from(authz_id),
            ],
        )
        .await?;
        // A second result for the same attempt (the retry job raced a slow
        // first validation) must not move the orders again: first one wins.
        if r.rows_affected() == 0 {
            tx.commit().await?;
            return Ok(());
        }
        match error {
            None => self.acme_orders_ready(&mut tx, authz_id, now).await?,
            Some(e) => {
                self.acme_orders_invalid(&mut tx, authz_id, Some(e), now)
                    .await?;
                let reason = failure.map_or("", |(_, reason)| reason);
                self.audit_failed_challenge(&mut tx, authz_id, reason, now)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// A failed validation refuses the authorisation's orders: on record
    /// with the problem's type and detail, under the account's customer.
    async fn audit_failed_challenge(
        &self,
        tx: &mut Tx,
        authz_id: i64,
        reason: &str,
        now: i64,
    ) -> Result<()> {
        let customer: Option<i64> = tx.scalar_optional("SELECT a.customer_id FROM acme_authzs z JOIN acme_accounts a ON a.id = z.account_id WHERE z.id = ?",
            &[
                Arg::from(authz_id),
            ])
        .await?;
        self.audit(
            tx,
            now,
            "system",
            customer,
            "refusal",
            &format!("authz {authz_id}"),
            reason,
        )
        .await
    }

    async fn acme_orders_ready(&self, tx: &mut Tx, authz_id: i64, now: i64) -> Result<()> {
        for order in tx
            .scalar_all::<i64>(ORDERS_OF_AUTHZ, &[Arg::from(authz_id)])
            .await?
        {
            tx.exec(ORDER_READY, &[Arg::from(now), Arg::from(order)])
                .await?;
        }
        Ok(())
    }

    async fn acme_orders_invalid(
        &self,
        tx: &mut Tx,
        authz_id: i64,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        for order in tx
            .scalar_all::<i64>(ORDERS_OF_AUTHZ, &[Arg::from(authz_id)])
            .await?
        {
            tx.exec(
                ORDER_INVALID,
                &[
                    Arg::from(error.map(str::to_string)),
                    Arg::from(now),
                    Arg::from(order),
                ],
            )
            .await?;
        }
        Ok(())
    }

    /// Deactivates a pending or valid authorisation and invalidates the
    /// unfinished orders that use it. False if it was in another state.
    pub async fn acme_deactivate_authz(&self, authz_id: i64, now: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let r = tx.exec("UPDATE acme_authzs SET status = 'deactivated' WHERE id = ? AND status IN ('pending', 'valid')",
            &[
                Arg::from(authz_id),
            ])
        .await?;
        let changed = r.rows_affected() > 0;
        if changed {
            self.acme_orders_invalid(&mut tx, authz_id, None, now)
                .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    // ------------------------------------------------------------ orders

    pub async fn acme_order(&self, id: i64) -> Result<Option<AcmeOrder>> {
        let row = self
            .read_optional("SELECT * FROM acme_orders WHERE id = ?", &[Arg::Int(id)])
            .await?;
        row.as_ref().map(order_from).transpose()
    }

    /// Reads and locks an order for the rest of the transaction.
    pub async fn acme_order_for_update(&self, tx: &mut Tx, id: i64) -> Result<Option<AcmeOrder>> {
        let sql = match self.dialect() {
            Dialect::Postgres => "SELECT * FROM acme_orders WHERE id = ? FOR UPDATE",
            Dialect::Sqlite => "SELECT * FROM acme_orders WHERE id = ?",
        };
        let row = tx.fetch_optional(sql, &[Arg::from(id)]).await?;
        row.as_ref().map(order_from).transpose()
    }

    /// An unexpired pending or ready order of the account for the same names
    /// (and the same `replaces` and validity request), to reuse.
    pub async fn acme_reusable_order(
        &self,
        tx: &mut Tx,
        account_id: i64,
        ident_key: &str,
        now: i64,
    ) -> Result<Vec<AcmeOrder>> {
        let rows = tx.fetch_all("SELECT * FROM acme_orders WHERE account_id = ? AND ident_key = ? AND status IN ('pending', 'ready') \
             AND expires_at > ? ORDER BY id DESC",
            &[
                Arg::from(account_id),
                Arg::from(ident_key.to_string()),
                Arg::from(now),
            ])
        .await?;
        rows.iter().map(order_from).collect()
    }

    /// Inserts an order and links it to its authorisations.
    pub async fn acme_insert_order(&self, tx: &mut Tx, o: &AcmeOrder) -> Result<i64> {
        let id: i64 = tx.scalar_one("INSERT INTO acme_orders (account_id, subscription_id, status, identifiers, ident_key, authz_ids, not_before, \
             not_after, replaces, replaces_cert_id, expires_at, error, certificate_id, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            &[
                Arg::from(o.account_id),
                Arg::from(o.subscription_id),
                Arg::from(o.status.clone()),
                Arg::from(to_json(&o.identifiers)),
                Arg::from(o.ident_key.clone()),
                Arg::from(to_json(&o.authz_ids)),
                Arg::from(o.not_before),
                Arg::from(o.not_after),
                Arg::from(o.replaces.clone()),
                Arg::from(o.replaces_cert_id),
                Arg::from(o.expires_at),
                Arg::from(o.error.clone()),
                Arg::from(o.certificate_id),
                Arg::from(o.created_at),
                Arg::from(o.updated_at),
            ])
        .await?;
        if !o.authz_ids.is_empty() {
            let sql = format!(
                "INSERT INTO acme_order_authzs (authz_id, order_id) VALUES {} ON CONFLICT DO NOTHING",
                vec!["(?, ?)"; o.authz_ids.len()].join(", ")
            );
            let args: Vec<Arg> = o
                .authz_ids
                .iter()
                .flat_map(|a| [Arg::Int(*a), Arg::Int(id)])
                .collect();
            tx.exec_dyn(&sql, &args).await?;
        }
        Ok(id)
    }

    /// Moves an order to `status` (with error / certificate when given).
    pub async fn acme_set_order(
        &self,
        tx: &mut Tx,
        id: i64,
        status: &str,
        error: Option<&str>,
        certificate_id: Option<i64>,
        now: i64,
    ) -> Result<()> {
        tx.exec("UPDATE acme_orders SET status = ?, error = COALESCE(?, error), certificate_id = COALESCE(?, certificate_id), \
             updated_at = ? WHERE id = ?",
            &[
                Arg::from(status.to_string()),
                Arg::from(error.map(str::to_string)),
                Arg::from(certificate_id),
                Arg::from(now),
                Arg::from(id),
            ])
        .await?;
        Ok(())
    }

    /// Order ids of an account after `after_id`, ascending, at most `limit`.
    pub async fn acme_order_ids(
        &self,
        account_id: i64,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<i64>> {
        self.read_all(
            "SELECT id FROM acme_orders WHERE account_id = ? AND id > ? AND status <> 'invalid' ORDER BY id LIMIT ?",
            &[Arg::from(account_id), Arg::from(after_id), Arg::from(limit)],
        )
        .await?
        .iter()
        .map(|r| r.col_at(0))
        .collect()
    }

    // ------------------------------------------------------------ certificates (ACME view)

    /// Renewal facts of a certificate by issuer and serial (one round trip).
    pub async fn acme_ari_facts(
        &self,
        issuer_id: &str,
        serial_hex: &str,
    ) -> Result<Option<AriFacts>> {
        let row = self
            .read_optional(
                "SELECT c.id, c.product, c.start_date, c.expiry_date, c.revoked_at, c.acme_account_id, c.replaced_by, \
                 s.auto_renew AS s_auto_renew, s.expiry_date AS s_expiry_date FROM certificates c \
                 LEFT JOIN subscriptions s ON s.id = c.subscription_id WHERE c.issuer_id = ? AND c.serial_hex = ?",
                &[Arg::from(issuer_id), Arg::from(serial_hex)],
            )
            .await?;
        let Some(r) = row else { return Ok(None) };
        let auto: Option<i64> = r.col("s_auto_renew")?;
        let end: Option<i64> = r.col("s_expiry_date")?;
        Ok(Some(AriFacts {
            certificate_id: r.col("id")?,
            product: r.col("product")?,
            start_date: r.col("start_date")?,
            expiry_date: r.col("expiry_date")?,
            revoked_at: r.col("revoked_at")?,
            acme_account_id: r.col("acme_account_id")?,
            replaced_by: r.col("replaced_by")?,
            subscription: auto.zip(end).map(|(a, e)| (a != 0, e)),
        }))
    }

    /// Marks `old` as replaced by `new`; false if it already was.
    pub async fn acme_mark_replaced(&self, tx: &mut Tx, old: i64, new: i64) -> Result<bool> {
        let r = tx
            .exec(
                "UPDATE certificates SET replaced_by = ? WHERE id = ? AND replaced_by IS NULL",
                &[Arg::from(new), Arg::from(old)],
            )
            .await?;
        Ok(r.rows_affected() > 0)
    }

    // ------------------------------------------------------------ nonces

    /// Records distinct nonces as used in one statement; returns those that
    /// were not used before (the others are replays).
    pub async fn acme_use_nonces(
        &self,
        nonces: &[(&str, i64)],
    ) -> Result<std::collections::HashSet<String>> {
        if nonces.is_empty() {
            return Ok(Default::default());
        }
        let sql = format!(
            "INSERT INTO acme_nonces (nonce, expires_at) VALUES {} ON CONFLICT (nonce) DO NOTHING RETURNING nonce",
            vec!["(?, ?)"; nonces.len()].join(", ")
        );
        let args: Vec<Arg> = nonces
            .iter()
            .flat_map(|(n, e)| [Arg::from(*n), Arg::Int(*e)])
            .collect();
        self.write_rows_dyn(&sql, &args)
            .await?
            .iter()
            .map(|r| r.col_at(0))
            .collect()
    }

    /// Forgets used nonces that expired (they fail the age check anyway).
    pub async fn acme_purge_nonces(&self, now: i64) -> Result<u64> {
        let r = self
            .write(
                "DELETE FROM acme_nonces WHERE expires_at < ?",
                &[Arg::from(now)],
            )
            .await?;
        Ok(r.rows_affected())
    }
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}
