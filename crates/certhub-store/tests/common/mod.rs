//! The databases the store's integration tests run on: a fresh SQLite file,
//! and a fresh PostgreSQL database at 127.0.0.1:5432 (skipped, with a
//! `SKIPPED` line, when no server answers).

use std::future::Future;
use std::time::Duration;

use certhub_store::Db;

const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Runs `check` on the URL of a new SQLite database.
pub async fn on_sqlite<F: Future<Output = ()>>(check: impl FnOnce(String) -> F) {
    let dir = tempfile::tempdir().unwrap();
    check(format!("sqlite://{}/t.db", dir.path().display())).await;
}

/// Runs `check` on the URL of a new PostgreSQL database named after
/// `name` and this process, dropped afterwards.
pub async fn on_postgres<F: Future<Output = ()>>(name: &str, check: impl FnOnce(String) -> F) {
    let Ok(Ok(admin)) = tokio::time::timeout(Duration::from_secs(5), Db::connect(ADMIN)).await
    else {
        eprintln!("SKIPPED: PostgreSQL unavailable");
        return;
    };
    let name = format!("certhub_{name}_{}", std::process::id());
    let drop_sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop_sql.clone()))
        .execute(admin.pool())
        .await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(admin.pool())
        .await
        .unwrap();
    check(format!("postgres://postgres@127.0.0.1:5432/{name}")).await;
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop_sql))
        .execute(admin.pool())
        .await;
}
