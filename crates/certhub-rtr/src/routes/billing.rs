//! `GET /v2/billing/financialtransactions[/{id}]`.

use axum::Json;
use axum::extract::{Path, State};
use certhub_app::{App, AppError};
use certhub_domain::time::format_rtr;
use certhub_store::billing::{TRANSACTIONS, Transaction, transaction_from_row};
use serde_json::{Value, json};

use crate::error::RtrResult;
use crate::extract::{Auth, RawQuery};
use crate::list;

const IDENTIFYING: &[&str] = &["id"];

pub(crate) fn transaction_json(t: &Transaction) -> Value {
    let mut v = json!({
        "id": t.id,
        "customer": t.customer,
        "date": format_rtr(t.date),
        "amount": t.amount,
        "currency": t.currency,
        "processIdentifier": t.process_identifier.clone().unwrap_or_default(),
        "chargesPerAccount": { t.currency.clone(): t.amount },
    });
    if let Some(p) = t.process_id {
        v["processId"] = json!(p);
    }
    if let Some(p) = &t.process_type {
        v["processType"] = json!(p);
    }
    if let Some(p) = &t.process_action {
        v["processAction"] = json!(p);
    }
    if let Some(b) = t
        .billables
        .as_deref()
        .and_then(|b| serde_json::from_str::<Value>(b).ok())
    {
        v["billables"] = b;
    }
    v
}

pub(crate) async fn list(
    State(app): State<App>,
    Auth(caller): Auth,
    raw: RawQuery,
) -> RtrResult<Json<list::Envelope<Value>>> {
    let req = list::parse(&raw, &TRANSACTIONS, &[])?;
    let page = app
        .db()
        .list(&TRANSACTIONS, Some(caller.customer_id), &req.query)
        .await
        .map_err(AppError::from)?;
    let mut entities = Vec::with_capacity(page.rows.len());
    for r in &page.rows {
        let t = transaction_from_row(r).map_err(AppError::from)?;
        entities.push(list::project(
            transaction_json(&t),
            &req.fields,
            IDENTIFYING,
        ));
    }
    Ok(Json(list::envelope(entities, &req.query, page.total)))
}

pub(crate) async fn get(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> RtrResult<Json<Value>> {
    let id = super::parse_id(&id)?;
    let t = app
        .db()
        .transaction(caller.customer_id, id)
        .await
        .map_err(AppError::from)?
        .ok_or_else(|| AppError::NotFound(format!("transaction {id} does not exist")))?;
    Ok(Json(transaction_json(&t)))
}
