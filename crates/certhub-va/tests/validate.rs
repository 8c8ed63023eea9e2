//! Validators against the testkit servers on loopback.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use certhub_testkit::{CertFlavor, Http01Server, HttpReply, TestDns, TlsAlpnServer};
use certhub_va::{VaConfig, VaErrorKind, Validator, dns01_digest};

const KA: &str = "tok_123.thumbprint-abc";
const TOKEN: &str = "tok_123";
const CA: &str = "certhub.test";
const ACCT: &str = "https://acme.certhub.test/acme/acct/7";

struct Env {
    dns: TestDns,
    http: Http01Server,
    tls: TlsAlpnServer,
    va: Validator,
}

fn config(env_dns: &TestDns, http: &Http01Server, tls: &TlsAlpnServer) -> VaConfig {
    VaConfig {
        http01_port: http.port(),
        tlsalpn01_port: tls.port(),
        timeout: Duration::from_secs(3),
        ..VaConfig::for_tests(env_dns.addr())
    }
}

async fn env() -> Env {
    let dns = TestDns::start().await;
    dns.set_default_a(Some(Ipv4Addr::LOCALHOST));
    let http = Http01Server::start().await;
    let tls = TlsAlpnServer::start().await;
    let va = Validator::new(config(&dns, &http, &tls)).unwrap();
    Env { dns, http, tls, va }
}

fn kind<T: std::fmt::Debug>(r: Result<T, certhub_va::VaError>) -> VaErrorKind {
    let e = r.expect_err("expected a validation failure");
    eprintln!("{e}");
    e.kind
}

// ---------- http-01 ----------

#[tokio::test]
async fn http01_passes_with_trailing_newline() {
    let e = env().await;
    e.http.set_token(TOKEN, &format!("{KA}\n"));
    e.va.http01("a.test", TOKEN, KA).await.unwrap();
}

#[tokio::test]
async fn http01_wrong_content_is_unauthorized() {
    let e = env().await;
    e.http.set_token(TOKEN, "something-else");
    let err = e.va.http01("a.test", TOKEN, KA).await.unwrap_err();
    assert_eq!(err.kind, VaErrorKind::Unauthorized);
    assert!(
        err.detail.contains("something-else") && err.detail.contains(KA),
        "{err}"
    );
}

#[tokio::test]
async fn http01_404_is_unauthorized() {
    let e = env().await;
    let err = e.va.http01("a.test", TOKEN, KA).await.unwrap_err();
    assert_eq!(err.kind, VaErrorKind::Unauthorized);
    assert!(err.detail.contains("404"), "{err}");
}

#[tokio::test]
async fn http01_follows_redirect_to_allowed_port() {
    let e = env().await;
    let path = format!("/.well-known/acme-challenge/{TOKEN}");
    let target = format!("http://b.test:{}/moved", e.http.port());
    e.http.set_reply(&path, HttpReply::Redirect(target));
    e.http.set_path("/moved", KA);
    e.va.http01("a.test", TOKEN, KA).await.unwrap();
}

#[tokio::test]
async fn http01_redirect_to_disallowed_port_is_refused() {
    let e = env().await;
    let path = format!("/.well-known/acme-challenge/{TOKEN}");
    e.http
        .set_reply(&path, HttpReply::Redirect("http://b.test:8081/x".into()));
    let err = e.va.http01("a.test", TOKEN, KA).await.unwrap_err();
    assert_eq!(err.kind, VaErrorKind::Connection);
    assert!(err.detail.contains("8081"), "{err}");
}

#[tokio::test]
async fn http01_redirect_to_other_scheme_is_refused() {
    let e = env().await;
    let path = format!("/.well-known/acme-challenge/{TOKEN}");
    e.http
        .set_reply(&path, HttpReply::Redirect("ftp://b.test/x".into()));
    assert_eq!(
        kind(e.va.http01("a.test", TOKEN, KA).await),
        VaErrorKind::Connection
    );
}

#[tokio::test]
async fn http01_redirect_loop_stops() {
    let e = env().await;
    let path = format!("/.well-known/acme-challenge/{TOKEN}");
    let target = format!("http://a.test:{}{path}", e.http.port());
    e.http.set_reply(&path, HttpReply::Redirect(target));
    let err = e.va.http01("a.test", TOKEN, KA).await.unwrap_err();
    assert_eq!(err.kind, VaErrorKind::Connection);
    assert!(err.detail.contains("redirect"), "{err}");
}

#[tokio::test]
async fn http01_oversized_body_is_incorrect() {
    let e = env().await;
    e.http
        .set_token(TOKEN, &"x".repeat(certhub_va::MAX_BODY + 1));
    assert_eq!(
        kind(e.va.http01("a.test", TOKEN, KA).await),
        VaErrorKind::IncorrectResponse
    );
}

#[tokio::test]
async fn http01_connection_refused() {
    let e = env().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let cfg = VaConfig {
        http01_port: port,
        ..config(&e.dns, &e.http, &e.tls)
    };
    let va = Validator::new(cfg).unwrap();
    assert_eq!(
        kind(va.http01("a.test", TOKEN, KA).await),
        VaErrorKind::Connection
    );
}

#[tokio::test]
async fn http01_unresolvable_name_is_dns() {
    let e = env().await;
    e.dns.set_default_a(None);
    assert_eq!(
        kind(e.va.http01("nowhere.test", TOKEN, KA).await),
        VaErrorKind::Dns
    );
}

#[tokio::test]
async fn http01_refuses_wildcards() {
    let e = env().await;
    assert_eq!(
        kind(e.va.http01("*.a.test", TOKEN, KA).await),
        VaErrorKind::RejectedIdentifier
    );
}

#[tokio::test]
async fn hosts_table_is_used_in_test_mode() {
    let e = env().await;
    e.dns.set_default_a(None);
    let mut cfg = config(&e.dns, &e.http, &e.tls);
    cfg.hosts = HashMap::from([("Hosted.Test".to_owned(), "127.0.0.1".parse().unwrap())]);
    let va = Validator::new(cfg).unwrap();
    e.http.set_token(TOKEN, KA);
    va.http01("hosted.test", TOKEN, KA).await.unwrap();
}

// ---------- address policy ----------

#[tokio::test]
async fn production_policy_refuses_loopback() {
    let e = env().await;
    e.http.set_token(TOKEN, KA);
    e.tls.set_challenge("a.test", KA);
    // Production: fixed ports; the refusal happens before any connection.
    let mut cfg = VaConfig {
        resolver: Some(e.dns.addr()),
        ..VaConfig::default()
    };
    // Even a hosts entry must not bypass the policy in production.
    cfg.hosts = HashMap::from([("a.test".to_owned(), "127.0.0.1".parse().unwrap())]);
    let va = Validator::new(cfg).unwrap();
    let err = va.http01("a.test", TOKEN, KA).await.unwrap_err();
    assert_eq!(err.kind, VaErrorKind::RejectedIdentifier);
    assert!(err.detail.contains("127.0.0.1"), "{err}");
    assert_eq!(
        kind(va.tls_alpn01("a.test", KA).await),
        VaErrorKind::RejectedIdentifier
    );
    assert_eq!(
        kind(va.http_get_text("a.test", "/x", None).await),
        VaErrorKind::RejectedIdentifier
    );
    assert_eq!(
        kind(va.http_get_text("127.0.0.1", "/x", None).await),
        VaErrorKind::RejectedIdentifier
    );
    assert_eq!(
        kind(va.http_get_text("a.test", "/x", Some(8080)).await),
        VaErrorKind::Connection
    );
    // Private addresses too.
    e.dns.set_a("private.test", Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(
        kind(va.http01("private.test", TOKEN, KA).await),
        VaErrorKind::RejectedIdentifier
    );
}

// ---------- dns-01 ----------

#[tokio::test]
async fn dns01_passes_and_sees_changes_at_once() {
    let e = env().await;
    let digest = dns01_digest(KA);
    e.dns
        .set_txt("_acme-challenge.a.test", vec!["stale".into()]);
    let err = e.va.dns01("a.test", &digest).await.unwrap_err();
    assert_eq!(err.kind, VaErrorKind::Unauthorized);
    assert!(
        err.detail.contains("stale") && err.detail.contains(&digest),
        "{err}"
    );
    e.dns.set_txt(
        "_acme-challenge.a.test",
        vec!["stale".into(), digest.clone()],
    );
    e.va.dns01("a.test", &digest).await.unwrap();
    // Wildcard identifiers validate at the base name.
    e.va.dns01("*.a.test", &digest).await.unwrap();
}

#[tokio::test]
async fn dns01_missing_txt_is_unauthorized() {
    let e = env().await;
    let err = e.va.dns01("a.test", &dns01_digest(KA)).await.unwrap_err();
    assert_eq!(err.kind, VaErrorKind::Unauthorized);
    assert!(err.detail.contains("_acme-challenge.a.test"), "{err}");
}

#[tokio::test]
async fn dns01_follows_cname() {
    let e = env().await;
    let digest = dns01_digest(KA);
    e.dns
        .set_cname("_acme-challenge.a.test", "a.test.acme-delegate.test");
    e.dns
        .set_txt("a.test.acme-delegate.test", vec![digest.clone()]);
    e.va.dns01("a.test", &digest).await.unwrap();
}

#[tokio::test]
async fn dns01_servfail_is_dns_error() {
    let e = env().await;
    e.dns.set_servfail("_acme-challenge.a.test");
    assert_eq!(
        kind(e.va.dns01("a.test", &dns01_digest(KA)).await),
        VaErrorKind::Dns
    );
}

#[tokio::test]
async fn txt_records_for_rest_dcv() {
    let e = env().await;
    assert!(
        e.va.txt_records("_dnsauth.a.test")
            .await
            .unwrap()
            .is_empty()
    );
    let long = "v".repeat(300);
    e.dns
        .set_txt("_dnsauth.a.test", vec!["one".into(), long.clone()]);
    let mut got = e.va.txt_records("_dnsauth.a.test").await.unwrap();
    got.sort();
    assert_eq!(got, vec!["one".to_owned(), long]);
}

#[tokio::test]
async fn http_get_text_for_file_dcv() {
    let e = env().await;
    e.http.set_path(
        "/.well-known/pki-validation/fileauth.txt",
        "authkey-value\n",
    );
    let body =
        e.va.http_get_text("a.test", "/.well-known/pki-validation/fileauth.txt", None)
            .await
            .unwrap();
    assert_eq!(body, "authkey-value\n");
    // An explicit port override reaches the same server.
    let body =
        e.va.http_get_text(
            "a.test",
            "/.well-known/pki-validation/fileauth.txt",
            Some(e.http.port()),
        )
        .await
        .unwrap();
    assert_eq!(body.trim(), "authkey-value");
    assert_eq!(
        kind(
            e.va.http_get_text("a.test", "/.well-known/pki-validation/none.txt", None)
                .await
        ),
        VaErrorKind::Unauthorized
    );
}

// ---------- tls-alpn-01 ----------

#[tokio::test]
async fn tls_alpn01_passes() {
    let e = env().await;
    e.tls.set_challenge("a.test", KA);
    e.va.tls_alpn01("a.test", KA).await.unwrap();
}

#[tokio::test]
async fn tls_alpn01_wrong_digest_is_unauthorized() {
    let e = env().await;
    e.tls
        .set_challenge_flavor("a.test", KA, CertFlavor::WrongDigest);
    assert_eq!(
        kind(e.va.tls_alpn01("a.test", KA).await),
        VaErrorKind::Unauthorized
    );
}

#[tokio::test]
async fn tls_alpn01_malformed_certificates_are_incorrect() {
    let e = env().await;
    for flavor in [
        CertFlavor::NonCritical,
        CertFlavor::NoAcmeExtension,
        CertFlavor::ExtraSan("b.test".into()),
        CertFlavor::OtherSan("b.test".into()),
    ] {
        e.tls.set_challenge_flavor("a.test", KA, flavor.clone());
        assert_eq!(
            kind(e.va.tls_alpn01("a.test", KA).await),
            VaErrorKind::IncorrectResponse,
            "{flavor:?}"
        );
    }
}

#[tokio::test]
async fn tls_alpn01_without_acme_alpn_is_tls_error() {
    let e = env().await;
    e.tls.set_challenge("a.test", KA);
    // Server negotiates no ALPN at all.
    e.tls.set_alpn(vec![]);
    let err = e.va.tls_alpn01("a.test", KA).await.unwrap_err();
    assert_eq!(err.kind, VaErrorKind::Tls);
    assert!(err.detail.contains("acme-tls/1"), "{err}");
    // Server only speaks http/1.1: handshake fails.
    e.tls.set_alpn(vec![b"http/1.1".to_vec()]);
    assert_eq!(kind(e.va.tls_alpn01("a.test", KA).await), VaErrorKind::Tls);
}

#[tokio::test]
async fn tls_alpn01_no_certificate_for_name_is_tls_error() {
    let e = env().await;
    e.tls.set_challenge("other.test", KA);
    assert_eq!(kind(e.va.tls_alpn01("a.test", KA).await), VaErrorKind::Tls);
}

// ---------- CAA ----------

fn ids() -> Vec<String> {
    vec![CA.to_owned()]
}

fn caa(tag: &str, value: &str) -> (u8, String, String) {
    (0, tag.to_owned(), value.to_owned())
}

#[tokio::test]
async fn caa_absent_permits() {
    let e = env().await;
    e.va.check_caa("www.a.test", false, &ids(), Some(ACCT), "http-01")
        .await
        .unwrap();
}

#[tokio::test]
async fn caa_other_issuer_forbids_and_climbs() {
    let e = env().await;
    e.dns.set_caa("a.test", vec![caa("issue", "other-ca.test")]);
    let err =
        e.va.check_caa("deep.www.a.test", false, &ids(), Some(ACCT), "dns-01")
            .await
            .unwrap_err();
    assert_eq!(err.kind, VaErrorKind::Caa);
    assert!(err.detail.contains("other-ca.test"), "{err}");
    // A closer record wins over the parent's.
    e.dns.set_caa("www.a.test", vec![caa("issue", CA)]);
    e.va.check_caa("deep.www.a.test", false, &ids(), Some(ACCT), "dns-01")
        .await
        .unwrap();
}

#[tokio::test]
async fn caa_empty_issuer_forbids() {
    let e = env().await;
    e.dns.set_caa("a.test", vec![caa("issue", ";")]);
    assert_eq!(
        kind(
            e.va.check_caa("a.test", false, &ids(), None, "ca-dns")
                .await
        ),
        VaErrorKind::Caa
    );
}

#[tokio::test]
async fn caa_unknown_critical_tag_forbids() {
    let e = env().await;
    e.dns.set_caa(
        "a.test",
        vec![caa("issue", CA), (128, "future".into(), "x".into())],
    );
    assert_eq!(
        kind(
            e.va.check_caa("a.test", false, &ids(), None, "http-01")
                .await
        ),
        VaErrorKind::Caa
    );
}

#[tokio::test]
async fn caa_accounturi_binding() {
    let e = env().await;
    e.dns.set_caa(
        "a.test",
        vec![caa("issue", &format!("{CA}; accounturi={ACCT}"))],
    );
    e.va.check_caa("a.test", false, &ids(), Some(ACCT), "http-01")
        .await
        .unwrap();
    assert_eq!(
        kind(
            e.va.check_caa(
                "a.test",
                false,
                &ids(),
                Some("https://acme.certhub.test/acme/acct/8"),
                "http-01"
            )
            .await
        ),
        VaErrorKind::Caa
    );
}

#[tokio::test]
async fn caa_validationmethods_binding() {
    let e = env().await;
    e.dns.set_caa(
        "a.test",
        vec![caa(
            "issue",
            &format!("{CA}; validationmethods=dns-01,ca-file"),
        )],
    );
    e.va.check_caa("a.test", false, &ids(), Some(ACCT), "ca-file")
        .await
        .unwrap();
    assert_eq!(
        kind(
            e.va.check_caa("a.test", false, &ids(), Some(ACCT), "http-01")
                .await
        ),
        VaErrorKind::Caa
    );
}

#[tokio::test]
async fn caa_issuewild_applies_to_wildcards() {
    let e = env().await;
    e.dns
        .set_caa("a.test", vec![caa("issue", CA), caa("issuewild", ";")]);
    e.va.check_caa("a.test", false, &ids(), Some(ACCT), "dns-01")
        .await
        .unwrap();
    assert_eq!(
        kind(
            e.va.check_caa("*.a.test", true, &ids(), Some(ACCT), "dns-01")
                .await
        ),
        VaErrorKind::Caa
    );
}

#[tokio::test]
async fn caa_follows_cname() {
    let e = env().await;
    e.dns.set_cname("www.a.test", "cdn.test");
    e.dns
        .set_caa("cdn.test", vec![caa("issue", "other-ca.test")]);
    assert_eq!(
        kind(
            e.va.check_caa("www.a.test", false, &ids(), None, "http-01")
                .await
        ),
        VaErrorKind::Caa
    );
}

#[tokio::test]
async fn caa_servfail_refuses_issuance() {
    let e = env().await;
    e.dns.set_servfail("a.test");
    let err =
        e.va.check_caa("www.a.test", false, &ids(), None, "http-01")
            .await
            .unwrap_err();
    assert_eq!(err.kind, VaErrorKind::Dns);
}
