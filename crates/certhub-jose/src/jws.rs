//! ACME request JWS (RFC 8555 §6.2), flattened JSON serialization only.
//!
//! ACME allows exactly one shape: an object with `protected`, `payload` and
//! `signature`, a protected header carrying `alg`, `url`, optionally `nonce`,
//! and exactly one of `jwk` / `kid`. Everything else (compact form, general
//! serialization, unprotected `header`, `b64: false`, unknown `crit`, MAC or
//! `none` algorithms) is refused at [`Jws::parse`], so the server only ever
//! sees requests whose meaning is unambiguous.
//!
//! [`Jws::verify`] picks the verifier from the key type and requires the
//! header `alg` to match it, so a client can never choose how its own
//! signature is checked (no algorithm confusion).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fmt;

use crate::jwk::KeyType;
use crate::{JoseError, Jwk, b64, json};

/// Signature algorithms accepted on an ACME (outer or keyChange) JWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256, signature r||s (64 bytes).
    Es256,
    /// ECDSA P-384 with SHA-384, signature r||s (96 bytes).
    Es384,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PSS with SHA-256 (salt length 32).
    Ps256,
    /// Ed25519.
    EdDsa,
}

impl Alg {
    /// Every accepted algorithm, e.g. for the `algorithms` member of a
    /// `badSignatureAlgorithm` problem document.
    pub const ALL: [Alg; 5] = [Alg::Es256, Alg::Es384, Alg::Rs256, Alg::Ps256, Alg::EdDsa];

    /// The JOSE name (`"ES256"`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// Parses a JOSE name; case-sensitive as RFC 7515 requires.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the request identifies its signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// An embedded public key (newAccount, revokeCert by certificate key).
    Jwk(Jwk),
    /// An account URL (every other authenticated request).
    Kid(String),
}

/// The decoded protected header of an ACME JWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    alg: Alg,
    nonce: Option<String>,
    url: String,
    key: KeyRef,
}

impl Header {
    /// The signature algorithm (already restricted to [`Alg::ALL`]).
    #[must_use]
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The anti-replay nonce, if sent; checking it is the server's job.
    #[must_use]
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// The request URL the client signed (always present).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key reference: exactly one of `jwk` and `kid`.
    #[must_use]
    pub fn key(&self) -> &KeyRef {
        &self.key
    }
}

/// A parsed, not yet verified, flattened JWS.
#[derive(Debug, Clone)]
pub struct Jws {
    header: Header,
    raw: RawJws,
}

impl Jws {
    /// Parses an ACME request body. See the module docs for what is refused.
    ///
    /// # Errors
    /// [`JoseError::Malformed`] for structural problems,
    /// [`JoseError::BadSignatureAlgorithm`] for `none`, HS* or unknown `alg`,
    /// [`JoseError::BadPublicKey`] for an unacceptable embedded `jwk`.
    pub fn parse(body: &[u8]) -> Result<Self, JoseError> {
        if body.starts_with(b"ey") {
            return Err(JoseError::malformed(
                "compact JWS serialization is not accepted; send the flattened JSON \
                 serialization (RFC 8555 §6.2)",
            ));
        }
        let obj = json::parse_object(body, "request body")?;
        Self::from_object(&obj)
    }

    /// Like [`Jws::parse`] for an already parsed JSON value (nested JWS).
    pub(crate) fn from_object(obj: &Map<String, Value>) -> Result<Self, JoseError> {
        let raw = RawJws::from_object(obj)?;
        let header = parse_header(&raw.header)?;
        Ok(Self { header, raw })
    }

    /// The decoded protected header.
    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The embedded key, for endpoints that require `jwk` (newAccount,
    /// revokeCert signed with the certificate key).
    ///
    /// # Errors
    /// [`JoseError::Malformed`] if the request uses `kid`.
    pub fn require_jwk(&self) -> Result<&Jwk, JoseError> {
        match &self.header.key {
            KeyRef::Jwk(jwk) => Ok(jwk),
            KeyRef::Kid(_) => Err(JoseError::malformed(
                "this request must carry a \"jwk\" header, not \"kid\"",
            )),
        }
    }

    /// The account URL, for endpoints that require `kid`.
    ///
    /// # Errors
    /// [`JoseError::Malformed`] if the request uses `jwk`.
    pub fn require_kid(&self) -> Result<&str, JoseError> {
        match &self.header.key {
            KeyRef::Kid(kid) => Ok(kid),
            KeyRef::Jwk(_) => Err(JoseError::malformed(
                "this request must carry a \"kid\" header (the account URL), not \"jwk\"",
            )),
        }
    }

    /// The decoded payload; empty for POST-as-GET.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.raw.payload
    }

    /// Whether this is a POST-as-GET request (RFC 8555 §6.3: empty payload).
    #[must_use]
    pub fn is_post_as_get(&self) -> bool {
        self.raw.payload_b64.is_empty()
    }

    /// Deserializes the payload as JSON.
    ///
    /// # Errors
    /// [`JoseError::Malformed`] if the payload is empty or does not match `T`.
    pub fn payload_json<T: DeserializeOwned>(&self) -> Result<T, JoseError> {
        if self.is_post_as_get() {
            return Err(JoseError::malformed(
                "the payload is empty (POST-as-GET) but this request needs a JSON payload",
            ));
        }
        serde_json::from_slice(&self.raw.payload)
            .map_err(|e| JoseError::malformed(format!("invalid JSON payload: {e}")))
    }

    /// Verifies the signature with `key` (the embedded `jwk`, or the account
    /// key looked up from `kid`).
    ///
    /// # Errors
    /// [`JoseError::BadSignatureAlgorithm`] if `alg` does not fit the key
    /// type, [`JoseError::Malformed`] if the signature is wrong.
    pub fn verify(&self, key: &Jwk) -> Result<(), JoseError> {
        verify_signature(key, self.header.alg, &self.raw)
    }
}

/// The three members of a flattened JWS, decoded, plus the original strings.
#[derive(Debug, Clone)]
pub(crate) struct RawJws {
    pub(crate) protected_b64: String,
    pub(crate) payload_b64: String,
    pub(crate) header: Map<String, Value>,
    pub(crate) payload: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

impl RawJws {
    /// Checks the flattened shape and decodes the members. Also applies the
    /// header rules common to every JWS we accept (`crit`, `b64`).
    pub(crate) fn from_object(obj: &Map<String, Value>) -> Result<Self, JoseError> {
        for key in obj.keys() {
            match key.as_str() {
                "protected" | "payload" | "signature" => {}
                "header" => {
                    return Err(JoseError::malformed(
                        "unprotected \"header\" is not allowed; put every header parameter \
                         in \"protected\" (RFC 8555 §6.2)",
                    ));
                }
                "signatures" => {
                    return Err(JoseError::malformed(
                        "the general JWS JSON serialization is not accepted; send the \
                         flattened serialization with one signature (RFC 8555 §6.2)",
                    ));
                }
                other => {
                    return Err(JoseError::malformed(format!(
                        "unexpected JWS member \"{other}\"; only \"protected\", \"payload\" \
                         and \"signature\" are allowed"
                    )));
                }
            }
        }
        let protected_b64 = string_member(obj, "protected")?;
        let payload_b64 = string_member(obj, "payload")?;
        let signature_b64 = string_member(obj, "signature")?;
        if protected_b64.is_empty() {
            return Err(JoseError::malformed("the protected header is empty"));
        }
        let header_bytes = b64::decode(protected_b64, "the protected header")?;
        let header = json::parse_object(&header_bytes, "the protected header")?;
        let payload = b64::decode(payload_b64, "the payload")?;
        let signature = b64::decode(signature_b64, "the signature")?;
        if signature.is_empty() {
            return Err(JoseError::malformed("the signature is empty"));
        }
        check_crit_and_b64(&header)?;
        Ok(Self {
            protected_b64: protected_b64.to_owned(),
            payload_b64: payload_b64.to_owned(),
            header,
            payload,
            signature,
        })
    }

    /// The JWS signing input: the original base64url strings joined by '.'.
    pub(crate) fn signing_input(&self) -> Vec<u8> {
        let mut input = Vec::with_capacity(self.protected_b64.len() + 1 + self.payload_b64.len());
        input.extend_from_slice(self.protected_b64.as_bytes());
        input.push(b'.');
        input.extend_from_slice(self.payload_b64.as_bytes());
        input
    }
}

fn string_member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, JoseError> {
    match obj.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(JoseError::malformed(format!(
            "JWS member \"{name}\" must be a string"
        ))),
        None => Err(JoseError::malformed(format!(
            "JWS member \"{name}\" is missing"
        ))),
    }
}

/// RFC 7515 §4.1.11 / RFC 7797: we implement no extension except `b64`, and
/// only its default (`true`), since ACME payloads are always base64url.
fn check_crit_and_b64(header: &Map<String, Value>) -> Result<(), JoseError> {
    if let Some(crit) = header.get("crit") {
        let list = crit
            .as_array()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| JoseError::malformed("\"crit\" must be a non-empty array"))?;
        for (i, entry) in list.iter().enumerate() {
            let name = entry
                .as_str()
                .ok_or_else(|| JoseError::malformed("\"crit\" entries must be strings"))?;
            if name != "b64" {
                return Err(JoseError::malformed(format!(
                    "unsupported critical header parameter \"{name}\""
                )));
            }
            if list[..i].contains(entry) || !header.contains_key(name) {
                return Err(JoseError::malformed(format!(
                    "\"crit\" entry \"{name}\" is repeated or not present in the header"
                )));
            }
        }
    }
    match header.get("b64") {
        None | Some(Value::Bool(true)) => Ok(()),
        Some(Value::Bool(false)) => Err(JoseError::malformed(
            "unencoded payloads (\"b64\": false) are not accepted",
        )),
        Some(_) => Err(JoseError::malformed("\"b64\" must be a boolean")),
    }
}

pub(crate) fn header_str<'a>(
    header: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, JoseError> {
    match header.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JoseError::malformed(format!(
            "protected header parameter \"{name}\" must be a string"
        ))),
    }
}

/// Interprets `alg`, refusing `none` and MAC algorithms with a pointed
/// message (RFC 8555 §6.2).
fn parse_alg(header: &Map<String, Value>) -> Result<Alg, JoseError> {
    let name = header_str(header, "alg")?
        .ok_or_else(|| JoseError::malformed("the protected header has no \"alg\""))?;
    if let Some(alg) = Alg::from_name(name) {
        return Ok(alg);
    }
    let supported = Alg::ALL.map(Alg::as_str).join(", ");
    Err(JoseError::bad_alg(if name == "none" {
        format!("alg \"none\" is not allowed; use one of {supported}")
    } else if name.starts_with("HS") {
        format!(
            "MAC algorithm \"{name}\" is not allowed on an ACME request; use one of {supported}"
        )
    } else {
        format!("unsupported alg \"{name}\"; use one of {supported}")
    }))
}

fn parse_header(header: &Map<String, Value>) -> Result<Header, JoseError> {
    let alg = parse_alg(header)?;
    let nonce = header_str(header, "nonce")?.map(str::to_owned);
    let url = header_str(header, "url")?
        .ok_or_else(|| JoseError::malformed("the protected header has no \"url\""))?
        .to_owned();
    let key = match (header.get("jwk"), header_str(header, "kid")?) {
        (Some(jwk), None) => KeyRef::Jwk(Jwk::from_json(jwk)?),
        (None, Some(kid)) => KeyRef::Kid(kid.to_owned()),
        (Some(_), Some(_)) => {
            return Err(JoseError::malformed(
                "the protected header has both \"jwk\" and \"kid\"; send exactly one",
            ));
        }
        (None, None) => {
            return Err(JoseError::malformed(
                "the protected header has neither \"jwk\" nor \"kid\"; send exactly one",
            ));
        }
    };
    Ok(Header {
        alg,
        nonce,
        url,
        key,
    })
}

/// Checks `raw`'s signature with `key` under `alg`; `alg` must fit the key.
pub(crate) fn verify_signature(key: &Jwk, alg: Alg, raw: &RawJws) -> Result<(), JoseError> {
    let parsed = key.parsed_key(alg)?;
    let expected = key.signature_len();
    if raw.signature.len() != expected {
        let hint = match key.key_type() {
            KeyType::EcP256 | KeyType::EcP384 => {
                " (ECDSA signatures must be the fixed-length r||s form, not DER)"
            }
            _ => "",
        };
        return Err(JoseError::malformed(format!(
            "{alg} signature must be {expected} bytes, got {}{hint}",
            raw.signature.len()
        )));
    }
    parsed
        .verify_sig(&raw.signing_input(), &raw.signature)
        .map_err(|_| JoseError::malformed("JWS signature verification failed"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sign::{SigningKey, sign_jws, sign_jws_with_header};
    use serde_json::json;
    use std::sync::OnceLock;

    pub(crate) const URL: &str = "https://ca.test/acme/new-order";

    /// Keys are generated once per test binary: RSA generation is slow.
    pub(crate) fn key(alg: Alg) -> &'static SigningKey {
        static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
        let keys = KEYS.get_or_init(|| {
            Alg::ALL
                .iter()
                .map(|a| SigningKey::generate(*a).unwrap())
                .collect()
        });
        let i = Alg::ALL.iter().position(|a| *a == alg).unwrap();
        &keys[i]
    }

    fn body(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    #[test]
    fn round_trip_every_alg() {
        for alg in Alg::ALL {
            let k = key(alg);
            // jwk form
            let v = sign_jws(k, URL, Some("n1"), None, br#"{"a":1}"#).unwrap();
            let jws = Jws::parse(&body(&v)).unwrap();
            assert_eq!(jws.header().alg(), alg);
            assert_eq!(jws.header().nonce(), Some("n1"));
            assert_eq!(jws.header().url(), URL);
            let jwk = jws.require_jwk().unwrap();
            assert_eq!(jwk, k.public_jwk());
            assert!(jws.require_kid().is_err());
            jws.verify(jwk).unwrap();
            assert!(!jws.is_post_as_get());
            let p: Value = jws.payload_json().unwrap();
            assert_eq!(p, json!({"a":1}));
            // kid form, POST-as-GET
            let v = sign_jws(k, URL, Some("n2"), Some("https://ca.test/acct/1"), b"").unwrap();
            let jws = Jws::parse(&body(&v)).unwrap();
            assert_eq!(jws.require_kid().unwrap(), "https://ca.test/acct/1");
            assert!(jws.require_jwk().is_err());
            assert!(jws.is_post_as_get());
            assert!(jws.payload().is_empty());
            assert!(jws.payload_json::<Value>().is_err());
            jws.verify(k.public_jwk()).unwrap();
            // a different key of the same type does not verify
            let other =
                SigningKey::generate(if alg == Alg::Ps256 { Alg::EdDsa } else { alg }).unwrap();
            if alg != Alg::Ps256 && alg != Alg::Rs256 {
                assert_eq!(
                    jws.verify(other.public_jwk()).unwrap_err().acme_type(),
                    "malformed"
                );
            }
        }
    }

    /// Signs `header` (plus `alg` unless given) with an ES256 key.
    fn signed_with(header: Value) -> Value {
        let k = key(Alg::Es256);
        let mut h = header;
        if h.get("alg").is_none() {
            h["alg"] = json!("ES256");
        }
        sign_jws_with_header(k, &h, b"{}").unwrap()
    }

    fn jwk_header() -> Value {
        json!({"nonce":"n","url":URL,"jwk": key(Alg::Es256).public_jwk().to_json()})
    }

    fn with(mut v: Value, field: &str, value: Value) -> Value {
        v[field] = value;
        v
    }

    fn replace_b64(v: &Value, field: &str, f: impl FnOnce(&mut Vec<u8>)) -> Value {
        let mut bytes = b64::decode(v[field].as_str().unwrap(), field).unwrap();
        f(&mut bytes);
        with(v.clone(), field, json!(b64::encode(bytes)))
    }

    /// Parses and verifies against the header jwk or the ES256 test key.
    fn check(v: &[u8]) -> Result<(), JoseError> {
        let jws = Jws::parse(v)?;
        let key = match jws.header().key() {
            KeyRef::Jwk(j) => j.clone(),
            KeyRef::Kid(_) => key(Alg::Es256).public_jwk().clone(),
        };
        jws.verify(&key)
    }

    #[test]
    fn malformed_table() {
        let good = signed_with(jwk_header());
        check(&body(&good)).unwrap();
        let es = key(Alg::Es256).public_jwk().to_json();
        let rsa = key(Alg::Rs256).public_jwk().to_json();

        // An ES256 DER signature: SEQUENCE { INTEGER r, INTEGER s }.
        let der_sig = replace_b64(&good, "signature", |s| {
            let (r, ss) = s.split_at(32);
            let mut der = vec![0x30, 0x46, 0x02, 0x21, 0x00];
            der.extend_from_slice(r);
            der.extend_from_slice(&[0x02, 0x21, 0x00]);
            der.extend_from_slice(ss);
            *s = der;
        });
        let padded = with(
            good.clone(),
            "signature",
            json!(format!("{}=", good["signature"].as_str().unwrap())),
        );
        let std_alphabet = with(
            good.clone(),
            "payload",
            json!(
                b64::encode(b"{\"a\":\"\xfb\xff\"}")
                    .replace('-', "+")
                    .replace('_', "/")
            ),
        );
        let compact = format!(
            "{}.{}.{}",
            good["protected"].as_str().unwrap(),
            good["payload"].as_str().unwrap(),
            good["signature"].as_str().unwrap()
        );

        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "alg none",
                body(&signed_with(with(jwk_header(), "alg", json!("none")))),
                "badSignatureAlgorithm",
            ),
            (
                "HS256 outer",
                body(&signed_with(with(jwk_header(), "alg", json!("HS256")))),
                "badSignatureAlgorithm",
            ),
            (
                "unknown alg",
                body(&signed_with(with(jwk_header(), "alg", json!("ES512")))),
                "badSignatureAlgorithm",
            ),
            (
                "lowercase alg",
                body(&signed_with(with(jwk_header(), "alg", json!("es256")))),
                "badSignatureAlgorithm",
            ),
            (
                "wrong alg for key",
                body(&signed_with(with(jwk_header(), "alg", json!("ES384")))),
                "badSignatureAlgorithm",
            ),
            (
                "RS256 on EC key",
                body(&signed_with(with(jwk_header(), "alg", json!("RS256")))),
                "badSignatureAlgorithm",
            ),
            (
                "EC alg on RSA key",
                body(&signed_with(with(jwk_header(), "jwk", rsa))),
                "badSignatureAlgorithm",
            ),
            (
                "both jwk and kid",
                body(&signed_with(with(jwk_header(), "kid", json!("k")))),
                "malformed",
            ),
            (
                "neither jwk nor kid",
                body(&signed_with(json!({"nonce":"n","url":URL}))),
                "malformed",
            ),
            (
                "no url",
                body(&signed_with(json!({"nonce":"n","jwk":es}))),
                "malformed",
            ),
            (
                "no alg",
                body(
                    &sign_jws_with_header(key(Alg::Es256), &json!({"url":URL,"kid":"k"}), b"")
                        .unwrap(),
                ),
                "malformed",
            ),
            (
                "url not a string",
                body(&signed_with(with(jwk_header(), "url", json!(1)))),
                "malformed",
            ),
            (
                "kid not a string",
                body(&signed_with(json!({"url":URL,"kid":7}))),
                "malformed",
            ),
            (
                "crit unknown",
                body(&signed_with(with(
                    with(jwk_header(), "crit", json!(["exp"])),
                    "exp",
                    json!(1),
                ))),
                "malformed",
            ),
            (
                "crit empty",
                body(&signed_with(with(jwk_header(), "crit", json!([])))),
                "malformed",
            ),
            (
                "crit b64 absent",
                body(&signed_with(with(jwk_header(), "crit", json!(["b64"])))),
                "malformed",
            ),
            (
                "b64 false",
                body(&signed_with(with(
                    with(jwk_header(), "b64", json!(false)),
                    "crit",
                    json!(["b64"]),
                ))),
                "malformed",
            ),
            (
                "b64 false no crit",
                body(&signed_with(with(jwk_header(), "b64", json!(false)))),
                "malformed",
            ),
            (
                "bad base64 signature",
                body(&with(good.clone(), "signature", json!("!!!!"))),
                "malformed",
            ),
            (
                "bad base64 protected",
                body(&with(good.clone(), "protected", json!("eyJ*"))),
                "malformed",
            ),
            ("padded base64", body(&padded), "malformed"),
            ("standard alphabet", body(&std_alphabet), "malformed"),
            (
                "extra member",
                body(&with(good.clone(), "extra", json!(1))),
                "malformed",
            ),
            (
                "unprotected header",
                body(&with(good.clone(), "header", json!({"kid":"k"}))),
                "malformed",
            ),
            (
                "general serialization",
                body(
                    &json!({"payload": good["payload"], "signatures": [{"protected": good["protected"], "signature": good["signature"]}]}),
                ),
                "malformed",
            ),
            (
                "missing signature",
                body(&json!({"protected": good["protected"], "payload": good["payload"]})),
                "malformed",
            ),
            (
                "empty signature",
                body(&with(good.clone(), "signature", json!(""))),
                "malformed",
            ),
            (
                "empty protected",
                body(&with(good.clone(), "protected", json!(""))),
                "malformed",
            ),
            (
                "protected not JSON",
                body(&with(good.clone(), "protected", json!(b64::encode("nope")))),
                "malformed",
            ),
            (
                "protected duplicate",
                body(&with(
                    good.clone(),
                    "protected",
                    json!(b64::encode(r#"{"alg":"ES256","alg":"none"}"#)),
                )),
                "malformed",
            ),
            ("compact form", compact.into_bytes(), "malformed"),
            ("body not object", b"[1]".to_vec(), "malformed"),
            (
                "truncated signature",
                body(&replace_b64(&good, "signature", |s| s.truncate(63))),
                "malformed",
            ),
            (
                "altered signature",
                body(&replace_b64(&good, "signature", |s| s[10] ^= 1)),
                "malformed",
            ),
            (
                "altered payload",
                body(&with(
                    good.clone(),
                    "payload",
                    json!(b64::encode(b"{\"a\":2}")),
                )),
                "malformed",
            ),
            ("DER ECDSA signature", body(&der_sig), "malformed"),
            (
                "RSA 1024 jwk",
                body(&signed_with(with(
                    jwk_header(),
                    "jwk",
                    json!({"kty":"RSA","e":"AQAB","n": b64::encode([0xc3u8; 128])}),
                ))),
                "badPublicKey",
            ),
            (
                "RSA e=3 jwk",
                body(&signed_with(with(
                    jwk_header(),
                    "jwk",
                    with(key(Alg::Rs256).public_jwk().to_json(), "e", json!("Aw")),
                ))),
                "badPublicKey",
            ),
        ];
        for (name, body, ty) in cases {
            let err = check(&body).expect_err(name);
            assert_eq!(err.acme_type(), ty, "{name}: {err}");
            assert!(!err.detail().is_empty());
        }
    }

    #[test]
    fn crit_b64_true_is_accepted() {
        let v = signed_with(with(
            with(jwk_header(), "b64", json!(true)),
            "crit",
            json!(["b64"]),
        ));
        check(&body(&v)).unwrap();
    }

    #[test]
    fn rsa_signature_of_wrong_padding_fails() {
        // A PS256 signature relabelled RS256 must not verify.
        let k = key(Alg::Ps256);
        let mut h = json!({"url": URL, "kid": "k", "alg": "PS256"});
        let v = sign_jws_with_header(k, &h, b"{}").unwrap();
        h["alg"] = json!("RS256");
        let relabelled = with(
            v.clone(),
            "protected",
            json!(b64::encode(serde_json::to_vec(&h).unwrap())),
        );
        let jws = Jws::parse(&body(&relabelled)).unwrap();
        assert!(jws.verify(k.public_jwk()).is_err());
        Jws::parse(&body(&v))
            .unwrap()
            .verify(k.public_jwk())
            .unwrap();
    }

    /// Known answers from other implementations: RFC 7515 A.3 (ES256) and
    /// RFC 8037 A.4 (EdDSA). Their headers lack ACME members, so the
    /// signature layer is exercised directly.
    #[test]
    fn known_answer_signatures() {
        let raw = |p: &str, pl: &str, sig: &str| RawJws {
            protected_b64: p.into(),
            payload_b64: pl.into(),
            header: Map::new(),
            payload: Vec::new(),
            signature: b64::decode(sig, "sig").unwrap(),
        };
        let es = Jwk::from_json(&json!({"kty":"EC","crv":"P-256",
            "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}))
        .unwrap();
        let es_jws = raw(
            "eyJhbGciOiJFUzI1NiJ9",
            "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
            "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
        );
        verify_signature(&es, Alg::Es256, &es_jws).unwrap();
        let ed = Jwk::from_json(&json!({"kty":"OKP","crv":"Ed25519",
            "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}))
        .unwrap();
        let ed_jws = raw(
            "eyJhbGciOiJFZERTQSJ9",
            "RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc",
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
        );
        verify_signature(&ed, Alg::EdDsa, &ed_jws).unwrap();
        // RFC 8037 A.3 thumbprint of the same key.
        assert_eq!(
            ed.thumbprint_b64(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    mod mutation {
        use super::*;
        use proptest::prelude::*;

        fn original() -> &'static (Vec<u8>, Value) {
            static V: OnceLock<(Vec<u8>, Value)> = OnceLock::new();
            V.get_or_init(|| {
                let v = sign_jws(key(Alg::Es256), URL, Some("n"), None, br#"{"x":1}"#).unwrap();
                (body(&v), v)
            })
        }

        /// A mutation may only verify if it left the signed strings intact
        /// (e.g. it changed JSON whitespace or escapes only).
        fn assert_no_forgery(mutated: &[u8]) {
            let (_, v) = original();
            if let Ok(jws) = Jws::parse(mutated)
                && jws.verify(key(Alg::Es256).public_jwk()).is_ok()
            {
                assert_eq!(jws.raw.protected_b64, v["protected"].as_str().unwrap());
                assert_eq!(jws.raw.payload_b64, v["payload"].as_str().unwrap());
                assert_eq!(
                    b64::encode(&jws.raw.signature),
                    v["signature"].as_str().unwrap()
                );
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn byte_mutations_never_forge(ops in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4)) {
                let mut b = original().0.clone();
                for (idx, byte, op) in ops {
                    if b.is_empty() { break; }
                    let i = idx.index(b.len());
                    match op {
                        0 => b[i] ^= byte | 1,
                        1 => { b.remove(i); }
                        _ => b.insert(i, byte),
                    }
                }
                assert_no_forgery(&b);
            }

            #[test]
            fn member_mutations_never_verify(field in 0usize..3, idx in any::<prop::sample::Index>(), c in "[A-Za-z0-9_-]") {
                let (_, v) = original();
                let name = ["protected", "payload", "signature"][field];
                let mut s: Vec<char> = v[name].as_str().unwrap().chars().collect();
                let i = idx.index(s.len());
                let replacement = c.chars().next().unwrap();
                prop_assume!(s[i] != replacement);
                s[i] = replacement;
                let mutated = with(v.clone(), name, json!(s.into_iter().collect::<String>()));
                let res = Jws::parse(&body(&mutated)).and_then(|j| j.verify(key(Alg::Es256).public_jwk()));
                prop_assert!(res.is_err());
            }
        }
    }
}
