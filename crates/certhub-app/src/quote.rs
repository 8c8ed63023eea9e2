//! Prices and quotes: what an action costs, in the shape RTR shows it.

use certhub_domain::product::Product;
use certhub_store::billing::Billable;
use serde_json::{Value, json};

use crate::{App, AppError};

impl App {
    /// The billable for (product, action, period) in the customer's currency.
    /// A product without a price for that combination has no contract.
    pub async fn billable(
        &self,
        product: &Product,
        action: &str,
        period: i64,
        quantity: i64,
        currency: &str,
    ) -> Result<Billable, AppError> {
        let amount = self
            .db()
            .price(&product.product, action, period, currency)
            .await?
            .ok_or_else(|| {
                AppError::validation(format!(
                    "no price for product {} action {action} period {period} in {currency}",
                    product.product
                ))
            })?;
        Ok(Billable {
            product: product.product.clone(),
            action: action.to_string(),
            quantity,
            amount,
            refundable: true,
            total: amount * quantity,
            provider_name: product.brand.to_lowercase(),
        })
    }

    pub async fn product_or_ref_error(&self, product: &str) -> Result<Product, AppError> {
        self.db()
            .product(product)
            .await?
            .ok_or_else(|| AppError::BadReference(format!("product {product} does not exist")))
    }
}

/// `{command, quote: {currency?, total, billables?}}` (currency and billables
/// are omitted when the total is zero, as RTR does).
pub fn quote_body(command: &str, currency: &str, billables: &[Billable]) -> Value {
    let total: i64 = billables.iter().map(|b| b.total).sum();
    if total == 0 {
        return json!({"command": command, "quote": {"total": 0}});
    }
    json!({"command": command, "quote": {"currency": currency, "total": total, "billables": billables}})
}

/// A currency → cents map as processes show money.
pub fn money_map(currency: &str, cents: i64) -> Value {
    json!({ currency: cents })
}
