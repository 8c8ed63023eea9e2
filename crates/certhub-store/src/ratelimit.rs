//! Fixed-window rate-limit counters, shared by every node through the store.
//! The app keeps an in-process cache in front of them (certhub-app `ratelimit`).

use crate::read::{Arg, Cols};
use crate::{Db, Result, StoreError};

impl Db {
    /// Adds `n` to the counter of `(key, window_start)` in one atomic upsert
    /// and returns the new total, as seen by every node.
    pub async fn ratelimit_add(&self, key: &str, window_start: i64, n: i64) -> Result<i64> {
        let row = self
            .write_returning(
                "INSERT INTO rate_limits (key, window_start, count) VALUES (?, ?, ?) \
                 ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + excluded.count \
                 RETURNING count",
                &[Arg::from(key), Arg::Int(window_start), Arg::Int(n)],
            )
            .await?;
        row.ok_or_else(|| StoreError::Corrupt("the counter upsert returned no row".into()))?
            .col_at(0)
    }

    /// The counter of `(key, window_start)`, 0 when nothing was counted.
    pub async fn ratelimit_get(&self, key: &str, window_start: i64) -> Result<i64> {
        let row = self
            .read_optional(
                "SELECT count FROM rate_limits WHERE key = ? AND window_start = ?",
                &[Arg::from(key), Arg::Int(window_start)],
            )
            .await?;
        let total: Option<i64> = row.map(|r| r.col("count")).transpose()?;
        Ok(total.unwrap_or(0))
    }

    /// Deletes the counters of windows that started before `before`.
    pub async fn ratelimit_purge(&self, before: i64) -> Result<u64> {
        let r = self
            .write(
                "DELETE FROM rate_limits WHERE window_start < ?",
                &[Arg::Int(before)],
            )
            .await?;
        Ok(r.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use crate::Db;

    #[tokio::test]
    async fn upsert_counts_atomically_per_window() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        db.migrate().await.unwrap();
        assert_eq!(db.ratelimit_get("k", 100).await.unwrap(), 0);
        assert_eq!(db.ratelimit_add("k", 100, 1).await.unwrap(), 1);
        assert_eq!(db.ratelimit_add("k", 100, 5).await.unwrap(), 6);
        assert_eq!(db.ratelimit_add("k", 200, 1).await.unwrap(), 1);
        assert_eq!(db.ratelimit_add("other", 100, 1).await.unwrap(), 1);
        assert_eq!(db.ratelimit_get("k", 100).await.unwrap(), 6);
        // Concurrent increments never lose a count.
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let db = db.clone();
            set.spawn(async move { db.ratelimit_add("c", 1, 1).await.unwrap() });
        }
        let mut seen: Vec<i64> = set.join_all().await;
        seen.sort();
        assert_eq!(seen, (1..=20).collect::<Vec<_>>());
        assert_eq!(db.ratelimit_purge(150).await.unwrap(), 3);
        assert_eq!(db.ratelimit_get("k", 200).await.unwrap(), 1);
    }
}
