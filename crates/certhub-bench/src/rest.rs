//! REST load: a mix of `GET /v2/ssl/acme/{id}`, the first 100-entity page
//! of `/v2/ssl/acme` (with its total) and the first page of
//! `/v2/ssl/certificates`, over keep-alive connections.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::proc_stat;
use crate::stats::Recorder;

#[derive(clap::Args, Debug, Clone)]
pub struct RestOpts {
    /// Base URL, e.g. https://localhost:8443 (paths /v2/... are appended).
    #[arg(long)]
    base: String,
    /// API key (sent as `Authorization: ApiKey KEY`).
    #[arg(long)]
    key: String,
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Weights get:list-acme:list-certs, e.g. 6:2:2 or 1:0:0 for gets only.
    #[arg(long, default_value = "6:2:2")]
    mix: String,
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long, default_value = "rest")]
    label: String,
}

const OPS: [&str; 3] = ["get acme/{id}", "list acme limit=100", "list certificates"];

fn parse_mix(s: &str) -> anyhow::Result<[usize; 3]> {
    let parts: Vec<usize> = s
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("--mix must be three integers a:b:c")?;
    match parts[..] {
        [a, b, c] if a + b + c > 0 => Ok([a, b, c]),
        _ => bail!("--mix must be three integers a:b:c, not all zero"),
    }
}

/// The operation of request number `i` under weights `mix` (deterministic
/// round robin, so every run sends the same sequence).
fn op_for(i: usize, mix: [usize; 3]) -> usize {
    let mut slot = i % (mix[0] + mix[1] + mix[2]);
    for (op, w) in mix.iter().enumerate() {
        if slot < *w {
            return op;
        }
        slot -= w;
    }
    0
}

pub async fn run(o: RestOpts) -> anyhow::Result<()> {
    let mix = parse_mix(&o.mix)?;
    let http = crate::http_client(o.ca_cert.as_ref())?;
    let auth = format!("ApiKey {}", o.key);
    let base = o.base.trim_end_matches('/').to_string();

    // Ids to GET: the first page of the subscriptions list.
    let page: Value = http
        .get(format!("{base}/v2/ssl/acme?limit=1000&total=false"))
        .header("authorization", &auth)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let ids: Vec<i64> = page["entities"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["id"].as_i64()).collect())
        .unwrap_or_default();
    if ids.is_empty() && mix[0] > 0 {
        bail!("the customer has no ACME subscription to GET");
    }
    let ids = Arc::new(ids);

    let next = Arc::new(AtomicUsize::new(0));
    let cpu0 = o.server_pid.and_then(proc_stat::cpu_seconds);
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..o.concurrency {
        let (http, auth, base, ids, next) = (
            http.clone(),
            auth.clone(),
            base.clone(),
            ids.clone(),
            next.clone(),
        );
        let n = o.requests;
        workers.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let op = op_for(i, mix);
                let url = match op {
                    0 => format!("{base}/v2/ssl/acme/{}", ids[i % ids.len().max(1)]),
                    1 => format!("{base}/v2/ssl/acme?limit=100"),
                    _ => format!("{base}/v2/ssl/certificates?limit=100"),
                };
                let t = Instant::now();
                let r = http.get(&url).header("authorization", &auth).send().await;
                match r {
                    Ok(r) => {
                        let status = r.status();
                        let body = r.bytes().await;
                        if status.is_success() && body.is_ok() {
                            rec.record(OPS[op], t.elapsed());
                        } else {
                            rec.error(format!("{}: HTTP {status}", OPS[op]));
                        }
                    }
                    Err(e) => rec.error(format!("{}: {e}", OPS[op])),
                }
            }
            rec
        }));
    }
    let mut rec = Recorder::default();
    for w in workers {
        rec.merge(w.await?);
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = o.server_pid.and_then(proc_stat::cpu_seconds);
    let mem = o.server_pid.and_then(proc_stat::memory_mib);
    rec.print();
    let ok: usize = OPS.iter().map(|op| rec.count(op)).sum();
    let cpu_ms = match (cpu0, cpu1) {
        (Some(a), Some(b)) if ok > 0 => Some((b - a) * 1000.0 / ok as f64),
        _ => None,
    };
    println!(
        "SUMMARY label={} concurrency={} requests={} errors={} seconds={:.2} req_per_s={:.1} server_cpu_ms_per_req={} server_hwm_mib={}",
        o.label,
        o.concurrency,
        ok,
        rec.error_count(),
        secs,
        ok as f64 / secs,
        cpu_ms.map_or("n/a".into(), |c| format!("{c:.3}")),
        mem.map_or("n/a".into(), |m| format!("{:.1}", m.1)),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_round_robin() {
        let mix = parse_mix("2:1:0").unwrap();
        let ops: Vec<usize> = (0..6).map(|i| op_for(i, mix)).collect();
        assert_eq!(ops, [0, 0, 1, 0, 0, 1]);
        assert!(parse_mix("0:0:0").is_err());
        assert!(parse_mix("1:2").is_err());
    }
}
