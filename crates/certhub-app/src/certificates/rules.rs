//! Pure rules of the certificate lifecycle: DCV e-mail addresses, validation
//! reuse limits, engine back-off, random DCV values, AuthKey tokens and the
//! stored-ZIP writer of the download endpoint.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certhub_domain::names::{base_name, registrable_domain};
use certhub_domain::time::DAY;

/// Local parts of the constructed DCV addresses (BR 3.2.2.4.4).
pub const EMAIL_LOCAL_PARTS: [&str; 5] = [
    "admin",
    "administrator",
    "webmaster",
    "hostmaster",
    "postmaster",
];

/// AuthKey tokens are valid for 30 days (BR 1.6.1 "Random Value" lifetime).
pub const AUTH_KEY_VALIDITY: i64 = 30 * DAY;

/// A pending request fails when not validated within 30 days.
pub const REQUEST_TIMEOUT: i64 = 30 * DAY;

/// The constructed addresses for `name` and each parent down to the
/// registrable domain, nearest first. `None` when the name has no
/// registrable domain (a public suffix).
pub fn dcv_email_addresses(name: &str) -> Option<Vec<String>> {
    let base = base_name(name);
    let registrable = registrable_domain(base)?;
    let mut out = Vec::new();
    let mut cur = base;
    loop {
        for local in EMAIL_LOCAL_PARTS {
            out.push(format!("{local}@{cur}"));
        }
        if cur == registrable {
            break;
        }
        cur = cur.split_once('.').map(|(_, rest)| rest)?;
    }
    Some(out)
}

/// Domains whose validation covers `name`: its base name and each parent
/// down to the registrable domain (nearest first).
pub fn covering_domains(name: &str) -> Vec<String> {
    let base = base_name(name);
    let Some(registrable) = registrable_domain(base) else {
        return vec![base.to_string()];
    };
    let mut out = vec![base.to_string()];
    let mut cur = base;
    while cur != registrable {
        match cur.split_once('.') {
            Some((_, rest)) => {
                cur = rest;
                out.push(cur.to_string());
            }
            None => break,
        }
    }
    out
}

fn utc(y: i32, m: time::Month, d: u8) -> i64 {
    time::Date::from_calendar_date(y, m, d)
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .unwrap_or(i64::MAX)
}

/// BR 4.2.1 validation reuse limit (days) at signing time `now`.
pub fn reuse_days(now: i64) -> i64 {
    if now < utc(2027, time::Month::March, 15) {
        200
    } else if now < utc(2029, time::Month::March, 15) {
        100
    } else {
        10
    }
}

/// Delay before the engine's next DNS/FILE check after `checks` checks:
/// 1, 2, 5, 10, 30 minutes, then hourly.
pub fn backoff_secs(checks: i64) -> i64 {
    match checks {
        i64::MIN..=0 => 60,
        1 => 120,
        2 => 300,
        3 => 600,
        4 => 1800,
        _ => 3600,
    }
}

/// Checks after which a still-failing DNS/FILE validation needs the customer's attention.
pub const ATTENTION_AFTER_CHECKS: i64 = 6;

fn random<const N: usize>() -> [u8; N] {
    certhub_store::sealed::random_bytes::<N>()
}

/// A DCV random value: 20 random bytes (160 bits) as lower-case hex.
pub fn random_value() -> String {
    certhub_ca::hex_lower(&random::<20>())
}

/// A FILE validation file name (without `.txt`): 16 random bytes, upper-case hex.
pub fn random_file_name() -> String {
    certhub_ca::hex_upper(&random::<16>())
}

/// An e-mail approval token: 32 random bytes, base64url.
pub fn random_link_token() -> String {
    URL_SAFE_NO_PAD.encode(random::<32>())
}

fn auth_key_message(customer_id: i64, key_sha256: &[u8], expiry: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + key_sha256.len() + 8);
    m.extend_from_slice(&customer_id.to_be_bytes());
    m.extend_from_slice(key_sha256);
    m.extend_from_slice(&expiry.to_be_bytes());
    m
}

/// base64url(expiry ‖ HMAC-SHA256(key, customer ‖ SHA-256(SPKI) ‖ expiry)).
pub fn make_auth_key(
    server_key: &[u8],
    customer_id: i64,
    key_sha256: &[u8],
    expiry: i64,
) -> String {
    let k = hmac::Key::new(hmac::HMAC_SHA256, server_key);
    let tag = hmac::sign(&k, &auth_key_message(customer_id, key_sha256, expiry));
    let mut raw = expiry.to_be_bytes().to_vec();
    raw.extend_from_slice(tag.as_ref());
    URL_SAFE_NO_PAD.encode(raw)
}

/// Whether `token` is a live AuthKey of this customer for this key (MAC compared in constant time).
pub fn verify_auth_key(
    server_key: &[u8],
    customer_id: i64,
    key_sha256: &[u8],
    token: &str,
    now: i64,
) -> bool {
    let Ok(raw) = URL_SAFE_NO_PAD.decode(token.trim().trim_matches('"')) else {
        return false;
    };
    if raw.len() != 40 {
        return false;
    }
    let mut exp = [0u8; 8];
    exp.copy_from_slice(&raw[..8]);
    let expiry = i64::from_be_bytes(exp);
    if expiry <= now || expiry > now + AUTH_KEY_VALIDITY + DAY {
        return false;
    }
    let k = hmac::Key::new(hmac::HMAC_SHA256, server_key);
    hmac::verify(
        &k,
        &auth_key_message(customer_id, key_sha256, expiry),
        &raw[8..],
    )
    .is_ok()
}

/// The host of a URL such as `https://host:8443/x` (the default CAA identity).
pub fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host.to_ascii_lowercase()
}

/// A ZIP archive of stored (uncompressed) files: enough for two PEM files,
/// with no compression dependency.
pub fn zip_stored(files: &[(&str, &[u8])]) -> Vec<u8> {
    fn u16le(v: &mut Vec<u8>, x: u16) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    fn u32le(v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    let mut out = Vec::new();
    let mut central = Vec::new();
    // 1980-01-01 00:00 in DOS format (time 0, date (0 << 9) | (1 << 5) | 1).
    let (dos_time, dos_date) = (0u16, 0x21u16);
    for (name, data) in files {
        let crc = crc32fast::hash(data);
        let offset = u32::try_from(out.len()).unwrap_or(u32::MAX);
        let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let name_len = u16::try_from(name.len()).unwrap_or(u16::MAX);
        // Local file header.
        u32le(&mut out, 0x0403_4b50);
        for x in [20u16, 0, 0, dos_time, dos_date] {
            u16le(&mut out, x);
        }
        for x in [crc, size, size] {
            u32le(&mut out, x);
        }
        u16le(&mut out, name_len);
        u16le(&mut out, 0);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        // Central directory entry.
        u32le(&mut central, 0x0201_4b50);
        for x in [20u16, 20, 0, 0, dos_time, dos_date] {
            u16le(&mut central, x);
        }
        for x in [crc, size, size] {
            u32le(&mut central, x);
        }
        for x in [name_len, 0, 0, 0, 0] {
            u16le(&mut central, x);
        }
        u32le(&mut central, 0);
        u32le(&mut central, offset);
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = u32::try_from(out.len()).unwrap_or(u32::MAX);
    let cd_size = u32::try_from(central.len()).unwrap_or(u32::MAX);
    let n = u16::try_from(files.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&central);
    u32le(&mut out, 0x0605_4b50);
    for x in [0u16, 0, n, n] {
        u16le(&mut out, x);
    }
    u32le(&mut out, cd_size);
    u32le(&mut out, cd_offset);
    u16le(&mut out, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_walk_to_the_registrable_domain() {
        let a = dcv_email_addresses("*.www.example.co.uk").unwrap();
        assert_eq!(a.len(), 10);
        assert_eq!(a[0], "admin@www.example.co.uk");
        assert_eq!(a[9], "postmaster@example.co.uk");
        assert_eq!(dcv_email_addresses("example.com").unwrap().len(), 5);
        assert!(dcv_email_addresses("co.uk").is_none());
    }

    #[test]
    fn covering() {
        assert_eq!(
            covering_domains("*.a.example.com"),
            vec!["a.example.com", "example.com"]
        );
        assert_eq!(covering_domains("example.com"), vec!["example.com"]);
    }

    #[test]
    fn reuse_limits_follow_br_4_2_1() {
        assert_eq!(reuse_days(utc(2026, time::Month::June, 1)), 200);
        assert_eq!(reuse_days(utc(2027, time::Month::March, 15)), 100);
        assert_eq!(reuse_days(utc(2029, time::Month::March, 15)), 10);
    }

    #[test]
    fn auth_keys_verify_only_for_their_customer_key_and_time() {
        let key = [7u8; 32];
        let spki = [1u8; 32];
        let now = 1_800_000_000;
        let t = make_auth_key(&key, 5, &spki, now + AUTH_KEY_VALIDITY);
        assert!(verify_auth_key(&key, 5, &spki, &t, now));
        assert!(!verify_auth_key(&key, 6, &spki, &t, now));
        assert!(!verify_auth_key(&key, 5, &[2u8; 32], &t, now));
        assert!(!verify_auth_key(
            &key,
            5,
            &spki,
            &t,
            now + AUTH_KEY_VALIDITY
        ));
        assert!(!verify_auth_key(&[8u8; 32], 5, &spki, &t, now));
        assert!(!verify_auth_key(&key, 5, &spki, "garbage", now));
    }

    #[test]
    fn random_values_are_long_enough() {
        assert!(random_value().len() * 4 >= 112);
        assert_ne!(random_value(), random_value());
        assert_eq!(random_link_token().len(), 43);
    }

    #[test]
    fn hosts() {
        assert_eq!(url_host("https://Localhost:8443/x"), "localhost");
        assert_eq!(url_host("https://[::1]:8443"), "::1");
        assert_eq!(url_host("https://ca.example"), "ca.example");
    }

    #[test]
    fn zip_has_headers_and_directory() {
        let z = zip_stored(&[("a.txt", b"hello"), ("b.txt", b"world!")]);
        assert_eq!(&z[..4], b"PK\x03\x04");
        let eocd = z.len() - 22;
        assert_eq!(&z[eocd..eocd + 4], b"PK\x05\x06");
        assert_eq!(u16::from_le_bytes([z[eocd + 10], z[eocd + 11]]), 2);
        assert!(z.windows(5).any(|w| w == b"hello"));
    }
}
