//! End-to-end tests of the ACME server (issue 5): instant-acme as the client
//! over plain HTTP, the test kit's DNS, http-01 and tls-alpn-01 responders,
//! and hand-signed requests (certhub_jose::sign) for RS256/EdDSA keys and
//! every malformed-JWS case. Main flows run on SQLite and on PostgreSQL
//! (skipped with a visible message when it is down).

use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use certhub::testing::{TestDb, TestServer};
use certhub_jose::sign::{SigningKey, sign_eab, sign_jws, sign_jws_with_header};
use certhub_jose::{Alg, MacAlg};
use certhub_testkit::{Http01Server, TestDns, TlsAlpnServer};
use http_body_util::BodyExt;
use instant_acme::{
    Account, AccountCredentials, BodyWrapper, BytesResponse, ChallengeType, ExternalAccountKey,
    HttpClient, Identifier, NewAccount, NewOrder, Order, OrderStatus, RetryPolicy,
    RevocationReason, RevocationRequest,
};
use reqwest::StatusCode;
use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};

const DV: &str = "sectigo_dv_acme";
const OV: &str = "sectigo_ov_acme";

// ------------------------------------------------------------------ harness

/// instant-acme's default client speaks HTTPS only; the test server is plain HTTP.
struct PlainHttp(reqwest::Client);

impl HttpClient for PlainHttp {
    fn request(
        &self,
        req: axum::http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let resp = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let mut builder = axum::http::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                builder = builder.header(k, v);
            }
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let r = builder
                .body(http_body_util::Full::new(bytes))
                .map_err(instant_acme::Error::Http)?;
            Ok(BytesResponse::from(r))
        })
    }
}

fn builder() -> instant_acme::AccountBuilder {
    Account::builder_with_http(Box::new(PlainHttp(reqwest::Client::new())))
}

/// A server with its validation responders.
struct Env {
    srv: TestServer,
    dns: TestDns,
    http01: Http01Server,
    alpn: TlsAlpnServer,
    http: reqwest::Client,
    api_key: String,
    handle: String,
}

async fn env(db: TestDb) -> Option<Env> {
    env_with(db, certhub_va::VaConfig::default().answer_wait).await
}

/// A server whose challenge POSTs wait `answer_wait` for the validation.
async fn env_with(db: TestDb, answer_wait: Duration) -> Option<Env> {
    let dns = TestDns::start().await;
    dns.set_default_a(Some(Ipv4Addr::LOCALHOST));
    let http01 = Http01Server::start().await;
    let alpn = TlsAlpnServer::start().await;
    let (resolver, h_port, a_port) = (dns.addr(), http01.port(), alpn.port());
    let srv = TestServer::start_with(db, move |s| {
        s.va = certhub_va::VaConfig {
            resolver: Some(resolver),
            allow_loopback: true,
            http01_port: h_port,
            tlsalpn01_port: a_port,
            timeout: Duration::from_secs(5),
            answer_wait,
            ..Default::default()
        };
    })
    .await?;
    let api_key = srv.customer("acmecust", 1_000_000).await;
    Some(Env {
        srv,
        dns,
        http01,
        alpn,
        http: reqwest::Client::new(),
        api_key,
        handle: "acmecust".into(),
    })
}

/// The audit trail's refusals: the customer's, or every one.
async fn refusals(e: &Env, of_customer: bool) -> Vec<String> {
    let args = certhub::admin_ops::AuditArgs {
        customer: of_customer.then(|| e.handle.clone()),
        action: Some("refusal".into()),
        ..Default::default()
    };
    certhub::admin_ops::audit_lines(&e.srv.app, &args)
        .await
        .unwrap()
}

async fn envs() -> Vec<Env> {
    let mut out = Vec::new();
    for db in TestDb::ALL {
        if let Some(e) = env(db).await {
            out.push(e);
        }
    }
    out
}

/// A subscription's ACME credentials.
struct Sub {
    id: i64,
    directory: String,
    kid: String,
    hmac: Vec<u8>,
}

fn b64(bytes: &[u8]) -> String {
    certhub_jose::b64::encode(bytes)
}

fn unb64(s: &str) -> Vec<u8> {
    certhub_jose::b64::decode(s, "test").expect("base64url")
}

impl Env {
    fn dir_base(&self, product: &str) -> String {
        format!("{}/acme/{product}", self.srv.base)
    }

    async fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self
            .http
            .request(method, self.srv.url(path))
            .header("Authorization", format!("ApiKey {}", self.api_key))
            .header("Content-Type", "application/json");
        if let Some(b) = body {
            rb = rb.body(b.to_string());
        }
        let r = rb.send().await.expect("rest");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn subscription(&self, product: &str, names: &[&str]) -> Sub {
        let mut body = json!({"customer": self.handle, "product": product, "domainNames": names, "period": 12, "autoRenew": true});
        if product == OV {
            body["organization"] = json!("Example B.V.");
            body["country"] = json!("NL");
            body["city"] = json!("Amsterdam");
            body["approver"] = json!({"firstName": "Jan", "lastName": "Jansen", "email": "jan@example.nl", "voice": "+31.201234567"});
        }
        let (status, v) = self
            .rest(
                reqwest::Method::POST,
                "/v2/ssl/acme?quote=false",
                Some(body),
            )
            .await;
        // OV subscriptions wait for organisation validation: 202.
        assert!(
            status == StatusCode::CREATED || status == StatusCode::ACCEPTED,
            "{status} {v}"
        );
        Sub {
            id: v["id"].as_i64().expect("id"),
            directory: v["directoryUrl"]
                .as_str()
                .expect("directoryUrl")
                .to_string(),
            kid: v["accountKey"].as_str().expect("accountKey").to_string(),
            hmac: unb64(v["hmacKey"].as_str().expect("hmacKey")),
        }
    }

    async fn register(&self, sub: &Sub) -> (Account, AccountCredentials) {
        let eak = ExternalAccountKey::new(sub.kid.clone(), &sub.hmac);
        builder()
            .create(
                &NewAccount {
                    contact: &["mailto:ops@example.com"],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                sub.directory.clone(),
                Some(&eak),
            )
            .await
            .expect("register with EAB")
    }

    /// Completes every pending authorisation of the order with `method`.
    async fn solve(&self, order: &mut Order, method: ChallengeType) {
        self.try_solve(order, method).await.expect("set ready");
    }

    /// [`Env::solve`], returning the problem a challenge POST answers with
    /// (a validation that fails within `answer_wait`).
    async fn try_solve(
        &self,
        order: &mut Order,
        method: ChallengeType,
    ) -> Result<(), instant_acme::Error> {
        let mut authzs = order.authorizations();
        while let Some(a) = authzs.next().await {
            let mut a = a.expect("authorization");
            if a.status == instant_acme::AuthorizationStatus::Valid {
                continue;
            }
            let mut ch = a.challenge(method.clone()).expect("challenge offered");
            let Identifier::Dns(domain) = ch.identifier().identifier.clone() else {
                panic!("dns identifier")
            };
            let ka = ch.key_authorization();
            match method {
                ChallengeType::Http01 => self.http01.set_token(&ch.token, ka.as_str()),
                ChallengeType::Dns01 => self
                    .dns
                    .set_txt(&format!("_acme-challenge.{domain}"), vec![ka.dns_value()]),
                ChallengeType::TlsAlpn01 => self.alpn.set_challenge(&domain, ka.as_str()),
                _ => unreachable!(),
            }
            ch.set_ready().await?;
        }
        Ok(())
    }

    /// Orders, validates and finalizes; returns (chain PEM, leaf DER, key).
    async fn issue(
        &self,
        acct: &Account,
        names: &[&str],
        method: ChallengeType,
    ) -> (String, Vec<u8>, rcgen::KeyPair) {
        let ids: Vec<Identifier> = names
            .iter()
            .map(|n| Identifier::Dns(n.to_string()))
            .collect();
        let mut order = acct
            .new_order(&NewOrder::new(&ids))
            .await
            .expect("new order");
        self.solve(&mut order, method).await;
        let status = order
            .poll_ready(&RetryPolicy::default())
            .await
            .expect("poll ready");
        assert_eq!(status, OrderStatus::Ready, "{:?}", order.state().error);
        let (der, key) = csr(names);
        order.finalize_csr(&der).await.expect("finalize");
        let pem = order
            .poll_certificate(&RetryPolicy::default())
            .await
            .expect("certificate");
        let leaf = certhub_ca::pem_decode_all(&pem).expect("pem")[0].1.clone();
        (pem, leaf, key)
    }
}

fn csr(names: &[&str]) -> (Vec<u8>, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    // certbot-style: the first name as CN (rcgen's default CN is not a DNS name).
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0]);
    let der = params.serialize_request(&key).expect("csr").der().to_vec();
    (der, key)
}

/// RFC 9773 CertID of one of our leaves (AKI keyIdentifier . serial).
fn cert_id(leaf: &[u8]) -> String {
    let aki_oid = [0x06, 0x03, 0x55, 0x1d, 0x23];
    let at = leaf.windows(5).position(|w| w == aki_oid).expect("AKI");
    // OID, OCTET STRING { SEQUENCE { [0] keyIdentifier } }
    let rest = &leaf[at + 5..];
    let seq = rest.iter().position(|b| *b == 0x80).expect("keyIdentifier");
    let len = usize::from(rest[seq + 1]);
    let aki = &rest[seq + 2..seq + 2 + len];
    let pem = certhub_ca::pem_encode("CERTIFICATE", leaf);
    let serial = certhub_ca::hex_decode(
        &certhub_ca::parse_foreign_certificate(&pem)
            .expect("parse")
            .serial_hex,
    )
    .expect("hex");
    format!("{}.{}", b64(aki), b64(&serial))
}

/// Hand-signed requests.
struct Raw<'a> {
    env: &'a Env,
    base: String,
}

struct Resp {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
    text: String,
}

impl Resp {
    fn problem(&self) -> &str {
        self.body["type"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("urn:ietf:params:acme:error:")
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

impl<'a> Raw<'a> {
    fn new(env: &'a Env, product: &str) -> Raw<'a> {
        Raw {
            env,
            base: env.dir_base(product),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// POST-as-GETs `url` (an authorisation or an order) until it is no
    /// longer pending, at most 50 times `pause` apart; its last body.
    async fn poll(&self, key: &SigningKey, url: &str, kid: &str, pause: Duration) -> Value {
        let mut body = Value::Null;
        for _ in 0..50 {
            body = self.post(key, url, Some(kid), &Value::Null).await.body;
            if body["status"] != "pending" {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        body
    }

    async fn nonce(&self) -> String {
        let r = self
            .env
            .http
            .head(self.url("new-nonce"))
            .send()
            .await
            .expect("nonce");
        assert_eq!(r.status(), StatusCode::OK);
        r.headers()["replay-nonce"]
            .to_str()
            .expect("nonce")
            .to_string()
    }

    async fn send(&self, url: &str, body: String, content_type: &str) -> Resp {
        let r = self
            .env
            .http
            .post(url)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("post");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    async fn post(&self, key: &SigningKey, url: &str, kid: Option<&str>, payload: &Value) -> Resp {
        let payload = if payload.is_null() {
            Vec::new()
        } else {
            payload.to_string().into_bytes()
        };
        let nonce = self.nonce().await;
        let jws = sign_jws(key, url, Some(&nonce), kid, &payload).expect("sign");
        self.send(url, jws.to_string(), "application/jose+json")
            .await
    }

    async fn new_account(&self, key: &SigningKey, sub: &Sub) -> Resp {
        let url = self.url("new-account");
        let eab = sign_eab(&sub.kid, &sub.hmac, MacAlg::Hs256, key.public_jwk(), &url);
        self.post(
            key,
            &url,
            None,
            &json!({"termsOfServiceAgreed": true, "externalAccountBinding": eab}),
        )
        .await
    }
}

fn assert_common_headers(r: &Resp, directory: &str) {
    assert!(
        r.header("replay-nonce").is_some_and(|n| n.len() == 43),
        "Replay-Nonce on every response"
    );
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let link: Vec<String> = r
        .headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    assert!(
        link.iter()
            .any(|l| l == &format!("<{directory}>;rel=\"index\"")),
        "{link:?}"
    );
}

fn assert_problem(r: &Resp, status: u16, kind: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.problem(), kind, "{}", r.text);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/problem+json")
    );
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread")]
async fn directory_and_nonces() {
    let e = env(TestDb::Sqlite).await.expect("sqlite");
    let base = e.dir_base(DV);
    let r = e
        .http
        .get(format!("{base}/directory"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("replay-nonce").is_some());
    let d: Value = r.json().await.unwrap();
    for k in [
        "newNonce",
        "newAccount",
        "newOrder",
        "revokeCert",
        "keyChange",
        "renewalInfo",
    ] {
        assert!(
            d[k].as_str().is_some_and(|u| u.starts_with(&base)),
            "{k}: {d}"
        );
    }
    assert_eq!(d["meta"]["externalAccountRequired"], true);
    assert_eq!(d["meta"]["caaIdentities"], json!(["127.0.0.1"]));
    assert_eq!(d["meta"]["website"], e.srv.base);
    let tos = e
        .http
        .get(d["meta"]["termsOfService"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(tos.status(), StatusCode::OK);

    let head = e
        .http
        .head(format!("{base}/new-nonce"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["cache-control"], "no-store");
    let get = e
        .http
        .get(format!("{base}/new-nonce"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::NO_CONTENT);
    assert_ne!(
        head.headers()["replay-nonce"],
        get.headers()["replay-nonce"]
    );

    for missing in [
        "/acme/nope/directory",
        "/acme/sectigo_dv_single/directory",
        "/acme/sectigo_dv_acme/nothing-here",
    ] {
        let r = e.http.get(e.srv.url(missing)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert!(r.headers().get("replay-nonce").is_some());
    }
}

/// The main flow on both backends: EAB registration, http-01 multi-name,
/// dns-01 wildcard, tls-alpn-01, reuse, ARI + replaces, revocation both ways,
/// two accounts on one EAB, key rollover, deactivation.
#[tokio::test(flavor = "multi_thread")]
async fn issuance_flows() {
    for e in envs().await {
        let sub = e
            .subscription(
                DV,
                &[
                    "example.com",
                    "www.example.com",
                    "*.example.com",
                    "alpn.example.com",
                    "dns.example.com",
                    "caa.example.com",
                ],
            )
            .await;
        let (acct, _) = e.register(&sub).await;
        assert!(acct.id().starts_with(&format!("{}/acct/", e.dir_base(DV))));

        // http-01, two names.
        let (pem, leaf, _) = e
            .issue(
                &acct,
                &["www.example.com", "example.com"],
                ChallengeType::Http01,
            )
            .await;
        assert!(pem.matches("BEGIN CERTIFICATE").count() >= 2, "chain");
        let fc = certhub_ca::parse_foreign_certificate(&pem).unwrap();
        assert_eq!(fc.names, vec!["www.example.com", "example.com"]);
        // The certificate row, its process and the customer's view.
        let row = e
            .srv
            .app
            .db()
            .certificates_by_serial(&fc.serial_hex)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(row.certificate_type, "ACME_SUBSCRIPTION");
        assert_eq!(row.subscription_id, Some(sub.id));
        assert!(row.acme_account_id.is_some() && row.acme_order_id.is_some());
        let p = e
            .srv
            .app
            .db()
            .process(None, row.process_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                p.process_type.as_str(),
                p.action.as_str(),
                p.status.as_str()
            ),
            ("acmeSubscription", "issue", "COMPLETED")
        );
        assert_eq!(p.identifier, "www.example.com");
        let (status, list) = e
            .rest(reqwest::Method::GET, "/v2/ssl/certificates", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");

        // Reuse: the same names again are ready at once (valid authorisations).
        let ids = [
            Identifier::Dns("example.com".into()),
            Identifier::Dns("www.example.com".into()),
        ];
        let reused = acct.new_order(&NewOrder::new(&ids)).await.unwrap();
        let mut reused = reused;
        assert_eq!(reused.state().status, OrderStatus::Ready);
        // An identical ready order is returned instead of a new one.
        let again = acct.new_order(&NewOrder::new(&ids)).await.unwrap();
        assert_eq!(again.url(), reused.url());
        let (der, _) = csr(&["example.com", "www.example.com"]);
        reused.finalize_csr(&der).await.unwrap();
        reused
            .poll_certificate(&RetryPolicy::default())
            .await
            .unwrap();

        // dns-01 for a wildcard plus a plain name.
        let (pem, _, _) = e
            .issue(
                &acct,
                &["*.example.com", "dns.example.com"],
                ChallengeType::Dns01,
            )
            .await;
        assert_eq!(
            certhub_ca::parse_foreign_certificate(&pem).unwrap().names,
            vec!["*.example.com", "dns.example.com"]
        );

        // tls-alpn-01.
        let (_, alpn_leaf, alpn_key) = e
            .issue(&acct, &["alpn.example.com"], ChallengeType::TlsAlpn01)
            .await;

        // CAA forbids: the challenge fails with a caa error and the order is invalid.
        e.dns.set_caa(
            "caa.example.com",
            vec![(0, "issue".into(), "other-ca.example".into())],
        );
        let mut order = acct
            .new_order(&NewOrder::new(&[Identifier::Dns("caa.example.com".into())]))
            .await
            .unwrap();
        // The challenge POST answers with the failed validation's problem...
        match e.try_solve(&mut order, ChallengeType::Http01).await {
            Err(instant_acme::Error::Api(p)) => {
                assert_eq!(p.r#type.as_deref(), Some("urn:ietf:params:acme:error:caa"))
            }
            other => panic!("expected a caa problem, got {other:?}"),
        }
        // ...and the invalid order carries it too.
        match order.poll_ready(&RetryPolicy::default()).await {
            Err(instant_acme::Error::Api(p)) => {
                assert_eq!(
                    p.r#type.as_deref(),
                    Some("urn:ietf:params:acme:error:caa"),
                    "{p:?}"
                )
            }
            other => panic!("expected a caa problem, got {other:?}"),
        }
        assert_eq!(order.state().status, OrderStatus::Invalid);
        e.dns.clear_caa("caa.example.com");
        // The failed validation is a refusal on record, with its reason.
        let lines = refusals(&e, true).await;
        assert!(
            lines.iter().any(|l| l.contains(" authz ")
                && l.contains("caa: ")
                && l.contains("caa.example.com")),
            "{lines:#?}"
        );

        // ARI: renewalInfo for the first certificate, then a replacing order.
        let id = cert_id(&leaf);
        let r = e
            .http
            .get(format!("{}/renewal-info/{id}", e.dir_base(DV)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["retry-after"], "21600");
        let w: Value = r.json().await.unwrap();
        let start =
            certhub_domain::time::parse_rfc3339(w["suggestedWindow"]["start"].as_str().unwrap())
                .unwrap();
        let end =
            certhub_domain::time::parse_rfc3339(w["suggestedWindow"]["end"].as_str().unwrap())
                .unwrap();
        assert!(start > e.srv.app.now() && end > start, "{w}");
        let bad = e
            .http
            .get(format!("{}/renewal-info/not-a-cert-id", e.dir_base(DV)))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

        let quoted = format!("\"{id}\"");
        let certid = serde_json::from_str::<instant_acme::CertificateIdentifier<'_>>(&quoted)
            .unwrap()
            .into_owned();
        let ids = [
            Identifier::Dns("www.example.com".into()),
            Identifier::Dns("example.com".into()),
        ];
        let mut order = acct
            .new_order(&NewOrder::new(&ids).replaces(certid.clone()))
            .await
            .expect("replaces order");
        assert_eq!(order.state().status, OrderStatus::Ready);
        let (der, _) = csr(&["www.example.com", "example.com"]);
        order.finalize_csr(&der).await.unwrap();
        order
            .poll_certificate(&RetryPolicy::default())
            .await
            .unwrap();
        let err = acct
            .new_order(&NewOrder::new(&ids).replaces(certid))
            .await
            .err()
            .expect("already replaced");
        match err {
            instant_acme::Error::Api(p) => {
                assert_eq!(
                    p.r#type.as_deref(),
                    Some("urn:ietf:params:acme:error:alreadyReplaced")
                )
            }
            other => panic!("{other:?}"),
        }

        // Revocation by the ordering account; twice → alreadyRevoked.
        let der = CertificateDer::from(leaf.clone());
        acct.revoke(&RevocationRequest {
            certificate: &der,
            reason: Some(RevocationReason::Superseded),
        })
        .await
        .unwrap();
        let err = acct
            .revoke(&RevocationRequest {
                certificate: &der,
                reason: None,
            })
            .await
            .unwrap_err();
        assert!(format!("{err:?}").contains("alreadyRevoked"), "{err:?}");
        // A revoked certificate's renewal window is in the past.
        let w: Value = e
            .http
            .get(format!("{}/renewal-info/{id}", e.dir_base(DV)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let end =
            certhub_domain::time::parse_rfc3339(w["suggestedWindow"]["end"].as_str().unwrap())
                .unwrap();
        assert!(end < e.srv.app.now());

        // Revocation by the certificate key (hand-signed with jwk), bad reason first.
        let raw = Raw::new(&e, DV);
        let cert_key = SigningKey::from_pkcs8(Alg::Es256, &alpn_key.serialize_der()).unwrap();
        let url = raw.url("revoke-cert");
        let r = raw
            .post(
                &cert_key,
                &url,
                None,
                &json!({"certificate": b64(&alpn_leaf), "reason": 2}),
            )
            .await;
        assert_problem(&r, 400, "badRevocationReason");
        let stranger = SigningKey::generate(Alg::Es256).unwrap();
        let r = raw
            .post(
                &stranger,
                &url,
                None,
                &json!({"certificate": b64(&alpn_leaf)}),
            )
            .await;
        assert_problem(&r, 403, "unauthorized");
        let r = raw
            .post(
                &cert_key,
                &url,
                None,
                &json!({"certificate": b64(&alpn_leaf), "reason": 1}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = raw
            .post(
                &cert_key,
                &url,
                None,
                &json!({"certificate": b64(&alpn_leaf), "reason": 1}),
            )
            .await;
        assert_problem(&r, 400, "alreadyRevoked");

        // Two accounts with one EAB both issue.
        let (second, _) = e.register(&sub).await;
        assert_ne!(second.id(), acct.id());
        e.issue(&second, &["example.com"], ChallengeType::Http01)
            .await;

        // Key rollover: the account keeps working under its new key.
        let mut rolled = second;
        let old_id = rolled.id().to_string();
        let creds = rolled.update_key().await.expect("key change");
        assert_eq!(rolled.id(), old_id);
        e.issue(&rolled, &["www.example.com"], ChallengeType::Http01)
            .await;
        let restored = builder().from_credentials(creds).await.unwrap();
        assert_eq!(restored.id(), old_id);

        // Deactivation: the account is unusable afterwards.
        let (third, creds) = e.register(&sub).await;
        third.deactivate().await.unwrap();
        let again = builder().from_credentials(creds).await.unwrap();
        let err = again
            .new_order(&NewOrder::new(&[Identifier::Dns("example.com".into())]))
            .await
            .err()
            .expect("refused");
        assert!(format!("{err:?}").contains("unauthorized"), "{err:?}");
    }
}

/// A challenge POST carries a prompt validation's result (valid, or invalid
/// with its problem); with `answer_wait = 0` it answers `processing` and a
/// Retry-After at once, and the result shows up on a later poll.
#[tokio::test(flavor = "multi_thread")]
async fn a_challenge_post_answers_with_a_prompt_result() {
    for (wait, name) in [
        (Duration::from_secs(2), "prompt.example.com"),
        (Duration::ZERO, "later.example.com"),
    ] {
        let e = env_with(TestDb::Sqlite, wait).await.expect("sqlite");
        let sub = e.subscription(DV, &[name, "missing.example.com"]).await;
        let raw = Raw::new(&e, DV);
        let key = SigningKey::generate(Alg::Es256).unwrap();
        let kid = raw
            .new_account(&key, &sub)
            .await
            .header("location")
            .unwrap();
        for (ident, answered) in [(name, true), ("missing.example.com", false)] {
            let r = raw
                .post(
                    &key,
                    &raw.url("new-order"),
                    Some(&kid),
                    &json!({"identifiers": [{"type": "dns", "value": ident}]}),
                )
                .await;
            let authz_url = r.body["authorizations"][0].as_str().unwrap().to_string();
            let a = raw.post(&key, &authz_url, Some(&kid), &Value::Null).await;
            let chall = a.body["challenges"][0].clone();
            let token = chall["token"].as_str().unwrap();
            if answered {
                let jwk = key.public_jwk();
                e.http01.set_token(token, &jwk.key_authorization(token));
            }
            let c = raw
                .post(&key, chall["url"].as_str().unwrap(), Some(&kid), &json!({}))
                .await;
            assert_eq!(c.status, StatusCode::OK, "{}", c.text);
            let want = if answered { "valid" } else { "invalid" };
            if wait.is_zero() {
                assert_eq!(c.body["status"], "processing", "{}", c.text);
                assert_eq!(c.header("retry-after").as_deref(), Some("1"));
                let a = raw
                    .poll(&key, &authz_url, &kid, Duration::from_millis(50))
                    .await;
                assert_eq!(a["status"], want);
            } else {
                assert_eq!(c.body["status"], want, "{}", c.text);
                assert_eq!(c.header("retry-after"), None);
                if !answered {
                    let t = c.body["error"]["type"].as_str().unwrap_or_default();
                    assert!(t.starts_with("urn:ietf:params:acme:error:"), "{}", c.text);
                }
            }
        }
    }
}

/// Hand-signed requests with RS256, EdDSA and ES384 account keys.
#[tokio::test(flavor = "multi_thread")]
async fn other_account_key_types() {
    let e = env(TestDb::Sqlite).await.expect("sqlite");
    let sub = e
        .subscription(
            DV,
            &["rsa.example.com", "ed.example.com", "p384.example.com"],
        )
        .await;
    let raw = Raw::new(&e, DV);
    for (alg, name) in [
        (Alg::Rs256, "rsa.example.com"),
        (Alg::EdDsa, "ed.example.com"),
        (Alg::Es384, "p384.example.com"),
    ] {
        let key = SigningKey::generate(alg).unwrap();
        let r = raw.new_account(&key, &sub).await;
        assert_eq!(r.status, StatusCode::CREATED, "{alg}: {}", r.text);
        assert_eq!(r.body["status"], "valid");
        let kid = r.header("location").expect("Location");
        // The same key again: 200 with the same Location.
        let r2 = raw.new_account(&key, &sub).await;
        assert_eq!(r2.status, StatusCode::OK);
        assert_eq!(r2.header("location").as_deref(), Some(kid.as_str()));
        // onlyReturnExisting finds it.
        let r3 = raw
            .post(
                &key,
                &raw.url("new-account"),
                None,
                &json!({"onlyReturnExisting": true}),
            )
            .await;
        assert_eq!(r3.status, StatusCode::OK);

        // POST-as-GET of the account, then an order and its authorisation.
        let r = raw.post(&key, &kid, Some(&kid), &Value::Null).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = raw
            .post(
                &key,
                &raw.url("new-order"),
                Some(&kid),
                &json!({"identifiers": [{"type": "dns", "value": name}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.body["status"], "pending");
        let authz_url = r.body["authorizations"][0].as_str().unwrap().to_string();
        let a = raw.post(&key, &authz_url, Some(&kid), &Value::Null).await;
        assert_eq!(a.body["identifier"]["value"], name);
        let kinds: Vec<&str> = a.body["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, vec!["http-01", "dns-01", "tls-alpn-01"]);

        // http-01 through a raw challenge POST; poll the authorisation.
        let chall = a.body["challenges"][0].clone();
        let jwk = key.public_jwk();
        e.http01.set_token(
            chall["token"].as_str().unwrap(),
            &jwk.key_authorization(chall["token"].as_str().unwrap()),
        );
        let c = raw
            .post(&key, chall["url"].as_str().unwrap(), Some(&kid), &json!({}))
            .await;
        assert_eq!(c.status, StatusCode::OK, "{}", c.text);
        assert!(
            c.headers
                .get_all("link")
                .iter()
                .any(|l| l.to_str().unwrap().contains("rel=\"up\""))
        );
        // The validation finished within the answer wait: the response says so.
        assert_eq!(c.body["status"], "valid", "{}", c.text);
        assert_eq!(c.header("retry-after"), None);
        let a = raw
            .poll(&key, &authz_url, &kid, Duration::from_millis(100))
            .await;
        assert_eq!(a["status"], "valid");
        // A POST to a valid challenge returns it unchanged.
        let c = raw
            .post(&key, chall["url"].as_str().unwrap(), Some(&kid), &json!({}))
            .await;
        assert_eq!(c.body["status"], "valid");
        // Account contact update and the orders list.
        let r = raw
            .post(
                &key,
                &kid,
                Some(&kid),
                &json!({"contact": ["mailto:new@example.com"]}),
            )
            .await;
        assert_eq!(r.body["contact"], json!(["mailto:new@example.com"]));
        let r = raw
            .post(&key, &kid, Some(&kid), &json!({"contact": ["tel:+31"]}))
            .await;
        assert_problem(&r, 400, "unsupportedContact");
        let orders = raw
            .post(&key, &format!("{kid}/orders"), Some(&kid), &Value::Null)
            .await;
        assert_eq!(
            orders.body["orders"].as_array().unwrap().len(),
            1,
            "{}",
            orders.text
        );

        // keyChange by hand: inner JWS signed by the new key, outer by the old.
        let new_key = SigningKey::generate(Alg::Es256).unwrap();
        let kc = raw.url("key-change");
        let inner_payload =
            json!({"account": kid, "oldKey": key.public_jwk().to_json()}).to_string();
        let inner = sign_jws(&new_key, &kc, None, None, inner_payload.as_bytes()).unwrap();
        let r = raw.post(&key, &kc, Some(&kid), &inner).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        // The old key no longer verifies (a different key type fails on alg).
        let r = raw.post(&key, &kid, Some(&kid), &Value::Null).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert!(
            ["malformed", "badSignatureAlgorithm"].contains(&r.problem()),
            "{}",
            r.text
        );
        let r = raw.post(&new_key, &kid, Some(&kid), &Value::Null).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        // A key already in use by another account → 409 with its Location.
        let taken = SigningKey::generate(Alg::Es256).unwrap();
        let taken_kid = raw
            .new_account(&taken, &sub)
            .await
            .header("location")
            .unwrap();
        let inner_payload =
            json!({"account": kid, "oldKey": new_key.public_jwk().to_json()}).to_string();
        let inner = sign_jws(&taken, &kc, None, None, inner_payload.as_bytes()).unwrap();
        let r = raw.post(&new_key, &kc, Some(&kid), &inner).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert_eq!(r.header("location").as_deref(), Some(taken_kid.as_str()));
    }
}

/// Every malformed-JWS case of issue point 2, and the EAB errors.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests() {
    for e in envs().await {
        let sub = e.subscription(DV, &["m.example.com"]).await;
        let raw = Raw::new(&e, DV);
        let directory = raw.url("directory");
        let key = SigningKey::generate(Alg::Es256).unwrap();
        let r = raw.new_account(&key, &sub).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let kid = r.header("location").unwrap();
        let order_url = raw.url("new-order");
        let payload =
            json!({"identifiers": [{"type": "dns", "value": "m.example.com"}]}).to_string();

        // Bad nonce → badNonce with a fresh, working Replay-Nonce.
        let jws = sign_jws(
            &key,
            &order_url,
            Some("bm90LWEtbm9uY2U"),
            Some(&kid),
            payload.as_bytes(),
        )
        .unwrap();
        let r = raw
            .send(&order_url, jws.to_string(), "application/jose+json")
            .await;
        assert_problem(&r, 400, "badNonce");
        assert_common_headers(&r, &directory);
        let fresh = r.header("replay-nonce").unwrap();
        let jws = sign_jws(
            &key,
            &order_url,
            Some(&fresh),
            Some(&kid),
            payload.as_bytes(),
        )
        .unwrap();
        let ok = raw
            .send(&order_url, jws.to_string(), "application/jose+json")
            .await;
        assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
        // The same nonce twice → badNonce.
        let r = raw
            .send(&order_url, jws.to_string(), "application/jose+json")
            .await;
        assert_problem(&r, 400, "badNonce");
        // The same request eight times at once (the uses race into one
        // batch of the shared nonce record on PostgreSQL): one is served.
        let n = raw.nonce().await;
        let jws = sign_jws(&key, &order_url, Some(&n), Some(&kid), payload.as_bytes())
            .unwrap()
            .to_string();
        let send = || raw.send(&order_url, jws.clone(), "application/jose+json");
        let r = tokio::join!(
            send(),
            send(),
            send(),
            send(),
            send(),
            send(),
            send(),
            send()
        );
        let statuses = [r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7].map(|r| r.status);
        assert_eq!(
            statuses.iter().filter(|s| s.is_success()).count(),
            1,
            "{statuses:?}"
        );
        // No nonce.
        let jws = sign_jws(&key, &order_url, None, Some(&kid), payload.as_bytes()).unwrap();
        assert_problem(
            &raw.send(&order_url, jws.to_string(), "application/jose+json")
                .await,
            400,
            "badNonce",
        );

        // url differing from the request URL.
        let n = raw.nonce().await;
        let jws = sign_jws(
            &key,
            &format!("{order_url}x"),
            Some(&n),
            Some(&kid),
            payload.as_bytes(),
        )
        .unwrap();
        assert_problem(
            &raw.send(&order_url, jws.to_string(), "application/jose+json")
                .await,
            401,
            "unauthorized",
        );
        // Host-relative or other-host url.
        let n = raw.nonce().await;
        let other = order_url.replace("127.0.0.1", "localhost");
        let jws = sign_jws(&key, &other, Some(&n), Some(&kid), payload.as_bytes()).unwrap();
        assert_problem(
            &raw.send(&order_url, jws.to_string(), "application/jose+json")
                .await,
            401,
            "unauthorized",
        );

        // Wrong content type.
        let n = raw.nonce().await;
        let jws = sign_jws(&key, &order_url, Some(&n), Some(&kid), payload.as_bytes()).unwrap();
        let r = raw
            .send(&order_url, jws.to_string(), "application/json")
            .await;
        assert_problem(&r, 415, "malformed");
        assert_common_headers(&r, &directory);

        // alg none and HS256 on the outer JWS.
        for alg in ["none", "HS256"] {
            let n = raw.nonce().await;
            let h = json!({"alg": alg, "nonce": n, "url": order_url, "kid": kid});
            let jws = sign_jws_with_header(&key, &h, payload.as_bytes()).unwrap();
            let r = raw
                .send(&order_url, jws.to_string(), "application/jose+json")
                .await;
            assert_problem(&r, 400, "badSignatureAlgorithm");
            assert!(
                r.body["algorithms"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            );
        }
        // kid and jwk together.
        let n = raw.nonce().await;
        let h = json!({"alg": "ES256", "nonce": n, "url": order_url, "kid": kid, "jwk": key.public_jwk().to_json()});
        let jws = sign_jws_with_header(&key, &h, payload.as_bytes()).unwrap();
        assert_problem(
            &raw.send(&order_url, jws.to_string(), "application/jose+json")
                .await,
            400,
            "malformed",
        );
        // jwk where an account (kid) is required.
        let r = raw
            .post(
                &key,
                &order_url,
                None,
                &serde_json::from_str(&payload).unwrap(),
            )
            .await;
        assert_problem(&r, 400, "malformed");
        // Signature by another key.
        let other_key = SigningKey::generate(Alg::Es256).unwrap();
        let r = raw
            .post(
                &other_key,
                &order_url,
                Some(&kid),
                &serde_json::from_str(&payload).unwrap(),
            )
            .await;
        assert_problem(&r, 400, "malformed");
        // Recorded, but not under the customer whose kid was named: the
        // signature did not verify. badNonce refusals are not recorded.
        let all = refusals(&e, false).await;
        assert!(
            all.iter().any(|l| l.contains(" acme - ")
                && l.contains("/new-order 400 malformed: ")
                && l.contains("signature")),
            "{all:#?}"
        );
        assert!(
            !refusals(&e, true)
                .await
                .iter()
                .any(|l| l.contains("signature"))
        );
        assert!(!all.iter().any(|l| l.contains("badNonce")), "{all:#?}");
        // Unknown kid.
        let unknown = format!("{}/acct/999999", raw.base);
        let r = raw
            .post(
                &key,
                &order_url,
                Some(&unknown),
                &serde_json::from_str(&payload).unwrap(),
            )
            .await;
        assert_problem(&r, 400, "accountDoesNotExist");
        // kid of another product's directory.
        let foreign = kid.replace(DV, OV);
        let r = raw
            .post(
                &key,
                &order_url,
                Some(&foreign),
                &serde_json::from_str(&payload).unwrap(),
            )
            .await;
        assert_problem(&r, 401, "unauthorized");
        // Compact serialization and garbage.
        let r = raw
            .send(
                &order_url,
                "eyJhbGciOiJFUzI1NiJ9.e30.sig".into(),
                "application/jose+json",
            )
            .await;
        assert_problem(&r, 400, "malformed");

        // newAccount: missing EAB, bad MAC, unknown kid, wrong product directory.
        let k2 = SigningKey::generate(Alg::Es256).unwrap();
        let r = raw
            .post(
                &k2,
                &raw.url("new-account"),
                None,
                &json!({"termsOfServiceAgreed": true}),
            )
            .await;
        assert_problem(&r, 403, "externalAccountRequired");
        assert_common_headers(&r, &directory);
        let r = raw
            .post(
                &k2,
                &raw.url("new-account"),
                None,
                &json!({"onlyReturnExisting": true}),
            )
            .await;
        assert_problem(&r, 400, "accountDoesNotExist");
        let bad_mac = Sub {
            id: sub.id,
            directory: sub.directory.clone(),
            kid: sub.kid.clone(),
            hmac: vec![7; 32],
        };
        assert_problem(&raw.new_account(&k2, &bad_mac).await, 401, "unauthorized");
        assert!(
            refusals(&e, false)
                .await
                .iter()
                .any(|l| l.contains("/new-account 401 unauthorized: ")),
            "a refused EAB binding is on record"
        );
        let bad_kid = Sub {
            kid: "no-such-key-id".into(),
            ..bad_mac
        };
        assert_problem(&raw.new_account(&k2, &bad_kid).await, 401, "unauthorized");
        let ov_raw = Raw::new(&e, OV);
        let r = ov_raw.new_account(&k2, &sub).await;
        assert_problem(&r, 401, "unauthorized");
        assert!(
            r.body["detail"].as_str().unwrap().contains(DV),
            "{}",
            r.text
        );
        // An EAB signed for another URL.
        let url = raw.url("new-account");
        let eab = sign_eab(
            &sub.kid,
            &sub.hmac,
            MacAlg::Hs256,
            k2.public_jwk(),
            &format!("{url}/other"),
        );
        let r = raw
            .post(&k2, &url, None, &json!({"externalAccountBinding": eab}))
            .await;
        assert_problem(&r, 401, "unauthorized");
        // HS512 EAB works.
        let eab = sign_eab(&sub.kid, &sub.hmac, MacAlg::Hs512, k2.public_jwk(), &url);
        let r = raw
            .post(&k2, &url, None, &json!({"externalAccountBinding": eab}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
}

/// newOrder and finalize are gated by the subscription; names must be covered.
#[tokio::test(flavor = "multi_thread")]
async fn subscription_gates() {
    for e in envs().await {
        let sub = e
            .subscription(DV, &["gate.example.com", "*.gate.example.com"])
            .await;
        let raw = Raw::new(&e, DV);
        let key = SigningKey::generate(Alg::Es256).unwrap();
        let kid = raw
            .new_account(&key, &sub)
            .await
            .header("location")
            .unwrap();
        let order = |names: &[&str]| json!({"identifiers": names.iter().map(|n| json!({"type": "dns", "value": n})).collect::<Vec<_>>()});

        // Names outside the subscription: one subproblem per refused identifier.
        let r = raw
            .post(
                &key,
                &raw.url("new-order"),
                Some(&kid),
                &order(&[
                    "gate.example.com",
                    "other.example.com",
                    "x.gate.example.com",
                ]),
            )
            .await;
        assert_problem(&r, 400, "rejectedIdentifier");
        // On record under the customer whose account signed it.
        let lines = refusals(&e, true).await;
        let account = kid.rsplit('/').next().unwrap();
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("acme-account-{account}"))
                    && l.contains("/new-order 400 rejectedIdentifier: ")
                    && l.contains("other.example.com")),
            "{lines:#?}"
        );
        let subs = r.body["subproblems"].as_array().unwrap();
        assert_eq!(subs.len(), 2, "{}", r.text);
        assert_eq!(subs[0]["identifier"]["value"], "other.example.com");
        assert_eq!(
            subs[0]["type"],
            "urn:ietf:params:acme:error:rejectedIdentifier"
        );
        // Wildcards need dns-01 only.
        let r = raw
            .post(
                &key,
                &raw.url("new-order"),
                Some(&kid),
                &order(&["*.gate.example.com"]),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let a = raw
            .post(
                &key,
                r.body["authorizations"][0].as_str().unwrap(),
                Some(&kid),
                &Value::Null,
            )
            .await;
        assert_eq!(a.body["wildcard"], true);
        assert_eq!(a.body["identifier"]["value"], "gate.example.com");
        assert_eq!(a.body["challenges"].as_array().unwrap().len(), 1);
        assert_eq!(a.body["challenges"][0]["type"], "dns-01");
        // notAfter beyond the maximum → malformed naming the limit.
        let mut o = order(&["gate.example.com"]);
        o["notAfter"] = json!("2099-01-01T00:00:00Z");
        let r = raw.post(&key, &raw.url("new-order"), Some(&kid), &o).await;
        assert_problem(&r, 400, "malformed");
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap()
                .contains("maximum validity"),
            "{}",
            r.text
        );

        // A ready order, then the subscription is suspended: finalize and newOrder refused.
        let r = raw
            .post(
                &key,
                &raw.url("new-order"),
                Some(&kid),
                &order(&["gate.example.com"]),
            )
            .await;
        let order_url = r.header("location").unwrap();
        let a = raw
            .post(
                &key,
                r.body["authorizations"][0].as_str().unwrap(),
                Some(&kid),
                &Value::Null,
            )
            .await;
        let ch = &a.body["challenges"][0];
        let token = ch["token"].as_str().unwrap();
        e.http01
            .set_token(token, &key.public_jwk().key_authorization(token));
        raw.post(&key, ch["url"].as_str().unwrap(), Some(&kid), &json!({}))
            .await;
        let ready = raw
            .poll(&key, &order_url, &kid, Duration::from_millis(100))
            .await;
        assert_eq!(ready["status"], "ready", "{ready}");
        // A CSR with other names → badCSR, the order stays ready.
        let (bad_csr, _) = csr(&["gate.example.com", "x.gate.example.com"]);
        let fin = ready["finalize"].as_str().unwrap().to_string();
        let r = raw
            .post(&key, &fin, Some(&kid), &json!({"csr": b64(&bad_csr)}))
            .await;
        assert_problem(&r, 400, "badCSR");
        let r = raw
            .post(&key, &fin, Some(&kid), &json!({"csr": "AAAA"}))
            .await;
        assert_problem(&r, 400, "badCSR");
        assert_eq!(
            raw.post(&key, &order_url, Some(&kid), &Value::Null)
                .await
                .body["status"],
            "ready"
        );

        let db = e.srv.app.db();
        let mut row = db.subscription(sub.id).await.unwrap().unwrap();
        row.term_state = "SUSPENDED".into();
        row.status = "SUSPENDED".into();
        let mut tx = db.begin().await.unwrap();
        db.save_subscription(&mut tx, &row).await.unwrap();
        tx.commit().await.unwrap();
        let (good_csr, _) = csr(&["gate.example.com"]);
        let r = raw
            .post(&key, &fin, Some(&kid), &json!({"csr": b64(&good_csr)}))
            .await;
        assert_problem(&r, 403, "unauthorized");
        assert_eq!(
            r.body["detail"],
            format!(
                "subscription {} is SUSPENDED: renew the subscription",
                sub.id
            )
        );
        let r = raw
            .post(
                &key,
                &raw.url("new-order"),
                Some(&kid),
                &order(&["gate.example.com"]),
            )
            .await;
        assert_problem(&r, 403, "unauthorized");
        // Back to ACTIVE: finalize works.
        row.term_state = "ACTIVE".into();
        row.status = "ACTIVE".into();
        let mut tx = db.begin().await.unwrap();
        db.save_subscription(&mut tx, &row).await.unwrap();
        tx.commit().await.unwrap();
        let r = raw
            .post(&key, &fin, Some(&kid), &json!({"csr": b64(&good_csr)}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["status"], "valid");
        let cert_url = r.body["certificate"].as_str().unwrap().to_string();
        let c = raw.post(&key, &cert_url, Some(&kid), &Value::Null).await;
        assert_eq!(
            c.header("content-type").as_deref(),
            Some("application/pem-certificate-chain")
        );
        assert!(c.text.starts_with("-----BEGIN CERTIFICATE-----"));
        // Finalize twice → orderNotReady.
        let r = raw
            .post(&key, &fin, Some(&kid), &json!({"csr": b64(&good_csr)}))
            .await;
        assert_problem(&r, 403, "orderNotReady");
        let leaf = certhub_ca::pem_decode_all(&c.text).unwrap()[0].1.clone();

        // OV pending organisation validation: the detail names the process.
        let ov = e.subscription(OV, &["ov.example.com"]).await;
        let ov_raw = Raw::new(&e, OV);
        let ok = SigningKey::generate(Alg::Es256).unwrap();
        let ov_kid = ov_raw
            .new_account(&ok, &ov)
            .await
            .header("location")
            .unwrap();
        let r = ov_raw
            .post(
                &ok,
                &ov_raw.url("new-order"),
                Some(&ov_kid),
                &order(&["ov.example.com"]),
            )
            .await;
        assert_problem(&r, 403, "unauthorized");
        let detail = r.body["detail"].as_str().unwrap();
        assert!(
            detail.starts_with(&format!("subscription {} is PENDING_ORGANIZATION_VALIDATION: complete the organisation validation, process ", ov.id)),
            "{detail}"
        );
        // Approved: an OV certificate with the organisation.
        let v = e.srv.app.org_validations(Some("PENDING")).await.unwrap();
        let vid = v
            .iter()
            .find(|v| v.subscription_id == Some(ov.id))
            .unwrap()
            .id;
        e.srv.app.approve_org_validation(vid).await.unwrap();
        let r = ov_raw
            .post(
                &ok,
                &ov_raw.url("new-order"),
                Some(&ov_kid),
                &order(&["ov.example.com"]),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

        // Deleted subscription: the account is unusable (401), revokeCert still answers.
        let (status, body) = e
            .rest(
                reqwest::Method::DELETE,
                &format!("/v2/ssl/acme/{}", sub.id),
                None,
            )
            .await;
        assert!(status.is_success(), "{status} {body}");
        let r = raw
            .post(
                &key,
                &raw.url("new-order"),
                Some(&kid),
                &order(&["gate.example.com"]),
            )
            .await;
        assert_problem(&r, 401, "unauthorized");
        let r = raw.post(&key, &kid, Some(&kid), &Value::Null).await;
        assert_problem(&r, 401, "unauthorized");
        let r = raw
            .new_account(&SigningKey::generate(Alg::Es256).unwrap(), &sub)
            .await;
        assert_problem(&r, 401, "unauthorized");
        let r = raw
            .post(
                &key,
                &raw.url("revoke-cert"),
                Some(&kid),
                &json!({"certificate": b64(&leaf)}),
            )
            .await;
        // Deleting within 30 days revoked the certificate already.
        assert_problem(&r, 400, "alreadyRevoked");
    }
}

/// Orders list paging (Link rel="next") and the operator commands.
#[tokio::test(flavor = "multi_thread")]
async fn orders_paging_and_admin() {
    let e = env(TestDb::Sqlite).await.expect("sqlite");
    let names = [
        "a.page.example",
        "b.page.example",
        "c.page.example",
        "d.page.example",
        "e.page.example",
        "f.page.example",
    ];
    let names: Vec<String> = names
        .iter()
        .map(|n| n.replace(".example", ".example.com"))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let sub = e.subscription(DV, &refs).await;
    let raw = Raw::new(&e, DV);
    let key = SigningKey::generate(Alg::Es256).unwrap();
    let kid = raw
        .new_account(&key, &sub)
        .await
        .header("location")
        .unwrap();
    let total = certhub_app::acme::ORDERS_PAGE + 3;
    for mask in 1..=total {
        let ids: Vec<Value> = (0..6)
            .filter(|b| mask & (1 << b) != 0)
            .map(|b| json!({"type": "dns", "value": names[b as usize]}))
            .collect();
        let r = raw
            .post(
                &key,
                &raw.url("new-order"),
                Some(&kid),
                &json!({"identifiers": ids}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let first = raw
        .post(&key, &format!("{kid}/orders"), Some(&kid), &Value::Null)
        .await;
    assert_eq!(
        first.body["orders"].as_array().unwrap().len() as i64,
        certhub_app::acme::ORDERS_PAGE
    );
    let link = first
        .headers
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|l| l.contains("rel=\"next\""))
        .expect("next");
    let next = link
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string();
    let second = raw.post(&key, &next, Some(&kid), &Value::Null).await;
    assert_eq!(
        second.body["orders"].as_array().unwrap().len(),
        3,
        "{}",
        second.text
    );
    assert!(
        !second
            .headers
            .get_all("link")
            .iter()
            .any(|l| l.to_str().unwrap().contains("rel=\"next\""))
    );

    // Operator: list and deactivate.
    let accounts = e
        .srv
        .app
        .acme_accounts_of_subscription(sub.id)
        .await
        .unwrap();
    assert_eq!(accounts.len(), 1);
    certhub::admin_acme::run(
        &e.srv.app,
        certhub::admin_acme::AcmeAccountCmd::List {
            subscription: sub.id,
        },
    )
    .await
    .unwrap();
    certhub::admin_acme::run(
        &e.srv.app,
        certhub::admin_acme::AcmeAccountCmd::Deactivate {
            account: accounts[0].id,
        },
    )
    .await
    .unwrap();
    let r = raw.post(&key, &kid, Some(&kid), &Value::Null).await;
    assert_problem(&r, 401, "unauthorized");
    assert!(
        certhub::admin_acme::run(
            &e.srv.app,
            certhub::admin_acme::AcmeAccountCmd::Deactivate { account: 424242 }
        )
        .await
        .is_err()
    );
}
