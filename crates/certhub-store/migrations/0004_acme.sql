-- The ACME server (RFC 8555): accounts bound to subscriptions by EAB, orders,
-- authorisations and used nonces. Challenges live inside their authorisation
-- row: certhub offers each challenge type once per authorisation and only one
-- of them can ever be attempted, so a separate table would only add writes.
-- Statuses are RFC 8555 words; expiry is applied when a row is read.
CREATE TABLE acme_accounts (
  id {{ID}}, product TEXT NOT NULL, subscription_id BIGINT NOT NULL, customer_id BIGINT NOT NULL,
  thumbprint TEXT NOT NULL,           -- RFC 7638 thumbprint of the account key (base64url)
  jwk TEXT NOT NULL, contact TEXT NOT NULL,
  status TEXT NOT NULL,               -- valid | deactivated | revoked
  eab_kid TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
  UNIQUE (product, thumbprint));
CREATE INDEX acme_accounts_subscription ON acme_accounts (subscription_id, id);
CREATE TABLE acme_authzs (
  id {{ID}}, account_id BIGINT NOT NULL, identifier TEXT NOT NULL, wildcard BIGINT NOT NULL,
  status TEXT NOT NULL,               -- pending | valid | invalid | deactivated
  token TEXT NOT NULL, expires_at BIGINT NOT NULL,
  chall_type TEXT,                    -- the one challenge attempted (NULL: none yet)
  chall_status TEXT,                  -- processing | valid | invalid
  chall_error TEXT, validated_at BIGINT, created_at BIGINT NOT NULL);
CREATE INDEX acme_authzs_reuse ON acme_authzs (account_id, identifier, status);
CREATE TABLE acme_orders (
  id {{ID}}, account_id BIGINT NOT NULL, subscription_id BIGINT NOT NULL,
  status TEXT NOT NULL,               -- pending | ready | processing | valid | invalid
  identifiers TEXT NOT NULL,          -- JSON array of normalised names (wildcards as *.name)
  ident_key TEXT NOT NULL,            -- sorted names, for reuse of identical orders
  authz_ids TEXT NOT NULL,            -- JSON array, same order as identifiers
  not_before BIGINT, not_after BIGINT, replaces TEXT, replaces_cert_id BIGINT,
  expires_at BIGINT NOT NULL, error TEXT, certificate_id BIGINT,
  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE INDEX acme_orders_account ON acme_orders (account_id, id);
CREATE INDEX acme_orders_reuse ON acme_orders (account_id, ident_key, status);
CREATE INDEX acme_orders_subscription ON acme_orders (subscription_id, status);
-- Which orders wait for an authorisation (orders turn ready/invalid when it settles).
CREATE TABLE acme_order_authzs (authz_id BIGINT NOT NULL, order_id BIGINT NOT NULL, PRIMARY KEY (authz_id, order_id));
-- Used nonces (PostgreSQL, several nodes). Nonces themselves are stateless
-- and HMAC-sealed; a nonce may be used once, until it expires.
CREATE TABLE acme_nonces (nonce TEXT PRIMARY KEY, expires_at BIGINT NOT NULL);
CREATE INDEX acme_nonces_expiry ON acme_nonces (expires_at);
