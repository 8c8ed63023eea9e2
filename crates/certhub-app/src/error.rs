//! The one application error. Each front end maps it once to its wire form
//! (RTR error body, ACME problem document).

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Violation {
    pub field: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Missing or unknown credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but not allowed (another customer's handle).
    #[error("{0}")]
    Forbidden(String),
    /// An object named in the path does not exist (or is not the caller's).
    #[error("{0}")]
    NotFound(String),
    /// An object referenced inside a body does not exist.
    #[error("{0}")]
    BadReference(String),
    /// Query-parameter or request-shape errors (`ValidationError`).
    #[error("{message}")]
    Validation { message: String },
    /// Field constraint failures (`ConstraintViolationException`).
    #[error("{message}")]
    Constraint {
        message: String,
        violations: Vec<Violation>,
    },
    #[error("{0}")]
    InsufficientCredit(String),
    #[error("{0}")]
    StatusProhibits(String),
    #[error("{0}")]
    ObjectExists(String),
    #[error("{0}")]
    InvalidCsr(String),
    /// A rate limit is exhausted; `retry_after` seconds until the window ends.
    #[error("{message}")]
    RateLimited { message: String, retry_after: u64 },
    /// The server is overloaded (connection pool exhausted, lock wait too
    /// long); nothing was changed and the client should retry later.
    #[error("{message}")]
    Unavailable { message: String, retry_after: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn constraint(field: &str, message: impl Into<String>, value: Option<String>) -> AppError {
        let message = message.into();
        AppError::Constraint {
            message: format!("{field}: {message}"),
            violations: vec![Violation {
                field: field.to_string(),
                message,
                value,
            }],
        }
    }

    pub fn validation(message: impl Into<String>) -> AppError {
        AppError::Validation {
            message: message.into(),
        }
    }
}

impl From<certhub_store::StoreError> for AppError {
    fn from(e: certhub_store::StoreError) -> AppError {
        use certhub_store::StoreError as S;
        match e {
            S::NotFound => AppError::NotFound("object does not exist".into()),
            S::Conflict(m) => AppError::ObjectExists(m),
            // The REST layer answers these itself (replay or refusal); this
            // is what a caller outside it would see.
            S::IdempotencyConflict => AppError::Unavailable {
                message: "a request with this Idempotency-Key is being executed; retry shortly"
                    .into(),
                retry_after: 1,
            },
            S::InsufficientCredit {
                balance,
                needed,
                currency,
            } => AppError::InsufficientCredit(format!(
                "insufficient credit: {needed} {currency} cents needed, {balance} available"
            )),
            S::Busy(_) => {
                tracing::warn!(error = %e, "store overloaded");
                AppError::Unavailable {
                    message: "the service is busy; retry shortly".into(),
                    retry_after: 1,
                }
            }
            S::Db(ref db) if is_overload(db) => {
                tracing::warn!(error = %e, "store overloaded");
                AppError::Unavailable {
                    message: "the service is busy; retry shortly".into(),
                    retry_after: 1,
                }
            }
            other => {
                tracing::error!(error = %other, "store error");
                AppError::Internal("a storage error occurred".into())
            }
        }
    }
}

/// Errors that mean "too busy now", not "broken": the pool had no free
/// connection in time, SQLite's write lock stayed taken past busy_timeout,
/// or PostgreSQL gave up waiting for a row lock.
fn is_overload(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(d) => {
            let code = d.code();
            matches!(code.as_deref(), Some("5" | "6" | "55P03" | "57014"))
                || d.message().contains("database is locked")
        }
        _ => false,
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> AppError {
        AppError::from(certhub_store::StoreError::Db(e))
    }
}
