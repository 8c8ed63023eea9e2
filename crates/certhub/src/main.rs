//! `certhub`: one program for the whole SSL automation platform.

use anyhow::Context;
use certhub::admin_acme::AcmeAccountCmd;
use certhub::admin_certs::CertCmd;
use certhub::admin_subscriptions::{SubscriptionCmd, ValidationCmd};
use certhub::bootstrap::{self, Global, ServeOpts};
use certhub::serve;
use clap::{Parser, Subcommand};

/// glibc malloc was a quarter of the server's CPU on list requests
/// (`malloc_consolidate`, `unlink_chunk` under many small short-lived
/// allocations from row decoding and JSON); see BENCHMARKS.md.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "certhub",
    version,
    about = "SSL automation platform: RTR-compatible REST API, ACME server and embedded CA"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the server (HTTPS API + ACME + PKI, and the lifecycle engine).
    Serve(ServeOpts),
    /// Apply database migrations and exit.
    Migrate,
    /// The certificate authority.
    #[command(subcommand)]
    Ca(CaCmd),
    /// Operator commands (work while `serve` runs).
    #[command(subcommand)]
    Admin(AdminCmd),
    /// The lifecycle engine.
    #[command(subcommand)]
    Lifecycle(LifecycleCmd),
}

#[derive(Subcommand, Debug)]
enum CaCmd {
    /// Create the CA hierarchy now (serve does it on first start).
    Init,
    /// List the issuers with fingerprints and expiry.
    Show,
    /// Print the root certificate (PEM), for REQUESTS_CA_BUNDLE / LEGO_CA_CERTIFICATES / curl --cacert.
    Bundle,
}

#[derive(Subcommand, Debug)]
enum AdminCmd {
    #[command(subcommand)]
    Customer(CustomerCmd),
    #[command(subcommand)]
    Apikey(ApikeyCmd),
    #[command(subcommand)]
    Credit(CreditCmd),
    #[command(subcommand)]
    Product(ProductCmd),
    #[command(subcommand)]
    Price(PriceCmd),
    /// Organisation validations (OV).
    #[command(subcommand)]
    Validation(ValidationCmd),
    /// ACME subscriptions.
    #[command(subcommand)]
    Subscription(SubscriptionCmd),
    /// ACME accounts.
    #[command(subcommand, name = "acme-account")]
    AcmeAccount(AcmeAccountCmd),
    /// Certificates.
    #[command(subcommand)]
    Cert(CertCmd),
    /// Messages certhub would have mailed (DCV approval links).
    Outbox,
    #[command(flatten)]
    Ops(certhub::admin_ops::OpsCmd),
}

#[derive(Subcommand, Debug)]
enum CustomerCmd {
    /// Create a customer.
    Create {
        handle: String,
        #[arg(long, default_value = "EUR")]
        currency: String,
    },
    /// List customers.
    List,
}

#[derive(Subcommand, Debug)]
enum ApikeyCmd {
    /// Create an API key; prints only the key, once.
    Create { handle: String },
    /// Revoke an API key by its id (as listed).
    Revoke { key_id: String },
    /// List a customer's API keys (ids only).
    List { handle: String },
}

#[derive(Subcommand, Debug)]
enum CreditCmd {
    /// Add credit in cents, in the customer's currency.
    Add { handle: String, cents: i64 },
}

#[derive(Subcommand, Debug)]
enum ProductCmd {
    /// List the products.
    List,
}

#[derive(Subcommand, Debug)]
enum PriceCmd {
    /// Set a price in cents (ACTION: CREATE, RENEW, REQUEST, EXTRA_DOMAIN, EXTRA_WILDCARD).
    Set {
        product: String,
        action: String,
        period: i64,
        cents: i64,
        #[arg(long, default_value = "EUR")]
        currency: String,
    },
}

#[derive(Subcommand, Debug)]
enum LifecycleCmd {
    /// Apply every transition due at an instant (default now), print each change, exit.
    Run {
        #[arg(long)]
        at: Option<String>,
    },
}

#[tokio::main]
async fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CERTHUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,hyper=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    match cli.cmd {
        Cmd::Serve(opts) => serve_cmd(g, opts).await,
        Cmd::Migrate => {
            let (_app, r) = bootstrap::open(g, &ServeOpts::default()).await?;
            println!("database {} is up to date", redact(&r.database_url));
            Ok(())
        }
        Cmd::Ca(c) => ca_cmd(g, c).await,
        Cmd::Admin(c) => admin_cmd(g, c).await,
        Cmd::Lifecycle(LifecycleCmd::Run { at }) => {
            let (app, _) = bootstrap::open(g, &ServeOpts::default()).await?;
            if let Some(at) = at {
                let ts = certhub_domain::time::parse_rfc3339(&at)
                    .with_context(|| format!("--at: '{at}' is not RFC 3339"))?;
                app.clock().set(ts);
            }
            let lines = app
                .run_due_jobs(&format!("cli-{}", std::process::id()))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for l in &lines {
                println!("{l}");
            }
            eprintln!(
                "{} change(s) at {}",
                lines.len(),
                certhub_domain::time::format_rtr(app.now())
            );
            Ok(())
        }
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(a)) if a > s => format!("{}://***{}", &url[..s], &url[a..]),
        _ => url.to_string(),
    }
}

async fn serve_cmd(g: &Global, mut opts: ServeOpts) -> anyhow::Result<()> {
    // Bind before the default public and PKI URLs are derived from the
    // address, so that `--listen HOST:0` serves on, and advertises, the port
    // the system picked.
    let listener = serve::bind(&bootstrap::resolve(g, &opts)?.listen).await?;
    opts.listen = Some(listener.local_addr()?.to_string());
    let (app, r) = bootstrap::open(g, &opts).await?;
    let tls = serve::tls_config(&app)?;
    let full = serve::app_router(app.clone());
    let plain = serve::pki_only_router(app.clone());
    tracing::info!(
        listen = %r.listen, public_url = %r.public_url, pki_url = %r.pki_url,
        data_dir = %r.data_dir.display(), database = %redact(&r.database_url),
        "certhub is serving HTTPS (root certificate: `certhub ca bundle`)"
    );
    eprintln!(
        "certhub listening on https://{} (public URL {}), data in {}",
        r.listen,
        r.public_url,
        r.data_dir.display()
    );
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(serve::serve_sniffing(
        listener,
        tls,
        full.clone(),
        plain.clone(),
    ));
    if let Some(h) = &r.http_listen {
        let l = serve::bind(h).await?;
        tracing::info!(listen = %h, "plain-HTTP listener (PKI paths, and the API when behind a TLS-terminating proxy)");
        tasks.spawn(serve::serve_plain(l, full));
    }
    let owner = format!("{}-{}", hostname(), std::process::id());
    tasks.spawn(serve::lifecycle_loop(app.clone(), owner));
    tokio::select! {
        _ = tokio::signal::ctrl_c() => { tracing::info!("shutting down"); }
        _ = tasks.join_next() => { anyhow::bail!("a listener stopped unexpectedly"); }
    }
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "node".into())
}

async fn ca_cmd(g: &Global, c: CaCmd) -> anyhow::Result<()> {
    let (app, _) = bootstrap::open(g, &ServeOpts::default()).await?;
    let pki = app.pki();
    match c {
        CaCmd::Init => {
            println!(
                "certificate authority ready: {}",
                pki.ca.issuer_ids().join(", ")
            );
        }
        CaCmd::Show => {
            for id in pki.ca.issuer_ids() {
                let der = pki.ca.issuer_cert_der(id).unwrap_or_default();
                let fp = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
                let not_after = pki
                    .ca
                    .issuer_not_after(id)
                    .map(certhub_domain::time::format_rtr)
                    .unwrap_or_default();
                println!(
                    "{id} sha256={} notAfter={not_after}",
                    certhub_ca::hex_upper(fp.as_ref())
                );
            }
        }
        CaCmd::Bundle => print!("{}", pki.ca.root_pem()),
    }
    Ok(())
}

async fn admin_cmd(g: &Global, c: AdminCmd) -> anyhow::Result<()> {
    // Backup/restore/audit open the database themselves (restore must not migrate the target).
    if let AdminCmd::Ops(c) = c {
        return certhub::admin_ops::run(g, c).await;
    }
    let (app, _) = bootstrap::open(g, &ServeOpts::default()).await?;
    let e = |e: certhub_app::AppError| anyhow::anyhow!("{e}");
    match c {
        AdminCmd::Customer(CustomerCmd::Create { handle, currency }) => {
            let c = app.create_customer(&handle, &currency).await.map_err(e)?;
            println!("{} {} {}", c.id, c.handle, c.currency);
        }
        AdminCmd::Customer(CustomerCmd::List) => {
            for c in app.db().list_customers().await? {
                println!("{} {} {}", c.id, c.handle, c.currency);
            }
        }
        AdminCmd::Apikey(ApikeyCmd::Create { handle }) => {
            let (_, key) = app.create_api_key(&handle).await.map_err(e)?;
            println!("{key}");
        }
        AdminCmd::Apikey(ApikeyCmd::Revoke { key_id }) => {
            let k = app.revoke_api_key(&key_id).await.map_err(e)?;
            println!("{} revoked", k.key_id);
        }
        AdminCmd::Apikey(ApikeyCmd::List { handle }) => {
            let c = app.customer(&handle).await.map_err(e)?;
            for k in app.db().list_api_keys(c.id).await? {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{} {state} created={}",
                    k.key_id,
                    certhub_domain::time::format_rtr(k.created_at)
                );
            }
        }
        AdminCmd::Credit(CreditCmd::Add { handle, cents }) => {
            app.add_credit(&handle, cents).await.map_err(e)?;
            let c = app.customer(&handle).await.map_err(e)?;
            for a in app.db().credit_accounts(c.id).await? {
                println!(
                    "{} {} balance={} reservation={}",
                    handle, a.currency, a.balance, a.reservation
                );
            }
        }
        AdminCmd::Product(ProductCmd::List) => {
            for p in app.db().products().await? {
                println!(
                    "{} {} {} {} periods={:?}{}",
                    p.product,
                    p.brand,
                    p.validation_type,
                    p.certificate_type,
                    p.periods,
                    if p.acme {
                        format!(" acme coverage={:?}", p.coverage).to_lowercase()
                    } else {
                        String::new()
                    }
                );
            }
        }
        AdminCmd::Price(PriceCmd::Set {
            product,
            action,
            period,
            cents,
            currency,
        }) => {
            app.set_price(&product, &action, period, &currency, cents)
                .await?;
            println!(
                "{product} {} {period} {} {cents}",
                action.to_uppercase(),
                currency.to_uppercase()
            );
        }
        AdminCmd::Validation(c) => certhub::admin_subscriptions::run_validation(&app, c).await?,
        AdminCmd::Subscription(c) => {
            certhub::admin_subscriptions::run_subscription(&app, c).await?
        }
        AdminCmd::AcmeAccount(c) => certhub::admin_acme::run(&app, c).await?,
        AdminCmd::Cert(c) => certhub::admin_certs::run_cert(&app, c).await?,
        AdminCmd::Outbox => certhub::admin_certs::run_outbox(&app).await?,
        AdminCmd::Ops(c) => certhub::admin_ops::run(g, c).await?,
    }
    Ok(())
}
