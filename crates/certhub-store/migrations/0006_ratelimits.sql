-- Rate-limit counters shared by every node: one row per (key, fixed window).
-- Keys are namespaced by scope (e.g. "key:12", "ip:203.0.113.9", "order:7").
CREATE TABLE rate_limits (
  key TEXT NOT NULL, window_start BIGINT NOT NULL, count BIGINT NOT NULL,
  PRIMARY KEY (key, window_start));
CREATE INDEX rate_limits_window ON rate_limits (window_start);
