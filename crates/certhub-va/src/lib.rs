//! Domain-control validation for certhub: ACME http-01, dns-01 and
//! tls-alpn-01 (RFC 8555 §8.3/8.4, RFC 8737), CAA (RFC 8659, RFC 8657) and
//! the primitives REST DCV needs (TXT lookups, FILE fetches).
//!
//! Every network access goes through our resolver and the address policy
//! ([`policy::refusal`]); ports, resolver and host overrides come from
//! [`VaConfig`].

mod caa;
mod config;
mod dns;
mod error;
mod http;
pub mod policy;
mod tls_alpn;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use caa::{CaaRecord, CaaRequest, METHODS as CAA_METHODS, evaluate as evaluate_caa};
pub use config::{HTTP01_PORT, TLSALPN01_PORT, VaConfig};
pub use error::{Result, VaError, VaErrorKind};
pub use http::{MAX_BODY, MAX_REDIRECTS};
pub use tls_alpn::{ACME_IDENTIFIER_OID, ACME_TLS_ALPN};

/// The validation authority. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Validator {
    inner: Arc<Inner>,
}

struct Inner {
    config: VaConfig,
    dns: Arc<dns::Dns>,
    http: reqwest::Client,
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// base64url(SHA-256(key authorization)): the dns-01 TXT value (RFC 8555 §8.4).
pub fn dns01_digest(key_authorization: &str) -> String {
    URL_SAFE_NO_PAD.encode(tls_alpn::sha256(key_authorization.as_bytes()))
}

/// Tokens are base64url (RFC 8555 §8.3); anything else could escape the path.
fn check_token(token: &str) -> Result<()> {
    if token.is_empty()
        || !token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(VaError::incorrect(format!(
            "invalid challenge token {token:?}"
        )));
    }
    Ok(())
}

fn refuse_wildcard(domain: &str, what: &str) -> Result<()> {
    if domain.trim_start().starts_with("*.") {
        return Err(VaError::rejected(format!(
            "{what} cannot validate the wildcard name {domain}"
        )));
    }
    Ok(())
}

impl Validator {
    /// Builds the resolver, HTTP client and TLS connector from `config`.
    /// Fails when the challenge ports differ from 80/443 outside test mode
    /// (production ports are fixed; only `allow_loopback` configs move them).
    pub fn new(config: VaConfig) -> Result<Self> {
        if !config.allow_loopback
            && (config.http01_port != HTTP01_PORT || config.tlsalpn01_port != TLSALPN01_PORT)
        {
            return Err(VaError::connection(format!(
                "http01_port {} / tlsalpn01_port {} may differ from 80/443 only with allow_loopback = true",
                config.http01_port, config.tlsalpn01_port
            )));
        }
        let dns = Arc::new(dns::Dns::new(&config)?);
        let http = http::build_client(&config, Arc::clone(&dns))?;
        let tls = tls_alpn::connector()?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                dns,
                http,
                tls,
            }),
        })
    }

    pub fn config(&self) -> &VaConfig {
        &self.inner.config
    }

    /// ACME http-01: the body of
    /// `http://{domain}:{http01_port}/.well-known/acme-challenge/{token}`,
    /// trimmed, must equal `key_authorization`.
    pub async fn http01(&self, domain: &str, token: &str, key_authorization: &str) -> Result<()> {
        refuse_wildcard(domain, "http-01")?;
        check_token(token)?;
        let path = format!("/.well-known/acme-challenge/{token}");
        let url = http::build_url(domain, self.inner.config.http01_port, &path);
        let body = http::get_text(&self.inner.http, &url, self.inner.dns.allow_loopback()).await?;
        let got = body.trim();
        if got != key_authorization {
            return Err(VaError::unauthorized(format!(
                "the key authorization file from {url} is {:?}, expected {:?}",
                http::excerpt(got),
                key_authorization
            )));
        }
        tracing::debug!(%domain, %url, "http-01 validated");
        Ok(())
    }

    /// ACME dns-01: some TXT string at `_acme-challenge.{domain}` (CNAMEs
    /// followed) must equal `expected_digest_b64url` (see [`dns01_digest`]).
    pub async fn dns01(&self, domain: &str, expected_digest_b64url: &str) -> Result<()> {
        let base = dns::canonical(domain);
        let base = base.strip_prefix("*.").unwrap_or(&base);
        let name = format!("_acme-challenge.{base}");
        let found = self.inner.dns.txt(&name).await?;
        if found.is_empty() {
            return Err(VaError::unauthorized(format!(
                "no TXT record found at {name}"
            )));
        }
        if found.iter().any(|v| v.trim() == expected_digest_b64url) {
            tracing::debug!(%domain, "dns-01 validated");
            return Ok(());
        }
        let shown: Vec<String> = found
            .iter()
            .map(|v| format!("{:?}", http::excerpt(v)))
            .collect();
        Err(VaError::unauthorized(format!(
            "incorrect TXT record at {name}: found [{}], expected {expected_digest_b64url:?}",
            shown.join(", ")
        )))
    }

    /// ACME tls-alpn-01 (RFC 8737) on `{domain}:{tlsalpn01_port}`.
    pub async fn tls_alpn01(&self, domain: &str, key_authorization: &str) -> Result<()> {
        refuse_wildcard(domain, "tls-alpn-01")?;
        let c = &self.inner.config;
        tls_alpn::validate(
            &self.inner.dns,
            &self.inner.tls,
            domain,
            c.tlsalpn01_port,
            key_authorization,
            c.timeout,
        )
        .await?;
        tracing::debug!(%domain, "tls-alpn-01 validated");
        Ok(())
    }

    /// CAA check (RFC 8659 tree climbing, RFC 8657 parameters). `domain`
    /// may carry a `*.` prefix; `wildcard` selects `issuewild` semantics.
    /// `method` is one of [`CAA_METHODS`]. SERVFAIL/timeouts are `dns`
    /// errors (no issuance); a forbidding RRset is a `caa` error.
    pub async fn check_caa(
        &self,
        domain: &str,
        wildcard: bool,
        caa_identities: &[String],
        account_uri: Option<&str>,
        method: &str,
    ) -> Result<()> {
        let req = CaaRequest {
            wildcard,
            identities: caa_identities,
            account_uri,
            method,
        };
        caa::check(&self.inner.dns, domain, &req).await
    }

    /// All TXT strings at `name` (CNAMEs followed; each record's strings
    /// concatenated). NXDOMAIN or no TXT is an empty list; SERVFAIL is an error.
    pub async fn txt_records(&self, name: &str) -> Result<Vec<String>> {
        self.inner.dns.txt(name).await
    }

    /// GET `http://{domain}[:port]{path}` under the http-01 rules (address
    /// policy, redirects, body cap, timeout) and return the body text.
    /// `port_override` defaults to `http01_port`. `path` must start with `/`.
    pub async fn http_get_text(
        &self,
        domain: &str,
        path: &str,
        port_override: Option<u16>,
    ) -> Result<String> {
        refuse_wildcard(domain, "an HTTP file check")?;
        if !path.starts_with('/') {
            return Err(VaError::incorrect(format!("invalid path {path:?}")));
        }
        let port = port_override.unwrap_or(self.inner.config.http01_port);
        if !self.inner.config.allow_loopback && port != HTTP01_PORT && port != TLSALPN01_PORT {
            return Err(VaError::connection(format!(
                "port {port} is not allowed outside test mode"
            )));
        }
        let url = http::build_url(domain, port, path);
        http::get_text(&self.inner.http, &url, self.inner.dns.allow_loopback()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns01_digest_matches_rfc_example_shape() {
        let d = dns01_digest("token.thumbprint");
        assert_eq!(d.len(), 43);
        assert!(!d.contains('='));
    }

    #[test]
    fn builds_outside_a_runtime_and_guards_ports() {
        let dns = "127.0.0.1:53".parse().unwrap();
        assert!(Validator::new(VaConfig::for_tests(dns)).is_ok());
        let prod_with_test_port = VaConfig {
            resolver: Some(dns),
            http01_port: 5002,
            ..VaConfig::default()
        };
        assert!(Validator::new(prod_with_test_port).is_err());
        if std::path::Path::new("/etc/resolv.conf").exists() {
            assert!(Validator::new(VaConfig::default()).is_ok());
        }
    }

    #[test]
    fn tokens_are_base64url() {
        assert!(check_token("abc-DEF_123").is_ok());
        assert!(check_token("../etc").is_err());
        assert!(check_token("").is_err());
    }

    #[test]
    fn config_parses_from_toml_with_defaults() {
        let cfg: VaConfig = toml::from_str(
            "resolver = \"127.0.0.1:8053\"\nallow_loopback = true\nhttp01_port = 5002\n[hosts]\n\"a.test\" = \"127.0.0.1\"\n",
        )
        .unwrap();
        assert_eq!(cfg.resolver, Some("127.0.0.1:8053".parse().unwrap()));
        assert_eq!(cfg.http01_port, 5002);
        assert_eq!(cfg.tlsalpn01_port, 443);
        assert_eq!(cfg.authz_reuse_days, 30);
        assert_eq!(cfg.timeout, std::time::Duration::from_secs(10));
        assert_eq!(cfg.answer_wait, std::time::Duration::from_secs(2));
        let now: VaConfig = toml::from_str("answer_wait = 0").unwrap();
        assert_eq!(now.answer_wait, std::time::Duration::ZERO);
        assert!(toml::from_str::<VaConfig>("answer_wait = 61").is_err());
        assert!(toml::from_str::<VaConfig>("answer_wait = -1").is_err());
        assert_eq!(
            cfg.hosts["a.test"],
            "127.0.0.1".parse::<std::net::IpAddr>().unwrap()
        );
        let empty: VaConfig = toml::from_str("").unwrap();
        assert_eq!(empty, VaConfig::default());
    }
}
