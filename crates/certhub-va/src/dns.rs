//! Name resolution for validation: the static hosts table (test mode),
//! then hickory through the configured resolver, with no answer cache so a
//! freshly published TXT record is seen on the next attempt.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::rr::rdata::CAA;
use hickory_proto::rr::{RData, RecordType};
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{ResolverBuilder, TokioResolver};

use crate::config::VaConfig;
use crate::error::{Result, VaError};
use crate::policy;

pub(crate) struct Dns {
    resolver: TokioResolver,
    hosts: HashMap<String, IpAddr>,
    allow_loopback: bool,
}

/// Lower-case, without the trailing dot: the form used as a map key and in messages.
pub(crate) fn canonical(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Absolute form, so search domains from resolv.conf are never appended.
fn fqdn(name: &str) -> String {
    format!("{}.", canonical(name))
}

fn builder(cfg: &VaConfig) -> Result<ResolverBuilder<TokioRuntimeProvider>> {
    match cfg.resolver {
        Some(addr) => {
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for conn in &mut ns.connections {
                conn.port = addr.port();
            }
            Ok(TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                TokioRuntimeProvider::default(),
            ))
        }
        None => TokioResolver::builder_tokio().map_err(|e| {
            VaError::dns(format!(
                "cannot read the system resolver configuration: {e}"
            ))
        }),
    }
}

impl Dns {
    pub(crate) fn new(cfg: &VaConfig) -> Result<Self> {
        let mut builder = builder(cfg)?;
        let opts: &mut ResolverOpts = builder.options_mut();
        // No cache: DCV re-checks must see changes at once.
        opts.cache_size = 0;
        opts.positive_max_ttl = Some(Duration::ZERO);
        opts.negative_max_ttl = Some(Duration::ZERO);
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.timeout = cfg.timeout.min(Duration::from_secs(5));
        opts.attempts = 2;
        opts.try_tcp_on_error = true;
        opts.ndots = 0;
        let resolver = builder
            .build()
            .map_err(|e| VaError::dns(format!("cannot build the DNS resolver: {e}")))?;
        // The hosts table is a test-mode feature; in production it is ignored.
        let hosts = if cfg.allow_loopback {
            cfg.hosts.iter().map(|(k, v)| (canonical(k), *v)).collect()
        } else {
            HashMap::new()
        };
        Ok(Self {
            resolver,
            hosts,
            allow_loopback: cfg.allow_loopback,
        })
    }

    pub(crate) fn allow_loopback(&self) -> bool {
        self.allow_loopback
    }

    /// All addresses for `host` (hosts table first), before the address policy.
    async fn lookup_ips(&self, host: &str) -> Result<Vec<IpAddr>> {
        let name = canonical(host);
        if let Ok(ip) = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(vec![ip]);
        }
        if let Some(ip) = self.hosts.get(&name) {
            return Ok(vec![*ip]);
        }
        match self.resolver.lookup_ip(fqdn(&name)).await {
            Ok(found) => Ok(found.iter().collect()),
            Err(e) if e.is_no_records_found() => Err(VaError::dns(format!(
                "no valid A or AAAA records found for {name}"
            ))),
            Err(e) => Err(VaError::dns(format!(
                "DNS problem looking up A/AAAA for {name}: {e}"
            ))),
        }
    }

    /// Addresses for `host` that the address policy allows; refuses the
    /// name when none is left.
    pub(crate) async fn allowed_ips(&self, host: &str) -> Result<Vec<IpAddr>> {
        let all = self.lookup_ips(host).await?;
        let mut reasons = Vec::new();
        let allowed: Vec<IpAddr> = all
            .into_iter()
            .filter(|ip| match policy::refusal(*ip, self.allow_loopback) {
                None => true,
                Some(why) => {
                    reasons.push(format!("{ip} ({why})"));
                    false
                }
            })
            .collect();
        if allowed.is_empty() {
            return Err(VaError::rejected(format!(
                "{} resolves only to refused addresses: {}",
                canonical(host),
                reasons.join(", ")
            )));
        }
        Ok(allowed)
    }

    /// A record lookup where "no records"/NXDOMAIN is an empty answer and
    /// any other failure (SERVFAIL, timeout) is a `dns` error.
    async fn lookup(&self, name: &str, rtype: RecordType) -> Result<Option<Lookup>> {
        match self.resolver.lookup(fqdn(name), rtype).await {
            Ok(l) => Ok(Some(l)),
            Err(e) if e.is_no_records_found() => Ok(None),
            Err(e) => Err(dns_failure(name, rtype, &e)),
        }
    }

    /// TXT strings at `name` (CNAMEs followed); each record's character
    /// strings are concatenated.
    pub(crate) async fn txt(&self, name: &str) -> Result<Vec<String>> {
        let Some(lookup) = self.lookup(name, RecordType::TXT).await? else {
            return Ok(Vec::new());
        };
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part))
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect())
    }

    /// CAA records at exactly `name` (CNAMEs followed, no climbing).
    pub(crate) async fn caa(&self, name: &str) -> Result<Vec<CAA>> {
        let Some(lookup) = self.lookup(name, RecordType::CAA).await? else {
            return Ok(Vec::new());
        };
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::CAA(caa) => Some(caa.clone()),
                _ => None,
            })
            .collect())
    }
}

fn dns_failure(name: &str, rtype: RecordType, e: &NetError) -> VaError {
    VaError::dns(format!(
        "DNS problem looking up {rtype} for {}: {e}",
        canonical(name)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical("Example.COM."), "example.com");
        assert_eq!(fqdn("a.b"), "a.b.");
    }
}
