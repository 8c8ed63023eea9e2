//! The lifecycle engine: claims due jobs (leases, so several nodes and
//! overlapping runs never run one job twice), dispatches them by kind to the
//! feature that owns them, and retries failures with back-off.
//!
//! Job kinds are prefixed by their owner: `sub.` (ACME subscriptions),
//! `cert.` (certificate lifecycle and DCV), `acme.` (ACME server), `pki.` (CA).

use certhub_store::jobs::Job;

use crate::{App, AppError};

/// How long a claimed job is ours before another node may take it over
/// (default; `CERTHUB_LEASE_SECONDS` overrides it, e.g. short in tests).
pub const LEASE_SECONDS: i64 = 300;

/// The lease length in force: `CERTHUB_LEASE_SECONDS` (1..=86400) or
/// [`LEASE_SECONDS`]. A node that dies mid-job holds its jobs this long.
pub fn lease_seconds() -> i64 {
    static LEASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *LEASE.get_or_init(|| parse_lease(std::env::var("CERTHUB_LEASE_SECONDS").ok().as_deref()))
}

fn parse_lease(v: Option<&str>) -> i64 {
    match v.map(str::trim).map(str::parse::<i64>) {
        Some(Ok(n)) if (1..=86_400).contains(&n) => n,
        Some(_) => {
            tracing::warn!(
                "CERTHUB_LEASE_SECONDS must be 1..=86400 seconds; using {LEASE_SECONDS}"
            );
            LEASE_SECONDS
        }
        None => LEASE_SECONDS,
    }
}

impl App {
    /// Runs every job due at `now` (the app clock), in due order, until none
    /// is left. Returns one line per change.
    pub async fn run_due_jobs(&self, owner: &str) -> Result<Vec<String>, AppError> {
        let mut changes = Vec::new();
        loop {
            let now = self.now();
            let jobs = self
                .db()
                .claim_jobs(owner, now, now + lease_seconds(), 100)
                .await?;
            if jobs.is_empty() {
                break;
            }
            for job in jobs {
                match dispatch(self, &job).await {
                    Ok(Some(line)) => changes.push(line),
                    Ok(None) => {}
                    Err(e) => {
                        let backoff = 60 * (1_i64 << job.attempts.clamp(0, 10));
                        tracing::warn!(job = job.id, kind = %job.kind, error = %e, "lifecycle job failed; retrying");
                        self.db()
                            .retry_job(job.id, &e.to_string(), now + backoff)
                            .await?;
                    }
                }
            }
        }
        Ok(changes)
    }
}

async fn dispatch(app: &App, job: &Job) -> Result<Option<String>, AppError> {
    let kind = job.kind.as_str();
    if kind.starts_with("sub.") {
        crate::subscriptions::run_job(app, job).await
    } else if kind.starts_with("cert.") {
        crate::certificates::run_job(app, job).await
    } else if kind.starts_with("acme.") {
        crate::acme::run_job(app, job).await
    } else {
        Err(AppError::Internal(format!("unknown job kind {kind}")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lease_from_env_value() {
        assert_eq!(super::parse_lease(None), super::LEASE_SECONDS);
        assert_eq!(super::parse_lease(Some(" 5 ")), 5);
        assert_eq!(super::parse_lease(Some("0")), super::LEASE_SECONDS);
        assert_eq!(super::parse_lease(Some("x")), super::LEASE_SECONDS);
    }
}
