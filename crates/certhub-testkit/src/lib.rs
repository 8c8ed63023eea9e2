//! Test servers for certhub: a mutable DNS server ([`TestDns`]), an
//! http-01/FILE server ([`Http01Server`]), a tls-alpn-01 server
//! ([`TlsAlpnServer`]) and a pebble-challtestsrv-compatible management API
//! ([`mgmt_router`]). Everything binds to 127.0.0.1.

mod dns;
mod http01;
mod mgmt;
mod tls_alpn;

pub use dns::TestDns;
pub use http01::{Http01Server, HttpReply};
pub use mgmt::mgmt_router;
pub use tls_alpn::{ACME_TLS_ALPN, CertFlavor, TlsAlpnServer, challenge_cert};

/// Background tasks of a server, aborted when the last handle is dropped.
pub(crate) struct Tasks(pub(crate) Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
