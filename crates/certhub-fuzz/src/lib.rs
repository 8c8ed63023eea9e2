//! Fuzz target bodies for certhub's untrusted-input parsers (issue 9).
//!
//! Each target is a plain function over bytes so that the same code runs under
//! libFuzzer (`fuzz/fuzz_targets/*.rs`, see `fuzz/README.md`) and as an
//! ordinary test that replays the committed corpora (`tests/replay.rs`). A
//! target drives the real parser or verifier and then asserts invariants that
//! must hold for *every* input: a panic, a failed assertion or an overflow is
//! the bug report.
//!
//! | target | input | drives |
//! |---|---|---|
//! | [`jws()`] | a request body | `Jws::parse` / `verify`, `verify_eab`, `verify_key_change` |
//! | [`csr()`] | PEM or DER | `parse_csr` with a [`KeyPolicy`], `check_names` |
//! | [`list_query()`] | a query string | `certhub_rtr::list::parse` over every listed resource |
//! | [`rest_body()`] | a `/v2` request body | `certhub_rtr::body::parse` into the route body types |
//! | [`acme_body()`] | a JWS payload | the ACME payload types and what the handlers derive from them |
//!
//! [`KeyPolicy`]: certhub_ca::KeyPolicy

pub mod acme_body;
pub mod csr;
pub mod jws;
pub mod list_query;
pub mod rest_body;

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use certhub_jose::sign::SigningKey;
use certhub_jose::{Alg, Jwk};

/// Fuzz entry: an ACME request body. See [`jws::run`].
pub fn jws(data: &[u8]) {
    jws::run(data);
}

/// Fuzz entry: a CSR as sent to finalize or `/v2/ssl/certificates`. See [`csr::run`].
pub fn csr(data: &[u8]) {
    csr::run(data);
}

/// Fuzz entry: the query string of a `/v2` list request. See [`list_query::run`].
pub fn list_query(data: &[u8]) {
    list_query::run(data);
}

/// Fuzz entry: a `/v2` JSON request body. See [`rest_body::run`].
pub fn rest_body(data: &[u8]) {
    rest_body::run(data);
}

/// Fuzz entry: the payload of an ACME JWS. See [`acme_body::run`].
pub fn acme_body(data: &[u8]) {
    acme_body::run(data);
}

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// Every target by name, for the replay test.
pub const TARGETS: [(&str, Target); 5] = [
    ("jws", jws),
    ("csr", csr),
    ("list_query", list_query),
    ("rest_body", rest_body),
    ("acme_body", acme_body),
];

/// The directory URLs the targets pretend to serve. Seeds are signed for them,
/// so that mutations start from requests that pass every check.
pub const NEW_ACCOUNT_URL: &str = "https://ca.test/acme/dv/new-account";
pub const NEW_ORDER_URL: &str = "https://ca.test/acme/dv/new-order";
pub const KEY_CHANGE_URL: &str = "https://ca.test/acme/dv/key-change";
pub const ACCOUNT_URL: &str = "https://ca.test/acme/dv/acct/1";

/// The EAB key id and raw MAC key the targets' lookup knows.
pub const EAB_KID: &str = "fuzz-eab-kid";
pub const EAB_MAC_KEY: &[u8; 32] = b"certhub fuzzing EAB MAC key, 32B";

/// The account key (P-256, PKCS#8) that `kid` requests, EAB bindings and
/// keyChange `oldKey`s are checked against. It is published on purpose: the
/// corpus generator needs it to sign seeds that verify, and it guards nothing.
const ACCOUNT_KEY_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgMnVLKQEMRTBdnE8TFVRaqNnYcsj11WNogbHbDJUx3MKhRANCAARdlhL48mM8eHLkJU3G93FxSZ1k1YQGS5SBpJ7CZXK447q53rNAPQr+PJ45gqJaulzv7bzLAn0KPfgKMNhXxUhn";

/// The fixed account signing key (for seed generation).
pub fn account_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let der = STANDARD
            .decode(ACCOUNT_KEY_PKCS8)
            .expect("the account key constant is base64");
        SigningKey::from_pkcs8(Alg::Es256, &der).expect("the account key constant is PKCS#8")
    })
}

/// The fixed account public key.
pub fn account_jwk() -> &'static Jwk {
    account_key().public_jwk()
}

/// Asserts that no string in `v` (at any depth) has surrounding whitespace.
fn assert_trimmed(v: &serde_json::Value) {
    match v {
        serde_json::Value::String(s) => assert_eq!(s.trim(), s, "untrimmed string survived"),
        serde_json::Value::Array(a) => a.iter().for_each(assert_trimmed),
        serde_json::Value::Object(o) => o.values().for_each(assert_trimmed),
        _ => {}
    }
}

/// `normalize_dns_name` must be idempotent: stored names are compared as
/// strings, so a normalised name that normalised differently again would make
/// two spellings of one name.
fn check_name(raw: &str) -> Option<String> {
    let n = certhub_domain::names::normalize_dns_name(raw).ok()?;
    assert_eq!(
        certhub_domain::names::normalize_dns_name(&n)
            .ok()
            .as_deref(),
        Some(n.as_str()),
        "normalising {raw:?} is not idempotent"
    );
    Some(n)
}
