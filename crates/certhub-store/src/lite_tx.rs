//! SQLite write transactions on the inline writer connection, with group
//! commit.
//!
//! Every fsync on SQLite happens with the write lock held, so committing
//! transactions one by one puts one fsync (and one hop to a blocking thread)
//! on the writer's critical path per transaction. Here each [`crate::Tx`] is
//! a `SAVEPOINT` inside an outer SQLite transaction. Committing releases the
//! savepoint, hands the writer turn to the next queued transaction, and then
//! queues for the turn again (the turn is a FIFO lock): when it comes back,
//! every transaction that was waiting has run its statements into the same
//! outer transaction, and one `COMMIT` makes them all durable. A transaction
//! whose batch another already committed returns at once. Nobody is answered
//! before their batch is on disk, and a batch's transactions succeed or fail
//! together.
//!
//! Invariant: between turns the outer transaction is open only while it
//! holds released transactions (`members > 0`), and each of them is queued
//! to commit it, so it never stays open (holding SQLite's write lock against
//! other processes) with nobody to end it.

use std::sync::{Arc, OnceLock};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::read::{LiteConns, WRITE_BUSY_TIMEOUT, is_busy, lite_error};
use crate::{Result, StoreError};

/// The outer transaction's bookkeeping (kept with the writer connection).
#[derive(Default)]
pub(crate) struct Group {
    batch: Arc<Batch>,
    /// Transactions released into `batch`, waiting for its COMMIT.
    members: usize,
    /// Batches ended so far (committed or failed), for tests and figures.
    settled: u64,
}

/// One outer transaction's outcome, shared by its members.
#[derive(Default)]
struct Batch {
    outcome: OnceLock<std::result::Result<(), String>>,
}

/// A SQLite write transaction on the inline writer connection. Dropped
/// without commit (an error path), it rolls back at once.
pub(crate) struct LiteTx {
    conn: Option<rusqlite::Connection>,
    home: Arc<LiteConns>,
    /// This process's writer turn, held from begin until the savepoint is
    /// released or rolled back.
    turn: Option<OwnedMutexGuard<()>>,
    turns: Arc<AsyncMutex<()>>,
}

impl LiteTx {
    /// Opens the outer transaction if none is (`BEGIN IMMEDIATE`, waiting on
    /// a blocking thread if another process holds the write lock), then this
    /// transaction's savepoint.
    pub(crate) async fn begin(
        home: Arc<LiteConns>,
        turns: Arc<AsyncMutex<()>>,
        turn: OwnedMutexGuard<()>,
    ) -> Result<LiteTx> {
        let mut conn = home.take_writer()?;
        if conn.is_autocommit() {
            // Members but no outer transaction: SQLite rolled it back (an
            // I/O error in some statement); its members learn it here.
            fail_lost_batch(&home, &conn);
            conn = match begin_immediate(conn).await {
                Ok(conn) => conn,
                Err((conn, e)) => {
                    if let Some(conn) = conn {
                        home.put_writer(conn);
                    }
                    return Err(e);
                }
            };
        }
        if let Err(e) = control(&conn, "SAVEPOINT tx") {
            end_outer_if_empty(&home, &conn);
            home.put_writer(conn);
            return Err(lite_error(e));
        }
        Ok(LiteTx {
            conn: Some(conn),
            home,
            turn: Some(turn),
            turns,
        })
    }

    pub(crate) fn conn(&self) -> &rusqlite::Connection {
        self.conn
            .as_ref()
            .expect("an open transaction has its connection")
    }

    pub(crate) async fn finish(mut self, commit: bool) -> Result<()> {
        let conn = self
            .conn
            .take()
            .expect("an open transaction has its connection");
        if !commit {
            let r = rollback_savepoint(&self.home, &conn);
            self.home.put_writer(conn);
            return r;
        }
        let batch = match release_savepoint(&self.home, &conn) {
            Ok(batch) => batch,
            Err(e) => {
                self.home.put_writer(conn);
                return Err(e);
            }
        };
        self.home.put_writer(conn);
        drop(self.turn.take());
        // Spawned, so the batch is committed even if this request is dropped
        // while it waits.
        let flush = tokio::spawn(flush(self.home.clone(), self.turns.clone(), batch));
        flush
            .await
            .map_err(|e| StoreError::Busy(format!("commit: {e}")))?
    }
}

impl Drop for LiteTx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = rollback_savepoint(&self.home, &conn);
            self.home.put_writer(conn);
        }
    }
}

/// Merges this transaction into the outer one; the batch to wait for.
fn release_savepoint(home: &LiteConns, conn: &rusqlite::Connection) -> Result<Arc<Batch>> {
    if conn.is_autocommit() {
        fail_lost_batch(home, conn);
        return Err(StoreError::Busy(
            "SQLite rolled the transaction back".into(),
        ));
    }
    if let Err(e) = control(conn, "RELEASE tx") {
        let _ = control(conn, "ROLLBACK");
        fail_lost_batch(home, conn);
        return Err(lite_error(e));
    }
    let mut group = home.group();
    group.members += 1;
    Ok(group.batch.clone())
}

/// Undoes this transaction only; ends the outer one when nobody waits in it.
fn rollback_savepoint(home: &LiteConns, conn: &rusqlite::Connection) -> Result<()> {
    if conn.is_autocommit() {
        fail_lost_batch(home, conn);
        return Ok(());
    }
    if home.group().members == 0 {
        return control(conn, "ROLLBACK").map_err(lite_error);
    }
    let undone = control(conn, "ROLLBACK TO tx").and_then(|()| control(conn, "RELEASE tx"));
    if let Err(e) = undone {
        let _ = control(conn, "ROLLBACK");
        fail_lost_batch(home, conn);
        return Err(lite_error(e));
    }
    Ok(())
}

/// After a failed `SAVEPOINT`: no transaction of ours is in the outer one.
fn end_outer_if_empty(home: &LiteConns, conn: &rusqlite::Connection) {
    if !conn.is_autocommit() && home.group().members == 0 {
        let _ = control(conn, "ROLLBACK");
    }
}

/// The outer transaction is gone with released transactions in it: they
/// fail together.
fn fail_lost_batch(home: &LiteConns, conn: &rusqlite::Connection) {
    if conn.is_autocommit() && home.group().members > 0 {
        settle(
            home,
            Err("the transaction was rolled back by SQLite".into()),
        );
    }
}

/// Ends the current batch with `outcome` and opens the next.
fn settle(home: &LiteConns, outcome: std::result::Result<(), String>) {
    let batch = {
        let mut group = home.group();
        group.members = 0;
        group.settled += 1;
        std::mem::take(&mut group.batch)
    };
    let _ = batch.outcome.set(outcome);
}

/// Waits for the writer turn again; commits the batch unless another member
/// already did.
async fn flush(home: Arc<LiteConns>, turns: Arc<AsyncMutex<()>>, batch: Arc<Batch>) -> Result<()> {
    let _turn = turns.lock_owned().await;
    if batch.outcome.get().is_none() {
        let conn = home.take_writer()?;
        if conn.is_autocommit() {
            fail_lost_batch(&home, &conn);
            home.put_writer(conn);
        } else {
            // COMMIT waits for fsync: off the runtime's threads.
            let done = tokio::task::spawn_blocking(move || {
                let r = control(&conn, "COMMIT");
                if r.is_err() {
                    let _ = control(&conn, "ROLLBACK");
                }
                (conn, r)
            })
            .await;
            match done {
                Ok((conn, r)) => {
                    home.put_writer(conn);
                    settle(&home, r.map_err(|e| e.to_string()));
                }
                // The connection is lost with its open transaction (closing
                // it rolls back); the next writer opens a fresh one.
                Err(e) => settle(&home, Err(format!("commit: {e}"))),
            }
        }
    }
    match batch.outcome.get() {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(StoreError::Busy(format!("commit failed: {e}"))),
        None => Err(StoreError::Busy("commit: the batch was not settled".into())),
    }
}

/// `BEGIN IMMEDIATE` inline when the write lock is free (always, unless
/// another process writes); otherwise waits for it on a blocking thread, so a
/// runtime thread never sleeps in SQLite's busy handler.
async fn begin_immediate(conn: rusqlite::Connection) -> Result<rusqlite::Connection, BeginError> {
    let first = conn
        .busy_timeout(std::time::Duration::ZERO)
        .and_then(|()| control(&conn, "BEGIN IMMEDIATE"));
    let began = conn.busy_timeout(WRITE_BUSY_TIMEOUT).and(first);
    let (conn, r) = match began {
        Err(e) if is_busy(&e) => tokio::task::spawn_blocking(move || {
            let r = control(&conn, "BEGIN IMMEDIATE");
            (conn, r)
        })
        .await
        // Only a panic in SQLite gets here; the connection is gone and the
        // next writer opens a fresh one.
        .map_err(|e| (None, StoreError::Busy(format!("begin: {e}"))))?,
        other => (conn, other),
    };
    match r {
        Ok(()) => Ok(conn),
        Err(e) => Err((Some(conn), lite_error(e))),
    }
}

/// A failed BEGIN: the connection to put back (if it survived) and why.
type BeginError = (Option<rusqlite::Connection>, StoreError);

/// BEGIN / SAVEPOINT / COMMIT / ROLLBACK from the statement cache (parsed once).
pub(crate) fn control(conn: &rusqlite::Connection, sql: &'static str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::Poll;
    use std::time::Duration;

    use crate::Db;
    use crate::read::Arg;

    async fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let mut tx = db.begin().await.unwrap();
        tx.batch("CREATE TABLE t (v BIGINT NOT NULL UNIQUE)")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        (dir, db)
    }

    async fn values(db: &Db) -> Vec<i64> {
        db.read_all("SELECT v FROM t ORDER BY v", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| crate::read::Cols::col_at(r, 0).unwrap())
            .collect()
    }

    fn batches(db: &Db) -> u64 {
        db.lite().unwrap().group().settled
    }

    /// Concurrent transactions share COMMITs, and every one of them is
    /// durable (visible to a fresh reader) when its commit returns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commits_share_batches_and_all_land() {
        let (_dir, db) = db().await;
        let before = batches(&db);
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut tx = db.begin().await.unwrap();
                    tx.exec("INSERT INTO t (v) VALUES (?)", &[Arg::Int(i)])
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                    let seen: Option<i64> = db
                        .read_optional("SELECT v FROM t WHERE v = ?", &[Arg::Int(i)])
                        .await
                        .unwrap()
                        .map(|r| crate::read::Cols::col_at(&r, 0).unwrap());
                    assert_eq!(seen, Some(i), "committed means visible");
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(values(&db).await, (0..64).collect::<Vec<_>>());
        let used = batches(&db) - before;
        assert!(
            (1..64).contains(&used),
            "64 transactions took {used} commits"
        );
    }

    /// A transaction rolled back inside a batch takes only its own writes
    /// with it; the batch's other members commit.
    #[tokio::test(flavor = "current_thread")]
    async fn a_rollback_in_a_batch_undoes_only_itself() {
        let (_dir, db) = db().await;
        let before = batches(&db);
        let mut a = db.begin().await.unwrap();
        a.exec("INSERT INTO t (v) VALUES (1)", &[]).await.unwrap();
        // B queues for the turn while A holds it; A's commit then waits
        // behind B, so both are in one batch.
        let b = tokio::spawn({
            let db = db.clone();
            async move {
                let mut b = db.begin().await.unwrap();
                b.exec("INSERT INTO t (v) VALUES (2)", &[]).await.unwrap();
                // A duplicate: the statement fails, the transaction is dropped.
                assert!(b.exec("INSERT INTO t (v) VALUES (1)", &[]).await.is_err());
            }
        });
        tokio::task::yield_now().await;
        a.commit().await.unwrap();
        b.await.unwrap();
        assert_eq!(values(&db).await, vec![1]);
        assert_eq!(batches(&db) - before, 1, "one COMMIT");
        // Alone in its outer transaction, a rollback ends it.
        let mut c = db.begin().await.unwrap();
        c.exec("INSERT INTO t (v) VALUES (3)", &[]).await.unwrap();
        c.rollback().await.unwrap();
        assert_eq!(values(&db).await, vec![1]);
        // The outer transaction is closed: another process can write.
        let path = db.lite().unwrap().path().to_path_buf();
        let foreign = rusqlite::Connection::open(path).unwrap();
        foreign.execute_batch("BEGIN IMMEDIATE; ROLLBACK").unwrap();
    }

    /// A request dropped while it waits for its batch is still committed
    /// (the flush runs on its own task), and the write lock is let go.
    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_committer_still_commits() {
        let (_dir, db) = db().await;
        let mut tx = db.begin().await.unwrap();
        tx.exec("INSERT INTO t (v) VALUES (7)", &[]).await.unwrap();
        let mut commit = Box::pin(tx.commit());
        let first = std::future::poll_fn(|cx| Poll::Ready(commit.as_mut().poll(cx))).await;
        assert!(first.is_pending(), "the commit waits for its batch");
        drop(commit);
        for _ in 0..100 {
            if values(&db).await == vec![7] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(values(&db).await, vec![7]);
        let path = db.lite().unwrap().path().to_path_buf();
        let foreign = rusqlite::Connection::open(path).unwrap();
        foreign.execute_batch("BEGIN IMMEDIATE; ROLLBACK").unwrap();
    }
}
