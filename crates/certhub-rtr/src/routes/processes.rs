//! `GET /v2/processes[/{id}[/info]]`.

use axum::Json;
use axum::extract::{Path, State};
use certhub_app::{App, AppError};
use certhub_domain::time::format_rtr;
use certhub_store::processes::{PROCESSES, Process, process_from_row};
use serde_json::{Value, json};

use crate::error::RtrResult;
use crate::extract::{Auth, RawQuery};
use crate::list;

const IDENTIFYING: &[&str] = &["id"];

/// The RTR Process object. Optional enums are omitted rather than null (PHP SDK).
pub fn process_json(p: &Process) -> Value {
    let mut v = json!({
        "id": p.id,
        "user": p.user,
        "customer": p.customer,
        "status": p.status,
        "createdDate": format_rtr(p.created_at),
        "type": p.process_type,
        "identifier": p.identifier,
        "action": p.action,
        "command": if p.command.is_object() { p.command.clone() } else { json!({}) },
        "resumeTypes": p.resume_types.clone().unwrap_or(json!([])),
    });
    let opt = |v: &mut Value, k: &str, val: Option<Value>| {
        if let Some(x) = val.filter(|x| !x.is_null()) {
            v[k] = x;
        }
    };
    opt(
        &mut v,
        "statusDetail",
        p.status_detail.clone().map(Value::from),
    );
    opt(
        &mut v,
        "updatedDate",
        p.updated_at.map(|t| Value::from(format_rtr(t))),
    );
    opt(
        &mut v,
        "startedDate",
        p.started_at.map(|t| Value::from(format_rtr(t))),
    );
    opt(&mut v, "reservation", p.reservation.clone());
    opt(&mut v, "transaction", p.transaction.clone());
    opt(&mut v, "refund", p.refund.clone());
    opt(&mut v, "billables", p.billables.clone());
    opt(&mut v, "error", p.error.clone());
    v
}

pub(crate) async fn list(
    State(app): State<App>,
    Auth(caller): Auth,
    raw: RawQuery,
) -> RtrResult<Json<list::Envelope<Value>>> {
    let req = list::parse(&raw, &PROCESSES, &[])?;
    let page = app
        .db()
        .list(&PROCESSES, Some(caller.customer_id), &req.query)
        .await
        .map_err(AppError::from)?;
    let mut entities = Vec::with_capacity(page.rows.len());
    for r in &page.rows {
        let p = process_from_row(r).map_err(AppError::from)?;
        entities.push(list::project(process_json(&p), &req.fields, IDENTIFYING));
    }
    Ok(Json(list::envelope(entities, &req.query, page.total)))
}

pub(crate) async fn load(
    app: &App,
    customer_id: i64,
    id: &str,
) -> Result<Process, crate::RtrError> {
    let id = super::parse_id(id)?;
    Ok(app
        .db()
        .process(Some(customer_id), id)
        .await
        .map_err(AppError::from)?
        .ok_or_else(|| AppError::NotFound(format!("process {id} does not exist")))?)
}

pub(crate) async fn get(
    State(app): State<App>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> RtrResult<Json<Value>> {
    Ok(Json(process_json(
        &load(&app, caller.customer_id, &id).await?,
    )))
}
