//! `/v2/ssl/acme[...]` (RTR ACME subscriptions) and `GET /v2/processes/{id}/info`.
//!
//! Wire choices (rtr-api-contract §2, §8): create answers 201 (202 while an
//! OV subscription waits for organisation validation) with the credentials
//! body; update and renew answer 200 with the subscription; delete answers
//! 204; every mutation carries `X-Process-Id`. `quote=true` answers 200
//! `{command, quote}` and changes nothing. A product that exists but is not an
//! ACME product is a `ConstraintViolationException` on `product`.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use certhub_app::subscriptions::{
    CREATE_KEYS, CreateRequest, Outcome, RENEW_KEYS, RenewRequest, UPDATE_KEYS, UpdateRequest,
};
use certhub_app::{App, AppError};
use certhub_domain::time::format_rtr;
use certhub_store::subscriptions::{SUBSCRIPTIONS, Subscription, subscription_from_row};
use serde::Serialize;
use serde_json::{Value, json};

use super::{parse_id, process_header};
use crate::body;
use crate::error::RtrResult;
use crate::extract::{Auth, RawQuery};
use crate::list;

const IDENTIFYING: &[&str] = &["id"];

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/v2/ssl/acme", get(list).post(create))
        .route("/v2/ssl/acme/{id}", get(get_one).delete(delete))
        .route("/v2/ssl/acme/{id}/update", post(update))
        .route("/v2/ssl/acme/{id}/renew", post(renew))
        .route("/v2/ssl/acme/{id}/credentials", post(credentials))
        .route("/v2/processes/{id}/info", get(process_info))
}

/// The AcmeSubscription object with every key RTR's PHP SDK reads: the
/// organisation keys are null when unset, `approver` keeps `jobTitle`,
/// optional dates are omitted rather than null. Typed, so that list pages
/// serialise straight into the body; keys in the alphabetical order in which
/// the `Value` maps of the other entities come out.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubscriptionView<'a> {
    address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    approver: Option<Value>,
    auto_renew: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_validity: Option<i64>,
    city: Option<&'a str>,
    country: Option<&'a str>,
    created_date: String,
    directory_url: String,
    domain_names: &'a [String],
    expiry_date: String,
    id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_valid_until: Option<String>,
    organization: Option<&'a str>,
    period: i64,
    postal_code: Option<&'a str>,
    product: &'a str,
    state: Option<&'a str>,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_date: Option<String>,
}

impl<'a> SubscriptionView<'a> {
    pub(crate) fn new(app: &App, s: &'a Subscription) -> SubscriptionView<'a> {
        let approver = s
            .approver
            .as_deref()
            .and_then(|a| serde_json::from_str::<Value>(a).ok())
            .map(|mut a| {
                if a.get("jobTitle").is_none() {
                    a["jobTitle"] = Value::Null;
                }
                a
            });
        SubscriptionView {
            address: s.address.as_deref(),
            approver,
            auto_renew: s.auto_renew,
            cert_validity: s.cert_validity,
            city: s.city.as_deref(),
            country: s.country.as_deref(),
            created_date: format_rtr(s.created_at),
            directory_url: app.directory_url(&s.product),
            domain_names: &s.domain_names,
            expiry_date: format_rtr(s.expiry_date),
            id: s.id,
            org_valid_until: s.org_valid_until.map(format_rtr),
            organization: s.organization.as_deref(),
            period: s.period,
            postal_code: s.postal_code.as_deref(),
            product: &s.product,
            state: s.state.as_deref(),
            status: &s.status,
            updated_date: s.updated_at.map(format_rtr),
        }
    }
}

/// The subscription as a `Value`, for `fields` projection and single responses.
pub(crate) fn subscription_json(app: &App, s: &Subscription) -> Value {
    serde_json::to_value(SubscriptionView::new(app, s)).unwrap_or(Value::Null)
}

fn with_process(status: StatusCode, process_id: i64, body: Option<Value>) -> Response {
    let headers = process_header(process_id);
    match body {
        Some(b) => (status, headers, Json(b)).into_response(),
        None => (status, headers).into_response(),
    }
}

async fn create(
    State(app): State<App>,
    Auth(caller): Auth,
    raw: RawQuery,
    bytes: Bytes,
) -> RtrResult<Response> {
    let quote = raw.flag("quote")?;
    let req: CreateRequest = body::parse(&bytes, CREATE_KEYS)?;
    match app.create_subscription(&caller, req, quote).await? {
        Outcome::Quote(q) => Ok((StatusCode::OK, Json(q)).into_response()),
        Outcome::Done { process_id, result } => {
            let status = if result.pending {
                StatusCode::ACCEPTED
            } else {
                StatusCode::CREATED
            };
            let c = &result.credentials;
            let mut resp = with_process(
                status,
                process_id,
                Some(json!({
                    "id": result.id,
                    "directoryUrl": c.directory_url,
                    "accountKey": c.account_key,
                    "hmacKey": c.hmac_key,
                })),
            );
            let location = format!(
                "{}/v2/ssl/acme/{}",
                app.settings().public_url.trim_end_matches('/'),
                result.id
            );
            if let Ok(h) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, h);
            }
            Ok(resp)
        }
    }
}

async fn list(State(app): State<App>, Auth(caller): Auth, raw: RawQuery) -> RtrResult<Response> {
    let req = list::parse(&raw, &SUBSCRIPTIONS, &[])?;
    let page = app
        .db()
        .list(&SUBSCRIPTIONS, Some(caller.customer_id), &req.query)
        .await
        .map_err(AppError::from)?;
    let subs = page
        .rows
        .iter()
        .map(subscription_from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(AppError::from)?;
    if req.fields.is_none() {
        let views: Vec<_> = subs
            .iter()
            .map(|s| SubscriptionView::new(&app, s))
            .collect();
        return Ok(Json(list::envelope(views, &req.query, page.total)).into_response());
    }
    let entities: Vec<Value> = subs
        .iter()
        .map(|s| list::project(subscription_json(&app, s), &req.fields, IDENTIFYING))
        .collect();
    Ok(Json(list::envelope(entities, &req.query, page.total)).into_response())
}

async fn get_one(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    raw: RawQuery,
) -> RtrResult<Json<Value>> {
    let s = app.subscription_for(&caller, parse_id(&id)?).await?;
    let fields: Vec<String> = raw
        .0
        .iter()
        .filter(|(k, _)| k == "fields")
        .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect();
    let fields = (!fields.is_empty()).then_some(fields);
    Ok(Json(list::project(
        subscription_json(&app, &s),
        &fields,
        IDENTIFYING,
    )))
}

async fn update(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    raw: RawQuery,
    bytes: Bytes,
) -> RtrResult<Response> {
    let id = parse_id(&id)?;
    let quote = raw.flag("quote")?;
    let req: UpdateRequest = body::parse(&bytes, UPDATE_KEYS)?;
    Ok(
        match app.update_subscription(&caller, id, req, quote).await? {
            Outcome::Quote(q) => (StatusCode::OK, Json(q)).into_response(),
            Outcome::Done { process_id, result } => with_process(
                StatusCode::OK,
                process_id,
                Some(subscription_json(&app, &result)),
            ),
        },
    )
}

async fn renew(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    raw: RawQuery,
    bytes: Bytes,
) -> RtrResult<Response> {
    let id = parse_id(&id)?;
    let quote = raw.flag("quote")?;
    let req: RenewRequest = body::parse(&bytes, RENEW_KEYS)?;
    Ok(
        match app.renew_subscription(&caller, id, req, quote).await? {
            Outcome::Quote(q) => (StatusCode::OK, Json(q)).into_response(),
            Outcome::Done { process_id, result } => with_process(
                StatusCode::OK,
                process_id,
                Some(subscription_json(&app, &result)),
            ),
        },
    )
}

async fn delete(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> RtrResult<Response> {
    let pid = app.delete_subscription(&caller, parse_id(&id)?).await?;
    Ok(with_process(StatusCode::NO_CONTENT, pid, None))
}

async fn credentials(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    bytes: Bytes,
) -> RtrResult<Response> {
    let id = parse_id(&id)?;
    let _: serde_json::Map<String, Value> = body::parse(&bytes, &[])?;
    let (pid, c) = app.subscription_credentials(&caller, id).await?;
    Ok(with_process(
        StatusCode::OK,
        pid,
        Some(
            json!({"directoryUrl": c.directory_url, "accountKey": c.account_key, "hmacKey": c.hmac_key}),
        ),
    ))
}

/// `GET /v2/processes/{id}/info`: the info a process stored (ACME
/// subscription processes always store one; organisation validations carry
/// `validations.organization`), else a minimal CertificateProcessInfo.
async fn process_info(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> RtrResult<Json<Value>> {
    let p = super::processes::load(&app, caller.customer_id, &id).await?;
    Ok(Json(match p.info {
        Some(info) if info.is_object() => info,
        _ => json!({"commonName": p.identifier, "requiresAttention": false, "validations": {}}),
    }))
}
