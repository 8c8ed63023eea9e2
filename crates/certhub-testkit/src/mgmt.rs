//! HTTP management API compatible with pebble-challtestsrv's, so shell
//! interop scripts written for pebble work against `certhub-testdns`.

use std::net::IpAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;

use crate::{Http01Server, TestDns};

#[derive(Clone)]
struct Mgmt {
    dns: TestDns,
    http: Option<Http01Server>,
}

type Reply = Result<StatusCode, (StatusCode, String)>;

fn bad(msg: impl Into<String>) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, msg.into())
}

/// Bodies are JSON whatever the Content-Type: pebble scripts use plain `curl -d`.
fn parse(body: &[u8]) -> Result<Value, (StatusCode, String)> {
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

fn field<'a>(v: &'a Value, k: &str) -> Result<&'a str, (StatusCode, String)> {
    v.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("missing string field {k:?}")))
}

async fn set_txt(State(m): State<Mgmt>, body: Bytes) -> Reply {
    let v = parse(&body)?;
    m.dns.add_txt(field(&v, "host")?, field(&v, "value")?);
    Ok(StatusCode::OK)
}

async fn clear_txt(State(m): State<Mgmt>, body: Bytes) -> Reply {
    let v = parse(&body)?;
    m.dns.clear_txt(field(&v, "host")?);
    Ok(StatusCode::OK)
}

/// `{"host": "...", "addresses": ["1.2.3.4", "::1"]}`; v4 and v6 are split
/// into A and AAAA.
async fn add_a(State(m): State<Mgmt>, body: Bytes) -> Reply {
    let v = parse(&body)?;
    let host = field(&v, "host")?;
    let list = v
        .get("addresses")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("missing array field \"addresses\""))?;
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for a in list {
        match a.as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
            Some(IpAddr::V4(ip)) => v4.push(ip),
            Some(IpAddr::V6(ip)) => v6.push(ip),
            None => return Err(bad(format!("invalid address {a}"))),
        }
    }
    if !v4.is_empty() {
        m.dns.set_a_many(host, v4);
    }
    if !v6.is_empty() {
        m.dns.set_aaaa(host, v6);
    }
    Ok(StatusCode::OK)
}

async fn clear_a(State(m): State<Mgmt>, body: Bytes) -> Reply {
    let v = parse(&body)?;
    let host = field(&v, "host")?;
    m.dns.clear_a(host);
    m.dns.clear_aaaa(host);
    Ok(StatusCode::OK)
}

async fn set_default_ipv4(State(m): State<Mgmt>, body: Bytes) -> Reply {
    let v = parse(&body)?;
    let ip = field(&v, "ip")?;
    if ip.is_empty() {
        m.dns.set_default_a(None);
    } else {
        let ip = ip.parse().map_err(|_| bad(format!("invalid IPv4 {ip}")))?;
        m.dns.set_default_a(Some(ip));
    }
    Ok(StatusCode::OK)
}

/// `{"host": "...", "policies": [{"tag": "issue", "value": "ca", "flags": 0}]}`.
async fn set_caa(State(m): State<Mgmt>, body: Bytes) -> Reply {
    let v = parse(&body)?;
    let host = field(&v, "host")?;
    let list = v
        .get("policies")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("missing array field \"policies\""))?;
    let mut records = Vec::new();
    for p in list {
        let flags = p.get("flags").and_then(Value::as_u64).unwrap_or(0);
        let flags = u8::try_from(flags).map_err(|_| bad("flags must be 0..255"))?;
        records.push((
            flags,
            field(p, "tag")?.to_owned(),
            field(p, "value")?.to_owned(),
        ));
    }
    m.dns.set_caa(host, records);
    Ok(StatusCode::OK)
}

async fn clear_caa(State(m): State<Mgmt>, body: Bytes) -> Reply {
    let v = parse(&body)?;
    m.dns.clear_caa(field(&v, "host")?);
    Ok(StatusCode::OK)
}

async fn set_cname(State(m): State<Mgmt>, body: Bytes) -> Reply {
    let v = parse(&body)?;
    m.dns.set_cname(field(&v, "host")?, field(&v, "target")?);
    Ok(StatusCode::OK)
}

async fn clear_cname(State(m): State<Mgmt>, body: Bytes) -> Reply {
    let v = parse(&body)?;
    m.dns.clear_cname(field(&v, "host")?);
    Ok(StatusCode::OK)
}

async fn set_servfail(State(m): State<Mgmt>, body: Bytes) -> Reply {
    let v = parse(&body)?;
    m.dns.set_servfail(field(&v, "host")?);
    Ok(StatusCode::OK)
}

async fn clear_servfail(State(m): State<Mgmt>, body: Bytes) -> Reply {
    let v = parse(&body)?;
    m.dns.clear_servfail(field(&v, "host")?);
    Ok(StatusCode::OK)
}

fn http(m: &Mgmt) -> Result<&Http01Server, (StatusCode, String)> {
    m.http
        .as_ref()
        .ok_or_else(|| bad("no HTTP-01 server running (start with --http01)"))
}

async fn add_http01(State(m): State<Mgmt>, body: Bytes) -> Reply {
    let v = parse(&body)?;
    http(&m)?.set_token(field(&v, "token")?, field(&v, "content")?);
    Ok(StatusCode::OK)
}

async fn del_http01(State(m): State<Mgmt>, body: Bytes) -> Reply {
    let v = parse(&body)?;
    http(&m)?.remove_token(field(&v, "token")?);
    Ok(StatusCode::OK)
}

/// The management routes (pebble-challtestsrv names, plus `set-`/`add-` aliases).
pub fn mgmt_router(dns: TestDns, http01: Option<Http01Server>) -> Router {
    Router::new()
        .route("/set-txt", post(set_txt))
        .route("/clear-txt", post(clear_txt))
        .route("/add-a", post(add_a))
        .route("/add-aaaa", post(add_a))
        .route("/clear-a", post(clear_a))
        .route("/clear-aaaa", post(clear_a))
        .route("/set-default-ipv4", post(set_default_ipv4))
        .route("/set-caa", post(set_caa))
        .route("/add-caa", post(set_caa))
        .route("/clear-caa", post(clear_caa))
        .route("/set-cname", post(set_cname))
        .route("/clear-cname", post(clear_cname))
        .route("/set-servfail", post(set_servfail))
        .route("/add-servfail", post(set_servfail))
        .route("/clear-servfail", post(clear_servfail))
        .route("/add-http01", post(add_http01))
        .route("/del-http01", post(del_http01))
        .with_state(Mgmt { dns, http: http01 })
}
