//! Object identifiers used by the profiles (RFC 5280, RFC 6960, RFC 5758, CA/B BR 7.1.6).

use const_oid::ObjectIdentifier as Oid;

// Attribute types (X.520).
pub(crate) const AT_COUNTRY: Oid = Oid::new_unwrap("2.5.4.6");
pub(crate) const AT_STATE: Oid = Oid::new_unwrap("2.5.4.8");
pub(crate) const AT_LOCALITY: Oid = Oid::new_unwrap("2.5.4.7");
pub(crate) const AT_ORGANIZATION: Oid = Oid::new_unwrap("2.5.4.10");
pub(crate) const AT_COMMON_NAME: Oid = Oid::new_unwrap("2.5.4.3");

// Certificate extensions.
pub(crate) const EXT_SKI: Oid = Oid::new_unwrap("2.5.29.14");
pub(crate) const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
pub(crate) const EXT_SAN: Oid = Oid::new_unwrap("2.5.29.17");
pub(crate) const EXT_BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
pub(crate) const EXT_CRL_NUMBER: Oid = Oid::new_unwrap("2.5.29.20");
pub(crate) const EXT_CRL_REASON: Oid = Oid::new_unwrap("2.5.29.21");
pub(crate) const EXT_CRL_DP: Oid = Oid::new_unwrap("2.5.29.31");
pub(crate) const EXT_CERT_POLICIES: Oid = Oid::new_unwrap("2.5.29.32");
pub(crate) const EXT_AKI: Oid = Oid::new_unwrap("2.5.29.35");
pub(crate) const EXT_EKU: Oid = Oid::new_unwrap("2.5.29.37");
pub(crate) const EXT_AIA: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.1.1");
pub(crate) const EXT_OCSP_NOCHECK: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.5");

// Key purposes and access methods.
pub(crate) const KP_SERVER_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.1");
pub(crate) const KP_OCSP_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.9");
pub(crate) const AD_OCSP: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1");
pub(crate) const AD_CA_ISSUERS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.2");
pub(crate) const OCSP_BASIC: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.1");

// CA/Browser Forum reserved policy identifiers.
pub(crate) const POLICY_DV: Oid = Oid::new_unwrap("2.23.140.1.2.1");
pub(crate) const POLICY_OV: Oid = Oid::new_unwrap("2.23.140.1.2.2");

// Keys and signatures.
pub(crate) const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
pub(crate) const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
pub(crate) const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
pub(crate) const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
pub(crate) const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
pub(crate) const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
pub(crate) const ECDSA_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
pub(crate) const CURVE_P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
pub(crate) const CURVE_P384: Oid = Oid::new_unwrap("1.3.132.0.34");
pub(crate) const CURVE_P521: Oid = Oid::new_unwrap("1.3.132.0.35");

// Hashes (OCSP CertID).
pub(crate) const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
pub(crate) const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");

// CMS (PKCS#7 certificate bundles).
pub(crate) const CMS_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
pub(crate) const CMS_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
