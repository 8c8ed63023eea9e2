//! Refused requests in the audit trail: every refusal with its reason
//! (issue 9), next to the issuances, revocations and operator actions.
//!
//! The protocol layers call [`App::audit_refusal`] once the refusal is known
//! (a REST mutation answered 4xx, an ACME problem document, a failed
//! challenge), so the record holds exactly what the client was told.
//! Refusals the client retries as routine (`badNonce`) or that come in floods
//! (rate limits, unauthenticated calls) are counted in the metrics instead.

use crate::App;

/// Longest reason kept: error messages echo client input (names, CSRs).
const MAX_REASON: usize = 500;

impl App {
    /// Records a refusal. The request is already answered: an audit write
    /// that fails is logged, and never turns the refusal into a 500.
    pub async fn audit_refusal(
        &self,
        actor: &str,
        customer_id: Option<i64>,
        subject: &str,
        reason: &str,
    ) {
        let reason = truncate(reason, MAX_REASON);
        let r = async {
            let mut tx = self.db().begin().await?;
            self.db()
                .audit(
                    &mut tx,
                    self.now(),
                    actor,
                    customer_id,
                    "refusal",
                    subject,
                    reason,
                )
                .await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, %subject, "cannot record a refusal in the audit trail");
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(super::truncate("abc", 5), "abc");
        assert_eq!(super::truncate("ab€d", 3), "ab");
        assert_eq!(super::truncate("ab€d", 5), "ab€");
    }
}
