//! Account key rollover (RFC 8555 §7.3.5).
//!
//! The outer JWS (verified by the server with the *old* key via `kid`)
//! carries an inner JWS signed by the *new* key with `jwk`, whose payload
//! names the account and the old key. Checking both signatures proves that
//! the holders of both keys agree to the change.
//!
//! Error kinds: structure problems are `malformed` (or `badSignatureAlgorithm`
//! / `badPublicKey` for the inner `alg` / `jwk`); a different URL, account or
//! old key is `unauthorized`. Whether the new key is already in use by another
//! account (409) is for the caller to check.

use serde_json::Value;

use crate::{JoseError, Jwk, Jws, json};

/// Verifies a keyChange inner JWS and returns the new account key.
///
/// * `inner`: the outer JWS payload bytes (the inner flattened JWS);
/// * `outer_url`: the `url` of the already verified outer JWS;
/// * `account_url`: the outer `kid`;
/// * `old_key`: the account's current key (which verified the outer JWS).
///
/// # Errors
/// See the module docs for the error kinds.
pub fn verify_key_change(
    inner: &[u8],
    outer_url: &str,
    account_url: &str,
    old_key: &Jwk,
) -> Result<Jwk, JoseError> {
    let jws = Jws::parse(inner)?;
    let new_key = jws.require_jwk().map_err(|_| {
        JoseError::malformed("the inner keyChange JWS must carry the new key as \"jwk\"")
    })?;
    if jws.header().nonce().is_some() {
        return Err(JoseError::malformed(
            "the inner keyChange JWS must not contain \"nonce\"",
        ));
    }
    jws.verify(new_key)?;
    if jws.header().url() != outer_url {
        return Err(JoseError::unauthorized(
            "the inner keyChange JWS \"url\" differs from the outer request URL",
        ));
    }
    let payload = json::parse_object(jws.payload(), "the keyChange payload")?;
    let Some(Value::String(account)) = payload.get("account") else {
        return Err(JoseError::malformed(
            "the keyChange payload needs an \"account\" string",
        ));
    };
    let old = payload
        .get("oldKey")
        .ok_or_else(|| JoseError::malformed("the keyChange payload needs an \"oldKey\" object"))?;
    let old = Jwk::from_json(old)?;
    if account != account_url {
        return Err(JoseError::unauthorized(
            "the keyChange \"account\" is not the account that signed the request",
        ));
    }
    if &old != old_key {
        return Err(JoseError::unauthorized(
            "the keyChange \"oldKey\" is not the account's current key",
        ));
    }
    Ok(new_key.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::tests::key;
    use crate::sign::{sign_jws, sign_jws_with_header};
    use crate::{Alg, b64};
    use serde_json::json;

    const URL: &str = "https://ca.test/acme/key-change";
    const ACCT: &str = "https://ca.test/acme/acct/1";

    fn inner(new: Alg, old: Alg, url: &str, account: &str) -> Vec<u8> {
        let payload = json!({"account": account, "oldKey": key(old).public_jwk().to_json()});
        let v = sign_jws(
            key(new),
            url,
            None,
            None,
            &serde_json::to_vec(&payload).unwrap(),
        )
        .unwrap();
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn valid_rollover() {
        for new in [Alg::Es384, Alg::Rs256, Alg::EdDsa] {
            let old = key(Alg::Es256).public_jwk();
            let got =
                verify_key_change(&inner(new, Alg::Es256, URL, ACCT), URL, ACCT, old).unwrap();
            assert_eq!(&got, key(new).public_jwk());
        }
    }

    #[test]
    fn rejections() {
        let old = key(Alg::Es256).public_jwk();
        let payload =
            serde_json::to_vec(&json!({"account": ACCT, "oldKey": old.to_json()})).unwrap();
        let new = key(Alg::Es384);
        let with_nonce = sign_jws(new, URL, Some("n"), None, &payload).unwrap();
        let with_kid = sign_jws(new, URL, None, Some(ACCT), &payload).unwrap();
        let mut forged = sign_jws(new, URL, None, None, &payload).unwrap();
        let mut sig = b64::decode(forged["signature"].as_str().unwrap(), "s").unwrap();
        sig[5] ^= 1;
        forged["signature"] = json!(b64::encode(&sig));
        let no_account = sign_jws(
            new,
            URL,
            None,
            None,
            &serde_json::to_vec(&json!({"oldKey": old.to_json()})).unwrap(),
        )
        .unwrap();
        let hs = sign_jws_with_header(
            new,
            &json!({"alg":"HS256","url":URL,"jwk":new.public_jwk().to_json()}),
            &payload,
        )
        .unwrap();

        let to_bytes = |v: &Value| serde_json::to_vec(v).unwrap();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "wrong url",
                inner(Alg::Es384, Alg::Es256, "https://ca.test/x", ACCT),
                "unauthorized",
            ),
            (
                "wrong account",
                inner(Alg::Es384, Alg::Es256, URL, "https://ca.test/acme/acct/2"),
                "unauthorized",
            ),
            (
                "wrong old key",
                inner(Alg::Es384, Alg::EdDsa, URL, ACCT),
                "unauthorized",
            ),
            ("nonce", to_bytes(&with_nonce), "malformed"),
            ("kid instead of jwk", to_bytes(&with_kid), "malformed"),
            ("bad signature", to_bytes(&forged), "malformed"),
            ("missing account", to_bytes(&no_account), "malformed"),
            ("HS256", to_bytes(&hs), "badSignatureAlgorithm"),
            ("not a JWS", b"{}".to_vec(), "malformed"),
        ];
        for (name, body, ty) in cases {
            let err = verify_key_change(&body, URL, ACCT, old).expect_err(name);
            assert_eq!(err.acme_type(), ty, "{name}: {err}");
        }
    }
}
