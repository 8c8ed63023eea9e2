-- SMTP delivery of outbox messages (when an SMTP relay is configured).
ALTER TABLE outbox ADD COLUMN delivered_at BIGINT;
ALTER TABLE outbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
CREATE INDEX outbox_undelivered ON outbox (id) WHERE delivered_at IS NULL;
