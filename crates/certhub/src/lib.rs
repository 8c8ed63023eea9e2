//! The `certhub` program: configuration, wiring, listeners and the command line.
//! Everything it runs lives in the library crates; this crate only assembles.

pub mod admin_acme;
pub mod admin_certs;
pub mod admin_ops;
pub mod admin_subscriptions;
pub mod bootstrap;
pub mod config;
pub mod pki_http;
pub mod serve;
pub mod testing;
