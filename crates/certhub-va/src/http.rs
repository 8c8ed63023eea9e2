//! Plain-HTTP fetches for http-01 and FILE DCV, with our own name
//! resolution and address policy, a strict redirect policy and a body cap.

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::{Attempt, Policy};
use reqwest::{Client, StatusCode, Url};

use crate::config::{HTTP01_PORT, TLSALPN01_PORT, VaConfig};
use crate::dns::{Dns, canonical};
use crate::error::{Result, VaError};
use crate::policy;

/// Largest body we read; key authorizations and DCV tokens are far smaller.
pub const MAX_BODY: usize = 8 * 1024;
/// RFC 8555 §8.3 style limit (Let's Encrypt uses 10 as well).
pub const MAX_REDIRECTS: usize = 10;
const USER_AGENT: &str = concat!("certhub-va/", env!("CARGO_PKG_VERSION"));

/// Routes reqwest's name lookups through our resolver and address policy.
struct PolicyResolver {
    dns: Arc<Dns>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let dns = Arc::clone(&self.dns);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = dns
                .allowed_ips(&host)
                .await
                .map_err(|e| Box::new(e) as Box<dyn StdError + Send + Sync>)?;
            // Port 0 is replaced by the URL's port.
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Ports a redirect may target: 80/443 always, plus the configured
/// challenge ports in test mode.
fn allowed_ports(cfg: &VaConfig) -> Vec<u16> {
    let mut ports = vec![HTTP01_PORT, TLSALPN01_PORT];
    if cfg.allow_loopback {
        ports.extend([cfg.http01_port, cfg.tlsalpn01_port]);
    }
    ports
}

/// IP-literal hosts bypass the resolver hook, so the policy is applied here.
fn check_ip_literal(host: &str, allow_loopback: bool) -> Result<()> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>()
        && let Some(why) = policy::refusal(ip, allow_loopback)
    {
        return Err(VaError::rejected(format!("{ip} is refused: {why}")));
    }
    Ok(())
}

fn check_redirect(url: &Url, ports: &[u16], allow_loopback: bool) -> Result<()> {
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(VaError::connection(format!(
            "redirect to {url} refused: only http and https are allowed"
        )));
    }
    let port = url.port_or_known_default().unwrap_or(0);
    if !ports.contains(&port) {
        return Err(VaError::connection(format!(
            "redirect to {url} refused: port {port} is not allowed (only 80 and 443)"
        )));
    }
    let host = url.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err(VaError::connection(format!(
            "redirect to {url} refused: no host"
        )));
    }
    check_ip_literal(host, allow_loopback)
}

fn redirect_policy(cfg: &VaConfig) -> Policy {
    let ports = allowed_ports(cfg);
    let allow_loopback = cfg.allow_loopback;
    Policy::custom(move |attempt: Attempt<'_>| {
        if attempt.previous().len() > MAX_REDIRECTS {
            let msg = format!("too many redirects (more than {MAX_REDIRECTS})");
            return attempt.error(VaError::connection(msg));
        }
        match check_redirect(attempt.url(), &ports, allow_loopback) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(e),
        }
    })
}

pub(crate) fn build_client(cfg: &VaConfig, dns: Arc<Dns>) -> Result<Client> {
    Client::builder()
        .dns_resolver(Arc::new(PolicyResolver { dns }))
        .redirect(redirect_policy(cfg))
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout)
        .no_proxy()
        .user_agent(USER_AGENT)
        // http-01 may redirect to HTTPS; its certificate is not what is validated.
        .tls_danger_accept_invalid_certs(true)
        .build()
        .map_err(|e| VaError::connection(format!("cannot build the HTTP client: {e}")))
}

/// Finds our own `VaError` (from the resolver hook or redirect policy) in
/// reqwest's error chain, or describes the transport failure.
fn map_reqwest(e: &reqwest::Error, url: &str) -> VaError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    let mut chain = Vec::new();
    while let Some(err) = source {
        if let Some(va) = err.downcast_ref::<VaError>() {
            return va.clone();
        }
        chain.push(err.to_string());
        source = err.source();
    }
    if e.is_timeout() {
        return VaError::connection(format!("timeout fetching {url}"));
    }
    // The outermost reqwest message repeats the URL; the causes say what failed.
    let causes = if chain.len() > 1 {
        &chain[1..]
    } else {
        &chain[..]
    };
    VaError::connection(format!("fetching {url}: {}", causes.join(": ")))
}

/// Cuts what we quote back to the client so details stay readable.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 128;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// `http://host[:port]/path` for a DNS name or IP literal.
pub(crate) fn build_url(host: &str, port: u16, path: &str) -> String {
    let host = canonical(host);
    let host = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => host,
    };
    if port == HTTP01_PORT {
        format!("http://{host}{path}")
    } else {
        format!("http://{host}:{port}{path}")
    }
}

/// GETs `url`, requiring 200 and a UTF-8 body of at most `MAX_BODY` bytes.
pub(crate) async fn get_text(client: &Client, url: &str, allow_loopback: bool) -> Result<String> {
    let parsed =
        Url::parse(url).map_err(|e| VaError::connection(format!("invalid URL {url}: {e}")))?;
    check_ip_literal(parsed.host_str().unwrap_or_default(), allow_loopback)?;
    let mut resp = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| map_reqwest(&e, url))?;
    let final_url = resp.url().to_string();
    if resp.status() != StatusCode::OK {
        return Err(VaError::unauthorized(format!(
            "invalid response from {final_url}: HTTP {}",
            resp.status()
        )));
    }
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large(&final_url));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| map_reqwest(&e, &final_url))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large(&final_url));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body)
        .map_err(|_| VaError::incorrect(format!("response from {final_url} is not UTF-8 text")))
}

fn too_large(url: &str) -> VaError {
    VaError::incorrect(format!(
        "response from {url} is larger than {MAX_BODY} bytes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(lo: bool) -> VaConfig {
        VaConfig {
            http01_port: 5002,
            tlsalpn01_port: 5001,
            allow_loopback: lo,
            ..VaConfig::default()
        }
    }

    fn redirect_ok(url: &str, lo: bool) -> bool {
        check_redirect(&Url::parse(url).unwrap(), &allowed_ports(&cfg(lo)), lo).is_ok()
    }

    #[test]
    fn redirect_rules() {
        assert!(redirect_ok("http://example.com/x", false));
        assert!(redirect_ok("https://example.com/x", false));
        assert!(redirect_ok("http://example.com:443/x", false));
        assert!(!redirect_ok("http://example.com:8080/x", false));
        assert!(!redirect_ok("ftp://example.com/x", false));
        assert!(!redirect_ok("http://example.com:5002/x", false));
        assert!(redirect_ok("http://example.com:5002/x", true));
        assert!(!redirect_ok("http://127.0.0.1/x", false));
        assert!(!redirect_ok("http://[::1]/x", false));
        assert!(redirect_ok("http://127.0.0.1/x", true));
    }

    #[test]
    fn urls() {
        assert_eq!(build_url("Example.com.", 80, "/a"), "http://example.com/a");
        assert_eq!(
            build_url("example.com", 5002, "/a"),
            "http://example.com:5002/a"
        );
        assert_eq!(build_url("::1", 8080, "/a"), "http://[::1]:8080/a");
    }

    #[test]
    fn excerpt_cuts_long_text() {
        let long = "x".repeat(300);
        assert_eq!(excerpt(&long).chars().count(), 129);
        assert_eq!(excerpt("short"), "short");
    }
}
