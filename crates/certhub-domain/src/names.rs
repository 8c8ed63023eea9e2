//! Domain-name rules (design.md "Names"): UTS #46 non-transitional processing to
//! lower-case A-labels, trailing dot removed, `*` only as the whole leftmost
//! label and never directly above a public suffix, no IP addresses, no internal names.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    pub name: String,
    pub reason: &'static str,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid domain name {:?}: {}", self.name, self.reason)
    }
}

impl std::error::Error for NameError {}

fn err(name: &str, reason: &'static str) -> NameError {
    NameError {
        name: name.to_string(),
        reason,
    }
}

/// Normalises a DNS name (optionally a wildcard `*.name`) to its canonical
/// lower-case A-label form, or says why it is not acceptable.
pub fn normalize_dns_name(input: &str) -> Result<String, NameError> {
    let trimmed = input.trim();
    let no_dot = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if no_dot.is_empty() {
        return Err(err(input, "empty name"));
    }
    if no_dot.parse::<std::net::IpAddr>().is_ok() {
        return Err(err(input, "IP addresses are not allowed"));
    }
    let (wildcard, base) = match no_dot.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, no_dot),
    };
    if base.contains('*') {
        return Err(err(
            input,
            "'*' is only allowed as the whole leftmost label",
        ));
    }
    let ascii = to_ascii(base).ok_or_else(|| err(input, "not a valid IDNA name"))?;
    check_ldh(&ascii).map_err(|r| err(input, r))?;
    if !ascii.contains('.') {
        return Err(err(input, "internal (single-label) names are not allowed"));
    }
    let suffix = psl::suffix_str(&ascii).ok_or_else(|| err(input, "no public suffix"))?;
    if suffix == ascii {
        return Err(err(input, "name is a public suffix"));
    }
    if !psl_known(&ascii) {
        return Err(err(input, "top-level domain is not a public suffix"));
    }
    Ok(if wildcard {
        format!("*.{ascii}")
    } else {
        ascii
    })
}

/// UTS #46 with STD3 rules, hyphen checks and DNS length verification.
fn to_ascii(s: &str) -> Option<String> {
    use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
    let out = Uts46::new()
        .to_ascii(
            s.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Check,
            DnsLength::Verify,
        )
        .ok()?;
    let out = out.into_owned();
    // The A-label form must round-trip back to itself.
    let (uni, res) = idna::domain_to_unicode(&out);
    res.ok()?;
    let again = Uts46::new()
        .to_ascii(
            uni.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Check,
            DnsLength::Verify,
        )
        .ok()?;
    (again == out).then_some(out)
}

fn check_ldh(name: &str) -> Result<(), &'static str> {
    if name.len() > 253 {
        return Err("name longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("empty label or label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("labels may contain only letters, digits and hyphens");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("labels may not start or end with a hyphen");
        }
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("top-level label may not be numeric");
    }
    Ok(())
}

fn psl_known(name: &str) -> bool {
    psl::suffix(name.as_bytes()).is_some_and(|s| s.is_known())
}

/// True for `*.example.com`.
pub fn is_wildcard(name: &str) -> bool {
    name.starts_with("*.")
}

/// The name without a leading `*.`.
pub fn base_name(name: &str) -> &str {
    name.strip_prefix("*.").unwrap_or(name)
}

/// The registrable domain (public suffix + one label), e.g. `example.co.uk`.
pub fn registrable_domain(name: &str) -> Option<String> {
    psl::domain_str(base_name(name)).map(str::to_string)
}

/// Normalises a list, refusing duplicates (after normalisation) and empty lists.
pub fn normalize_list(names: &[String]) -> Result<Vec<String>, NameError> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        let norm = normalize_dns_name(n)?;
        if out.contains(&norm) {
            return Err(err(n, "duplicate name"));
        }
        out.push(norm);
    }
    Ok(out)
}

/// How a subscription's name list covers requested identifiers (design.md ACME rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coverage {
    /// Each requested name must be listed; a wildcard needs the same wildcard listed.
    #[default]
    Exact,
    /// A listed entry also covers every name below it and its wildcards.
    Subdomains,
}

impl Coverage {
    /// Whether `requested` (normalised) is covered by the `listed` names (normalised).
    pub fn covers(self, listed: &[String], requested: &str) -> bool {
        match self {
            Coverage::Exact => listed.iter().any(|l| l == requested),
            Coverage::Subdomains => listed.iter().any(|l| {
                let lb = base_name(l);
                let rb = base_name(requested);
                l == requested || rb == lb || rb.ends_with(&format!(".{lb}"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(
            normalize_dns_name("WWW.Example.COM.").unwrap(),
            "www.example.com"
        );
        assert_eq!(
            normalize_dns_name("*.example.com").unwrap(),
            "*.example.com"
        );
        assert_eq!(normalize_dns_name("bücher.de").unwrap(), "xn--bcher-kva.de");
        assert_eq!(
            normalize_dns_name("xn--bcher-kva.de").unwrap(),
            "xn--bcher-kva.de"
        );
    }

    #[test]
    fn refuses() {
        for bad in [
            "",
            "localhost",
            "192.168.1.1",
            "::1",
            "*.com",
            "*.co.uk",
            "co.uk",
            "a.*.example.com",
            "foo*.example.com",
            "-a.example.com",
            "a_b.example.com",
            "example.invalidtld",
            "exa mple.com",
            "a..example.com",
            "example.123",
        ] {
            assert!(normalize_dns_name(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn lists_refuse_duplicates() {
        let l = vec!["a.example.com".to_string(), "A.example.com.".to_string()];
        assert!(normalize_list(&l).is_err());
    }

    #[test]
    fn coverage_rules() {
        let listed = vec!["example.com".to_string(), "*.shop.example.com".to_string()];
        assert!(Coverage::Exact.covers(&listed, "example.com"));
        assert!(!Coverage::Exact.covers(&listed, "www.example.com"));
        assert!(Coverage::Exact.covers(&listed, "*.shop.example.com"));
        assert!(!Coverage::Exact.covers(&listed, "*.example.com"));
        assert!(Coverage::Subdomains.covers(&listed, "www.example.com"));
        assert!(Coverage::Subdomains.covers(&listed, "*.a.example.com"));
        assert!(!Coverage::Subdomains.covers(&listed, "example.org"));
        assert!(!Coverage::Subdomains.covers(&listed, "badexample.com"));
    }
}
