//! Challenge validation, run in the background after the challenge POST:
//! the challenge itself, then CAA (RFC 8659/8657 with `accounturi` and
//! `validationmethods`), then one transaction recording the result.

use certhub_jose::Jwk;
use certhub_store::acme::AcmeAuthz;
use serde_json::json;

use super::order::valid_authz_secs;
use crate::App;

pub(crate) async fn run(app: App, authz: AcmeAuthz, jwk: Jwk, account_url: String) {
    let kind = authz.chall_type.clone().unwrap_or_default();
    let key_auth = jwk.key_authorization(&authz.token);
    let domain = authz.identifier.as_str();
    let va = app.va();
    let mut result = match kind.as_str() {
        "http-01" => va.http01(domain, &authz.token, &key_auth).await,
        "dns-01" => va.dns01(domain, &certhub_va::dns01_digest(&key_auth)).await,
        "tls-alpn-01" => va.tls_alpn01(domain, &key_auth).await,
        other => {
            tracing::error!(
                authz = authz.id,
                kind = other,
                "unknown challenge type started"
            );
            return;
        }
    };
    if result.is_ok() {
        let identities = super::caa_identities(&app.settings().public_url);
        result = va
            .check_caa(
                domain,
                authz.wildcard,
                &identities,
                Some(&account_url),
                &kind,
            )
            .await;
    }
    let now = app.now();
    // (problem document, audit reason) of a failure.
    let failure = result.as_ref().err().map(|e| {
        let shown = if authz.wildcard {
            format!("*.{domain}")
        } else {
            domain.to_string()
        };
        let detail = format!("{kind} for {shown}: {}", e.detail);
        let reason = format!("{}: {detail}", e.kind.acme_type());
        let problem = json!({
            "type": e.acme_urn(),
            "detail": detail,
            "status": 403,
            "identifier": {"type": "dns", "value": domain},
        })
        .to_string();
        (problem, reason)
    });
    match &failure {
        None => tracing::info!(authz = authz.id, %domain, %kind, "ACME challenge validated"),
        Some((problem, _)) => {
            tracing::info!(authz = authz.id, %domain, %kind, error = %problem, "ACME challenge failed");
            app.record_failed_validation(authz.account_id, domain).await;
        }
    }
    let until = now + valid_authz_secs(app.va().config().authz_reuse_days);
    let failure = failure.as_ref().map(|(p, r)| (p.as_str(), r.as_str()));
    if let Err(e) = app
        .db()
        .acme_finish_challenge(authz.id, failure, now, until)
        .await
    {
        tracing::error!(authz = authz.id, error = %e, "cannot record the validation result");
    }
}
