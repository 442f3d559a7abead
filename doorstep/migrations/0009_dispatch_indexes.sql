-- The engine's per-tick queries: orders by city and status, workers' jobs by day.
CREATE INDEX orders_city_status ON orders (city_id, status, created_at);
CREATE INDEX orders_worker_created ON orders (worker_id, created_at);
