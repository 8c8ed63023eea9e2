//! ACME Renewal Information (RFC 9773): CertIDs and suggested windows.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certhub_domain::time::DAY;
use certhub_store::acme::AriFacts;

use super::Problem;
use crate::App;

/// A certificate named by issuer and serial, with its RFC 9773 CertID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRef {
    pub issuer_id: String,
    /// Lower-case hex of the serial's magnitude, as stored.
    pub serial_hex: String,
    /// base64url(AKI keyIdentifier) "." base64url(serial DER content).
    pub cert_id: String,
}

/// Splits a CertID into (AKI key identifier, serial magnitude hex).
pub fn parse_cert_id(cert_id: &str) -> Result<(Vec<u8>, String), Problem> {
    let bad = || {
        Problem::malformed(format!(
            "{cert_id:?} is not a certificate identifier (RFC 9773 §4.1)"
        ))
    };
    let (aki, serial) = cert_id.split_once('.').ok_or_else(bad)?;
    let aki = URL_SAFE_NO_PAD.decode(aki).map_err(|_| bad())?;
    let serial = URL_SAFE_NO_PAD.decode(serial).map_err(|_| bad())?;
    if aki.is_empty() || serial.is_empty() || serial[0] & 0x80 != 0 {
        return Err(bad());
    }
    let first = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    Ok((aki, certhub_ca::hex_lower(&serial[first..])))
}

/// The suggested window (design.md "ARI"): start = notBefore + ⅔·L,
/// end = start + L/10; an ending subscription without autoRenew pulls the
/// window before its end; revoked certificates get a window in the past.
pub fn ari_window(f: &AriFacts, now: i64) -> (i64, i64) {
    if f.revoked_at.is_some() {
        return (now - 2 * DAY, now - DAY);
    }
    let lifetime = f.expiry_date - f.start_date + 1;
    let mut start = f.start_date + lifetime * 2 / 3;
    let mut end = start + lifetime / 10;
    if let Some((false, sub_end)) = f.subscription
        && sub_end < end
    {
        end = sub_end - DAY;
        start = start.min(end - DAY);
    }
    (start, end)
}

impl App {
    /// renewalInfo for a certificate of `product`.
    pub async fn acme_renewal_info(
        &self,
        product: &str,
        cert: &CertRef,
    ) -> Result<(i64, i64), Problem> {
        let facts = self
            .db()
            .acme_ari_facts(&cert.issuer_id, &cert.serial_hex)
            .await?
            .filter(|f| f.product == product)
            .ok_or_else(|| {
                Problem::not_found(format!(
                    "no certificate {} was issued by this directory",
                    cert.cert_id
                ))
            })?;
        Ok(ari_window(&facts, self.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        let l = 90 * DAY;
        let f = AriFacts {
            start_date: 0,
            expiry_date: l - 1,
            ..Default::default()
        };
        assert_eq!(ari_window(&f, 5), (60 * DAY, 69 * DAY));
        let ending = AriFacts {
            subscription: Some((false, 50 * DAY)),
            ..f.clone()
        };
        assert_eq!(ari_window(&ending, 5), (48 * DAY, 49 * DAY));
        let renewing = AriFacts {
            subscription: Some((true, 50 * DAY)),
            ..f.clone()
        };
        assert_eq!(ari_window(&renewing, 5), (60 * DAY, 69 * DAY));
        let revoked = AriFacts {
            revoked_at: Some(3),
            ..f
        };
        let (s, e) = ari_window(&revoked, 10 * DAY);
        assert!(s < e && e < 10 * DAY);
    }

    #[test]
    fn cert_ids() {
        let (aki, serial) = parse_cert_id("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE").unwrap();
        assert_eq!(aki.len(), 20);
        assert_eq!(serial, "87654321");
        assert!(parse_cert_id("nodot").is_err());
        assert!(parse_cert_id("a.").is_err());
    }
}
