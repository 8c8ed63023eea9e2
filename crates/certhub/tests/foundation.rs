//! The foundation through HTTP on both backends: authentication, customer
//! isolation, the list language, error bodies, and the store's money rules.

use certhub::testing::{TestDb, TestServer};
use serde_json::{Value, json};

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    fn new(s: &TestServer, key: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: s.base.clone(),
            key: key.to_string(),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{}", self.base, path))
            .header("Authorization", format!("ApiKey {}", self.key))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

async fn servers() -> Vec<TestServer> {
    let mut out = Vec::new();
    let only = std::env::var("CERTHUB_TEST_ONLY").ok();
    for db in TestDb::ALL.into_iter().filter(|d| {
        only.as_deref()
            .is_none_or(|o| format!("{d:?}").eq_ignore_ascii_case(o))
    }) {
        if let Some(s) = TestServer::start(db).await {
            out.push(s);
        }
    }
    out
}

#[tokio::test]
async fn authentication_and_isolation() {
    for s in servers().await {
        let a = Client::new(&s, &s.customer("acme-corp", 10_000).await);
        let b = Client::new(&s, &s.customer("other-co", 500).await);
        let bad = Client::new(&s, "bm9wZQ==");

        let (st, body) = bad.get("/v2/ssl/products").await;
        assert_eq!(st, 401);
        assert_eq!(body["type"], "AuthenticationError");
        assert!(body["message"].is_string());
        let (st, _) = Client {
            key: String::new(),
            ..Client::new(&s, "")
        }
        .get("/v2/ssl/products")
        .await;
        assert_eq!(st, 401);

        let (st, credit) = a.get("/v2/customers/acme-corp/credit").await;
        assert_eq!(st, 200);
        assert_eq!(
            credit,
            json!({"accounts":[{"currency":"EUR","balance":10000,"reservation":0,"locked":0}]})
        );
        let (st, body) = b.get("/v2/customers/acme-corp/credit").await;
        assert_eq!(st, 403);
        assert_eq!(body["type"], "AuthorizationError");

        let (_, txs) = a.get("/v2/billing/financialtransactions").await;
        assert_eq!(txs["pagination"]["total"], 1);
        let id = txs["entities"][0]["id"].as_i64().unwrap();
        assert_eq!(txs["entities"][0]["amount"], 10000);
        assert_eq!(
            a.get(&format!("/v2/billing/financialtransactions/{id}"))
                .await
                .0,
            200
        );
        let (st, body) = b
            .get(&format!("/v2/billing/financialtransactions/{id}"))
            .await;
        assert_eq!(
            (st, body["type"].as_str()),
            (404, Some("ObjectDoesNotExist"))
        );
        let (_, txs_b) = b.get("/v2/billing/financialtransactions").await;
        assert_eq!(txs_b["pagination"]["total"], 1);
        assert_eq!(txs_b["entities"][0]["amount"], 500);

        let (st, body) = a.get("/v2/processes/999999").await;
        assert_eq!(
            (st, body["type"].as_str()),
            (404, Some("ObjectDoesNotExist"))
        );
        let (st, _) = a.get("/v2/processes/not-a-number").await;
        assert_eq!(st, 404);
    }
}

#[tokio::test]
async fn list_language() {
    for s in servers().await {
        let a = Client::new(&s, &s.customer("lister", 0).await);
        let (st, all) = a.get("/v2/ssl/products/").await;
        assert_eq!(st, 200, "trailing slash accepted");
        let total = all["pagination"]["total"].as_i64().unwrap();
        assert!(total >= 7);
        assert_eq!(all["pagination"]["limit"], 10);
        assert_eq!(all["pagination"]["offset"], 0);
        for p in all["entities"].as_array().unwrap() {
            for k in [
                "product",
                "brand",
                "name",
                "validationType",
                "certificateType",
                "periods",
                "warranty",
                "issueTime",
                "renewalWindow",
            ] {
                assert!(!p[k].is_null(), "product key {k} present");
            }
        }

        let (_, page) = a
            .get("/v2/ssl/products?limit=2&offset=1&order=-product")
            .await;
        assert_eq!(page["entities"].as_array().unwrap().len(), 2);
        let names: Vec<&str> = page["entities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["product"].as_str().unwrap())
            .collect();
        assert!(names[0] > names[1], "descending order");

        let (_, acme) = a
            .get("/v2/ssl/products?certificateType=ACME_SUBSCRIPTION&fields=brand")
            .await;
        assert_eq!(acme["pagination"]["total"], 2);
        assert_eq!(
            acme["entities"][0].as_object().unwrap().len(),
            2,
            "fields projection keeps product + brand"
        );

        let (_, none) = a.get("/v2/ssl/products?limit=0").await;
        assert_eq!(none["entities"], json!([]));
        assert_eq!(none["pagination"]["total"], total);
        let (_, no_total) = a.get("/v2/ssl/products?total=false").await;
        assert!(no_total["pagination"].get("total").is_none());
        let (_, exported) = a.get("/v2/ssl/products?export=true").await;
        assert_eq!(exported["entities"].as_array().unwrap().len() as i64, total);
        let (_, q) = a.get("/v2/ssl/products?q=digicert").await;
        assert_eq!(q["pagination"]["total"], 2);
        let (_, inlist) = a
            .get("/v2/ssl/products?product:in=sectigo_dv_acme,digicert_dv_authkey")
            .await;
        assert_eq!(inlist["pagination"]["total"], 2);

        let (st, p) = a.get("/v2/ssl/products/sectigo_ov_acme").await;
        assert_eq!(st, 200);
        assert_eq!(p["validationType"], "ORGANIZATION_VALIDATION");
        let (st, body) = a.get("/v2/ssl/products/nope").await;
        assert_eq!(
            (st, body["type"].as_str()),
            (404, Some("ObjectDoesNotExist"))
        );

        for bad in [
            "/v2/ssl/products?limit=100000",
            "/v2/ssl/products?limit=-1",
            "/v2/ssl/products?offset=-5",
            "/v2/ssl/products?order=unknownField",
            "/v2/ssl/products?unknownField=1",
            "/v2/ssl/products?product:between=1",
            "/v2/ssl/products?warranty=abc",
            "/v2/ssl/products?fields=nope",
            "/v2/processes?createdDate:gt=yesterday",
            "/v2/billing/financialtransactions?limit=abc",
            "/v2/ssl/products?export=true&limit=5",
        ] {
            let (st, body) = a.get(bad).await;
            assert_eq!(st, 400, "{bad}");
            assert_eq!(body["type"], "ValidationError", "{bad}");
        }

        let (st, pl) = a.get("/v2/customers/lister/pricelist").await;
        assert_eq!(st, 200);
        assert!(
            pl["prices"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["product"] == "sectigo_dv_acme"
                    && p["action"] == "CREATE"
                    && p["currency"] == "EUR")
        );
        let (st, _) = a.get("/v2/customers/lister/pricelist?currency=XXX").await;
        assert_eq!(st, 400);
    }
}

#[tokio::test]
async fn health_and_metrics() {
    let s = TestServer::start(TestDb::Sqlite).await.unwrap();
    let r = reqwest::get(s.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let m = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("# TYPE certhub_http_requests_total counter"));
}

/// Money rules of the store, on both backends: a charge that does not fit
/// changes nothing; ledger and balance agree to the cent.
#[tokio::test]
async fn store_money_rules() {
    use certhub_store::billing::{Billable, LedgerRef};
    for s in servers().await {
        s.customer("payer", 1000).await;
        let db = s.app.db();
        let c = db.customer_by_handle("payer").await.unwrap().unwrap();
        let billable = |total: i64| Billable {
            product: "sectigo_dv_acme".into(),
            action: "CREATE".into(),
            quantity: 1,
            amount: total,
            refundable: true,
            total,
            provider_name: "sectigo".into(),
        };
        let r = LedgerRef {
            customer_id: c.id,
            customer: "payer",
            process_id: 1,
            process_type: "test",
            process_identifier: "x",
            process_action: "create",
            subject_id: Some(7),
        };
        let mut tx = db.begin().await.unwrap();
        let err = db
            .charge(&mut tx, &r, "EUR", &[billable(1500)], 0)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            certhub_store::StoreError::InsufficientCredit { .. }
        ));
        drop(tx);
        let mut tx = db.begin().await.unwrap();
        db.charge(&mut tx, &r, "EUR", &[billable(400)], 0)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = db.begin().await.unwrap();
        db.reserve(&mut tx, c.id, "EUR", 500).await.unwrap();
        db.capture(&mut tx, &r, "EUR", &[billable(500)], 0)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let acct = &db.credit_accounts(c.id).await.unwrap()[0];
        assert_eq!((acct.balance, acct.reservation), (100, 0));
        assert_eq!(db.ledger_sum(c.id, "EUR").await.unwrap(), acct.balance);

        // Jobs: unique per (kind, subject, due), claimed once.
        let mut tx = db.begin().await.unwrap();
        db.schedule_job(&mut tx, "test.x", 1, 10).await.unwrap();
        db.schedule_job(&mut tx, "test.x", 1, 10).await.unwrap();
        tx.commit().await.unwrap();
        let first = db.claim_jobs("a", 100, 400, 10).await.unwrap();
        let second = db.claim_jobs("b", 100, 400, 10).await.unwrap();
        assert_eq!((first.len(), second.len()), (1, 0));
        let expired_lease = db.claim_jobs("c", 500, 800, 10).await.unwrap();
        assert_eq!(
            expired_lease.len(),
            1,
            "a dead node's lease expires and the job is taken over"
        );
    }
}
