//! The RTR-compatible REST API (`/v2/...`): a thin HTTP layer over `certhub-app`.
//!
//! Everything RTR's SDKs rely on lives here, once: `Authorization: ApiKey`,
//! the error body, the list envelope and query language, `X-Process-Id`,
//! strict JSON bodies, trailing slashes and timestamps.

pub mod body;
mod buffer;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod list;
pub mod refusals;
mod routes;

use axum::Router;
use certhub_app::App;

pub use error::RtrError;

/// The key whitelists of the certificate routes' bodies (also fuzzed).
pub mod certificate_keys {
    pub use crate::routes::certificates::{IMPORT_KEYS, REISSUE_KEYS, RENEW_KEYS, REQUEST_KEYS};
}

/// The `/v2` router (state applied). Trailing slashes are normalised by the caller
/// around the whole service (see the binary), since routing happens before layers.
pub fn router(app: App) -> Router {
    routes::router()
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            idempotency::layer,
        ))
        // Outside the idempotency layer, so that it sees replays as such.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            refusals::layer,
        ))
        .with_state(app)
}
