//! End-to-end tests of the crate: hierarchy, issuance, CSR policy, CRL, OCSP and output,
//! checked with x509-parser and the `openssl` CLI.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use proptest::prelude::*;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::*;

const PKI: &str = "http://pki.example.com";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

struct Fixture {
    materials: Vec<IssuerMaterial>,
    ca: Ca,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let cfg = CaConfig {
            pki_url: format!("{PKI}/"),
            ..CaConfig::default()
        };
        let materials = init_hierarchy(&cfg, now()).expect("hierarchy");
        let ca = Ca::load(materials.clone(), PKI).expect("load");
        Fixture { materials, ca }
    })
}

fn material(id: &str) -> &'static IssuerMaterial {
    fixture()
        .materials
        .iter()
        .find(|m| m.id == id)
        .expect("issuer")
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "certhub-ca-{tag}-{}-{}",
        std::process::id(),
        hex_lower(&random_serial()[..4])
    ));
    std::fs::create_dir_all(&d).expect("tempdir");
    d
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ec_csr(names: &[&str], cn: Option<&str>) -> (Vec<u8>, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    let csr = params.serialize_request(&key).expect("csr");
    (csr.der().to_vec(), key)
}

fn dv_request(names: &[&str], spki: Vec<u8>) -> IssueRequest {
    IssueRequest {
        profile: Profile::Dv,
        names: names.iter().map(|s| s.to_string()).collect(),
        spki_der: spki,
        not_before: None,
        not_after: None,
        max_days: 397,
        now: now(),
    }
}

fn org() -> OrgSubject {
    OrgSubject {
        organization: "Example B.V.".into(),
        country: "NL".into(),
        state: Some("Noord-Holland".into()),
        locality: Some("Amsterdam".into()),
    }
}

/// Extensions of a certificate as (oid string, critical, parsed).
fn with_cert<R>(der: &[u8], f: impl FnOnce(&X509Certificate<'_>) -> R) -> R {
    let (rest, cert) = X509Certificate::from_der(der).expect("x509-parser parses");
    assert!(rest.is_empty());
    f(&cert)
}

fn ext_map(cert: &X509Certificate<'_>) -> Vec<(String, bool)> {
    cert.extensions()
        .iter()
        .map(|e| (e.oid.to_id_string(), e.critical))
        .collect()
}

fn has(exts: &[(String, bool)], oid: &str, critical: bool) -> bool {
    exts.iter().any(|(o, c)| o == oid && *c == critical)
}

fn san_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for e in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = e.parsed_extension() {
            for gn in &san.general_names {
                match gn {
                    GeneralName::DNSName(n) => out.push(n.to_string()),
                    GeneralName::IPAddress(b) => out.push(format!("ip:{b:?}")),
                    other => out.push(format!("{other:?}")),
                }
            }
        }
    }
    out
}

fn uris(cert: &X509Certificate<'_>) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut ocsp, mut ca_issuers, mut crl) = (vec![], vec![], vec![]);
    for e in cert.extensions() {
        match e.parsed_extension() {
            ParsedExtension::AuthorityInfoAccess(aia) => {
                for ad in &aia.accessdescs {
                    if let GeneralName::URI(u) = &ad.access_location {
                        if ad.access_method.to_id_string() == "1.3.6.1.5.5.7.48.1" {
                            ocsp.push(u.to_string());
                        } else {
                            ca_issuers.push(u.to_string());
                        }
                    }
                }
            }
            ParsedExtension::CRLDistributionPoints(dps) => {
                for dp in dps.iter() {
                    if let Some(DistributionPointName::FullName(names)) = &dp.distribution_point {
                        for n in names {
                            if let GeneralName::URI(u) = n {
                                crl.push(u.to_string());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (ocsp, ca_issuers, crl)
}

fn policies(cert: &X509Certificate<'_>) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for e in cert.extensions() {
        if let ParsedExtension::CertificatePolicies(p) = e.parsed_extension() {
            for info in p.iter() {
                out.push((
                    info.policy_id.to_id_string(),
                    info.policy_qualifiers.is_some(),
                ));
            }
        }
    }
    out
}

// ------------------------------------------------------------------ hierarchy

#[test]
fn hierarchy_profiles() {
    let f = fixture();
    let ids: Vec<&str> = f.materials.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["root", "dv", "ov", "server"]);

    with_cert(&material("root").cert_der, |c| {
        assert_eq!(
            c.subject().to_string(),
            "C=NL, O=certhub, CN=certhub Root CA"
        );
        assert_eq!(c.subject().as_raw(), c.issuer().as_raw());
        let e = ext_map(c);
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(
            has(&e, "2.5.29.19", true) && has(&e, "2.5.29.15", true) && has(&e, "2.5.29.14", false)
        );
        assert!(
            has(&e, "2.5.29.35", false),
            "root AKI (BR 7.1.2.1.2 RECOMMENDED)"
        );
        assert!(!has(&e, "2.5.29.37", false) && !has(&e, "2.5.29.32", false));
        let bc = c.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca && bc.path_len_constraint.is_none());
        let ku = c.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
        assert!(c.verify_signature(None).is_ok());
    });

    let root_pem = f.ca.root_pem();
    for (id, policy) in [
        ("dv", Some("2.23.140.1.2.1")),
        ("ov", Some("2.23.140.1.2.2")),
        ("server", None),
    ] {
        with_cert(&material(id).cert_der, |c| {
            assert_eq!(
                c.issuer().to_string(),
                "C=NL, O=certhub, CN=certhub Root CA"
            );
            let e = ext_map(c);
            for (oid, crit) in [
                ("2.5.29.19", true),
                ("2.5.29.15", true),
                ("2.5.29.37", false),
                ("2.5.29.14", false),
                ("2.5.29.35", false),
                ("2.5.29.31", false),
                ("1.3.6.1.5.5.7.1.1", false),
            ] {
                assert!(has(&e, oid, crit), "{id}: {oid} {crit} in {e:?}");
            }
            assert_eq!(e.len(), if policy.is_some() { 8 } else { 7 }, "{id}: {e:?}");
            let bc = c.basic_constraints().unwrap().unwrap().value;
            assert!(bc.ca && bc.path_len_constraint == Some(0));
            let eku = c.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.server_auth && !eku.client_auth && !eku.any && eku.other.is_empty());
            assert_eq!(
                policies(c),
                policy
                    .map(|p| vec![(p.to_string(), false)])
                    .unwrap_or_default()
            );
            let (ocsp, ca_issuers, crl) = uris(c);
            assert!(ocsp.is_empty());
            assert_eq!(ca_issuers, [format!("{PKI}/issuer/root.cer")]);
            assert_eq!(crl, [format!("{PKI}/crl/root.crl")]);
        });
        // The chain helper yields the intermediate only.
        let chain = f.ca.chain_pem(id).unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 1);
        assert_ne!(chain, root_pem);
    }
    assert_eq!(f.ca.chain_pem("root").unwrap(), "");
    assert!(f.ca.issuer_cert_der("nope").is_none());
}

#[test]
fn ocsp_responder_profile() {
    for m in &fixture().materials {
        with_cert(&m.ocsp_cert_der, |c| {
            let e = ext_map(c);
            assert!(
                has(&e, "2.5.29.15", true)
                    && has(&e, "2.5.29.37", false)
                    && has(&e, "1.3.6.1.5.5.7.48.1.5", false)
            );
            assert!(has(&e, "2.5.29.35", false) && has(&e, "2.5.29.14", false));
            let eku = c.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.ocsp_signing && !eku.server_auth);
            let ku = c.key_usage().unwrap().unwrap().value;
            assert!(ku.digital_signature() && !ku.key_cert_sign());
            let life = c.validity().not_after.timestamp() - c.validity().not_before.timestamp();
            assert_eq!(life, OCSP_RESPONDER_DAYS * 86_400 - 1);
        });
        assert!(!responder_needs_renewal(&m.ocsp_cert_der, now()).unwrap());
        assert!(responder_needs_renewal(&m.ocsp_cert_der, now() + 70 * 86_400).unwrap());
    }
    let (cert, key) = new_ocsp_responder(material("dv"), now()).unwrap();
    assert!(KeyPair::from_pkcs8(&key).is_ok());
    assert_ne!(cert, material("dv").ocsp_cert_der);
}

#[test]
fn load_refuses_mismatched_keys() {
    let mut m = fixture().materials.clone();
    m[1].key_pkcs8 = m[2].key_pkcs8.clone();
    assert!(matches!(Ca::load(m, PKI), Err(CaError::Config(_))));
    assert!(matches!(
        Ca::load(fixture().materials.clone(), "https://x"),
        Err(CaError::Config(_))
    ));
    let json = serde_json::to_string(&fixture().materials[0]).unwrap();
    let back: IssuerMaterial = serde_json::from_str(&json).unwrap();
    assert_eq!(back, fixture().materials[0]);
}

#[test]
fn rsa_hierarchy_issues_and_verifies() {
    let cfg = CaConfig {
        key_alg: KeyAlg::Rsa2048,
        pki_url: PKI.into(),
        ..CaConfig::default()
    };
    let ca = Ca::load(init_hierarchy(&cfg, now()).unwrap(), PKI).unwrap();
    let (csr, _) = ec_csr(&["rsa.example.com"], None);
    let parsed = parse_csr(&csr, &KeyPolicy::default()).unwrap();
    let cert = ca
        .issue(
            &dv_request(&["rsa.example.com"], parsed.spki_der),
            random_serial(),
        )
        .unwrap();
    verify_with_openssl(&ca, &cert, "dv");
}

// ------------------------------------------------------------------ issuance

fn verify_with_openssl(ca: &Ca, cert: &IssuedCert, issuer: &str) {
    let dir = tempdir("verify");
    std::fs::write(dir.join("root.pem"), ca.root_pem()).unwrap();
    std::fs::write(dir.join("int.pem"), ca.chain_pem(issuer).unwrap()).unwrap();
    std::fs::write(dir.join("leaf.pem"), &cert.pem).unwrap();
    std::fs::write(dir.join("chain.pem"), &cert.chain_pem).unwrap();
    let (ok, out) = openssl(
        &dir,
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "int.pem",
            "leaf.pem",
        ],
    );
    assert!(ok, "openssl verify failed: {out}");
    assert!(out.contains("leaf.pem: OK"), "{out}");
    let (ok, out) = openssl(
        &dir,
        &[
            "verify",
            "-x509_strict",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
            "leaf.pem",
        ],
    );
    assert!(ok, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dv_leaf_profile_and_openssl_verify() {
    let f = fixture();
    let (csr, _) = ec_csr(&["www.example.com", "example.com"], Some("example.com"));
    let parsed = parse_csr(&csr, &KeyPolicy::default()).unwrap();
    assert_eq!(parsed.names, ["www.example.com", "example.com"]);
    let serial = random_serial();
    let req = dv_request(&["www.example.com", "example.com"], parsed.spki_der.clone());
    let cert = f.ca.issue(&req, serial).unwrap();
    assert_eq!(cert.serial_hex, hex_lower(&serial));
    assert_eq!(cert.issuer_id, "dv");
    assert_eq!(cert.key_sha256, parsed.key_sha256);
    assert_eq!(
        cert.not_after - cert.not_before + 1,
        i64::from(validity_max_days(cert.not_before, 397)) * 86_400
    );
    assert_eq!(cert.not_before, req.now - 60);
    assert_eq!(cert.fingerprint_sha256_hex.len(), 64);
    assert!(
        cert.fingerprint_sha256_hex
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    assert!(cert.chain_pem.starts_with(&cert.pem));
    assert_eq!(cert.chain_pem.matches("BEGIN CERTIFICATE").count(), 2);

    with_cert(&cert.der, |c| {
        assert_eq!(c.version().0, 2);
        assert_eq!(c.raw_serial(), &serial[..]);
        assert!(
            c.subject().as_raw() == [0x30, 0x00],
            "DV subject must be empty"
        );
        assert_eq!(
            c.issuer().to_string(),
            "C=NL, O=certhub, CN=certhub DV TLS CA"
        );
        let e = ext_map(c);
        assert_eq!(e.len(), 7, "{e:?}");
        for (oid, crit) in [
            ("2.5.29.15", true),
            ("2.5.29.37", false),
            ("2.5.29.35", false),
            ("1.3.6.1.5.5.7.1.1", false),
            ("2.5.29.31", false),
            ("2.5.29.17", true),
            ("2.5.29.32", false),
        ] {
            assert!(has(&e, oid, crit), "{oid} {crit} in {e:?}");
        }
        assert!(!has(&e, "2.5.29.14", false), "no SKI on leaves");
        let ku = c.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_encipherment() && !ku.key_cert_sign());
        assert_eq!(ku.flags, 1);
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth && eku.other.is_empty());
        assert_eq!(policies(c), [("2.23.140.1.2.1".to_string(), false)]);
        assert_eq!(san_names(c), ["www.example.com", "example.com"]);
        let (ocsp, ca_issuers, crl) = uris(c);
        assert_eq!(ocsp, [format!("{PKI}/ocsp/dv")]);
        assert_eq!(ca_issuers, [format!("{PKI}/issuer/dv.cer")]);
        assert_eq!(crl, [format!("{PKI}/crl/dv.crl")]);
        // AKI = the intermediate's SKI.
        let aki = c
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            });
        let ski = with_cert(&material("dv").cert_der, |i| {
            i.extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                    _ => None,
                })
        });
        assert_eq!(aki, ski);
        let (_, issuer) = X509Certificate::from_der(&material("dv").cert_der).unwrap();
        assert!(c.verify_signature(Some(issuer.public_key())).is_ok());
    });
    verify_with_openssl(&f.ca, &cert, "dv");
}

#[test]
fn ov_leaf_profile_and_openssl_verify() {
    let f = fixture();
    let (csr, _) = ec_csr(&["shop.example.org"], None);
    let parsed = parse_csr(&csr, &KeyPolicy::default()).unwrap();
    let req = IssueRequest {
        profile: Profile::Ov(org()),
        ..dv_request(&["shop.example.org"], parsed.spki_der)
    };
    let cert = f.ca.issue(&req, random_serial()).unwrap();
    assert_eq!(cert.issuer_id, "ov");
    with_cert(&cert.der, |c| {
        assert_eq!(
            c.subject().to_string(),
            "C=NL, ST=Noord-Holland, L=Amsterdam, O=Example B.V."
        );
        assert_eq!(c.subject().iter_common_name().count(), 0);
        let e = ext_map(c);
        assert!(has(&e, "2.5.29.17", false), "OV SAN is not critical");
        assert_eq!(policies(c), [("2.23.140.1.2.2".to_string(), false)]);
        let (ocsp, _, crl) = uris(c);
        assert_eq!(ocsp, [format!("{PKI}/ocsp/ov")]);
        assert_eq!(crl, [format!("{PKI}/crl/ov.crl")]);
    });
    verify_with_openssl(&f.ca, &cert, "ov");

    // L only, ST only; neither is refused.
    for (state, locality, ok) in [
        (None, Some("Utrecht"), true),
        (Some("Utrecht"), None, true),
        (None, None, false),
    ] {
        let o = OrgSubject {
            state: state.map(Into::into),
            locality: locality.map(Into::into),
            ..org()
        };
        let r = f.ca.issue(
            &IssueRequest {
                profile: Profile::Ov(o),
                ..req.clone()
            },
            random_serial(),
        );
        assert_eq!(r.is_ok(), ok);
    }
}

#[test]
fn server_leaf_with_ip() {
    let f = fixture();
    let key = generate_key(KeyAlg::EcdsaP256).unwrap();
    let req = IssueRequest {
        profile: Profile::Server {
            ip_addresses: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        },
        ..dv_request(&["localhost"], key.spki_der)
    };
    let cert = f.ca.issue(&req, random_serial()).unwrap();
    assert_eq!(cert.issuer_id, "server");
    with_cert(&cert.der, |c| {
        assert_eq!(san_names(c).len(), 3);
        assert!(policies(c).is_empty());
        assert!(has(&ext_map(c), "2.5.29.17", true));
    });
    let dir = tempdir("server");
    std::fs::write(dir.join("root.pem"), f.ca.root_pem()).unwrap();
    std::fs::write(dir.join("chain.pem"), &cert.chain_pem).unwrap();
    let (ok, out) = openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
            "-verify_ip",
            "127.0.0.1",
            "-verify_hostname",
            "localhost",
            "chain.pem",
        ],
    );
    assert!(ok, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn issuance_refusals() {
    let f = fixture();
    let key = generate_key(KeyAlg::EcdsaP256).unwrap();
    let base = dv_request(&["a.example.com"], key.spki_der.clone());
    let bad_names: [&[&str]; 4] = [
        &[],
        &["A.example.com"],
        &["a.example.com", "a.example.com"],
        &["localhost"],
    ];
    for names in bad_names {
        let r = IssueRequest {
            names: names.iter().map(|s| s.to_string()).collect(),
            ..base.clone()
        };
        assert!(
            matches!(
                f.ca.issue(&r, random_serial()),
                Err(CaError::InvalidRequest(_))
            ),
            "{names:?}"
        );
    }
    let r = IssueRequest {
        not_after: Some(base.now + 400 * 86_400),
        ..base.clone()
    };
    let e = f.ca.issue(&r, random_serial()).unwrap_err();
    assert!(matches!(e, CaError::Validity(_)));
    assert!(
        e.to_string().contains("maximum validity of 199 days"),
        "{e}"
    );
    // A requested earlier notAfter is honoured exactly.
    let r = IssueRequest {
        not_after: Some(base.now + 7 * 86_400),
        max_days: 90,
        ..base.clone()
    };
    assert_eq!(
        f.ca.issue(&r, random_serial()).unwrap().not_after,
        base.now + 7 * 86_400
    );
    // The product maximum applies.
    let r = IssueRequest {
        max_days: 30,
        ..base.clone()
    };
    let c = f.ca.issue(&r, random_serial()).unwrap();
    assert_eq!(c.not_after - c.not_before + 1, 30 * 86_400);
    // Keys outside the policy are refused at issuance too.
    let r = IssueRequest {
        spki_der: vec![0x30, 0x00],
        ..base.clone()
    };
    assert!(f.ca.issue(&r, random_serial()).is_err());
    assert!(f.ca.issue(&base, [0; 16]).is_err());
}

#[test]
fn p256_issuance_is_fast() {
    let f = fixture();
    let key = generate_key(KeyAlg::EcdsaP256).unwrap();
    let req = dv_request(&["fast.example.com", "www.fast.example.com"], key.spki_der);
    let n = 300;
    let start = std::time::Instant::now();
    for _ in 0..n {
        f.ca.issue(&req, random_serial()).unwrap();
    }
    let per = start.elapsed() / n;
    eprintln!("P-256 DV issuance (debug build): {per:?} per certificate");
    assert!(per < std::time::Duration::from_millis(5), "{per:?}");
}

// ------------------------------------------------------------------ CSR policy

fn openssl_csr(dir: &Path, genpkey: &[&str], subj: &str) -> Vec<u8> {
    let mut args = vec!["genpkey"];
    args.extend_from_slice(genpkey);
    args.extend_from_slice(&["-out", "k.pem"]);
    let (ok, out) = openssl(dir, &args);
    assert!(ok, "{out}");
    let (ok, out) = openssl(
        dir,
        &[
            "req", "-new", "-key", "k.pem", "-subj", subj, "-outform", "DER", "-out", "r.der",
        ],
    );
    assert!(ok, "{out}");
    std::fs::read(dir.join("r.der")).unwrap()
}

#[test]
fn csr_refusals() {
    let policy = KeyPolicy::default();
    let dir = tempdir("csr");
    let kind = |r: Result<ParsedCsr, CsrError>| r.map(|_| ()).unwrap_err();

    let csr = openssl_csr(
        &dir,
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
        "/CN=a.example.com",
    );
    let e = kind(parse_csr(&csr, &policy));
    assert_eq!(e.kind, CsrErrorKind::UnsupportedKey);
    assert_eq!(e.detail, "RSA key of 1024 bits is too small (minimum 2048)");

    let csr = openssl_csr(
        &dir,
        &[
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-pkeyopt",
            "rsa_keygen_pubexp:3",
        ],
        "/CN=a.example.com",
    );
    let e = kind(parse_csr(&csr, &policy));
    assert_eq!(e.kind, CsrErrorKind::UnsupportedKey);
    assert!(e.detail.contains("exponent 3"), "{e}");

    let csr = openssl_csr(
        &dir,
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
        "/CN=a.example.com",
    );
    let e = kind(parse_csr(&csr, &policy));
    assert_eq!(e.kind, CsrErrorKind::UnsupportedKey);
    assert!(e.detail.contains("P-521"), "{e}");

    // A good RSA 2048 CSR from openssl parses, PEM too.
    let csr = openssl_csr(
        &dir,
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "/C=NL/O=Org/CN=Rsa.Example.com",
    );
    let p = parse_csr(&csr, &policy).unwrap();
    assert_eq!((p.key_alg.as_str(), p.key_size), ("RSA", 2048));
    assert_eq!(p.names, ["rsa.example.com"]);
    assert_eq!(p.cn.as_deref(), Some("Rsa.Example.com"));
    assert_eq!(
        (p.country.as_deref(), p.organization.as_deref()),
        (Some("NL"), Some("Org"))
    );
    let pem = pem_encode("CERTIFICATE REQUEST", &csr);
    assert_eq!(parse_csr(pem.as_bytes(), &policy).unwrap().der, csr);

    // The same key on the weak-key list, or revoked for key compromise.
    let mut blocked = KeyPolicy::default();
    blocked.blocked_keys.insert(p.key_sha256);
    assert_eq!(
        kind(parse_csr(&csr, &blocked)).detail,
        "key is on the weak-key list"
    );
    let mut compromised = KeyPolicy::default();
    compromised.compromised_keys.insert(p.key_sha256);
    assert_eq!(
        kind(parse_csr(&csr, &compromised)).kind,
        CsrErrorKind::CompromisedKey
    );

    // Bad signature: flip the last signature byte.
    let mut bad = csr.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let e = kind(parse_csr(&bad, &policy));
    assert_eq!(
        (e.kind, e.detail.as_str()),
        (CsrErrorKind::BadSignature, "CSR signature is invalid")
    );
    // Tampered request info (the CN) with the original signature.
    let (ec, _) = ec_csr(&["a.example.com"], Some("a.example.com"));
    let mut tampered = ec.clone();
    let pos = tampered
        .windows(13)
        .position(|w| w == b"a.example.com")
        .unwrap();
    tampered[pos] = b'b';
    assert_eq!(
        kind(parse_csr(&tampered, &policy)).kind,
        CsrErrorKind::BadSignature
    );

    // Names.
    let (dup, _) = ec_csr(&["a.example.com", "A.EXAMPLE.COM."], None);
    let e = kind(parse_csr(&dup, &policy));
    assert_eq!(
        (e.kind, e.detail.as_str()),
        (CsrErrorKind::DuplicateName, "duplicate name a.example.com")
    );
    let (ip, _) = ec_csr(&["a.example.com"], Some("localhost"));
    let e = kind(parse_csr(&ip, &policy));
    assert_eq!(e.kind, CsrErrorKind::BadName);
    assert!(e.detail.starts_with("name localhost: "), "{e}");
    let (cn_only, _) = ec_csr(&[], Some("Only.Example.com"));
    assert_eq!(
        parse_csr(&cn_only, &policy).unwrap().names,
        ["only.example.com"]
    );
    let (none, _) = ec_csr(&[], None);
    assert_eq!(kind(parse_csr(&none, &policy)).kind, CsrErrorKind::BadName);
    assert_eq!(
        kind(parse_csr(b"garbage", &policy)).kind,
        CsrErrorKind::Malformed
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn csr_name_order_and_matching() {
    let (csr, _) = ec_csr(&["b.example.com", "*.example.com"], Some("c.example.com"));
    let p = parse_csr(&csr, &KeyPolicy::default()).unwrap();
    assert_eq!(p.names, ["b.example.com", "*.example.com", "c.example.com"]);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(
        check_names(
            &p.names,
            &s(&["c.example.com", "*.example.com", "b.example.com"])
        )
        .is_ok()
    );
    let e = check_names(&p.names, &s(&["b.example.com", "d.example.com"])).unwrap_err();
    assert_eq!(e.kind, CsrErrorKind::NameMismatch);
    assert_eq!(
        e.detail,
        "CSR names do not match the order: missing d.example.com; not authorised *.example.com, c.example.com"
    );
    // An IP SAN is reported separately, not as a name.
    let (ipcsr, _) = ec_csr(&["127.0.0.1", "a.example.com"], None);
    let p = parse_csr(&ipcsr, &KeyPolicy::default()).unwrap();
    assert_eq!(p.names, ["a.example.com"]);
    assert_eq!(
        p.ip_addresses,
        ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[test]
fn p384_csr_accepted() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["p384.example.com".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).unwrap();
    let p = parse_csr(csr.der(), &KeyPolicy::default()).unwrap();
    assert_eq!((p.key_alg.as_str(), p.key_size), ("ECDSA", 384));
    let cert = fixture()
        .ca
        .issue(
            &dv_request(&["p384.example.com"], p.spki_der),
            random_serial(),
        )
        .unwrap();
    verify_with_openssl(&fixture().ca, &cert, "dv");
}

#[test]
fn ec_point_off_curve_is_refused() {
    let (csr, _) = ec_csr(&["a.example.com"], None);
    let p = parse_csr(&csr, &KeyPolicy::default()).unwrap();
    // Flip a bit of the point's y coordinate inside the CSR; the point check runs before the signature.
    let pos = csr
        .windows(p.spki_der.len())
        .position(|w| w == p.spki_der.as_slice())
        .unwrap();
    let mut bad = csr.clone();
    let y_last = pos + p.spki_der.len() - 1;
    bad[y_last] ^= 1;
    let e = parse_csr(&bad, &KeyPolicy::default()).unwrap_err();
    assert_eq!(e.kind, CsrErrorKind::WeakKey);
    assert!(e.detail.contains("not on the curve"), "{e}");
}

// ------------------------------------------------------------------ CRL and OCSP

#[test]
fn crl_with_reasons() {
    let f = fixture();
    let t = now();
    let revoked = vec![
        RevokedEntry {
            serial: vec![0x11; 16],
            revoked_at: t - 100,
            reason: RevocationReason::KeyCompromise,
        },
        RevokedEntry {
            serial: vec![0x22; 16],
            revoked_at: t - 50,
            reason: RevocationReason::Unspecified,
        },
        RevokedEntry {
            serial: vec![0x33; 16],
            revoked_at: t - 10,
            reason: RevocationReason::CessationOfOperation,
        },
    ];
    let der = f.ca.crl("dv", 42, &revoked, t).unwrap();
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der).unwrap();
    assert_eq!(crl.version().map(|v| v.0), Some(1));
    assert_eq!(crl.crl_number().map(|n| n.to_string()), Some("42".into()));
    assert_eq!(crl.last_update().timestamp(), t);
    assert_eq!(
        crl.next_update().map(|n| n.timestamp()),
        Some(t + 7 * 86_400)
    );
    let entries: Vec<_> = crl.iter_revoked_certificates().collect();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].reason_code().map(|r| r.1.0), Some(1));
    assert!(entries[1].reason_code().is_none());
    assert_eq!(entries[2].reason_code().map(|r| r.1.0), Some(5));
    let (_, dv) = X509Certificate::from_der(&material("dv").cert_der).unwrap();
    assert!(crl.verify_signature(dv.public_key()).is_ok());

    let dir = tempdir("crl");
    std::fs::write(dir.join("dv.crl"), &der).unwrap();
    let (ok, out) = openssl(
        &dir,
        &["crl", "-inform", "DER", "-in", "dv.crl", "-text", "-noout"],
    );
    assert!(ok, "{out}");
    assert!(out.contains(&"11".repeat(16).to_uppercase()), "{out}");
    assert!(
        out.contains("Key Compromise") && out.contains("Cessation Of Operation"),
        "{out}"
    );
    assert!(
        out.contains("X509v3 CRL Number") && out.contains("X509v3 Authority Key Identifier"),
        "{out}"
    );

    // The root's CRL, signed by the root, and an empty CRL (no revokedCertificates field).
    let root_crl = f.ca.crl("root", 1, &[], t).unwrap();
    std::fs::write(dir.join("root.crl"), &root_crl).unwrap();
    std::fs::write(dir.join("root.pem"), f.ca.root_pem()).unwrap();
    let (ok, out) = openssl(
        &dir,
        &[
            "crl", "-inform", "DER", "-in", "root.crl", "-CAfile", "root.pem", "-noout", "-text",
        ],
    );
    assert!(ok && out.contains("No Revoked Certificates"), "{out}");

    // openssl verify with CRL checking sees a revoked leaf.
    let key = generate_key(KeyAlg::EcdsaP256).unwrap();
    let serial = random_serial();
    let cert =
        f.ca.issue(&dv_request(&["revoked.example.com"], key.spki_der), serial)
            .unwrap();
    let crl =
        f.ca.crl(
            "dv",
            43,
            &[RevokedEntry {
                serial: serial.to_vec(),
                revoked_at: t,
                reason: RevocationReason::Superseded,
            }],
            t,
        )
        .unwrap();
    let mut crls = pem_encode("X509 CRL", &crl);
    crls.push_str(&pem_encode("X509 CRL", &root_crl));
    std::fs::write(dir.join("crls.pem"), crls).unwrap();
    std::fs::write(dir.join("int.pem"), f.ca.chain_pem("dv").unwrap()).unwrap();
    std::fs::write(dir.join("leaf.pem"), &cert.pem).unwrap();
    let (ok, out) = openssl(
        &dir,
        &[
            "verify",
            "-crl_check_all",
            "-CRLfile",
            "crls.pem",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "int.pem",
            "leaf.pem",
        ],
    );
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ocsp_round_trip_with_openssl() {
    let f = fixture();
    let dir = tempdir("ocsp");
    let key = generate_key(KeyAlg::EcdsaP256).unwrap();
    let good =
        f.ca.issue(
            &dv_request(&["good.example.com"], key.spki_der.clone()),
            random_serial(),
        )
        .unwrap();
    let revoked =
        f.ca.issue(
            &dv_request(&["bad.example.com"], key.spki_der),
            random_serial(),
        )
        .unwrap();
    std::fs::write(dir.join("root.pem"), f.ca.root_pem()).unwrap();
    std::fs::write(dir.join("int.pem"), f.ca.chain_pem("dv").unwrap()).unwrap();
    std::fs::write(dir.join("good.pem"), &good.pem).unwrap();
    std::fs::write(dir.join("bad.pem"), &revoked.pem).unwrap();

    for (hash, flag) in [(HashAlg::Sha1, "-sha1"), (HashAlg::Sha256, "-sha256")] {
        let (ok, out) = openssl(
            &dir,
            &[
                "ocsp", flag, "-issuer", "int.pem", "-cert", "good.pem", "-cert", "bad.pem",
                "-reqout", "req.der",
            ],
        );
        assert!(ok, "{out}");
        let ids = parse_ocsp_request(&std::fs::read(dir.join("req.der")).unwrap()).unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0].hash_alg, hash);
        assert_eq!(hex_lower(&ids[0].serial), good.serial_hex);
        assert_eq!(f.ca.match_issuer(&ids[0]), Some("dv"));
        assert_eq!(
            ids[0],
            f.ca.cert_id("dv", hash, &hex_decode(&good.serial_hex).unwrap())
                .unwrap()
        );
        let t = now();
        let entries = vec![
            (ids[0].clone(), CertStatus::Good),
            (
                ids[1].clone(),
                CertStatus::Revoked {
                    at: t - 30,
                    reason: RevocationReason::KeyCompromise,
                },
            ),
        ];
        let m = material("dv");
        let resp =
            f.ca.ocsp_response(
                "dv",
                &(m.ocsp_cert_der.clone(), m.ocsp_key_pkcs8.clone()),
                &entries,
                t,
            )
            .unwrap();
        std::fs::write(dir.join("resp.der"), &resp).unwrap();
        let (ok, out) = openssl(
            &dir,
            &[
                "ocsp",
                flag,
                "-respin",
                "resp.der",
                "-reqin",
                "req.der",
                "-issuer",
                "int.pem",
                "-cert",
                "good.pem",
                "-cert",
                "bad.pem",
                "-CAfile",
                "root.pem",
                "-verify_other",
                "int.pem",
                "-resp_text",
            ],
        );
        assert!(ok, "{out}");
        assert!(out.contains("Response verify OK"), "{out}");
        assert!(out.contains("good.pem: good"), "{out}");
        assert!(
            out.contains("bad.pem: revoked") && out.contains("Reason: keyCompromise"),
            "{out}"
        );
        assert!(
            out.contains("Responder Id: ") && !out.contains("Responder Id: C ="),
            "byKey: {out}"
        );
    }

    // Unknown serial, and an error response.
    let unknown = f.ca.cert_id("dv", HashAlg::Sha1, &[0x42; 16]).unwrap();
    let m = material("dv");
    let resp =
        f.ca.ocsp_response(
            "dv",
            &(m.ocsp_cert_der.clone(), m.ocsp_key_pkcs8.clone()),
            &[(unknown, CertStatus::Unknown)],
            now(),
        )
        .unwrap();
    std::fs::write(dir.join("u.der"), &resp).unwrap();
    let (ok, out) = openssl(
        &dir,
        &["ocsp", "-respin", "u.der", "-resp_text", "-noverify"],
    );
    assert!(ok && out.contains("Cert Status: unknown"), "{out}");
    std::fs::write(
        dir.join("e.der"),
        ocsp_error_response(OcspErrorStatus::Unauthorized),
    )
    .unwrap();
    let (_, out) = openssl(
        &dir,
        &["ocsp", "-respin", "e.der", "-resp_text", "-noverify"],
    );
    assert!(out.contains("unauthorized"), "{out}");

    // A CertID of another issuer, or a responder of another issuer, is refused.
    let ov_id = f.ca.cert_id("ov", HashAlg::Sha1, &[1; 16]).unwrap();
    assert!(
        f.ca.ocsp_response(
            "dv",
            &(m.ocsp_cert_der.clone(), m.ocsp_key_pkcs8.clone()),
            &[(ov_id, CertStatus::Good)],
            now()
        )
        .is_err()
    );
    let ov = material("ov");
    let id = f.ca.cert_id("dv", HashAlg::Sha1, &[1; 16]).unwrap();
    assert!(
        f.ca.ocsp_response(
            "dv",
            &(ov.ocsp_cert_der.clone(), ov.ocsp_key_pkcs8.clone()),
            &[(id, CertStatus::Good)],
            now()
        )
        .is_err()
    );
    assert!(parse_ocsp_request(b"\x30\x00").is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------ output and import

#[test]
fn pkcs7_and_foreign_import() {
    let f = fixture();
    let key = generate_key(KeyAlg::EcdsaP256).unwrap();
    let cert =
        f.ca.issue(
            &dv_request(&["p7.example.com", "www.p7.example.com"], key.spki_der),
            random_serial(),
        )
        .unwrap();
    let p7 = pkcs7_der(&[cert.der.clone(), material("dv").cert_der.clone()]);
    let dir = tempdir("p7");
    std::fs::write(dir.join("b.p7b"), &p7).unwrap();
    let (ok, out) = openssl(
        &dir,
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            "b.p7b",
            "-print_certs",
            "-noout",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(out.matches("subject=").count(), 2, "{out}");
    let _ = std::fs::remove_dir_all(&dir);

    let fc = parse_foreign_certificate(&cert.chain_pem).unwrap();
    assert_eq!(fc.names, ["p7.example.com", "www.p7.example.com"]);
    assert_eq!(fc.serial_hex, cert.serial_hex);
    assert_eq!(fc.fingerprint_sha256_hex, cert.fingerprint_sha256_hex);
    assert_eq!(
        (fc.not_before, fc.not_after),
        (cert.not_before, cert.not_after)
    );
    assert_eq!(
        (fc.key_alg.as_str(), fc.key_size, fc.is_ca),
        ("ECDSA", 256, false)
    );
    assert_eq!(fc.key_sha256, cert.key_sha256);
    assert!(
        fc.issuer_dn.contains("CN=certhub DV TLS CA"),
        "{}",
        fc.issuer_dn
    );
    let root = parse_foreign_certificate(&f.ca.root_pem()).unwrap();
    assert!(root.is_ca);
    assert!(parse_foreign_certificate("not a pem").is_err());

    // A foreign certificate with only a CN.
    let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Legacy.Example.net");
    let c = params.self_signed(&k).unwrap();
    let fc = parse_foreign_certificate(&c.pem()).unwrap();
    assert_eq!(fc.names, ["legacy.example.net"]);
}

// ------------------------------------------------------------------ property

fn label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,6}"
}

fn name_set() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set((label(), prop::bool::ANY), 1..5).prop_map(|s| {
        s.into_iter()
            .map(|(l, wild)| {
                if wild {
                    format!("*.{l}.example.com")
                } else {
                    format!("{l}.example.com")
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Whatever the CSR says, an issued certificate's SAN set equals the authorised identifiers.
    #[test]
    fn san_set_equals_authorised(
        authorised in name_set(),
        csr_names in name_set(),
        use_cn in prop::option::of(0usize..4),
        upper in prop::bool::ANY,
        reuse_authorised in prop::bool::ANY,
    ) {
        let f = fixture();
        let requested: Vec<String> = if reuse_authorised { authorised.iter().rev().cloned().collect() } else { csr_names };
        let san: Vec<String> = requested.iter().map(|n| if upper { n.to_uppercase() } else { n.clone() }).collect();
        let san_refs: Vec<&str> = san.iter().map(String::as_str).collect();
        let cn = use_cn.and_then(|i| requested.get(i)).map(String::as_str);
        let (csr, _) = ec_csr(&san_refs, cn);
        let parsed = parse_csr(&csr, &KeyPolicy::default()).expect("valid CSR");
        let csr_set: HashSet<&String> = parsed.names.iter().collect();
        let req_set: HashSet<&String> = requested.iter().collect();
        prop_assert_eq!(&csr_set, &req_set);
        match check_names(&parsed.names, &authorised) {
            Ok(()) => {
                let req = IssueRequest { names: authorised.clone(), ..dv_request(&[], parsed.spki_der.clone()) };
                let cert = f.ca.issue(&req, random_serial()).expect("issues");
                let sans = with_cert(&cert.der, san_names);
                prop_assert_eq!(&sans, &authorised, "SAN order follows the authorised list");
                prop_assert_eq!(sans.iter().collect::<HashSet<_>>(), csr_set);
            }
            Err(e) => {
                prop_assert_eq!(e.kind, CsrErrorKind::NameMismatch);
                prop_assert_ne!(csr_set, authorised.iter().collect::<HashSet<_>>());
            }
        }
    }
}

/// Writes sample artefacts for external linters (pkilint) into `$CERTHUB_CA_DUMP`:
/// `CERTHUB_CA_DUMP=/tmp/x cargo test -p certhub-ca dump_samples -- --ignored`.
#[test]
#[ignore = "writes files for an external linter"]
fn dump_samples() {
    let Ok(dir) = std::env::var("CERTHUB_CA_DUMP") else {
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let f = fixture();
    let w = |name: &str, data: &[u8]| std::fs::write(dir.join(name), data).unwrap();
    for m in &f.materials {
        w(
            &format!("{}.pem", m.id),
            pem_encode("CERTIFICATE", &m.cert_der).as_bytes(),
        );
        w(
            &format!("{}-ocsp.pem", m.id),
            pem_encode("CERTIFICATE", &m.ocsp_cert_der).as_bytes(),
        );
    }
    let key = generate_key(KeyAlg::EcdsaP256).unwrap();
    let dv =
        f.ca.issue(
            &dv_request(&["example.com", "www.example.com"], key.spki_der.clone()),
            random_serial(),
        )
        .unwrap();
    w("leaf-dv.pem", dv.pem.as_bytes());
    let ov =
        f.ca.issue(
            &IssueRequest {
                profile: Profile::Ov(org()),
                ..dv_request(&["example.org"], key.spki_der)
            },
            random_serial(),
        )
        .unwrap();
    w("leaf-ov.pem", ov.pem.as_bytes());
    let t = now();
    let revoked = [RevokedEntry {
        serial: hex_decode(&dv.serial_hex).unwrap(),
        revoked_at: t - 10,
        reason: RevocationReason::KeyCompromise,
    }];
    w("dv.crl", &f.ca.crl("dv", 7, &revoked, t).unwrap());
    w("root.crl", &f.ca.crl("root", 1, &[], t).unwrap());
    let m = material("dv");
    let id =
        f.ca.cert_id("dv", HashAlg::Sha1, &hex_decode(&dv.serial_hex).unwrap())
            .unwrap();
    let r = (m.ocsp_cert_der.clone(), m.ocsp_key_pkcs8.clone());
    w(
        "ocsp-good.der",
        &f.ca
            .ocsp_response("dv", &r, &[(id.clone(), CertStatus::Good)], t)
            .unwrap(),
    );
    w(
        "ocsp-revoked.der",
        &f.ca
            .ocsp_response(
                "dv",
                &r,
                &[(
                    id,
                    CertStatus::Revoked {
                        at: t - 10,
                        reason: RevocationReason::KeyCompromise,
                    },
                )],
                t,
            )
            .unwrap(),
    );
}

#[test]
fn ca_is_shareable_and_config_has_defaults() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Ca>();
    let cfg: CaConfig =
        serde_json::from_str(r#"{"key_alg":"ecdsa-p384","pki_url":"http://pki.example.net"}"#)
            .unwrap();
    assert_eq!(cfg.key_alg, KeyAlg::EcdsaP384);
    assert_eq!(
        (cfg.organization.as_str(), cfg.country.as_str()),
        ("certhub", "NL")
    );
    assert!(serde_json::from_str::<CaConfig>(r#"{"bogus":1}"#).is_err());
    let bad = CaConfig {
        pki_url: "https://pki.example.net".into(),
        ..CaConfig::default()
    };
    assert!(matches!(
        init_hierarchy(&bad, now()),
        Err(CaError::Config(_))
    ));
}
