-- Per-customer totals for the large lists, kept by triggers in the same
-- transaction as the rows they count, so a list's first page can report its
-- total without COUNT(*) over every row the customer owns. A row counts
-- while it is visible in the list: subscriptions until deleted.
DELETE FROM customer_counts;
INSERT INTO customer_counts (customer_id, kind, n)
  SELECT customer_id, 'subscriptions', COUNT(*) FROM subscriptions WHERE deleted_at IS NULL GROUP BY customer_id;
INSERT INTO customer_counts (customer_id, kind, n)
  SELECT customer_id, 'certificates', COUNT(*) FROM certificates GROUP BY customer_id;

CREATE TRIGGER subscriptions_count_insert AFTER INSERT ON subscriptions
  WHEN NEW.deleted_at IS NULL
BEGIN
  INSERT INTO customer_counts (customer_id, kind, n) VALUES (NEW.customer_id, 'subscriptions', 1)
    ON CONFLICT (customer_id, kind) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER subscriptions_count_delete AFTER DELETE ON subscriptions
  WHEN OLD.deleted_at IS NULL
BEGIN
  UPDATE customer_counts SET n = n - 1 WHERE customer_id = OLD.customer_id AND kind = 'subscriptions';
END;
CREATE TRIGGER subscriptions_count_update AFTER UPDATE OF deleted_at, customer_id ON subscriptions
  WHEN (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL) OR OLD.customer_id <> NEW.customer_id
BEGIN
  UPDATE customer_counts SET n = n - 1
    WHERE OLD.deleted_at IS NULL AND customer_id = OLD.customer_id AND kind = 'subscriptions';
  INSERT INTO customer_counts (customer_id, kind, n)
    SELECT NEW.customer_id, 'subscriptions', 1 WHERE NEW.deleted_at IS NULL
    ON CONFLICT (customer_id, kind) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER certificates_count_insert AFTER INSERT ON certificates
BEGIN
  INSERT INTO customer_counts (customer_id, kind, n) VALUES (NEW.customer_id, 'certificates', 1)
    ON CONFLICT (customer_id, kind) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER certificates_count_delete AFTER DELETE ON certificates
BEGIN
  UPDATE customer_counts SET n = n - 1 WHERE customer_id = OLD.customer_id AND kind = 'certificates';
END;
