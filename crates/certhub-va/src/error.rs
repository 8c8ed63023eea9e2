//! The single error type of the validation authority.

use std::fmt;

/// What went wrong during a validation, mapped onto an ACME problem type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VaErrorKind {
    /// Name resolution failed (SERVFAIL, timeout, unresolvable name).
    Dns,
    /// TCP connect, HTTP transport, redirect policy or timeout failure.
    Connection,
    /// The response was well-formed but held the wrong value (wrong body,
    /// wrong TXT, wrong acmeIdentifier digest, HTTP error status, no TXT).
    Unauthorized,
    /// The response did not meet the challenge's requirements
    /// (oversized or non-UTF-8 body, malformed tls-alpn-01 certificate).
    IncorrectResponse,
    /// TLS handshake failed or `acme-tls/1` was not negotiated.
    Tls,
    /// CAA records forbid issuance.
    Caa,
    /// The name resolves only to addresses our policy refuses.
    RejectedIdentifier,
}

impl VaErrorKind {
    /// The ACME problem type name (RFC 8555 §6.7), without the URN prefix.
    pub fn acme_type(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Connection => "connection",
            Self::Unauthorized => "unauthorized",
            Self::IncorrectResponse => "incorrectResponse",
            Self::Tls => "tls",
            Self::Caa => "caa",
            Self::RejectedIdentifier => "rejectedIdentifier",
        }
    }
}

/// A validation failure: a kind for the ACME problem type and a
/// human-readable detail naming what was fetched and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct VaError {
    pub kind: VaErrorKind,
    pub detail: String,
}

impl fmt::Display for VaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.acme_type(), self.detail)
    }
}

impl VaError {
    pub fn new(kind: VaErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    /// Short ACME problem type name, e.g. `"dns"`.
    pub fn acme_type(&self) -> &'static str {
        self.kind.acme_type()
    }

    /// Full ACME problem type URN, e.g. `urn:ietf:params:acme:error:dns`.
    pub fn acme_urn(&self) -> String {
        format!("urn:ietf:params:acme:error:{}", self.kind.acme_type())
    }

    pub(crate) fn dns(detail: impl Into<String>) -> Self {
        Self::new(VaErrorKind::Dns, detail)
    }
    pub(crate) fn connection(detail: impl Into<String>) -> Self {
        Self::new(VaErrorKind::Connection, detail)
    }
    pub(crate) fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(VaErrorKind::Unauthorized, detail)
    }
    pub(crate) fn incorrect(detail: impl Into<String>) -> Self {
        Self::new(VaErrorKind::IncorrectResponse, detail)
    }
    pub(crate) fn tls(detail: impl Into<String>) -> Self {
        Self::new(VaErrorKind::Tls, detail)
    }
    pub(crate) fn caa(detail: impl Into<String>) -> Self {
        Self::new(VaErrorKind::Caa, detail)
    }
    pub(crate) fn rejected(detail: impl Into<String>) -> Self {
        Self::new(VaErrorKind::RejectedIdentifier, detail)
    }
}

pub type Result<T, E = VaError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_to_acme_types() {
        let e = VaError::caa("forbidden");
        assert_eq!(e.acme_type(), "caa");
        assert_eq!(e.acme_urn(), "urn:ietf:params:acme:error:caa");
        assert_eq!(
            VaErrorKind::RejectedIdentifier.acme_type(),
            "rejectedIdentifier"
        );
        assert_eq!(e.to_string(), "caa: forbidden");
    }
}
