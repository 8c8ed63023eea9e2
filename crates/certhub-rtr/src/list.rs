//! RTR's listing language: `limit`, `offset`, `order` (repeatable, `-` for
//! descending), `total`, `q`, `fields`, `export` and `field[:op]=value` filters.
//! Unknown names, bad operators and bad values are `ValidationError`s naming
//! the parameter; nothing reaches SQL that is not on the resource's whitelist.

use certhub_store::list::{Field, FieldType, Filter, ListQuery, Op, Resource, Value as V};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::error::RtrError;
use crate::extract::RawQuery;

pub const DEFAULT_LIMIT: i64 = 10;
pub const MAX_LIMIT: i64 = 1000;

/// A parsed list request.
pub struct ListRequest {
    pub query: ListQuery,
    pub fields: Option<Vec<String>>,
}

/// Parameters a handler reads itself (e.g. `currency`), not filters.
pub fn parse(raw: &RawQuery, res: &Resource, extra: &[&str]) -> Result<ListRequest, RtrError> {
    let mut q = ListQuery {
        limit: DEFAULT_LIMIT,
        offset: 0,
        total: true,
        ..Default::default()
    };
    let mut fields: Option<Vec<String>> = None;
    let mut limit_set = false;
    for (name, value) in &raw.0 {
        match name.as_str() {
            "limit" => {
                q.limit = parse_int("limit", value)?;
                if !(0..=MAX_LIMIT).contains(&q.limit) {
                    return Err(RtrError::validation(format!(
                        "parameter limit must be between 0 and {MAX_LIMIT}"
                    )));
                }
                limit_set = true;
            }
            "offset" => {
                q.offset = parse_int("offset", value)?;
                if q.offset < 0 {
                    return Err(RtrError::validation(
                        "parameter offset must not be negative",
                    ));
                }
            }
            "order" => {
                for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (desc, fname) = match part.strip_prefix('-') {
                        Some(f) => (true, f),
                        None => (false, part.strip_prefix('+').unwrap_or(part)),
                    };
                    let f = res.field(fname).ok_or_else(|| {
                        RtrError::validation(format!("parameter order: unknown field '{fname}'"))
                    })?;
                    q.order.push((f, desc));
                }
            }
            "total" => q.total = !matches!(value.as_str(), "false" | "0"),
            "export" => q.export = matches!(value.as_str(), "true" | "1"),
            "q" => q.q = Some(value.clone()),
            "fields" => {
                let list = fields.get_or_insert_with(Vec::new);
                for f in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    if res.field(f).is_none() && !extra_field_ok(f) {
                        return Err(RtrError::validation(format!(
                            "parameter fields: unknown field '{f}'"
                        )));
                    }
                    list.push(f.to_string());
                }
            }
            other if extra.contains(&other) => {}
            other => q.filters.push(parse_filter(res, other, value)?),
        }
    }
    if q.export && (limit_set || q.offset != 0) {
        return Err(RtrError::validation(
            "parameter export cannot be combined with limit or offset",
        ));
    }
    Ok(ListRequest { query: q, fields })
}

// Fields that are returned but not filterable (e.g. nested objects).
fn extra_field_ok(f: &str) -> bool {
    matches!(
        f,
        "approver"
            | "requiredFields"
            | "optionalFields"
            | "periods"
            | "features"
            | "san"
            | "billables"
    )
}

fn parse_int(name: &str, v: &str) -> Result<i64, RtrError> {
    v.parse()
        .map_err(|_| RtrError::validation(format!("parameter {name}: '{v}' is not an integer")))
}

fn parse_filter(res: &Resource, name: &str, value: &str) -> Result<Filter, RtrError> {
    let (fname, op) = match name.split_once(':') {
        Some((f, o)) => (
            f,
            Op::parse(o).ok_or_else(|| {
                RtrError::validation(format!("parameter {name}: unknown operator '{o}'"))
            })?,
        ),
        None => (name, Op::Eq),
    };
    let field: &'static Field = res.field(fname).ok_or_else(|| {
        RtrError::validation(format!("parameter {name}: unknown field '{fname}'"))
    })?;
    let raw_values: Vec<&str> = match op {
        Op::In | Op::NotIn => value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect(),
        Op::Null | Op::NotNull => vec![],
        _ => vec![value],
    };
    let mut values = Vec::with_capacity(raw_values.len());
    for v in raw_values {
        values.push(typed_value(field, name, v, op)?);
    }
    Ok(Filter { field, op, values })
}

fn typed_value(field: &Field, param: &str, v: &str, op: Op) -> Result<V, RtrError> {
    let bad = |what: &str| RtrError::validation(format!("parameter {param}: '{v}' is not {what}"));
    if matches!(op, Op::Like | Op::NotLike) {
        return Ok(V::Text(v.to_string()));
    }
    Ok(match field.ty {
        FieldType::Int => V::Int(v.parse().map_err(|_| bad("an integer"))?),
        FieldType::Time => {
            V::Int(certhub_domain::time::parse_rfc3339(v).ok_or_else(|| bad("a date-time"))?)
        }
        FieldType::Bool => V::Int(match v {
            "true" | "1" => 1,
            "false" | "0" => 0,
            _ => return Err(bad("a boolean")),
        }),
        FieldType::Text | FieldType::JsonArray => V::Text(v.to_string()),
    })
}

/// Applies `fields` (identifying keys always kept).
pub fn project(mut entity: Value, fields: &Option<Vec<String>>, identifying: &[&str]) -> Value {
    let Some(fields) = fields else { return entity };
    if let Value::Object(map) = &mut entity {
        let kept: Map<String, Value> = map
            .iter()
            .filter(|(k, _)| identifying.contains(&k.as_str()) || fields.iter().any(|f| f == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        *map = kept;
    }
    entity
}

/// A list response: `{entities, pagination}`. Generic so that a route can
/// serialise typed entities straight into the body, without building a
/// `serde_json::Value` map per entity first.
#[derive(Debug, Serialize)]
pub struct Envelope<T> {
    pub entities: Vec<T>,
    pub pagination: Value,
}

/// `{entities, pagination}`; `entities` always present, `total` unless `total=false`.
pub fn envelope<T: Serialize>(entities: Vec<T>, q: &ListQuery, total: Option<i64>) -> Envelope<T> {
    let mut pagination = json!({"limit": q.limit, "offset": q.offset});
    if q.export {
        pagination = json!({"limit": entities.len(), "offset": 0});
    }
    if let Some(t) = total {
        pagination["total"] = json!(t);
    }
    Envelope {
        entities,
        pagination,
    }
}
