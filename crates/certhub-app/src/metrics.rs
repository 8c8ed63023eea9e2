//! Process-wide counters, rendered in Prometheus text format at `/metrics`.
//! Plain atomics: no registry to wire, nothing to lock on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};

pub struct Counter {
    name: &'static str,
    help: &'static str,
    value: AtomicU64,
}

impl Counter {
    const fn new(name: &'static str, help: &'static str) -> Counter {
        Counter {
            name,
            help,
            value: AtomicU64::new(0),
        }
    }

    pub fn inc(&self) {
        self.value.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

pub static CERTIFICATES_ISSUED: Counter = Counter::new(
    "certhub_certificates_issued_total",
    "Certificates signed by the embedded CA.",
);
pub static HTTP_REQUESTS: Counter =
    Counter::new("certhub_http_requests_total", "HTTP requests served.");
pub static HTTP_ERRORS: Counter = Counter::new(
    "certhub_http_responses_error_total",
    "HTTP responses with status 400 or above.",
);
pub static HTTP_SHED: Counter = Counter::new(
    "certhub_http_shed_total",
    "Requests answered 503 because max_in_flight were already being served.",
);
pub static ACME_ORDERS: Counter = Counter::new("certhub_acme_orders_total", "ACME orders created.");
pub static LIFECYCLE_CHANGES: Counter = Counter::new(
    "certhub_lifecycle_changes_total",
    "State changes made by the lifecycle engine.",
);

static ALL: &[&Counter] = &[
    &CERTIFICATES_ISSUED,
    &HTTP_REQUESTS,
    &HTTP_ERRORS,
    &HTTP_SHED,
    &ACME_ORDERS,
    &LIFECYCLE_CHANGES,
];

/// The Prometheus exposition text.
pub fn render() -> String {
    let mut out = String::new();
    for c in ALL {
        out.push_str(&format!(
            "# HELP {} {}\n# TYPE {} counter\n{} {}\n",
            c.name,
            c.help,
            c.name,
            c.name,
            c.get()
        ));
    }
    out
}
