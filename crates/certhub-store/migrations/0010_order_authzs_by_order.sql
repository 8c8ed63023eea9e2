-- The link between ACME orders and their authorisations is keyed
-- (authz_id, order_id): good for "the orders that wait for this
-- authorisation", useless for "the authorisations of this order", which the
-- readiness check asks on every validation. Without this index that question
-- read the whole link table (SQLite: a full scan; PostgreSQL: a full index
-- scan), so each validation cost grew with every order ever placed.
CREATE INDEX acme_order_authzs_order ON acme_order_authzs (order_id, authz_id);
