//! PostgreSQL connections kept aside from sqlx's pool, for reads outside a
//! transaction, for transactions, and for side writes.
//!
//! sqlx pings every connection handed back to its pool: a full round trip
//! to the server after each use, its guard against a connection left
//! mid-reply by a dropped future. Under ACME load those pings were a third
//! of the messages sent per certificate, and as much work again for the
//! postgres backend. Here a connection goes back to its idle list only when
//! its work ran to the end (a read read every row; a transaction's COMMIT or
//! ROLLBACK was answered). A read that fails or whose future is dropped
//! closes its connection, and so does a transaction dropped unfinished: the
//! server then rolls it back at once, as the connection is gone. Nothing
//! half-used is ever reused, so no ping is needed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::db::fetch_on;
use crate::{Result, StoreError};

/// Reads outside a transaction in flight at once per process.
pub(crate) const READERS: usize = 4;
/// Transactions (and side writes) in flight at once per process. Separate
/// from the readers, so a transaction that reads outside itself always
/// finds a reader.
pub(crate) const WRITERS: usize = 8;

/// An idle connection unused this long is pinged before it serves again (a
/// server restart or a proxy's idle cut may have closed it meanwhile); the
/// pool applies the same rule to the connections it hands out.
pub(crate) const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// How long a caller waits for a free connection.
const WAIT: Duration = Duration::from_secs(10);

pub(crate) struct PgConns {
    idle: Mutex<Vec<(AnyConnection, Instant)>>,
    slots: Arc<Semaphore>,
    size: usize,
}

/// A connection lent to one read or transaction. Dropped without
/// [`PgConns::give_back`], it closes.
pub(crate) struct PgConn {
    pub(crate) conn: AnyConnection,
    _slot: OwnedSemaphorePermit,
}

impl PgConns {
    pub(crate) fn new(size: usize) -> PgConns {
        PgConns {
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// An idle connection (pinged if it sat unused), or a new one opened
    /// through `pool` (with its `after_connect` settings) and kept out of it.
    pub(crate) async fn take(&self, pool: &AnyPool) -> Result<PgConn> {
        let slot = tokio::time::timeout(WAIT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| StoreError::Db(sqlx::Error::PoolTimedOut))?
            .map_err(|_| StoreError::Db(sqlx::Error::PoolClosed))?;
        loop {
            let kept = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some((mut conn, since)) = kept else {
                break;
            };
            if since.elapsed() < PING_IDLE_AFTER || conn.ping().await.is_ok() {
                return Ok(PgConn { conn, _slot: slot });
            }
            // Dead: dropped (closed); try the next one.
        }
        let conn = pool.acquire().await?.detach();
        Ok(PgConn { conn, _slot: slot })
    }

    /// Returns a connection whose work completed.
    pub(crate) fn give_back(&self, c: PgConn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.size {
            idle.push((c.conn, Instant::now()));
        }
    }

    /// The rows of one autocommit statement (see [`fetch_on`] for `limit`).
    pub(crate) async fn fetch(
        &self,
        pool: &AnyPool,
        q: Query<'_, Any, AnyArguments>,
        limit: usize,
    ) -> Result<Vec<AnyRow>> {
        let mut c = self.take(pool).await?;
        let rows = fetch_on(&mut c.conn, q, limit).await?;
        self.give_back(c);
        Ok(rows)
    }

    /// Runs one autocommit statement; how many rows it changed.
    pub(crate) async fn execute(
        &self,
        pool: &AnyPool,
        q: Query<'_, Any, AnyArguments>,
    ) -> Result<u64> {
        let mut c = self.take(pool).await?;
        let done = q.execute(&mut c.conn).await?;
        self.give_back(c);
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::PING_IDLE_AFTER;
    use crate::Db;
    use crate::read::Cols;

    const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

    async fn read_pid(db: &Db) -> crate::Result<i64> {
        db.read_optional("SELECT pg_backend_pid()::BIGINT", &[])
            .await?
            .expect("a row")
            .col_at(0)
    }

    async fn tx_pid(db: &Db) -> crate::Result<i64> {
        let mut tx = db.begin().await?;
        let pid = tx
            .scalar_one("SELECT pg_backend_pid()::BIGINT", &[])
            .await?;
        tx.commit().await?;
        Ok(pid)
    }

    /// The server closes idle connections (a restart, a proxy's idle cut):
    /// after a pause, reads and transactions go on on fresh connections.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_closed_by_the_server_are_replaced() {
        let Ok(Ok(db)) = tokio::time::timeout(PING_IDLE_AFTER * 5, Db::connect(URL)).await else {
            eprintln!("SKIPPED: PostgreSQL unavailable");
            return;
        };
        let admin = Db::connect(URL).await.unwrap();
        let (reader, writer) = (read_pid(&db).await.unwrap(), tx_pid(&db).await.unwrap());
        assert_ne!(
            reader, writer,
            "reads and transactions keep separate connections"
        );
        // Kept for the next use, not handed back to sqlx's pool.
        assert_eq!(read_pid(&db).await.unwrap(), reader);
        assert_eq!(tx_pid(&db).await.unwrap(), writer);
        for pid in [reader, writer] {
            let mut tx = admin.begin().await.unwrap();
            tx.exec_dyn(&format!("SELECT pg_terminate_backend({pid})"), &[])
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        tokio::time::sleep(PING_IDLE_AFTER + std::time::Duration::from_millis(200)).await;
        let r = read_pid(&db).await.expect("a read after the cut");
        let w = tx_pid(&db).await.expect("a transaction after the cut");
        assert!(r != reader && w != writer, "fresh connections");
    }

    /// A transaction dropped unfinished closes its connection (the server
    /// rolls it back); the next transaction runs on another one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_transaction_is_not_reused() {
        let Ok(Ok(db)) = tokio::time::timeout(PING_IDLE_AFTER * 5, Db::connect(URL)).await else {
            eprintln!("SKIPPED: PostgreSQL unavailable");
            return;
        };
        let mut tx = db.begin().await.unwrap();
        let dropped: i64 = tx
            .scalar_one("SELECT pg_backend_pid()::BIGINT", &[])
            .await
            .unwrap();
        drop(tx);
        assert_ne!(tx_pid(&db).await.unwrap(), dropped);
    }
}
