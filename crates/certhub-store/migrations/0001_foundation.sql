-- Foundation: customers, keys, money, products, processes, notifications, jobs, audit.
-- Written once for both backends: {{ID}} and {{BLOB}} are replaced per dialect.
CREATE TABLE server_secrets (name TEXT PRIMARY KEY, sealed {{BLOB}} NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE customers (id {{ID}}, handle TEXT NOT NULL UNIQUE, currency TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE api_keys (
  id {{ID}}, customer_id BIGINT NOT NULL REFERENCES customers(id), key_id TEXT NOT NULL UNIQUE,
  key_hash {{BLOB}} NOT NULL, created_at BIGINT NOT NULL, revoked_at BIGINT);
CREATE TABLE credit_accounts (
  customer_id BIGINT NOT NULL REFERENCES customers(id), currency TEXT NOT NULL,
  balance BIGINT NOT NULL DEFAULT 0, reservation BIGINT NOT NULL DEFAULT 0, locked BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (customer_id, currency));
CREATE TABLE products (product TEXT PRIMARY KEY, definition TEXT NOT NULL, sort_order BIGINT NOT NULL DEFAULT 0);
CREATE TABLE prices (
  product TEXT NOT NULL, action TEXT NOT NULL, period BIGINT NOT NULL, currency TEXT NOT NULL, price BIGINT NOT NULL,
  PRIMARY KEY (product, action, period, currency));
CREATE TABLE processes (
  id {{ID}}, customer_id BIGINT NOT NULL, customer TEXT NOT NULL, user_name TEXT NOT NULL,
  type TEXT NOT NULL, action TEXT NOT NULL, identifier TEXT NOT NULL, status TEXT NOT NULL, status_detail TEXT,
  command TEXT NOT NULL, info TEXT, subject_id BIGINT, reservation TEXT, txn TEXT, refund TEXT, billables TEXT,
  resume_types TEXT, error TEXT, created_at BIGINT NOT NULL, updated_at BIGINT, started_at BIGINT);
CREATE INDEX processes_customer ON processes (customer_id, id);
CREATE INDEX processes_subject ON processes (type, subject_id);
CREATE TABLE transactions (
  id {{ID}}, customer_id BIGINT NOT NULL, customer TEXT NOT NULL, date BIGINT NOT NULL, amount BIGINT NOT NULL,
  currency TEXT NOT NULL, process_id BIGINT, process_type TEXT, process_identifier TEXT, process_action TEXT,
  billables TEXT, kind TEXT NOT NULL, subject_id BIGINT);
CREATE INDEX transactions_customer ON transactions (customer_id, id);
CREATE INDEX transactions_subject ON transactions (process_type, subject_id);
CREATE TABLE notifications (
  id {{ID}}, customer_id BIGINT NOT NULL, fire_date BIGINT NOT NULL, event_type TEXT NOT NULL,
  notification_type TEXT NOT NULL, message TEXT NOT NULL, payload TEXT, process_id BIGINT, process_type TEXT,
  process_identifier TEXT, certificate_id BIGINT, product TEXT, expiry_date BIGINT, read_date BIGINT,
  acknowledge_date BIGINT, dedupe_key TEXT UNIQUE);
CREATE INDEX notifications_customer ON notifications (customer_id, id);
CREATE TABLE jobs (
  id {{ID}}, kind TEXT NOT NULL, subject_id BIGINT NOT NULL, due_at BIGINT NOT NULL, lease_owner TEXT,
  lease_until BIGINT, attempts BIGINT NOT NULL DEFAULT 0, last_error TEXT, done_at BIGINT,
  UNIQUE (kind, subject_id, due_at));
CREATE INDEX jobs_due ON jobs (due_at) WHERE done_at IS NULL;
CREATE TABLE audit (
  id {{ID}}, at BIGINT NOT NULL, actor TEXT NOT NULL, customer_id BIGINT, action TEXT NOT NULL,
  subject TEXT, detail TEXT);
CREATE INDEX audit_customer ON audit (customer_id, at);
CREATE TABLE idempotency (
  api_key_id BIGINT NOT NULL, idem_key TEXT NOT NULL, request_hash TEXT NOT NULL, status BIGINT NOT NULL,
  headers TEXT, body {{BLOB}}, created_at BIGINT NOT NULL, PRIMARY KEY (api_key_id, idem_key));
CREATE TABLE customer_counts (customer_id BIGINT NOT NULL, kind TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (customer_id, kind));
CREATE TABLE outbox (id {{ID}}, created_at BIGINT NOT NULL, customer_id BIGINT, recipient TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL);
