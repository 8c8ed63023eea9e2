//! RTR processes: one row per mutation, the customer's record of what happened.

use crate::read::{Arg, Cols};
use serde_json::Value;

use crate::list::{Field, FieldType, Resource};
use crate::{Db, Result, Tx, from_json, to_json};

#[derive(Debug, Clone, Default)]
pub struct Process {
    pub id: i64,
    pub customer_id: i64,
    pub customer: String,
    pub user: String,
    pub process_type: String,
    pub action: String,
    pub identifier: String,
    pub status: String,
    pub status_detail: Option<String>,
    pub command: Value,
    pub info: Option<Value>,
    pub subject_id: Option<i64>,
    pub reservation: Option<Value>,
    pub transaction: Option<Value>,
    pub refund: Option<Value>,
    pub billables: Option<Value>,
    pub resume_types: Option<Value>,
    pub error: Option<Value>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    pub started_at: Option<i64>,
}

/// What a new process needs; the rest is filled in as it runs.
#[derive(Debug, Clone)]
pub struct NewProcess<'a> {
    pub customer_id: i64,
    pub customer: &'a str,
    pub user: &'a str,
    pub process_type: &'a str,
    pub action: &'a str,
    pub identifier: &'a str,
    pub status: &'a str,
    pub command: &'a Value,
    pub subject_id: Option<i64>,
}

pub static PROCESSES: Resource = Resource {
    from: "processes",
    scope: "customer_id",
    base_where: "",
    fields: &[
        Field {
            name: "id",
            column: "id",
            ty: FieldType::Int,
        },
        Field {
            name: "user",
            column: "user_name",
            ty: FieldType::Text,
        },
        Field {
            name: "status",
            column: "status",
            ty: FieldType::Text,
        },
        Field {
            name: "statusDetail",
            column: "status_detail",
            ty: FieldType::Text,
        },
        Field {
            name: "detailStatus",
            column: "status_detail",
            ty: FieldType::Text,
        },
        Field {
            name: "createdDate",
            column: "created_at",
            ty: FieldType::Time,
        },
        Field {
            name: "updatedDate",
            column: "updated_at",
            ty: FieldType::Time,
        },
        Field {
            name: "startedDate",
            column: "started_at",
            ty: FieldType::Time,
        },
        Field {
            name: "type",
            column: "type",
            ty: FieldType::Text,
        },
        Field {
            name: "identifier",
            column: "identifier",
            ty: FieldType::Text,
        },
        Field {
            name: "action",
            column: "action",
            ty: FieldType::Text,
        },
        Field {
            name: "billableAction",
            column: "billables",
            ty: FieldType::JsonArray,
        },
    ],
    q_columns: &["identifier", "type", "action", "status"],
    select: "*",
    default_order: "id DESC",
    counted: None,
};

fn opt_json(r: &impl Cols, col: &str) -> Result<Option<Value>> {
    let s: Option<String> = r.col(col)?;
    s.as_deref().map(from_json).transpose()
}

pub fn process_from_row(r: &impl Cols) -> Result<Process> {
    Ok(Process {
        id: r.col("id")?,
        customer_id: r.col("customer_id")?,
        customer: r.col("customer")?,
        user: r.col("user_name")?,
        process_type: r.col("type")?,
        action: r.col("action")?,
        identifier: r.col("identifier")?,
        status: r.col("status")?,
        status_detail: r.col("status_detail")?,
        command: from_json(&r.col::<String>("command")?)?,
        info: opt_json(r, "info")?,
        subject_id: r.col("subject_id")?,
        reservation: opt_json(r, "reservation")?,
        transaction: opt_json(r, "txn")?,
        refund: opt_json(r, "refund")?,
        billables: opt_json(r, "billables")?,
        resume_types: opt_json(r, "resume_types")?,
        error: opt_json(r, "error")?,
        created_at: r.col("created_at")?,
        updated_at: r.col("updated_at")?,
        started_at: r.col("started_at")?,
    })
}

impl Db {
    pub async fn insert_process(&self, tx: &mut Tx, p: &NewProcess<'_>, now: i64) -> Result<i64> {
        tx.scalar_one("INSERT INTO processes (customer_id, customer, user_name, type, action, identifier, status, command, subject_id, \
             created_at, updated_at, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            &[
                Arg::from(p.customer_id),
                Arg::from(p.customer.to_string()),
                Arg::from(p.user.to_string()),
                Arg::from(p.process_type.to_string()),
                Arg::from(p.action.to_string()),
                Arg::from(p.identifier.to_string()),
                Arg::from(p.status.to_string()),
                Arg::from(to_json(p.command)),
                Arg::from(p.subject_id),
                Arg::from(now),
                Arg::from(now),
                Arg::from(now),
            ])
        .await
    }

    /// Updates the mutable parts of a process. `None` leaves a column alone.
    pub async fn update_process(
        &self,
        tx: &mut Tx,
        id: i64,
        upd: &ProcessUpdate,
        now: i64,
    ) -> Result<()> {
        tx.exec("UPDATE processes SET status = COALESCE(?, status), status_detail = COALESCE(?, status_detail), \
             info = COALESCE(?, info), subject_id = COALESCE(?, subject_id), reservation = COALESCE(?, reservation), \
             txn = COALESCE(?, txn), refund = COALESCE(?, refund), billables = COALESCE(?, billables), \
             resume_types = COALESCE(?, resume_types), error = COALESCE(?, error), identifier = COALESCE(?, identifier), \
             updated_at = ? WHERE id = ?",
            &[
                Arg::from(upd.status.clone()),
                Arg::from(upd.status_detail.clone()),
                Arg::from(upd.info.as_ref().map(to_json)),
                Arg::from(upd.subject_id),
                Arg::from(upd.reservation.as_ref().map(to_json)),
                Arg::from(upd.transaction.as_ref().map(to_json)),
                Arg::from(upd.refund.as_ref().map(to_json)),
                Arg::from(upd.billables.as_ref().map(to_json)),
                Arg::from(upd.resume_types.as_ref().map(to_json)),
                Arg::from(upd.error.as_ref().map(to_json)),
                Arg::from(upd.identifier.clone()),
                Arg::from(now),
                Arg::from(id),
            ])
        .await?;
        Ok(())
    }

    /// A customer's process (or any, with `customer_id = None`, for the operator).
    pub async fn process(&self, customer_id: Option<i64>, id: i64) -> Result<Option<Process>> {
        let row = self
            .read_optional("SELECT * FROM processes WHERE id = ?", &[Arg::from(id)])
            .await?;
        let p = row.as_ref().map(process_from_row).transpose()?;
        Ok(p.filter(|p| customer_id.is_none_or(|c| c == p.customer_id)))
    }

    pub async fn process_tx(&self, tx: &mut Tx, id: i64) -> Result<Option<Process>> {
        let row = tx
            .fetch_optional("SELECT * FROM processes WHERE id = ?", &[Arg::from(id)])
            .await?;
        row.as_ref().map(process_from_row).transpose()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ProcessUpdate {
    pub status: Option<String>,
    pub status_detail: Option<String>,
    pub info: Option<Value>,
    pub subject_id: Option<i64>,
    pub reservation: Option<Value>,
    pub transaction: Option<Value>,
    pub refund: Option<Value>,
    pub billables: Option<Value>,
    pub resume_types: Option<Value>,
    pub error: Option<Value>,
    pub identifier: Option<String>,
}
