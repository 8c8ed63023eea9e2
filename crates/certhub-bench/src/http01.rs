//! The http-01 responder: answers /.well-known/acme-challenge/{token} with
//! the key authorization a worker registered for it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;

#[derive(Clone, Default)]
pub struct Tokens(Arc<Mutex<HashMap<String, String>>>);

impl Tokens {
    pub fn set(&self, token: &str, key_auth: String) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(token.to_string(), key_auth);
        }
    }

    pub fn remove(&self, token: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(token);
        }
    }

    fn get(&self, token: &str) -> Option<String> {
        self.0.lock().ok()?.get(token).cloned()
    }
}

async fn answer(State(t): State<Tokens>, Path(token): Path<String>) -> (StatusCode, String) {
    match t.get(&token) {
        Some(ka) => (StatusCode::OK, ka),
        None => (StatusCode::NOT_FOUND, String::new()),
    }
}

/// Binds `addr` and serves in the background.
pub async fn start(addr: SocketAddr, tokens: Tokens) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new()
        .route("/.well-known/acme-challenge/{token}", get(answer))
        .with_state(tokens);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}
