-- One worker-first index on the trail archive instead of two. Every insert lands at its
-- worker's newest entry, so each such index keeps one hot leaf page per worker writing:
-- with two, 10,000 workers kept 20,000 pages hot, more than PostgreSQL's default
-- shared_buffers (128 MB), and the archive's CPU per row tripled as the table grew
-- (benchmarks/README.md, session 6). The resume fallback (max seq of a worker's fixes
-- that could still be sent again) reads seq from this index: it carries seq as payload.
-- On a large table this builds a new index while writes wait; build it CONCURRENTLY by
-- hand first if that matters (docs/operations.md). A hand build that failed leaves an
-- invalid index of that name: it is dropped and built again here.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_index
        WHERE indexrelid = to_regclass('trail_points_worker_ts_seq') AND NOT indisvalid
    ) THEN
        DROP INDEX trail_points_worker_ts_seq;
    END IF;
END
$$;
CREATE INDEX IF NOT EXISTS trail_points_worker_ts_seq ON trail_points (worker_id, ts) INCLUDE (seq);
DROP INDEX IF EXISTS trail_points_worker_ts;
DROP INDEX IF EXISTS trail_points_worker_seq;
-- The table only grows, so only an insert-driven vacuum marks its pages all-visible, by
-- default after 20 % growth: on a big table, hours of rows whose index-only reads (the
-- resume fallback, after Redis lost its state and every worker reconnects) would visit
-- the table row by row. Every million rows instead.
ALTER TABLE trail_points SET (
    autovacuum_vacuum_insert_threshold = 1000000,
    autovacuum_vacuum_insert_scale_factor = 0
);
