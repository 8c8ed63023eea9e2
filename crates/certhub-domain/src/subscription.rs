//! ACME subscription rules (design.md "Subscription rules"): the status RTR
//! shows, the instants at which the lifecycle engine acts, refunds and the
//! reuse of approved organisations. Pure functions of their inputs.

use std::fmt;

use crate::time::{DAY, Timestamp, add_months};

/// Days an organisation validation stays valid (BR 4.2.1 reuse limit for OV).
pub const ORG_VALIDITY_DAYS: i64 = 397;
/// Revalidation starts this many days before `orgValidUntil`.
pub const ORG_REVALIDATE_DAYS_BEFORE: i64 = 30;
/// A suspended term is revoked this many days after `expiryDate`.
pub const REVOKE_DAYS_AFTER_EXPIRY: i64 = 30;
/// Deleting within this many days of `createdDate` refunds every charge.
pub const REFUND_WINDOW_DAYS: i64 = 30;
/// `ACME_SUBSCRIPTION_EXPIRING` notices go out this many days before expiry.
pub const EXPIRING_NOTICE_DAYS: [i64; 2] = [30, 7];

/// The paid term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermState {
    Active,
    Suspended,
    Revoked,
}

impl TermState {
    pub fn as_str(self) -> &'static str {
        match self {
            TermState::Active => "ACTIVE",
            TermState::Suspended => "SUSPENDED",
            TermState::Revoked => "REVOKED",
        }
    }

    pub fn parse(s: &str) -> Option<TermState> {
        Some(match s {
            "ACTIVE" => TermState::Active,
            "SUSPENDED" => TermState::Suspended,
            "REVOKED" => TermState::Revoked,
            _ => return None,
        })
    }
}

/// The organisation validation of an OV subscription (`None` for DV).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgState {
    None,
    Validated,
    Pending,
    Rejected,
}

impl OrgState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgState::None => "NONE",
            OrgState::Validated => "VALIDATED",
            OrgState::Pending => "PENDING",
            OrgState::Rejected => "REJECTED",
        }
    }

    pub fn parse(s: &str) -> Option<OrgState> {
        Some(match s {
            "NONE" => OrgState::None,
            "VALIDATED" => OrgState::Validated,
            "PENDING" => OrgState::Pending,
            "REJECTED" => OrgState::Rejected,
            _ => return None,
        })
    }
}

/// RTR's `AcmeSubscriptionStatusEnum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Suspended,
    Revoked,
    PendingOrganizationValidation,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "ACTIVE",
            Status::Suspended => "SUSPENDED",
            Status::Revoked => "REVOKED",
            Status::PendingOrganizationValidation => "PENDING_ORGANIZATION_VALIDATION",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "ACTIVE" => Status::Active,
            "SUSPENDED" => Status::Suspended,
            "REVOKED" => Status::Revoked,
            "PENDING_ORGANIZATION_VALIDATION" => Status::PendingOrganizationValidation,
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// REVOKED if the term is revoked, else SUSPENDED if suspended, else
/// PENDING_ORGANIZATION_VALIDATION if the organisation is not validated,
/// else ACTIVE.
pub fn status(term: TermState, org: OrgState) -> Status {
    match (term, org) {
        (TermState::Revoked, _) => Status::Revoked,
        (TermState::Suspended, _) => Status::Suspended,
        (TermState::Active, OrgState::Pending | OrgState::Rejected) => {
            Status::PendingOrganizationValidation
        }
        (TermState::Active, OrgState::None | OrgState::Validated) => Status::Active,
    }
}

/// The detail of an ACME `unauthorized` problem for a subscription that is
/// not ACTIVE: "subscription {id} is {STATUS}: {remedy}".
pub fn remedy_detail(id: i64, status: Status, org_process: Option<i64>) -> String {
    match status {
        Status::Active => format!("subscription {id} is ACTIVE"),
        Status::Suspended => format!("subscription {id} is SUSPENDED: renew it"),
        Status::Revoked => format!("subscription {id} is REVOKED: order a new subscription"),
        Status::PendingOrganizationValidation => match org_process {
            Some(p) => format!(
                "subscription {id} is PENDING_ORGANIZATION_VALIDATION: complete organisation validation, process {p}"
            ),
            None => format!(
                "subscription {id} is PENDING_ORGANIZATION_VALIDATION: complete organisation validation"
            ),
        },
    }
}

/// The detail for a deleted subscription (its accounts are revoked).
pub fn deleted_detail(id: i64) -> String {
    format!("subscription {id} is deleted: order a new subscription")
}

/// `expiryDate = add_months(createdDate, total months paid)`: always from the
/// creation date, so month-end clamping never drifts.
pub fn expiry(created: Timestamp, months_paid: i64) -> Timestamp {
    add_months(created, months_paid)
}

/// When a suspended term becomes revoked.
pub fn revocation_at(expiry: Timestamp) -> Timestamp {
    expiry + REVOKE_DAYS_AFTER_EXPIRY * DAY
}

/// Deleting refunds every charge strictly before `createdDate + 30 days`.
pub fn refundable(created: Timestamp, now: Timestamp) -> bool {
    now < created + REFUND_WINDOW_DAYS * DAY
}

/// `orgValidUntil` of an approval.
pub fn org_valid_until(approved_at: Timestamp) -> Timestamp {
    approved_at + ORG_VALIDITY_DAYS * DAY
}

/// When a new organisation validation starts (the status stays ACTIVE).
pub fn revalidation_at(org_valid_until: Timestamp) -> Timestamp {
    org_valid_until - ORG_REVALIDATE_DAYS_BEFORE * DAY
}

/// An approval can be reused by a new subscription while it is younger than
/// 397 days.
pub fn org_reusable(approved_at: Timestamp, now: Timestamp) -> bool {
    now < org_valid_until(approved_at)
}

/// The instants of the `ACME_SUBSCRIPTION_EXPIRING` notices for an expiry,
/// with their day counts.
pub fn expiring_notices(expiry: Timestamp) -> impl Iterator<Item = (i64, Timestamp)> {
    EXPIRING_NOTICE_DAYS
        .into_iter()
        .map(move |d| (d, expiry - d * DAY))
}

/// Which notice (30 or 7 days) a job due at `due_at` is for, if it still
/// matches the current expiry (after a renewal it no longer does).
pub fn expiring_notice_days(expiry: Timestamp, due_at: Timestamp) -> Option<i64> {
    EXPIRING_NOTICE_DAYS
        .into_iter()
        .find(|d| expiry - d * DAY == due_at)
}

/// The organisation identity that approvals are keyed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgIdentity {
    pub organization: String,
    pub country: String,
    pub state: Option<String>,
    pub city: Option<String>,
}

impl OrgIdentity {
    /// Case- and whitespace-insensitive key: two spellings of one organisation
    /// reuse one approval.
    pub fn key(&self) -> String {
        fn norm(s: &str) -> String {
            s.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
        }
        format!(
            "{}|{}|{}|{}",
            norm(&self.organization),
            self.country.trim().to_uppercase(),
            self.state.as_deref().map(norm).unwrap_or_default(),
            self.city.as_deref().map(norm).unwrap_or_default()
        )
    }
}

/// An EAB token (accountKey or hmacKey) as design.md requires: 43 characters
/// of the base64url alphabet, not starting with `-`.
pub fn valid_eab_token(s: &str) -> bool {
    s.len() == 43
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{format_rtr, parse_rfc3339};

    fn ts(s: &str) -> Timestamp {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn status_precedence() {
        use OrgState as O;
        use TermState as T;
        assert_eq!(status(T::Revoked, O::Pending), Status::Revoked);
        assert_eq!(status(T::Suspended, O::Pending), Status::Suspended);
        assert_eq!(
            status(T::Active, O::Pending),
            Status::PendingOrganizationValidation
        );
        assert_eq!(
            status(T::Active, O::Rejected),
            Status::PendingOrganizationValidation
        );
        assert_eq!(status(T::Active, O::Validated), Status::Active);
        assert_eq!(status(T::Active, O::None), Status::Active);
        for s in [
            Status::Active,
            Status::Suspended,
            Status::Revoked,
            Status::PendingOrganizationValidation,
        ] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn remedies() {
        assert_eq!(
            remedy_detail(12, Status::Suspended, None),
            "subscription 12 is SUSPENDED: renew it"
        );
        assert_eq!(
            remedy_detail(12, Status::PendingOrganizationValidation, Some(7)),
            "subscription 12 is PENDING_ORGANIZATION_VALIDATION: complete organisation validation, process 7"
        );
        assert_eq!(
            remedy_detail(3, Status::Revoked, None),
            "subscription 3 is REVOKED: order a new subscription"
        );
    }

    #[test]
    fn instants() {
        let created = ts("2027-01-31T10:00:00Z");
        assert_eq!(format_rtr(expiry(created, 1)), "2027-02-28T10:00:00Z");
        assert_eq!(format_rtr(expiry(created, 2)), "2027-03-31T10:00:00Z");
        let e = ts("2027-12-03T10:00:00Z");
        assert_eq!(format_rtr(revocation_at(e)), "2028-01-02T10:00:00Z");
        assert!(refundable(created, created + 29 * DAY));
        assert!(!refundable(created, created + 30 * DAY));
        assert!(!refundable(created, created + 31 * DAY));
        let approved = ts("2027-01-01T00:00:00Z");
        assert_eq!(org_valid_until(approved), approved + 397 * DAY);
        assert_eq!(
            revalidation_at(org_valid_until(approved)),
            approved + 367 * DAY
        );
        assert!(org_reusable(approved, approved + 396 * DAY));
        assert!(!org_reusable(approved, approved + 397 * DAY));
        let n: Vec<_> = expiring_notices(e).collect();
        assert_eq!(n, vec![(30, e - 30 * DAY), (7, e - 7 * DAY)]);
        assert_eq!(expiring_notice_days(e, e - 7 * DAY), Some(7));
        assert_eq!(expiring_notice_days(e + DAY, e - 7 * DAY), None);
    }

    #[test]
    fn org_keys_ignore_case_and_spacing() {
        let a = OrgIdentity {
            organization: "Acme  B.V.".into(),
            country: "nl".into(),
            state: None,
            city: Some("Amsterdam".into()),
        };
        let b = OrgIdentity {
            organization: "acme b.v.".into(),
            country: "NL".into(),
            state: None,
            city: Some(" amsterdam ".into()),
        };
        assert_eq!(a.key(), b.key());
        let c = OrgIdentity {
            city: Some("Utrecht".into()),
            ..b
        };
        assert_ne!(a.key(), c.key());
    }

    #[test]
    fn eab_tokens() {
        assert!(valid_eab_token(&"a".repeat(43)));
        assert!(!valid_eab_token(&format!("-{}", "a".repeat(42))));
        assert!(!valid_eab_token(&"a".repeat(44)));
        assert!(!valid_eab_token(&format!("{}=", "a".repeat(42))));
    }
}
