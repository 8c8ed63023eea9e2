//! End-to-end tests of ACME subscriptions (design.md "Subscription rules",
//! issue 4 acceptance) through the HTTP API and the lifecycle engine, on
//! SQLite and on PostgreSQL (skipped with a visible message when it is down).

use certhub::testing::{TestDb, TestServer};
use certhub_domain::subscription::Status;
use certhub_domain::time::{DAY, add_months, format_rtr, parse_rfc3339};
use reqwest::StatusCode;
use serde_json::{Value, json};

const T0: &str = "2026-12-03T10:00:00Z";
const DV: &str = "sectigo_dv_acme";
const OV: &str = "sectigo_ov_acme";

fn t0() -> i64 {
    parse_rfc3339(T0).expect("T0")
}

/// A customer's view of the API.
struct Api {
    base: String,
    key: String,
    handle: String,
    http: reqwest::Client,
}

struct Resp {
    status: StatusCode,
    process_id: Option<i64>,
    body: Value,
}

impl Api {
    async fn new(srv: &TestServer, handle: &str, credit: i64) -> Api {
        let key = srv.customer(handle, credit).await;
        Api {
            base: srv.base.clone(),
            key,
            handle: handle.to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Resp {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("ApiKey {}", self.key))
            .header("Content-Type", "application/json");
        if let Some(b) = body.filter(|b| !b.is_null()) {
            rb = rb.body(b.to_string());
        }
        let r = rb.send().await.expect("request");
        let status = r.status();
        let process_id = r
            .headers()
            .get("x-process-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let text = r.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json body")
        };
        Resp {
            status,
            process_id,
            body,
        }
    }

    async fn get(&self, path: &str) -> Resp {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Resp {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    async fn balance(&self) -> i64 {
        let r = self
            .get(&format!("/v2/customers/{}/credit", self.handle))
            .await;
        r.body["accounts"]
            .as_array()
            .and_then(|a| a.first())
            .map(|a| a["balance"].as_i64().unwrap_or(0))
            .unwrap_or(0)
    }

    async fn create_dv(&self, names: &[&str], period: i64, auto_renew: bool) -> Resp {
        self.post(
            "/v2/ssl/acme?quote=false",
            json!({"customer": self.handle, "product": DV, "domainNames": names, "period": period, "autoRenew": auto_renew}),
        )
        .await
    }

    async fn create_ov(&self, org: &str, city: &str, period: i64) -> Resp {
        self.post(
            "/v2/ssl/acme?quote=false",
            json!({
                "customer": self.handle, "product": OV, "domainNames": ["www.example.nl"], "period": period,
                "autoRenew": true, "organization": org, "country": "NL", "city": city, "address": "Main 1",
                "postalCode": "1000", "approver": {"firstName": "Jan", "lastName": "Jansen",
                "email": "jan@example.nl", "voice": "+31.201234567"}
            }),
        )
        .await
    }

    async fn sub(&self, id: i64) -> Value {
        let r = self.get(&format!("/v2/ssl/acme/{id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }

    async fn events(&self) -> Vec<String> {
        let r = self
            .get(&format!(
                "/v2/customers/{}/notifications?limit=100",
                self.handle
            ))
            .await;
        r.body["entities"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n["eventType"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The clock runs on in real time after `set_now`, so a subscription's
/// createdDate may be a second or two after the instant set: expectations are
/// computed from the createdDate the API reports.
async fn created_of(api: &Api, id: i64) -> i64 {
    let s = api.sub(id).await;
    let c = parse_rfc3339(s["createdDate"].as_str().expect("createdDate")).expect("date");
    assert!((0..=5).contains(&(c - t0())), "created {c} vs T0");
    c
}

fn id_of(r: &Resp) -> i64 {
    r.body["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {}", r.body))
}

fn valid_token(s: &str) -> bool {
    s.len() == 43
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Unpadded base64url (the crate has no base64 dependency).
fn b64url_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => panic!("not base64url: {c}"),
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        acc = (acc << 6) | u32::from(val(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn has_line(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

async fn servers() -> Vec<TestServer> {
    let mut out = Vec::new();
    for db in TestDb::ALL {
        if let Some(s) = TestServer::start(db).await {
            out.push(s);
        }
    }
    out
}

/// 12 months without autoRenew: one second after expiry SUSPENDED, renew →
/// ACTIVE with expiry + 12 months; the stale expiry job changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn expiry_suspends_and_renew_extends() {
    for srv in servers().await {
        srv.set_now(t0());
        let api = Api::new(&srv, "alice", 100_000).await;
        let r = api
            .create_dv(&["example.com", "WWW.Example.com."], 12, false)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert!(r.process_id.is_some());
        let id = id_of(&r);
        assert!(valid_token(r.body["accountKey"].as_str().unwrap()));
        assert!(valid_token(r.body["hmacKey"].as_str().unwrap()));
        assert_eq!(
            r.body["directoryUrl"],
            format!("{}/acme/{DV}/directory", srv.base)
        );
        assert_eq!(api.balance().await, 100_000 - 4900);

        let created = created_of(&api, id).await;
        let expiry = add_months(created, 12);
        let s = api.sub(id).await;
        assert_eq!(s["status"], "ACTIVE");
        assert_eq!(s["domainNames"], json!(["example.com", "www.example.com"]));
        assert_eq!(s["expiryDate"], format_rtr(expiry));
        for k in [
            "organization",
            "address",
            "city",
            "state",
            "postalCode",
            "country",
        ] {
            assert!(
                s.get(k).is_some_and(Value::is_null),
                "{k} must be present and null"
            );
        }
        assert_eq!(s["autoRenew"], false);
        assert_eq!(s["period"], 12);

        srv.set_now(expiry - 30 * DAY);
        assert!(has_line(
            &srv.run_lifecycle().await,
            &format!("subscription {id} EXPIRING in 30 days")
        ));
        srv.set_now(expiry - 5);
        let lines = srv.run_lifecycle().await;
        assert!(!has_line(&lines, "SUSPENDED"), "{lines:?}");
        assert_eq!(api.sub(id).await["status"], "ACTIVE");
        srv.set_now(expiry + 1);
        let lines = srv.run_lifecycle().await;
        assert!(
            lines.contains(&format!(
                "subscription {id} SUSPENDED (expired {})",
                format_rtr(expiry)
            )),
            "{lines:?}"
        );
        assert_eq!(api.sub(id).await["status"], "SUSPENDED");
        let ev = api.events().await;
        assert!(
            ev.contains(&"ACME_SUBSCRIPTION_SUSPENDED".to_string()),
            "{ev:?}"
        );
        assert!(
            ev.contains(&"ACME_SUBSCRIPTION_EXPIRING".to_string()),
            "{ev:?}"
        );
        let gate = srv.app.subscription_gate(id).await.unwrap();
        assert_eq!(gate.status, Status::Suspended);
        assert!(!gate.active);
        assert_eq!(
            gate.remedy_detail,
            format!("subscription {id} is SUSPENDED: renew it")
        );

        // A quote changes nothing.
        let q = api
            .post(
                &format!("/v2/ssl/acme/{id}/renew?quote=true"),
                json!({"period": 12}),
            )
            .await;
        assert_eq!(q.status, StatusCode::OK);
        assert_eq!(q.body["quote"]["total"], 4900);
        assert!(q.body["command"].is_string());
        assert_eq!(api.balance().await, 100_000 - 4900);

        let r = api
            .post(
                &format!("/v2/ssl/acme/{id}/renew?quote=false"),
                json!({"period": 12}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.process_id.is_some());
        let s = api.sub(id).await;
        assert_eq!(s["status"], "ACTIVE");
        assert_eq!(s["expiryDate"], format_rtr(add_months(expiry, 12)));
        assert_eq!(s["expiryDate"], format_rtr(add_months(created, 24)));
        assert_eq!(api.balance().await, 100_000 - 2 * 4900);
        // The revocation scheduled at suspension is stale now.
        srv.set_now(expiry + 31 * DAY);
        let lines = srv.run_lifecycle().await;
        assert!(!has_line(&lines, "REVOKED"), "{lines:?}");
        assert_eq!(api.sub(id).await["status"], "ACTIVE");
        let p = api
            .get(&format!("/v2/processes/{}", r.process_id.unwrap()))
            .await;
        assert_eq!(p.body["action"], "renew");
        assert_eq!(p.body["type"], "acmeSubscription");
        assert_eq!(p.body["status"], "COMPLETED");
        assert_eq!(p.body["transaction"], json!({"EUR": 4900}));
    }
}

/// Not renewed: REVOKED 30 days after expiry; renew refused, nothing charged.
#[tokio::test(flavor = "multi_thread")]
async fn revoked_thirty_days_after_expiry() {
    for srv in servers().await {
        srv.set_now(t0());
        let api = Api::new(&srv, "bob", 100_000).await;
        let id = id_of(&api.create_dv(&["bob.example.com"], 12, false).await);
        let expiry = add_months(created_of(&api, id).await, 12);
        srv.set_now(expiry + 1);
        srv.run_lifecycle().await;
        srv.set_now(expiry + 30 * DAY - 1);
        assert!(!has_line(&srv.run_lifecycle().await, "REVOKED"));
        assert_eq!(api.sub(id).await["status"], "SUSPENDED");
        srv.set_now(expiry + 30 * DAY);
        let lines = srv.run_lifecycle().await;
        assert!(
            lines.contains(&format!(
                "subscription {id} REVOKED (expired {})",
                format_rtr(expiry)
            )),
            "{lines:?}"
        );
        assert_eq!(api.sub(id).await["status"], "REVOKED");
        assert!(
            api.events()
                .await
                .contains(&"ACME_SUBSCRIPTION_REVOKED".to_string())
        );
        let before = api.balance().await;
        let r = api
            .post(
                &format!("/v2/ssl/acme/{id}/renew?quote=false"),
                json!({"period": 12}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.body["type"], "ObjectStatusProhibitsOperation");
        assert_eq!(api.balance().await, before);
        let gate = srv.app.subscription_gate(id).await.unwrap();
        assert_eq!(
            gate.remedy_detail,
            format!("subscription {id} is REVOKED: order a new subscription")
        );
        // Running again changes nothing (every transition happens once).
        assert!(srv.run_lifecycle().await.is_empty());
    }
}

/// autoRenew with credit renews; without credit the term is SUSPENDED with
/// ACME_AUTORENEW_FAILED (and the expiring notice warned about it).
#[tokio::test(flavor = "multi_thread")]
async fn autorenew_with_and_without_credit() {
    for srv in servers().await {
        srv.set_now(t0());
        let poor = Api::new(&srv, "poor", 4900).await;
        let rich = Api::new(&srv, "rich", 9800).await;
        let p = id_of(&poor.create_dv(&["poor.example.com"], 12, true).await);
        let r = id_of(&rich.create_dv(&["rich.example.com"], 12, true).await);
        assert_eq!(poor.balance().await, 0);
        let created_r = created_of(&rich, r).await;
        let expiry = add_months(created_of(&poor, p).await.max(created_r), 12);
        srv.set_now(expiry - 30 * DAY);
        let lines = srv.run_lifecycle().await;
        assert!(
            has_line(&lines, &format!("subscription {p} EXPIRING")),
            "{lines:?}"
        );
        assert!(
            !has_line(&lines, &format!("subscription {r} EXPIRING")),
            "{lines:?}"
        );
        srv.set_now(expiry);
        let lines = srv.run_lifecycle().await;
        assert!(
            has_line(
                &lines,
                &format!("subscription {p} SUSPENDED (auto-renew failed")
            ),
            "{lines:?}"
        );
        let renewed = format_rtr(add_months(created_r, 24));
        assert!(
            has_line(&lines, &format!("subscription {r} RENEWED until {renewed}")),
            "{lines:?}"
        );
        assert_eq!(poor.sub(p).await["status"], "SUSPENDED");
        assert!(
            poor.events()
                .await
                .contains(&"ACME_AUTORENEW_FAILED".to_string())
        );
        let s = rich.sub(r).await;
        assert_eq!(s["status"], "ACTIVE");
        assert_eq!(s["expiryDate"], renewed);
        assert_eq!(rich.balance().await, 0);
        let failed = poor.get("/v2/processes?action=renew&status=FAILED").await;
        assert_eq!(failed.body["pagination"]["total"], 1, "{}", failed.body);
    }
}

/// Delete on day 29 refunds every charge; on day 31 nothing.
#[tokio::test(flavor = "multi_thread")]
async fn delete_refunds_within_thirty_days() {
    for srv in servers().await {
        srv.set_now(t0());
        let api = Api::new(&srv, "carol", 20_000).await;
        let a = api.create_dv(&["a.example.com"], 12, false).await;
        let kid_a = a.body["accountKey"].as_str().unwrap().to_string();
        let a = id_of(&a);
        let b = id_of(&api.create_dv(&["b.example.com"], 12, false).await);
        // A renewal is a charge too, refunded with the creation.
        api.post(
            &format!("/v2/ssl/acme/{a}/renew?quote=false"),
            json!({"period": 1}),
        )
        .await;
        assert_eq!(api.balance().await, 20_000 - 2 * 4900 - 500);

        srv.set_now(t0() + 29 * DAY);
        let r = api.delete(&format!("/v2/ssl/acme/{a}")).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let pid = r.process_id.expect("process id");
        assert_eq!(api.balance().await, 20_000 - 4900);
        let p = api.get(&format!("/v2/processes/{pid}")).await;
        assert_eq!(p.body["action"], "delete");
        assert_eq!(p.body["refund"], json!({"EUR": 5400}));
        let t = api
            .get(&format!(
                "/v2/billing/financialtransactions?processId={pid}"
            ))
            .await;
        assert_eq!(t.body["pagination"]["total"], 2, "{}", t.body);
        assert_eq!(
            api.get(&format!("/v2/ssl/acme/{a}")).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(api.get("/v2/ssl/acme").await.body["pagination"]["total"], 1);
        assert!(
            srv.app
                .db()
                .eab_binding(&kid_a)
                .await
                .unwrap()
                .unwrap()
                .deleted
        );
        assert!(srv.app.subscription_gate(a).await.unwrap().deleted);
        // The processes stay visible.
        assert_eq!(
            api.get(&format!("/v2/processes/{pid}")).await.status,
            StatusCode::OK
        );

        srv.set_now(t0() + 31 * DAY);
        let r = api.delete(&format!("/v2/ssl/acme/{b}")).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(api.balance().await, 20_000 - 4900);
        let p = api
            .get(&format!("/v2/processes/{}", r.process_id.unwrap()))
            .await;
        assert!(p.body.get("refund").is_none(), "{}", p.body);
        // Nothing scheduled for deleted subscriptions fires.
        srv.set_now(add_months(t0(), 13));
        assert!(srv.run_lifecycle().await.is_empty());
    }
}

/// `Idempotency-Key` (design.md): a repeated mutation replays the first
/// response and charges once, also when the copies race; a different request
/// under the key is refused; a refused request claims nothing; a claim whose
/// response was lost (a crash after the commit) never runs the change again.
#[tokio::test(flavor = "multi_thread")]
async fn idempotency_key_replays_and_never_charges_twice() {
    for srv in servers().await {
        srv.set_now(t0());
        let api = Api::new(&srv, "ivan", 3 * 4900).await;
        let body = json!({"customer": "ivan", "product": DV, "domainNames": ["i.example.com"], "period": 12});
        let send = |key: &'static str, body: Value| {
            let http = api.http.clone();
            let url = format!("{}/v2/ssl/acme", api.base);
            let auth = format!("ApiKey {}", api.key);
            async move {
                let r = http
                    .post(url)
                    .header("Authorization", auth)
                    .header("Content-Type", "application/json")
                    .header("Idempotency-Key", key)
                    .body(body.to_string())
                    .send()
                    .await
                    .expect("request");
                let status = r.status();
                let h = |n: &str| {
                    r.headers()
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .map(String::from)
                };
                let headers = (h("x-process-id"), h("location"), h("idempotent-replayed"));
                let text = r.text().await.expect("body");
                (
                    status,
                    headers,
                    serde_json::from_str::<Value>(&text).expect("json"),
                )
            }
        };

        let (s1, h1, b1) = send("create-1", body.clone()).await;
        assert_eq!(s1, StatusCode::CREATED, "{b1}");
        assert!(h1.0.is_some() && h1.1.is_some() && h1.2.is_none(), "{h1:?}");
        let (s2, h2, b2) = send("create-1", body.clone()).await;
        assert_eq!((s2, &b2), (StatusCode::CREATED, &b1), "the first response");
        assert_eq!(
            (&h2.0, &h2.1, h2.2.as_deref()),
            (&h1.0, &h1.1, Some("true"))
        );
        assert_eq!(api.balance().await, 2 * 4900, "charged once");
        assert_eq!(api.get("/v2/ssl/acme").await.body["pagination"]["total"], 1);
        // Stored sealed: the response's hmacKey is not in the table.
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT response FROM idempotency_keys WHERE key = 'create-1'")
                .fetch_all(srv.app.db().pool())
                .await
                .unwrap();
        let hmac = b1["hmacKey"].as_str().unwrap();
        assert!(stored.len() == 1 && !stored[0].contains(hmac));

        // The same key for another request: refused, nothing changes.
        let mut other = body.clone();
        other["domainNames"] = json!(["j.example.com"]);
        let (s, _, b) = send("create-1", other.clone()).await;
        assert_eq!(
            (s, b["type"].as_str()),
            (StatusCode::BAD_REQUEST, Some("ValidationError"))
        );
        assert_eq!(api.balance().await, 2 * 4900);

        // Eight copies at once: one subscription, one charge; every copy gets
        // the first response or "being executed, retry".
        let tasks: Vec<_> = (0..8)
            .map(|_| tokio::spawn(send("race", other.clone())))
            .collect();
        let mut ids = std::collections::HashSet::new();
        for t in tasks {
            let (s, _, b) = t.await.unwrap();
            match s {
                StatusCode::CREATED => {
                    ids.insert(b["id"].as_i64().unwrap());
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(b["type"], "ProviderUnavailable", "{b}")
                }
                other => panic!("{other}: {b}"),
            }
        }
        assert_eq!(ids.len(), 1, "{ids:?}");
        assert_eq!(api.balance().await, 4900, "charged once for the race");
        let (s, _, b) = send("race", other.clone()).await;
        assert_eq!(
            (s, b["id"].as_i64()),
            (StatusCode::CREATED, ids.iter().next().copied())
        );

        // A refused request (no credit left for a 24-month term) claims
        // nothing: with credit, the same key runs it.
        let mut long = body.clone();
        long["domainNames"] = json!(["k.example.com"]);
        long["period"] = json!(24);
        let (s, _, b) = send("create-2", long.clone()).await;
        assert_eq!(b["type"], "InsufficientCreditException", "{s} {b}");
        srv.app.add_credit("ivan", 8900).await.unwrap();
        let (s, _, b) = send("create-2", long.clone()).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(api.balance().await, 4900);

        // A crash after the commit, before the response was stored: the
        // retry is told so and the change does not run again.
        let mut third = body.clone();
        third["domainNames"] = json!(["l.example.com"]);
        let (s, _, _) = send("create-3", third.clone()).await;
        assert_eq!(s, StatusCode::CREATED);
        assert_eq!(api.balance().await, 0);
        srv.app.add_credit("ivan", 4900).await.unwrap();
        sqlx::query("UPDATE idempotency_keys SET response = NULL WHERE key = 'create-3'")
            .execute(srv.app.db().pool())
            .await
            .unwrap();
        let (s, _, b) = send("create-3", third.clone()).await;
        assert_eq!(
            (s, b["type"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("ProviderUnavailable"))
        );
        srv.set_now(t0() + 120);
        let (s, _, b) = send("create-3", third.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert!(b["message"].as_str().unwrap().contains("lost"), "{b}");
        assert_eq!(api.balance().await, 4900, "not charged again");
        assert_eq!(api.get("/v2/ssl/acme").await.body["pagination"]["total"], 4);

        // After 24 hours the key is free again.
        srv.set_now(t0() + 25 * 3600);
        let mut fourth = body.clone();
        fourth["domainNames"] = json!(["m.example.com"]);
        let (s, h, _) = send("create-1", fourth).await;
        assert_eq!((s, h.2), (StatusCode::CREATED, None));
        assert_eq!(api.balance().await, 0);
        // Not a mutation: the header is ignored.
        let r = api
            .http
            .get(format!("{}/v2/ssl/acme", api.base))
            .header("Authorization", format!("ApiKey {}", api.key))
            .header("Idempotency-Key", "x".repeat(300))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // On a mutation, an over-long key is refused.
        let (s, _, b) = send(Box::leak("y".repeat(256).into_boxed_str()), body.clone()).await;
        assert_eq!(
            (s, b["type"].as_str()),
            (StatusCode::BAD_REQUEST, Some("ValidationError"))
        );
    }
}

/// OV: pending → approve → ACTIVE with orgValidUntil → revalidation at −30 days
/// (still ACTIVE) → at orgValidUntil PENDING; reuse; rejection.
#[tokio::test(flavor = "multi_thread")]
async fn organisation_validation_lifecycle() {
    for srv in servers().await {
        srv.set_now(t0());
        let api = Api::new(&srv, "dave", 200_000).await;
        let r = api.create_ov("Example B.V.", "Amsterdam", 24).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let id = id_of(&r);
        let s = api.sub(id).await;
        assert_eq!(s["status"], "PENDING_ORGANIZATION_VALIDATION");
        assert_eq!(s["approver"]["jobTitle"], Value::Null);
        assert!(
            api.events()
                .await
                .contains(&"ORGANIZATION_VALIDATION_NEEDED".to_string())
        );
        let pending = srv.app.org_validations(Some("PENDING")).await.unwrap();
        assert_eq!(pending.len(), 1);
        let v = &pending[0];
        let info = api
            .get(&format!("/v2/processes/{}/info", v.process_id))
            .await;
        assert_eq!(
            info.body["validations"]["organization"], "WAITING",
            "{}",
            info.body
        );
        assert_eq!(info.body["commonName"], "www.example.nl");
        let gate = srv.app.subscription_gate(id).await.unwrap();
        assert!(gate.remedy_detail.ends_with(&format!(
            "complete organisation validation, process {}",
            v.process_id
        )));

        let approved_at = t0() + DAY;
        srv.set_now(approved_at);
        let line = srv.app.approve_org_validation(v.id).await.unwrap();
        assert!(line.contains("APPROVED"), "{line}");
        let s = api.sub(id).await;
        assert_eq!(s["status"], "ACTIVE");
        let until = parse_rfc3339(s["orgValidUntil"].as_str().unwrap()).unwrap();
        assert!(
            (0..=5).contains(&(until - (approved_at + 397 * DAY))),
            "{s}"
        );
        let gate = srv.app.subscription_gate(id).await.unwrap();
        assert!(gate.active);
        assert_eq!(
            gate.org_subject,
            Some((
                "Example B.V.".into(),
                "NL".into(),
                None,
                Some("Amsterdam".into())
            ))
        );

        // The same organisation (other spelling) is reused: ACTIVE at once.
        let r2 = api.create_ov("example  b.v.", "AMSTERDAM", 12).await;
        assert_eq!(r2.status, StatusCode::CREATED, "{}", r2.body);
        assert_eq!(api.sub(id_of(&r2)).await["status"], "ACTIVE");

        srv.set_now(until - 30 * DAY);
        let lines = srv.run_lifecycle().await;
        assert!(
            has_line(
                &lines,
                &format!("subscription {id} organisation revalidation started")
            ),
            "{lines:?}"
        );
        assert_eq!(api.sub(id).await["status"], "ACTIVE");
        assert_eq!(
            srv.app
                .org_validations(Some("PENDING"))
                .await
                .unwrap()
                .len(),
            2
        );

        srv.set_now(until);
        let lines = srv.run_lifecycle().await;
        assert!(
            has_line(
                &lines,
                &format!("subscription {id} PENDING_ORGANIZATION_VALIDATION")
            ),
            "{lines:?}"
        );
        assert_eq!(
            api.sub(id).await["status"],
            "PENDING_ORGANIZATION_VALIDATION"
        );

        // Rejection: process FAILED with the reason, ATTENTION in the info.
        let pending = srv.app.org_validations(Some("PENDING")).await.unwrap();
        let mine = pending
            .iter()
            .find(|v| v.subscription_id == Some(id))
            .unwrap();
        srv.app
            .reject_org_validation(mine.id, "Chamber of Commerce record not found")
            .await
            .unwrap();
        let p = api.get(&format!("/v2/processes/{}", mine.process_id)).await;
        assert_eq!(p.body["status"], "FAILED");
        assert_eq!(
            p.body["statusDetail"],
            "Chamber of Commerce record not found"
        );
        let info = api
            .get(&format!("/v2/processes/{}/info", mine.process_id))
            .await;
        assert_eq!(info.body["validations"]["organization"], "ATTENTION");
        assert_eq!(info.body["requiresAttention"], true);
        assert_eq!(
            api.sub(id).await["status"],
            "PENDING_ORGANIZATION_VALIDATION"
        );
        assert!(
            api.events()
                .await
                .contains(&"ORGANIZATION_VALIDATION_REJECTED".to_string())
        );
        // An update starts a new validation; approving it makes it ACTIVE again.
        let u = api
            .post(
                &format!("/v2/ssl/acme/{id}/update?quote=false"),
                json!({"city": "Utrecht"}),
            )
            .await;
        assert_eq!(u.status, StatusCode::OK, "{}", u.body);
        let pending = srv.app.org_validations(Some("PENDING")).await.unwrap();
        let mine = pending
            .iter()
            .find(|v| v.subscription_id == Some(id))
            .unwrap();
        srv.app.approve_org_validation(mine.id).await.unwrap();
        assert_eq!(api.sub(id).await["status"], "ACTIVE");
    }
}

/// Credentials: SECTIGO returns the same pair twice; other brands rotate.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_per_brand() {
    for srv in servers().await {
        srv.set_now(t0());
        let api = Api::new(&srv, "erin", 100_000).await;
        let c = api.create_dv(&["erin.example.com"], 12, false).await;
        let id = id_of(&c);
        for _ in 0..2 {
            let r = api
                .post(&format!("/v2/ssl/acme/{id}/credentials"), Value::Null)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert!(r.process_id.is_some());
            assert_eq!(r.body["accountKey"], c.body["accountKey"]);
            assert_eq!(r.body["hmacKey"], c.body["hmacKey"]);
            assert_eq!(r.body["directoryUrl"], c.body["directoryUrl"]);
        }
        let kid = c.body["accountKey"].as_str().unwrap();
        let binding = srv.app.db().eab_binding(kid).await.unwrap().unwrap();
        let mac = srv.app.eab_hmac_key(&binding).unwrap();
        let hmac = c.body["hmacKey"].as_str().unwrap();
        assert_eq!(b64url_decode(hmac), mac);
        assert_eq!(mac.len(), 32);

        // Another brand: a new pair each time, the old kid stops binding.
        let mut other = srv.app.db().product(DV).await.unwrap().unwrap();
        other.product = "other_dv_acme".into();
        other.brand = "OTHERCA".into();
        srv.app.db().upsert_product(&other).await.unwrap();
        srv.app
            .set_price("other_dv_acme", "CREATE", 12, "EUR", 1000)
            .await
            .unwrap();
        let c2 = api
            .post(
                "/v2/ssl/acme",
                json!({"customer": "erin", "product": "other_dv_acme", "domainNames": ["o.example.com"], "period": 12}),
            )
            .await;
        assert_eq!(c2.status, StatusCode::CREATED, "{}", c2.body);
        let r = api
            .post(
                &format!("/v2/ssl/acme/{}/credentials", id_of(&c2)),
                Value::Null,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_ne!(r.body["accountKey"], c2.body["accountKey"]);
        assert_ne!(r.body["hmacKey"], c2.body["hmacKey"]);
        assert!(
            srv.app
                .db()
                .eab_binding(c2.body["accountKey"].as_str().unwrap())
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            srv.app
                .db()
                .eab_binding(r.body["accountKey"].as_str().unwrap())
                .await
                .unwrap()
                .is_some()
        );
        // The operator's rotate-eab works for any brand.
        let rotated = srv.app.rotate_eab(id).await.unwrap();
        assert_ne!(rotated.account_key, kid);
        assert!(srv.app.db().eab_binding(kid).await.unwrap().is_none());
    }
}

/// Bad input: the documented error, no charge, nothing created.
#[tokio::test(flavor = "multi_thread")]
async fn bad_input_changes_nothing() {
    for srv in servers().await {
        srv.set_now(t0());
        let api = Api::new(&srv, "frank", 100_000).await;
        let broke = Api::new(&srv, "broke", 100).await;
        let dv = |extra: Value| {
            let mut b = json!({"customer": "frank", "product": DV, "domainNames": ["f.example.com"], "period": 12});
            if let (Some(m), Some(e)) = (b.as_object_mut(), extra.as_object()) {
                m.extend(e.clone());
            }
            b
        };
        let cases: Vec<(Value, StatusCode, &str, Option<&str>)> = vec![
            (
                dv(json!({"product": "nope"})),
                StatusCode::BAD_REQUEST,
                "ObjectDoesNotExist",
                None,
            ),
            (
                dv(json!({"product": "sectigo_dv_single"})),
                StatusCode::BAD_REQUEST,
                "ConstraintViolationException",
                Some("product"),
            ),
            (
                dv(json!({"domainNames": ["exa mple.com"]})),
                StatusCode::BAD_REQUEST,
                "ConstraintViolationException",
                Some("domainNames[0]"),
            ),
            (
                dv(json!({"domainNames": ["a.example.com", "A.example.com."]})),
                StatusCode::BAD_REQUEST,
                "ConstraintViolationException",
                Some("domainNames[1]"),
            ),
            (
                dv(json!({"domainNames": []})),
                StatusCode::BAD_REQUEST,
                "ConstraintViolationException",
                Some("domainNames"),
            ),
            (
                dv(json!({"period": 6})),
                StatusCode::BAD_REQUEST,
                "ConstraintViolationException",
                Some("period"),
            ),
            (
                dv(json!({"period": "12"})),
                StatusCode::BAD_REQUEST,
                "ConstraintViolationException",
                Some("period"),
            ),
            (
                dv(json!({"organization": "X"})),
                StatusCode::BAD_REQUEST,
                "ConstraintViolationException",
                Some("organization"),
            ),
            (
                dv(json!({"certValidity": 90})),
                StatusCode::BAD_REQUEST,
                "ConstraintViolationException",
                Some("certValidity"),
            ),
            (
                dv(json!({"product": OV})),
                StatusCode::BAD_REQUEST,
                "ConstraintViolationException",
                Some("organization"),
            ),
            (
                dv(json!({"customer": "someoneelse"})),
                StatusCode::FORBIDDEN,
                "AuthorizationError",
                None,
            ),
            (
                dv(json!({"color": "red"})),
                StatusCode::BAD_REQUEST,
                "UnrecognizedPropertyException",
                None,
            ),
        ];
        for (body, status, ty, field) in cases {
            let r = api.post("/v2/ssl/acme?quote=false", body.clone()).await;
            assert_eq!(r.status, status, "{body} → {}", r.body);
            assert_eq!(r.body["type"], ty, "{body} → {}", r.body);
            assert!(r.process_id.is_none());
            if let Some(f) = field {
                let fields: Vec<&str> = r.body["violations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|v| v["field"].as_str())
                    .collect();
                assert!(fields.contains(&f), "{body} → {}", r.body);
            }
        }
        // OV without its fields names every missing one.
        let r = api.post("/v2/ssl/acme", dv(json!({"product": OV}))).await;
        let fields: Vec<&str> = r.body["violations"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["field"].as_str())
            .collect();
        for f in ["organization", "country", "city", "approver"] {
            assert!(fields.contains(&f), "{}", r.body);
        }
        // Too little credit: InsufficientCreditException, nothing created.
        let r = broke.create_dv(&["b.example.com"], 12, false).await;
        assert_eq!(r.body["type"], "InsufficientCreditException", "{}", r.body);
        assert_eq!(broke.balance().await, 100);
        assert_eq!(
            broke.get("/v2/ssl/acme").await.body["pagination"]["total"],
            0
        );
        assert_eq!(
            broke.get("/v2/processes").await.body["pagination"]["total"],
            0
        );
        // A quote creates nothing.
        let q = api.post("/v2/ssl/acme?quote=true", dv(json!({}))).await;
        assert_eq!(q.status, StatusCode::OK);
        assert_eq!(q.body["quote"]["total"], 4900);
        assert_eq!(q.body["quote"]["billables"][0]["action"], "CREATE");

        assert_eq!(api.balance().await, 100_000);
        assert_eq!(api.get("/v2/ssl/acme").await.body["pagination"]["total"], 0);
        assert_eq!(
            api.get("/v2/processes").await.body["pagination"]["total"],
            0
        );
        assert_eq!(
            api.get("/v2/billing/financialtransactions?processType=acmeSubscription")
                .await
                .body["pagination"]["total"],
            0
        );

        // Another customer's subscription id is 404 everywhere.
        let other = Api::new(&srv, "grace", 100_000).await;
        let theirs = id_of(&other.create_dv(&["g.example.com"], 12, false).await);
        let p = format!("/v2/ssl/acme/{theirs}");
        assert_eq!(api.get(&p).await.status, StatusCode::NOT_FOUND);
        assert_eq!(api.delete(&p).await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            api.post(&format!("{p}/renew"), json!({"period": 12}))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            api.post(&format!("{p}/update"), json!({"autoRenew": true}))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            api.post(&format!("{p}/credentials"), Value::Null)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(api.balance().await, 100_000);
        assert_eq!(other.sub(theirs).await["status"], "ACTIVE");
    }
}

/// Listing: envelope, filters, projection; update of autoRenew/period.
#[tokio::test(flavor = "multi_thread")]
async fn list_filters_and_update() {
    for srv in servers().await {
        srv.set_now(t0());
        let api = Api::new(&srv, "heidi", 100_000).await;
        let a = id_of(&api.create_dv(&["one.example.com"], 12, false).await);
        let b = id_of(
            &api.create_dv(&["two.example.com", "*.two.example.com"], 24, true)
                .await,
        );
        let all = api.get("/v2/ssl/acme?limit=1&order=id").await;
        assert_eq!(
            all.body["pagination"],
            json!({"limit": 1, "offset": 0, "total": 2})
        );
        assert_eq!(all.body["entities"][0]["id"], a);
        // A list entity is the object GET returns, with the keys the PHP SDK
        // reads unconditionally (organisation keys null on DV).
        let listed = &all.body["entities"][0];
        assert_eq!(listed, &api.sub(a).await);
        for k in [
            "organization",
            "address",
            "city",
            "state",
            "postalCode",
            "country",
        ] {
            assert_eq!(listed.get(k), Some(&Value::Null), "{k} in {listed}");
        }
        let f = api.get("/v2/ssl/acme?domainNames=*.two.example.com").await;
        assert_eq!(f.body["pagination"]["total"], 1, "{}", f.body);
        assert_eq!(f.body["entities"][0]["id"], b);
        let f = api
            .get("/v2/ssl/acme?status=ACTIVE&autoRenew=false&fields=status")
            .await;
        assert_eq!(f.body["entities"], json!([{"id": a, "status": "ACTIVE"}]));
        let f = api
            .get(&format!(
                "/v2/ssl/acme?expiryDate:gt={}",
                format_rtr(add_months(t0(), 13))
            ))
            .await;
        assert_eq!(f.body["pagination"]["total"], 1);
        assert_eq!(
            api.get("/v2/ssl/acme?nope=1").await.body["type"],
            "ValidationError"
        );

        let u = api
            .post(
                &format!("/v2/ssl/acme/{a}/update?quote=false"),
                json!({"autoRenew": true, "period": 24, "domainNames": ["one.example.com", "three.example.com"]}),
            )
            .await;
        assert_eq!(u.status, StatusCode::OK, "{}", u.body);
        assert!(u.process_id.is_some());
        let s = api.sub(a).await;
        assert_eq!(s["autoRenew"], true);
        assert_eq!(s["period"], 24);
        assert_eq!(
            s["domainNames"],
            json!(["one.example.com", "three.example.com"])
        );
        let created_a = created_of(&api, a).await;
        assert_eq!(s["expiryDate"], format_rtr(add_months(created_a, 12)));
        let q = api
            .post(
                &format!("/v2/ssl/acme/{a}/update?quote=true"),
                json!({"autoRenew": false}),
            )
            .await;
        assert_eq!(q.body["quote"], json!({"total": 0}));
        assert_eq!(api.sub(a).await["autoRenew"], true);
        // Auto-renewal uses the updated period.
        srv.set_now(add_months(created_a, 12));
        let lines = srv.run_lifecycle().await;
        let until = format_rtr(add_months(created_a, 36));
        assert!(
            has_line(&lines, &format!("subscription {a} RENEWED until {until}")),
            "{lines:?}"
        );
    }
}

/// Benchmark (not a test): `cargo test -p certhub --test subscriptions -- --ignored --nocapture bench`
/// (`BENCH_TOTAL`, `BENCH_DUE`, `BENCH_DB=sqlite|postgres` narrow it).
/// The lifecycle engine over N subscriptions of which 10,000 are due: the
/// time must follow the due items, not N.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn bench_lifecycle_due_jobs() {
    let due = std::env::var("BENCH_DUE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000i64);
    let totals: Vec<i64> = match std::env::var("BENCH_TOTAL")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(t) => vec![t],
        None => vec![100_000, 1_000_000],
    };
    let dbs: Vec<TestDb> = match std::env::var("BENCH_DB").as_deref() {
        Ok("sqlite") => vec![TestDb::Sqlite],
        Ok("postgres") => vec![TestDb::Postgres],
        _ => TestDb::ALL.to_vec(),
    };
    for total in totals {
        for &db in &dbs {
            let Some(srv) = TestServer::start(db).await else {
                continue;
            };
            let c = srv.app.create_customer("bench", "EUR").await.unwrap();
            let at = t0();
            let seed = std::time::Instant::now();
            srv.app
                .db()
                .bench_seed_subscriptions(c.id, "bench", total, due, at, at + 400 * DAY)
                .await
                .unwrap();
            let seeded = seed.elapsed();
            srv.set_now(at + 1);
            let start = std::time::Instant::now();
            let lines = srv.run_lifecycle().await;
            let took = start.elapsed();
            assert_eq!(lines.len() as i64, due);
            // A second run finds nothing due: its cost is independent of the table size.
            let idle = std::time::Instant::now();
            assert!(srv.run_lifecycle().await.is_empty());
            let idle = idle.elapsed();
            println!(
                "BENCH {db:?}: {total} subscriptions, {due} due: seed {:.1}s, lifecycle run {:.2}s ({:.0} jobs/s), idle run {:.1} ms",
                seeded.as_secs_f64(),
                took.as_secs_f64(),
                due as f64 / took.as_secs_f64(),
                idle.as_secs_f64() * 1000.0
            );
        }
    }
}
