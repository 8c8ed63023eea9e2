//! The durable job table of the lifecycle engine.
//!
//! A job is (kind, subject, due_at), unique, so scheduling the same
//! transition twice is harmless. Claiming sets a lease; a job whose lease ran
//! out (its node died) is claimed again. Handlers must be idempotent and
//! finish the job in the same transaction as the state change they make.

use crate::read::{Arg, Cols};

use crate::{Db, Result, Tx};

#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub subject_id: i64,
    pub due_at: i64,
    pub attempts: i64,
}

impl Db {
    pub async fn schedule_job(
        &self,
        tx: &mut Tx,
        kind: &str,
        subject_id: i64,
        due_at: i64,
    ) -> Result<()> {
        tx.exec("INSERT INTO jobs (kind, subject_id, due_at) VALUES (?, ?, ?) ON CONFLICT (kind, subject_id, due_at) DO NOTHING",
            &[
                Arg::from(kind.to_string()),
                Arg::from(subject_id),
                Arg::from(due_at),
            ])
        .await?;
        Ok(())
    }

    /// Cancels pending jobs of a kind for a subject (e.g. the expiry job when
    /// the subscription is renewed and a new one is scheduled).
    pub async fn cancel_jobs(
        &self,
        tx: &mut Tx,
        kind: &str,
        subject_id: i64,
        now: i64,
    ) -> Result<()> {
        tx.exec("UPDATE jobs SET done_at = ?, last_error = 'cancelled' WHERE kind = ? AND subject_id = ? AND done_at IS NULL",
            &[
                Arg::from(now),
                Arg::from(kind.to_string()),
                Arg::from(subject_id),
            ])
        .await?;
        Ok(())
    }

    /// Claims up to `limit` due jobs for `owner` with a lease until `lease_until`.
    /// Only rows that are due are touched (indexed on due_at where not done),
    /// so the cost grows with the due work, not with the table.
    pub async fn claim_jobs(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<Job>> {
        let mut tx = self.begin().await?;
        let select = match self.dialect() {
            crate::Dialect::Postgres => {
                "SELECT id FROM jobs WHERE done_at IS NULL AND due_at <= ? AND (lease_until IS NULL OR lease_until < ?) \
                 ORDER BY due_at, id LIMIT ? FOR UPDATE SKIP LOCKED"
            }
            crate::Dialect::Sqlite => {
                "SELECT id FROM jobs WHERE done_at IS NULL AND due_at <= ? AND (lease_until IS NULL OR lease_until < ?) \
                 ORDER BY due_at, id LIMIT ?"
            }
        };
        let ids: Vec<i64> = tx
            .scalar_all(select, &[Arg::from(now), Arg::from(now), Arg::from(limit)])
            .await?;
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            let row = tx.fetch_one("UPDATE jobs SET lease_owner = ?, lease_until = ?, attempts = attempts + 1 WHERE id = ? \
                 RETURNING id, kind, subject_id, due_at, attempts",
                &[
                    Arg::from(owner.to_string()),
                    Arg::from(lease_until),
                    Arg::from(id),
                ])
            .await?;
            jobs.push(Job {
                id: row.col("id")?,
                kind: row.col("kind")?,
                subject_id: row.col("subject_id")?,
                due_at: row.col("due_at")?,
                attempts: row.col("attempts")?,
            });
        }
        tx.commit().await?;
        Ok(jobs)
    }

    /// Marks a job done inside the handler's transaction. Returns false when
    /// another worker already finished it (the handler must then roll back).
    pub async fn finish_job(&self, tx: &mut Tx, job_id: i64, now: i64) -> Result<bool> {
        let r = tx
            .exec(
                "UPDATE jobs SET done_at = ? WHERE id = ? AND done_at IS NULL",
                &[Arg::from(now), Arg::from(job_id)],
            )
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records a failure and retries later with back-off.
    pub async fn retry_job(&self, job_id: i64, error: &str, retry_at: i64) -> Result<()> {
        self.write(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL, last_error = ?, due_at = ? WHERE id = ? AND done_at IS NULL",
            &[Arg::from(error.to_string()), Arg::from(retry_at), Arg::from(job_id)],
        )
        .await?;
        Ok(())
    }

    /// The earliest pending due time (so the engine can sleep until then).
    pub async fn next_job_due(&self) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT MIN(due_at) FROM jobs WHERE done_at IS NULL")
                .fetch_one(self.pool())
                .await?,
        )
    }
}
