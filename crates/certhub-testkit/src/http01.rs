//! An HTTP server for http-01 and FILE DCV tests: every path answers from
//! a shared map (body, status, or redirect), 404 otherwise.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::Tasks;

/// What a path answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpReply {
    /// 200 with this body (`text/plain`).
    Body(Vec<u8>),
    /// This status and body.
    Status(u16, String),
    /// 302 to this location.
    Redirect(String),
}

type Paths = Arc<Mutex<HashMap<String, HttpReply>>>;

/// The test HTTP server. Cloning shares the same map; the server stops when
/// the last clone is dropped.
#[derive(Clone)]
pub struct Http01Server {
    addr: SocketAddr,
    paths: Paths,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for Http01Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http01Server")
            .field("addr", &self.addr)
            .finish()
    }
}

async fn handle(State(paths): State<Paths>, req: Request) -> Response {
    let reply = lock(&paths).get(req.uri().path()).cloned();
    match reply {
        Some(HttpReply::Body(body)) => {
            ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
        }
        Some(HttpReply::Status(code, body)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, body).into_response()
        }
        Some(HttpReply::Redirect(location)) => {
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

fn lock(paths: &Mutex<HashMap<String, HttpReply>>) -> MutexGuard<'_, HashMap<String, HttpReply>> {
    paths.lock().unwrap_or_else(|p| p.into_inner())
}

fn challenge_path(token: &str) -> String {
    format!("/.well-known/acme-challenge/{token}")
}

impl Http01Server {
    /// Starts on 127.0.0.1 with a random port; panics if it cannot bind.
    pub async fn start() -> Http01Server {
        Self::start_on("127.0.0.1:0".parse().expect("literal address"))
            .await
            .expect("start test HTTP server")
    }

    pub async fn start_on(addr: SocketAddr) -> Result<Http01Server> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .context("binding test HTTP server")?;
        let addr = listener.local_addr()?;
        let paths: Paths = Arc::default();
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&paths));
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!("test HTTP server stopped: {e}");
            }
        });
        Ok(Http01Server {
            addr,
            paths,
            _tasks: Arc::new(Tasks(vec![task])),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Serves `key_authorization` at `/.well-known/acme-challenge/{token}`.
    pub fn set_token(&self, token: &str, key_authorization: &str) {
        self.set_path(&challenge_path(token), key_authorization);
    }

    pub fn remove_token(&self, token: &str) {
        self.remove_path(&challenge_path(token));
    }

    /// Serves `body` with 200 at `path` (e.g. `/.well-known/pki-validation/x.txt`).
    pub fn set_path(&self, path: &str, body: &str) {
        self.set_reply(path, HttpReply::Body(body.as_bytes().to_vec()));
    }

    pub fn set_reply(&self, path: &str, reply: HttpReply) {
        lock(&self.paths).insert(path.to_owned(), reply);
    }

    pub fn remove_path(&self, path: &str) {
        lock(&self.paths).remove(path);
    }
}
