//! certhub's persistence: one store over SQLite (default) or PostgreSQL.
//!
//! Both backends run the same SQL text: PostgreSQL through sqlx's `Any`
//! driver, SQLite through rusqlite on the calling thread for transactions and
//! hot reads ([`read`]; sqlx for the rest). Row mappers read either kind of
//! row. The few places
//! where the dialects differ (placeholders, id columns, blobs, write locks,
//! `SKIP LOCKED`) are handled here, in one module, so that every use case is
//! written once and the shared behaviour suite proves it on both backends.
//! Times are Unix seconds (`BIGINT`), booleans are `0/1`, JSON is `TEXT`.

mod db;
pub mod list;
mod lite_tx;
mod pg_conns;
pub mod read;
pub mod sealed;

pub mod audit;
pub mod billing;
pub mod customers;
pub mod idempotency;
pub mod jobs;
pub mod notifications;
pub mod processes;
pub mod products;
pub mod ratelimit;
pub mod secrets;

// Owned by the feature that builds them (see ARCHITECTURE.md).
pub mod acme;
pub mod certificates;
pub mod dcv;
pub mod subscriptions;

pub use db::{Db, Dialect, Tx};

/// The store's one error type. Callers map it once to their wire errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("insufficient credit: balance {balance}, needed {needed} {currency}")]
    InsufficientCredit {
        balance: i64,
        needed: i64,
        currency: String,
    },
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("secret error: {0}")]
    Secret(String),
    /// Another request already claimed this request's `Idempotency-Key`;
    /// this one's transaction was rolled back.
    #[error("the Idempotency-Key is held by another request")]
    IdempotencyConflict,
    /// An inline SQLite read failed (see [`read`]).
    #[error("database error: {0}")]
    Lite(rusqlite::Error),
    /// SQLite stayed locked past the busy timeout on an inline read.
    #[error("database busy: {0}")]
    Busy(String),
}

impl StoreError {
    /// A UNIQUE or PRIMARY KEY constraint refused the write, on either driver.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => e.is_unique_violation(),
            StoreError::Lite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Parses a JSON text column, mapping bad data to `Corrupt`.
pub fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Serialises a value for a JSON text column.
pub fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}
