//! CAA (RFC 8659) with the ACME account and method bindings (RFC 8657).
//!
//! The lookup climbs from the name towards the root; the first non-empty
//! RRset is the relevant one. The decision itself is a pure function so it
//! can be tested without DNS.

use hickory_proto::rr::rdata::CAA;

use crate::dns::{Dns, canonical};
use crate::error::{Result, VaError};

/// Validation method names usable in `validationmethods`.
pub const METHODS: &[&str] = &[
    "http-01",
    "dns-01",
    "tls-alpn-01",
    "ca-dns",
    "ca-file",
    "ca-email",
    "ca-authkey",
];

/// Property tags we understand; a critical record with any other tag forbids issuance.
const KNOWN_TAGS: &[&str] = &[
    "issue",
    "issuewild",
    "iodef",
    "contactemail",
    "contactphone",
    "issuemail",
];

/// One CAA record, reduced to what the decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaaRecord {
    pub critical: bool,
    /// Lower-cased (tags match case-insensitively).
    pub tag: String,
    pub value: String,
}

impl CaaRecord {
    pub fn new(flags: u8, tag: &str, value: &str) -> Self {
        Self {
            critical: flags & 0x80 != 0,
            tag: tag.to_ascii_lowercase(),
            value: value.to_owned(),
        }
    }

    fn from_rdata(caa: &CAA) -> Self {
        Self {
            critical: caa.issuer_critical,
            tag: caa.tag.to_ascii_lowercase(),
            value: String::from_utf8_lossy(&caa.value).into_owned(),
        }
    }
}

/// What the caller asks permission for.
#[derive(Debug, Clone, Copy)]
pub struct CaaRequest<'a> {
    pub wildcard: bool,
    pub identities: &'a [String],
    pub account_uri: Option<&'a str>,
    pub method: &'a str,
}

/// A parsed `issue`/`issuewild` value: issuer domain (maybe empty) and parameters.
#[derive(Debug, PartialEq, Eq)]
struct IssueValue {
    issuer: String,
    params: Vec<(String, String)>,
}

fn is_domain(s: &str) -> bool {
    s.split('.').all(|label| {
        !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

/// RFC 8659 §4.2 issue-value; `None` when malformed (then the record
/// authorizes nobody, which is the safe reading).
fn parse_issue_value(value: &str) -> Option<IssueValue> {
    let mut parts = value.split(';');
    let issuer = parts.next().unwrap_or_default().trim();
    let issuer = issuer.trim_end_matches('.').to_ascii_lowercase();
    if !issuer.is_empty() && !is_domain(&issuer) {
        return None;
    }
    let mut params = Vec::new();
    for part in parts.map(str::trim).filter(|p| !p.is_empty()) {
        let (tag, val) = part.split_once('=')?;
        let (tag, val) = (tag.trim(), val.trim());
        if tag.is_empty() || !tag.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        if val
            .chars()
            .any(|c| !('\x21'..='\x7e').contains(&c) || c == ';')
        {
            return None;
        }
        params.push((tag.to_ascii_lowercase(), val.to_owned()));
    }
    Some(IssueValue { issuer, params })
}

/// Does this single issue/issuewild record authorize the request?
fn record_permits(value: &str, req: &CaaRequest<'_>) -> bool {
    let Some(parsed) = parse_issue_value(value) else {
        return false;
    };
    if parsed.issuer.is_empty()
        || !req.identities.iter().any(|id| {
            id.trim_end_matches('.')
                .eq_ignore_ascii_case(&parsed.issuer)
        })
    {
        return false;
    }
    parsed.params.iter().all(|(k, v)| match k.as_str() {
        // RFC 8657 §3: exact match of the account URL.
        "accounturi" => req.account_uri == Some(v.as_str()),
        // RFC 8657 §4: comma-separated method names.
        "validationmethods" => v.split(',').any(|m| m.trim() == req.method),
        _ => true,
    })
}

/// Decides on the relevant RRset. `Err` holds the human-readable reason.
pub fn evaluate(records: &[CaaRecord], req: &CaaRequest<'_>) -> Result<(), String> {
    if let Some(r) = records
        .iter()
        .find(|r| r.critical && !KNOWN_TAGS.contains(&r.tag.as_str()))
    {
        return Err(format!(
            "CAA record has unknown critical property tag {:?}",
            r.tag
        ));
    }
    let has_issuewild = records.iter().any(|r| r.tag == "issuewild");
    let tag = if req.wildcard && has_issuewild {
        "issuewild"
    } else {
        "issue"
    };
    let relevant: Vec<&CaaRecord> = records.iter().filter(|r| r.tag == tag).collect();
    // Only iodef/unknown non-critical tags: CAA does not restrict issuance.
    if relevant.is_empty() {
        return Ok(());
    }
    if relevant.iter().any(|r| record_permits(&r.value, req)) {
        return Ok(());
    }
    let listed: Vec<String> = relevant
        .iter()
        .map(|r| format!("{} \"{}\"", r.tag, r.value))
        .collect();
    Err(format!(
        "CAA {tag} records [{}] do not authorize {} for account {} with method {}",
        listed.join(", "),
        req.identities.join("/"),
        req.account_uri.unwrap_or("(none)"),
        req.method
    ))
}

/// The names to query, from the name itself up to its top-level label.
fn climb(name: &str) -> Vec<String> {
    let labels: Vec<&str> = name.split('.').filter(|l| !l.is_empty()).collect();
    (0..labels.len()).map(|i| labels[i..].join(".")).collect()
}

pub(crate) async fn check(dns: &Dns, domain: &str, req: &CaaRequest<'_>) -> Result<()> {
    let shown = canonical(domain);
    let name = shown.strip_prefix("*.").unwrap_or(&shown).to_owned();
    for candidate in climb(&name) {
        let rrset = dns.caa(&candidate).await.map_err(|e| {
            VaError::dns(format!(
                "CAA lookup for {shown} failed, issuance refused: {}",
                e.detail
            ))
        })?;
        if rrset.is_empty() {
            continue;
        }
        let records: Vec<CaaRecord> = rrset.iter().map(CaaRecord::from_rdata).collect();
        tracing::debug!(%name, at = %candidate, ?records, "relevant CAA RRset");
        return evaluate(&records, req).map_err(|why| {
            VaError::caa(format!(
                "CAA at {candidate} forbids issuance for {shown}: {why}"
            ))
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        vec!["certhub.test".to_owned()]
    }

    fn req<'a>(
        ids: &'a [String],
        wildcard: bool,
        acct: Option<&'a str>,
        method: &'a str,
    ) -> CaaRequest<'a> {
        CaaRequest {
            wildcard,
            identities: ids,
            account_uri: acct,
            method,
        }
    }

    fn rec(tag: &str, value: &str) -> CaaRecord {
        CaaRecord::new(0, tag, value)
    }

    #[test]
    fn parses_issue_values() {
        assert_eq!(
            parse_issue_value(
                " ca.example ; accounturi = https://x/a/1 ;validationmethods=dns-01,http-01"
            ),
            Some(IssueValue {
                issuer: "ca.example".into(),
                params: vec![
                    ("accounturi".into(), "https://x/a/1".into()),
                    ("validationmethods".into(), "dns-01,http-01".into())
                ]
            })
        );
        assert_eq!(
            parse_issue_value(";"),
            Some(IssueValue {
                issuer: String::new(),
                params: vec![]
            })
        );
        assert_eq!(parse_issue_value("ca.example; novalue"), None);
        assert_eq!(parse_issue_value("bad domain"), None);
    }

    #[test]
    fn empty_set_and_iodef_only_permit() {
        let i = ids();
        assert!(evaluate(&[], &req(&i, false, None, "http-01")).is_ok());
        assert!(
            evaluate(
                &[rec("iodef", "mailto:a@b")],
                &req(&i, false, None, "http-01")
            )
            .is_ok()
        );
    }

    #[test]
    fn issuer_matching() {
        let i = ids();
        let r = req(&i, false, None, "dns-01");
        assert!(evaluate(&[rec("issue", "CertHub.test.")], &r).is_ok());
        assert!(evaluate(&[rec("issue", "other.ca")], &r).is_err());
        assert!(evaluate(&[rec("issue", ";")], &r).is_err());
        assert!(
            evaluate(
                &[rec("issue", "other.ca"), rec("issue", "certhub.test")],
                &r
            )
            .is_ok()
        );
    }

    #[test]
    fn critical_unknown_tag_forbids() {
        let i = ids();
        let r = req(&i, false, None, "dns-01");
        let recs = [
            rec("issue", "certhub.test"),
            CaaRecord::new(128, "tbs", "x"),
        ];
        assert!(evaluate(&recs, &r).is_err());
        let recs = [rec("issue", "certhub.test"), CaaRecord::new(0, "tbs", "x")];
        assert!(evaluate(&recs, &r).is_ok());
    }

    #[test]
    fn wildcard_uses_issuewild_when_present() {
        let i = ids();
        let recs = [rec("issue", "certhub.test"), rec("issuewild", ";")];
        assert!(evaluate(&recs, &req(&i, true, None, "dns-01")).is_err());
        assert!(evaluate(&recs, &req(&i, false, None, "dns-01")).is_ok());
        let recs = [rec("issue", "certhub.test")];
        assert!(evaluate(&recs, &req(&i, true, None, "dns-01")).is_ok());
        let recs = [rec("issue", ";"), rec("issuewild", "certhub.test")];
        assert!(evaluate(&recs, &req(&i, true, None, "dns-01")).is_ok());
        assert!(evaluate(&recs, &req(&i, false, None, "dns-01")).is_err());
    }

    #[test]
    fn account_and_method_bindings() {
        let i = ids();
        let recs = [rec(
            "issue",
            "certhub.test; accounturi=https://ca/acct/1; validationmethods=dns-01,ca-dns",
        )];
        assert!(evaluate(&recs, &req(&i, false, Some("https://ca/acct/1"), "dns-01")).is_ok());
        assert!(evaluate(&recs, &req(&i, false, Some("https://ca/acct/1"), "ca-dns")).is_ok());
        assert!(evaluate(&recs, &req(&i, false, Some("https://ca/acct/2"), "dns-01")).is_err());
        assert!(evaluate(&recs, &req(&i, false, None, "dns-01")).is_err());
        assert!(evaluate(&recs, &req(&i, false, Some("https://ca/acct/1"), "http-01")).is_err());
    }

    #[test]
    fn climbs_to_the_top_label() {
        assert_eq!(
            climb("a.b.example.com"),
            vec!["a.b.example.com", "b.example.com", "example.com", "com"]
        );
    }
}
