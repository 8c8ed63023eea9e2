//! `Idempotency-Key` on `/v2` mutations (design.md): for 24 hours the first
//! response per (API key, key) is replayed to an identical request, and a
//! different request under the same key is refused.
//!
//! The claim is atomic with the state change it guards (see
//! `certhub_store::idempotency`); this module decides what a retry finds and
//! keeps stored responses sealed under the KEK, since they can hold secrets
//! (`hmacKey` of a new subscription).

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use certhub_store::idempotency::Claim;
use serde::{Deserialize, Serialize};

use crate::{App, AppError};

/// A claimed key whose response is still missing after this long was claimed
/// by a request that died (a crash between commit and storing the response).
pub const EXECUTING_GRACE_SECS: i64 = 60;

const SEAL_CONTEXT: &str = "idempotency-response";

/// A response as replayed: status, the headers that carry meaning
/// (`Content-Type`, `X-Process-Id`, `Location`) and the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Base64 of the body bytes.
    pub body: String,
}

impl StoredResponse {
    pub fn new(status: u16, headers: Vec<(String, String)>, body: &[u8]) -> StoredResponse {
        StoredResponse {
            status,
            headers,
            body: STANDARD.encode(body),
        }
    }

    pub fn body_bytes(&self) -> Vec<u8> {
        STANDARD.decode(&self.body).unwrap_or_default()
    }
}

/// What a request carrying an `Idempotency-Key` finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// No live record: run the request.
    Absent,
    /// The first response to an identical request: replay it.
    Replay(StoredResponse),
    /// The key was used for a different request.
    Mismatch,
    /// An identical request holds the key and is executing now.
    Executing,
    /// An identical request committed its change but its response was lost.
    Lost,
}

/// Hex SHA-256 of what makes two requests "the same": method, path with
/// query, and body bytes.
pub fn request_hash(method: &str, path_and_query: &str, body: &[u8]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [
        method.as_bytes(),
        b"\n",
        path_and_query.as_bytes(),
        b"\n",
        body,
    ] {
        ctx.update(part);
    }
    certhub_ca::hex_lower(ctx.finish().as_ref())
}

impl App {
    pub async fn idempotency_find(
        &self,
        api_key_id: i64,
        key: &str,
        request_hash: &str,
    ) -> Result<Found, AppError> {
        let now = self.now();
        let Some(rec) = self.db().idempotency_record(api_key_id, key, now).await? else {
            return Ok(Found::Absent);
        };
        if rec.request_hash != request_hash {
            return Ok(Found::Mismatch);
        }
        let Some(sealed) = rec.response else {
            return Ok(if now - rec.created_at < EXECUTING_GRACE_SECS {
                Found::Executing
            } else {
                Found::Lost
            });
        };
        let opened = STANDARD
            .decode(sealed)
            .map_err(|e| AppError::Internal(format!("stored response: {e}")))
            .and_then(|b| Ok(self.kek().open(SEAL_CONTEXT, &b)?))?;
        let resp = serde_json::from_slice(&opened)
            .map_err(|e| AppError::Internal(format!("stored response: {e}")))?;
        Ok(Found::Replay(resp))
    }

    /// Stores the response of the request that claimed `claim`'s key.
    pub async fn idempotency_store(
        &self,
        claim: &Claim,
        resp: &StoredResponse,
    ) -> Result<(), AppError> {
        let json = serde_json::to_vec(resp)
            .map_err(|e| AppError::Internal(format!("stored response: {e}")))?;
        let sealed = STANDARD.encode(self.kek().seal(SEAL_CONTEXT, &json));
        self.db()
            .idempotency_finish(claim.api_key_id, &claim.key, &claim.request_hash, &sealed)
            .await?;
        Ok(())
    }

    /// Drops records past their 24 hours.
    pub async fn purge_idempotency_keys(&self) -> Result<u64, AppError> {
        Ok(self.db().idempotency_purge(self.now()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_method_path_and_body() {
        let h = request_hash("POST", "/v2/ssl/acme", b"{}");
        assert_eq!(h.len(), 64);
        assert_eq!(h, request_hash("POST", "/v2/ssl/acme", b"{}"));
        assert_ne!(h, request_hash("PUT", "/v2/ssl/acme", b"{}"));
        assert_ne!(h, request_hash("POST", "/v2/ssl/acme?quote=true", b"{}"));
        assert_ne!(h, request_hash("POST", "/v2/ssl/acme", b"{ }"));
        // The separator keeps path and body apart.
        assert_ne!(
            request_hash("POST", "/a\nb", b""),
            request_hash("POST", "/a", b"b")
        );
    }
}
