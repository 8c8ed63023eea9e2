//! The crate's single error type.
//!
//! Every failure maps onto one ACME problem type (RFC 8555 §6.7) so the server
//! can turn it into a problem document without inspecting the message. The
//! detail strings are shown to ACME clients, so they say what was wrong in
//! plain words and never echo secrets (MAC keys, private keys).

/// Why a JWS, JWK, EAB or keyChange object was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    /// The request is structurally wrong (bad JSON, bad base64url, missing or
    /// forbidden header members, signature that does not verify).
    #[error("{0}")]
    Malformed(String),
    /// The `alg` is not one we accept, or does not fit the key type.
    #[error("{0}")]
    BadSignatureAlgorithm(String),
    /// The JWK is unsupported or invalid (weak RSA, point off the curve, ...).
    #[error("{0}")]
    BadPublicKey(String),
    /// Well formed, but binds to something the client may not use: unknown EAB
    /// key id, wrong MAC, a different account key or URL.
    #[error("{0}")]
    Unauthorized(String),
    /// Local failure while signing (random generator, key generation). Only the
    /// [`crate::sign`] helpers return it.
    #[error("{0}")]
    Internal(String),
}

impl JoseError {
    /// The ACME problem type suffix, to be prefixed with
    /// `urn:ietf:params:acme:error:`.
    #[must_use]
    pub fn acme_type(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::BadSignatureAlgorithm(_) => "badSignatureAlgorithm",
            Self::BadPublicKey(_) => "badPublicKey",
            Self::Unauthorized(_) => "unauthorized",
            Self::Internal(_) => "serverInternal",
        }
    }

    /// The human-readable detail for the problem document.
    #[must_use]
    pub fn detail(&self) -> &str {
        match self {
            Self::Malformed(d)
            | Self::BadSignatureAlgorithm(d)
            | Self::BadPublicKey(d)
            | Self::Unauthorized(d)
            | Self::Internal(d) => d,
        }
    }

    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        Self::Malformed(detail.into())
    }

    pub(crate) fn bad_alg(detail: impl Into<String>) -> Self {
        Self::BadSignatureAlgorithm(detail.into())
    }

    pub(crate) fn bad_key(detail: impl Into<String>) -> Self {
        Self::BadPublicKey(detail.into())
    }

    pub(crate) fn unauthorized(detail: impl Into<String>) -> Self {
        Self::Unauthorized(detail.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acme_types_and_details() {
        let cases = [
            (JoseError::malformed("a"), "malformed"),
            (JoseError::bad_alg("b"), "badSignatureAlgorithm"),
            (JoseError::bad_key("c"), "badPublicKey"),
            (JoseError::unauthorized("d"), "unauthorized"),
            (JoseError::Internal("e".into()), "serverInternal"),
        ];
        for (err, ty) in cases {
            assert_eq!(err.acme_type(), ty);
            assert_eq!(err.to_string(), err.detail());
        }
    }
}
