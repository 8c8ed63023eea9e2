//! Output formats: PEM, PKCS#7 certificate bundles, hex.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::asn1::{ctx_cons, oid, seq, set, small_uint, tlv};
use crate::{CaError, oids};

/// RFC 7468 PEM: base64 in 64-character lines, `\n` line ends, trailing newline.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Every PEM block `(label, der)` in `text`, in order. Lenient about whitespace and `\r\n`.
pub fn pem_decode_all(text: &str) -> Result<Vec<(String, Vec<u8>)>, CaError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after
            .find("-----")
            .ok_or_else(|| CaError::Malformed("PEM: unterminated BEGIN line".into()))?;
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body_start
            .find(&end_marker)
            .ok_or_else(|| CaError::Malformed(format!("PEM: missing END {label}")))?;
        let body: String = body_start[..body_end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|e| CaError::Malformed(format!("PEM base64: {e}")))?;
        out.push((label.to_string(), der));
        rest = &body_start[body_end + end_marker.len()..];
    }
    Ok(out)
}

/// Accepts DER, or PEM with one of `labels`; returns the DER of the first matching block.
pub(crate) fn der_or_pem(input: &[u8], labels: &[&str]) -> Result<Vec<u8>, CaError> {
    if input.first() == Some(&0x30) {
        return Ok(input.to_vec());
    }
    let text =
        std::str::from_utf8(input).map_err(|_| CaError::Malformed("neither DER nor PEM".into()))?;
    pem_decode_all(text)?
        .into_iter()
        .find(|(l, _)| labels.contains(&l.as_str()))
        .map(|(_, d)| d)
        .ok_or_else(|| CaError::Malformed(format!("no PEM block labelled {}", labels.join(" or "))))
}

/// A degenerate CMS SignedData (RFC 5652 §5, certificates only, no signers): the "PKCS#7" download.
/// Certificates keep the given order (leaf first), which is what clients expect.
pub fn pkcs7_der(certs_der: &[Vec<u8>]) -> Vec<u8> {
    let certs: Vec<&[u8]> = certs_der.iter().map(Vec::as_slice).collect();
    let signed_data = seq(&[
        &small_uint(1),
        &set(&[]),
        &seq(&[&oid(&oids::CMS_DATA)]),
        &crate::asn1::cons(ctx_cons(0), &certs),
        &set(&[]),
    ]);
    seq(&[
        &oid(&oids::CMS_SIGNED_DATA),
        &tlv(ctx_cons(0), &signed_data),
    ])
}

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex_with(bytes: &[u8], digits: &[u8; 16]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(digits[usize::from(b >> 4)]));
        s.push(char::from(digits[usize::from(b & 0xf)]));
    }
    s
}

pub fn hex_lower(bytes: &[u8]) -> String {
    hex_with(bytes, HEX_LOWER)
}

pub fn hex_upper(bytes: &[u8]) -> String {
    hex_with(bytes, HEX_UPPER)
}

/// Parses hex (either case, even length) into bytes.
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        let der: Vec<u8> = (0..200u8).collect();
        let pem = pem_encode("CERTIFICATE", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let back = pem_decode_all(&pem.replace('\n', "\r\n")).unwrap();
        assert_eq!(back, vec![("CERTIFICATE".to_string(), der)]);
    }

    #[test]
    fn hex() {
        assert_eq!(hex_lower(&[0xab, 0x01]), "ab01");
        assert_eq!(hex_upper(&[0xab, 0x01]), "AB01");
        assert_eq!(hex_decode("ab01"), Some(vec![0xab, 1]));
        assert_eq!(hex_decode("abc"), None);
    }
}
