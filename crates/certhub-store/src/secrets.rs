//! Server-wide secrets (API-key pepper, nonce and AuthKey MAC keys) live in the
//! database, sealed under the KEK, so every node sharing the database uses the
//! same ones. The first node creates them; the others read them.

use crate::read::Arg;
use crate::sealed::{Kek, random_bytes};
use crate::{Db, Result};

impl Db {
    /// Returns the named 32-byte secret, creating it on first use.
    pub async fn server_secret(&self, kek: &Kek, name: &'static str) -> Result<Vec<u8>> {
        let context = format!("server-secret:{name}");
        if let Some(v) = self.read_secret(name).await? {
            return kek.open(&context, &v);
        }
        let mut tx = self.begin().await?;
        let existing: Option<Vec<u8>> = tx
            .scalar_optional(
                "SELECT sealed FROM server_secrets WHERE name = ?",
                &[Arg::from(name)],
            )
            .await?;
        let sealed = match existing {
            Some(v) => v,
            None => {
                let sealed = kek.seal(&context, &random_bytes::<32>());
                tx.exec("INSERT INTO server_secrets (name, sealed, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
            &[
                Arg::from(name),
                Arg::from(sealed.clone()),
                Arg::from(certhub_domain::time::now()),
            ])
                .await?;
                tx.scalar_one(
                    "SELECT sealed FROM server_secrets WHERE name = ?",
                    &[Arg::from(name)],
                )
                .await?
            }
        };
        tx.commit().await?;
        kek.open(&context, &sealed)
    }

    async fn read_secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar(self.sql("SELECT sealed FROM server_secrets WHERE name = ?"))
                .bind(name.to_string())
                .fetch_optional(self.pool())
                .await?,
        )
    }
}
