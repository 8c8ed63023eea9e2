//! A transaction dropped on an error path (`?`) must not leak its connection
//! or its locks: the pool has to stay usable on both backends.

mod common;

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
    common::on_sqlite(|url| async move { check(&url).await }).await;
}

#[tokio::test]
async fn dropped_transactions_postgres() {
    common::on_postgres("drop", |url| async move { check(&url).await }).await;
}
