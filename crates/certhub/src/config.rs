//! Configuration: built-in defaults, then the TOML file, then `CERTHUB_*`
//! environment variables and flags (clap merges the last two).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub server: ServerSection,
    pub database: DatabaseSection,
    pub validation: Option<toml::Table>,
    pub ca: Option<toml::Table>,
    pub rate_limits: Option<toml::Table>,
    pub smtp: Option<toml::Table>,
    pub testing: TestingSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub listen: String,
    pub public_url: Option<String>,
    pub pki_url: Option<String>,
    pub http_listen: Option<String>,
    pub trusted_proxies: Vec<String>,
    /// Requests served at once; beyond it, 503 with `Retry-After`.
    pub max_in_flight: usize,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: "127.0.0.1:8443".into(),
            public_url: None,
            pki_url: None,
            http_listen: None,
            trusted_proxies: vec![],
            max_in_flight: certhub_app::DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSection {
    pub url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TestingSection {
    pub allow_clock_override: bool,
}

/// Reads the config file: `--config` if given (must exist), else
/// `{data_dir}/certhub.toml` if present, else defaults.
pub fn load(explicit: Option<&Path>, data_dir: &Path) -> anyhow::Result<FileConfig> {
    let path: Option<PathBuf> = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => Some(data_dir.join("certhub.toml")).filter(|p| p.exists()),
    };
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
}

/// The commented config written into a fresh data directory.
pub const DEFAULT_CONFIG: &str = r#"# certhub configuration. Flags and CERTHUB_* environment variables override it.
# Every value below is the built-in default.

[server]
# listen = "127.0.0.1:8443"        # HTTPS (and plain-HTTP PKI paths on the same port)
# public_url = "https://localhost:8443"
# pki_url = "http://localhost:8443" # CRL / OCSP / issuer URLs, must be http://
# http_listen = "0.0.0.0:80"        # extra plain-HTTP listener (PKI paths, behind a proxy)
# max_in_flight = 512               # requests served at once; beyond: 503 + Retry-After

[database]
# url = "sqlite:///path/to/certhub-data/certhub.db"   # or postgres://user@host/db

[validation]
# resolver = "127.0.0.1:53"
# http01_port = 80
# tlsalpn01_port = 443
# allow_loopback = false
# authz_reuse_days = 30
# answer_wait = 2                   # seconds a challenge POST waits for its validation's result
# [validation.hosts]
# "example.test" = "127.0.0.1"

[rate_limits]
# per_api_key = { max = 40, window_secs = 2 }            # REST calls per API key
# per_ip = { max = 400, window_secs = 2 }                # REST + ACME requests per client IP
# acme_new_order = { max = 300, window_secs = 3600 }     # newOrder per ACME account
# failed_validations = { max = 5, window_secs = 3600 }   # per ACME account and name

[smtp]
# relay = "127.0.0.1:25"          # deliver DCV approval mails (else: `certhub admin outbox`)
# from = "certhub@example.net"

[testing]
# allow_clock_override = false
"#;
