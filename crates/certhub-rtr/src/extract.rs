//! Request extractors: the authenticated caller and the raw query string.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use certhub_app::{App, Caller};

use crate::error::RtrError;

/// The caller behind `Authorization: ApiKey <key>`.
pub struct Auth(pub Caller);

impl FromRequestParts<App> for Auth {
    type Rejection = RtrError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Auth, RtrError> {
        // A layer that already authenticated this request (idempotency)
        // leaves the caller in the extensions: one lookup per request.
        let caller = match parts.extensions.get::<Caller>() {
            Some(c) => c.clone(),
            None => app.authenticate(api_key(&parts.headers)?).await?,
        };
        // Limited after authentication: unknown keys cannot exhaust a real key's budget.
        app.rate_limit(
            certhub_app::ratelimit::Scope::ApiKey,
            &caller.api_key_id.to_string(),
        )
        .await?;
        Ok(Auth(caller))
    }
}

/// The key of `Authorization: ApiKey <key>`.
pub(crate) fn api_key(headers: &axum::http::HeaderMap) -> Result<&str, RtrError> {
    let unauthenticated = |m: &str| {
        RtrError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            m,
        )
    };
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthenticated("missing Authorization header"))?
        .strip_prefix("ApiKey ")
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| unauthenticated("Authorization header must be 'ApiKey <key>'"))
}

/// Query parameters in order, repeats kept (RTR filters repeat names).
pub struct RawQuery(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for RawQuery {
    type Rejection = RtrError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<RawQuery, RtrError> {
        let q = parts.uri.query().unwrap_or("");
        Ok(RawQuery(
            form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
        ))
    }
}

impl RawQuery {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `quote=true|1` (PHP sends `quote=false` on every call).
    pub fn flag(&self, name: &str) -> Result<bool, RtrError> {
        match self.get(name) {
            None | Some("false") | Some("0") | Some("") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(RtrError::validation(format!(
                "parameter {name}: '{other}' is not a boolean"
            ))),
        }
    }
}
