//! Test support: the real server, in-process, on 127.0.0.1:0 over plain HTTP,
//! on a fresh SQLite file or a fresh PostgreSQL database. Used by the
//! end-to-end tests of every feature (and by benchmarks).

use certhub_app::{App, Clock, Settings};
use certhub_store::Db;
use certhub_store::sealed::Kek;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestDb {
    Sqlite,
    Postgres,
}

impl TestDb {
    pub const ALL: [TestDb; 2] = [TestDb::Sqlite, TestDb::Postgres];
}

/// Base URL of the PostgreSQL server tests use (a database is created per test).
pub fn pg_admin_url() -> String {
    std::env::var("CERTHUB_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A running server. Dropping it stops the server and removes its database.
pub struct TestServer {
    pub app: App,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub dir: tempfile::TempDir,
    pg_database: Option<String>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts a server, or returns None (after printing a visible SKIPPED line)
    /// when PostgreSQL was asked for and is not reachable.
    pub async fn start(db: TestDb) -> Option<TestServer> {
        TestServer::start_with(db, |_| {}).await
    }

    /// Like [`TestServer::start`], letting the test adjust the settings
    /// (validation ports and resolver, CA options).
    pub async fn start_with(db: TestDb, adjust: impl FnOnce(&mut Settings)) -> Option<TestServer> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, pg_database) = match db {
            TestDb::Sqlite => (
                format!("sqlite://{}", dir.path().join("certhub.db").display()),
                None,
            ),
            TestDb::Postgres => match create_pg_database().await {
                Some((url, name)) => (url, Some(name)),
                None => {
                    eprintln!(
                        "SKIPPED: PostgreSQL unavailable at {} (test runs on SQLite only)",
                        pg_admin_url()
                    );
                    return None;
                }
            },
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let base = format!("http://127.0.0.1:{port}");
        let mut settings = Settings::for_urls(&base, &base);
        adjust(&mut settings);
        let db = Db::connect(&url).await.expect("connect");
        db.migrate().await.expect("migrate");
        db.seed_catalogue().await.expect("seed");
        let kek = Kek::from_bytes(&Kek::generate()).expect("kek");
        let app = App::new(db, kek, Clock::system(), settings)
            .await
            .expect("app");
        let router = crate::serve::app_router(app.clone());
        let task = tokio::spawn(crate::serve::serve_plain(listener, router));
        Some(TestServer {
            app,
            base,
            dir,
            pg_database,
            task,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Creates a customer with an API key and credit; returns the key.
    pub async fn customer(&self, handle: &str, credit_cents: i64) -> String {
        self.app
            .create_customer(handle, "EUR")
            .await
            .expect("customer");
        if credit_cents > 0 {
            self.app
                .add_credit(handle, credit_cents)
                .await
                .expect("credit");
        }
        self.app.create_api_key(handle).await.expect("apikey").1
    }

    /// Sets the server's clock (and so what is due for the lifecycle engine).
    pub fn set_now(&self, instant: i64) {
        self.app.clock().set(instant);
    }

    /// Runs the lifecycle engine at the current clock; returns the changes.
    pub async fn run_lifecycle(&self) -> Vec<String> {
        self.app.run_due_jobs("test").await.expect("lifecycle")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
        // PostgreSQL test databases are not dropped here: Drop cannot await,
        // and blocking the test's runtime to do it deadlocks. Instead their
        // names carry their creation time and `create_pg_database` removes
        // those older than an hour, so runs clean up after each other.
        let _ = self.pg_database.take();
    }
}

/// Creates `certhub_t_<random>` and returns its URL, or None if PostgreSQL is down.
pub async fn create_pg_database() -> Option<(String, String)> {
    let admin = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        Db::connect(&pg_admin_url()),
    )
    .await
    .ok()?
    .ok()?;
    let suffix: String = certhub_store::sealed::random_bytes::<6>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = format!("certhub_t_{suffix}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(admin.pool())
        .await
        .ok()?;
    admin.close().await;
    let base = pg_admin_url();
    let url = match base.rsplit_once('/') {
        Some((prefix, _)) => format!("{prefix}/{name}"),
        None => return None,
    };
    Some((url, name))
}
