//! certhub's use cases, shared by the REST (`rtr`) and ACME front ends and the
//! lifecycle engine. Front ends never touch the store directly: they call a
//! function here, which runs one transaction (state + money + process + audit).

pub mod clock;
pub mod customers;
pub mod error;
pub mod idempotency;
pub mod lifecycle;
pub mod mail;
pub mod metrics;
pub mod notify;
pub mod pki;
pub mod quote;
pub mod ratelimit;
pub mod refusals;

// Feature modules, each owned by its feature (see ARCHITECTURE.md).
pub mod acme;
pub mod certificates;
pub mod subscriptions;

use std::sync::Arc;

use certhub_store::Db;
use certhub_store::sealed::Kek;

pub use clock::Clock;
pub use error::{AppError, Violation};

/// Settings the use cases need (a subset of the binary's configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://host:port` every emitted URL starts with (never from Host headers).
    pub public_url: String,
    /// `http://...` base of CRL, OCSP and issuer-certificate URLs.
    pub pki_url: String,
    /// The CA's set-up (used once, when the hierarchy is created).
    pub ca: certhub_ca::CaConfig,
    /// Operator weak-key list and other key rules.
    pub key_policy: certhub_ca::KeyPolicy,
    /// Validation transports (resolver, ports, loopback policy).
    pub va: certhub_va::VaConfig,
    /// SMTP relay for outbox messages (None: the operator reads `admin outbox`).
    pub smtp: Option<mail::SmtpSettings>,
    /// Request limits per API key, IP, ACME account (`[rate_limits]`).
    pub rate_limits: ratelimit::RateLimits,
    /// Requests served at once (`[server] max_in_flight`); the rest are
    /// answered 503 with `Retry-After` instead of queueing without bound.
    pub max_in_flight: usize,
}

/// Enough for bursts on a small machine; every request holds at most one
/// database connection, so the queue in front of the pool stays this long.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;

impl Settings {
    /// Defaults for a public URL (tests and zero-config).
    pub fn for_urls(public_url: &str, pki_url: &str) -> Settings {
        Settings {
            public_url: public_url.trim_end_matches('/').to_string(),
            pki_url: pki_url.trim_end_matches('/').to_string(),
            ca: certhub_ca::CaConfig {
                pki_url: pki_url.trim_end_matches('/').to_string(),
                ..Default::default()
            },
            key_policy: certhub_ca::KeyPolicy::default(),
            va: certhub_va::VaConfig::default(),
            smtp: None,
            rate_limits: ratelimit::RateLimits::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// The application: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    kek: Kek,
    clock: Clock,
    settings: Settings,
    apikey_pepper: Vec<u8>,
    pki: std::sync::RwLock<Arc<pki::Pki>>,
    va: certhub_va::Validator,
    limiter: ratelimit::Limiter,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("settings", &self.inner.settings)
            .finish()
    }
}

impl App {
    /// Builds the application over a migrated database.
    pub async fn new(db: Db, kek: Kek, clock: Clock, settings: Settings) -> Result<App, AppError> {
        let apikey_pepper = db.server_secret(&kek, "apikey_pepper").await?;
        let mut ca_cfg = settings.ca.clone();
        ca_cfg.pki_url = settings.pki_url.clone();
        let (pki, created) =
            pki::load_or_init(&db, &kek, &ca_cfg, settings.key_policy.clone(), clock.now()).await?;
        if created {
            tracing::info!(
                "created the certificate authority (root and DV, OV, server intermediates)"
            );
        }
        let va = certhub_va::Validator::new(settings.va.clone())
            .map_err(|e| AppError::Internal(format!("validation settings: {e}")))?;
        Ok(App {
            inner: Arc::new(Inner {
                db,
                kek,
                clock,
                settings,
                apikey_pepper,
                pki: std::sync::RwLock::new(Arc::new(pki)),
                va,
                limiter: ratelimit::Limiter::default(),
            }),
        })
    }

    pub(crate) fn pki_handle(&self) -> Arc<pki::Pki> {
        self.inner
            .pki
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The validation authority (http-01, dns-01, tls-alpn-01, CAA, DCV).
    pub fn va(&self) -> &certhub_va::Validator {
        &self.inner.va
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn kek(&self) -> &Kek {
        &self.inner.kek
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub(crate) fn limiter(&self) -> &ratelimit::Limiter {
        &self.inner.limiter
    }

    pub(crate) fn pepper(&self) -> &[u8] {
        &self.inner.apikey_pepper
    }
}

/// The authenticated caller of a REST request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub customer_id: i64,
    pub handle: String,
    pub currency: String,
    pub api_key_id: i64,
}

impl Caller {
    /// RTR's process `user` field: `<customerHandle>/<loginName>`.
    pub fn user(&self) -> String {
        format!("{}/apikey-{}", self.handle, self.api_key_id)
    }
}
