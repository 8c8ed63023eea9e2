//! Route table of `/v2`.

mod acme_subscriptions;
mod billing;
pub(crate) mod certificates;
mod customers;
mod processes;
mod products;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post};

use certhub_app::App;

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/v2/ssl/products", get(products::list))
        .route("/v2/ssl/products/{product}", get(products::get))
        .route("/v2/customers/{customer}/credit", get(customers::credit))
        .route(
            "/v2/customers/{customer}/pricelist",
            get(customers::pricelist),
        )
        .route(
            "/v2/customers/{customer}/notifications",
            get(customers::notifications),
        )
        .route(
            "/v2/customers/{customer}/notifications/poll",
            get(customers::poll),
        )
        .route(
            "/v2/customers/{customer}/notifications/{id}",
            get(customers::notification),
        )
        .route(
            "/v2/customers/{customer}/notifications/{id}/ack",
            post(customers::ack),
        )
        .route("/v2/billing/financialtransactions", get(billing::list))
        .route("/v2/billing/financialtransactions/{id}", get(billing::get))
        .route("/v2/processes", get(processes::list))
        .route(
            "/v2/processes/{id}",
            get(processes::get).delete(certificates::cancel_process),
        )
        .merge(acme_subscriptions::routes())
        .merge(certificates::routes())
}

/// `X-Process-Id` on every mutation that ran as a process.
#[allow(dead_code)] // used by the feature routes
pub(crate) fn process_header(id: i64) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        h.insert("x-process-id", v);
    }
    h
}

/// Path ids are integers; anything else cannot name an object.
pub(crate) fn parse_id(s: &str) -> Result<i64, crate::RtrError> {
    s.parse::<i64>().map_err(|_| {
        crate::RtrError::new(
            axum::http::StatusCode::NOT_FOUND,
            "ObjectDoesNotExist",
            format!("object {s} does not exist"),
        )
    })
}
