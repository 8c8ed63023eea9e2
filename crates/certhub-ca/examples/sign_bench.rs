//! Benchmark of the signing path (not a test): P-256 DV leaves per second on
//! one core, from an issuance request to DER + PEM chain.
//!
//! `cargo run --release -p certhub-ca --example sign_bench -- 20000`

use std::time::Instant;

use certhub_ca::{
    Ca, CaConfig, IssueRequest, KeyAlg, Profile, generate_key, init_hierarchy, random_serial,
};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let now = 1_800_000_000;
    let cfg = CaConfig {
        pki_url: "http://pki.example.com".into(),
        ..Default::default()
    };
    let ca = Ca::load(init_hierarchy(&cfg, now).expect("hierarchy"), &cfg.pki_url).expect("ca");
    let key = generate_key(KeyAlg::EcdsaP256).expect("key");
    let req = IssueRequest {
        profile: Profile::Dv,
        names: vec!["www.example.com".into(), "example.com".into()],
        spki_der: key.spki_der.clone(),
        not_before: None,
        not_after: None,
        max_days: 397,
        now,
    };
    // Warm up, then measure.
    for _ in 0..200 {
        ca.issue(&req, random_serial()).expect("issue");
    }
    let start = Instant::now();
    for _ in 0..n {
        ca.issue(&req, random_serial()).expect("issue");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} P-256 DV leaves in {secs:.3} s: {:.0} certificates/s on one core ({:.1} µs each)",
        n as f64 / secs,
        secs * 1e6 / n as f64
    );
}
