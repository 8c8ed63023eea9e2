//! The listeners: HTTPS (with plain-HTTP PKI paths on the same port, told
//! apart by the first byte), an optional plain-HTTP listener, and the
//! lifecycle engine loop.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use certhub_app::App;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Layer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};

/// The whole public application: REST, ACME, PKI, health and metrics.
pub fn app_router(app: App) -> Router {
    let in_flight = Arc::new(Semaphore::new(app.settings().max_in_flight));
    Router::new()
        .merge(certhub_rtr::router(app.clone()))
        .merge(certhub_acme::router(app.clone()))
        .merge(crate::pki_http::router(app.clone()))
        .merge(ops_router(app.clone()))
        .layer(axum::middleware::from_fn_with_state(app, limit_per_ip))
        .layer(axum::middleware::from_fn_with_state(in_flight, shed_load))
        .layer(axum::middleware::from_fn(count_requests))
}

/// Admission control: at most `max_in_flight` requests are served at once;
/// the next one is answered 503 with `Retry-After` at once, in the protocol's
/// own error form, rather than queued. A bounded amount of work in progress
/// keeps latency bounded for the requests that are admitted and memory
/// bounded for the process, and clients back off instead of timing out.
async fn shed_load(
    State(in_flight): State<Arc<Semaphore>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let Ok(_permit) = in_flight.try_acquire() else {
        certhub_app::metrics::HTTP_SHED.inc();
        return overloaded(req.uri().path());
    };
    next.run(req).await
}

fn overloaded(path: &str) -> axum::response::Response {
    let e = certhub_app::AppError::Unavailable {
        message: "the server is at capacity; retry shortly".into(),
        retry_after: 1,
    };
    if path.starts_with("/acme") {
        let p = certhub_app::acme::Problem::from(e);
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (axum::http::header::CONTENT_TYPE, "application/problem+json"),
                (axum::http::header::RETRY_AFTER, "1"),
            ],
            serde_json::to_vec(&p).unwrap_or_default(),
        )
            .into_response()
    } else {
        certhub_rtr::RtrError::from(e).into_response()
    }
}

/// The client address: the TCP peer, or, when the peer is a trusted proxy,
/// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[std::net::IpAddr],
) -> std::net::IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted.contains(&ip) {
                    break;
                }
            }
            // A malformed hop ends what we can believe.
            Err(_) => break,
        }
    }
    client
}

/// The per-IP abuse ceiling on the REST and ACME paths, counted in the store.
async fn limit_per_ip(
    State(app): State<App>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path();
    let acme = path.starts_with("/acme");
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (Some(peer), true) = (peer, acme || path.starts_with("/v2")) else {
        return next.run(req).await;
    };
    let ip = client_ip(
        peer,
        req.headers(),
        &app.settings().rate_limits.trusted_proxies,
    );
    match app
        .rate_limit(certhub_app::ratelimit::Scope::Ip, &ip.to_string())
        .await
    {
        Ok(()) => next.run(req).await,
        Err(e) if acme => {
            let p = certhub_app::acme::Problem::from(e);
            let mut resp = (
                StatusCode::TOO_MANY_REQUESTS,
                [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
                serde_json::to_vec(&p).unwrap_or_default(),
            )
                .into_response();
            if let Some(v) = p
                .retry_after
                .and_then(|s| axum::http::HeaderValue::from_str(&s.to_string()).ok())
            {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
            resp
        }
        Err(e) => certhub_rtr::RtrError::from(e).into_response(),
    }
}

/// Puts the TCP peer address into every request of a connection (as axum's
/// `ConnectInfo`), for the per-IP limit.
#[derive(Clone)]
struct WithPeer<S> {
    inner: S,
    peer: SocketAddr,
}

impl<S, B> tower::Service<axum::http::Request<B>> for WithPeer<S>
where
    S: tower::Service<axum::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: axum::http::Request<B>) -> S::Future {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        self.inner.call(req)
    }
}

fn with_peer<S>(inner: S, peer: SocketAddr) -> TowerToHyperService<WithPeer<S>> {
    TowerToHyperService::new(WithPeer { inner, peer })
}

/// Only what a plain-HTTP connection may reach.
pub fn pki_only_router(app: App) -> Router {
    Router::new()
        .merge(crate::pki_http::router(app.clone()))
        .merge(ops_router(app))
}

fn ops_router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn healthz(State(app): State<App>) -> impl IntoResponse {
    match sqlx_ping(&app).await {
        Ok(()) => (StatusCode::OK, "ok\n"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n"),
    }
}

async fn sqlx_ping(app: &App) -> Result<(), ()> {
    app.db().products().await.map(|_| ()).map_err(|_| ())
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        certhub_app::metrics::render(),
    )
}

async fn count_requests(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    certhub_app::metrics::HTTP_REQUESTS.inc();
    let resp = next.run(req).await;
    if resp.status().as_u16() >= 400 {
        certhub_app::metrics::HTTP_ERRORS.inc();
    }
    resp
}

/// Trailing slashes are accepted everywhere (RTR's TS SDK sends them).
pub fn normalized(router: Router) -> NormalizePath<Router> {
    NormalizePathLayer::trim_trailing_slash().layer(router)
}

/// The listener certificate, swapped in place when renewed.
#[derive(Debug)]
pub struct ServerCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn certified_key(
    app: &App,
    names: &[String],
    ips: &[std::net::IpAddr],
) -> anyhow::Result<Arc<CertifiedKey>> {
    let (chain, key) = app
        .server_identity(names, ips)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let certs = chain
        .into_iter()
        .map(rustls_pki_types::CertificateDer::from)
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(key.into());
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let ck = CertifiedKey::from_der(certs, key, &provider)?;
    Ok(Arc::new(ck))
}

/// Names on the listener certificate: localhost, loopback, and the public URL's host.
fn listener_names(public_url: &str) -> (Vec<String>, Vec<std::net::IpAddr>) {
    let mut names = vec!["localhost".to_string()];
    let mut ips: Vec<std::net::IpAddr> = vec![
        "127.0.0.1"
            .parse()
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
    ];
    ips.push(std::net::Ipv6Addr::LOCALHOST.into());
    let host = public_url
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("");
    let host = host
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(host)
        .trim_matches(['[', ']']);
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    } else if !host.is_empty() && !names.iter().any(|n| n == host) {
        names.push(host.to_string());
    }
    (names, ips)
}

/// TLS config whose certificate comes from the embedded CA and is renewed
/// every 10 days (it lives 30).
pub fn tls_config(app: &App) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (names, ips) = listener_names(&app.settings().public_url);
    let resolver = Arc::new(ServerCert {
        current: RwLock::new(certified_key(app, &names, &ips)?),
    });
    let renew = resolver.clone();
    let app2 = app.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10 * 86_400)).await;
            match certified_key(&app2, &names, &ips) {
                Ok(k) => *renew.current.write().unwrap_or_else(|e| e.into_inner()) = k,
                Err(e) => tracing::error!(error = %e, "cannot renew the listener certificate"),
            }
        }
    });
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Serves TLS connections with `full` and plain ones with `plain`.
pub async fn serve_sniffing(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    full: Router,
    plain: Router,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let full = normalized(full);
    let plain = normalized(plain);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (acceptor, full, plain) = (acceptor.clone(), full.clone(), plain.clone());
        tokio::spawn(async move {
            let mut first = [0u8; 1];
            let peeked =
                tokio::time::timeout(Duration::from_secs(30), stream.peek(&mut first)).await;
            if !matches!(peeked, Ok(Ok(1))) {
                return;
            }
            let builder = Builder::new(TokioExecutor::new());
            if first[0] == 0x16 {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream)).await
                else {
                    return;
                };
                let _ = builder
                    .serve_connection(TokioIo::new(tls), with_peer(full, peer))
                    .await;
            } else {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), with_peer(plain, peer))
                    .await;
            }
        });
    }
}

/// Serves plain HTTP with `router` (tests, `--http-listen`).
pub async fn serve_plain(listener: TcpListener, router: Router) {
    let svc = normalized(router);
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = with_peer(svc.clone(), peer);
        tokio::spawn(async move {
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Runs the lifecycle engine forever: wakes at least every 30 s (so every
/// due time is met within a minute) and whenever work is due.
pub async fn lifecycle_loop(app: App, owner: String) {
    loop {
        match app.deliver_outbox().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(messages = n, "delivered outbox mail"),
            Err(e) => tracing::warn!(error = %e, "outbox delivery failed"),
        }
        match app.run_due_jobs(&owner).await {
            Ok(lines) => {
                for l in lines {
                    certhub_app::metrics::LIFECYCLE_CHANGES.inc();
                    tracing::info!(change = %l, "lifecycle");
                }
            }
            Err(e) => tracing::warn!(error = %e, "lifecycle run failed"),
        }
        // Finished rate-limit windows are dead weight (idempotent on every node).
        if let Err(e) = app.purge_rate_limits().await {
            tracing::warn!(error = %e, "cannot purge rate-limit counters");
        }
        if let Err(e) = app.purge_idempotency_keys().await {
            tracing::warn!(error = %e, "cannot purge idempotency keys");
        }
        let wait = match app.db().next_job_due().await {
            Ok(Some(due)) => (due - app.now()).clamp(1, 30) as u64,
            _ => 30,
        };
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
}

pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    let sock: SocketAddr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("cannot resolve listen address {addr}"))?;
    TcpListener::bind(sock)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}
