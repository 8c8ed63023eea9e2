//! The product catalogue: what can be ordered, for how long, at which price.
//!
//! Field names follow RTR's SslProduct wire object; the certhub-only settings
//! (`acme`, `coverage`, `maxValidityDays`, `authKey`) travel as extra keys,
//! which RTR's SDKs ignore.

use serde::{Deserialize, Serialize};

use crate::names::Coverage;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub product: String,
    pub brand: String,
    pub name: String,
    /// DOMAIN_VALIDATION | ORGANIZATION_VALIDATION
    pub validation_type: String,
    /// SINGLE_DOMAIN | MULTI_DOMAIN | WILDCARD | ACME_SUBSCRIPTION
    pub certificate_type: String,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub required_fields: Vec<String>,
    #[serde(default)]
    pub optional_fields: Vec<String>,
    pub periods: Vec<i64>,
    pub warranty: i64,
    pub issue_time: String,
    pub renewal_window: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included_domains: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_domains: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renew_from: Vec<String>,
    /// Sold as an ACME subscription (served at `/acme/{product}/`).
    #[serde(default)]
    pub acme: bool,
    /// Name coverage rule of ACME subscriptions.
    #[serde(default)]
    pub coverage: Coverage,
    /// Product maximum certificate validity in days (the BR cap applies too).
    #[serde(default = "default_validity")]
    pub max_validity_days: u32,
    /// DigiCert AuthKey immediate issuance is offered.
    #[serde(default)]
    pub auth_key: bool,
}

fn default_validity() -> u32 {
    397
}

pub const DV: &str = "DOMAIN_VALIDATION";
pub const OV: &str = "ORGANIZATION_VALIDATION";

impl Product {
    pub fn is_ov(&self) -> bool {
        self.validation_type == OV
    }

    pub fn allows_wildcard(&self) -> bool {
        self.certificate_type == "WILDCARD"
            || self.acme
            || self.features.iter().any(|f| f == "WILDCARD")
    }

    pub fn offers_period(&self, months: i64) -> bool {
        self.periods.contains(&months)
    }

    pub fn requires(&self, field: &str) -> bool {
        self.required_fields.iter().any(|f| f == field)
    }

    pub fn allows_field(&self, field: &str) -> bool {
        self.requires(field) || self.optional_fields.iter().any(|f| f == field)
    }
}

/// A default price: (product, action, period months, EUR cents).
pub type DefaultPrice = (&'static str, &'static str, i64, i64);

fn p(
    product: &str,
    brand: &str,
    name: &str,
    vt: &str,
    ct: &str,
    periods: &[i64],
    max_domains: Option<i64>,
    included: Option<i64>,
) -> Product {
    Product {
        product: product.into(),
        brand: brand.into(),
        name: name.into(),
        validation_type: vt.into(),
        certificate_type: ct.into(),
        features: vec![],
        required_fields: vec![],
        optional_fields: vec![],
        periods: periods.to_vec(),
        warranty: 0,
        issue_time: "immediate".into(),
        renewal_window: 30,
        included_domains: included,
        max_domains,
        renew_from: vec![],
        acme: false,
        coverage: Coverage::Exact,
        max_validity_days: 397,
        auth_key: false,
    }
}

fn ov_fields(prod: &mut Product) {
    prod.required_fields = ["organization", "country", "approver"]
        .map(String::from)
        .to_vec();
    prod.optional_fields = [
        "city",
        "state",
        "address",
        "postalCode",
        "coc",
        "department",
    ]
    .map(String::from)
    .to_vec();
}

/// The catalogue a fresh installation starts with; the operator edits it.
pub fn default_catalogue() -> (Vec<Product>, Vec<DefaultPrice>) {
    let mut dv_acme = p(
        "sectigo_dv_acme",
        "SECTIGO",
        "Sectigo DV ACME subscription",
        DV,
        "ACME_SUBSCRIPTION",
        &[1, 12, 24],
        Some(250),
        None,
    );
    dv_acme.acme = true;
    dv_acme.features = vec!["WILDCARD".into()];
    let mut ov_acme = p(
        "sectigo_ov_acme",
        "SECTIGO",
        "Sectigo OV ACME subscription",
        OV,
        "ACME_SUBSCRIPTION",
        &[12, 24],
        Some(250),
        None,
    );
    ov_acme.acme = true;
    ov_acme.features = vec!["WILDCARD".into()];
    ov_acme.issue_time = "after organisation validation".into();
    ov_fields(&mut ov_acme);

    let mut dv_single = p(
        "sectigo_dv_single",
        "SECTIGO",
        "Sectigo PositiveSSL DV",
        DV,
        "SINGLE_DOMAIN",
        &[12, 24],
        Some(1),
        Some(1),
    );
    dv_single.features = vec!["REISSUE".into()];
    dv_single.optional_fields = vec!["dcv".into(), "domainName".into()];
    let mut dv_multi = p(
        "sectigo_dv_multi",
        "SECTIGO",
        "Sectigo PositiveSSL Multi-Domain DV",
        DV,
        "MULTI_DOMAIN",
        &[12, 24],
        Some(100),
        Some(3),
    );
    dv_multi.features = vec!["REISSUE".into()];
    dv_multi.optional_fields = vec!["dcv".into(), "domainName".into()];
    let mut dv_wild = p(
        "sectigo_dv_wildcard",
        "SECTIGO",
        "Sectigo PositiveSSL Wildcard DV",
        DV,
        "WILDCARD",
        &[12, 24],
        Some(1),
        Some(1),
    );
    dv_wild.features = vec!["REISSUE".into(), "WILDCARD".into()];
    dv_wild.optional_fields = vec!["dcv".into(), "domainName".into()];

    let mut dc_dv = p(
        "digicert_dv_authkey",
        "DIGICERT",
        "DigiCert Basic DV (AuthKey)",
        DV,
        "MULTI_DOMAIN",
        &[12, 24, 36],
        Some(250),
        Some(1),
    );
    dc_dv.features = vec!["REISSUE".into(), "WILDCARD".into()];
    dc_dv.optional_fields = vec!["dcv".into(), "domainName".into(), "authKey".into()];
    dc_dv.auth_key = true;
    let mut dc_ov = p(
        "digicert_ov_authkey",
        "DIGICERT",
        "DigiCert Basic OV (AuthKey)",
        OV,
        "MULTI_DOMAIN",
        &[12, 24, 36],
        Some(250),
        Some(1),
    );
    dc_ov.features = vec!["REISSUE".into(), "WILDCARD".into()];
    ov_fields(&mut dc_ov);
    dc_ov.optional_fields.extend([
        "dcv".to_string(),
        "domainName".to_string(),
        "authKey".to_string(),
    ]);
    dc_ov.auth_key = true;

    let products = vec![dv_acme, ov_acme, dv_single, dv_multi, dv_wild, dc_dv, dc_ov];
    let prices = vec![
        ("sectigo_dv_acme", "CREATE", 1, 500),
        ("sectigo_dv_acme", "CREATE", 12, 4900),
        ("sectigo_dv_acme", "CREATE", 24, 8900),
        ("sectigo_dv_acme", "RENEW", 1, 500),
        ("sectigo_dv_acme", "RENEW", 12, 4900),
        ("sectigo_dv_acme", "RENEW", 24, 8900),
        ("sectigo_ov_acme", "CREATE", 12, 14900),
        ("sectigo_ov_acme", "CREATE", 24, 27900),
        ("sectigo_ov_acme", "RENEW", 12, 14900),
        ("sectigo_ov_acme", "RENEW", 24, 27900),
        ("sectigo_dv_single", "REQUEST", 12, 900),
        ("sectigo_dv_single", "REQUEST", 24, 1700),
        ("sectigo_dv_single", "RENEW", 12, 900),
        ("sectigo_dv_single", "RENEW", 24, 1700),
        ("sectigo_dv_multi", "REQUEST", 12, 3900),
        ("sectigo_dv_multi", "REQUEST", 24, 7500),
        ("sectigo_dv_multi", "RENEW", 12, 3900),
        ("sectigo_dv_multi", "RENEW", 24, 7500),
        ("sectigo_dv_multi", "EXTRA_DOMAIN", 12, 1200),
        ("sectigo_dv_multi", "EXTRA_DOMAIN", 24, 2300),
        ("sectigo_dv_wildcard", "REQUEST", 12, 7900),
        ("sectigo_dv_wildcard", "REQUEST", 24, 14900),
        ("sectigo_dv_wildcard", "RENEW", 12, 7900),
        ("sectigo_dv_wildcard", "RENEW", 24, 14900),
        ("digicert_dv_authkey", "REQUEST", 12, 2500),
        ("digicert_dv_authkey", "REQUEST", 24, 4800),
        ("digicert_dv_authkey", "REQUEST", 36, 7000),
        ("digicert_dv_authkey", "RENEW", 12, 2500),
        ("digicert_dv_authkey", "RENEW", 24, 4800),
        ("digicert_dv_authkey", "RENEW", 36, 7000),
        ("digicert_dv_authkey", "EXTRA_DOMAIN", 12, 1500),
        ("digicert_dv_authkey", "EXTRA_DOMAIN", 24, 2900),
        ("digicert_dv_authkey", "EXTRA_DOMAIN", 36, 4200),
        ("digicert_dv_authkey", "EXTRA_WILDCARD", 12, 6900),
        ("digicert_dv_authkey", "EXTRA_WILDCARD", 24, 13500),
        ("digicert_dv_authkey", "EXTRA_WILDCARD", 36, 19900),
        ("digicert_ov_authkey", "REQUEST", 12, 9900),
        ("digicert_ov_authkey", "REQUEST", 24, 18900),
        ("digicert_ov_authkey", "REQUEST", 36, 27900),
        ("digicert_ov_authkey", "RENEW", 12, 9900),
        ("digicert_ov_authkey", "RENEW", 24, 18900),
        ("digicert_ov_authkey", "RENEW", 36, 27900),
        ("digicert_ov_authkey", "EXTRA_DOMAIN", 12, 3900),
        ("digicert_ov_authkey", "EXTRA_DOMAIN", 24, 7500),
        ("digicert_ov_authkey", "EXTRA_DOMAIN", 36, 10900),
        ("digicert_ov_authkey", "EXTRA_WILDCARD", 12, 14900),
        ("digicert_ov_authkey", "EXTRA_WILDCARD", 24, 28900),
        ("digicert_ov_authkey", "EXTRA_WILDCARD", 36, 41900),
    ];
    (products, prices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_consistent() {
        let (products, prices) = default_catalogue();
        for (prod, action, period, _) in &prices {
            let p = products.iter().find(|p| p.product == *prod).unwrap();
            assert!(p.offers_period(*period), "{prod} {action} {period}");
        }
        for p in &products {
            let create = if p.acme { "CREATE" } else { "REQUEST" };
            for period in &p.periods {
                assert!(
                    prices
                        .iter()
                        .any(|(x, a, per, _)| *x == p.product && *a == create && per == period)
                );
            }
        }
    }
}
