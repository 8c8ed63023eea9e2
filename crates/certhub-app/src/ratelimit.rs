//! Rate limits: fixed windows counted in the store (so every node sees them)
//! behind an in-process cache (so the hot path does not write on every
//! request when a limit is large).
//!
//! How the cache stays correct: a node counts each request locally at once
//! and decides on `store total at last sync + in-flight + local`. It flushes
//! its local count to the store in batches of `max(1, limit / 20)`; each flush
//! returns the cluster-wide total. So one node alone decides exactly, and with
//! N nodes a window can overshoot by at most `(N - 1) * batch` (5 % of the
//! limit per extra node). Limits below 20 per window are written through on
//! every request and are exact. A store failure fails open (the request is
//! served and logged): a rate limiter must not turn a database hiccup into an
//! outage.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::{App, AppError};

/// `max` events per `window_secs` (fixed windows aligned on the epoch).
/// `max = 0` disables the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub max: u64,
    pub window_secs: u64,
}

impl Limit {
    pub const fn new(max: u64, window_secs: u64) -> Limit {
        Limit { max, window_secs }
    }
    pub const UNLIMITED: Limit = Limit::new(0, 1);

    fn enabled(&self) -> bool {
        self.max > 0 && self.window_secs > 0
    }
}

/// The configurable limits (`[rate_limits]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// REST calls per API key (20 req/s, bursts of 40).
    pub per_api_key: Limit,
    /// Requests per client IP on the REST and ACME paths (200 req/s, bursts of 400).
    pub per_ip: Limit,
    /// ACME newOrder requests per account.
    pub acme_new_order: Limit,
    /// Failed ACME validations per account and identifier; then newOrder
    /// for that identifier is refused until the window ends.
    pub failed_validations: Limit,
    /// Peers whose `X-Forwarded-For` is believed (from `[server] trusted_proxies`).
    #[serde(skip)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_api_key: Limit::new(40, 2),
            per_ip: Limit::new(400, 2),
            acme_new_order: Limit::new(300, 3600),
            failed_validations: Limit::new(5, 3600),
            trusted_proxies: vec![],
        }
    }
}

/// What is being limited; the store key is `"{scope}:{subject}"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    ApiKey,
    Ip,
    NewOrder,
    FailedValidation,
}

impl Scope {
    fn prefix(self) -> &'static str {
        match self {
            Scope::ApiKey => "key",
            Scope::Ip => "ip",
            Scope::NewOrder => "order",
            Scope::FailedValidation => "fail",
        }
    }

    fn limit(self, l: &RateLimits) -> Limit {
        match self {
            Scope::ApiKey => l.per_api_key,
            Scope::Ip => l.per_ip,
            Scope::NewOrder => l.acme_new_order,
            Scope::FailedValidation => l.failed_validations,
        }
    }
}

#[derive(Debug, Default)]
struct Entry {
    window_start: i64,
    /// Cluster-wide total returned by our last flush.
    synced: i64,
    /// Taken out of `local` and being written.
    inflight: i64,
    /// Counted here, not yet written.
    local: i64,
}

impl Entry {
    fn total(&self) -> i64 {
        self.synced + self.inflight + self.local
    }
}

/// The in-process cache in front of the store counters.
#[derive(Debug, Default)]
pub struct Limiter {
    entries: Mutex<HashMap<String, Entry>>,
}

/// The outcome of a check: allowed, or refused with seconds to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny { retry_after: u64 },
}

fn window_start(now: i64, window: i64) -> i64 {
    now - now.rem_euclid(window)
}

fn batch_of(max: u64) -> i64 {
    (max / 20).max(1) as i64
}

impl Limiter {
    /// Counts one event for `key` and decides. Flushes to the store when the
    /// local batch is full; the flush result updates the shared view.
    async fn hit(&self, db: &certhub_store::Db, key: &str, limit: Limit, now: i64) -> Decision {
        let window = limit.window_secs as i64;
        let start = window_start(now, window);
        let retry_after = (start + window - now).max(1) as u64;
        let max = limit.max as i64;
        let flush = {
            let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if map.len() > 100_000 {
                // Bounded memory: forget finished windows (their counts are in the store).
                map.retain(|_, e| e.window_start >= start);
            }
            let e = map.entry(key.to_string()).or_default();
            if e.window_start != start {
                *e = Entry {
                    window_start: start,
                    ..Entry::default()
                };
            }
            if e.total() >= max {
                return Decision::Deny { retry_after };
            }
            e.local += 1;
            if e.local >= batch_of(limit.max) {
                let n = e.local;
                e.local = 0;
                e.inflight += n;
                Some(n)
            } else {
                None
            }
        };
        let Some(n) = flush else {
            return Decision::Allow;
        };
        let result = db.ratelimit_add(key, start, n).await;
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = map.entry(key.to_string()).or_default();
        if e.window_start != start {
            return Decision::Allow;
        }
        e.inflight -= n;
        match result {
            Ok(total) => {
                e.synced = e.synced.max(total);
                // Other nodes counted past the limit before us: refuse this one too.
                if total > max {
                    return Decision::Deny { retry_after };
                }
            }
            Err(err) => {
                e.synced += n;
                tracing::warn!(error = %err, "rate-limit counter not written; allowing");
            }
        }
        Decision::Allow
    }
}

impl App {
    /// Counts one request in `scope` for `subject`; `RateLimited` (carrying
    /// Retry-After seconds) when the configured limit is exhausted.
    pub async fn rate_limit(&self, scope: Scope, subject: &str) -> Result<(), AppError> {
        let limit = scope.limit(&self.settings().rate_limits);
        if !limit.enabled() {
            return Ok(());
        }
        let key = format!("{}:{subject}", scope.prefix());
        match self.limiter().hit(self.db(), &key, limit, self.now()).await {
            Decision::Allow => Ok(()),
            Decision::Deny { retry_after } => Err(AppError::RateLimited {
                message: format!(
                    "rate limit exceeded: at most {} requests per {} s; retry after {retry_after} s",
                    limit.max, limit.window_secs
                ),
                retry_after,
            }),
        }
    }

    /// Records a failed ACME validation of `identifier` by `account_id`.
    pub async fn record_failed_validation(&self, account_id: i64, identifier: &str) {
        let limit = self.settings().rate_limits.failed_validations;
        if !limit.enabled() {
            return;
        }
        let key = format!(
            "{}:{account_id}:{identifier}",
            Scope::FailedValidation.prefix()
        );
        let start = window_start(self.now(), limit.window_secs as i64);
        if let Err(e) = self.db().ratelimit_add(&key, start, 1).await {
            tracing::warn!(error = %e, "failed-validation counter not written");
        }
    }

    /// Refuses new orders for identifiers this account failed to validate
    /// too often in the current window (read from the store: any node).
    pub async fn check_failed_validations(
        &self,
        account_id: i64,
        identifiers: &[String],
    ) -> Result<(), AppError> {
        let limit = self.settings().rate_limits.failed_validations;
        if !limit.enabled() {
            return Ok(());
        }
        let window = limit.window_secs as i64;
        let now = self.now();
        let start = window_start(now, window);
        for id in identifiers {
            // Failures are counted on the authorization's name, without `*.`.
            let id = id.strip_prefix("*.").unwrap_or(id);
            let key = format!("{}:{account_id}:{id}", Scope::FailedValidation.prefix());
            let n = self.db().ratelimit_get(&key, start).await.unwrap_or(0);
            if n >= limit.max as i64 {
                return Err(AppError::RateLimited {
                    message: format!(
                        "{n} failed validations of {id} by this account in the last {window} s"
                    ),
                    retry_after: (start + window - now).max(1) as u64,
                });
            }
        }
        Ok(())
    }

    /// Deletes counters of windows that ended (run by the lifecycle loop).
    pub async fn purge_rate_limits(&self) -> Result<u64, AppError> {
        let l = &self.settings().rate_limits;
        let longest = [
            l.per_api_key,
            l.per_ip,
            l.acme_new_order,
            l.failed_validations,
        ]
        .iter()
        .map(|x| x.window_secs as i64)
        .max()
        .unwrap_or(3600);
        Ok(self.db().ratelimit_purge(self.now() - longest).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db() -> (tempfile::TempDir, certhub_store::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db =
            certhub_store::Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
                .await
                .unwrap();
        db.migrate().await.unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn small_limits_are_exact_and_windows_reset() {
        let (_d, db) = db().await;
        let l = Limiter::default();
        let lim = Limit::new(3, 10);
        for _ in 0..3 {
            assert_eq!(l.hit(&db, "k", lim, 1000).await, Decision::Allow);
        }
        assert_eq!(
            l.hit(&db, "k", lim, 1003).await,
            Decision::Deny { retry_after: 7 }
        );
        assert_eq!(l.hit(&db, "other", lim, 1003).await, Decision::Allow);
        assert_eq!(l.hit(&db, "k", lim, 1010).await, Decision::Allow);
        assert_eq!(db.ratelimit_get("k", 1000).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn two_nodes_share_the_count_through_the_store() {
        let (_d, db) = db().await;
        let (a, b) = (Limiter::default(), Limiter::default());
        let lim = Limit::new(4, 60);
        assert_eq!(a.hit(&db, "k", lim, 0).await, Decision::Allow);
        assert_eq!(a.hit(&db, "k", lim, 0).await, Decision::Allow);
        assert_eq!(b.hit(&db, "k", lim, 0).await, Decision::Allow);
        assert_eq!(b.hit(&db, "k", lim, 0).await, Decision::Allow);
        // The store holds 4: node b's next flush sees the total and refuses.
        assert!(matches!(
            b.hit(&db, "k", lim, 0).await,
            Decision::Deny { .. }
        ));
        assert!(matches!(
            a.hit(&db, "k", lim, 0).await,
            Decision::Deny { .. }
        ));
    }

    #[tokio::test]
    async fn large_limits_batch_their_writes() {
        let (_d, db) = db().await;
        let l = Limiter::default();
        let lim = Limit::new(200, 60);
        for _ in 0..200 {
            assert_eq!(l.hit(&db, "k", lim, 0).await, Decision::Allow);
        }
        assert!(matches!(
            l.hit(&db, "k", lim, 0).await,
            Decision::Deny { .. }
        ));
        // Written in batches of 10, all 200 counted.
        assert_eq!(db.ratelimit_get("k", 0).await.unwrap(), 200);
    }
}
