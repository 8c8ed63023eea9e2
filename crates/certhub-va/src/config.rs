//! `[validation]` configuration (design.md "Command line and configuration").

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

/// Production port for http-01; only a test-mode config overrides it.
pub const HTTP01_PORT: u16 = 80;
/// Production port for tls-alpn-01; only a test-mode config overrides it.
pub const TLSALPN01_PORT: u16 = 443;

/// Validation settings. Every field has a production-safe default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct VaConfig {
    /// DNS resolver `host:port`; `None` reads the system configuration.
    pub resolver: Option<SocketAddr>,
    pub http01_port: u16,
    pub tlsalpn01_port: u16,
    /// Test mode: loopback addresses are allowed and `hosts` is honoured.
    pub allow_loopback: bool,
    /// Static name → address answers consulted before DNS (test mode only).
    pub hosts: HashMap<String, IpAddr>,
    /// Carried for the ACME server (authorization reuse window); unused here.
    pub authz_reuse_days: u32,
    /// Per-validation network timeout (seconds in the config file).
    #[serde(with = "secs")]
    pub timeout: Duration,
    /// Carried for the ACME server: how long a challenge POST waits for its
    /// validation before answering `processing` (seconds in the config
    /// file; 0 answers at once). A prompt validation then shows `valid` or
    /// `invalid` in the response itself, and clients that read it (lego,
    /// Posh-ACME) skip their polling round.
    #[serde(with = "wait_secs")]
    pub answer_wait: Duration,
}

impl Default for VaConfig {
    fn default() -> Self {
        Self {
            resolver: None,
            http01_port: HTTP01_PORT,
            tlsalpn01_port: TLSALPN01_PORT,
            allow_loopback: false,
            hosts: HashMap::new(),
            authz_reuse_days: 30,
            timeout: Duration::from_secs(10),
            answer_wait: Duration::from_secs(2),
        }
    }
}

impl VaConfig {
    /// A test configuration: loopback allowed, resolver pointing at `dns`.
    pub fn for_tests(dns: SocketAddr) -> Self {
        Self {
            resolver: Some(dns),
            allow_loopback: true,
            timeout: Duration::from_secs(5),
            ..Self::default()
        }
    }
}

/// Durations are written as a number of seconds (integer or fractional),
/// checked against the setting's range.
fn secs_in<'de, D: serde::Deserializer<'de>>(
    d: D,
    ok: impl Fn(f64) -> bool,
    range: &str,
) -> Result<Duration, D::Error> {
    let secs = f64::deserialize(d)?;
    if !secs.is_finite() || !ok(secs) {
        return Err(serde::de::Error::custom(range));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `timeout`: more than 0, at most an hour.
mod secs {
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<std::time::Duration, D::Error> {
        super::secs_in(
            d,
            |s| s > 0.0 && s <= 3600.0,
            "timeout must be between 0 and 3600 seconds",
        )
    }
}

/// `answer_wait`: 0 (do not wait) up to a minute.
mod wait_secs {
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<std::time::Duration, D::Error> {
        super::secs_in(
            d,
            |s| (0.0..=60.0).contains(&s),
            "answer_wait must be between 0 and 60 seconds",
        )
    }
}
