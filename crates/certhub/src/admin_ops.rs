//! Operator commands about the whole installation: the audit trail, backups
//! and restores. `audit` and `backup` work while `serve` runs; `restore`
//! replaces the database and must run with serve stopped.

use std::path::{Path, PathBuf};

use anyhow::Context;
use certhub_app::App;
use certhub_store::Db;
use certhub_store::audit::AuditFilter;

use crate::bootstrap::{self, Global, ServeOpts};

/// `certhub admin audit | backup | restore`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum OpsCmd {
    /// Print the append-only audit trail, one record per line, id first.
    Audit(AuditArgs),
    /// Write a consistent snapshot of the database to FILE (works while serve runs).
    Backup { file: PathBuf },
    /// Replace the database with a backup (stop serve first).
    Restore {
        file: PathBuf,
        /// Overwrite a database that already holds customers.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuditArgs {
    /// Only this customer's records.
    #[arg(long)]
    pub customer: Option<String>,
    /// Only records about this subject (a subscription id, key id, serial...).
    #[arg(long)]
    pub subject: Option<String>,
    /// From this RFC 3339 instant (inclusive).
    #[arg(long)]
    pub since: Option<String>,
    /// Up to this RFC 3339 instant (exclusive).
    #[arg(long)]
    pub until: Option<String>,
    /// Only actions starting with this prefix (e.g. `apikey.`).
    #[arg(long)]
    pub action: Option<String>,
}

/// Runs one command, printing its output.
pub async fn run(g: &Global, cmd: OpsCmd) -> anyhow::Result<()> {
    match cmd {
        OpsCmd::Audit(args) => {
            let (app, _) = bootstrap::open(g, &ServeOpts::default()).await?;
            for line in audit_lines(&app, &args).await? {
                println!("{line}");
            }
        }
        OpsCmd::Backup { file } => {
            let (app, r) = bootstrap::open(g, &ServeOpts::default()).await?;
            println!("{}", backup(app.db(), &r.database_url, &file).await?);
        }
        OpsCmd::Restore { file, force } => {
            // Deliberately not `bootstrap::open`: that would migrate and seed
            // the database we are about to replace.
            let r = bootstrap::resolve(g, &ServeOpts::default())?;
            println!("{}", restore(&r.database_url, &file, force).await?);
        }
    }
    Ok(())
}

/// Records an operator action done outside an app use case (CLI commands
/// that write through the store directly). `detail` must never hold a secret.
pub async fn audit_operator(
    app: &App,
    customer_id: Option<i64>,
    action: &str,
    subject: &str,
    detail: &str,
) -> anyhow::Result<()> {
    let mut tx = app.db().begin().await?;
    app.db()
        .audit(
            &mut tx,
            app.now(),
            "operator",
            customer_id,
            action,
            subject,
            detail,
        )
        .await?;
    tx.commit().await?;
    Ok(())
}

fn parse_instant(flag: &str, v: &Option<String>) -> anyhow::Result<Option<i64>> {
    v.as_deref()
        .map(|t| {
            certhub_domain::time::parse_rfc3339(t)
                .with_context(|| format!("--{flag}: '{t}' is not RFC 3339"))
        })
        .transpose()
}

/// The audit lines matching `args`: `id at actor customer action subject detail`.
pub async fn audit_lines(app: &App, args: &AuditArgs) -> anyhow::Result<Vec<String>> {
    let customer_id = match &args.customer {
        Some(h) => Some(
            app.customer(h)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .id,
        ),
        None => None,
    };
    let filter = AuditFilter {
        customer_id,
        since: parse_instant("since", &args.since)?,
        until: parse_instant("until", &args.until)?,
        action_prefix: args.action.clone(),
        subject: args.subject.clone(),
    };
    let rows = app.db().audit_list(&filter).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {} {}",
                r.id,
                certhub_domain::time::format_rtr(r.at),
                r.actor,
                r.customer_id.map_or("-".to_string(), |c| c.to_string()),
                r.action,
                r.subject.filter(|s| !s.is_empty()).unwrap_or("-".into()),
                r.detail.unwrap_or_default(),
            )
            .trim_end()
            .to_string()
        })
        .collect())
}

/// The file of a `sqlite://` URL (query string removed).
pub fn sqlite_path(database_url: &str) -> Option<PathBuf> {
    let rest = database_url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Writes a consistent snapshot. SQLite: `VACUUM INTO`, which reads one
/// snapshot while writers go on. PostgreSQL: `pg_dump` is the tool; this
/// returns the exact command instead of shelling out with the password.
/// The KEK is not in the database, so it is never in a backup.
pub async fn backup(db: &Db, database_url: &str, file: &Path) -> anyhow::Result<String> {
    match db.dialect() {
        certhub_store::Dialect::Sqlite => {
            anyhow::ensure!(
                !file.exists(),
                "{} exists; backups never overwrite a file",
                file.display()
            );
            let target = std::path::absolute(file)?;
            sqlx::query("VACUUM INTO ?")
                .bind(target.display().to_string())
                .execute(db.pool())
                .await
                .context("VACUUM INTO failed")?;
            restrict(&target)?;
            Ok(format!(
                "backup written to {} (the KEK is not in it: keep data-dir/kek or CERTHUB_KEK separately)",
                target.display()
            ))
        }
        certhub_store::Dialect::Postgres => Ok(format!(
            "PostgreSQL backups are taken with pg_dump (consistent while serve runs):\n  pg_dump --format=custom --file={} '{}'\nrestore with: pg_restore --clean --if-exists --dbname='<url>' {}\n(the KEK is not in the database: keep CERTHUB_KEK separately)",
            file.display(),
            database_url,
            file.display()
        )),
    }
}

/// Replaces the SQLite database with `file`. Refuses a database that holds
/// customers unless `force`, and a file that is not a certhub database.
pub async fn restore(database_url: &str, file: &Path, force: bool) -> anyhow::Result<String> {
    let Some(target) = sqlite_path(database_url) else {
        anyhow::bail!(
            "restore handles SQLite only; for PostgreSQL use: pg_restore --clean --if-exists --dbname='<url>' {}",
            file.display()
        );
    };
    anyhow::ensure!(file.is_file(), "{} is not a file", file.display());
    let mut source = open_read_only(file).await?;
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut source)
        .await
        .with_context(|| format!("{} is not a certhub database", file.display()))?;
    sqlx::Connection::close(source).await?;
    anyhow::ensure!(!versions.is_empty(), "{} has no migrations", file.display());
    if target.exists() && !force {
        let mut db = open_read_only(&target).await?;
        let customers: Option<i64> = sqlx::query_scalar("SELECT COUNT(*) FROM customers")
            .fetch_optional(&mut db)
            .await
            .ok()
            .flatten();
        sqlx::Connection::close(db).await?;
        anyhow::ensure!(
            customers.unwrap_or(0) == 0,
            "{} holds {} customers; stop serve and pass --force to replace it",
            target.display(),
            customers.unwrap_or(0)
        );
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // Copy next to the target, then rename: a crash leaves the old or the new
    // database, never half of one. Stale WAL files belong to the old one.
    let tmp = target.with_extension("restore-tmp");
    std::fs::copy(file, &tmp).with_context(|| format!("cannot copy to {}", tmp.display()))?;
    restrict(&tmp)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    let mut wal = target.clone().into_os_string();
    wal.push("-wal");
    let _ = std::fs::remove_file(&wal);
    let mut shm = target.clone().into_os_string();
    shm.push("-shm");
    let _ = std::fs::remove_file(&shm);
    std::fs::rename(&tmp, &target)?;
    Ok(format!(
        "restored {} into {} (schema versions {:?})",
        file.display(),
        target.display(),
        versions
    ))
}

/// One read-only connection, without the pool's WAL set-up (which writes).
async fn open_read_only(path: &Path) -> anyhow::Result<sqlx::AnyConnection> {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=ro", path.display());
    <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .with_context(|| format!("{} is not a readable database", path.display()))
}

#[cfg(unix)]
fn restrict(p: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_paths() {
        assert_eq!(
            super::sqlite_path("sqlite:///a/b.db?mode=rwc"),
            Some("/a/b.db".into())
        );
        assert_eq!(super::sqlite_path("sqlite://rel.db"), Some("rel.db".into()));
        assert_eq!(super::sqlite_path("postgres://x/y"), None);
    }
}
