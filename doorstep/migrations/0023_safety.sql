-- Safety (issue 19, sections 4 and 6): emergency contacts, safety alerts (SOS and
-- live-trail anomalies) with their acknowledgement, escalation and resolution, and the
-- tamper-evident audit log (a hash chain, append-only). See docs/safety.md.

-- Up to three people told by SMS, with a live link, when the user raises an SOS.
CREATE TABLE emergency_contacts (
    user_id  bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    position smallint NOT NULL CHECK (position BETWEEN 1 AND 3),
    name     text NOT NULL CHECK (length(name) BETWEEN 1 AND 40),
    phone    text NOT NULL,
    PRIMARY KEY (user_id, position)
);

-- An alert for the city's dispatchers about a person's safety. ``subject_id`` is the
-- person it is about (who pressed SOS, or the worker whose trail is anomalous). At most
-- one open alert per person, kind and order: a repeated SOS (a flood) counts as a
-- repeat of the open one and is never dropped.
CREATE TABLE safety_alerts (
    id              bigserial PRIMARY KEY,
    city_id         text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('sos', 'stopped', 'off_route', 'left_site',
                                                  'overstay', 'late_departure')),
    subject_id      bigint NOT NULL REFERENCES users(id),
    subject_role    text NOT NULL CHECK (subject_role IN ('worker', 'customer')),
    order_id        bigint REFERENCES orders(id),
    source          text NOT NULL,
    message         text NOT NULL DEFAULT '',
    lat             double precision,
    lng             double precision,
    position_ts_ms  bigint,
    detail          jsonb NOT NULL DEFAULT '{}',
    raised_at       timestamptz NOT NULL,
    repeats         integer NOT NULL DEFAULT 0,
    last_raised_at  timestamptz NOT NULL,
    acknowledged_at timestamptz,
    acknowledged_by bigint REFERENCES users(id),
    escalations     integer NOT NULL DEFAULT 0,
    escalated_at    timestamptz,
    resolved_at     timestamptz,
    resolved_by     bigint REFERENCES users(id),
    resolution      text
);
CREATE UNIQUE INDEX safety_alerts_one_open
    ON safety_alerts (subject_id, kind, COALESCE(order_id, 0)) WHERE resolved_at IS NULL;
CREATE INDEX safety_alerts_open_city ON safety_alerts (city_id, raised_at) WHERE resolved_at IS NULL;

-- The audit log: every entry's hash covers the previous entry's hash and its own
-- canonical content (audit/chain.py). Entries are appended under an advisory lock, so
-- the chain is a line, and never changed: the trigger refuses UPDATE, DELETE and
-- TRUNCATE for everyone (a superuser can still disable it: ``doorstep audit verify``
-- finds what was changed or removed). ``audit_head`` is the chain's last link, moved
-- in the appending transaction, so a removed tail shows too.
CREATE TABLE audit_log (
    seq       bigint PRIMARY KEY CHECK (seq >= 1),
    at        timestamptz NOT NULL,
    actor_id  bigint,
    action    text NOT NULL,
    subject   text NOT NULL,
    detail    jsonb NOT NULL DEFAULT '{}',
    prev_hash text NOT NULL,
    hash      text NOT NULL UNIQUE
);
CREATE INDEX audit_log_subject ON audit_log (subject, seq);

CREATE TABLE audit_head (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq  bigint NOT NULL,
    hash text NOT NULL
);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
