//! The connection pool and the dialect differences.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::lite_tx::LiteTx;
use crate::pg_conns::{PING_IDLE_AFTER, PgConn, PgConns, READERS, WRITERS};
use crate::read::{Arg, Cols, FromCol, LiteConns, Row, lite_error, query_rows};
use crate::{Result, StoreError};

/// A write transaction: every use case runs in exactly one. Statements run
/// through its methods (`tx.exec(sql, &[args])`, `tx.fetch_one(...)`), which
/// on SQLite execute inline on this process's one writer connection (see
/// [`crate::read`]: no thread hop per statement; only COMMIT, which waits for
/// fsync, goes to a blocking thread) and on PostgreSQL through sqlx, on a
/// connection kept aside from sqlx's pool (see [`crate::pg_conns`]).
pub struct Tx {
    inner: TxInner,
    dialect: Dialect,
    /// SQLite through sqlx (in-memory databases): this process's turn as
    /// the one writer (dropped after `inner`, so the next writer starts once
    /// this one has committed or rolled back). The inline path keeps its turn
    /// in [`LiteTx`], which hands it on before waiting for its group commit.
    _writer: Option<OwnedMutexGuard<()>>,
}

enum TxInner {
    Sqlx(sqlx::Transaction<'static, Any>),
    Lite(LiteTx),
    /// PostgreSQL: `BEGIN` sent on a connection of [`Db`]'s writer set.
    Pg(PgTx),
}

/// Where a transaction's statements run.
enum On<'a> {
    Sqlx(&'a mut sqlx::AnyConnection),
    Lite(&'a rusqlite::Connection),
}

impl TxInner {
    fn on(&mut self) -> On<'_> {
        match self {
            TxInner::Sqlx(t) => On::Sqlx(t),
            TxInner::Pg(t) => On::Sqlx(&mut t.conn.conn),
            TxInner::Lite(l) => On::Lite(l.conn()),
        }
    }
}

/// A PostgreSQL transaction on a connection of its own (see
/// [`crate::pg_conns`]): dropped unfinished, the connection closes and the
/// server rolls the transaction back.
struct PgTx {
    conn: PgConn,
    home: Arc<PgConns>,
}

impl PgTx {
    async fn begin(home: Arc<PgConns>, pool: &AnyPool) -> Result<PgTx> {
        let mut conn = home.take(pool).await?;
        sqlx::raw_sql("BEGIN").execute(&mut conn.conn).await?;
        Ok(PgTx { conn, home })
    }

    async fn finish(mut self, commit: bool) -> Result<()> {
        let end = if commit { "COMMIT" } else { "ROLLBACK" };
        sqlx::raw_sql(end).execute(&mut self.conn.conn).await?;
        self.home.give_back(self.conn);
        Ok(())
    }
}

/// What a statement changed.
#[derive(Debug, Clone, Copy)]
pub struct Done(u64);

impl Done {
    pub fn rows_affected(&self) -> u64 {
        self.0
    }
}

/// SQL text: static (PostgreSQL placeholders translated once and cached) or
/// built at run time from whitelisted parts.
#[derive(Clone, Copy)]
enum Sql<'a> {
    Static(&'static str),
    Dyn(&'a str),
}

impl Sql<'_> {
    fn text(&self) -> &str {
        match self {
            Sql::Static(s) => s,
            Sql::Dyn(s) => s,
        }
    }
}

impl Tx {
    /// Commits. Inside a request that carries an `Idempotency-Key`, the
    /// request's first commit also claims the key, atomically with the state
    /// change (see [`crate::idempotency`]); if another request holds it, this
    /// transaction is rolled back instead and `IdempotencyConflict` returned.
    pub async fn commit(mut self) -> Result<()> {
        let Some(claim) = crate::idempotency::unclaimed() else {
            return self.finish(true).await;
        };
        if !crate::idempotency::claim_in(&mut self, &claim).await? {
            claim.set_state(crate::idempotency::ClaimState::Conflict);
            self.finish(false).await?;
            return Err(StoreError::IdempotencyConflict);
        }
        self.finish(true).await?;
        claim.set_state(crate::idempotency::ClaimState::Claimed);
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub async fn rollback(self) -> Result<()> {
        self.finish(false).await
    }

    async fn finish(self, commit: bool) -> Result<()> {
        match self.inner {
            TxInner::Sqlx(t) if commit => Ok(t.commit().await?),
            TxInner::Sqlx(t) => Ok(t.rollback().await?),
            TxInner::Lite(l) => l.finish(commit).await,
            TxInner::Pg(t) => t.finish(commit).await,
        }
    }

    /// Runs a statement; how many rows it changed.
    pub async fn exec(&mut self, sql: &'static str, args: &[Arg]) -> Result<Done> {
        self.exec_sql(Sql::Static(sql), args).await
    }

    /// [`Tx::exec`] for SQL built at run time from whitelisted parts.
    pub async fn exec_dyn(&mut self, sql: &str, args: &[Arg]) -> Result<Done> {
        self.exec_sql(Sql::Dyn(sql), args).await
    }

    pub async fn fetch_optional(&mut self, sql: &'static str, args: &[Arg]) -> Result<Option<Row>> {
        Ok(self.rows(Sql::Static(sql), args, 1).await?.pop())
    }

    /// The one row a statement returns (an error when there is none).
    pub async fn fetch_one(&mut self, sql: &'static str, args: &[Arg]) -> Result<Row> {
        self.rows(Sql::Static(sql), args, 1)
            .await?
            .pop()
            .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
    }

    pub async fn fetch_all(&mut self, sql: &'static str, args: &[Arg]) -> Result<Vec<Row>> {
        self.rows(Sql::Static(sql), args, usize::MAX).await
    }

    pub async fn fetch_all_dyn(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>> {
        self.rows(Sql::Dyn(sql), args, usize::MAX).await
    }

    /// The first column of the one row a statement returns.
    pub async fn scalar_one<T: FromCol>(&mut self, sql: &'static str, args: &[Arg]) -> Result<T> {
        self.fetch_one(sql, args).await?.col_at(0)
    }

    pub async fn scalar_optional<T: FromCol>(
        &mut self,
        sql: &'static str,
        args: &[Arg],
    ) -> Result<Option<T>> {
        self.fetch_optional(sql, args)
            .await?
            .map(|r| r.col_at(0))
            .transpose()
    }

    pub async fn scalar_all<T: FromCol>(
        &mut self,
        sql: &'static str,
        args: &[Arg],
    ) -> Result<Vec<T>> {
        self.fetch_all(sql, args)
            .await?
            .iter()
            .map(|r| r.col_at(0))
            .collect()
    }

    /// Runs several `;`-separated statements without parameters (migrations).
    pub async fn batch(&mut self, sql: &str) -> Result<()> {
        match self.inner.on() {
            On::Sqlx(conn) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                    .execute(conn)
                    .await?;
                Ok(())
            }
            On::Lite(conn) => conn.execute_batch(sql).map_err(lite_error),
        }
    }

    async fn exec_sql(&mut self, sql: Sql<'_>, args: &[Arg]) -> Result<Done> {
        match self.inner.on() {
            On::Sqlx(conn) => {
                let r = sqlx_query(self.dialect, sql, args).execute(conn).await?;
                Ok(Done(r.rows_affected()))
            }
            On::Lite(conn) => {
                let n = conn
                    .prepare_cached(sql.text())
                    .and_then(|mut s| s.execute(rusqlite::params_from_iter(args.iter())))
                    .map_err(lite_error)?;
                Ok(Done(n as u64))
            }
        }
    }

    async fn rows(&mut self, sql: Sql<'_>, args: &[Arg], limit: usize) -> Result<Vec<Row>> {
        match self.inner.on() {
            On::Sqlx(conn) => {
                let rows = fetch_on(conn, sqlx_query(self.dialect, sql, args), limit).await?;
                Ok(rows.into_iter().map(Row::Any).collect())
            }
            On::Lite(conn) => Ok(query_rows(conn, sql.text(), args, limit)
                .map_err(lite_error)?
                .into_iter()
                .map(Row::Lite)
                .collect()),
        }
    }
}

/// The rows of `q` on `conn`: the first only when `limit` is 1 (the rest are
/// not read), otherwise all of them.
pub(crate) async fn fetch_on(
    conn: &mut sqlx::AnyConnection,
    q: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>,
    limit: usize,
) -> Result<Vec<sqlx::any::AnyRow>> {
    Ok(if limit == 1 {
        q.fetch_optional(conn).await?.into_iter().collect()
    } else {
        q.fetch_all(conn).await?
    })
}

fn sqlx_query<'a>(
    dialect: Dialect,
    sql: Sql<'_>,
    args: &[Arg],
) -> sqlx::query::Query<'a, Any, sqlx::any::AnyArguments> {
    let q = match (dialect, sql) {
        (Dialect::Sqlite, Sql::Static(s)) => sqlx::query(s),
        (Dialect::Postgres, Sql::Static(s)) => sqlx::query(translate_cached(s)),
        (Dialect::Sqlite, Sql::Dyn(s)) => sqlx::query(sqlx::AssertSqlSafe(s.to_string())),
        (Dialect::Postgres, Sql::Dyn(s)) => sqlx::query(sqlx::AssertSqlSafe(translate(s))),
    };
    crate::read::bind(q, args)
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
    /// SQLite: the connections statements run on inline (see [`crate::read`]).
    lite: Option<Arc<LiteConns>>,
    /// PostgreSQL: the connections reads outside a transaction run on, and
    /// those transactions and side writes run on (see [`crate::pg_conns`]).
    pg_readers: Option<Arc<PgConns>>,
    pg_writers: Option<Arc<PgConns>>,
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
    (
        10,
        "order_authzs_by_order",
        include_str!("../migrations/0010_order_authzs_by_order.sql"),
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
                    // The odd direct statement (claims, admin reads); reads,
                    // transactions and side writes have connections of their
                    // own (crate::pg_conns).
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(10))
                    // sqlx pings every connection it hands out by default: one
                    // more round trip to the server per statement outside a
                    // transaction (measured: a third of the messages sent per
                    // certificate). A connection in steady use is known to be
                    // alive; only one that sat idle is checked, and a failed
                    // check makes the pool open a fresh one.
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for >= PING_IDLE_AFTER {
                                sqlx::Connection::ping(conn).await?;
                            }
                            Ok(true)
                        })
                    })
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
        let lite = match dialect {
            Dialect::Sqlite => {
                let path = sqlx::sqlite::SqliteConnectOptions::from_str(&url)?
                    .get_filename()
                    .to_path_buf();
                (path.as_os_str() != ":memory:" && !url.contains("mode=memory"))
                    .then(|| Arc::new(LiteConns::new(path)))
            }
            Dialect::Postgres => None,
        };
        Ok(Db {
            pool,
            dialect,
            writer: Arc::new(AsyncMutex::new(())),
            lite,
            pg_readers: (dialect == Dialect::Postgres).then(|| Arc::new(PgConns::new(READERS))),
            pg_writers: (dialect == Dialect::Postgres).then(|| Arc::new(PgConns::new(WRITERS))),
        })
    }

    pub(crate) fn lite(&self) -> Option<&LiteConns> {
        self.lite.as_deref()
    }

    pub(crate) fn pg_readers(&self) -> Option<&PgConns> {
        self.pg_readers.as_deref()
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
                match &self.lite {
                    Some(home) => Tx {
                        inner: TxInner::Lite(
                            LiteTx::begin(home.clone(), self.writer.clone(), turn).await?,
                        ),
                        dialect: self.dialect,
                        _writer: None,
                    },
                    None => Tx {
                        inner: TxInner::Sqlx(self.pool.begin_with("BEGIN IMMEDIATE").await?),
                        dialect: self.dialect,
                        _writer: Some(turn),
                    },
                }
            }
            Dialect::Postgres => Tx {
                inner: match &self.pg_writers {
                    Some(home) => TxInner::Pg(PgTx::begin(home.clone(), &self.pool).await?),
                    None => TxInner::Sqlx(self.pool.begin().await?),
                },
                dialect: self.dialect,
                _writer: None,
            },
        })
    }

    /// One statement outside any use case's transaction (counters, marks,
    /// purges). On SQLite it runs as a transaction of its own on the writer
    /// connection, in its turn and group commit, rather than on a pooled
    /// connection that would poll SQLite's lock while the writer holds it;
    /// on PostgreSQL it is one autocommit statement.
    pub async fn write(&self, sql: &'static str, args: &[Arg]) -> Result<Done> {
        if let Some(home) = &self.pg_writers {
            let q = sqlx_query(self.dialect, Sql::Static(sql), args);
            return Ok(Done(home.execute(&self.pool, q).await?));
        }
        if self.lite.is_none() {
            let r = sqlx_query(self.dialect, Sql::Static(sql), args)
                .execute(&self.pool)
                .await?;
            return Ok(Done(r.rows_affected()));
        }
        let mut tx = self.begin().await?;
        let done = tx.exec(sql, args).await?;
        // Not `commit`: a request's Idempotency-Key is claimed only with
        // the use case's own state change, never by a side write.
        tx.finish(true).await?;
        Ok(done)
    }

    /// [`Db::write`] for a statement with `RETURNING`: its one row, if any.
    pub async fn write_returning(&self, sql: &'static str, args: &[Arg]) -> Result<Option<Row>> {
        if let Some(home) = &self.pg_writers {
            let q = sqlx_query(self.dialect, Sql::Static(sql), args);
            return Ok(home.fetch(&self.pool, q, 1).await?.pop().map(Row::Any));
        }
        if self.lite.is_none() {
            let row = sqlx_query(self.dialect, Sql::Static(sql), args)
                .fetch_optional(&self.pool)
                .await?;
            return Ok(row.map(Row::Any));
        }
        let mut tx = self.begin().await?;
        let row = tx.fetch_optional(sql, args).await?;
        tx.finish(true).await?;
        Ok(row)
    }

    /// [`Db::write`] for a statement built at run time (a multi-row
    /// `VALUES` list) with `RETURNING`: every row it returns.
    pub async fn write_rows_dyn(&self, sql: &str, args: &[Arg]) -> Result<Vec<Row>> {
        if let Some(home) = &self.pg_writers {
            let q = sqlx_query(self.dialect, Sql::Dyn(sql), args);
            let rows = home.fetch(&self.pool, q, usize::MAX).await?;
            return Ok(rows.into_iter().map(Row::Any).collect());
        }
        if self.lite.is_none() {
            let rows = sqlx_query(self.dialect, Sql::Dyn(sql), args)
                .fetch_all(&self.pool)
                .await?;
            return Ok(rows.into_iter().map(Row::Any).collect());
        }
        let mut tx = self.begin().await?;
        let rows = tx.fetch_all_dyn(sql, args).await?;
        tx.finish(true).await?;
        Ok(rows)
    }

    /// Applies the embedded, append-only migrations that are not yet applied.
    /// Several nodes may start at once on PostgreSQL: an advisory lock makes
    /// exactly one of them migrate.
    pub async fn migrate(&self) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        if self.dialect == Dialect::Postgres {
            tx.exec("SELECT pg_advisory_xact_lock(7241001)", &[])
                .await?;
        }
        tx.batch("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
            .await?;
        let done: Vec<i64> = tx
            .scalar_all("SELECT version FROM schema_migrations", &[])
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
            tx.batch(&text).await?;
            tx.exec(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                &[
                    Arg::from(*version),
                    Arg::from(*name),
                    Arg::from(certhub_domain::time::now()),
                ],
            )
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
    use super::*;

    /// Another process holding SQLite's write lock (the CLI while serve
    /// runs) makes `begin` wait for it off the runtime: other tasks on the
    /// same single-threaded runtime keep running meanwhile.
    #[tokio::test(flavor = "current_thread")]
    async fn begin_waits_for_a_foreign_writer_without_blocking_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = Db::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let mut tx = db.begin().await.unwrap();
        tx.batch("CREATE TABLE t (v BIGINT NOT NULL)")
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let foreign = rusqlite::Connection::open(&path).unwrap();
        foreign
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")
            .unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            foreign.execute_batch("COMMIT").unwrap();
        });

        let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        };
        let mut tx = db.begin().await.unwrap();
        let during = ticks.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            during >= 10,
            "the runtime ran only {during} ticks while begin waited"
        );
        tx.exec("INSERT INTO t VALUES (?)", &[Arg::Int(2)])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        ticker.abort();
        release.join().unwrap();
        let sum: i64 = db
            .read_optional("SELECT SUM(v) AS s FROM t", &[])
            .await
            .unwrap()
            .unwrap()
            .col("s")
            .unwrap();
        assert_eq!(sum, 3, "both writes committed, in turn");
    }

    #[test]
    fn translates_placeholders() {
        assert_eq!(
            super::translate("a = ? AND b = '?' AND c = ?"),
            "a = $1 AND b = '?' AND c = $2"
        );
    }
}
