//! The RFC 8555 ACME server's HTTP layer: one directory per ACME product
//! under `/acme/{product}/`. It verifies each request's JWS (media type,
//! flattened JWS, `url`, nonce, key), calls the use cases in
//! `certhub_app::acme` and renders their results or problem documents.
//!
//! Every response, errors included, carries a fresh `Replay-Nonce`,
//! `Link: <directory>;rel="index"` and `Cache-Control: no-store`. Every URL
//! emitted and every JWS `url` accepted is `{public_url}{path}`; Host and
//! X-Forwarded-* headers are never read.

mod certref;
mod handlers;
mod refusals;
mod render;
mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use certhub_app::App;
use certhub_app::acme::{Nonces, Problem, Urls};
use certhub_domain::product::Product;
use tokio::sync::OnceCell;

/// How long a product definition is cached (operators edit the catalogue
/// from the CLI, possibly on another node).
const PRODUCT_TTL: Duration = Duration::from_secs(10);
/// How often expired used-nonce records are purged (PostgreSQL mode).
const NONCE_PURGE_EVERY: Duration = Duration::from_secs(600);

/// The `/acme/{product}/...` router (state applied), for merging into the
/// main application.
pub fn router(app: App) -> Router {
    let st = St(Arc::new(Shared {
        app,
        nonces: OnceCell::new(),
        products: Mutex::new(HashMap::new()),
        issuers: OnceCell::new(),
    }));
    Router::new()
        .route("/acme/{product}/directory", get(handlers::directory))
        .route("/acme/{product}/terms", get(handlers::terms))
        .route(
            "/acme/{product}/new-nonce",
            get(handlers::nonce_get).head(handlers::nonce_head),
        )
        .route("/acme/{product}/new-account", post(handlers::new_account))
        .route("/acme/{product}/acct/{id}", post(handlers::account))
        .route("/acme/{product}/acct/{id}/orders", post(handlers::orders))
        .route("/acme/{product}/key-change", post(handlers::key_change))
        .route("/acme/{product}/new-order", post(handlers::new_order))
        .route("/acme/{product}/order/{id}", post(handlers::order))
        .route(
            "/acme/{product}/order/{id}/finalize",
            post(handlers::finalize),
        )
        .route("/acme/{product}/authz/{id}", post(handlers::authz))
        .route(
            "/acme/{product}/chall/{id}/{kind}",
            post(handlers::challenge),
        )
        .route("/acme/{product}/cert/{id}", post(handlers::certificate))
        .route("/acme/{product}/revoke-cert", post(handlers::revoke))
        .route(
            "/acme/{product}/renewal-info/{cert_id}",
            get(handlers::renewal_info),
        )
        .route("/acme/{product}/{*rest}", any(handlers::unknown))
        .layer(middleware::from_fn_with_state(st.clone(), refusals::layer))
        .layer(middleware::from_fn_with_state(st.clone(), common_headers))
        .with_state(st)
}

#[derive(Clone)]
pub(crate) struct St(Arc<Shared>);

pub(crate) struct Shared {
    app: App,
    nonces: OnceCell<Arc<Nonces>>,
    products: Mutex<HashMap<String, (Arc<Product>, Instant)>>,
    /// (issuer key identifier, issuer id) of the leaf issuers.
    issuers: OnceCell<Vec<(Vec<u8>, String)>>,
}

impl St {
    pub(crate) fn app(&self) -> &App {
        &self.0.app
    }

    pub(crate) fn urls(&self, product: &str) -> Urls {
        Urls::new(&self.0.app.settings().public_url, product)
    }

    /// The nonce service, created on first use (its key is in the database).
    pub(crate) async fn nonces(&self) -> Result<&Arc<Nonces>, Problem> {
        self.0
            .nonces
            .get_or_try_init(|| async {
                let n = Arc::new(Nonces::new(&self.0.app).await.map_err(Problem::from)?);
                if n.shared() {
                    spawn_nonce_purge(self.0.app.clone());
                }
                Ok(n)
            })
            .await
    }

    /// An ACME product's definition (cached briefly); 404 for anything else.
    pub(crate) async fn product(&self, name: &str) -> Result<Arc<Product>, Problem> {
        {
            let cache = self.0.products.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((p, at)) = cache.get(name)
                && at.elapsed() < PRODUCT_TTL
            {
                return Ok(p.clone());
            }
        }
        let p = self
            .0
            .app
            .db()
            .product(name)
            .await
            .map_err(Problem::from)?
            .filter(|p| p.acme)
            .ok_or_else(|| {
                Problem::not_found(format!("there is no ACME directory for product {name:?}"))
            })?;
        let p = Arc::new(p);
        self.0
            .products
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), (p.clone(), Instant::now()));
        Ok(p)
    }
}

fn spawn_nonce_purge(app: App) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(NONCE_PURGE_EVERY).await;
            if let Err(e) = app.db().acme_purge_nonces(app.now()).await {
                tracing::warn!(error = %e, "cannot purge used ACME nonces");
            }
        }
    });
}

/// The product segment of an `/acme/{product}/...` path.
fn product_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/acme/")?;
    let p = rest.split('/').next()?;
    (!p.is_empty()).then_some(p)
}

/// Replay-Nonce, Link rel="index" and Cache-Control on every response.
async fn common_headers(State(st): State<St>, req: Request, next: Next) -> Response {
    let index = product_of(req.uri().path()).map(|p| st.urls(p).directory());
    let mut res = next.run(req).await;
    let nonce = match st.nonces().await {
        Ok(n) => Some(n.issue(st.app().now())),
        Err(e) => {
            tracing::error!(error = %e, "cannot issue ACME nonces");
            None
        }
    };
    let h = res.headers_mut();
    if let Some(v) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
        h.insert("replay-nonce", v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(v) = index.and_then(|d| HeaderValue::from_str(&format!("<{d}>;rel=\"index\"")).ok())
    {
        h.append(header::LINK, v);
    }
    res
}

#[cfg(test)]
mod tests {
    #[test]
    fn product_segment() {
        assert_eq!(super::product_of("/acme/dv/new-order"), Some("dv"));
        assert_eq!(super::product_of("/acme/"), None);
        assert_eq!(super::product_of("/v2/ssl"), None);
    }
}
