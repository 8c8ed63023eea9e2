//! Plain-HTTP PKI paths: issuer certificates, CRLs and OCSP (GET and POST).
//! Relying parties fetch these over http:// (BR), so they are served on the
//! main port to non-TLS connections and on `--http-listen`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use certhub_app::App;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/issuer/{file}", get(issuer))
        .route("/crl/{file}", get(crl))
        .route("/ocsp/{issuer}", axum::routing::post(ocsp_post))
        .route("/ocsp/{issuer}/{*request}", get(ocsp_get))
        .with_state(app)
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("{what} not found\n")).into_response()
}

async fn issuer(State(app): State<App>, Path(file): Path<String>) -> Response {
    let Some(id) = file.strip_suffix(".cer") else {
        return not_found("issuer");
    };
    match app.pki().ca.issuer_cert_der(id) {
        Some(der) => (
            [
                (header::CONTENT_TYPE, "application/pkix-cert"),
                (header::CACHE_CONTROL, "max-age=86400"),
            ],
            der.to_vec(),
        )
            .into_response(),
        None => not_found("issuer"),
    }
}

async fn crl(State(app): State<App>, Path(file): Path<String>) -> Response {
    let Some(id) = file.strip_suffix(".crl") else {
        return not_found("CRL");
    };
    match app.crl_der(id).await {
        Ok(der) => (
            [
                (header::CONTENT_TYPE, "application/pkix-crl"),
                (header::CACHE_CONTROL, "max-age=300"),
            ],
            der,
        )
            .into_response(),
        Err(certhub_app::AppError::NotFound(_)) => not_found("CRL"),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn ocsp_response(der: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/ocsp-response"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        der,
    )
        .into_response()
}

async fn ocsp_post(State(app): State<App>, Path(_issuer): Path<String>, body: Bytes) -> Response {
    if body.len() > 16 * 1024 {
        return (StatusCode::PAYLOAD_TOO_LARGE, "OCSP request too large\n").into_response();
    }
    ocsp_response(app.ocsp(&body).await)
}

async fn ocsp_get(
    State(app): State<App>,
    Path((_issuer, request)): Path<(String, String)>,
) -> Response {
    // RFC 6960 A.1: base64 of the DER request, URL-encoded (axum decoded it).
    let cleaned: String = request.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&cleaned)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cleaned.trim_end_matches('='))
        });
    match der {
        Ok(der) => ocsp_response(app.ocsp(&der).await),
        Err(_) => ocsp_response(certhub_ca::ocsp_error_response(
            certhub_ca::OcspErrorStatus::MalformedRequest,
        )),
    }
}
