-- Issue 20: a decline or a timed-out offer keeps the worker away from the order only for a
-- cooldown ([offers] cooldown_s): `until` is when it ends. NULL: for good (a dispatcher's
-- exclusion, an unassignment, a worker gone silent).
ALTER TABLE order_exclusions ADD COLUMN until timestamptz;
