//! `certhub-bench`: a load generator for ACME servers and RTR-compatible
//! REST APIs. See BENCHMARKS.md at the repository root for how it is used.
//!
//! * `acme`: complete RFC 8555 issuance flows (EAB account per worker,
//!   newOrder, http-01 answered by our own responder, finalize, download);
//! * `rest`: a mix of subscription/certificate gets and lists;
//! * `seed`: inserts many subscriptions straight into a certhub database,
//!   so list latency can be measured against a realistic table size.

mod acme;
mod http01;
mod proc_stat;
mod rest;
mod stats;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "certhub-bench",
    about = "Load generator for ACME and RTR REST servers"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Complete ACME issuance flows against a directory URL.
    Acme(acme::AcmeOpts),
    /// A REST mix (get/list subscriptions, list certificates).
    Rest(rest::RestOpts),
    /// Insert N DV ACME subscriptions for a customer directly into a certhub database.
    Seed {
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        customer: String,
        #[arg(long, default_value_t = 1_000_000)]
        count: i64,
    },
}

/// Builds the HTTP client every mode uses: keep-alive, a big idle pool, and
/// optionally one extra trusted root (for test CAs).
pub(crate) fn http_client(ca_cert: Option<&PathBuf>) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(std::time::Duration::from_secs(60));
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem).context("--ca-cert is not PEM")?;
        b = b.tls_certs_only([cert]);
    }
    Ok(b.build()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Acme(o) => acme::run(o).await,
        Cmd::Rest(o) => rest::run(o).await,
        Cmd::Seed {
            database_url,
            customer,
            count,
        } => seed(&database_url, &customer, count).await,
    }
}

async fn seed(url: &str, handle: &str, count: i64) -> anyhow::Result<()> {
    let db = certhub_store::Db::connect(url).await?;
    let cust = db
        .customer_by_handle(handle)
        .await?
        .with_context(|| format!("no customer {handle}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let now = i64::try_from(now)?;
    // Everything expires in a year: nothing becomes due during a benchmark.
    let later = now + 365 * 86_400;
    db.bench_seed_subscriptions(cust.id, &cust.handle, count, 0, later, later)
        .await?;
    println!("seeded {count} subscriptions for {handle}");
    db.close().await;
    Ok(())
}
