//! The statements a validation result runs reach their rows through indexes
//! on both backends, so a validation costs the same with 10 orders on file or
//! 10 million. Checked on the query plans, over link and order tables large
//! enough that a scan would be chosen only for want of an index, and with
//! PostgreSQL's statistics still unset (as in a young database, before
//! autovacuum's first ANALYZE).

mod common;

use certhub_store::acme::{ORDER_INVALID, ORDER_READY, ORDERS_OF_AUTHZ};
use certhub_store::read::{Arg, Cols};
use certhub_store::{Db, Dialect};

/// Orders (each with one authorisation and one link row) put on file.
const ROWS: i64 = 5_000;

const SEED: &str = "
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
INSERT INTO acme_authzs (account_id, identifier, wildcard, status, token, expires_at, created_at)
  SELECT 1, 'a' || i || '.example.com', 0, 'pending', 't' || i, 9999999999, 0 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
INSERT INTO acme_orders (account_id, subscription_id, status, identifiers, ident_key, authz_ids,
  expires_at, created_at, updated_at)
  SELECT 1, 1, 'pending', '[]', 'k' || i, '[]', 9999999999, 0, 0 FROM n;
INSERT INTO acme_order_authzs (authz_id, order_id) SELECT id, id FROM acme_orders;
";

/// The plan lines of `sql` run with `args`.
async fn plan(db: &Db, sql: &str, args: &[Arg]) -> Vec<String> {
    let mut tx = db.begin().await.unwrap();
    let (prefix, col) = match db.dialect() {
        Dialect::Sqlite => ("EXPLAIN QUERY PLAN ", 3),
        Dialect::Postgres => ("EXPLAIN ", 0),
    };
    let rows = tx
        .fetch_all_dyn(&format!("{prefix}{sql}"), args)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    rows.iter()
        .map(|r| r.col_at::<String>(col).unwrap())
        .collect()
}

/// A full read of a table (or, on PostgreSQL, of an index whose leading
/// column the condition does not name).
fn full_reads(dialect: Dialect, plan: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in plan.iter().enumerate() {
        let bad = match dialect {
            Dialect::Sqlite => line.starts_with("SCAN") && !line.contains("CONSTANT ROW"),
            Dialect::Postgres => {
                line.contains("Seq Scan")
                    || (line.contains("Index Cond: (order_id =")
                        && i > 0
                        && plan[i - 1].contains("acme_order_authzs_pkey"))
            }
        };
        if bad {
            out.push(line.clone());
        }
    }
    out
}

async fn check(url: &str) {
    let db = Db::connect(url).await.unwrap();
    db.migrate().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    tx.batch(SEED).await.unwrap();
    tx.commit().await.unwrap();
    let n: i64 = db
        .read_optional("SELECT COUNT(*) FROM acme_order_authzs", &[])
        .await
        .unwrap()
        .unwrap()
        .col_at(0)
        .unwrap();
    assert_eq!(n, ROWS);

    let id = Arg::from(ROWS / 2);
    let cases: [(&str, &str, Vec<Arg>); 3] = [
        (
            "orders of an authorisation",
            ORDERS_OF_AUTHZ,
            vec![id.clone()],
        ),
        (
            "order ready",
            ORDER_READY,
            vec![Arg::from(1_i64), id.clone()],
        ),
        (
            "order invalid",
            ORDER_INVALID,
            vec![Arg::from(Some("e".to_string())), Arg::from(1_i64), id],
        ),
    ];
    for (what, sql, args) in cases {
        let p = plan(&db, sql, &args).await;
        let bad = full_reads(db.dialect(), &p);
        assert!(
            bad.is_empty(),
            "{what}: reads a whole table: {bad:?}\n{p:#?}"
        );
    }
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_statements_use_indexes_sqlite() {
    common::on_sqlite(|url| async move { check(&url).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_statements_use_indexes_postgres() {
    common::on_postgres("plans", |url| async move { check(&url).await }).await;
}
