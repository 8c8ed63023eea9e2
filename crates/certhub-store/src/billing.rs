//! Money: credit accounts and the ledger. Every function here takes the
//! caller's transaction, so a charge is committed together with the state
//! change it pays for, or not at all.

use crate::read::{Arg, Cols};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::list::{Field, FieldType, Resource};
use crate::{Db, Result, StoreError, Tx, to_json};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CreditAccount {
    pub currency: String,
    pub balance: i64,
    pub reservation: i64,
    pub locked: i64,
}

/// One billed item, as RTR shows it on processes, quotes and transactions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Billable {
    pub product: String,
    pub action: String,
    pub quantity: i64,
    pub amount: i64,
    pub refundable: bool,
    pub total: i64,
    pub provider_name: String,
}

/// What a ledger row is linked to.
#[derive(Debug, Clone)]
pub struct LedgerRef<'a> {
    pub customer_id: i64,
    pub customer: &'a str,
    pub process_id: i64,
    pub process_type: &'a str,
    pub process_identifier: &'a str,
    pub process_action: &'a str,
    /// The subscription or certificate the money is for (refund look-ups).
    pub subject_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Transaction {
    pub id: i64,
    pub customer: String,
    pub date: i64,
    pub amount: i64,
    pub currency: String,
    pub process_id: Option<i64>,
    pub process_type: Option<String>,
    pub process_identifier: Option<String>,
    pub process_action: Option<String>,
    pub billables: Option<String>,
    pub kind: String,
}

pub static TRANSACTIONS: Resource = Resource {
    from: "transactions",
    scope: "customer_id",
    base_where: "",
    fields: &[
        Field {
            name: "id",
            column: "id",
            ty: FieldType::Int,
        },
        Field {
            name: "customer",
            column: "customer",
            ty: FieldType::Text,
        },
        Field {
            name: "date",
            column: "date",
            ty: FieldType::Time,
        },
        Field {
            name: "amount",
            column: "amount",
            ty: FieldType::Int,
        },
        Field {
            name: "currency",
            column: "currency",
            ty: FieldType::Text,
        },
        Field {
            name: "processId",
            column: "process_id",
            ty: FieldType::Int,
        },
        Field {
            name: "processType",
            column: "process_type",
            ty: FieldType::Text,
        },
        Field {
            name: "processIdentifier",
            column: "process_identifier",
            ty: FieldType::Text,
        },
        Field {
            name: "processAction",
            column: "process_action",
            ty: FieldType::Text,
        },
        Field {
            name: "billableAction",
            column: "billables",
            ty: FieldType::JsonArray,
        },
        Field {
            name: "billableProduct",
            column: "billables",
            ty: FieldType::JsonArray,
        },
    ],
    q_columns: &["process_identifier", "process_type", "process_action"],
    select: "id, customer, date, amount, currency, process_id, process_type, process_identifier, process_action, billables, kind",
    default_order: "id DESC",
    counted: None,
};

pub fn transaction_from_row(r: &impl Cols) -> Result<Transaction> {
    Ok(Transaction {
        id: r.col("id")?,
        customer: r.col("customer")?,
        date: r.col("date")?,
        amount: r.col("amount")?,
        currency: r.col("currency")?,
        process_id: r.col("process_id")?,
        process_type: r.col("process_type")?,
        process_identifier: r.col("process_identifier")?,
        process_action: r.col("process_action")?,
        billables: r.col("billables")?,
        kind: r.col("kind")?,
    })
}

impl Db {
    pub async fn credit_accounts(&self, customer_id: i64) -> Result<Vec<CreditAccount>> {
        let rows = sqlx::query(self.sql(
            "SELECT currency, balance, reservation, locked FROM credit_accounts WHERE customer_id = ? ORDER BY currency",
        ))
        .bind(customer_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CreditAccount {
                    currency: r.try_get("currency")?,
                    balance: r.try_get("balance")?,
                    reservation: r.try_get("reservation")?,
                    locked: r.try_get("locked")?,
                })
            })
            .collect()
    }

    async fn ensure_account(&self, tx: &mut Tx, customer_id: i64, currency: &str) -> Result<()> {
        tx.exec("INSERT INTO credit_accounts (customer_id, currency) VALUES (?, ?) ON CONFLICT (customer_id, currency) DO NOTHING",
            &[
                Arg::from(customer_id),
                Arg::from(currency.to_string()),
            ])
        .await?;
        Ok(())
    }

    async fn insert_ledger(
        &self,
        tx: &mut Tx,
        r: &LedgerRef<'_>,
        amount: i64,
        currency: &str,
        billables: &[Billable],
        kind: &str,
        now: i64,
    ) -> Result<i64> {
        tx.scalar_one("INSERT INTO transactions (customer_id, customer, date, amount, currency, process_id, process_type, process_identifier, \
             process_action, billables, kind, subject_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            &[
                Arg::from(r.customer_id),
                Arg::from(r.customer.to_string()),
                Arg::from(now),
                Arg::from(amount),
                Arg::from(currency.to_string()),
                Arg::from(r.process_id),
                Arg::from(r.process_type.to_string()),
                Arg::from(r.process_identifier.to_string()),
                Arg::from(r.process_action.to_string()),
                Arg::from(if billables.is_empty() { None } else { Some(to_json(&billables)) }),
                Arg::from(kind.to_string()),
                Arg::from(r.subject_id),
            ])
        .await
    }

    /// Charges `total` from the balance, or fails with `InsufficientCredit`
    /// leaving the transaction untouched. Zero charges write nothing.
    pub async fn charge(
        &self,
        tx: &mut Tx,
        r: &LedgerRef<'_>,
        currency: &str,
        billables: &[Billable],
        now: i64,
    ) -> Result<Option<i64>> {
        let total: i64 = billables.iter().map(|b| b.total).sum();
        if total == 0 {
            return Ok(None);
        }
        self.debit(tx, r.customer_id, currency, total, false)
            .await?;
        Ok(Some(
            self.insert_ledger(tx, r, -total, currency, billables, "CHARGE", now)
                .await?,
        ))
    }

    /// Takes `total` from the balance (and adds it to the reservation when
    /// `reserve`) in one conditional UPDATE: a debit that does not fit
    /// changes and locks nothing, so a refused charge never blocks others.
    async fn debit(
        &self,
        tx: &mut Tx,
        customer_id: i64,
        currency: &str,
        total: i64,
        reserve: bool,
    ) -> Result<()> {
        self.ensure_account(tx, customer_id, currency).await?;
        let done: Option<i64> = if reserve {
            tx.scalar_optional(
                "UPDATE credit_accounts SET balance = balance - ?, reservation = reservation + ? \
                 WHERE customer_id = ? AND currency = ? AND balance >= ? RETURNING balance",
                &[
                    Arg::from(total),
                    Arg::from(total),
                    Arg::from(customer_id),
                    Arg::from(currency.to_string()),
                    Arg::from(total),
                ],
            )
            .await?
        } else {
            tx.scalar_optional(
                "UPDATE credit_accounts SET balance = balance - ? \
                 WHERE customer_id = ? AND currency = ? AND balance >= ? RETURNING balance",
                &[
                    Arg::from(total),
                    Arg::from(customer_id),
                    Arg::from(currency.to_string()),
                    Arg::from(total),
                ],
            )
            .await?
        };
        if done.is_some() {
            return Ok(());
        }
        let balance: i64 = tx
            .scalar_one(
                self.sql(
                    "SELECT balance FROM credit_accounts WHERE customer_id = ? AND currency = ?",
                ),
                &[Arg::from(customer_id), Arg::from(currency.to_string())],
            )
            .await?;
        Err(StoreError::InsufficientCredit {
            balance,
            needed: total,
            currency: currency.to_string(),
        })
    }

    /// Moves `total` from balance to reservation (REST requests until issuance).
    pub async fn reserve(
        &self,
        tx: &mut Tx,
        customer_id: i64,
        currency: &str,
        total: i64,
    ) -> Result<()> {
        if total == 0 {
            return Ok(());
        }
        self.debit(tx, customer_id, currency, total, true).await
    }

    /// Turns a reservation into a charge (ledger row).
    pub async fn capture(
        &self,
        tx: &mut Tx,
        r: &LedgerRef<'_>,
        currency: &str,
        billables: &[Billable],
        now: i64,
    ) -> Result<Option<i64>> {
        let total: i64 = billables.iter().map(|b| b.total).sum();
        if total == 0 {
            return Ok(None);
        }
        tx.exec("UPDATE credit_accounts SET reservation = reservation - ? WHERE customer_id = ? AND currency = ?",
                &[
                    Arg::from(total),
                    Arg::from(r.customer_id),
                    Arg::from(currency.to_string()),
                ])
        .await?;
        Ok(Some(
            self.insert_ledger(tx, r, -total, currency, billables, "CHARGE", now)
                .await?,
        ))
    }

    /// Gives a reservation back to the balance (cancel, failure, timeout).
    pub async fn release(
        &self,
        tx: &mut Tx,
        customer_id: i64,
        currency: &str,
        total: i64,
    ) -> Result<()> {
        if total == 0 {
            return Ok(());
        }
        tx.exec("UPDATE credit_accounts SET reservation = reservation - ?, balance = balance + ? WHERE customer_id = ? AND currency = ?",
            &[
                Arg::from(total),
                Arg::from(total),
                Arg::from(customer_id),
                Arg::from(currency.to_string()),
            ])
        .await?;
        Ok(())
    }

    /// Refunds `amount` (positive) with its own ledger row.
    pub async fn refund(
        &self,
        tx: &mut Tx,
        r: &LedgerRef<'_>,
        currency: &str,
        amount: i64,
        billables: &[Billable],
        now: i64,
    ) -> Result<i64> {
        self.ensure_account(tx, r.customer_id, currency).await?;
        tx.exec("UPDATE credit_accounts SET balance = balance + ? WHERE customer_id = ? AND currency = ?",
            &[
                Arg::from(amount),
                Arg::from(r.customer_id),
                Arg::from(currency.to_string()),
            ])
            .await?;
        self.insert_ledger(tx, r, amount, currency, billables, "REFUND", now)
            .await
    }

    /// Operator top-up (`admin credit add`).
    pub async fn add_credit(
        &self,
        tx: &mut Tx,
        customer_id: i64,
        handle: &str,
        currency: &str,
        cents: i64,
        now: i64,
    ) -> Result<i64> {
        self.ensure_account(tx, customer_id, currency).await?;
        tx.exec("UPDATE credit_accounts SET balance = balance + ? WHERE customer_id = ? AND currency = ?",
            &[
                Arg::from(cents),
                Arg::from(customer_id),
                Arg::from(currency.to_string()),
            ])
            .await?;
        let id: i64 = tx.scalar_one("INSERT INTO transactions (customer_id, customer, date, amount, currency, process_identifier, process_type, process_action, kind) \
             VALUES (?, ?, ?, ?, ?, ?, 'credit', 'topup', 'TOPUP') RETURNING id",
            &[
                Arg::from(customer_id),
                Arg::from(handle.to_string()),
                Arg::from(now),
                Arg::from(cents),
                Arg::from(currency.to_string()),
                Arg::from(handle.to_string()),
            ])
        .await?;
        Ok(id)
    }

    pub async fn transaction(&self, customer_id: i64, id: i64) -> Result<Option<Transaction>> {
        let row = sqlx::query(self.sql(
            "SELECT id, customer, date, amount, currency, process_id, process_type, process_identifier, process_action, billables, kind \
             FROM transactions WHERE id = ? AND customer_id = ?",
        ))
        .bind(id)
        .bind(customer_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(transaction_from_row).transpose()
    }

    /// Charges (negative rows) on a subject, for refunds on deletion.
    pub async fn charges_for_subject(
        &self,
        tx: &mut Tx,
        process_type: &str,
        subject_id: i64,
    ) -> Result<Vec<Transaction>> {
        let rows = tx.fetch_all("SELECT id, customer, date, amount, currency, process_id, process_type, process_identifier, process_action, billables, kind \
             FROM transactions WHERE process_type = ? AND subject_id = ? AND kind = 'CHARGE' ORDER BY id",
            &[
                Arg::from(process_type.to_string()),
                Arg::from(subject_id),
            ])
        .await?;
        rows.iter().map(transaction_from_row).collect()
    }

    /// Sum of the ledger for one customer and currency (balance checks in tests).
    pub async fn ledger_sum(&self, customer_id: i64, currency: &str) -> Result<i64> {
        let v: Option<i64> = sqlx::query_scalar(self.sql(
            "SELECT CAST(SUM(amount) AS BIGINT) FROM transactions WHERE customer_id = ? AND currency = ?",
        ))
        .bind(customer_id)
        .bind(currency.to_string())
        .fetch_one(self.pool())
        .await?;
        Ok(v.unwrap_or(0))
    }
}
