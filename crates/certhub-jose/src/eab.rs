//! External account binding (RFC 8555 §7.3.4).
//!
//! The `externalAccountBinding` member of a newAccount payload is a nested
//! flattened JWS, MACed with a key the CA handed out of band (identified by
//! `kid`), whose payload is the new account's public key. Verifying it proves
//! that the holder of that MAC key wants *this* account key bound, at *this*
//! URL. The MAC is compared in constant time by `aws_lc_rs::hmac::verify`.
//!
//! Error kinds: structure problems are `malformed`, a non-MAC `alg` is
//! `badSignatureAlgorithm`; an unknown `kid`, a wrong MAC, a different URL or
//! a different account key are `unauthorized`.

use aws_lc_rs::hmac;
use serde_json::Value;

use crate::jws::{RawJws, header_str};
use crate::{JoseError, Jwk, json};

/// MAC algorithms allowed for EAB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacAlg {
    /// HMAC with SHA-256.
    Hs256,
    /// HMAC with SHA-384.
    Hs384,
    /// HMAC with SHA-512.
    Hs512,
}

impl MacAlg {
    /// The JOSE name (`"HS256"`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Hs384 => "HS384",
            Self::Hs512 => "HS512",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [Self::Hs256, Self::Hs384, Self::Hs512]
            .into_iter()
            .find(|a| a.as_str() == name)
    }

    pub(crate) fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Hs256 => hmac::HMAC_SHA256,
            Self::Hs384 => hmac::HMAC_SHA384,
            Self::Hs512 => hmac::HMAC_SHA512,
        }
    }
}

/// Verifies an `externalAccountBinding` object and returns its `kid`.
///
/// `lookup` maps the EAB key id to the raw (base64url-decoded) MAC key, or
/// `None` if the id is unknown; it is called at most once. Whether the kid was
/// already used is the caller's business.
///
/// # Errors
/// See the module docs for the error kinds.
pub fn verify_eab(
    eab: &Value,
    outer_jwk: &Jwk,
    outer_url: &str,
    lookup: impl FnOnce(&str) -> Option<Vec<u8>>,
) -> Result<String, JoseError> {
    let obj = json::as_object(eab, "externalAccountBinding")?;
    let raw = RawJws::from_object(obj)?;
    let h = &raw.header;

    let alg_name = header_str(h, "alg")?
        .ok_or_else(|| JoseError::malformed("externalAccountBinding header has no \"alg\""))?;
    let alg = MacAlg::from_name(alg_name).ok_or_else(|| {
        JoseError::bad_alg(format!(
            "externalAccountBinding alg \"{alg_name}\" is not allowed; use HS256, HS384 or HS512"
        ))
    })?;
    if h.contains_key("nonce") {
        return Err(JoseError::malformed(
            "externalAccountBinding header must not contain \"nonce\"",
        ));
    }
    if h.contains_key("jwk") {
        return Err(JoseError::malformed(
            "externalAccountBinding header must not contain \"jwk\"",
        ));
    }
    let kid = header_str(h, "kid")?
        .filter(|k| !k.is_empty())
        .ok_or_else(|| JoseError::malformed("externalAccountBinding header has no \"kid\""))?;
    let url = header_str(h, "url")?
        .ok_or_else(|| JoseError::malformed("externalAccountBinding header has no \"url\""))?;
    let payload = json::parse_object(&raw.payload, "externalAccountBinding payload")?;
    let bound_key = Jwk::from_json(&Value::Object(payload))?;

    // Authenticate before trusting the url and key comparison results.
    let mac_key = lookup(kid).filter(|k| !k.is_empty()).ok_or_else(|| {
        JoseError::unauthorized(format!("unknown external account binding key id \"{kid}\""))
    })?;
    hmac::verify(
        &hmac::Key::new(alg.hmac(), &mac_key),
        &raw.signing_input(),
        &raw.signature,
    )
    .map_err(|_| JoseError::unauthorized("external account binding MAC is invalid"))?;

    if url != outer_url {
        return Err(JoseError::unauthorized(
            "externalAccountBinding \"url\" does not match the request URL",
        ));
    }
    if &bound_key != outer_jwk {
        return Err(JoseError::unauthorized(
            "externalAccountBinding payload is not the account key of this request",
        ));
    }
    Ok(kid.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::tests::key;
    use crate::sign::sign_eab;
    use crate::{Alg, b64};
    use serde_json::json;

    const URL: &str = "https://ca.test/acme/new-account";
    const MAC: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn lookup(kid: &str) -> Option<Vec<u8>> {
        (kid == "kid-1").then(|| MAC.to_vec())
    }

    #[test]
    fn valid_for_every_mac_alg() {
        let jwk = key(Alg::Es256).public_jwk();
        for alg in [MacAlg::Hs256, MacAlg::Hs384, MacAlg::Hs512] {
            let eab = sign_eab("kid-1", MAC, alg, jwk, URL);
            assert_eq!(verify_eab(&eab, jwk, URL, lookup).unwrap(), "kid-1");
        }
    }

    /// Re-MACs a hand-made header/payload, for structural negative cases.
    fn mac_raw(header: &Value, payload: &[u8]) -> Value {
        let p = b64::encode(serde_json::to_vec(header).unwrap());
        let pl = b64::encode(payload);
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, MAC),
            format!("{p}.{pl}").as_bytes(),
        );
        json!({"protected": p, "payload": pl, "signature": b64::encode(tag.as_ref())})
    }

    #[test]
    fn rejections() {
        let jwk = key(Alg::Es256).public_jwk();
        let other = key(Alg::EdDsa).public_jwk();
        let good = sign_eab("kid-1", MAC, MacAlg::Hs256, jwk, URL);
        let jwk_bytes = serde_json::to_vec(&jwk.to_json()).unwrap();
        let mut bad_mac = good.clone();
        let mut sig = b64::decode(good["signature"].as_str().unwrap(), "s").unwrap();
        sig[0] ^= 1;
        bad_mac["signature"] = json!(b64::encode(&sig));

        let cases: Vec<(&str, Value, &Jwk, &str, &str)> = vec![
            ("bad MAC", bad_mac, jwk, URL, "unauthorized"),
            (
                "other MAC key",
                sign_eab("kid-1", b"another key", MacAlg::Hs256, jwk, URL),
                jwk,
                URL,
                "unauthorized",
            ),
            (
                "unknown kid",
                sign_eab("kid-2", MAC, MacAlg::Hs256, jwk, URL),
                jwk,
                URL,
                "unauthorized",
            ),
            (
                "wrong url",
                good.clone(),
                jwk,
                "https://ca.test/other",
                "unauthorized",
            ),
            ("payload mismatch", good.clone(), other, URL, "unauthorized"),
            ("not an object", json!("x"), jwk, URL, "malformed"),
            (
                "extra member",
                {
                    let mut g = good.clone();
                    g["header"] = json!({});
                    g
                },
                jwk,
                URL,
                "malformed",
            ),
            (
                "ES256 alg",
                mac_raw(&json!({"alg":"ES256","kid":"kid-1","url":URL}), &jwk_bytes),
                jwk,
                URL,
                "badSignatureAlgorithm",
            ),
            (
                "alg none",
                mac_raw(&json!({"alg":"none","kid":"kid-1","url":URL}), &jwk_bytes),
                jwk,
                URL,
                "badSignatureAlgorithm",
            ),
            (
                "nonce present",
                mac_raw(
                    &json!({"alg":"HS256","kid":"kid-1","url":URL,"nonce":"n"}),
                    &jwk_bytes,
                ),
                jwk,
                URL,
                "malformed",
            ),
            (
                "no kid",
                mac_raw(&json!({"alg":"HS256","url":URL}), &jwk_bytes),
                jwk,
                URL,
                "malformed",
            ),
            (
                "no url",
                mac_raw(&json!({"alg":"HS256","kid":"kid-1"}), &jwk_bytes),
                jwk,
                URL,
                "malformed",
            ),
            (
                "jwk in header",
                mac_raw(
                    &json!({"alg":"HS256","kid":"kid-1","url":URL,"jwk":jwk.to_json()}),
                    &jwk_bytes,
                ),
                jwk,
                URL,
                "malformed",
            ),
            (
                "payload not JSON",
                mac_raw(&json!({"alg":"HS256","kid":"kid-1","url":URL}), b"xx"),
                jwk,
                URL,
                "malformed",
            ),
            (
                "payload empty",
                mac_raw(&json!({"alg":"HS256","kid":"kid-1","url":URL}), b""),
                jwk,
                URL,
                "malformed",
            ),
            (
                "b64 false",
                mac_raw(
                    &json!({"alg":"HS256","kid":"kid-1","url":URL,"b64":false,"crit":["b64"]}),
                    &jwk_bytes,
                ),
                jwk,
                URL,
                "malformed",
            ),
        ];
        for (name, eab, outer, url, ty) in cases {
            let err = verify_eab(&eab, outer, url, lookup).expect_err(name);
            assert_eq!(err.acme_type(), ty, "{name}: {err}");
        }
        // The hand-made path itself is valid, so the cases above test one thing each.
        let ok = mac_raw(&json!({"alg":"HS256","kid":"kid-1","url":URL}), &jwk_bytes);
        verify_eab(&ok, jwk, URL, lookup).unwrap();
    }
}
