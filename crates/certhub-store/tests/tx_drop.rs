//! A transaction dropped on an error path (`?`) must not leak its connection
//! or its locks: the pool has to stay usable on both backends.

use certhub_store::Db;
use certhub_store::read::Arg;

async fn check(url: &str) {
    let db = Db::connect(url).await.unwrap();
    db.migrate().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    db.create_customer(&mut tx, "droptest", "EUR", 0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    for _ in 0..40 {
        let mut tx = db.begin().await.unwrap();
        tx.exec(
            "UPDATE credit_accounts SET balance = balance + 1 WHERE currency = ?",
            &[Arg::from("EUR")],
        )
        .await
        .unwrap();
        drop(tx);
    }
    let fut = async {
        let mut tx = db.begin().await.unwrap();
        tx.exec(
            "UPDATE credit_accounts SET balance = balance + 1 WHERE currency = ?",
            &[Arg::from("EUR")],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), fut)
        .await
        .expect("pool usable after dropped transactions");
    let c = db.customer_by_handle("droptest").await.unwrap().unwrap();
    let acct = &db.credit_accounts(c.id).await.unwrap()[0];
    assert_eq!(acct.balance, 1, "dropped transactions were rolled back");
}

#[tokio::test]
async fn dropped_transactions_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    check(&format!("sqlite://{}/t.db", dir.path().display())).await;
}

#[tokio::test]
async fn dropped_transactions_postgres() {
    let admin = "postgres://postgres@127.0.0.1:5432/test";
    let Ok(Ok(a)) =
        tokio::time::timeout(std::time::Duration::from_secs(5), Db::connect(admin)).await
    else {
        eprintln!("SKIPPED: PostgreSQL unavailable");
        return;
    };
    let name = format!("certhub_drop_{}", std::process::id());
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(a.pool())
    .await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(a.pool())
        .await
        .unwrap();
    check(&format!("postgres://postgres@127.0.0.1:5432/{name}")).await;
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(a.pool())
    .await;
}
