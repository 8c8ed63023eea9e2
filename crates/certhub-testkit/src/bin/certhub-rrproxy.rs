//! `certhub-rrproxy --listen 127.0.0.1:PORT --backend 127.0.0.1:A --backend 127.0.0.1:B ...`
//!
//! A tiny round-robin HTTP reverse proxy for the multi-node interop test
//! (`scripts/interop-multinode.sh`): every *request* (not connection) goes to
//! the next backend, so one ACME client's consecutive requests, nonces
//! included, land on different nodes. A backend that refuses the connection
//! (a killed node) is skipped; a request that fails after it was sent is
//! answered 502, as a real load balancer would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};

const USAGE: &str =
    "usage: certhub-rrproxy --listen HOST:PORT --backend HOST:PORT [--backend HOST:PORT ...]";
/// ACME and REST bodies are small; this bounds memory per request.
const MAX_BODY: usize = 1 << 20;

struct Proxy {
    backends: Vec<String>,
    next: AtomicUsize,
    http: reqwest::Client,
}

fn parse_args() -> Result<(SocketAddr, Vec<String>)> {
    let mut listen = None;
    let mut backends = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--listen" => listen = Some(value.parse().context("--listen")?),
            "--backend" => backends.push(value),
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    match listen {
        Some(l) if !backends.is_empty() => Ok((l, backends)),
        _ => bail!("{USAGE}"),
    }
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1).
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

async fn forward(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large\n").into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let start = p.next.fetch_add(1, Ordering::Relaxed);
    for i in 0..p.backends.len() {
        let backend = &p.backends[(start + i) % p.backends.len()];
        let mut rb = p
            .http
            .request(parts.method.clone(), format!("http://{backend}{path}"));
        for (k, v) in &parts.headers {
            if !hop_by_hop(k) {
                rb = rb.header(k, v);
            }
        }
        match rb.body(body.clone()).send().await {
            Ok(resp) => return relay(resp).await,
            // Not sent at all: safe to try the next node.
            Err(e) if e.is_connect() => continue,
            Err(e) => {
                tracing::warn!(%backend, error = %e, "backend failed mid-request");
                return (StatusCode::BAD_GATEWAY, format!("backend {backend}: {e}\n"))
                    .into_response();
            }
        }
    }
    (StatusCode::BAD_GATEWAY, "no backend reachable\n").into_response()
}

async fn relay(resp: reqwest::Response) -> Response {
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("backend body: {e}\n")).into_response(),
    };
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = status;
    for (k, v) in &headers {
        if !hop_by_hop(k) {
            out.headers_mut().append(k, v.clone());
        }
    }
    out
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let (listen, backends) = parse_args()?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(2))
        .build()?;
    let proxy = Arc::new(Proxy {
        backends,
        next: AtomicUsize::new(0),
        http,
    });
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(%listen, backends = ?proxy.backends, "certhub-rrproxy ready");
    axum::serve(listener, app).await?;
    Ok(())
}
