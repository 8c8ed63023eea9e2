//! Turning options and the data directory into a running `App`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use certhub_app::{App, Clock, Settings};
use certhub_store::Db;
use certhub_store::sealed::Kek;

use crate::config::{self, FileConfig};

/// Options every subcommand accepts (flags or `CERTHUB_*` variables).
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Data directory (SQLite database, config, KEK).
    #[arg(
        long,
        global = true,
        env = "CERTHUB_DATA_DIR",
        default_value = "./certhub-data"
    )]
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://user@host/db` (default: SQLite in the data directory).
    #[arg(long, global = true, env = "CERTHUB_DATABASE_URL")]
    pub database_url: Option<String>,
    /// TOML configuration file (default: `certhub.toml` in the data directory, if present).
    #[arg(long, global = true, env = "CERTHUB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Start the clock at this RFC 3339 instant (needs `[testing] allow_clock_override`).
    #[arg(long, global = true, env = "CERTHUB_NOW")]
    pub now: Option<String>,
}

/// Listener options of `serve`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeOpts {
    /// HTTPS address (plain-HTTP PKI paths are served on it too).
    #[arg(long, env = "CERTHUB_LISTEN")]
    pub listen: Option<String>,
    /// The URL clients use, e.g. `https://acme.example.net` (default `https://localhost:PORT`).
    #[arg(long, env = "CERTHUB_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// `http://` base of CRL, OCSP and issuer URLs (default `http://localhost:PORT`).
    #[arg(long, env = "CERTHUB_PKI_URL")]
    pub pki_url: Option<String>,
    /// An extra plain-HTTP listener (e.g. behind a reverse proxy, or port 80 for PKI paths).
    #[arg(long, env = "CERTHUB_HTTP_LISTEN")]
    pub http_listen: Option<String>,
}

/// Everything resolved from defaults, file, environment and flags.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub listen: String,
    pub public_url: String,
    pub pki_url: String,
    pub http_listen: Option<String>,
    pub file: FileConfig,
}

pub fn resolve(global: &Global, serve: &ServeOpts) -> anyhow::Result<Resolved> {
    let data_dir = global.data_dir.clone();
    let file = config::load(global.config.as_deref(), &data_dir)?;
    let database_url = global
        .database_url
        .clone()
        .or_else(|| file.database.url.clone())
        .unwrap_or_else(|| {
            let abs = std::path::absolute(data_dir.join("certhub.db"))
                .unwrap_or_else(|_| data_dir.join("certhub.db"));
            format!("sqlite://{}", abs.display())
        });
    let listen = serve
        .listen
        .clone()
        .unwrap_or_else(|| file.server.listen.clone());
    let port = listen.rsplit(':').next().unwrap_or("8443").to_string();
    let public_url = serve
        .public_url
        .clone()
        .or_else(|| file.server.public_url.clone())
        .unwrap_or_else(|| format!("https://localhost:{port}"))
        .trim_end_matches('/')
        .to_string();
    let pki_url = serve
        .pki_url
        .clone()
        .or_else(|| file.server.pki_url.clone())
        .unwrap_or_else(|| format!("http://localhost:{port}"))
        .trim_end_matches('/')
        .to_string();
    if !pki_url.starts_with("http://") {
        anyhow::bail!(
            "--pki-url must be an http:// URL (CRL and OCSP URLs are plain HTTP), got {pki_url}"
        );
    }
    if !(public_url.starts_with("https://") || public_url.starts_with("http://")) {
        anyhow::bail!("--public-url must be an http(s):// URL, got {public_url}");
    }
    let http_listen = serve
        .http_listen
        .clone()
        .or_else(|| file.server.http_listen.clone());
    Ok(Resolved {
        data_dir,
        database_url,
        listen,
        public_url,
        pki_url,
        http_listen,
        file,
    })
}

/// Creates the data directory (0700) with a commented config file.
pub fn init_data_dir(dir: &Path) -> anyhow::Result<bool> {
    if dir.join("certhub.toml").exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    set_mode(dir, 0o700)?;
    std::fs::write(dir.join("certhub.toml"), config::DEFAULT_CONFIG)?;
    Ok(true)
}

#[cfg(unix)]
fn set_mode(p: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> anyhow::Result<()> {
    Ok(())
}

/// The KEK: `CERTHUB_KEK` (base64 or hex of 32 bytes), else `{data_dir}/kek`
/// (created with mode 0600 on first start). It is never stored in the database.
pub fn load_kek(dir: &Path) -> anyhow::Result<Kek> {
    if let Ok(v) = std::env::var("CERTHUB_KEK") {
        let v = v.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v)
            .ok()
            .filter(|b| b.len() == 32)
            .or_else(|| certhub_ca::hex_decode(v).filter(|b| b.len() == 32))
            .context("CERTHUB_KEK must be 32 bytes in base64 or hex")?;
        return Ok(Kek::from_bytes(&bytes)?);
    }
    let path = dir.join("kek");
    if !path.exists() {
        std::fs::create_dir_all(dir)?;
        let key = Kek::generate();
        let written = write_secret_file(
            &path,
            base64::engine::general_purpose::STANDARD
                .encode(key)
                .as_bytes(),
        );
        match written {
            Ok(()) => {}
            // Another process started at the same moment and won: use its KEK.
            Err(e)
                if e.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::AlreadyExists) => {}
            Err(e) => return Err(e.context(format!("cannot create {}", path.display()))),
        }
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .context("kek file is not base64")?;
    Ok(Kek::from_bytes(&bytes)?)
}

/// Creates `path` holding `content`, mode 0600, all at once: the bytes go to
/// a temporary file that is synced and then linked into place. A crash (or
/// SIGKILL) part way leaves either no file or the whole file, never an empty
/// one that would stop every later start; linking (unlike renaming) never
/// replaces a file another process created first.
fn write_secret_file(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    // A leftover of an earlier attempt may carry other permissions: start
    // afresh so the mode below applies.
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(content)?;
    f.sync_all()?;
    drop(f);
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked?;
    if let Some(dir) = path.parent() {
        // The new directory entry must be durable too.
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// The clock, honouring `--now` only when the config allows it.
pub fn clock(global: &Global, file: &FileConfig) -> anyhow::Result<Clock> {
    match &global.now {
        None => Ok(Clock::system()),
        Some(t) => {
            if !file.testing.allow_clock_override {
                anyhow::bail!(
                    "--now / CERTHUB_NOW needs `[testing] allow_clock_override = true` in the config file"
                );
            }
            let ts = certhub_domain::time::parse_rfc3339(t)
                .with_context(|| format!("--now: '{t}' is not RFC 3339"))?;
            Ok(Clock::starting_at(ts))
        }
    }
}

/// Settings for the app from the resolved configuration.
pub fn settings(r: &Resolved) -> anyhow::Result<Settings> {
    let mut s = Settings::for_urls(&r.public_url, &r.pki_url);
    if let Some(t) = &r.file.validation {
        s.va = toml::Value::Table(t.clone())
            .try_into()
            .context("[validation]")?;
    }
    if let Some(t) = &r.file.ca {
        let mut t = t.clone();
        let weak = t.remove("weak_keys_file");
        s.ca = toml::Value::Table(t).try_into().context("[ca]")?;
        if let Some(toml::Value::String(path)) = weak {
            s.key_policy.blocked_keys = read_weak_keys(Path::new(&path))?;
        }
    }
    s.ca.pki_url = r.pki_url.clone();
    // The config written on first start has an `[smtp]` header with every
    // key commented out: an empty section means no relay, not a broken one.
    if let Some(t) = r.file.smtp.as_ref().filter(|t| !t.is_empty()) {
        s.smtp = Some(toml::Value::Table(t.clone()).try_into().context("[smtp]")?);
    }
    if let Some(t) = &r.file.rate_limits {
        s.rate_limits = toml::Value::Table(t.clone())
            .try_into()
            .context("[rate_limits]")?;
    }
    s.rate_limits.trusted_proxies = r
        .file
        .server
        .trusted_proxies
        .iter()
        .map(|p| p.parse())
        .collect::<Result<_, _>>()
        .context("[server] trusted_proxies must be IP addresses")?;
    anyhow::ensure!(
        r.file.server.max_in_flight > 0,
        "[server] max_in_flight must be at least 1"
    );
    s.max_in_flight = r.file.server.max_in_flight;
    Ok(s)
}

/// One hex SHA-256 of a SubjectPublicKeyInfo per line; `#` comments.
fn read_weak_keys(path: &Path) -> anyhow::Result<std::collections::HashSet<[u8; 32]>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("weak_keys_file {}", path.display()))?;
    let mut set = std::collections::HashSet::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let b = certhub_ca::hex_decode(line)
            .filter(|b| b.len() == 32)
            .context("weak key entries are 64 hex digits")?;
        let mut a = [0u8; 32];
        a.copy_from_slice(&b);
        set.insert(a);
    }
    Ok(set)
}

/// Opens (and migrates) the database and builds the app. Every subcommand
/// goes through here, so all of them work on a fresh data directory and
/// next to a running `serve`.
pub async fn open(global: &Global, serve: &ServeOpts) -> anyhow::Result<(App, Resolved)> {
    let r = resolve(global, serve)?;
    init_data_dir(&r.data_dir)?;
    let kek = load_kek(&r.data_dir)?;
    let db = Db::connect(&r.database_url)
        .await
        .with_context(|| "cannot open the database".to_string())?;
    for m in db.migrate().await? {
        tracing::info!(migration = %m, "applied migration");
    }
    db.seed_catalogue().await?;
    let clock = clock(global, &r.file)?;
    let app = App::new(db, kek, clock, settings(&r)?)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((app, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_from(config_text: &str) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("certhub.toml"), config_text).unwrap();
        let g = Global {
            data_dir: dir.path().to_path_buf(),
            database_url: None,
            config: None,
            now: None,
        };
        settings(&resolve(&g, &ServeOpts::default())?)
    }

    /// The file written into a fresh data directory must load on the next
    /// start, both as written and with its example lines uncommented.
    #[test]
    fn the_written_default_config_loads() {
        let s = settings_from(config::DEFAULT_CONFIG).unwrap();
        assert!(s.smtp.is_none(), "no relay unless one is configured");
        let uncommented: String = config::DEFAULT_CONFIG
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") || rest.starts_with('[') => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let s = settings_from(&uncommented).unwrap();
        assert!(s.smtp.is_some());
    }

    #[test]
    fn kek_file_survives_a_half_written_earlier_attempt() {
        let dir = tempfile::tempdir().unwrap();
        // What a start killed mid-write leaves behind: a temporary file only.
        std::fs::write(dir.path().join("kek.tmp-1"), b"").unwrap();
        std::fs::write(
            dir.path().join(format!("kek.tmp-{}", std::process::id())),
            b"x",
        )
        .unwrap();
        let a = load_kek(dir.path()).unwrap();
        let b = load_kek(dir.path()).unwrap();
        // The second start reads the key the first one wrote.
        assert_eq!(b.open("probe", &a.seal("probe", b"x")).unwrap(), b"x");
        let kek = dir.path().join("kek");
        assert!(std::fs::read_to_string(&kek).unwrap().trim().len() >= 43);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&kek).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(
            !dir.path()
                .join(format!("kek.tmp-{}", std::process::id()))
                .exists()
        );
    }
}
