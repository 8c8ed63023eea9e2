//! The README's first steps, with the real binary: `certhub serve` in a fresh
//! directory (no config file, no flags but the port), the admin commands run
//! from a second terminal while it serves, the API answering over TLS that
//! verifies against `certhub ca bundle`, and then a restart and more admin
//! commands on the data directory the first start wrote, whose commented
//! `certhub.toml` must load as the defaults it claims to be.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Variables that would override what a newcomer's shell does not set.
const ENV: &[&str] = &[
    "CERTHUB_DATA_DIR",
    "CERTHUB_DATABASE_URL",
    "CERTHUB_CONFIG",
    "CERTHUB_NOW",
    "CERTHUB_KEK",
    "CERTHUB_LISTEN",
    "CERTHUB_PUBLIC_URL",
    "CERTHUB_PKI_URL",
    "CERTHUB_HTTP_LISTEN",
];

fn command(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_certhub"));
    c.current_dir(dir);
    for v in ENV {
        c.env_remove(v);
    }
    c
}

/// `certhub ARGS` in `dir`; stdout on success, the whole story on failure.
fn certhub(dir: &Path, args: &[&str]) -> String {
    let out: Output = command(dir).args(args).output().expect("run certhub");
    assert!(
        out.status.success(),
        "certhub {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A running `certhub serve`, killed when dropped.
struct Serve {
    child: Child,
    log: std::path::PathBuf,
}

impl Serve {
    fn start(dir: &Path, port: u16) -> Serve {
        // One log per start, so a restart does not truncate the first one.
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = dir.join(format!("serve-{n}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = command(dir)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn certhub serve");
        Serve { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/healthz` answers (certificate not checked yet: the
    /// root is only known once the first start created it).
    async fn ready(&mut self, port: u16) {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("certhub serve exited ({status}):\n{}", self.log());
            }
            let url = format!("https://127.0.0.1:{port}/healthz");
            if http
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("certhub serve not ready within 60 s:\n{}", self.log());
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `GET /v2/customers/acme-corp/credit` over TLS verified against the root.
async fn balance(dir: &Path, port: u16, key: &str) -> i64 {
    let root = certhub(dir, &["ca", "bundle"]);
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(root.as_bytes()).expect("root PEM")])
        .build()
        .unwrap();
    let r = http
        .get(format!(
            "https://localhost:{port}/v2/customers/acme-corp/credit"
        ))
        .header("Authorization", format!("ApiKey {key}"))
        .send()
        .await
        .expect("TLS verified with the bundle's root");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["accounts"][0]["balance"].as_i64().expect("balance")
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_admin_commands_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();

    let mut serve = Serve::start(dir, port);
    serve.ready(port).await;
    let data = dir.join("certhub-data");
    assert!(data.join("certhub.db").exists() && data.join("certhub.toml").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("kek"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A second terminal, while serve runs.
    certhub(dir, &["admin", "customer", "create", "acme-corp"]);
    let key = certhub(dir, &["admin", "apikey", "create", "acme-corp"]);
    let key = key.trim();
    assert!(!key.is_empty() && !key.contains(char::is_whitespace));
    certhub(dir, &["admin", "credit", "add", "acme-corp", "100000"]);
    assert_eq!(balance(dir, port, key).await, 100_000);

    // Stop, start again on what the first start wrote.
    drop(serve);
    let mut serve = Serve::start(dir, port);
    serve.ready(port).await;
    certhub(dir, &["admin", "credit", "add", "acme-corp", "1"]);
    assert_eq!(balance(dir, port, key).await, 100_001);
    assert!(!serve.log().contains("panicked"), "{}", serve.log());
}

/// `--listen 127.0.0.1:0`: the system picks the port, and the server says
/// which, in its start-up line and in the URLs it hands out.
#[tokio::test(flavor = "multi_thread")]
async fn port_zero_serves_and_advertises_the_picked_port() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let mut child = command(tmp.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn certhub serve");
    let stderr = child.stderr.take().unwrap();
    let line = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("certhub listening on"))
        .expect("the start-up line");
    let _ = child.kill();
    let _ = child.wait();
    // "certhub listening on https://127.0.0.1:PORT (public URL https://localhost:PORT), ..."
    let port = |after: &str| -> u16 {
        let rest = &line[line.find(after).expect(after) + after.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let bound = port("https://127.0.0.1:");
    assert_ne!(bound, 0, "{line}");
    assert_eq!(port("https://localhost:"), bound, "{line}");
}
