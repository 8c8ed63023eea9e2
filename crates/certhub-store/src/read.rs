//! SQLite statements run on the calling thread, and the row and parameter
//! types shared with the sqlx path.
//!
//! sqlx drives each SQLite connection from its own thread and hands every
//! statement and every row across a channel: two thread wake-ups per
//! statement, which the issuance profile showed to be the largest single cost
//! (a quarter of the server's CPU in the scheduler). SQLite answers the
//! statements of a request in microseconds, so on SQLite they run directly
//! on the calling task's thread instead:
//! - reads outside a transaction ([`Db::read_optional`], [`Db::read_all`])
//!   on a small set of read-only connections with cached statements;
//! - write transactions ([`crate::Tx`]) on one writer connection, used only
//!   under this process's writer turn; `COMMIT`, which waits for fsync, and a
//!   `BEGIN` that must wait for another process's lock go to a blocking
//!   thread, so a runtime thread never sleeps in SQLite.
//!
//! On PostgreSQL, whose driver is asynchronous end to end, the same calls go
//! through sqlx. Rows from either path are read through [`Cols`], so one
//! mapping function per entity serves both.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::{FromSql, Value, ValueRef};
use sqlx::Any;
use sqlx::any::AnyRow;

use crate::lite_tx::Group;
use crate::{Db, Result, StoreError};

/// A bound parameter. NULLs carry their column's type: PostgreSQL infers
/// parameter types and refuses a text NULL for a BIGINT column.
#[derive(Debug, Clone)]
pub enum Arg {
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    NullInt,
    NullText,
    NullBlob,
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(v.to_string())
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(v)
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(v.clone())
    }
}

impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Arg {
        Arg::Blob(v)
    }
}

impl From<&[u8]> for Arg {
    fn from(v: &[u8]) -> Arg {
        Arg::Blob(v.to_vec())
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        v.map_or(Arg::NullInt, Arg::Int)
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        v.map_or(Arg::NullText, Arg::Text)
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Arg {
        v.map_or(Arg::NullText, Arg::from)
    }
}

impl From<Option<Vec<u8>>> for Arg {
    fn from(v: Option<Vec<u8>>) -> Arg {
        v.map_or(Arg::NullBlob, Arg::Blob)
    }
}

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(match self {
            Arg::Int(v) => ValueRef::Integer(*v),
            Arg::Text(v) => ValueRef::Text(v.as_bytes()),
            Arg::Blob(v) => ValueRef::Blob(v),
            Arg::NullInt | Arg::NullText | Arg::NullBlob => ValueRef::Null,
        }))
    }
}

/// A column type both drivers can decode.
pub trait FromCol: Sized + for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + FromSql {}
impl<T> FromCol for T where T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + FromSql {}

/// Column access over a row of either driver.
pub trait Cols {
    fn col<T: FromCol>(&self, name: &str) -> Result<T>;
    /// The column at `index` (scalar queries).
    fn col_at<T: FromCol>(&self, index: usize) -> Result<T>;
}

impl Cols for AnyRow {
    fn col<T: FromCol>(&self, name: &str) -> Result<T> {
        Ok(sqlx::Row::try_get::<T, _>(self, name)?)
    }
    fn col_at<T: FromCol>(&self, index: usize) -> Result<T> {
        Ok(sqlx::Row::try_get::<T, _>(self, index)?)
    }
}

/// A row read inline: its values, copied out of the statement.
#[derive(Debug, Clone)]
pub struct LiteRow {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Cols for LiteRow {
    fn col<T: FromCol>(&self, name: &str) -> Result<T> {
        let i = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| StoreError::Corrupt(format!("no column {name:?} in the row")))?;
        self.col_at(i)
    }
    fn col_at<T: FromCol>(&self, index: usize) -> Result<T> {
        let v = self
            .values
            .get(index)
            .ok_or_else(|| StoreError::Corrupt(format!("no column {index} in the row")))?;
        T::column_result(ValueRef::from(v))
            .map_err(|e| StoreError::Corrupt(format!("column {:?}: {e}", self.names[index])))
    }
}

/// A row from either path.
pub enum Row {
    Any(AnyRow),
    Lite(LiteRow),
}

impl Cols for Row {
    fn col<T: FromCol>(&self, name: &str) -> Result<T> {
        match self {
            Row::Any(r) => r.col(name),
            Row::Lite(r) => r.col(name),
        }
    }
    fn col_at<T: FromCol>(&self, index: usize) -> Result<T> {
        match self {
            Row::Any(r) => r.col_at(index),
            Row::Lite(r) => r.col_at(index),
        }
    }
}

/// The SQLite connections statements run on inline: read-only ones for
/// reads outside a transaction, and the one writer.
pub(crate) struct LiteConns {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    /// The connection write transactions run on (see [`crate::Tx`]).
    writer: Mutex<Option<rusqlite::Connection>>,
    /// The writer's open group commit (see [`crate::lite_tx`]).
    group: Mutex<Group>,
}

/// Idle readers kept; a burst beyond it opens (and then closes) more.
const KEEP_IDLE: usize = 4;

impl LiteConns {
    pub(crate) fn new(path: PathBuf) -> LiteConns {
        LiteConns {
            path,
            idle: Mutex::new(Vec::new()),
            writer: Mutex::new(None),
            group: Mutex::new(Group::default()),
        }
    }

    fn open(&self, writer: bool) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        if writer {
            conn.busy_timeout(WRITE_BUSY_TIMEOUT)?;
            // The same durability as the sqlx connections: WAL, fsync on commit.
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_update(None, "foreign_keys", true)?;
        } else {
            // Readers never wait for the writer in WAL mode; the timeout only
            // covers the rare moments SQLite itself asks a reader to retry.
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.pragma_update(None, "query_only", true)?;
        }
        // Plans do not depend on bound values. Without this, SQLite (built
        // with STAT4) re-prepares a cached statement whenever a new binding
        // might change its plan: measured on every in-transaction order
        // lookup and every other account lookup, 2 % of issuance CPU in the
        // SQL parser.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        conn.set_prepared_statement_cache_capacity(128);
        tracing::debug!(path = %self.path.display(), writer, "opened an inline SQLite connection");
        Ok(conn)
    }

    fn run<R>(&self, f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>) -> Result<R> {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match taken {
            Some(c) => c,
            None => self.open(false).map_err(lite_error)?,
        };
        let out = f(&conn).map_err(lite_error);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < KEEP_IDLE {
            idle.push(conn);
        }
        out
    }

    pub(crate) fn query(&self, sql: &str, args: &[Arg], limit: usize) -> Result<Vec<LiteRow>> {
        self.run(|conn| query_rows(conn, sql, args, limit))
    }

    /// The writer connection, for a transaction that holds this process's
    /// writer turn (so it is never in use elsewhere; opened when missing).
    pub(crate) fn take_writer(&self) -> Result<rusqlite::Connection> {
        let kept = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        match kept {
            Some(c) => Ok(c),
            None => self.open(true).map_err(lite_error),
        }
    }

    pub(crate) fn put_writer(&self, conn: rusqlite::Connection) {
        *self.writer.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn);
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub(crate) fn group(&self) -> std::sync::MutexGuard<'_, Group> {
        self.group.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How long a writer waits for another process's write lock (the CLI while
/// serve runs), as the sqlx connections' busy_timeout.
pub(crate) const WRITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `sql` and copies out at most `limit` rows. A write with RETURNING
/// makes all its changes on the first step, so stopping early is safe.
pub(crate) fn query_rows(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Arg],
    limit: usize,
) -> rusqlite::Result<Vec<LiteRow>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let names: Arc<[String]> = stmt.column_names().map(str::to_string).collect();
    let width = names.len();
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(row) = rows.next()? else { break };
        let values = (0..width)
            .map(|i| {
                let v = row.get_ref(i)?;
                Value::try_from(v).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(i, v.data_type(), Box::new(e))
                })
            })
            .collect::<rusqlite::Result<Vec<_>>>()?;
        out.push(LiteRow {
            names: names.clone(),
            values,
        });
    }
    Ok(out)
}

/// A failure of an inline statement, in the store's error type ("busy"
/// stays distinguishable: it is overload, not breakage).
pub(crate) fn lite_error(e: rusqlite::Error) -> StoreError {
    if is_busy(&e) {
        StoreError::Busy(e.to_string())
    } else {
        StoreError::Lite(e)
    }
}

pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl Db {
    /// The first row of a read outside any transaction, or None.
    pub async fn read_optional(&self, sql: &'static str, args: &[Arg]) -> Result<Option<Row>> {
        if let Some(lite) = self.lite() {
            return Ok(lite.query(sql, args, 1)?.pop().map(Row::Lite));
        }
        let q = bind(sqlx::query(self.sql(sql)), args);
        let row = match self.pg_readers() {
            Some(readers) => readers.fetch(self.pool(), q, 1).await?.pop(),
            None => q.fetch_optional(self.pool()).await?,
        };
        Ok(row.map(Row::Any))
    }

    /// Every row of a read outside any transaction.
    pub async fn read_all(&self, sql: &'static str, args: &[Arg]) -> Result<Vec<Row>> {
        if let Some(lite) = self.lite() {
            return Ok(lite_rows(lite.query(sql, args, usize::MAX)?));
        }
        let rows = self
            .pg_fetch_all(bind(sqlx::query(self.sql(sql)), args))
            .await?;
        Ok(rows.into_iter().map(Row::Any).collect())
    }

    /// [`Db::read_all`] for statements built at run time from whitelisted
    /// parts (an `IN` list of at most a hundred ids, a list page's filters;
    /// values are always parameters, so the shapes stay few): SQLite's
    /// statement cache is a bounded LRU, PostgreSQL's is not used.
    pub async fn read_all_dyn(&self, sql: &str, args: &[Arg]) -> Result<Vec<Row>> {
        if let Some(lite) = self.lite() {
            return Ok(lite_rows(lite.query(sql, args, usize::MAX)?));
        }
        let rows = self
            .pg_fetch_all(bind(sqlx::query(self.sql_dyn(sql)), args))
            .await?;
        Ok(rows.into_iter().map(Row::Any).collect())
    }

    /// Every row of `q`, on a reader connection when there are some.
    async fn pg_fetch_all<'q>(
        &self,
        q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    ) -> Result<Vec<sqlx::any::AnyRow>> {
        Ok(match self.pg_readers() {
            Some(readers) => readers.fetch(self.pool(), q, usize::MAX).await?,
            None => q.fetch_all(self.pool()).await?,
        })
    }
}

fn lite_rows(rows: Vec<LiteRow>) -> Vec<Row> {
    rows.into_iter().map(Row::Lite).collect()
}

pub(crate) fn bind<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    args: &[Arg],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(*v),
            Arg::Text(v) => q.bind(v.clone()),
            Arg::Blob(v) => q.bind(v.clone()),
            Arg::NullInt => q.bind(None::<i64>),
            Arg::NullText => q.bind(None::<String>),
            Arg::NullBlob => q.bind(None::<Vec<u8>>),
        };
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With STAT4 statistics SQLite would re-prepare a cached statement for
    /// each new binding (re-parsing the SQL every time); the inline
    /// connections pin plans instead.
    #[tokio::test]
    async fn cached_statements_are_not_reprepared_for_new_bindings() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        let mut tx = db.begin().await.unwrap();
        tx.batch(
            "CREATE TABLE s (id INTEGER PRIMARY KEY, k TEXT NOT NULL, v BIGINT NOT NULL); \
             CREATE INDEX s_k ON s (k); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO s (k, v) SELECT CASE WHEN i % 10 = 0 THEN 'k' || i ELSE 'common' END, i FROM n; \
             ANALYZE",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let sql = "SELECT id FROM s WHERE k = ? AND v > ?";
        for i in 0..20 {
            let key = if i % 2 == 0 {
                "common".to_string()
            } else {
                format!("k{}", i * 10)
            };
            db.read_all(sql, &[Arg::from(key), Arg::Int(i)])
                .await
                .unwrap();
        }
        let reprepared = db
            .lite()
            .unwrap()
            .run(|c| {
                Ok(c.prepare_cached(sql)?
                    .get_status(rusqlite::StatementStatus::RePrepare))
            })
            .unwrap();
        assert_eq!(reprepared, 0);
    }

    #[tokio::test]
    async fn inline_and_sqlx_rows_read_alike() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let db = Db::connect(&url).await.unwrap();
        assert!(db.lite().is_some(), "a file database reads inline");
        sqlx::raw_sql(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, note TEXT, data BLOB, flag BIGINT NOT NULL); \
             INSERT INTO t VALUES (1, 'one', NULL, x'0102', 1), (2, 'two', 'n', NULL, 0)",
        )
        .execute(db.pool())
        .await
        .unwrap();

        let sql = "SELECT id, name, note, data, flag FROM t WHERE id >= ? ORDER BY id";
        let inline = db.read_all(sql, &[Arg::Int(1)]).await.unwrap();
        let via_sqlx: Vec<AnyRow> = sqlx::query(sql)
            .bind(1i64)
            .fetch_all(db.pool())
            .await
            .unwrap();
        assert_eq!(inline.len(), 2);
        for (a, b) in inline.iter().zip(&via_sqlx) {
            assert!(matches!(a, Row::Lite(_)));
            assert_eq!(a.col::<i64>("id").unwrap(), b.col::<i64>("id").unwrap());
            assert_eq!(
                a.col::<String>("name").unwrap(),
                b.col::<String>("name").unwrap()
            );
            assert_eq!(
                a.col::<Option<String>>("note").unwrap(),
                b.col::<Option<String>>("note").unwrap()
            );
            assert_eq!(
                a.col::<Option<Vec<u8>>>("data").unwrap(),
                b.col::<Option<Vec<u8>>>("data").unwrap()
            );
            assert_eq!(a.col::<i64>("flag").unwrap(), b.col::<i64>("flag").unwrap());
        }
        assert!(inline[0].col::<String>("missing").is_err());
        assert!(
            db.read_optional("SELECT id FROM t WHERE name = ?", &[Arg::from("none")])
                .await
                .unwrap()
                .is_none()
        );

        // A write through sqlx is seen by the next inline read.
        sqlx::query("UPDATE t SET name = 'uno' WHERE id = 1")
            .execute(db.pool())
            .await
            .unwrap();
        let r = db
            .read_optional("SELECT name FROM t WHERE id = ?", &[Arg::Int(1)])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.col::<String>("name").unwrap(), "uno");

        // Inline readers refuse to write.
        assert!(db.lite().unwrap().query("DELETE FROM t", &[], 1).is_err());
    }
}
