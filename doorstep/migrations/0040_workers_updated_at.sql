-- The dispatch engine keeps workers' skills in memory (dispatch/worker_skills.py) and,
-- each tick, reads only the profiles changed since its last read (updated_at), not the
-- whole table: at 100k workers that read must not scan it.
CREATE INDEX workers_updated_at ON workers (updated_at);
