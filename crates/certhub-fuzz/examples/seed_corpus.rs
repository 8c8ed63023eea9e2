//! Writes the seed corpora and the hand-written malformed corpora:
//!
//! ```text
//! cargo run -p certhub-fuzz --example seed_corpus
//! ```
//!
//! * `fuzz/corpus/<target>/seed-<case>`: valid inputs (signed JWSs, CSRs of
//!   every accepted key type, list queries over every field and operator,
//!   route bodies, ACME payloads), so the fuzzer starts past the signature and
//!   policy checks instead of having to guess them;
//! * `fuzz/malformed/<target>/<case>.<expected>.<ext>`: inputs that must be
//!   refused with exactly `<expected>` (a JOSE problem type or a
//!   `CsrErrorKind`); `tests/replay.rs` checks that, and they are copied into
//!   the corpus as `malformed-<case>` too.
//!
//! Keys are fresh on every run except the fixed account key, so re-running
//! rewrites the seed files with different bytes but the same cases.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use certhub_ca::pem_encode;
use certhub_fuzz::{
    ACCOUNT_URL, EAB_KID, EAB_MAC_KEY, KEY_CHANGE_URL, NEW_ACCOUNT_URL, NEW_ORDER_URL, account_jwk,
    account_key,
};
use certhub_jose::sign::{SigningKey, sign_eab, sign_jws, sign_jws_with_header};
use certhub_jose::{Alg, MacAlg, b64};
use certhub_store::list::FieldType;
use num_bigint::BigUint;
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer as _, X509Certificate};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

struct Out {
    fuzz: PathBuf,
}

impl Out {
    fn seed(&self, target: &str, case: &str, bytes: impl AsRef<[u8]>) -> Res {
        let dir = self.fuzz.join("corpus").join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(format!("seed-{case}")), bytes)?;
        Ok(())
    }

    fn malformed(
        &self,
        target: &str,
        case: &str,
        expected: &str,
        ext: &str,
        bytes: impl AsRef<[u8]>,
    ) -> Res {
        let dir = self.fuzz.join("malformed").join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(format!("{case}.{expected}.{ext}")), &bytes)?;
        let corpus = self.fuzz.join("corpus").join(target);
        fs::create_dir_all(&corpus)?;
        fs::write(corpus.join(format!("malformed-{case}")), &bytes)?;
        Ok(())
    }
}

fn main() -> Res {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Out {
        fuzz: root.join("fuzz"),
    };
    let csrs = Csrs::generate()?;
    let leaf = leaf_certificate()?;
    jws(&out)?;
    csr(&out, &csrs)?;
    list_query(&out)?;
    rest_body(&out, &csrs, &leaf)?;
    acme_body(&out, &csrs, &leaf)?;
    println!("seeds written under {}", out.fuzz.display());
    Ok(())
}

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON values serialise")
}

// ------------------------------------------------------------------ jws

fn jws(out: &Out) -> Res {
    let t = "jws";
    let account = account_key();
    let payload = br#"{"identifiers":[{"type":"dns","value":"example.com"}]}"#;
    for alg in Alg::ALL {
        let k = SigningKey::generate(alg)?;
        let v = sign_jws(&k, NEW_ORDER_URL, Some("nonce-1"), None, payload)?;
        out.seed(t, &format!("jwk-{alg}"), body(&v))?;
    }
    let v = sign_jws(
        account,
        NEW_ORDER_URL,
        Some("n"),
        Some(ACCOUNT_URL),
        payload,
    )?;
    out.seed(t, "kid-new-order", body(&v))?;
    let v = sign_jws(account, ACCOUNT_URL, Some("n"), Some(ACCOUNT_URL), b"")?;
    out.seed(t, "kid-post-as-get", body(&v))?;

    for (name, mac) in [
        ("hs256", MacAlg::Hs256),
        ("hs384", MacAlg::Hs384),
        ("hs512", MacAlg::Hs512),
    ] {
        let eab = sign_eab(EAB_KID, EAB_MAC_KEY, mac, account_jwk(), NEW_ACCOUNT_URL);
        out.seed(t, &format!("eab-{name}"), body(&eab))?;
    }
    let eab = sign_eab(
        EAB_KID,
        EAB_MAC_KEY,
        MacAlg::Hs256,
        account_jwk(),
        NEW_ACCOUNT_URL,
    );
    let new_account = json!({"termsOfServiceAgreed": true, "contact": ["mailto:admin@example.com"], "externalAccountBinding": eab});
    let v = sign_jws(
        account,
        NEW_ACCOUNT_URL,
        Some("n"),
        None,
        &body(&new_account),
    )?;
    out.seed(t, "new-account-eab", body(&v))?;

    let change = body(&json!({"account": ACCOUNT_URL, "oldKey": account_jwk().to_json()}));
    for alg in [Alg::Es256, Alg::Es384, Alg::EdDsa, Alg::Rs256] {
        let new_key = SigningKey::generate(alg)?;
        let inner = sign_jws(&new_key, KEY_CHANGE_URL, None, None, &change)?;
        out.seed(t, &format!("key-change-inner-{alg}"), body(&inner))?;
        if alg == Alg::Es256 {
            let outer = sign_jws(
                account,
                KEY_CHANGE_URL,
                Some("n"),
                Some(ACCOUNT_URL),
                &body(&inner),
            )?;
            out.seed(t, "key-change-outer", body(&outer))?;
        }
    }
    malformed_jws(out)
}

/// Each case names the ACME problem type `certhub_fuzz::jws::accept` must answer.
fn malformed_jws(out: &Out) -> Res {
    let account = account_key();
    let jwk = account_jwk().to_json();
    let header = json!({"alg": "ES256", "nonce": "n", "url": NEW_ORDER_URL, "jwk": jwk});
    let good = sign_jws_with_header(account, &header, b"{}")?;
    let good_bytes = body(&good);
    let with = |field: &str, v: Value| {
        let mut h = header.clone();
        h[field] = v;
        sign_jws_with_header(account, &h, b"{}").map(|j| body(&j))
    };
    let without = |field: &str| {
        let mut h = header.clone();
        h.as_object_mut().map(|o| o.remove(field));
        sign_jws_with_header(account, &h, b"{}").map(|j| body(&j))
    };
    let member = |field: &str, v: Value| {
        let mut j = good.clone();
        j[field] = v;
        body(&j)
    };
    let sig = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut s =
            b64::decode(good["signature"].as_str().unwrap_or_default(), "sig").unwrap_or_default();
        f(&mut s);
        member("signature", json!(b64::encode(s)))
    };
    let protected_raw = |text: &str| member("protected", json!(b64::encode(text)));
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let other = SigningKey::generate(Alg::Es256)?;
    let mut rsa_1024 = vec![0xc3u8; 128];
    rsa_1024[127] |= 1;
    let mut off_curve = jwk.clone();
    off_curve["y"] = json!(b64::encode([7u8; 32]));
    let mut private = jwk.clone();
    private["d"] = json!(b64::encode([1u8; 32]));

    let bad = "badSignatureAlgorithm";
    let key = "badPublicKey";
    let m = "malformed";
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("alg-none", bad, with("alg", json!("none"))?),
        ("alg-hs256", bad, with("alg", json!("HS256"))?),
        ("alg-es512", bad, with("alg", json!("ES512"))?),
        ("alg-lowercase", bad, with("alg", json!("es256"))?),
        ("alg-key-mismatch", bad, with("alg", json!("ES384"))?),
        ("alg-number", m, with("alg", json!(256))?),
        ("no-alg", m, without("alg")?),
        ("no-url", m, without("url")?),
        ("url-array", m, with("url", json!([NEW_ORDER_URL]))?),
        ("jwk-and-kid", m, with("kid", json!(ACCOUNT_URL))?),
        ("no-key", m, without("jwk")?),
        (
            "jwk-rsa-1024",
            key,
            with(
                "jwk",
                json!({"kty": "RSA", "e": "AQAB", "n": b64::encode(&rsa_1024)}),
            )?,
        ),
        (
            "jwk-rsa-e3",
            key,
            with(
                "jwk",
                json!({"kty": "RSA", "e": "Aw", "n": b64::encode([0xc3u8; 256])}),
            )?,
        ),
        ("jwk-off-curve", key, with("jwk", off_curve)?),
        ("jwk-private", key, with("jwk", private)?),
        ("jwk-oct", key, with("jwk", json!({"kty": "oct"}))?),
        (
            "jwk-symmetric",
            key,
            with("jwk", json!({"kty": "oct", "k": "AAAA"}))?,
        ),
        ("jwk-string", m, with("jwk", json!("key"))?),
        ("crit-unknown", m, with("crit", json!(["exp"]))?),
        ("b64-false", m, with("b64", json!(false))?),
        ("empty", m, Vec::new()),
        ("garbage", m, b"garbage".to_vec()),
        ("nul-bytes", m, vec![0; 16]),
        ("array", m, b"[1]".to_vec()),
        ("truncated", m, good_bytes[..good_bytes.len() / 2].to_vec()),
        ("trailing-garbage", m, [&good_bytes[..], b" x"].concat()),
        (
            "utf8-bom",
            m,
            ["\u{feff}".as_bytes(), &good_bytes[..]].concat(),
        ),
        ("protected-number", m, member("protected", json!(1))),
        ("payload-null", m, member("payload", Value::Null)),
        (
            "huge-number",
            m,
            format!(
                r#"{{"protected":{},"payload":{},"signature":1{}e999999}}"#,
                good["protected"],
                good["payload"],
                "9".repeat(400)
            )
            .into_bytes(),
        ),
        (
            "bad-base64-signature",
            m,
            member("signature", json!("!!!!")),
        ),
        (
            "padded-base64-signature",
            m,
            member(
                "signature",
                json!(format!(
                    "{}=",
                    good["signature"].as_str().unwrap_or_default()
                )),
            ),
        ),
        (
            "std-alphabet-payload",
            m,
            member("payload", json!("e30+/w")),
        ),
        ("payload-whitespace", m, member("payload", json!("e3 0"))),
        (
            "duplicate-member",
            m,
            format!(
                r#"{{"protected":{p},"protected":{p},"payload":{},"signature":{}}}"#,
                good["payload"],
                good["signature"],
                p = good["protected"]
            )
            .into_bytes(),
        ),
        (
            "duplicate-header-member",
            m,
            protected_raw(&format!(
                r#"{{"alg":"ES256","alg":"none","url":"{NEW_ORDER_URL}","kid":"k"}}"#
            )),
        ),
        ("header-not-object", m, protected_raw("[]")),
        ("header-not-json", m, protected_raw("{alg:ES256}")),
        (
            "deeply-nested-body",
            m,
            format!(r#"{{"protected":{}}}"#, nested(5000)).into_bytes(),
        ),
        (
            "deeply-nested-header",
            m,
            protected_raw(&format!(r#"{{"alg":"ES256","x":{}}}"#, nested(5000))),
        ),
        (
            "compact",
            m,
            format!(
                "{}.{}.{}",
                good["protected"].as_str().unwrap_or_default(),
                good["payload"].as_str().unwrap_or_default(),
                good["signature"].as_str().unwrap_or_default()
            )
            .into_bytes(),
        ),
        (
            "general-serialization",
            m,
            body(
                &json!({"payload": good["payload"], "signatures": [{"protected": good["protected"], "signature": good["signature"]}]}),
            ),
        ),
        (
            "unprotected-header",
            m,
            member("header", json!({"kid": ACCOUNT_URL})),
        ),
        ("extra-member", m, member("extra", json!(1))),
        ("empty-signature", m, member("signature", json!(""))),
        ("empty-protected", m, member("protected", json!(""))),
        ("flipped-signature", m, sig(&|s| s[5] ^= 1)),
        ("long-signature", m, sig(&|s| s.push(0))),
        ("short-signature", m, sig(&|s| s.truncate(63))),
        (
            "der-signature",
            m,
            sig(&|s| {
                let (r, rest) = s.split_at(32);
                let mut der = vec![0x30, 0x46, 0x02, 0x21, 0x00];
                der.extend_from_slice(r);
                der.extend_from_slice(&[0x02, 0x21, 0x00]);
                der.extend_from_slice(rest);
                *s = der;
            }),
        ),
        (
            "altered-payload",
            m,
            member("payload", json!(b64::encode(b"{\"a\":1}"))),
        ),
        (
            "kid-wrong-key",
            m,
            body(&sign_jws(
                &other,
                NEW_ORDER_URL,
                Some("n"),
                Some(ACCOUNT_URL),
                b"{}",
            )?),
        ),
    ];
    for (case, expected, bytes) in cases {
        out.malformed("jws", case, expected, "json", bytes)?;
    }
    Ok(())
}

// ------------------------------------------------------------------ csr

/// Valid CSRs (DER) shared by the CSR, REST and ACME seeds.
struct Csrs {
    ec: Vec<u8>,
    list: Vec<(&'static str, Vec<u8>)>,
}

fn csr_with(
    key: &rcgen::KeyPair,
    sans: Vec<rcgen::SanType>,
    dn: &[(rcgen::DnType, &str)],
) -> Res<Vec<u8>> {
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = sans;
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (ty, v) in dn {
        params.distinguished_name.push(ty.clone(), *v);
    }
    Ok(params.serialize_request(key)?.der().to_vec())
}

fn dns(names: &[&str]) -> Res<Vec<rcgen::SanType>> {
    names
        .iter()
        .map(|n| Ok(rcgen::SanType::DnsName((*n).try_into()?)))
        .collect()
}

impl Csrs {
    fn generate() -> Res<Csrs> {
        use rcgen::DnType::*;
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?;
        let rsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
        let ec = csr_with(
            &p256,
            dns(&["example.com", "*.example.com"])?,
            &[(CommonName, "example.com")],
        )?;
        let ov = csr_with(
            &p256,
            dns(&["shop.example.org"])?,
            &[
                (CountryName, "NL"),
                (StateOrProvinceName, "Noord-Holland"),
                (LocalityName, "Amsterdam"),
                (OrganizationName, "Example B.V."),
                (OrganizationalUnitName, "IT"),
                (CommonName, "Shop.Example.org"),
            ],
        )?;
        let list = vec![
            ("p256", ec.clone()),
            ("p256-ov-subject", ov),
            (
                "p384",
                csr_with(&p384, dns(&["a.example.net", "b.example.net"])?, &[])?,
            ),
            (
                "rsa2048",
                csr_with(
                    &rsa,
                    dns(&["rsa.example.com"])?,
                    &[(CommonName, "rsa.example.com")],
                )?,
            ),
            (
                "cn-only-idn",
                csr_with(&p256, Vec::new(), &[(CommonName, "Bücher.Example.com")])?,
            ),
            (
                "ip-and-dns",
                csr_with(
                    &p256,
                    vec![
                        rcgen::SanType::IpAddress("192.0.2.1".parse()?),
                        rcgen::SanType::IpAddress("2001:db8::1".parse()?),
                        rcgen::SanType::DnsName("host.example.com".try_into()?),
                    ],
                    &[(CommonName, "192.0.2.1")],
                )?,
            ),
        ];
        Ok(Csrs { ec, list })
    }
}

fn csr(out: &Out, csrs: &Csrs) -> Res {
    for (case, der) in &csrs.list {
        out.seed("csr", &format!("{case}.der"), der)?;
    }
    out.seed(
        "csr",
        "p256.pem",
        pem_encode("CERTIFICATE REQUEST", &csrs.ec),
    )?;
    out.seed(
        "csr",
        "p256-new.pem",
        pem_encode("NEW CERTIFICATE REQUEST", &csrs.ec),
    )?;
    malformed_csr(out, csrs)
}

/// Minimal DER writing for hand-built requests.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn oid(der_content: &[u8]) -> Vec<u8> {
    tlv(0x06, der_content)
}

fn uint(magnitude: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = magnitude.iter().copied().skip_while(|b| *b == 0).collect();
    if v.first().is_some_and(|b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    tlv(0x02, &v)
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_SHA256_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// A request for CN=a.example.com with `spki` and a junk signature: every
/// key refusal happens before the signature is checked.
fn handmade_csr(spki: &[u8], sig_alg: &[u8]) -> Vec<u8> {
    let cn = seq(&[&oid(&[0x55, 0x04, 0x03]), &tlv(0x0c, b"a.example.com")]);
    let name = seq(&[&tlv(0x31, &cn)]);
    let cri = seq(&[&tlv(0x02, &[0]), &name, spki, &[0xa0, 0x00]]);
    let mut sig = vec![0u8];
    sig.extend_from_slice(&[0x5a; 64]);
    seq(&[&cri, &seq(&[&oid(sig_alg)]), &tlv(0x03, &sig)])
}

fn rsa_csr(n: &BigUint, e: u32) -> Vec<u8> {
    let key = seq(&[&uint(&n.to_bytes_be()), &uint(&e.to_be_bytes())]);
    let mut bits = vec![0u8];
    bits.extend(key);
    let spki = seq(&[&seq(&[&oid(OID_RSA), &[0x05, 0x00]]), &tlv(0x03, &bits)]);
    handmade_csr(&spki, OID_SHA256_RSA)
}

fn ec_csr(params: &[u8], point: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(point);
    let spki = seq(&[&seq(&[&oid(OID_EC), params]), &tlv(0x03, &bits)]);
    handmade_csr(&spki, OID_ECDSA_SHA256)
}

/// An odd modulus of exactly `bits` bits.
fn odd_modulus(bits: u64) -> BigUint {
    (BigUint::from(1u32) << (bits - 1)) + BigUint::from(0x1234_5677u32)
}

/// The ROCA fingerprint of the certhub-ca test, at 2048 bits and odd.
fn roca_modulus() -> BigUint {
    const PRIMES: [u32; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    let m: BigUint = PRIMES.iter().map(|p| BigUint::from(*p)).product();
    let base = (BigUint::from(1u32) << 2047u32) / &m * &m + &m;
    (1u32..)
        .map(|k| &base + BigUint::from(65_537u32).modpow(&BigUint::from(k), &m))
        .find(|n| n.bit(0))
        .expect("some power gives an odd modulus")
}

fn malformed_csr(out: &Out, csrs: &Csrs) -> Res {
    use rcgen::DnType::CommonName;
    let good = &csrs.ec;
    let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let flip_last = {
        let mut b = good.clone();
        let last = b.len() - 1;
        b[last] ^= 1;
        b
    };
    let tampered = {
        let mut b = good.clone();
        let at = b
            .windows(11)
            .position(|w| w == b"example.com")
            .ok_or("no name in the CSR")?;
        b[at] = b'f';
        b
    };
    let replace = |from: &[u8], to: &[u8]| -> Res<Vec<u8>> {
        let at = good
            .windows(from.len())
            .position(|w| w == from)
            .ok_or("pattern not in the CSR")?;
        let mut b = good.clone();
        b[at..at + from.len()].copy_from_slice(to);
        Ok(b)
    };
    let bad_length = {
        let mut b = good.clone();
        b[2] = b[2].wrapping_add(5);
        b
    };
    let pem = pem_encode("CERTIFICATE REQUEST", good);
    let point = p256.public_key_raw().to_vec();
    let mut off_curve = point.clone();
    off_curve[64] ^= 1;
    let mut compressed = point[..33].to_vec();
    compressed[0] = 2;
    let p256_params = oid(OID_P256);
    let a = (BigUint::from(1u32) << 1024u32) - (BigUint::from(1u32) << 10u32);
    let fermat = &a * &a - BigUint::from(1u32);

    let cases: Vec<(&str, &str, &str, Vec<u8>)> = vec![
        ("empty", "Malformed", "der", Vec::new()),
        (
            "garbage",
            "Malformed",
            "txt",
            b"not a certificate request".to_vec(),
        ),
        ("non-utf8", "Malformed", "bin", vec![0xff, 0xfe, 0x00, 0x30]),
        (
            "truncated",
            "Malformed",
            "der",
            good[..good.len() / 2].to_vec(),
        ),
        ("only-header", "Malformed", "der", good[..4].to_vec()),
        ("bad-length", "Malformed", "der", bad_length),
        (
            "huge-length",
            "Malformed",
            "der",
            vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x30, 0x00],
        ),
        (
            "length-overflow",
            "Malformed",
            "der",
            vec![
                0x30, 0x89, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        ),
        (
            "indefinite-length",
            "Malformed",
            "der",
            [&[0x30, 0x80][..], &good[2..], &[0, 0]].concat(),
        ),
        (
            "trailing-data",
            "Malformed",
            "der",
            [&good[..], &[0x00]].concat(),
        ),
        (
            "version-2",
            "Malformed",
            "der",
            replace(&[0x02, 0x01, 0x00], &[0x02, 0x01, 0x01])?,
        ),
        (
            "pem-bad-base64",
            "Malformed",
            "pem",
            b"-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n"
                .to_vec(),
        ),
        (
            "pem-wrong-label",
            "Malformed",
            "pem",
            pem.replace("CERTIFICATE REQUEST", "CERTIFICATE")
                .into_bytes(),
        ),
        (
            "pem-unterminated",
            "Malformed",
            "pem",
            pem.as_bytes()[..pem.len() - 30].to_vec(),
        ),
        (
            "pem-begin-only",
            "Malformed",
            "pem",
            b"-----BEGIN ".to_vec(),
        ),
        (
            "pem-der-garbage",
            "Malformed",
            "pem",
            pem_encode("CERTIFICATE REQUEST", b"\x30\x03\x02\x01\x00").into_bytes(),
        ),
        ("bad-signature", "BadSignature", "der", flip_last),
        ("tampered-name", "BadSignature", "der", tampered),
        (
            "unsupported-signature-alg",
            "BadSignature",
            "der",
            replace(
                OID_ECDSA_SHA256,
                &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x01],
            )?,
        ),
        (
            "rsa-1024",
            "UnsupportedKey",
            "der",
            rsa_csr(&odd_modulus(1024), 65_537),
        ),
        (
            "rsa-8192",
            "UnsupportedKey",
            "der",
            rsa_csr(&odd_modulus(8192), 65_537),
        ),
        (
            "rsa-2047-bits",
            "UnsupportedKey",
            "der",
            rsa_csr(&odd_modulus(2047), 65_537),
        ),
        (
            "rsa-e3",
            "UnsupportedKey",
            "der",
            rsa_csr(&odd_modulus(2048), 3),
        ),
        (
            "rsa-even-modulus",
            "WeakKey",
            "der",
            rsa_csr(&(odd_modulus(2048) + 1u32), 65_537),
        ),
        (
            "rsa-roca",
            "WeakKey",
            "der",
            rsa_csr(&roca_modulus(), 65_537),
        ),
        ("rsa-fermat", "WeakKey", "der", rsa_csr(&fermat, 65_537)),
        (
            "ec-p521",
            "UnsupportedKey",
            "der",
            ec_csr(&oid(OID_P521), &point),
        ),
        (
            "ec-no-curve",
            "UnsupportedKey",
            "der",
            ec_csr(&[0x05, 0x00], &point),
        ),
        (
            "ec-compressed",
            "UnsupportedKey",
            "der",
            ec_csr(&p256_params, &compressed),
        ),
        (
            "ec-off-curve",
            "WeakKey",
            "der",
            ec_csr(&p256_params, &off_curve),
        ),
        (
            "ec-short-point",
            "WeakKey",
            "der",
            ec_csr(&p256_params, &point[..40]),
        ),
        (
            "ed25519",
            "UnsupportedKey",
            "der",
            handmade_csr(
                &seq(&[&seq(&[&oid(OID_ED25519)]), &tlv(0x03, &[0u8; 33])]),
                OID_ED25519,
            ),
        ),
        (
            "no-names",
            "BadName",
            "der",
            csr_with(&p256, Vec::new(), &[])?,
        ),
        (
            "single-label",
            "BadName",
            "der",
            csr_with(&p256, dns(&["localhost"])?, &[])?,
        ),
        (
            "empty-label",
            "BadName",
            "der",
            csr_with(&p256, dns(&["a..example.com"])?, &[])?,
        ),
        (
            "public-suffix",
            "BadName",
            "der",
            csr_with(&p256, dns(&["co.uk"])?, &[])?,
        ),
        (
            "email-san",
            "BadName",
            "der",
            csr_with(
                &p256,
                vec![rcgen::SanType::Rfc822Name("a@example.com".try_into()?)],
                &[],
            )?,
        ),
        (
            "ip-cn-not-in-san",
            "BadName",
            "der",
            csr_with(
                &p256,
                dns(&["a.example.com"])?,
                &[(CommonName, "192.0.2.7")],
            )?,
        ),
        (
            "duplicate-san",
            "DuplicateName",
            "der",
            csr_with(&p256, dns(&["a.example.com", "A.EXAMPLE.COM."])?, &[])?,
        ),
    ];
    for (case, expected, ext, bytes) in cases {
        out.malformed("csr", case, expected, ext, bytes)?;
    }
    Ok(())
}

// ------------------------------------------------------------------ certificates

/// A leaf with an authorityKeyIdentifier (what revokeCert and `replaces` name).
struct Leaf {
    der: Vec<u8>,
    cert_id: String,
}

fn leaf_certificate() -> Res<Leaf> {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(vec!["example.com".to_string()])?;
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[
        0x04, 0x2a, 0x9c, 0x11, 0x05,
    ]));
    let der = params.signed_by(&key, &issuer)?.der().to_vec();
    let (_, cert) = X509Certificate::from_der(&der)?;
    let cert_id = certhub_ca::ari_cert_id(&cert).ok_or("the leaf has no AKI")?;
    Ok(Leaf { der, cert_id })
}

// ------------------------------------------------------------------ list_query

fn list_query(out: &Out) -> Res {
    let t = "list_query";
    for (name, res) in certhub_fuzz::list_query::resources() {
        let typed = |ty: FieldType| match ty {
            FieldType::Int => "42",
            FieldType::Time => "2024-05-01T12:00:00Z",
            FieldType::Bool => "true",
            FieldType::Text => "example",
            FieldType::JsonArray => "a.example.com",
        };
        let join = |f: &dyn Fn(&certhub_store::list::Field) -> String| {
            res.fields.iter().map(f).collect::<Vec<_>>().join("&")
        };
        out.seed(
            t,
            &format!("{name}-eq"),
            join(&|f| format!("{}={}", f.name, typed(f.ty))),
        )?;
        for op in ["ne", "gt", "lte", "like", "not_like"] {
            out.seed(
                t,
                &format!("{name}-{op}"),
                join(&|f| format!("{}:{op}={}", f.name, typed(f.ty))),
            )?;
        }
        out.seed(
            t,
            &format!("{name}-in"),
            join(&|f| format!("{}:in={},{}", f.name, typed(f.ty), typed(f.ty))),
        )?;
        out.seed(
            t,
            &format!("{name}-null"),
            join(&|f| format!("{}:null=&{}:not_null=", f.name, f.name)),
        )?;
        let names: Vec<&str> = res.fields.iter().map(|f| f.name).collect();
        out.seed(
            t,
            &format!("{name}-order-fields"),
            format!(
                "order=-{}&order=%2B{}&fields={}&limit=25&offset=50&total=false",
                names.join(",-"),
                names[0],
                names.join(",")
            ),
        )?;
    }
    for (case, q) in [
        ("paging", "limit=1000&offset=0&total=0"),
        ("export", "export=true&order=id"),
        ("search", "q=Example%20B.V.&quote=false"),
        ("quote", "quote=true"),
        (
            "date-only",
            "createdDate:gte=2024-01-01&createdDate:lt=2024-12-31T23:59:59%2B02:00",
        ),
        ("fields-extra", "fields=id,approver,san,periods,features"),
        (
            "percent-escapes",
            "domainNames:like=%25.example.%25&q=%E2%82%AC",
        ),
        ("plus-space", "q=a+b&order=+id"),
        ("limit-negative", "limit=-1"),
        ("limit-huge", "limit=99999999999999999999"),
        ("unknown-op", "id:regex=1"),
        ("unknown-field", "bogus=1"),
        ("export-with-limit", "export=1&limit=5"),
        ("empty", ""),
    ] {
        out.seed(t, case, q)?;
    }
    Ok(())
}

// ------------------------------------------------------------------ rest_body

fn rest_body(out: &Out, csrs: &Csrs, leaf: &Leaf) -> Res {
    let t = "rest_body";
    let csr_pem = pem_encode("CERTIFICATE REQUEST", &csrs.ec);
    let cert_pem = pem_encode("CERTIFICATE", &leaf.der);
    let approver = json!({"firstName": "Ada", "lastName": "Lovelace", "jobTitle": "CTO", "email": "ada@example.com", "voice": "+31.201234567"});
    let org = json!({"organization": "Example B.V.", "country": "NL", "state": "Noord-Holland", "address": "Dam 1", "postalCode": "1012 JS", "city": "Amsterdam"});
    let merge = |mut a: Value, b: &Value| {
        if let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object()) {
            a.extend(b.clone());
        }
        a
    };
    let bodies = [
        (
            "subscription-create-dv",
            json!({"customer": "acme-corp", "product": "ssl-dv-acme", "domainNames": ["example.com", "*.example.com"], "autoRenew": true, "period": 12, "certValidity": 90}),
        ),
        (
            "subscription-create-ov",
            merge(
                json!({"customer": "acme-corp", "product": "ssl-ov-acme", "domainNames": ["example.org"], "period": 24, "approver": approver}),
                &org,
            ),
        ),
        (
            "subscription-update",
            merge(
                json!({"domainNames": [" example.com ", "www.example.com"], "autoRenew": false, "period": 12, "approver": approver}),
                &org,
            ),
        ),
        ("subscription-renew", json!({"period": 24})),
        (
            "certificate-request",
            merge(
                json!({
                    "customer": "acme-corp", "product": "ssl-ov", "period": 12, "csr": csr_pem,
                    "domainName": "example.com", "san": ["*.example.com"], "department": "IT", "coc": "12345678",
                    "saEmail": "sa@example.com", "saLanguage": "en", "language": "nl", "uniqueValue": "a1b2c3",
                    "authKey": false, "approver": approver,
                    "dcv": [{"commonName": "example.com", "type": "dns"}, {"commonName": "*.example.com", "type": "email", "email": "admin@example.com"}],
                    "billables": [{"product": "ssl-ov", "quantity": 1}],
                }),
                &org,
            ),
        ),
        (
            "certificate-reissue",
            json!({"csr": csr_pem, "domainName": "example.com", "dcv": [{"commonName": "example.com", "type": "file"}], "authKey": true}),
        ),
        (
            "import",
            json!({"customer": "acme-corp", "certificate": cert_pem, "csr": csr_pem, "coc": "1", "domainName": "example.com"}),
        ),
        ("revoke", json!({"reason": "KEY_COMPROMISE"})),
        (
            "resend",
            json!({"dcv": [{"commonName": "example.com", "type": "dns"}]}),
        ),
        (
            "validation-call",
            json!({"date": {"date": "2024-05-01 10:00:00.000000", "timezone_type": 3, "timezone": "UTC"}}),
        ),
        (
            "agreement",
            json!({"email": "a@example.com", "language": "en"}),
        ),
        ("empty-object", json!({})),
        ("unknown-key", json!({"period": 12, "colour": "blue"})),
        (
            "wrong-type",
            json!({"period": "12", "domainNames": "example.com"}),
        ),
        ("nested-wrong-type", json!({"approver": {"firstName": 7}})),
        (
            "big-numbers",
            json!({"period": 1e300, "certValidity": 18_446_744_073_709_551_615u64}),
        ),
    ];
    for (case, v) in bodies {
        out.seed(t, case, body(&v))?;
    }
    for (case, raw) in [
        ("empty", &b""[..]),
        ("whitespace", b" \r\n\t"),
        ("array", b"[{\"period\":12}]"),
        ("not-json", b"period=12"),
        ("duplicate-key", b"{\"period\":12,\"period\":\"x\"}"),
        (
            "unicode-whitespace",
            "{\"domainNames\":[\"\u{2003}example.com\u{a0}\"]}".as_bytes(),
        ),
    ] {
        out.seed(t, case, raw)?;
    }
    Ok(())
}

// ------------------------------------------------------------------ acme_body

fn acme_body(out: &Out, csrs: &Csrs, leaf: &Leaf) -> Res {
    let t = "acme_body";
    let eab = sign_eab(
        EAB_KID,
        EAB_MAC_KEY,
        MacAlg::Hs256,
        account_jwk(),
        NEW_ACCOUNT_URL,
    );
    let payloads = [
        (
            "new-account-eab",
            json!({"termsOfServiceAgreed": true, "contact": ["mailto:admin@example.com"], "externalAccountBinding": eab}),
        ),
        ("new-account-existing", json!({"onlyReturnExisting": true})),
        (
            "new-order",
            json!({"identifiers": [{"type": "dns", "value": "example.com"}, {"type": "dns", "value": "*.Example.COM"}], "notBefore": "2024-01-01T00:00:00Z", "notAfter": "2024-04-01T00:00:00.5+02:00", "profile": "default"}),
        ),
        (
            "new-order-replaces",
            json!({"identifiers": [{"type": "dns", "value": "example.com"}], "replaces": leaf.cert_id}),
        ),
        (
            "new-order-ip",
            json!({"identifiers": [{"type": "ip", "value": "192.0.2.1"}]}),
        ),
        ("finalize", json!({"csr": URL_SAFE_NO_PAD.encode(&csrs.ec)})),
        (
            "finalize-padded-std",
            json!({"csr": STANDARD.encode(&csrs.ec)}),
        ),
        (
            "revoke",
            json!({"certificate": URL_SAFE_NO_PAD.encode(&leaf.der), "reason": 1}),
        ),
        (
            "revoke-bad-reason",
            json!({"certificate": URL_SAFE_NO_PAD.encode(&leaf.der), "reason": 2}),
        ),
        ("deactivate", json!({"status": "deactivated"})),
        (
            "contact-update",
            json!({"contact": ["mailto:a@example.com", "mailto:b@example.org"]}),
        ),
        ("challenge", json!({})),
    ];
    for (case, v) in payloads {
        out.seed(t, case, body(&v))?;
    }
    if let Some((_, rsa)) = csrs.list.iter().find(|(c, _)| *c == "rsa2048") {
        out.seed(
            t,
            "finalize-rsa",
            body(&json!({"csr": URL_SAFE_NO_PAD.encode(rsa)})),
        )?;
    }
    out.seed(t, "cert-id", &leaf.cert_id)?;
    Ok(())
}
