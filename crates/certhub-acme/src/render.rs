//! Wire forms: RFC 8555 resource objects, problem documents and headers.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use certhub_app::acme::{
    AccountCtx, AcmeAuthz, AcmeOrder, CHALLENGE_TYPES, Problem, Urls, authz_status, order_status,
};
use certhub_domain::time::format_rtr;
use serde_json::{Value, json};

/// A response under construction.
pub(crate) struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, String)>,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(status: u16, v: &Value) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            headers: vec![],
            content_type: "application/json",
            body: serde_json::to_vec(v).unwrap_or_default(),
        }
    }

    pub(crate) fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            headers: vec![],
            content_type,
            body,
        }
    }

    pub(crate) fn empty(status: u16) -> Reply {
        Reply::bytes(status, "", vec![])
    }

    pub(crate) fn header(mut self, name: HeaderName, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn location(self, url: impl Into<String>) -> Reply {
        self.header(header::LOCATION, url)
    }

    pub(crate) fn link(self, url: &str, rel: &str) -> Reply {
        self.header(header::LINK, format!("<{url}>;rel=\"{rel}\""))
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut res = Response::new(Body::from(self.body));
        *res.status_mut() = self.status;
        let h = res.headers_mut();
        if !self.content_type.is_empty() {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            );
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.append(name, v);
            }
        }
        res
    }
}

/// A problem document (`application/problem+json`).
pub(crate) fn problem(p: &Problem) -> Response {
    let mut r = Reply::bytes(
        p.status,
        "application/problem+json",
        serde_json::to_vec(p).unwrap_or_default(),
    );
    if let Some(l) = &p.location {
        r = r.location(l.clone());
    }
    if let Some(secs) = p.retry_after {
        r = r.header(header::RETRY_AFTER, secs.to_string());
    }
    r.into_response()
}

/// Handlers return either a reply or a problem.
pub(crate) fn respond(r: Result<Reply, Problem>) -> Response {
    match r {
        Ok(reply) => reply.into_response(),
        Err(p) => {
            if p.status >= 500 {
                tracing::error!(problem = %p, "ACME request failed");
            }
            problem(&p)
        }
    }
}

pub(crate) fn account(ctx: &AccountCtx, urls: &Urls) -> Value {
    json!({
        "status": ctx.status(),
        "contact": ctx.account.contact,
        "termsOfServiceAgreed": true,
        "orders": urls.orders(ctx.id()),
        "createdAt": format_rtr(ctx.account.created_at),
    })
}

pub(crate) fn order(o: &AcmeOrder, ctx: &AccountCtx, urls: &Urls, now: i64) -> Value {
    let status = order_status(o, &ctx.sub, now);
    let mut v = json!({
        "status": status,
        "expires": format_rtr(o.expires_at),
        "identifiers": o.identifiers.iter().map(|n| json!({"type": "dns", "value": n})).collect::<Vec<_>>(),
        "authorizations": o.authz_ids.iter().map(|a| urls.authz(*a)).collect::<Vec<_>>(),
        "finalize": urls.finalize(o.id),
    });
    if let Some(nb) = o.not_before {
        v["notBefore"] = json!(format_rtr(nb));
    }
    if let Some(na) = o.not_after {
        v["notAfter"] = json!(format_rtr(na));
    }
    if let Some(r) = &o.replaces {
        v["replaces"] = json!(r);
    }
    if let (Some(c), "valid") = (o.certificate_id, status) {
        v["certificate"] = json!(urls.certificate(c));
    }
    if status == "invalid" {
        let err = o.error.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok()).unwrap_or_else(|| {
            let why = if ctx.sub.deleted { "the subscription was deleted" } else { "the order expired or an authorization failed" };
            json!({"type": "urn:ietf:params:acme:error:malformed", "detail": why, "status": 400})
        });
        v["error"] = err;
    }
    v
}

/// The challenge types an authorisation offers.
pub(crate) fn offered(a: &AcmeAuthz) -> &'static [&'static str] {
    if a.wildcard {
        &CHALLENGE_TYPES[1..2]
    } else {
        &CHALLENGE_TYPES
    }
}

pub(crate) fn challenge(a: &AcmeAuthz, kind: &str, urls: &Urls, now: i64) -> Value {
    let attempted = a.chall_type.as_deref() == Some(kind);
    let status = if attempted {
        a.chall_status.as_deref().unwrap_or("processing")
    } else if authz_status(a, now) == "pending" {
        "pending"
    } else {
        // Unattempted challenges of a settled authorisation can no longer be used.
        "invalid"
    };
    let mut v = json!({"type": kind, "url": urls.challenge(a.id, kind), "status": status, "token": a.token});
    if attempted {
        if let (Some(t), "valid") = (a.validated_at, status) {
            v["validated"] = json!(format_rtr(t));
        }
        if let Some(e) = a
            .chall_error
            .as_deref()
            .and_then(|e| serde_json::from_str::<Value>(e).ok())
        {
            v["error"] = e;
        }
    }
    v
}

pub(crate) fn authz(a: &AcmeAuthz, urls: &Urls, now: i64) -> Value {
    let status = authz_status(a, now);
    let kinds: Vec<&str> = match (&a.chall_type, status) {
        // Settled by one challenge: show that one (as Boulder does).
        (Some(t), "valid" | "invalid") => vec![t.as_str()],
        _ => offered(a).to_vec(),
    };
    let mut v = json!({
        "identifier": {"type": "dns", "value": a.identifier},
        "status": status,
        "expires": format_rtr(a.expires_at),
        "challenges": kinds.iter().map(|k| challenge(a, k, urls, now)).collect::<Vec<_>>(),
    });
    if a.wildcard {
        v["wildcard"] = json!(true);
    }
    v
}
