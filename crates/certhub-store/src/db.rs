//! The connection pool and the dialect differences.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Executor};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::{Result, StoreError};

/// A write transaction: every use case runs in exactly one. It derefs to the
/// connection, so statements run with `.execute(&mut *tx)` as with sqlx's own.
pub struct Tx {
    inner: sqlx::Transaction<'static, Any>,
    dialect: Dialect,
    /// SQLite: this process's turn as the one writer (dropped after `inner`,
    /// so the next writer starts once this one has committed or rolled back).
    _writer: Option<OwnedMutexGuard<()>>,
}

impl Tx {
    /// Commits. Inside a request that carries an `Idempotency-Key`, the
    /// request's first commit also claims the key, atomically with the state
    /// change (see [`crate::idempotency`]); if another request holds it, this
    /// transaction is rolled back instead and `IdempotencyConflict` returned.
    pub async fn commit(mut self) -> Result<()> {
        let Some(claim) = crate::idempotency::unclaimed() else {
            return Ok(self.inner.commit().await?);
        };
        if !crate::idempotency::claim_in(&mut self, &claim).await? {
            claim.set_state(crate::idempotency::ClaimState::Conflict);
            self.inner.rollback().await?;
            return Err(StoreError::IdempotencyConflict);
        }
        self.inner.commit().await?;
        claim.set_state(crate::idempotency::ClaimState::Claimed);
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub async fn rollback(self) -> Result<()> {
        Ok(self.inner.rollback().await?)
    }
}

impl std::ops::Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite admits one writer at a time. Queueing writers here, in FIFO
    /// order, hands the lock over the moment it is free; left to SQLite,
    /// waiting writers poll with growing sleeps (busy_timeout), which under
    /// load costs more time than the writes themselves. Other processes (the
    /// CLI while serve runs) still meet SQLite's own lock and busy_timeout.
    writer: Arc<AsyncMutex<()>>,
    /// SQLite: read-only connections for reads run on the calling thread
    /// (see [`crate::read`]).
    readers: Option<Arc<crate::read::Readers>>,
}

/// How long a writer waits for its turn before the request is answered as
/// "busy, retry" (the same bound as SQLite's busy_timeout).
const WRITER_WAIT: Duration = Duration::from_secs(10);

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dialect", &self.dialect)
            .finish()
    }
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../migrations/0001_foundation.sql"),
    ),
    (
        2,
        "ca_certificates",
        include_str!("../migrations/0002_ca_certificates.sql"),
    ),
    (
        3,
        "subscriptions",
        include_str!("../migrations/0003_subscriptions.sql"),
    ),
    (4, "acme", include_str!("../migrations/0004_acme.sql")),
    (
        5,
        "certificate_lifecycle",
        include_str!("../migrations/0005_certificate_lifecycle.sql"),
    ),
    (
        6,
        "ratelimits",
        include_str!("../migrations/0006_ratelimits.sql"),
    ),
    (
        7,
        "outbox_delivery",
        include_str!("../migrations/0007_outbox_delivery.sql"),
    ),
    (
        8,
        "list_counts",
        include_str!("../migrations/0008_list_counts.sql"),
    ),
    (
        9,
        "idempotency",
        include_str!("../migrations/0009_idempotency.sql"),
    ),
];

/// Migrations whose text differs by dialect beyond `{{ID}}`/`{{BLOB}}`
/// (triggers): PostgreSQL runs this text instead of the common one.
const POSTGRES_TEXT: &[(i64, &str)] = &[(
    8,
    include_str!("../migrations/0008_list_counts.postgres.sql"),
)];

impl Db {
    /// Connects to `sqlite://PATH` or `postgres://...`. SQLite databases are
    /// created if missing and run in WAL mode with full fsync on commit, so a
    /// reported state change survives a crash.
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(StoreError::Corrupt(format!(
                "unsupported database URL scheme: {url}"
            )));
        };
        let url = if dialect == Dialect::Sqlite && !url.contains("mode=") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.to_string()
        };
        let opts = AnyConnectOptions::from_str(&url)?;
        let pool = match dialect {
            Dialect::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await?
            }
            Dialect::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // A transaction dropped on an error path is rolled back
                            // lazily by the driver; these bound how long its locks
                            // could ever block others.
                            conn.execute(
                                "SET idle_in_transaction_session_timeout = 10000; SET lock_timeout = 20000",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await?
            }
        };
        let readers = match dialect {
            Dialect::Sqlite => {
                let path = sqlx::sqlite::SqliteConnectOptions::from_str(&url)?
                    .get_filename()
                    .to_path_buf();
                Some(Arc::new(crate::read::Readers::new(path)))
            }
            Dialect::Postgres => None,
        };
        Ok(Db {
            pool,
            dialect,
            writer: Arc::new(AsyncMutex::new(())),
            readers,
        })
    }

    pub(crate) fn readers(&self) -> Option<&crate::read::Readers> {
        self.readers.as_deref()
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Translates `?` placeholders to the dialect (`$1, $2...` on PostgreSQL).
    /// Results are cached and leaked: the set of distinct static statements
    /// is fixed by the code.
    pub fn sql(&self, sql: &'static str) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => sql,
            Dialect::Postgres => translate_cached(sql),
        }
    }

    /// Like [`Db::sql`] for statements built at run time from whitelisted
    /// parts (list filters). Not cached: their shapes vary with the request
    /// (filter counts, `in` list lengths), so interning them would let a
    /// client grow memory without bound.
    pub fn sql_dyn(&self, sql: &str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(match self.dialect {
            Dialect::Sqlite => sql.to_string(),
            Dialect::Postgres => translate(sql),
        })
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a read-then-write use case never fails half way
    /// because another writer (a CLI command, another request) got in between.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self.dialect {
            Dialect::Sqlite => {
                let turn = tokio::time::timeout(WRITER_WAIT, self.writer.clone().lock_owned())
                    .await
                    .map_err(|_| StoreError::Db(sqlx::Error::PoolTimedOut))?;
                Tx {
                    inner: self.pool.begin_with("BEGIN IMMEDIATE").await?,
                    dialect: self.dialect,
                    _writer: Some(turn),
                }
            }
            Dialect::Postgres => Tx {
                inner: self.pool.begin().await?,
                dialect: self.dialect,
                _writer: None,
            },
        })
    }

    /// Applies the embedded, append-only migrations that are not yet applied.
    /// Several nodes may start at once on PostgreSQL: an advisory lock makes
    /// exactly one of them migrate.
    pub async fn migrate(&self) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7241001)")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let done: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await?;
        let mut applied = Vec::new();
        for (version, name, sql) in MIGRATIONS {
            if done.contains(version) {
                continue;
            }
            let sql = match self.dialect {
                Dialect::Postgres => POSTGRES_TEXT
                    .iter()
                    .find(|(v, _)| v == version)
                    .map_or(*sql, |(_, t)| *t),
                Dialect::Sqlite => *sql,
            };
            let text = self.dialect_ddl(sql);
            sqlx::raw_sql(sqlx::AssertSqlSafe(text))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                self.sql(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                ),
            )
            .bind(*version)
            .bind(*name)
            .bind(certhub_domain::time::now())
            .execute(&mut *tx)
            .await?;
            applied.push(format!("{version:04}_{name}"));
        }
        tx.commit().await?;
        Ok(applied)
    }

    fn dialect_ddl(&self, sql: &str) -> String {
        let (id, blob) = match self.dialect {
            Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"),
            Dialect::Postgres => (
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                "BYTEA",
            ),
        };
        sql.replace("{{ID}}", id).replace("{{BLOB}}", blob)
    }

    /// `FOR UPDATE SKIP LOCKED` where the backend has row locks; SQLite has a
    /// single writer, so the clause is empty there.
    pub fn skip_locked(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// Closes the pool (tests and CLI commands).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(crate) fn translate_cached(sql: &'static str) -> &'static str {
    static CACHE: OnceLock<Mutex<HashMap<usize, &'static str>>> = OnceLock::new();
    let map = CACHE.get_or_init(Default::default);
    let key = sql.as_ptr() as usize ^ (sql.len() << 48);
    if let Some(v) = map.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return v;
    }
    let out: &'static str = Box::leak(translate(sql).into_boxed_str());
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, out);
    out
}

/// `?` → `$n`, skipping quoted literals.
fn translate(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut in_quote = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                in_quote = !in_quote;
                out.push(c);
            }
            '?' if !in_quote => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn translates_placeholders() {
        assert_eq!(
            super::translate("a = ? AND b = '?' AND c = ?"),
            "a = $1 AND b = '?' AND c = $2"
        );
    }
}
