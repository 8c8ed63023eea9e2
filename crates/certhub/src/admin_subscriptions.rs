//! `certhub admin validation list | approve ID | reject ID --reason TEXT` and
//! `certhub admin subscription rotate-eab ID`. List output: one record per
//! line, its id first.

use certhub_domain::time::format_rtr;

#[derive(clap::Subcommand, Debug)]
pub enum ValidationCmd {
    /// Organisation validations waiting for a decision (`--all` for every one).
    List {
        /// Include decided validations.
        #[arg(long)]
        all: bool,
    },
    /// Approve an organisation validation.
    Approve { id: i64 },
    /// Reject an organisation validation.
    Reject {
        id: i64,
        #[arg(long)]
        reason: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum SubscriptionCmd {
    /// Issue a new EAB key pair for a subscription (the old one stops binding).
    RotateEab { id: i64 },
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

pub async fn run_validation(app: &certhub_app::App, cmd: ValidationCmd) -> anyhow::Result<()> {
    match cmd {
        ValidationCmd::List { all } => {
            let status = if all { None } else { Some("PENDING") };
            for v in app.org_validations(status).await? {
                println!(
                    "{} status={} process={} subscription={} customer={} created={} organization={:?} country={} state={:?} city={:?}{}",
                    v.id,
                    v.status,
                    v.process_id,
                    v.subscription_id
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    v.customer_id,
                    format_rtr(v.created_at),
                    v.organization,
                    v.country,
                    opt(&v.state),
                    opt(&v.city),
                    v.reason
                        .as_deref()
                        .map(|r| format!(" reason={r:?}"))
                        .unwrap_or_default(),
                );
            }
        }
        ValidationCmd::Approve { id } => println!("{}", app.approve_org_validation(id).await?),
        ValidationCmd::Reject { id, reason } => {
            println!("{}", app.reject_org_validation(id, &reason).await?)
        }
    }
    Ok(())
}

pub async fn run_subscription(app: &certhub_app::App, cmd: SubscriptionCmd) -> anyhow::Result<()> {
    match cmd {
        SubscriptionCmd::RotateEab { id } => {
            let c = app.rotate_eab(id).await?;
            // Printed once for the operator to hand over; never stored in clear.
            println!(
                "subscription {id} directoryUrl={} accountKey={} hmacKey={}",
                c.directory_url, c.account_key, c.hmac_key
            );
        }
    }
    Ok(())
}
