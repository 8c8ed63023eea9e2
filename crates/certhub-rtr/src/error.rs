//! The one mapping from application errors to RTR error bodies.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use certhub_app::AppError;
use serde_json::{Value, json};

/// An RTR error: HTTP status plus `{type, message, ...}`.
#[derive(Debug)]
pub struct RtrError {
    pub status: StatusCode,
    pub body: Value,
    /// Seconds for `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
}

impl RtrError {
    pub fn new(status: StatusCode, error_type: &str, message: impl Into<String>) -> RtrError {
        RtrError {
            status,
            body: json!({"type": error_type, "message": message.into()}),
            retry_after: None,
        }
    }

    pub fn unrecognized_property(property: &str) -> RtrError {
        RtrError {
            status: StatusCode::BAD_REQUEST,
            body: json!({
                "type": "UnrecognizedPropertyException",
                "message": format!("Unrecognized field \"{property}\""),
                "property": property,
            }),
            retry_after: None,
        }
    }

    pub fn invalid_message(message: impl Into<String>) -> RtrError {
        RtrError::new(StatusCode::BAD_REQUEST, "InvalidMessage", message)
    }

    pub fn validation(message: impl Into<String>) -> RtrError {
        RtrError::new(StatusCode::BAD_REQUEST, "ValidationError", message)
    }
}

impl From<AppError> for RtrError {
    fn from(e: AppError) -> RtrError {
        use AppError as E;
        let msg = e.to_string();
        match e {
            E::Unauthenticated(_) => {
                RtrError::new(StatusCode::UNAUTHORIZED, "AuthenticationError", msg)
            }
            E::Forbidden(_) => RtrError::new(StatusCode::FORBIDDEN, "AuthorizationError", msg),
            E::NotFound(_) => RtrError::new(StatusCode::NOT_FOUND, "ObjectDoesNotExist", msg),
            E::BadReference(_) => RtrError::new(StatusCode::BAD_REQUEST, "ObjectDoesNotExist", msg),
            E::Validation { .. } => RtrError::new(StatusCode::BAD_REQUEST, "ValidationError", msg),
            E::Constraint {
                message,
                violations,
            } => RtrError {
                status: StatusCode::BAD_REQUEST,
                body: json!({"type": "ConstraintViolationException", "message": message, "violations": violations}),
                retry_after: None,
            },
            E::InsufficientCredit(_) => {
                RtrError::new(StatusCode::BAD_REQUEST, "InsufficientCreditException", msg)
            }
            E::StatusProhibits(_) => RtrError::new(
                StatusCode::BAD_REQUEST,
                "ObjectStatusProhibitsOperation",
                msg,
            ),
            E::ObjectExists(_) => RtrError::new(StatusCode::BAD_REQUEST, "ObjectExists", msg),
            E::InvalidCsr(_) => RtrError::new(StatusCode::BAD_REQUEST, "InvalidCSRException", msg),
            E::RateLimited { retry_after, .. } => RtrError {
                retry_after: Some(retry_after),
                ..RtrError::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", msg)
            },
            E::Unavailable { retry_after, .. } => RtrError {
                retry_after: Some(retry_after),
                ..RtrError::new(StatusCode::SERVICE_UNAVAILABLE, "ProviderUnavailable", msg)
            },
            E::Internal(_) => {
                RtrError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalSRSError", msg)
            }
        }
    }
}

impl IntoResponse for RtrError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        if matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            let secs = self.retry_after.unwrap_or(1).to_string();
            if let Ok(v) = axum::http::HeaderValue::from_str(&secs) {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

pub type RtrResult<T> = Result<T, RtrError>;
