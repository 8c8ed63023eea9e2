//! `certhub admin acme-account list --subscription ID | deactivate ACCOUNT`.

use anyhow::Context;

#[derive(clap::Subcommand, Debug)]
pub enum AcmeAccountCmd {
    /// ACME accounts bound to a subscription, one per line, id first.
    List {
        #[arg(long)]
        subscription: i64,
    },
    /// Deactivate an ACME account (for a leaked account key).
    Deactivate { account: i64 },
}

pub async fn run(app: &certhub_app::App, cmd: AcmeAccountCmd) -> anyhow::Result<()> {
    match cmd {
        AcmeAccountCmd::List { subscription } => {
            let accounts = app
                .acme_accounts_of_subscription(subscription)
                .await
                .context("listing ACME accounts")?;
            for a in accounts {
                let url = certhub_app::acme::Urls::new(&app.settings().public_url, &a.product)
                    .account(a.id);
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    a.id,
                    a.status,
                    certhub_domain::time::format_rtr(a.created_at),
                    a.thumbprint,
                    if a.contact.is_empty() {
                        "-".to_string()
                    } else {
                        a.contact.join(",")
                    },
                    url
                );
            }
        }
        AcmeAccountCmd::Deactivate { account } => {
            if !app
                .acme_deactivate_account(account)
                .await
                .context("deactivating the ACME account")?
            {
                anyhow::bail!("ACME account {account} does not exist");
            }
            crate::admin_ops::audit_operator(
                app,
                None,
                "acme_account.deactivate",
                &account.to_string(),
                "",
            )
            .await?;
            println!("{account}\tdeactivated");
        }
    }
    Ok(())
}
