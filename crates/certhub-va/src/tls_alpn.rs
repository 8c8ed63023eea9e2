//! tls-alpn-01 (RFC 8737): connect with ALPN `acme-tls/1` and SNI = the
//! name, accept whatever certificate is offered, then inspect it ourselves.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::dns::{Dns, canonical};
use crate::error::{Result, VaError};

pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// id-pe-acmeIdentifier (RFC 8737 §6.1).
pub const ACME_IDENTIFIER_OID: &str = "1.3.6.1.5.5.7.1.31";

/// The certificate is evaluated by hand after the handshake, so chain
/// validation is skipped. Handshake signatures are still checked against
/// the certificate's public key so the peer must hold its key; this is done
/// on the raw key because webpki would reject the (critical, unknown to it)
/// acmeIdentifier extension.
#[derive(Debug)]
struct AcceptAnyCert {
    provider: Arc<CryptoProvider>,
}

impl AcceptAnyCert {
    fn verify(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let bad = || rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature);
        let (_, parsed) = X509Certificate::from_der(cert.as_ref()).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        let public_key = &parsed.public_key().subject_public_key.data;
        let algs = self
            .provider
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .ok_or_else(bad)?;
        algs.iter()
            .find(|alg| {
                alg.verify_signature(public_key, message, dss.signature())
                    .is_ok()
            })
            .map(|_| HandshakeSignatureValid::assertion())
            .ok_or_else(bad)
    }
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

pub(crate) fn connector() -> Result<TlsConnector> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| VaError::tls(format!("cannot configure TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert { provider }))
        .with_no_client_auth();
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Validates tls-alpn-01 for `domain` on `port`.
pub(crate) async fn validate(
    dns: &Dns,
    connector: &TlsConnector,
    domain: &str,
    port: u16,
    key_authorization: &str,
    timeout: Duration,
) -> Result<()> {
    let name = canonical(domain);
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| VaError::rejected(format!("{name} is not a valid TLS server name")))?;
    let ips = dns.allowed_ips(&name).await?;
    let mut last_err = None;
    for ip in ips {
        let attempt = handshake(connector, ip, port, server_name.clone(), &name);
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(cert)) => return check_certificate(&cert, &name, key_authorization),
            Ok(Err(e)) => last_err = Some(e),
            Err(_) => {
                last_err = Some(VaError::connection(format!(
                    "timeout during tls-alpn-01 connection to {name} ({ip}:{port})"
                )));
            }
        }
    }
    Err(last_err
        .unwrap_or_else(|| VaError::connection(format!("no address to connect to for {name}"))))
}

/// Connects and handshakes; returns the leaf certificate once `acme-tls/1`
/// was negotiated.
async fn handshake(
    connector: &TlsConnector,
    ip: IpAddr,
    port: u16,
    server_name: ServerName<'static>,
    name: &str,
) -> Result<CertificateDer<'static>> {
    let addr = SocketAddr::new(ip, port);
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| VaError::connection(format!("connecting to {name} ({addr}): {e}")))?;
    let tls = connector
        .connect(server_name, tcp)
        .await
        .map_err(|e| VaError::tls(format!("TLS handshake with {name} ({addr}) failed: {e}")))?;
    let (_, conn) = tls.get_ref();
    if conn.alpn_protocol() != Some(ACME_TLS_ALPN) {
        return Err(VaError::tls(format!(
            "{name} ({addr}) did not negotiate the acme-tls/1 protocol"
        )));
    }
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned())
        .ok_or_else(|| VaError::tls(format!("{name} ({addr}) sent no certificate")))
}

/// RFC 8737 §3: exactly one SAN, the dNSName being validated, and a
/// critical acmeIdentifier extension holding SHA-256(key authorization).
pub(crate) fn check_certificate(der: &[u8], name: &str, key_authorization: &str) -> Result<()> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| {
        VaError::incorrect(format!("certificate from {name} cannot be parsed: {e}"))
    })?;
    check_san(&cert, name)?;
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == ACME_IDENTIFIER_OID)
        .ok_or_else(|| {
            VaError::incorrect(format!(
                "certificate from {name} has no acmeIdentifier extension"
            ))
        })?;
    if !ext.critical {
        return Err(VaError::incorrect(format!(
            "acmeIdentifier extension in the certificate from {name} is not critical"
        )));
    }
    let digest = sha256(key_authorization.as_bytes());
    // DER OCTET STRING of 32 bytes: tag 0x04, length 0x20.
    let got = match ext.value {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
        _ => {
            return Err(VaError::incorrect(format!(
                "acmeIdentifier extension from {name} is not a 32-byte OCTET STRING"
            )));
        }
    };
    if got != digest {
        return Err(VaError::unauthorized(format!(
            "incorrect acmeIdentifier in the certificate from {name}: expected {}, got {}",
            hex(&digest),
            hex(got)
        )));
    }
    Ok(())
}

fn check_san(cert: &X509Certificate<'_>, name: &str) -> Result<()> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| VaError::incorrect(format!("bad subjectAltName from {name}: {e}")))?
        .ok_or_else(|| {
            VaError::incorrect(format!("certificate from {name} has no subjectAltName"))
        })?;
    let names = &san.value.general_names;
    match names.as_slice() {
        [GeneralName::DNSName(dns)] if dns.trim_end_matches('.').eq_ignore_ascii_case(name) => {
            Ok(())
        }
        _ => Err(VaError::incorrect(format!(
            "certificate from {name} must have exactly one subjectAltName, dNSName {name}; got [{}]",
            names
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_certificate_is_incorrect() {
        let e = check_certificate(b"not a cert", "a.test", "x").unwrap_err();
        assert_eq!(e.kind, crate::VaErrorKind::IncorrectResponse);
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
