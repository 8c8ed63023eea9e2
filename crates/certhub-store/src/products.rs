//! The product catalogue and price list, seeded on first start and edited by
//! the operator (`certhub admin product|price ...`).

use crate::read::Arg;
use certhub_domain::product::{Product, default_catalogue};
use serde::Serialize;
use sqlx::Row;

use crate::{Db, Result, Tx, from_json, to_json};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Price {
    pub product: String,
    pub action: String,
    pub currency: String,
    pub price: i64,
    pub period: i64,
}

impl Db {
    /// Seeds the default catalogue when the products table is empty.
    pub async fn seed_catalogue(&self) -> Result<bool> {
        let mut tx = self.begin().await?;
        // Several nodes may start at once: without the lock the second one's
        // INSERTs would hit the first one's keys and abort its start-up.
        if self.dialect() == crate::Dialect::Postgres {
            tx.exec("SELECT pg_advisory_xact_lock(7241003)", &[])
                .await?;
        }
        let n: i64 = tx.scalar_one("SELECT COUNT(*) FROM products", &[]).await?;
        if n > 0 {
            tx.commit().await?;
            return Ok(false);
        }
        let (products, prices) = default_catalogue();
        for (i, p) in products.iter().enumerate() {
            tx.exec(
                "INSERT INTO products (product, definition, sort_order) VALUES (?, ?, ?)",
                &[
                    Arg::from(p.product.clone()),
                    Arg::from(to_json(p)),
                    Arg::from(i as i64),
                ],
            )
            .await?;
        }
        for (product, action, period, eur) in prices {
            for (currency, amount) in [("EUR", eur), ("USD", eur + eur / 10)] {
                tx.exec("INSERT INTO prices (product, action, period, currency, price) VALUES (?, ?, ?, ?, ?)",
                &[
                    Arg::from(product),
                    Arg::from(action),
                    Arg::from(period),
                    Arg::from(currency),
                    Arg::from(amount),
                ])
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn products(&self) -> Result<Vec<Product>> {
        let rows = sqlx::query("SELECT definition FROM products ORDER BY sort_order, product")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| from_json(&r.try_get::<String, _>("definition")?))
            .collect()
    }

    pub async fn product(&self, product: &str) -> Result<Option<Product>> {
        let def: Option<String> =
            sqlx::query_scalar(self.sql("SELECT definition FROM products WHERE product = ?"))
                .bind(product.to_string())
                .fetch_optional(self.pool())
                .await?;
        def.as_deref().map(from_json).transpose()
    }

    pub async fn upsert_product(&self, p: &Product) -> Result<()> {
        self.write(
            "INSERT INTO products (product, definition, sort_order) VALUES (?, ?, 1000) \
             ON CONFLICT (product) DO UPDATE SET definition = excluded.definition",
            &[Arg::from(p.product.clone()), Arg::from(to_json(p))],
        )
        .await?;
        Ok(())
    }

    pub async fn price(
        &self,
        product: &str,
        action: &str,
        period: i64,
        currency: &str,
    ) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(self.sql(
            "SELECT price FROM prices WHERE product = ? AND action = ? AND period = ? AND currency = ?",
        ))
        .bind(product.to_string())
        .bind(action.to_string())
        .bind(period)
        .bind(currency.to_string())
        .fetch_optional(self.pool())
        .await?)
    }

    /// Sets one price inside the caller's transaction, so that the change and
    /// its audit record commit together.
    pub async fn set_price(
        &self,
        tx: &mut Tx,
        product: &str,
        action: &str,
        period: i64,
        currency: &str,
        cents: i64,
    ) -> Result<()> {
        tx.exec(
            "INSERT INTO prices (product, action, period, currency, price) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (product, action, period, currency) DO UPDATE SET price = excluded.price",
            &[
                Arg::from(product.to_string()),
                Arg::from(action.to_string()),
                Arg::from(period),
                Arg::from(currency.to_string()),
                Arg::from(cents),
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn prices(&self, currency: &str) -> Result<Vec<Price>> {
        let rows = sqlx::query(self.sql(
            "SELECT product, action, period, currency, price FROM prices WHERE currency = ? ORDER BY product, action, period",
        ))
        .bind(currency.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Price {
                    product: r.try_get("product")?,
                    action: r.try_get("action")?,
                    period: r.try_get("period")?,
                    currency: r.try_get("currency")?,
                    price: r.try_get("price")?,
                })
            })
            .collect()
    }
}
