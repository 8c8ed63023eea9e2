//! Customers and their API keys.
//!
//! An API key is `<key_id>.<secret>`-free on the wire: RTR keys are opaque, so
//! the key is 32 random bytes in standard base64 (44 characters, like RTR's).
//! We store a lookup id (the first 8 bytes of SHA-256 of the key, hex) and
//! HMAC-SHA256(pepper, key); the comparison is constant-time.

use crate::read::{Arg, Cols};
use aws_lc_rs::{digest, hmac};
use base64::Engine;

use crate::sealed::random_bytes;
use crate::{Db, Result, StoreError, Tx};

#[derive(Debug, Clone)]
pub struct Customer {
    pub id: i64,
    pub handle: String,
    pub currency: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct ApiKeyInfo {
    pub id: i64,
    pub key_id: String,
    pub customer_id: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

fn customer_from_row(r: &impl Cols) -> Result<Customer> {
    Ok(Customer {
        id: r.col("id")?,
        handle: r.col("handle")?,
        currency: r.col("currency")?,
        created_at: r.col("created_at")?,
    })
}

fn key_lookup_id(key: &str) -> String {
    let d = digest::digest(&digest::SHA256, key.as_bytes());
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn key_mac(pepper: &[u8], key: &str) -> Vec<u8> {
    let k = hmac::Key::new(hmac::HMAC_SHA256, pepper);
    hmac::sign(&k, key.as_bytes()).as_ref().to_vec()
}

impl Db {
    /// Creates a customer and its credit account inside the caller's
    /// transaction (so the operator's audit record commits with it).
    pub async fn create_customer(
        &self,
        tx: &mut Tx,
        handle: &str,
        currency: &str,
        now: i64,
    ) -> Result<Customer> {
        let exists: Option<i64> = tx
            .scalar_optional(
                "SELECT id FROM customers WHERE handle = ?",
                &[Arg::from(handle.to_string())],
            )
            .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!(
                "customer {handle} already exists"
            )));
        }
        let id: i64 = tx.scalar_one("INSERT INTO customers (handle, currency, created_at) VALUES (?, ?, ?) RETURNING id",
            &[
                Arg::from(handle.to_string()),
                Arg::from(currency.to_string()),
                Arg::from(now),
            ])
        .await?;
        tx.exec(
            "INSERT INTO credit_accounts (customer_id, currency) VALUES (?, ?)",
            &[Arg::from(id), Arg::from(currency.to_string())],
        )
        .await?;
        Ok(Customer {
            id,
            handle: handle.to_string(),
            currency: currency.to_string(),
            created_at: now,
        })
    }

    pub async fn customer_by_handle(&self, handle: &str) -> Result<Option<Customer>> {
        let row = self
            .read_optional(
                "SELECT id, handle, currency, created_at FROM customers WHERE handle = ?",
                &[Arg::from(handle.to_string())],
            )
            .await?;
        row.as_ref().map(customer_from_row).transpose()
    }

    pub async fn customer_by_id(&self, id: i64) -> Result<Option<Customer>> {
        let row = self
            .read_optional(
                "SELECT id, handle, currency, created_at FROM customers WHERE id = ?",
                &[Arg::from(id)],
            )
            .await?;
        row.as_ref().map(customer_from_row).transpose()
    }

    pub async fn list_customers(&self) -> Result<Vec<Customer>> {
        let rows =
            sqlx::query("SELECT id, handle, currency, created_at FROM customers ORDER BY id")
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(customer_from_row).collect()
    }

    /// Creates a key and returns it in clear exactly once.
    pub async fn create_api_key(
        &self,
        tx: &mut Tx,
        pepper: &[u8],
        customer_id: i64,
        now: i64,
    ) -> Result<(ApiKeyInfo, String)> {
        let key = base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>());
        let key_id = key_lookup_id(&key);
        let id: i64 = tx.scalar_one("INSERT INTO api_keys (customer_id, key_id, key_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id",
            &[
                Arg::from(customer_id),
                Arg::from(key_id.clone()),
                Arg::from(key_mac(pepper, &key)),
                Arg::from(now),
            ])
        .await?;
        Ok((
            ApiKeyInfo {
                id,
                key_id,
                customer_id,
                created_at: now,
                revoked_at: None,
            },
            key,
        ))
    }

    /// Resolves a presented key to its customer; `None` for unknown or revoked keys.
    pub async fn authenticate_api_key(
        &self,
        pepper: &[u8],
        key: &str,
    ) -> Result<Option<(ApiKeyInfo, Customer)>> {
        if key.len() > 200 {
            return Ok(None);
        }
        let row = self.read_optional(
            "SELECT k.id AS kid, k.key_id, k.key_hash, k.created_at AS kcreated, k.revoked_at, c.id, c.handle, c.currency, c.created_at \
             FROM api_keys k JOIN customers c ON c.id = k.customer_id WHERE k.key_id = ?",
            &[Arg::from(key_lookup_id(key))],
        )
        .await?;
        let Some(r) = row else { return Ok(None) };
        let stored: Vec<u8> = r.col("key_hash")?;
        let presented = key_mac(pepper, key);
        if aws_lc_rs::constant_time::verify_slices_are_equal(&stored, &presented).is_err() {
            return Ok(None);
        }
        let revoked_at: Option<i64> = r.col("revoked_at")?;
        if revoked_at.is_some() {
            return Ok(None);
        }
        let customer = customer_from_row(&r)?;
        let info = ApiKeyInfo {
            id: r.col("kid")?,
            key_id: r.col("key_id")?,
            customer_id: customer.id,
            created_at: r.col("kcreated")?,
            revoked_at,
        };
        Ok(Some((info, customer)))
    }

    pub async fn revoke_api_key(&self, tx: &mut Tx, key_id: &str, now: i64) -> Result<ApiKeyInfo> {
        let row = tx.fetch_optional("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL RETURNING id, key_id, customer_id, created_at, revoked_at",
            &[
                Arg::from(now),
                Arg::from(key_id.to_string()),
            ])
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(ApiKeyInfo {
            id: row.col("id")?,
            key_id: row.col("key_id")?,
            customer_id: row.col("customer_id")?,
            created_at: row.col("created_at")?,
            revoked_at: row.col("revoked_at")?,
        })
    }

    pub async fn list_api_keys(&self, customer_id: i64) -> Result<Vec<ApiKeyInfo>> {
        let rows = self.read_all(
            "SELECT id, key_id, customer_id, created_at, revoked_at FROM api_keys WHERE customer_id = ? ORDER BY id",
            &[Arg::from(customer_id)],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiKeyInfo {
                    id: r.col("id")?,
                    key_id: r.col("key_id")?,
                    customer_id: r.col("customer_id")?,
                    created_at: r.col("created_at")?,
                    revoked_at: r.col("revoked_at")?,
                })
            })
            .collect()
    }

    /// Locks the customer row for the rest of a transaction (PostgreSQL), so
    /// that two concurrent charges of one customer serialise.
    pub async fn lock_customer(&self, tx: &mut Tx, customer_id: i64) -> Result<()> {
        if self.dialect() == crate::Dialect::Postgres {
            tx.exec(
                "SELECT id FROM customers WHERE id = ? FOR UPDATE",
                &[Arg::from(customer_id)],
            )
            .await?;
        }
        Ok(())
    }
}
