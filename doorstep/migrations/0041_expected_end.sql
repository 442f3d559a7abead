-- The worker's own estimate of when a job on site ends (预计还需N分钟, docs/dispatch.md#chained-orders):
-- set from "about N minutes left" while the order is arrived or in service. NULL: no
-- estimate, the end is arrived_at + duration_min (chains, active reassignment).
ALTER TABLE orders ADD COLUMN expected_end_at timestamptz;
