//! The certificate lifecycle through HTTP on SQLite and PostgreSQL: request
//! with DNS, FILE and EMAIL DCV, DigiCert AuthKey, renew, reissue, revoke
//! (OCSP), import, download in every format (`openssl verify`), cancel,
//! timeout, expiry, OV, and the documented errors for bad input.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use certhub::testing::{TestDb, TestServer};
use certhub_testkit::{Http01Server, TestDns};
use serde_json::{Value, json};

struct Env {
    s: TestServer,
    dns: TestDns,
    http: Http01Server,
}

async fn envs() -> Vec<Env> {
    let mut out = Vec::new();
    for db in TestDb::ALL {
        let dns = TestDns::start().await;
        dns.set_default_a(Some(Ipv4Addr::LOCALHOST));
        let http = Http01Server::start().await;
        let (addr, port) = (dns.addr(), http.port());
        let started = TestServer::start_with(db, move |st| {
            st.va = certhub_va::VaConfig {
                allow_loopback: true,
                resolver: Some(addr),
                http01_port: port,
                timeout: Duration::from_secs(3),
                ..Default::default()
            };
        })
        .await;
        if let Some(s) = started {
            out.push(Env { s, dns, http });
        }
    }
    out
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

struct Resp {
    status: u16,
    process: Option<i64>,
    body: Value,
    bytes: Vec<u8>,
    content_type: String,
}

impl Client {
    fn new(s: &TestServer, key: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: s.base.clone(),
            key: key.to_string(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Resp {
        let mut rb = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("Authorization", format!("ApiKey {}", self.key));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let process = r
            .headers()
            .get("x-process-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = r.bytes().await.unwrap().to_vec();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            process,
            body,
            bytes,
            content_type,
        }
    }

    async fn get(&self, path: &str) -> Resp {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str, body: Option<Value>) -> Resp {
        self.send(reqwest::Method::DELETE, path, body).await
    }

    async fn credit(&self, handle: &str) -> (i64, i64) {
        let r = self.get(&format!("/v2/customers/{handle}/credit")).await;
        let a = &r.body["accounts"][0];
        (
            a["balance"].as_i64().unwrap(),
            a["reservation"].as_i64().unwrap(),
        )
    }
}

/// A P-256 CSR (CN = first name, SAN = all names) and its key.
fn csr(names: &[&str]) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0]);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn pem_blocks(pem: &str) -> Vec<String> {
    pem.split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|b| b.contains("BEGIN"))
        .map(str::to_string)
        .collect()
}

/// Requests with DNS DCV, waits for the engine, returns (process, certificate).
async fn issue_by_dns(
    e: &Env,
    c: &Client,
    handle: &str,
    product: &str,
    names: &[&str],
) -> (i64, i64) {
    let r = c
        .post(
            "/v2/ssl/certificates",
            json!({"customer": handle, "product": product, "period": 12, "csr": csr(names)}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let pid = r.process.unwrap();
    for d in r.body["validations"]["dcv"].as_array().unwrap() {
        e.dns.add_txt(
            d["dnsRecord"].as_str().unwrap(),
            d["dnsContents"].as_str().unwrap(),
        );
    }
    let r = c
        .post(&format!("/v2/processes/{pid}/resend"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let info = c.get(&format!("/v2/processes/{pid}/info")).await.body;
    (
        pid,
        info["certificateId"]
            .as_i64()
            .unwrap_or_else(|| panic!("not issued: {info}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_dcv_through_the_engine_and_every_download_format() {
    for e in envs().await {
        let s = &e.s;
        let c = Client::new(s, &s.customer("dns-co", 100_000).await);
        let r = c
            .post(
                "/v2/ssl/certificates",
                json!({"customer": "dns-co", "product": "sectigo_dv_multi", "period": 12,
                       "csr": csr(&["dns-test.com", "www.dns-test.com"])}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let pid = r.process.expect("X-Process-Id");
        assert_eq!(r.body["commonName"], "dns-test.com");
        assert_eq!(r.body["requiresAttention"], false);
        let dcv = r.body["validations"]["dcv"].as_array().unwrap().clone();
        assert_eq!(dcv.len(), 2);
        assert_eq!(dcv[0]["type"], "DNS");
        assert_eq!(dcv[0]["status"], "WAITING");
        assert_eq!(dcv[0]["dnsRecord"], "_dnsauth.dns-test.com");
        assert_eq!(dcv[0]["dnsType"], "TXT");
        assert!(dcv[0]["dnsContents"].as_str().unwrap().len() >= 28);
        assert_eq!(c.credit("dns-co").await, (100_000 - 3900, 3900));
        let p = c.get(&format!("/v2/processes/{pid}")).await.body;
        assert_eq!(
            (
                p["type"].as_str(),
                p["action"].as_str(),
                p["status"].as_str()
            ),
            (Some("certificate"), Some("request"), Some("RUNNING"))
        );
        assert_eq!(p["reservation"], json!({"EUR": 3900}));
        assert_eq!(
            c.get(&format!("/v2/processes/{pid}/info")).await.body["validations"]["dcv"][1]["commonName"],
            "www.dns-test.com"
        );

        // The engine checks and finds nothing yet.
        let start = s.app.now();
        s.set_now(start + 61);
        s.run_lifecycle().await;
        assert_eq!(
            c.get(&format!("/v2/processes/{pid}")).await.body["status"],
            "RUNNING"
        );

        for d in &dcv {
            e.dns.add_txt(
                d["dnsRecord"].as_str().unwrap(),
                d["dnsContents"].as_str().unwrap(),
            );
        }
        s.set_now(start + 61 + 121);
        let changes = s.run_lifecycle().await;
        assert!(changes.iter().any(|l| l.contains("issued")), "{changes:?}");
        let p = c.get(&format!("/v2/processes/{pid}")).await.body;
        assert_eq!(p["status"], "COMPLETED");
        assert_eq!(p["transaction"], json!({"EUR": 3900}));
        let info = c.get(&format!("/v2/processes/{pid}/info")).await.body;
        assert_eq!(info["validations"]["dcv"][0]["status"], "VALIDATED");
        assert_eq!(info["requiresAttention"], false);
        let id = info["certificateId"].as_i64().unwrap();
        assert_eq!(c.credit("dns-co").await, (100_000 - 3900, 0));

        let cert = c.get(&format!("/v2/ssl/certificates/{id}")).await.body;
        for k in [
            "id",
            "process",
            "product",
            "validationType",
            "certificateType",
            "domainName",
            "startDate",
            "expiryDate",
            "status",
            "publicKeyAlgorithm",
        ] {
            assert!(!cert[k].is_null(), "{k} missing: {cert}");
        }
        assert_eq!(cert["status"], "ACTIVE");
        assert_eq!(cert["process"], pid);
        assert_eq!(cert["san"], json!(["dns-test.com", "www.dns-test.com"]));
        assert_eq!(cert["publicKeyAlgorithm"], "ECDSA");
        let list = c.get("/v2/ssl/certificates?status=ACTIVE").await.body;
        assert_eq!(list["pagination"]["total"], 1);
        // A list entry is the certificate's summary (the list reads no DER,
        // chain or CSR): every other field as the single GET shows it.
        let entry = &list["entities"][0];
        for (k, v) in cert.as_object().unwrap() {
            if k != "certificate" && k != "csr" {
                assert_eq!(&entry[k], v, "list field {k}");
            }
        }
        assert!(entry.get("certificate").is_none() && entry.get("csr").is_none());
        let notes = c.get("/v2/customers/dns-co/notifications").await.body;
        assert!(
            notes["entities"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["eventType"] == "CERTIFICATE_ISSUED")
        );
        // One notification by id reads as its list entry.
        let first = &notes["entities"][0];
        let one = c
            .get(&format!(
                "/v2/customers/dns-co/notifications/{}",
                first["id"]
            ))
            .await;
        assert_eq!(one.status, 200, "{}", one.body);
        assert_eq!(one.body["eventType"], first["eventType"]);
        assert_eq!(one.body["message"], first["message"]);

        // Every download format.
        let dir = tempfile::tempdir().unwrap();
        let crt = c.get(&format!("/v2/ssl/certificates/{id}/download")).await;
        assert_eq!(crt.status, 200);
        let crt_text = String::from_utf8(crt.bytes.clone()).unwrap();
        assert_eq!(pem_blocks(&crt_text).len(), 1);
        assert_eq!(crt_text, cert["certificate"].as_str().unwrap());
        let ca = String::from_utf8(
            c.get(&format!("/v2/ssl/certificates/{id}/download?format=CA"))
                .await
                .bytes,
        )
        .unwrap();
        assert_eq!(pem_blocks(&ca).len(), 1);
        let bundle = String::from_utf8(
            c.get(&format!(
                "/v2/ssl/certificates/{id}/download?format=CA_BUNDLE"
            ))
            .await
            .bytes,
        )
        .unwrap();
        let blocks = pem_blocks(&bundle);
        assert_eq!(blocks.len(), 2);
        std::fs::write(dir.path().join("leaf.pem"), &crt_text).unwrap();
        std::fs::write(dir.path().join("inter.pem"), &ca).unwrap();
        std::fs::write(dir.path().join("root.pem"), &blocks[1]).unwrap();
        let at = s.app.now().to_string();
        let (ok, out) = openssl(
            dir.path(),
            &[
                "verify",
                "-attime",
                &at,
                "-CAfile",
                "root.pem",
                "-untrusted",
                "inter.pem",
                "leaf.pem",
            ],
        );
        assert!(ok, "openssl verify: {out}");
        let p7 = c
            .get(&format!("/v2/ssl/certificates/{id}/download?format=PKCS7"))
            .await;
        let p7_text = String::from_utf8(p7.bytes).unwrap();
        assert!(p7_text.starts_with("-----BEGIN PKCS7-----"));
        std::fs::write(dir.path().join("c.p7b"), &p7_text).unwrap();
        let (ok, out) = openssl(
            dir.path(),
            &["pkcs7", "-in", "c.p7b", "-print_certs", "-noout"],
        );
        assert!(ok && out.matches("subject=").count() == 2, "{out}");
        let zip = c
            .get(&format!("/v2/ssl/certificates/{id}/download?format=ZIP"))
            .await;
        assert_eq!(zip.content_type, "application/zip");
        let files = unzip_stored(&zip.bytes);
        assert_eq!(
            files.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            vec!["certificate.crt", "ca-bundle.crt"]
        );
        assert_eq!(files[0].1, crt_text.as_bytes());
        assert_eq!(files[1].1, bundle.as_bytes());
        let csr_dl = c
            .get(&format!("/v2/ssl/certificates/{id}/download?format=CSR"))
            .await;
        assert!(
            String::from_utf8(csr_dl.bytes)
                .unwrap()
                .contains("CERTIFICATE REQUEST")
        );
        let bad = c
            .get(&format!("/v2/ssl/certificates/{id}/download?format=P12"))
            .await;
        assert_eq!(
            (bad.status, bad.body["type"].as_str()),
            (400, Some("ValidationError"))
        );
    }
}

/// Reads a stored ZIP the way `unzip` does (local headers), checking CRCs.
fn unzip_stored(z: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while z.len() >= i + 30 && z[i..i + 4] == [0x50, 0x4b, 3, 4] {
        let u16at = |o: usize| u16::from_le_bytes([z[o], z[o + 1]]) as usize;
        let u32at = |o: usize| u32::from_le_bytes([z[o], z[o + 1], z[o + 2], z[o + 3]]);
        assert_eq!(u16at(i + 8), 0, "stored");
        let crc = u32at(i + 14);
        let size = u32at(i + 18) as usize;
        let (nlen, xlen) = (u16at(i + 26), u16at(i + 28));
        let name = String::from_utf8(z[i + 30..i + 30 + nlen].to_vec()).unwrap();
        let start = i + 30 + nlen + xlen;
        let data = z[start..start + size].to_vec();
        assert_eq!(crc32(&data), crc);
        out.push((name, data));
        i = start + size;
    }
    assert_eq!(&z[z.len() - 22..z.len() - 18], &[0x50, 0x4b, 5, 6]);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_and_email_validation() {
    for e in envs().await {
        let s = &e.s;
        let c = Client::new(s, &s.customer("file-co", 100_000).await);
        // FILE: published file, resend validates at once.
        let r = c
            .post(
                "/v2/ssl/certificates",
                json!({"customer": "file-co", "product": "sectigo_dv_single", "period": 12, "csr": csr(&["file-test.com"]),
                       "dcv": [{"commonName": "file-test.com", "type": "FILE"}]}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let pid = r.process.unwrap();
        let d = &r.body["validations"]["dcv"][0];
        assert_eq!(d["type"], "FILE");
        let loc = d["fileLocation"].as_str().unwrap();
        let path = loc.strip_prefix("http://file-test.com").unwrap();
        assert!(path.starts_with("/.well-known/pki-validation/") && path.ends_with(".txt"));
        let r = c
            .post(&format!("/v2/processes/{pid}/resend"), json!({}))
            .await;
        assert_eq!(r.body["validations"]["dcv"][0]["status"], "WAITING");
        e.http.set_path(path, d["fileContents"].as_str().unwrap());
        let r = c
            .post(&format!("/v2/processes/{pid}/resend"), json!({}))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["validations"]["dcv"][0]["status"], "VALIDATED");
        assert!(r.body["certificateId"].is_i64(), "{}", r.body);

        // FILE cannot validate a wildcard.
        let r = c
            .post(
                "/v2/ssl/certificates",
                json!({"customer": "file-co", "product": "sectigo_dv_wildcard", "period": 12, "csr": csr(&["*.file-test.org"]),
                       "dcv": [{"commonName": "*.file-test.org", "type": "FILE"}]}),
            )
            .await;
        assert_eq!(
            (r.status, r.body["type"].as_str()),
            (400, Some("ConstraintViolationException"))
        );

        // EMAIL: the constructed list, the outbox link, GET shows a form, POST approves.
        let list = c
            .get("/v2/ssl/dcvemailaddresslist/www.mail-test.com")
            .await
            .body;
        assert_eq!(list.as_array().unwrap().len(), 10);
        assert_eq!(list[0], "admin@www.mail-test.com");
        let r = c
            .post(
                "/v2/ssl/certificates",
                json!({"customer": "file-co", "product": "sectigo_dv_single", "period": 12, "csr": csr(&["www.mail-test.com"]),
                       "dcv": [{"commonName": "www.mail-test.com", "type": "EMAIL", "email": "hostmaster@mail-test.com"}]}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let pid = r.process.unwrap();
        assert_eq!(
            r.body["validations"]["dcv"][0]["email"],
            "hostmaster@mail-test.com"
        );
        let bad = c
            .post(
                "/v2/ssl/certificates",
                json!({"customer": "file-co", "product": "sectigo_dv_single", "period": 12, "csr": csr(&["www.mail-test.com"]),
                       "dcv": [{"commonName": "www.mail-test.com", "type": "EMAIL", "email": "me@gmail.com"}]}),
            )
            .await;
        assert_eq!(
            (bad.status, bad.body["type"].as_str()),
            (400, Some("ConstraintViolationException"))
        );
        let msgs = s.app.db().outbox_messages().await.unwrap();
        let m = msgs
            .iter()
            .find(|m| m.recipient == "hostmaster@mail-test.com")
            .expect("outbox message");
        certhub::admin_certs::run_outbox(&s.app).await.unwrap();
        let link = m
            .body
            .split_whitespace()
            .find(|w| w.starts_with("http"))
            .unwrap()
            .to_string();
        assert!(link.starts_with(&format!("{}/dcv/approve/", s.base)));
        let page = reqwest::get(&link).await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
        assert!(
            page.text()
                .await
                .unwrap()
                .contains("<form method=\"post\">")
        );
        assert_eq!(
            c.get(&format!("/v2/processes/{pid}")).await.body["status"],
            "RUNNING"
        );
        let approved = reqwest::Client::new().post(&link).send().await.unwrap();
        assert_eq!(approved.status().as_u16(), 200);
        let info = c.get(&format!("/v2/processes/{pid}/info")).await.body;
        assert_eq!(info["validations"]["dcv"][0]["status"], "VALIDATED");
        assert!(info["certificateId"].is_i64(), "{info}");
        assert_eq!(
            reqwest::get(format!("{}/dcv/approve/nope", s.base))
                .await
                .unwrap()
                .status()
                .as_u16(),
            404
        );

        // Reuse: the approval covers mail-test.com's names for this customer.
        let r = c
            .post(
                "/v2/ssl/certificates",
                json!({"customer": "file-co", "product": "sectigo_dv_single", "period": 12, "csr": csr(&["shop.mail-test.com"])}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert!(r.body["certificateId"].is_i64());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authkey_issues_in_one_call_or_falls_back_to_dcv() {
    for e in envs().await {
        let s = &e.s;
        let c = Client::new(s, &s.customer("ak-co", 100_000).await);
        let the_csr = csr(&["ak-test.com", "www.ak-test.com"]);
        let r = c
            .post(
                "/v2/ssl/authkey",
                json!({"product": "digicert_dv_authkey", "csr": the_csr}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let key = r.body["authKey"].as_str().unwrap().to_string();
        assert!(r.body["validity"].as_str().unwrap().ends_with('Z'));
        let r = c
            .post(
                "/v2/ssl/authkey",
                json!({"product": "sectigo_dv_single", "csr": the_csr}),
            )
            .await;
        assert_eq!(
            (r.status, r.body["type"].as_str()),
            (400, Some("ConstraintViolationException"))
        );

        e.dns.set_txt("_dnsauth.ak-test.com", vec![key.clone()]);
        e.dns.set_txt("_dnsauth.www.ak-test.com", vec![key.clone()]);
        let r = c
            .post(
                "/v2/ssl/certificates",
                json!({"customer": "ak-co", "product": "digicert_dv_authkey", "period": 12, "csr": the_csr, "authKey": true}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["certificateId"].as_i64().unwrap();
        assert!(r.process.is_some());
        assert_eq!(
            c.get(&format!("/v2/ssl/certificates/{id}")).await.body["status"],
            "ACTIVE"
        );
        assert_eq!(c.credit("ak-co").await, (100_000 - 2500 - 1500, 0));

        // Published for another key: no match → 202 with DCV pending.
        let r = c
            .post(
                "/v2/ssl/certificates",
                json!({"customer": "ak-co", "product": "digicert_dv_authkey", "period": 12,
                       "csr": csr(&["other-ak.com"]), "authKey": true}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body["validations"]["dcv"][0]["status"], "WAITING");
        assert!(r.body.get("certificateId").is_none());

        // The same token published through fileauth.txt works too.
        let file_csr = csr(&["file-ak.com"]);
        let k2 = c
            .post(
                "/v2/ssl/authkey",
                json!({"product": "digicert_dv_authkey", "csr": file_csr}),
            )
            .await
            .body["authKey"]
            .clone();
        e.http.set_path(
            "/.well-known/pki-validation/fileauth.txt",
            k2.as_str().unwrap(),
        );
        let r = c
            .post(
                "/v2/ssl/certificates",
                json!({"customer": "ak-co", "product": "digicert_dv_authkey", "period": 12, "csr": file_csr, "authKey": true}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_reissue_revoke_and_ocsp() {
    for e in envs().await {
        let s = &e.s;
        let c = Client::new(s, &s.customer("life-co", 100_000).await);
        let (_, id) =
            issue_by_dns(&e, &c, "life-co", "sectigo_dv_single", &["life-test.com"]).await;
        assert_eq!(c.credit("life-co").await.0, 100_000 - 900);

        // Renew: charged, validations reused, old RENEWED.
        let r = c
            .post(
                &format!("/v2/ssl/certificates/{id}/renew"),
                json!({"period": 24, "csr": csr(&["life-test.com"])}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let renewed = r.body["certificateId"].as_i64().unwrap();
        assert_eq!(
            c.get(&format!("/v2/processes/{}", r.process.unwrap()))
                .await
                .body["action"],
            "renew"
        );
        assert_eq!(
            c.get(&format!("/v2/ssl/certificates/{id}")).await.body["status"],
            "RENEWED"
        );
        assert_eq!(c.credit("life-co").await.0, 100_000 - 900 - 1700);
        let new_cert = c.get(&format!("/v2/ssl/certificates/{renewed}")).await.body;
        let sub_end = new_cert["subscriptionEndDate"]
            .as_str()
            .unwrap()
            .to_string();
        // Renewing a RENEWED certificate is refused.
        let r = c
            .post(
                &format!("/v2/ssl/certificates/{id}/renew"),
                json!({"period": 12, "csr": csr(&["life-test.com"])}),
            )
            .await;
        assert_eq!(
            (r.status, r.body["type"].as_str()),
            (400, Some("ObjectStatusProhibitsOperation"))
        );

        // Reissue with a new CSR: free, old REISSUED, notAfter within the coverage.
        let r = c
            .post(
                &format!("/v2/ssl/certificates/{renewed}/reissue"),
                json!({"csr": csr(&["life-test.com"])}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let reissued = r.body["certificateId"].as_i64().unwrap();
        assert_eq!(
            c.get(&format!("/v2/ssl/certificates/{renewed}")).await.body["status"],
            "REISSUED"
        );
        assert_eq!(c.credit("life-co").await.0, 100_000 - 900 - 1700);
        let re = c
            .get(&format!("/v2/ssl/certificates/{reissued}"))
            .await
            .body;
        assert_eq!(re["subscriptionEndDate"].as_str().unwrap(), sub_end);
        let exp = certhub_domain::time::parse_rfc3339(re["expiryDate"].as_str().unwrap()).unwrap();
        let end = certhub_domain::time::parse_rfc3339(&sub_end).unwrap();
        let max = certhub_ca::validity_max_days(s.app.now() - 60, 397) as i64 * 86_400;
        assert_eq!(exp, end.min(s.app.now() - 60 + max - 1));

        // Revoke → REVOKED, OCSP says revoked; twice → ObjectStatusProhibitsOperation.
        let r = c
            .delete(
                &format!("/v2/ssl/certificates/{reissued}"),
                Some(json!({"reason": "SUPERSEDED"})),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert!(r.process.is_some());
        assert_eq!(
            c.get(&format!("/v2/ssl/certificates/{reissued}"))
                .await
                .body["status"],
            "REVOKED"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("leaf.pem"),
            c.get(&format!("/v2/ssl/certificates/{reissued}/download"))
                .await
                .bytes,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("inter.pem"),
            c.get(&format!(
                "/v2/ssl/certificates/{reissued}/download?format=CA"
            ))
            .await
            .bytes,
        )
        .unwrap();
        let (ok, out) = openssl(
            dir.path(),
            &[
                "ocsp",
                "-issuer",
                "inter.pem",
                "-cert",
                "leaf.pem",
                "-no_nonce",
                "-reqout",
                "req.der",
            ],
        );
        assert!(ok, "{out}");
        let resp = s
            .app
            .ocsp(&std::fs::read(dir.path().join("req.der")).unwrap())
            .await;
        std::fs::write(dir.path().join("resp.der"), resp).unwrap();
        let (_, out) = openssl(
            dir.path(),
            &["ocsp", "-respin", "resp.der", "-resp_text", "-noverify"],
        );
        assert!(out.contains("Cert Status: revoked"), "{out}");
        let r = c
            .delete(&format!("/v2/ssl/certificates/{reissued}"), None)
            .await;
        assert_eq!(
            (r.status, r.body["type"].as_str()),
            (400, Some("ObjectStatusProhibitsOperation"))
        );
        let notes = c
            .get("/v2/customers/life-co/notifications?eventType=CERTIFICATE_REVOKED")
            .await
            .body;
        assert_eq!(notes["pagination"]["total"], 1);

        // Operator revocation by serial (`certhub admin cert revoke SERIAL --reason R`).
        let serial = c.get(&format!("/v2/ssl/certificates/{renewed}")).await.body["providerId"]
            .as_str()
            .unwrap()
            .to_uppercase();
        let cmd = certhub::admin_certs::CertCmd::Revoke {
            serial: Some(serial),
            key_sha256: None,
            reason: "cessation_of_operation".into(),
        };
        certhub::admin_certs::run_cert(&s.app, cmd).await.unwrap();
        let r = c.get(&format!("/v2/ssl/certificates/{renewed}")).await.body;
        assert_eq!(r["status"], "REVOKED");

        // ACME-managed certificates: renew/reissue refused, revoke works.
        let mut acme_row = s.app.db().certificate(None, id).await.unwrap().unwrap();
        acme_row.certificate_type = "ACME_SUBSCRIPTION".into();
        acme_row.serial_hex = "0a0b0c".into();
        acme_row.fingerprint = "00".into();
        acme_row.status = "ACTIVE".into();
        let mut tx = s.app.db().begin().await.unwrap();
        let acme_id = s
            .app
            .db()
            .insert_certificate(&mut tx, &acme_row)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let r = c
            .post(
                &format!("/v2/ssl/certificates/{acme_id}/renew"),
                json!({"period": 12, "csr": csr(&["life-test.com"])}),
            )
            .await;
        assert_eq!(
            (r.status, r.body["type"].as_str()),
            (400, Some("ObjectStatusProhibitsOperation"))
        );
        assert!(
            r.body["message"]
                .as_str()
                .unwrap()
                .contains("managed by ACME")
        );
        let r = c
            .post(
                &format!("/v2/ssl/certificates/{acme_id}/reissue"),
                json!({"csr": csr(&["life-test.com"])}),
            )
            .await;
        assert_eq!(r.status, 400);
        assert_eq!(
            c.delete(&format!("/v2/ssl/certificates/{acme_id}"), None)
                .await
                .status,
            202
        );
    }
}

/// A foreign CA and a leaf it signed (openssl), as PEM files in `dir`.
fn foreign_chain(dir: &Path) {
    let run = |args: &[&str]| {
        let (ok, out) = openssl(dir, args);
        assert!(ok, "{args:?}: {out}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=Foreign Test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
    ]);
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=imported.com",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-addext",
        "subjectAltName=DNS:imported.com,DNS:www.imported.com",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "20",
        "-copy_extensions",
        "copy",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_tracks_foreign_certificates() {
    let dir = tempfile::tempdir().unwrap();
    foreign_chain(dir.path());
    let leaf = std::fs::read_to_string(dir.path().join("leaf.pem")).unwrap();
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let leaf_csr = std::fs::read_to_string(dir.path().join("leaf.csr")).unwrap();
    for e in envs().await {
        let s = &e.s;
        let c = Client::new(s, &s.customer("imp-co", 100_000).await);
        let r = c.post("/v2/ssl/import", json!({"customer": "imp-co", "certificate": format!("{leaf}{ca}"), "csr": leaf_csr})).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert!(r.bytes.is_empty());
        let pid = r.process.unwrap();
        assert_eq!(
            c.get(&format!("/v2/processes/{pid}")).await.body["action"],
            "import"
        );
        let list = c.get("/v2/ssl/certificates").await.body;
        assert_eq!(list["pagination"]["total"], 1);
        let cert = &list["entities"][0];
        assert_eq!(cert["domainName"], "imported.com");
        assert_eq!(cert["san"], json!(["imported.com", "www.imported.com"]));
        assert_eq!(cert["status"], "ACTIVE");
        assert_eq!(cert["certificateType"], "MULTI_DOMAIN");
        let start =
            certhub_domain::time::parse_rfc3339(cert["startDate"].as_str().unwrap()).unwrap();
        let end =
            certhub_domain::time::parse_rfc3339(cert["expiryDate"].as_str().unwrap()).unwrap();
        assert_eq!(end - start, 20 * 86_400);
        let id = cert["id"].as_i64().unwrap();
        let chain = c
            .get(&format!("/v2/ssl/certificates/{id}/download?format=CA"))
            .await;
        assert_eq!(String::from_utf8(chain.bytes).unwrap(), ca);

        // Duplicate, CA certificate, garbage: documented errors, nothing stored.
        let r = c
            .post(
                "/v2/ssl/import",
                json!({"customer": "imp-co", "certificate": leaf}),
            )
            .await;
        assert_eq!(
            (r.status, r.body["type"].as_str()),
            (400, Some("ObjectExists"))
        );
        let r = c
            .post(
                "/v2/ssl/import",
                json!({"customer": "imp-co", "certificate": ca}),
            )
            .await;
        assert_eq!(
            (r.status, r.body["type"].as_str()),
            (400, Some("ConstraintViolationException"))
        );
        let r = c.post("/v2/ssl/import", json!({"customer": "imp-co", "certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"})).await;
        assert_eq!(
            (r.status, r.body["type"].as_str()),
            (400, Some("ConstraintViolationException"))
        );
        let r = c
            .post(
                "/v2/ssl/import",
                json!({"customer": "someone-else", "certificate": leaf}),
            )
            .await;
        assert_eq!(r.status, 403);
        assert_eq!(
            c.get("/v2/ssl/certificates").await.body["pagination"]["total"],
            1
        );
        assert_eq!(c.get("/v2/processes").await.body["pagination"]["total"], 1);

        // Renewable into a product (DCV applies).
        let r = c
            .post(
                &format!("/v2/ssl/certificates/{id}/renew"),
                json!({"product": "sectigo_dv_multi", "period": 12, "csr": leaf_csr}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body["validations"]["dcv"].as_array().unwrap().len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_changes_nothing() {
    for e in envs().await {
        let s = &e.s;
        let c = Client::new(s, &s.customer("bad-co", 100_000).await);
        let other = Client::new(s, &s.customer("oth-co", 100_000).await);
        let base = json!({"customer": "bad-co", "product": "sectigo_dv_multi", "period": 12});
        let with = |extra: Value| {
            let mut b = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                b[k] = v.clone();
            }
            b
        };
        // Bad signature: flip a byte of the signature.
        let good = csr(&["sig-test.com"]);
        let blocks = certhub_ca::pem_decode_all(&good).unwrap();
        let mut der = blocks[0].1.clone();
        let last = der.len() - 3;
        der[last] ^= 0x55;
        let bad_sig = certhub_ca::pem_encode("CERTIFICATE REQUEST", &der);
        let r = c
            .post("/v2/ssl/certificates", with(json!({"csr": bad_sig})))
            .await;
        assert_eq!(
            (r.status, r.body["type"].as_str()),
            (400, Some("InvalidCSRException")),
            "{}",
            r.body
        );
        // Weak key: RSA 1024.
        let dir = tempfile::tempdir().unwrap();
        let (ok, out) = openssl(
            dir.path(),
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:1024",
                "-nodes",
                "-subj",
                "/CN=weak-test.com",
                "-keyout",
                "k.pem",
                "-out",
                "weak.csr",
            ],
        );
        assert!(ok, "{out}");
        let weak = std::fs::read_to_string(dir.path().join("weak.csr")).unwrap();
        let r = c
            .post("/v2/ssl/certificates", with(json!({"csr": weak})))
            .await;
        assert_eq!(
            (r.status, r.body["type"].as_str()),
            (400, Some("InvalidCSRException"))
        );
        let r = c.post("/v2/ssl/decodecsr", json!({"csr": weak})).await;
        assert_eq!(r.body["type"], "InvalidCSRException");
        // Names that do not match san.
        let r = c
            .post(
                "/v2/ssl/certificates",
                with(json!({"csr": csr(&["a-test.com", "b-test.com"]), "san": ["a-test.com"]})),
            )
            .await;
        assert_eq!(
            (r.status, r.body["type"].as_str()),
            (400, Some("ConstraintViolationException"))
        );
        assert_eq!(r.body["violations"][0]["field"], "san");
        // A period the product does not offer.
        let r = c
            .post(
                "/v2/ssl/certificates",
                with(json!({"csr": good, "period": 7})),
            )
            .await;
        assert_eq!(
            (r.status, r.body["type"].as_str()),
            (400, Some("ConstraintViolationException"))
        );
        assert_eq!(r.body["violations"][0]["field"], "period");
        // Unknown key, unknown product, too little credit, another customer's handle.
        let r = c
            .post(
                "/v2/ssl/certificates",
                with(json!({"csr": good, "colour": "red"})),
            )
            .await;
        assert_eq!(r.body["type"], "UnrecognizedPropertyException");
        let r = c
            .post(
                "/v2/ssl/certificates",
                with(json!({"csr": good, "product": "nope"})),
            )
            .await;
        assert_eq!(
            (r.status, r.body["type"].as_str()),
            (400, Some("ObjectDoesNotExist"))
        );
        let poor = Client::new(s, &s.customer("poor-co", 100).await);
        let r = poor.post("/v2/ssl/certificates", json!({"customer": "poor-co", "product": "sectigo_dv_multi", "period": 12, "csr": good})).await;
        assert_eq!(
            (r.status, r.body["type"].as_str()),
            (400, Some("InsufficientCreditException"))
        );
        assert_eq!(poor.credit("poor-co").await, (100, 0));
        let r = c
            .post(
                "/v2/ssl/certificates",
                with(json!({"csr": good, "customer": "oth-co"})),
            )
            .await;
        assert_eq!(r.status, 403);
        // Quote: priced, nothing reserved.
        let r = c
            .post(
                "/v2/ssl/certificates?quote=true",
                with(json!({"csr": good})),
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["quote"]["total"], 3900);
        assert_eq!(r.body["quote"]["billables"][0]["action"], "REQUEST");
        assert_eq!(c.credit("bad-co").await, (100_000, 0));
        assert_eq!(c.get("/v2/processes").await.body["pagination"]["total"], 0);

        // Another customer's certificate: 404 everywhere.
        let (_, id) =
            issue_by_dns(&e, &other, "oth-co", "sectigo_dv_single", &["oth-test.com"]).await;
        for path in [
            format!("/v2/ssl/certificates/{id}"),
            format!("/v2/ssl/certificates/{id}/download"),
        ] {
            assert_eq!(c.get(&path).await.status, 404);
        }
        let r = c
            .post(
                &format!("/v2/ssl/certificates/{id}/renew"),
                json!({"period": 12, "csr": csr(&["oth-test.com"])}),
            )
            .await;
        assert_eq!(
            (r.status, r.body["type"].as_str()),
            (404, Some("ObjectDoesNotExist"))
        );
        assert_eq!(
            c.delete(&format!("/v2/ssl/certificates/{id}"), None)
                .await
                .status,
            404
        );
        assert_eq!(
            other.get(&format!("/v2/ssl/certificates/{id}")).await.body["status"],
            "ACTIVE"
        );
        assert_eq!(c.credit("bad-co").await, (100_000, 0));
        assert_eq!(
            c.get("/v2/ssl/certificates").await.body["pagination"]["total"],
            0
        );

        // decodecsr of a good CSR.
        let r = c
            .post(
                "/v2/ssl/decodecsr",
                json!({"csr": csr(&["dec-test.com", "www.dec-test.com"])}),
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["commonName"], "dec-test.com");
        assert_eq!(r.body["publicKeyAlgorithm"], "ECDSA");
        assert_eq!(r.body["publicKeySize"], 256);
        assert_eq!(
            r.body["altNames"],
            json!(["dec-test.com", "www.dec-test.com"])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_timeout_ov_and_expiry() {
    for e in envs().await {
        let s = &e.s;
        let c = Client::new(s, &s.customer("time-co", 100_000).await);
        let req = |name: &str| json!({"customer": "time-co", "product": "sectigo_dv_single", "period": 12, "csr": csr(&[name])});
        // Cancel: reservation released, process CANCELLED; again → refused.
        let pid = c
            .post("/v2/ssl/certificates", req("cancel-test.com"))
            .await
            .process
            .unwrap();
        assert_eq!(c.credit("time-co").await, (100_000 - 900, 900));
        let r = c.delete(&format!("/v2/processes/{pid}"), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["status"], "CANCELLED");
        assert_eq!(c.credit("time-co").await, (100_000, 0));
        let r = c.delete(&format!("/v2/processes/{pid}"), None).await;
        assert_eq!(
            (r.status, r.body["type"].as_str()),
            (400, Some("ObjectStatusProhibitsOperation"))
        );
        let r = c
            .post(&format!("/v2/processes/{pid}/resend"), json!({}))
            .await;
        assert_eq!(r.body["type"], "ObjectStatusProhibitsOperation");

        // Process actions on a running request.
        let pid = c
            .post("/v2/ssl/certificates", req("timeout-test.com"))
            .await
            .process
            .unwrap();
        let r = c
            .post(
                &format!("/v2/processes/{pid}/schedule-validation-call"),
                json!({"date": "2030-01-01T10:00:00.000Z"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = c
            .post(
                &format!("/v2/processes/{pid}/schedule-validation-call"),
                json!({"date": {"date": "2030-01-01 10:00:00.000000", "timezone_type": 3, "timezone": "UTC"}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = c
            .post(
                &format!("/v2/processes/{pid}/send-subscriber-agreement"),
                json!({"email": "boss@time-co.com", "language": "NL"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);

        // OV: waits for the organisation; the operator approves; AuthKey validated the names.
        let ov_csr = csr(&["ov-test.com"]);
        let key = c
            .post(
                "/v2/ssl/authkey",
                json!({"product": "digicert_ov_authkey", "csr": ov_csr}),
            )
            .await
            .body["authKey"]
            .clone();
        e.dns.set_txt(
            "_dnsauth.ov-test.com",
            vec![key.as_str().unwrap().to_string()],
        );
        let r = c
            .post(
                "/v2/ssl/certificates",
                json!({"customer": "time-co", "product": "digicert_ov_authkey", "period": 12, "csr": ov_csr, "authKey": true,
                       "organization": "Time Co B.V.", "country": "NL", "city": "Amsterdam",
                       "approver": {"firstName": "A", "lastName": "B", "email": "a@time-co.com", "voice": "+31.201234567", "jobTitle": "CTO"}}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body["validations"]["organization"], "WAITING");
        assert_eq!(r.body["validations"]["dcv"][0]["status"], "VALIDATED");
        let ov_pid = r.process.unwrap();
        let v = s
            .app
            .db()
            .list_org_validations(Some("PENDING"))
            .await
            .unwrap();
        let vid = v.iter().find(|v| v.process_id == ov_pid).unwrap().id;
        let issued = s
            .app
            .decide_certificate_org_validation(vid, true, None)
            .await
            .unwrap()
            .expect("issued");
        let cert = c.get(&format!("/v2/ssl/certificates/{issued}")).await.body;
        assert_eq!(cert["validationType"], "ORGANIZATION_VALIDATION");
        assert_eq!(cert["organization"], "Time Co B.V.");
        assert_eq!(
            c.get(&format!("/v2/processes/{ov_pid}/info")).await.body["validations"]["organization"],
            "VALIDATED"
        );

        // Timeout after 30 days: FAILED, reservation released.
        let t0 = s.app.now();
        s.set_now(t0 + 31 * 86_400);
        let changes = s.run_lifecycle().await;
        assert!(
            changes.iter().any(|l| l.contains("timed out")),
            "{changes:?}"
        );
        assert_eq!(
            c.get(&format!("/v2/processes/{pid}")).await.body["status"],
            "FAILED"
        );
        let (_, reserved) = c.credit("time-co").await;
        assert_eq!(reserved, 0);

        // Expiry: EXPIRING at the renewal window, then EXPIRED.
        let exp =
            certhub_domain::time::parse_rfc3339(cert["expiryDate"].as_str().unwrap()).unwrap();
        s.set_now(exp - 29 * 86_400);
        let changes = s.run_lifecycle().await;
        assert!(
            changes.iter().any(|l| l.contains("expiring")),
            "{changes:?}"
        );
        assert_eq!(
            c.get(&format!("/v2/ssl/certificates/{issued}")).await.body["status"],
            "ACTIVE"
        );
        s.set_now(exp + 1);
        s.run_lifecycle().await;
        assert_eq!(
            c.get(&format!("/v2/ssl/certificates/{issued}")).await.body["status"],
            "EXPIRED"
        );
        let notes = c
            .get("/v2/customers/time-co/notifications?limit=100")
            .await
            .body;
        let events: Vec<&str> = notes["entities"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["eventType"].as_str())
            .collect();
        for ev in [
            "CERTIFICATE_ISSUED",
            "CERTIFICATE_EXPIRING",
            "CERTIFICATE_EXPIRED",
            "DCV_ATTENTION",
        ] {
            assert!(events.contains(&ev), "{ev} missing in {events:?}");
        }
    }
}
