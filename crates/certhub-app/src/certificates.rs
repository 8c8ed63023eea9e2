//! Certificate lifecycle use cases (design.md "Certificate lifecycle rules"):
//! request, renew and reissue with DCV (DNS, FILE, EMAIL) or DigiCert AuthKey,
//! validation reuse, revoke, import, download, and the engine jobs that
//! re-check DCV, time requests out and expire certificates.
//!
//! A request, renew or reissue is a process (type `certificate`) with a row in
//! `cert_requests` holding what will be issued and one `dcv_entries` row per
//! name. The price is reserved when the process starts and captured in the
//! transaction that issues the certificate; cancel, failure and the 30-day
//! timeout release it. The process row's `info` always holds the current
//! CertificateProcessInfo (RTR §3.3).

mod manage;
mod order;
pub mod rules;
mod validate;

use certhub_store::billing::Billable;
use certhub_store::dcv::{CertRequestRow, DcvEntry};
use certhub_store::jobs::Job;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{App, AppError};

pub use manage::{Download, ImportInput};
pub use order::{DcvChoice, OrderInput, OrderOutcome};
pub use validate::ApprovalView;

/// Job kinds of this feature (subject = process id or certificate id).
pub const JOB_DCV: &str = "cert.dcv";
pub const JOB_TIMEOUT: &str = "cert.timeout";
pub const JOB_EXPIRING: &str = "cert.expiring";
pub const JOB_EXPIRE: &str = "cert.expire";

/// Organisation fields of an OV request (body, else CSR subject).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OrgFields {
    pub organization: Option<String>,
    pub department: Option<String>,
    pub country: Option<String>,
    pub state: Option<String>,
    pub city: Option<String>,
    pub address: Option<String>,
    pub postal_code: Option<String>,
    pub coc: Option<String>,
}

/// What a pending request will issue (`cert_requests.details`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub customer: String,
    pub names: Vec<String>,
    pub csr_pem: String,
    pub product: String,
    pub validation_type: String,
    pub certificate_type: String,
    pub period: Option<i64>,
    pub currency: String,
    pub billables: Vec<Billable>,
    pub reserved: i64,
    /// The certificate renewed or reissued.
    pub old_certificate_id: Option<i64>,
    /// End of the paid coverage; notAfter never exceeds it.
    pub subscription_end_date: Option<i64>,
    pub org: OrgFields,
    pub ov: bool,
    /// The organisation validation an OV request waits for.
    pub org_validation_id: Option<i64>,
    /// WAITING | ATTENTION | VALIDATED (OV only).
    pub org_status: Option<String>,
}

impl Pending {
    pub(crate) fn from_row(r: &CertRequestRow) -> Result<Pending, AppError> {
        serde_json::from_value(r.details.clone())
            .map_err(|e| AppError::Internal(format!("corrupt request: {e}")))
    }

    pub(crate) fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The RTR DCV `type` of an entry (AuthKey is published in DNS or a file; DNS is shown).
fn wire_type(method: &str) -> &'static str {
    match method {
        "FILE" => "FILE",
        "EMAIL" => "EMAIL",
        _ => "DNS",
    }
}

/// One DCV entry as RTR shows it (§3.3). Optional enums are omitted, never null.
pub(crate) fn dcv_json(e: &DcvEntry) -> Value {
    let mut v = json!({"commonName": e.name, "type": wire_type(&e.method), "status": e.status});
    match e.method.as_str() {
        "DNS" => {
            v["dnsRecord"] = json!(format!(
                "_dnsauth.{}",
                certhub_domain::names::base_name(&e.name)
            ));
            v["dnsType"] = json!("TXT");
            v["dnsContents"] = json!(e.token);
        }
        "FILE" => {
            v["fileLocation"] = json!(format!(
                "http://{}/.well-known/pki-validation/{}.txt",
                e.name,
                e.file_name.as_deref().unwrap_or("")
            ));
            v["fileContents"] = json!(e.token);
        }
        "EMAIL" => {
            if let Some(m) = &e.email {
                v["email"] = json!(m);
            }
        }
        _ => {}
    }
    if let Some(c) = &e.caa_status {
        v["caaRecordStatus"] = json!(c);
    }
    v
}

/// CertificateProcessInfo (§3.3) of a request.
pub(crate) fn info_json(req: &CertRequestRow, pending: &Pending, entries: &[DcvEntry]) -> Value {
    let attention = req.attention
        || entries.iter().any(|e| e.status == "ATTENTION")
        || pending.org_status.as_deref() == Some("ATTENTION");
    let mut validations = json!({"dcv": entries.iter().map(dcv_json).collect::<Vec<_>>()});
    if let Some(o) = &pending.org_status {
        validations["organization"] = json!(o);
    }
    let mut v = json!({
        "commonName": pending.names.first().cloned().unwrap_or_default(),
        "requiresAttention": attention && req.status == "PENDING",
        "validations": validations,
    });
    if let Some(id) = req.certificate_id {
        v["certificateId"] = json!(id);
    }
    v
}

/// PEM of a DER certificate (the REST layer shows it on `get`).
pub fn certificate_pem(der: &[u8]) -> String {
    certhub_ca::pem_encode("CERTIFICATE", der)
}

/// Runs one due lifecycle job of kind `cert.*`.
pub async fn run_job(app: &App, job: &Job) -> Result<Option<String>, AppError> {
    match job.kind.as_str() {
        JOB_DCV => validate::run_dcv_job(app, job).await,
        JOB_TIMEOUT => validate::run_timeout_job(app, job).await,
        JOB_EXPIRING => manage::run_expiring_job(app, job).await,
        JOB_EXPIRE => manage::run_expire_job(app, job).await,
        other => Err(AppError::Internal(format!("unknown job kind {other}"))),
    }
}
