//! Certificates (issued here or imported), CA issuers, CRLs and the OCSP cache.

use crate::read::{Arg, Cols};
use sqlx::Row;

use crate::list::{Field, FieldType, Resource};
use crate::{Db, Result, Tx, from_json, to_json};

/// One row of `certificates`.
#[derive(Debug, Clone, Default)]
pub struct CertificateRow {
    pub id: i64,
    pub customer_id: i64,
    pub process_id: i64,
    pub product: String,
    pub validation_type: String,
    pub certificate_type: String,
    pub domain_name: String,
    pub san: Vec<String>,
    pub organization: Option<String>,
    pub department: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    pub coc: Option<String>,
    pub start_date: i64,
    pub expiry_date: i64,
    pub subscription_end_date: Option<i64>,
    pub status: String,
    pub public_key_algorithm: String,
    pub public_key_size: Option<i64>,
    pub csr: Option<String>,
    pub certificate_der: Vec<u8>,
    pub chain_pem: Option<String>,
    pub fingerprint: String,
    pub serial_hex: String,
    pub issuer_id: String,
    pub key_sha256: String,
    pub imported: bool,
    pub subscription_id: Option<i64>,
    pub acme_account_id: Option<i64>,
    pub acme_order_id: Option<i64>,
    pub replaced_by: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<String>,
    pub created_at: i64,
}

pub static CERTIFICATES: Resource = Resource {
    from: "certificates",
    scope: "customer_id",
    base_where: "",
    fields: &[
        Field {
            name: "id",
            column: "id",
            ty: FieldType::Int,
        },
        Field {
            name: "process",
            column: "process_id",
            ty: FieldType::Int,
        },
        Field {
            name: "product",
            column: "product",
            ty: FieldType::Text,
        },
        Field {
            name: "validationType",
            column: "validation_type",
            ty: FieldType::Text,
        },
        Field {
            name: "certificateType",
            column: "certificate_type",
            ty: FieldType::Text,
        },
        Field {
            name: "domainName",
            column: "domain_name",
            ty: FieldType::Text,
        },
        Field {
            name: "organization",
            column: "organization",
            ty: FieldType::Text,
        },
        Field {
            name: "department",
            column: "department",
            ty: FieldType::Text,
        },
        Field {
            name: "city",
            column: "city",
            ty: FieldType::Text,
        },
        Field {
            name: "state",
            column: "state",
            ty: FieldType::Text,
        },
        Field {
            name: "postalCode",
            column: "postal_code",
            ty: FieldType::Text,
        },
        Field {
            name: "country",
            column: "country",
            ty: FieldType::Text,
        },
        Field {
            name: "coc",
            column: "coc",
            ty: FieldType::Text,
        },
        Field {
            name: "startDate",
            column: "start_date",
            ty: FieldType::Time,
        },
        Field {
            name: "expiryDate",
            column: "expiry_date",
            ty: FieldType::Time,
        },
        Field {
            name: "subscriptionEndDate",
            column: "subscription_end_date",
            ty: FieldType::Time,
        },
        Field {
            name: "san",
            column: "san",
            ty: FieldType::JsonArray,
        },
        Field {
            name: "status",
            column: "status",
            ty: FieldType::Text,
        },
        Field {
            name: "publicKeyAlgorithm",
            column: "public_key_algorithm",
            ty: FieldType::Text,
        },
        Field {
            name: "publicKeySize",
            column: "public_key_size",
            ty: FieldType::Int,
        },
        Field {
            name: "fingerprint",
            column: "fingerprint",
            ty: FieldType::Text,
        },
        Field {
            name: "providerId",
            column: "serial_hex",
            ty: FieldType::Text,
        },
    ],
    q_columns: &["domain_name", "san", "product"],
    // Every column but the certificate, its chain and the CSR, which a list
    // entry does not show: they are most of a row's bytes. The same names
    // stay in the result (empty), so one row mapper serves list and get.
    select: "id, customer_id, process_id, product, validation_type, certificate_type, domain_name, san, \
             organization, department, address, city, state, postal_code, country, coc, start_date, \
             expiry_date, subscription_end_date, status, public_key_algorithm, public_key_size, \
             NULL AS csr, substr(certificate_der, 1, 0) AS certificate_der, NULL AS chain_pem, fingerprint, \
             serial_hex, issuer_id, key_sha256, imported, subscription_id, acme_account_id, acme_order_id, \
             replaced_by, revoked_at, revocation_reason, created_at",
    default_order: "id DESC",
    counted: Some("certificates"),
};

pub fn certificate_from_row(r: &impl Cols) -> Result<CertificateRow> {
    Ok(CertificateRow {
        id: r.col("id")?,
        customer_id: r.col("customer_id")?,
        process_id: r.col("process_id")?,
        product: r.col("product")?,
        validation_type: r.col("validation_type")?,
        certificate_type: r.col("certificate_type")?,
        domain_name: r.col("domain_name")?,
        san: from_json(&r.col::<String>("san")?)?,
        organization: r.col("organization")?,
        department: r.col("department")?,
        address: r.col("address")?,
        city: r.col("city")?,
        state: r.col("state")?,
        postal_code: r.col("postal_code")?,
        country: r.col("country")?,
        coc: r.col("coc")?,
        start_date: r.col("start_date")?,
        expiry_date: r.col("expiry_date")?,
        subscription_end_date: r.col("subscription_end_date")?,
        status: r.col("status")?,
        public_key_algorithm: r.col("public_key_algorithm")?,
        public_key_size: r.col("public_key_size")?,
        csr: r.col("csr")?,
        certificate_der: r.col("certificate_der")?,
        chain_pem: r.col("chain_pem")?,
        fingerprint: r.col("fingerprint")?,
        serial_hex: r.col("serial_hex")?,
        issuer_id: r.col("issuer_id")?,
        key_sha256: r.col("key_sha256")?,
        imported: r.col::<i64>("imported")? != 0,
        subscription_id: r.col("subscription_id")?,
        acme_account_id: r.col("acme_account_id")?,
        acme_order_id: r.col("acme_order_id")?,
        replaced_by: r.col("replaced_by")?,
        revoked_at: r.col("revoked_at")?,
        revocation_reason: r.col("revocation_reason")?,
        created_at: r.col("created_at")?,
    })
}

/// One stored issuer (keys sealed).
#[derive(Debug, Clone)]
pub struct IssuerRow {
    pub id: String,
    pub parent: Option<String>,
    pub cert_der: Vec<u8>,
    pub key_sealed: Vec<u8>,
    pub ocsp_cert_der: Option<Vec<u8>>,
    pub ocsp_key_sealed: Option<Vec<u8>>,
}

impl Db {
    pub async fn insert_certificate(&self, tx: &mut Tx, c: &CertificateRow) -> Result<i64> {
        tx.scalar_one("INSERT INTO certificates (customer_id, process_id, product, validation_type, certificate_type, domain_name, san, \
             organization, department, address, city, state, postal_code, country, coc, start_date, expiry_date, \
             subscription_end_date, status, public_key_algorithm, public_key_size, csr, certificate_der, chain_pem, fingerprint, \
             serial_hex, issuer_id, key_sha256, imported, subscription_id, acme_account_id, acme_order_id, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            &[
                Arg::from(c.customer_id),
                Arg::from(c.process_id),
                Arg::from(c.product.clone()),
                Arg::from(c.validation_type.clone()),
                Arg::from(c.certificate_type.clone()),
                Arg::from(c.domain_name.clone()),
                Arg::from(to_json(&c.san)),
                Arg::from(c.organization.clone()),
                Arg::from(c.department.clone()),
                Arg::from(c.address.clone()),
                Arg::from(c.city.clone()),
                Arg::from(c.state.clone()),
                Arg::from(c.postal_code.clone()),
                Arg::from(c.country.clone()),
                Arg::from(c.coc.clone()),
                Arg::from(c.start_date),
                Arg::from(c.expiry_date),
                Arg::from(c.subscription_end_date),
                Arg::from(c.status.clone()),
                Arg::from(c.public_key_algorithm.clone()),
                Arg::from(c.public_key_size),
                Arg::from(c.csr.clone()),
                Arg::from(c.certificate_der.clone()),
                Arg::from(c.chain_pem.clone()),
                Arg::from(c.fingerprint.clone()),
                Arg::from(c.serial_hex.clone()),
                Arg::from(c.issuer_id.clone()),
                Arg::from(c.key_sha256.clone()),
                Arg::from(i64::from(c.imported)),
                Arg::from(c.subscription_id),
                Arg::from(c.acme_account_id),
                Arg::from(c.acme_order_id),
                Arg::from(c.created_at),
            ])
        .await
    }

    /// A certificate by id, scoped to a customer when given.
    pub async fn certificate(
        &self,
        customer_id: Option<i64>,
        id: i64,
    ) -> Result<Option<CertificateRow>> {
        let row = self
            .read_optional("SELECT * FROM certificates WHERE id = ?", &[Arg::from(id)])
            .await?;
        let c = row.as_ref().map(certificate_from_row).transpose()?;
        Ok(c.filter(|c| customer_id.is_none_or(|x| x == c.customer_id)))
    }

    pub async fn certificate_tx(&self, tx: &mut Tx, id: i64) -> Result<Option<CertificateRow>> {
        let row = tx
            .fetch_optional("SELECT * FROM certificates WHERE id = ?", &[Arg::from(id)])
            .await?;
        row.as_ref().map(certificate_from_row).transpose()
    }

    pub async fn certificate_by_serial(
        &self,
        issuer_id: &str,
        serial_hex: &str,
    ) -> Result<Option<CertificateRow>> {
        let row = self
            .read_optional(
                "SELECT * FROM certificates WHERE issuer_id = ? AND serial_hex = ?",
                &[
                    Arg::from(issuer_id.to_string()),
                    Arg::from(serial_hex.to_string()),
                ],
            )
            .await?;
        row.as_ref().map(certificate_from_row).transpose()
    }

    /// Certificates (of any customer) that are not imported, matching a serial (operator revocation).
    /// Leading zeros are ignored on both sides: stored serials keep the DER
    /// bytes' leading zero nibble (`0c…`), while operators paste them without.
    pub async fn certificates_by_serial(&self, serial_hex: &str) -> Result<Vec<CertificateRow>> {
        let rows = self
            .read_all(
                "SELECT * FROM certificates WHERE ltrim(serial_hex, '0') = ? AND imported = 0",
                &[Arg::from(serial_hex.trim_start_matches('0').to_string())],
            )
            .await?;
        rows.iter().map(certificate_from_row).collect()
    }

    /// Unexpired, unrevoked certificates with a key (key-compromise revocation).
    pub async fn live_certificates_by_key(
        &self,
        tx: &mut Tx,
        key_sha256: &str,
        now: i64,
    ) -> Result<Vec<CertificateRow>> {
        let rows = tx.fetch_all("SELECT * FROM certificates WHERE key_sha256 = ? AND imported = 0 AND revoked_at IS NULL AND expiry_date > ?",
            &[
                Arg::from(key_sha256.to_string()),
                Arg::from(now),
            ])
        .await?;
        rows.iter().map(certificate_from_row).collect()
    }

    /// Marks a certificate revoked; false if it already was.
    pub async fn mark_revoked(&self, tx: &mut Tx, id: i64, reason: &str, now: i64) -> Result<bool> {
        let r = tx.exec("UPDATE certificates SET status = 'REVOKED', revoked_at = ?, revocation_reason = ? WHERE id = ? AND revoked_at IS NULL",
            &[
                Arg::from(now),
                Arg::from(reason.to_string()),
                Arg::from(id),
            ])
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn set_certificate_status(
        &self,
        tx: &mut Tx,
        id: i64,
        status: &str,
        replaced_by: Option<i64>,
    ) -> Result<()> {
        tx.exec("UPDATE certificates SET status = ?, replaced_by = COALESCE(?, replaced_by) WHERE id = ?",
            &[
                Arg::from(status.to_string()),
                Arg::from(replaced_by),
                Arg::from(id),
            ])
            .await?;
        Ok(())
    }

    /// (serial_hex, revoked_at, reason) of an issuer's revoked certificates.
    pub async fn revoked_entries(
        &self,
        tx: &mut Tx,
        issuer_id: &str,
    ) -> Result<Vec<(String, i64, String)>> {
        let rows = tx.fetch_all("SELECT serial_hex, revoked_at, revocation_reason FROM certificates WHERE issuer_id = ? AND revoked_at IS NOT NULL \
             AND imported = 0 ORDER BY revoked_at", &[Arg::from(issuer_id.to_string())])
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.col("serial_hex")?,
                    r.col("revoked_at")?,
                    r.col::<Option<String>>("revocation_reason")?
                        .unwrap_or_default(),
                ))
            })
            .collect()
    }

    pub async fn block_key(
        &self,
        tx: &mut Tx,
        key_sha256: &str,
        reason: &str,
        now: i64,
    ) -> Result<()> {
        tx.exec("INSERT INTO blocked_keys (key_sha256, reason, created_at) VALUES (?, ?, ?) ON CONFLICT (key_sha256) DO NOTHING",
            &[
                Arg::from(key_sha256.to_string()),
                Arg::from(reason.to_string()),
                Arg::from(now),
            ])
        .await?;
        Ok(())
    }

    pub async fn blocked_key_reason(&self, key_sha256: &str) -> Result<Option<String>> {
        let row = self
            .read_optional(
                "SELECT reason FROM blocked_keys WHERE key_sha256 = ?",
                &[Arg::from(key_sha256)],
            )
            .await?;
        row.map(|r| r.col("reason")).transpose()
    }

    // ---- CA issuers -------------------------------------------------------

    pub async fn issuers(&self) -> Result<Vec<IssuerRow>> {
        let rows = sqlx::query("SELECT * FROM ca_issuers ORDER BY created_at, id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(IssuerRow {
                    id: r.try_get("id")?,
                    parent: r.try_get("parent")?,
                    cert_der: r.try_get("cert_der")?,
                    key_sealed: r.try_get("key_sealed")?,
                    ocsp_cert_der: r.try_get("ocsp_cert_der")?,
                    ocsp_key_sealed: r.try_get("ocsp_key_sealed")?,
                })
            })
            .collect()
    }

    /// Stores a freshly created hierarchy unless another node stored one
    /// first (then the caller loads that one). Returns whether ours won.
    pub async fn store_issuers_if_absent(&self, rows: &[IssuerRow], now: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        if self.dialect() == crate::Dialect::Postgres {
            tx.exec("SELECT pg_advisory_xact_lock(7241002)", &[])
                .await?;
        }
        let n: i64 = tx
            .scalar_one("SELECT COUNT(*) FROM ca_issuers", &[])
            .await?;
        if n > 0 {
            tx.commit().await?;
            return Ok(false);
        }
        for r in rows {
            tx.exec("INSERT INTO ca_issuers (id, parent, cert_der, key_sealed, ocsp_cert_der, ocsp_key_sealed, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                &[
                    Arg::from(r.id.clone()),
                    Arg::from(r.parent.clone()),
                    Arg::from(r.cert_der.clone()),
                    Arg::from(r.key_sealed.clone()),
                    Arg::from(r.ocsp_cert_der.clone()),
                    Arg::from(r.ocsp_key_sealed.clone()),
                    Arg::from(now),
                ])
            .await?;
            tx.exec(
                "INSERT INTO crl_numbers (issuer, next) VALUES (?, 1)",
                &[Arg::from(r.id.clone())],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn update_ocsp_responder(
        &self,
        issuer: &str,
        cert_der: &[u8],
        key_sealed: &[u8],
    ) -> Result<()> {
        self.write(
            "UPDATE ca_issuers SET ocsp_cert_der = ?, ocsp_key_sealed = ? WHERE id = ?",
            &[
                Arg::from(cert_der.to_vec()),
                Arg::from(key_sealed.to_vec()),
                Arg::from(issuer.to_string()),
            ],
        )
        .await?;
        Ok(())
    }

    // ---- CRLs and OCSP ----------------------------------------------------

    /// Allocates the next CRL number of an issuer (monotonic across nodes).
    pub async fn next_crl_number(&self, tx: &mut Tx, issuer: &str) -> Result<i64> {
        tx.scalar_one(
            self.sql("UPDATE crl_numbers SET next = next + 1 WHERE issuer = ? RETURNING next - 1"),
            &[Arg::from(issuer.to_string())],
        )
        .await
    }

    pub async fn store_crl(
        &self,
        tx: &mut Tx,
        issuer: &str,
        number: i64,
        der: &[u8],
        this: i64,
        next: i64,
    ) -> Result<()> {
        tx.exec("INSERT INTO crls (issuer, number, der, this_update, next_update) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (issuer) DO UPDATE SET number = excluded.number, der = excluded.der, \
             this_update = excluded.this_update, next_update = excluded.next_update WHERE crls.number < excluded.number",
            &[
                Arg::from(issuer.to_string()),
                Arg::from(number),
                Arg::from(der.to_vec()),
                Arg::from(this),
                Arg::from(next),
            ])
        .await?;
        Ok(())
    }

    /// (der, next_update) of the stored CRL.
    pub async fn crl(&self, issuer: &str) -> Result<Option<(Vec<u8>, i64)>> {
        let row = self
            .read_optional(
                "SELECT der, next_update FROM crls WHERE issuer = ?",
                &[Arg::from(issuer.to_string())],
            )
            .await?;
        row.map(|r| Ok((r.col("der")?, r.col("next_update")?)))
            .transpose()
    }

    pub async fn ocsp_cached(
        &self,
        issuer: &str,
        serial_hex: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        let row = self
            .read_optional(
                "SELECT response, produced_at FROM ocsp_cache WHERE issuer = ? AND serial_hex = ?",
                &[
                    Arg::from(issuer.to_string()),
                    Arg::from(serial_hex.to_string()),
                ],
            )
            .await?;
        row.map(|r| Ok((r.col("response")?, r.col("produced_at")?)))
            .transpose()
    }

    pub async fn cache_ocsp(
        &self,
        issuer: &str,
        serial_hex: &str,
        response: &[u8],
        produced_at: i64,
    ) -> Result<()> {
        self.write(
            "INSERT INTO ocsp_cache (issuer, serial_hex, response, produced_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (issuer, serial_hex) DO UPDATE SET response = excluded.response, produced_at = excluded.produced_at",
            &[
                Arg::from(issuer.to_string()),
                Arg::from(serial_hex.to_string()),
                Arg::from(response.to_vec()),
                Arg::from(produced_at),
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn drop_ocsp_cache(&self, tx: &mut Tx, issuer: &str, serial_hex: &str) -> Result<()> {
        tx.exec(
            "DELETE FROM ocsp_cache WHERE issuer = ? AND serial_hex = ?",
            &[
                Arg::from(issuer.to_string()),
                Arg::from(serial_hex.to_string()),
            ],
        )
        .await?;
        Ok(())
    }
}

// ---- certificate lifecycle (REST) additions --------------------------------

impl Db {
    /// A customer's certificate with this SHA-256 fingerprint (duplicate imports).
    pub async fn certificate_by_fingerprint(
        &self,
        tx: &mut Tx,
        customer_id: i64,
        fingerprint: &str,
    ) -> Result<Option<i64>> {
        tx.scalar_optional(
            self.sql(
                "SELECT id FROM certificates WHERE customer_id = ? AND fingerprint = ? LIMIT 1",
            ),
            &[Arg::from(customer_id), Arg::from(fingerprint.to_string())],
        )
        .await
    }

    /// Moves a certificate from `from` to `to` (ACTIVE → EXPIRED); false when it was not in `from`.
    pub async fn transition_certificate(
        &self,
        tx: &mut Tx,
        id: i64,
        from: &str,
        to: &str,
    ) -> Result<bool> {
        let r = tx
            .exec(
                "UPDATE certificates SET status = ? WHERE id = ? AND status = ?",
                &[
                    Arg::from(to.to_string()),
                    Arg::from(id),
                    Arg::from(from.to_string()),
                ],
            )
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Certificates of any customer, not imported, whose key has this SHA-256 (operator revocation).
    pub async fn certificates_by_key(&self, key_sha256: &str) -> Result<Vec<CertificateRow>> {
        let rows = self
            .read_all(
                "SELECT * FROM certificates WHERE key_sha256 = ? AND imported = 0 ORDER BY id",
                &[Arg::from(key_sha256.to_string())],
            )
            .await?;
        rows.iter().map(certificate_from_row).collect()
    }
}
