//! Crash safety (issue 9): the real `certhub serve` is killed with SIGKILL at
//! random moments while clients issue ACME certificates (newOrder → http-01 →
//! finalize → download, and resuming orders left by earlier rounds), create,
//! renew and delete subscriptions over REST (charges and refunds) and request
//! AuthKey certificates (reservation, then capture). It is restarted after
//! every kill. At the end one clean run lets every unfinished order finish,
//! then the database is checked:
//!
//! - every ACME order is valid with its certificate, or invalid with an error;
//!   none is left pending/ready/processing (the clean run proved they could
//!   be finished by finishing them);
//! - every certificate has its record (a valid order, or an issued REST
//!   request) and every issuing process its certificate;
//! - every charge has its state change (subscription created/renewed by the
//!   months paid, certificate issued), no process is charged twice, refunds
//!   only for deleted subscriptions and at most one per charge;
//! - per credit account: top-ups − charges + refunds = balance + reservation,
//!   to the cent, and the reservation is what the pending requests hold;
//! - everything a client saw acknowledged (201/200/204, a certificate
//!   downloaded) is in the database.
//!
//! Runs on SQLite and on PostgreSQL at 127.0.0.1:5432 (SKIPPED when down).
//! `CERTHUB_CRASH_KILLS` (default 100) sets the kills per backend and
//! `CERTHUB_CRASH_SEED` replays a seed (printed on every run): the same kill
//! delays and operation choices, though not the machine's timing. All traffic
//! stays on 127.0.0.1.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use certhub::testing::{create_pg_database, pg_admin_url};
use certhub_store::Db;
use certhub_testkit::{Http01Server, TestDns};
use http_body_util::BodyExt;
use instant_acme::{
    Account, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType, ExternalAccountKey,
    HttpClient, Identifier, NewAccount, NewOrder, Order, OrderStatus,
};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

const DV_ACME: &str = "sectigo_dv_acme";
const AUTHKEY_PRODUCT: &str = "digicert_dv_authkey";
const CUSTOMERS: [&str; 2] = ["crash-a", "crash-b"];
/// Enough credit that no charge is ever refused for lack of it.
const CREDIT: i64 = 1_000_000_000;
/// ACME subscriptions (of crash-a) and accounts per subscription.
const ACME_SUBS: usize = 2;
const ACCOUNTS_PER_SUB: usize = 2;
/// Names per ACME subscription: many, so most orders need a fresh http-01.
const ACME_NAMES: usize = 60;
/// Names with a published AuthKey (both customers' keys in `_dnsauth.NAME`).
const AUTHKEY_NAMES: usize = 8;
const ACME_WORKERS: usize = 3;
/// Two per customer, so their charges and refunds also race each other.
const REST_WORKERS_PER_CUSTOMER: usize = 2;
/// Load runs this long (random, ms) after the server is healthy before the kill.
const MAX_LOAD_MS: u64 = 700;
/// One round in this many kills the server while it starts instead.
const STARTUP_KILL_ONE_IN: u64 = 10;
/// The final clean run's clock is this far ahead, so every engine retry left
/// by a kill (validation re-run after 60 s, DCV check back-off) is due at once.
const SETTLE_CLOCK_AHEAD: i64 = 3600;

/// The two backends run one after the other: 2 cores do not carry both loads.
static ONE_BACKEND_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_safety_sqlite() {
    let _turn = ONE_BACKEND_AT_A_TIME.lock().await;
    run_backend(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_safety_postgres() {
    let _turn = ONE_BACKEND_AT_A_TIME.lock().await;
    run_backend(Backend::Postgres).await;
}

// ------------------------------------------------------------------ randomness

/// xorshift64*: small, seedable, good enough to pick kill moments.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len() as u64) as usize].clone())
    }
}

fn seed() -> u64 {
    if let Ok(s) = std::env::var("CERTHUB_CRASH_SEED") {
        return s.trim().parse().expect("CERTHUB_CRASH_SEED must be a u64");
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    nanos ^ (u64::from(std::process::id()) << 32)
}

fn kills() -> usize {
    std::env::var("CERTHUB_CRASH_KILLS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(100)
}

// ------------------------------------------------------------------ database

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The database of one run: a SQLite file in the work directory, or a fresh
/// PostgreSQL database dropped at the end.
struct Database {
    url: String,
    pg_name: Option<String>,
}

impl Database {
    async fn create(backend: Backend, dir: &std::path::Path) -> Option<Database> {
        match backend {
            Backend::Sqlite => Some(Database {
                url: format!("sqlite://{}", dir.join("certhub.db").display()),
                pg_name: None,
            }),
            Backend::Postgres => {
                let Some((url, name)) = create_pg_database().await else {
                    eprintln!(
                        "SKIPPED: PostgreSQL unavailable at {} (crash test runs on SQLite only)",
                        pg_admin_url()
                    );
                    return None;
                };
                eprintln!("crash test [Postgres]: database {name} (dropped at the end)");
                Some(Database {
                    url,
                    pg_name: Some(name),
                })
            }
        }
    }
}

impl Drop for Database {
    /// Drops the PostgreSQL database, also when the test failed. Drop cannot
    /// await, and blocking the test's runtime on it could deadlock, so a
    /// thread of its own runs the statement on a runtime of its own.
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let admin = Db::connect(&pg_admin_url()).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(admin.pool())
                    .await;
                admin.close().await;
                done.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop the PostgreSQL test database");
        }
    }
}

// ------------------------------------------------------------------ the server

/// The `certhub serve` process, always on the same loopback ports so that
/// clients' URLs (directory, orders) stay valid across restarts.
struct Server {
    dir: PathBuf,
    db_url: String,
    https_port: u16,
    http_port: u16,
    child: Option<Child>,
}

impl Server {
    fn new(
        dir: PathBuf,
        db_url: String,
        dns: &TestDns,
        http01: &Http01Server,
        rng: &mut Rng,
    ) -> Server {
        let https_port = listen_port(rng, 0);
        let http_port = listen_port(rng, https_port);
        // Limits off (max = 0): the load is far above a customer's, on purpose.
        let config = format!(
            "[validation]\nallow_loopback = true\nresolver = \"{}\"\nhttp01_port = {}\ntimeout = 5\n\n\
             [rate_limits]\nper_api_key = {{ max = 0, window_secs = 1 }}\nper_ip = {{ max = 0, window_secs = 1 }}\n\
             acme_new_order = {{ max = 0, window_secs = 1 }}\nfailed_validations = {{ max = 0, window_secs = 1 }}\n\n\
             [testing]\nallow_clock_override = true\n",
            dns.addr(),
            http01.port()
        );
        std::fs::write(dir.join("crash.toml"), config).expect("config");
        Server {
            dir,
            db_url,
            https_port,
            http_port,
            child: None,
        }
    }

    /// `http://127.0.0.1:PORT`: the plain-HTTP listener, which is also the
    /// public URL (the test client needs no TLS trust set-up).
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_certhub"));
        c.arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--config")
            .arg(self.dir.join("crash.toml"))
            .arg("--database-url")
            .arg(&self.db_url);
        for v in [
            "CERTHUB_NOW",
            "CERTHUB_KEK",
            "CERTHUB_LISTEN",
            "CERTHUB_PUBLIC_URL",
        ] {
            c.env_remove(v);
        }
        // A killed server's job leases must not hold its jobs for 5 minutes.
        c.env("CERTHUB_LEASE_SECONDS", "2")
            .env("CERTHUB_LOG", "warn")
            .env("NO_COLOR", "1");
        c
    }

    /// Starts `serve`; `clock` is an RFC 3339 start instant (`--now`).
    fn spawn(&mut self, clock: Option<String>) {
        assert!(self.child.is_none(), "server already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("serve.log"))
            .expect("log file");
        let mut c = self.command();
        if let Some(t) = clock {
            c.arg("--now").arg(t);
        }
        c.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.https_port))
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{}", self.http_port))
            .arg("--public-url")
            .arg(self.base())
            .arg("--pki-url")
            .arg(self.base())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(c.spawn().expect("spawn certhub serve"));
    }

    async fn wait_healthy(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "certhub serve exited during start-up ({status})\n{}",
                    self.log_tail()
                );
            }
            let ok = http
                .get(format!("{}/healthz", self.base()))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("certhub serve not healthy within 60 s\n{}", self.log_tail());
    }

    /// SIGKILL (`Child::kill`), then reap the process.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `certhub admin ...` with the same data directory and database.
    async fn admin(&self, args: &[&str]) -> String {
        let mut c = tokio::process::Command::from(self.command());
        let out = c.arg("admin").args(args).output().await.expect("admin");
        assert!(
            out.status.success(),
            "certhub admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default();
        // Not the start-up banner, printed once per round.
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("certhub listening"))
            .collect();
        let from = lines.len().saturating_sub(30);
        format!("---- last lines of serve.log\n{}", lines[from..].join("\n"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback TCP port below the ephemeral range: the server binds its
/// ports again after every kill, and the kernel never hands such a port to an
/// outgoing connection meanwhile.
fn listen_port(rng: &mut Rng, other: u16) -> u16 {
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let span = u64::from(low.saturating_sub(10_000).max(1));
    for _ in 0..1000 {
        let port = 10_000 + rng.below(span) as u16;
        if port != other && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below {low}");
}

fn rfc3339_in(secs: i64) -> String {
    certhub_domain::time::format_rtr(certhub_domain::time::now() + secs)
}

// ------------------------------------------------------------------ clients

/// What clients saw acknowledged; each must be in the database at the end.
#[derive(Default, Debug)]
struct Acks {
    /// (subscription id, process id) of 201 answers.
    subscriptions: Vec<(i64, i64)>,
    /// (subscription id, process id) of 200 renew answers.
    renewals: Vec<(i64, i64)>,
    /// (subscription id, process id) of 204 delete answers.
    deletions: Vec<(i64, i64)>,
    /// (process id, certificate id of a 201) of certificate requests.
    requests: Vec<(i64, Option<i64>)>,
    /// ACME orders created (ids).
    orders: Vec<i64>,
    /// ACME orders a finalize answered `valid` (ids).
    finalized: Vec<i64>,
    /// Leaf certificates (DER) downloaded over ACME.
    downloaded: Vec<Vec<u8>>,
    /// Requests that got no answer (the server died under them).
    cut: usize,
}

impl Acks {
    fn summary(&self) -> String {
        format!(
            "{} answers cut by kills; acknowledged: {} subscriptions, {} renewals, {} deletions, \
             {} certificate requests, {} orders, {} finalized, {} downloaded",
            self.cut,
            self.subscriptions.len(),
            self.renewals.len(),
            self.deletions.len(),
            self.requests.len(),
            self.orders.len(),
            self.finalized.len(),
            self.downloaded.len()
        )
    }
}

/// Work carried across rounds.
#[derive(Default)]
struct Work {
    /// ACME orders not finished yet: (account index, order URL, names).
    open_orders: Vec<OpenOrder>,
    /// Per customer: REST subscriptions that may be renewed or deleted.
    subscriptions: Vec<Vec<i64>>,
}

#[derive(Clone, Debug)]
struct OpenOrder {
    account: usize,
    url: String,
    names: Vec<String>,
}

/// One REST customer.
struct Customer {
    handle: String,
    key: String,
    /// The key of every AuthKey CSR (an AuthKey is bound to customer and key).
    csr_key: rcgen::KeyPair,
}

/// Everything the workers share.
struct Shared {
    base: String,
    http: reqwest::Client,
    http01: Http01Server,
    accounts: Vec<Account>,
    /// Names of the subscription each account is bound to.
    account_names: Vec<Vec<String>>,
    customers: Vec<Customer>,
    acks: Mutex<Acks>,
    work: Mutex<Work>,
}

impl Shared {
    fn acks(&self) -> std::sync::MutexGuard<'_, Acks> {
        self.acks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn work(&self) -> std::sync::MutexGuard<'_, Work> {
        self.work.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// instant-acme's default client speaks HTTPS only; the server is plain HTTP here.
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
            let other = |e: reqwest::Error| instant_acme::Error::Other(Box::new(e));
            let resp = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(other)?;
            let mut builder = axum::http::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                builder = builder.header(k, v);
            }
            let bytes = resp.bytes().await.map_err(other)?;
            let r = builder
                .body(http_body_util::Full::new(bytes))
                .map_err(instant_acme::Error::Http)?;
            Ok(BytesResponse::from(r))
        })
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

struct Reply {
    status: u16,
    process_id: Option<i64>,
    body: Value,
}

/// One REST call; Err when no answer came (the server died under it).
async fn rest(
    s: &Shared,
    c: &Customer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Reply, reqwest::Error> {
    let mut rb = s
        .http
        .request(method, format!("{}{path}", s.base))
        .header("Authorization", format!("ApiKey {}", c.key));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.inspect_err(|_| s.acks().cut += 1)?;
    let status = r.status().as_u16();
    let process_id = r
        .headers()
        .get("x-process-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bytes = r.bytes().await?;
    Ok(Reply {
        status,
        process_id,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    })
}

fn csr(names: &[String], key: &rcgen::KeyPair) -> rcgen::CertificateSigningRequest {
    let mut params = rcgen::CertificateParams::new(names.to_vec()).expect("csr params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0].as_str());
    params.serialize_request(key).expect("csr")
}

fn id_of_url(url: &str) -> i64 {
    url.rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no id at the end of {url}"))
}

// ------------------------------------------------------------------ set-up

/// Customers, keys and credit through `certhub admin`, then (server running)
/// the ACME subscriptions with their EAB accounts and the AuthKeys.
async fn set_up(server: &mut Server, dns: &TestDns, http01: &Http01Server) -> Shared {
    let mut customers = Vec::new();
    for handle in CUSTOMERS {
        server.admin(&["customer", "create", handle]).await;
        let key = server.admin(&["apikey", "create", handle]).await;
        server
            .admin(&["credit", "add", handle, &CREDIT.to_string()])
            .await;
        customers.push(Customer {
            handle: handle.to_string(),
            key,
            csr_key: rcgen::KeyPair::generate().expect("key"),
        });
    }
    let http = http_client();
    server.spawn(None);
    server.wait_healthy(&http).await;
    let mut shared = Shared {
        base: server.base(),
        http,
        http01: http01.clone(),
        accounts: Vec::new(),
        account_names: Vec::new(),
        customers,
        acks: Mutex::new(Acks::default()),
        work: Mutex::new(Work {
            open_orders: Vec::new(),
            subscriptions: vec![Vec::new(); CUSTOMERS.len()],
        }),
    };
    for k in 0..ACME_SUBS {
        create_acme_subscription(&mut shared, k).await;
    }
    publish_authkeys(&shared, dns).await;
    server.kill();
    shared
}

async fn create_acme_subscription(s: &mut Shared, k: usize) {
    let names: Vec<String> = (0..ACME_NAMES)
        .map(|i| format!("n{i}.s{k}.crash.example.com"))
        .collect();
    let c = &s.customers[0];
    let body = json!({"customer": c.handle, "product": DV_ACME, "domainNames": names, "period": 12, "autoRenew": false});
    let r = rest(
        s,
        c,
        reqwest::Method::POST,
        "/v2/ssl/acme?quote=false",
        Some(body),
    )
    .await
    .expect("create ACME subscription");
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_i64().expect("id");
    s.acks()
        .subscriptions
        .push((id, r.process_id.expect("pid")));
    let eab = ExternalAccountKey::new(
        r.body["accountKey"].as_str().expect("kid").to_string(),
        &certhub_jose::b64::decode(r.body["hmacKey"].as_str().expect("hmac"), "hmacKey")
            .expect("hmac base64url"),
    );
    let directory = r.body["directoryUrl"].as_str().expect("dir").to_string();
    for _ in 0..ACCOUNTS_PER_SUB {
        let (account, _) = Account::builder_with_http(Box::new(PlainHttp(http_client())))
            .create(
                &NewAccount {
                    contact: &[],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                directory.clone(),
                Some(&eab),
            )
            .await
            .expect("ACME account with EAB");
        s.accounts.push(account);
        s.account_names.push(names.clone());
    }
}

/// One AuthKey per customer (for its CSR key), both published for every
/// AuthKey name, so certificate requests are validated and issued at once.
async fn publish_authkeys(s: &Shared, dns: &TestDns) {
    let names: Vec<String> = (0..AUTHKEY_NAMES)
        .map(|i| format!("ak{i}.crash.example.com"))
        .collect();
    let mut keys = Vec::new();
    for c in &s.customers {
        let pem = csr(&names[..1], &c.csr_key).pem().expect("pem");
        let body = json!({"product": AUTHKEY_PRODUCT, "csr": pem});
        let r = rest(s, c, reqwest::Method::POST, "/v2/ssl/authkey", Some(body))
            .await
            .expect("authkey");
        assert_eq!(r.status, 200, "{}", r.body);
        keys.push(r.body["authKey"].as_str().expect("authKey").to_string());
    }
    for n in &names {
        dns.set_txt(&format!("_dnsauth.{n}"), keys.clone());
    }
}

// ------------------------------------------------------------------ load

/// Runs workers until `stop`; every step is bounded so a dead server never hangs them.
fn spawn_workers(
    s: &Arc<Shared>,
    rng: &mut Rng,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    for w in 0..ACME_WORKERS + REST_WORKERS_PER_CUSTOMER * s.customers.len() {
        let (s, stop) = (s.clone(), stop.clone());
        let mut rng = Rng::new(rng.next());
        handles.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let step = async {
                    if w < ACME_WORKERS {
                        acme_step(&s, &mut rng).await;
                    } else {
                        let customer = (w - ACME_WORKERS) % s.customers.len();
                        rest_step(&s, customer, &mut rng).await;
                    }
                };
                if tokio::time::timeout(Duration::from_secs(15), step)
                    .await
                    .is_err()
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }));
    }
    handles
}

/// Resumes an open order (half the time, if any) or starts a new one.
async fn acme_step(s: &Shared, rng: &mut Rng) {
    let result = match take_open_order(s, rng) {
        Some(open) => resume_order(s, open).await,
        None => start_order(s, rng).await,
    };
    if let Err(e) = result {
        // Transport errors (no answer): the kill; others are answers.
        if matches!(e, instant_acme::Error::Other(_)) {
            s.acks().cut += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn take_open_order(s: &Shared, rng: &mut Rng) -> Option<OpenOrder> {
    if rng.below(2) == 0 {
        return None;
    }
    let mut w = s.work();
    let n = w.open_orders.len() as u64;
    (n > 0).then(|| w.open_orders.swap_remove(rng.below(n) as usize))
}

async fn resume_order(s: &Shared, open: OpenOrder) -> Result<(), instant_acme::Error> {
    match s.accounts[open.account].order(open.url.clone()).await {
        Ok(order) => finish_or_keep(s, order, open).await,
        Err(e) => {
            s.work().open_orders.push(open);
            Err(e)
        }
    }
}

async fn start_order(s: &Shared, rng: &mut Rng) -> Result<(), instant_acme::Error> {
    let account = rng.below(s.accounts.len() as u64) as usize;
    let pool = &s.account_names[account];
    let mut names = vec![rng.pick(pool).expect("names")];
    if rng.below(3) == 0
        && let Some(n) = rng.pick(pool).filter(|n| !names.contains(n))
    {
        names.push(n);
    }
    let ids: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let order = s.accounts[account].new_order(&NewOrder::new(&ids)).await?;
    let url = order.url().to_string();
    s.acks().orders.push(id_of_url(&url));
    let open = OpenOrder {
        account,
        url,
        names,
    };
    finish_or_keep(s, order, open).await
}

/// Unfinished orders go back to the open list for a later step or round.
async fn finish_or_keep(
    s: &Shared,
    order: Order,
    open: OpenOrder,
) -> Result<(), instant_acme::Error> {
    let result = drive_order(s, order, &open.names).await;
    if !matches!(result, Ok(true)) {
        s.work().open_orders.push(open);
    }
    result.map(|_| ())
}

/// Moves an order on until it is valid (certificate downloaded) or invalid:
/// Ok(true) when finished, Ok(false) when it still waits for validation.
async fn drive_order(
    s: &Shared,
    mut order: Order,
    names: &[String],
) -> Result<bool, instant_acme::Error> {
    for _ in 0..20 {
        match order.state().status {
            OrderStatus::Pending => {
                solve(s, &mut order).await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
                order.refresh().await?;
            }
            OrderStatus::Ready => {
                let key = rcgen::KeyPair::generate().expect("key");
                order.finalize_csr(csr(names, &key).der()).await?;
                if order.state().status == OrderStatus::Valid {
                    s.acks().finalized.push(id_of_url(order.url()));
                }
            }
            OrderStatus::Processing => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                order.refresh().await?;
            }
            OrderStatus::Valid => {
                let pem = order.certificate().await?.unwrap_or_default();
                let leaf = certhub_ca::pem_decode_all(&pem)
                    .ok()
                    .and_then(|blocks| blocks.into_iter().next())
                    .map(|(_, der)| der);
                if let Some(der) = leaf {
                    s.acks().downloaded.push(der);
                }
                return Ok(true);
            }
            OrderStatus::Invalid => return Ok(true),
        }
    }
    Ok(false)
}

/// Publishes the http-01 answer of every pending authorisation and tells the
/// server to validate (a challenge already started answers unchanged).
async fn solve(s: &Shared, order: &mut Order) -> Result<(), instant_acme::Error> {
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut a = a?;
        if a.status != AuthorizationStatus::Pending {
            continue;
        }
        let Some(mut ch) = a.challenge(ChallengeType::Http01) else {
            continue;
        };
        s.http01
            .set_token(&ch.token, ch.key_authorization().as_str());
        ch.set_ready().await?;
    }
    Ok(())
}

/// One REST operation of a customer: create (charge), renew (charge),
/// delete within 30 days (refund) or an AuthKey certificate request
/// (reservation, capture at issuance).
async fn rest_step(s: &Shared, idx: usize, rng: &mut Rng) {
    let c = &s.customers[idx];
    let result = match rng.below(100) {
        0..30 => create_subscription(s, c, idx, rng).await,
        30..55 => renew_subscription(s, c, idx, rng).await,
        55..70 => delete_subscription(s, c, idx, rng).await,
        _ => request_certificate(s, c, rng).await,
    };
    if result.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create_subscription(
    s: &Shared,
    c: &Customer,
    idx: usize,
    rng: &mut Rng,
) -> Result<(), reqwest::Error> {
    let name = format!("r{}.{}.crash.example.com", rng.below(1 << 40), c.handle);
    let period = if rng.below(2) == 0 { 1 } else { 12 };
    let body = json!({"customer": c.handle, "product": DV_ACME, "domainNames": [name], "period": period, "autoRenew": false});
    let r = rest(
        s,
        c,
        reqwest::Method::POST,
        "/v2/ssl/acme?quote=false",
        Some(body),
    )
    .await?;
    if let (201, Some(id), Some(pid)) = (r.status, r.body["id"].as_i64(), r.process_id) {
        s.acks().subscriptions.push((id, pid));
        s.work().subscriptions[idx].push(id);
    }
    Ok(())
}

async fn renew_subscription(
    s: &Shared,
    c: &Customer,
    idx: usize,
    rng: &mut Rng,
) -> Result<(), reqwest::Error> {
    let Some(id) = rng.pick(&s.work().subscriptions[idx]) else {
        return Ok(());
    };
    let period = if rng.below(2) == 0 { 1 } else { 12 };
    let path = format!("/v2/ssl/acme/{id}/renew?quote=false");
    let r = rest(
        s,
        c,
        reqwest::Method::POST,
        &path,
        Some(json!({"period": period})),
    )
    .await?;
    if let (200, Some(pid)) = (r.status, r.process_id) {
        s.acks().renewals.push((id, pid));
    }
    Ok(())
}

async fn delete_subscription(
    s: &Shared,
    c: &Customer,
    idx: usize,
    rng: &mut Rng,
) -> Result<(), reqwest::Error> {
    let Some(id) = rng.pick(&s.work().subscriptions[idx]) else {
        return Ok(());
    };
    let path = format!("/v2/ssl/acme/{id}");
    let r = rest(s, c, reqwest::Method::DELETE, &path, None).await?;
    if r.status == 204
        && let Some(pid) = r.process_id
    {
        s.acks().deletions.push((id, pid));
    }
    // Gone either way (deleted now, or by a request whose answer the kill ate).
    if matches!(r.status, 204 | 404) {
        s.work().subscriptions[idx].retain(|x| *x != id);
    }
    Ok(())
}

async fn request_certificate(
    s: &Shared,
    c: &Customer,
    rng: &mut Rng,
) -> Result<(), reqwest::Error> {
    let name = format!("ak{}.crash.example.com", rng.below(AUTHKEY_NAMES as u64));
    let pem = csr(&[name], &c.csr_key).pem().expect("pem");
    let body = json!({"customer": c.handle, "product": AUTHKEY_PRODUCT, "period": 12, "csr": pem, "authKey": true});
    let r = rest(
        s,
        c,
        reqwest::Method::POST,
        "/v2/ssl/certificates",
        Some(body),
    )
    .await?;
    if let (201 | 202, Some(pid)) = (r.status, r.process_id) {
        s.acks()
            .requests
            .push((pid, r.body["certificateId"].as_i64()));
    }
    Ok(())
}

// ------------------------------------------------------------------ rounds

/// Start, load, SIGKILL at a random moment; `kills` times.
async fn kill_rounds(server: &mut Server, shared: &Arc<Shared>, rng: &mut Rng, kills: usize) {
    let mut startup_kills = 0;
    for round in 0..kills {
        server.spawn(None);
        if rng.below(STARTUP_KILL_ONE_IN) == 0 {
            // Mid start-up: migrations check, CA load, first lifecycle run.
            tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
            server.kill();
            startup_kills += 1;
            continue;
        }
        server.wait_healthy(&shared.http).await;
        let stop = Arc::new(AtomicBool::new(false));
        let workers = spawn_workers(shared, rng, &stop);
        tokio::time::sleep(Duration::from_millis(rng.below(MAX_LOAD_MS + 1))).await;
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            if tokio::time::timeout(Duration::from_secs(30), w)
                .await
                .is_err()
            {
                panic!("a load worker did not stop within 30 s after kill {round}");
            }
        }
    }
    eprintln!("{kills} kills ({startup_kills} during start-up)");
}

/// One clean run: the clock ahead so every engine retry is due, then every
/// unfinished order of every account is driven to valid or invalid.
async fn settle(server: &mut Server, shared: &Shared, db: &Db) {
    server.spawn(Some(rfc3339_in(SETTLE_CLOCK_AHEAD)));
    server.wait_healthy(&shared.http).await;
    let accounts: HashMap<i64, usize> = shared
        .accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (id_of_url(a.id()), i))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let open = unfinished_orders(db).await;
        let waiting = pending_requests(db).await;
        if (open.is_empty() && waiting == 0) || Instant::now() > deadline {
            break;
        }
        for (id, account_id, names) in open {
            let Some(&i) = accounts.get(&account_id) else {
                continue;
            };
            let url = format!("{}/acme/{DV_ACME}/order/{id}", shared.base);
            if let Ok(order) = shared.accounts[i].order(url).await {
                let _ = drive_order(shared, order, &names).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.kill();
}

/// Orders still pending or ready whose subscription lives: (id, account, names).
async fn unfinished_orders(db: &Db) -> Vec<(i64, i64, Vec<String>)> {
    let rows = select(
        db,
        "SELECT o.id, o.account_id, o.identifiers FROM acme_orders o JOIN subscriptions s ON s.id = o.subscription_id \
         WHERE o.status IN ('pending', 'ready', 'processing') AND s.deleted_at IS NULL",
    )
    .await;
    rows.iter()
        .map(|r| {
            let names = serde_json::from_str(&text(r, "identifiers")).unwrap_or_default();
            (int(r, "id"), int(r, "account_id"), names)
        })
        .collect()
}

/// What the kills left for the clean run to finish.
async fn leftovers(db: &Db) -> String {
    let interrupted = select(
        db,
        "SELECT id FROM acme_authzs WHERE status = 'pending' AND chall_status = 'processing'",
    )
    .await
    .len();
    format!(
        "{} unfinished ACME orders, {interrupted} validations in flight, {} pending certificate requests",
        unfinished_orders(db).await.len(),
        pending_requests(db).await
    )
}

async fn pending_requests(db: &Db) -> usize {
    select(
        db,
        "SELECT process_id FROM cert_requests WHERE status = 'PENDING'",
    )
    .await
    .len()
}

// ------------------------------------------------------------------ one backend

async fn run_backend(backend: Backend) {
    let seed = seed();
    let kills = kills();
    eprintln!("crash test [{backend:?}]: seed {seed} (CERTHUB_CRASH_SEED), {kills} kills");
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(database) = Database::create(backend, dir.path()).await else {
        return;
    };
    let dns = TestDns::start().await;
    dns.set_default_a(Some(Ipv4Addr::LOCALHOST));
    let http01 = Http01Server::start().await;
    let mut rng = Rng::new(seed);
    let mut server = Server::new(
        dir.path().to_path_buf(),
        database.url.clone(),
        &dns,
        &http01,
        &mut rng,
    );
    let started = Instant::now();
    let shared = Arc::new(set_up(&mut server, &dns, &http01).await);
    kill_rounds(&mut server, &shared, &mut rng, kills).await;
    let rounds_took = started.elapsed();
    let db = Db::connect(&database.url).await.expect("connect");
    eprintln!(
        "crash test [{backend:?}]: left by the kills: {}; clients saw {}",
        leftovers(&db).await,
        shared.acks().summary()
    );
    settle(&mut server, &shared, &db).await;
    let snapshot = Snapshot::load(&db).await;
    db.close().await;
    let violations = check_all(&snapshot, &shared.acks());
    eprintln!(
        "crash test [{backend:?}]: set-up and {kills} kills in {:.1} s, clean run in {:.1} s; {}",
        rounds_took.as_secs_f64(),
        (started.elapsed() - rounds_took).as_secs_f64(),
        snapshot.summary()
    );
    let log = server.log_tail();
    drop(server);
    drop(database);
    if !violations.is_empty() {
        let shown = violations.iter().take(40).cloned().collect::<Vec<_>>();
        panic!(
            "crash test [{backend:?}] seed {seed}: {} invariant violation(s):\n{}\n{log}",
            violations.len(),
            shown.join("\n")
        );
    }
}

// ------------------------------------------------------------------ the database at the end

async fn select(db: &Db, sql: &'static str) -> Vec<AnyRow> {
    sqlx::query(sql)
        .fetch_all(db.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn int(r: &AnyRow, col: &str) -> i64 {
    r.try_get(col).unwrap_or_else(|e| panic!("{col}: {e}"))
}

fn opt_int(r: &AnyRow, col: &str) -> Option<i64> {
    r.try_get(col).unwrap_or_else(|e| panic!("{col}: {e}"))
}

fn text(r: &AnyRow, col: &str) -> String {
    r.try_get(col).unwrap_or_else(|e| panic!("{col}: {e}"))
}

fn opt_text(r: &AnyRow, col: &str) -> Option<String> {
    r.try_get(col).unwrap_or_else(|e| panic!("{col}: {e}"))
}

fn json_of(s: &Option<String>) -> Value {
    s.as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

#[derive(Debug)]
struct OrderRow {
    id: i64,
    subscription_id: i64,
    status: String,
    error: Option<String>,
    certificate_id: Option<i64>,
}

#[derive(Debug)]
struct AuthzRow {
    id: i64,
    status: String,
    chall_status: Option<String>,
}

#[derive(Debug)]
struct CertRow {
    id: i64,
    customer_id: i64,
    process_id: i64,
    certificate_type: String,
    acme_order_id: Option<i64>,
    serial_hex: String,
    der: Vec<u8>,
}

#[derive(Debug)]
struct ProcessRow {
    id: i64,
    customer_id: i64,
    kind: String,
    action: String,
    status: String,
    command: Value,
    txn: Value,
    subject_id: Option<i64>,
}

#[derive(Debug)]
struct TxnRow {
    id: i64,
    customer_id: i64,
    amount: i64,
    currency: String,
    process_id: Option<i64>,
    process_type: Option<String>,
    process_action: Option<String>,
    kind: String,
    subject_id: Option<i64>,
}

#[derive(Debug)]
struct SubRow {
    id: i64,
    months_paid: i64,
    created_at: i64,
    expiry_date: i64,
    deleted_at: Option<i64>,
}

#[derive(Debug)]
struct RequestRow {
    process_id: i64,
    customer_id: i64,
    status: String,
    certificate_id: Option<i64>,
    reserved: i64,
}

#[derive(Debug)]
struct CreditRow {
    customer_id: i64,
    currency: String,
    balance: i64,
    reservation: i64,
}

/// Every table the invariants read, read once after the last stop.
struct Snapshot {
    orders: Vec<OrderRow>,
    authzs: Vec<AuthzRow>,
    certs: Vec<CertRow>,
    processes: BTreeMap<i64, ProcessRow>,
    txns: Vec<TxnRow>,
    subs: BTreeMap<i64, SubRow>,
    requests: Vec<RequestRow>,
    /// Processes with a DCV entry not validated yet.
    unvalidated: HashSet<i64>,
    credit: Vec<CreditRow>,
}

impl Snapshot {
    async fn load(db: &Db) -> Snapshot {
        Snapshot {
            orders: load_orders(db).await,
            authzs: load_authzs(db).await,
            certs: load_certs(db).await,
            processes: load_processes(db).await,
            txns: load_txns(db).await,
            subs: load_subs(db).await,
            requests: load_requests(db).await,
            unvalidated: select(
                db,
                "SELECT process_id FROM dcv_entries WHERE status <> 'VALIDATED'",
            )
            .await
            .iter()
            .map(|r| int(r, "process_id"))
            .collect(),
            credit: load_credit(db).await,
        }
    }

    fn summary(&self) -> String {
        let count = |f: &dyn Fn(&TxnRow) -> bool| self.txns.iter().filter(|t| f(t)).count();
        let valid = self.orders.iter().filter(|o| o.status == "valid").count();
        format!(
            "{} ACME orders ({valid} valid), {} certificates, {} subscriptions, {} charges, {} refunds, {} certificate requests",
            self.orders.len(),
            self.certs.len(),
            self.subs.len(),
            count(&|t| t.kind == "CHARGE"),
            count(&|t| t.kind == "REFUND"),
            self.requests.len()
        )
    }
}

async fn load_orders(db: &Db) -> Vec<OrderRow> {
    let rows = select(
        db,
        "SELECT id, subscription_id, status, error, certificate_id FROM acme_orders ORDER BY id",
    )
    .await;
    rows.iter()
        .map(|r| OrderRow {
            id: int(r, "id"),
            subscription_id: int(r, "subscription_id"),
            status: text(r, "status"),
            error: opt_text(r, "error"),
            certificate_id: opt_int(r, "certificate_id"),
        })
        .collect()
}

async fn load_authzs(db: &Db) -> Vec<AuthzRow> {
    let rows = select(
        db,
        "SELECT id, status, chall_status FROM acme_authzs ORDER BY id",
    )
    .await;
    rows.iter()
        .map(|r| AuthzRow {
            id: int(r, "id"),
            status: text(r, "status"),
            chall_status: opt_text(r, "chall_status"),
        })
        .collect()
}

async fn load_certs(db: &Db) -> Vec<CertRow> {
    let rows = select(
        db,
        "SELECT id, customer_id, process_id, certificate_type, acme_order_id, serial_hex, certificate_der \
         FROM certificates ORDER BY id",
    )
    .await;
    rows.iter()
        .map(|r| CertRow {
            id: int(r, "id"),
            customer_id: int(r, "customer_id"),
            process_id: int(r, "process_id"),
            certificate_type: text(r, "certificate_type"),
            acme_order_id: opt_int(r, "acme_order_id"),
            serial_hex: text(r, "serial_hex"),
            der: r.try_get("certificate_der").expect("certificate_der"),
        })
        .collect()
}

async fn load_processes(db: &Db) -> BTreeMap<i64, ProcessRow> {
    let rows = select(
        db,
        "SELECT id, customer_id, type, action, status, command, txn, subject_id FROM processes",
    )
    .await;
    rows.iter()
        .map(|r| {
            let p = ProcessRow {
                id: int(r, "id"),
                customer_id: int(r, "customer_id"),
                kind: text(r, "type"),
                action: text(r, "action"),
                status: text(r, "status"),
                command: json_of(&opt_text(r, "command")),
                txn: json_of(&opt_text(r, "txn")),
                subject_id: opt_int(r, "subject_id"),
            };
            (p.id, p)
        })
        .collect()
}

async fn load_txns(db: &Db) -> Vec<TxnRow> {
    let rows = select(
        db,
        "SELECT id, customer_id, amount, currency, process_id, process_type, process_action, kind, subject_id \
         FROM transactions ORDER BY id",
    )
    .await;
    rows.iter()
        .map(|r| TxnRow {
            id: int(r, "id"),
            customer_id: int(r, "customer_id"),
            amount: int(r, "amount"),
            currency: text(r, "currency"),
            process_id: opt_int(r, "process_id"),
            process_type: opt_text(r, "process_type"),
            process_action: opt_text(r, "process_action"),
            kind: text(r, "kind"),
            subject_id: opt_int(r, "subject_id"),
        })
        .collect()
}

async fn load_subs(db: &Db) -> BTreeMap<i64, SubRow> {
    let rows = select(
        db,
        "SELECT id, months_paid, created_at, expiry_date, deleted_at FROM subscriptions",
    )
    .await;
    rows.iter()
        .map(|r| {
            let s = SubRow {
                id: int(r, "id"),
                months_paid: int(r, "months_paid"),
                created_at: int(r, "created_at"),
                expiry_date: int(r, "expiry_date"),
                deleted_at: opt_int(r, "deleted_at"),
            };
            (s.id, s)
        })
        .collect()
}

async fn load_requests(db: &Db) -> Vec<RequestRow> {
    let rows = select(
        db,
        "SELECT process_id, customer_id, status, certificate_id, details FROM cert_requests ORDER BY process_id",
    )
    .await;
    rows.iter()
        .map(|r| RequestRow {
            process_id: int(r, "process_id"),
            customer_id: int(r, "customer_id"),
            status: text(r, "status"),
            certificate_id: opt_int(r, "certificate_id"),
            reserved: json_of(&Some(text(r, "details")))["reserved"]
                .as_i64()
                .unwrap_or(0),
        })
        .collect()
}

async fn load_credit(db: &Db) -> Vec<CreditRow> {
    let rows = select(
        db,
        "SELECT customer_id, currency, balance, reservation FROM credit_accounts",
    )
    .await;
    rows.iter()
        .map(|r| CreditRow {
            customer_id: int(r, "customer_id"),
            currency: text(r, "currency"),
            balance: int(r, "balance"),
            reservation: int(r, "reservation"),
        })
        .collect()
}

// ------------------------------------------------------------------ invariants

/// Every violation, each naming its invariant and the offending rows.
fn check_all(s: &Snapshot, acks: &Acks) -> Vec<String> {
    let mut v = Vec::new();
    check_orders(s, &mut v);
    check_certificates(s, &mut v);
    check_charges(s, &mut v);
    check_refunds(s, &mut v);
    check_subscriptions(s, &mut v);
    check_requests(s, &mut v);
    check_balances(s, &mut v);
    check_acknowledged(s, acks, &mut v);
    v
}

/// Valid with a certificate of this order, or invalid with an error; nothing
/// unfinished on a live subscription, no challenge stuck in processing.
fn check_orders(s: &Snapshot, v: &mut Vec<String>) {
    let certs: HashMap<i64, &CertRow> = s.certs.iter().map(|c| (c.id, c)).collect();
    for o in &s.orders {
        let live = s
            .subs
            .get(&o.subscription_id)
            .is_some_and(|x| x.deleted_at.is_none());
        match o.status.as_str() {
            "valid" => match o.certificate_id.and_then(|id| certs.get(&id)) {
                Some(c) if c.acme_order_id == Some(o.id) => {}
                Some(c) => v.push(format!(
                    "[order] valid order's certificate belongs to another order: {o:?} {c:?}"
                )),
                None => v.push(format!(
                    "[order] valid order without its certificate: {o:?}"
                )),
            },
            "invalid" if o.error.is_none() => {
                v.push(format!("[order] invalid order without an error: {o:?}"))
            }
            "invalid" => {}
            "pending" | "ready" | "processing" if live => v.push(format!(
                "[order] unfinished after the clean run (not resumable): {o:?}"
            )),
            "pending" | "ready" => {}
            _ => v.push(format!("[order] unknown or stuck status: {o:?}")),
        }
    }
    for a in &s.authzs {
        if a.status == "pending" && a.chall_status.as_deref() == Some("processing") {
            v.push(format!(
                "[authz] {}: validation never finished after the clean run: {a:?}",
                a.id
            ));
        }
    }
}

/// Each certificate has its record and each issuing process its certificate.
fn check_certificates(s: &Snapshot, v: &mut Vec<String>) {
    let orders: HashMap<i64, &OrderRow> = s.orders.iter().map(|o| (o.id, o)).collect();
    let requests: HashMap<i64, &RequestRow> =
        s.requests.iter().map(|r| (r.process_id, r)).collect();
    let mut serials = HashSet::new();
    for c in &s.certs {
        let brief = format!(
            "certificate {} serial {} process {} order {:?}",
            c.id, c.serial_hex, c.process_id, c.acme_order_id
        );
        if !serials.insert(&c.serial_hex) {
            v.push(format!("[certificate] serial issued twice: {brief}"));
        }
        match s.processes.get(&c.process_id) {
            Some(p) if p.customer_id == c.customer_id => {}
            p => v.push(format!(
                "[certificate] no process of its customer: {brief}; {p:?}"
            )),
        }
        if c.certificate_type == "ACME_SUBSCRIPTION" {
            let order = c.acme_order_id.and_then(|id| orders.get(&id));
            if !order.is_some_and(|o| o.status == "valid" && o.certificate_id == Some(c.id)) {
                v.push(format!(
                    "[certificate] ACME certificate without its valid order: {brief}; {order:?}"
                ));
            }
        } else {
            let r = requests.get(&c.process_id);
            if !r.is_some_and(|r| r.status == "ISSUED" && r.certificate_id == Some(c.id)) {
                v.push(format!(
                    "[certificate] REST certificate without its issued request: {brief}; {r:?}"
                ));
            }
        }
    }
    let issued: HashSet<i64> = s.certs.iter().map(|c| c.process_id).collect();
    for p in s.processes.values() {
        if p.kind == "acmeSubscription" && p.action == "issue" && !issued.contains(&p.id) {
            v.push(format!(
                "[certificate] issue process without certificate: {p:?}"
            ));
        }
    }
}

/// Each charge belongs to a completed process that shows it; one per process.
fn check_charges(s: &Snapshot, v: &mut Vec<String>) {
    let mut per_process: HashMap<i64, usize> = HashMap::new();
    for t in s.txns.iter().filter(|t| t.kind == "CHARGE") {
        let Some(pid) = t.process_id else {
            v.push(format!("[charge] without process: {t:?}"));
            continue;
        };
        *per_process.entry(pid).or_default() += 1;
        let Some(p) = s.processes.get(&pid) else {
            v.push(format!("[charge] its process does not exist: {t:?}"));
            continue;
        };
        let shown = p.txn[&t.currency].as_i64();
        if p.status != "COMPLETED"
            || p.customer_id != t.customer_id
            || t.process_type.as_deref() != Some(p.kind.as_str())
            || t.process_action.as_deref() != Some(p.action.as_str())
            || shown != Some(-t.amount)
            || t.amount >= 0
        {
            v.push(format!(
                "[charge] {} does not match its process: {t:?} vs {p:?}",
                t.id
            ));
        }
    }
    for (pid, n) in per_process {
        if n > 1 {
            v.push(format!("[charge] process {pid} charged {n} times"));
        }
    }
}

/// Refunds only for deleted subscriptions, by their delete process, one per
/// charge and equal to it.
fn check_refunds(s: &Snapshot, v: &mut Vec<String>) {
    let mut refunded: BTreeMap<i64, (i64, usize, HashSet<i64>)> = BTreeMap::new();
    for t in s.txns.iter().filter(|t| t.kind == "REFUND") {
        let sub = t.subject_id.and_then(|id| s.subs.get(&id));
        let p = t.process_id.and_then(|id| s.processes.get(&id));
        let ok = sub.is_some_and(|x| x.deleted_at.is_some())
            && p.is_some_and(|p| p.action == "delete" && p.status == "COMPLETED")
            && t.amount > 0;
        if !ok {
            v.push(format!(
                "[refund] not a completed delete of a deleted subscription: {t:?}; {sub:?}; {p:?}"
            ));
            continue;
        }
        let e = refunded.entry(t.subject_id.unwrap_or(0)).or_default();
        e.0 += t.amount;
        e.1 += 1;
        e.2.insert(t.process_id.unwrap_or(0));
    }
    for (sub, (amount, n, processes)) in refunded {
        let charges: Vec<&TxnRow> = s
            .txns
            .iter()
            .filter(|t| {
                t.kind == "CHARGE"
                    && t.process_type.as_deref() == Some("acmeSubscription")
                    && t.subject_id == Some(sub)
            })
            .collect();
        let charged: i64 = charges.iter().map(|t| -t.amount).sum();
        if processes.len() != 1 || n != charges.len() || amount != charged {
            v.push(format!(
                "[refund] subscription {sub}: {n} refunds of {amount} by processes {processes:?} for {} charges of {charged}",
                charges.len()
            ));
        }
    }
}

/// Each subscription was created once and paid for every month it has.
fn check_subscriptions(s: &Snapshot, v: &mut Vec<String>) {
    let mut months: HashMap<i64, i64> = HashMap::new();
    let mut creates: HashMap<i64, usize> = HashMap::new();
    for t in s
        .txns
        .iter()
        .filter(|t| t.kind == "CHARGE" && t.process_type.as_deref() == Some("acmeSubscription"))
    {
        let (Some(sub), Some(p)) = (
            t.subject_id,
            t.process_id.and_then(|id| s.processes.get(&id)),
        ) else {
            continue;
        };
        *months.entry(sub).or_default() += p.command["period"].as_i64().unwrap_or(0);
        if p.action == "create" {
            *creates.entry(sub).or_default() += 1;
        }
    }
    for sub in s.subs.values() {
        let paid = months.get(&sub.id).copied().unwrap_or(0);
        let created = creates.get(&sub.id).copied().unwrap_or(0);
        let expiry = certhub_domain::time::add_months(sub.created_at, sub.months_paid);
        if created != 1 || paid != sub.months_paid || expiry != sub.expiry_date {
            v.push(format!(
                "[subscription] {created} create charge(s), {paid} months charged: {sub:?} (expected expiry {expiry})"
            ));
        }
    }
    for p in s.processes.values() {
        let charged_action = matches!(p.action.as_str(), "create" | "renew" | "delete");
        if p.kind == "acmeSubscription" && charged_action && p.status != "COMPLETED" {
            v.push(format!("[subscription] process left {}: {p:?}", p.status));
        }
        if p.kind == "acmeSubscription" && p.action == "renew" && p.status == "COMPLETED" {
            let charged = s
                .txns
                .iter()
                .any(|t| t.kind == "CHARGE" && t.process_id == Some(p.id));
            if !charged || p.subject_id.is_none_or(|id| !s.subs.contains_key(&id)) {
                v.push(format!(
                    "[subscription] renewal without charge or subscription: {p:?}"
                ));
            }
        }
    }
}

/// Issued requests are charged what they reserved, once; others never; none
/// with every name validated is left pending.
fn check_requests(s: &Snapshot, v: &mut Vec<String>) {
    for r in &s.requests {
        let charges: Vec<&TxnRow> = s
            .txns
            .iter()
            .filter(|t| t.kind == "CHARGE" && t.process_id == Some(r.process_id))
            .collect();
        let charged: i64 = charges.iter().map(|t| -t.amount).sum();
        let ok = match r.status.as_str() {
            "ISSUED" => {
                r.certificate_id
                    .is_some_and(|id| s.certs.iter().any(|c| c.id == id))
                    && charged == r.reserved
                    && charges.len() == usize::from(r.reserved > 0)
            }
            // Every name validated: the engine must have issued it by now.
            "PENDING" if !s.unvalidated.contains(&r.process_id) => false,
            _ => charges.is_empty(),
        };
        if !ok {
            v.push(format!(
                "[request] charged {charged} in {} row(s), or pending with every name validated: {r:?}",
                charges.len()
            ));
        }
    }
}

/// Top-ups − charges + refunds = balance + reservation, to the cent; the
/// reservation is exactly what pending requests hold.
fn check_balances(s: &Snapshot, v: &mut Vec<String>) {
    for a in &s.credit {
        let ledger: i64 = s
            .txns
            .iter()
            .filter(|t| t.customer_id == a.customer_id && t.currency == a.currency)
            .map(|t| t.amount)
            .sum();
        let held: i64 = s
            .requests
            .iter()
            .filter(|r| r.customer_id == a.customer_id && r.status == "PENDING")
            .map(|r| r.reserved)
            .sum();
        if ledger != a.balance + a.reservation || held != a.reservation || a.balance < 0 {
            v.push(format!(
                "[ledger] ledger sum {ledger}, pending reservations {held}: {a:?}"
            ));
        }
    }
}

/// Everything a client saw acknowledged is in the database.
fn check_acknowledged(s: &Snapshot, acks: &Acks, v: &mut Vec<String>) {
    let completed = |pid: i64| {
        s.processes
            .get(&pid)
            .is_some_and(|p| p.status == "COMPLETED")
    };
    for (id, pid) in &acks.subscriptions {
        if !s.subs.contains_key(id) || !completed(*pid) {
            v.push(format!(
                "[ack] created subscription {id} (process {pid}) is missing"
            ));
        }
    }
    for (id, pid) in &acks.renewals {
        let charged = s
            .txns
            .iter()
            .any(|t| t.kind == "CHARGE" && t.process_id == Some(*pid));
        if !completed(*pid) || !charged {
            v.push(format!(
                "[ack] renewal of subscription {id} (process {pid}) is missing or unpaid"
            ));
        }
    }
    for (id, pid) in &acks.deletions {
        let deleted = s.subs.get(id).is_some_and(|x| x.deleted_at.is_some());
        if !deleted || !completed(*pid) {
            v.push(format!(
                "[ack] deletion of subscription {id} (process {pid}) is missing"
            ));
        }
    }
    for (pid, cert) in &acks.requests {
        let known = s.requests.iter().any(|r| r.process_id == *pid);
        let issued = cert.is_none_or(|id| s.certs.iter().any(|c| c.id == id));
        if !known || !issued {
            v.push(format!(
                "[ack] certificate request {pid} (certificate {cert:?}) is missing"
            ));
        }
    }
    let orders: HashMap<i64, &OrderRow> = s.orders.iter().map(|o| (o.id, o)).collect();
    for id in &acks.orders {
        if !orders.contains_key(id) {
            v.push(format!("[ack] ACME order {id} is missing"));
        }
    }
    for id in &acks.finalized {
        let valid = orders.get(id).is_some_and(|o| o.status == "valid");
        if !valid {
            v.push(format!("[ack] finalized ACME order {id} is not valid"));
        }
    }
    let stored: HashSet<&[u8]> = s.certs.iter().map(|c| c.der.as_slice()).collect();
    let lost = acks
        .downloaded
        .iter()
        .filter(|d| !stored.contains(d.as_slice()))
        .count();
    if lost > 0 {
        v.push(format!(
            "[ack] {lost} downloaded certificate(s) are not in the database"
        ));
    }
}
