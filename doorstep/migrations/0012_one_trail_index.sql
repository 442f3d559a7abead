-- One worker-first index on the trail archive instead of two. Every insert lands at its
-- worker's newest entry, so each such index keeps one hot leaf page per worker writing:
-- with two, 10,000 workers kept 20,000 pages hot, more than PostgreSQL's default
-- shared_buffers (128 MB), and the archive's CPU per row tripled as the table grew
-- (benchmarks/README.md, session 6). The resume fallback (max seq of a worker's fixes
-- that could still be sent again) reads seq from this index: it carries seq as payload.
-- On a large table this builds a new index while writes wait; build it CONCURRENTLY by
-- hand first if that matters (the CREATE below is then a no-op).
CREATE INDEX IF NOT EXISTS trail_points_worker_ts_seq ON trail_points (worker_id, ts) INCLUDE (seq);
DROP INDEX IF EXISTS trail_points_worker_ts;
DROP INDEX IF EXISTS trail_points_worker_seq;
