//! ACME problem documents go into the audit trail with their type and detail
//! (`certhub_app::refusals`). The customer is the one whose account signed
//! the request, once its signature verified: a `kid` alone proves nothing,
//! so an unverified request is recorded without a customer.
//!
//! The verifier notes the account in a per-request slot (a task-local set by
//! [`layer`]), because only it knows; the handlers need not pass it along.
//! Not recorded: `badNonce` (clients retry it as routine) and `rateLimited`
//! (floods; counted in the metrics), and server errors (not refusals).

use std::sync::{Arc, Mutex};

use axum::body::{Body, HttpBody, to_bytes};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

use crate::St;

/// Problem documents are built here and are small; this only bounds a bug.
const MAX_PROBLEM_BODY: usize = 1024 * 1024;
const NOT_RECORDED: &[&str] = &[
    "urn:ietf:params:acme:error:badNonce",
    "urn:ietf:params:acme:error:rateLimited",
];

/// (account id, customer id) of the verified signer.
type Slot = Arc<Mutex<Option<(i64, i64)>>>;

tokio::task_local! {
    static SIGNER: Slot;
}

/// Called by the verifier once an account's signature checked out.
pub(crate) fn note_signer(account_id: i64, customer_id: i64) {
    let _ = SIGNER.try_with(|s| {
        *s.lock().unwrap_or_else(|e| e.into_inner()) = Some((account_id, customer_id));
    });
}

pub(crate) async fn layer(State(st): State<St>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let subject = req.uri().path().to_string();
    let slot: Slot = Arc::new(Mutex::new(None));
    let resp = SIGNER.scope(slot.clone(), next.run(req)).await;
    if !resp.status().is_client_error() {
        return resp;
    }
    // Only a body of known size is read (it cannot then fail half way):
    // anything else goes out untouched, unrecorded.
    if HttpBody::size_hint(resp.body())
        .exact()
        .is_none_or(|n| n > MAX_PROBLEM_BODY as u64)
    {
        tracing::warn!(%subject, "problem document not recorded (streamed or too large)");
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = match to_bytes(body, MAX_PROBLEM_BODY).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, %subject, "a problem document of known size could not be read");
            return Response::from_parts(parts, Body::empty());
        }
    };
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let kind = v["type"].as_str().unwrap_or("");
    if !NOT_RECORDED.contains(&kind) {
        let signer = *slot.lock().unwrap_or_else(|e| e.into_inner());
        let (actor, customer) = match signer {
            Some((account, customer)) => (format!("acme-account-{account}"), Some(customer)),
            None => ("acme".to_string(), None),
        };
        let reason = format!(
            "{} {}: {}",
            parts.status.as_u16(),
            kind.trim_start_matches("urn:ietf:params:acme:error:"),
            v["detail"].as_str().unwrap_or("")
        );
        st.app()
            .audit_refusal(&actor, customer, &subject, &reason)
            .await;
    }
    Response::from_parts(parts, Body::from(bytes))
}
