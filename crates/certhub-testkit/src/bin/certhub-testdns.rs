//! `certhub-testdns --dns 127.0.0.1:8053 --mgmt 127.0.0.1:8055
//! [--default-a 127.0.0.1] [--http01 127.0.0.1:5002]`
//!
//! A DNS server for shell interop tests, driven through a
//! pebble-challtestsrv-compatible HTTP management API.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context, Result, bail};
use certhub_testkit::{Http01Server, TestDns, mgmt_router};

struct Args {
    dns: SocketAddr,
    mgmt: SocketAddr,
    default_a: Option<Ipv4Addr>,
    http01: Option<SocketAddr>,
}

const USAGE: &str = "usage: certhub-testdns --dns HOST:PORT --mgmt HOST:PORT [--default-a IPV4] [--http01 HOST:PORT]";

fn parse_args() -> Result<Args> {
    let mut args = Args {
        dns: "127.0.0.1:8053".parse()?,
        mgmt: "127.0.0.1:8055".parse()?,
        default_a: None,
        http01: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--dns" => args.dns = value.parse().context("--dns")?,
            "--mgmt" => args.mgmt = value.parse().context("--mgmt")?,
            "--default-a" | "--defaultIPv4" => {
                args.default_a = Some(value.parse().context("--default-a")?);
            }
            "--http01" => args.http01 = Some(value.parse().context("--http01")?),
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = parse_args()?;
    let dns = TestDns::start_on(args.dns).await?;
    dns.set_default_a(args.default_a);
    let http01 = match args.http01 {
        Some(addr) => Some(Http01Server::start_on(addr).await?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.mgmt)
        .await
        .with_context(|| format!("binding management API on {}", args.mgmt))?;
    tracing::info!(dns = %dns.addr(), mgmt = %args.mgmt, http01 = ?http01.as_ref().map(|h| h.addr()), "certhub-testdns ready");
    let app = mgmt_router(dns.clone(), http01.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
