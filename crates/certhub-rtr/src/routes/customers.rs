//! `/v2/customers/{customer}/...`: credit, price list, notifications.

use axum::Json;
use axum::extract::{Path, State};
use certhub_app::{App, AppError};
use certhub_domain::time::format_rtr;
use certhub_store::notifications::{NOTIFICATIONS, Notification, notification_from_row};
use serde_json::{Value, json};

use crate::error::RtrResult;
use crate::extract::{Auth, RawQuery};
use crate::list;

pub(crate) async fn credit(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(customer): Path<String>,
) -> RtrResult<Json<Value>> {
    let accounts = app.credit(&caller, &customer).await?;
    Ok(Json(json!({ "accounts": accounts })))
}

pub(crate) async fn pricelist(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(customer): Path<String>,
    raw: RawQuery,
) -> RtrResult<Json<Value>> {
    app.check_handle(&caller, &customer)?;
    let currency = raw
        .get("currency")
        .unwrap_or(&caller.currency)
        .to_uppercase();
    if !matches!(currency.as_str(), "EUR" | "USD") {
        return Err(crate::RtrError::validation(format!(
            "parameter currency: '{currency}' is not EUR or USD"
        )));
    }
    let prices = app.db().prices(&currency).await.map_err(AppError::from)?;
    Ok(Json(json!({ "prices": prices })))
}

pub fn notification_json(n: &Notification) -> Value {
    let mut v = json!({
        "id": n.id,
        "fireDate": format_rtr(n.fire_date),
        "message": n.message,
        "eventType": n.event_type,
        "notificationType": n.notification_type,
        "isAsync": false,
    });
    let mut put = |k: &str, val: Option<Value>| {
        if let Some(x) = val {
            v[k] = x;
        }
    };
    put("readDate", n.read_date.map(|t| format_rtr(t).into()));
    put(
        "acknowledgeDate",
        n.acknowledge_date.map(|t| format_rtr(t).into()),
    );
    put("process", n.process_id.map(Value::from));
    put("processType", n.process_type.clone().map(Value::from));
    put(
        "processIdentifier",
        n.process_identifier.clone().map(Value::from),
    );
    put("certificateId", n.certificate_id.map(Value::from));
    put("product", n.product.clone().map(Value::from));
    put("expiryDate", n.expiry_date.map(|t| format_rtr(t).into()));
    put("payload", n.payload.clone());
    v
}

pub(crate) async fn notifications(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(customer): Path<String>,
    raw: RawQuery,
) -> RtrResult<Json<list::Envelope<Value>>> {
    app.check_handle(&caller, &customer)?;
    let req = list::parse(&raw, &NOTIFICATIONS, &[])?;
    let page = app
        .db()
        .list(&NOTIFICATIONS, Some(caller.customer_id), &req.query)
        .await
        .map_err(AppError::from)?;
    let mut entities = Vec::new();
    for r in &page.rows {
        let n = notification_from_row(r).map_err(AppError::from)?;
        entities.push(list::project(notification_json(&n), &req.fields, &["id"]));
    }
    Ok(Json(list::envelope(entities, &req.query, page.total)))
}

pub(crate) async fn notification(
    State(app): State<App>,
    Auth(caller): Auth,
    Path((customer, id)): Path<(String, String)>,
) -> RtrResult<Json<Value>> {
    app.check_handle(&caller, &customer)?;
    let id = super::parse_id(&id)?;
    let n = app
        .db()
        .notification(caller.customer_id, id)
        .await
        .map_err(AppError::from)?
        .ok_or_else(|| AppError::NotFound(format!("notification {id} does not exist")))?;
    Ok(Json(notification_json(&n)))
}

pub(crate) async fn poll(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(customer): Path<String>,
) -> RtrResult<Json<Value>> {
    app.check_handle(&caller, &customer)?;
    let (count, n) = app
        .db()
        .poll_notification(caller.customer_id, app.now())
        .await
        .map_err(AppError::from)?;
    let mut v = json!({ "count": count });
    if let Some(n) = n {
        v["notification"] = notification_json(&n);
    }
    Ok(Json(v))
}

pub(crate) async fn ack(
    State(app): State<App>,
    Auth(caller): Auth,
    Path((customer, id)): Path<(String, String)>,
) -> RtrResult<Json<Value>> {
    app.check_handle(&caller, &customer)?;
    let id = super::parse_id(&id)?;
    if !app
        .db()
        .ack_notification(caller.customer_id, id, app.now())
        .await
        .map_err(AppError::from)?
    {
        return Err(AppError::NotFound(format!("notification {id} does not exist")).into());
    }
    Ok(Json(json!({})))
}
