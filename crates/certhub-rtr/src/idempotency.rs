//! The `Idempotency-Key` header on `/v2` mutations (design.md): a request
//! repeated after a timeout gets the first response again instead of
//! running twice (charging twice). The rules live in
//! `certhub_app::idempotency`; this layer reads the header, runs the handler
//! inside the key's claim and records or replays responses.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use certhub_app::App;
use certhub_app::idempotency::{Found, StoredResponse, request_hash};
use certhub_store::idempotency::{Claim, ClaimState};

use crate::error::RtrError;
use crate::extract::api_key;

pub const HEADER: &str = "idempotency-key";
/// Set on a replayed response.
pub const REPLAYED: &str = "idempotent-replayed";
const MAX_KEY_LEN: usize = 255;
/// Request and response bodies of `/v2` are small; this bounds the buffering.
const MAX_BODY: usize = 2 * 1024 * 1024;
/// The response headers replayed with the body.
const KEPT_HEADERS: &[&str] = &["content-type", "x-process-id", "location"];

pub async fn layer(State(app): State<App>, req: Request, next: Next) -> Response {
    let mutation = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let Some(value) = req.headers().get(HEADER).filter(|_| mutation) else {
        return next.run(req).await;
    };
    let key = match value.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN => k.to_string(),
        _ => {
            return RtrError::validation(
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
            .into_response();
        }
    };
    // Keys are scoped per API key. A request that does not authenticate is
    // left to the handler, which refuses it before any change.
    let caller = match api_key(req.headers()) {
        Ok(k) => app.authenticate(k).await.ok(),
        Err(_) => None,
    };
    let Some(caller) = caller else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(caller.clone());
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return RtrError::validation("request body too large").into_response();
    };
    let path = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let hash = request_hash(parts.method.as_str(), path, &bytes);

    match app.idempotency_find(caller.api_key_id, &key, &hash).await {
        Ok(Found::Absent) => {}
        Ok(found) => return answer(found),
        Err(e) => return RtrError::from(e).into_response(),
    }
    let claim = Claim::new(caller.api_key_id, key, hash, app.now());
    let resp = claim
        .scope(next.run(Request::from_parts(parts, Body::from(bytes))))
        .await;
    match claim.state() {
        // Nothing was committed: no record, and a retry runs again.
        ClaimState::Unclaimed => resp,
        ClaimState::Claimed => record(&app, &claim, resp).await,
        // Another request with this key committed first; this one changed
        // nothing. Answer as a retry arriving now would be answered.
        ClaimState::Conflict => {
            match app
                .idempotency_find(claim.api_key_id, &claim.key, &claim.request_hash)
                .await
            {
                Ok(found) => answer(found),
                Err(e) => RtrError::from(e).into_response(),
            }
        }
    }
}

fn answer(found: Found) -> Response {
    match found {
        Found::Replay(stored) => replay(stored),
        Found::Mismatch => RtrError::validation(
            "this Idempotency-Key was used for a different request in the last 24 hours",
        )
        .into_response(),
        // Absent after a lost claim: the winner's transaction is still
        // committing (or rolled back); either way, retry shortly.
        Found::Executing | Found::Absent => RtrError::from(certhub_app::AppError::Unavailable {
            message: "a request with this Idempotency-Key is being executed; retry shortly".into(),
            retry_after: 1,
        })
        .into_response(),
        Found::Lost => RtrError::validation(
            "the request with this Idempotency-Key was executed but its response was lost; \
             read the object's state, or repeat the request with a new key",
        )
        .into_response(),
    }
}

/// Buffers the claiming request's response, stores it, and sends it on. A
/// response that cannot be buffered goes out unrecorded: the change is
/// committed, and a retry is told that its response was lost.
async fn record(app: &App, claim: &Claim, resp: Response) -> Response {
    let (parts, bytes) = match crate::buffer::response(resp, MAX_BODY).await {
        Ok(read) => read,
        Err(resp) => {
            tracing::warn!(
                "a response not recorded for its Idempotency-Key (streamed or too large)"
            );
            return resp;
        }
    };
    let headers = KEPT_HEADERS
        .iter()
        .filter_map(|h| {
            let v = parts.headers.get(*h)?.to_str().ok()?;
            Some((h.to_string(), v.to_string()))
        })
        .collect();
    let stored = StoredResponse::new(parts.status.as_u16(), headers, &bytes);
    // The change is committed either way; failing to record the response
    // only means a retry is told the response was lost.
    if let Err(e) = app.idempotency_store(claim, &stored).await {
        tracing::warn!(error = %e, "cannot record the response of an Idempotency-Key");
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, stored.body_bytes()).into_response();
    let headers = resp.headers_mut();
    headers.remove(axum::http::header::CONTENT_TYPE);
    for (k, v) in &stored.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            headers.insert(k, v);
        }
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    resp
}
