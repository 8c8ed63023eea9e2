//! One handler per ACME resource. Each verifies the request, calls one use
//! case and renders the result.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certhub_app::acme::{NewAccountRequest, NewOrderRequest, Problem, Revoker, caa_identities};
use certhub_domain::time::format_rtr;
use serde::Deserialize;
use serde_json::json;

use crate::St;
use crate::render::{self, Reply, respond};
use crate::verify::{Need, Signer};

/// RFC 9773 §4.3: how soon clients should ask again.
const ARI_RETRY_AFTER: &str = "21600";

fn parse_id(s: &str, what: &str) -> Result<i64, Problem> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| Problem::not_found(format!("{what} {s:?} does not exist")))
}

// ------------------------------------------------------------ directory, nonces

pub(crate) async fn directory(State(st): State<St>, Path(product): Path<String>) -> Response {
    respond(
        async {
            let p = st.product(&product).await?;
            let u = st.urls(&p.product);
            let public = &st.app().settings().public_url;
            Ok(Reply::json(
                200,
                &json!({
                    "newNonce": u.new_nonce(),
                    "newAccount": u.new_account(),
                    "newOrder": u.new_order(),
                    "revokeCert": u.revoke_cert(),
                    "keyChange": u.key_change(),
                    "renewalInfo": u.renewal_info(),
                    "meta": {
                        "termsOfService": u.terms(),
                        "website": public,
                        "caaIdentities": caa_identities(public),
                        "externalAccountRequired": true,
                    },
                }),
            ))
        }
        .await,
    )
}

pub(crate) async fn terms(State(st): State<St>, Path(product): Path<String>) -> Response {
    respond(async {
        let p = st.product(&product).await?;
        let text = format!(
            "Terms of service of the {} ACME directory.\n\nCertificates are issued only for the names of the ACME \
             subscription whose External Account Binding registered the account, while that subscription is ACTIVE.\n",
            p.name
        );
        Ok(Reply::bytes(200, "text/plain; charset=utf-8", text.into_bytes()))
    }
    .await)
}

pub(crate) async fn nonce_head(State(st): State<St>, Path(product): Path<String>) -> Response {
    respond(st.product(&product).await.map(|_| Reply::empty(200)))
}

pub(crate) async fn nonce_get(State(st): State<St>, Path(product): Path<String>) -> Response {
    respond(st.product(&product).await.map(|_| Reply::empty(204)))
}

pub(crate) async fn unknown(uri: Uri) -> Response {
    render::problem(&Problem::not_found(format!(
        "there is no ACME resource at {}",
        uri.path()
    )))
}

// ------------------------------------------------------------ accounts

pub(crate) async fn new_account(
    State(st): State<St>,
    Path(product): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(
        async {
            let v = st
                .verify(&product, &headers, &uri, &body, Need::Jwk)
                .await?;
            let Signer::Key(jwk) = &v.signer else {
                return Err(Problem::malformed("newAccount needs a \"jwk\""));
            };
            let req: NewAccountRequest = v.payload_as()?;
            let (ctx, created) = st
                .app()
                .acme_new_account(&v.product.product, jwk, &v.url, &req)
                .await?;
            Ok(Reply::json(
                if created { 201 } else { 200 },
                &render::account(&ctx, &v.urls),
            )
            .location(v.urls.account(ctx.id())))
        }
        .await,
    )
}

pub(crate) async fn account(
    State(st): State<St>,
    Path((product, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(
        async {
            let v = st
                .verify(&product, &headers, &uri, &body, Need::Kid)
                .await?;
            let ctx = v.account()?;
            if parse_id(&id, "account")? != ctx.id() {
                return Err(Problem::forbidden(
                    "an account can only be read or changed by its own key",
                ));
            }
            let updated = st
                .app()
                .acme_update_account(ctx, v.payload()?.as_ref())
                .await?;
            Ok(Reply::json(200, &render::account(&updated, &v.urls))
                .location(v.urls.account(ctx.id())))
        }
        .await,
    )
}

#[derive(Deserialize)]
pub(crate) struct Cursor {
    cursor: Option<i64>,
}

pub(crate) async fn orders(
    State(st): State<St>,
    Path((product, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(
        async {
            let v = st
                .verify(&product, &headers, &uri, &body, Need::Kid)
                .await?;
            let ctx = v.account()?;
            if parse_id(&id, "account")? != ctx.id() {
                return Err(Problem::forbidden(
                    "an account's orders can only be listed by its own key",
                ));
            }
            let after = match uri.query() {
                Some(q) => axum::extract::Query::<Cursor>::try_from_uri(&uri)
                    .map_err(|_| Problem::malformed(format!("bad query {q:?}")))?
                    .0
                    .cursor
                    .unwrap_or(0),
                None => 0,
            };
            let (ids, more) = st.app().acme_order_page(ctx, after).await?;
            let list: Vec<String> = ids.iter().map(|i| v.urls.order(*i)).collect();
            let mut r = Reply::json(200, &json!({ "orders": list }));
            if let (true, Some(last)) = (more, ids.last()) {
                r = r.link(
                    &format!("{}?cursor={last}", v.urls.orders(ctx.id())),
                    "next",
                );
            }
            Ok(r)
        }
        .await,
    )
}

pub(crate) async fn key_change(
    State(st): State<St>,
    Path(product): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(
        async {
            let v = st
                .verify(&product, &headers, &uri, &body, Need::Kid)
                .await?;
            let ctx = v.account()?;
            let account_url = v.urls.account(ctx.id());
            let updated = st
                .app()
                .acme_key_change(ctx, v.jws.payload(), &v.url, &account_url, &v.urls)
                .await?;
            Ok(Reply::json(200, &render::account(&updated, &v.urls)).location(account_url))
        }
        .await,
    )
}

// ------------------------------------------------------------ orders

pub(crate) async fn new_order(
    State(st): State<St>,
    Path(product): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(
        async {
            let v = st
                .verify(&product, &headers, &uri, &body, Need::Kid)
                .await?;
            let ctx = v.account()?;
            let req: NewOrderRequest = v.payload_as()?;
            let replaces = match &req.replaces {
                Some(id) => Some(
                    st.cert_ref(id)
                        .await
                        .map_err(|p| Problem::malformed(format!("replaces: {}", p.detail)))?,
                ),
                None => None,
            };
            let o = st
                .app()
                .acme_new_order(&v.product, ctx, &req, replaces.as_ref())
                .await?;
            let now = st.app().now();
            Ok(
                Reply::json(201, &render::order(&o, ctx, &v.urls, now))
                    .location(v.urls.order(o.id)),
            )
        }
        .await,
    )
}

pub(crate) async fn order(
    State(st): State<St>,
    Path((product, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(
        async {
            let v = st
                .verify(&product, &headers, &uri, &body, Need::Kid)
                .await?;
            let ctx = v.account()?;
            let o = st.app().acme_order(ctx, parse_id(&id, "order")?).await?;
            let now = st.app().now();
            let mut r = Reply::json(200, &render::order(&o, ctx, &v.urls, now));
            if o.status == "processing" {
                r = r.header(header::RETRY_AFTER, "1");
            }
            Ok(r)
        }
        .await,
    )
}

#[derive(Deserialize)]
struct FinalizeRequest {
    csr: String,
}

pub(crate) async fn finalize(
    State(st): State<St>,
    Path((product, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(
        async {
            let v = st
                .verify(&product, &headers, &uri, &body, Need::Kid)
                .await?;
            let ctx = v.account()?;
            let id = parse_id(&id, "order")?;
            let req: FinalizeRequest = v.payload_as()?;
            let der = URL_SAFE_NO_PAD
                .decode(req.csr.trim_end_matches('='))
                .map_err(|_| Problem::bad_csr("the csr is not base64url-encoded DER"))?;
            let o = st
                .app()
                .acme_finalize(&v.product, ctx, &v.urls, id, &der)
                .await?;
            let now = st.app().now();
            Ok(Reply::json(200, &render::order(&o, ctx, &v.urls, now)).location(v.urls.order(id)))
        }
        .await,
    )
}

// ------------------------------------------------------------ authorisations and challenges

pub(crate) async fn authz(
    State(st): State<St>,
    Path((product, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(
        async {
            let v = st
                .verify(&product, &headers, &uri, &body, Need::Kid)
                .await?;
            let ctx = v.account()?;
            let id = parse_id(&id, "authorization")?;
            let a = match v.payload()? {
                None => st.app().acme_authz(ctx, id).await?,
                Some(p) if p.get("status").and_then(|s| s.as_str()) == Some("deactivated") => {
                    st.app().acme_deactivate_authz(ctx, id).await?
                }
                Some(_) => {
                    return Err(Problem::malformed(
                        "an authorization can only be deactivated ({\"status\": \"deactivated\"})",
                    ));
                }
            };
            let r = Reply::json(200, &render::authz(&a, &v.urls, st.app().now()));
            Ok(poll_hint(r, &a))
        }
        .await,
    )
}

pub(crate) async fn challenge(
    State(st): State<St>,
    Path((product, id, kind)): Path<(String, String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(
        async {
            let v = st
                .verify(&product, &headers, &uri, &body, Need::Kid)
                .await?;
            let ctx = v.account()?;
            let id = parse_id(&id, "authorization")?;
            // `{}` asks for validation; POST-as-GET only reads.
            let respond = v.payload()?.is_some();
            let a = st
                .app()
                .acme_challenge(ctx, &v.urls, id, &kind, respond)
                .await?;
            let now = st.app().now();
            let offered = render::offered(&a).contains(&kind.as_str());
            if !offered {
                return Err(Problem::not_found(format!(
                    "authorization {id} has no {kind} challenge"
                )));
            }
            let r = Reply::json(200, &render::challenge(&a, &kind, &v.urls, now));
            Ok(poll_hint(r, &a).link(&v.urls.authz(id), "up"))
        }
        .await,
    )
}

/// While a validation runs, tell clients when to look again (lego waits
/// 5 s without it).
fn poll_hint(r: Reply, a: &certhub_app::acme::AcmeAuthz) -> Reply {
    if a.status == "pending" && a.chall_status.as_deref() == Some("processing") {
        r.header(header::RETRY_AFTER, "1")
    } else {
        r
    }
}

// ------------------------------------------------------------ certificates

pub(crate) async fn certificate(
    State(st): State<St>,
    Path((product, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(
        async {
            let v = st
                .verify(&product, &headers, &uri, &body, Need::Kid)
                .await?;
            let ctx = v.account()?;
            let pem = st
                .app()
                .acme_certificate_chain(ctx, parse_id(&id, "certificate")?)
                .await?;
            Ok(Reply::bytes(
                200,
                "application/pem-certificate-chain",
                pem.into_bytes(),
            ))
        }
        .await,
    )
}

#[derive(Deserialize)]
struct RevokeRequest {
    certificate: String,
    #[serde(default)]
    reason: Option<i64>,
}

pub(crate) async fn revoke(
    State(st): State<St>,
    Path(product): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(
        async {
            let v = st
                .verify(&product, &headers, &uri, &body, Need::Either)
                .await?;
            let req: RevokeRequest = v.payload_as()?;
            let der = URL_SAFE_NO_PAD
                .decode(req.certificate.trim_end_matches('='))
                .map_err(|_| Problem::malformed("the certificate is not base64url-encoded DER"))?;
            let cert = st.cert_ref_of_der(&der).await?;
            let who = match &v.signer {
                Signer::Account(a) => Revoker::Account(a),
                Signer::Key(k) => Revoker::CertificateKey(k),
            };
            st.app()
                .acme_revoke(&v.product.product, who, &cert, &der, req.reason)
                .await?;
            Ok(Reply::empty(200))
        }
        .await,
    )
}

pub(crate) async fn renewal_info(
    State(st): State<St>,
    Path((product, cert_id)): Path<(String, String)>,
) -> Response {
    respond(
        async {
            let p = st.product(&product).await?;
            let cert = st.cert_ref(&cert_id).await?;
            let (start, end) = st.app().acme_renewal_info(&p.product, &cert).await?;
            Ok(Reply::json(
                200,
                &json!({"suggestedWindow": {"start": format_rtr(start), "end": format_rtr(end)}}),
            )
            .header(header::RETRY_AFTER, ARI_RETRY_AFTER))
        }
        .await,
    )
}
