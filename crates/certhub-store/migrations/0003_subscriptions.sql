-- ACME subscriptions and organisation validations.
-- `status` is derived (domain::subscription::status) from term_state and
-- org_state and stored with them, so list filters and orderings on it are plain
-- column comparisons. expiry_date = add_months(created_at, months_paid).
CREATE TABLE subscriptions (
  id {{ID}}, customer_id BIGINT NOT NULL, customer TEXT NOT NULL, product TEXT NOT NULL,
  domain_names TEXT NOT NULL, organization TEXT, address TEXT, city TEXT, state TEXT, postal_code TEXT,
  country TEXT, approver TEXT, auto_renew BIGINT NOT NULL, period BIGINT NOT NULL, cert_validity BIGINT,
  months_paid BIGINT NOT NULL,
  created_at BIGINT NOT NULL, updated_at BIGINT, expiry_date BIGINT NOT NULL,
  term_state TEXT NOT NULL,           -- ACTIVE | SUSPENDED | REVOKED (the paid term)
  org_state TEXT NOT NULL,            -- NONE (DV) | VALIDATED | PENDING | REJECTED
  status TEXT NOT NULL,               -- RTR status, derived from the two above
  org_valid_until BIGINT, org_process_id BIGINT,
  approved_organization TEXT, approved_country TEXT, approved_state TEXT, approved_city TEXT,
  eab_kid TEXT NOT NULL UNIQUE, eab_hmac_sealed {{BLOB}} NOT NULL, eab_created_at BIGINT NOT NULL,
  deleted_at BIGINT);
CREATE INDEX subscriptions_customer ON subscriptions (customer_id, id);
CREATE INDEX subscriptions_customer_expiry ON subscriptions (customer_id, expiry_date);
CREATE TABLE org_validations (
  id {{ID}}, customer_id BIGINT NOT NULL, subscription_id BIGINT, process_id BIGINT NOT NULL,
  organization TEXT NOT NULL, country TEXT NOT NULL, state TEXT, city TEXT, address TEXT, postal_code TEXT,
  org_key TEXT NOT NULL,              -- OrgIdentity::key(), for reuse look-ups
  status TEXT NOT NULL,               -- PENDING | APPROVED | REJECTED | CANCELLED
  reason TEXT, created_at BIGINT NOT NULL, decided_at BIGINT, valid_until BIGINT);
CREATE INDEX org_validations_customer ON org_validations (customer_id, status);
CREATE INDEX org_validations_reuse ON org_validations (customer_id, org_key, valid_until);
CREATE INDEX org_validations_status ON org_validations (status, id);
CREATE INDEX org_validations_process ON org_validations (process_id);
