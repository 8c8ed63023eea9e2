//! Encryption at rest under the key-encryption key (KEK).
//!
//! The KEK is the one secret that never enters the database (or a backup): it
//! comes from `CERTHUB_KEK` or a 0600 file in the data directory. Everything
//! secret that must be recoverable (CA keys, EAB MAC keys, server secrets) is
//! sealed with AES-256-GCM under it; the context string is bound as AAD so a
//! sealed value cannot be moved to another purpose.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::{Result, StoreError};

const VERSION: u8 = 1;

#[derive(Clone)]
pub struct Kek {
    key: std::sync::Arc<LessSafeKey>,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

impl Kek {
    pub fn from_bytes(bytes: &[u8]) -> Result<Kek> {
        if bytes.len() != 32 {
            return Err(StoreError::Secret("the KEK must be 32 bytes".into()));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| StoreError::Secret("bad KEK".into()))?;
        Ok(Kek {
            key: std::sync::Arc::new(LessSafeKey::new(unbound)),
        })
    }

    /// A fresh random KEK (first start).
    pub fn generate() -> [u8; 32] {
        random_bytes::<32>()
    }

    /// `version || nonce || ciphertext+tag`.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let mut buf = plaintext.to_vec();
        // Sealing cannot fail for in-memory buffers of sane size.
        let _ = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(context.as_bytes()),
            &mut buf,
        );
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&buf);
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != VERSION {
            return Err(StoreError::Secret(format!(
                "sealed value for {context} is malformed"
            )));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
        let mut buf = sealed[1 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| StoreError::Secret(format!("cannot decrypt {context}: wrong KEK?")))?;
        Ok(plain.to_vec())
    }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The system RNG does not fail on supported platforms.
    let _ = SystemRandom::new().fill(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_context_binding() {
        let kek = Kek::from_bytes(&Kek::generate()).unwrap();
        let s = kek.seal("eab", b"secret");
        assert_eq!(kek.open("eab", &s).unwrap(), b"secret");
        assert!(kek.open("ca-key", &s).is_err());
        let other = Kek::from_bytes(&Kek::generate()).unwrap();
        assert!(other.open("eab", &s).is_err());
    }
}
