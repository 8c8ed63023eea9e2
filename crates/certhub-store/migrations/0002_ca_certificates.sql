-- The embedded CA and every certificate certhub issued or imported.
CREATE TABLE ca_issuers (
  id TEXT PRIMARY KEY, parent TEXT, cert_der {{BLOB}} NOT NULL, key_sealed {{BLOB}} NOT NULL,
  ocsp_cert_der {{BLOB}}, ocsp_key_sealed {{BLOB}}, created_at BIGINT NOT NULL);
CREATE TABLE crl_numbers (issuer TEXT PRIMARY KEY, next BIGINT NOT NULL);
CREATE TABLE crls (issuer TEXT PRIMARY KEY, number BIGINT NOT NULL, der {{BLOB}} NOT NULL, this_update BIGINT NOT NULL, next_update BIGINT NOT NULL);
CREATE TABLE ocsp_cache (issuer TEXT NOT NULL, serial_hex TEXT NOT NULL, response {{BLOB}} NOT NULL, produced_at BIGINT NOT NULL, PRIMARY KEY (issuer, serial_hex));
CREATE TABLE blocked_keys (key_sha256 TEXT PRIMARY KEY, reason TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE certificates (
  id {{ID}}, customer_id BIGINT NOT NULL, process_id BIGINT NOT NULL, product TEXT NOT NULL,
  validation_type TEXT NOT NULL, certificate_type TEXT NOT NULL, domain_name TEXT NOT NULL, san TEXT NOT NULL,
  organization TEXT, department TEXT, address TEXT, city TEXT, state TEXT, postal_code TEXT, country TEXT, coc TEXT,
  start_date BIGINT NOT NULL, expiry_date BIGINT NOT NULL, subscription_end_date BIGINT, status TEXT NOT NULL,
  public_key_algorithm TEXT NOT NULL, public_key_size BIGINT, csr TEXT, certificate_der {{BLOB}} NOT NULL,
  chain_pem TEXT, fingerprint TEXT NOT NULL, serial_hex TEXT NOT NULL, issuer_id TEXT NOT NULL, key_sha256 TEXT NOT NULL,
  imported BIGINT NOT NULL DEFAULT 0, subscription_id BIGINT, acme_account_id BIGINT, acme_order_id BIGINT,
  replaced_by BIGINT, revoked_at BIGINT, revocation_reason TEXT, created_at BIGINT NOT NULL,
  UNIQUE (issuer_id, serial_hex));
CREATE INDEX certificates_customer ON certificates (customer_id, id);
CREATE INDEX certificates_key ON certificates (key_sha256);
CREATE INDEX certificates_revoked ON certificates (issuer_id, revoked_at);
CREATE INDEX certificates_subscription ON certificates (subscription_id);
CREATE INDEX certificates_fingerprint ON certificates (customer_id, fingerprint);
