//! A TLS server that answers tls-alpn-01 (RFC 8737): for each SNI name it
//! presents a self-signed certificate built by rcgen; flavours produce the
//! broken certificates validator tests need.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::Tasks;

pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Which certificate to present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertFlavor {
    /// RFC 8737-conformant.
    Valid,
    /// acmeIdentifier holds the digest of another key authorization.
    WrongDigest,
    /// acmeIdentifier present but not critical.
    NonCritical,
    /// No acmeIdentifier extension.
    NoAcmeExtension,
    /// An additional dNSName SAN.
    ExtraSan(String),
    /// The SAN is this name instead of the SNI name.
    OtherSan(String),
}

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds the challenge certificate and key for `domain`.
pub fn challenge_cert(
    domain: &str,
    key_authorization: &str,
    flavor: &CertFlavor,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let sans = match flavor {
        CertFlavor::ExtraSan(extra) => vec![domain.to_owned(), extra.clone()],
        CertFlavor::OtherSan(other) => vec![other.clone()],
        _ => vec![domain.to_owned()],
    };
    let mut params = CertificateParams::new(sans)?;
    let digest = match flavor {
        CertFlavor::WrongDigest => sha256(format!("{key_authorization}x").as_bytes()),
        _ => sha256(key_authorization.as_bytes()),
    };
    if *flavor != CertFlavor::NoAcmeExtension {
        let mut ext = CustomExtension::new_acme_identifier(&digest);
        ext.set_criticality(*flavor != CertFlavor::NonCritical);
        params.custom_extensions.push(ext);
    }
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((cert.der().clone(), key_der))
}

#[derive(Debug, Default)]
struct State {
    certs: HashMap<String, Arc<CertifiedKey>>,
}

#[derive(Debug)]
struct SniResolver(Arc<Mutex<State>>);

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        lock(&self.0).certs.get(&name).cloned()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The test tls-alpn-01 server. Cloning shares state; it stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct TlsAlpnServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    alpn: Arc<Mutex<Vec<Vec<u8>>>>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for TlsAlpnServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAlpnServer")
            .field("addr", &self.addr)
            .finish()
    }
}

fn server_config(state: &Arc<Mutex<State>>, alpn: Vec<Vec<u8>>) -> Result<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver(Arc::clone(state))));
    config.alpn_protocols = alpn;
    Ok(config)
}

impl TlsAlpnServer {
    /// Starts on 127.0.0.1 with a random port; panics if it cannot bind.
    pub async fn start() -> TlsAlpnServer {
        Self::start_on("127.0.0.1:0".parse().expect("literal address"))
            .await
            .expect("start test tls-alpn-01 server")
    }

    pub async fn start_on(addr: SocketAddr) -> Result<TlsAlpnServer> {
        let listener = TcpListener::bind(addr)
            .await
            .context("binding test TLS server")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let alpn = Arc::new(Mutex::new(vec![ACME_TLS_ALPN.to_vec()]));
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state), Arc::clone(&alpn)));
        Ok(TlsAlpnServer {
            addr,
            state,
            alpn,
            _tasks: Arc::new(Tasks(vec![task])),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Presents a valid challenge certificate for `domain`.
    pub fn set_challenge(&self, domain: &str, key_authorization: &str) {
        self.set_challenge_flavor(domain, key_authorization, CertFlavor::Valid);
    }

    /// Presents a (possibly deliberately broken) challenge certificate.
    /// Panics if rcgen fails (test helper).
    pub fn set_challenge_flavor(&self, domain: &str, key_authorization: &str, flavor: CertFlavor) {
        let (cert, key) =
            challenge_cert(domain, key_authorization, &flavor).expect("build challenge cert");
        let signing = provider()
            .key_provider
            .load_private_key(key)
            .expect("load challenge key");
        let certified = Arc::new(CertifiedKey::new(vec![cert], signing));
        lock(&self.state)
            .certs
            .insert(domain.to_ascii_lowercase(), certified);
    }

    pub fn remove(&self, domain: &str) {
        lock(&self.state).certs.remove(&domain.to_ascii_lowercase());
    }

    /// ALPN protocols the server accepts (default `["acme-tls/1"]`); empty
    /// means the server negotiates none.
    pub fn set_alpn(&self, protocols: Vec<Vec<u8>>) {
        *self.alpn.lock().unwrap_or_else(|p| p.into_inner()) = protocols;
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<Mutex<State>>,
    alpn: Arc<Mutex<Vec<Vec<u8>>>>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let protocols = alpn.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let config = match server_config(&state, protocols) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("test TLS server config: {e}");
                continue;
            }
        };
        let acceptor = TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            // RFC 8737: the handshake is the whole exchange; close after it.
            if let Ok(mut tls) = acceptor.accept(tcp).await {
                let _ = tls.shutdown().await;
            }
        });
    }
}
