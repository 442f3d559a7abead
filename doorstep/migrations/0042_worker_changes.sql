-- The dispatch engine keeps the rows each worker's candidate is built from (profile,
-- exams passed, verified certificates, weekly availability, exceptions, discipline) in
-- memory between ticks (dispatch/worker_rows.py) and re-reads only the workers written
-- since its last read. Every write to those tables logs the worker here, with its
-- transaction's id: a reader keeps the snapshot it read under and next reads the entries
-- of transactions not visible in it (committed after it, in whatever order), so a write
-- is seen by the next read however long its transaction ran. worker_id 0 (no such user:
-- ids start at 1) means every worker (a TRUNCATE). Old entries are deleted by the
-- readers (dispatch/worker_rows.py).
CREATE TABLE worker_changes (
    xid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
    worker_id bigint NOT NULL
);
CREATE INDEX worker_changes_xid ON worker_changes (xid);

-- The worker's column is the trigger's argument (worker_id or user_id).
CREATE FUNCTION log_worker_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO worker_changes (worker_id) VALUES (0);
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        EXECUTE format('INSERT INTO worker_changes (worker_id) SELECT DISTINCT %I FROM new_rows',
                       TG_ARGV[0]);
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        EXECUTE format('INSERT INTO worker_changes (worker_id) SELECT DISTINCT %I FROM old_rows',
                       TG_ARGV[0]);
    END IF;
    RETURN NULL;
END $$;

-- One statement-level trigger per table and operation (a trigger with transition tables
-- has one event), plus one for TRUNCATE: a bulk write logs each worker once, not a row.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('workers', 'user_id'),
        ('skill_qualifications', 'user_id'),
        ('worker_certificates', 'worker_id'),
        ('worker_availability', 'worker_id'),
        ('worker_availability_exceptions', 'worker_id'),
        ('discipline_actions', 'worker_id')
    ) AS v(tab, col) LOOP
        EXECUTE format(
            'CREATE TRIGGER %1$s_log_ins AFTER INSERT ON %1$I REFERENCING NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION log_worker_changes(%2$L)', t.tab, t.col);
        EXECUTE format(
            'CREATE TRIGGER %1$s_log_upd AFTER UPDATE ON %1$I '
            'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION log_worker_changes(%2$L)', t.tab, t.col);
        EXECUTE format(
            'CREATE TRIGGER %1$s_log_del AFTER DELETE ON %1$I REFERENCING OLD TABLE AS old_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION log_worker_changes(%2$L)', t.tab, t.col);
        EXECUTE format(
            'CREATE TRIGGER %1$s_log_trunc AFTER TRUNCATE ON %1$I '
            'FOR EACH STATEMENT EXECUTE FUNCTION log_worker_changes(%2$L)', t.tab, t.col);
    END LOOP;
END $$;
