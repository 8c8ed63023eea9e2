//! The `csr` target: PEM or DER through `parse_csr` (signature, key policy,
//! names) and `check_names`, as finalize and the `/v2` certificate routes use them.

use std::collections::HashSet;

use certhub_ca::{
    CsrError, CsrErrorKind, KeyPolicy, ParsedCsr, check_names, parse_csr, pem_encode,
};

/// SHA-256 of a SubjectPublicKeyInfo the policy blocks; no real key has it,
/// it only makes the lookup path run with a non-empty list.
const BLOCKED: [u8; 32] = [0xb1; 32];

/// The policy of a default configuration, with a non-empty blocklist.
pub fn policy() -> KeyPolicy {
    let mut p = KeyPolicy::default();
    p.blocked_keys.insert(BLOCKED);
    p.compromised_keys.insert([0xc0; 32]);
    p
}

/// Parses `data` under [`policy`].
///
/// # Errors
/// Whatever `parse_csr` refuses.
pub fn accept(data: &[u8]) -> Result<ParsedCsr, CsrError> {
    parse_csr(data, &policy())
}

pub fn run(data: &[u8]) {
    match accept(data) {
        Ok(csr) => check_parsed(&csr),
        Err(e) => assert!(!e.detail.is_empty(), "{:?} without a detail", e.kind),
    }
}

/// Invariants of an accepted CSR; also used by the `acme_body` target.
pub(crate) fn check_parsed(csr: &ParsedCsr) {
    assert!(!csr.names.is_empty() || !csr.ip_addresses.is_empty());
    let unique: HashSet<&String> = csr.names.iter().collect();
    assert_eq!(unique.len(), csr.names.len(), "duplicate names");
    let unique_ips: HashSet<_> = csr.ip_addresses.iter().collect();
    assert_eq!(unique_ips.len(), csr.ip_addresses.len(), "duplicate IPs");
    for n in &csr.names {
        assert_eq!(crate::check_name(n).as_deref(), Some(n.as_str()));
    }
    if let Some(cn) = &csr.cn
        && cn.parse::<std::net::IpAddr>().is_err()
    {
        let n = crate::check_name(cn).expect("an accepted CN is a valid name");
        assert!(csr.names.contains(&n), "the CN is not among the names");
    }

    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &csr.spki_der);
    assert_eq!(digest.as_ref(), csr.key_sha256);
    assert!(!policy().blocked_keys.contains(&csr.key_sha256));
    match (csr.key_alg.as_str(), csr.key_size) {
        ("RSA", bits) => assert!((2048..=4096).contains(&bits) && bits % 8 == 0),
        ("ECDSA", bits) => assert!(bits == 256 || bits == 384),
        other => panic!("unexpected key {other:?}"),
    }

    // What was accepted is accepted again, from its DER and from PEM: the
    // app stores `der` and re-reads it at issuance.
    let again = parse_csr(&csr.der, &policy()).expect("an accepted CSR re-parses");
    assert_eq!(&again, csr);
    let pem = pem_encode("CERTIFICATE REQUEST", &csr.der);
    assert_eq!(parse_csr(pem.as_bytes(), &policy()).as_ref(), Ok(csr));

    // Name matching is set equality, whatever the order.
    let mut reversed = csr.names.clone();
    reversed.reverse();
    assert!(check_names(&csr.names, &reversed).is_ok());
    let extra = "not-in-the-csr.example.com".to_string();
    if !csr.names.contains(&extra) {
        let more = [csr.names.clone(), vec![extra]].concat();
        let e = check_names(&csr.names, &more).expect_err("an extra name must not match");
        assert_eq!(e.kind, CsrErrorKind::NameMismatch);
    }
    if let Some((_, fewer)) = csr.names.split_first() {
        assert_eq!(
            check_names(&csr.names, fewer).map_err(|e| e.kind),
            Err(CsrErrorKind::NameMismatch)
        );
    }
}
