//! RFC 8555 §6.7 problem documents: the one error type of the ACME use cases.
//! The HTTP layer renders them as `application/problem+json`.

use serde::{Deserialize, Serialize};

use crate::AppError;

const URN: &str = "urn:ietf:params:acme:error:";

/// An ACME identifier (`{"type": "dns", "value": "..."}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

impl Identifier {
    pub fn dns(value: &str) -> Identifier {
        Identifier {
            kind: "dns".into(),
            value: value.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubProblem {
    #[serde(rename = "type")]
    pub kind: String,
    pub detail: String,
    pub identifier: Identifier,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub detail: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subproblems: Vec<SubProblem>,
    /// For `badSignatureAlgorithm`: what we accept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<String>>,
    /// A `Location` header to send (409 on keyChange names the other account).
    #[serde(skip)]
    pub location: Option<String>,
    /// A `Retry-After` header to send (seconds; `rateLimited`).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.kind, self.status, self.detail)
    }
}

impl std::error::Error for Problem {}

impl Problem {
    /// `kind` is the suffix after `urn:ietf:params:acme:error:`.
    pub fn new(kind: &str, status: u16, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("{URN}{kind}"),
            detail: detail.into(),
            status,
            subproblems: vec![],
            algorithms: None,
            location: None,
            retry_after: None,
        }
    }

    /// The type without the URN prefix.
    pub fn short_type(&self) -> &str {
        self.kind.strip_prefix(URN).unwrap_or(&self.kind)
    }

    pub fn with_subproblems(mut self, subs: Vec<SubProblem>) -> Problem {
        self.subproblems = subs;
        self
    }

    pub fn malformed(detail: impl Into<String>) -> Problem {
        Problem::new("malformed", 400, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new("malformed", 404, detail)
    }
    /// 403 `unauthorized`: authenticated, but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new("unauthorized", 403, detail)
    }
    /// 401 `unauthorized`: bad credentials or an unusable account.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new("unauthorized", 401, detail)
    }
    pub fn bad_nonce(detail: impl Into<String>) -> Problem {
        Problem::new("badNonce", 400, detail)
    }
    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new("serverInternal", 500, detail)
    }
    pub fn order_not_ready(detail: impl Into<String>) -> Problem {
        Problem::new("orderNotReady", 403, detail)
    }
    pub fn bad_csr(detail: impl Into<String>) -> Problem {
        Problem::new("badCSR", 400, detail)
    }

    /// A subproblem about one identifier.
    pub fn sub(kind: &str, value: &str, detail: impl Into<String>) -> SubProblem {
        SubProblem {
            kind: format!("{URN}{kind}"),
            detail: detail.into(),
            identifier: Identifier::dns(value),
        }
    }

    /// JSON text for storage in an order or challenge `error` column.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Problem {
        match e {
            AppError::InvalidCsr(m) => Problem::bad_csr(m),
            AppError::Validation { message } | AppError::Constraint { message, .. } => {
                Problem::malformed(message)
            }
            AppError::NotFound(m) => Problem::not_found(m),
            AppError::Unauthenticated(m) => Problem::unauthorized(m),
            AppError::Forbidden(m) => Problem::forbidden(m),
            AppError::RateLimited {
                message,
                retry_after,
            } => {
                let mut p = Problem::new("rateLimited", 429, message);
                p.retry_after = Some(retry_after);
                p
            }
            AppError::Unavailable {
                message,
                retry_after,
            } => {
                let mut p = Problem::new("serverInternal", 503, message);
                p.retry_after = Some(retry_after);
                p
            }
            AppError::Internal(m) => Problem::internal(m),
            other => Problem::malformed(other.to_string()),
        }
    }
}

impl From<certhub_store::StoreError> for Problem {
    fn from(e: certhub_store::StoreError) -> Problem {
        Problem::from(AppError::from(e))
    }
}

impl From<sqlx::Error> for Problem {
    fn from(e: sqlx::Error) -> Problem {
        Problem::from(AppError::from(e))
    }
}

impl From<certhub_jose::JoseError> for Problem {
    fn from(e: certhub_jose::JoseError) -> Problem {
        let status = if e.acme_type() == "unauthorized" {
            401
        } else {
            400
        };
        let mut p = Problem::new(e.acme_type(), status, e.detail());
        if e.acme_type() == "badSignatureAlgorithm" {
            p.algorithms = Some(
                certhub_jose::Alg::ALL
                    .iter()
                    .map(|a| a.as_str().to_string())
                    .collect(),
            );
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_like_rfc8555() {
        let p = Problem::new("rejectedIdentifier", 400, "no").with_subproblems(vec![Problem::sub(
            "rejectedIdentifier",
            "a.example",
            "not covered",
        )]);
        let v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(v["type"], "urn:ietf:params:acme:error:rejectedIdentifier");
        assert_eq!(v["subproblems"][0]["identifier"]["value"], "a.example");
        assert_eq!(p.short_type(), "rejectedIdentifier");
        assert!(v.get("algorithms").is_none());
    }

    #[test]
    fn maps_app_and_jose_errors() {
        assert_eq!(
            Problem::from(AppError::InvalidCsr("x".into())).short_type(),
            "badCSR"
        );
        let j = Problem::from(certhub_jose::JoseError::BadSignatureAlgorithm(
            "none".into(),
        ));
        assert_eq!(j.short_type(), "badSignatureAlgorithm");
        assert!(j.algorithms.unwrap().contains(&"ES256".to_string()));
        assert_eq!(
            Problem::from(certhub_jose::JoseError::Unauthorized("mac".into())).status,
            401
        );
    }
}
