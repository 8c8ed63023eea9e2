//! List totals come from trigger-kept per-customer counters when a list is
//! unfiltered (migration 0008). They must equal COUNT(*) after every kind of
//! change, on both backends, or a client's paging breaks.

mod common;

use certhub_store::Db;
use certhub_store::list::ListQuery;
use certhub_store::read::Arg;
use certhub_store::subscriptions::SUBSCRIPTIONS;

async fn total(db: &Db, customer: Option<i64>) -> i64 {
    let q = ListQuery {
        limit: 10,
        total: true,
        ..Default::default()
    };
    db.list(&SUBSCRIPTIONS, customer, &q)
        .await
        .unwrap()
        .total
        .unwrap()
}

async fn counted(db: &Db, customer: i64) -> i64 {
    sqlx::query_scalar(
        db.sql("SELECT COUNT(*) FROM subscriptions WHERE customer_id = ? AND deleted_at IS NULL"),
    )
    .bind(customer)
    .fetch_one(db.pool())
    .await
    .unwrap()
}

async fn customer(db: &Db, handle: &str) -> i64 {
    let mut tx = db.begin().await.unwrap();
    let c = db.create_customer(&mut tx, handle, "EUR", 0).await.unwrap();
    tx.commit().await.unwrap();
    c.id
}

async fn exec(db: &Db, sql: &'static str) {
    sqlx::query(db.sql(sql)).execute(db.pool()).await.unwrap();
}

async fn check(url: &str) {
    let db = Db::connect(url).await.unwrap();
    db.migrate().await.unwrap();
    let (a, b) = (customer(&db, "counta").await, customer(&db, "countb").await);
    assert_eq!(total(&db, Some(a)).await, 0, "no counter row yet");
    db.bench_seed_subscriptions(a, "counta", 30, 0, 0, 4_000_000_000)
        .await
        .unwrap();
    assert_eq!(total(&db, Some(a)).await, 30);
    assert_eq!(total(&db, Some(b)).await, 0, "b sees none of a's");
    // Soft deletes leave the list, undeleting brings a row back, hard
    // deletes of deleted rows change nothing, hard deletes of live rows do.
    exec(&db, "UPDATE subscriptions SET deleted_at = 5 WHERE id IN (SELECT id FROM subscriptions ORDER BY id LIMIT 4)").await;
    assert_eq!(total(&db, Some(a)).await, 26);
    exec(
        &db,
        "UPDATE subscriptions SET deleted_at = NULL WHERE id = (SELECT MIN(id) FROM subscriptions)",
    )
    .await;
    exec(
        &db,
        "DELETE FROM subscriptions WHERE deleted_at IS NOT NULL",
    )
    .await;
    exec(
        &db,
        "DELETE FROM subscriptions WHERE id = (SELECT MAX(id) FROM subscriptions)",
    )
    .await;
    assert_eq!(total(&db, Some(a)).await, 26);
    assert_eq!(total(&db, Some(a)).await, counted(&db, a).await);
    // Moving a row between customers moves its count.
    exec(&db, "UPDATE subscriptions SET customer_id = (SELECT id FROM customers WHERE handle = 'countb') WHERE id = (SELECT MIN(id) FROM subscriptions)").await;
    assert_eq!(
        (total(&db, Some(a)).await, total(&db, Some(b)).await),
        (25, 1)
    );
    assert_eq!(
        total(&db, None).await,
        26,
        "the operator's total is the sum"
    );
    // A rolled-back insert leaves no count behind.
    let mut tx = db.begin().await.unwrap();
    tx.exec(
        "UPDATE subscriptions SET deleted_at = 9 WHERE customer_id = ?",
        &[Arg::Int(a)],
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(total(&db, Some(a)).await, 25);
    assert_eq!(counted(&db, b).await, 1);
    db.close().await;
}

#[tokio::test]
async fn counters_match_count_sqlite() {
    common::on_sqlite(|url| async move { check(&url).await }).await;
}

#[tokio::test]
async fn counters_match_count_postgres() {
    common::on_postgres("counts", |url| async move { check(&url).await }).await;
}
