//! Refused `/v2` mutations go into the audit trail with the error the client
//! was given (`certhub_app::refusals`). Only authenticated callers: a 401 says
//! nothing about a customer, and 429s come in floods (they are metrics).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use certhub_app::App;
use serde_json::Value;

use crate::extract::api_key;
use crate::idempotency::REPLAYED;

/// Error bodies are the RTR error objects built in `error.rs`: a few hundred
/// bytes. The bound only keeps a bug from buffering without limit.
const MAX_ERROR_BODY: usize = 1024 * 1024;

pub async fn layer(State(app): State<App>, req: Request, next: Next) -> Response {
    let mutation = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if !mutation {
        return next.run(req).await;
    }
    let subject = format!("{} {}", req.method(), req.uri().path());
    let key = api_key(req.headers()).ok().map(str::to_string);
    let resp = next.run(req).await;
    let status = resp.status();
    let recorded = status.is_client_error()
        && !matches!(
            status,
            StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS
        )
        // A replay repeats a refusal that is already on record.
        && !resp.headers().contains_key(REPLAYED);
    if !recorded {
        return resp;
    }
    let Some(caller) = (match key {
        Some(k) => app.authenticate(&k).await.ok(),
        None => None,
    }) else {
        return resp;
    };
    let (parts, bytes) = match crate::buffer::response(resp, MAX_ERROR_BODY).await {
        Ok(read) => read,
        Err(resp) => {
            tracing::warn!(%subject, "refusal body not recorded (streamed or too large)");
            return resp;
        }
    };
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let reason = format!(
        "{} {}: {}",
        status.as_u16(),
        v["type"].as_str().unwrap_or("error"),
        v["message"].as_str().unwrap_or("")
    );
    app.audit_refusal(&caller.user(), Some(caller.customer_id), &subject, &reason)
        .await;
    Response::from_parts(parts, Body::from(bytes))
}
