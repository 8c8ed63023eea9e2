//! The `acme_body` target: the decoded payload of an (already verified) ACME
//! JWS, read as each endpoint reads it, plus what the handlers derive from it
//! before touching the database: EAB key id and MAC, identifiers, RFC 3339
//! times, RFC 9773 CertIDs, the finalize CSR and the revokeCert certificate.
//!
//! The finalize and revokeCert payload structs are private to
//! `certhub-acme/src/handlers.rs`; [`Finalize`] and [`Revoke`] repeat their
//! two fields so that the decoding after them is fuzzed as written there.

use std::cell::Cell;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certhub_app::acme::{NewAccountRequest, NewOrderRequest, eab_kid, parse_cert_id};
use certhub_ca::RevocationReason;
use certhub_domain::time::{format_rtr, parse_rfc3339};
use certhub_jose::verify_eab;
use serde::Deserialize;
use serde_json::Value;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{EAB_KID, EAB_MAC_KEY, NEW_ACCOUNT_URL, account_jwk};

/// The finalize payload (RFC 8555 §7.4).
#[derive(Deserialize)]
struct Finalize {
    csr: String,
}

/// The revokeCert payload (RFC 8555 §7.6).
#[derive(Deserialize)]
struct Revoke {
    certificate: String,
    #[serde(default)]
    reason: Option<i64>,
}

/// The last second `format_rtr` writes with four year digits.
const YEAR_9999_END: i64 = 253_402_300_799;

pub fn run(data: &[u8]) {
    new_account(data);
    new_order(data);
    if let Ok(f) = serde_json::from_slice::<Finalize>(data) {
        finalize_csr(&f.csr);
    }
    if let Ok(r) = serde_json::from_slice::<Revoke>(data) {
        revoke(&r);
    }
    // Account update and authorization deactivation read loose values.
    if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(data) {
        let _ = o.get("status").and_then(Value::as_str);
        if let Some(c) = o.get("contact") {
            let _ = serde_json::from_value::<Vec<String>>(c.clone());
        }
    }
    // A renewalInfo path segment is a CertID too.
    if let Ok(s) = std::str::from_utf8(data) {
        cert_id(s);
    }
}

fn new_account(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<NewAccountRequest>(data) else {
        return;
    };
    let Some(eab) = &req.external_account_binding else {
        return;
    };
    let kid = eab_kid(eab);
    let lookups = Cell::new(0u32);
    let res = verify_eab(eab, account_jwk(), NEW_ACCOUNT_URL, |k| {
        lookups.set(lookups.get() + 1);
        (k == EAB_KID).then(|| EAB_MAC_KEY.to_vec())
    });
    assert!(lookups.get() <= 1);
    if let Ok(verified) = res {
        assert_eq!(kid.as_deref(), Some(verified.as_str()));
    }
}

fn new_order(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<NewOrderRequest>(data) else {
        return;
    };
    for id in &req.identifiers {
        if id.kind == "dns" {
            crate::check_name(&id.value);
        }
    }
    for t in [&req.not_before, &req.not_after].into_iter().flatten() {
        if let Some(ts) = parse_rfc3339(t)
            && (0..=YEAR_9999_END).contains(&ts)
        {
            assert_eq!(parse_rfc3339(&format_rtr(ts)), Some(ts), "{t:?}");
        }
    }
    if let Some(r) = &req.replaces {
        cert_id(r);
    }
}

fn cert_id(s: &str) {
    if let Ok((aki, serial_hex)) = parse_cert_id(s) {
        assert!(!aki.is_empty());
        assert!(serial_hex.len() % 2 == 0 && !serial_hex.starts_with("00"));
        assert!(
            serial_hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
}

/// finalize: base64url (padding tolerated) DER, then the CSR policy.
fn finalize_csr(csr: &str) {
    let Ok(der) = URL_SAFE_NO_PAD.decode(csr.trim_end_matches('=')) else {
        return;
    };
    if let Ok(parsed) = crate::csr::accept(&der) {
        crate::csr::check_parsed(&parsed);
    }
}

/// revokeCert: the reason code, then the CertID derived from the certificate.
fn revoke(r: &Revoke) {
    if let Some(code) = r.reason
        && let Some(reason) = u8::try_from(code)
            .ok()
            .and_then(RevocationReason::from_code)
    {
        assert_eq!(i64::from(reason.code()), code);
    }
    let Ok(der) = URL_SAFE_NO_PAD.decode(r.certificate.trim_end_matches('=')) else {
        return;
    };
    let Ok((_, cert)) = X509Certificate::from_der(&der) else {
        return;
    };
    let Some(id) = certhub_ca::ari_cert_id(&cert) else {
        return;
    };
    let (aki_b64, serial_b64) = id.split_once('.').expect("a CertID has a dot");
    let aki = URL_SAFE_NO_PAD.decode(aki_b64).expect("base64url AKI");
    let serial = URL_SAFE_NO_PAD
        .decode(serial_b64)
        .expect("base64url serial");
    // The CertID built from a certificate names that certificate again.
    match parse_cert_id(&id) {
        Ok((parsed_aki, _)) => assert_eq!(parsed_aki, aki),
        Err(_) => assert!(
            aki.is_empty() || serial.first().is_none_or(|b| b & 0x80 != 0),
            "the CertID of a certificate is refused: {id}"
        ),
    }
    cert_id(&id);
}
