-- Certificate lifecycle (REST requests, DCV, validation reuse, outbox).
-- One pending request per certificate process (request, renew, reissue);
-- `details` is the JSON snapshot of what will be issued once every name
-- (and, for OV, the organisation) is validated.
CREATE TABLE cert_requests (
  process_id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, action TEXT NOT NULL, product TEXT NOT NULL,
  details TEXT NOT NULL,
  status TEXT NOT NULL,               -- PENDING | ISSUED | CANCELLED | FAILED
  checks BIGINT NOT NULL DEFAULT 0, attention BIGINT NOT NULL DEFAULT 0,
  certificate_id BIGINT, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE INDEX cert_requests_customer ON cert_requests (customer_id, status);
-- One DCV entry per name of a request.
CREATE TABLE dcv_entries (
  id {{ID}}, process_id BIGINT NOT NULL, customer_id BIGINT NOT NULL, name TEXT NOT NULL,
  method TEXT NOT NULL,               -- DNS | FILE | EMAIL | REUSED | AUTHKEY
  token TEXT NOT NULL,                -- DNS/FILE value (random, >= 112 bits)
  file_name TEXT,                     -- FILE: {file_name}.txt
  email TEXT, approval_token TEXT UNIQUE,
  status TEXT NOT NULL,               -- WAITING | ATTENTION | VALIDATED
  caa_status TEXT, last_error TEXT, created_at BIGINT NOT NULL, validated_at BIGINT);
CREATE INDEX dcv_entries_process ON dcv_entries (process_id, id);
-- Every completed validation (BR 4.2.1 reuse): the validated domain (a
-- wildcard's base name, an e-mail's domain) and the method.
CREATE TABLE completed_validations (
  id {{ID}}, customer_id BIGINT NOT NULL, domain TEXT NOT NULL, method TEXT NOT NULL,
  validated_at BIGINT NOT NULL, process_id BIGINT);
CREATE INDEX completed_validations_lookup ON completed_validations (customer_id, domain, validated_at);
