//! Customer notifications (`/v2/customers/{c}/notifications`).

use crate::read::{Arg, Cols};
use serde_json::Value;

use crate::list::{Field, FieldType, Resource};
use crate::{Db, Result, Tx, from_json, to_json};

#[derive(Debug, Clone, Default)]
pub struct Notification {
    pub id: i64,
    pub customer_id: i64,
    pub fire_date: i64,
    pub event_type: String,
    pub notification_type: String,
    pub message: String,
    pub payload: Option<Value>,
    pub process_id: Option<i64>,
    pub process_type: Option<String>,
    pub process_identifier: Option<String>,
    pub certificate_id: Option<i64>,
    pub product: Option<String>,
    pub expiry_date: Option<i64>,
    pub read_date: Option<i64>,
    pub acknowledge_date: Option<i64>,
}

pub static NOTIFICATIONS: Resource = Resource {
    from: "notifications",
    scope: "customer_id",
    base_where: "",
    fields: &[
        Field {
            name: "id",
            column: "id",
            ty: FieldType::Int,
        },
        Field {
            name: "fireDate",
            column: "fire_date",
            ty: FieldType::Time,
        },
        Field {
            name: "readDate",
            column: "read_date",
            ty: FieldType::Time,
        },
        Field {
            name: "acknowledgeDate",
            column: "acknowledge_date",
            ty: FieldType::Time,
        },
        Field {
            name: "eventType",
            column: "event_type",
            ty: FieldType::Text,
        },
        Field {
            name: "notificationType",
            column: "notification_type",
            ty: FieldType::Text,
        },
        Field {
            name: "process",
            column: "process_id",
            ty: FieldType::Int,
        },
        Field {
            name: "certificateId",
            column: "certificate_id",
            ty: FieldType::Int,
        },
    ],
    q_columns: &["message", "event_type"],
    select: "*",
    default_order: "id DESC",
    counted: None,
};

pub fn notification_from_row(r: &impl Cols) -> Result<Notification> {
    let payload: Option<String> = r.col("payload")?;
    Ok(Notification {
        id: r.col("id")?,
        customer_id: r.col("customer_id")?,
        fire_date: r.col("fire_date")?,
        event_type: r.col("event_type")?,
        notification_type: r.col("notification_type")?,
        message: r.col("message")?,
        payload: payload.as_deref().map(from_json).transpose()?,
        process_id: r.col("process_id")?,
        process_type: r.col("process_type")?,
        process_identifier: r.col("process_identifier")?,
        certificate_id: r.col("certificate_id")?,
        product: r.col("product")?,
        expiry_date: r.col("expiry_date")?,
        read_date: r.col("read_date")?,
        acknowledge_date: r.col("acknowledge_date")?,
    })
}

impl Db {
    /// Inserts a notification; a repeated `dedupe_key` is ignored, so a
    /// transition that is retried notifies once.
    pub async fn notify(
        &self,
        tx: &mut Tx,
        n: &Notification,
        dedupe_key: Option<&str>,
    ) -> Result<()> {
        tx.exec("INSERT INTO notifications (customer_id, fire_date, event_type, notification_type, message, payload, process_id, \
             process_type, process_identifier, certificate_id, product, expiry_date, dedupe_key) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
            &[
                Arg::from(n.customer_id),
                Arg::from(n.fire_date),
                Arg::from(n.event_type.clone()),
                Arg::from(n.notification_type.clone()),
                Arg::from(n.message.clone()),
                Arg::from(n.payload.as_ref().map(to_json)),
                Arg::from(n.process_id),
                Arg::from(n.process_type.clone()),
                Arg::from(n.process_identifier.clone()),
                Arg::from(n.certificate_id),
                Arg::from(n.product.clone()),
                Arg::from(n.expiry_date),
                Arg::from(dedupe_key.map(str::to_string)),
            ])
        .await?;
        Ok(())
    }

    pub async fn notification(&self, customer_id: i64, id: i64) -> Result<Option<Notification>> {
        let row = self
            .read_optional(
                "SELECT * FROM notifications WHERE id = ? AND customer_id = ?",
                &[Arg::from(id), Arg::from(customer_id)],
            )
            .await?;
        row.as_ref().map(notification_from_row).transpose()
    }

    /// The oldest unacknowledged notification (marked read) and the count.
    pub async fn poll_notification(
        &self,
        customer_id: i64,
        now: i64,
    ) -> Result<(i64, Option<Notification>)> {
        let count: i64 = sqlx::query_scalar(self.sql(
            "SELECT COUNT(*) FROM notifications WHERE customer_id = ? AND acknowledge_date IS NULL",
        ))
        .bind(customer_id)
        .fetch_one(self.pool())
        .await?;
        let row = sqlx::query(self.sql(
            "SELECT * FROM notifications WHERE customer_id = ? AND acknowledge_date IS NULL ORDER BY id LIMIT 1",
        ))
        .bind(customer_id)
        .fetch_optional(self.pool())
        .await?;
        let mut n = row.as_ref().map(notification_from_row).transpose()?;
        if let Some(n) = n.as_mut().filter(|n| n.read_date.is_none()) {
            self.write(
                "UPDATE notifications SET read_date = ? WHERE id = ?",
                &[Arg::from(now), Arg::from(n.id)],
            )
            .await?;
            n.read_date = Some(now);
        }
        Ok((count, n))
    }

    pub async fn ack_notification(&self, customer_id: i64, id: i64, now: i64) -> Result<bool> {
        let r = self
            .write(
                "UPDATE notifications SET acknowledge_date = COALESCE(acknowledge_date, ?), read_date = COALESCE(read_date, ?) \
                 WHERE id = ? AND customer_id = ?",
                &[Arg::from(now), Arg::from(now), Arg::from(id), Arg::from(customer_id)],
            )
            .await?;
        Ok(r.rows_affected() > 0)
    }
}
