-- Chained orders (接力单, docs/dispatch.md#chained-orders): an offer made to a worker still
-- on a job that ends soon names that job; accepting it assigns the order as their next job
-- (it starts when that one ends). NULL: an ordinary offer to a free worker.
ALTER TABLE offers ADD COLUMN after_order_id bigint REFERENCES orders(id);
