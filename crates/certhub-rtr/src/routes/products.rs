//! `GET /v2/ssl/products[/{product}]`.

use axum::Json;
use axum::extract::{Path, State};
use certhub_app::App;
use certhub_store::list::{Field, FieldType, Op, Resource, Value as V};
use serde_json::Value;

use crate::error::{RtrError, RtrResult};
use crate::extract::{Auth, RawQuery};
use crate::list;

static PRODUCTS: Resource = Resource {
    from: "",
    scope: "",
    base_where: "",
    fields: &[
        Field {
            name: "product",
            column: "product",
            ty: FieldType::Text,
        },
        Field {
            name: "brand",
            column: "brand",
            ty: FieldType::Text,
        },
        Field {
            name: "name",
            column: "name",
            ty: FieldType::Text,
        },
        Field {
            name: "validationType",
            column: "validationType",
            ty: FieldType::Text,
        },
        Field {
            name: "certificateType",
            column: "certificateType",
            ty: FieldType::Text,
        },
        Field {
            name: "warranty",
            column: "warranty",
            ty: FieldType::Int,
        },
        Field {
            name: "issueTime",
            column: "issueTime",
            ty: FieldType::Text,
        },
        Field {
            name: "renewalWindow",
            column: "renewalWindow",
            ty: FieldType::Int,
        },
        Field {
            name: "includedDomains",
            column: "includedDomains",
            ty: FieldType::Int,
        },
        Field {
            name: "maxDomains",
            column: "maxDomains",
            ty: FieldType::Int,
        },
    ],
    q_columns: &["product", "brand", "name"],
    select: "",
    default_order: "",
    counted: None,
};

const IDENTIFYING: &[&str] = &["product"];

pub(crate) async fn list(
    State(app): State<App>,
    Auth(_): Auth,
    raw: RawQuery,
) -> RtrResult<Json<list::Envelope<Value>>> {
    let req = list::parse(&raw, &PRODUCTS, &[])?;
    let q = &req.query;
    let mut all: Vec<Value> = app
        .db()
        .products()
        .await
        .map_err(certhub_app::AppError::from)?
        .iter()
        .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
        .filter(|p| {
            q.filters
                .iter()
                .all(|f| matches(p, f.field.column, f.op, &f.values))
        })
        .filter(|p| {
            q.q.as_deref().is_none_or(|t| {
                let t = t.to_lowercase();
                ["product", "brand", "name"]
                    .iter()
                    .any(|k| p[k].as_str().is_some_and(|s| s.to_lowercase().contains(&t)))
            })
        })
        .collect();
    for (f, desc) in q.order.iter().rev() {
        all.sort_by(|a, b| {
            let o = cmp_json(&a[f.column], &b[f.column]);
            if *desc { o.reverse() } else { o }
        });
    }
    let total = all.len() as i64;
    let page: Vec<Value> = if q.export {
        all
    } else {
        all.into_iter()
            .skip(q.offset as usize)
            .take(q.limit as usize)
            .collect()
    };
    let page = page
        .into_iter()
        .map(|p| list::project(p, &req.fields, IDENTIFYING))
        .collect();
    Ok(Json(list::envelope(page, q, q.total.then_some(total))))
}

pub(crate) async fn get(
    State(app): State<App>,
    Auth(_): Auth,
    Path(product): Path<String>,
    raw: RawQuery,
) -> RtrResult<Json<Value>> {
    let p = app
        .db()
        .product(&product)
        .await
        .map_err(certhub_app::AppError::from)?
        .ok_or_else(|| {
            RtrError::new(
                axum::http::StatusCode::NOT_FOUND,
                "ObjectDoesNotExist",
                format!("product {product} does not exist"),
            )
        })?;
    let fields = raw
        .0
        .iter()
        .filter(|(k, _)| k == "fields")
        .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()))
        .collect::<Vec<_>>();
    let fields = (!fields.is_empty()).then_some(fields);
    Ok(Json(list::project(
        serde_json::to_value(&p).unwrap_or(Value::Null),
        &fields,
        IDENTIFYING,
    )))
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn matches(p: &Value, key: &str, op: Op, values: &[V]) -> bool {
    let actual = &p[key];
    let vals: Vec<String> = values
        .iter()
        .map(|v| match v {
            V::Int(i) => i.to_string(),
            V::Text(t) => t.clone(),
        })
        .collect();
    let a = as_text(actual);
    let num = |s: &str| s.parse::<i64>().ok();
    match op {
        Op::Eq => vals.iter().all(|v| *v == a),
        Op::Ne => vals.iter().all(|v| *v != a),
        Op::In => vals.contains(&a),
        Op::NotIn => !vals.contains(&a),
        Op::Null => actual.is_null(),
        Op::NotNull => !actual.is_null(),
        Op::Like | Op::NotLike => {
            let hit = vals
                .iter()
                .all(|v| like(&a.to_lowercase(), &v.to_lowercase()));
            if op == Op::Like { hit } else { !hit }
        }
        Op::Gt | Op::Lt | Op::Gte | Op::Lte => vals.iter().all(|v| match (num(&a), num(v)) {
            (Some(x), Some(y)) => match op {
                Op::Gt => x > y,
                Op::Lt => x < y,
                Op::Gte => x >= y,
                _ => x <= y,
            },
            _ => false,
        }),
    }
}

/// SQL LIKE with `%` wildcards.
fn like(s: &str, pat: &str) -> bool {
    let parts: Vec<&str> = pat.split('%').collect();
    if parts.len() == 1 {
        return s == pat;
    }
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(pos) = rest.find(part) {
            rest = &rest[pos + part.len()..];
        } else {
            return false;
        }
    }
    true
}

fn cmp_json(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => as_text(a).cmp(&as_text(b)),
    }
}
