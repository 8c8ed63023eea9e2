//! The `list_query` target: a query string, decoded as the `RawQuery`
//! extractor decodes it, through `certhub_rtr::list::parse` for every
//! resource the `/v2` list routes serve, then `project` and `envelope`.
//!
//! The property that matters most: nothing the client wrote reaches SQL except
//! whitelisted fields (by identity) and typed bind values.

use certhub_rtr::RtrError;
use certhub_rtr::extract::RawQuery;
use certhub_rtr::list::{self, ListRequest, MAX_LIMIT};
use certhub_store::list::{FieldType, Op, Resource, Value as V};
use serde_json::{Map, Value, json};

/// The statically known list resources (`/v2/ssl/products` keeps its
/// resource private to its route and is not covered).
pub fn resources() -> [(&'static str, &'static Resource); 5] {
    [
        (
            "subscriptions",
            &certhub_store::subscriptions::SUBSCRIPTIONS,
        ),
        ("certificates", &certhub_store::certificates::CERTIFICATES),
        ("transactions", &certhub_store::billing::TRANSACTIONS),
        ("processes", &certhub_store::processes::PROCESSES),
        (
            "notifications",
            &certhub_store::notifications::NOTIFICATIONS,
        ),
    ]
}

/// Parameter names the list language reserves; every other name is a filter.
const RESERVED: [&str; 7] = ["limit", "offset", "order", "total", "export", "q", "fields"];

/// Decodes `query` like the extractor does (`application/x-www-form-urlencoded`).
pub fn raw_query(query: &[u8]) -> RawQuery {
    RawQuery(form_urlencoded::parse(query).into_owned().collect())
}

pub fn run(data: &[u8]) {
    let raw = raw_query(data);
    match raw.flag("quote") {
        Ok(_) => {}
        Err(e) => check_error(&e),
    }
    for (_, res) in resources() {
        match list::parse(&raw, res, &[]) {
            Ok(req) => check_parsed(&raw, res, &req),
            Err(e) => check_error(&e),
        }
    }
}

fn check_error(e: &RtrError) {
    assert_eq!(e.status.as_u16(), 400);
    assert_eq!(e.body["type"], "ValidationError");
    assert!(e.body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

fn check_parsed(raw: &RawQuery, res: &Resource, req: &ListRequest) {
    let q = &req.query;
    assert!((0..=MAX_LIMIT).contains(&q.limit));
    assert!(q.offset >= 0);
    if q.export {
        assert!(raw.get("limit").is_none() && q.offset == 0);
    }
    let whitelisted =
        |f: &certhub_store::list::Field| res.fields.iter().any(|w| std::ptr::eq(w, f));
    for (f, _) in &q.order {
        assert!(
            whitelisted(f),
            "order field {} is not the resource's",
            f.name
        );
    }

    let filters = raw
        .0
        .iter()
        .filter(|(n, _)| !RESERVED.contains(&n.as_str()))
        .count();
    assert_eq!(q.filters.len(), filters, "a parameter was dropped");
    for f in &q.filters {
        assert!(
            whitelisted(f.field),
            "filter field {} is not the resource's",
            f.field.name
        );
        match f.op {
            Op::Null | Op::NotNull => assert!(f.values.is_empty()),
            Op::In | Op::NotIn => {}
            _ => assert_eq!(f.values.len(), 1),
        }
        let text_expected = matches!(f.op, Op::Like | Op::NotLike)
            || matches!(f.field.ty, FieldType::Text | FieldType::JsonArray);
        for v in &f.values {
            assert_eq!(
                matches!(v, V::Text(_)),
                text_expected,
                "{} {:?} got {v:?}",
                f.field.name,
                f.op
            );
        }
    }

    // `fields` keeps only the named keys (and the identifying ones).
    if let Some(fields) = &req.fields {
        assert!(fields.iter().all(|f| !f.is_empty() && !f.contains(',')));
    }
    let entity: Map<String, Value> = res
        .fields
        .iter()
        .map(|f| (f.name.to_string(), json!(1)))
        .chain([("san".to_string(), json!([])), ("id".to_string(), json!(7))])
        .collect();
    let projected = list::project(Value::Object(entity.clone()), &req.fields, &["id"]);
    let projected = projected.as_object().expect("projection keeps the object");
    match &req.fields {
        None => assert_eq!(projected, &entity),
        Some(fields) => {
            assert_eq!(projected.get("id"), Some(&json!(7)));
            assert!(projected.keys().all(|k| k == "id" || fields.contains(k)));
        }
    }

    let env = list::envelope(vec![json!({})], q, Some(1));
    assert_eq!(env.entities.len(), 1);
    let expected_limit = if q.export { 1 } else { q.limit };
    assert_eq!(env.pagination["limit"], json!(expected_limit));
    assert_eq!(env.pagination["total"], json!(1));
}
