//! `/v2/ssl/certificates`, `/v2/ssl/import`, `/v2/ssl/decodecsr`, `/v2/ssl/authkey`,
//! `/v2/ssl/dcvemailaddresslist` and the certificate process actions
//! (owned by the certificate-lifecycle feature), plus the e-mail DCV approval
//! pages under `/dcv/approve/{token}` (no API key: the link is the credential).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use certhub_app::certificates::{DcvChoice, ImportInput, OrderInput, OrderOutcome};
use certhub_app::{App, AppError};
use certhub_domain::time::format_rtr;
use certhub_store::certificates::{CERTIFICATES, CertificateRow, certificate_from_row};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{parse_id, process_header};
use crate::body;
use crate::error::RtrResult;
use crate::extract::{Auth, RawQuery};
use crate::list;

const IDENTIFYING: &[&str] = &["id"];

/// Keys of `POST /v2/ssl/certificates`.
pub const REQUEST_KEYS: &[&str] = &[
    "customer",
    "product",
    "period",
    "csr",
    "domainName",
    "san",
    "organization",
    "department",
    "country",
    "state",
    "address",
    "city",
    "postalCode",
    "coc",
    "saEmail",
    "saLanguage",
    "language",
    "uniqueValue",
    "authKey",
    "approver",
    "dcv",
    "billables",
];
/// Keys of `POST /v2/ssl/certificates/{id}/renew`.
pub const RENEW_KEYS: &[&str] = &[
    "product",
    "period",
    "csr",
    "domainName",
    "san",
    "organization",
    "department",
    "country",
    "state",
    "address",
    "city",
    "postalCode",
    "coc",
    "saEmail",
    "language",
    "uniqueValue",
    "authKey",
    "approver",
    "dcv",
    "billables",
];
/// Keys of `POST /v2/ssl/certificates/{id}/reissue`.
pub const REISSUE_KEYS: &[&str] = &[
    "csr",
    "domainName",
    "san",
    "organization",
    "department",
    "country",
    "state",
    "address",
    "city",
    "postalCode",
    "coc",
    "language",
    "uniqueValue",
    "authKey",
    "approver",
    "dcv",
];

/// Keys of `POST /v2/ssl/import`.
pub const IMPORT_KEYS: &[&str] = &["customer", "certificate", "csr", "coc", "domainName"];

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/v2/ssl/certificates", get(list).post(request))
        .route("/v2/ssl/certificates/{id}", get(get_one).delete(revoke))
        .route("/v2/ssl/certificates/{id}/renew", post(renew))
        .route("/v2/ssl/certificates/{id}/reissue", post(reissue))
        .route("/v2/ssl/certificates/{id}/download", get(download))
        .route("/v2/ssl/import", post(import))
        .route("/v2/ssl/decodecsr", post(decode_csr))
        .route("/v2/ssl/dcvemailaddresslist/{domain}", get(dcv_email_list))
        .route("/v2/ssl/authkey", post(authkey))
        .route("/v2/processes/{id}/resend", post(resend))
        .route(
            "/v2/processes/{id}/schedule-validation-call",
            post(schedule_validation_call),
        )
        .route(
            "/v2/processes/{id}/send-subscriber-agreement",
            post(send_subscriber_agreement),
        )
        .route("/dcv/approve/{token}", get(approval_page).post(approve))
}

/// The RTR Certificate object (§3.2). Keys the PHP SDK reads unconditionally
/// are always present; optional ones are omitted when empty.
pub fn certificate_json(c: &CertificateRow, full: bool) -> Value {
    let mut v = json!({
        "id": c.id,
        "process": c.process_id,
        "product": c.product,
        "validationType": c.validation_type,
        "certificateType": c.certificate_type,
        "domainName": c.domain_name,
        "startDate": format_rtr(c.start_date),
        "expiryDate": format_rtr(c.expiry_date),
        "status": c.status,
        "publicKeyAlgorithm": c.public_key_algorithm,
        "san": c.san,
        "fingerprint": c.fingerprint,
        "providerId": c.serial_hex,
    });
    let mut opt = |k: &str, val: &Option<String>| {
        if let Some(x) = val {
            v[k] = json!(x);
        }
    };
    opt("organization", &c.organization);
    opt("department", &c.department);
    opt("city", &c.city);
    opt("state", &c.state);
    opt("postalCode", &c.postal_code);
    opt("country", &c.country);
    opt("coc", &c.coc);
    if let Some(a) = &c.address {
        v["addressLine"] = json!([a]);
    }
    if let Some(s) = c.public_key_size {
        v["publicKeySize"] = json!(s);
    }
    if let Some(t) = c.subscription_end_date {
        v["subscriptionEndDate"] = json!(format_rtr(t));
    }
    if full {
        v["certificate"] = json!(certhub_app::certificates::certificate_pem(
            &c.certificate_der
        ));
        if let Some(csr) = &c.csr {
            v["csr"] = json!(csr);
        }
    }
    v
}

async fn list(
    State(app): State<App>,
    Auth(caller): Auth,
    raw: RawQuery,
) -> RtrResult<Json<list::Envelope<Value>>> {
    let req = list::parse(&raw, &CERTIFICATES, &[])?;
    let page = app
        .db()
        .list(&CERTIFICATES, Some(caller.customer_id), &req.query)
        .await
        .map_err(AppError::from)?;
    let mut entities = Vec::with_capacity(page.rows.len());
    for r in &page.rows {
        let c = certificate_from_row(r).map_err(AppError::from)?;
        entities.push(list::project(
            certificate_json(&c, false),
            &req.fields,
            IDENTIFYING,
        ));
    }
    Ok(Json(list::envelope(entities, &req.query, page.total)))
}

async fn get_one(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    raw: RawQuery,
) -> RtrResult<Json<Value>> {
    let c = app.own_certificate(&caller, parse_id(&id)?).await?;
    let fields: Option<Vec<String>> = {
        let f: Vec<String> = raw
            .0
            .iter()
            .filter(|(k, _)| k == "fields")
            .flat_map(|(_, v)| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect();
        (!f.is_empty()).then_some(f)
    };
    Ok(Json(list::project(
        certificate_json(&c, true),
        &fields,
        IDENTIFYING,
    )))
}

/// 200 quote, 201 issued at once (`certificateId` in the body), 202 running.
fn order_response(outcome: OrderOutcome) -> Response {
    match outcome {
        OrderOutcome::Quote(q) => Json(q).into_response(),
        OrderOutcome::Started {
            process_id,
            info,
            certificate_id,
        } => {
            let status = if certificate_id.is_some() {
                StatusCode::CREATED
            } else {
                StatusCode::ACCEPTED
            };
            (status, process_header(process_id), Json(info)).into_response()
        }
    }
}

async fn request(
    State(app): State<App>,
    Auth(caller): Auth,
    raw: RawQuery,
    bytes: Bytes,
) -> RtrResult<Response> {
    let input: OrderInput = body::parse(&bytes, REQUEST_KEYS)?;
    Ok(order_response(
        app.request_certificate(&caller, input, raw.flag("quote")?)
            .await?,
    ))
}

async fn renew(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    raw: RawQuery,
    bytes: Bytes,
) -> RtrResult<Response> {
    let id = parse_id(&id)?;
    let input: OrderInput = body::parse(&bytes, RENEW_KEYS)?;
    Ok(order_response(
        app.renew_certificate(&caller, id, input, raw.flag("quote")?)
            .await?,
    ))
}

async fn reissue(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    raw: RawQuery,
    bytes: Bytes,
) -> RtrResult<Response> {
    let id = parse_id(&id)?;
    let input: OrderInput = body::parse(&bytes, REISSUE_KEYS)?;
    Ok(order_response(
        app.reissue_certificate(&caller, id, input, raw.flag("quote")?)
            .await?,
    ))
}

#[derive(Deserialize)]
struct RevokeBody {
    #[serde(default)]
    reason: Option<String>,
}

/// Revocation is immediate; 202 + `X-Process-Id` with an empty body, as RTR answers.
async fn revoke(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    bytes: Bytes,
) -> RtrResult<Response> {
    let id = parse_id(&id)?;
    let b: RevokeBody = body::parse(&bytes, &["reason"])?;
    let pid = app
        .revoke_certificate(&caller, id, b.reason.as_deref())
        .await?;
    Ok((StatusCode::ACCEPTED, process_header(pid)).into_response())
}

async fn import(State(app): State<App>, Auth(caller): Auth, bytes: Bytes) -> RtrResult<Response> {
    let input: ImportInput = body::parse(&bytes, IMPORT_KEYS)?;
    let pid = app.import_certificate(&caller, input).await?;
    Ok((StatusCode::CREATED, process_header(pid)).into_response())
}

async fn download(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    raw: RawQuery,
) -> RtrResult<Response> {
    let id = parse_id(&id)?;
    let d = app
        .download_certificate(&caller, id, raw.get("format"))
        .await?;
    let mut resp = (StatusCode::OK, d.body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(d.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", d.file_name)) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[derive(Deserialize)]
struct CsrBody {
    #[serde(default)]
    csr: Option<String>,
}

async fn decode_csr(
    State(app): State<App>,
    Auth(_caller): Auth,
    bytes: Bytes,
) -> RtrResult<Json<Value>> {
    let b: CsrBody = body::parse(&bytes, &["csr"])?;
    let csr = b
        .csr
        .ok_or_else(|| AppError::constraint("csr", "is required", None))?;
    Ok(Json(app.decode_csr(&csr).await?))
}

async fn dcv_email_list(
    State(app): State<App>,
    Auth(_caller): Auth,
    Path(domain): Path<String>,
    raw: RawQuery,
) -> RtrResult<Json<Value>> {
    if let Some(p) = raw.get("product") {
        app.product_or_ref_error(p).await?;
    }
    Ok(Json(json!(app.dcv_email_address_list(&domain)?)))
}

#[derive(Deserialize)]
struct AuthKeyBody {
    #[serde(default)]
    product: Option<String>,
    #[serde(default)]
    csr: Option<String>,
}

async fn authkey(
    State(app): State<App>,
    Auth(caller): Auth,
    bytes: Bytes,
) -> RtrResult<Json<Value>> {
    let b: AuthKeyBody = body::parse(&bytes, &["product", "csr"])?;
    Ok(Json(
        app.generate_auth_key(&caller, b.product.as_deref(), b.csr.as_deref())
            .await?,
    ))
}

#[derive(Deserialize)]
struct ResendBody {
    #[serde(default)]
    dcv: Option<Vec<DcvChoice>>,
}

async fn resend(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    bytes: Bytes,
) -> RtrResult<Json<Value>> {
    let id = parse_id(&id)?;
    let b: ResendBody = body::parse(&bytes, &["dcv"])?;
    let p = super::processes::load(&app, caller.customer_id, &id.to_string()).await?;
    if p.process_type != "certificate" {
        return Err(
            AppError::StatusProhibits(format!("process {id} has nothing to resend")).into(),
        );
    }
    Ok(Json(
        app.resend_dcv(&caller, id, b.dcv.as_deref().unwrap_or(&[]))
            .await?,
    ))
}

#[derive(Deserialize)]
struct CallBody {
    #[serde(default)]
    date: Option<Value>,
}

/// The date as TS sends it (ISO string) or as PHP does (a serialised DateTimeImmutable).
fn call_date(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => certhub_domain::time::parse_rfc3339(s),
        Value::Number(n) => n
            .as_i64()
            .map(|x| if x > 100_000_000_000 { x / 1000 } else { x }),
        Value::Object(o) => {
            let s = o.get("date")?.as_str()?;
            let iso = s.split('.').next()?.replacen(' ', "T", 1);
            certhub_domain::time::parse_rfc3339(&format!("{iso}Z"))
        }
        _ => None,
    }
}

async fn schedule_validation_call(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    bytes: Bytes,
) -> RtrResult<StatusCode> {
    let id = parse_id(&id)?;
    let b: CallBody = body::parse(&bytes, &["date"])?;
    let raw = b
        .date
        .ok_or_else(|| AppError::constraint("date", "is required", None))?;
    let at = call_date(&raw)
        .ok_or_else(|| AppError::constraint("date", "is not a date-time", Some(raw.to_string())))?;
    app.schedule_validation_call(&caller, id, at).await?;
    Ok(StatusCode::OK)
}

#[derive(Deserialize)]
struct AgreementBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    language: Option<String>,
}

async fn send_subscriber_agreement(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    bytes: Bytes,
) -> RtrResult<StatusCode> {
    let id = parse_id(&id)?;
    let b: AgreementBody = body::parse(&bytes, &["email", "language"])?;
    let email = b
        .email
        .ok_or_else(|| AppError::constraint("email", "is required", None))?;
    app.send_subscriber_agreement(&caller, id, &email, b.language.as_deref())
        .await?;
    Ok(StatusCode::OK)
}

/// `DELETE /v2/processes/{id}`: cancel a certificate process that still waits
/// for validation (reservation released). Other processes cannot be cancelled.
pub(crate) async fn cancel_process(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> RtrResult<Json<Value>> {
    let id = parse_id(&id)?;
    let p = app.cancel_certificate_process(&caller, id).await?;
    Ok(Json(super::processes::process_json(&p)))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1>{t}</h1>{body}</body></html>\n",
        t = escape(title)
    )
}

fn page_error(e: AppError) -> Response {
    let status = match e {
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    (
        status,
        Html(page(
            "Approval link",
            &format!("<p>{}</p>", escape(&e.to_string())),
        )),
    )
        .into_response()
}

/// GET shows the request and a form; it never approves (mail scanners follow links).
async fn approval_page(State(app): State<App>, Path(token): Path<String>) -> Response {
    match app.approval_view(&token).await {
        Ok(v) if v.status == "WAITING" => Html(page(
            "Approve a certificate request",
            &format!(
                "<p>A certificate was requested for <b>{name}</b>. This link was sent to {email}.</p>\
                 <form method=\"post\"><button type=\"submit\">Approve</button></form>",
                name = escape(&v.name),
                email = escape(&v.email)
            ),
        ))
        .into_response(),
        Ok(v) if v.status == "VALIDATED" => {
            Html(page("Already approved", &format!("<p>{} is approved.</p>", escape(&v.name)))).into_response()
        }
        Ok(_) => Html(page("Request closed", "<p>This request no longer waits for approval.</p>")).into_response(),
        Err(e) => page_error(e),
    }
}

async fn approve(State(app): State<App>, Path(token): Path<String>) -> Response {
    match app.approve_email(&token).await {
        Ok(v) if v.status == "VALIDATED" => Html(page(
            "Approved",
            &format!("<p>Thank you: {} is approved.</p>", escape(&v.name)),
        ))
        .into_response(),
        Ok(_) => (
            StatusCode::BAD_REQUEST,
            Html(page(
                "Request closed",
                "<p>This request no longer waits for approval.</p>",
            )),
        )
            .into_response(),
        Err(e) => page_error(e),
    }
}
