//! Reading a response body in a layer (to record or store it) without ever
//! losing it: only a body whose size is known and within bounds is read, and
//! reading such an in-memory body cannot fail half way. Any other response
//! is handed back untouched, to be sent as it is.

use axum::body::{Bytes, HttpBody, to_bytes};
use axum::http::response::Parts;
use axum::response::Response;

pub(crate) async fn response(resp: Response, max: usize) -> Result<(Parts, Bytes), Response> {
    let fits = HttpBody::size_hint(resp.body())
        .exact()
        .is_some_and(|n| n <= max as u64);
    if !fits {
        return Err(resp);
    }
    let (parts, body) = resp.into_parts();
    match to_bytes(body, max).await {
        Ok(bytes) => Ok((parts, bytes)),
        // Unreachable for a body of exact size; say so loudly if it ever is.
        Err(e) => {
            tracing::error!(error = %e, "a response body of known size could not be read");
            Err(Response::from_parts(parts, axum::body::Body::empty()))
        }
    }
}
