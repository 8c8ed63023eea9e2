//! Customer notifications (RTR `SSLCertificateNotification`), written in the
//! transaction of the transition they report.

use certhub_store::Tx;
use certhub_store::notifications::Notification;
use serde_json::Value;

use crate::{App, AppError};

/// What a transition tells the customer.
#[derive(Debug, Clone, Default)]
pub struct Notice {
    pub customer_id: i64,
    pub event_type: &'static str,
    pub message: String,
    pub process_id: Option<i64>,
    pub process_type: Option<String>,
    pub process_identifier: Option<String>,
    pub certificate_id: Option<i64>,
    pub product: Option<String>,
    pub expiry_date: Option<i64>,
    pub payload: Option<Value>,
    /// Makes a retried transition notify once.
    pub dedupe_key: Option<String>,
}

impl App {
    pub async fn notify(&self, tx: &mut Tx, n: Notice) -> Result<(), AppError> {
        let row = Notification {
            customer_id: n.customer_id,
            fire_date: self.now(),
            event_type: n.event_type.to_string(),
            notification_type: "SSLCertificateNotification".to_string(),
            message: n.message,
            payload: n.payload,
            process_id: n.process_id,
            process_type: n.process_type,
            process_identifier: n.process_identifier,
            certificate_id: n.certificate_id,
            product: n.product,
            expiry_date: n.expiry_date,
            ..Default::default()
        };
        self.db().notify(tx, &row, n.dedupe_key.as_deref()).await?;
        Ok(())
    }
}
