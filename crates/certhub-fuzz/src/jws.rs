//! The `jws` target: one body, read three ways, as the server reads them.
//!
//! * as an outer ACME request ([`Jws::parse`], then [`Jws::verify`] with the
//!   embedded `jwk`, or with the fixed account key for `kid`);
//! * as an `externalAccountBinding` object ([`verify_eab`]);
//! * as the inner JWS of a keyChange ([`verify_key_change`]).

use std::cell::Cell;

use certhub_jose::{Alg, JoseError, Jwk, Jws, KeyRef, b64, verify_eab, verify_key_change};
use serde_json::Value;

use crate::{ACCOUNT_URL, EAB_KID, EAB_MAC_KEY, KEY_CHANGE_URL, NEW_ACCOUNT_URL, account_jwk};

/// Parses and verifies `data` the way every ACME POST is authenticated.
///
/// # Errors
/// Whatever [`Jws::parse`] or [`Jws::verify`] refuses.
pub fn accept(data: &[u8]) -> Result<Jws, JoseError> {
    let jws = Jws::parse(data)?;
    jws.verify(signer_key(&jws))?;
    Ok(jws)
}

/// The key a request is verified with: its own `jwk`, or for `kid` the
/// fixed account key (standing in for the account lookup).
fn signer_key(jws: &Jws) -> &Jwk {
    match jws.header().key() {
        KeyRef::Jwk(jwk) => jwk,
        KeyRef::Kid(_) => account_jwk(),
    }
}

pub fn run(data: &[u8]) {
    match Jws::parse(data) {
        Ok(jws) => check_parsed(&jws),
        Err(e) => check_error(&e, &["malformed", "badSignatureAlgorithm", "badPublicKey"]),
    }
    eab(data);
    key_change(data);
}

fn check_error(e: &JoseError, allowed: &[&str]) {
    assert!(
        allowed.contains(&e.acme_type()),
        "unexpected error kind {}: {e}",
        e.acme_type()
    );
    assert!(!e.detail().is_empty());
}

fn check_parsed(jws: &Jws) {
    let h = jws.header();
    assert_eq!(Alg::from_name(h.alg().as_str()), Some(h.alg()));
    match h.key() {
        KeyRef::Jwk(jwk) => {
            assert_eq!(jws.require_jwk().ok(), Some(jwk));
            assert!(jws.require_kid().is_err());
            check_jwk(jwk);
        }
        KeyRef::Kid(kid) => {
            assert_eq!(jws.require_kid().ok(), Some(kid.as_str()));
            assert!(jws.require_jwk().is_err());
        }
    }

    // POST-as-GET is exactly the empty payload, and never yields JSON.
    assert_eq!(jws.is_post_as_get(), jws.payload().is_empty());
    match jws.payload_json::<Value>() {
        Ok(v) => assert_eq!(serde_json::from_slice::<Value>(jws.payload()).ok(), Some(v)),
        Err(e) => check_error(&e, &["malformed"]),
    }

    // The verifier follows the key type, never the client's `alg` alone.
    let key = signer_key(jws);
    match jws.verify(key) {
        Ok(()) => assert!(key.accepts(h.alg()), "verified with an alg the key refuses"),
        Err(e) if !key.accepts(h.alg()) => assert_eq!(e.acme_type(), "badSignatureAlgorithm"),
        Err(e) => check_error(&e, &["malformed"]),
    }
}

/// A validated key's canonical forms agree with each other.
fn check_jwk(jwk: &Jwk) {
    let again = Jwk::from_json(&jwk.to_json()).expect("a validated jwk re-parses");
    assert_eq!(&again, jwk);
    assert_eq!(again.thumbprint(), jwk.thumbprint());
    assert_eq!(
        b64::decode(&jwk.thumbprint_b64(), "thumbprint").ok(),
        Some(jwk.thumbprint().to_vec())
    );
    assert!(jwk.spki_der().is_ok());
}

/// `data` as the `externalAccountBinding` member of a newAccount payload
/// (the server has it as a `serde_json::Value` by then).
fn eab(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let lookups = Cell::new(0u32);
    let res = verify_eab(&value, account_jwk(), NEW_ACCOUNT_URL, |kid| {
        lookups.set(lookups.get() + 1);
        (kid == EAB_KID).then(|| EAB_MAC_KEY.to_vec())
    });
    assert!(lookups.get() <= 1, "the EAB MAC key was looked up twice");
    match res {
        Ok(kid) => {
            assert_eq!(kid, EAB_KID);
            assert_eq!(lookups.get(), 1);
            // The app picks the MAC key with a lenient read of the same header;
            // both readings must name the same key id.
            assert_eq!(
                certhub_app::acme::eab_kid(&value).as_deref(),
                Some(kid.as_str())
            );
        }
        Err(e) => check_error(
            &e,
            &[
                "malformed",
                "badSignatureAlgorithm",
                "badPublicKey",
                "unauthorized",
            ],
        ),
    }
}

/// `data` as the payload of a keyChange request signed by the fixed account.
fn key_change(data: &[u8]) {
    match verify_key_change(data, KEY_CHANGE_URL, ACCOUNT_URL, account_jwk()) {
        Ok(new_key) => {
            let inner = Jws::parse(data).expect("a verified keyChange parses");
            assert_eq!(inner.require_jwk().ok(), Some(&new_key));
            assert!(inner.verify(&new_key).is_ok());
            assert!(inner.header().nonce().is_none());
            assert_eq!(inner.header().url(), KEY_CHANGE_URL);
            check_jwk(&new_key);
        }
        Err(e) => check_error(
            &e,
            &[
                "malformed",
                "badSignatureAlgorithm",
                "badPublicKey",
                "unauthorized",
            ],
        ),
    }
}
