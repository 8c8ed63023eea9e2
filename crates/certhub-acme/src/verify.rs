//! Request authentication (RFC 8555 §6.2–6.5): media type, flattened JWS,
//! `url` equal to the request URL, key (`jwk` or `kid`) and signature, and a
//! single-use nonce, in that order. Handlers only ever see verified requests.

use std::sync::Arc;

use axum::http::{HeaderMap, Uri, header};
use certhub_app::acme::{AccountCtx, Problem, Urls};
use certhub_domain::product::Product;
use certhub_jose::{Jwk, Jws, KeyRef};

use crate::St;

/// Which key reference an endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// `jwk` (newAccount).
    Jwk,
    /// `kid` of a usable account.
    Kid,
    /// `jwk`, or `kid` of an account that may be revoked (revokeCert).
    Either,
}

/// The verified signer.
pub(crate) enum Signer {
    Key(Jwk),
    Account(Box<AccountCtx>),
}

pub(crate) struct Verified {
    pub jws: Jws,
    pub url: String,
    pub signer: Signer,
    pub product: Arc<Product>,
    pub urls: Urls,
}

impl Verified {
    /// The account, for `kid` endpoints.
    pub(crate) fn account(&self) -> Result<&AccountCtx, Problem> {
        match &self.signer {
            Signer::Account(a) => Ok(a),
            Signer::Key(_) => Err(Problem::malformed(
                "this request must be signed by an account (\"kid\")",
            )),
        }
    }

    /// The JSON payload, or None for POST-as-GET.
    pub(crate) fn payload(&self) -> Result<Option<serde_json::Value>, Problem> {
        if self.jws.is_post_as_get() {
            return Ok(None);
        }
        self.jws.payload_json().map(Some).map_err(Problem::from)
    }

    /// A typed payload (required).
    pub(crate) fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, Problem> {
        if self.jws.is_post_as_get() {
            return Err(Problem::malformed("this request needs a JSON payload"));
        }
        serde_json::from_slice(self.jws.payload())
            .map_err(|e| Problem::malformed(format!("invalid payload: {e}")))
    }
}

fn is_jose_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/jose+json"))
}

impl St {
    /// Authenticates a POST to `/acme/{product}/...`.
    pub(crate) async fn verify(
        &self,
        product: &str,
        headers: &HeaderMap,
        uri: &Uri,
        body: &[u8],
        need: Need,
    ) -> Result<Verified, Problem> {
        let product = self.product(product).await?;
        if !is_jose_json(headers) {
            let mut p =
                Problem::malformed("ACME requests must have Content-Type: application/jose+json");
            p.status = 415;
            return Err(p);
        }
        let jws = Jws::parse(body)?;
        let app = self.app();
        let url = format!(
            "{}{}",
            app.settings().public_url,
            uri.path_and_query().map_or(uri.path(), |p| p.as_str())
        );
        if jws.header().url() != url {
            return Err(Problem::unauthorized(format!(
                "the JWS \"url\" {:?} is not the request URL {url:?}",
                jws.header().url()
            )));
        }
        let urls = self.urls(&product.product);
        let signer = match (jws.header().key(), need) {
            (KeyRef::Jwk(_), Need::Kid) => {
                return Err(Problem::from(jws.require_kid().map(|_| ()).unwrap_err()));
            }
            (KeyRef::Kid(_), Need::Jwk) => {
                return Err(Problem::from(jws.require_jwk().map(|_| ()).unwrap_err()));
            }
            (KeyRef::Jwk(jwk), _) => {
                jws.verify(jwk)?;
                Signer::Key(jwk.clone())
            }
            (KeyRef::Kid(kid), _) => {
                let id = urls.account_id(kid).ok_or_else(|| {
                    Problem::unauthorized(format!(
                        "the kid {kid:?} is not an account URL of this directory ({})",
                        urls.base
                    ))
                })?;
                let ctx = app
                    .acme_account(&product.product, id)
                    .await?
                    .ok_or_else(|| {
                        Problem::new(
                            "accountDoesNotExist",
                            400,
                            format!("account {id} does not exist"),
                        )
                    })?;
                jws.verify(&ctx.jwk)?;
                crate::refusals::note_signer(ctx.account.id, ctx.account.customer_id);
                match need {
                    Need::Either if ctx.status() != "deactivated" => {}
                    _ => ctx.require_usable()?,
                }
                Signer::Account(Box::new(ctx))
            }
        };
        self.nonces()
            .await?
            .consume(app, jws.header().nonce(), app.now())
            .await?;
        Ok(Verified {
            jws,
            url,
            signer,
            product,
            urls,
        })
    }
}
