//! `certhub admin cert revoke ...` and `certhub admin outbox`.

#[derive(clap::Subcommand, Debug)]
pub enum CertCmd {
    /// Revoke by serial, or every certificate with a key (`--key-sha256`).
    Revoke {
        serial: Option<String>,
        #[arg(long)]
        key_sha256: Option<String>,
        #[arg(long)]
        reason: String,
    },
}

pub async fn run_cert(app: &certhub_app::App, cmd: CertCmd) -> anyhow::Result<()> {
    match cmd {
        CertCmd::Revoke {
            serial,
            key_sha256,
            reason,
        } => {
            let ids = match (serial, key_sha256) {
                (Some(s), None) => app.operator_revoke_serial(&s, &reason).await?,
                (None, Some(k)) => app.operator_revoke_key(&k, &reason).await?,
                _ => anyhow::bail!("give either a SERIAL or --key-sha256 HASH"),
            };
            if ids.is_empty() {
                println!("no live certificate to revoke");
            }
            for id in ids {
                println!("{id} REVOKED {}", reason.to_ascii_uppercase());
            }
            Ok(())
        }
    }
}

/// One message per line, id first: `ID DATE RECIPIENT LINK-OR-SUBJECT`.
pub async fn run_outbox(app: &certhub_app::App) -> anyhow::Result<()> {
    for m in app.db().outbox_messages().await? {
        let link = m
            .body
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"));
        println!(
            "{} {} {} {}",
            m.id,
            certhub_domain::time::format_rtr(m.created_at),
            m.recipient,
            link.map(str::to_string)
                .unwrap_or_else(|| format!("{:?}", m.subject))
        );
    }
    Ok(())
}
