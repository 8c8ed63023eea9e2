-- Idempotency keys of /v2 mutations (design.md, `Idempotency-Key`): one row
-- per (API key, client key), claimed in the same transaction as the state
-- change it guards; `response` (sealed, base64) is filled in once the
-- response is known and replayed for 24 hours. This replaces the
-- `idempotency` table of 0001, which nothing ever wrote (its NOT NULL status
-- could not say "claimed, response not yet known").
DROP TABLE idempotency;
CREATE TABLE idempotency_keys (
  api_key_id BIGINT NOT NULL, key TEXT NOT NULL,
  request_hash TEXT NOT NULL, created_at BIGINT NOT NULL,
  response TEXT,
  PRIMARY KEY (api_key_id, key));
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
