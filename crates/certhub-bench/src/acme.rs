//! ACME load: each worker registers its own account (EAB), then runs
//! complete issuance flows until the shared order budget is spent.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use certhub_jose::sign::{SigningKey, sign_eab, sign_jws};
use certhub_jose::{Alg, MacAlg, b64};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::http01::{self, Tokens};
use crate::proc_stat;
use crate::stats::Recorder;

#[derive(clap::Args, Debug, Clone)]
pub struct AcmeOpts {
    /// The ACME directory URL.
    #[arg(long)]
    directory: String,
    /// EAB key identifier.
    #[arg(long)]
    eab_kid: String,
    /// EAB MAC key, base64url (as certhub's hmacKey and Pebble's config).
    #[arg(long)]
    eab_hmac: String,
    /// Extra trusted root (PEM) for the directory's HTTPS certificate.
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Orders to complete in total (shared by the workers).
    #[arg(long, default_value_t = 100)]
    orders: usize,
    /// Where our http-01 responder listens; the server must connect here.
    #[arg(long)]
    http01_listen: SocketAddr,
    #[arg(long, default_value_t = 1)]
    names_per_order: usize,
    /// Names are b0.DOMAIN .. b{pool-1}.DOMAIN (a certhub subscription must list them).
    #[arg(long, default_value = "bench.example.com")]
    domain: String,
    #[arg(long, default_value_t = 250)]
    name_pool: usize,
    /// The server's pid, to report its CPU time per issued certificate.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Label printed with the summary line.
    #[arg(long, default_value = "acme")]
    label: String,
}

/// One ACME directory.
#[derive(Debug, Clone)]
struct Directory {
    new_nonce: String,
    new_account: String,
    new_order: String,
}

struct Resp {
    status: StatusCode,
    location: Option<String>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).context("response is not JSON")
    }
}

/// One ACME client: an account key, its URL, the next nonce.
struct Client {
    http: reqwest::Client,
    dir: Directory,
    key: SigningKey,
    kid: Option<String>,
    nonce: Option<String>,
    rec: Recorder,
}

impl Client {
    async fn fresh_nonce(&mut self) -> anyhow::Result<String> {
        let t = Instant::now();
        let r = self.http.head(&self.dir.new_nonce).send().await?;
        self.rec.record("newNonce", t.elapsed());
        header(&r, "replay-nonce").context("newNonce without Replay-Nonce")
    }

    /// A signed POST, retried on badNonce (the server's fresh nonce is used).
    async fn post(&mut self, op: &'static str, url: &str, payload: &[u8]) -> anyhow::Result<Resp> {
        for _ in 0..5 {
            let nonce = match self.nonce.take() {
                Some(n) => n,
                None => self.fresh_nonce().await?,
            };
            let body = sign_jws(&self.key, url, Some(&nonce), self.kid.as_deref(), payload)?;
            let t = Instant::now();
            let r = self
                .http
                .post(url)
                .header("content-type", "application/jose+json")
                .body(body.to_string())
                .send()
                .await?;
            let status = r.status();
            self.nonce = header(&r, "replay-nonce");
            let location = header(&r, "location");
            let bytes = r.bytes().await?.to_vec();
            self.rec.record(op, t.elapsed());
            let resp = Resp {
                status,
                location,
                body: bytes,
            };
            if status == StatusCode::BAD_REQUEST
                && resp
                    .json()
                    .ok()
                    .and_then(|v| v["type"].as_str().map(|s| s.ends_with(":badNonce")))
                    == Some(true)
            {
                self.rec.error(format!("{op}: badNonce (retried)"));
                continue;
            }
            return Ok(resp);
        }
        bail!("{op}: badNonce five times")
    }

    async fn post_as_get(&mut self, op: &'static str, url: &str) -> anyhow::Result<Resp> {
        self.post(op, url, b"").await
    }

    async fn register(&mut self, o: &AcmeOpts, hmac: &[u8]) -> anyhow::Result<()> {
        let url = self.dir.new_account.clone();
        let eab = sign_eab(&o.eab_kid, hmac, MacAlg::Hs256, self.key.public_jwk(), &url);
        let payload = json!({
            "termsOfServiceAgreed": true,
            "contact": ["mailto:bench@example.com"],
            "externalAccountBinding": eab,
        });
        let r = self
            .post("newAccount", &url, payload.to_string().as_bytes())
            .await?;
        if !r.status.is_success() {
            bail!(
                "newAccount: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
        self.kid = Some(r.location.context("newAccount without Location")?);
        Ok(())
    }

    /// One complete issuance; returns the PEM chain length.
    async fn issue(&mut self, names: &[String], tokens: &Tokens) -> anyhow::Result<usize> {
        let ids: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect();
        let new_order = self.dir.new_order.clone();
        let r = self
            .post(
                "newOrder",
                &new_order,
                json!({"identifiers": ids}).to_string().as_bytes(),
            )
            .await?;
        expect_ok("newOrder", &r)?;
        let order_url = r.location.clone().context("newOrder without Location")?;
        let order = r.json()?;
        let finalize = str_field(&order, "finalize")?;
        let authzs: Vec<String> = order["authorizations"]
            .as_array()
            .context("order without authorizations")?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();

        let mut used_tokens = Vec::new();
        for authz in &authzs {
            let a = self.post_as_get("authz", authz).await?;
            expect_ok("authz", &a)?;
            let a = a.json()?;
            if a["status"] == "valid" {
                self.rec
                    .error("authz already valid (reused; no http-01 done)");
                continue;
            }
            let ch = a["challenges"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "http-01"))
                .context("no http-01 challenge")?;
            let token = str_field(ch, "token")?;
            let ch_url = str_field(ch, "url")?;
            tokens.set(&token, self.key.public_jwk().key_authorization(&token));
            used_tokens.push(token);
            let r = self.post("challenge", &ch_url, b"{}").await?;
            expect_ok("challenge", &r)?;
        }

        let result = self.finish(&order_url, &finalize, names).await;
        for t in &used_tokens {
            tokens.remove(t);
        }
        result
    }

    /// Waits for `ready`, finalizes, waits for `valid`, downloads.
    async fn finish(
        &mut self,
        order_url: &str,
        finalize: &str,
        names: &[String],
    ) -> anyhow::Result<usize> {
        let order = self.poll(order_url, &["ready"]).await?;
        let _ = order;
        let csr = csr(names)?;
        let r = self
            .post(
                "finalize",
                finalize,
                json!({"csr": b64::encode(csr)}).to_string().as_bytes(),
            )
            .await?;
        expect_ok("finalize", &r)?;
        let mut order = r.json()?;
        if order["status"] != "valid" {
            order = self.poll(order_url, &["valid"]).await?;
        }
        let cert_url = str_field(&order, "certificate")?;
        let r = self.post_as_get("certificate", &cert_url).await?;
        expect_ok("certificate", &r)?;
        if !r.body.starts_with(b"-----BEGIN CERTIFICATE-----") {
            bail!("certificate: not a PEM chain");
        }
        Ok(r.body.len())
    }

    /// Polls an order until its status is one of `want`. The same backoff
    /// for every server (Retry-After is ignored so runs are comparable).
    async fn poll(&mut self, url: &str, want: &[&str]) -> anyhow::Result<Value> {
        let mut wait = Duration::from_millis(5);
        for _ in 0..60 {
            let r = self.post_as_get("pollOrder", url).await?;
            expect_ok("pollOrder", &r)?;
            let v = r.json()?;
            let status = v["status"].as_str().unwrap_or("");
            if want.contains(&status) {
                return Ok(v);
            }
            if status == "invalid" {
                bail!("order invalid: {}", v["error"]);
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(200));
        }
        bail!("order never became {want:?}")
    }
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn str_field(v: &Value, name: &str) -> anyhow::Result<String> {
    v[name]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("missing {name} in {v}"))
}

fn expect_ok(op: &str, r: &Resp) -> anyhow::Result<()> {
    if r.status.is_success() {
        return Ok(());
    }
    let v = r.json().unwrap_or(Value::Null);
    let kind = v["type"].as_str().unwrap_or("?");
    bail!(
        "{op}: {} {kind} {}",
        r.status.as_u16(),
        v["detail"].as_str().unwrap_or("")
    )
}

/// A CSR for `names` under a fresh P-256 key, the first name as CN.
fn csr(names: &[String]) -> anyhow::Result<Vec<u8>> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(first) = names.first() {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, first.as_str());
    }
    Ok(params.serialize_request(&key)?.der().to_vec())
}

/// The names of a worker's `k`-th order: a sliding window over the pool, so
/// an account does not meet a name twice (which would reuse its authz)
/// while it has done fewer than pool / names_per_order orders.
fn order_names(o: &AcmeOpts, k: usize) -> Vec<String> {
    (0..o.names_per_order)
        .map(|j| {
            format!(
                "b{}.{}",
                (k * o.names_per_order + j) % o.name_pool,
                o.domain
            )
        })
        .collect()
}

async fn directory(http: &reqwest::Client, url: &str) -> anyhow::Result<Directory> {
    let v: Value = http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(Directory {
        new_nonce: str_field(&v, "newNonce")?,
        new_account: str_field(&v, "newAccount")?,
        new_order: str_field(&v, "newOrder")?,
    })
}

pub async fn run(o: AcmeOpts) -> anyhow::Result<()> {
    let hmac = b64::decode(o.eab_hmac.trim(), "--eab-hmac").map_err(|e| anyhow!("{e}"))?;
    let http = crate::http_client(o.ca_cert.as_ref())?;
    let dir = directory(&http, &o.directory).await?;
    let tokens = Tokens::default();
    http01::start(o.http01_listen, tokens.clone()).await?;
    if o.orders / o.concurrency.max(1) + 1 > o.name_pool / o.names_per_order.max(1) {
        eprintln!("warning: workers will repeat names; later orders may reuse authorizations");
    }

    // Phase 1: every worker registers its account (not timed as issuance).
    let t_setup = Instant::now();
    let mut setup = Vec::new();
    for _ in 0..o.concurrency {
        let (http, dir, o, hmac) = (http.clone(), dir.clone(), o.clone(), hmac.clone());
        setup.push(tokio::spawn(async move {
            let mut c = Client {
                http,
                dir,
                key: SigningKey::generate(Alg::Es256)?,
                kid: None,
                nonce: None,
                rec: Recorder::default(),
            };
            c.register(&o, &hmac).await?;
            anyhow::Ok(c)
        }));
    }
    let mut clients = Vec::new();
    for h in setup {
        clients.push(h.await??);
    }
    eprintln!(
        "{} accounts in {:.2}s",
        clients.len(),
        t_setup.elapsed().as_secs_f64()
    );

    // Phase 2: the timed issuance load.
    let next = Arc::new(AtomicUsize::new(0));
    let cpu0 = o.server_pid.and_then(proc_stat::cpu_seconds);
    // This process's own CPU (the ACME clients and the http-01 responder):
    // it shares the machine with the server, so it bounds the throughput.
    let own0 = proc_stat::cpu_seconds(std::process::id());
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for mut c in clients {
        let (next, o, tokens) = (next.clone(), o.clone(), tokens.clone());
        workers.push(tokio::spawn(async move {
            let mut issued = 0usize;
            let mut k = 0usize;
            while next.fetch_add(1, Ordering::Relaxed) < o.orders {
                let names = order_names(&o, k);
                k += 1;
                let t = Instant::now();
                match c.issue(&names, &tokens).await {
                    Ok(_) => {
                        c.rec.record("issuance", t.elapsed());
                        issued += 1;
                    }
                    Err(e) => c.rec.error(format!("{e:#}")),
                }
            }
            (c.rec, issued)
        }));
    }
    let mut rec = Recorder::default();
    let mut issued = 0;
    for w in workers {
        let (r, n) = w.await?;
        rec.merge(r);
        issued += n;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = o.server_pid.and_then(proc_stat::cpu_seconds);
    let own1 = proc_stat::cpu_seconds(std::process::id());
    let mem = o.server_pid.and_then(proc_stat::memory_mib);

    rec.print();
    let (p50, p99, _) = rec.percentiles("issuance").unwrap_or_default();
    let per_cert = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if issued > 0 => Some((b - a) * 1000.0 / issued as f64),
        _ => None,
    };
    let (cpu_ms, own_ms) = (per_cert(cpu0, cpu1), per_cert(own0, own1));
    let requests: usize = [
        "newOrder",
        "authz",
        "challenge",
        "pollOrder",
        "finalize",
        "certificate",
        "newNonce",
    ]
    .iter()
    .map(|op| rec.count(op))
    .sum();
    println!(
        "SUMMARY label={} concurrency={} issued={} errors={} seconds={:.2} certs_per_s={:.1} p50_ms={:.1} p99_ms={:.1} requests_per_cert={:.1} server_cpu_ms_per_cert={} client_cpu_ms_per_cert={} server_rss_mib={} server_hwm_mib={}",
        o.label,
        o.concurrency,
        issued,
        rec.error_count(),
        secs,
        issued as f64 / secs,
        p50,
        p99,
        requests as f64 / issued.max(1) as f64,
        cpu_ms.map_or("n/a".into(), |c| format!("{c:.2}")),
        own_ms.map_or("n/a".into(), |c| format!("{c:.2}")),
        mem.map_or("n/a".into(), |m| format!("{:.1}", m.0)),
        mem.map_or("n/a".into(), |m| format!("{:.1}", m.1)),
    );
    if issued == 0 {
        bail!("no certificate issued");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        o: AcmeOpts,
    }

    #[test]
    fn order_names_slide_over_the_pool() {
        let w = Wrap::parse_from([
            "x",
            "--directory",
            "https://d",
            "--eab-kid",
            "k",
            "--eab-hmac",
            "aGk",
            "--http01-listen",
            "127.0.0.1:1",
            "--names-per-order",
            "2",
            "--name-pool",
            "5",
        ]);
        assert_eq!(
            order_names(&w.o, 0),
            ["b0.bench.example.com", "b1.bench.example.com"]
        );
        assert_eq!(
            order_names(&w.o, 2),
            ["b4.bench.example.com", "b0.bench.example.com"]
        );
    }

    #[test]
    fn csr_is_der() {
        let der = csr(&["a.example".into()]).unwrap();
        assert_eq!(der[0], 0x30);
    }
}
