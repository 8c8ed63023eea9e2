//! Certificate requests waiting for validation, their DCV entries, completed
//! validations (for reuse) and the operator's outbox of e-mails.

use crate::read::{Arg, Cols};
use serde_json::Value;

use crate::{Db, Dialect, Result, Tx, from_json, to_json};

/// A REST certificate request (request, renew, reissue) until it is issued,
/// cancelled or fails. Keyed by its process.
#[derive(Debug, Clone, Default)]
pub struct CertRequestRow {
    pub process_id: i64,
    pub customer_id: i64,
    pub action: String,
    pub product: String,
    /// What to issue (the app's own JSON shape).
    pub details: Value,
    /// PENDING | ISSUED | CANCELLED | FAILED
    pub status: String,
    /// Engine checks so far (drives the back-off).
    pub checks: i64,
    pub attention: bool,
    pub certificate_id: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// One name's domain-control validation within a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DcvEntry {
    pub id: i64,
    pub process_id: i64,
    pub customer_id: i64,
    pub name: String,
    /// DNS | FILE | EMAIL | REUSED | AUTHKEY
    pub method: String,
    pub token: String,
    pub file_name: Option<String>,
    pub email: Option<String>,
    pub approval_token: Option<String>,
    /// WAITING | ATTENTION | VALIDATED
    pub status: String,
    pub caa_status: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub validated_at: Option<i64>,
}

/// One message of the outbox (SMTP is optional; the operator reads these).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub id: i64,
    pub created_at: i64,
    pub customer_id: Option<i64>,
    pub recipient: String,
    pub subject: String,
    pub body: String,
}

fn outbox_from_row(r: &impl Cols) -> Result<OutboxMessage> {
    Ok(OutboxMessage {
        id: r.col("id")?,
        created_at: r.col("created_at")?,
        customer_id: r.col("customer_id")?,
        recipient: r.col("recipient")?,
        subject: r.col("subject")?,
        body: r.col("body")?,
    })
}

fn request_from_row(r: &impl Cols) -> Result<CertRequestRow> {
    Ok(CertRequestRow {
        process_id: r.col("process_id")?,
        customer_id: r.col("customer_id")?,
        action: r.col("action")?,
        product: r.col("product")?,
        details: from_json(&r.col::<String>("details")?)?,
        status: r.col("status")?,
        checks: r.col("checks")?,
        attention: r.col::<i64>("attention")? != 0,
        certificate_id: r.col("certificate_id")?,
        created_at: r.col("created_at")?,
        expires_at: r.col("expires_at")?,
    })
}

fn entry_from_row(r: &impl Cols) -> Result<DcvEntry> {
    Ok(DcvEntry {
        id: r.col("id")?,
        process_id: r.col("process_id")?,
        customer_id: r.col("customer_id")?,
        name: r.col("name")?,
        method: r.col("method")?,
        token: r.col("token")?,
        file_name: r.col("file_name")?,
        email: r.col("email")?,
        approval_token: r.col("approval_token")?,
        status: r.col("status")?,
        caa_status: r.col("caa_status")?,
        last_error: r.col("last_error")?,
        created_at: r.col("created_at")?,
        validated_at: r.col("validated_at")?,
    })
}

impl Db {
    pub async fn insert_cert_request(
        &self,
        tx: &mut Tx,
        r: &CertRequestRow,
        now: i64,
    ) -> Result<()> {
        tx.exec("INSERT INTO cert_requests (process_id, customer_id, action, product, details, status, checks, attention, \
             certificate_id, created_at, expires_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                Arg::from(r.process_id),
                Arg::from(r.customer_id),
                Arg::from(r.action.clone()),
                Arg::from(r.product.clone()),
                Arg::from(to_json(&r.details)),
                Arg::from(r.status.clone()),
                Arg::from(r.checks),
                Arg::from(i64::from(r.attention)),
                Arg::from(r.certificate_id),
                Arg::from(r.created_at),
                Arg::from(r.expires_at),
                Arg::from(now),
            ])
        .await?;
        Ok(())
    }

    /// The request of a process, locked for the rest of the transaction.
    pub async fn cert_request_for_update(
        &self,
        tx: &mut Tx,
        process_id: i64,
    ) -> Result<Option<CertRequestRow>> {
        let sql = match self.dialect() {
            Dialect::Postgres => "SELECT * FROM cert_requests WHERE process_id = ? FOR UPDATE",
            Dialect::Sqlite => "SELECT * FROM cert_requests WHERE process_id = ?",
        };
        let row = tx.fetch_optional(sql, &[Arg::from(process_id)]).await?;
        row.as_ref().map(request_from_row).transpose()
    }

    pub async fn cert_request(&self, process_id: i64) -> Result<Option<CertRequestRow>> {
        let row = sqlx::query(self.sql("SELECT * FROM cert_requests WHERE process_id = ?"))
            .bind(process_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(request_from_row).transpose()
    }

    /// Saves the mutable parts of a request.
    pub async fn save_cert_request(&self, tx: &mut Tx, r: &CertRequestRow, now: i64) -> Result<()> {
        tx.exec("UPDATE cert_requests SET status = ?, checks = ?, attention = ?, certificate_id = ?, details = ?, updated_at = ? \
             WHERE process_id = ?",
            &[
                Arg::from(r.status.clone()),
                Arg::from(r.checks),
                Arg::from(i64::from(r.attention)),
                Arg::from(r.certificate_id),
                Arg::from(to_json(&r.details)),
                Arg::from(now),
                Arg::from(r.process_id),
            ])
        .await?;
        Ok(())
    }

    pub async fn insert_dcv_entry(&self, tx: &mut Tx, e: &DcvEntry) -> Result<i64> {
        tx.scalar_one("INSERT INTO dcv_entries (process_id, customer_id, name, method, token, file_name, email, approval_token, status, \
             caa_status, last_error, created_at, validated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            &[
                Arg::from(e.process_id),
                Arg::from(e.customer_id),
                Arg::from(e.name.clone()),
                Arg::from(e.method.clone()),
                Arg::from(e.token.clone()),
                Arg::from(e.file_name.clone()),
                Arg::from(e.email.clone()),
                Arg::from(e.approval_token.clone()),
                Arg::from(e.status.clone()),
                Arg::from(e.caa_status.clone()),
                Arg::from(e.last_error.clone()),
                Arg::from(e.created_at),
                Arg::from(e.validated_at),
            ])
        .await
    }

    /// Saves an entry's method, token, e-mail, status and check results.
    pub async fn save_dcv_entry(&self, tx: &mut Tx, e: &DcvEntry) -> Result<()> {
        tx.exec("UPDATE dcv_entries SET method = ?, token = ?, file_name = ?, email = ?, approval_token = ?, status = ?, \
             caa_status = ?, last_error = ?, validated_at = ? WHERE id = ?",
            &[
                Arg::from(e.method.clone()),
                Arg::from(e.token.clone()),
                Arg::from(e.file_name.clone()),
                Arg::from(e.email.clone()),
                Arg::from(e.approval_token.clone()),
                Arg::from(e.status.clone()),
                Arg::from(e.caa_status.clone()),
                Arg::from(e.last_error.clone()),
                Arg::from(e.validated_at),
                Arg::from(e.id),
            ])
        .await?;
        Ok(())
    }

    pub async fn dcv_entries(&self, process_id: i64) -> Result<Vec<DcvEntry>> {
        let rows =
            sqlx::query(self.sql("SELECT * FROM dcv_entries WHERE process_id = ? ORDER BY id"))
                .bind(process_id)
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(entry_from_row).collect()
    }

    pub async fn dcv_entries_tx(&self, tx: &mut Tx, process_id: i64) -> Result<Vec<DcvEntry>> {
        let rows = tx
            .fetch_all(
                "SELECT * FROM dcv_entries WHERE process_id = ? ORDER BY id",
                &[Arg::from(process_id)],
            )
            .await?;
        rows.iter().map(entry_from_row).collect()
    }

    pub async fn dcv_entry_by_approval_token(&self, token: &str) -> Result<Option<DcvEntry>> {
        let row = sqlx::query(self.sql("SELECT * FROM dcv_entries WHERE approval_token = ?"))
            .bind(token.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(entry_from_row).transpose()
    }

    /// Records a completed validation of `domain` for reuse.
    pub async fn record_validation(
        &self,
        tx: &mut Tx,
        customer_id: i64,
        domain: &str,
        method: &str,
        at: i64,
        process_id: Option<i64>,
    ) -> Result<()> {
        tx.exec("INSERT INTO completed_validations (customer_id, domain, method, validated_at, process_id) VALUES (?, ?, ?, ?, ?)",
            &[
                Arg::from(customer_id),
                Arg::from(domain.to_string()),
                Arg::from(method.to_string()),
                Arg::from(at),
                Arg::from(process_id),
            ])
        .await?;
        Ok(())
    }

    /// Methods of the customer's validations of `domain` made at or after `since`.
    pub async fn validations_since(
        &self,
        customer_id: i64,
        domain: &str,
        since: i64,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(self.sql(
            "SELECT method FROM completed_validations WHERE customer_id = ? AND domain = ? AND validated_at >= ? \
             ORDER BY validated_at DESC",
        ))
        .bind(customer_id)
        .bind(domain.to_string())
        .bind(since)
        .fetch_all(self.pool())
        .await?)
    }

    /// Puts a message in the outbox.
    pub async fn insert_outbox(
        &self,
        tx: &mut Tx,
        customer_id: Option<i64>,
        recipient: &str,
        subject: &str,
        body: &str,
        now: i64,
    ) -> Result<i64> {
        tx.scalar_one("INSERT INTO outbox (created_at, customer_id, recipient, subject, body) VALUES (?, ?, ?, ?, ?) RETURNING id",
            &[
                Arg::from(now),
                Arg::from(customer_id),
                Arg::from(recipient.to_string()),
                Arg::from(subject.to_string()),
                Arg::from(body.to_string()),
            ])
        .await
    }

    /// Messages not yet delivered by SMTP (fewer than `max_attempts` tries), oldest first.
    pub async fn undelivered_outbox(
        &self,
        max_attempts: i64,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>> {
        let rows = sqlx::query(self.sql(
            "SELECT id, created_at, customer_id, recipient, subject, body FROM outbox \
             WHERE delivered_at IS NULL AND attempts < ? ORDER BY id LIMIT ?",
        ))
        .bind(max_attempts)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(outbox_from_row).collect()
    }

    /// Records an SMTP delivery attempt (`error` None = delivered).
    pub async fn outbox_attempt(&self, id: i64, error: Option<&str>, now: i64) -> Result<()> {
        match error {
            None => {
                self.write(
                    "UPDATE outbox SET attempts = attempts + 1, delivered_at = ?, last_error = NULL WHERE id = ?",
                    &[Arg::from(now), Arg::from(id)],
                )
                .await?
            }
            Some(e) => {
                self.write(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                    &[Arg::from(e.to_string()), Arg::from(id)],
                )
                .await?
            }
        };
        Ok(())
    }

    /// The outbox, oldest first.
    pub async fn outbox_messages(&self) -> Result<Vec<OutboxMessage>> {
        let rows = sqlx::query(
            "SELECT id, created_at, customer_id, recipient, subject, body FROM outbox ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(outbox_from_row).collect()
    }

    /// Sets or clears a process's `statusDetail` (`update_process` cannot clear).
    pub async fn set_process_status_detail(
        &self,
        tx: &mut Tx,
        process_id: i64,
        detail: Option<&str>,
    ) -> Result<()> {
        tx.exec(
            "UPDATE processes SET status_detail = ? WHERE id = ?",
            &[Arg::from(detail.map(str::to_string)), Arg::from(process_id)],
        )
        .await?;
        Ok(())
    }
}
