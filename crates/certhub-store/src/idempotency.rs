//! Idempotency keys of `/v2` mutations (design.md, `Idempotency-Key`).
//!
//! "Never charge twice" needs the key claimed in the *same* transaction as
//! the state change it guards: claimed earlier, a crash in between would
//! block a command that never ran; claimed later, a crash in between would
//! let a retry run it again. So the claim rides on the request's first
//! commit: the REST layer runs the handler inside [`Claim::scope`], and
//! [`crate::Tx::commit`] upserts the claim row just before committing. If
//! another request holds the key, that commit rolls back and fails with
//! `StoreError::IdempotencyConflict`, so the state change happens once.
//!
//! The claim is a task-local rather than a parameter so that every use case
//! is covered, including those written later, without threading it through
//! each of them. A request that commits nothing (refused before any state
//! change) claims nothing, and a retry runs again.

use crate::read::Arg;
use std::future::Future;
use std::sync::{Arc, Mutex};

use sqlx::Row;

use crate::db::translate_cached;
use crate::{Db, Dialect, Result, Tx};

/// How long a key's first response is replayed.
pub const TTL_SECS: i64 = 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimState {
    /// Nothing committed yet inside the request.
    Unclaimed,
    /// The request's first commit holds the key.
    Claimed,
    /// Another request held the key; this request's commit was rolled back.
    Conflict,
}

/// One request's claim on `(api_key_id, key)`.
#[derive(Debug)]
pub struct Claim {
    pub api_key_id: i64,
    pub key: String,
    /// Hex SHA-256 of method, path, query and body: a retry must be identical.
    pub request_hash: String,
    pub now: i64,
    state: Mutex<ClaimState>,
}

tokio::task_local! {
    static CLAIM: Arc<Claim>;
}

impl Claim {
    pub fn new(api_key_id: i64, key: String, request_hash: String, now: i64) -> Arc<Claim> {
        Arc::new(Claim {
            api_key_id,
            key,
            request_hash,
            now,
            state: Mutex::new(ClaimState::Unclaimed),
        })
    }

    /// Runs `f` (the request's handler) with this claim riding on its commits.
    pub async fn scope<F: Future>(self: &Arc<Self>, f: F) -> F::Output {
        CLAIM.scope(self.clone(), f).await
    }

    pub fn state(&self) -> ClaimState {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_state(&self, s: ClaimState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }
}

/// The current task's claim, if it has not claimed (or lost) its key yet.
pub(crate) fn unclaimed() -> Option<Arc<Claim>> {
    CLAIM
        .try_with(|c| (c.state() == ClaimState::Unclaimed).then(|| c.clone()))
        .ok()
        .flatten()
}

/// Inserts the claim row inside `tx`; false if a live row (another request's,
/// younger than [`TTL_SECS`]) holds the key. An expired row is taken over.
pub(crate) async fn claim_in(tx: &mut Tx, c: &Claim) -> Result<bool> {
    const SQL: &str = "INSERT INTO idempotency_keys (api_key_id, key, request_hash, created_at, response) \
         VALUES (?, ?, ?, ?, NULL) ON CONFLICT (api_key_id, key) DO UPDATE SET \
         request_hash = excluded.request_hash, created_at = excluded.created_at, response = NULL \
         WHERE idempotency_keys.created_at <= ?";
    let sql = match tx.dialect() {
        Dialect::Sqlite => SQL,
        Dialect::Postgres => translate_cached(SQL),
    };
    let done = tx
        .exec(
            sql,
            &[
                Arg::from(c.api_key_id),
                Arg::from(c.key.clone()),
                Arg::from(c.request_hash.clone()),
                Arg::from(c.now),
                Arg::from(c.now - TTL_SECS),
            ],
        )
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A claimed key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    pub created_at: i64,
    /// The sealed response (base64), once known.
    pub response: Option<String>,
}

impl Db {
    /// The live record of `(api_key_id, key)`; expired rows count as absent.
    pub async fn idempotency_record(
        &self,
        api_key_id: i64,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>> {
        let row = sqlx::query(self.sql(
            "SELECT request_hash, created_at, response FROM idempotency_keys \
             WHERE api_key_id = ? AND key = ? AND created_at > ?",
        ))
        .bind(api_key_id)
        .bind(key.to_string())
        .bind(now - TTL_SECS)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(IdempotencyRecord {
                request_hash: r.try_get("request_hash")?,
                created_at: r.try_get("created_at")?,
                response: r.try_get("response")?,
            })
        })
        .transpose()
    }

    /// Stores the response of the request that claimed the key.
    pub async fn idempotency_finish(
        &self,
        api_key_id: i64,
        key: &str,
        request_hash: &str,
        response: &str,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.exec(
            "UPDATE idempotency_keys SET response = ? \
             WHERE api_key_id = ? AND key = ? AND request_hash = ? AND response IS NULL",
            &[
                Arg::from(response.to_string()),
                Arg::from(api_key_id),
                Arg::from(key.to_string()),
                Arg::from(request_hash.to_string()),
            ],
        )
        .await?;
        tx.commit().await
    }

    /// Deletes records older than [`TTL_SECS`] (idempotent on every node).
    pub async fn idempotency_purge(&self, now: i64) -> Result<u64> {
        let done = self
            .write(
                "DELETE FROM idempotency_keys WHERE created_at <= ?",
                &[Arg::from(now - TTL_SECS)],
            )
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        (dir, db)
    }

    async fn write_one(db: &Db, n: i64) -> Result<()> {
        let mut tx = db.begin().await?;
        tx.exec(
            "INSERT INTO rate_limits (key, window_start, count) VALUES ('t', ?, 1)",
            &[Arg::from(n)],
        )
        .await?;
        tx.commit().await
    }

    async fn rows(db: &Db) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM rate_limits")
            .fetch_one(db.pool())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_first_commit_claims_and_a_second_request_is_rolled_back() {
        let (_d, db) = db().await;
        let a = Claim::new(1, "k".into(), "h".into(), 1_000);
        a.scope(async {
            write_one(&db, 1).await.unwrap();
            // Later commits of the same request are not claims.
            write_one(&db, 2).await.unwrap();
        })
        .await;
        assert_eq!(a.state(), ClaimState::Claimed);
        let b = Claim::new(1, "k".into(), "h".into(), 1_001);
        let r = b.scope(write_one(&db, 3)).await;
        assert!(matches!(r, Err(crate::StoreError::IdempotencyConflict)));
        assert_eq!(b.state(), ClaimState::Conflict);
        assert_eq!(rows(&db).await, 2, "the conflicting write was rolled back");
        // Another API key, or no key at all, is unaffected.
        let c = Claim::new(2, "k".into(), "h".into(), 1_001);
        c.scope(write_one(&db, 4)).await.unwrap();
        write_one(&db, 5).await.unwrap();
        assert_eq!(rows(&db).await, 4);

        let rec = db.idempotency_record(1, "k", 1_002).await.unwrap().unwrap();
        assert_eq!((rec.request_hash.as_str(), rec.response), ("h", None));
        db.idempotency_finish(1, "k", "h", "sealed").await.unwrap();
        let rec = db.idempotency_record(1, "k", 1_002).await.unwrap().unwrap();
        assert_eq!(rec.response.as_deref(), Some("sealed"));
    }

    #[tokio::test]
    async fn an_expired_key_is_claimed_again_and_purged() {
        let (_d, db) = db().await;
        let a = Claim::new(1, "k".into(), "h1".into(), 1_000);
        a.scope(write_one(&db, 1)).await.unwrap();
        let later = 1_000 + TTL_SECS;
        assert!(
            db.idempotency_record(1, "k", later)
                .await
                .unwrap()
                .is_none()
        );
        let b = Claim::new(1, "k".into(), "h2".into(), later);
        b.scope(write_one(&db, 2)).await.unwrap();
        assert_eq!(b.state(), ClaimState::Claimed);
        let rec = db.idempotency_record(1, "k", later).await.unwrap().unwrap();
        assert_eq!(rec.request_hash, "h2");
        assert_eq!(db.idempotency_purge(later + TTL_SECS).await.unwrap(), 1);
    }
}
