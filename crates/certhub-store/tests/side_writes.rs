//! Writes outside a use case's transaction (`Db::write`): on SQLite they
//! take the writer's turn like any transaction, so one issued while a long
//! transaction holds it waits and lands instead of polling SQLite's lock;
//! constraint errors read the same on both backends.

mod common;

use std::time::Duration;

use certhub_store::acme::AcmeAccount;
use certhub_store::read::{Arg, Cols};
use certhub_store::{Db, StoreError};

fn account(sub: i64, customer: i64, thumbprint: &str) -> AcmeAccount {
    AcmeAccount {
        product: "sectigo_dv_acme".into(),
        subscription_id: sub,
        customer_id: customer,
        thumbprint: thumbprint.into(),
        jwk: "{}".into(),
        status: "valid".into(),
        eab_kid: "kid".into(),
        ..Default::default()
    }
}

async fn check(url: &str) {
    let db = Db::connect(url).await.unwrap();
    db.migrate().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    let customer = db
        .create_customer(&mut tx, "sidew", "EUR", 0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    db.bench_seed_subscriptions(customer.id, "sidew", 1, 0, 0, 4_000_000_000)
        .await
        .unwrap();
    let sub: i64 = db
        .read_optional("SELECT MIN(id) FROM subscriptions", &[])
        .await
        .unwrap()
        .unwrap()
        .col_at(0)
        .unwrap();

    let a = db
        .acme_insert_account(&account(sub, customer.id, "ta"))
        .await
        .unwrap()
        .expect("a new key inserts");
    let b = db
        .acme_insert_account(&account(sub, customer.id, "tb"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        db.acme_insert_account(&account(sub, customer.id, "ta"))
            .await
            .unwrap(),
        None,
        "a registered key inserts nothing"
    );
    // Used nonces: recorded in one statement, each fresh exactly once.
    let fresh = db.acme_use_nonces(&[("n1", 9), ("n2", 9)]).await.unwrap();
    assert_eq!(fresh.len(), 2);
    let fresh = db.acme_use_nonces(&[("n2", 9), ("n3", 9)]).await.unwrap();
    assert_eq!(fresh, ["n3".to_string()].into_iter().collect());
    let taken = db.acme_set_account_key(b, "ta", "{}", 1).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");

    // A side write issued while a transaction is open lands after it.
    let mut tx = db.begin().await.unwrap();
    tx.exec(
        "UPDATE acme_accounts SET contact = '[\"mailto:tx@example.com\"]' WHERE id = ?",
        &[Arg::Int(a)],
    )
    .await
    .unwrap();
    let side = tokio::spawn({
        let db = db.clone();
        async move { db.acme_set_account_status(a, "deactivated", 2).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.commit().await.unwrap();
    let set = tokio::time::timeout(Duration::from_secs(10), side)
        .await
        .expect("the side write finished")
        .unwrap()
        .unwrap();
    assert!(set);
    let row = db
        .read_optional(
            "SELECT status, contact FROM acme_accounts WHERE id = ?",
            &[Arg::Int(a)],
        )
        .await
        .unwrap()
        .unwrap();
    let (status, contact): (String, String) =
        (row.col("status").unwrap(), row.col("contact").unwrap());
    assert_eq!(status, "deactivated");
    assert!(contact.contains("tx@example.com"), "{contact}");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_writes_sqlite() {
    common::on_sqlite(|url| async move { check(&url).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_writes_postgres() {
    common::on_postgres("side", |url| async move { check(&url).await }).await;
}
