//! ACME subscriptions: rows, EAB look-ups and organisation validations.
//!
//! Every write takes the caller's transaction, so a state change is committed
//! together with its process, ledger rows, jobs and audit, or not at all.

use crate::read::{Arg, Cols};

use crate::list::{Field, FieldType, Resource};
use crate::{Db, Dialect, Result, Tx};

/// What the ACME server needs to bind an account: the subscription behind
/// an EAB key id, with its sealed MAC key.
#[derive(Debug, Clone)]
pub struct EabBinding {
    pub subscription_id: i64,
    pub customer_id: i64,
    pub product: String,
    /// Sealed under the KEK with context `"eab"`.
    pub hmac_sealed: Vec<u8>,
    pub deleted: bool,
}

/// One subscription row. Times are Unix seconds; `domain_names` and
/// `approver` are JSON texts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subscription {
    pub id: i64,
    pub customer_id: i64,
    pub customer: String,
    pub product: String,
    pub domain_names: Vec<String>,
    pub organization: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    /// JSON object text.
    pub approver: Option<String>,
    pub auto_renew: bool,
    /// Months bought by the next (auto-)renewal.
    pub period: i64,
    pub cert_validity: Option<i64>,
    /// Total months paid since creation.
    pub months_paid: i64,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    pub expiry_date: i64,
    pub term_state: String,
    pub org_state: String,
    pub status: String,
    pub org_valid_until: Option<i64>,
    pub org_process_id: Option<i64>,
    pub approved_organization: Option<String>,
    pub approved_country: Option<String>,
    pub approved_state: Option<String>,
    pub approved_city: Option<String>,
    pub eab_kid: String,
    pub eab_hmac_sealed: Vec<u8>,
    pub eab_created_at: i64,
    pub deleted_at: Option<i64>,
}

/// An organisation validation (one per validateOrganization process).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrgValidation {
    pub id: i64,
    pub customer_id: i64,
    pub subscription_id: Option<i64>,
    pub process_id: i64,
    pub organization: String,
    pub country: String,
    pub state: Option<String>,
    pub city: Option<String>,
    pub address: Option<String>,
    pub postal_code: Option<String>,
    pub org_key: String,
    /// PENDING | APPROVED | REJECTED | CANCELLED
    pub status: String,
    pub reason: Option<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub valid_until: Option<i64>,
}

/// `GET /v2/ssl/acme` listing: the caller's undeleted subscriptions.
pub static SUBSCRIPTIONS: Resource = Resource {
    from: "subscriptions",
    scope: "customer_id",
    base_where: "deleted_at IS NULL",
    fields: &[
        Field {
            name: "id",
            column: "id",
            ty: FieldType::Int,
        },
        Field {
            name: "product",
            column: "product",
            ty: FieldType::Text,
        },
        Field {
            name: "domainNames",
            column: "domain_names",
            ty: FieldType::JsonArray,
        },
        Field {
            name: "organization",
            column: "organization",
            ty: FieldType::Text,
        },
        Field {
            name: "address",
            column: "address",
            ty: FieldType::Text,
        },
        Field {
            name: "city",
            column: "city",
            ty: FieldType::Text,
        },
        Field {
            name: "state",
            column: "state",
            ty: FieldType::Text,
        },
        Field {
            name: "postalCode",
            column: "postal_code",
            ty: FieldType::Text,
        },
        Field {
            name: "country",
            column: "country",
            ty: FieldType::Text,
        },
        Field {
            name: "createdDate",
            column: "created_at",
            ty: FieldType::Time,
        },
        Field {
            name: "updatedDate",
            column: "updated_at",
            ty: FieldType::Time,
        },
        Field {
            name: "expiryDate",
            column: "expiry_date",
            ty: FieldType::Time,
        },
        Field {
            name: "orgValidUntil",
            column: "org_valid_until",
            ty: FieldType::Time,
        },
        Field {
            name: "status",
            column: "status",
            ty: FieldType::Text,
        },
        Field {
            name: "autoRenew",
            column: "auto_renew",
            ty: FieldType::Bool,
        },
        Field {
            name: "period",
            column: "period",
            ty: FieldType::Int,
        },
        Field {
            name: "directoryUrl",
            column: "product",
            ty: FieldType::Text,
        },
    ],
    q_columns: &["domain_names", "product", "organization", "status"],
    select: "*",
    default_order: "id DESC",
    counted: Some("subscriptions"),
};

pub fn subscription_from_row(r: &impl Cols) -> Result<Subscription> {
    let names: String = r.col("domain_names")?;
    Ok(Subscription {
        id: r.col("id")?,
        customer_id: r.col("customer_id")?,
        customer: r.col("customer")?,
        product: r.col("product")?,
        domain_names: crate::from_json(&names)?,
        organization: r.col("organization")?,
        address: r.col("address")?,
        city: r.col("city")?,
        state: r.col("state")?,
        postal_code: r.col("postal_code")?,
        country: r.col("country")?,
        approver: r.col("approver")?,
        auto_renew: r.col::<i64>("auto_renew")? != 0,
        period: r.col("period")?,
        cert_validity: r.col("cert_validity")?,
        months_paid: r.col("months_paid")?,
        created_at: r.col("created_at")?,
        updated_at: r.col("updated_at")?,
        expiry_date: r.col("expiry_date")?,
        term_state: r.col("term_state")?,
        org_state: r.col("org_state")?,
        status: r.col("status")?,
        org_valid_until: r.col("org_valid_until")?,
        org_process_id: r.col("org_process_id")?,
        approved_organization: r.col("approved_organization")?,
        approved_country: r.col("approved_country")?,
        approved_state: r.col("approved_state")?,
        approved_city: r.col("approved_city")?,
        eab_kid: r.col("eab_kid")?,
        eab_hmac_sealed: r.col("eab_hmac_sealed")?,
        eab_created_at: r.col("eab_created_at")?,
        deleted_at: r.col("deleted_at")?,
    })
}

fn org_validation_from_row(r: &impl Cols) -> Result<OrgValidation> {
    Ok(OrgValidation {
        id: r.col("id")?,
        customer_id: r.col("customer_id")?,
        subscription_id: r.col("subscription_id")?,
        process_id: r.col("process_id")?,
        organization: r.col("organization")?,
        country: r.col("country")?,
        state: r.col("state")?,
        city: r.col("city")?,
        address: r.col("address")?,
        postal_code: r.col("postal_code")?,
        org_key: r.col("org_key")?,
        status: r.col("status")?,
        reason: r.col("reason")?,
        created_at: r.col("created_at")?,
        decided_at: r.col("decided_at")?,
        valid_until: r.col("valid_until")?,
    })
}

/// Binds every column of the subscription (insert/update column order).
/// The bound values of every subscription column, in the column order of
/// `insert_subscription` and `save_subscription`.
fn subscription_args(s: &Subscription) -> Vec<Arg> {
    vec![
        Arg::from(s.customer_id),
        Arg::from(s.customer.clone()),
        Arg::from(s.product.clone()),
        Arg::from(crate::to_json(&s.domain_names)),
        Arg::from(s.organization.clone()),
        Arg::from(s.address.clone()),
        Arg::from(s.city.clone()),
        Arg::from(s.state.clone()),
        Arg::from(s.postal_code.clone()),
        Arg::from(s.country.clone()),
        Arg::from(s.approver.clone()),
        Arg::from(i64::from(s.auto_renew)),
        Arg::from(s.period),
        Arg::from(s.cert_validity),
        Arg::from(s.months_paid),
        Arg::from(s.created_at),
        Arg::from(s.updated_at),
        Arg::from(s.expiry_date),
        Arg::from(s.term_state.clone()),
        Arg::from(s.org_state.clone()),
        Arg::from(s.status.clone()),
        Arg::from(s.org_valid_until),
        Arg::from(s.org_process_id),
        Arg::from(s.approved_organization.clone()),
        Arg::from(s.approved_country.clone()),
        Arg::from(s.approved_state.clone()),
        Arg::from(s.approved_city.clone()),
        Arg::from(s.eab_kid.clone()),
        Arg::from(s.eab_hmac_sealed.clone()),
        Arg::from(s.eab_created_at),
        Arg::from(s.deleted_at),
    ]
}

impl Db {
    pub async fn eab_binding(&self, kid: &str) -> Result<Option<EabBinding>> {
        let row =
            self.read_optional(
            "SELECT id, customer_id, product, eab_hmac_sealed, deleted_at FROM subscriptions WHERE eab_kid = ?",
            &[Arg::from(kid.to_string())],
        )
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(EabBinding {
            subscription_id: r.col("id")?,
            customer_id: r.col("customer_id")?,
            product: r.col("product")?,
            hmac_sealed: r.col("eab_hmac_sealed")?,
            deleted: r.col::<Option<i64>>("deleted_at")?.is_some(),
        }))
    }

    /// Inserts a subscription (its `id` is ignored) and returns the new id.
    pub async fn insert_subscription(&self, tx: &mut Tx, s: &Subscription) -> Result<i64> {
        let id: i64 = tx
            .scalar_one(
                "INSERT INTO subscriptions (customer_id, customer, product, domain_names, organization, address, city, state, \
             postal_code, country, approver, auto_renew, period, cert_validity, months_paid, created_at, updated_at, \
             expiry_date, term_state, org_state, status, org_valid_until, org_process_id, approved_organization, \
             approved_country, approved_state, approved_city, eab_kid, eab_hmac_sealed, eab_created_at, deleted_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                &subscription_args(s),
            )
            .await?;
        Ok(id)
    }

    /// Writes every column of `s` back (the row was read in this transaction).
    pub async fn save_subscription(&self, tx: &mut Tx, s: &Subscription) -> Result<()> {
        let mut args = subscription_args(s);
        args.push(Arg::Int(s.id));
        tx.exec(
            "UPDATE subscriptions SET customer_id = ?, customer = ?, product = ?, domain_names = ?, organization = ?, \
             address = ?, city = ?, state = ?, postal_code = ?, country = ?, approver = ?, auto_renew = ?, period = ?, \
             cert_validity = ?, months_paid = ?, created_at = ?, updated_at = ?, expiry_date = ?, term_state = ?, \
             org_state = ?, status = ?, org_valid_until = ?, org_process_id = ?, approved_organization = ?, \
             approved_country = ?, approved_state = ?, approved_city = ?, eab_kid = ?, eab_hmac_sealed = ?, \
             eab_created_at = ?, deleted_at = ? WHERE id = ?",
            &args,
        )
        .await?;
        Ok(())
    }

    /// Reads a subscription (deleted ones included) outside a transaction.
    pub async fn subscription(&self, id: i64) -> Result<Option<Subscription>> {
        let row = self
            .read_optional("SELECT * FROM subscriptions WHERE id = ?", &[Arg::from(id)])
            .await?;
        row.as_ref().map(subscription_from_row).transpose()
    }

    /// Reads and locks a subscription for the rest of the transaction
    /// (`FOR UPDATE` on PostgreSQL; SQLite's write transaction already is exclusive).
    pub async fn subscription_for_update(
        &self,
        tx: &mut Tx,
        id: i64,
    ) -> Result<Option<Subscription>> {
        let sql = match self.dialect() {
            Dialect::Postgres => "SELECT * FROM subscriptions WHERE id = ? FOR UPDATE",
            Dialect::Sqlite => "SELECT * FROM subscriptions WHERE id = ?",
        };
        let row = tx.fetch_optional(sql, &[Arg::from(id)]).await?;
        row.as_ref().map(subscription_from_row).transpose()
    }

    pub async fn insert_org_validation(&self, tx: &mut Tx, v: &OrgValidation) -> Result<i64> {
        tx.scalar_one("INSERT INTO org_validations (customer_id, subscription_id, process_id, organization, country, state, city, \
             address, postal_code, org_key, status, reason, created_at, decided_at, valid_until) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            &[
                Arg::from(v.customer_id),
                Arg::from(v.subscription_id),
                Arg::from(v.process_id),
                Arg::from(v.organization.clone()),
                Arg::from(v.country.clone()),
                Arg::from(v.state.clone()),
                Arg::from(v.city.clone()),
                Arg::from(v.address.clone()),
                Arg::from(v.postal_code.clone()),
                Arg::from(v.org_key.clone()),
                Arg::from(v.status.clone()),
                Arg::from(v.reason.clone()),
                Arg::from(v.created_at),
                Arg::from(v.decided_at),
                Arg::from(v.valid_until),
            ])
        .await
    }

    pub async fn org_validation_for_update(
        &self,
        tx: &mut Tx,
        id: i64,
    ) -> Result<Option<OrgValidation>> {
        let sql = match self.dialect() {
            Dialect::Postgres => "SELECT * FROM org_validations WHERE id = ? FOR UPDATE",
            Dialect::Sqlite => "SELECT * FROM org_validations WHERE id = ?",
        };
        let row = tx.fetch_optional(sql, &[Arg::from(id)]).await?;
        row.as_ref().map(org_validation_from_row).transpose()
    }

    pub async fn org_validation_by_process(
        &self,
        tx: &mut Tx,
        process_id: i64,
    ) -> Result<Option<OrgValidation>> {
        let row = tx
            .fetch_optional(
                self.sql(
                    "SELECT * FROM org_validations WHERE process_id = ? ORDER BY id DESC LIMIT 1",
                ),
                &[Arg::from(process_id)],
            )
            .await?;
        row.as_ref().map(org_validation_from_row).transpose()
    }

    /// Validations for the operator, oldest first; `status` filters.
    pub async fn list_org_validations(&self, status: Option<&str>) -> Result<Vec<OrgValidation>> {
        let rows = match status {
            Some(s) => {
                self.read_all(
                    "SELECT * FROM org_validations WHERE status = ? ORDER BY id",
                    &[Arg::from(s.to_string())],
                )
                .await?
            }
            None => {
                self.read_all("SELECT * FROM org_validations ORDER BY id", &[])
                    .await?
            }
        };
        rows.iter().map(org_validation_from_row).collect()
    }

    /// The newest approval of this organisation for this customer that is
    /// still valid at `now` (reuse for a new subscription).
    pub async fn reusable_org_validation(
        &self,
        tx: &mut Tx,
        customer_id: i64,
        org_key: &str,
        now: i64,
    ) -> Result<Option<OrgValidation>> {
        let row = tx.fetch_optional("SELECT * FROM org_validations WHERE customer_id = ? AND org_key = ? AND status = 'APPROVED' \
             AND valid_until > ? ORDER BY valid_until DESC, id DESC LIMIT 1",
            &[
                Arg::from(customer_id),
                Arg::from(org_key.to_string()),
                Arg::from(now),
            ])
        .await?;
        row.as_ref().map(org_validation_from_row).transpose()
    }

    /// Records the decision on a validation.
    pub async fn decide_org_validation(
        &self,
        tx: &mut Tx,
        id: i64,
        status: &str,
        reason: Option<&str>,
        decided_at: i64,
        valid_until: Option<i64>,
    ) -> Result<()> {
        tx.exec("UPDATE org_validations SET status = ?, reason = ?, decided_at = ?, valid_until = ? WHERE id = ?",
            &[
                Arg::from(status.to_string()),
                Arg::from(reason.map(str::to_string)),
                Arg::from(decided_at),
                Arg::from(valid_until),
                Arg::from(id),
            ])
        .await?;
        Ok(())
    }

    /// Pending validations of a subscription (cancelled on delete or when a
    /// new validation supersedes them).
    pub async fn pending_org_validations(
        &self,
        tx: &mut Tx,
        subscription_id: i64,
    ) -> Result<Vec<OrgValidation>> {
        let rows = tx.fetch_all("SELECT * FROM org_validations WHERE subscription_id = ? AND status = 'PENDING' ORDER BY id",
            &[
                Arg::from(subscription_id),
            ])
        .await?;
        rows.iter().map(org_validation_from_row).collect()
    }

    /// Marks every unexpired, unrevoked certificate issued under the
    /// subscription as revoked (cessationOfOperation) and returns their ids;
    /// the CA publishes the revocation in its next CRL/OCSP refresh.
    pub async fn revoke_subscription_certificates(
        &self,
        tx: &mut Tx,
        subscription_id: i64,
        now: i64,
    ) -> Result<Vec<i64>> {
        let ids: Vec<i64> = tx.scalar_all("UPDATE certificates SET status = 'REVOKED', revoked_at = ?, revocation_reason = 'CESSATION_OF_OPERATION' \
             WHERE subscription_id = ? AND revoked_at IS NULL AND expiry_date > ? RETURNING id",
            &[
                Arg::from(now),
                Arg::from(subscription_id),
                Arg::from(now),
            ])
        .await?;
        Ok(ids)
    }

    /// Benchmark support: inserts `total` DV subscriptions of one customer
    /// (EAB kids `bench-N`), the first `due` of them expiring at `due_at` and
    /// the rest at `later`, each with its `sub.expire` job. Returns nothing;
    /// not used by the program.
    #[doc(hidden)]
    pub async fn bench_seed_subscriptions(
        &self,
        customer_id: i64,
        customer: &str,
        total: i64,
        due: i64,
        due_at: i64,
        later: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.exec("WITH RECURSIVE seq(n) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT n + 1 FROM seq WHERE n < ?) \
             INSERT INTO subscriptions (customer_id, customer, product, domain_names, auto_renew, period, months_paid, \
             created_at, expiry_date, term_state, org_state, status, eab_kid, eab_hmac_sealed, eab_created_at) \
             SELECT ?, ?, 'sectigo_dv_acme', '[\"bench.example\"]', 0, 12, 12, ?, \
             CASE WHEN n <= ? THEN ? ELSE ? END, 'ACTIVE', 'NONE', 'ACTIVE', 'bench-' || CAST(n AS TEXT), ?, ? FROM seq",
            &[
                Arg::from(total),
                Arg::from(customer_id),
                Arg::from(customer.to_string()),
                Arg::from(due_at - 365 * 86_400),
                Arg::from(due),
                Arg::from(due_at),
                Arg::from(later),
                Arg::from(vec![0u8; 1]),
                Arg::from(due_at - 365 * 86_400),
            ])
        .await?;
        tx.exec("INSERT INTO jobs (kind, subject_id, due_at) SELECT 'sub.expire', id, expiry_date FROM subscriptions \
             WHERE eab_kid LIKE 'bench-%'", &[])
        .await?;
        tx.commit().await?;
        // Fresh statistics, as a long-running database would have them.
        sqlx::raw_sql("ANALYZE subscriptions; ANALYZE jobs")
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
