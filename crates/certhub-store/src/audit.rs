//! The append-only audit trail. Callers never pass secrets in `detail`.

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
        sqlx::query(self.sql(
            "INSERT INTO audit (at, actor, customer_id, action, subject, detail) VALUES (?, ?, ?, ?, ?, ?)",
        ))
        .bind(at)
        .bind(actor.to_string())
        .bind(customer_id)
        .bind(action.to_string())
        .bind(subject.to_string())
        .bind(detail.to_string())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
