-- PostgreSQL text of 0008_list_counts.sql: the same counts, kept by
-- statement-level triggers over transition tables. Per-row triggers would
-- update one counter row once per inserted row, and PostgreSQL keeps every
-- version of that row until the transaction ends: a bulk insert of n rows
-- would cost O(n^2). Per statement, each customer's counter changes once.
DELETE FROM customer_counts;
INSERT INTO customer_counts (customer_id, kind, n)
  SELECT customer_id, 'subscriptions', COUNT(*) FROM subscriptions WHERE deleted_at IS NULL GROUP BY customer_id;
INSERT INTO customer_counts (customer_id, kind, n)
  SELECT customer_id, 'certificates', COUNT(*) FROM certificates GROUP BY customer_id;

-- Subscriptions count while not deleted. Updates net out old against new, so
-- an ordinary save (no delete, no change of owner) touches no counter.
CREATE FUNCTION certhub_count_subscriptions() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO customer_counts (customer_id, kind, n)
      SELECT customer_id, 'subscriptions', COUNT(*) FROM new_rows WHERE deleted_at IS NULL GROUP BY customer_id
      ON CONFLICT (customer_id, kind) DO UPDATE SET n = customer_counts.n + EXCLUDED.n;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO customer_counts (customer_id, kind, n)
      SELECT customer_id, 'subscriptions', -COUNT(*) FROM old_rows WHERE deleted_at IS NULL GROUP BY customer_id
      ON CONFLICT (customer_id, kind) DO UPDATE SET n = customer_counts.n + EXCLUDED.n;
  ELSE
    INSERT INTO customer_counts (customer_id, kind, n)
      SELECT customer_id, 'subscriptions', SUM(d) FROM (
        SELECT customer_id, -1 AS d FROM old_rows WHERE deleted_at IS NULL
        UNION ALL
        SELECT customer_id, 1 AS d FROM new_rows WHERE deleted_at IS NULL) AS delta
      GROUP BY customer_id HAVING SUM(d) <> 0
      ON CONFLICT (customer_id, kind) DO UPDATE SET n = customer_counts.n + EXCLUDED.n;
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE FUNCTION certhub_count_certificates() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO customer_counts (customer_id, kind, n)
      SELECT customer_id, 'certificates', COUNT(*) FROM new_rows GROUP BY customer_id
      ON CONFLICT (customer_id, kind) DO UPDATE SET n = customer_counts.n + EXCLUDED.n;
  ELSE
    INSERT INTO customer_counts (customer_id, kind, n)
      SELECT customer_id, 'certificates', -COUNT(*) FROM old_rows GROUP BY customer_id
      ON CONFLICT (customer_id, kind) DO UPDATE SET n = customer_counts.n + EXCLUDED.n;
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER subscriptions_count_insert AFTER INSERT ON subscriptions
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION certhub_count_subscriptions();
CREATE TRIGGER subscriptions_count_update AFTER UPDATE ON subscriptions
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION certhub_count_subscriptions();
CREATE TRIGGER subscriptions_count_delete AFTER DELETE ON subscriptions
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION certhub_count_subscriptions();
CREATE TRIGGER certificates_count_insert AFTER INSERT ON certificates
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION certhub_count_certificates();
CREATE TRIGGER certificates_count_delete AFTER DELETE ON certificates
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION certhub_count_certificates();
