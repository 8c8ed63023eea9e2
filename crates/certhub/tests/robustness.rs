//! Robustness and security (issue 9): rate limits on REST and ACME, the audit
//! trail, backup and restore, and a scan of logs and responses for secrets.

use std::future::Future;
use std::io::Write;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use certhub::testing::{TestDb, TestServer};
use certhub_app::ratelimit::{Limit, RateLimits};
use certhub_testkit::{Http01Server, TestDns};
use http_body_util::BodyExt;
use instant_acme::{
    Account, BodyWrapper, BytesResponse, ChallengeType, ExternalAccountKey, HttpClient, Identifier,
    NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use serde_json::{Value, json};

const DV: &str = "sectigo_dv_acme";

// ------------------------------------------------------------------ harness

/// Every response the test client saw: (status, headers, body).
type Seen = Arc<Mutex<Vec<(u16, reqwest::header::HeaderMap, Bytes)>>>;

/// Plain-HTTP client for instant-acme that records every response.
struct Recording(reqwest::Client, Seen);

impl HttpClient for Recording {
    fn request(
        &self,
        req: axum::http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let (client, seen) = (self.0.clone(), self.1.clone());
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
            let status = resp.status();
            let headers = resp.headers().clone();
            let mut builder = axum::http::Response::builder().status(status);
            for (k, v) in resp.headers() {
                builder = builder.header(k, v);
            }
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            seen.lock()
                .unwrap()
                .push((status.as_u16(), headers, bytes.clone()));
            let r = builder
                .body(http_body_util::Full::new(bytes))
                .map_err(instant_acme::Error::Http)?;
            Ok(BytesResponse::from(r))
        })
    }
}

struct Env {
    srv: TestServer,
    _dns: TestDns,
    http01: Http01Server,
    http: reqwest::Client,
    seen: Seen,
}

async fn env(db: TestDb, limits: RateLimits) -> Option<Env> {
    let dns = TestDns::start().await;
    dns.set_default_a(Some(Ipv4Addr::LOCALHOST));
    let http01 = Http01Server::start().await;
    let (resolver, h_port) = (dns.addr(), http01.port());
    let srv = TestServer::start_with(db, move |s| {
        s.va = certhub_va::VaConfig {
            resolver: Some(resolver),
            allow_loopback: true,
            http01_port: h_port,
            timeout: Duration::from_secs(5),
            ..Default::default()
        };
        s.rate_limits = limits;
    })
    .await?;
    Some(Env {
        srv,
        _dns: dns,
        http01,
        http: reqwest::Client::new(),
        seen: Arc::default(),
    })
}

/// Limits off, except the ones a test sets.
fn no_limits() -> RateLimits {
    RateLimits {
        per_api_key: Limit::UNLIMITED,
        per_ip: Limit::UNLIMITED,
        acme_new_order: Limit::UNLIMITED,
        failed_validations: Limit::UNLIMITED,
        trusted_proxies: vec![],
    }
}

struct Sub {
    directory: String,
    kid: String,
    hmac_b64: String,
}

impl Env {
    /// A REST call; the response is recorded like the ACME ones.
    async fn rest(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut rb = self
            .http
            .request(method, self.srv.url(path))
            .header("Authorization", format!("ApiKey {key}"))
            .header("Content-Type", "application/json");
        if let Some(b) = body {
            rb = rb.body(b.to_string());
        }
        let r = rb.send().await.expect("rest");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap_or_default();
        self.seen
            .lock()
            .unwrap()
            .push((status, headers.clone(), bytes.clone()));
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn subscription(&self, key: &str, handle: &str, names: &[&str]) -> Sub {
        let body = json!({"customer": handle, "product": DV, "domainNames": names, "period": 12, "autoRenew": true});
        let (status, _, v) = self
            .rest(
                key,
                reqwest::Method::POST,
                "/v2/ssl/acme?quote=false",
                Some(body),
            )
            .await;
        // The one response that must carry the EAB pair (like /credentials).
        self.seen.lock().unwrap().pop();
        assert_eq!(status, 201, "{v}");
        Sub {
            directory: v["directoryUrl"].as_str().expect("directoryUrl").into(),
            kid: v["accountKey"].as_str().expect("accountKey").into(),
            hmac_b64: v["hmacKey"].as_str().expect("hmacKey").into(),
        }
    }

    async fn register(&self, sub: &Sub) -> Account {
        let hmac = certhub_jose::b64::decode(&sub.hmac_b64, "hmac").expect("b64");
        let eak = ExternalAccountKey::new(sub.kid.clone(), &hmac);
        let (acct, _) = Account::builder_with_http(Box::new(Recording(
            reqwest::Client::new(),
            self.seen.clone(),
        )))
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
        .expect("register with EAB");
        acct
    }
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<u64> {
    h.get("retry-after")?.to_str().ok()?.parse().ok()
}

// ------------------------------------------------------------------ rate limits

#[tokio::test]
async fn rest_burst_from_one_key_is_limited_and_other_keys_are_not() {
    for db in TestDb::ALL {
        rest_burst(db).await;
    }
}

async fn rest_burst(db: TestDb) {
    let mut limits = no_limits();
    limits.per_api_key = Limit::new(50, 3600);
    let Some(e) = env(db, limits).await else {
        return;
    };
    let key_a = e.srv.customer("burst-a", 0).await;
    let key_b = e.srv.customer("burst-b", 0).await;
    let e = Arc::new(e);
    let mut set = tokio::task::JoinSet::new();
    for chunk in 0..20 {
        let (e, key) = (e.clone(), key_a.clone());
        set.spawn(async move {
            let mut out = Vec::new();
            for _ in 0..50 {
                let r = e
                    .http
                    .get(e.srv.url("/v2/ssl/acme"))
                    .header("Authorization", format!("ApiKey {key}"))
                    .send()
                    .await
                    .expect("send");
                let status = r.status().as_u16();
                let ra = retry_after(r.headers());
                let body: Value = r.json().await.unwrap_or(Value::Null);
                out.push((status, ra, body));
            }
            let _ = chunk;
            out
        });
    }
    let results: Vec<_> = set.join_all().await.into_iter().flatten().collect();
    assert_eq!(results.len(), 1000);
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let limited: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(ok, 50, "exactly the limit is served");
    assert_eq!(limited.len(), 950);
    for (_, ra, body) in &limited {
        assert_eq!(body["type"], "TooManyRequests", "{body}");
        let ra = ra.expect("Retry-After on every 429");
        assert!((1..=3600).contains(&ra), "{ra}");
    }
    // Another key of another customer is unaffected.
    let (status, _, v) = e
        .rest(&key_b, reqwest::Method::GET, "/v2/ssl/acme", None)
        .await;
    assert_eq!(status, 200, "{v}");
    // The counter is in the store, where every node sees it.
    let n: i64 = sqlx::query_scalar(
        "SELECT CAST(SUM(count) AS BIGINT) FROM rate_limits WHERE key LIKE 'key:%'",
    )
    .fetch_one(e.srv.app.db().pool())
    .await
    .expect("sum");
    // Refused requests are not written: an attack costs no store writes.
    assert_eq!(n, 50);
}

#[tokio::test]
async fn acme_new_order_burst_is_rate_limited_per_account() {
    let mut limits = no_limits();
    limits.acme_new_order = Limit::new(5, 3600);
    let e = env(TestDb::Sqlite, limits).await.expect("sqlite");
    let key = e.srv.customer("orders", 10_000_000).await;
    let sub_a = e.subscription(&key, "orders", &["a.example.com"]).await;
    let sub_b = e.subscription(&key, "orders", &["b.example.com"]).await;
    let (acct_a, acct_b) = (e.register(&sub_a).await, e.register(&sub_b).await);
    let ids = [Identifier::Dns("a.example.com".into())];
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let acct = acct_a.clone();
        let ids = ids.clone();
        set.spawn(async move {
            let mut out = Vec::new();
            for _ in 0..50 {
                out.push(match acct.new_order(&NewOrder::new(&ids)).await {
                    Ok(_) => Ok(()),
                    Err(instant_acme::Error::Api(p)) => Err(p.r#type.unwrap_or_default()),
                    Err(other) => Err(other.to_string()),
                });
            }
            out
        });
    }
    let results: Vec<_> = set.join_all().await.into_iter().flatten().collect();
    assert_eq!(results.len(), 1000);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 5);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|t| t == "urn:ietf:params:acme:error:rateLimited"),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    // Every rateLimited answer carried Retry-After.
    let seen = e.seen.lock().unwrap().clone();
    let limited: Vec<_> = seen.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(limited.len(), 995);
    assert!(
        limited
            .iter()
            .all(|r| retry_after(&r.1).is_some_and(|s| (1..=3600).contains(&s)))
    );
    // Another account (another subscription) still orders.
    let ids_b = [Identifier::Dns("b.example.com".into())];
    acct_b
        .new_order(&NewOrder::new(&ids_b))
        .await
        .expect("account b unaffected");
}

#[tokio::test]
async fn per_ip_ceiling_answers_both_front_ends() {
    let mut limits = no_limits();
    limits.per_ip = Limit::new(10, 3600);
    let e = env(TestDb::Sqlite, limits).await.expect("sqlite");
    let key = e.srv.customer("ipcust", 0).await;
    for _ in 0..10 {
        let (s, _, _) = e
            .rest(&key, reqwest::Method::GET, "/v2/ssl/acme", None)
            .await;
        assert_eq!(s, 200);
    }
    let (s, h, v) = e
        .rest(&key, reqwest::Method::GET, "/v2/ssl/acme", None)
        .await;
    assert_eq!((s, v["type"].as_str()), (429, Some("TooManyRequests")));
    assert!(retry_after(&h).is_some());
    let r = e
        .http
        .get(e.srv.url(&format!("/acme/{DV}/directory")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(retry_after(r.headers()).is_some());
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["type"], "urn:ietf:params:acme:error:rateLimited");
    // Health and PKI paths are not behind the REST/ACME ceiling.
    let r = e.http.get(e.srv.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// Opens a connection and sends an authenticated request whose body never
/// comes: the server holds an in-flight slot for it until the connection
/// closes.
async fn stalled_request(base: &str, key: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v2/ssl/acme HTTP/1.1\r\nhost: {addr}\r\nauthorization: ApiKey {key}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

#[tokio::test]
async fn overload_is_answered_503_with_retry_after_in_each_protocol() {
    let srv = TestServer::start_with(TestDb::Sqlite, |s| {
        s.rate_limits = no_limits();
        s.max_in_flight = 2;
    })
    .await
    .expect("sqlite");
    let key = srv.customer("busy", 0).await;
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(srv.url(path))
            .header("authorization", format!("ApiKey {key}"))
            .send()
    };
    let stalled = [
        stalled_request(&srv.base, &key).await,
        stalled_request(&srv.base, &key).await,
    ];
    // Both slots are taken once the server has read both request heads.
    let mut shed = None;
    for _ in 0..200 {
        let r = get("/v2/ssl/acme").await.unwrap();
        if r.status().as_u16() == 503 {
            shed = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = shed.expect("a third concurrent request is shed");
    assert_eq!(retry_after(r.headers()), Some(1));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "ProviderUnavailable", "{v}");
    let r = get(&format!("/acme/{DV}/directory")).await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(retry_after(r.headers()), Some(1));
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "ACME clients get a problem document"
    );
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["type"], "urn:ietf:params:acme:error:serverInternal");
    assert_eq!(p["status"], 503);
    // The slots come back as soon as the stalled clients go away.
    drop(stalled);
    let mut ok = false;
    for _ in 0..200 {
        if get("/v2/ssl/acme").await.unwrap().status().as_u16() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok, "service resumes after the overload");
    let m = http.get(srv.url("/metrics")).send().await.unwrap();
    let text = m.text().await.unwrap();
    let shed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("certhub_http_shed_total "))
        .and_then(|n| n.trim().parse().ok())
        .expect("shed counter exported");
    assert!(shed >= 2, "{text}");
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let mut h = axum::http::HeaderMap::new();
    h.insert("x-forwarded-for", "198.51.100.7, 10.0.0.2".parse().unwrap());
    let proxy: std::net::IpAddr = "10.0.0.1".parse().unwrap();
    let inner: std::net::IpAddr = "10.0.0.2".parse().unwrap();
    let client = certhub::serve::client_ip;
    assert_eq!(client(proxy, &h, &[]), proxy);
    assert_eq!(client(proxy, &h, &[proxy]), inner);
    assert_eq!(
        client(proxy, &h, &[proxy, inner]),
        "198.51.100.7".parse::<std::net::IpAddr>().unwrap()
    );
}

// ------------------------------------------------------------------ audit, backup

async fn balance(db: &certhub_store::Db, handle: &str) -> i64 {
    let c = db.customer_by_handle(handle).await.unwrap().unwrap();
    db.credit_accounts(c.id).await.unwrap()[0].balance
}

#[tokio::test]
async fn backup_while_serving_then_restore_brings_subscription_and_ledger_back() {
    let e = env(TestDb::Sqlite, no_limits()).await.expect("sqlite");
    let key = e.srv.customer("backupcust", 500_000).await;
    e.subscription(&key, "backupcust", &["backup.example.com"])
        .await;
    let before = balance(e.srv.app.db(), "backupcust").await;
    assert!(before < 500_000, "the subscription was charged");
    let count = |db: certhub_store::Db, t: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {t}")))
            .fetch_one(db.pool())
            .await
            .unwrap()
    };
    let subs = count(e.srv.app.db().clone(), "subscriptions").await;
    let txs = count(e.srv.app.db().clone(), "transactions").await;

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("snapshot.db");
    let src_url = format!("sqlite://{}", e.srv.dir.path().join("certhub.db").display());
    // Taken while the server serves: a concurrent request must not block it.
    let (backup, r) = tokio::join!(
        certhub::admin_ops::backup(e.srv.app.db(), &src_url, &file),
        e.rest(&key, reqwest::Method::GET, "/v2/ssl/acme", None)
    );
    backup.expect("backup");
    assert_eq!(r.0, 200);
    assert!(
        certhub::admin_ops::backup(e.srv.app.db(), &src_url, &file)
            .await
            .is_err(),
        "never overwrites"
    );
    drop(e);

    // The original is gone with its directory; restore into a fresh place.
    let target = out.path().join("restored").join("certhub.db");
    let url = format!("sqlite://{}", target.display());
    certhub::admin_ops::restore(&url, &file, false)
        .await
        .expect("restore");
    let db = certhub_store::Db::connect(&url).await.unwrap();
    assert_eq!(count(db.clone(), "subscriptions").await, subs);
    assert_eq!(count(db.clone(), "transactions").await, txs);
    assert_eq!(balance(&db, "backupcust").await, before);
    db.close().await;
    // A database with customers is not overwritten without --force.
    let err = certhub::admin_ops::restore(&url, &file, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    certhub::admin_ops::restore(&url, &file, true)
        .await
        .expect("forced");
    // Not a database: refused.
    let junk = out.path().join("junk");
    std::fs::write(&junk, b"not sqlite").unwrap();
    assert!(
        certhub::admin_ops::restore(&url, &junk, true)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn audit_lists_operator_actions_and_api_key_mutations_without_secrets() {
    for db in TestDb::ALL {
        audit_trail(db).await;
    }
}

async fn audit_trail(db: TestDb) {
    let Some(e) = env(db, no_limits()).await else {
        return;
    };
    let key = e.srv.customer("auditcust", 100_000).await;
    let (info, key2) = e.srv.app.create_api_key("auditcust").await.unwrap();
    e.srv.app.revoke_api_key(&info.key_id).await.unwrap();
    let sub = e
        .subscription(&key, "auditcust", &["audit.example.com"])
        .await;
    // A refused mutation is on record with the error the client got; a
    // refused read, an unauthenticated call and a replay are not.
    let (status, _, _) = e
        .rest(
            &key,
            reqwest::Method::POST,
            "/v2/ssl/acme",
            Some(json!({"customer": "auditcust", "product": DV, "domainNames": ["r.example.com"], "period": 7})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _, _) = e
        .rest(&key, reqwest::Method::GET, "/v2/ssl/acme/999999", None)
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = e
        .rest(
            "no-such-key",
            reqwest::Method::POST,
            "/v2/ssl/acme",
            Some(json!({"customer": "auditcust"})),
        )
        .await;
    assert_eq!(status, 401);
    let refusals = certhub::admin_ops::AuditArgs {
        action: Some("refusal".into()),
        ..Default::default()
    };
    let lines = certhub::admin_ops::audit_lines(&e.srv.app, &refusals)
        .await
        .unwrap();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("auditcust/apikey-")
            && lines[0].contains("refusal POST /v2/ssl/acme 400 ConstraintViolationException: "),
        "{lines:#?}"
    );
    e.srv
        .app
        .set_price(DV, "RENEW", 12, "eur", 4242)
        .await
        .unwrap();
    // A refused price change writes neither the price nor an audit record.
    assert!(e.srv.app.set_price(DV, "RENEW", 7, "EUR", 1).await.is_err());
    let prices = certhub::admin_ops::AuditArgs {
        action: Some("price.".into()),
        ..Default::default()
    };
    let lines = certhub::admin_ops::audit_lines(&e.srv.app, &prices)
        .await
        .unwrap();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("sectigo_dv_acme RENEW 12 EUR 4242"),
        "{lines:#?}"
    );
    let args = certhub::admin_ops::AuditArgs {
        customer: Some("auditcust".into()),
        ..Default::default()
    };
    let all = certhub::admin_ops::audit_lines(&e.srv.app, &args)
        .await
        .unwrap();
    for action in [
        "customer.create",
        "credit.add",
        "apikey.create",
        "apikey.revoke",
        "subscription.create",
    ] {
        assert!(
            all.iter().any(|l| l.contains(action)),
            "{action} missing: {all:#?}"
        );
    }
    // One line per record, id first, ascending.
    let ids: Vec<i64> = all
        .iter()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let keys_only = certhub::admin_ops::AuditArgs {
        action: Some("apikey.".into()),
        ..args.clone()
    };
    let lines = certhub::admin_ops::audit_lines(&e.srv.app, &keys_only)
        .await
        .unwrap();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let future = certhub::admin_ops::AuditArgs {
        since: Some("2999-01-01T00:00:00Z".into()),
        ..args.clone()
    };
    assert!(
        certhub::admin_ops::audit_lines(&e.srv.app, &future)
            .await
            .unwrap()
            .is_empty()
    );
    for l in &all {
        for secret in [&key, &key2, &sub.hmac_b64] {
            assert!(!l.contains(secret.as_str()), "secret in audit: {l}");
        }
    }
    // A refused operator action leaves neither state nor an audit record.
    assert!(e.srv.app.revoke_api_key(&info.key_id).await.is_err());
    assert!(e.srv.app.create_customer("auditcust", "EUR").await.is_err());
    let again = certhub::admin_ops::audit_lines(&e.srv.app, &args)
        .await
        .unwrap();
    assert_eq!(again, all, "refusals are not audited as actions");
}

// ------------------------------------------------------------------ secret scan

/// Everything the server logs, from every test of this binary.
fn log_buffer() -> Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || LogWriter(w.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(sub);
        buf
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn forms(bytes: &[u8]) -> Vec<String> {
    vec![
        base64::engine::general_purpose::STANDARD.encode(bytes),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        bytes.iter().map(|b| format!("{b:02x}")).collect(),
    ]
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_scan_of_logs_responses_and_records() {
    let logs = log_buffer();
    let e = env(TestDb::Sqlite, no_limits()).await.expect("sqlite");
    let key = e.srv.customer("scancust", 1_000_000).await;
    let sub = e
        .subscription(&key, "scancust", &["scan.example.com"])
        .await;
    let (_, _, list) = e
        .rest(&key, reqwest::Method::GET, "/v2/ssl/acme", None)
        .await;
    let id = list["data"][0]["id"]
        .as_i64()
        .or_else(|| list[0]["id"].as_i64());
    if let Some(id) = id {
        e.rest(
            &key,
            reqwest::Method::GET,
            &format!("/v2/ssl/acme/{id}"),
            None,
        )
        .await;
        let (s, _, _) = e
            .rest(
                &key,
                reqwest::Method::POST,
                &format!("/v2/ssl/acme/{id}/credentials"),
                None,
            )
            .await;
        assert_eq!(s, 200);
        // The credentials response must carry hmacKey by design.
        e.seen.lock().unwrap().pop();
    }
    // Failed authentication with a near-miss key must not echo it.
    let wrong = format!("{key}x");
    e.rest(&wrong, reqwest::Method::GET, "/v2/ssl/acme", None)
        .await;

    // An ACME issuance over http-01.
    let acct = e.register(&sub).await;
    let ids = [Identifier::Dns("scan.example.com".into())];
    let mut order = acct.new_order(&NewOrder::new(&ids)).await.expect("order");
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut a = a.expect("authz");
        let mut ch = a.challenge(ChallengeType::Http01).expect("http-01");
        e.http01
            .set_token(&ch.token, ch.key_authorization().as_str());
        ch.set_ready().await.expect("ready");
    }
    let status = order
        .poll_ready(&RetryPolicy::default())
        .await
        .expect("poll");
    assert_eq!(status, OrderStatus::Ready);
    let ck = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["scan.example.com".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&ck).unwrap().der().to_vec();
    order.finalize_csr(&csr).await.expect("finalize");
    order
        .poll_certificate(&RetryPolicy::default())
        .await
        .expect("cert");

    // Process records, read through the API.
    let processes: Vec<String> = e
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, h, _)| {
            h.get("x-process-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .collect();
    for p in processes {
        e.rest(
            &key,
            reqwest::Method::GET,
            &format!("/v2/processes/{p}/info"),
            None,
        )
        .await;
    }

    // The secrets.
    let mut secrets: Vec<(String, Vec<u8>)> = vec![
        ("api key".into(), key.clone().into_bytes()),
        ("eab hmacKey".into(), sub.hmac_b64.clone().into_bytes()),
    ];
    let hmac = certhub_jose::b64::decode(&sub.hmac_b64, "hmac").unwrap();
    for f in forms(&hmac) {
        secrets.push(("eab hmac (other encoding)".into(), f.into_bytes()));
    }
    for row in e.srv.app.db().issuers().await.unwrap() {
        let pkcs8 = e
            .srv
            .app
            .kek()
            .open(&format!("ca-key:{}", row.id), &row.key_sealed)
            .unwrap();
        for f in forms(&pkcs8) {
            secrets.push((format!("CA key {} (encoded)", row.id), f.into_bytes()));
        }
        // The raw key, and its first 48 bytes (the private scalar is there).
        secrets.push((format!("CA key {} (DER)", row.id), pkcs8.clone()));
    }

    // Scan: logs, every recorded response (headers and bodies), the database files.
    let logs = logs.lock().unwrap().clone();
    assert!(!logs.is_empty(), "the log capture works");
    let responses = e.seen.lock().unwrap().clone();
    assert!(responses.len() > 10);
    let mut db_bytes = std::fs::read(e.srv.dir.path().join("certhub.db")).unwrap();
    if let Ok(w) = std::fs::read(e.srv.dir.path().join("certhub.db-wal")) {
        db_bytes.extend(w);
    }
    let mut findings = Vec::new();
    for (what, s) in &secrets {
        if find(&logs, s) {
            findings.push(format!("{what} in the logs"));
        }
        if find(&db_bytes, s) {
            findings.push(format!("{what} in the database file"));
        }
        for (status, headers, body) in &responses {
            let head = format!("{headers:?}");
            if find(body, s) || find(head.as_bytes(), s) {
                findings.push(format!(
                    "{what} in a {status} response: {}",
                    String::from_utf8_lossy(body)
                ));
            }
        }
    }
    assert!(findings.is_empty(), "{findings:#?}");
}
