//! The append-only audit trail. Callers never pass secrets in `detail`.

use crate::read::Arg;
use crate::{Db, Result, Tx};

impl Db {
    pub async fn audit(
        &self,
        tx: &mut Tx,
        at: i64,
        actor: &str,
        customer_id: Option<i64>,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> Result<()> {
        tx.exec("INSERT INTO audit (at, actor, customer_id, action, subject, detail) VALUES (?, ?, ?, ?, ?, ?)",
            &[
                Arg::from(at),
                Arg::from(actor.to_string()),
                Arg::from(customer_id),
                Arg::from(action.to_string()),
                Arg::from(subject.to_string()),
                Arg::from(detail.to_string()),
            ])
        .await?;
        Ok(())
    }
}

/// One audit record, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub customer_id: Option<i64>,
    pub action: String,
    pub subject: Option<String>,
    pub detail: Option<String>,
}

/// Filters of `admin audit`; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub customer_id: Option<i64>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub action_prefix: Option<String>,
    pub subject: Option<String>,
}

impl Db {
    /// Audit records matching `f`, oldest first.
    pub async fn audit_list(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let mut sql = String::from(
            "SELECT id, at, actor, customer_id, action, subject, detail FROM audit WHERE 1 = 1",
        );
        if f.customer_id.is_some() {
            sql.push_str(" AND customer_id = ?");
        }
        if f.since.is_some() {
            sql.push_str(" AND at >= ?");
        }
        if f.until.is_some() {
            sql.push_str(" AND at < ?");
        }
        if f.action_prefix.is_some() {
            sql.push_str(" AND action LIKE ? ESCAPE '\\'");
        }
        if f.subject.is_some() {
            sql.push_str(" AND subject = ?");
        }
        sql.push_str(" ORDER BY id");
        let mut q = sqlx::query_as::<
            _,
            (
                i64,
                i64,
                String,
                Option<i64>,
                String,
                Option<String>,
                Option<String>,
            ),
        >(self.sql_dyn(&sql));
        if let Some(c) = f.customer_id {
            q = q.bind(c);
        }
        if let Some(s) = f.since {
            q = q.bind(s);
        }
        if let Some(u) = f.until {
            q = q.bind(u);
        }
        if let Some(p) = &f.action_prefix {
            let escaped = p
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            q = q.bind(format!("{escaped}%"));
        }
        if let Some(s) = &f.subject {
            q = q.bind(s.clone());
        }
        let rows = q.fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, at, actor, customer_id, action, subject, detail)| AuditRecord {
                    id,
                    at,
                    actor,
                    customer_id,
                    action,
                    subject,
                    detail,
                },
            )
            .collect())
    }
}
