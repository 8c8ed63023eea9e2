//! Strict unpadded base64url (RFC 7515 §2, RFC 4648 §5).
//!
//! JWS integrity rests on the exact base64url strings, and thumbprints on the
//! exact key bytes, so every byte string must have exactly one accepted
//! encoding: padding, the standard alphabet (`+`, `/`), whitespace and
//! non-zero trailing bits are all rejected.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes bytes as unpadded base64url.
#[must_use]
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes strict unpadded base64url.
///
/// # Errors
/// [`crate::JoseError::Malformed`] naming `what` if the input is not
/// canonical unpadded base64url.
pub fn decode(input: &str, what: &str) -> Result<Vec<u8>, crate::JoseError> {
    // URL_SAFE_NO_PAD rejects '=' (DecodePaddingMode::RequireNone), the
    // standard alphabet and non-canonical trailing bits.
    URL_SAFE_NO_PAD.decode(input).map_err(|_| {
        crate::JoseError::malformed(format!(
            "{what} is not valid unpadded base64url (RFC 7515 §2)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for len in 0..40u8 {
            let data: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(decode(&encode(&data), "x").unwrap(), data);
        }
        assert_eq!(encode([0xfb, 0xff]), "-_8");
    }

    #[test]
    fn rejects_non_canonical() {
        for bad in ["AQ==", "AQ=", "+/8", "A Q", "AQ\n", "A", "AR", "AQAB="] {
            let err = decode(bad, "field").unwrap_err();
            assert_eq!(err.acme_type(), "malformed", "{bad}");
            assert!(err.detail().contains("field"));
        }
        assert_eq!(decode("", "x").unwrap(), Vec::<u8>::new());
        assert_eq!(decode("AQAB", "x").unwrap(), vec![1, 0, 1]);
    }
}
