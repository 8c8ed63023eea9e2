//! JOSE for the certhub ACME server (RFC 7515/7517/7518/7638, RFC 8555 §6.2,
//! §7.3.4, §7.3.5), written over aws-lc-rs primitives only.
//!
//! Why our own crate: ACME needs a narrower and stricter JWS than general
//! JOSE libraries offer (flattened form only, empty POST-as-GET payloads,
//! `alg` bound to the key type, nested EAB and keyChange objects) and errors
//! that map onto ACME problem types. Everything here is pure: no I/O, no
//! nonce or account storage; the server supplies URLs, keys and MAC keys.
//!
//! * [`Jws::parse`] then [`Jws::verify`] for every request;
//! * [`Jwk`] for account keys, thumbprints and key authorizations;
//! * [`verify_eab`] and [`verify_key_change`] for the nested objects;
//! * [`sign`] for test clients and load generators;
//! * [`JoseError::acme_type`] to build problem documents.
//!
//! ```
//! use certhub_jose::{Alg, Jws, sign};
//!
//! let key = sign::SigningKey::generate(Alg::Es256)?;
//! let url = "https://ca.example/acme/new-account";
//! let body = sign::sign_jws(&key, url, Some("nonce-1"), None, br#"{"termsOfServiceAgreed":true}"#)?;
//!
//! let jws = Jws::parse(body.to_string().as_bytes())?;
//! let account_key = jws.require_jwk()?; // newAccount carries the key itself
//! jws.verify(account_key)?;
//! assert_eq!(jws.header().url(), url);
//! assert!(!jws.is_post_as_get());
//! # Ok::<(), certhub_jose::JoseError>(())
//! ```

pub mod b64;
mod eab;
mod error;
mod json;
mod jwk;
mod jws;
mod key_change;
pub mod sign;

pub use eab::{MacAlg, verify_eab};
pub use error::JoseError;
pub use jwk::{Jwk, KeyType};
pub use jws::{Alg, Header, Jws, KeyRef};
pub use key_change::verify_key_change;
