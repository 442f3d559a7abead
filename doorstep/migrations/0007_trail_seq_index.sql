-- The resume point falls back to the archive when Redis lost a worker's sequence number.
CREATE INDEX trail_points_worker_seq ON trail_points (worker_id, seq);
