//! A deliberately small DER writer and reader.
//!
//! x509-cert 0.3 keeps the fields of `TbsCertificate` crate-private and has no
//! OCSP types for der 0.8, so the profiles below are written as explicit DER:
//! every byte of a certificate, CRL or OCSP response is decided here, which
//! keeps the profiles auditable against the Baseline Requirements and keeps
//! issuance allocation-light. Everything produced is re-parsed in tests with
//! x509-parser and the `openssl` CLI.

use const_oid::ObjectIdentifier;

use crate::CaError;

pub(crate) const TAG_BOOLEAN: u8 = 0x01;
pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
pub(crate) const TAG_NULL: u8 = 0x05;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_ENUMERATED: u8 = 0x0a;
pub(crate) const TAG_UTF8_STRING: u8 = 0x0c;
pub(crate) const TAG_PRINTABLE_STRING: u8 = 0x13;
pub(crate) const TAG_UTC_TIME: u8 = 0x17;
pub(crate) const TAG_GENERALIZED_TIME: u8 = 0x18;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
pub(crate) const TAG_SET: u8 = 0x31;

/// Context-specific tag number `n`, primitive (IMPLICIT over a primitive type).
pub(crate) const fn ctx_prim(n: u8) -> u8 {
    0x80 | n
}

/// Context-specific tag number `n`, constructed (EXPLICIT, or IMPLICIT over a constructed type).
pub(crate) const fn ctx_cons(n: u8) -> u8 {
    0xa0 | n
}

/// Appends a TLV with a definite, minimal length.
pub(crate) fn push_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    push_len(out, content.len());
    out.extend_from_slice(content);
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 4);
    push_tlv(&mut out, tag, content);
    out
}

/// A constructed value from already-encoded parts.
pub(crate) fn cons(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(len + 4);
    out.push(tag);
    push_len(&mut out, len);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

pub(crate) fn seq(parts: &[&[u8]]) -> Vec<u8> {
    cons(TAG_SEQUENCE, parts)
}

pub(crate) fn set(parts: &[&[u8]]) -> Vec<u8> {
    cons(TAG_SET, parts)
}

pub(crate) fn oid(o: &ObjectIdentifier) -> Vec<u8> {
    tlv(TAG_OID, o.as_bytes())
}

pub(crate) fn null() -> Vec<u8> {
    vec![TAG_NULL, 0]
}

pub(crate) fn boolean(v: bool) -> Vec<u8> {
    vec![TAG_BOOLEAN, 1, if v { 0xff } else { 0 }]
}

pub(crate) fn octet_string(v: &[u8]) -> Vec<u8> {
    tlv(TAG_OCTET_STRING, v)
}

/// BIT STRING with no unused bits (keys, signatures).
pub(crate) fn bit_string(v: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(v.len() + 1);
    content.push(0);
    content.extend_from_slice(v);
    tlv(TAG_BIT_STRING, &content)
}

/// Named-bit BIT STRING (KeyUsage): DER drops trailing zero bits.
/// `bits` lists the bit numbers that are set (bit 0 = most significant bit of the first byte).
pub(crate) fn named_bits(bits: &[u8]) -> Vec<u8> {
    let Some(max) = bits.iter().copied().max() else {
        return vec![TAG_BIT_STRING, 1, 0];
    };
    let nbytes = usize::from(max / 8) + 1;
    let mut data = vec![0u8; nbytes];
    for b in bits {
        data[usize::from(b / 8)] |= 0x80 >> (b % 8);
    }
    let unused = 7 - (max % 8);
    let mut content = Vec::with_capacity(nbytes + 1);
    content.push(unused);
    content.extend_from_slice(&data);
    tlv(TAG_BIT_STRING, &content)
}

/// INTEGER from an unsigned big-endian magnitude, minimally encoded.
pub(crate) fn uint(magnitude: &[u8]) -> Vec<u8> {
    let trimmed = trim_leading_zeros(magnitude);
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.is_empty() || trimmed[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(TAG_INTEGER, &content)
}

pub(crate) fn trim_leading_zeros(v: &[u8]) -> &[u8] {
    let skip = v.iter().take_while(|b| **b == 0).count();
    &v[skip..]
}

pub(crate) fn small_uint(v: u64) -> Vec<u8> {
    uint(&v.to_be_bytes())
}

pub(crate) fn enumerated(v: u8) -> Vec<u8> {
    // All enumerations used here (OCSP status, CRL reason) are below 0x80.
    vec![TAG_ENUMERATED, 1, v]
}

pub(crate) fn utf8(s: &str) -> Vec<u8> {
    tlv(TAG_UTF8_STRING, s.as_bytes())
}

pub(crate) fn printable(s: &str) -> Vec<u8> {
    tlv(TAG_PRINTABLE_STRING, s.as_bytes())
}

fn datetime(unix: i64) -> Result<time::OffsetDateTime, CaError> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|_| CaError::InvalidRequest(format!("time {unix} is out of range")))
}

/// RFC 5280 §4.1.2.5 Time: UTCTime through 2049, GeneralizedTime from 2050.
pub(crate) fn x509_time(unix: i64) -> Result<Vec<u8>, CaError> {
    let t = datetime(unix)?;
    if (1950..2050).contains(&t.year()) {
        let s = format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}Z",
            t.year() % 100,
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        Ok(tlv(TAG_UTC_TIME, s.as_bytes()))
    } else {
        generalized_time(unix)
    }
}

/// GeneralizedTime at whole seconds, `YYYYMMDDHHMMSSZ` (OCSP always uses this form).
pub(crate) fn generalized_time(unix: i64) -> Result<Vec<u8>, CaError> {
    let t = datetime(unix)?;
    if !(0..=9999).contains(&t.year()) {
        return Err(CaError::InvalidRequest(format!(
            "time {unix} is out of range"
        )));
    }
    let s = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    Ok(tlv(TAG_GENERALIZED_TIME, s.as_bytes()))
}

/// One X.509 Extension.
pub(crate) fn extension(id: &ObjectIdentifier, critical: bool, value: &[u8]) -> Vec<u8> {
    let id = oid(id);
    let value = octet_string(value);
    if critical {
        seq(&[&id, &boolean(true), &value])
    } else {
        // DER: DEFAULT FALSE is omitted.
        seq(&[&id, &value])
    }
}

// ---------------------------------------------------------------- reader

/// One parsed TLV: the tag, its content and the whole encoding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

fn malformed(what: &str) -> CaError {
    CaError::Malformed(what.to_string())
}

/// Reads one DER TLV from the front of `input` (single-byte tags, definite minimal lengths).
pub(crate) fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), CaError> {
    let (&tag, rest) = input
        .split_first()
        .ok_or_else(|| malformed("truncated DER"))?;
    if tag & 0x1f == 0x1f {
        return Err(malformed("multi-byte DER tags are not supported"));
    }
    let (&first, rest) = rest
        .split_first()
        .ok_or_else(|| malformed("truncated DER length"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(malformed("unsupported DER length"));
        }
        let mut len = 0usize;
        for b in &rest[..n] {
            len = (len << 8) | usize::from(*b);
        }
        if len < 0x80 || rest[0] == 0 {
            return Err(malformed("non-minimal DER length"));
        }
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(malformed("truncated DER content"));
    }
    let header = input.len() - rest.len();
    let tlv = Tlv {
        tag,
        content: &rest[..len],
        raw: &input[..header + len],
    };
    Ok((tlv, &rest[len..]))
}

/// Sequential reader over the content of a constructed value.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    pub(crate) fn next(&mut self) -> Result<Tlv<'a>, CaError> {
        let (t, rest) = read_tlv(self.rest)?;
        self.rest = rest;
        Ok(t)
    }

    /// The next value, which must carry `tag`.
    pub(crate) fn expect(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>, CaError> {
        let t = self.next()?;
        if t.tag != tag {
            return Err(CaError::Malformed(format!("expected {what}")));
        }
        Ok(t)
    }

    /// The next value if it carries `tag`.
    pub(crate) fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, CaError> {
        if self.peek_tag() == Some(tag) {
            self.next().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Parses `input` as exactly one TLV with `tag`.
pub(crate) fn parse_single<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<Tlv<'a>, CaError> {
    let (t, rest) = read_tlv(input)?;
    if t.tag != tag || !rest.is_empty() {
        return Err(CaError::Malformed(format!("expected {what}")));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_minimal() {
        assert_eq!(tlv(4, &[0; 3])[..2], [4, 3]);
        assert_eq!(tlv(4, &[0; 200])[..3], [4, 0x81, 200]);
        assert_eq!(tlv(4, &[0; 300])[..4], [4, 0x82, 1, 44]);
        let enc = tlv(4, &[7; 300]);
        let (t, rest) = read_tlv(&enc).unwrap();
        assert!(rest.is_empty());
        assert_eq!(t.content.len(), 300);
        assert_eq!(t.raw, &enc[..]);
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(uint(&[0, 0, 5]), vec![2, 1, 5]);
        assert_eq!(uint(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(uint(&[]), vec![2, 1, 0]);
        assert_eq!(small_uint(256), vec![2, 2, 1, 0]);
    }

    #[test]
    fn key_usage_bits() {
        // digitalSignature only: 03 02 07 80
        assert_eq!(named_bits(&[0]), vec![3, 2, 7, 0x80]);
        // keyCertSign (5) + cRLSign (6): 03 02 01 06
        assert_eq!(named_bits(&[5, 6]), vec![3, 2, 1, 0x06]);
    }

    #[test]
    fn times_switch_at_2050() {
        assert_eq!(x509_time(0).unwrap(), tlv(TAG_UTC_TIME, b"700101000000Z"));
        let t2050 = 2_524_608_000; // 2050-01-01T00:00:00Z
        assert_eq!(
            x509_time(t2050).unwrap(),
            tlv(TAG_GENERALIZED_TIME, b"20500101000000Z")
        );
        assert_eq!(
            x509_time(t2050 - 1).unwrap(),
            tlv(TAG_UTC_TIME, b"491231235959Z")
        );
    }

    #[test]
    fn reader_rejects_garbage() {
        assert!(read_tlv(&[0x30]).is_err());
        assert!(read_tlv(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0]).is_err()); // non-minimal
        assert!(read_tlv(&[0x30, 0x05, 0]).is_err());
        assert!(parse_single(&[0x30, 0, 0], 0x30, "seq").is_err());
    }
}
