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
macro_rules! bind_subscription {
    ($q:expr, $s:expr) => {
        $q.bind($s.customer_id)
            .bind($s.customer.clone())
            .bind($s.product.clone())
            .bind(crate::to_json(&$s.domain_names))
            .bind($s.organization.clone())
            .bind($s.address.clone())
            .bind($s.city.clone())
            .bind($s.state.clone())
            .bind($s.postal_code.clone())
            .bind($s.country.clone())
            .bind($s.approver.clone())
            .bind(i64::from($s.auto_renew))
            .bind($s.period)
            .bind($s.cert_validity)
            .bind($s.months_paid)
            .bind($s.created_at)
            .bind($s.updated_at)
            .bind($s.expiry_date)
            .bind($s.term_state.clone())
            .bind($s.org_state.clone())
            .bind($s.status.clone())
            .bind($s.org_valid_until)
            .bind($s.org_process_id)
            .bind($s.approved_organization.clone())
            .bind($s.approved_country.clone())
            .bind($s.approved_state.clone())
            .bind($s.approved_city.clone())
            .bind($s.eab_kid.clone())
            .bind($s.eab_hmac_sealed.clone())
            .bind($s.eab_created_at)
            .bind($s.deleted_at)
    };
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
        let q = sqlx::query_scalar(self.sql(
            "INSERT INTO subscriptions (customer_id, customer, product, domain_names, organization, address, city, state, \
             postal_code, country, approver, auto_renew, period, cert_validity, months_paid, created_at, updated_at, \
             expiry_date, term_state, org_state, status, org_valid_until, org_process_id, approved_organization, \
             approved_country, approved_state, approved_city, eab_kid, eab_hmac_sealed, eab_created_at, deleted_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        ));
        let id: i64 = bind_subscription!(q, s).fetch_one(&mut **tx).await?;
        Ok(id)
    }

    /// Writes every column of `s` back (the row was read in this transaction).
    pub async fn save_subscription(&self, tx: &mut Tx, s: &Subscription) -> Result<()> {
        let q = sqlx::query(self.sql(
            "UPDATE subscriptions SET customer_id = ?, customer = ?, product = ?, domain_names = ?, organization = ?, \
             address = ?, city = ?, state = ?, postal_code = ?, country = ?, approver = ?, auto_renew = ?, period = ?, \
             cert_validity = ?, months_paid = ?, created_at = ?, updated_at = ?, expiry_date = ?, term_state = ?, \
             org_state = ?, status = ?, org_valid_until = ?, org_process_id = ?, approved_organization = ?, \
             approved_country = ?, approved_state = ?, approved_city = ?, eab_kid = ?, eab_hmac_sealed = ?, \
             eab_created_at = ?, deleted_at = ? WHERE id = ?",
        ));
        bind_subscription!(q, s)
            .bind(s.id)
            .execute(&mut **tx)
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
        let row = sqlx::query(self.sql(sql))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        row.as_ref().map(subscription_from_row).transpose()
    }

    pub async fn insert_org_validation(&self, tx: &mut Tx, v: &OrgValidation) -> Result<i64> {
        Ok(sqlx::query_scalar(self.sql(
            "INSERT INTO org_validations (customer_id, subscription_id, process_id, organization, country, state, city, \
             address, postal_code, org_key, status, reason, created_at, decided_at, valid_until) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        ))
        .bind(v.customer_id)
        .bind(v.subscription_id)
        .bind(v.process_id)
        .bind(v.organization.clone())
        .bind(v.country.clone())
        .bind(v.state.clone())
        .bind(v.city.clone())
        .bind(v.address.clone())
        .bind(v.postal_code.clone())
        .bind(v.org_key.clone())
        .bind(v.status.clone())
        .bind(v.reason.clone())
        .bind(v.created_at)
        .bind(v.decided_at)
        .bind(v.valid_until)
        .fetch_one(&mut **tx)
        .await?)
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
        let row = sqlx::query(self.sql(sql))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        row.as_ref().map(org_validation_from_row).transpose()
    }

    pub async fn org_validation_by_process(
        &self,
        tx: &mut Tx,
        process_id: i64,
    ) -> Result<Option<OrgValidation>> {
        let row = sqlx::query(
            self.sql("SELECT * FROM org_validations WHERE process_id = ? ORDER BY id DESC LIMIT 1"),
        )
        .bind(process_id)
        .fetch_optional(&mut **tx)
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
        let row = sqlx::query(self.sql(
            "SELECT * FROM org_validations WHERE customer_id = ? AND org_key = ? AND status = 'APPROVED' \
             AND valid_until > ? ORDER BY valid_until DESC, id DESC LIMIT 1",
        ))
        .bind(customer_id)
        .bind(org_key.to_string())
        .bind(now)
        .fetch_optional(&mut **tx)
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
        sqlx::query(
            self.sql("UPDATE org_validations SET status = ?, reason = ?, decided_at = ?, valid_until = ? WHERE id = ?"),
        )
        .bind(status.to_string())
        .bind(reason.map(str::to_string))
        .bind(decided_at)
        .bind(valid_until)
        .bind(id)
        .execute(&mut **tx)
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
        let rows = sqlx::query(
            self.sql("SELECT * FROM org_validations WHERE subscription_id = ? AND status = 'PENDING' ORDER BY id"),
        )
        .bind(subscription_id)
        .fetch_all(&mut **tx)
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
        let ids: Vec<i64> = sqlx::query_scalar(self.sql(
            "UPDATE certificates SET status = 'REVOKED', revoked_at = ?, revocation_reason = 'CESSATION_OF_OPERATION' \
             WHERE subscription_id = ? AND revoked_at IS NULL AND expiry_date > ? RETURNING id",
        ))
        .bind(now)
        .bind(subscription_id)
        .bind(now)
        .fetch_all(&mut **tx)
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
        sqlx::query(self.sql(
            "WITH RECURSIVE seq(n) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT n + 1 FROM seq WHERE n < ?) \
             INSERT INTO subscriptions (customer_id, customer, product, domain_names, auto_renew, period, months_paid, \
             created_at, expiry_date, term_state, org_state, status, eab_kid, eab_hmac_sealed, eab_created_at) \
             SELECT ?, ?, 'sectigo_dv_acme', '[\"bench.example\"]', 0, 12, 12, ?, \
             CASE WHEN n <= ? THEN ? ELSE ? END, 'ACTIVE', 'NONE', 'ACTIVE', 'bench-' || CAST(n AS TEXT), ?, ? FROM seq",
        ))
        .bind(total)
        .bind(customer_id)
        .bind(customer.to_string())
        .bind(due_at - 365 * 86_400)
        .bind(due)
        .bind(due_at)
        .bind(later)
        .bind(vec![0u8; 1])
        .bind(due_at - 365 * 86_400)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO jobs (kind, subject_id, due_at) SELECT 'sub.expire', id, expiry_date FROM subscriptions \
             WHERE eab_kid LIKE 'bench-%'",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // Fresh statistics, as a long-running database would have them.
        sqlx::raw_sql("ANALYZE subscriptions; ANALYZE jobs")
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
